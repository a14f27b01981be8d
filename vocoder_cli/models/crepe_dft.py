"""CREPE's network evaluated with a fraction of the arithmetic: the same function, computed differently.

CREPE ``full`` costs 2.8 GFLOP per frame as written, 76% of it in conv2 (1024 -> 128 channels, kernel 64
over 128 steps). Every convolution after the first is a stride-1 correlation with a 64-tap kernel over at
most 128 steps, so it is cheaper in the frequency domain: a discrete Fourier transform of each input
channel (one GEMM with a precomputed cos/sin matrix), one complex channel-mixing matrix per frequency
(a batched GEMM), and the inverse transform of only the output steps that are kept (one GEMM). The
transform length is the padded input length, so the circular correlation never wraps onto a kept output
and the result is the convolution exactly, up to float32 rounding. conv1 (one input channel, stride 4,
kernel 512) is one GEMM over unfolded frames. Together 0.5 GFLOP per frame instead of 2.8, all of it in
large matrix products.

Activations are kept time-major, ``[T, B, C]`` (steps, frames, channels), which turns each transform
into a single GEMM over every frame and channel at once; ReLU, batch norm (folded to a per-channel scale
and shift) and the max-pool work on that layout directly. The weights, transforms and mixing matrices
are computed once in float64 and stored in float32. The pitch metrics use it on the CPU
(``vocoder_cli.metrics.pitch.PitchTracker``, engine ``auto``); ``scripts/check_crepe_dft.py`` compares
its tracks with the direct network's on real speech.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from vocoder_cli.models.crepe import _KERNELS, _PADDING, _STRIDES, WINDOW, Crepe


class SpectralConv(nn.Module):
    """A stride-1 correlation ``y[t] = b + sum_j w[j] x[t + j - pad_left]`` (zero padding) along T of
    ``[T_in, B, C]`` -> ``[T_out, B, O]``, through a real DFT of length ``T_in + pad_left + pad_right``.

    forward DFT ``[2F, T_in]`` (rows: cos and -sin of each frequency, interleaved per frequency as
    ``[F, 2]``), mixing ``[F, C, 2O]`` (``[conj(W).real | conj(W).imag]`` per frequency, so one batched
    GEMM gives the four real products of a complex one) and inverse DFT ``[T_out, 2F]``.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, pad: tuple[int, int], steps: int) -> None:
        super().__init__()
        out_ch, in_ch, taps = weight.shape
        pad_left, pad_right = pad
        n = steps + pad_left + pad_right  # >= T_out + taps - 1: no kept output wraps around
        self.steps_out = n - taps + 1
        freqs = torch.arange(n // 2 + 1, dtype=torch.float64)
        # X[f] = sum_t x[t] exp(-2 pi i f (t + pad_left) / n): the padded signal's DFT from the real steps
        angle = 2 * math.pi * freqs[:, None] * (torch.arange(steps, dtype=torch.float64) + pad_left) / n
        forward = torch.stack([torch.cos(angle), -torch.sin(angle)], dim=1)  # [F, 2, T_in]
        # correlation = x * conj(w) in frequency; per frequency a complex [C, O] matrix
        spectrum = torch.fft.rfft(weight.double(), n=n).conj().permute(2, 1, 0)  # [F, C, O]
        mixing = torch.cat([spectrum.real, spectrum.imag], dim=2)  # [F, C, 2O]
        # y[t] = (1/n) sum_f a_f Re(Y[f] exp(2 pi i f t / n)), a_f = 1 at DC (and Nyquist), else 2
        weights = torch.full((freqs.numel(),), 2.0, dtype=torch.float64)
        weights[0] = 1.0
        if n % 2 == 0:
            weights[-1] = 1.0
        back = 2 * math.pi * freqs[None, :] * torch.arange(self.steps_out, dtype=torch.float64)[:, None] / n
        inverse = torch.stack([torch.cos(back), -torch.sin(back)], dim=2) * (weights / n)[None, :, None]
        self.out_ch = out_ch
        self.register_buffer("forward_dft", forward.reshape(-1, steps).float())  # [2F, T_in]
        self.register_buffer("mixing", mixing.float().contiguous())  # [F, C, 2O]
        self.register_buffer("inverse_dft", inverse.reshape(self.steps_out, -1).float())  # [T_out, 2F]
        self.register_buffer("bias", bias.float().clone())  # [O]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps, batch, channels = x.shape
        freqs = self.mixing.shape[0]
        spectra = (self.forward_dft @ x.reshape(steps, batch * channels)).view(freqs, 2 * batch, channels)
        products = torch.bmm(spectra, self.mixing)  # [F, 2B, 2O]: rows Re X, Im X; columns Re W', Im W'
        re_x, im_x = products[:, :batch], products[:, batch:]
        o = self.out_ch
        real = re_x[..., :o] - im_x[..., o:]  # Re(X W') with W' = conj(W)
        imag = re_x[..., o:] + im_x[..., :o]  # Im(X W')
        spectrum = torch.stack([real, imag], dim=1)  # [F, 2, B, O]
        y = self.inverse_dft @ spectrum.view(2 * freqs, batch * o)
        return y.view(self.steps_out, batch, o) + self.bias


class DFTCrepe(nn.Module):
    """:class:`Crepe` (eval mode) computed through :class:`SpectralConv`: frames [B, 1024] -> [B, 360]."""

    def __init__(self, crepe: Crepe) -> None:
        super().__init__()
        if crepe.training:
            raise ValueError("DFTCrepe needs a Crepe in eval mode (batch norm from running statistics)")
        self.capacity = crepe.capacity
        conv1 = crepe.conv1
        self.stride1, self.taps1, self.pad1 = _STRIDES[0], _KERNELS[0], _PADDING[0]
        self.register_buffer("weight1", conv1.weight.detach()[:, 0, 0, :].t().float().contiguous())  # [512, C1]
        self.register_buffer("bias1", conv1.bias.detach().float().clone())
        steps = (WINDOW + sum(self.pad1) - self.taps1) // self.stride1 + 1
        convs, scales, shifts = [], [], []
        for i in range(1, 7):
            norm: nn.BatchNorm2d = getattr(crepe, f"conv{i}_BN")
            scale = norm.weight.double() / torch.sqrt(norm.running_var.double() + norm.eps)
            scales.append(scale.float())
            shifts.append((norm.bias.double() - norm.running_mean.double() * scale).float())
            if i > 1:
                conv: nn.Conv2d = getattr(crepe, f"conv{i}")
                convs.append(SpectralConv(conv.weight.detach()[:, :, 0, :], conv.bias.detach(), _PADDING[i - 1], steps))
                steps = convs[-1].steps_out
            steps //= 2
        self.convs = nn.ModuleList(convs)
        for i, (scale, shift) in enumerate(zip(scales, shifts)):
            self.register_buffer(f"scale{i + 1}", scale)
            self.register_buffer(f"shift{i + 1}", shift)
        self.classifier = nn.Linear(crepe.classifier.in_features, crepe.classifier.out_features)
        self.classifier.load_state_dict(crepe.classifier.state_dict())
        self.to(crepe.classifier.weight.device)

    def _block_end(self, y: torch.Tensor, i: int) -> torch.Tensor:
        """ReLU, batch norm and max-pool(2) along T of [T, B, C]."""
        y = torch.relu_(y).mul_(getattr(self, f"scale{i}")).add_(getattr(self, f"shift{i}"))
        steps, batch, channels = y.shape
        return y.view(steps // 2, 2, batch, channels).amax(dim=1)

    @torch.inference_mode()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        batch = frames.shape[0]
        padded = torch.nn.functional.pad(frames, self.pad1)
        patches = padded.unfold(1, self.taps1, self.stride1).transpose(0, 1)  # [T, B, 512]
        steps = patches.shape[0]
        y = torch.addmm(self.bias1, patches.reshape(steps * batch, self.taps1), self.weight1)
        x = self._block_end(y.view(steps, batch, -1), 1)
        for i, conv in enumerate(self.convs, start=2):
            x = self._block_end(conv(x), i)
        # [4, B, C] -> [B, 4 * C], time-major as the direct network flattens
        return torch.sigmoid(self.classifier(x.transpose(0, 1).reshape(batch, -1)))
