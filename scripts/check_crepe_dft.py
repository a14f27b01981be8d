"""The pitch metrics' CPU engine (CREPE through DFTs, vocoder_cli/models/crepe_dft.py) against the network's
own convolutions, on real speech: the same voiced/unvoiced decisions, pitch within 1 cent RMS, and the
same per-file metrics against a degraded copy.

    python scripts/check_crepe_dft.py                       # ljspeech/dev, reader_m/test, allison_en/test
    python scripts/check_crepe_dft.py --sets ../shared/data/ljspeech/dev/wavs --markdown table.md

Per set: frames compared, frames whose voicing differs, RMS and largest pitch difference (cents) over frames
voiced in both, largest periodicity difference, and for each clip against a copy with white noise at 20 dB
SNR (fixed seed), the largest difference in f0_rmse (cents), vuv_f1 and periodicity. Also the seconds each
engine took (CPU, both threads).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from vocoder_cli.metrics.pitch import PitchTracker, compare, crepe_weights, voiced

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFAULT_SETS = [SHARED / "ljspeech/dev/wavs", SHARED / "reader_m/test/wavs", SHARED / "allison_en/test"]


def noisy(wav: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    """``wav`` plus white noise ``snr_db`` under its power (a fixed seed per clip)."""
    noise = np.random.default_rng(seed).standard_normal(wav.shape)
    gain = np.sqrt(np.mean(wav**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    return (wav + gain * noise).astype(np.float32)


def check_set(folder: Path, engines: dict[str, PitchTracker]) -> dict[str, float]:
    files = sorted(p for p in folder.iterdir() if p.suffix in (".wav", ".flac"))
    clips = [sf.read(p, dtype="float32") for p in files]
    seconds = {name: 0.0 for name in engines}
    tracks: dict[str, list] = {}
    for name, tracker in engines.items():
        start = time.perf_counter()
        tracks[name] = [tracker.tracks([wav, noisy(wav, 20.0, i)], sr) for i, (wav, sr) in enumerate(clips)]
        seconds[name] = time.perf_counter() - start
    frames = flips = 0
    cents_sq: list[np.ndarray] = []
    period_diff = rmse_diff = f1_diff = metric_period_diff = 0.0
    for (d_clean, d_noisy), (f_clean, f_noisy) in zip(tracks["direct"], tracks["dft"]):
        for d, f in ((d_clean, f_clean), (d_noisy, f_noisy)):
            vd, vf = voiced(d), voiced(f)
            frames += vd.size
            flips += int((vd != vf).sum())
            both = vd & vf
            cents_sq.append((1200 * np.log2(d.pitch[both] / f.pitch[both])) ** 2)
            period_diff = max(period_diff, float(np.abs(d.periodicity - f.periodicity).max()))
        md, mf = compare(d_clean, d_noisy), compare(f_clean, f_noisy)
        if not (np.isnan(md["f0_rmse"]) and np.isnan(mf["f0_rmse"])):
            rmse_diff = max(rmse_diff, abs(md["f0_rmse"] - mf["f0_rmse"]))
        f1_diff = max(f1_diff, abs(md["vuv_f1"] - mf["vuv_f1"]))
        metric_period_diff = max(metric_period_diff, abs(md["periodicity"] - mf["periodicity"]))
    cents = np.concatenate(cents_sq)
    audio_s = sum(len(w) / sr for w, sr in clips) * 2
    return {
        "clips": len(clips), "audio_s": audio_s, "frames": frames, "voicing_flips": flips,
        "cents_rms": float(np.sqrt(cents.mean())) if cents.size else 0.0,
        "cents_max": float(np.sqrt(cents.max())) if cents.size else 0.0,
        "periodicity_max": period_diff, "f0_rmse_max": rmse_diff, "vuv_f1_max": f1_diff,
        "metric_periodicity_max": metric_period_diff,
        "direct_s": seconds["direct"], "dft_s": seconds["dft"],
    }


def label(folder: Path) -> str:
    """``ljspeech/dev`` for ``.../ljspeech/dev/wavs``: the set, not the folder layout."""
    parts = folder.resolve().parts
    parts = parts[:-1] if parts[-1] == "wavs" else parts
    return "/".join(parts[-2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", type=Path, nargs="+", default=DEFAULT_SETS)
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args()
    weights = crepe_weights()
    engines = {name: PitchTracker.load(weights, engine=name) for name in ("direct", "dft")}
    header = ("| set | clips (+ noisy copies) | frames | voicing differs | pitch RMS / max cents | periodicity max diff "
              "| metric max diff f0_rmse / vuv_f1 / periodicity | direct s | dft s | speed-up |\n"
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    rows = [header]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(header)
    for folder in args.sets:
        r = check_set(folder, engines)
        row = (f"| {label(folder)} | {r['clips']} ({r['audio_s']:.0f} s) | {r['frames']} "
               f"| {r['voicing_flips']} | {r['cents_rms']:.4f} / {r['cents_max']:.4f} | {r['periodicity_max']:.1e} "
               f"| {r['f0_rmse_max']:.1e} / {r['vuv_f1_max']:.1e} / {r['metric_periodicity_max']:.1e} "
               f"| {r['direct_s']:.1f} | {r['dft_s']:.1f} | {r['direct_s'] / r['dft_s']:.2f}x |")
        rows.append(row)
        print(row, flush=True)
    if args.markdown:
        args.markdown.write_text("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
