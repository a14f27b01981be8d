"""Signal metrics as BigVGAN / Vocos report them: M-STFT, MCD, SI-SDR and LSD. Pure numpy (plus
pyworld for MCD's spectral envelopes), so pool workers stay light. Pitch metrics are in pitch.py (CREPE).

Definitions, constants and sources are in docs/metrics.md; every function here takes the reference and
the generated signal at the same rate and the same length (the runner aligns them).
"""

from __future__ import annotations

import os
from fractions import Fraction
from functools import lru_cache

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from vocoder_cli.metrics.base import (
    MetricError,
    Scores,
    library_errors,
    require_length,
    require_signal,
)

# auraloss MultiResolutionSTFTLoss defaults (what BigVGAN's M-STFT column uses).
MSTFT_RESOLUTIONS = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))
MSTFT_EPS = 1e-8
LSD_FFT, LSD_HOP = 2048, 512
LSD_EPS = 1e-10
MCEP_ORDER = 24
FRAME_PERIOD_MS = 5.0
F0_FLOOR, F0_CEIL = 50.0, 800.0
MCD_CONST = 10.0 / np.log(10.0) * np.sqrt(2.0)
MCD_MIN_SECONDS = 0.1  # 20 analysis frames; below that WORLD's estimates are edge effects
# DTW may shift frames by at most this much (Sakoe-Chiba band): memory and time linear in length, and
# no "alignment" of unrelated frames far apart; the runner already refuses larger length differences.
DTW_BAND_SECONDS = 0.2
# Long signals are analysed in blocks so that memory does not grow with length beyond the signals
# and their 24-coefficient mel-cepstra: F0 (DIO) on 30 s blocks with 1 s margins on each side, the
# spectral envelope (CheapTrick) 2000 frames at a time.
F0_BLOCK_SECONDS, F0_MARGIN_SECONDS = 30.0, 1.0
ENVELOPE_BLOCK_FRAMES = 2000


