"""Quality cost of a lower-precision synthesis path: PESQ/STOI/M-STFT at fp32 and at each other precision.

The rule: a lower-precision path may be offered (opt-in) only if its PESQ on ljspeech/dev stays
within 0.02 of fp32 with the same weights. This resynthesises the clips through the real CLI
(`vocoder resynth --backend torch --precision P`), scores them against the recordings
(`vocoder score -m pesq,stoi,mstft`), and prints the means, the change from fp32 and the largest
per-file PESQ change; `--markdown FILE` writes the docs/performance.md table. With `--stream` the lower
precisions are streamed instead (`vocoder resynth - - --stream`, each file piped through as a 16-bit WAV,
the default 40 ms chunks with cached layer state), still against offline fp32.

    python scripts/precision_quality.py                                    # LJ_V1, universal V1, LJ_V2 on the CPU, bf16
    python scripts/precision_quality.py --weights hifigan-lj-v1 --precisions bf16 --device cpu
    python scripts/precision_quality.py --weights hifigan-lj-v1,hifigan-lj-v2 --precisions fp32,bf16 --stream
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vocoder_cli.audio import find_audio_files  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "ljspeech" / "dev" / "wavs"
METRICS = ("pesq", "stoi", "mstft")
PESQ_BAR = 0.02


def vocoder(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vocoder_cli", *args], check=True, capture_output=True, text=True)


def child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def scores(data: Path, out: Path, wall: float, cpu: float) -> dict:
    """Per-file and mean scores of ``out`` against ``data``, with the resynthesis' wall and CPU seconds."""
    scored = json.loads(vocoder("score", str(data), str(out), "-m", ",".join(METRICS), "-f", "json", "--per-file").stdout)
    files = {row["id"]: row for row in scored["files"]}
    means = {m: scored["summary"][m]["mean"] for m in METRICS}
    return {"files": files, "means": means, "wall_s": wall, "cpu_s": cpu}


def resynth_and_score(data: Path, out: Path, weights: str, precision: str, device: str) -> dict:
    """Per-file scores and the resynthesis' wall and CPU seconds for one (weights, precision)."""
    cpu, wall = child_cpu_seconds(), time.perf_counter()
    vocoder("resynth", str(data), str(out), "-w", weights, "--backend", "torch", "--precision", precision,
            "--device", device, "-q")
    return scores(data, out, time.perf_counter() - wall, child_cpu_seconds() - cpu)


def stream_resynth_and_score(data: Path, out: Path, weights: str, precision: str, device: str) -> dict:
    """As :func:`resynth_and_score`, each file streamed through `vocoder resynth - - --stream` (WAV in, WAV out)."""
    out.mkdir(parents=True)
    cpu, wall = child_cpu_seconds(), time.perf_counter()
    for path in find_audio_files(data):
        audio, rate = sf.read(path, dtype="float32")
        wav = io.BytesIO()
        sf.write(wav, audio, rate, format="WAV", subtype="PCM_16")
        done = subprocess.run([sys.executable, "-m", "vocoder_cli", "resynth", "-", "-", "--stream", "-w", weights,
                               "--precision", precision, "--device", device, "-q"],
                              input=wav.getvalue(), capture_output=True, check=True)
        target = out / path.relative_to(data).with_suffix(".wav")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(done.stdout)
    return scores(data, out, time.perf_counter() - wall, child_cpu_seconds() - cpu)


def per_file_pesq(run: dict) -> dict[str, float]:
    return {name: row["pesq"] for name, row in run["files"].items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--weights", default="hifigan-lj-v1,hifigan-universal-v1,hifigan-lj-v2")
    parser.add_argument("--precisions", default="bf16")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--stream", action="store_true", help="stream the --precisions runs (fp32 stays offline)")
    args = parser.parse_args()
    run_low = stream_resynth_and_score if args.stream else resynth_and_score
    mode = "stream " if args.stream else ""
    rows = []
    with tempfile.TemporaryDirectory(prefix="vocoder-precision-") as tmp:
        for weights in args.weights.split(","):
            base = resynth_and_score(args.data, Path(tmp) / f"{weights}-fp32", weights, "fp32", args.device)
            for precision in args.precisions.split(","):
                low = run_low(args.data, Path(tmp) / f"{weights}-{mode}{precision}", weights, precision, args.device)
                deltas = {m: low["means"][m] - base["means"][m] for m in METRICS}
                fp32_files, low_files = per_file_pesq(base), per_file_pesq(low)
                worst = max(abs(low_files[n] - fp32_files[n]) for n in fp32_files)
                rows.append((weights, mode + precision, base, low, deltas, worst))
                verdict = "within" if abs(deltas["pesq"]) <= PESQ_BAR else "OUTSIDE"
                print(f"{weights} {mode}{precision}: PESQ {base['means']['pesq']:.4f} -> {low['means']['pesq']:.4f} "
                      f"({deltas['pesq']:+.4f}, {verdict} {PESQ_BAR}; largest per-file change {worst:.4f}), "
                      f"STOI {deltas['stoi']:+.4f}, M-STFT {deltas['mstft']:+.4f}; resynth CPU "
                      f"{base['cpu_s']:.1f} s -> {low['cpu_s']:.1f} s", flush=True)
    if args.markdown:
        lines = [f"| weights | precision | PESQ fp32 | PESQ | change | largest per-file change | STOI change | "
                 f"M-STFT change | resynth CPU s (fp32 / {args.precisions}) |",
                 "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for weights, precision, base, low, d, worst in rows:
            lines.append(f"| {weights} | {precision} | {base['means']['pesq']:.3f} | {low['means']['pesq']:.3f} | "
                         f"{d['pesq']:+.4f} | {worst:.4f} | {d['stoi']:+.4f} | {d['mstft']:+.4f} | "
                         f"{base['cpu_s']:.1f} / {low['cpu_s']:.1f} |")
        args.markdown.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
