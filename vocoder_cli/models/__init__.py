"""HiFi-GAN generator (V1/V2/V3 or any config) and its MPD/MSD discriminators."""

from vocoder_cli.models.config import (
    GENERATOR_PRESETS,
    GeneratorConfig,
    generator_preset,
)
from vocoder_cli.models.discriminators import (
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
)
from vocoder_cli.models.generator import Generator

__all__ = [
    "GENERATOR_PRESETS",
    "Generator",
    "GeneratorConfig",
    "MultiPeriodDiscriminator",
    "MultiScaleDiscriminator",
    "generator_preset",
]
