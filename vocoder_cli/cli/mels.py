"""`vocoder mels IN... OUT`: audio in, log-mel ``.npy`` files out (same relative names), config recorded beside."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
import typer

from vocoder_cli.cli.common import (
    EXIT_PARTIAL_FAILURE,
    OFFLINE_HELP,
    OVERWRITE_HELP,
    SKIP_EXISTING_HELP,
    err_console,
    fail,
    notifier,
    progress_bar,
    resolve_device,
    user_errors,
)
from vocoder_cli.cli.display import say
from vocoder_cli.cli.resynth import render_rows
from vocoder_cli.cli.sharding import shard_device, shard_option, take_my_shard, write_failures
from vocoder_cli.cli.stdio import read_stdin, read_stdin_lines, require_stdout, write_stdout
from vocoder_cli.cli.summary import outcome_parts, timing
from vocoder_cli.mel import MEL_PRESETS, MelConfig, mel_preset
from vocoder_cli.melfiles import (
    MelExtractor,
    MelOptions,
    check_config_record,
    plan_mel_jobs,
    read_config_file,
    weights_mel_config,
    write_config_record,
)
from vocoder_cli.outputs import OutputPolicy
from vocoder_cli.shards import audio_seconds, file_size
from vocoder_cli.synthesis.resynthesis import STDIO, Job, Report, read_file_list
from vocoder_cli.weights.registry import DEFAULT_ALIAS


def mels(
    paths: list[str] = typer.Argument(
        ..., metavar="IN... OUT", help="Inputs (files, folders, or - for a WAV on stdin), then OUT (folder, .npy or -)."
    ),
    files_from: Optional[str] = typer.Option(
        None, "--files-from", help="Read input paths from FILE (one a line), or - for stdin."
    ),
    weights: str = typer.Option(
        DEFAULT_ALIAS,
        "--weights",
        "-w",
        help="Take the mel config of these vocoder weights (a name or path; default hifigan-universal-v1).",
    ),
    preset: Optional[str] = typer.Option(
        None, "--preset", help=f"A named mel config instead of the weights' ({', '.join(MEL_PRESETS)})."
    ),
    config: Optional[Path] = typer.Option(
        None,
        "--config",
        help="A mel config JSON instead of the weights' (a mel_config.json, a MelConfig object, or an official "
        "HiFi-GAN config.json).",
    ),
    offline: bool = typer.Option(False, "--offline", help=OFFLINE_HELP),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    batch_size: int = typer.Option(16, "--batch-size", min=1, help="Waveforms per STFT call."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for torch."),
    skip_existing: bool = typer.Option(False, "--skip-existing", help=SKIP_EXISTING_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or summary."),
    teacher_forced: bool = typer.Option(
        False,
        "--teacher-forced",
        help="GTA mels: run --acoustic with each recording's own mel as decoder input (texts from --texts or "
        "--transcripts, by file name); each mel has exactly the recording's frames, for train --gta-mels.",
    ),
    texts: Optional[Path] = typer.Option(
        None, "--texts", help="With --teacher-forced: id|text lines (LJSpeech metadata.csv works); id = file name."
    ),
    transcripts: Optional[Path] = typer.Option(
        None, "--transcripts", help="With --teacher-forced: a folder of ID.txt (or D/transcriptions/ID.txt)."
    ),
    texts_format: str = typer.Option("auto", "--texts-format", help="With --texts: id-text, ljspeech or auto."),
    acoustic: str = typer.Option(
        "tacotron2-lj", "--acoustic", "-a", help="With --teacher-forced: the acoustic model (`vocoder tts --list`)."
    ),
    acoustic_weights: Optional[str] = typer.Option(
        None, "--acoustic-weights", help="The acoustic model's checkpoint (path or weights name)."
    ),
    acoustic_opt: Optional[list[str]] = typer.Option(None, "--acoustic-opt", help="KEY=VALUE for the acoustic model."),
    no_verify: bool = typer.Option(
        False, "--no-verify", help="Allow downloading acoustic weights that have no published sha256 (tacotron2-lj)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for models that sample (Tacotron2's prenet dropout)."),
    strict: bool = typer.Option(
        False, "--strict", help="With --teacher-forced: refuse texts with characters the model cannot read."
    ),
    shard: Optional[str] = shard_option(),
) -> None:
    """Log-mels for acoustic models and fine-tuning: `vocoder mels wavs/ mels/`.

    Each input becomes OUT/NAME.npy: float32 \\[n_mels, frames], natural log, frames = samples // hop, exactly
    the official HiFi-GAN recipe, in the mel config of --weights (or --preset / --config). The config is
    recorded in OUT/mel_config.json (NAME.mel_config.json beside a single .npy; none on stdout). These files
    are what `resynth --from-mels` and `train --gta-mels` read. Bad inputs are listed and the batch goes on;
    the exit code is 1 when any input failed. Existing outputs are never replaced unless --overwrite.
    """
    if files_from is None and len(paths) < 2:
        raise fail("give at least one input and an output: vocoder mels IN... OUT")
    if preset is not None and config is not None:
        raise fail("give --preset or --config, not both")
    *inputs, output = paths
    if output == STDIO:
        require_stdout()  # a closed stdout is refused before any work
    stdin_bytes = None
    if files_from == STDIO:
        inputs += read_file_list(read_stdin_lines())
    elif files_from is not None:
        with open(files_from, encoding="utf-8") as source:
            inputs += read_file_list(source)
    elif STDIO in inputs:
        if inputs != [STDIO]:
            raise fail("'-' (stdin) must be the only input")
        stdin_bytes = read_stdin()
    if not inputs:
        raise fail("no inputs given")
    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(device)
    with user_errors():
        policy = OutputPolicy.from_flags(overwrite, skip_existing)
        jobs = plan_mel_jobs(inputs, output, policy)
        jobs, this_shard = take_my_shard(
            shard, jobs, key=lambda job: job.target, size=lambda job: file_size(job.source), what="files",
            amount=lambda mine: f"{audio_seconds([j.source for j in mine]):.1f} s of audio", quiet=quiet,
        )  # fmt: skip
        device = shard_device(device, this_shard, "mels", quiet)
        cfg, source = _mel_config(weights, preset, config, offline, quiet)
        options = MelOptions(policy=policy, batch_size=batch_size, source=source)
        if teacher_forced:
            extractor: MelExtractor = _gta_extractor(
                jobs, cfg, device, options, texts, transcripts, texts_format, acoustic, acoustic_weights,
                acoustic_opt or [], offline, no_verify, seed, strict, quiet,
            )  # fmt: skip
            source = options.source = f"{source}, teacher-forced {acoustic}"
        else:
            if texts or transcripts:
                raise fail("--texts and --transcripts are for --teacher-forced")
            extractor = MelExtractor(cfg, device, options, stdin_bytes)
        record = check_config_record(output, cfg, policy)
    with progress_bar(quiet or output == STDIO) as progress:
        task = progress.add_task("mels", total=len(jobs))
        report, payload = extractor.run(jobs, on_progress=lambda done: progress.update(task, completed=done))
    if report.written:
        with user_errors():
            write_config_record(record, cfg, source)
    if payload is not None:
        write_stdout(payload)
    _render(report, cfg, source, device, quiet)
    if this_shard.sharded and Path(output).is_dir():  # a sharded run lists its failures in the output folder
        write_failures(output, this_shard, [*(("refused", f.source, f.reason) for f in report.refused),
                                            *(("failed", f.source, f.reason) for f in report.failures)])
    if report.failures or report.refused:
        raise typer.Exit(EXIT_PARTIAL_FAILURE)


def _mel_config(
    weights: str, preset: str | None, config: Path | None, offline: bool, quiet: bool
) -> tuple[MelConfig, str]:
    """The mel config asked for and a label for it (recorded in the JSON)."""
    if preset is not None:
        return mel_preset(preset), f"preset {preset}"
    if config is not None:
        return read_config_file(config), str(config)
    return weights_mel_config(weights, offline=offline or None, notify=notifier(quiet))


def _gta_extractor(
    jobs: list[Job], cfg: MelConfig, device: str, options: MelOptions, texts: Path | None, transcripts: Path | None,
    texts_format: str, acoustic: str, acoustic_weights: str | None, acoustic_opt: list[str], offline: bool,
    no_verify: bool, seed: int, strict: bool, quiet: bool,
) -> MelExtractor:
    """The teacher-forced extractor: texts by id, the acoustic model, its framing bridge to ``cfg``."""
    from vocoder_cli.cli.tts import _parse_options
    from vocoder_cli.tts.base import LoadOptions
    from vocoder_cli.tts.gta import GtaExtractor, check_inputs
    from vocoder_cli.tts.mels import bridge
    from vocoder_cli.tts.registry import load_acoustic
    from vocoder_cli.tts.texts import items_from_dir, items_from_lines, mark_duplicates

    if (texts is None) == (transcripts is None):
        raise fail("--teacher-forced needs the recordings' texts: give --texts FILE or --transcripts DIR (one)")
    check_inputs(jobs)
    model_options = _parse_options(acoustic_opt, acoustic)
    if texts is not None:
        try:
            data = texts.read_bytes()
        except OSError as exc:
            raise fail(f"{texts}: cannot read ({exc.strerror or exc})") from None
        text_source = items_from_lines(data, str(texts), texts_format)
    else:
        assert transcripts is not None
        text_source = items_from_dir(transcripts)
    if not quiet:
        for note in text_source.notes:
            say(err_console, ("note: ", "dim"), (note, "dim"))
    by_id = {item.id: item for item in mark_duplicates(text_source.items)}
    model = load_acoustic(
        acoustic,
        LoadOptions(
            target_mel=cfg, device=device, weights=acoustic_weights, offline=offline or None, verify=not no_verify,
            seed=seed, options=model_options, notify=notifier(quiet),
        ),
    )  # fmt: skip
    mel_bridge = bridge(model.mel_config, cfg, model.name)
    if mel_bridge.explanation and not quiet:
        say(err_console, ("note: " + mel_bridge.explanation, "dim"))
    return GtaExtractor(model, mel_bridge, by_id, cfg, device, options, strict=strict)


def _render(report: Report, cfg: MelConfig, source: str, device: str, quiet: bool) -> None:
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
    mel = f"{cfg.n_mels} mels, {cfg.sample_rate} Hz, hop {cfg.hop_length}"
    say(
        err_console, *counts, " | ", timing(report.audio_seconds, report.wall_seconds, report.real_time_factor),
        " | ", mel, " (", source, ") on ", device,
    )  # fmt: skip
