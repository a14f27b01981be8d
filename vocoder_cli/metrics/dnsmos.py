"""DNSMOS P.835 (SIG, BAK, OVRL) and P.808 from the ONNX models inside the ``speechmos`` wheel.

speechmos' traps are guarded here: it loops forever on an empty array (it doubles the array until it
reaches 9.01 s) and raises on samples outside [-1, 1]; both become per-file reasons. Each process builds
its ONNX sessions once, with one intra-op thread, so the CPU pool does not oversubscribe the cores.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from vocoder_cli.audio import resample
from vocoder_cli.metrics.base import MetricError, Scores, library_errors, require_signal

DNSMOS_RATE = 16_000
# speechmos scores windows of 9.01 s; anything shorter is tiled, which is meaningless below ~1 s.
MIN_SECONDS = 1.0


@lru_cache(maxsize=1)
def _model() -> Any:
    import onnxruntime as ort
    from speechmos import dnsmos

    folder = Path(dnsmos.__file__).parent / "dnsmos_models"
    model = dnsmos.DNSMOS(str(folder / "sig_bak_ovr.onnx"), str(folder / "model_v8.onnx"))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    model.onnx_sess = ort.InferenceSession(str(folder / "sig_bak_ovr.onnx"), options, providers=providers)
    model.p808_onnx_sess = ort.InferenceSession(str(folder / "model_v8.onnx"), options, providers=providers)
    return model


def dnsmos_score(gen: np.ndarray, sr: int) -> Scores:
    """Non-personalised DNSMOS of one signal (resampled to 16 kHz with soxr)."""
    require_signal(gen, "audio")
    if gen.size < MIN_SECONDS * sr:
        raise MetricError(f"too short for DNSMOS ({gen.size / sr:.2f} s < {MIN_SECONDS:.0f} s)")
    peak = float(np.max(np.abs(gen)))
    if peak > 1.0:
        raise MetricError(f"samples outside [-1, 1] (peak {peak:.3f}); DNSMOS needs unclipped float audio")
    with library_errors("soxr"):
        audio = resample(gen, sr, DNSMOS_RATE).astype(np.float32)
    audio = np.clip(audio, -1.0, 1.0)  # the resampler's overshoot near full scale is not the file's fault
    with library_errors("speechmos"):
        result = _model()(audio, DNSMOS_RATE, False)
    return {
        "dnsmos_sig": float(result["sig_mos"]),
        "dnsmos_bak": float(result["bak_mos"]),
        "dnsmos_ovrl": float(result["ovrl_mos"]),
        "dnsmos_p808": float(result["p808_mos"]),
    }
