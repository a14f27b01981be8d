"""A vocoder: a mel -> waveform model with the mel config it expects, loaded by name or path on a backend.

``load_vocoder`` resolves ``griffin-lim``, a weights path (``.safetensors`` or our ``.onnx``) or a weights
name (pulled on first use), and picks the backend (torch or ONNX Runtime; ``auto`` times both once,
:mod:`vocoder_cli.synthesis.backends.tune`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from vocoder_cli.errors import WeightsError
from vocoder_cli.mel import MelConfig, mel_preset
from vocoder_cli.models.config import GeneratorConfig
from vocoder_cli.synthesis.backends import choose_backend, onnx_exporter_available
from vocoder_cli.synthesis.backends.onnx import (
    ACCURACY_BAR,
    cache_path,
    cached_export,
    is_onnx_path,
    load_onnx,
)
from vocoder_cli.synthesis.backends.tune import (
    choice_key,
    measure_faster,
    remembered_backend,
)

GRIFFIN_LIM = "griffin-lim"


def receptive_field_frames(cfg: GeneratorConfig) -> int:
    """Mel frames on each side that influence an output sample (exact bound, from the layer shapes)."""

    def resblock_halfwidth(kernel: int, dilations: tuple[int, ...]) -> int:
        per_conv = sum((kernel - 1) * d // 2 for d in dilations)
        return per_conv + (len(dilations) * (kernel - 1) // 2 if cfg.resblock == "1" else 0)

    half = 3  # conv_post, in output samples
    blocks = max(resblock_halfwidth(k, d) for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes))
    for rate, kernel in reversed(list(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes))):
        half += blocks
        half = math.ceil((half + kernel) / rate)  # through the transposed conv, back to its input rate
    return half + 3  # conv_pre


@dataclass
class Vocoder:
    """A mel -> waveform model with the mel config it expects."""

    model: nn.Module
    mel: MelConfig
    name: str
    context_frames: int
    backend: str = "torch"  # torch | onnx (what runs ``model``)

    @property
    def hop_length(self) -> int:
        return self.mel.hop_length


def load_vocoder(
    weights: str,
    device: str | torch.device = "cpu",
    *,
    offline: bool | None = None,
    notify: Callable[[str], None] | None = None,
    backend: str = "torch",
) -> Vocoder:
    """``griffin-lim`` (no weights), a weights file path (``.safetensors`` or our ``.onnx``), or a weights
    name (``default`` included).

    A registered name missing from the cache is pulled first (``notify`` gets one line saying what and
    from where), unless offline mode is on (``offline=True`` or ``VOCODER_OFFLINE=1``): then it is an
    error that gives the command to run. ``backend`` is torch, onnx or auto (see
    :func:`vocoder_cli.synthesis.backends.choose_backend`); safetensors weights on the onnx backend are exported
    once to a cached ONNX file (``notify`` says so).
    """
    if weights == GRIFFIN_LIM:
        from vocoder_cli.synthesis.griffinlim import GriffinLim

        mel = mel_preset("hifigan-22k")
        return Vocoder(GriffinLim(mel).to(device).eval(), mel, GRIFFIN_LIM, context_frames=16)
    from vocoder_cli.weights.download import sha256_of
    from vocoder_cli.weights.resolve import canonical_name, ensure_weights

    path = ensure_weights(weights, offline=offline, notify=notify)
    label = str(path) if Path(weights).expanduser().is_file() else canonical_name(weights)
    if is_onnx_path(path):
        if backend == "torch":
            raise WeightsError(f"{path}: an ONNX model runs on the onnx backend only (--backend onnx or auto)")
        return _onnx_vocoder(path, label, str(device))[0]
    if choose_backend(backend, str(device)) == "onnx":
        digest = sha256_of(path)
        cached = cache_path(path, sha256=digest)  # keyed by the weights' sha256, the opset and the ORT version
        exportable = cached.is_file() or onnx_exporter_available()
        if choose_backend(backend, str(device), exportable=exportable) == "onnx":
            key = choice_key(digest, torch.get_num_threads()) if backend == "auto" else None
            remembered = remembered_backend(key) if key else None
            if remembered == "torch":  # measured faster here before: no ONNX session needed
                return _torch_vocoder(path, label, device)
            if notify is not None and not cached.is_file():
                notify(f"exporting {label} to ONNX for the onnx backend (once; cached in {cached.parent})")
            vocoder, passed = _onnx_vocoder(cached_export(path, cached), label, str(device))
            if choose_backend(backend, str(device), onnx_checked=passed) == "onnx":
                if key is None or remembered == "onnx":
                    return vocoder
                return _faster(_torch_vocoder(path, label, device), vocoder, key, notify)
    return _torch_vocoder(path, label, device)


def _torch_vocoder(path: Path, label: str, device: str | torch.device) -> Vocoder:
    from vocoder_cli.weights.format import load_generator

    loaded = load_generator(path, device)
    if loaded.mel.center:
        raise WeightsError(f"{path}: generators trained on centred mels are not supported for synthesis")
    return Vocoder(loaded.generator, loaded.mel, label, receptive_field_frames(loaded.config) + 2)


def _faster(torch_vocoder: Vocoder, onnx_vocoder: Vocoder, key: str, notify: Callable[[str], None] | None) -> Vocoder:
    """``auto`` on the CPU, first time for these weights here: time both, keep and remember the faster."""
    from vocoder_cli.demo import speech_mel

    mel = torch_vocoder.mel
    choice = measure_faster(
        {"torch": torch_vocoder.model, "onnx": onnx_vocoder.model},
        lambda: speech_mel(mel, 2.0)[None],
        key,
        notify=notify,
        hop_seconds=mel.hop_length / mel.sample_rate,
    )
    return onnx_vocoder if choice.backend == "onnx" else torch_vocoder


def _onnx_vocoder(path: Path, label: str, device: str) -> tuple[Vocoder, bool]:
    """One of our ONNX files as a Vocoder, and whether its export passed the accuracy check."""
    if not device.startswith("cpu"):
        raise WeightsError(f"the onnx backend runs on the CPU, not {device}: use --backend torch there")
    loaded = load_onnx(path)
    if loaded.mel.center:
        raise WeightsError(f"{path}: generators trained on centred mels are not supported for synthesis")
    context = receptive_field_frames(loaded.config) + 2
    return Vocoder(loaded.generator, loaded.mel, label, context, backend="onnx"), loaded.max_rel_error <= ACCURACY_BAR
