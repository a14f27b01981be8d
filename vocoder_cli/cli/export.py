"""`vocoder export onnx WEIGHTS OUT.onnx`: a portable, self-describing model for other runtimes."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vocoder_cli.cli.common import (
    EXIT_PARTIAL_FAILURE,
    OFFLINE_HELP,
    err_console,
    fail,
    notify_pull,
    user_errors,
)
from vocoder_cli.cli.display import say

app = typer.Typer(help="Export weights for other runtimes.", no_args_is_help=True)


def _check_out(out: Path, overwrite: bool) -> None:
    """Usage problems of OUT, before the weights are loaded: the suffix, a folder, an existing file."""
    if out.suffix.lower() != ".onnx":
        raise fail(f"{out}: the output must end in .onnx")
    if out.is_dir():
        raise fail(f"{out}: is a folder; give the .onnx file to write")
    if out.exists() and not overwrite:
        raise fail(f"{out}: exists; pass --overwrite to replace it")
    folder = out.absolute().parent
    while not folder.exists():  # created on write: the first folder that exists must be a folder
        folder = folder.parent
    if not folder.is_dir():
        raise fail(f"{out}: {folder} is not a folder")


@app.command("onnx")
def onnx(
    weights: str = typer.Argument(..., help="Weights to export: a name (`vocoder weights list`) or .safetensors path."),
    out: Path = typer.Argument(..., help="The .onnx file to write (atomically)."),
    opset: Optional[int] = typer.Option(
        None, "--opset", help="ONNX opset version (default 17; the installed exporter's range is checked first)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if it exists."),
    offline: bool = typer.Option(False, "--offline", help=OFFLINE_HELP),
) -> None:
    """Export a generator to ONNX: input `mel` \\[batch, n_mels, frames] -> output `audio` \\[batch, 1, frames*hop],
    batch and frames dynamic, the model and mel config in the model's metadata (so `--weights OUT.onnx`
    works wherever weights are accepted). The export is checked against PyTorch with ONNX Runtime on a
    real-speech mel before it is written."""
    _check_out(out, overwrite)
    if weights == "griffin-lim":
        raise fail("griffin-lim has no weights to export")
    from vocoder_cli.synthesis.backends.onnx import (
        ACCURACY_BAR,
        OPSET,
        check_opset,
        export_onnx,
    )
    from vocoder_cli.weights.format import load_generator
    from vocoder_cli.weights.resolve import ensure_weights

    opset = OPSET if opset is None else opset
    with user_errors():
        check_opset(opset)
        path = ensure_weights(weights, offline=offline or None, notify=notify_pull)
        loaded = load_generator(path)
        try:
            result = export_onnx(loaded.generator, loaded.mel, out, metadata=loaded.metadata, opset=opset)
        except OSError as exc:
            raise fail(f"{out}: cannot write ({exc.strerror or exc})", EXIT_PARTIAL_FAILURE) from None
    verdict = ("within", "green") if result.passed else ("ABOVE", "red")
    say(err_console, "wrote ", str(result.path), f" ({result.size / 1e6:.1f} MB, opset {opset}); ONNX Runtime vs "
        f"PyTorch on a real-speech mel: max |diff| / max |ref| = {result.max_rel_error:.2e}, ", verdict,
        f" the {ACCURACY_BAR:g} bar")
    if not result.passed:
        raise typer.Exit(1)
