"""Signal metrics checked against independent formulas (torch.stft, brute-force DTW, the all-pass
warping identity) and on degraded copies of real speech whose order is known."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import requires_data
from vocoder_cli.metrics.base import MetricError
from vocoder_cli.metrics.signal import (
    banded_dtw,
    load_pyworld,
    lsd,
    mcd,
    mcep_alpha,
    mel_cepstrum,
    mstft,
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
    for n_fft, hop, win in ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240)):  # auraloss / BigVGAN
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


@requires_data
def test_mel_cepstra_are_order_24_every_5_ms(speech_22k: tuple[np.ndarray, int]) -> None:
    """MCD's analysis (docs/metrics.md): WORLD frames every 5 ms from t = 0, mel-cepstrum c0..c24."""
    from vocoder_cli.metrics.signal import world_mel_cepstra

    x, sr = speech_22k
    assert world_mel_cepstra(x[:sr].astype(np.float64), sr).shape == (201, 25)  # 1 s: 1000 / 5 + 1 frames


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


def _full_dtw(x: np.ndarray, y: np.ndarray, band: int) -> tuple[float, int]:
    """Textbook DTW over the whole cost matrix (cells with |i - j| > band forbidden), with the path length."""
    cost = np.sqrt(((x[:, None] - y[None]) ** 2).sum(-1))
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    steps = np.zeros((n + 1, m + 1), dtype=int)
    acc[0, 0] = 0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            if abs(i - j) <= band:
                options = [(acc[i - 1, j - 1], steps[i - 1, j - 1]), (acc[i - 1, j], steps[i - 1, j]),
                           (acc[i, j - 1], steps[i, j - 1])]
                best, length = min(options, key=lambda o: o[0])
                acc[i, j], steps[i, j] = cost[i - 1, j - 1] + best, length + 1
    return float(acc[n, m]), int(steps[n, m])


@pytest.mark.parametrize("n,m,band", [(9, 13, 100), (20, 20, 3), (30, 31, 2), (15, 12, 5), (1, 4, 3), (40, 40, 0)])
def test_banded_dtw_equals_the_textbook_dp(rng: np.random.Generator, n: int, m: int, band: int) -> None:
    x, y = rng.random((n, 4)), rng.random((m, 4))
    total, steps = banded_dtw(x, y, band)
    expected_total, expected_steps = _full_dtw(x, y, max(band, abs(n - m)))
    assert total == pytest.approx(expected_total, rel=1e-12) and steps == expected_steps
    if band < max(n, m):  # a band can only cost more than the unconstrained alignment
        assert total >= _full_dtw(x, y, max(n, m))[0] - 1e-12


def test_silence_and_dc_are_refused_by_every_signal_metric() -> None:
    """Before: silent generated SI-SDR 0.0 dB, silent reference M-STFT 6250, silent vs silent 0.0."""
    t = np.arange(SR) / SR
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    zeros, dc = np.zeros(SR, np.float32), np.full(SR, 0.25, np.float32)
    for fn in (mstft, lsd, sisdr, mcd):
        with pytest.raises(MetricError, match="generated audio is silent"):
            fn(tone, zeros, SR)
        with pytest.raises(MetricError, match="reference is silent"):
            fn(zeros, tone, SR)
        with pytest.raises(MetricError, match="reference is silent"):
            fn(zeros, zeros, SR)
        with pytest.raises(MetricError, match=r"generated audio is DC only \(constant level \+0.2500"):
            fn(tone, dc, SR)
    with pytest.raises(MetricError, match="too short for MCD"):
        mcd(tone[:1000], tone[:1000], SR)  # 45 ms: 0.0 "perfect" before


@pytest.mark.slow
def test_mcd_of_a_ten_minute_pair_runs_in_bounded_memory() -> None:
    """The full N x N DTW needed 107 GiB for 10 minutes (120,001 frames of 5 ms). Banded DTW and blocked
    WORLD analysis keep the peak far below: measured +115 MiB here (8 kHz, so WORLD is quick; the
    frame count, which set the old matrix's size, does not depend on the rate)."""
    script = (
        "import resource, numpy as np\n"
        "from vocoder_cli.metrics.bench import demo_speech\n"
        "from vocoder_cli.metrics.signal import mcd\n"
        "sr = 8000\n"
        "speech = demo_speech(sr)\n"
        "n = 10 * 60 * sr\n"
        "x = np.tile(speech, n // speech.size + 1)[:n]\n"
        "y = (x + 0.01 * np.random.default_rng(0).standard_normal(n)).astype(np.float32)\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "scores = mcd(x, y, sr)\n"
        "grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\n"
        "print(scores['mcd'], scores['mcd_dtw'], grown * 1024)\n"  # ru_maxrss is in KiB on Linux
    )
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    plain, dtw, grown = (float(v) for v in out.split())
    assert 3.0 < dtw <= plain < 15.0, (plain, dtw)
    assert grown < 300 * 2**20, f"MCD of a 10-minute pair grew the peak memory by {grown / 2**20:.0f} MiB"


@requires_data
def test_real_speech_identity_and_noise_order(speech_22k: tuple[np.ndarray, int]) -> None:
    x, sr = speech_22k
    x = x[: 4 * sr]
    assert mcd(x, x, sr) == {"mcd": 0.0, "mcd_dtw": 0.0}
    mild, heavy = _noisy(x, 25), _noisy(x, 5)
    for fn, key, better in ((mstft, "mstft", "lower"), (lsd, "lsd", "lower"), (sisdr, "sisdr", "higher"),
                            (mcd, "mcd", "lower"), (mcd, "mcd_dtw", "lower")):
        a, b = fn(x, mild, sr)[key], fn(x, heavy, sr)[key]
        assert (a < b) if better == "lower" else (a > b), (key, a, b)
    # MCD after DTW can only be <= the frame-aligned MCD
    scores = mcd(x, mild, sr)
    assert scores["mcd_dtw"] <= scores["mcd"] + 1e-9


@requires_data
def test_the_dtw_band_does_not_change_mcd_dtw_on_real_speech(speech_22k: tuple[np.ndarray, int]) -> None:
    """docs/metrics.md: on real speech with realistic damage the 0.2 s band finds the unconstrained path."""
    from vocoder_cli.metrics.signal import MCD_CONST, world_mel_cepstra

    x, sr = speech_22k
    x = x[: 4 * sr].astype(np.float64)
    mc_ref = world_mel_cepstra(x, sr)[:, 1:]
    mc_gen = world_mel_cepstra(_noisy(x, 20).astype(np.float64), sr)[:, 1:]
    total, steps = banded_dtw(mc_ref, mc_gen, len(mc_ref))  # the band covers everything: plain DTW
    assert mcd(x, _noisy(x, 20), sr)["mcd_dtw"] == pytest.approx(MCD_CONST * total / steps, rel=1e-12)

