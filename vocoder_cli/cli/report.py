"""`vocoder report OUT_DIR --set NAME=REF:GEN ...`: an HTML analysis of sets of generated audio.

    vocoder report out/report --set inner=refs/lj:gen/lj --set external=refs/m:gen/m
    vocoder report out/report --set tts=:tts_out/                        reference-free (DNSMOS ...)
    vocoder report out/report --set lj=refs/lj --weights hifigan-lj-v1,griffin-lim   resynthesised here
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.progress import Progress, TaskID

from vocoder_cli.api.report import ReportPlan, build_report
from vocoder_cli.cli.common import (
    EXIT_PARTIAL_FAILURE,
    OFFLINE_HELP,
    err_console,
    progress_bar,
    user_errors,
)
from vocoder_cli.cli.display import say, visible
from vocoder_cli.metrics.estimate import long_work_note
from vocoder_cli.metrics.runner import default_workers
from vocoder_cli.report.build import (
    DEFAULT_EXAMPLES,
    DEFAULT_TOP,
    ReportResult,
    scoring_work,
)
from vocoder_cli.report.choose import DEFAULT_FREE_METRICS, DEFAULT_METRICS

MAX_LISTED_PROBLEMS = 20


class _RichProgress:
    """The core's progress sink as Rich bars on stderr: one bar per stage."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: TaskID | None = None

    def stage(self, description: str, total: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=self.progress.tasks[self.task].total)
        # the bar's description column is Rich markup: a set name such as "[/]x" must stay text
        self.task = self.progress.add_task(escape(visible(description)), total=max(total, 1))

    def advance(self, steps: int = 1) -> None:
        if self.task is not None:
            self.progress.advance(self.task, steps)


def _command(out_dir: Path, sets: list[str], options: dict[str, object]) -> str:
    words = ["vocoder", "report", str(out_dir)]
    for spec in sets:
        words += ["--set", spec]
    for flag, value in options.items():
        if value is not None:
            words += [flag, str(value)]
    return shlex.join(words)


def _render(result: ReportResult) -> None:
    for g in result.groups:
        if g.run is None:
            say(err_console, (f"{g.group.name}: not scored", "red"))
            continue
        rank = ""
        if g.rank_key and (row := g.summary().get(g.rank_key)) and row["mean"] is not None:
            rank = f", mean {g.rank_key} {row['mean']:.3f}"
        say(err_console, g.group.name, f": {len(g.run.results)} files, {len(g.run.failures)} failed{rank}")
    if result.problems:
        say(err_console, (f"{len(result.problems)} problem(s)", "bold red"), " (listed in the report's Problems section):")
        for p in result.problems[:MAX_LISTED_PROBLEMS]:
            say(err_console, "  ", *((p.group, ": ", p.item) if p.item else (p.group,)), ": ", p.message)
        if len(result.problems) > MAX_LISTED_PROBLEMS:
            say(err_console, f"  ... and {len(result.problems) - MAX_LISTED_PROBLEMS} more")
    say(err_console, "wrote ", str(result.index), f" in {result.seconds:.1f} s")


def report(
    out_dir: Path = typer.Argument(..., metavar="OUT_DIR",
                                   help="Folder for index.html, figures/, audio/, scores/ (created; a previous report there is "
                                   "replaced as a whole, any other non-empty folder refused)."),
    sets: list[str] = typer.Option(
        ..., "--set", "-s",
        help="NAME=REF_DIR:GEN_DIR (paired as `vocoder score` pairs), NAME=:GEN_DIR (reference-free metrics "
        "only) or NAME=REF_DIR (resynthesised with each --weights). Repeat for several sets.",
    ),
    metrics: Optional[str] = typer.Option(
        None, "--metrics", "-m",
        help=f"As in `vocoder score` (names or all); reference-free sets get the reference-free ones. "
        f"Default: {DEFAULT_METRICS} for sets with references, {DEFAULT_FREE_METRICS} for reference-free sets "
        "(skipped with a note where the extra is missing).",
    ),
    weights: Optional[str] = typer.Option(
        None, "--weights", "-w",
        help="Comma-separated weights (names, .safetensors paths, griffin-lim) that resynthesise every "
        "NAME=REF_DIR set; each (set, weights) is a row group. Audio goes to OUT_DIR/resynth/.",
    ),
    rank_by: Optional[str] = typer.Option(
        None, "--rank-by", help="Metric key that orders files for the worst/best lists and the examples "
        "(default: pesq, else dnsmos_ovrl, else the first).",
    ),
    examples: int = typer.Option(DEFAULT_EXAMPLES, "--examples", "-n", min=0,
                                 help="Files per set drawn and playable (3: worst, median, best)."),
    top: int = typer.Option(DEFAULT_TOP, "--top", min=1, help="Files in each worst and best list."),
    rate: Optional[str] = typer.Option(None, "--rate", help="Rate of mstft, mcd, sisdr and lsd, as in `vocoder score`."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", min=1, help="CPU processes (default: all cores)."),
    device: str = typer.Option("auto", "--device", help="For --weights and neural metrics: auto, cpu or cuda."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="WV-MOS clips per forward pass."),
    wvmos_ckpt: Optional[str] = typer.Option(None, "--wvmos-ckpt", help="WV-MOS checkpoint (default: weights cache)."),
    offline: bool = typer.Option(False, "--offline", help=OFFLINE_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
) -> None:
    """Build an HTML report: summary tables, distributions, worst/best files, waveform and mel figures, audio.

    Opens from disk (OUT_DIR/index.html). Sets that cannot be found and files that cannot be paired or
    read are listed in the Problems section of the page and on stderr; the report is still written and
    the exit code is 1.
    """
    weight_list = [w.strip() for w in (weights or "").split(",") if w.strip()]
    command = _command(out_dir, sets, {"--metrics": metrics, "--weights": weights, "--rank-by": rank_by,
                                       "--examples": examples if examples != DEFAULT_EXAMPLES else None,
                                       "--rate": rate})

    def planned(plan: ReportPlan) -> None:
        note = long_work_note(scoring_work(plan.groups, plan.metrics, plan.free_metrics), workers or default_workers(),
                              plan.device)
        if note and not quiet:
            say(err_console, ("note:", "yellow"), " ", note)

    def note(line: str) -> None:
        say(err_console, (line, "yellow") if line.startswith("skipping ") else line)

    with user_errors(), progress_bar(quiet) as progress:
        result = build_report(
            out_dir, sets, metrics=metrics, weights=weight_list, rank_by=rank_by, examples=examples, top=top,
            rate=rate, workers=workers, device=device, batch_size=batch_size, wvmos_checkpoint=wvmos_ckpt,
            offline=offline or None, command=command, notify=note, progress=_RichProgress(progress), on_plan=planned,
        )  # fmt: skip
    _render(result)
    if result.problems:
        raise typer.Exit(EXIT_PARTIAL_FAILURE)
