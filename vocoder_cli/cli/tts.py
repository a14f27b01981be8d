"""`vocoder tts`: text -> acoustic model -> log-mel -> vocoder -> audio, for one sentence or a folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch
import typer
from rich.table import Table

from vocoder_cli.api.speak import speak
from vocoder_cli.api.vocoder import Vocoder
from vocoder_cli.audio import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, output_problem
from vocoder_cli.cli.common import (
    BACKEND_HELP,
    EXIT_PARTIAL_FAILURE,
    FLOAT_HELP,
    OFFLINE_HELP,
    OVERWRITE_HELP,
    PRECISION_HELP,
    SKIP_EXISTING_HELP,
    WEIGHTS_HELP,
    download_bar,
    engine_backend,
    err_console,
    fail,
    notifier,
    progress_bar,
    resolve_device,
    user_errors,
)
from vocoder_cli.cli.display import cell, line, say
from vocoder_cli.cli.sharding import announcer, current_shard, shard_device, shard_option, write_failures
from vocoder_cli.cli.stdio import read_stdin, require_stdout, write_stdout
from vocoder_cli.cli.summary import outcome_parts, row, timing
from vocoder_cli.errors import TextError, VocoderError
from vocoder_cli.mel import MelConfig
from vocoder_cli.tts.espeak import Espeak
from vocoder_cli.tts.mels import MelBridge
from vocoder_cli.tts.registry import (
    DEFAULT_ACOUSTIC,
    available,
    check_acoustic_options,
    plugins,
)
from vocoder_cli.tts.synthesis import (
    STAGES,
    STDIO,
    TtsReport,
)
from vocoder_cli.tts.texts import (
    TEXT_FORMATS,
    TextItem,
    decode_text,
    items_from_dir,
    items_from_lines,
    mark_duplicates,
)
from vocoder_cli.weights.registry import DEFAULT_ALIAS

SINGLE_ID = "tts"


def tts(
    args: Optional[list[str]] = typer.Argument(
        None,
        metavar="[TEXT] [OUT]",
        help="The text (- reads it from stdin), then OUT (or -o). With --dir/--texts: OUT only.",
    ),
    output: Optional[str] = typer.Option(
        None,
        "--output",
        "-o",
        help="An audio file in the format its suffix names (.wav, .flac, .ogg, .opus, .mp3, .aiff, .au, .caf, "
        ".w64), - (WAV on stdout), or a folder for --dir/--texts.",
    ),
    directory: Optional[Path] = typer.Option(
        None, "--dir", help="Speak every D/transcriptions/ID.txt into OUT/ID.wav."
    ),
    texts: Optional[str] = typer.Option(
        None, "--texts", help="Speak id|text lines from FILE (or - for stdin); LJSpeech metadata.csv works."
    ),
    texts_format: str = typer.Option(
        "auto",
        "--texts-format",
        help="id-text (the text is all after the first |), ljspeech (id|text|normalised: the third column), "
        "or auto (ljspeech when every line looks like LJSpeech metadata); a note says which was used.",
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
    skip_existing: bool = typer.Option(False, "--skip-existing", help=SKIP_EXISTING_HELP),
    overwrite: bool = typer.Option(False, "--overwrite", help=OVERWRITE_HELP),
    out_sr: Optional[int] = typer.Option(
        None, "--out-sr", help=f"Resample the output to this rate (Hz, {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE})."
    ),
    float_output: bool = typer.Option(False, "--float", help=FLOAT_HELP),
    list_models: bool = typer.Option(False, "--list", help="List the acoustic models and exit."),
    quiet: bool = typer.Option(
        False, "--quiet", "-q", help="No progress bar, notes or summary (failures still print)."
    ),
    shard: Optional[str] = shard_option(),
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
    items, out, batch = _inputs(args or [], output, directory, texts, texts_format, quiet)
    if out == STDIO:
        require_stdout()  # a closed stdout is refused before any work
    if too_long not in ("split", "refuse"):
        raise fail("--too-long must be split or refuse")
    options = _parse_options(acoustic_opt or [], acoustic)
    _check_output(out, batch, out_sr, float_output, None, quiet)
    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(device)
    with user_errors():
        this_shard = current_shard(shard)
        device = shard_device(device, this_shard, "tts", quiet)
        backend = engine_backend(backend, precision, device, quiet)
    download, items_bar = download_bar(quiet), progress_bar(quiet or out == STDIO)
    fetching: list[int] = []
    speaking = items_bar.add_task("tts", total=None)

    def fetched(done: int, total: int | None) -> None:
        if not fetching:
            download.start()
            fetching.append(download.add_task(acoustic, total=total))
        download.update(fetching[0], completed=done, total=total)

    def ready(vocoder: Vocoder, mel_bridge: MelBridge) -> None:
        download.stop()
        _check_output(out, batch, out_sr, float_output, vocoder.mel_config, quiet)
        if mel_bridge.explanation and not quiet:
            say(err_console, ("note: " + mel_bridge.explanation, "dim"))
        items_bar.start()

    try:
        with user_errors():
            report = speak(
                items, out, batch=batch, acoustic=acoustic, acoustic_weights=acoustic_weights, acoustic_options=options,
                weights=weights, device=device, precision=precision, backend=backend, batch_size=batch_size, seed=seed,
                too_long=too_long, strict=strict, save_mels=save_mels, skip_existing=skip_existing, overwrite=overwrite,
                out_sr=out_sr, float_output=float_output, offline=offline or None, verify=not no_verify,
                notify=notifier(quiet), download_progress=fetched, input_dirs=[directory] if directory else [],
                on_ready=ready, on_progress=lambda done, total: items_bar.update(speaking, completed=done, total=total),
                shard=this_shard, on_shard=announcer(
                    this_shard, "texts", lambda mine: f"{sum(len(j.item.text or '') for j in mine)} characters", quiet),
            )  # fmt: skip
    finally:
        download.stop()
        items_bar.stop()
    payload = report.stdout
    assert report.vocoder is not None
    vocoder = report.vocoder
    if payload is not None:
        write_stdout(payload)
    _render(report, report.acoustic, vocoder.name, device, quiet)
    if batch and this_shard.sharded:  # a folder of outputs: a sharded run lists its failures there
        write_failures(out, this_shard, [*(("refused", p.id, p.reason) for p in report.refused),
                                         *(("failed", p.id, p.reason) for p in report.failures)])
    if report.failures or report.refused:
        raise typer.Exit(EXIT_PARTIAL_FAILURE)


def _inputs(
    args: list[str], output: str | None, directory: Path | None, texts: str | None, texts_format: str, quiet: bool
) -> tuple[list[TextItem], str, bool]:
    """(items, output, batch?) from the positional arguments and the source options; the source's notes
    (how it was read, what was left out) go to stderr unless ``quiet``."""
    if directory is not None and texts is not None:
        raise fail("give --dir or --texts, not both")
    if texts_format not in TEXT_FORMATS:
        raise fail(f"--texts-format must be one of {', '.join(TEXT_FORMATS)}, not {texts_format!r}")
    if texts_format != "auto" and texts is None:
        raise fail("--texts-format applies to --texts only")
    if directory is not None or texts is not None:
        if len(args) > 1 or (args and output):
            raise fail("with --dir/--texts, give only the output folder (as OUT or -o)")
        out = output or (args[0] if args else None)
        if out is None:
            raise fail("give an output folder: vocoder tts --dir D OUT/")
        with user_errors():
            if directory is not None:
                source = items_from_dir(directory)
            else:
                data = read_stdin() if texts == STDIO else _read_bytes(texts or "")
                source = items_from_lines(data, "<stdin>" if texts == STDIO else str(texts), texts_format)
        if not source.items:
            raise fail(f"{texts}: no id|text lines found")
        if not quiet:
            for note in source.notes:
                say(err_console, ("note: ", "dim"), (note, "dim"))
        return mark_duplicates(source.items), out, True
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
        except TextError as exc:
            raise fail(f"<stdin>: {exc.reason}") from None
    return [TextItem(SINGLE_ID, _utf8_argument(args[0], "the TEXT argument"), "<argument>")], out, False


def _utf8_argument(value: str, what: str) -> str:
    """``value`` when it is UTF-8; else a usage error naming ``what`` and the first byte that is not.

    Python keeps an argument's undecodable bytes as lone surrogates; they would reach the text frontend
    and fail there (UnicodeEncodeError) instead of here with the byte."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = ord(value[exc.start])
        offset = len(os.fsencode(value[: exc.start]))
        byte = f"byte 0x{bad - 0xDC00:02x}" if 0xDC80 <= bad <= 0xDCFF else f"character U+{bad:04X}"
        raise fail(f"{what} is not UTF-8 text ({byte} at offset {offset}); pass UTF-8 (or use - and stdin)") from None
    return value


