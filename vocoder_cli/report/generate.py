"""``--weights A,B``: the report resynthesises each reference set with each weights itself, through the
same engine as `vocoder resynth`, so one command compares vocoders."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vocoder_cli.errors import VocoderError
from vocoder_cli.synthesis.engine import Synthesizer
from vocoder_cli.synthesis.resynthesis import (
    Failure,
    Job,
    Resynthesizer,
    ResynthOptions,
    plan_jobs,
)
from vocoder_cli.synthesis.vocoder import load_vocoder


@dataclass(frozen=True)
class ResynthTask:
    """Vocode every audio file under ``ref`` into ``out`` (same relative names, WAV)."""

    ref: Path
    out: Path


def resynthesise(
    weights: str,
    tasks: Sequence[ResynthTask],
    *,
    device: str = "cpu",
    offline: bool | None = None,
    notify: Callable[[str], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    on_done: Callable[[Job], None] | None = None,
) -> list[Failure]:
    """Load ``weights`` once and run every task; bad inputs (and a folder without audio) come back as
    failures, the rest is written. Raises WeightsError when the weights cannot be loaded."""
    vocoder = load_vocoder(weights, device, offline=offline, notify=notify)
    runner = Resynthesizer(Synthesizer(vocoder, device), ResynthOptions())
    failures: list[Failure] = []
    jobs: list[Job] = []
    for task in tasks:
        try:
            jobs += plan_jobs([str(task.ref)], str(task.out))
        except VocoderError as exc:
            failures.append(Failure(str(task.ref), str(exc)))
    if on_start:
        on_start(len(jobs))
    report, _ = runner.run(jobs, on_done=on_done)
    return failures + report.failures
