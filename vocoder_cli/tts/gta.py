"""Teacher-forced (ground-truth-aligned, GTA) mels: recordings + transcripts -> an acoustic model's mels that
line up frame for frame with the recordings, for fine-tuning a vocoder on what the acoustic model produces
(``vocoder train --gta-mels``).

For each recording: its text (looked up by the file's stem) goes through the model's ``prepare``; the
recording's log-mel in the *model's* mel config is the decoder's input; the model returns a mel of exactly
that many frames; the framing bridge (:mod:`vocoder_cli.tts.mels`) turns it into the vocoder's framing; and it
must then have exactly the recording's ``samples // hop`` frames in the vocoder's config. Any other length is
an error naming the item, never trimmed. Items without a text, with an unreadable text, or with unusable
audio fail by name and the batch goes on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from vocoder_cli.errors import TextError
from vocoder_cli.mel import MelConfig, MelSpectrogram
from vocoder_cli.melfiles import MelExtractor, MelOptions
from vocoder_cli.synthesis.resynthesis import STDIO, InputWarning, Job, Report
from vocoder_cli.tts.base import AcousticModel, TeacherForced
from vocoder_cli.tts.mels import MelBridge
from vocoder_cli.tts.texts import TextItem


def text_key(job: Job) -> str:
    """The id a recording's text is found under: its file name without the extension."""
    name = job.source.replace("\\", "/").rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name else name


class GtaExtractor(MelExtractor):
    """:class:`MelExtractor` whose mels come from ``model.teacher_force`` instead of the frontend."""

    def __init__(
        self,
        model: AcousticModel,
        bridge: MelBridge,
        texts: Mapping[str, TextItem],
        cfg: MelConfig,
        device: str,
        options: MelOptions,
        strict: bool = False,
    ) -> None:
        super().__init__(cfg, device, options)
        if not isinstance(model, TeacherForced):
            from vocoder_cli.errors import ConfigError

            raise ConfigError(f"acoustic model {model.name!r} cannot run teacher-forced (it has no teacher_force)")
        self.model = model
        self.bridge = bridge
        self.texts = texts
        self.strict = strict
        self.model_frontend = MelSpectrogram(model.mel_config)

    def _text(self, job: Job, report: Report) -> str:
        """The prepared text for ``job``; raises TextError with the reason when there is none to use."""
        item = self.texts.get(text_key(job))
        if item is None:
            raise TextError(f"no transcript with the id {text_key(job)!r}")
        if item.error is not None or item.text is None:
            raise TextError(f"its transcript ({item.source}): {item.error}")
        prepared = self.model.prepare(item.text)
        if prepared.dropped:
            shown = " ".join(repr(c) for c in prepared.dropped)
            if self.strict:
                raise TextError(f"{self.model.name} cannot read {shown} (--strict)")
            report.warnings.append(InputWarning(job.label, f"{self.model.name} cannot read {shown}: dropped"))
        return prepared.text

    def compute(self, chunk: Sequence[tuple[Job, torch.Tensor]], report: Report) -> list[torch.Tensor | str]:
        """GTA mels [n_mels, samples // hop] in the vocoder's framing, or per item the reason it failed."""
        results: list[torch.Tensor | str] = [""] * len(chunk)
        texts, truths, where = [], [], []
        for i, (job, wav) in enumerate(chunk):
            try:
                texts.append(self._text(job, report))
            except TextError as exc:
                results[i] = exc.reason if hasattr(exc, "reason") else str(exc)
                continue
            try:
                truths.append(self.model_frontend(wav)[0])
            except ValueError as exc:
                texts.pop()
                results[i] = f"too short for {self.model.name}'s mels ({exc})"
                continue
            where.append(i)
        if not where:
            return results
        outputs = self.model.teacher_force(texts, truths)
        if len(outputs) != len(where):
            raise RuntimeError(f"{self.model.name}.teacher_force returned {len(outputs)} mels for {len(where)} texts")
        for i, truth, mel in zip(where, truths, outputs):
            job, wav = chunk[i]
            if tuple(mel.shape) != tuple(truth.shape):
                results[i] = (
                    f"{self.model.name} returned a mel of shape {tuple(mel.shape)} for a recording mel of "
                    f"{tuple(truth.shape)}: teacher forcing must keep every frame (not trimmed)"
                )
                continue
            mel = self.bridge.to_vocoder(mel)
            want = self.cfg.num_frames(wav.shape[-1])
            if mel.shape[-1] != want:
                results[i] = (
                    f"GTA mel has {mel.shape[-1]} frames in the vocoder's framing but the recording has {want} "
                    f"({wav.shape[-1]} samples, hop {self.cfg.hop_length}): not trimmed"
                )
                continue
            results[i] = mel
        return results


def check_inputs(jobs: Sequence[Job]) -> None:
    """Teacher forcing needs a file name to find each recording's text: stdin has none."""
    from vocoder_cli.errors import VocoderError

    if any(job.source == STDIO for job in jobs):
        raise VocoderError("--teacher-forced finds each recording's text by its file name: stdin has none")
