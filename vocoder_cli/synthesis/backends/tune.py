"""``--backend auto`` on the CPU: the faster of PyTorch and ONNX Runtime for these weights on this machine.

Which backend is faster depends on the CPU, not only on the model: on a 2-core AVX2 EPYC ONNX Runtime ran
V1 1.25x faster than eager PyTorch, on a 2-core AVX-512 EPYC it ran V1 at 0.98x (docs/performance.md). So
the first ``auto`` load of a weights file that has a checked ONNX export times both on ~2 s of the bundled
speech and remembers the winner in ``$VOCODER_CACHE_DIR/backend-choice.json``, keyed by the weights'
sha256, the CPU model, the thread count and the torch and ONNX Runtime versions; later loads read it.

A timing taken while other programs load the CPU says little about an idle machine (one noisy sample once
picked ONNX at 1.88 s vs 5.89 s where the two are equal when idle). So the timing is robust by design:
one warm-up each, then :data:`ROUNDS` interleaved rounds in alternating order, the best (minimum) time per
backend (load only ever adds time); ONNX must beat torch by :data:`ONNX_MARGIN` to be chosen (torch is the
engine with every feature, so a tie goes to it); and the CPU time other processes used during the timing is
read from ``/proc/stat``: a choice made while they used more than :data:`BUSY_SHARE` of the machine is kept
for that run only and timed again on the next load, until one is made on a quiet machine or
:data:`MAX_LOADED_TRIES` loaded timings agree to stop trying (then the least loaded one stands).
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

CHOICE_FILE = "backend-choice.json"
PREFERRED = "torch"
ONNX_MARGIN = 1.10  # another backend must be this many times faster than torch to be chosen
ROUNDS = 5
BUSY_SHARE = 0.25  # other processes' share of all CPU time during the timing above which it is "under load"
MAX_LOADED_TRIES = 3


@dataclass(frozen=True)
class BackendChoice:
    backend: str  # torch | onnx
    seconds: dict[str, float]  # best (minimum) wall seconds per backend on the probe
    audio_seconds: float  # length of the probe
    others_busy: float | None = None  # share of the machine's CPU time other processes used (0..1); None: unknown
    tries: int = 1  # timings made so far for this key (only loaded ones are repeated)

    @property
    def under_load(self) -> bool:
        return self.others_busy is not None and self.others_busy > BUSY_SHARE

    @property
    def settled(self) -> bool:
        """Whether later loads should use this choice without timing again."""
        return not self.under_load or self.tries >= MAX_LOADED_TRIES


def pick(seconds: dict[str, float], preferred: str = PREFERRED, margin: float = ONNX_MARGIN) -> str:
    """The backend to use given wall seconds per backend: the fastest, unless ``preferred`` is within
    ``margin`` of it (a near tie is noise; the preferred engine wins it)."""
    fastest = min(seconds, key=lambda name: seconds[name])
    if preferred in seconds and seconds[preferred] < margin * seconds[fastest]:
        return preferred
    return fastest


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


def time_backends(models: dict[str, nn.Module], mel: torch.Tensor, repeats: int = ROUNDS) -> dict[str, float]:
    """Best wall seconds of each model on ``mel`` [1, n_mels, frames]: one warm-up each, then ``repeats``
    interleaved rounds, the order reversed every other round (a change in machine load hits every candidate
    alike), and the minimum per model (load only ever adds time)."""
    times: dict[str, list[float]] = {name: [] for name in models}
    order = list(models)
    with torch.inference_mode():
        for model in models.values():
            model(mel)
        for round_index in range(repeats):
            for name in order if round_index % 2 == 0 else order[::-1]:
                start = time.perf_counter()
                models[name](mel)
                times[name].append(time.perf_counter() - start)
    return {name: min(t) for name, t in times.items()}


def _cpu_busy_seconds() -> float | None:
    """CPU seconds all processes have used since boot (/proc/stat, every core), or None where unknown."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if fields[0] != "cpu":
        return None
    ticks = [int(v) for v in fields[1:9]]  # user nice system idle iowait irq softirq steal
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


class LoadMeter:
    """The share of the machine's CPU time that other processes used between ``start()`` and ``stop()``
    (this process's own threads excluded), or None where /proc/stat is missing."""

    def start(self) -> None:
        self.busy, self.own, self.wall = _cpu_busy_seconds(), _own_cpu_seconds(), time.perf_counter()

    def stop(self) -> float | None:
        busy, own, wall = _cpu_busy_seconds(), _own_cpu_seconds(), time.perf_counter()
        if busy is None or self.busy is None:
            return None
        capacity = (wall - self.wall) * (os.cpu_count() or 1)
        others = (busy - self.busy) - (own - self.own)
        return min(1.0, max(0.0, others / capacity)) if capacity > 0 else None


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


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


def _stored(key: str, path: Path) -> BackendChoice | None:
    known = _read(path).get(key)
    if not isinstance(known, dict) or known.get("backend") not in ("torch", "onnx"):
        return None
    try:
        return BackendChoice(**known)
    except TypeError:  # written by an older version: time again
        return None


def remembered_backend(key: str, cache: Path | None = None) -> str | None:
    """The backend stored under ``key`` by an earlier settled measurement (see the module notes), or None
    when there is none or the stored one was made under load and should be timed again."""
    stored = _stored(key, cache or choice_path())
    return stored.backend if stored is not None and stored.settled else None


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
    :func:`pick` one, store it under ``key`` (atomically, beside other keys) and say so (``notify``, None for
    quiet). A choice made under load replaces a stored one only if it was made under less load.
    ``hop_seconds``: audio per frame."""
    path = cache or choice_path()
    mel = probe()
    meter = LoadMeter()
    meter.start()
    seconds = time_backends(models, mel)
    busy = meter.stop()
    before = _stored(key, path)
    choice = BackendChoice(pick(seconds), seconds, mel.shape[-1] * hop_seconds, busy,
                           tries=1 if before is None else before.tries + 1)
    kept = choice
    if before is not None and choice.under_load and _busier(choice, before):
        kept = BackendChoice(before.backend, before.seconds, before.audio_seconds, before.others_busy, choice.tries)
    data = _read(path)
    data[key] = asdict(kept)
    _write(path, data)
    if notify is not None:
        timings = ", ".join(f"{name} {s:.2f} s" for name, s in sorted(seconds.items(), key=lambda kv: kv[1]))
        load = "" if busy is None else f"; other programs used {busy:.0%} of the CPU meanwhile"
        verdict = (f"using {choice.backend} for this run and timing again next time (the machine was busy)"
                   if not kept.settled else f"using {choice.backend} (remembered in {path})")
        notify(f"--backend auto: timed torch and onnx on this machine (best of {ROUNDS}: {timings} for "
               f"{choice.audio_seconds:.1f} s of speech{load}): {verdict}")
    return choice


def _busier(new: BackendChoice, old: BackendChoice) -> bool:
    return old.others_busy is not None and new.others_busy is not None and new.others_busy > old.others_busy
