"""The `vocoder` Typer application: registers one module per subcommand."""

from __future__ import annotations

import typer

from vocoder_cli import __version__
from vocoder_cli.cli import (
    bench,
    export,
    mels,
    prepare,
    report,
    resynth,
    score,
    train,
    tts,
    weights,
)

app = typer.Typer(
    name="vocoder",
    help="Batch neural vocoding with HiFi-GAN: prepare data, train, resynthesise, score.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vocoder {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    """Batch neural vocoding with HiFi-GAN."""


app.command("resynth")(resynth.resynth)
app.command("tts")(tts.tts)
app.command("mels")(mels.mels)
app.add_typer(weights.app, name="weights")
app.add_typer(prepare.app, name="prepare")
app.command("train")(train.train)
app.command("score")(score.score)
app.command("report")(report.report)
app.add_typer(bench.app, name="bench")
app.add_typer(export.app, name="export")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
