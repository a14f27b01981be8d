"""`vocoder score`: speech-quality metrics over files, folders or a pairs list.

    vocoder score REF GEN --metrics pesq,stoi,wvmos     paired (matched by relative path without extension)
    vocoder score GEN --metrics dnsmos,wvmos            reference-free (also nisqa, nisqa-tts)
    vocoder score --pairs pairs.tsv --metrics all       ref<TAB>gen lines (``-`` reads stdin)
"""

from __future__ import annotations

import io
import os
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from vocoder_cli.api.score import ScorePlan
from vocoder_cli.api.score import score as score_files
from vocoder_cli.audio import atomic_write_bytes
from vocoder_cli.cli.common import (
    EXIT_PARTIAL_FAILURE,
    err_console,
    fail,
    progress_bar,
    resolve_device,
    user_errors,
)
from vocoder_cli.cli.display import cell, say
from vocoder_cli.cli.sharding import announcer, current_shard, shard_device, shard_option
from vocoder_cli.cli.stdio import read_stdin_lines, require_stdout, write_stdout
from vocoder_cli.cli.tables import fit
from vocoder_cli.metrics import Pair, ScoreRun, pair_paths, parse_pairs
from vocoder_cli.metrics.estimate import audio_seconds, long_work_note
from vocoder_cli.metrics.report import RENDERERS, summary_rows
from vocoder_cli.metrics.rows import merge_rows, rows_jsonl
from vocoder_cli.metrics.runner import default_workers

MAX_LISTED_FAILURES = 20


class OutputFormat(str, Enum):
    table = "table"
    csv = "csv"
    jsonl = "jsonl"
    json = "json"


def _pairs(paths: list[Path], pairs_file: Optional[str]) -> tuple[list[Pair], bool]:
    """The pairs to score and whether references were given."""
    if pairs_file is not None:
        if paths:
            raise fail("give either REF GEN paths or --pairs, not both")
        if pairs_file == "-":
            pairs = parse_pairs(read_stdin_lines(), "<stdin>")
        else:
            try:
                text = Path(pairs_file).read_text(encoding="utf-8")
            except OSError as exc:
                raise fail(f"{pairs_file}: cannot read the pairs list ({exc.strerror})") from None
            pairs = parse_pairs(text.splitlines(), pairs_file)
        return pairs, any(p.ref is not None for p in pairs)
    if len(paths) == 1:
        return pair_paths(None, paths[0]), False
    if len(paths) == 2:
        return pair_paths(paths[0], paths[1]), True
    raise fail("expected REF GEN, GEN alone (reference-free metrics) or --pairs FILE")


def _note(line: str) -> None:
    """A note from the core on stderr: what ``-m all`` or ``--unaligned`` left out (its head in yellow),
    weights fetched on first use."""
    head, sep, rest = line.partition(": ")
    if sep and (head.startswith("skipping ") or head == "--unaligned"):
        say(err_console, (f"{head}:", "yellow"), " ", rest)
    else:
        say(err_console, line)


def _check_output(output: Optional[Path], overwrite: bool, option: str = "-o") -> None:
    """``-o FILE`` (or ``--rows FILE``): never a folder, and an existing file only with --overwrite (checked
    before any work)."""
    if output is None:
        return
    if output.is_dir():
        raise fail(f"{option} {output}: is a folder; give a file name")
    if output.exists() and not overwrite:
        raise fail(f"{option} {output}: exists; pass --overwrite to replace it")
    folder = output.absolute().parent
    while not folder.exists():  # the first folder that exists must be a writable folder
        folder = folder.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise fail(f"{option} {output}: cannot write into {folder} ({'not a folder' if not folder.is_dir() else 'permission denied'})")


