"""DNSMOS through speechmos' ONNX models: same numbers as speechmos itself, its traps guarded."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import require_module, requires_data
from vocoder_cli.audio import resample
from vocoder_cli.metrics.base import MetricError
from vocoder_cli.metrics.dnsmos import dnsmos_score

speechmos_dnsmos = require_module("speechmos.dnsmos", "dnsmos")


@pytest.fixture(scope="module")
def clip(speech_22k: tuple[np.ndarray, int]) -> tuple[np.ndarray, int]:
    x, sr = speech_22k
    return x[: 5 * sr], sr


@requires_data
def test_equals_speechmos_on_the_same_array(clip: tuple[np.ndarray, int]) -> None:
    x, sr = clip
    ours = dnsmos_score(x, sr)
    theirs = speechmos_dnsmos.run(np.clip(resample(x, sr, 16000), -1, 1), 16000)
    assert ours["dnsmos_ovrl"] == pytest.approx(theirs["ovrl_mos"], abs=1e-5)
    assert ours["dnsmos_sig"] == pytest.approx(theirs["sig_mos"], abs=1e-5)
    assert ours["dnsmos_bak"] == pytest.approx(theirs["bak_mos"], abs=1e-5)
    assert ours["dnsmos_p808"] == pytest.approx(theirs["p808_mos"], abs=1e-5)
    assert all(1.0 < v < 5.0 for v in ours.values())


@requires_data
def test_noise_lowers_background_and_overall(clip: tuple[np.ndarray, int], rng: np.random.Generator) -> None:
    x, sr = clip
    noise = rng.standard_normal(x.size).astype(np.float32)
    noisy = x + noise * np.sqrt(np.mean(x**2) / np.mean(noise**2))  # 0 dB SNR
    noisy /= max(1.0, float(np.abs(noisy).max()))
    clean, degraded = dnsmos_score(x, sr), dnsmos_score(noisy, sr)
    assert degraded["dnsmos_bak"] < clean["dnsmos_bak"] - 1.0
    assert degraded["dnsmos_ovrl"] < clean["dnsmos_ovrl"] - 0.5


def test_traps_are_reasons_not_hangs_or_crashes() -> None:
    with pytest.raises(MetricError, match="empty"):  # refused before speechmos, which would loop forever
        dnsmos_score(np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(MetricError, match="too short"):
        dnsmos_score(np.sin(np.arange(800, dtype=np.float32)) * 0.1, 16000)
    with pytest.raises(MetricError, match="DC only"):  # scored DNSMOS OVRL 1.05 before, as if it were speech
        dnsmos_score(np.full(32000, 0.25, dtype=np.float32), 16000)
    with pytest.raises(MetricError, match="silent"):
        dnsmos_score(np.zeros(32000, dtype=np.float32), 16000)
    loud = np.sin(np.linspace(0, 2000, 32000)).astype(np.float32) * 1.5
    with pytest.raises(ValueError):
        speechmos_dnsmos.run(loud, 16000)  # the library refuses |x| > 1 with an exception
    with pytest.raises(MetricError, match=r"outside \[-1, 1\] \(peak 1.500\)"):
        dnsmos_score(loud, 16000)
    with pytest.raises(MetricError, match="NaN"):
        dnsmos_score(np.full(32000, np.nan, dtype=np.float32), 16000)
