"""``build_report()``: the HTML analysis of sets of generated audio (`vocoder report`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from vocoder_cli.api.devices import pick_device
from vocoder_cli.api.notes import Notify, log_notice
from vocoder_cli.errors import ConfigError
from vocoder_cli.metrics.base import Metric
from vocoder_cli.metrics.registry import apply_rates
from vocoder_cli.report import ReportOptions, choose_metrics, expand_groups, parse_set
from vocoder_cli.report import build_report as _build
from vocoder_cli.report.build import DEFAULT_EXAMPLES, ProgressSink, check_report
from vocoder_cli.report.results import DEFAULT_TOP, ReportResult
from vocoder_cli.report.sets import Group, SetSpec

SetSource = str | Path | tuple[str | Path | None, str | Path | None]


@dataclass(frozen=True)
class ReportPlan:
    """What a report will do, known before any audio is read: its row groups, the metrics of the sets with
    references and of the reference-free sets, and the device."""

    groups: list[Group]
    metrics: list[Metric]
    free_metrics: list[Metric]
    device: str


def _spec(name: str, source: SetSource) -> SetSpec:
    if isinstance(source, tuple):
        ref, gen = source
        return SetSpec(name, None if ref is None else Path(ref), None if gen is None else Path(gen))
    return SetSpec(name, Path(source), None)


def report_sets(sets: Mapping[str, SetSource] | Sequence[str]) -> list[SetSpec]:
    """``{"name": (ref, gen)}`` (``(None, gen)``: reference-free; a bare ``ref``: generated with
    ``weights``), or the command's ``NAME=REF:GEN`` strings."""
    if isinstance(sets, Mapping):
        return [_spec(str(name), source) for name, source in sets.items()]
    return [parse_set(text) for text in sets]


def plan_report(
    out_dir: str | Path, sets: Mapping[str, SetSource] | Sequence[str], weights: Sequence[str] = ()
) -> list[Group]:
    """The row groups of a report (one per set, one per (set, weights) to resynthesise), checked: the
    [report] extra, an OUT_DIR that may be replaced and overlaps no input (ConfigError otherwise)."""
    groups = expand_groups(report_sets(sets), list(weights), Path(out_dir) / "resynth")
    check_report(Path(out_dir), groups)
    return groups


def build_report(
    out_dir: str | Path,
    sets: Mapping[str, SetSource] | Sequence[str],
    *,
    metrics: str | Sequence[str] | None = None,
    weights: Sequence[str] = (),
    rank_by: str | None = None,
    examples: int = DEFAULT_EXAMPLES,
    top: int = DEFAULT_TOP,
    rate: str | int | None = None,
    workers: int | None = None,
    device: str = "auto",
    batch_size: int = 8,
    wvmos_checkpoint: str | None = None,
    offline: bool | None = None,
    command: str | None = None,
    notify: Notify | None = log_notice,
    progress: ProgressSink | None = None,
    on_plan: Callable[[ReportPlan], None] | None = None,
) -> ReportResult:
    """Write ``out_dir/index.html`` (opens from disk): summary tables, distributions, worst/best files,
    waveform and mel figures, audio players; plus summary.json/csv and per-set scores.

    ``sets``: ``{"lj": ("refs/lj", "gen/lj")}`` (paired as :func:`~vocoder_cli.api.score.score` pairs),
    ``{"tts": (None, "tts_out")}`` (reference-free metrics only), ``{"lj": "refs/lj"}`` (resynthesised here
    with each of ``weights``: names, paths or griffin-lim); or ``["lj=refs/lj:gen/lj", ...]``. ``metrics``:
    as in ``score`` (default pesq,stoi,mstft,mcd with references, dnsmos without; skipped with a note where
    the extra is missing). ``rank_by``: the key that orders worst/best files. ``examples``: files drawn per
    set; ``top``: files per worst/best list. Needs the ``[report]`` extra (matplotlib).

    Returns the :class:`~vocoder_cli.report.results.ReportResult` (``index``, ``groups`` with their
    ``run`` and ``summary()``, ``problems``). Missing sets and unreadable files are problems listed on the
    page, not exceptions; a previous report in ``out_dir`` is replaced as a whole, any other non-empty
    folder refused (ConfigError). ``notify`` hears one-line notes (metrics skipped, weights fetched);
    ``progress`` gets ``stage(description, total)`` and ``advance()``; ``on_plan`` the :class:`ReportPlan`
    before any scoring."""
    weight_list = [str(w) for w in weights]
    groups = plan_report(out_dir, sets, weight_list)
    spec = metrics if metrics is None or isinstance(metrics, str) else ",".join(metrics)
    chosen, free, notes = choose_metrics(spec, any(g.paired for g in groups), any(not g.paired for g in groups),
                                         wvmos_ckpt=wvmos_checkpoint, notify=notify)
    union = {m.name: m for m in [*chosen, *free]}
    rated = {m.name: m for m in apply_rates(list(union.values()), None if rate is None else str(rate))}
    chosen, free = [rated[m.name] for m in chosen], [rated[m.name] for m in free]
    if notify is not None:
        for note in notes:
            notify(note)
    keys = list(dict.fromkeys(k for m in [*chosen, *free] for k in m.keys))
    if rank_by is not None and rank_by not in keys:
        raise ConfigError(f"--rank-by {rank_by}: not among the metric keys ({', '.join(keys) or 'none'})")
    needs_device = bool(weight_list) or any(m.neural for m in [*chosen, *free])
    dev = pick_device(device) if needs_device else "cpu"
    if on_plan is not None:
        on_plan(ReportPlan(groups, chosen, free, dev))
    options = ReportOptions(
        metrics=chosen, free_metrics=free, weights=weight_list, rank_by=rank_by, examples=examples, top=top,
        workers=workers, device=dev, offline=offline,
        wvmos_checkpoint=wvmos_checkpoint, batch_size=batch_size, notes=notes, command=command,
    )  # fmt: skip
    return _build(Path(out_dir), groups, options, progress=progress, notify=notify)
