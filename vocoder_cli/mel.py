"""The mel frontend: exactly the official HiFi-GAN / Tacotron2 recipe, batched, CPU or CUDA.

Recipe (preset ``hifigan-22k``): reflect-pad (n_fft - hop) / 2 on each side, ``torch.stft`` with
``center=False`` (so frames == samples // hop), periodic Hann window, magnitude
``sqrt(re^2 + im^2 + 1e-9)``, Slaney-scale / Slaney-normalised mel filterbank (librosa's
default), natural log of ``clamp(x, min=1e-5)``. See docs/mel.md.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from vocoder_cli.errors import ConfigError


@dataclass(frozen=True)
class MelConfig:
    """Everything that determines a mel spectrogram; stored in every weights file."""

    sample_rate: int = 22050
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 256
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = 8000.0  # None means sample_rate / 2
    center: bool = False  # False: official HiFi-GAN framing; True: torchaudio-style framing
    power: float = 1.0  # 1: magnitude (HiFi-GAN); 2: power
    mag_eps: float = 1e-9  # added inside the sqrt of the magnitude
    log_floor: float = 1e-5  # ln(clamp(x, min=log_floor))
    mel_scale: str = "slaney"  # "slaney" or "htk"
    mel_norm: str | None = "slaney"  # "slaney" area normalisation or None

    def __post_init__(self) -> None:
        if self.win_length > self.n_fft:
            raise ConfigError(f"win_length {self.win_length} must be <= n_fft {self.n_fft}")
        if self.hop_length <= 0 or self.n_mels <= 0:
            raise ConfigError("hop_length and n_mels must be positive")
        if self.fmax is not None and self.fmax > self.sample_rate / 2:
            raise ConfigError(f"fmax {self.fmax} is above Nyquist ({self.sample_rate / 2})")
        if self.mel_scale not in ("slaney", "htk") or self.mel_norm not in ("slaney", None):
            raise ConfigError("mel_scale must be 'slaney' or 'htk' and mel_norm 'slaney' or null")

    @property
    def f_max(self) -> float:
        return float(self.fmax) if self.fmax is not None else self.sample_rate / 2

    @property
    def silence_level(self) -> float:
        """The log-mel value of digital silence, ln(log_floor) (-11.5129 by default)."""
        return math.log(self.log_floor)

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for ``num_samples`` samples."""
        if self.center:
            return num_samples // self.hop_length + 1
        return num_samples // self.hop_length

    def for_loss(self) -> "MelConfig":
        """The full-band mel used by HiFi-GAN's mel L1 loss (fmax = sr / 2)."""
        return replace(self, fmax=None)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown mel config keys: {sorted(unknown)}")
        return cls(**data)


MEL_PRESETS: dict[str, MelConfig] = {
    "hifigan-22k": MelConfig(),
    # The framing of torchaudio.transforms.MelSpectrogram(center=True, pad_mode="reflect"), used by
    # many course templates; frames == samples // hop + 1. Other values as HiFi-GAN.
    "torchaudio-22k": MelConfig(center=True),
    "hifigan-16k": MelConfig(sample_rate=16000, n_fft=1024, win_length=1024, hop_length=256, fmax=8000.0),
    "hifigan-24k": MelConfig(sample_rate=24000, n_fft=1024, win_length=1024, hop_length=256, n_mels=100, fmax=12000.0),
    "hifigan-44k": MelConfig(sample_rate=44100, n_fft=2048, win_length=2048, hop_length=512, n_mels=128, fmax=22050.0),
}


def mel_preset(name: str) -> MelConfig:
    try:
        return MEL_PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown mel preset {name!r}; known: {', '.join(MEL_PRESETS)}") from None


# ---------------------------------------------------------------------------------------------
# Filterbank (librosa.filters.mel semantics, computed in float64 here so the package needs no librosa)


def hz_to_mel(freq: np.ndarray, scale: str = "slaney") -> np.ndarray:
    freq = np.asarray(freq, dtype=np.float64)
    if scale == "htk":
        return 2595.0 * np.log10(1.0 + freq / 700.0)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    linear = freq / f_sp
    log_part = min_log_mel + np.log(np.maximum(freq, min_log_hz) / min_log_hz) / logstep
    return np.where(freq >= min_log_hz, log_part, linear)


def mel_to_hz(mels: np.ndarray, scale: str = "slaney") -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    if scale == "htk":
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    linear = f_sp * mels
    log_part = min_log_hz * np.exp(logstep * (mels - min_log_mel))
    return np.where(mels >= min_log_mel, log_part, linear)


