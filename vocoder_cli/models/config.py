"""Generator configuration: every size is config, checked against the mel config at load time."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from vocoder_cli.errors import ConfigError
from vocoder_cli.mel import MelConfig


@dataclass(frozen=True)
class GeneratorConfig:
    """The HiFi-GAN generator's architecture (names follow the official config.json)."""

    resblock: str = "1"
    upsample_rates: tuple[int, ...] = (8, 8, 2, 2)
    upsample_kernel_sizes: tuple[int, ...] = (16, 16, 4, 4)
    upsample_initial_channel: int = 512
    resblock_kernel_sizes: tuple[int, ...] = (3, 7, 11)
    resblock_dilation_sizes: tuple[tuple[int, ...], ...] = field(default=((1, 3, 5), (1, 3, 5), (1, 3, 5)))
    n_mels: int = 80

    def __post_init__(self) -> None:
        # Normalise lists from JSON into tuples so configs compare and hash.
        object.__setattr__(self, "upsample_rates", tuple(int(u) for u in self.upsample_rates))
        object.__setattr__(self, "upsample_kernel_sizes", tuple(int(k) for k in self.upsample_kernel_sizes))
        object.__setattr__(self, "resblock_kernel_sizes", tuple(int(k) for k in self.resblock_kernel_sizes))
        object.__setattr__(
            self, "resblock_dilation_sizes", tuple(tuple(int(d) for d in ds) for ds in self.resblock_dilation_sizes)
        )
        if self.resblock not in ("1", "2"):
            raise ConfigError(f"resblock must be '1' or '2', got {self.resblock!r}")
        if len(self.upsample_rates) != len(self.upsample_kernel_sizes):
            raise ConfigError("upsample_rates and upsample_kernel_sizes must have the same length")
        if len(self.resblock_kernel_sizes) != len(self.resblock_dilation_sizes):
            raise ConfigError("resblock_kernel_sizes and resblock_dilation_sizes must have the same length")
        for u, k in zip(self.upsample_rates, self.upsample_kernel_sizes):
            if k < u or (k - u) % 2:
                raise ConfigError(f"upsample kernel {k} must be >= rate {u} with an even difference")
        if self.upsample_initial_channel % (2 ** len(self.upsample_rates)):
            raise ConfigError("upsample_initial_channel must be divisible by 2 ** number of upsamples")

    @property
    def hop_length(self) -> int:
        """Samples per mel frame produced by the upsampling stack."""
        return math.prod(self.upsample_rates)

    def check_mel(self, mel: MelConfig) -> None:
        """Raise a clear error (not a shape error at step 1) when generator and mel disagree."""
        if self.hop_length != mel.hop_length:
            raise ConfigError(
                f"the product of upsample_rates {list(self.upsample_rates)} is {self.hop_length}, "
                f"but the mel hop_length is {mel.hop_length}: they must be equal"
            )
        if self.n_mels != mel.n_mels:
            raise ConfigError(f"generator n_mels {self.n_mels} differs from mel n_mels {mel.n_mels}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GeneratorConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


V1 = GeneratorConfig()
V2 = GeneratorConfig(upsample_initial_channel=128)
V3 = GeneratorConfig(
    resblock="2",
    upsample_rates=(8, 8, 4),
    upsample_kernel_sizes=(16, 16, 8),
    upsample_initial_channel=256,
    resblock_kernel_sizes=(3, 5, 7),
    resblock_dilation_sizes=((1, 2), (2, 6), (3, 12)),
)
GENERATOR_PRESETS: dict[str, GeneratorConfig] = {"v1": V1, "v2": V2, "v3": V3}


def generator_preset(name: str) -> GeneratorConfig:
    try:
        return GENERATOR_PRESETS[name.lower()]
    except KeyError:
        raise ConfigError(f"unknown generator preset {name!r}; known: {', '.join(GENERATOR_PRESETS)}") from None


def configs_from_official(data: dict[str, Any]) -> tuple[GeneratorConfig, MelConfig]:
    """Read an official HiFi-GAN ``config.json`` (keys num_mels, hop_size, sampling_rate, ...)."""
    try:
        gen = GeneratorConfig(
            resblock=str(data["resblock"]),
            upsample_rates=data["upsample_rates"],
            upsample_kernel_sizes=data["upsample_kernel_sizes"],
            upsample_initial_channel=int(data["upsample_initial_channel"]),
            resblock_kernel_sizes=data["resblock_kernel_sizes"],
            resblock_dilation_sizes=data["resblock_dilation_sizes"],
            n_mels=int(data.get("num_mels", 80)),
        )
        mel = MelConfig(
            sample_rate=int(data["sampling_rate"]),
            n_fft=int(data["n_fft"]),
            win_length=int(data["win_size"]),
            hop_length=int(data["hop_size"]),
            n_mels=int(data["num_mels"]),
            fmin=float(data["fmin"]),
            fmax=None if data.get("fmax") is None else float(data["fmax"]),
        )
    except KeyError as exc:
        raise ConfigError(f"official config.json lacks the key {exc}") from None
    gen.check_mel(mel)
    return gen, mel
