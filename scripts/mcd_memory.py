"""Peak memory and wall time of one MCD call on an N-minute pair of real speech (docs/metrics.md).

    python scripts/mcd_memory.py 1      # minutes; reader_m/train tiled, +1% white noise, 22.05 kHz

Prints the scores and how much the process's peak RSS grew during the call (ru_maxrss, Linux KiB).
"""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from vocoder_cli.metrics.signal import mcd

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "reader_m" / "train" / "wavs"


def main(minutes: float, sr: int = 22050) -> None:
    speech = np.concatenate([sf.read(f, dtype="float32")[0] for f in sorted(DATA.glob("*.flac"))[:40]])
    n = int(minutes * 60 * sr)
    x = np.tile(speech, n // speech.size + 1)[:n]
    y = (x + 0.01 * np.random.default_rng(0).standard_normal(n)).astype(np.float32)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    scores = mcd(x, y, sr)
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(f"{minutes:g} min: {scores}, {time.perf_counter() - start:.1f} s, peak RSS +{grown:.0f} MiB")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 1.0)
