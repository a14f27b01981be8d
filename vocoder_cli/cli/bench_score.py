"""`vocoder bench score`: metric throughput on this machine, serial against the process pool."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from vocoder_cli.cli.common import err_console, resolve_device, user_errors
from vocoder_cli.cli.tables import fit
from vocoder_cli.metrics import parse_metrics
from vocoder_cli.metrics.bench import make_bench_set, time_scoring
from vocoder_cli.metrics.runner import default_workers


def bench_score(
    metrics: str = typer.Option("pesq,stoi,estoi", "--metrics", "-m", help="Metrics to time (as for score)."),
    clips: int = typer.Option(100, "--clips", min=1, help="Number of clips."),
    seconds: float = typer.Option(10.0, "--seconds", min=0.5, help="Length of each clip."),
    workers: Optional[str] = typer.Option(None, "--workers", help="Comma-separated pool sizes (default: 1,cores)."),
    source: Optional[Path] = typer.Option(None, "--source", help="Folder of real speech to cut clips from "
                                          "(default: the packaged demo prompts)."),
    device: str = typer.Option("auto", "--device", help="For neural metrics: auto, cpu or cuda."),
    wvmos_ckpt: Optional[str] = typer.Option(None, "--wvmos-ckpt", help="WV-MOS checkpoint."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines on stdout instead of a table."),
) -> None:
    """Scoring throughput: wall time for CLIPS clips of SECONDS each, per pool size."""
    sizes = sorted({int(w) for w in workers.split(",")}) if workers else sorted({1, default_workers()})
    with user_errors():
        chosen = parse_metrics(metrics)
        dev = resolve_device(device) if any(m.neural for m in chosen) else "cpu"
        with tempfile.TemporaryDirectory(prefix="vocoder-bench-score-") as tmp:
            err_console.print(f"writing {clips} clips of {seconds:g} s (and noisy copies) ...")
            pairs = make_bench_set(Path(tmp), clips, seconds, source=source)
            results = [time_scoring(pairs, chosen, n, dev, wvmos_ckpt) for n in sizes]
    base = results[0].wall_seconds
    if as_json:
        for r in results:
            typer.echo(json.dumps({
                "metrics": [m.name for m in chosen], "workers": r.workers, "files": r.files,
                "audio_seconds": round(r.audio_seconds, 3), "wall_seconds": round(r.wall_seconds, 6),
                "files_per_second": round(r.files_per_second, 6),
                "x_real_time": round(r.audio_seconds / r.wall_seconds, 2),
                "speed_up": round(base / r.wall_seconds, 3), "failures": r.failures,
            }))
        return
    table = Table(title=f"score throughput: {', '.join(m.name for m in chosen)} ({clips} x {seconds:g} s)")
    for col in ("workers", "wall s", "files/s", "x real time", "speed-up", "failures"):
        table.add_column(col, justify="right", no_wrap=col != "x real time")
    for r in results:
        table.add_row(str(r.workers), f"{r.wall_seconds:.2f}", f"{r.files_per_second:.2f}",
                      f"{r.audio_seconds / r.wall_seconds:.1f}", f"{base / r.wall_seconds:.2f}", str(r.failures))
    console = Console()
    console.print(fit(table, console))