def _check_pair(ref: np.ndarray, gen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both signals usable (not empty, finite, not silent, not DC only), same length; as float64."""
    require_signal(ref, "reference")
    require_signal(gen, "generated audio")
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


def world_f0(x: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """WORLD DIO + StoneMask F0 [frames] and frame times [frames] (5 ms frames from t = 0).

    DIO runs on blocks of F0_BLOCK_SECONDS with F0_MARGIN_SECONDS of context on each side (its memory
    grows with the input: ~840 MB for 10 minutes in one call); the blocks start on frame times that fall
    on whole samples, so the frames are the same as one call's. StoneMask refines on the whole signal."""
    pyworld = load_pyworld()
    hop = Fraction(sr) * Fraction(FRAME_PERIOD_MS) / 1000  # samples per frame (110.25 at 22.05 kHz)
    step = hop.denominator  # block starts on multiples of this many frames are whole samples
    frames = int(1000.0 * x.size / sr / FRAME_PERIOD_MS) + 1
    block = max(step, int(F0_BLOCK_SECONDS * 1000 / FRAME_PERIOD_MS) // step * step)
    margin = int(np.ceil(F0_MARGIN_SECONDS * 1000 / FRAME_PERIOD_MS / step)) * step
    f0 = np.zeros(frames)
    with library_errors("pyworld"):
        for first in range(0, frames, block):
            last = min(frames, first + block)
            start = max(0, first - margin)
            a, b = int(start * hop), min(x.size, int(np.ceil((last + margin) * hop)))
            part, _ = pyworld.dio(np.ascontiguousarray(x[a:b]), sr, f0_floor=F0_FLOOR, f0_ceil=F0_CEIL,
                                  frame_period=FRAME_PERIOD_MS)
            f0[first:last] = part[first - start : last - start]
        times = np.arange(frames) * FRAME_PERIOD_MS / 1000
        return pyworld.stonemask(x, f0, times, sr), times


def world_mel_cepstra(x: np.ndarray, sr: int, order: int = MCEP_ORDER) -> np.ndarray:
    """Mel-cepstra [frames, order + 1] of the WORLD CheapTrick envelope, ENVELOPE_BLOCK_FRAMES at a time."""
    pyworld = load_pyworld()
    f0, times = world_f0(x, sr)
    alpha = mcep_alpha(sr)
    out = np.empty((f0.size, order + 1))
    with library_errors("pyworld"):
        for first in range(0, f0.size, ENVELOPE_BLOCK_FRAMES):
            sl = slice(first, first + ENVELOPE_BLOCK_FRAMES)
            envelope = pyworld.cheaptrick(x, np.ascontiguousarray(f0[sl]), np.ascontiguousarray(times[sl]), sr,
                                          f0_floor=F0_FLOOR)
            out[sl] = mel_cepstrum(envelope, order, alpha)
    return out


def banded_dtw(x: np.ndarray, y: np.ndarray, band: int) -> tuple[float, int]:
    """Minimum-cost monotonic alignment of feature rows x [N, D] and y [M, D] (Euclidean frame
    distance; steps (1,1), (1,0), (0,1); ties prefer them in that order) with |i - j| <= band.

    Returns (total cost along the path, path length). Memory O(N * D + band): one band row at a time,
    the path length carried along instead of a traceback. Within a row, the horizontal steps are a
    min-plus scan: acc[j] = C[j] + min_{k <= j}(b[k] - C[k]), C the row's cumulative cost and b the
    best entry from the row above."""
    n, m = len(x), len(y)
    band = max(int(band), abs(n - m))
    width = 2 * band + 1  # row i holds columns j = i - band + k, k = 0 .. 2 * band
    inf = np.inf
    acc = np.full(width + 1, inf)  # one spare inf on the right: the "up" neighbour of the last cell
    length = np.zeros(width + 1, dtype=np.int64)
    acc[band] = 0.0  # a virtual (-1, -1) cell in front of (0, 0)
    positions = np.arange(width)
    for i in range(n):
        lo, hi = max(0, band - i), min(width, m - i + band)  # the columns that exist: 0 <= j < m
        cost = np.sqrt(np.sum((y[i - band + lo : i - band + hi] - x[i]) ** 2, axis=-1))
        diag, up = acc[lo:hi], acc[lo + 1 : hi + 1]
        from_diag = diag <= up
        best = cost + np.where(from_diag, diag, up)
        best_len = 1 + np.where(from_diag, length[lo:hi], length[lo + 1 : hi + 1])
        cum = np.cumsum(cost)
        v = best - cum
        running = np.minimum.accumulate(v)
        source = np.maximum.accumulate(np.where(v == running, positions[: hi - lo], -1))
        new_acc = np.full(width + 1, inf)
        new_len = np.zeros(width + 1, dtype=np.int64)
        new_acc[lo:hi] = cum + running
        new_len[lo:hi] = best_len[source] + (positions[: hi - lo] - source)
        acc, length = new_acc, new_len
    end = (m - 1) - (n - 1) + band
    return float(acc[end]), int(length[end])


def mcd(ref: np.ndarray, gen: np.ndarray, sr: int) -> Scores:
    """Mel-cepstral distortion in dB (orders 1..24, c0 excluded): frame by frame and after DTW within
    a band of DTW_BAND_SECONDS. Memory grows linearly with length (about 0.4 KB per 5 ms frame)."""
    ref, gen = _check_pair(ref, gen)
    require_length(ref, int(MCD_MIN_SECONDS * sr), sr, "MCD")
    mc_ref = world_mel_cepstra(ref, sr)[:, 1:]
    mc_gen = world_mel_cepstra(gen, sr)[:, 1:]
    frames = min(len(mc_ref), len(mc_gen))
    plain = MCD_CONST * np.sqrt(np.sum((mc_ref[:frames] - mc_gen[:frames]) ** 2, axis=-1))
    total, steps = banded_dtw(mc_ref, mc_gen, int(round(DTW_BAND_SECONDS * 1000 / FRAME_PERIOD_MS)))
    return {"mcd": float(plain.mean()), "mcd_dtw": float(MCD_CONST * total / steps)}


def mcd_unaligned(ref: np.ndarray, gen: np.ndarray, sr: int) -> Scores:
    """MCD after an unconstrained DTW, for pairs of different lengths (TTS output against a recording).

    No frame-aligned ``mcd``: it means nothing without alignment. The band spans the whole longer signal,
    so time grows with the product of the two lengths (memory stays linear): meant for utterances."""
    for wav, what in ((ref, "reference"), (gen, "generated audio")):
        require_signal(wav, what)
        require_length(wav, int(MCD_MIN_SECONDS * sr), sr, "MCD")
    mc_ref = world_mel_cepstra(ref.astype(np.float64), sr)[:, 1:]
    mc_gen = world_mel_cepstra(gen.astype(np.float64), sr)[:, 1:]
    total, steps = banded_dtw(mc_ref, mc_gen, max(len(mc_ref), len(mc_gen)))
    return {"mcd_dtw": float(MCD_CONST * total / steps)}
