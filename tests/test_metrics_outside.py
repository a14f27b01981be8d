"""Signal metrics pinned to implementations outside this package, on real speech (LJSpeech dev clips)
with two realistic damages: white noise at 20 dB SNR and a 4 kHz band limit (resampled through 8 kHz).

Where a published number is defined by a constant, the constant is written here literally (never read
from the module under test), so a changed resolution or MCD constant fails these tests.

- M-STFT: auraloss ``MultiResolutionSTFTLoss`` (Steinmetz & Reiss, auraloss 0.4), the loss BigVGAN's
  ``train.py`` builds with its defaults and calls as ``loss_mrstft(y_g_hat, y)`` (generated, reference)
  for the M-STFT column of the BigVGAN paper (Lee et al. 2023, Table 1).
- SI-SDR: auraloss ``SISDRLoss`` (zero-mean, Le Roux et al. 2019), negated, as BigVGAN-v2's evaluation
  reports it.
- MCD, MCD-DTW: ``mel_cepstral_distance`` (Sternkopf & Taubert, PyPI ``mel-cepstral-distance``), whose
  ``compare_mfccs`` is the frame distance sqrt(sum_d (c_d - c'_d)^2) averaged frame by frame (``pad``) or
  along the minimum-cost DTW path (``dtw``, unrestricted with ``dtw_radius=None``). Its own cepstra are a
  DCT of a triangular mel filterbank's log10 energies, a different definition from ours (WORLD envelope,
  all-pass warped cepstrum as SPTK ``mcep``); so our mel-cepstra are fed to its distance and alignment,
  and its value times the literal 10 * sqrt(2) / ln(10) must equal ours.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import require_module
from vocoder_cli.metrics.signal import mcd, mcd_unaligned, mstft, sisdr, world_mel_cepstra

auraloss = require_module("auraloss", "test")
mel_cepstral_distance = require_module("mel_cepstral_distance", "test")

# Published definitions, written out (BigVGAN's M-STFT = auraloss defaults; MCD's dB constant).
AURALOSS_FFT_SIZES = [1024, 2048, 512]
AURALOSS_HOP_SIZES = [120, 240, 50]
AURALOSS_WIN_LENGTHS = [600, 1200, 240]
MCD_DB = 10.0 * math.sqrt(2.0) / math.log(10.0)  # 6.1418514637...


def _clips(data_dir: Path, count: int, seconds: float) -> list[tuple[np.ndarray, int]]:
    import soundfile as sf

    out = []
    for path in sorted((data_dir / "ljspeech" / "dev" / "wavs").glob("*.flac"))[:count]:
        wav, sr = sf.read(path, dtype="float32")
        out.append((wav[: int(seconds * sr)], sr))
    return out


def _damaged(x: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    import soxr

    noise = np.random.default_rng(0).standard_normal(x.size)
    noise *= np.sqrt(np.mean(x.astype(np.float64) ** 2) / np.mean(noise**2) / 10 ** (20 / 10))
    band = soxr.resample(soxr.resample(x, sr, 8000), 8000, sr)[: x.size]
    return {"noise20": (x + noise).astype(np.float32),
            "band4k": np.pad(band, (0, x.size - band.size)).astype(np.float32)}


def test_auraloss_defaults_are_the_published_m_stft_resolutions() -> None:
    """If auraloss ever changes its defaults, BigVGAN-style numbers change with it: say so here."""
    loss = auraloss.freq.MultiResolutionSTFTLoss()
    got = [(s.fft_size, s.hop_size, s.win_length) for s in loss.stft_losses]
    assert got == list(zip(AURALOSS_FFT_SIZES, AURALOSS_HOP_SIZES, AURALOSS_WIN_LENGTHS))


def test_mstft_equals_auraloss_on_real_speech(data_dir: Path) -> None:
    """auraloss computes in float32 windows (torch.hann_window default): rel 1e-5 (measured <= 1e-6)."""
    loss = auraloss.freq.MultiResolutionSTFTLoss(
        fft_sizes=AURALOSS_FFT_SIZES, hop_sizes=AURALOSS_HOP_SIZES, win_lengths=AURALOSS_WIN_LENGTHS,
        window="hann_window", w_sc=1.0, w_log_mag=1.0, w_lin_mag=0.0, w_phs=0.0, eps=1e-8,
    )
    for x, sr in _clips(data_dir, 2, 3.0):
        for name, g in _damaged(x, sr).items():
            theirs = float(loss(torch.from_numpy(g).double()[None, None], torch.from_numpy(x).double()[None, None]))
            assert mstft(x, g, sr)["mstft"] == pytest.approx(theirs, rel=1e-5), name


def test_sisdr_equals_auraloss_on_real_speech(data_dir: Path) -> None:
    """Also with a DC offset on the generated copy (both remove the means). auraloss regularises with
    eps = 1e-8, we with machine epsilon: abs 1e-4 dB (measured < 1e-6)."""
    loss = auraloss.time.SISDRLoss(zero_mean=True)
    for x, sr in _clips(data_dir, 2, 3.0):
        for name, g in {**_damaged(x, sr), "noise20+dc": _damaged(x, sr)["noise20"] + 0.05}.items():
            theirs = -float(loss(torch.from_numpy(g).double()[None, None], torch.from_numpy(x).double()[None, None]))
            assert sisdr(x, g, sr)["sisdr"] == pytest.approx(theirs, abs=1e-4), name


def test_mcd_frame_by_frame_equals_mel_cepstral_distance(data_dir: Path) -> None:
    """Same frames, same distance: equal to rounding (rel 1e-9; measured ~1e-15)."""
    for x, sr in _clips(data_dir, 2, 3.0):
        mc_ref = world_mel_cepstra(x.astype(np.float64), sr)
        for name, g in _damaged(x, sr).items():
            mc_gen = world_mel_cepstra(g.astype(np.float64), sr)
            theirs, _ = mel_cepstral_distance.compare_mfccs(mc_ref.T, mc_gen.T, s=1, D=25, aligning="pad")
            assert mc_ref.shape[1] == 25  # orders 0..24; c0 (energy) excluded by s=1
            assert mcd(x, g, sr)["mcd"] == pytest.approx(MCD_DB * theirs, rel=1e-9), name


def test_mcd_dtw_equals_mel_cepstral_distance_dtw(data_dir: Path) -> None:
    """Unrestricted DTW (ours: mcd_unaligned; theirs: fastdtw with a radius covering everything, which runs
    exact DTW) gives the same value (rel 1e-9). Our banded ``mcd_dtw`` equals it on the noisy copy, where
    the best path stays within the 0.2 s band. Two-second clips: fastdtw's exact DTW is pure Python."""
    for x, sr in _clips(data_dir, 2, 2.0):
        mc_ref = world_mel_cepstra(x.astype(np.float64), sr)
        for name, g in _damaged(x, sr).items():
            mc_gen = world_mel_cepstra(g.astype(np.float64), sr)
            theirs, _ = mel_cepstral_distance.compare_mfccs(mc_ref.T, mc_gen.T, s=1, D=25, aligning="dtw",
                                                            dtw_radius=None)
            assert mcd_unaligned(x, g, sr)["mcd_dtw"] == pytest.approx(MCD_DB * theirs, rel=1e-9), name
            if name == "noise20":
                assert mcd(x, g, sr)["mcd_dtw"] == pytest.approx(MCD_DB * theirs, rel=1e-9)
