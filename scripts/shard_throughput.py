"""Throughput of sharded batch commands on this machine: one process against two shards side by side.

    python scripts/shard_throughput.py DATA_DIR [--metrics pesq,stoi,...] [--markdown table.md]

DATA_DIR holds reference clips (e.g. ljspeech/dev/wavs). Each row runs the real CLI:

- resynth with random-weight V1 and V2 generators (throughput does not depend on weight values), CPU, torch:
  one process (``--threads 1``), then ``--shard 1/2`` and ``--shard 2/2`` at once (``--threads 1`` each);
- score, each metric: one process (``-j 1``), then two shards at once (``-j 1`` each), the resynthesised
  V1 audio against the references.

Throughput is seconds of audio per wall-clock second (the whole command: start-up, weights, reading,
writing). Start-up is part of a real shard's cost, so it is kept, not subtracted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DEFAULT_METRICS = "pesq,stoi,estoi,mstft,mcd,sisdr,lsd"


def _audio_seconds(folder: Path) -> float:
    from vocoder_cli.audio import AUDIO_EXTENSIONS

    return sum(sf.info(str(p)).duration for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)


def _timed(commands: list[list[str]]) -> float:
    """Run ``commands`` at once; the wall time until the last ends (a failure is an error)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS")}
    start = time.perf_counter()
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for c in commands]
    for proc, command in zip(procs, commands):
        _, err = proc.communicate()
        if proc.returncode not in (0, 1):
            raise SystemExit(f"{' '.join(command)} failed ({proc.returncode}):\n{err}")
    return time.perf_counter() - start


def _weights(folder: Path, preset: str) -> Path:
    import torch

    from vocoder_cli.mel import MelConfig
    from vocoder_cli.models import GENERATOR_PRESETS, Generator
    from vocoder_cli.weights.format import save_generator

    torch.manual_seed(0)
    return save_generator(folder / f"{preset}.safetensors", Generator(GENERATOR_PRESETS[preset]).eval(), MelConfig())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path, help="a folder of reference clips")
    parser.add_argument("--metrics", default=DEFAULT_METRICS)
    parser.add_argument("--markdown", type=Path)
    args = parser.parse_args()
    vocoder = [sys.executable, "-m", "vocoder_cli"]
    work = Path(tempfile.mkdtemp(prefix="shard-throughput-"))
    seconds = _audio_seconds(args.data)
    rows = []
    try:
        for preset in ("v1", "v2"):
            weights = _weights(work, preset)
            options = ["--weights", str(weights), "--backend", "torch", "--device", "cpu", "--threads", "1", "-q"]

            def resynth(out: str, *extra: str, options: list[str] = options) -> list[str]:
                return [*vocoder, "resynth", str(args.data), str(work / out), *options, *extra]

            one = _timed([resynth(f"{preset}-one")])
            two = _timed([resynth(f"{preset}-two", "--shard", f"{k}/2") for k in (1, 2)])
            rows.append((f"resynth {preset.upper()} (random weights, torch fp32)", seconds, one, two))
        gen = work / "v1-one"
        for metric in args.metrics.split(","):
            base = [*vocoder, "score", str(args.data), str(gen), "-m", metric, "-j", "1", "-q", "-f", "json"]
            one = _timed([base])
            two = _timed([[*base, "--shard", f"{k}/2"] for k in (1, 2)])
            rows.append((f"score {metric}", seconds, one, two))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = ["| command | audio s | 1 process: wall s | x real time | 2 shards at once: wall s | x real time | "
             "speed-up |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, audio, one, two in rows:
        lines.append(f"| {name} | {audio:.1f} | {one:.1f} | {audio / one:.2f} | {two:.1f} | {audio / two:.2f} | "
                     f"{one / two:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.markdown:
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
