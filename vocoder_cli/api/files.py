"""Audio files as tensors: read any format as mono float32 at a given rate, write atomically, the demo clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vocoder_cli.audio import load_audio as _load
from vocoder_cli.audio import save_audio as _save
from vocoder_cli.demo import demo_folder as _demo_folder


def load_audio(path: str | Path, sample_rate: int | None = None) -> torch.Tensor:
    """A file (WAV, FLAC, OGG, MP3, ...) as a float32 CPU tensor [T]: channels averaged to mono, resampled to
    ``sample_rate`` Hz (soxr, very high quality) when given, else at the file's own rate. An unusable file
    (missing, empty, truncated header, NaN samples) is an AudioError naming it."""
    wav, _ = _load(path, sample_rate)
    return torch.from_numpy(wav)


def save_audio(path: str | Path, audio: torch.Tensor | np.ndarray, sample_rate: int, float_output: bool = False) -> Path:
    """Write mono audio [T] (float, [-1, 1]) in the container the suffix names, atomically (a reader never
    sees half a file). 16-bit PCM (clipped, scaled by 32767) unless ``float_output``. Returns the path."""
    wav = torch.as_tensor(audio).detach().float().cpu().reshape(-1).numpy()
    return _save(path, wav, sample_rate, "FLOAT" if float_output else "PCM_16")


def demo_folder() -> Path:
    """The bundled demo speech: three short FLAC prompts (16 kHz, CC-BY-SA-3.0) and their transcripts."""
    return _demo_folder()
