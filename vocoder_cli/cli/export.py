"""`vocoder export onnx WEIGHTS OUT.onnx`: a portable, self-describing model for other runtimes."""

from __future__ import annotations

from pathlib import Path

import typer

from vocoder_cli.cli.common import OFFLINE_HELP, err_console, fail, notify_pull, user_errors

app = typer.Typer(help="Export weights for other runtimes.", no_args_is_help=True)


@app.command("onnx")
def onnx(
    weights: str = typer.Argument(..., help="Weights to export: a name (`vocoder weights list`) or .safetensors path."),
    out: Path = typer.Argument(..., help="The .onnx file to write (atomically)."),
    opset: int = typer.Option(17, "--opset", min=13, help="ONNX opset version."),
    offline: bool = typer.Option(False, "--offline", help=OFFLINE_HELP),
) -> None:
    """Export a generator to ONNX: input `mel` [batch, n_mels, frames] -> output `audio` [batch, 1, frames*hop],
    batch and frames dynamic, the model and mel config in the model's metadata (so `--weights OUT.onnx`
    works wherever weights are accepted). The export is checked against PyTorch with ONNX Runtime on a
    real-speech mel before it is written."""
    if out.suffix.lower() != ".onnx":
        raise fail(f"{out}: the output must end in .onnx")
    if weights == "griffin-lim":
        raise fail("griffin-lim has no weights to export")
    from vocoder_cli.backends.onnx import ACCURACY_BAR, export_onnx
    from vocoder_cli.weights.format import load_generator
    from vocoder_cli.weights.resolve import ensure_weights

    with user_errors():
        path = ensure_weights(weights, offline=offline or None, notify=notify_pull)
        loaded = load_generator(path)
        result = export_onnx(loaded.generator, loaded.mel, out, metadata=loaded.metadata, opset=opset)
    verdict = "[green]within[/]" if result.passed else "[red]ABOVE[/]"
    err_console.print(
        f"wrote {result.path} ({result.size / 1e6:.1f} MB, opset {opset}); ONNX Runtime vs PyTorch on a real-speech "
        f"mel: max |diff| / max |ref| = {result.max_rel_error:.2e}, {verdict} the {ACCURACY_BAR:g} bar",
        soft_wrap=True,
    )
    if not result.passed:
        raise typer.Exit(1)
