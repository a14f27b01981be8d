"""Our weights format: one self-describing ``.safetensors`` file per generator.

The tensors are the folded (weight-norm-free) generator state dict; the metadata holds
``format``, ``generator_config`` and ``mel_config`` as JSON, plus free-form provenance. Loading
never unpickles anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save

from vocoder_cli.audio import atomic_write_bytes
from vocoder_cli.errors import ConfigError, WeightsError
from vocoder_cli.mel import MelConfig
from vocoder_cli.models.config import GeneratorConfig
from vocoder_cli.models.generator import Generator

FORMAT_TAG = "vocoder-generator/1"


@dataclass
class LoadedGenerator:
    """A ready-to-run generator (eval mode, weight norm folded) with its configs."""

    generator: Generator
    mel: MelConfig
    config: GeneratorConfig
    metadata: dict[str, str] = field(default_factory=dict)
    source: str = ""


def folded_state_dict(generator: Generator) -> dict[str, torch.Tensor]:
    """Plain ``weight``/``bias`` tensors, evaluating any weight-norm parametrisation (no copy of the model)."""
    state: dict[str, torch.Tensor] = {}
    for name, module in generator.named_modules():
        if isinstance(module, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
            state[f"{name}.weight"] = module.weight.detach().to("cpu").contiguous()
            state[f"{name}.bias"] = module.bias.detach().to("cpu").contiguous()
    return state


def save_generator(
    path: str | Path,
    generator: Generator,
    mel: MelConfig,
    *,
    metadata: dict[str, str] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write ``generator`` (weight norm folded) and its configs atomically to ``path``."""
    generator.cfg.check_mel(mel)
    tensors = {k: v.to(dtype) for k, v in folded_state_dict(generator).items()}
    meta = {
        "format": FORMAT_TAG,
        "generator_config": json.dumps(generator.cfg.to_dict()),
        "mel_config": json.dumps(mel.to_dict()),
        **(metadata or {}),
    }
    return atomic_write_bytes(path, save(tensors, metadata=meta))


def read_metadata(path: str | Path) -> dict[str, str]:
    """The metadata of a weights file, without reading its tensors."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from exc
    if meta.get("format") != FORMAT_TAG:
        raise WeightsError(f"{path}: not a vocoder generator file (format tag {meta.get('format')!r})")
    return meta


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> LoadedGenerator:
    """Build the generator described by the file's metadata and load its weights (float32, eval)."""
    meta = read_metadata(path)
    try:
        gen_cfg = GeneratorConfig.from_dict(json.loads(meta["generator_config"]))
        mel_cfg = MelConfig.from_dict(json.loads(meta["mel_config"]))
    except (KeyError, json.JSONDecodeError, TypeError) as exc:
        raise WeightsError(f"{path}: broken config metadata ({exc})") from exc
    except ConfigError as exc:
        raise WeightsError(f"{path}: {exc}") from exc
    gen_cfg.check_mel(mel_cfg)
    generator = Generator(gen_cfg)
    state = {k: v.float() for k, v in load_file(str(path)).items()}
    try:
        generator.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: tensors do not match the stored config ({exc})") from exc
    generator.eval().requires_grad_(False).to(device)
    return LoadedGenerator(generator, mel_cfg, gen_cfg, meta, str(path))
