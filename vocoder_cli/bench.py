"""Synthesis speed: real-time factor of a vocoder on this machine (used by `vocoder bench synth`)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from vocoder_cli.inference import EngineOptions, Synthesizer, Vocoder, receptive_field_frames
from vocoder_cli.mel import MelConfig
from vocoder_cli.models import Generator, generator_preset


@dataclass(frozen=True)
class SynthBenchResult:
    name: str
    parameters: int
    audio_seconds: float
    wall_seconds: float  # median over the timed repeats

    @property
    def real_time_factor(self) -> float:
        return self.wall_seconds / self.audio_seconds

    @property
    def speed(self) -> float:
        """Seconds of audio per wall second (x real time)."""
        return self.audio_seconds / self.wall_seconds


def preset_vocoder(name: str, mel: MelConfig | None = None) -> Vocoder:
    """A randomly initialised preset generator: speed does not depend on the weights' values."""
    mel = mel or MelConfig()
    cfg = generator_preset(name)
    torch.manual_seed(0)
    return Vocoder(Generator(cfg).eval(), mel, name, receptive_field_frames(cfg) + 2)


def bench_synthesis(
    vocoder: Vocoder,
    *,
    device: str = "cpu",
    seconds: float = 10.0,
    batch: int = 1,
    repeats: int = 3,
    precision: str = "fp32",
) -> SynthBenchResult:
    """Median wall time to vocode ``batch`` utterances of ``seconds`` each (one warm-up first)."""
    synth = Synthesizer(vocoder, device, EngineOptions(batch_size=batch, chunk_frames=1 << 20, precision=precision))
    rng = np.random.default_rng(0)
    wav = (0.1 * rng.standard_normal(int(seconds * vocoder.mel.sample_rate))).astype(np.float32)
    mels = [synth.mel(wav)] * batch
    synth.synthesize(mels)  # warm-up (allocator, cuDNN autotune)
    times = []
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        synth.synthesize(mels)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    params = sum(p.numel() for p in vocoder.model.parameters())
    return SynthBenchResult(vocoder.name, params, seconds * batch, float(np.median(times)))
