"""`vocoder report`: score sets of generated audio against references (or alone), draw figures and
write one HTML page with tables, plots and audio players that opens from disk."""

from vocoder_cli.report.build import Problem, ReportOptions, ReportResult, build_report
from vocoder_cli.report.choose import (
    DEFAULT_FREE_METRICS,
    DEFAULT_METRICS,
    choose_metrics,
)
from vocoder_cli.report.sets import Group, SetSpec, expand_groups, parse_set

__all__ = [
    "DEFAULT_FREE_METRICS", "DEFAULT_METRICS", "Group", "Problem", "ReportOptions", "ReportResult", "SetSpec", "build_report",
    "choose_metrics", "expand_groups", "parse_set",
]
