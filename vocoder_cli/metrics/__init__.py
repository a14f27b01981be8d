"""Speech-quality metrics behind one registry: reference (PESQ, STOI), signal (M-STFT, MCD, SI-SDR,
LSD) and neural (pitch with CREPE, DNSMOS, WV-MOS); the runner scores batches of files in parallel."""

from vocoder_cli.metrics.base import Metric, MetricError, MissingExtraError
from vocoder_cli.metrics.pairing import Pair, pair_paths, parse_pairs
from vocoder_cli.metrics.registry import METRICS, parse_metrics
from vocoder_cli.metrics.runner import FileResult, ScoreRun, score_pairs
from vocoder_cli.metrics.summary import Summary, summarise

__all__ = [
    "METRICS", "FileResult", "Metric", "MetricError", "MissingExtraError", "Pair", "ScoreRun", "Summary",
    "pair_paths", "parse_metrics", "parse_pairs", "score_pairs", "summarise",
]
