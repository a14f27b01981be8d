"""Score many files: CPU metrics in a process pool (one BLAS/OpenMP thread per worker), neural metrics
batched on a device in this process. Per-file problems become rows with an ``error``; the batch goes on.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vocoder_cli.audio import load_audio, resample
from vocoder_cli.errors import VocoderError
from vocoder_cli.metrics.base import (
    Metric,
    MetricError,
    Scores,
    clipping_warning,
    library_errors,
    require_length,
    require_signal,
)
from vocoder_cli.metrics.pairing import Pair
from vocoder_cli.metrics.registry import METRICS, NISQA_METRICS, valid_range
from vocoder_cli.metrics.summary import Summary, summarise

# A vocoder's output differs from its input by less than one hop: 256 samples at 22.05 kHz (11.6 ms).
HOP_SECONDS = 256 / 22050
ACCEPT_HOPS = 2  # up to 2 hops (512 samples at 22.05 kHz, 23 ms): trimmed to the shorter length silently
FAIL_HOPS = 10  # over 10 hops (2560 samples, 116 ms): refused; in between: trimmed, with a warning
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
        return [summarise(k, [r.scores.get(k) for r in self.results], valid_range(k)) for k in self.keys]

    def rows(self) -> list[dict[str, Any]]:
        """One dict per file, in order: ``id``, each metric key (None where it failed), ``error`` and
        ``warning`` when there are any (what ``vocoder score --per-file -f jsonl`` writes)."""
        return [r.row(self.keys) for r in self.results]

    def summary(self) -> list[dict[str, Any]]:
        """One dict per metric key: ``metric``, ``mean``, ``std``, ``ci_low``/``ci_high`` (95%),
        ``ci_clipped``, ``count``, ``failures``, ``library`` (name and version), ``sample_rate``."""
        from vocoder_cli.metrics.report import summary_rows

        return summary_rows(self)

    def info(self) -> dict[str, dict[str, Any]]:
        """Each metric's :meth:`Metric.info` and the valid range of each key (None: unbounded)."""
        return {m.name: {**m.info(), "ranges": {k: _json_range(k) for k in m.keys}} for m in self.metrics}


def _json_range(key: str) -> list[float | None] | None:
    bounds = valid_range(key)
    return None if bounds is None else [b if math.isfinite(b) else None for b in bounds]


def length_check(ref_len: int, gen_len: int, sr: int, hop_seconds: float = HOP_SECONDS) -> str | None:
    """None when the lengths agree within ACCEPT_HOPS hops, a warning within FAIL_HOPS, else a MetricError.

    Lengths in samples at ``sr`` (the reference's rate). A relative rule would let a 10-minute output
    lose seconds unnoticed; a vocoder's own difference is under one hop whatever the length."""
    diff = abs(ref_len - gen_len)
    accept, refuse = round(ACCEPT_HOPS * hop_seconds * sr), round(FAIL_HOPS * hop_seconds * sr)
    what = (f"reference {ref_len} samples ({ref_len / sr:.3f} s), generated {gen_len} ({gen_len / sr:.3f} s) "
            f"at {sr} Hz: {diff} samples ({1000 * diff / sr:.0f} ms) apart")
    if diff > refuse:
        raise MetricError(f"length mismatch: {what}, more than {refuse} ({FAIL_HOPS} hops); "
                          "a wrong pairing or a truncated output, or outputs not time-aligned with their "
                          "references (TTS): score those with --unaligned")
    if diff > accept:
        return (f"length differs: {what}, more than the {accept} accepted ({ACCEPT_HOPS} hops); "
                f"scored on the first {min(ref_len, gen_len)} samples")
    return None


def align(ref: np.ndarray, gen: np.ndarray, sr: int, hop_seconds: float = HOP_SECONDS) -> tuple[np.ndarray, np.ndarray]:
    """Trim both to the shorter length; a difference over FAIL_HOPS hops is a MetricError."""
    length_check(ref.size, gen.size, sr, hop_seconds)
    n = min(ref.size, gen.size)
    return ref[:n], gen[:n]


