"""`resynth --stream` on a busy machine: compute RTF by thread count and OpenMP wait policy, idle and loaded.

    python scripts/stream_threads_load.py [--weights hifigan-lj-v2,hifigan-lj-v1] [--clip FILE] [--loads 0,1,2]
    python scripts/stream_threads_load.py --offline FOLDER ...     # the same for offline `resynth FOLDER OUT`

Each cell runs the real command, `vocoder resynth - - --stream --backend torch` on one clip from a file
through stdin, and reads the compute RTF it prints (seconds in the vocoder over seconds of audio). Load
``N`` means N other processes spinning on the CPU at normal priority for the duration of the cell, the way
a training job, a second stream or a compile would. Configurations:

- ``default``: no option at all, what a user gets: torch's thread count (one per core), idle OpenMP threads
  sleeping (the CLI sets ``OMP_WAIT_POLICY=PASSIVE`` unless the user set a policy);
- ``spinning``: the same with OpenMP's own default (idle threads spin for a while before sleeping), as the
  CLI ran before it set the policy (``OMP_WAIT_POLICY`` set empty, which OpenMP ignores);
- ``threads=1``: ``--threads 1``; ``spin=3k``/``spin=10k``: ``GOMP_SPINCOUNT`` (spin that many rounds, then
  sleep), the middle ground.

Prints a Markdown table and the CPU flags that matter. Nothing else should run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO.parent / "shared" / "data" / "ljspeech" / "dev" / "wavs" / "LJ001-0001.flac"
CONFIGS: dict[str, tuple[list[str], dict[str, str]]] = {
    "default": ([], {}),
    "spinning": ([], {"OMP_WAIT_POLICY": ""}),
    "threads=1": (["--threads", "1"], {}),
    "spinning threads=1": (["--threads", "1"], {"OMP_WAIT_POLICY": ""}),
    "spin=3k": ([], {"GOMP_SPINCOUNT": "3000"}),
    "spin=10k": ([], {"GOMP_SPINCOUNT": "10000"}),
}
DEFAULT_CONFIGS = "default,spinning,threads=1"
SPIN = "import time\nwhile True: pass"


def wav_bytes(clip: Path) -> bytes:
    import io

    import soundfile as sf

    wav, sr = sf.read(clip, dtype="float32")
    buf = io.BytesIO()
    sf.write(buf, wav, sr, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def run_cell(weights: str, args: list[str], env: dict[str, str], data: bytes, offline: Path | None = None) -> float:
    if offline is None:
        io_args, pattern = ["-", "-", "--stream"], r"compute RTF ([0-9.]+)"
    else:
        io_args, pattern = [str(offline), str(Path(tempfile.mkdtemp()) / "out")], r"RTF ([0-9.]+)"
    cmd = [sys.executable, "-m", "vocoder_cli", "resynth", *io_args, "--backend", "torch", "-w", weights, *args]
    done = subprocess.run(cmd, input=data, capture_output=True, env={**os.environ, **env}, check=False)
    text = done.stderr.decode("utf-8", "replace")
    found = re.search(pattern, text)
    if done.returncode != 0 or not found:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{text}")
    return float(found.group(1))


def cpu_flags() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown"
    model = re.search(r"model name\s*:\s*(.*)", text)
    flags = set(re.search(r"flags\s*:\s*(.*)", text).group(1).split()) if "flags" in text else set()
    wanted = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8", "avx512_vnni") if f in flags]
    return f"{model.group(1) if model else '?'}; {os.cpu_count()} cpus; flags: {' '.join(wanted)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="hifigan-lj-v2,hifigan-lj-v1")
    parser.add_argument("--clip", type=Path, default=CLIP)
    parser.add_argument("--loads", default="0,1,2", help="numbers of spinning processes")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help=f"comma-separated, of: {', '.join(CONFIGS)}")
    parser.add_argument("--offline", type=Path, default=None,
                        help="a folder: time offline `resynth FOLDER OUT` (its summary RTF) instead of --stream")
    opts = parser.parse_args()
    data = wav_bytes(opts.clip)
    configs = opts.configs.split(",")
    what = f"offline resynth of {opts.offline}" if opts.offline else f"--stream of {opts.clip.name}"
    print(f"machine: {cpu_flags()}; {what}", flush=True)
    print("| weights | load (spinning processes) | " + " | ".join(configs) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in configs) + " |")
    for weights in opts.weights.split(","):
        for load in map(int, opts.loads.split(",")):
            spinners = [subprocess.Popen([sys.executable, "-c", SPIN]) for _ in range(load)]
            time.sleep(0.5 if load else 0)
            try:
                cells = [run_cell(weights, *CONFIGS[name], data, opts.offline) for name in configs]
            finally:
                for proc in spinners:
                    proc.kill()
                    proc.wait()
            print(f"| {weights} | {load} | " + " | ".join(f"{c:.3f}" for c in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
