"""The numeric precision of a run, resolved once and saved in its config.

``amp=auto`` becomes ``bf16`` on CUDA and ``off`` elsewhere; ``amp=off`` means float32 everywhere,
so TF32 (which cuDNN convolutions use by default, and matmuls when allowed) is switched off too, the
mel frontend's matmul included. The saved ``config.json`` holds the resolved values.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from vocoder_cli.training.config import TrainConfig


def resolve_precision(cfg: TrainConfig, device: torch.device) -> TrainConfig:
    """``cfg`` with ``amp`` and ``tf32`` as this device will really run them."""
    amp = cfg.amp if cfg.amp != "auto" else ("bf16" if device.type == "cuda" else "off")
    tf32 = cfg.tf32 and amp != "off" and device.type == "cuda"
    return replace(cfg, amp=amp, tf32=tf32)


def apply_precision(cfg: TrainConfig, device: torch.device) -> None:
    """Set torch's process-wide TF32 switches from a resolved config (and cuDNN autotuning on CUDA)."""
    torch.backends.cuda.matmul.allow_tf32 = cfg.tf32
    torch.backends.cudnn.allow_tf32 = cfg.tf32
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed segment shapes: let cuDNN pick the fastest kernels


def describe_precision(cfg: TrainConfig) -> str:
    """One line for the log."""
    if cfg.amp == "off":
        return "precision: float32 everywhere (no autocast, TF32 off), mel frontend " + cfg.mel_dtype
    tf32 = "TF32 on for float32 matmuls/convolutions" if cfg.tf32 else "TF32 off"
    return f"precision: {cfg.amp} autocast for G and D, losses and mel frontend in {cfg.mel_dtype}, {tf32}"
