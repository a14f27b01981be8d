"""`vocoder resynth IN... OUT`: audio (or mels) in, vocoded audio out, same relative names."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
import typer

from vocoder_cli.api.resynth import resynthesize
from vocoder_cli.api.vocoder import load
from vocoder_cli.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from vocoder_cli.cli.common import (
    BACKEND_HELP,
    EXIT_PARTIAL_FAILURE,
    FLOAT_HELP,
    OFFLINE_HELP,
    OVERWRITE_HELP,
    PRECISION_HELP,
    SKIP_EXISTING_HELP,
    WEIGHTS_HELP,
    engine_backend,
    err_console,
    fail,
    notifier,
    progress_bar,
    resolve_device,
    user_errors,
)
from vocoder_cli.cli.display import say
from vocoder_cli.cli.sharding import announcer, current_shard, shard_device, shard_option, write_failures
from vocoder_cli.cli.stdio import (
    read_stdin,
    read_stdin_lines,
    require_stdin,
    require_stdout,
    write_stdout,
)
from vocoder_cli.cli.summary import outcome_parts, row, timing
from vocoder_cli.shards import audio_seconds
from vocoder_cli.synthesis.resynthesis import STDIO, Report, read_file_list
from vocoder_cli.weights.registry import DEFAULT_ALIAS


def resynth(
    paths: list[str] = typer.Argument(
        ..., metavar="IN... OUT", help="Inputs (files, folders, or - for a WAV on stdin), then OUT (folder, file or -)."
    ),
    files_from: Optional[str] = typer.Option(
        None, "--files-from", help="Read input paths from FILE (one a line), or - for stdin."
    ),
    weights: str = typer.Option(DEFAULT_ALIAS, "--weights", "-w", help=WEIGHTS_HELP),
    offline: bool = typer.Option(False, "--offline", help=OFFLINE_HELP),
    from_mels: bool = typer.Option(False, "--from-mels", help="Inputs are .npy/.pt log-mels, not audio."),
    out_sr: Optional[int] = typer.Option(
        None, "--out-sr", min=MIN_SAMPLE_RATE, max=MAX_SAMPLE_RATE, help="Resample the output to this rate (Hz)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Utterances per forward pass."),
    precision: str = typer.Option("fp32", "--precision", help=PRECISION_HELP),
    backend: str = typer.Option("auto", "--backend", help=BACKEND_HELP),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for torch."),
    chunk_frames: int = typer.Option(2048, "--chunk-frames", min=64, help="Longer inputs are vocoded in chunks."),
    skip_existing: bool = typer.Option(False, "--skip-existing", help=SKIP_EXISTING_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
    float_output: bool = typer.Option(False, "--float", help=FLOAT_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
    stream: bool = typer.Option(
        False, "--stream", help="Stream stdin to stdout as the audio arrives (`vocoder resynth - - --stream`)."
    ),
    raw_format: Optional[str] = typer.Option(
        None,
        "--raw-format",
        help="With --stream: stdin is raw PCM ENCODING:RATE[:CHANNELS], e.g. s16le:22050, f32le:16000.",
    ),
    raw_output: bool = typer.Option(
        False, "--raw-output", help="With --stream: write raw PCM (s16le, f32le with --float), no WAV header."
    ),
    chunk_ms: float = typer.Option(
        40.0, "--chunk-ms", min=1.0, help="With --stream: audio per generator call (latency vs throughput)."
    ),
    lookahead_ms: Optional[float] = typer.Option(
        None,
        "--lookahead-ms",
        min=0.0,
        help="With --stream: future context; default the exact bound (148 ms V1/V2, 117 ms V3 at 22.05 kHz).",
    ),
    shard: Optional[str] = shard_option(),
) -> None:
    """Vocode audio through the mel frontend and a vocoder, e.g. `vocoder resynth in/ out/`.

    Output mirrors input relative paths as WAV. Bad inputs are listed and the batch goes on;
    the exit code is 1 when any input failed. Existing outputs are never replaced unless --overwrite.
    """
    if files_from is None and len(paths) < 2:
        raise fail("give at least one input and an output: vocoder resynth IN... OUT")
    *inputs, output = paths
    if stream or raw_format or raw_output:
        _check_stream_usage(inputs, output, stream, files_from, from_mels)
    stdout = require_stdout() if output == STDIO else None  # a closed stdout is refused before any work
    stdin_bytes = None
    if files_from == STDIO:
        inputs += read_file_list(read_stdin_lines())
    elif files_from is not None:
        with open(files_from, encoding="utf-8") as source:
            inputs += read_file_list(source)
    elif STDIO in inputs and not stream:  # --stream reads stdin as it arrives instead
        if inputs != [STDIO]:
            raise fail("'-' (stdin) must be the only input")
        stdin_bytes = read_stdin()
    stdin = require_stdin() if stream else None
    if not inputs:
        raise fail("no inputs given")
    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(device)
    with user_errors():
        this_shard = current_shard(shard)
        device = shard_device(device, this_shard, "resynth", quiet)
        backend = engine_backend(backend, precision, device, quiet, streaming=stream)  # checked before any export
        if stream:
            vocoder = load(
                weights, device, precision, backend, offline=offline or None, notify=notifier(quiet),
                batch_size=batch_size, chunk_frames=chunk_frames, streaming=True,
            )  # fmt: skip
    if stream:
        from vocoder_cli.cli.resynth_stream import run_stream

        assert stdin is not None and stdout is not None
        run_stream(
            vocoder.engine, stdin=stdin, stdout=stdout, raw_format=raw_format, raw_output=raw_output,
            chunk_ms=chunk_ms, lookahead_ms=lookahead_ms, out_sr=out_sr, float_output=float_output, quiet=quiet,
        )
        return
    with user_errors(), progress_bar(quiet or output == STDIO) as progress:
        task = progress.add_task("resynth", total=None)
        report = resynthesize(
            inputs, output, weights=weights, device=device, precision=precision, backend=backend,
            from_mels=from_mels, out_sr=out_sr, skip_existing=skip_existing, overwrite=overwrite,
            float_output=float_output, batch_size=batch_size, chunk_frames=chunk_frames, offline=offline or None,
            notify=notifier(quiet), stdin=stdin_bytes,
            on_progress=lambda done, total: progress.update(task, completed=done, total=total), shard=this_shard,
            on_shard=announcer(this_shard, "files", None if from_mels else
                               lambda mine: f"{audio_seconds([j.source for j in mine]):.1f} s of audio", quiet),
        )  # fmt: skip
    payload = report.stdout
    assert report.vocoder is not None
    vocoder = report.vocoder
    if payload is not None:
        write_stdout(payload)
    _render(report, vocoder.name, f"{device} ({vocoder.backend})", quiet)
    if this_shard.sharded and Path(output).is_dir():  # a sharded run lists its failures in the output folder
        write_failures(output, this_shard, [*(("refused", f.source, f.reason) for f in report.refused),
                                            *(("failed", f.source, f.reason) for f in report.failures)])
    if report.failures or report.refused:
        raise typer.Exit(EXIT_PARTIAL_FAILURE)


def _check_stream_usage(
    inputs: list[str], output: str, stream: bool, files_from: Optional[str], from_mels: bool
) -> None:
    if not stream:
        raise fail("--raw-format and --raw-output need --stream")
    if inputs != [STDIO] or output != STDIO or files_from is not None or from_mels:
        raise fail("--stream reads audio from stdin and writes to stdout: vocoder resynth - - --stream")


def _render(report: Report, weights: str, device: str, quiet: bool) -> None:
    """Per-item rows (names as literal, visible text), then the summary line unless ``quiet``."""
    render_rows(report)
    if quiet:
        return
    counts = outcome_parts(
        "file",
        written=len(report.written),
        skipped=len(report.skipped),
        refused=len(report.refused),
        failed=len(report.failures),
        warned=len({w.source for w in report.warnings}),
    )
    rtf = report.real_time_factor
    say(
        err_console, *counts, " | ", timing(report.audio_seconds, report.wall_seconds, rtf), " | ",
        Path(weights).name, " on ", device,
    )  # fmt: skip


def render_rows(report: Report) -> None:
    """One stderr row per renamed, warned, refused or failed item (names as literal, visible text); used by
    every command that runs resynth's jobs (resynth, mels)."""
    for job in report.renamed:
        row(err_console, "renamed", "cyan", job.source, " -> ", job.target, " (another input has the same name)")
    for warning in report.warnings:
        row(err_console, "warning", "yellow", warning.source, ": ", warning.reason)
    for refused in report.refused:
        row(err_console, "refused", "red", refused.source, ": ", refused.reason)
    for failure in report.failures:
        row(err_console, "failed", "red", failure.source, ": ", failure.reason)