def _load(path: Path | None, what: str, target_sr: int | None = None) -> tuple[np.ndarray, int]:
    if path is None:
        raise MetricError(f"no {what} file with this id")
    try:
        return load_audio(path, target_sr)
    except VocoderError as exc:
        raise MetricError(str(exc)) from None
    except (OSError, MemoryError) as exc:  # soundfile / soxr on a file they cannot handle
        raise MetricError(f"{path}: cannot load ({type(exc).__name__}: {exc})") from None


def _load_signal(path: Path | None, what: str) -> tuple[np.ndarray, int]:
    """A file that can be scored at all: decodable, finite, neither silent nor DC only."""
    wav, sr = _load(path, what)
    require_signal(wav, "reference" if what == "reference" else "generated audio")
    return wav, sr


def _fail(result: FileResult, metrics: Sequence[Metric], reason: str) -> None:
    result.scores.update({k: None for m in metrics for k in m.keys})
    result.errors.append(reason)


def _run_metric(metric: Metric, result: FileResult, *args: Any) -> None:
    try:
        values = metric.compute(*args)
    except MetricError as exc:
        result.scores.update({k: None for k in metric.keys})
        result.errors.append(f"{metric.name}: {exc.reason}")
        return
    _store(metric, result, values)


def _store(metric: Metric, result: FileResult, values: Scores) -> None:
    """A metric's values into the row; a missing or non-finite one is that key's failure."""
    for key in metric.keys:
        value = values.get(key)
        if value is None or not math.isfinite(value):
            result.scores[key] = None
            result.errors.append(f"{key}: undefined for this file")
        else:
            result.scores[key] = float(value)


class _AtRate:
    """Signals resampled once per rate, shared by the metrics computed at that rate."""

    def __init__(self, signals: tuple[np.ndarray, ...], sr: int) -> None:
        self.signals, self.sr = signals, sr
        self.cache: dict[int, tuple[np.ndarray, ...]] = {}

    def __call__(self, rate: int) -> tuple[np.ndarray, ...]:
        if rate not in self.cache:
            with library_errors("soxr"):
                self.cache[rate] = tuple(resample(x, self.sr, rate) for x in self.signals)
        return self.cache[rate]


def _score_at_rates(metrics: Sequence[Metric], result: FileResult, at_rate: _AtRate) -> None:
    for metric in metrics:
        try:
            signals = at_rate(metric.rate)
        except MetricError as exc:
            _fail(result, [metric], f"{metric.name}: {exc.reason}")
            continue
        _run_metric(metric, result, *signals, metric.rate)


def _score_paired(
    metrics: Sequence[Metric], result: FileResult, ref: np.ndarray, gen: np.ndarray, sr: int, hop_seconds: float
) -> None:
    """Unaligned metrics (``aligned=False``: MCD-DTW of TTS output) see both signals whole; the others see
    them trimmed to one length, after the length check."""
    unaligned = [m for m in metrics if not m.aligned]
    aligned = [m for m in metrics if m.aligned]
    _score_at_rates(unaligned, result, _AtRate((ref, gen), sr))
    if not aligned:
        return
    try:
        if warning := length_check(ref.size, gen.size, sr, hop_seconds):
            result.warnings.append(warning)
        ref, gen = align(ref, gen, sr, hop_seconds)
    except MetricError as exc:
        _fail(result, aligned, exc.reason)
    else:
        _score_at_rates(aligned, result, _AtRate((ref, gen), sr))


def score_file(pair: Pair, metrics: Sequence[Metric], hop_seconds: float = HOP_SECONDS) -> FileResult:
    """All per-file (non-neural) metrics of one pair, each at its own declared rate (``metric.rate``).

    Never raises for a bad file: a load failure, a silent or DC-only signal, a length mismatch, running
    out of memory on this file, or any exception a metric library raises becomes a reason in the row;
    only our own bugs propagate."""
    try:
        return _score_file(pair, metrics, hop_seconds)
    except MemoryError:  # one huge file must not end the batch (in a pool worker it would end score_cpu)
        result = FileResult(pair.id)
        _fail(result, metrics, "out of memory scoring this file")
        return result


