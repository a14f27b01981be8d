"""Atomic training checkpoints: the last K kept, plus ``best`` by validation mel L1.

Each checkpoint is a pair written in this order:
``checkpoints/g_STEP.safetensors`` (the generator, folded, in our weights format, usable by
``vocoder resynth`` as is) and ``checkpoints/state_STEP.pt`` (everything a resume needs: the
weight-normed generator and discriminators, both optimisers and schedulers, step, epoch, data
position, RNG states). The state file is written last, so its presence marks a complete checkpoint.
It holds only tensors and primitives and is read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import torch

from vocoder_cli.audio import atomic_write_bytes
from vocoder_cli.errors import ConfigError
from vocoder_cli.mel import MelConfig
from vocoder_cli.models import Generator
from vocoder_cli.weights.format import save_generator

CHECKPOINT_DIR = "checkpoints"
BEST_WEIGHTS = "best.safetensors"
BEST_INFO = "best.json"
_STATE = re.compile(r"state_(\d+)\.pt$")


def state_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"state_{step:08d}.pt"


def generator_path(run_dir: Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"g_{step:08d}.safetensors"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    folder = Path(run_dir) / CHECKPOINT_DIR
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _STATE.match(p.name))]
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def save_checkpoint(
    run_dir: Path,
    step: int,
    state: dict[str, Any],
    generator: Generator,
    mel: MelConfig,
    keep: int,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write the generator file, then the state file (atomically), then drop all but the last ``keep``."""
    save_generator(generator_path(run_dir, step), generator, mel, metadata={"step": str(step), **(metadata or {})})
    buf = io.BytesIO()
    torch.save(state, buf)
    path = atomic_write_bytes(state_path(run_dir, step), buf.getvalue())
    prune_checkpoints(run_dir, keep)
    return path


def prune_checkpoints(run_dir: Path, keep: int) -> None:
    for step, path in list_checkpoints(run_dir)[: -max(1, keep)]:
        path.unlink(missing_ok=True)
        generator_path(run_dir, step).unlink(missing_ok=True)


def load_state(path: Path) -> dict[str, Any]:
    """Read a state file without unpickling arbitrary objects."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user-facing problem
        raise ConfigError(f"{path}: unreadable training checkpoint ({exc})") from exc


def save_best(run_dir: Path, generator: Generator, mel: MelConfig, step: int, val_mel_l1: float) -> Path:
    path = save_generator(
        Path(run_dir) / BEST_WEIGHTS, generator, mel, metadata={"step": str(step), "val_mel_l1": f"{val_mel_l1:.6f}"}
    )
    info = {"step": step, "val_mel_l1": val_mel_l1, "weights": BEST_WEIGHTS}
    atomic_write_bytes(Path(run_dir) / BEST_INFO, (json.dumps(info, indent=2) + "\n").encode())
    return path


def read_best(run_dir: Path) -> float | None:
    path = Path(run_dir) / BEST_INFO
    if not path.is_file():
        return None
    return float(json.loads(path.read_text())["val_mel_l1"])
