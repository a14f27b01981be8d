"""Official-layout checkpoints for equivalence tests. The reference generator itself, an independent
compact re-implementation of jik876/hifi-gan's with the legacy ``torch.nn.utils.weight_norm`` (the layout
the public checkpoints were saved from), lives in the package (vocoder_cli/synthesis/reference.py) because
`vocoder bench synth` times against it; it loads official ``g_`` state dicts as they are.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from vocoder_cli.synthesis.reference import OFFICIAL_CONFIGS, RefGenerator

__all__ = ["CONFIG_COMMON", "OFFICIAL_CONFIGS", "RefGenerator", "write_official"]

CONFIG_COMMON = {
    "num_mels": 80, "n_fft": 1024, "hop_size": 256, "win_size": 1024, "sampling_rate": 22050,
    "fmin": 0, "fmax": 8000, "fmax_for_loss": None, "segment_size": 8192, "learning_rate": 0.0002,
}


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