def _score_file(pair: Pair, metrics: Sequence[Metric], hop_seconds: float) -> FileResult:
    result = FileResult(pair.id)
    paired, free = [m for m in metrics if m.paired], [m for m in metrics if not m.paired]
    if paired and pair.ref is None and pair.gen is not None:  # the pairing problem first
        _fail(result, paired, "no reference file with this id")
        paired = []
    if not paired and not free:
        return result
    try:
        gen, sr = _load_signal(pair.gen, "generated")
    except MetricError as exc:
        _fail(result, paired + free, exc.reason)
        return result
    if warning := clipping_warning(gen, "generated audio"):
        result.warnings.append(warning)
    if paired:
        try:
            ref, ref_sr = _load_signal(pair.ref, "reference")
            if warning := clipping_warning(ref, "reference"):
                result.warnings.append(warning)
            with library_errors("soxr"):
                gen_at_ref = resample(gen, sr, ref_sr)
        except MetricError as exc:
            _fail(result, paired, exc.reason)
        else:
            _score_paired(paired, result, ref, gen_at_ref, ref_sr, hop_seconds)
    _score_at_rates(free, result, _AtRate((gen,), sr))
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


def _pool_context(metrics: Sequence[Metric]) -> multiprocessing.context.BaseContext:
    """Workers fork from a clean server process (forkserver), never from the caller: forking a process
    that runs threads of its own (a notebook, a training loop's log writer, torch's OpenMP pool) can
    deadlock the child on a lock some other thread held. The server imports the libraries of ``metrics``
    once (pyworld aside: load_pyworld checks its import), so each worker starts in milliseconds; an
    ImportError there is ignored and the worker reports the missing library. Spawn where forkserver
    does not exist (macOS, Windows)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    modules = {module for metric in metrics for module in metric.modules if module != "pyworld"}
    context.set_forkserver_preload(sorted({"numpy", "threadpoolctl", __name__} | modules))
    return context


def score_cpu(
    pairs: Sequence[Pair],
    metrics: Sequence[Metric],
    workers: int,
    hop_seconds: float = HOP_SECONDS,
    on_done: Callable[[FileResult], None] | None = None,
) -> list[FileResult]:
    per_file = [m for m in metrics if not m.neural]
    if not per_file:
        return [FileResult(p.id) for p in pairs]
    if workers <= 1 or len(pairs) <= 1:
        results = []
        for pair in pairs:
            results.append(score_file(pair, per_file, hop_seconds))
            if on_done:
                on_done(results[-1])
        return results
    by_id: dict[str, FileResult] = {}
    pool = ProcessPoolExecutor(min(workers, len(pairs)), mp_context=_pool_context(per_file), initializer=_limit_threads)
    try:
        futures = {pool.submit(score_file, pair, per_file, hop_seconds): pair.id for pair in pairs}
        for future in as_completed(futures):
            by_id[futures[future]] = future.result()
            if on_done:
                on_done(by_id[futures[future]])
    except BrokenProcessPool:  # a library killed a worker (a signal, not an exception): isolate the file
        pool.shutdown(wait=False, cancel_futures=True)
        for pair in pairs:
            if pair.id not in by_id:
                by_id[pair.id] = _score_isolated(pair, per_file, hop_seconds)
                if on_done:
                    on_done(by_id[pair.id])
    except BaseException:  # Ctrl-C or our own bug: drop the queued files instead of finishing them
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return [by_id[p.id] for p in pairs]


def _score_isolated(pair: Pair, metrics: Sequence[Metric], hop_seconds: float) -> FileResult:
    """One file in a process of its own, so a crash in native code costs only that file's row."""
    with ProcessPoolExecutor(1, mp_context=_pool_context(metrics), initializer=_limit_threads) as pool:
        try:
            return pool.submit(score_file, pair, metrics, hop_seconds).result()
        except BrokenProcessPool:
            result = FileResult(pair.id)
            _fail(result, metrics, "a metric library crashed the worker process on this file "
                                   f"({', '.join(m.name for m in metrics)}; a signal such as SIGSEGV, no exception)")
            return result


