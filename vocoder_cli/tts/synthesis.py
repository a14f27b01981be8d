"""TTS jobs: text -> acoustic model -> (framing bridge) -> vocoder -> audio, in batches, never losing work.

A bad item never stops the batch: it becomes a :class:`Problem` (a failure: nothing written for it) or a
warning (written, but the user should know: characters dropped, text split). Outputs are written
atomically, batch by batch as the vocoder finishes them; ``--save-mels`` writes each mel exactly as the
vocoder received it, so ``vocoder resynth --from-mels`` on that file gives the same audio. Output names,
existing files and overlapping trees follow :mod:`vocoder_cli.outputs`. Each stage is timed for the summary.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vocoder_cli.audio import (
    AUDIO_EXTENSIONS,
    atomic_write_bytes,
    encode_wav,
    resample,
    save_audio,
)
from vocoder_cli.errors import MelMismatchError, VocoderError
from vocoder_cli.mel import check_mel_fits
from vocoder_cli.outputs import (
    REFUSE,
    SKIP,
    WRITE,
    OutputPolicy,
    check_separate,
    claim_names,
    collision_reason,
)
from vocoder_cli.synthesis.engine import Synthesizer
from vocoder_cli.synthesis.resynthesis import ItemProgress
from vocoder_cli.tts.base import AcousticModel, AcousticOutput
from vocoder_cli.tts.mels import MelBridge
from vocoder_cli.tts.texts import TextItem, split_text

STDIO = "-"
STAGES = ("acoustic", "vocoder", "write")


@dataclass(frozen=True)
class TtsJob:
    item: TextItem
    target: str  # a .wav path, or "-" for stdout
    mel_target: str | None = None  # a .npy path with --save-mels

    @property
    def label(self) -> str:
        return self.item.id

    @property
    def targets(self) -> list[str]:
        """Every file this job writes (the audio, and the mel with --save-mels)."""
        return [self.target] if self.mel_target is None else [self.target, self.mel_target]


@dataclass(frozen=True)
class Problem:
    id: str
    source: str
    reason: str


@dataclass
class TtsReport:
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # outputs there already, kept (--skip-existing)
    refused: list[Problem] = field(default_factory=list)  # outputs there already, not replaced
    failures: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))

    def real_time_factor(self, stage: str | None = None) -> float | None:
        """Seconds of work per second of audio (below 1: faster than real time); the whole run by default.
        None when nothing was vocoded."""
        spent = self.wall_seconds if stage is None else self.stage_seconds[stage]
        return spent / self.audio_seconds if self.audio_seconds else None


@dataclass(frozen=True)
class TtsOptions:
    too_long: str = "split"  # split | refuse: a text over the model's max_chars
    strict: bool = False  # refuse texts with characters the model cannot read (default: drop them, warn)
    policy: OutputPolicy = OutputPolicy()  # outputs that exist: refuse, overwrite or skip
    batch_size: int = 8  # utterances per acoustic-model call (the vocoder batches on its own)
    group_size: int = 8  # items in memory at once (progress advances group by group)
    pause_seconds: float = 0.15  # silence between the pieces of a split text
    out_sr: int | None = None
    subtype: str = "PCM_16"


def plan_jobs(
    items: Sequence[TextItem],
    output: str,
    *,
    batch: bool,
    save_mels: bool = False,
    policy: OutputPolicy | None = None,
    input_dirs: Sequence[str | Path] = (),
) -> list[TtsJob]:
    """Where each item's audio (and mel) goes: one file or stdout for a single text, ``OUT/<id>.wav`` for a batch.

    Raises :class:`~vocoder_cli.outputs.OutputError` before any work when a single output file exists and
    ``policy`` refuses it, or when ``OUT`` and a folder of texts (``input_dirs``) overlap. In a batch, an id
    whose files would be another id's on macOS or Windows (``LJ001`` and ``lj001``) becomes a failed item.
    """
    policy = policy or OutputPolicy()
    if not batch:
        if len(items) != 1:
            raise VocoderError(f"{len(items)} texts cannot go to one output; use --dir or --texts with a folder")
        if output == STDIO:
            if save_mels:
                raise VocoderError("--save-mels writes a .npy beside the audio: give -o FILE.wav, not stdout")
            return [TtsJob(items[0], STDIO)]
        path = Path(output)
        if path.is_dir() or path.suffix.lower() not in AUDIO_EXTENSIONS:
            raise VocoderError(f"{output}: give an audio file name such as out.wav (or - for stdout)")
        job = TtsJob(items[0], output, str(path.with_suffix(".npy")) if save_mels else None)
        policy.check_single(job.targets)
        return [job]
    if output == STDIO:
        raise VocoderError("many texts cannot go to stdout: give an output folder")
    folder = Path(output)
    if folder.exists() and not folder.is_dir():
        raise VocoderError(f"{output}: not a folder (many texts need an output folder)")
    check_separate(input_dirs, folder)
    named = [item for item in items if item.error is None]  # an item already failed writes nothing
    claims = dict(zip((id(item) for item in named), claim_names([Path(f"{item.id}.wav") for item in named])))
    jobs = []
    for item in items:
        claim = claims.get(id(item))
        if claim is not None and claim.name is None:
            assert claim.clash is not None
            first = named[claim.clash]
            reason = collision_reason(
                folder / f"{item.id}.wav", folder / f"{first.id}.wav", f"id {first.id!r}", "give one of them another id"
            )
            item = TextItem(item.id, None, item.source, reason)
        jobs.append(
            TtsJob(item, str(folder / f"{item.id}.wav"), str(folder / f"{item.id}.npy") if save_mels else None)
        )
    return jobs


@dataclass
class _Prepared:
    job: TtsJob
    pieces: list[str]
    outputs: list[AcousticOutput | None] = field(default_factory=list)
    failed: str | None = None


class TtsRunner:
    """Runs jobs through an acoustic model, the mel bridge and a :class:`Synthesizer`."""

    def __init__(self, acoustic: AcousticModel, synth: Synthesizer, bridge: MelBridge, options: TtsOptions) -> None:
        self.acoustic = acoustic
        self.synth = synth
        self.bridge = bridge
        self.options = options
        self.sr = synth.vocoder.mel.sample_rate

    # -- stage 1: text -> pieces ----------------------------------------------------------------

    def _prepare(self, job: TtsJob, report: TtsReport) -> _Prepared:
        item = job.item
        if item.error is not None:
            raise _Fail(item.error)
        text = item.text or ""
        if not text:
            raise _Fail("empty text")
        if not text.strip():
            raise _Fail("whitespace-only text")
        prepared = self.acoustic.prepare(text)
        name = self.acoustic.name
        if prepared.dropped:
            chars = " ".join(repr(c) for c in prepared.dropped)
            if self.options.strict:
                raise _Fail(f"{name} cannot read {chars} (--strict refuses such texts)")
            report.warnings.append(Problem(item.id, item.source, f"{name} cannot read {chars}: dropped them"))
        for note in prepared.notes:
            report.warnings.append(Problem(item.id, item.source, note))
        limit = self.acoustic.max_chars
        pieces = [prepared.text]
        if len(prepared.text) > limit:
            if self.options.too_long == "refuse":
                raise _Fail(
                    f"text is {len(prepared.text)} characters; {name} speaks at most {limit} in one utterance "
                    "(--too-long split cuts it at sentence boundaries)"
                )
            pieces = split_text(prepared.text, limit)
            report.warnings.append(
                Problem(
                    item.id,
                    item.source,
                    f"{len(prepared.text)} characters > {name}'s {limit} per utterance: split at sentence "
                    f"boundaries into {len(pieces)} utterances, joined with {self.options.pause_seconds:g} s pauses",
                )
            )
        return _Prepared(job, pieces, [None] * len(pieces))

    # -- stage 2: pieces -> mels ------------------------------------------------------------------

    def _infer(self, ready: list[_Prepared]) -> None:
        """Every piece of every prepared item through the model, in length-sorted batches."""
        order = sorted(
            ((i, k) for i, p in enumerate(ready) for k in range(len(p.pieces))),
            key=lambda ik: len(ready[ik[0]].pieces[ik[1]]),
        )
        size = self.options.batch_size
        for start in range(0, len(order), size):
            batch = [ik for ik in order[start : start + size] if ready[ik[0]].failed is None]
            if not batch:
                continue
            try:
                outs = self.acoustic.infer([ready[i].pieces[k] for i, k in batch])
            except (VocoderError, RuntimeError, ValueError):
                outs = None
            if outs is not None and len(outs) == len(batch):
                for (i, k), out in zip(batch, outs):
                    ready[i].outputs[k] = out
                continue
            for i, k in batch:  # isolate the item that failed: one by one
                try:
                    ready[i].outputs[k] = self.acoustic.infer([ready[i].pieces[k]])[0]
                except (VocoderError, RuntimeError, ValueError) as exc:
                    ready[i].failed = f"{self.acoustic.name} failed: {getattr(exc, 'reason', None) or exc}"

    def _join(self, prepared: _Prepared) -> torch.Tensor:
        """The item's vocoder-ready mel: pieces joined by pauses, bridged to the vocoder's framing."""
        outputs = [o for o in prepared.outputs if o is not None]
        cfg = self.acoustic.mel_config
        cut = [o for o in outputs if o.reached_max_length]
        if cut:
            frames = max(o.mel.shape[-1] for o in cut)
            raise _Fail(
                f"the decoder never predicted the end of speech and was stopped by its max-length guard "
                f"({frames} frames = {frames * cfg.hop_length / cfg.sample_rate:.1f} s); nothing written "
                "(unusual or very long text: try splitting it)"
            )
        pause = torch.full(
            (cfg.n_mels, round(self.options.pause_seconds * cfg.sample_rate / cfg.hop_length)), cfg.silence_level
        )
        parts: list[torch.Tensor] = []
        for out in outputs:
            parts.extend([pause, out.mel] if parts else [out.mel])
        mel = self.bridge.to_vocoder(torch.cat(parts, dim=-1).float())
        try:
            check_mel_fits(mel, self.synth.vocoder.mel, name=self.acoustic.name)
        except MelMismatchError as exc:
            raise _Fail(f"unusable mel from the acoustic model: {exc}") from None
        return mel

    # -- stage 3: write -------------------------------------------------------------------------

    def _write(self, job: TtsJob, wav: np.ndarray, mel: torch.Tensor) -> bytes | None:
        out_sr = self.options.out_sr or self.sr
        wav = resample(wav, self.sr, out_sr)
        if job.mel_target is not None:
            buf = io.BytesIO()
            np.save(buf, mel.cpu().numpy().astype(np.float32), allow_pickle=False)
            atomic_write_bytes(job.mel_target, buf.getvalue())
        if job.target == STDIO:
            return encode_wav(wav, out_sr, self.options.subtype)
        save_audio(job.target, wav, out_sr, self.options.subtype)
        return None

    def run(
        self,
        jobs: Sequence[TtsJob],
        on_done: Callable[[TtsJob], None] | None = None,
        on_progress: Callable[[float], None] | None = None,
    ) -> tuple[TtsReport, bytes | None]:
        """Process every job; returns the report and, for a stdout job, the encoded WAV.

        ``on_done(job)`` follows each job whatever its outcome; ``on_progress(completed)`` gives the items
        done so far for a bar, moving as each is written (with fractions while a long one is vocoded in chunks)."""
        report = TtsReport()
        payload = None
        start = time.perf_counter()
        progress = ItemProgress(on_progress)

        def done(job: TtsJob) -> None:
            progress.done(id(job))
            if on_done:
                on_done(job)

        todo = []
        for job in jobs:
            if job.item.error is None and self._settled(job, report):
                done(job)
            else:
                todo.append(job)
        for first in range(0, len(todo), self.options.group_size):
            group = todo[first : first + self.options.group_size]
            payload = self._run_group(group, report, done, progress) or payload
        report.wall_seconds = time.perf_counter() - start
        return report, payload

    def _settled(self, job: TtsJob, report: TtsReport) -> bool:
        """Record a job whose outputs exist (kept or refused by the policy); True when it must not be
        written. Asked again just before writing, so a file that appeared during the run is kept too."""
        decision = self.options.policy.decide(job.targets)
        if decision.action == WRITE:
            return False
        if decision.action == SKIP:
            report.skipped.append(job.target)
        else:
            assert decision.action == REFUSE
            report.refused.append(Problem(job.item.id, job.item.source, decision.reason or job.target))
        return True

    def _run_group(
        self,
        group: Sequence[TtsJob],
        report: TtsReport,
        done: Callable[[TtsJob], None],
        progress: ItemProgress,
    ) -> bytes | None:
        t0 = time.perf_counter()
        ready: list[_Prepared] = []
        for job in group:
            try:
                prepared = self._prepare(job, report)
            except (_Fail, VocoderError) as exc:
                report.failures.append(Problem(job.item.id, job.item.source, _reason(exc)))
                done(job)
            else:
                ready.append(prepared)
        self._infer(ready)
        mels: list[tuple[TtsJob, torch.Tensor]] = []
        for prepared in ready:
            job = prepared.job
            try:
                if prepared.failed:
                    raise _Fail(prepared.failed)
                mels.append((job, self._join(prepared)))
            except _Fail as exc:
                report.failures.append(Problem(job.item.id, job.item.source, exc.reason))
                done(job)
        t1 = time.perf_counter()
        report.stage_seconds["acoustic"] += t1 - t0
        payload = None

        def chunk_done(i: int, fraction: float) -> None:
            progress.part(id(mels[i][0]), fraction)

        batches = self.synth.each_batch([mel for _, mel in mels], on_chunk=chunk_done)
        while True:
            t2 = time.perf_counter()
            batch = next(batches, None)
            t3 = time.perf_counter()
            report.stage_seconds["vocoder"] += t3 - t2
            if batch is None:
                break
            for i, wav in zip(*batch):
                job, mel = mels[i]
                if not self._settled(job, report):
                    payload = self._write_one(job, wav, mel, report) or payload
                done(job)
            report.stage_seconds["write"] += time.perf_counter() - t3
        return payload

    def _write_one(self, job: TtsJob, wav: np.ndarray, mel: torch.Tensor, report: TtsReport) -> bytes | None:
        try:
            out = self._write(job, wav, mel)
        except (OSError, RuntimeError, ValueError) as exc:
            report.failures.append(Problem(job.item.id, job.item.source, f"cannot write {job.target}: {exc}"))
            return None
        report.written.append(job.target)
        report.audio_seconds += wav.size / self.sr
        return out


class _Fail(Exception):
    """One item's failure (internal: becomes a Problem)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _reason(exc: Exception) -> str:
    return getattr(exc, "reason", None) or str(exc)
