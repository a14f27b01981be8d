"""HiFi-GAN's losses, as in the paper and the official code (LSGAN, feature matching, mel L1)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def feature_loss(fmaps_real: list[list[torch.Tensor]], fmaps_fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Sum over sub-discriminators and layers of the mean |real - fake| (real features detached).

    Returned unweighted; the recipe multiplies it by ``lambda_fm`` (2).
    """
    total = fmaps_fake[0][0].new_zeros((), dtype=torch.float32)
    for real_layers, fake_layers in zip(fmaps_real, fmaps_fake):
        for real, fake in zip(real_layers, fake_layers):
            total = total + torch.mean(torch.abs(real.detach().float() - fake.float()))
    return total


def discriminator_loss(real: list[torch.Tensor], fake: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN: real scores pulled to 1, fake to 0, summed over sub-discriminators."""
    total = real[0].new_zeros((), dtype=torch.float32)
    for dr, dg in zip(real, fake):
        total = total + torch.mean((1 - dr.float()) ** 2) + torch.mean(dg.float() ** 2)
    return total


def generator_loss(fake: list[torch.Tensor]) -> torch.Tensor:
    """LSGAN for the generator: fake scores pulled to 1."""
    total = fake[0].new_zeros((), dtype=torch.float32)
    for dg in fake:
        total = total + torch.mean((1 - dg.float()) ** 2)
    return total


def mel_l1(mel_real: torch.Tensor, mel_fake: torch.Tensor) -> torch.Tensor:
    """L1 between log-mels (the loss mel, fmax = sr / 2); the recipe weights it by 45."""
    return F.l1_loss(mel_fake.float(), mel_real.float())