def mel_filterbank(cfg: MelConfig) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] triangular filters, Slaney-normalised by default."""
    fft_freqs = np.linspace(0.0, cfg.sample_rate / 2, 1 + cfg.n_fft // 2)
    lo, hi = hz_to_mel(np.array(cfg.fmin), cfg.mel_scale), hz_to_mel(np.array(cfg.f_max), cfg.mel_scale)
    mel_freqs = mel_to_hz(np.linspace(lo, hi, cfg.n_mels + 2), cfg.mel_scale)
    fdiff = np.diff(mel_freqs)
    ramps = mel_freqs[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if cfg.mel_norm == "slaney":
        weights *= (2.0 / (mel_freqs[2:] - mel_freqs[:-2]))[:, None]
    return weights


# ---------------------------------------------------------------------------------------------


class MelSpectrogram(nn.Module):
    """Waveforms [B, T] (or [T]) -> log-mels [B, n_mels, frames], on the input's device.

    The window and filterbank are cached per (device, dtype) rather than registered as buffers, so
    the module has no state to save and follows whatever device the audio is on. Autocast is disabled
    inside: the STFT and the log are precision-sensitive. ``compute_dtype`` float64 (the default) matches
    a float64 reference to ~1e-7; float32 is what the official code does (~2e-4 off in quiet bins) and is
    the fast choice for training on a GPU. The output is always float32.
    """

    def __init__(self, cfg: MelConfig, compute_dtype: torch.dtype = torch.float64) -> None:
        super().__init__()
        self.cfg = cfg
        self.compute_dtype = compute_dtype
        self._basis_np = mel_filterbank(cfg).astype(np.float32)
        self._cache: dict[tuple[torch.device, torch.dtype], tuple[torch.Tensor, torch.Tensor]] = {}

    def _constants(self, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        key = (device, dtype)
        if key not in self._cache:
            window = torch.hann_window(self.cfg.win_length, device=device, dtype=dtype)
            basis = torch.from_numpy(self._basis_np).to(device=device, dtype=dtype)
            self._cache[key] = (window, basis)
        return self._cache[key]

    def magnitude(self, wav: torch.Tensor) -> torch.Tensor:
        """Linear magnitude (or power) spectrogram [B, n_fft//2+1, frames]."""
        cfg = self.cfg
        if wav.dim() == 1:
            wav = wav.unsqueeze(0)
        wav = wav.to(self.compute_dtype)
        pad = cfg.n_fft // 2 if cfg.center else (cfg.n_fft - cfg.hop_length) // 2
        if wav.shape[-1] <= pad:
            raise ValueError(f"signal of {wav.shape[-1]} samples is too short for the mel frontend (needs > {pad})")
        padded = torch.nn.functional.pad(wav.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        return self.framed_magnitude(padded)

    def framed_magnitude(self, padded: torch.Tensor) -> torch.Tensor:
        """Magnitude of an already padded signal [B, T] -> [B, n_fft//2+1, (T - n_fft) // hop + 1].

        The streaming frontend pads the signal itself, block by block (vocoder_cli/synthesis/streaming.py).
        """
        cfg = self.cfg
        padded = padded.to(self.compute_dtype)
        window, _ = self._constants(padded.device, padded.dtype)
        spec = torch.stft(
            padded,
            cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.win_length,
            window=window,
            center=False,
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()
        if cfg.power == 2.0:
            return power
        return torch.sqrt(power + cfg.mag_eps) if cfg.power == 1.0 else (power + cfg.mag_eps) ** (cfg.power / 2)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=wav.device.type, enabled=False):
            return self._log_mel(self.magnitude(wav))

    def from_padded(self, padded: torch.Tensor) -> torch.Tensor:
        """Log-mels [B, n_mels, frames] of an already padded signal [B, T] (see :meth:`framed_magnitude`)."""
        with torch.autocast(device_type=padded.device.type, enabled=False):
            return self._log_mel(self.framed_magnitude(padded))

    def _log_mel(self, mag: torch.Tensor) -> torch.Tensor:
        _, basis = self._constants(mag.device, mag.dtype)
        mel = torch.matmul(basis, mag)
        return torch.log(torch.clamp(mel, min=self.cfg.log_floor)).float()


def check_mel_fits(mel: torch.Tensor, cfg: MelConfig, name: str = "mel") -> None:
    """Refuse a mel whose shape or value range cannot come from ``cfg`` (the cause of buzzy output).

    Expected: [n_mels, frames] or [B, n_mels, frames], finite, log-magnitude values between
    ln(log_floor) and a loud maximum (about +5 for |x| <= 1 audio).
    """
    from vocoder_cli.errors import MelMismatchError

    expect = (
        f"expected a natural-log mel of shape [{cfg.n_mels}, frames] (n_mels={cfg.n_mels}, "
        f"values in [{cfg.silence_level:.2f}, ~5])"
    )
    if mel.dim() not in (2, 3) or mel.shape[-2] != cfg.n_mels:
        raise MelMismatchError(f"{name}: shape {tuple(mel.shape)} does not fit the model; {expect}")
    if mel.shape[-1] < 1:
        raise MelMismatchError(f"{name}: zero frames; {expect}")
    if not torch.isfinite(mel).all():
        raise MelMismatchError(f"{name}: contains NaN/inf; {expect}")
    lo, hi = float(mel.min()), float(mel.max())
    if lo < cfg.silence_level - 0.5 or hi > 8.0 or lo >= 0.0:  # no real log-mel is non-negative everywhere
        hint = ""
        if lo >= 0.0:
            hint = " (looks like a linear-amplitude mel: take the natural log first)"
        elif lo < -20:
            hint = " (looks like a dB or log10 mel with another floor: recompute it with this model's mel config)"
        raise MelMismatchError(f"{name}: values span [{lo:.2f}, {hi:.2f}]{hint}; {expect}")
