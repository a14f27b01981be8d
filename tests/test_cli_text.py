"""What the CLI prints, as a user reads it: help texts keep their square brackets, every table is readable
at 80 columns (whole headers, whole numbers), and user strings in tables and lines are literal text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.main import get_command
from typer.testing import CliRunner

from tests.helpers import tiny_weights
from vocoder_cli.cli.app import app
from vocoder_cli.cli.tables import fit

runner = CliRunner()
HOSTILE = "[bold]x[/] a[/]b \x1b[31mred"
SHOWN = "[bold]x[/] a[/]b \\x1b[31mred"


def _commands(command, path):  # type: ignore[no-untyped-def]
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, [*path, name])


def test_every_help_text_keeps_its_square_brackets() -> None:
    """The app renders help as Rich markup: `[batch, n_mels, frames]` vanished from `export onnx --help`
    (and from docs/cli.md). Every command and option help in the app must render to its own text."""
    checked = 0
    for path, command in _commands(get_command(app), ["vocoder"]):
        texts = [("help", command.help or "")] + [(p.name, getattr(p, "help", None) or "") for p in command.params]
        for name, text in texts:
            if "[" not in text:
                continue
            checked += 1
            rendered = Text.from_markup(text).plain
            literal = text.replace("\\[", "[")  # an escaped bracket is the way to write one
            assert rendered == literal, (" ".join(path), name, text)
    assert checked >= 3  # resynth --raw-format, prepare folder --transcripts, export onnx


def test_export_help_shows_the_tensor_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    result = runner.invoke(app, ["export", "onnx", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "input `mel` [batch, n_mels, frames] -> output `audio` [batch, 1, frames*hop]" in text


def _table() -> Table:
    table = Table(title="t")
    for col in ("config", "batch", "segment", "device", "s/step", "steps/s", "clips/s", "audio samples/s",
                "peak MiB", "GPU busy"):
        table.add_column(col, no_wrap=col not in ("audio samples/s", "peak MiB", "GPU busy"))
    table.add_row("v1", "16", "8192", "cuda:0", "0.123", "8.130", "130.08", "1,065,574", "12,345", "97%")
    return table


@pytest.mark.parametrize("width", [40, 60, 80, 120])
def test_fit_never_cuts_a_header_or_a_number(width: int) -> None:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(fit(_table(), console))
    out = console.export_text()
    assert max(len(line) for line in out.splitlines()) <= width
    assert "…" not in out
    words = " ".join(out.split())
    for text in ("config", "segment", "device", "s/step", "steps/s", "clips/s", "8192", "1,065,574", "12,345"):
        assert text in words, (width, text, out)
    if width >= 120:  # wide enough: the table as built, box and all
        assert "┃ config ┃" in out
    if width <= 60:  # one block per row
        assert "audio samples/s 1,065,574" in words


def _at_80(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    from vocoder_cli.cli import common

    monkeypatch.setattr(common.err_console, "_width", 80)


def _readable(text: str, headers: tuple[str, ...]) -> None:
    assert "…" not in text, text
    assert max(len(line) for line in text.splitlines()) <= 80, text
    words = " ".join(text.split())
    for header in headers:
        assert header in words, (header, text)


@pytest.mark.slow  # three real training steps of the V3 networks on the CPU, about 10 s
def test_bench_train_table_at_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: `conf…`, `segm…`, `devi…` and `14.3…`."""
    _at_80(monkeypatch)
    result = runner.invoke(app, ["bench", "train", "--configs", "v3", "--steps", "1", "--warmup", "0",
                                 "--batch-size", "1", "--segment", "1024", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    _readable(result.stderr, ("config", "batch", "segment", "device", "s/step", "steps/s", "clips/s", "samples/s",
                              "peak", "MiB", "GPU", "busy", "v3", "1024"))


def test_bench_synth_table_at_80_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: `rel e…`, `% pe…` and RTF `0.0…`. The model's file name is the user's: shown as text."""
    _at_80(monkeypatch)
    # on a terminal (a pipe gets a 120-column table on purpose: whole cells for files); no colour codes
    monkeypatch.setattr(Console, "is_terminal", property(lambda self: True))
    monkeypatch.setenv("TERM", "dumb")
    weights = tiny_weights(tmp_path / "[bold]tiny.safetensors")
    result = runner.invoke(app, ["bench", "synth", "--weights", str(weights), "--backend", "torch,torch-bf16",
                                 "--device", "cpu", "--seconds", "0.3", "--repeats", "1"])
    assert result.exit_code == 0, result.output
    _readable(result.stdout, ("model", "backend", "wall s", "RTF", "x ref", "rel err", "GFLOP/s", "% peak",
                              "[bold]tiny.safetensors", "torch-bf16"))


def test_bench_score_table_at_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    _at_80(monkeypatch)
    result = runner.invoke(app, ["bench", "score", "-m", "sisdr", "--clips", "2", "--seconds", "0.5",
                                 "--workers", "1"])
    assert result.exit_code == 0, result.output
    _readable(result.stdout, ("workers", "wall s", "files/s", "x real time", "speed-up", "failures"))


def test_weights_list_and_info_show_user_text_literally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A description given to `weights add` and the metadata of a user's weights file are text: markup in
    them was applied (or raised), ESC reached the terminal."""
    monkeypatch.setenv("VOCODER_DATA_DIR", str(tmp_path / "data"))
    from vocoder_cli.cli import weights as weights_cli

    monkeypatch.setattr(weights_cli, "out_console", Console(width=200, highlight=False, soft_wrap=True))
    added = runner.invoke(app, ["weights", "add", "mine", "https://example.org/g.safetensors", "--description",
                                HOSTILE])
    assert added.exit_code == 0, added.output
    listed = runner.invoke(app, ["weights", "list"])
    assert listed.exit_code == 0, listed.output
    assert SHOWN in listed.stdout and "\x1b" not in listed.stdout
    from tests.helpers import tiny_generator
    from vocoder_cli.mel import MelConfig
    from vocoder_cli.weights.format import save_generator

    path = save_generator(tmp_path / "a[/]b.safetensors", tiny_generator(), MelConfig(),
                          metadata={"description": HOSTILE})
    info = runner.invoke(app, ["weights", "info", str(path)])
    assert info.exit_code == 0, info.output
    assert str(path) in info.stdout and f"description: {SHOWN}" in info.stdout and "\x1b" not in info.stdout
    assert json.loads(info.stdout.split("generator_config: ")[1].splitlines()[0])["n_mels"] == 80


def test_cli_reference_page_is_generated_from_the_app() -> None:
    """docs/cli.md is Typer's own rendering of the app (`typer vocoder_cli.cli.app utils docs --name vocoder
    --output docs/cli.md`): a changed option or help text without the page regenerated fails here."""
    import subprocess
    import sys
    from pathlib import Path

    typer_cli = Path(sys.executable).with_name("typer")
    if not typer_cli.is_file():
        pytest.fail(f"the typer command is missing beside {sys.executable} (it ships with typer)")
    done = subprocess.run([str(typer_cli), "vocoder_cli.cli.app", "utils", "docs", "--name", "vocoder"],
                          capture_output=True, text=True, check=True)
    page = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
    assert done.stdout.strip() == page.strip(), "docs/cli.md is stale: regenerate it with the command above"
