"""Signal metrics as BigVGAN / Vocos report them: M-STFT, MCD, pitch (F0 RMSE, V/UV F1, periodicity),
SI-SDR and LSD. Pure numpy (plus pyworld for pitch and spectral envelopes), so pool workers stay light.

Definitions, constants and sources are in docs/metrics.md; every function here takes the reference and
the generated signal at the same rate and the same length (the runner aligns them).
"""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from vocoder_cli.metrics.base import MetricError, Scores, is_silent, require_finite

# auraloss MultiResolutionSTFTLoss defaults (what BigVGAN's M-STFT column uses).
MSTFT_RESOLUTIONS = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))
MSTFT_EPS = 1e-8
LSD_FFT, LSD_HOP = 2048, 512
LSD_EPS = 1e-10
MCEP_ORDER = 24
FRAME_PERIOD_MS = 5.0
F0_FLOOR, F0_CEIL = 50.0, 800.0
MCD_CONST = 10.0 / np.log(10.0) * np.sqrt(2.0)


def _check_pair(ref: np.ndarray, gen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    require_finite(ref, "reference")
    require_finite(gen, "generated audio")
    if ref.shape != gen.shape:
        raise MetricError(f"length mismatch ({ref.size} vs {gen.size} samples)")
    return ref.astype(np.float64), gen.astype(np.float64)


def stft_magnitude(x: np.ndarray, n_fft: int, hop: int, win: int) -> np.ndarray:
    """|STFT| like ``torch.stft(center=True, pad_mode='reflect')`` with a periodic Hann window
    of ``win`` samples centred in ``n_fft``; magnitude sqrt(max(re^2 + im^2, eps)). Shape [frames, bins]."""
    if x.size <= n_fft // 2:
        raise MetricError(f"too short for an STFT of {n_fft} points ({x.size} samples)")
    window = np.zeros(n_fft)
    left = (n_fft - win) // 2
    window[left : left + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)
    padded = np.pad(x, n_fft // 2, mode="reflect")
    frames = sliding_window_view(padded, n_fft)[::hop]
    spec = np.fft.rfft(frames * window, axis=-1)
    return np.sqrt(np.maximum(spec.real**2 + spec.imag**2, MSTFT_EPS))


def mstft(ref: np.ndarray, gen: np.ndarray, sr: int) -> Scores:
    """Mean over 3 resolutions of spectral convergence + mean |log mag difference| (auraloss)."""
    ref, gen = _check_pair(ref, gen)
    total = 0.0
    for n_fft, hop, win in MSTFT_RESOLUTIONS:
        r, g = stft_magnitude(ref, n_fft, hop, win), stft_magnitude(gen, n_fft, hop, win)
        convergence = np.linalg.norm(r - g) / np.linalg.norm(r)
        log_mag = np.mean(np.abs(np.log(r) - np.log(g)))
        total += convergence + log_mag
    return {"mstft": float(total / len(MSTFT_RESOLUTIONS))}


def lsd(ref: np.ndarray, gen: np.ndarray, sr: int) -> Scores:
    """Log-spectral distance: mean over frames of the RMS over bins of log10 power differences."""
    ref, gen = _check_pair(ref, gen)
    r = stft_magnitude(ref, LSD_FFT, LSD_HOP, LSD_FFT) ** 2
    g = stft_magnitude(gen, LSD_FFT, LSD_HOP, LSD_FFT) ** 2
    diff = np.log10(np.maximum(r, LSD_EPS)) - np.log10(np.maximum(g, LSD_EPS))
    return {"lsd": float(np.mean(np.sqrt(np.mean(diff**2, axis=-1))))}


def sisdr(ref: np.ndarray, gen: np.ndarray, sr: int) -> Scores:
    """Scale-invariant SDR in dB (zero-mean signals, optimal scaling of the reference)."""
    ref, gen = _check_pair(ref, gen)
    if is_silent(ref):
        raise MetricError("reference is silent (SI-SDR undefined)")
    ref, gen = ref - ref.mean(), gen - gen.mean()
    eps = np.finfo(np.float64).eps
    scale = (np.dot(gen, ref) + eps) / (np.dot(ref, ref) + eps)
    target = scale * ref
    noise = gen - target
    return {"sisdr": float(10 * np.log10((np.dot(target, target) + eps) / (np.dot(noise, noise) + eps)))}


# ---------------------------------------------------------------- mel-cepstrum (MCD)


@lru_cache(maxsize=16)
def mcep_alpha(sr: int) -> float:
    """All-pass constant whose frequency warping best fits the mel scale at ``sr`` (SPTK's rule)."""
    points = 1000
    f = np.arange(points) * (sr / 2000.0) / points  # 0 .. Nyquist in kHz
    mel = np.log1p(f)
    mel /= mel[-1]
    omega = np.arange(points) * np.pi / points
    best, best_dist = 0.0, np.inf
    for alpha in np.arange(0.0, 1.0, 0.001):
        warped = warp_frequency(omega, alpha)
        dist = np.sqrt(np.mean((mel - warped / warped[-1]) ** 2))
        if dist < best_dist:
            best, best_dist = float(alpha), dist
    return round(best, 3)


def warp_frequency(omega: np.ndarray, alpha: float) -> np.ndarray:
    """Phase response of the first-order all-pass: where frequency ``omega`` lands on the mel axis."""
    return np.arctan2((1 - alpha**2) * np.sin(omega), (1 + alpha**2) * np.cos(omega) - 2 * alpha)


@lru_cache(maxsize=8)
def _freqt_matrix(n_in: int, order: int, alpha: float) -> np.ndarray:
    """Linear map cepstrum[n_in] -> mel-cepstrum[order + 1] (SPTK freqt recursion, run on a basis)."""
    basis = np.eye(n_in)
    g = np.zeros((n_in, order + 1))
    beta = 1 - alpha * alpha
    for i in range(n_in - 1, -1, -1):
        prev = g.copy()
        g[:, 0] = basis[:, i] + alpha * prev[:, 0]
        if order >= 1:
            g[:, 1] = beta * prev[:, 0] + alpha * prev[:, 1]
        for j in range(2, order + 1):
            g[:, j] = prev[:, j - 1] + alpha * (prev[:, j] - g[:, j - 1])
    return g


def mel_cepstrum(power_spectrum: np.ndarray, order: int, alpha: float) -> np.ndarray:
    """Mel-cepstrum of power spectra [frames, bins]: log|X(w)| ~= sum_m c_m cos(m * warp(w))."""
    cep = np.fft.irfft(np.log(np.maximum(power_spectrum, 1e-300)), axis=-1)
    half = power_spectrum.shape[-1]
    causal = cep[:, :half].copy()
    causal[:, 0] /= 2.0  # one-sided convention: log|X| = c0/2 + sum c_n cos(n w) of the log-power cepstrum
    return causal @ _freqt_matrix(half, order, alpha)


@lru_cache(maxsize=1)
def load_pyworld():  # type: ignore[no-untyped-def]
    """The pyworld extension module. pyworld 0.3.5's ``__init__`` imports ``pkg_resources``, which
    setuptools >= 81 no longer ships; the compiled module itself does not need it, so load it directly."""
    import importlib.machinery
    import importlib.util

    try:
        import pyworld

        return pyworld
    except ModuleNotFoundError as exc:
        if exc.name != "pkg_resources":
            raise
    spec = importlib.util.find_spec("pyworld")
    folder = list(spec.submodule_search_locations or [])[0]  # type: ignore[union-attr]
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = f"{folder}/pyworld{suffix}"
        ext_spec = importlib.util.spec_from_file_location("pyworld.pyworld", path)
        if ext_spec and ext_spec.loader and os.path.exists(path):
            module = importlib.util.module_from_spec(ext_spec)
            ext_spec.loader.exec_module(module)
            return module
    raise ModuleNotFoundError("pyworld's compiled module was not found", name="pyworld")


def _world_envelope(x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pyworld = load_pyworld()

    f0, times = pyworld.dio(x, sr, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=FRAME_PERIOD_MS)
    f0 = pyworld.stonemask(x, f0, times, sr)
    return f0, times, pyworld.cheaptrick(x, f0, times, sr, f0_floor=F0_FLOOR)


def dtw_path(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-cost monotonic alignment (steps (1,0), (0,1), (1,1)); anti-diagonals vectorised."""
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for s in range(2, n + m + 1):
        i = np.arange(max(1, s - m), min(n, s - 1) + 1)
        j = s - i
        best = np.minimum(np.minimum(acc[i - 1, j], acc[i, j - 1]), acc[i - 1, j - 1])
        acc[i, j] = cost[i - 1, j - 1] + best
    i, j, path = n, m, [(n - 1, m - 1)]
    while (i, j) != (1, 1):
        steps = ((i - 1, j - 1), (i - 1, j), (i, j - 1))
        i, j = min((s for s in steps if s[0] >= 1 and s[1] >= 1), key=lambda s: acc[s])
        path.append((i - 1, j - 1))
    rows, cols = np.array(path[::-1]).T
    return rows, cols


def mcd(ref: np.ndarray, gen: np.ndarray, sr: int) -> Scores:
    """Mel-cepstral distortion in dB (orders 1..24, c0 excluded): frame by frame and after DTW."""
    ref, gen = _check_pair(ref, gen)
    if is_silent(ref) or is_silent(gen):
        raise MetricError("silent signal: no spectral envelope for MCD")
    alpha = mcep_alpha(sr)
    mc_ref = mel_cepstrum(_world_envelope(ref, sr)[2], MCEP_ORDER, alpha)[:, 1:]
    mc_gen = mel_cepstrum(_world_envelope(gen, sr)[2], MCEP_ORDER, alpha)[:, 1:]
    frames = min(len(mc_ref), len(mc_gen))
    plain = MCD_CONST * np.sqrt(np.sum((mc_ref[:frames] - mc_gen[:frames]) ** 2, axis=-1))
    squared = (mc_ref**2).sum(-1)[:, None] + (mc_gen**2).sum(-1)[None, :] - 2.0 * mc_ref @ mc_gen.T
    cost = MCD_CONST * np.sqrt(np.maximum(squared, 0.0))
    rows, cols = dtw_path(cost)
    on_path = MCD_CONST * np.sqrt(np.sum((mc_ref[rows] - mc_gen[cols]) ** 2, axis=-1))  # exact, not via matmul
    return {"mcd": float(plain.mean()), "mcd_dtw": float(on_path.mean())}


# ---------------------------------------------------------------- pitch


def periodicity_track(x: np.ndarray, sr: int, hop: int, frames: int) -> np.ndarray:
    """Per-frame periodicity in [0, 1]: the peak normalised autocorrelation at lags for 50-800 Hz
    over a 2 / F0_FLOOR (40 ms) window, centred on the same 5 ms frame times as WORLD."""
    win = int(round(2 * sr / F0_FLOOR))
    lag_min, lag_max = int(sr // F0_CEIL), int(np.ceil(sr / F0_FLOOR))
    padded = np.pad(x, (win // 2, win // 2 + lag_max + hop * frames))
    starts = np.arange(frames) * hop
    span = win + lag_max
    segments = sliding_window_view(padded, span)[starts]  # [frames, win + lag_max]
    head = segments[:, :win]
    n_fft = 1 << int(np.ceil(np.log2(2 * span)))
    cross = np.fft.irfft(np.conj(np.fft.rfft(head, n_fft)) * np.fft.rfft(segments, n_fft), n_fft)
    lags = np.arange(lag_min, lag_max + 1)
    numer = cross[:, lags]
    energy = np.cumsum(np.pad(segments**2, ((0, 0), (1, 0))), axis=1)
    head_energy = energy[:, win][:, None]
    lag_energy = energy[:, lags + win] - energy[:, lags]
    denom = np.sqrt(head_energy * lag_energy)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(denom > 1e-12, numer / denom, 0.0)
    return np.clip(corr.max(axis=1), 0.0, 1.0)


def pitch(ref: np.ndarray, gen: np.ndarray, sr: int) -> Scores:
    """F0 RMSE in cents (frames voiced in both), V/UV F1 (reference voicing as truth), periodicity RMSE."""
    pyworld = load_pyworld()
    ref, gen = _check_pair(ref, gen)
    tracks = []
    for x in (ref, gen):
        f0, times = pyworld.dio(x, sr, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL, frame_period=FRAME_PERIOD_MS)
        tracks.append(pyworld.stonemask(x, f0, times, sr))
    f0_ref, f0_gen = tracks
    voiced_ref, voiced_gen = f0_ref > 0, f0_gen > 0
    if not voiced_ref.any():
        raise MetricError("no voiced frames in the reference: pitch metrics undefined")
    both = voiced_ref & voiced_gen
    true_pos = int(both.sum())
    precision = true_pos / max(int(voiced_gen.sum()), 1)
    recall = true_pos / int(voiced_ref.sum())
    f1 = 0.0 if true_pos == 0 else 2 * precision * recall / (precision + recall)
    cents = 1200 * np.log2(f0_gen[both] / f0_ref[both]) if true_pos else np.array([np.nan])
    hop = int(round(sr * FRAME_PERIOD_MS / 1000))
    per_ref = periodicity_track(ref, sr, hop, len(f0_ref))
    per_gen = periodicity_track(gen, sr, hop, len(f0_ref))
    return {
        "f0_rmse": float(np.sqrt(np.mean(cents**2))),
        "vuv_f1": float(f1),
        "periodicity": float(np.sqrt(np.mean((per_ref - per_gen) ** 2))),
    }
