"""Which metrics a report computes: `vocoder score`'s ``--metrics`` spec, or a cheap default.

The default for sets with references is ``pesq,stoi,mstft,mcd``: two perceptual scores and two signal
distances that expose Griffin-Lim (PESQ alone flatters it), about 1.6 s of CPU per 8 s clip. Reference-
free sets get ``dnsmos`` by default (the one reference-free score that runs offline out of the box).
DNSMOS costs about 4 s of CPU per clip (more than the four others together), so it is not in the paired
default: ask for it with ``--metrics pesq,stoi,mstft,mcd,dnsmos``. CREPE pitch is minutes per clip on a
CPU. Metrics of a default whose extra is missing are skipped with a note, as ``-m all`` does in `score`.
"""

from __future__ import annotations

from collections.abc import Callable

from vocoder_cli.errors import ConfigError
from vocoder_cli.metrics.base import Metric
from vocoder_cli.metrics.registry import parse_metrics, usable_metrics

DEFAULT_METRICS = "pesq,stoi,mstft,mcd"
DEFAULT_FREE_METRICS = "dnsmos"
# Keys where a smaller number is better; every other key (PESQ, STOI, MOS predictors...) is higher-better.
LOWER_IS_BETTER = frozenset({"mstft", "mcd", "mcd_dtw", "lsd", "f0_rmse", "periodicity"})
# --rank-by default: the first of these a group has, else its first key.
RANK_PREFERENCE = ("pesq", "dnsmos_ovrl", "wvmos")


def higher_is_better(key: str) -> bool:
    return key not in LOWER_IS_BETTER


def _lenient(spec: str, have_ref: bool, wvmos_ckpt: str | None,
             notify: Callable[[str], None] | None) -> tuple[list[Metric], list[str]]:
    return usable_metrics(parse_metrics(spec), have_ref, wvmos_ckpt, notify)


def choose_metrics(
    spec: str | None,
    have_ref: bool,
    have_free: bool,
    *,
    wvmos_ckpt: str | None = None,
    notify: Callable[[str], None] | None = None,
) -> tuple[list[Metric], list[Metric], list[str]]:
    """The metrics of the sets with references, those of the reference-free sets, and notes on what
    was skipped. ``have_ref``/``have_free``: whether there is a set of each kind.

    With an explicit spec, sets with references get every metric and reference-free sets the
    reference-free ones; the names must all be usable (a missing extra is a MissingExtraError, paired
    metrics without any reference set a ConfigError). ``all`` and the defaults keep what this install allows."""
    if spec is None:
        paired, notes = _lenient(DEFAULT_METRICS, True, wvmos_ckpt, notify) if have_ref else ([], [])
        free, free_notes = _lenient(DEFAULT_FREE_METRICS, False, wvmos_ckpt, notify) if have_free else ([], [])
        return paired, free, notes + free_notes
    if "all" in [n.strip().lower() for n in spec.split(",")]:
        metrics, notes = _lenient(spec, have_ref, wvmos_ckpt, notify)
        return metrics, [m for m in metrics if not m.paired], notes
    metrics = parse_metrics(spec)
    paired = [m.name for m in metrics if m.paired]
    if paired and not have_ref:
        raise ConfigError(f"{', '.join(paired)} need references, and every set is reference-free (NAME=:GEN_DIR)")
    for metric in metrics:
        metric.check_installed()
    return metrics, [m for m in metrics if not m.paired], []


def rank_key(keys: list[str], wanted: str | None) -> str | None:
    """The key that orders a group's files (worst/best lists, examples): ``wanted`` when the group has it."""
    if wanted is not None and wanted in keys:
        return wanted
    for key in RANK_PREFERENCE:
        if key in keys:
            return key
    return keys[0] if keys else None
