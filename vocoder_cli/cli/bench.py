"""`vocoder bench`: speed on this machine (synthesis real-time factor, training and scoring throughput)."""

from __future__ import annotations

import typer

from vocoder_cli.cli.bench_score import bench_score
from vocoder_cli.cli.bench_synth import bench_synth
from vocoder_cli.cli.bench_train import bench_train

app = typer.Typer(help="Measure speed on this machine.", no_args_is_help=True)
app.command("synth")(bench_synth)
app.command("train")(bench_train)
app.command("score")(bench_score)
