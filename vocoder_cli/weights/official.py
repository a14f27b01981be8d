"""Read official HiFi-GAN checkpoints (jik876/hifi-gan) without trusting their pickles.

``g_XXXXXXXX`` holds ``{'generator': state_dict}`` in legacy weight-norm form (``weight_g``,
``weight_v``); ``do_XXXXXXXX`` holds ``mpd``, ``msd``, ``optim_g``, ``optim_d``, ``steps``, ``epoch``.
Both are pickles, so they are only ever read with ``torch.load(weights_only=True)``: a file that asks
to build arbitrary objects or call functions is refused before anything in it runs.

Generator weights are folded (``w = g * v / ||v||``, the norm over every dim but 0, as
``weight_norm(dim=0)`` computes it for Conv1d and ConvTranspose1d) into our plain layout, whose
module names are the official ones (V1/V2: ``resblocks.N.convs1.M``/``convs2.M``; V3:
``resblocks.N.convs.M``). Discriminator weights are renamed to torch parametrization keys.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vocoder_cli.errors import ConfigError, WeightsError
from vocoder_cli.mel import MelConfig
from vocoder_cli.models.config import GeneratorConfig, configs_from_official
from vocoder_cli.models.discriminators import (
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
)
from vocoder_cli.models.generator import Generator

StateDict = dict[str, torch.Tensor]
OFFICIAL_CONFIG_NAME = "config.json"
_PARAM_G = "parametrizations.weight.original0"
_PARAM_V = "parametrizations.weight.original1"


@dataclass
class ImportedGenerator:
    """An official generator converted to our layout, with its configs and provenance."""

    generator: Generator
    mel: MelConfig
    config: GeneratorConfig
    metadata: dict[str, str] = field(default_factory=dict)


def load_plain_checkpoint(path: str | Path) -> dict[str, Any]:
    """``torch.load(weights_only=True)``: tensors, numbers, strings and containers only, never code."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such checkpoint file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 (untrusted input: any failure means "refused")
        raise WeightsError(
            f"{path}: not a plain checkpoint ({_refusal_reason(exc)}); it was not loaded. Only tensors, "
            "numbers, strings and containers are accepted (torch.load with weights_only=True)"
        ) from None
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: expected a dict checkpoint, found {type(data).__name__}")
    return data


def _refusal_reason(exc: Exception) -> str:
    text = str(exc)
    match = re.search(r"unsupported GLOBAL (\S+)", text) or re.search(r"Unsupported global: GLOBAL (\S+)", text)
    if match:
        return f"it asks to call or build {match.group(1)}, which a weights file never needs"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"{type(exc).__name__}: {first[:200]}"


def _strip_prefix(state: dict[str, Any], prefix: str = "module.") -> dict[str, Any]:
    """Drop a DataParallel/DDP ``module.`` prefix when every key has it."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return state


def fold_weight(g: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``g * v / ||v||`` with the norm over all dims but 0 (weight_norm with dim=0), in float64."""
    v64 = v.double()
    norm = v64.flatten(1).norm(dim=1).reshape(-1, *([1] * (v.dim() - 1)))
    return (v64 * (g.double().reshape(norm.shape) / norm)).to(v.dtype)


def fold_weight_norm_state(state: dict[str, Any], source: str = "checkpoint") -> StateDict:
    """Replace every ``X.weight_g``/``X.weight_v`` (or parametrization ``original0/1``) pair by ``X.weight``."""
    out: StateDict = {}
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"{source}: entry {key!r} is a {type(value).__name__}, not a tensor")
        for suffix, part in ((".weight_g", "g"), (".weight_v", "v"), (f".{_PARAM_G}", "g"), (f".{_PARAM_V}", "v")):
            if key.endswith(suffix):
                pairs.setdefault(key[: -len(suffix)], {})[part] = value
                break
        else:
            out[key] = value
    for prefix, pair in pairs.items():
        if set(pair) != {"g", "v"}:
            only = next(iter(pair))
            raise WeightsError(f"{source}: {prefix} has only weight_{only}, not both weight_g and weight_v")
        out[f"{prefix}.weight"] = fold_weight(pair["g"], pair["v"])
    return out


