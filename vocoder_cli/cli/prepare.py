"""`vocoder prepare`: build a training dataset folder (validated audio + JSONL manifests + a report)."""

from __future__ import annotations

from pathlib import Path

import typer

from vocoder_cli.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from vocoder_cli.cli.common import (
    EXIT_PARTIAL_FAILURE,
    download_bar,
    err_console,
    progress_bar,
    user_errors,
)
from vocoder_cli.cli.display import say
from vocoder_cli.cli.summary import counted
from vocoder_cli.data.folder import PrepareResult, prepare_folder
from vocoder_cli.data.ljspeech import LJSPEECH_SHA256, LJSPEECH_URL, prepare_ljspeech
from vocoder_cli.data.manifest import REPORT_FILE, TRAIN_MANIFEST, VAL_MANIFEST
from vocoder_cli.data.validate import ValidationRules

app = typer.Typer(help="Prepare a dataset folder (audio + train/val manifests).", no_args_is_help=True)

VAL_FRACTION = typer.Option(0.05, "--val-fraction", min=0.0, max=0.99, help="Share of clips for validation.")
SEED = typer.Option(1234, "--seed", help="Seed of the deterministic train/val shuffle.")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bars.")
OVERWRITE = typer.Option(
    False,
    "--overwrite",
    help="Write into a non-empty folder that prepare did not make (files of the same names are replaced).",
)


def _summary(result: PrepareResult) -> None:
    """Counts on the console (paths as literal, visible text); the full list of rejected files is in the
    report file."""
    out = result.out
    kept = len(result.train) + len(result.val)
    converted = f"; {result.converted} converted (resampled/downmixed/re-encoded) into " if result.converted else ""
    say(
        err_console, ("kept", "green"), f" {counted(kept, 'clip')} ({result.hours:.2f} h): ",
        f"{len(result.train)} train -> ", out / TRAIN_MANIFEST, f", {len(result.val)} val -> ", out / VAL_MANIFEST,
        converted, out / "wavs" if result.converted else "",
    )  # fmt: skip
    if result.renamed:
        source, copy = result.renamed[0]
        copies = counted(len(result.renamed), "converted copy", "converted copies")
        say(
            err_console, ("renamed", "cyan"), f" {copies} kept the source extension because another clip has the "
            "same name, e.g. ", source, " -> ", copy,
        )  # fmt: skip
    if result.rejected:
        counts = ", ".join(f"{kind} {n}" for kind, n in sorted(result.reasons.items()))
        say(err_console, ("rejected", "yellow"), f" {len(result.rejected)}: ", counts, " (see ", out / REPORT_FILE, ")")
        for bad in result.rejected[:5]:
            say(err_console, "  ", bad.path, ": ", bad.reason)
        if len(result.rejected) > 5:
            say(err_console, f"  ... and {len(result.rejected) - 5} more in ", out / REPORT_FILE)


def _finish(result: PrepareResult) -> None:
    _summary(result)
    if result.rejected:
        raise typer.Exit(EXIT_PARTIAL_FAILURE)


@app.command("ljspeech")
def ljspeech(
    out: Path = typer.Argument(..., help="Dataset folder to create."),
    archive: Path | None = typer.Option(
        None, "--archive", help="A local LJSpeech-1.1.tar.bz2 or an extracted LJSpeech-1.1 folder (no download)."
    ),
    url: str = typer.Option(LJSPEECH_URL, "--url", help="Where to download the archive from (a mirror, file://)."),
    sha256: str = typer.Option(LJSPEECH_SHA256, "--sha256", help="Expected archive checksum ('' to skip the check)."),
    val_fraction: float = VAL_FRACTION,
    seed: int = SEED,
    quiet: bool = QUIET,
    overwrite: bool = OVERWRITE,
) -> None:
    """Download (resumable, sha256-verified) or reuse LJSpeech 1.1; extract safely; write manifests."""
    if not sha256:
        say(err_console, ("warning:", "yellow"), " no checksum: the downloaded archive will not be verified")
    with user_errors(), download_bar(quiet) as dl_bar, progress_bar(quiet) as bar:
        dl_task = None
        files_task = bar.add_task("validate", total=None)

        def on_bytes(done: int, total: int | None) -> None:
            nonlocal dl_task
            if dl_task is None:
                dl_task = dl_bar.add_task("download LJSpeech-1.1", total=total)
            dl_bar.update(dl_task, completed=done, total=total)

        result = prepare_ljspeech(
            out,
            archive=archive,
            url=url,
            sha256=sha256 or None,
            val_fraction=val_fraction,
            seed=seed,
            download_progress=on_bytes,
            progress=lambda done, total: bar.update(files_task, completed=done, total=total),
            overwrite=overwrite,
        )
    _finish(result)


@app.command("folder")
def folder(
    source: Path = typer.Argument(..., help="Folder of audio files (searched recursively)."),
    out: Path = typer.Argument(..., help="Dataset folder to create."),
    sample_rate: int = typer.Option(
        22050, "--sample-rate", "-r", min=MIN_SAMPLE_RATE, max=MAX_SAMPLE_RATE,
        help="Target rate (resampled copies are cached).",
    ),
    segment: int = typer.Option(8192, "--segment", help="Training segment in samples: shorter clips are rejected."),
    transcripts: Path | None = typer.Option(
        None, "--transcripts", help="A 'id|text[|normalized]' file (LJSpeech metadata.csv style); .txt/.lab sidecars also work."
    ),
    silence_db: float = typer.Option(-60.0, "--silence-db", help="Reject clips whose peak is below this (dBFS)."),
    max_clipped: float = typer.Option(
        0.001, "--max-clipped", help="Reject clips with more than this share of samples at full scale."
    ),
    max_channels: int = typer.Option(2, "--max-channels", help="Reject files with more channels (stereo is averaged)."),
    val_fraction: float = VAL_FRACTION,
    seed: int = SEED,
    quiet: bool = QUIET,
    overwrite: bool = OVERWRITE,
) -> None:
    """Validate every clip once (unreadable, too short, silent, NaN, channels, clipped), resample, write manifests."""
    rules = ValidationRules(
        sample_rate=sample_rate,
        min_samples=segment,
        max_channels=max_channels,
        silence_dbfs=silence_db,
        max_clipped_fraction=max_clipped,
    )
    with user_errors(), progress_bar(quiet) as bar:
        task = bar.add_task("validate", total=None)
        result = prepare_folder(
            source,
            out,
            rules=rules,
            transcripts=transcripts,
            val_fraction=val_fraction,
            seed=seed,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            overwrite=overwrite,
        )
    _finish(result)
