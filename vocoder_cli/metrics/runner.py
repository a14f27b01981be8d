"""Score many files: CPU metrics in a process pool (one BLAS/OpenMP thread per worker), neural metrics
batched on a device in this process. Per-file problems become rows with an ``error``; the batch goes on.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vocoder_cli.audio import load_audio, resample
from vocoder_cli.errors import VocoderError
from vocoder_cli.metrics.base import Metric, MetricError, clipping_warning, is_silent
from vocoder_cli.metrics.pairing import Pair
from vocoder_cli.metrics.registry import METRICS
from vocoder_cli.metrics.summary import Summary, summarise

# A vocoder's output differs from its input by less than one hop (256 samples at 22.05 kHz).
HOP_SECONDS = 256 / 22050
LENGTH_TOLERANCE = 0.01
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


@dataclass
class FileResult:
    """One file's scores (None where a metric failed), its errors and warnings."""

    id: str
    scores: dict[str, float | None] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.errors)

    def row(self, keys: Sequence[str]) -> dict[str, Any]:
        """The JSON-lines row: id, one key per metric output (null on failure), error / warning."""
        out: dict[str, Any] = {"id": self.id}
        out.update({k: self.scores.get(k) for k in keys})
        if self.errors:
            out["error"] = "; ".join(self.errors)
        if self.warnings:
            out["warning"] = "; ".join(self.warnings)
        return out


@dataclass
class ScoreRun:
    metrics: list[Metric]
    results: list[FileResult]

    @property
    def keys(self) -> list[str]:
        return [k for m in self.metrics for k in m.keys]

    @property
    def failures(self) -> list[FileResult]:
        return [r for r in self.results if r.failed]

    def summaries(self) -> list[Summary]:
        return [summarise(k, [r.scores.get(k) for r in self.results]) for k in self.keys]

    def info(self) -> dict[str, dict[str, Any]]:
        return {m.name: m.info() for m in self.metrics}


def align(ref: np.ndarray, gen: np.ndarray, sr: int, hop_seconds: float = HOP_SECONDS) -> tuple[np.ndarray, np.ndarray]:
    """Trim both to the shorter length; a difference over both 2 hops and 1% is a MetricError."""
    diff = abs(ref.size - gen.size)
    tolerance = max(2 * hop_seconds * sr, LENGTH_TOLERANCE * max(ref.size, gen.size))
    if diff > tolerance:
        raise MetricError(
            f"length mismatch: reference {ref.size / sr:.3f} s, generated {gen.size / sr:.3f} s "
            f"(difference {1000 * diff / sr:.0f} ms > {1000 * tolerance / sr:.0f} ms allowed)"
        )
    n = min(ref.size, gen.size)
    return ref[:n], gen[:n]


def _load(path: Path | None, what: str, target_sr: int | None = None) -> tuple[np.ndarray, int]:
    if path is None:
        raise MetricError(f"no {what} file with this id")
    try:
        return load_audio(path, target_sr)
    except VocoderError as exc:
        raise MetricError(str(exc)) from None


def _run_metric(metric: Metric, result: FileResult, *args: Any) -> None:
    try:
        values = metric.compute(*args)
    except MetricError as exc:
        result.scores.update({k: None for k in metric.keys})
        result.errors.append(f"{metric.name}: {exc.reason}")
        return
    for key in metric.keys:
        value = values.get(key)
        if value is None or not math.isfinite(value):
            result.scores[key] = None
            result.errors.append(f"{key}: undefined for this file")
        else:
            result.scores[key] = float(value)


def score_file(pair: Pair, metric_names: Sequence[str], hop_seconds: float = HOP_SECONDS) -> FileResult:
    """All per-file (non-neural) metrics of one pair; never raises for a bad file."""
    metrics = [METRICS[n] for n in metric_names]
    result = FileResult(pair.id)
    try:
        gen, sr = _load(pair.gen, "generated")
    except MetricError as exc:
        result.errors.append(exc.reason)
        result.scores.update({k: None for m in metrics for k in m.keys})
        return result
    if warning := clipping_warning(gen, "generated audio"):
        result.warnings.append(warning)
    paired = [m for m in metrics if m.paired]
    if paired:
        try:
            ref, ref_sr = _load(pair.ref, "reference")
            if warning := clipping_warning(ref, "reference"):
                result.warnings.append(warning)
            gen_at_ref = resample(gen, sr, ref_sr)
            ref, gen_at_ref = align(ref, gen_at_ref, ref_sr, hop_seconds)
        except MetricError as exc:
            result.errors.append(exc.reason)
            result.scores.update({k: None for m in paired for k in m.keys})
        else:
            for metric in paired:
                _run_metric(metric, result, ref, gen_at_ref, ref_sr)
    for metric in metrics:
        if not metric.paired:
            _run_metric(metric, result, gen, sr)
    return result


