"""Weights: our safetensors format, the platformdirs cache and registry, downloads, official import."""

from vocoder_cli.weights.format import (
    LoadedGenerator,
    load_generator,
    read_metadata,
    save_generator,
)

__all__ = ["LoadedGenerator", "load_generator", "read_metadata", "save_generator"]
