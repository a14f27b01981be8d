"""`vocoder bench synth`: real-time factor of V1/V2/V3 (or given weights) on this machine."""

from __future__ import annotations

import json
from typing import Optional

import torch
import typer
from rich.table import Table

from vocoder_cli.bench import bench_synthesis, preset_vocoder
from vocoder_cli.backends import choose_backend, onnx_exporter_available
from vocoder_cli.cli.common import (
    BACKEND_HELP,
    OFFLINE_HELP,
    err_console,
    fail,
    notify_pull,
    resolve_device,
    user_errors,
)
from vocoder_cli.inference import load_vocoder
from vocoder_cli.weights.registry import DEFAULT_ALIAS


def bench_synth(
    models: Optional[str] = typer.Option(
        None, "--models", help="Comma-separated presets with random weights (e.g. v1,v2,v3) instead of --weights."
    ),
    weights: Optional[str] = typer.Option(
        None, "--weights", "-w", help="Weights to benchmark (default: the default weights, pulled on first use)."
    ),
    offline: bool = typer.Option(False, "--offline", help=OFFLINE_HELP),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    seconds: float = typer.Option(10.0, "--seconds", help="Length of each test utterance."),
    batch: int = typer.Option(1, "--batch", min=1, help="Utterances per forward pass."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Timed runs (median reported)."),
    precision: str = typer.Option("fp32", "--precision", help="fp32, fp16 or bf16 (CUDA)."),
    backend: str = typer.Option("auto", "--backend", help=BACKEND_HELP),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads for torch."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines on stdout instead of a table."),
) -> None:
    """Synthesis speed: real-time factor (wall / audio seconds; below 1 is faster than real time)."""
    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(device)
    if models and weights:
        raise fail("give --models (random-weight presets) or --weights, not both")
    with user_errors():
        if models:
            chosen = choose_backend(backend, device, exportable=onnx_exporter_available())  # presets export
            vocoders = [preset_vocoder(m.strip(), backend=chosen) for m in models.split(",")]
        else:
            vocoders = [load_vocoder(
                weights or DEFAULT_ALIAS, device, offline=offline or None, notify=notify_pull, backend=backend
            )]
    table = Table(title=f"synthesis on {device} ({torch.get_num_threads()} threads, torch {torch.__version__})")
    for col in ("model", "backend", "params", "audio s", "wall s", "RTF", "x real time"):
        table.add_column(col, justify="right" if col != "model" else "left")
    for vocoder in vocoders:
        vocoder.model.to(device)
        r = bench_synthesis(vocoder, device=device, seconds=seconds, batch=batch, repeats=repeats, precision=precision)
        if as_json:
            typer.echo(json.dumps({
                "model": r.name, "backend": vocoder.backend, "parameters": r.parameters,
                "audio_seconds": r.audio_seconds,
                "wall_seconds": round(r.wall_seconds, 6), "real_time_factor": round(r.real_time_factor, 6),
                "x_real_time": round(r.speed, 3), "device": device, "batch": batch, "precision": precision,
                "threads": torch.get_num_threads(), "torch": torch.__version__,
            }))
            continue
        table.add_row(r.name, vocoder.backend, f"{r.parameters:,}", f"{r.audio_seconds:.1f}", f"{r.wall_seconds:.3f}",
                      f"{r.real_time_factor:.4f}", f"{r.speed:.1f}")
    if as_json:
        return
    from rich.console import Console

    Console().print(table)
    err_console.print("[dim]RTF = wall seconds / audio seconds (median of the timed runs, after one warm-up)[/]")
