"""Resynthesis jobs: plan (input -> output paths), load, vocode in batches, write atomically.

A bad input never stops the batch: it becomes a :class:`Failure` naming the file and the reason,
and everything else is still written. Used by `vocoder resynth`.
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
from vocoder_cli.inference import Synthesizer
from vocoder_cli.mel import check_mel_fits

MEL_EXTENSIONS = frozenset({".npy", ".pt"})
STDIO = "-"


@dataclass(frozen=True)
class Job:
    """One input and where its output goes (``"-"`` for stdin/stdout)."""

    source: str
    target: str

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
    skipped: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    warnings: list[InputWarning] = field(default_factory=list)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0

    @property
    def real_time_factor(self) -> float:
        """Wall time over audio time: below 1 is faster than real time."""
        return self.wall_seconds / self.audio_seconds if self.audio_seconds else float("nan")


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
) -> list[Job]:
    """Map each input (file, folder, or ``-``) to an output path mirroring relative names.

    ``output`` is a folder (created), a single file (only with one input file), or ``-`` (stdout,
    only with one input). Folder inputs are searched recursively.
    """
    exts = MEL_EXTENSIONS if from_mels else AUDIO_EXTENSIONS
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
    single_file_out = output == STDIO or (
        not Path(output).is_dir() and Path(output).suffix.lower() in AUDIO_EXTENSIONS
    )
    if single_file_out:
        if len(pairs) != 1:
            raise VocoderError(f"{len(pairs)} inputs cannot go to the single output {output!r}: give a folder")
        return [Job(pairs[0][0], output)]
    out_dir = Path(output)
    seen: dict[Path, str] = {}
    jobs = []
    for source, rel in pairs:
        target = out_dir / rel.with_suffix(out_ext)
        if target in seen:
            raise VocoderError(f"{source} and {seen[target]} would both be written to {target}")
        seen[target] = source
        jobs.append(Job(source, str(target)))
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
    skip_existing: bool = False
    subtype: str = "PCM_16"
    group_size: int = 32  # files loaded at once (bounds memory; batches form inside a group)


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
    ) -> tuple[Report, bytes | None]:
        """Process every job; returns the report and, for a stdout job, the encoded WAV."""
        report = Report()
        stdout_payload = None
        start = time.perf_counter()
        todo = []
        for job in jobs:
            if self.options.skip_existing and job.target != STDIO and Path(job.target).exists():
                report.skipped.append(job.source)
                if on_done:
                    on_done(job)
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
                    if on_done:
                        on_done(job)
                else:
                    ready.append((job, mel))
                    report.warnings.extend(InputWarning(job.label, w) for w in warnings)
            if not ready:
                continue
            wavs = self.synth.synthesize([mel for _, mel in ready])
            for (job, _), wav in zip(ready, wavs):
                try:
                    payload = self._write(job, wav)
                except (OSError, RuntimeError) as exc:
                    report.failures.append(Failure(job.label, f"cannot write {job.target}: {exc}"))
                else:
                    stdout_payload = payload if payload is not None else stdout_payload
                    report.written.append(job.target)
                    report.audio_seconds += wav.size / self.sr
                if on_done:
                    on_done(job)
        report.wall_seconds = time.perf_counter() - start
        return report, stdout_payload
