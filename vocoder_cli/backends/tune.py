"""``--backend auto`` on the CPU: the faster of PyTorch and ONNX Runtime for these weights on this machine.

Which backend is faster depends on the CPU, not only on the model: on a 2-core AVX2 EPYC ONNX Runtime ran
V1 1.25x faster than eager PyTorch, on a 2-core AVX-512 EPYC it ran V1 at 0.98x (docs/performance.md). So
the first ``auto`` load of a weights file that has a checked ONNX export times both on ~2 s of the bundled
speech (one warm-up each, then interleaved runs, median) and remembers the winner in
``$VOCODER_CACHE_DIR/backend-choice.json``, keyed by the weights' sha256, the CPU model, the thread count
and the torch and ONNX Runtime versions; later loads read it. The measurement costs a few seconds once
(V1: ~5 s on 2 cores) and is announced on stderr.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

CHOICE_FILE = "backend-choice.json"


@dataclass(frozen=True)
class BackendChoice:
    backend: str  # torch | onnx
    seconds: dict[str, float]  # median wall seconds per backend on the probe
    audio_seconds: float  # length of the probe


def cpu_model() -> str:
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def choice_key(weights_sha256: str, threads: int) -> str:
    import onnxruntime

    return (f"{weights_sha256[:16]}|{cpu_model()}|{os.cpu_count()} cpus|{threads} threads|torch {torch.__version__}"
            f"|ort {onnxruntime.__version__}")


def time_backends(models: dict[str, nn.Module], mel: torch.Tensor, repeats: int = 3) -> dict[str, float]:
    """Median wall seconds of each model on ``mel`` [1, n_mels, frames]: one warm-up each, then ``repeats``
    interleaved rounds (so a change in machine load hits every candidate alike)."""
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for model in models.values():
            model(mel)
        for _ in range(repeats):
            for name, model in models.items():
                start = time.perf_counter()
                model(mel)
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write(path: Path, data: dict) -> None:
    """Atomic; a cache dir that cannot be written only means measuring again next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".backend-choice-")
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except OSError:
        pass


def remembered_backend(key: str, cache: Path | None = None) -> str | None:
    """The backend stored under ``key`` by an earlier measurement, or None."""
    known = _read(cache or choice_path()).get(key)
    backend = known.get("backend") if isinstance(known, dict) else None
    return backend if backend in ("torch", "onnx") else None


def choice_path() -> Path:
    from vocoder_cli.weights.cache import cache_dir

    return cache_dir() / CHOICE_FILE


def measure_faster(
    models: dict[str, nn.Module],
    probe: Callable[[], torch.Tensor],
    key: str,
    *,
    cache: Path | None = None,
    notify: Callable[[str], None] | None = None,
    hop_seconds: float,
) -> BackendChoice:
    """Time ``models`` (backend name -> module taking a mel batch) on ``probe()`` (a mel [1, n_mels, frames]),
    store the faster under ``key`` (atomically, beside other keys) and say so. ``hop_seconds``: audio per frame."""
    path = cache or choice_path()
    mel = probe()
    seconds = time_backends(models, mel)
    backend = min(seconds, key=lambda name: seconds[name])
    choice = BackendChoice(backend, seconds, mel.shape[-1] * hop_seconds)
    data = _read(path)
    data[key] = asdict(choice)
    _write(path, data)
    if notify is not None:
        timings = ", ".join(f"{name} {s:.2f} s" for name, s in sorted(seconds.items(), key=lambda kv: kv[1]))
        notify(f"--backend auto: timed torch and onnx once on this machine ({timings} for "
               f"{choice.audio_seconds:.1f} s of speech): using {backend} (remembered in {path})")
    return choice