def score_reference_free(
    pairs: Sequence[Pair],
    results: Sequence[FileResult],
    metric: Metric,
    prepare: Callable[[np.ndarray, int], Any],
    score: Callable[[list[Any]], list[Scores]],
    library: str,
    on_done: Callable[[FileResult], None] | None = None,
) -> None:
    """Add a batched reference-free neural metric (WV-MOS, NISQA) to each result.

    ``prepare(wav, sr)`` turns one generated file (mono, at its own rate) into the model's input or raises
    a MetricError (too short, ...); ``score(items)`` gives one ``{key: value}`` per item. Files go through
    64 at a time (bounded memory); when ``library`` raises on a chunk, its files are scored one by one so
    only the broken one fails."""
    ready: list[tuple[FileResult, Any]] = []
    for pair, result in zip(pairs, results):
        try:
            wav, sr = _load_signal(pair.gen, "generated")
            ready.append((result, prepare(wav, sr)))
        except (MetricError, MemoryError) as exc:
            reason = exc.reason if isinstance(exc, MetricError) else "out of memory loading this file"
            _fail(result, [metric], f"{metric.name}: {reason}")
            if on_done:
                on_done(result)
    for start in range(0, len(ready), 64):
        chunk = ready[start : start + 64]
        try:
            with library_errors(library):
                values: list[Scores | MetricError] = list(score([item for _, item in chunk]))
        except MetricError:
            values = [_score_alone(score, item, library) for _, item in chunk]
        for (result, _), value in zip(chunk, values):
            if isinstance(value, MetricError):
                _fail(result, [metric], f"{metric.name}: {value.reason}")
            else:
                _store(metric, result, value)
            if on_done:
                on_done(result)


def _score_alone(score: Callable[[list[Any]], list[Scores]], item: Any, library: str) -> Scores | MetricError:
    try:
        with library_errors(library):
            return score([item])[0]
    except MetricError as exc:
        return exc


