"""A Griffin-Lim mel inverter with the generator's interface: the no-weights baseline.

It needs no training, so it is what `vocoder resynth --weights griffin-lim` runs before any neural
weights are available, and the quality floor that any trained vocoder must beat. Framing matches
:class:`~vocoder_cli.mel.MelSpectrogram` exactly (reflect pad, center=False), so the output is
aligned sample-for-sample with the input audio.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from vocoder_cli.mel import MelConfig, mel_filterbank


class GriffinLim(nn.Module):
    """Mel [B, n_mels, frames] -> waveform [B, 1, frames * hop] by fast Griffin-Lim (momentum 0.99)."""

    def __init__(self, mel: MelConfig, n_iter: int = 32, momentum: float = 0.99) -> None:
        super().__init__()
        self.mel = mel
        self.n_iter = n_iter
        self.momentum = momentum
        basis = torch.from_numpy(mel_filterbank(mel)).float()
        self.register_buffer("inverse_basis", torch.linalg.pinv(basis), persistent=False)
        self.register_buffer("window", torch.hann_window(mel.win_length), persistent=False)

    @property
    def hop_length(self) -> int:
        return self.mel.hop_length

    @property
    def _pad(self) -> int:
        cfg = self.mel
        return cfg.n_fft // 2 if cfg.center else (cfg.n_fft - cfg.hop_length) // 2

    def _stft(self, wav: torch.Tensor) -> torch.Tensor:
        cfg = self.mel
        return torch.stft(wav, cfg.n_fft, cfg.hop_length, cfg.win_length, self.window, center=False, return_complex=True)

    def _istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """Weighted overlap-add with the squared-window envelope (safe where the envelope is ~0)."""
        cfg = self.mel
        frames = torch.fft.irfft(spec, n=cfg.n_fft, dim=1) * self.window[:, None]
        n = spec.shape[-1]
        out_len = (n - 1) * cfg.hop_length + cfg.n_fft
        fold = lambda x: F.fold(x, (1, out_len), (1, cfg.n_fft), stride=(1, cfg.hop_length)).flatten(1)  # noqa: E731
        wav = fold(frames)
        env = fold(self.window.square()[None, :, None].expand(1, -1, n))
        return (wav / env.clamp(min=1e-8))[:, :length]

    def forward(self, log_mel: torch.Tensor) -> torch.Tensor:
        log_mel = log_mel.float()
        mag = (self.inverse_basis @ torch.exp(log_mel)).clamp(min=0.0)
        if self.mel.power == 2.0:
            mag = mag.sqrt()
        n_frames = log_mel.shape[-1]
        padded_len = (n_frames - 1) * self.hop_length + self.mel.n_fft
        gen = torch.Generator(device="cpu").manual_seed(0)
        phase = torch.rand(mag.shape, generator=gen).to(mag.device) * 2 * math.pi
        spec = mag * torch.exp(1j * phase)
        prev = torch.zeros_like(spec)
        for _ in range(self.n_iter):
            wav = self._istft(spec, padded_len)
            rebuilt = self._stft(wav)
            accel = rebuilt + self.momentum * (rebuilt - prev) if self.momentum else rebuilt
            prev = rebuilt
            spec = mag * torch.exp(1j * torch.angle(accel))
        wav = self._istft(spec, padded_len)
        start = self._pad
        return wav[:, start : start + n_frames * self.hop_length].clamp(-1.0, 1.0).unsqueeze(1)
