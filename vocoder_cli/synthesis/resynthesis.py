"""Resynthesis jobs: plan (input -> output paths), load, vocode in batches, write atomically.

A bad input never stops the batch: it becomes a :class:`Failure` naming the file and the reason,
and everything else is still written. Output names, existing files and overlapping trees follow the
one rule of :mod:`vocoder_cli.outputs`. Used by `vocoder resynth` (and `vocoder report --weights`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vocoder_cli.audio import (
    AUDIO_EXTENSIONS,
    encode_wav,
    find_audio_files,
    read_audio,
    read_audio_bytes,
    resample,
    save_audio,
)
from vocoder_cli.errors import AudioError, MelMismatchError, VocoderError
from vocoder_cli.mel import check_mel_fits
from vocoder_cli.outputs import (
    REFUSE,
    SKIP,
    WRITE,
    OutputError,
    OutputPolicy,
    check_separate,
    claim_names,
    collision_reason,
    keep_extension,
)
from vocoder_cli.synthesis.engine import Synthesizer

MEL_EXTENSIONS = frozenset({".npy", ".pt"})
STDIO = "-"


@dataclass(frozen=True)
class Job:
    """One input and where its output goes (``"-"`` for stdin/stdout). ``problem``: refused before any
    work (its output name is another input's); ``renamed``: it keeps its source extension because another
    input has the same name."""

    source: str
    target: str
    problem: str | None = None
    renamed: bool = False

    @property
    def label(self) -> str:
        return "<stdin>" if self.source == STDIO else self.source


@dataclass(frozen=True)
class Failure:
    source: str
    reason: str


@dataclass(frozen=True)
class InputWarning:
    """Something wrong with an input that was still vocoded (e.g. samples above full scale)."""

    source: str
    reason: str


@dataclass
class Report:
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # outputs there already, kept (--skip-existing)
    refused: list[Failure] = field(default_factory=list)  # outputs there already, not replaced
    failures: list[Failure] = field(default_factory=list)
    warnings: list[InputWarning] = field(default_factory=list)
    renamed: list[Job] = field(default_factory=list)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0

    @property
    def real_time_factor(self) -> float | None:
        """Wall time over audio time (below 1 is faster than real time); None when nothing was vocoded."""
        return self.wall_seconds / self.audio_seconds if self.audio_seconds else None


class ItemProgress:
    """Items done, for a progress bar: ``part(key, fraction)`` as a long item advances (its chunks), ``done``
    when an item is finished (written, skipped, refused or failed). ``on_progress`` gets the absolute count
    (finished items plus the shares of those in progress), so the bar ends exactly at the number of items."""

    def __init__(self, on_progress: Callable[[float], None] | None = None) -> None:
        self.on_progress = on_progress
        self.finished = 0
        self.partial: dict[int, float] = {}

    def part(self, key: int, fraction: float) -> None:
        self.partial[key] = fraction
        self._tell()

    def done(self, key: int) -> None:
        self.partial.pop(key, None)
        self.finished += 1
        self._tell()

    def _tell(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.finished + sum(self.partial.values()))


def _safe_relative(path: Path) -> Path:
    """A relative path that cannot escape the output folder."""
    if path.is_absolute() or ".." in path.parts:
        return Path(path.name)
    return path


def plan_jobs(
    inputs: Sequence[str],
    output: str,
    *,
    from_mels: bool = False,
    out_ext: str = ".wav",
    policy: OutputPolicy | None = None,
    single_exts: frozenset[str] = AUDIO_EXTENSIONS,
) -> list[Job]:
    """Map each input (file, folder, or ``-``) to an output path mirroring relative names.

    ``output`` is a folder (created), a single file (only with one input file), or ``-`` (stdout,
    only with one input; a file is told from a folder by a suffix in ``single_exts``). Folder inputs are searched recursively. Raises :class:`OutputError` before any
    work when inputs and output overlap, or when a single output file exists and ``policy`` refuses it;
    inputs whose output names collide keep their source extension, or are refused (``Job.problem``).
    """
    exts = MEL_EXTENSIONS if from_mels else AUDIO_EXTENSIONS
    policy = policy or OutputPolicy()
    single_file_out = output == STDIO or (
        not Path(output).is_dir() and Path(output).suffix.lower() in single_exts
    )
    if not single_file_out and Path(output).exists() and not Path(output).is_dir():
        kind = "an audio file" if single_exts == AUDIO_EXTENSIONS else f"a {'/'.join(sorted(single_exts))} file"
        raise OutputError(f"{output}: exists and is not a folder (give a folder, or {kind} name for one input)")
    check_separate(inputs, output, output_is_folder=not single_file_out)
    pairs: list[tuple[str, Path]] = []
    for item in inputs:
        if item == STDIO:
            pairs.append((STDIO, Path("stdin")))
            continue
        path = Path(item)
        if path.is_dir():
            found = find_audio_files(path, exts)
            if not found:
                raise VocoderError(f"{path}: no {'/'.join(sorted(exts))} files found in this folder")
            pairs.extend((str(f), f.relative_to(path)) for f in found)
        else:
            pairs.append((str(path), _safe_relative(path if len(inputs) > 1 else Path(path.name))))
    if single_file_out:
        if len(pairs) != 1:
            raise VocoderError(f"{len(pairs)} inputs cannot go to the single output {output!r}: give a folder")
        policy.check_single([output])
        return [Job(pairs[0][0], output)]
    out_dir = Path(output)
    natural = [rel.with_suffix(out_ext) for _, rel in pairs]
    claims = claim_names(natural, [keep_extension(rel, out_ext) for _, rel in pairs])
    jobs = []
    for (source, _), wanted, claim in zip(pairs, natural, claims):
        if claim.name is None:
            assert claim.clash is not None
            other = claims[claim.clash].name
            reason = collision_reason(out_dir / wanted, out_dir / str(other), pairs[claim.clash][0])
            jobs.append(Job(source, str(out_dir / wanted), problem=reason))
        else:
            jobs.append(Job(source, str(out_dir / claim.name), renamed=claim.renamed))
    return jobs


def read_file_list(lines: Iterable[str]) -> list[str]:
    """Paths from a --files-from list: one a line, blank lines and # comments ignored."""
    return [s for line in lines if (s := line.strip()) and not s.startswith("#")]


def load_mel_file(path: str) -> torch.Tensor:
    """A mel from .npy (no pickles) or .pt (weights_only) as float32 [n_mels, frames]."""
    try:
        if path.endswith(".npy"):
            mel = torch.from_numpy(np.load(path, allow_pickle=False))
        else:
            mel = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 (any reader error is a per-file failure)
        raise AudioError(path, f"cannot read mel ({exc.__class__.__name__}: {exc})") from exc
    if not isinstance(mel, torch.Tensor):
        raise AudioError(path, f"expected a tensor, found {type(mel).__name__}")
    mel = mel.float()
    if mel.dim() == 3 and mel.shape[0] == 1:
        mel = mel[0]
    return mel


@dataclass
class ResynthOptions:
    from_mels: bool = False
    out_sr: int | None = None
    policy: OutputPolicy = field(default_factory=OutputPolicy)  # outputs that exist: refuse, overwrite, skip
    subtype: str = "PCM_16"
    group_size: int = 32  # files loaded at once (bounds memory; batches form inside a group)


def settled(policy: OutputPolicy, job: Job, report: Report) -> bool:
    """Record a job that must not be written (its output exists: kept or refused by ``policy``); True when
    so. Asked again just before writing, so a file that appeared during the run is not replaced."""
    decision = policy.decide([job.target])
    if decision.action == WRITE:
        return False
    if decision.action == SKIP:
        report.skipped.append(job.source)
    else:
        assert decision.action == REFUSE
        report.refused.append(Failure(job.label, decision.reason or job.target))
    return True


class Resynthesizer:
    """Runs jobs through a :class:`Synthesizer`, reporting progress through a callback."""

    def __init__(self, synth: Synthesizer, options: ResynthOptions, stdin: bytes | None = None) -> None:
        self.synth = synth
        self.options = options
        self.stdin = stdin
        self.sr = synth.vocoder.mel.sample_rate

    def _mel_for(self, job: Job) -> tuple[torch.Tensor, tuple[str, ...]]:
        """The job's log-mel [n_mels, frames] and the input's warnings."""
        if self.options.from_mels:
            mel = load_mel_file(job.source)
            try:
                check_mel_fits(mel, self.synth.vocoder.mel, name=job.source)
            except MelMismatchError as exc:
                raise AudioError(job.source, str(exc).split(": ", 1)[-1]) from None
            return mel, ()
        if job.source == STDIO:
            loaded = read_audio_bytes(self.stdin or b"", self.sr)
        else:
            loaded = read_audio(job.source, self.sr)
        wav = loaded.wav
        try:
            return self.synth.mel(wav), loaded.warnings
        except ValueError as exc:
            raise AudioError(job.label, f"too short ({wav.size} samples at {self.sr} Hz): {exc}") from None

    def _write(self, job: Job, wav: np.ndarray) -> bytes | None:
        out_sr = self.options.out_sr or self.sr
        wav = resample(wav, self.sr, out_sr)
        if job.target == STDIO:
            return encode_wav(wav, out_sr, self.options.subtype)
        save_audio(job.target, wav, out_sr, self.options.subtype)
        return None

    def run(
        self,
        jobs: Sequence[Job],
        on_done: Callable[[Job], None] | None = None,
        on_progress: Callable[[float], None] | None = None,
    ) -> tuple[Report, bytes | None]:
        """Process every job; returns the report and, for a stdout job, the encoded WAV.

        Outputs are written batch by batch as the vocoder finishes them. ``on_done(job)`` follows each job
        whatever its outcome; ``on_progress(completed)`` gives the items done so far for a bar (with
        fractions while a long input is vocoded in chunks)."""
        report = Report()
        stdout_payload = None
        start = time.perf_counter()
        progress = ItemProgress(on_progress)

        def finished(job: Job) -> None:
            progress.done(id(job))
            if on_done:
                on_done(job)

        todo = []
        for job in jobs:
            if job.problem is not None:
                report.failures.append(Failure(job.label, job.problem))
                finished(job)
                continue
            if job.renamed:
                report.renamed.append(job)
            if self._settled(job, report):
                finished(job)
            else:
                todo.append(job)
        for first in range(0, len(todo), self.options.group_size):
            group = todo[first : first + self.options.group_size]
            ready: list[tuple[Job, torch.Tensor]] = []
            for job in group:
                try:
                    mel, warnings = self._mel_for(job)
                except VocoderError as exc:
                    report.failures.append(Failure(job.label, getattr(exc, "reason", str(exc))))
                    finished(job)
                else:
                    ready.append((job, mel))
                    report.warnings.extend(InputWarning(job.label, w) for w in warnings)

            def chunk_done(i: int, fraction: float, ready: list[tuple[Job, torch.Tensor]] = ready) -> None:
                progress.part(id(ready[i][0]), fraction)

            for indices, wavs in self.synth.each_batch([mel for _, mel in ready], on_chunk=chunk_done):
                for i, wav in zip(indices, wavs):
                    job = ready[i][0]
                    if not self._settled(job, report):
                        stdout_payload = self._write_one(job, wav, report) or stdout_payload
                    finished(job)
        report.wall_seconds = time.perf_counter() - start
        return report, stdout_payload

    def _settled(self, job: Job, report: Report) -> bool:
        return settled(self.options.policy, job, report)

    def _write_one(self, job: Job, wav: np.ndarray, report: Report) -> bytes | None:
        try:
            payload = self._write(job, wav)
        except (OSError, RuntimeError) as exc:
            report.failures.append(Failure(job.label, f"cannot write {job.target}: {exc}"))
            return None
        report.written.append(job.target)
        report.audio_seconds += wav.size / self.sr
        return payload
