"""The acoustic-model protocol: text in, natural-log mels in a stated :class:`MelConfig` out.

An acoustic model is two steps. ``prepare`` is its text frontend: it returns the text the model will
actually read and what it had to drop or change (so the CLI can say so), or raises
:class:`~vocoder_cli.errors.TextError` when nothing readable is left. ``infer`` turns a batch of
prepared texts into mels ``[n_mels, frames]`` that follow ``mel_config``; the vocoder stage checks that
config against the vocoder's (see :mod:`vocoder_cli.tts.mels`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import torch

from vocoder_cli.errors import ConfigError
from vocoder_cli.mel import MelConfig


@dataclass(frozen=True)
class PreparedText:
    """What a model will read for one input text."""

    text: str  # the normalised text the model reads
    dropped: tuple[str, ...] = ()  # characters the frontend cannot read, each once, in order of appearance
    notes: tuple[str, ...] = ()  # other changes worth telling the user


@dataclass
class AcousticOutput:
    """One utterance's mel, on the CPU."""

    mel: torch.Tensor  # [n_mels, frames], natural log, in the model's mel_config
    reached_max_length: bool = False  # the decoder never predicted the end: the max-length guard cut it


@runtime_checkable
class AcousticModel(Protocol):
    """Text -> log-mels. ``max_chars``: longer prepared texts are split at sentence boundaries (or refused)."""

    name: str
    mel_config: MelConfig
    max_chars: int

    def prepare(self, text: str) -> PreparedText: ...

    def infer(self, texts: Sequence[str]) -> list[AcousticOutput]: ...


@runtime_checkable
class TeacherForced(Protocol):
    """An acoustic model that can also run teacher-forced (ground-truth-aligned, GTA): besides
    :class:`AcousticModel`'s members it has ``teacher_force``.

    ``teacher_force(texts, mels)`` gets prepared texts (from its own ``prepare``) and each recording's log-mel
    ``[n_mels, T_i]`` computed in the model's ``mel_config``, and returns one mel per item with exactly
    ``T_i`` frames: the model's prediction of each frame given the true frames before it (and the text).
    ``vocoder mels --teacher-forced`` refuses a result of another length (never trims it)."""

    def teacher_force(self, texts: Sequence[str], mels: Sequence[torch.Tensor]) -> list[torch.Tensor]: ...


@dataclass(frozen=True)
class LoadOptions:
    """What every acoustic-model factory receives."""

    target_mel: MelConfig  # the vocoder's mel config (models that compute mels from audio follow it)
    device: str = "cpu"
    weights: str | None = None  # the acoustic model's own weights: a name or a path (None: its default)
    offline: bool | None = None  # never download (None: $VOCODER_OFFLINE decides)
    verify: bool = True  # refuse downloads without a published sha256
    seed: int = 0  # for models that sample (Tacotron2's prenet dropout is on at inference)
    options: dict[str, str] = field(default_factory=dict)  # --acoustic-opt KEY=VALUE
    notify: Callable[[str], None] | None = None  # one line before a long download
    progress: Callable[[int, int | None], None] | None = None  # download progress (bytes done, total)


def check_options(model: str, options: dict[str, str], allowed: Sequence[str]) -> None:
    """Refuse --acoustic-opt keys a model does not know (a typo must not be silently ignored)."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        known = ", ".join(allowed) or "none"
        raise ConfigError(f"acoustic model {model!r} has no option {', '.join(unknown)} (its options: {known})")


def int_option(
    model: str, options: dict[str, str], key: str, default: int, bounds: tuple[int, int], unit: str = ""
) -> int:
    """``options[key]`` as an integer within ``bounds`` (inclusive), or ``default`` when absent; a
    ConfigError naming the option and what it accepts otherwise."""
    if key not in options:
        return default
    low, high = bounds
    accepted = f"{key} takes an integer from {low} to {high}{f' ({unit})' if unit else ''}"
    raw = options[key]
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{model}: --acoustic-opt {key}={raw!r} is not an integer; {accepted}") from None
    if not low <= value <= high:
        raise ConfigError(f"{model}: --acoustic-opt {key}={raw!r} is out of range; {accepted}")
    return value
