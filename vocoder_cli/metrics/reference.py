"""PESQ (ITU-T P.862 via ``pesq``) and STOI / ESTOI (via ``pystoi``), with their traps turned into reasons.

Both signals are resampled with soxr (VHQ) to the rate the standard defines: 16 kHz for wideband PESQ,
8 kHz for narrowband, 10 kHz for STOI (so pystoi's own resampler is never used). The values are
exactly what the libraries return for those arrays.
"""

from __future__ import annotations

import warnings

import numpy as np

from vocoder_cli.audio import resample
from vocoder_cli.metrics.base import (
    MetricError,
    Scores,
    library_errors,
    library_failure,
    require_length,
    require_signal,
)

PESQ_WB_RATE = 16_000
PESQ_NB_RATE = 8_000
STOI_RATE = 10_000
# pystoi returns this placeholder when fewer than 30 frames (384 ms at 10 kHz) of speech remain.
STOI_TOO_SHORT = 1e-5
# PESQ refuses less than 0.25 s; pystoi needs 30 frames of 256 samples (hop 128) at 10 kHz before its
# silent-frame removal and raises a numpy AxisError on fewer than one frame (a clip under ~25 ms).
PESQ_MIN_SECONDS = 0.25
STOI_MIN_SAMPLES = 256 + 29 * 128


def _prepare(ref: np.ndarray, gen: np.ndarray, sr: int, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Both signals checked (empty, NaN/inf, silent, DC only) and resampled to ``rate`` as float64."""
    require_signal(ref, "reference")
    require_signal(gen, "generated audio")
    with library_errors("soxr"):
        return resample(ref, sr, rate).astype(np.float64), resample(gen, sr, rate).astype(np.float64)


def pesq_at(ref: np.ndarray, gen: np.ndarray, rate: int, mode: str) -> float:
    """``pesq.pesq`` on arrays already at ``rate``, its exceptions mapped to readable reasons."""
    import pesq
    from pesq import BufferTooShortError, NoUtterancesError

    try:
        value = pesq.pesq(rate, ref, gen, mode)
    except NoUtterancesError:
        raise MetricError("PESQ found no utterances (speech too quiet or absent for its voice detector)") from None
    except BufferTooShortError:
        raise MetricError("too short for PESQ (needs at least 0.25 s)") from None
    except ValueError as exc:  # the C code yields NaN on silent/NaN degraded input, then int() fails
        raise MetricError(f"PESQ rejected the signal (silent or invalid degraded input: {exc})") from None
    except Exception as exc:  # noqa: BLE001 - anything else the library raises on this input
        raise MetricError(library_failure("pesq", exc)) from None
    if not np.isfinite(value):
        raise MetricError("PESQ returned a non-finite value")
    return float(value)


def pesq_wb(ref: np.ndarray, gen: np.ndarray, sr: int) -> Scores:
    require_length(ref, int(PESQ_MIN_SECONDS * sr), sr, "PESQ")
    r, g = _prepare(ref, gen, sr, PESQ_WB_RATE)
    return {"pesq": pesq_at(r, g, PESQ_WB_RATE, "wb")}


def pesq_nb(ref: np.ndarray, gen: np.ndarray, sr: int) -> Scores:
    require_length(ref, int(PESQ_MIN_SECONDS * sr), sr, "PESQ")
    r, g = _prepare(ref, gen, sr, PESQ_NB_RATE)
    return {"pesq-nb": pesq_at(r, g, PESQ_NB_RATE, "nb")}


def stoi_at(ref: np.ndarray, gen: np.ndarray, extended: bool) -> float:
    """``pystoi.stoi`` at 10 kHz; its 1e-5 "too short" placeholder becomes an error."""
    from pystoi import stoi

    with warnings.catch_warnings(record=True) as caught, library_errors("pystoi"):
        warnings.simplefilter("always")
        value = float(stoi(ref, gen, STOI_RATE, extended=extended))
    too_short = any("Not enough STFT frames" in str(w.message) for w in caught)
    if too_short or value == STOI_TOO_SHORT:
        raise MetricError("too short for STOI: under 384 ms of speech after removing silent frames")
    if not np.isfinite(value):
        raise MetricError("STOI returned a non-finite value")
    return value


def _stoi_input(ref: np.ndarray, gen: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    r, g = _prepare(ref, gen, sr, STOI_RATE)
    if r.size < STOI_MIN_SAMPLES:
        raise MetricError(f"too short for STOI ({ref.size / sr:.3f} s < {STOI_MIN_SAMPLES / STOI_RATE:.3f} s)")
    return r, g


def stoi_score(ref: np.ndarray, gen: np.ndarray, sr: int) -> Scores:
    r, g = _stoi_input(ref, gen, sr)
    return {"stoi": stoi_at(r, g, extended=False)}


def estoi_score(ref: np.ndarray, gen: np.ndarray, sr: int) -> Scores:
    r, g = _stoi_input(ref, gen, sr)
    return {"estoi": stoi_at(r, g, extended=True)}
