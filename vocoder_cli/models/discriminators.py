"""HiFi-GAN's multi-period (MPD) and multi-scale (MSD) discriminators, as in the official code.

Each forward returns, for real ``y`` and generated ``y_hat`` of shape [B, 1, T]:
``(scores_real, scores_fake, fmaps_real, fmaps_fake)``, one entry per sub-discriminator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations

from vocoder_cli.models.generator import LRELU_SLOPE, get_padding

Outputs = tuple[list[torch.Tensor], list[torch.Tensor], list[list[torch.Tensor]], list[list[torch.Tensor]]]


def _norm(module: nn.Module, spectral: bool) -> nn.Module:
    if spectral:
        return parametrizations.spectral_norm(module)
    return parametrizations.weight_norm(module)


def _scaled(channels: int, width: float, multiple: int = 1) -> int:
    """Channel count times ``width`` (1.0: the official sizes), kept a multiple of the conv groups."""
    return max(multiple, round(channels * width / multiple) * multiple)


class DiscriminatorP(nn.Module):
    """Folds the waveform into [T / period, period] and applies 2-D convs along time."""

    def __init__(self, period: int, kernel_size: int = 5, stride: int = 3, width: float = 1.0) -> None:
        super().__init__()
        self.period = period
        chans = [1] + [_scaled(c, width) for c in (32, 128, 512, 1024)]
        top = chans[-1]
        pad = (get_padding(5, 1), 0)
        self.convs = nn.ModuleList(
            [_norm(nn.Conv2d(c_in, c_out, (kernel_size, 1), (stride, 1), padding=pad), False)
             for c_in, c_out in zip(chans[:-1], chans[1:])]
            + [_norm(nn.Conv2d(top, top, (kernel_size, 1), 1, padding=(2, 0)), False)]
        )
        self.conv_post = _norm(nn.Conv2d(top, 1, (3, 1), 1, padding=(1, 0)), False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        fmap = []
        b, c, t = x.shape
        if t % self.period:
            n_pad = self.period - t % self.period
            x = F.pad(x, (0, n_pad), "reflect")
            t += n_pad
        x = x.view(b, c, t // self.period, self.period)
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class DiscriminatorS(nn.Module):
    """Grouped 1-D convs over the raw (or average-pooled) waveform."""

    def __init__(self, use_spectral_norm: bool = False, width: float = 1.0) -> None:
        super().__init__()
        sn = use_spectral_norm
        c128, c256, c512, c1024 = (_scaled(c, width, 16) for c in (128, 256, 512, 1024))
        self.convs = nn.ModuleList(
            [
                _norm(nn.Conv1d(1, c128, 15, 1, padding=7), sn),
                _norm(nn.Conv1d(c128, c128, 41, 2, groups=4, padding=20), sn),
                _norm(nn.Conv1d(c128, c256, 41, 2, groups=16, padding=20), sn),
                _norm(nn.Conv1d(c256, c512, 41, 4, groups=16, padding=20), sn),
                _norm(nn.Conv1d(c512, c1024, 41, 4, groups=16, padding=20), sn),
                _norm(nn.Conv1d(c1024, c1024, 41, 1, groups=16, padding=20), sn),
                _norm(nn.Conv1d(c1024, c1024, 5, 1, padding=2), sn),
            ]
        )
        self.conv_post = _norm(nn.Conv1d(c1024, 1, 3, 1, padding=1), sn)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        fmap = []
        for conv in self.convs:
            x = F.leaky_relu(conv(x), LRELU_SLOPE)
            fmap.append(x)
        x = self.conv_post(x)
        fmap.append(x)
        return torch.flatten(x, 1, -1), fmap


class _Ensemble(nn.Module):
    discriminators: nn.ModuleList

    def _inputs(self, i: int, y: torch.Tensor, y_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return y, y_hat

    def forward(self, y: torch.Tensor, y_hat: torch.Tensor) -> Outputs:
        real, fake, fmap_real, fmap_fake = [], [], [], []
        for i, disc in enumerate(self.discriminators):
            y, y_hat = self._inputs(i, y, y_hat)
            score_r, fm_r = disc(y)
            score_g, fm_g = disc(y_hat)
            real.append(score_r)
            fake.append(score_g)
            fmap_real.append(fm_r)
            fmap_fake.append(fm_g)
        return real, fake, fmap_real, fmap_fake


class MultiPeriodDiscriminator(_Ensemble):
    def __init__(self, periods: tuple[int, ...] = (2, 3, 5, 7, 11), width: float = 1.0) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(DiscriminatorP(p, width=width) for p in periods)


class MultiScaleDiscriminator(_Ensemble):
    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            [DiscriminatorS(use_spectral_norm=True, width=width), DiscriminatorS(width=width), DiscriminatorS(width=width)]
        )
        self.meanpools = nn.ModuleList([nn.AvgPool1d(4, 2, padding=2), nn.AvgPool1d(4, 2, padding=2)])

    def _inputs(self, i: int, y: torch.Tensor, y_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if i == 0:
            return y, y_hat
        pool = self.meanpools[i - 1]
        return pool(y), pool(y_hat)
