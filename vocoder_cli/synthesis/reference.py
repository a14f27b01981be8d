"""The yardstick for `vocoder bench synth`: jik876/hifi-gan's generator as the official code runs it.

A compact re-implementation of the official ``models.Generator``, written independently of
:mod:`vocoder_cli.models.generator` (so a mistake in ours cannot hide in both): legacy
``torch.nn.utils.weight_norm`` convolutions, as the public ``g_`` checkpoints were saved, which the
official ``inference.py`` removes before synthesis (:meth:`RefGenerator.remove_weight_norm`). Built with
``weight_norm=False`` it is the plain eager model that inference runs, ready for folded weights. The
tests load official-layout state dicts into it (tests/official_ref.py).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from vocoder_cli.models.config import GeneratorConfig

OFFICIAL_CONFIGS = {  # the generator part of config_v1/v2/v3.json
    "v1": {"resblock": "1", "upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4],
           "upsample_initial_channel": 512, "resblock_kernel_sizes": [3, 7, 11],
           "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]]},
    "v2": {"resblock": "1", "upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4],
           "upsample_initial_channel": 128, "resblock_kernel_sizes": [3, 7, 11],
           "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]]},
    "v3": {"resblock": "2", "upsample_rates": [8, 8, 4], "upsample_kernel_sizes": [16, 16, 8],
           "upsample_initial_channel": 256, "resblock_kernel_sizes": [3, 5, 7],
           "resblock_dilation_sizes": [[1, 2], [2, 6], [3, 12]]},
}


def _pad(k: int, d: int = 1) -> int:
    return (k * d - d) // 2


def _norm(conv: nn.Module, weight_norm: bool) -> nn.Module:
    if not weight_norm:
        return conv
    with warnings.catch_warnings():  # the legacy API the checkpoints need announces its successor
        warnings.simplefilter("ignore", FutureWarning)
        return nn.utils.weight_norm(conv)


class RefResBlock1(nn.Module):
    def __init__(self, ch: int, k: int, dils: list[int], weight_norm: bool = True) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            _norm(nn.Conv1d(ch, ch, k, 1, dilation=d, padding=_pad(k, d)), weight_norm) for d in dils
        )
        self.convs2 = nn.ModuleList(_norm(nn.Conv1d(ch, ch, k, 1, padding=_pad(k)), weight_norm) for _ in dils)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, 0.1)), 0.1))
        return x


class RefResBlock2(nn.Module):
    def __init__(self, ch: int, k: int, dils: list[int], weight_norm: bool = True) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            _norm(nn.Conv1d(ch, ch, k, 1, dilation=d, padding=_pad(k, d)), weight_norm) for d in dils
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c in self.convs:
            x = x + c(F.leaky_relu(x, 0.1))
        return x


class RefGenerator(nn.Module):
    """jik876/hifi-gan ``models.Generator`` for an official config dict ``h``: mel [B, n_mels, frames] ->
    waveform [B, 1, frames * hop]."""

    def __init__(self, h: dict, weight_norm: bool = True) -> None:
        super().__init__()
        self.num_kernels = len(h["resblock_kernel_sizes"])
        ch0 = h["upsample_initial_channel"]
        self.conv_pre = _norm(nn.Conv1d(h.get("num_mels", 80), ch0, 7, 1, padding=3), weight_norm)
        block = RefResBlock1 if h["resblock"] == "1" else RefResBlock2
        self.ups = nn.ModuleList(
            _norm(nn.ConvTranspose1d(ch0 // 2**i, ch0 // 2 ** (i + 1), k, u, padding=(k - u) // 2), weight_norm)
            for i, (u, k) in enumerate(zip(h["upsample_rates"], h["upsample_kernel_sizes"]))
        )
        self.resblocks = nn.ModuleList(
            block(ch0 // 2 ** (i + 1), k, d, weight_norm)
            for i in range(len(self.ups))
            for k, d in zip(h["resblock_kernel_sizes"], h["resblock_dilation_sizes"])
        )
        self.conv_post = _norm(nn.Conv1d(ch0 // 2 ** len(self.ups), 1, 7, 1, padding=3), weight_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, 0.1))
            xs = sum(self.resblocks[i * self.num_kernels + j](x) for j in range(self.num_kernels))
            x = xs / self.num_kernels
        return torch.tanh(self.conv_post(F.leaky_relu(x)))

    def remove_weight_norm(self) -> None:
        """Fold the weight norm away, as the official inference.py does before synthesis."""
        for module in self.modules():
            if hasattr(module, "weight_g"):
                nn.utils.remove_weight_norm(module)


def official_config(cfg: GeneratorConfig) -> dict:
    """Our GeneratorConfig as the official config.json's generator keys."""
    return {
        "resblock": cfg.resblock, "upsample_rates": list(cfg.upsample_rates),
        "upsample_kernel_sizes": list(cfg.upsample_kernel_sizes),
        "upsample_initial_channel": cfg.upsample_initial_channel,
        "resblock_kernel_sizes": list(cfg.resblock_kernel_sizes),
        "resblock_dilation_sizes": [list(d) for d in cfg.resblock_dilation_sizes], "num_mels": cfg.n_mels,
    }


def reference_for(generator: nn.Module) -> RefGenerator:
    """The plain eager official-architecture model holding the same (folded) weights as our ``generator``."""
    ref = RefGenerator(official_config(generator.cfg), weight_norm=False)
    ref.load_state_dict(generator.state_dict(), strict=True)
    return ref.eval()
