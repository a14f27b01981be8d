#!/usr/bin/env python
"""Check our NISQA (vocoder_cli.models.nisqa + vocoder_cli.metrics.nisqa) against the official code on
real clips, for both published checkpoints. Prints the max absolute difference per output.

The official code (gabrielmittag/NISQA at fe84f0f, MIT) needs librosa, pandas, matplotlib and pyyaml, so
it runs in the side venv (``--side``): ``nisqaModel`` in ``predict_csv`` mode exactly as ``run_predict.py``
builds it, plus its ``get_librosa_melspec`` for the front-end comparison. This interpreter (the project
venv) computes ours and compares. Usage, from the repository root:

    .venv/bin/python scripts/check_nisqa_equivalence.py --official /path/to/NISQA \\
        --side-python SIDE_VENV/bin/python [--weights FOLDER] [CLIP ...]

Without clips it takes 4 from ljspeech/dev, 2 from reader_m/test and 2 from allison_en/test of
../shared/data (22.05 and 16 kHz). Exit status 1 when a score differs by more than ``--tolerance``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHECKPOINTS = {"nisqa": "nisqa.tar", "nisqa-tts": "nisqa_tts.tar"}
OFFICIAL_COLUMNS = {"mos": "mos_pred", "noi": "noi_pred", "dis": "dis_pred", "col": "col_pred", "loud": "loud_pred"}


def default_clips() -> list[Path]:
    data = Path(__file__).resolve().parents[2] / "shared" / "data"
    return (sorted((data / "ljspeech" / "dev" / "wavs").glob("*.flac"))[:4]
            + sorted((data / "reader_m" / "test" / "wavs").glob("*.flac"))[:2]
            + sorted((data / "allison_en" / "test").glob("*.flac"))[:2])


# ---------------------------------------------------------------- side venv: the official code


def _side(official: str, weights: str, clips: list[str], out: str) -> None:
    """Runs in the side venv with the official repository on sys.path; never imports our package."""
    import os

    import pandas as pd

    sys.path.insert(0, official)
    from nisqa import NISQA_lib as NL
    from nisqa.NISQA_model import nisqaModel

    arrays: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "clips.csv"
        pd.DataFrame({"deg": clips}).to_csv(csv, index=False)
        for metric, file in CHECKPOINTS.items():
            args = {"mode": "predict_csv", "pretrained_model": os.path.join(weights, file), "data_dir": "",
                    "csv_file": str(csv), "csv_deg": "deg", "output_dir": None, "num_workers": 0, "bs": 1,
                    "ms_channel": None, "tr_bs_val": 1, "tr_num_workers": 0}
            model = nisqaModel(args)  # as run_predict.py: checkpoint args updated with these
            frame = model.predict()
            for name, column in OFFICIAL_COLUMNS.items():
                if column in frame:
                    arrays[f"{metric}/{name}"] = frame[column].to_numpy(dtype=np.float64)
            a = model.args
            for i, clip in enumerate(clips):
                arrays[f"{metric}/mel/{i}"] = NL.get_librosa_melspec(
                    clip, sr=a["ms_sr"], n_fft=a["ms_n_fft"], hop_length=a["ms_hop_length"],
                    win_length=a["ms_win_length"], n_mels=a["ms_n_mels"], fmax=a["ms_fmax"])
    np.savez(out, **arrays)


# ---------------------------------------------------------------- project venv: ours, and the comparison


def _ours(weights: Path, clips: list[Path], side: dict[str, np.ndarray], tolerance: float) -> bool:
    import torch

    from vocoder_cli.audio import load_audio
    from vocoder_cli.metrics.nisqa import NisqaScorer, mel_db

    torch.set_num_threads(1)
    wavs = [load_audio(c) for c in clips]
    described = (f"{c.name} ({sr} Hz, {w.size / sr:.2f} s)" for c, (w, sr) in zip(clips, wavs))
    print(f"{len(clips)} clips: " + ", ".join(described))
    ok = True
    for metric, file in CHECKPOINTS.items():
        scorer = NisqaScorer.load(metric, weights / file, "cpu", batch_size=8)
        mel_diff = max(float(np.max(np.abs(mel_db(w, sr, scorer.cfg) - side[f"{metric}/mel/{i}"])))
                       for i, (w, sr) in enumerate(wavs))
        start = time.perf_counter()
        mels = [scorer.prepare(w, sr) for w, sr in wavs]
        batched = scorer.score(mels)
        seconds = time.perf_counter() - start
        single = [scorer.score([m])[0] for m in mels]
        print(f"\n{metric} ({file}): front end max |mel dB diff| {mel_diff:.2e}; "
              f"ours {1000 * seconds / len(clips):.0f} ms per clip on CPU (1 thread, batch 8)")
        for name, key in scorer.keys.items():
            official = side[f"{metric}/{name}"]
            ours = np.array([s[key] for s in batched])
            diff = float(np.max(np.abs(ours - official)))
            batch_diff = float(np.max(np.abs(ours - np.array([s[key] for s in single]))))
            ok &= diff <= tolerance
            print(f"  {key:11s} max |ours - official| {diff:.2e}  (batched vs one by one {batch_diff:.1e})  "
                  f"official: {' '.join(f'{v:.4f}' for v in official)}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("clips", nargs="*", type=Path, help="audio files (default: 8 clips of ../shared/data)")
    parser.add_argument("--official", required=True, help="a checkout of gabrielmittag/NISQA (commit fe84f0f)")
    shared = Path(__file__).resolve().parents[2] / "shared"
    parser.add_argument("--weights", type=Path, default=shared / "weights" / "nisqa",
                        help="folder with nisqa.tar and nisqa_tts.tar")
    parser.add_argument("--side-python", required=True, help="a Python interpreter with the official code's needs (a side venv)")
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--side", help=argparse.SUPPRESS)  # internal: the side-venv half writes this .npz
    args = parser.parse_args()
    clips = [c.resolve() for c in (args.clips or default_clips())]
    if args.side:
        _side(args.official, str(args.weights), [str(c) for c in clips], args.side)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "official.npz"
        cmd = [args.side_python, str(Path(__file__).resolve()), "--official", args.official,
               "--weights", str(args.weights.resolve()), "--side", str(out), *map(str, clips)]
        subprocess.run(cmd, check=True, cwd=tmp, stdout=subprocess.DEVNULL)  # not the repo: keep our package out
        side = dict(np.load(out))
    ok = _ours(args.weights, clips, side, args.tolerance)
    print(f"\n{'PASS' if ok else 'FAIL'}: every score within {args.tolerance} of the official code")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
