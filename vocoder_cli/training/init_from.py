"""``--init-from``: start a run from existing weights, and from an official run's training state.

Two sources:

* our ``.safetensors`` generator (folded weights): weight norm is re-derived (``|v| = g``); the
  discriminators and optimisers start fresh;
* an official ``g_XXXXXXXX`` (``config.json`` beside it). Its weight-norm ``g`` and ``v`` are kept as
  stored. With its ``do_XXXXXXXX`` beside it the run continues like the official ``train.py`` when it
  finds both files in its checkpoint folder: discriminators, both AdamW states (moments, step counts,
  the decayed learning rate), the step count and the epoch. ``reset_optimizer`` keeps the weights and
  starts fresh optimisers at step 0 with this config's learning rate.

Official step and epoch bookkeeping: ``do_S`` is saved after S + 1 updates (its loop increments
``steps`` after saving), so the run continues at step S + 1, the number the official code resumes
with; ``epoch`` is the epoch in progress, which the official code restarts from its first batch, and
so do we (index 0). The official resume also multiplies the restored learning rate by ``lr_decay``
once more (building ``ExponentialLR(last_epoch=epoch)`` takes a step); we keep the value in the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vocoder_cli.errors import ConfigError
from vocoder_cli.mel import MelConfig
from vocoder_cli.models import GeneratorConfig

StateDict = dict[str, torch.Tensor]


@dataclass
class OfficialTrainingState:
    """What an official ``do_`` file holds beyond the discriminator weights (optimisers in official order)."""

    optim_g: dict[str, Any]
    optim_d: dict[str, Any]  # parameters ordered msd then mpd, as the official train.py builds optim_d
    steps: int  # the official ``steps`` at save time: S + 1 updates were done
    epoch: int  # the epoch in progress (0-based)


@dataclass
class InitWeights:
    """What ``--init-from`` provides."""

    generator_state: StateDict
    generator: GeneratorConfig
    mel: MelConfig
    weight_norm: bool  # True: generator_state holds g and v (load after apply_weight_norm)
    discriminators: tuple[StateDict, StateDict] | None = None  # (mpd, msd), parametrization keys
    training: OfficialTrainingState | None = None
    notes: list[str] = field(default_factory=list)


def _do_file(g_path: Path) -> Path | None:
    if not g_path.name.startswith("g_"):
        return None
    do_path = g_path.with_name("do_" + g_path.name[2:])
    return do_path if do_path.is_file() else None


def init_path(spec: str) -> Path:
    """The file ``--init-from`` names: a path, or a weights name as every ``--weights`` takes it (the
    cache, never a download: the CLI pulls a registered name first). ConfigError when there is none, or
    for what cannot be trained from (an exported ONNX model, Griffin-Lim)."""
    from vocoder_cli.errors import WeightsError
    from vocoder_cli.weights.resolve import resolve_weights

    if spec.strip().lower() == "griffin-lim":
        raise ConfigError("--init-from griffin-lim: Griffin-Lim has no weights to start from")
    path = Path(spec).expanduser()
    if not path.is_file():
        try:
            path = resolve_weights(spec)
        except WeightsError as exc:
            raise ConfigError(f"--init-from {spec}: {exc}") from None
    if path.suffix.lower() == ".onnx":
        raise ConfigError(f"--init-from {spec}: an exported ONNX model cannot be trained; give the .safetensors "
                          "weights (or the name) it was exported from")
    return path


def init_configs(spec: str) -> tuple[GeneratorConfig, MelConfig]:
    """The generator and mel configs of ``--init-from`` weights, without reading a ``do_`` file."""
    path = init_path(spec)
    if path.suffix == ".safetensors":
        from vocoder_cli.weights.format import load_generator

        loaded = load_generator(path)
        return loaded.config, loaded.mel
    from vocoder_cli.weights.official import OFFICIAL_CONFIG_NAME, read_official_config

    generator, mel, _ = read_official_config(path.parent / OFFICIAL_CONFIG_NAME)
    return generator, mel


def load_init_weights(spec: str) -> InitWeights:
    """Our ``.safetensors`` file (a path or a weights name), or an official generator checkpoint (and its
    ``do_`` file when present)."""
    path = init_path(spec)
    if path.suffix == ".safetensors":
        from vocoder_cli.weights.format import load_generator

        loaded = load_generator(path)
        note = (
            f"init from generator {path} (folded weights: weight norm re-derived with |v| = g); "
            "no discriminators in it: they start untrained, optimisers fresh at step 0"
        )
        return InitWeights(loaded.generator.state_dict(), loaded.config, loaded.mel, weight_norm=False, notes=[note])

    from vocoder_cli.weights.official import (
        load_official_discriminators,
        official_training_generator,
    )

    state, gen_cfg, mel_cfg = official_training_generator(path)
    keeps_gv = any(k.endswith(".parametrizations.weight.original0") for k in state)
    init = InitWeights(state, gen_cfg, mel_cfg, weight_norm=keeps_gv)
    wn_note = "its weight-norm g and v kept" if keeps_gv else "saved without weight norm: re-derived with |v| = g"
    do_path = _do_file(path)
    if do_path is None:
        init.notes.append(
            f"init from official generator {path.name} ({wn_note}); no do_{path.name[2:]} beside it: "
            "the discriminators start untrained and the optimisers fresh at step 0"
        )
        return init
    mpd_state, msd_state, extra = load_official_discriminators(do_path)
    init.discriminators = (mpd_state, msd_state)
    init.notes.append(f"init from official generator {path.name} ({wn_note}) and discriminators {do_path.name}")
    if {"optim_g", "optim_d", "steps", "epoch"} <= set(extra):
        init.training = OfficialTrainingState(extra["optim_g"], extra["optim_d"], int(extra["steps"]), int(extra["epoch"]))
    else:
        missing = sorted({"optim_g", "optim_d", "steps", "epoch"} - set(extra))
        init.notes.append(f"{do_path.name} has no {', '.join(missing)}: optimisers fresh at step 0")
    return init


def load_generator_weights(generator: nn.Module, init: InitWeights) -> None:
    """Load into a generator *without* weight norm and leave it weight-normed, keeping g and v if given."""
    if init.weight_norm:
        generator.apply_weight_norm()
        generator.load_state_dict(init.generator_state)
    else:
        generator.load_state_dict(init.generator_state)
        generator.apply_weight_norm()


def official_optim_d_to_ours(state: dict[str, Any], n_mpd: int, n_msd: int) -> dict[str, Any]:
    """Reorder an official ``optim_d`` state (parameters msd then mpd) to ours (mpd then msd).

    Parameter ``i`` of the official list is MSD's ``i`` when ``i < n_msd``, else MPD's ``i - n_msd``;
    in ours MPD's come first. Within each network both orders follow ``module.parameters()`` (per conv:
    bias, then weight g and v), so only the two blocks swap.
    """
    groups = state["param_groups"]
    if len(groups) != 1 or len(groups[0]["params"]) != n_mpd + n_msd:
        count = sum(len(g["params"]) for g in groups)
        raise ValueError(f"optim_d has {count} parameters in {len(groups)} groups, our discriminators {n_mpd + n_msd}")
    ids = list(groups[0]["params"])

    def ours(i: int) -> int:
        return n_mpd + i if i < n_msd else i - n_msd

    new_state = {ours(ids.index(pid)): value for pid, value in state["state"].items()}
    group = dict(groups[0], params=list(range(n_mpd + n_msd)))
    return {"state": new_state, "param_groups": [group]}


def _check_fits(name: str, state: dict[str, Any], params: list[nn.Parameter]) -> None:
    groups = state.get("param_groups", [])
    count = sum(len(g["params"]) for g in groups)
    if len(groups) != 1 or count != len(params):
        raise ValueError(f"{name} has {count} parameters in {len(groups)} groups, ours {len(params)} in 1")
    ids = list(groups[0]["params"])
    for pid, buf in state["state"].items():
        param = params[ids.index(pid)]
        for key in ("exp_avg", "exp_avg_sq"):
            if key in buf and tuple(buf[key].shape) != tuple(param.shape):
                raise ValueError(f"{name} parameter {ids.index(pid)}: {key} {tuple(buf[key].shape)} vs {tuple(param.shape)}")


@dataclass
class Restored:
    step: int
    epoch: int
    notes: list[str]


def restore_training_state(
    init: InitWeights,
    reset: bool,
    discriminators_loaded: bool,
    optim_g: torch.optim.Optimizer,
    optim_d: torch.optim.Optimizer,
    mpd: nn.Module,
    msd: nn.Module,
) -> Restored:
    """Load the official optimiser states, step and epoch into a new run (all or nothing).

    Call before the schedulers are built: they then start from the restored (decayed) learning rate.
    Returns the step and epoch to continue from and what the log should say.
    """
    state = init.training
    lr = optim_g.param_groups[0]["lr"]
    if state is None:
        return Restored(0, 0, [])
    if reset:
        return Restored(0, 0, [
            f"--reset-optimizer: the official optimiser states (step {state.steps + 1}) are not used; "
            f"fresh AdamW at lr {lr:g}, step 0"
        ])
    if not discriminators_loaded:
        return Restored(0, 0, ["the official discriminators do not fit: their optimiser state is not used "
                               f"either; fresh AdamW at lr {lr:g}, step 0"])
    n_mpd, n_msd = len(list(mpd.parameters())), len(list(msd.parameters()))
    try:
        state_d = official_optim_d_to_ours(state.optim_d, n_mpd, n_msd)
        _check_fits("optim_g", state.optim_g, list(optim_g.param_groups[0]["params"]))
        _check_fits("optim_d", state_d, list(optim_d.param_groups[0]["params"]))
    except (ValueError, KeyError, TypeError) as exc:
        return Restored(0, 0, [f"the official optimiser state does not fit ({exc}): fresh AdamW at lr {lr:g}, step 0"])
    optim_g.load_state_dict(state.optim_g)
    optim_d.load_state_dict(state_d)
    step, epoch = state.steps + 1, state.epoch
    restored_lr = optim_g.param_groups[0]["lr"]
    return Restored(step, epoch, [
        f"restored the official training state: both AdamW states, step {step}, epoch {epoch}, "
        f"lr {restored_lr:.6g} (this config's lr {lr:g} is not used; --reset-optimizer starts fresh)"
    ])