def score_wvmos(
    pairs: Sequence[Pair],
    results: Sequence[FileResult],
    device: str,
    checkpoint: str | os.PathLike[str] | None,
    batch_size: int = 8,
    encoder_config: Any | None = None,
    on_done: Callable[[FileResult], None] | None = None,
) -> None:
    """Add ``wvmos`` to each result: files resampled to 16 kHz, scored in equal-length batches."""
    from vocoder_cli.metrics.wvmos import (
        WVMOS_RATE,
        find_checkpoint,
        load_wvmos,
        score_batch,
    )

    model = load_wvmos(find_checkpoint(checkpoint), device, encoder_config)

    def prepare(wav: np.ndarray, sr: int) -> np.ndarray:
        require_length(wav, sr // 10, sr, "WV-MOS")
        with library_errors("soxr"):
            return resample(wav, sr, WVMOS_RATE)

    def score(wavs: list[np.ndarray]) -> list[Scores]:
        return [{"wvmos": value} for value in score_batch(model, wavs, device, batch_size)]

    score_reference_free(pairs, results, METRICS["wvmos"], prepare, score, "transformers", on_done)


def score_nisqa(
    pairs: Sequence[Pair],
    results: Sequence[FileResult],
    metric: Metric,
    device: str,
    weights: str | os.PathLike[str],
    batch_size: int = 8,
    on_done: Callable[[FileResult], None] | None = None,
) -> None:
    """Add ``nisqa`` or ``nisqa-tts`` (``metric``) to each result: each file at its own rate."""
    from vocoder_cli.metrics.nisqa import NisqaScorer

    scorer = NisqaScorer.load(metric.name, weights, device, batch_size)
    score_reference_free(pairs, results, metric, scorer.prepare, scorer.score, "torch", on_done)


def score_pitch(
    pairs: Sequence[Pair],
    results: Sequence[FileResult],
    device: str,
    weights: str | os.PathLike[str],
    hop_seconds: float = HOP_SECONDS,
    on_done: Callable[[FileResult], None] | None = None,
    track_cache: bool = True,
) -> None:
    """Add the CREPE pitch metric to each result: one model in this process (CPU threads or a GPU),
    each pair's reference and generated frames through the network together; finished tracks are read
    from and kept in the track cache unless ``track_cache`` is False."""
    from dataclasses import replace

    from vocoder_cli.metrics.pitch import PitchTracker, track_cache_dir

    tracker = PitchTracker.load(weights, device, cache_dir=track_cache_dir() if track_cache else None)
    metric = replace(METRICS["pitch"], compute=tracker.score)
    for pair, result in zip(pairs, results):
        try:
            ref, ref_sr = _load_signal(pair.ref, "reference")
            gen, gen_sr = _load_signal(pair.gen, "generated")
            with library_errors("soxr"):
                gen = resample(gen, gen_sr, ref_sr)
            warning = length_check(ref.size, gen.size, ref_sr, hop_seconds)
            if warning and warning not in result.warnings:
                result.warnings.append(warning)
            ref, gen = align(ref, gen, ref_sr, hop_seconds)
        except (MetricError, MemoryError) as exc:
            reason = exc.reason if isinstance(exc, MetricError) else "out of memory loading this pair"
            _fail(result, [metric], f"pitch: {reason}")
        else:
            _run_metric(metric, result, ref, gen, ref_sr)
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
    crepe_weights: str | os.PathLike[str] | None = None,
    notify: Callable[[str], None] | None = None,
    nisqa_checkpoints: Mapping[str, str | os.PathLike[str]] | None = None,
    track_cache: bool = True,
) -> ScoreRun:
    """Score every pair with every metric. Raises only for setup problems (missing extra/checkpoint).

    ``crepe_weights``: the CREPE state dict for ``pitch`` (default: the ``crepe-full`` weights entry,
    pulled here once, before any scoring, if it is not cached; ``notify`` hears about that pull).
    ``nisqa_checkpoints``: metric name (``nisqa``, ``nisqa-tts``) -> checkpoint (default: the weights entry
    of that name, pulled the same way). ``track_cache``: read and keep pitch tracks in the cache dir
    (off for benchmarks, which must time the work itself)."""
    for metric in metrics:
        metric.check_installed()
    if any(m.name == "wvmos" for m in metrics):
        from vocoder_cli.metrics.wvmos import find_checkpoint

        find_checkpoint(wvmos_checkpoint)  # fail before hours of CPU work, not after
    crepe_path = None
    if any(m.name == "pitch" for m in metrics):
        from vocoder_cli.metrics.pitch import crepe_weights as find_crepe

        crepe_path = find_crepe(crepe_weights, notify=notify)  # never in pool workers
    nisqa_paths = {}
    if any(m.name in NISQA_METRICS for m in metrics):
        from vocoder_cli.metrics.nisqa import nisqa_weights

        given = nisqa_checkpoints or {}
        nisqa_paths = {m.name: nisqa_weights(m.name, given.get(m.name), notify=notify)
                       for m in metrics if m.name in NISQA_METRICS}
    results = score_cpu(pairs, metrics, workers or default_workers(), hop_seconds, on_done)
    if any(m.name == "wvmos" for m in metrics):
        score_wvmos(pairs, results, device, wvmos_checkpoint, batch_size, on_done=on_done)
    if crepe_path is not None:
        score_pitch(pairs, results, device, crepe_path, hop_seconds, on_done=on_done, track_cache=track_cache)
    for metric in metrics:
        if metric.name in nisqa_paths:
            score_nisqa(pairs, results, metric, device, nisqa_paths[metric.name], batch_size, on_done)
    return ScoreRun(list(metrics), list(results))
