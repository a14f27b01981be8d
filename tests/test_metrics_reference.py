"""PESQ / STOI / ESTOI: equal to the libraries on the same arrays, ordered on degraded real speech,
and every known library trap reported as a reason instead of a crash or a fake score."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import butter, sosfilt

from tests.conftest import require_module, requires_data
from vocoder_cli.audio import resample
from vocoder_cli.metrics.base import MetricError
from vocoder_cli.metrics.reference import (
    estoi_score,
    pesq_at,
    pesq_nb,
    pesq_wb,
    stoi_score,
)

pesq_lib = require_module("pesq", "metrics")
pystoi = require_module("pystoi", "metrics")

pytestmark = requires_data


def _noisy(x: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(x.size)
    noise *= np.sqrt(np.mean(x**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
    return (x + noise).astype(np.float32)


def _lowpass(x: np.ndarray, sr: int, cutoff: float) -> np.ndarray:
    return sosfilt(butter(8, cutoff, fs=sr, output="sos"), x).astype(np.float32)


def _clipped(x: np.ndarray, fraction_of_peak: float) -> np.ndarray:
    limit = fraction_of_peak * np.abs(x).max()
    return np.clip(x, -limit, limit).astype(np.float32)


def test_identical_signals_give_the_ceiling(speech_22k: tuple[np.ndarray, int]) -> None:
    x, sr = speech_22k
    assert pesq_wb(x, x, sr)["pesq"] == pytest.approx(4.6439, abs=1e-3)
    assert stoi_score(x, x, sr)["stoi"] == pytest.approx(1.0, abs=1e-9)
    assert estoi_score(x, x, sr)["estoi"] == pytest.approx(1.0, abs=1e-9)


def test_values_equal_the_libraries_on_the_same_arrays(speech_22k: tuple[np.ndarray, int], rng) -> None:
    x, sr = speech_22k
    y = _noisy(x, 15, rng)
    r16, g16 = resample(x, sr, 16000).astype(np.float64), resample(y, sr, 16000).astype(np.float64)
    assert pesq_wb(x, y, sr)["pesq"] == pesq_lib.pesq(16000, r16, g16, "wb")
    r8, g8 = resample(x, sr, 8000).astype(np.float64), resample(y, sr, 8000).astype(np.float64)
    assert pesq_nb(x, y, sr)["pesq-nb"] == pesq_lib.pesq(8000, r8, g8, "nb")
    r10, g10 = resample(x, sr, 10000).astype(np.float64), resample(y, sr, 10000).astype(np.float64)
    assert stoi_score(x, y, sr)["stoi"] == pystoi.stoi(r10, g10, 10000)
    # (ESTOI's matrix products may differ in the last bit between calls: BLAS summation order)
    assert estoi_score(x, y, sr)["estoi"] == pytest.approx(pystoi.stoi(r10, g10, 10000, extended=True), rel=1e-12)
    # pystoi's own resampler gives nearly the same number at the file's rate
    assert stoi_score(x, y, sr)["stoi"] == pytest.approx(pystoi.stoi(x, y, sr), abs=0.01)


@pytest.mark.parametrize("metric,key", [(pesq_wb, "pesq"), (stoi_score, "stoi"), (estoi_score, "estoi")])
def test_more_noise_scores_lower(speech_22k: tuple[np.ndarray, int], rng, metric, key) -> None:
    x, sr = speech_22k
    scores = [metric(x, _noisy(x, snr, rng), sr)[key] for snr in (30, 15, 0)]
    assert scores[0] > scores[1] > scores[2]


def test_low_pass_and_clipping_order(speech_22k: tuple[np.ndarray, int]) -> None:
    x, sr = speech_22k
    pesq = [pesq_wb(x, _lowpass(x, sr, fc), sr)["pesq"] for fc in (6000, 3000, 1000)]
    assert pesq[0] > pesq[1] > pesq[2]
    stoi = [stoi_score(x, _lowpass(x, sr, fc), sr)["stoi"] for fc in (3000, 1000, 500)]
    assert stoi[0] > stoi[1] > stoi[2]
    clipped = [pesq_wb(x, _clipped(x, f), sr)["pesq"] for f in (0.5, 0.1, 0.02)]
    assert clipped[0] > clipped[1] > clipped[2]


def test_pesq_traps_become_reasons(speech_22k: tuple[np.ndarray, int]) -> None:
    x, sr = speech_22k
    silent = np.zeros_like(x)
    with pytest.raises(MetricError, match="generated audio is silent"):
        pesq_wb(x, silent, sr)
    with pytest.raises(MetricError, match="reference is silent"):
        pesq_wb(silent, x, sr)
    with pytest.raises(MetricError, match="NaN"):
        pesq_wb(x, np.where(np.arange(x.size) == 10, np.nan, x).astype(np.float32), sr)
    with pytest.raises(MetricError, match="too short for PESQ"):
        pesq_wb(x[: sr // 5], x[: sr // 5], sr)
    # PESQ's NoUtterancesError (digital-zero reference, reached when called on raw arrays)
    r16 = resample(x, sr, 16000).astype(np.float64)
    with pytest.raises(MetricError, match="no utterances"):
        pesq_at(np.zeros_like(r16), r16, 16000, "wb")


def test_library_traps_exist_as_documented(speech_22k: tuple[np.ndarray, int]) -> None:
    """The raw libraries really do these things (so the guards above are needed)."""
    x, sr = speech_22k
    r16 = resample(x, sr, 16000).astype(np.float64)
    with pytest.raises(ValueError):
        pesq_lib.pesq(16000, r16, np.zeros_like(r16), "wb")
    short = x[: int(0.3 * sr)].astype(np.float64)
    with pytest.warns(RuntimeWarning):
        assert pystoi.stoi(short, short, sr) == 1e-5
    assert pystoi.stoi(x, np.zeros_like(x), sr) == 0.0


def test_stoi_traps_become_reasons(speech_22k: tuple[np.ndarray, int]) -> None:
    x, sr = speech_22k
    short = x[: int(0.3 * sr)]
    with pytest.raises(MetricError, match="too short for STOI"):
        stoi_score(short, short, sr)
    with pytest.raises(MetricError, match="too short for STOI"):
        estoi_score(short, short, sr)
    with pytest.raises(MetricError, match="silent"):
        stoi_score(x, np.zeros_like(x), sr)
    # quiet speech is not a trap: STOI is level-independent
    assert stoi_score(x * 1e-3, x * 1e-3, sr)["stoi"] == pytest.approx(1.0, abs=1e-6)
