"""HiFi-GAN generator, layer-for-layer the official one (same module names, so weights map 1:1).

Weights are canonical in plain (folded) form; training wraps the convolutions in weight norm with
:meth:`Generator.apply_weight_norm` and folds it away again with :meth:`remove_weight_norm`.

Initialisation: a new Generator keeps PyTorch's default convolution init, which is what the official
code actually trains from: its ``init_weights`` (N(0, 0.01)) runs after legacy weight norm, writes into
the recomputed ``weight`` tensor and is overwritten at the next forward (jik876/hifi-gan#145).
:func:`init_normal` applies the N(0, 0.01) that code intended. Modules are created in the official
order (all ``ups``, then all ``resblocks``), so the same seed gives the official code's initial weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations, parametrize

from vocoder_cli.models.config import GeneratorConfig

LRELU_SLOPE = 0.1
FP32_TAIL_CHANNELS = 16  # under a lower precision, stages this narrow (and those after) stay float32


def full_precision(enabled: bool, device_type: str) -> torch.autocast | nullcontext:
    """Autocast switched off inside (float32 compute), when ``enabled``."""
    return torch.autocast(device_type, enabled=False) if enabled else nullcontext()


def get_padding(kernel_size: int, dilation: int = 1) -> int:
    return (kernel_size * dilation - dilation) // 2


def init_weights(module: nn.Module, std: float = 0.01) -> None:
    """N(0, std) for a convolution weight: the official ``init_weights`` as it was meant to work."""
    if isinstance(module, (nn.Conv1d, nn.ConvTranspose1d, nn.Conv2d)):
        module.weight.data.normal_(0.0, std)


def conv_modules(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.Conv1d, nn.ConvTranspose1d, nn.Conv2d))]


def add_weight_norm(module: nn.Module) -> None:
    for m in conv_modules(module):
        if not parametrize.is_parametrized(m, "weight"):
            parametrizations.weight_norm(m, name="weight", dim=0)


def fold_weight_norm(module: nn.Module) -> None:
    for m in conv_modules(module):
        if parametrize.is_parametrized(m, "weight"):
            parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)


class PaddedTails:
    """The valid length of each item of a padded batch at one layer's rate. :meth:`zero` zeroes what lies past
    it, in place, so that every layer of a batch item sees the zero padding it sees when run alone: a batch of
    unequal lengths then gives each item exactly its own output (without it, the padding frames reach the
    last receptive field of samples of every shorter item: up to 4% of peak with LJ_V1)."""

    def __init__(self, lengths: Sequence[int]) -> None:
        self.lengths = list(lengths)

    def zero(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C, (1,) T] with its samples past each item's length set to 0 (in place); x returned."""
        for item, length in enumerate(self.lengths):
            if length < x.shape[-1]:
                x[item, ..., length:] = 0
        return x

    def upsampled(self, rate: int) -> "PaddedTails":
        return PaddedTails([length * rate for length in self.lengths])


def _zero_tails(x: torch.Tensor, tails: PaddedTails | None) -> torch.Tensor:
    return x if tails is None else tails.zero(x)


class ResBlock1(nn.Module):
    """Two convs per dilation (dilated, then dilation 1), each pair residual."""

    def __init__(self, channels: int, kernel_size: int, dilation: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, 1, dilation=d, padding=get_padding(kernel_size, d))
            for d in dilation
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, 1, dilation=1, padding=get_padding(kernel_size, 1))
            for _ in dilation
        )

    def forward(self, x: torch.Tensor, tails: PaddedTails | None = None) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2):
            xt = _zero_tails(c1(F.leaky_relu(x, LRELU_SLOPE)), tails)
            xt = _zero_tails(c2(F.leaky_relu(xt, LRELU_SLOPE)), tails)
            x = xt + x
        return x


class ResBlock2(nn.Module):
    """One dilated conv per dilation, each residual (the V3 block)."""

    def __init__(self, channels: int, kernel_size: int, dilation: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, 1, dilation=d, padding=get_padding(kernel_size, d))
            for d in dilation
        )

    def forward(self, x: torch.Tensor, tails: PaddedTails | None = None) -> torch.Tensor:
        for conv in self.convs:
            x = _zero_tails(conv(F.leaky_relu(x, LRELU_SLOPE)), tails) + x
        return x


