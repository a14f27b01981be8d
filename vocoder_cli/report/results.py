"""What a report found, as data: per-set scores and examples, comparisons, problems. Built by
:mod:`vocoder_cli.report.build`, rendered by :mod:`vocoder_cli.report.html`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vocoder_cli.metrics.base import Metric
from vocoder_cli.metrics.report import summary_rows
from vocoder_cli.metrics.runner import FileResult, ScoreRun
from vocoder_cli.report.examples import Level
from vocoder_cli.report.sets import Group

DEFAULT_TOP = 5


@dataclass(frozen=True)
class Problem:
    """Something the user must look at: a group that could not be scored, a file that failed."""

    group: str
    item: str  # a file id, a folder, or "" for the group as a whole
    message: str


@dataclass
class Example:
    """A sampled file: why it was chosen, its figure, its audio copies and levels (paths relative)."""

    id: str
    why: str
    scores: dict[str, float | None]
    figure: str | None = None
    ref_audio: str | None = None
    gen_audio: str | None = None
    ref_level: Level | None = None
    gen_level: Level | None = None
    lag_ms: int | None = None
    correlation: float | None = None
    trimmed_ms: float | None = None
    error: str | None = None


@dataclass
class GroupReport:
    group: Group
    metrics: list[Metric] = field(default_factory=list)
    run: ScoreRun | None = None
    rank_key: str | None = None
    ranked: list[FileResult] = field(default_factory=list)  # worst first, files with a rank value only
    examples: list[Example] = field(default_factory=list)
    distribution: str | None = None
    scores_json: str | None = None
    scores_csv: str | None = None
    problems: list[Problem] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (file id, warning)

    @property
    def keys(self) -> list[str]:
        return self.run.keys if self.run else []

    def summary(self) -> dict[str, dict[str, Any]]:
        if self.run is None:
            return {}
        return {row.pop("metric"): row for row in summary_rows(self.run)}

    def values(self) -> dict[str, list[float]]:
        """Every file's successful value per key (for the distribution plots)."""
        if self.run is None:
            return {}
        return {k: [v for r in self.run.results if (v := r.scores.get(k)) is not None] for k in self.keys}


@dataclass
class Comparison:
    """Groups scored with the same metric keys: one table and one figure at the top of the page
    (sets with references and reference-free sets get different metrics, so separate tables)."""

    keys: list[str]
    groups: list[GroupReport]
    figure: str | None


def families(reports: Sequence[GroupReport]) -> dict[tuple[str, ...], list[GroupReport]]:
    """Scored groups by their metric keys, in order of first appearance."""
    out: dict[tuple[str, ...], list[GroupReport]] = {}
    for report in reports:
        if report.run is not None:
            out.setdefault(tuple(report.keys), []).append(report)
    return out


@dataclass
class ReportResult:
    out_dir: Path
    index: Path
    groups: list[GroupReport]
    problems: list[Problem]
    notes: list[str]
    comparisons: list[Comparison]
    created: str
    seconds: float
    command: str | None
    versions: dict[str, str | None]
    top: int = DEFAULT_TOP
