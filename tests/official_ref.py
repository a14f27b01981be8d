"""An independent compact re-implementation of jik876/hifi-gan's generator with the legacy
``torch.nn.utils.weight_norm`` (the layout the public checkpoints were saved from), used as the
reference in equivalence tests: it loads official ``g_`` state dicts as they are.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

wn = nn.utils.weight_norm

CONFIG_COMMON = {
    "num_mels": 80, "n_fft": 1024, "hop_size": 256, "win_size": 1024, "sampling_rate": 22050,
    "fmin": 0, "fmax": 8000, "fmax_for_loss": None, "segment_size": 8192, "learning_rate": 0.0002,
}
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


class RefResBlock1(nn.Module):
    def __init__(self, ch: int, k: int, dils: list[int]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(wn(nn.Conv1d(ch, ch, k, 1, dilation=d, padding=_pad(k, d))) for d in dils)
        self.convs2 = nn.ModuleList(wn(nn.Conv1d(ch, ch, k, 1, dilation=1, padding=_pad(k))) for _ in dils)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            x = x + c2(F.leaky_relu(c1(F.leaky_relu(x, 0.1)), 0.1))
        return x


class RefResBlock2(nn.Module):
    def __init__(self, ch: int, k: int, dils: list[int]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(wn(nn.Conv1d(ch, ch, k, 1, dilation=d, padding=_pad(k, d))) for d in dils)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for c in self.convs:
            x = x + c(F.leaky_relu(x, 0.1))
        return x


class RefGenerator(nn.Module):
    """jik876/hifi-gan models.Generator, written from the paper/repo layout with legacy weight norm."""

    def __init__(self, h: dict) -> None:
        super().__init__()
        self.num_kernels = len(h["resblock_kernel_sizes"])
        ch0 = h["upsample_initial_channel"]
        self.conv_pre = wn(nn.Conv1d(80, ch0, 7, 1, padding=3))
        block = RefResBlock1 if h["resblock"] == "1" else RefResBlock2
        self.ups = nn.ModuleList(
            wn(nn.ConvTranspose1d(ch0 // 2**i, ch0 // 2 ** (i + 1), k, u, padding=(k - u) // 2))
            for i, (u, k) in enumerate(zip(h["upsample_rates"], h["upsample_kernel_sizes"]))
        )
        self.resblocks = nn.ModuleList(
            block(ch0 // 2 ** (i + 1), k, d)
            for i in range(len(self.ups))
            for k, d in zip(h["resblock_kernel_sizes"], h["resblock_dilation_sizes"])
        )
        self.conv_post = wn(nn.Conv1d(ch0 // 2 ** len(self.ups), 1, 7, 1, padding=3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(x)
        for i, up in enumerate(self.ups):
            x = up(F.leaky_relu(x, 0.1))
            xs = sum(self.resblocks[i * self.num_kernels + j](x) for j in range(self.num_kernels))
            x = xs / self.num_kernels
        return torch.tanh(self.conv_post(F.leaky_relu(x)))


def _randomise(module: nn.Module, seed: int) -> None:
    """Random v AND random g (g != ||v||), so a wrong fold formula cannot pass unnoticed."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith("weight_g"):
                p.copy_(torch.rand(p.shape, generator=gen) * 1.5 + 0.25)
            elif name.endswith("weight_v") or name.endswith("weight_orig"):
                p.copy_(torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1)


def write_official(tmp: Path, preset: str, seed: int = 0) -> tuple[RefGenerator, Path]:
    """An official-layout g_00000000 + config.json in ``tmp``; returns the reference model and the file."""
    ref = RefGenerator(OFFICIAL_CONFIGS[preset])
    _randomise(ref, seed)
    ref.eval()
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "config.json").write_text(json.dumps({**CONFIG_COMMON, **OFFICIAL_CONFIGS[preset]}))
    path = tmp / "g_00000000"
    torch.save({"generator": ref.state_dict()}, path)
    return ref, path


