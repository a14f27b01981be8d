"""Signal metrics checked against independent formulas (torch.stft, brute-force DTW, the all-pass
warping identity) and on degraded copies of real speech whose order is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import requires_data
from vocoder_cli.metrics.base import MetricError
from vocoder_cli.metrics.signal import (
    MSTFT_RESOLUTIONS,
    dtw_path,
    load_pyworld,
    lsd,
    mcd,
    mcep_alpha,
    mel_cepstrum,
    mstft,
    periodicity_track,
    pitch,
    sisdr,
    warp_frequency,
)

load_pyworld()  # the [metrics] extra is part of the test install: a broken pyworld must fail, not skip

SR = 22050


def _noisy(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).standard_normal(x.size)
    noise *= np.sqrt(np.mean(x**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    return (x + noise).astype(np.float32)


def _torch_mag(x: np.ndarray, n_fft: int, hop: int, win: int) -> torch.Tensor:
    spec = torch.stft(torch.from_numpy(x.astype(np.float64)), n_fft, hop, win,
                      window=torch.hann_window(win, dtype=torch.float64), return_complex=True)
    return torch.sqrt(torch.clamp(spec.real**2 + spec.imag**2, min=1e-8))


def test_mstft_equals_an_auraloss_style_torch_computation(rng: np.random.Generator) -> None:
    t = np.arange(SR) / SR
    ref = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(SR)).astype(np.float32)
    gen = _noisy(ref, 10)
    expected = 0.0
    for n_fft, hop, win in MSTFT_RESOLUTIONS:
        r, g = _torch_mag(ref, n_fft, hop, win), _torch_mag(gen, n_fft, hop, win)
        expected += float(torch.linalg.norm(r - g) / torch.linalg.norm(r) + torch.mean(torch.abs(r.log() - g.log())))
    assert mstft(ref, gen, SR)["mstft"] == pytest.approx(expected / 3, rel=1e-9)
    assert mstft(ref, ref, SR)["mstft"] == 0.0


def test_lsd_equals_a_torch_computation(rng: np.random.Generator) -> None:
    ref = rng.standard_normal(SR).astype(np.float32)
    gen = _noisy(ref, 5)
    r, g = _torch_mag(ref, 2048, 512, 2048) ** 2, _torch_mag(gen, 2048, 512, 2048) ** 2
    diff = torch.log10(r.clamp(min=1e-10)) - torch.log10(g.clamp(min=1e-10))
    expected = float(torch.sqrt((diff**2).mean(dim=0)).mean())  # torch: [bins, frames]
    assert lsd(ref, gen, SR)["lsd"] == pytest.approx(expected, rel=1e-9)


def test_sisdr_is_the_snr_of_an_orthogonal_error_and_scale_invariant(rng: np.random.Generator) -> None:
    ref = rng.standard_normal(SR)
    ref -= ref.mean()
    noise = rng.standard_normal(SR)
    noise -= noise.mean()
    noise -= noise @ ref / (ref @ ref) * ref  # orthogonal to the reference
    noise *= np.sqrt((ref @ ref) / (noise @ noise) / 10 ** (12.5 / 10))
    assert sisdr(ref, ref + noise, SR)["sisdr"] == pytest.approx(12.5, abs=1e-6)
    assert sisdr(ref, 7.0 * (ref + noise), SR)["sisdr"] == pytest.approx(12.5, abs=1e-6)
    with pytest.raises(MetricError, match="silent"):
        sisdr(np.zeros(SR), ref, SR)


def test_mcep_alpha_matches_sptk_values() -> None:
    assert mcep_alpha(16000) == 0.41
    assert mcep_alpha(22050) == 0.455
    assert mcep_alpha(44100) == 0.544


def test_mel_cepstrum_reconstructs_the_log_spectrum_on_the_warped_axis(rng: np.random.Generator) -> None:
    """Defining identity: log|X(w)| = sum_m c_m cos(m * warp(w)) for a smooth envelope."""
    bins = 513
    omega = np.linspace(0, np.pi, bins)
    log_amp = 0.8 * np.cos(omega) - 0.5 * np.cos(3 * omega) + 0.2 * np.sin(omega) ** 2 - 1.0
    power = np.exp(2 * log_amp)[None, :]
    alpha = 0.455
    mc = mel_cepstrum(power, order=200, alpha=alpha)[0]
    recon = np.cos(np.outer(warp_frequency(omega, alpha), np.arange(201))) @ mc
    assert np.max(np.abs(recon - log_amp)) < 1e-3
    plain = mel_cepstrum(power, order=5, alpha=0.0)[0]  # alpha = 0 is the ordinary cepstrum
    assert plain[1] == pytest.approx(0.8, abs=1e-9) and plain[3] == pytest.approx(-0.5, abs=1e-9)


def test_dtw_path_has_the_brute_force_minimum_cost(rng: np.random.Generator) -> None:
    cost = rng.random((9, 13))
    acc = np.full((10, 14), np.inf)
    acc[0, 0] = 0
    for i in range(1, 10):
        for j in range(1, 14):
            acc[i, j] = cost[i - 1, j - 1] + min(acc[i - 1, j], acc[i, j - 1], acc[i - 1, j - 1])
    rows, cols = dtw_path(cost)
    assert cost[rows, cols].sum() == pytest.approx(acc[9, 13])
    assert (rows[0], cols[0], rows[-1], cols[-1]) == (0, 0, 8, 12)
    assert np.all(np.diff(rows) >= 0) and np.all(np.diff(cols) >= 0)


def test_periodicity_of_a_tone_and_of_noise(rng: np.random.Generator) -> None:
    t = np.arange(SR) / SR
    tone = np.sin(2 * np.pi * 150 * t)
    hop = 110
    frames = SR // hop
    assert np.median(periodicity_track(tone, SR, hop, frames)) > 0.99
    assert np.median(periodicity_track(rng.standard_normal(SR), SR, hop, frames)) < 0.5


def test_pitch_error_of_a_tone_a_semitone_off() -> None:
    t = np.arange(SR) / SR
    ref = 0.5 * np.sin(2 * np.pi * 150 * t)
    gen = 0.5 * np.sin(2 * np.pi * 150 * 2 ** (1 / 12) * t)
    scores = pitch(ref, gen, SR)
    assert scores["f0_rmse"] == pytest.approx(100, abs=5)
    assert scores["vuv_f1"] > 0.95
    with pytest.raises(MetricError, match="no voiced frames"):
        pitch(np.zeros(SR), gen, SR)


@requires_data
def test_real_speech_identity_and_noise_order(speech_22k: tuple[np.ndarray, int]) -> None:
    x, sr = speech_22k
    x = x[: 4 * sr]
    assert mcd(x, x, sr) == {"mcd": 0.0, "mcd_dtw": 0.0}
    assert pitch(x, x, sr) == {"f0_rmse": 0.0, "vuv_f1": 1.0, "periodicity": 0.0}
    mild, heavy = _noisy(x, 25), _noisy(x, 5)
    for fn, key, better in ((mstft, "mstft", "lower"), (lsd, "lsd", "lower"), (sisdr, "sisdr", "higher"),
                            (mcd, "mcd", "lower"), (mcd, "mcd_dtw", "lower"), (pitch, "periodicity", "lower"),
                            (pitch, "vuv_f1", "higher")):
        a, b = fn(x, mild, sr)[key], fn(x, heavy, sr)[key]
        assert (a < b) if better == "lower" else (a > b), (key, a, b)
    # MCD after DTW can only be <= the frame-aligned MCD
    scores = mcd(x, mild, sr)
    assert scores["mcd_dtw"] <= scores["mcd"] + 1e-9
