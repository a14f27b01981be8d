"""The mel frontend against an independent implementation (librosa filterbank + numpy STFT)."""

from __future__ import annotations

import math

import librosa
import numpy as np
import pytest
import torch

from tests.conftest import requires_data
from vocoder_cli.errors import ConfigError, MelMismatchError
from vocoder_cli.mel import (
    MEL_PRESETS,
    MelConfig,
    MelSpectrogram,
    check_mel_fits,
    mel_filterbank,
)


def reference_mel(wav: np.ndarray, cfg: MelConfig, *, mag_eps: float | None = None, log_floor: float | None = None,
                  fmax: float | None = None) -> np.ndarray:
    """float64 numpy: reflect pad, framed periodic-Hann rfft, sqrt(|X|^2 + eps), librosa mel, ln clamp.
    The constants that define the published recipe can be given literally instead of read from ``cfg``."""
    mag_eps = cfg.mag_eps if mag_eps is None else mag_eps
    log_floor = cfg.log_floor if log_floor is None else log_floor
    fmax = cfg.f_max if fmax is None else fmax
    pad = cfg.n_fft // 2 if cfg.center else (cfg.n_fft - cfg.hop_length) // 2
    x = np.pad(wav.astype(np.float64), (pad, pad), mode="reflect")
    n_frames = 1 + (len(x) - cfg.n_fft) // cfg.hop_length
    idx = np.arange(cfg.n_fft)[None, :] + cfg.hop_length * np.arange(n_frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(cfg.win_length) / cfg.win_length)
    spec = np.fft.rfft(x[idx] * window[None, :], axis=1).T
    mag = np.sqrt(spec.real**2 + spec.imag**2 + mag_eps)
    basis = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=cfg.fmin, fmax=fmax)
    return np.log(np.maximum(basis @ mag, log_floor))


@pytest.mark.parametrize("preset", ["hifigan-22k", "hifigan-16k", "hifigan-44k"])
def test_filterbank_equals_librosa(preset: str) -> None:
    cfg = MEL_PRESETS[preset]
    ours = mel_filterbank(cfg)
    published_fmax = {"hifigan-22k": 8000.0, "hifigan-16k": 8000.0, "hifigan-44k": 22050.0}[preset]
    ref = librosa.filters.mel(sr=cfg.sample_rate, n_fft=cfg.n_fft, n_mels=cfg.n_mels, fmin=0.0, fmax=published_fmax)
    assert ours.shape == ref.shape
    assert np.abs(ours - ref).max() < 1e-7  # docs/mel.md: max abs difference < 1e-7 (measured 1.6e-9)


def test_htk_filterbank_equals_librosa() -> None:
    cfg = MelConfig(mel_scale="htk", mel_norm=None)
    ref = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=8000, htk=True, norm=None)
    assert np.abs(mel_filterbank(cfg) - ref).max() < 1e-7  # measured 3.0e-8


@requires_data
def test_official_recipe_matches_reference_on_real_speech(speech_22k: tuple[np.ndarray, int]) -> None:
    """HiFi-GAN's meldataset.py: sqrt(|X|^2 + 1e-9), Slaney mel 0-8000 Hz, ln(clamp(x, 1e-5)); the
    constants are written here, not read from the config under test."""
    wav, sr = speech_22k
    cfg = MelConfig()
    assert sr == cfg.sample_rate == 22050 and (cfg.n_fft, cfg.win_length, cfg.hop_length, cfg.n_mels) == (1024, 1024, 256, 80)
    ref = reference_mel(wav, cfg, mag_eps=1e-9, log_floor=1e-5, fmax=8000.0)
    ours = MelSpectrogram(cfg)(torch.from_numpy(wav))[0].numpy()
    assert ours.shape == (80, len(wav) // 256) == ref.shape
    # float64 STFT (the default): only the float32 output's rounding is left (half an ulp is 4.8e-7 for
    # |log-mel| in [8, 16)); docs/mel.md quotes the bound asserted here. Measured 5.3e-7.
    assert np.abs(ours - ref).max() <= 6e-7
    # float32 STFT (the official code's precision, our fast training path): rounding in quiet bins only
    fast = MelSpectrogram(cfg, compute_dtype=torch.float32)(torch.from_numpy(wav))[0].numpy()
    assert np.abs(fast - ref).max() <= 2.5e-4  # measured 1.9e-4
    assert np.percentile(np.abs(fast - ref), 99) <= 1e-5  # measured 8.2e-6


@requires_data
def test_torchaudio_style_framing_matches_reference(speech_22k: tuple[np.ndarray, int]) -> None:
    wav, _ = speech_22k
    cfg = MEL_PRESETS["torchaudio-22k"]
    ours = MelSpectrogram(cfg)(torch.from_numpy(wav))[0].numpy()
    assert ours.shape[-1] == len(wav) // 256 + 1 == cfg.num_frames(len(wav))
    assert np.abs(ours - reference_mel(wav, cfg)).max() <= 6e-7  # measured 5.3e-7, as the official framing


@pytest.mark.parametrize("length", [385, 1000, 8192, 22050, 22051])
def test_frames_equal_samples_over_hop(length: int) -> None:
    wav = torch.randn(length) * 0.1
    assert MelSpectrogram(MelConfig())(wav).shape == (1, 80, length // 256)


def test_batched_equals_one_by_one() -> None:
    torch.manual_seed(0)
    wavs = torch.randn(3, 8192) * 0.3
    mel = MelSpectrogram(MelConfig())
    batched = mel(wavs)
    for i in range(3):
        assert torch.equal(batched[i], mel(wavs[i])[0])  # docs/mel.md: batched == one-by-one, bit for bit


def test_silence_sits_at_log_floor() -> None:
    mel = MelSpectrogram(MelConfig())(torch.zeros(4096))
    assert torch.allclose(mel, torch.full_like(mel, math.log(1e-5)))
    assert MelConfig().silence_level == pytest.approx(-11.5129, abs=1e-4)


def test_float32_under_autocast_and_cache_per_dtype() -> None:
    wav = torch.randn(2, 4096)
    mel = MelSpectrogram(MelConfig())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = mel(wav)
    assert out.dtype == torch.float32
    mel(wav.double())
    assert {k[1] for k in mel._cache} == {torch.float64}  # computed in compute_dtype whatever the input


def test_too_short_signal_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="too short"):
        MelSpectrogram(MelConfig())(torch.zeros(100))


def test_config_errors_are_clear() -> None:
    with pytest.raises(ConfigError, match="Nyquist"):
        MelConfig(sample_rate=16000, fmax=9000.0)
    with pytest.raises(ConfigError, match="unknown mel config keys"):
        MelConfig.from_dict({"sample_rate": 22050, "hop": 256})
    assert MelConfig.from_dict(MelConfig().to_dict()) == MelConfig()
    assert MelConfig().for_loss().f_max == 11025.0


def test_check_mel_fits_explains_what_it_expected() -> None:
    cfg = MelConfig()
    check_mel_fits(torch.full((80, 10), -5.0), cfg)
    with pytest.raises(MelMismatchError, match=r"shape \(100, 10\).*n_mels=80"):
        check_mel_fits(torch.zeros(100, 10), cfg)
    with pytest.raises(MelMismatchError, match="linear-amplitude"):
        check_mel_fits(torch.rand(80, 10) * 50, cfg)
    with pytest.raises(MelMismatchError, match="dB"):
        check_mel_fits(torch.full((80, 10), -80.0), cfg)
