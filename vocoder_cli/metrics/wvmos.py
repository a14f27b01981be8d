"""WV-MOS: wav2vec2-base plus a small regression head, loaded from the published checkpoint.

The ``wvmos`` package downloads wav2vec2 from the Hugging Face hub at import; here the encoder is built
from a local ``Wav2Vec2Config()`` (its defaults are the wav2vec2-base architecture), so scoring works
offline once the checkpoint (zenodo record 6201162, a Lightning file with ``model.encoder.*`` and
``model.dense.*`` keys) is in the weights cache. Loading never unpickles arbitrary objects.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vocoder_cli.errors import WeightsError

WVMOS_RATE = 16_000
WVMOS_NAME = "wvmos"
WVMOS_FILE = "wav2vec2.ckpt"
WVMOS_URL = "https://zenodo.org/record/6201162/files/wav2vec2.ckpt"
NORM_EPS = 1e-7  # Wav2Vec2FeatureExtractor's zero-mean unit-variance epsilon
# Renames from the 2021 transformers weight-norm keys to today's parametrizations.
_LEGACY_KEYS = {".weight_g": ".parametrizations.weight.original0", ".weight_v": ".parametrizations.weight.original1"}


def default_checkpoint() -> Path:
    """Where ``vocoder weights pull wvmos`` puts the file: <data dir>/weights/wvmos/wav2vec2.ckpt."""
    from vocoder_cli.weights.cache import cached_file

    return cached_file(WVMOS_NAME, WVMOS_FILE)


def find_checkpoint(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The checkpoint to use, or an error that says how to get one."""
    path = Path(explicit) if explicit else default_checkpoint()
    if not path.is_file():
        raise WeightsError(
            f"WV-MOS checkpoint not found at {path}: run `vocoder weights pull wvmos` "
            f"(downloads {WVMOS_URL}) or pass --wvmos-ckpt PATH"
        )
    return path


class WVMOS(nn.Module):
    """wav2vec2 encoder -> Linear(hidden, 128) -> ReLU -> Dropout -> Linear(128, 1), averaged over time."""

    def __init__(self, encoder_config: Any | None = None) -> None:
        super().__init__()
        from transformers import Wav2Vec2Config, Wav2Vec2Model

        config = encoder_config if encoder_config is not None else Wav2Vec2Config()
        self.encoder = Wav2Vec2Model(config)
        hidden = config.hidden_size
        self.dense = nn.Sequential(nn.Linear(hidden, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 1))

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        """Normalised 16 kHz audio [B, T] -> one score per utterance [B]."""
        hidden = self.encoder(wav).last_hidden_state
        return self.dense(hidden).mean(dim=(1, 2))


def normalise(wav: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per utterance: (x - mean) / sqrt(var + 1e-7)."""
    wav = wav.astype(np.float32)
    return (wav - wav.mean()) / np.sqrt(wav.var() + NORM_EPS)


def _state_dict(path: Path) -> dict[str, torch.Tensor]:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a usable checkpoint"
        raise WeightsError(f"{path}: cannot read the WV-MOS checkpoint safely ({exc})") from exc
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: not a WV-MOS checkpoint (no state_dict)")
    out = {}
    for key, value in state.items():
        if not key.startswith("model."):
            continue
        key = key[len("model.") :]
        for old, new in _LEGACY_KEYS.items():
            if key.endswith(old):
                key = key[: -len(old)] + new
        out[key] = value
    if not any(k.startswith("dense.") for k in out) or not any(k.startswith("encoder.") for k in out):
        raise WeightsError(f"{path}: not a WV-MOS checkpoint (expected model.encoder.* and model.dense.* keys)")
    return out


def load_wvmos(path: str | os.PathLike[str], device: str = "cpu", encoder_config: Any | None = None) -> WVMOS:
    """Build the model and load the checkpoint; every mismatch is a WeightsError naming the file."""
    model = WVMOS(encoder_config)
    state = _state_dict(Path(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k != "encoder.masked_spec_embed"]  # training-only parameter
    if missing or unexpected:
        raise WeightsError(
            f"{path}: checkpoint does not fit wav2vec2-base + WV-MOS head "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return model.eval().to(device)


def batches_by_length(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of equal length only: wav2vec2-base's group norm sees padding, so
    padded batching would change scores; equal-length clips batch exactly."""
    groups: dict[int, list[int]] = {}
    for index, length in enumerate(lengths):
        groups.setdefault(length, []).append(index)
    return [idx[i : i + batch_size] for idx in groups.values() for i in range(0, len(idx), batch_size)]


@torch.inference_mode()
def score_batch(model: WVMOS, wavs: Sequence[np.ndarray], device: str, batch_size: int = 8) -> list[float]:
    """WV-MOS of 16 kHz signals, batched where lengths agree, in input order."""
    scores = [0.0] * len(wavs)
    for batch in batches_by_length([len(w) for w in wavs], batch_size):
        x = torch.from_numpy(np.stack([normalise(wavs[i]) for i in batch])).to(device)
        for i, value in zip(batch, model(x).float().cpu().tolist()):
            scores[i] = float(value)
    return scores
