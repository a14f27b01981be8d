"""Summary statistics per metric key: mean, sample std, 95% t-interval, count and failures.

A t-interval is symmetric, so near a bound of the metric's scale it crosses it (STOI 0.99 +- 0.02 gives
an upper limit of 1.01, which no STOI can reach): the interval is clipped to the key's valid range and
``ci_clipped`` says so. The range never cuts into values actually observed (a MOS predictor's 1-5 is a
scale, not a hard limit of its model)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Summary:
    key: str
    mean: float | None
    std: float | None
    ci_low: float | None
    ci_high: float | None
    count: int
    failures: int
    ci_clipped: bool = False  # the interval was cut to the metric's valid range

    def as_dict(self) -> dict[str, float | int | str | None]:
        return asdict(self)


# Exact two-sided 95% t values where the series below is poor.
_T975_SMALL = {1: 12.706204736, 2: 4.302652730, 3: 3.182446305, 4: 2.776445105}


def t_quantile_series(dof: int) -> float:
    """Cornish-Fisher expansion of the t quantile around the normal one (error < 3e-3 for dof >= 5)."""
    if dof in _T975_SMALL:
        return _T975_SMALL[dof]
    z = 1.959963984540054
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    return z + g1 / dof + g2 / dof**2 + g3 / dof**3


def t_quantile_975(dof: int) -> float:
    """Two-sided 95% Student-t critical value: scipy when installed (the [metrics] extra), else the series."""
    try:
        from scipy.stats import t
    except ImportError:
        return t_quantile_series(dof)
    return float(t.ppf(0.975, dof))


def summarise(key: str, values: Sequence[float | None], valid: tuple[float, float] | None = None) -> Summary:
    """Statistics over the files where the metric succeeded; ``failures`` counts the rest. ``valid``:
    the values the key can take (registry.VALID_RANGES), to which the interval is clipped."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    failures = len(values) - len(finite)
    n = len(finite)
    if n == 0:
        return Summary(key, None, None, None, None, 0, failures)
    mean = sum(finite) / n
    if n == 1:
        return Summary(key, mean, None, None, None, 1, failures)
    std = math.sqrt(sum((v - mean) ** 2 for v in finite) / (n - 1))
    half = t_quantile_975(n - 1) * std / math.sqrt(n)
    low, high = mean - half, mean + half
    clipped = False
    if valid is not None:
        floor, ceiling = min(valid[0], min(finite)), max(valid[1], max(finite))
        clipped = low < floor or high > ceiling
        low, high = max(low, floor), min(high, ceiling)
    return Summary(key, mean, std, low, high, n, failures, clipped)