def _read_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise fail(f"{path}: cannot read ({exc.strerror or exc})") from None


def _parse_options(pairs: list[str], acoustic: str) -> dict[str, str]:
    """``--acoustic-opt KEY=VALUE`` pairs, checked before anything loads: the form (a key, ``=``, a
    non-empty UTF-8 value, each key once), then the model's own check of keys and values (ranges, voices)."""
    options: dict[str, str] = {}
    for pair in pairs:
        _utf8_argument(pair, f"--acoustic-opt {pair.partition('=')[0]!r}")
        key, sep, value = (part.strip() for part in pair.partition("="))
        if not sep or not key:
            raise fail(f"--acoustic-opt takes KEY=VALUE, got {pair!r}")
        if not value:
            raise fail(f"--acoustic-opt {key}= has an empty value; give {key}=VALUE (or leave the option out)")
        if key in options:
            raise fail(f"--acoustic-opt {key} is given twice ({options[key]!r} and {value!r}); give it once")
        options[key] = value
    with user_errors():
        check_acoustic_options(acoustic, options)
    return options


def _check_output(
    out: str, batch: bool, out_sr: int | None, float_output: bool, mel: MelConfig | None, quiet: bool
) -> None:
    """Refuse an output rate outside the sane range, or a container that cannot hold the audio (a rate Opus
    or MP3 does not take, --float in FLAC ...). Called before anything loads (``mel`` None: what does not
    depend on the vocoder's rate) and again once the vocoder is known (``mel``: its rate, and a note when
    the output rate is below twice the mels' highest frequency, since resampling removes that band)."""
    if out_sr is not None and not MIN_SAMPLE_RATE <= out_sr <= MAX_SAMPLE_RATE:
        raise fail(f"--out-sr {out_sr}: give a rate from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz")
    sr = out_sr or (mel.sample_rate if mel is not None else None)
    single = not batch and out != STDIO  # batches write OUT/ID.wav, stdout gets a WAV
    problem = output_problem(out if single else "OUT.wav", sr, "FLOAT" if float_output else "PCM_16")
    if problem is not None:
        raise fail(f"{out}: {problem}" if single else problem)
    if mel is None or sr is None or quiet:
        return
    top = mel.f_max if mel.f_max is not None else mel.sample_rate / 2
    if sr < 2 * top:
        say(
            err_console,
            ("note: ", "dim"),
            (f"--out-sr {sr} keeps frequencies up to {sr / 2:g} Hz; the vocoder's mels describe up to {top:g} Hz "
             f"(model rate {mel.sample_rate} Hz), so the band from {sr / 2:g} to {top:g} Hz is removed", "dim"),
        )  # fmt: skip


