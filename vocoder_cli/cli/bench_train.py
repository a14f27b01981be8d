"""`vocoder bench train`: training steps/s and samples/s for V1/V2/V3 at the default batch."""

from __future__ import annotations

import json

import torch
import typer
from rich.table import Table

from vocoder_cli.cli.common import err_console, resolve_device, user_errors
from vocoder_cli.cli.display import cell
from vocoder_cli.cli.tables import fit
from vocoder_cli.training.bench import measure_training_speed
from vocoder_cli.training.config import apply_overrides, load_config, with_values


def bench_train(
    configs: str = typer.Option("v1,v2,v3", "--configs", help="Comma-separated presets or config files."),
    batch_size: int | None = typer.Option(None, "--batch-size", help="Default: the config's (16)."),
    segment: int | None = typer.Option(None, "--segment", help="Default: the config's (8192)."),
    steps: int = typer.Option(5, "--steps", min=1, help="Timed steps per config."),
    warmup: int = typer.Option(2, "--warmup", min=0, help="Untimed steps first (cuDNN autotune, compile)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda."),
    compile_: bool = typer.Option(False, "--compile/--no-compile", help="torch.compile the networks."),
    amp: str | None = typer.Option(None, "--amp", help="auto (bf16 on CUDA), bf16, off (float32 everywhere, TF32 off)."),
    overrides: list[str] = typer.Option([], "--set", help="Config overrides key=value (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines on stdout instead of a table."),
) -> None:
    """Measure the real training step on synthetic on-device segments (networks + optimisers only)."""
    dev = torch.device(resolve_device(device))
    table = Table()
    for col in ("config", "batch", "segment", "device", "s/step", "steps/s", "clips/s", "audio samples/s",
                "peak MiB", "GPU busy"):
        table.add_column(col, justify="left" if col in ("config", "device") else "right",
                         no_wrap=col not in ("config", "audio samples/s", "peak MiB", "GPU busy"))
    with user_errors():
        for name in [c.strip() for c in configs.split(",") if c.strip()]:
            cfg = with_values(
                apply_overrides(load_config(name), overrides),
                batch_size=batch_size, segment=segment, compile=compile_, amp=amp,
            )
            speed = measure_training_speed(cfg, dev, steps=steps, warmup=warmup)
            row = {
                "config": name, "batch_size": speed.batch_size, "segment": speed.segment, "device": speed.device,
                "seconds_per_step": round(speed.seconds_per_step, 4), "steps_per_sec": round(speed.steps_per_sec, 4),
                "clips_per_sec": round(speed.clips_per_sec, 3), "samples_per_sec": round(speed.samples_per_sec, 1),
                "peak_memory_mib": None if speed.peak_memory_mib is None else round(speed.peak_memory_mib),
                "gpu_busy_share": None if speed.gpu_busy_share is None else round(speed.gpu_busy_share, 3),
                "amp": speed.amp, "tf32": speed.tf32, "torch": torch.__version__,
            }
            if as_json:
                typer.echo(json.dumps(row))
            else:
                table.add_row(
                    cell(name), str(speed.batch_size), str(speed.segment), speed.device, f"{speed.seconds_per_step:.3f}",
                    f"{speed.steps_per_sec:.3f}", f"{speed.clips_per_sec:.2f}", f"{speed.samples_per_sec:,.0f}",
                    "-" if speed.peak_memory_mib is None else f"{speed.peak_memory_mib:,.0f}",
                    "-" if speed.gpu_busy_share is None else f"{speed.gpu_busy_share:.0%}",
                )
    if not as_json:
        err_console.print(fit(table, err_console))
