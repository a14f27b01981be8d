"""Typed errors: the core raises these, the CLI turns them into one clear line and an exit code."""

from __future__ import annotations

from pathlib import Path


class VocoderError(Exception):
    """Base class for every error a user can act on."""


class ConfigError(VocoderError):
    """A model, mel or training configuration is inconsistent."""


class AudioError(VocoderError):
    """An input file cannot be used; the message names the file and the reason."""

    def __init__(self, path: str | Path | None, reason: str) -> None:
        self.path = str(path) if path is not None else "<stdin>"
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class MelMismatchError(VocoderError):
    """An input mel does not fit the model's mel configuration."""


class WeightsError(VocoderError):
    """Weights cannot be found, downloaded, verified or loaded."""


class DownloadError(WeightsError):
    """A download failed or its checksum did not match."""


class TextError(VocoderError):
    """A text cannot be spoken by an acoustic model; the message names the item and the reason."""

    def __init__(self, reason: str, item: str | None = None) -> None:
        self.item = item
        self.reason = reason
        super().__init__(f"{item}: {reason}" if item else reason)
