"""Small builders shared by tests: a tiny real generator and audio files of every awkward kind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from vocoder_cli.mel import MelConfig
from vocoder_cli.models import Generator, GeneratorConfig
from vocoder_cli.weights.format import save_generator

# hop 256 like the real presets, but ~40k parameters: fast enough for 10-minute inputs on CPU.
TINY = GeneratorConfig(
    resblock="2",
    upsample_rates=(8, 8, 4),
    upsample_kernel_sizes=(16, 16, 8),
    upsample_initial_channel=32,
    resblock_kernel_sizes=(3,),
    resblock_dilation_sizes=((1, 3),),
)


def tiny_generator(seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    gen = Generator(TINY)
    for p in gen.parameters():  # larger than the official N(0, 0.01) so outputs are far from zero
        p.data.normal_(0.0, 0.2)
    return gen.eval()


def tiny_weights(path: Path, mel: MelConfig | None = None) -> Path:
    return save_generator(path, tiny_generator(), mel or MelConfig())


def tone(seconds: float, sr: int, freq: float = 220.0, channels: int = 1, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = amp * np.sin(2 * np.pi * freq * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))
    x = x.astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def write(path: Path, wav: np.ndarray, sr: int, subtype: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wav, sr, subtype=subtype)
    return path
