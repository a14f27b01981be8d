"""Synthesis speed: real-time factor of a vocoder on this machine (used by `vocoder bench synth`)."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vocoder_cli.errors import ConfigError
from vocoder_cli.inference import EngineOptions, Synthesizer, Vocoder, receptive_field_frames
from vocoder_cli.mel import MelConfig
from vocoder_cli.models import Generator, GeneratorConfig, generator_preset


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


def preset_vocoder(name: str, mel: MelConfig | None = None, backend: str = "torch") -> Vocoder:
    """A randomly initialised preset generator: speed does not depend on the weights' values.

    ``backend`` onnx exports it to a temporary ONNX file first (random weights are not cached)."""
    mel = mel or MelConfig()
    cfg = generator_preset(name)
    torch.manual_seed(0)
    generator = Generator(cfg).eval()
    context = receptive_field_frames(cfg) + 2
    if backend == "torch":
        return Vocoder(generator, mel, name, context)
    if backend != "onnx":
        raise ConfigError(f"unknown backend {backend!r} for a preset: torch or onnx")
    from vocoder_cli.backends.onnx import export_onnx, load_onnx

    with tempfile.TemporaryDirectory(prefix="vocoder-bench-") as tmp:
        export_onnx(generator, mel, Path(tmp) / f"{name}.onnx")
        loaded = load_onnx(Path(tmp) / f"{name}.onnx")  # the session holds the model in memory
    return Vocoder(loaded.generator, mel, name, context, backend="onnx")


def parameter_count(vocoder: Vocoder) -> int:
    """Generator parameters (for an ONNX model: those of the architecture in its config)."""
    count = sum(p.numel() for p in vocoder.model.parameters())
    cfg = getattr(vocoder.model, "cfg", None)
    if count == 0 and isinstance(cfg, GeneratorConfig):
        with torch.device("meta"):
            count = sum(p.numel() for p in Generator(cfg).parameters())
    return count


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
    params = parameter_count(vocoder)
    return SynthBenchResult(vocoder.name, params, seconds * batch, float(np.median(times)))
