"""The bundled demo speech (CC-BY-SA prompts in ``assets/demo``): real speech that is always there, for
timing probes, benchmarks and tests."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import torch

from vocoder_cli.audio import find_audio_files, load_audio
from vocoder_cli.errors import ConfigError
from vocoder_cli.mel import MelConfig, MelSpectrogram


def demo_folder() -> Path:
    """The folder of the packaged demo prompts (three FLAC files, their transcripts and attribution)."""
    return Path(str(resources.files("vocoder_cli") / "assets" / "demo"))


def demo_speech(sr: int) -> np.ndarray:
    """The packaged demo prompts (real speech), concatenated at ``sr``."""
    folder = demo_folder()
    clips = [load_audio(folder / name, sr)[0] for name in sorted(
        p.name for p in folder.iterdir() if p.name.endswith(".flac"))]
    return np.concatenate(clips)


def speech_mel(mel: MelConfig, seconds: float, source: Path | None = None) -> torch.Tensor:
    """[n_mels, frames] log-mel of ``seconds`` of real speech: the bundled demo prompts (or the audio
    files under ``source``) concatenated, repeated when too short."""
    if source is not None:
        files = find_audio_files(source)
        if not files:
            raise ConfigError(f"{source}: no audio files")
        speech = np.concatenate([load_audio(p, mel.sample_rate)[0] for p in files])
    else:
        speech = demo_speech(mel.sample_rate)
    length = max(int(seconds * mel.sample_rate), mel.hop_length)
    wav = np.tile(speech, length // speech.size + 1)[:length].astype(np.float32)
    with torch.inference_mode():
        return MelSpectrogram(mel)(torch.from_numpy(np.ascontiguousarray(wav))[None])[0]
