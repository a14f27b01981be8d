"""What every metric is: a name, its output keys, whether it needs a reference, and how to compute it.

A metric computes on arrays and returns ``{key: float}``; a per-file problem (silence, too short,
a library refusing the input) is a :class:`MetricError` with a reason a user can read, never a crash
of the batch and never a fake number.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from vocoder_cli.errors import ConfigError

# One LSB of 16-bit audio is 3.05e-5 (-90.3 dBFS): a signal whose peak is below it is digital silence.
SILENCE_PEAK = 10 ** (-90 / 20)
# Signal metrics (M-STFT, MCD, SI-SDR, LSD) are computed at this rate unless ``--rate`` says otherwise:
# the same degradation measured at a file's own rate gives different numbers at 22.05 and 96 kHz.
DEFAULT_SIGNAL_RATE = 22_050
MIN_RATE, MAX_RATE = 8_000, 384_000
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
    sample_rate: int | None  # the rate both signals are resampled to (None: DEFAULT_SIGNAL_RATE)
    description: str
    compute: Callable[..., Scores] = field(repr=False)
    neural: bool = False  # batched on a device in the main process instead of the CPU pool
    rate_adjustable: bool = False  # --rate may change it (signal metrics); fixed by a standard/model otherwise
    aligned: bool = True  # paired metrics: the two signals are trimmed to one length first (False: not)
    native_rate: bool = False  # computed at each file's own rate (NISQA): ``sample_rate`` is then unused

    @property
    def rate(self) -> int:
        """The one rate every file is scored at, whatever the files' own rates."""
        return self.sample_rate or DEFAULT_SIGNAL_RATE

    def at_rate(self, rate: int) -> Metric:
        """This metric computed at ``rate`` (only where the rate is not fixed by a standard or model)."""
        if self.native_rate:
            raise ConfigError(f"{self.name} is computed at each file's own rate, as its model defines; "
                              "--rate does not apply")
        if rate == self.rate:
            return self
        if not self.rate_adjustable:
            raise ConfigError(
                f"{self.name} is defined at {self.rate} Hz by its standard or model; its rate cannot be changed"
            )
        if not MIN_RATE <= rate <= MAX_RATE:
            raise ConfigError(f"--rate {rate} for {self.name}: expected {MIN_RATE}..{MAX_RATE} Hz")
        return replace(self, sample_rate=rate)

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
            "sample_rate": "native" if self.native_rate else self.rate,
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


def require_signal(wav: np.ndarray, what: str) -> None:
    """Refuse what no metric may score: empty, NaN/inf, digital silence, or a constant (DC) level.

    A missing or dead output must be a failure row, never a number that enters the mean (an all-zero
    output would otherwise get SI-SDR 0 dB, and silent-vs-silent M-STFT / LSD 0, "perfect")."""
    require_finite(wav, what)
    peak = float(np.max(np.abs(wav)))
    if peak < SILENCE_PEAK:
        level = "-inf" if peak == 0 else f"{20 * np.log10(peak):.1f}"
        raise MetricError(f"{what} is silent (peak {level} dBFS, below -90 dBFS)")
    wav64 = wav.astype(np.float64)
    swing = float(np.max(np.abs(wav64 - wav64.mean())))
    if swing < SILENCE_PEAK:
        raise MetricError(
            f"{what} is DC only (constant level {float(wav64.mean()):+.4f}, no signal around it"
            + (f"; {wav.size} sample)" if wav.size == 1 else ")")
        )


def require_length(wav: np.ndarray, samples: int, sr: int, what: str) -> None:
    """A metric's minimum input length, said in seconds (before the library fails in its own way)."""
    if wav.size < samples:
        raise MetricError(f"too short for {what} ({wav.size / sr:.3f} s < {samples / sr:.3f} s)")


@contextmanager
def library_errors(library: str) -> Iterator[None]:
    """Any exception a metric library raises on one file becomes that file's :class:`MetricError`,
    with the exception's type and message; exceptions of our own code (outside this block) escape."""
    try:
        yield
    except MetricError:
        raise
    except Exception as exc:  # noqa: BLE001 - the library's failure on this input, whatever its type
        raise MetricError(library_failure(library, exc)) from None


def library_failure(library: str, exc: BaseException) -> str:
    """``"pystoi raised AxisError: axis 1 is out of bounds ..."``: the row's reason for a library error."""
    message = " ".join(str(exc).split())[:300] or "(no message)"
    return f"{library} raised {type(exc).__name__}: {message}"


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
