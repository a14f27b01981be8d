"""``device="auto"`` and friends: the device string every API function takes, checked before any work."""

from __future__ import annotations

import torch

from vocoder_cli.errors import ConfigError


def pick_device(device: str | torch.device = "auto") -> str:
    """``auto`` -> ``cuda`` when a CUDA GPU is visible, else ``cpu``; a CUDA device without a GPU is a
    ConfigError (said before anything loads, not as a CUDA error mid-run)."""
    text = str(device)
    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {text!r} was requested but no CUDA GPU is available (use cpu)")
    return text