def generator_state_from_checkpoint(data: dict[str, Any], source: str = "checkpoint") -> StateDict:
    """The folded generator state dict of an official ``g_`` checkpoint (or a bare state dict)."""
    if "generator" in data:
        state = data["generator"]
    elif any(k.startswith(("conv_pre.", "module.conv_pre.")) for k in data):
        state = data
    elif {"mpd", "msd"} & set(data):
        raise WeightsError(f"{source}: this is a discriminator checkpoint (do_XXXXXXXX); import the g_XXXXXXXX file")
    else:
        raise WeightsError(f"{source}: no 'generator' entry (keys: {sorted(data)[:8]})")
    if not isinstance(state, dict):
        raise WeightsError(f"{source}: 'generator' is a {type(state).__name__}, not a state dict")
    return fold_weight_norm_state(_strip_prefix(state), source)


def _layout_of(state: StateDict) -> str | None:
    if any(re.match(r"resblocks\.\d+\.convs1\.", k) for k in state):
        return "1"
    if any(re.match(r"resblocks\.\d+\.convs\.", k) for k in state):
        return "2"
    return None


def build_generator(state: StateDict, cfg: GeneratorConfig, source: str = "checkpoint") -> Generator:
    """Our Generator for ``cfg`` with ``state`` loaded strictly; mismatches name the keys."""
    layout = _layout_of(state)
    if layout is not None and layout != cfg.resblock:
        names = {"1": "ResBlock1 (V1/V2: resblocks.N.convs1/convs2)", "2": "ResBlock2 (V3: resblocks.N.convs)"}
        raise WeightsError(
            f"{source}: the weights use {names[layout]} but the config says resblock {cfg.resblock!r}; "
            "pass the config.json that was trained with these weights"
        )
    generator = Generator(cfg)
    expected = generator.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and expected[k].shape != state[k].shape]
    if missing or unexpected or wrong:
        details = []
        if missing:
            details.append(f"missing {len(missing)} (e.g. {', '.join(missing[:3])})")
        if unexpected:
            details.append(f"unexpected {len(unexpected)} (e.g. {', '.join(unexpected[:3])})")
        if wrong:
            k = wrong[0]
            shapes = f"file {list(state[k].shape)}, config {list(expected[k].shape)}"
            details.append(f"{len(wrong)} with other shapes (e.g. {k}: {shapes})")
        raise WeightsError(f"{source}: the weights do not fit the config: {'; '.join(details)}")
    generator.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return generator.eval().requires_grad_(False)


