"""One HiFi-GAN training step, as the official code orders it: G forward, D update, G update.

Mels are computed here, on the training device, from the waveform segment (never in a DataLoader).
A step whose gradient norm is not finite is skipped for that network (the decision uses the
all-reduced gradients, so every DDP rank agrees) and reported, so the loop can count bad steps.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn

from vocoder_cli.data.segments import Batch
from vocoder_cli.mel import MelSpectrogram
from vocoder_cli.training.config import TrainConfig
from vocoder_cli.training.losses import (
    discriminator_loss,
    feature_loss,
    generator_loss,
    mel_l1,
)


@dataclass
class StepResult:
    losses: dict[str, torch.Tensor]  # detached scalars, still on the device (no sync until logged)
    d_skipped: bool
    g_skipped: bool

    @property
    def bad(self) -> bool:
        return self.d_skipped or self.g_skipped


def autocast_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """bf16 on CUDA by default (no loss scaling needed); full precision on CPU unless asked."""
    if cfg.amp == "bf16" or (cfg.amp == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def _grad_norm(params: list[nn.Parameter], max_norm: float) -> torch.Tensor:
    """Total gradient norm (clipping to ``max_norm`` when > 0); non-finite when any gradient is."""
    if max_norm <= 0 and hasattr(torch.nn.utils, "get_total_norm"):  # torch >= 2.6: no rescaling pass
        return torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    return torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm > 0 else float("inf"))


class GANStep:
    """Holds the models and optimisers (possibly DDP-wrapped or compiled) and runs one step."""

    def __init__(
        self,
        cfg: TrainConfig,
        generator: nn.Module,
        mpd: nn.Module,
        msd: nn.Module,
        optim_g: torch.optim.Optimizer,
        optim_d: torch.optim.Optimizer,
        device: torch.device,
    ) -> None:
        self.cfg, self.device = cfg, device
        self.generator, self.mpd, self.msd = generator, mpd, msd
        self.optim_g, self.optim_d = optim_g, optim_d
        dtype = torch.float64 if cfg.mel_dtype == "float64" else torch.float32
        self.mel_input = MelSpectrogram(cfg.mel, compute_dtype=dtype)
        self.mel_loss = MelSpectrogram(cfg.loss_mel, compute_dtype=dtype)
        self.amp_dtype = autocast_dtype(cfg, device)
        self.g_params = [p for p in generator.parameters() if p.requires_grad]
        self.d_params = [p for m in (mpd, msd) for p in m.parameters() if p.requires_grad]

    def autocast(self) -> AbstractContextManager:
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def __call__(self, batch: Batch) -> StepResult:
        cfg = self.cfg
        wav = batch.wav
        y = wav.unsqueeze(1)
        with torch.no_grad():
            mel = batch.mel if batch.mel is not None else self.mel_input(wav)
            y_mel = self.mel_loss(wav)
        with self.autocast():
            y_hat = self.generator(mel)
        y_hat = y_hat.float()
        y_hat_mel = self.mel_loss(y_hat.squeeze(1))

        # Discriminators: real vs detached fake, LSGAN.
        self.optim_d.zero_grad(set_to_none=True)
        with self.autocast():
            real_p, fake_p, _, _ = self.mpd(y, y_hat.detach())
            real_s, fake_s, _, _ = self.msd(y, y_hat.detach())
        loss_d = discriminator_loss(real_p, fake_p) + discriminator_loss(real_s, fake_s)
        loss_d.backward()
        norm_d = _grad_norm(self.d_params, cfg.grad_clip)
        d_ok = bool(torch.isfinite(norm_d))
        if d_ok:
            self.optim_d.step()

        # Generator: adversarial + feature matching x lambda_fm + full-band mel L1 x lambda_mel.
        self.optim_g.zero_grad(set_to_none=True)
        with self.autocast():
            _, fake_p, fmap_rp, fmap_gp = self.mpd(y, y_hat)
            _, fake_s, fmap_rs, fmap_gs = self.msd(y, y_hat)
        loss_adv = generator_loss(fake_p) + generator_loss(fake_s)
        loss_fm = feature_loss(fmap_rp, fmap_gp) + feature_loss(fmap_rs, fmap_gs)
        loss_mel = mel_l1(y_mel, y_hat_mel)
        loss_g = loss_adv + cfg.lambda_fm * loss_fm + cfg.lambda_mel * loss_mel
        loss_g.backward()
        norm_g = _grad_norm(self.g_params, cfg.grad_clip)
        g_ok = bool(torch.isfinite(norm_g))
        if g_ok:
            self.optim_g.step()
        self.optim_d.zero_grad(set_to_none=True)  # the G step left gradients on D; free them now

        losses = {
            "loss/d": loss_d.detach(),
            "loss/g": loss_g.detach(),
            "loss/g_adv": loss_adv.detach(),
            "loss/g_fm": loss_fm.detach(),
            "loss/mel_l1": loss_mel.detach(),
            "grad_norm/d": norm_d.detach(),
            "grad_norm/g": norm_g.detach(),
        }
        return StepResult(losses, d_skipped=not d_ok, g_skipped=not g_ok)