class Generator(nn.Module):
    """Mel [B, n_mels, frames] -> waveform [B, 1, frames * hop] in [-1, 1]."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_kernels = len(cfg.resblock_kernel_sizes)
        self.num_upsamples = len(cfg.upsample_rates)
        self.conv_pre = nn.Conv1d(cfg.n_mels, cfg.upsample_initial_channel, 7, 1, padding=3)
        block = ResBlock1 if cfg.resblock == "1" else ResBlock2
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        channels = [cfg.upsample_initial_channel // 2**i for i in range(len(cfg.upsample_rates) + 1)]
        for i, (u, k) in enumerate(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes)):
            self.ups.append(nn.ConvTranspose1d(channels[i], channels[i + 1], k, u, padding=(k - u) // 2))
        for ch in channels[1:]:  # after all ups, as the official code: the same seed, the same weights
            for k_res, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes):
                self.resblocks.append(block(ch, k_res, d))
        self.conv_post = nn.Conv1d(channels[-1], 1, 7, 1, padding=3)

    @property
    def hop_length(self) -> int:
        return self.cfg.hop_length

    @property
    def fp32_tail_start(self) -> int:
        """The first upsampling stage that stays float32 under a lower precision (``generate(fp32_tail=True)``;
        ``num_upsamples`` when none does): every stage whose output has at most 16 channels, and what follows
        it. conv_post (to one channel) is always float32. Measured with bf16 (PESQ against fp32, ljspeech/dev
        and reader_m/test): V2 (16 and 8 channels in its last two stages) lost 0.08 on ljspeech/dev with every
        layer in bf16 and 0.044 on reader_m/test with only its last stage in float32, and holds with both.
        V1 (32 channels at the end) holds with every stage in bf16; V3 (32 at the end too) follows the rule
        unmeasured (no real V3 weights). Narrow layers have few channels to average bf16's rounding away."""
        widths = [self.cfg.upsample_initial_channel // 2 ** (i + 1) for i in range(self.num_upsamples)]
        narrow = [i for i, width in enumerate(widths) if width <= FP32_TAIL_CHANNELS]
        return min([*narrow, self.num_upsamples])

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.generate(mel)

    def generate(
        self, mel: torch.Tensor, fp32_tail: bool = False, lengths: Sequence[int] | None = None
    ) -> torch.Tensor:
        """:meth:`forward` (whose signature stays ``mel`` alone for tracing and export), plus ``fp32_tail``: run the
        stages from :attr:`fp32_tail_start` on and conv_post in float32 (autocast off there, the input cast
        to float32; measured on ljspeech/dev with bf16: LJ_V2 lost 0.08 PESQ with every layer in bf16), and
        ``lengths``: each item's frames in a padded batch, whose padding then changes no item's output
        (:class:`PaddedTails`)."""
        tails = None if lengths is None else PaddedTails(lengths)
        mel = mel if tails is None else tails.zero(mel.clone())  # the caller's batch stays as it is
        x = _zero_tails(self.conv_pre(mel), tails)
        start = self.fp32_tail_start
        for i, up in enumerate(self.ups):
            with full_precision(fp32_tail and i >= start, x.device.type):
                x = x.float() if fp32_tail and i == start else x
                tails = None if tails is None else tails.upsampled(self.cfg.upsample_rates[i])
                x = _zero_tails(up(F.leaky_relu(x, LRELU_SLOPE)), tails)
                blocks = self.resblocks[i * self.num_kernels : (i + 1) * self.num_kernels]
                xs = blocks[0](x, tails)
                for block in blocks[1:]:
                    xs = xs + block(x, tails)
                x = xs / self.num_kernels
        with full_precision(fp32_tail, x.device.type):
            x = x.float() if fp32_tail else x
            x = self.conv_post(F.leaky_relu(x))  # the official code uses the default slope 0.01 here
        return torch.tanh(x)

    def init_normal(self, std: float = 0.01) -> "Generator":
        """N(0, ``std``) on the layers the official ``init_weights`` targets (ups, resblocks, conv_post;
        not conv_pre). Call before :meth:`apply_weight_norm`, or it would be lost as in the official code."""
        for part in (self.ups, self.resblocks, self.conv_post):
            part.apply(lambda m: init_weights(m, std))
        return self

    def apply_weight_norm(self) -> "Generator":
        """Wrap every convolution in weight norm (for training), exactly preserving the function."""
        add_weight_norm(self)
        return self

    def remove_weight_norm(self) -> "Generator":
        """Fold weight norm into plain weights (for inference and for saving)."""
        fold_weight_norm(self)
        return self