def read_official_config(path: str | Path) -> tuple[GeneratorConfig, MelConfig, dict[str, Any]]:
    """Generator and mel configs from an official ``config.json``; errors name the file."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WeightsError(
            f"{path}: not found; official checkpoints need the config.json they were trained with "
            "(put it beside the checkpoint or pass --config)"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path}: not a readable JSON config ({exc})") from None
    if not isinstance(raw, dict):
        raise WeightsError(f"{path}: expected a JSON object")
    try:
        gen_cfg, mel_cfg = configs_from_official(raw)
    except (ConfigError, TypeError, ValueError) as exc:
        raise WeightsError(f"{path}: {exc}") from None
    return gen_cfg, mel_cfg, raw


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def import_official_generator(
    checkpoint: str | Path, config: str | Path | None = None
) -> ImportedGenerator:
    """Convert an official generator checkpoint (``config.json`` beside it unless given) to our model."""
    checkpoint = Path(checkpoint)
    config_path = Path(config) if config is not None else checkpoint.parent / OFFICIAL_CONFIG_NAME
    data = load_plain_checkpoint(checkpoint)
    state = generator_state_from_checkpoint(data, str(checkpoint))
    gen_cfg, mel_cfg, _raw = read_official_config(config_path)
    generator = build_generator(state, gen_cfg, str(checkpoint))
    metadata = {
        "source": "official HiFi-GAN checkpoint (jik876/hifi-gan)",
        "original_file": checkpoint.name,
        "original_sha256": _sha256(checkpoint),
        "original_config_sha256": _sha256(config_path),
    }
    return ImportedGenerator(generator, mel_cfg, gen_cfg, metadata)


def official_training_generator(
    checkpoint: str | Path, config: str | Path | None = None
) -> tuple[StateDict, GeneratorConfig, MelConfig]:
    """An official ``g_`` file for training: ``(state, generator config, mel config)``.

    Unlike :func:`import_official_generator` (which folds weight norm for inference), the state keeps
    the checkpoint's own weight-norm ``g`` and ``v`` under torch parametrization keys
    (``X.parametrizations.weight.original0`` = g, ``original1`` = v), for
    ``Generator(cfg).apply_weight_norm().load_state_dict(state)``. Re-deriving them from folded
    weights would set ``|v| = g`` and change every layer's effective step size (``|v| / g`` spans
    0.26-5.6 by layer median in the LJ_V2 checkpoint). A checkpoint saved without weight norm comes
    back with plain ``X.weight`` keys.
    """
    checkpoint = Path(checkpoint)
    config_path = Path(config) if config is not None else checkpoint.parent / OFFICIAL_CONFIG_NAME
    data = load_plain_checkpoint(checkpoint)
    gen_cfg, mel_cfg, _raw = read_official_config(config_path)
    # Validate the layout and shapes on the folded form: its errors name the keys and the config.
    build_generator(generator_state_from_checkpoint(data, str(checkpoint)), gen_cfg, str(checkpoint))
    raw = data["generator"] if "generator" in data else data
    state = {k: v.float() for k, v in to_parametrized_state(raw, str(checkpoint)).items()}
    return state, gen_cfg, mel_cfg


def to_parametrized_state(state: dict[str, Any], source: str = "checkpoint") -> StateDict:
    """Rename legacy weight-norm / spectral-norm keys to torch.nn.utils.parametrizations keys.

    weight_g -> parametrizations.weight.original0, weight_v -> ...original1 (weight norm);
    weight_orig -> ...original, weight_u -> ...0._u, weight_v -> ...0._v (spectral norm).
    """
    state = _strip_prefix(state)
    spectral = {k[: -len(".weight_orig")] for k in state if k.endswith(".weight_orig")}
    out: StateDict = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise WeightsError(f"{source}: entry {key!r} is a {type(value).__name__}, not a tensor")
        prefix, _, leaf = key.rpartition(".")
        if prefix in spectral and leaf in ("weight_orig", "weight_u", "weight_v"):
            new_leaf = {"weight_orig": "original", "weight_u": "0._u", "weight_v": "0._v"}[leaf]
            out[f"{prefix}.parametrizations.weight.{new_leaf}"] = value
        elif leaf == "weight_g":
            out[f"{prefix}.{_PARAM_G}"] = value
        elif leaf == "weight_v":
            out[f"{prefix}.{_PARAM_V}"] = value
        else:
            out[key] = value
    return out


def load_official_discriminators(do_path: str | Path) -> tuple[StateDict, StateDict, dict[str, Any]]:
    """``(mpd_state, msd_state, extra)`` from an official ``do_XXXXXXXX`` file, for ``--init-from``.

    The state dicts load with ``strict=True`` into our MultiPeriodDiscriminator and
    MultiScaleDiscriminator; ``extra`` holds whatever of ``optim_g``, ``optim_d``, ``steps`` and
    ``epoch`` the file has. (The official optimisers list each conv's parameters as bias, weight_g,
    weight_v, the same order as our parametrized modules.)
    """
    do_path = Path(do_path)
    data = load_plain_checkpoint(do_path)
    missing = [k for k in ("mpd", "msd") if k not in data]
    if missing:
        hint = " (this looks like a generator file g_XXXXXXXX)" if "generator" in data else ""
        raise WeightsError(f"{do_path}: no {' or '.join(repr(k) for k in missing)} entry{hint}")
    states = []
    for key in ("mpd", "msd"):
        if not isinstance(data[key], dict):
            raise WeightsError(f"{do_path}: {key!r} is a {type(data[key]).__name__}, not a state dict")
        states.append(to_parametrized_state(data[key], f"{do_path} [{key}]"))
    extra = {k: data[k] for k in ("optim_g", "optim_d", "steps", "epoch") if k in data}
    return states[0], states[1], extra


def official_discriminators(
    do_path: str | Path, periods: tuple[int, ...] = (2, 3, 5, 7, 11)
) -> tuple[MultiPeriodDiscriminator, MultiScaleDiscriminator, dict[str, Any]]:
    """Our MPD (official ``periods``) and MSD with an official ``do_`` file's weights loaded strictly."""
    mpd_state, msd_state, extra = load_official_discriminators(do_path)
    mpd, msd = MultiPeriodDiscriminator(periods), MultiScaleDiscriminator()
    for module, state, key in ((mpd, mpd_state, "mpd"), (msd, msd_state, "msd")):
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            detail = " ".join(str(exc).split())[:400]
            raise WeightsError(f"{do_path}: {key!r} does not fit our discriminator ({detail})") from None
    return mpd, msd, extra