def _fmt(value: object, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def summary_table(run: ScoreRun) -> Table:
    table = Table(title=f"scores over {len(run.results)} files", title_justify="left")
    for col in ("metric", "mean", "std", "95% CI", "count", "failures", "computed with"):
        table.add_column(col, justify="left" if col in ("metric", "computed with") else "right",
                         no_wrap=col != "computed with")
    clipped = False
    for row in summary_rows(run):
        ci = "-" if row["ci_low"] is None else f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
        if row["ci_clipped"]:
            ci, clipped = ci + "*", True
        rate = row["sample_rate"]
        rate_text = f"{rate / 1000:g} kHz" if isinstance(rate, int) else str(rate)
        table.add_row(cell(row["metric"]), _fmt(row["mean"]), _fmt(row["std"]), cell(ci), str(row["count"]),
                      str(row["failures"]), cell(f"{row['library']}, {rate_text}"))
    if clipped:
        table.caption = "* interval clipped to the metric's range (ci_clipped in CSV and JSON)"
        table.caption_justify = "left"
    return table


def files_table(run: ScoreRun) -> Table:
    table = Table(title="per file", title_justify="left")
    table.add_column("id")
    for key in run.keys:
        table.add_column(key, justify="right", no_wrap=True)
    table.add_column("error")
    for result in run.results:
        row = result.row(run.keys)
        table.add_row(cell(result.id), *(_fmt(row[k]) for k in run.keys), cell(row.get("error", "")))
    return table


def _report_failures(run: ScoreRun) -> None:
    failed = run.failures
    say(err_console, (f"{len(failed)} of {len(run.results)} files failed:", "bold red"))
    for result in failed[:MAX_LISTED_FAILURES]:
        say(err_console, "  ", result.id, ": ", "; ".join(result.errors))
    if len(failed) > MAX_LISTED_FAILURES:
        say(err_console, f"  ... and {len(failed) - MAX_LISTED_FAILURES} more (see the error column)")


def score(
    paths: Optional[list[Path]] = typer.Argument(None, help="REF GEN (files or folders), or GEN alone."),
    metrics: Optional[str] = typer.Option(
        None, "--metrics", "-m",
        help="Comma-separated: pesq, pesq-nb, stoi, estoi, mstft, mcd, pitch, sisdr, lsd, dnsmos, wvmos, nisqa, "
        "nisqa-tts, or all (all skips NISQA until `vocoder weights pull nisqa` / `nisqa-tts`). "
        "Default: pesq,stoi,estoi with references (mcd with --unaligned), dnsmos without.",
    ),
    pairs_file: Optional[str] = typer.Option(None, "--pairs", help="File of ref<TAB>gen lines ('-' = stdin)."),
    per_file: bool = typer.Option(False, "--per-file", help="Include every file's row, not only the summary."),
    output_format: OutputFormat = typer.Option(OutputFormat.table, "--format", "-f", help="table, csv, jsonl or json."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the result here instead of stdout."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Let -o replace an existing file."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", min=1, help="CPU processes (default: all cores)."),
    device: str = typer.Option("auto", "--device", help="For neural metrics: auto, cpu or cuda."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="WV-MOS / NISQA clips per forward pass."),
    wvmos_ckpt: Optional[str] = typer.Option(None, "--wvmos-ckpt", help="WV-MOS checkpoint (default: weights cache)."),
    rate: Optional[str] = typer.Option(
        None, "--rate", help="Rate of mstft, mcd, sisdr and lsd (default 22050): HZ for all, or NAME=HZ,... "
        "Every file is resampled to it, so mixed rates compare. PESQ, STOI, DNSMOS, WV-MOS and pitch keep "
        "their standard's rate; NISQA analyses each file at its own rate, as its model defines.",
    ),
    unaligned: bool = typer.Option(
        False, "--unaligned", help="References and outputs are not time-aligned (TTS output vs the recording): "
        "no length check; mcd becomes MCD after unconstrained DTW; only mcd and reference-free metrics "
        "(-m all keeps those and says which it left out).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    shard: Optional[str] = shard_option(),
    rows: Optional[Path] = typer.Option(
        None, "--rows", help="Also write every file's scores here (JSON lines) for a later --merge.",
    ),
    merge: bool = typer.Option(
        False, "--merge", help="The arguments are --rows files of every shard: print the summary of them all, "
        "as one unsharded run would.",
    ),
) -> None:
    """Score generated audio against references (PESQ, STOI, ...) or on its own (DNSMOS, WV-MOS, NISQA)."""
    _check_output(output, overwrite)
    _check_output(rows, overwrite, "--rows")
    if output is None:
        require_stdout()  # a closed stdout is refused before any work
    if merge:
        _merge(list(paths or []), output_format, per_file, output, pairs_file, metrics, rows, shard)
        return
    with user_errors():
        this_shard = current_shard(shard)
        if this_shard.local_rank is not None:  # under torchrun: cuda:LOCAL_RANK for the neural metrics
            device = shard_device(resolve_device(device), this_shard, "score", quiet)
        given = list(paths or [])
        pairs, _ = _pairs(given, pairs_file)
        # REF GEN: references were given even where a file has none (the default metrics follow that)
        inputs = {"pairs": pairs} if pairs_file is not None else {"ref": given[-2] if len(given) == 2 else None,
                                                                  "gen": given[-1]}
        with progress_bar(quiet) as progress:
            task = progress.add_task("scoring", total=None)
            plans: list[ScorePlan] = []

            def planned(plan: ScorePlan) -> None:
                plans.append(plan)
                seconds = audio_seconds(plan.pairs)
                note = long_work_note([(m, seconds) for m in plan.metrics], workers or default_workers(), plan.device)
                if note and not quiet:
                    say(err_console, ("note:", "yellow"), " ", note)
                progress.update(task, total=plan.steps)

            run = score_files(
                **inputs, metrics=metrics, unaligned=unaligned, rate=rate, workers=workers, device=device,
                batch_size=batch_size, wvmos_checkpoint=wvmos_ckpt, notify=_note, on_plan=planned,
                on_done=lambda _: progress.advance(task), shard=this_shard,
                on_shard=announcer(this_shard, "pairs", lambda mine: f"{audio_seconds(mine):.1f} s of audio", quiet),
            )  # fmt: skip
    if rows is not None:
        plan = plans[0]
        _write(rows, rows_jsonl(run, plan.positions, plan.total, f"{this_shard.index}/{this_shard.count}"), "--rows")
    _emit(run, output_format, per_file, output)


def _merge(
    paths: list[Path], output_format: OutputFormat, per_file: bool, output: Optional[Path],
    pairs_file: Optional[str], metrics: Optional[str], rows: Optional[Path], shard: Optional[str],
) -> None:
    """``--merge ROWS...``: the summary of every shard's rows, exactly as one unsharded run gives it."""
    given = [name for name, value in (("--pairs", pairs_file), ("--metrics", metrics), ("--rows", rows),
                                      ("--shard", shard)) if value is not None]
    if given:
        raise fail(f"--merge reads scores already computed: {', '.join(given)} do not apply")
    if not paths:
        raise fail("give the rows files to merge: vocoder score --merge rows-*.jsonl")
    texts = []
    for path in paths:
        try:
            texts.append((str(path), path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(f"{path}: cannot read the rows file ({getattr(exc, 'strerror', None) or exc})") from None
    with user_errors():
        run = merge_rows(texts)
    _emit(run, output_format, per_file, output)


def _write(path: Path, text: str, option: str) -> None:
    try:
        atomic_write_bytes(path, text.encode("utf-8"))
    except OSError as exc:
        raise fail(f"{option} {path}: cannot write ({exc.strerror or exc})", EXIT_PARTIAL_FAILURE) from None


def _emit(run: ScoreRun, output_format: OutputFormat, per_file: bool, output: Optional[Path]) -> None:
    """The result as asked (table, csv, jsonl, json; stdout or ``-o``), then warnings and failures."""
    if output_format is OutputFormat.table:
        text = None
    else:
        text = RENDERERS[output_format.value](run, per_file)
    if output is not None:
        if text is None:  # a table into a file: plain text, no colour codes
            buf = Console(record=True, width=160, file=io.StringIO())
            if per_file:
                buf.print(fit(files_table(run), buf))
            buf.print(fit(summary_table(run), buf))
            text = buf.export_text()
        _write(output, text, "-o")
        err_console.print(fit(summary_table(run), err_console))
        say(err_console, "wrote ", str(output))
    elif text is None:
        terminal = Console()  # rendered as stdout's terminal would show it, written under the stdout rules
        stdout = Console(file=io.StringIO(), force_terminal=terminal.is_terminal, width=terminal.width)
        if per_file:
            stdout.print(fit(files_table(run), stdout))
        stdout.print(fit(summary_table(run), stdout))
        write_stdout(stdout.file.getvalue())  # type: ignore[attr-defined]
    else:
        write_stdout(text)
    for result in run.results:
        for warning in result.warnings:
            say(err_console, ("warning:", "yellow"), " ", result.id, ": ", warning)
    if run.failures:
        _report_failures(run)
        raise typer.Exit(EXIT_PARTIAL_FAILURE)
