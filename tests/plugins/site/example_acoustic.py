"""A worked example of an acoustic-model plug-in for `vocoder tts` and `vocoder mels --teacher-forced`.

Registered through the entry-point group ``vocoder.acoustic`` (see ``example_acoustic-0.1.dist-info/
entry_points.txt``; a real package declares it in its pyproject.toml). The "model" is a toy so the example runs
anywhere: free-running it speaks a 220 Hz tone, 0.1 s per character; teacher-forced it predicts each frame as
the mean of the ``context`` true frames before it (the first frame from silence). A real model (FastSpeech2,
Matcha-TTS ...) fills the same four members and, for GTA mels, ``teacher_force``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vocoder_cli.errors import TextError
from vocoder_cli.mel import MelSpectrogram
from vocoder_cli.tts.base import AcousticOutput, LoadOptions, PreparedText, check_options, int_option
from vocoder_cli.tts.registry import AcousticSpec

OPTIONS = ("context", "drop_last")


class ExampleAcoustic:
    """The acoustic-model protocol (``name``, ``mel_config``, ``max_chars``, ``prepare``, ``infer``) plus
    ``teacher_force`` for GTA mels."""

    name = "example"
    max_chars = 200

    def __init__(self, options: LoadOptions) -> None:
        self.mel_config = options.target_mel  # this toy makes mels with the vocoder's own recipe
        self.frontend = MelSpectrogram(options.target_mel)
        self.context = int_option(self.name, options.options, "context", 4, (1, 100), "frames")
        self.drop_last = int_option(self.name, options.options, "drop_last", 0, (0, 1))  # a deliberate bug

    def prepare(self, text: str) -> PreparedText:
        """Keep letters, digits, spaces and punctuation; say what was dropped."""
        kept = "".join(c for c in text if c.isalnum() or c in " .,;:!?'-")
        dropped = tuple(dict.fromkeys(c for c in text if c not in kept))
        if not any(c.isalpha() for c in kept):
            raise TextError("nothing example can read is left")
        return PreparedText(" ".join(kept.split()), dropped)

    def infer(self, texts: Sequence[str]) -> list[AcousticOutput]:
        """One log-mel [n_mels, frames] per prepared text."""
        sr = self.mel_config.sample_rate
        out = []
        for text in texts:
            t = torch.arange(int(0.1 * len(text) * sr)) / sr
            out.append(AcousticOutput(self.frontend(0.3 * torch.sin(2 * torch.pi * 220 * t))[0]))
        return out

    def teacher_force(self, texts: Sequence[str], mels: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Frame t = mean of true frames [t - context, t) ([n_mels, T] in, the same T out)."""
        out = []
        for mel in mels:
            silence = torch.full((mel.shape[0], self.context), self.mel_config.silence_level, dtype=mel.dtype)
            padded = torch.cat((silence, mel), dim=1)
            windows = padded.unfold(1, self.context, 1)[:, : mel.shape[1]]  # [n_mels, T, context]
            predicted = windows.mean(dim=-1)
            out.append(predicted[:, :-1] if self.drop_last else predicted)
        return out


def _check(options: dict[str, str]) -> object:
    check_options("example", options, OPTIONS)
    return options


SPEC = AcousticSpec(
    "example",
    "Example plug-in: a 220 Hz tone; teacher-forced, the mean of the previous true frames. Options: context",
    ExampleAcoustic,
    check_options=_check,
)