def _limit_threads() -> None:
    """Pool initializer: one BLAS/OpenMP thread per worker, so N workers use N cores."""
    for var in _THREAD_VARS:
        os.environ[var] = "1"
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:
        pass
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(1)


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def preload(metrics: Sequence[Metric]) -> None:
    """Import the metrics' libraries here, before forking, so each worker does not pay for it."""
    import importlib

    from vocoder_cli.metrics.signal import load_pyworld

    for metric in metrics:
        for module in metric.modules:
            if module == "pyworld":
                load_pyworld()
            elif not metric.neural:
                importlib.import_module(module)


def _pool_context() -> multiprocessing.context.BaseContext:
    # fork starts workers in milliseconds; the parent has run no OpenMP region yet when scoring starts.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def score_cpu(
    pairs: Sequence[Pair],
    metrics: Sequence[Metric],
    workers: int,
    hop_seconds: float = HOP_SECONDS,
    on_done: Callable[[FileResult], None] | None = None,
) -> list[FileResult]:
    names = [m.name for m in metrics if not m.neural]
    if not names:
        return [FileResult(p.id) for p in pairs]
    if workers <= 1 or len(pairs) <= 1:
        results = []
        for pair in pairs:
            results.append(score_file(pair, names, hop_seconds))
            if on_done:
                on_done(results[-1])
        return results
    preload([m for m in metrics if not m.neural])
    by_id: dict[str, FileResult] = {}
    pool = ProcessPoolExecutor(min(workers, len(pairs)), mp_context=_pool_context(), initializer=_limit_threads)
    try:
        futures = {pool.submit(score_file, pair, names, hop_seconds): pair.id for pair in pairs}
        for future in as_completed(futures):
            by_id[futures[future]] = future.result()
            if on_done:
                on_done(by_id[futures[future]])
    except BaseException:  # Ctrl-C or a crash: drop the queued files instead of finishing them
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return [by_id[p.id] for p in pairs]


def score_wvmos(
    pairs: Sequence[Pair],
    results: Sequence[FileResult],
    device: str,
    checkpoint: str | os.PathLike[str] | None,
    batch_size: int = 8,
    encoder_config: Any | None = None,
    on_done: Callable[[FileResult], None] | None = None,
) -> None:
    """Add ``wvmos`` to each result: files loaded at 16 kHz, scored in equal-length batches."""
    from vocoder_cli.metrics.wvmos import WVMOS_RATE, find_checkpoint, load_wvmos, score_batch

    model = load_wvmos(find_checkpoint(checkpoint), device, encoder_config)
    ready: list[tuple[FileResult, np.ndarray]] = []
    for pair, result in zip(pairs, results):
        try:
            wav, _ = _load(pair.gen, "generated", WVMOS_RATE)
            if wav.size < WVMOS_RATE // 10:
                raise MetricError(f"too short for WV-MOS ({wav.size / WVMOS_RATE:.3f} s < 0.1 s)")
            if is_silent(wav):
                raise MetricError("audio is silent (peak below -90 dBFS)")
        except MetricError as exc:
            result.scores["wvmos"] = None
            result.errors.append(f"wvmos: {exc.reason}")
            if on_done:
                on_done(result)
            continue
        ready.append((result, wav))
    for start in range(0, len(ready), 64):  # bounded memory: 64 files in flight
        chunk = ready[start : start + 64]
        for (result, _), value in zip(chunk, score_batch(model, [w for _, w in chunk], device, batch_size)):
            result.scores["wvmos"] = value
            if on_done:
                on_done(result)


def score_pairs(
    pairs: Sequence[Pair],
    metrics: Sequence[Metric],
    *,
    workers: int | None = None,
    device: str = "cpu",
    wvmos_checkpoint: str | os.PathLike[str] | None = None,
    batch_size: int = 8,
    hop_seconds: float = HOP_SECONDS,
    on_done: Callable[[FileResult], None] | None = None,
) -> ScoreRun:
    """Score every pair with every metric. Raises only for setup problems (missing extra/checkpoint)."""
    for metric in metrics:
        metric.check_installed()
    if any(m.name == "wvmos" for m in metrics):
        from vocoder_cli.metrics.wvmos import find_checkpoint

        find_checkpoint(wvmos_checkpoint)  # fail before hours of CPU work, not after
    results = score_cpu(pairs, metrics, workers or default_workers(), hop_seconds, on_done)
    if any(m.name == "wvmos" for m in metrics):
        score_wvmos(pairs, results, device, wvmos_checkpoint, batch_size, on_done=on_done)
    return ScoreRun(list(metrics), list(results))
