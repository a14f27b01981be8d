"""What every metric is: a name, its output keys, whether it needs a reference, and how to compute it.

A metric computes on arrays and returns ``{key: float}``; a per-file problem (silence, too short,
a library refusing the input) is a :class:`MetricError` with a reason a user can read, never a crash
of the batch and never a fake number.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vocoder_cli.errors import ConfigError

# One LSB of 16-bit audio is 3.05e-5 (-90.3 dBFS): a signal whose peak is below it is digital silence.
SILENCE_PEAK = 10 ** (-90 / 20)
# Samples at or above this magnitude count as "at full scale" for the clipping warning.
FULL_SCALE = 0.999
CLIPPED_FRACTION = 0.001

Scores = dict[str, float]
PairedFn = Callable[[np.ndarray, np.ndarray, int], Scores]
FreeFn = Callable[[np.ndarray, int], Scores]


class MetricError(Exception):
    """One metric cannot score one file; ``reason`` goes into the row's ``error``."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class MissingExtraError(ConfigError):
    """A metric's optional dependencies are not installed."""


@dataclass(frozen=True)
class Metric:
    """A registered metric. ``compute`` gets (ref, gen, sr) when ``paired`` else (gen, sr)."""

    name: str
    keys: tuple[str, ...]
    paired: bool
    extra: str
    modules: tuple[str, ...]
    library: str
    sample_rate: int | None  # the rate it computes at; None = the reference file's own rate
    description: str
    compute: Callable[..., Scores] = field(repr=False)
    neural: bool = False  # batched on a device in the main process instead of the CPU pool

    def check_installed(self) -> None:
        """Raise a clear error naming the extra when an import would fail."""
        missing = [m for m in self.modules if importlib.util.find_spec(m) is None]
        if missing:
            raise MissingExtraError(
                f"metric {self.name!r} needs the [{self.extra}] extra (missing: {', '.join(missing)}): "
                f"pip install 'vocoder[{self.extra}]'"
            )

    def info(self) -> dict[str, Any]:
        """What the numbers were computed on: library + version, sample rate, output keys."""
        return {
            "metric": self.name,
            "keys": list(self.keys),
            "paired": self.paired,
            "library": self.library,
            "version": library_version(self.library),
            "sample_rate": self.sample_rate if self.sample_rate else "reference rate",
            "description": self.description,
        }


def library_version(dist: str) -> str | None:
    """Installed version of a distribution, or None when absent (``vocoder`` reports our own)."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def is_silent(wav: np.ndarray) -> bool:
    return wav.size == 0 or float(np.max(np.abs(wav))) < SILENCE_PEAK


def require_finite(wav: np.ndarray, what: str) -> None:
    if wav.size == 0:
        raise MetricError(f"{what} is empty (no samples)")
    if not np.all(np.isfinite(wav)):
        raise MetricError(f"{what} contains NaN/inf samples")


def clipping_warning(wav: np.ndarray, what: str) -> str | None:
    """A note when a signal sits at full scale often enough to distort scores (not an error)."""
    if wav.size == 0:
        return None
    peak = float(np.max(np.abs(wav)))
    if peak > 1.0:
        return f"{what} exceeds full scale (peak {peak:.2f} > 1.0)"
    share = float(np.mean(np.abs(wav) >= FULL_SCALE))
    if share >= CLIPPED_FRACTION:
        return f"{what} is clipped ({100 * share:.2f}% of samples at full scale)"
    return None
