"""How long a scoring run will take, said before it starts when that is long (CREPE pitch on a CPU turns
minutes into hours): from the total audio seconds (file headers only) and each metric's measured cost."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vocoder_cli.metrics.base import Metric
from vocoder_cli.metrics.pairing import Pair
from vocoder_cli.metrics.registry import CPU_COST, LONG_WORK_SECONDS


def audio_seconds(pairs: Sequence[Pair]) -> float:
    """Seconds of generated audio over ``pairs``, from the file headers (a file whose header cannot be
    read counts 0: scoring reports it)."""
    import soundfile as sf

    total = 0.0
    for pair in pairs:
        if pair.gen is None:
            continue
        try:
            info = sf.info(str(pair.gen))
        except (RuntimeError, OSError, ValueError, TypeError):  # LibsndfileError is a RuntimeError
            continue
        if info.samplerate > 0 and info.frames > 0:
            total += info.frames / info.samplerate
    return total


@dataclass(frozen=True)
class Estimate:
    metric: str
    seconds: float  # wall-clock estimate on this machine's CPU
    cost: float  # seconds per second of audio (registry.CPU_COST)
    audio: float  # seconds of audio it scores


def estimate(work: Sequence[tuple[Metric, float]], workers: int, device: str) -> list[Estimate]:
    """Each (metric, seconds of audio it scores)'s expected wall time: CPU metrics share ``workers``
    processes; neural metrics run in one process (on CUDA they are not estimated: a GPU takes seconds)."""
    out = []
    for metric, audio in work:
        cost = CPU_COST.get(metric.name)
        if cost is None or (metric.neural and device != "cpu"):
            continue
        share = 1 if metric.neural else max(1, workers)
        out.append(Estimate(metric.name, cost * audio / share, cost, audio))
    return out


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def long_work_note(work: Sequence[tuple[Metric, float]], workers: int, device: str) -> str | None:
    """One line naming the metrics that make a run long (each over LONG_WORK_SECONDS), the estimate, and
    the ``-m`` list that leaves them out; None when the whole run is expected to be short. ``work``: each
    chosen metric with the seconds of audio it will score."""
    estimates = estimate(work, workers, device)
    total = sum(e.seconds for e in estimates)
    slow = sorted((e for e in estimates if e.seconds >= LONG_WORK_SECONDS), key=lambda e: -e.seconds)
    if total < LONG_WORK_SECONDS or not slow:
        return None
    named = ", ".join(f"{e.metric} about {_duration(e.seconds)} ({e.cost:g} s per second of audio, "
                      f"{e.audio:.0f} s of audio)" for e in slow)
    rest = list(dict.fromkeys(m.name for m, _ in work if m.name not in {e.metric for e in slow}))
    them = "it" if len(slow) == 1 else "them"
    leave = f"to leave {them} out: -m {','.join(rest)}" if rest else "no other metric was asked for"
    return f"scoring will take about {_duration(total)} on this CPU: {named}; {leave}"
