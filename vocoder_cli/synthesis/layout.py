"""The generator laid out the way oneDNN's CPU kernels want it: 2-d convolutions on channels-last tensors.

PyTorch runs a 1-d convolution on the CPU as a 2-d one (``[B, C, T]`` -> ``[B, C, 1, T]``) through oneDNN,
whose fast kernels (brgemm on AVX-512, AMX tiles for bf16) work on channels-last data. With plain
contiguous tensors every call reorders the input, the weights and the output between layouts: with bf16
weights on an AMX Xeon 55% of V1's time was those copies (torch.profiler: ``aten::copy_``), not
convolution. Here every ``Conv1d``/``ConvTranspose1d`` of a copy of the generator becomes the equivalent
``Conv2d``/``ConvTranspose2d`` (weights unsqueezed once, channels-last), the signal travels as
``[B, C, 1, T]`` channels-last from ``conv_pre`` to ``conv_post``, and nothing is reordered but the mel in
and the audio out. The function is the same layer for layer (float32: within 1e-6 of the 1-d model).

Precision is fixed when the copy is made, not per call: ``bf16`` casts the weights once (no autocast, no
per-call weight casts) and keeps the stages from ``Generator.fp32_tail_start`` and ``conv_post`` in
float32, the rule :meth:`vocoder_cli.models.generator.Generator.generate` follows under autocast.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from vocoder_cli.models.generator import Generator

LAYOUT_PRECISIONS = ("fp32", "bf16")


def _conv2d(conv: nn.Conv1d) -> nn.Conv2d:
    new = nn.Conv2d(conv.in_channels, conv.out_channels, (1, conv.kernel_size[0]), (1, conv.stride[0]),
                    (0, conv.padding[0]), (1, conv.dilation[0]), conv.groups, bias=conv.bias is not None)
    with torch.no_grad():
        new.weight.copy_(conv.weight.unsqueeze(2))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def _conv_transpose2d(conv: nn.ConvTranspose1d) -> nn.ConvTranspose2d:
    new = nn.ConvTranspose2d(conv.in_channels, conv.out_channels, (1, conv.kernel_size[0]), (1, conv.stride[0]),
                             (0, conv.padding[0]), (0, conv.output_padding[0]), conv.groups,
                             bias=conv.bias is not None, dilation=(1, conv.dilation[0]))
    with torch.no_grad():
        new.weight.copy_(conv.weight.unsqueeze(2))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def _swap_convs(module: nn.Module) -> None:
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Conv1d):
            setattr(module, name, _conv2d(child))
        elif isinstance(child, nn.ConvTranspose1d):
            setattr(module, name, _conv_transpose2d(child))
        else:
            _swap_convs(child)


class ChannelsLastGenerator(nn.Module):
    """A copy of ``generator`` as 2-d convolutions on channels-last tensors, in ``precision`` (fp32, or bf16
    with its narrow stages and conv_post in float32: Generator.fp32_tail_start). Mel [B, n_mels, frames] (float32) -> audio [B, 1, frames * hop]
    (float32), as :class:`Generator`. For inference on the CPU; the weights are not trainable."""

    def __init__(self, generator: Generator, precision: str = "fp32") -> None:
        super().__init__()
        if precision not in LAYOUT_PRECISIONS:
            raise ValueError(f"precision must be one of {LAYOUT_PRECISIONS}, not {precision!r}")
        if any(p.device.type != "cpu" for p in generator.parameters()):
            raise ValueError("the channels-last layout is for the CPU engine")
        net = copy.deepcopy(generator).eval()
        net.remove_weight_norm()
        _swap_convs(net)
        net.requires_grad_(False)
        self.precision = precision
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        if precision == "bf16":
            start = net.fp32_tail_start
            net.to(torch.bfloat16)
            for part in (*net.ups[start:], *net.resblocks[start * net.num_kernels :], net.conv_post):
                part.float()
        self.net = net.to(memory_format=torch.channels_last)
        self.cfg = generator.cfg

    @property
    def hop_length(self) -> int:
        return self.cfg.hop_length

    def forward(self, mel: torch.Tensor, lengths: Sequence[int] | None = None) -> torch.Tensor:
        """``lengths``: each item's frames in a padded batch (:meth:`Generator.generate`)."""
        x = mel.unsqueeze(2).to(self.dtype).contiguous(memory_format=torch.channels_last)
        out = self.net.generate(x, fp32_tail=self.precision != "fp32", lengths=lengths)
        return out.squeeze(2).float().contiguous()
