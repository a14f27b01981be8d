"""Training throughput: the real training step (same code, AMP and compile options) on synthetic
segments already on the device, so it measures the networks and optimisers, not the disk."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from vocoder_cli.data.segments import Batch
from vocoder_cli.models import (
    Generator,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
)
from vocoder_cli.training.config import TrainConfig
from vocoder_cli.training.precision import apply_precision, resolve_precision
from vocoder_cli.training.step import GANStep


@dataclass
class TrainSpeed:
    preset: str
    batch_size: int
    segment: int
    device: str
    steps: int
    seconds_per_step: float
    peak_memory_mib: float | None
    gpu_busy_share: float | None = None  # CUDA kernel time / wall time over the timed steps
    amp: str = "off"  # the precision the step really ran in (resolved: bf16 or off)
    tf32: bool = False

    @property
    def steps_per_sec(self) -> float:
        return 1.0 / self.seconds_per_step

    @property
    def clips_per_sec(self) -> float:
        return self.batch_size * self.steps_per_sec

    @property
    def samples_per_sec(self) -> float:
        """Audio samples per second of wall time (x seconds of audio = samples / sample rate)."""
        return self.batch_size * self.segment * self.steps_per_sec


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_training_speed(cfg: TrainConfig, device: torch.device, steps: int = 3, warmup: int = 1) -> TrainSpeed:
    torch.manual_seed(cfg.seed)
    cfg = resolve_precision(cfg, device)  # as a run: amp=off means float32 everywhere, TF32 off
    apply_precision(cfg, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    generator = Generator(cfg.generator)
    if cfg.generator_init == "normal":
        generator.init_normal(0.01)
    generator = generator.apply_weight_norm().to(device)
    mpd = MultiPeriodDiscriminator(cfg.mpd_periods, cfg.disc_width).to(device)
    msd = MultiScaleDiscriminator(cfg.disc_width).to(device)
    betas = (cfg.beta1, cfg.beta2)
    optim_g = torch.optim.AdamW(generator.parameters(), cfg.lr, betas=betas, weight_decay=cfg.weight_decay)
    optim_d = torch.optim.AdamW([*mpd.parameters(), *msd.parameters()], cfg.lr, betas=betas, weight_decay=cfg.weight_decay)
    g_run, mpd_run, msd_run = generator, mpd, msd
    if cfg.compile:
        g_run, mpd_run, msd_run = (torch.compile(m) for m in (generator, mpd, msd))
    step = GANStep(cfg, g_run, mpd_run, msd_run, optim_g, optim_d, device)
    t = torch.arange(cfg.segment, device=device) / cfg.mel.sample_rate
    freqs = torch.linspace(100, 400, cfg.batch_size, device=device)[:, None]
    batch = Batch(0.3 * torch.sin(2 * torch.pi * freqs * t) + 0.01 * torch.randn(cfg.batch_size, cfg.segment, device=device))
    for _ in range(warmup):
        step(batch)
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step(batch)
    _sync(device)
    elapsed = (time.perf_counter() - start) / max(steps, 1)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    busy = gpu_busy_share(lambda: step(batch), device, steps) if device.type == "cuda" else None
    return TrainSpeed(cfg.preset, cfg.batch_size, cfg.segment, str(device), steps, elapsed, peak, busy, cfg.amp, cfg.tf32)


def gpu_busy_share(fn: Callable[[], object], device: torch.device, steps: int) -> float | None:
    """Share of wall time the GPU spends in kernels while running ``fn`` ``steps`` times (one stream,
    so kernels do not overlap); 1 - share is launch overhead, host syncs and data waiting."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    try:
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            _sync(device)
            start = time.perf_counter()
            for _ in range(steps):
                fn()
            _sync(device)
            wall_us = (time.perf_counter() - start) * 1e6
        kernel_us = sum(
            evt.self_device_time_total for evt in prof.key_averages() if evt.device_type == DeviceType.CUDA
        )
    except (RuntimeError, AttributeError):  # profiler unavailable (e.g. CUPTI missing): not fatal for a bench
        return None
    return min(1.0, kernel_us / wall_us) if wall_us > 0 else None