def _list_models() -> None:
    from rich.console import Console

    table = Table("name", "description", "origin", title="acoustic models (--acoustic)")
    for spec in available().values():
        table.add_row(cell(spec.name), cell(spec.description), cell(spec.origin))
    for broken in plugins()[1]:
        table.add_row(cell(broken.name), line((f"cannot load: {broken.error}", "red")), cell(broken.origin))
    console = Console()
    if not console.is_terminal:
        console = Console(width=240)  # a pipe gets unwrapped rows
    console.print(table)
    try:
        engine = Espeak()
        names, variants = engine.voice_names(), sorted((v.file for v in engine.variants()), key=str.lower)
    except VocoderError as exc:
        say(console, "espeak voices: ", (f"unavailable ({exc})", "red"))
        return
    say(console, ("espeak voices", "bold"), f" (--acoustic-opt voice=NAME; {len(names)}): ", ", ".join(names))
    say(console, ("espeak variants", "bold"), f" (voice=NAME+VARIANT; {len(variants)}): ", ", ".join(variants))


def _render(report: TtsReport, acoustic: str, weights: str, device: str, quiet: bool) -> None:
    """Per-item rows (ids, sources and reasons as literal, visible text), then the summary unless ``quiet``."""
    for problem in report.refused:
        row(err_console, "refused", "red", problem.id, " (", problem.source, "): ", problem.reason)
    for problem in report.failures:
        row(err_console, "failed", "red", problem.id, " (", problem.source, "): ", problem.reason)
    if quiet:
        return
    for problem in report.warnings:
        row(err_console, "warning", "yellow", problem.id, " (", problem.source, "): ", problem.reason)
    counts = outcome_parts(
        "item",
        written=len(report.written),
        skipped=len(report.skipped),
        refused=len(report.refused),
        failed=len(report.failures),
    )
    stages = [(s, report.real_time_factor(s)) for s in STAGES]
    done = timing(report.audio_seconds, report.wall_seconds, report.real_time_factor(), stages)
    say(err_console, *counts, " | ", done, " | ", acoustic, " -> ", Path(weights).name, " on ", device)
