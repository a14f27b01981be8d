"""Does an acoustic model's mel fit the vocoder's? Refuse, convert, or explain (never buzz in silence).

The mel config is compared field by field. Any difference in what a mel bin *means* (sample rate, FFT,
hop, mel count, band, scale, log floor, power) is refused with both configs printed: a vocoder fed such
mels buzzes. Two differences are harmless and handled here:

- ``center`` (framing). A centred STFT (torchaudio's, Tacotron2's) puts frame ``k`` on sample ``k*hop``
  and yields ``samples // hop + 1`` frames; HiFi-GAN's framing puts frame ``k`` on ``k*hop + hop/2`` and
  yields ``samples // hop``. The spectra are the same recipe, only sampled half a hop apart, so the last
  frame is dropped and the vocoder renders each frame half a hop (5.8 ms at 22.05 kHz) later than the
  model's grid: the audio is the same speech delayed by ``hop/2`` samples (measured in docs/tts.md).
- ``mag_eps`` (1e-9 inside the magnitude's square root): its effect is below the 1e-5 log floor.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from vocoder_cli.errors import MelMismatchError
from vocoder_cli.mel import MelConfig

_HARMLESS = {"mag_eps": 1e-6}  # field: largest difference that cannot matter


def _show(cfg: MelConfig) -> str:
    return ", ".join(f"{f.name}={getattr(cfg, f.name)}" for f in fields(cfg))


@dataclass(frozen=True)
class MelBridge:
    """How an acoustic model's mels reach a vocoder: ``to_vocoder`` converts one mel [n_mels, frames]."""

    source: MelConfig
    target: MelConfig
    drop_last_frame: bool = False
    explanation: str | None = None

    def to_vocoder(self, mel: torch.Tensor) -> torch.Tensor:
        if self.drop_last_frame and mel.shape[-1] > 1:
            return mel[..., :-1]
        return mel


def bridge(source: MelConfig, target: MelConfig, model: str = "the acoustic model") -> MelBridge:
    """The conversion from ``source`` mels to ``target`` mels, or a MelMismatchError naming every difference."""
    differ = [f.name for f in fields(MelConfig) if getattr(source, f.name) != getattr(target, f.name)]
    differ = [
        name for name in differ
        if not (name in _HARMLESS and abs(getattr(source, name) - getattr(target, name)) <= _HARMLESS[name])
    ]  # fmt: skip
    if source.f_max == target.f_max and "fmax" in differ:
        differ.remove("fmax")  # None and sample_rate / 2 are the same band
    refused = [name for name in differ if name != "center"]
    if refused or (differ and source.center is False):
        raise MelMismatchError(
            f"{model}'s mels do not fit the vocoder's (different {', '.join(refused or differ)}): a vocoder fed "
            f"them would buzz. {model}: {_show(source)}. vocoder: {_show(target)}. Choose vocoder weights "
            "trained on this mel config (or a model that predicts the vocoder's mels)."
        )
    if not differ:
        return MelBridge(source, target)
    half_hop_ms = 1000 * target.hop_length / 2 / target.sample_rate
    return MelBridge(
        source,
        target,
        drop_last_frame=True,
        explanation=(
            f"{model} predicts centred mels (frame k on sample k*hop, torchaudio's framing); the vocoder uses "
            f"HiFi-GAN framing (frame k on k*hop + hop/2). Same spectra half a hop apart: the last frame is "
            f"dropped and the speech comes out {target.hop_length // 2} samples ({half_hop_ms:.1f} ms) later."
        ),
    )
