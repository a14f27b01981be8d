"""``resynthesize()``: files or folders in, vocoded audio out under the same relative names (`vocoder resynth`).

Same rules as the command: every input is planned before any work (overlapping trees, an existing
single output), a bad input becomes a failure row and the batch goes on, outputs are written atomically
and never replace a file unless ``overwrite``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vocoder_cli.api.notes import Notify, log_notice
from vocoder_cli.api.vocoder import Vocoder, load
from vocoder_cli.audio import output_problem
from vocoder_cli.errors import AudioError
from vocoder_cli.outputs import OutputPolicy
from vocoder_cli.shards import Shard, file_size, take_shard
from vocoder_cli.synthesis.resynthesis import STDIO, Job, Report, Resynthesizer, ResynthOptions, plan_jobs


@dataclass
class ResynthResult(Report):
    """What a run did. From :class:`~vocoder_cli.synthesis.resynthesis.Report`: ``written`` (output paths),
    ``skipped`` (inputs whose output was kept), ``refused`` and ``failures`` (rows with ``source`` and
    ``reason``), ``warnings``, ``renamed``, ``audio_seconds``, ``wall_seconds``, ``real_time_factor``.
    Here also: the ``vocoder`` used and ``stdout`` (the WAV bytes when the output was ``"-"``)."""

    vocoder: Vocoder | None = None
    stdout: bytes | None = None

    @property
    def ok(self) -> bool:
        """Nothing failed or was refused (the command's exit code 0)."""
        return not self.failures and not self.refused


def resynthesize(
    inputs: str | Path | Sequence[str | Path],
    output: str | Path,
    *,
    weights: str | Path | Vocoder | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    backend: str = "auto",
    from_mels: bool = False,
    out_sr: int | None = None,
    skip_existing: bool = False,
    overwrite: bool = False,
    float_output: bool = False,
    batch_size: int = 8,
    chunk_frames: int = 2048,
    offline: bool | None = None,
    notify: Notify | None = log_notice,
    stdin: bytes | None = None,
    on_progress: Callable[[float, int], None] | None = None,
    shard: Shard | None = None,
    on_shard: Callable[[int, list[Job]], None] | None = None,
) -> ResynthResult:
    """Vocode audio files (or ``.npy``/``.pt`` log-mels with ``from_mels``) through the mel frontend and a
    vocoder.

    ``inputs``: files and folders (searched recursively); ``output``: a folder (mirrors the inputs'
    relative paths as WAV), one audio file for one input, or ``"-"`` (the WAV bytes come back in
    ``result.stdout``; ``stdin`` gives the bytes of a ``"-"`` input). ``weights``: a name, a path, None
    (the default weights) or a loaded :class:`Vocoder` (then device, precision, backend, batch_size,
    chunk_frames, offline and notify are its own). ``out_sr``: resample the output (Hz); ``float_output``:
    32-bit float samples instead of 16-bit PCM. Existing outputs are refused unless ``skip_existing`` (keep
    them) or ``overwrite`` (replace them). ``on_progress(done, total)``: items done so far (fractions while a
    long input is vocoded in chunks).

    ``shard``: do only this shard's part of the planned list (:mod:`vocoder_cli.shards`: sorted by output
    path, dealt longest input first); ``on_shard(total, mine)`` hears the planned count and this shard's
    jobs before any weights are loaded (with none, nothing is loaded and the result is empty).

    Raises (before any audio is written) for usage problems: overlapping trees, a single output that
    exists, an output format that cannot hold the audio, unusable weights. Per-file problems are rows of
    the result instead; ``result.ok`` is False when there are any."""
    names = [str(inputs)] if isinstance(inputs, (str, Path)) else [str(i) for i in inputs]
    policy = OutputPolicy.from_flags(overwrite, skip_existing)
    jobs = plan_jobs(names, str(output), from_mels=from_mels, policy=policy)
    if shard is not None and shard.sharded:
        total, jobs = len(jobs), take_shard(jobs, shard, key=lambda job: job.target, size=lambda job: file_size(job.source))
        if on_shard is not None:
            on_shard(total, jobs)
        if not jobs:
            return ResynthResult()
    vocoder = weights if isinstance(weights, Vocoder) else load(
        weights, device, precision, backend, offline=offline, notify=notify, batch_size=batch_size,
        chunk_frames=chunk_frames,
    )  # fmt: skip
    subtype = "FLOAT" if float_output else "PCM_16"
    rate = out_sr or vocoder.sample_rate
    for target in dict.fromkeys(job.target for job in jobs if job.target != STDIO):  # checked before work
        if (problem := output_problem(target, rate, subtype)) is not None:
            raise AudioError(target, problem)
    runner = Resynthesizer(
        vocoder.engine, ResynthOptions(from_mels=from_mels, out_sr=out_sr, policy=policy, subtype=subtype), stdin=stdin
    )
    total = len(jobs)
    progress = None if on_progress is None else (lambda done: on_progress(done, total))
    report, payload = runner.run(jobs, on_progress=progress)
    return ResynthResult(**vars(report), vocoder=vocoder, stdout=payload)
