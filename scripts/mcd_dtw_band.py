"""The DTW band's effect on mcd_dtw (docs/metrics.md): banded against unconstrained DTW on real speech.

    python scripts/mcd_dtw_band.py      # 3 reader_m test clips x 5 damages; bands of 25 ms .. 0.5 s

"unconstrained" is the same DP with a band wider than the clip (the textbook DTW, O(N^2) time).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from scipy.signal import butter, sosfilt

from vocoder_cli.mel import MelConfig, MelSpectrogram
from vocoder_cli.metrics.signal import MCD_CONST, banded_dtw, world_mel_cepstra
from vocoder_cli.synthesis.griffinlim import GriffinLim

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "reader_m" / "test" / "wavs"
SR = 22050
BANDS = (5, 10, 20, 40, 100)  # frames of 5 ms


def damages(x: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    def noisy(snr: float) -> np.ndarray:
        noise = rng.standard_normal(x.size)
        return x + noise * np.sqrt(np.mean(x**2) / np.mean(noise**2) / 10 ** (snr / 10))

    cfg = MelConfig()
    with torch.no_grad():
        griffin = GriffinLim(cfg).eval()(MelSpectrogram(cfg)(torch.from_numpy(x.astype(np.float32))[None]))
    return {
        "noise 20 dB": noisy(20), "noise 5 dB": noisy(5),
        "low-pass 4 kHz": sosfilt(butter(8, 4000, fs=SR, output="sos"), x),
        "Griffin-Lim": griffin[0, 0].numpy().astype(np.float64)[: x.size],
        "shift 256": np.concatenate([np.zeros(256), x[:-256]]),
    }


def main() -> None:
    rng = np.random.default_rng(0)
    print("clip | damage | unconstrained | " + " | ".join(f"band {5 * b} ms" for b in BANDS))
    for path in sorted(DATA.glob("*.flac"))[:3]:
        x = sf.read(path, dtype="float32")[0].astype(np.float64)
        ref = world_mel_cepstra(x, SR)[:, 1:]
        for name, y in damages(x, rng).items():
            gen = world_mel_cepstra(np.ascontiguousarray(y[: x.size]), SR)[:, 1:]
            values = [MCD_CONST * t / n for t, n in (banded_dtw(ref, gen, b) for b in (len(ref), *BANDS))]
            print(f"{path.stem} | {name} | " + " | ".join(f"{v:.4f}" for v in values), flush=True)


if __name__ == "__main__":
    main()
