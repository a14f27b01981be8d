"""`vocoder tts`: text -> acoustic model -> log-mel -> vocoder -> audio, for one sentence or a folder."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import torch
import typer
from rich.table import Table

from vocoder_cli.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE
from vocoder_cli.cli.common import (
    BACKEND_HELP,
    EXIT_PARTIAL_FAILURE,
    OFFLINE_HELP,
    PRECISION_HELP,
    WEIGHTS_HELP,
    download_bar,
    engine_backend,
    err_console,
    fail,
    notify_pull,
    progress_bar,
    resolve_device,
    user_errors,
)
from vocoder_cli.cli.stdio import read_stdin, require_stdout, write_stdout
from vocoder_cli.inference import EngineOptions, Synthesizer, load_vocoder
from vocoder_cli.tts.base import LoadOptions
from vocoder_cli.tts.mels import bridge
from vocoder_cli.tts.registry import DEFAULT_ACOUSTIC, available, load_acoustic, plugins
from vocoder_cli.tts.synthesis import STAGES, STDIO, TtsOptions, TtsReport, TtsRunner, plan_jobs
from vocoder_cli.tts.texts import TextItem, decode_text, items_from_dir, items_from_lines, mark_duplicates
from vocoder_cli.weights.registry import DEFAULT_ALIAS

SINGLE_ID = "tts"


def tts(
    args: Optional[list[str]] = typer.Argument(
        None,
        metavar="[TEXT] [OUT]",
        help="The text (- reads it from stdin), then OUT (or -o). With --dir/--texts: OUT only.",
    ),
    output: Optional[str] = typer.Option(
        None, "--output", "-o", help="A .wav file, - (WAV on stdout), or a folder for --dir/--texts."
    ),
    directory: Optional[Path] = typer.Option(
        None, "--dir", help="Speak every D/transcriptions/ID.txt into OUT/ID.wav."
    ),
    texts: Optional[str] = typer.Option(
        None, "--texts", help="Speak id|text lines from FILE (or - for stdin); LJSpeech metadata.csv works."
    ),
    acoustic: str = typer.Option(
        DEFAULT_ACOUSTIC,
        "--acoustic",
        "-a",
        help="Acoustic model: espeak (offline, robotic) or tacotron2-lj; --list shows all.",
    ),
    acoustic_weights: Optional[str] = typer.Option(
        None, "--acoustic-weights", help="The acoustic model's checkpoint (path or weights name)."
    ),
    acoustic_opt: Optional[list[str]] = typer.Option(
        None,
        "--acoustic-opt",
        help="KEY=VALUE for the acoustic model (espeak: voice, rate, pitch; tacotron2-lj: max_steps, max_chars).",
    ),
    weights: str = typer.Option(DEFAULT_ALIAS, "--weights", "-w", help=WEIGHTS_HELP),
    offline: bool = typer.Option(False, "--offline", help=OFFLINE_HELP),
    no_verify: bool = typer.Option(
        False, "--no-verify", help="Allow downloading acoustic weights that have no published sha256 (tacotron2-lj)."
    ),
    save_mels: bool = typer.Option(
        False,
        "--save-mels",
        help="Also write each mel as ID.npy in the vocoder's format (for resynth --from-mels, train --gta-mels).",
    ),
    too_long: str = typer.Option(
        "split", "--too-long", help="A text over the model's limit: split (at sentence boundaries, joined) or refuse."
    ),
    strict: bool = typer.Option(
        False, "--strict", help="Refuse texts with characters the model cannot read (default: drop them and say so)."
    ),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Utterances per acoustic-model and vocoder pass."),
    seed: int = typer.Option(0, "--seed", help="Seed for models that sample (Tacotron2's prenet dropout)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for torch."),
    backend: str = typer.Option("auto", "--backend", help=BACKEND_HELP),
    precision: str = typer.Option("fp32", "--precision", help=PRECISION_HELP),
    skip_existing: bool = typer.Option(False, "--skip-existing", help="Skip items whose output already exists."),
    out_sr: Optional[int] = typer.Option(
        None, "--out-sr", min=MIN_SAMPLE_RATE, max=MAX_SAMPLE_RATE, help="Resample the output to this rate (Hz)."
    ),
    float_output: bool = typer.Option(False, "--float", help="Write 32-bit float WAV instead of 16-bit PCM."),
    list_models: bool = typer.Option(False, "--list", help="List the acoustic models and exit."),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="No progress bar, notes or summary (failures still print)."
    ),
) -> None:
    """Speak text: `vocoder tts "Some text." -o out.wav`, or `vocoder tts --dir D OUT/`.

    Text -> acoustic model -> log-mel -> vocoder -> audio.

    espeak (the default acoustic model) is eSpeak NG formant synthesis: offline, no download; intelligible, robotic.

    tacotron2-lj is a neural LJSpeech voice; its ~113 MB checkpoint is fetched on first use (with --no-verify).

    Bad items are listed and the batch goes on; the exit code is 1 when any item failed.
    """
    if list_models:
        _list_models()
        return
    items, out, batch = _inputs(args or [], output, directory, texts)
    if out == STDIO:
        require_stdout()  # a closed stdout is refused before any work
    if too_long not in ("split", "refuse"):
        raise fail("--too-long must be split or refuse")
    options = _parse_options(acoustic_opt or [])
    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(device)
    with user_errors():
        jobs = plan_jobs(items, out, batch=batch, save_mels=save_mels)
        backend = engine_backend(backend, precision, device, quiet)
        vocoder = load_vocoder(weights, device, offline=offline or None, notify=notify_pull, backend=backend)
        with download_bar(quiet) as bar:
            task: list[int] = []

            def progress(done: int, total: int | None) -> None:
                if not task:
                    task.append(bar.add_task(acoustic, total=total))
                bar.update(task[0], completed=done, total=total)

            model = load_acoustic(
                acoustic,
                LoadOptions(
                    target_mel=vocoder.mel, device=device, weights=acoustic_weights, offline=offline or None,
                    verify=not no_verify, seed=seed, options=options, notify=notify_pull, progress=progress,
                ),
            )  # fmt: skip
        mel_bridge = bridge(model.mel_config, vocoder.mel, model.name)
        synth = Synthesizer(vocoder, device, EngineOptions(batch_size=batch_size, precision=precision))
    if mel_bridge.explanation and not quiet:
        err_console.print(f"[dim]note: {mel_bridge.explanation}[/]", soft_wrap=True)
    runner = TtsRunner(
        model,
        synth,
        mel_bridge,
        TtsOptions(
            too_long=too_long, strict=strict, skip_existing=skip_existing, batch_size=batch_size,
            group_size=max(batch_size, 8), out_sr=out_sr, subtype="FLOAT" if float_output else "PCM_16",
        ),
    )  # fmt: skip
    with progress_bar(quiet or out == STDIO) as bar:
        progress_task = bar.add_task("tts", total=len(jobs))
        report, payload = runner.run(jobs, on_done=lambda _job: bar.advance(progress_task))
    if payload is not None:
        write_stdout(payload)
    _render(report, model.name, vocoder.name, device, quiet)
    if report.failures:
        raise typer.Exit(EXIT_PARTIAL_FAILURE)


def _inputs(
    args: list[str], output: str | None, directory: Path | None, texts: str | None
) -> tuple[list[TextItem], str, bool]:
    """(items, output, batch?) from the positional arguments and the source options."""
    if directory is not None and texts is not None:
        raise fail("give --dir or --texts, not both")
    if directory is not None or texts is not None:
        if len(args) > 1 or (args and output):
            raise fail("with --dir/--texts, give only the output folder (as OUT or -o)")
        out = output or (args[0] if args else None)
        if out is None:
            raise fail("give an output folder: vocoder tts --dir D OUT/")
        with user_errors():
            if directory is not None:
                items = items_from_dir(directory)
            else:
                data = read_stdin() if texts == STDIO else _read_bytes(texts or "")
                items = items_from_lines(data, "<stdin>" if texts == STDIO else str(texts))
        if not items:
            raise fail(f"{texts}: no id|text lines found")
        return mark_duplicates(items), out, True
    if not args:
        raise fail('give a text, --dir D or --texts FILE: vocoder tts "Some text." -o out.wav')
    if len(args) > 2 or (len(args) == 2 and output):
        raise fail('give one text and one output: vocoder tts "Some text." -o out.wav (quote the text)')
    out = output or (args[1] if len(args) == 2 else None)
    if out is None:
        raise fail("give an output: -o out.wav, or -o - for a WAV on stdout")
    if args[0] == STDIO:
        try:
            return [TextItem(SINGLE_ID, decode_text(read_stdin()), "<stdin>")], out, False
        except UnicodeDecodeError as exc:
            raise fail(f"<stdin>: not UTF-8 text ({exc.reason})") from None
    return [TextItem(SINGLE_ID, args[0], "<argument>")], out, False


def _read_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise fail(f"{path}: cannot read ({exc.strerror or exc})") from None


def _parse_options(pairs: list[str]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise fail(f"--acoustic-opt takes KEY=VALUE, got {pair!r}")
        options[key.strip()] = value.strip()
    return options


def _list_models() -> None:
    table = Table("name", "description", "origin", title="acoustic models (--acoustic)")
    for spec in available().values():
        table.add_row(spec.name, spec.description, spec.origin)
    for broken in plugins()[1]:
        table.add_row(broken.name, f"[red]cannot load: {broken.error}[/]", broken.origin)
    from rich.console import Console

    console = Console()
    (console if console.is_terminal else Console(width=240)).print(table)  # a pipe gets unwrapped rows


def _render(report: TtsReport, acoustic: str, weights: str, device: str, quiet: bool) -> None:
    for problem in report.failures:
        err_console.print(f"[red]failed[/] {problem.id} ({problem.source}): {problem.reason}", soft_wrap=True)
    if quiet:
        return
    for problem in report.warnings:
        err_console.print(f"[yellow]warning[/] {problem.id} ({problem.source}): {problem.reason}", soft_wrap=True)
    skipped = f", {len(report.skipped)} skipped (exist)" if report.skipped else ""
    failed = f", [red]{len(report.failures)} failed[/]" if report.failures else ""
    stages = ", ".join(f"{s} {report.real_time_factor(s):.3f}" for s in STAGES)
    err_console.print(
        f"{len(report.written)} items written{skipped}{failed} | {report.audio_seconds:.1f} s audio in "
        f"{report.wall_seconds:.1f} s | RTF {report.real_time_factor():.3f} ({stages}) | "
        f"{acoustic} -> {Path(weights).name} on {device}",
        soft_wrap=True,
    )
