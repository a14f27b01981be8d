"""`vocoder train`: HiFi-GAN training (new run, resume, fine-tune), with a live display.

Also what ``torchrun --nproc_per_node N -m vocoder_cli train ...`` runs: every rank trains, rank 0
logs, validates, checkpoints and renders.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import typer
from rich.live import Live
from rich.table import Table

from vocoder_cli.cli.common import (
    err_console,
    fail,
    notify_pull,
    resolve_device,
    user_errors,
)
from vocoder_cli.cli.display import say
from vocoder_cli.errors import WeightsError
from vocoder_cli.training import checkpoint as ckpt
from vocoder_cli.training.init_from import init_path
from vocoder_cli.training.trainer import (
    TrainEvent,
    finished_message,
    finished_step,
    resolve_config,
)
from vocoder_cli.training.trainer import train as run_training

_SHOWN = ("loss/g", "loss/d", "loss/mel_l1", "loss/g_fm", "loss/g_adv")


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return time.strftime("%H:%M:%S", time.gmtime(seconds)) if seconds < 86400 else f"{seconds / 86400:.1f} d"


class _Display:
    """Rich live table on a terminal; one plain line per log interval otherwise (files, CI, torchrun)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.live = Live(console=err_console, auto_refresh=False) if err_console.is_terminal and not quiet else None
        self.last: TrainEvent | None = None
        self.val: dict[str, float] = {}

    def __enter__(self) -> "_Display":
        if self.live:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.live.__exit__(*exc)

    def _table(self) -> Table:
        table = Table(show_header=True, header_style="bold", box=None)
        for col in ("step", "epoch", "steps/s", *(k.split("/")[-1] for k in _SHOWN), "val mel L1", "ETA"):
            table.add_column(col, justify="right")
        e = self.last
        if e is not None:
            table.add_row(
                str(e.step), str(e.epoch), f"{e.steps_per_sec:.2f}",
                *(f"{e.scalars.get(k, float('nan')):.3f}" for k in _SHOWN),
                f"{self.val['val/mel_l1']:.4f}" if "val/mel_l1" in self.val else "-",
                _fmt_eta(e.eta_s),
            )
        return table

    def __call__(self, event: TrainEvent) -> None:
        if event.kind == "step":
            self.last = event
        elif event.kind == "val":
            self.val = event.scalars
        if self.live is not None:
            if event.kind in ("note", "checkpoint", "end"):
                say(self.live.console, (event.kind, "dim"), f" step {event.step}: ", event.message)
            self.live.update(self._table(), refresh=True)
            return
        if self.quiet and event.kind not in ("note", "end"):
            return
        if event.kind == "step":
            losses = " ".join(f"{k.split('/')[-1]}={event.scalars[k]:.4f}" for k in _SHOWN if k in event.scalars)
            say(err_console, f"step {event.step} epoch {event.epoch} {event.steps_per_sec:.2f} steps/s {losses} "
                f"eta {_fmt_eta(event.eta_s)}")
        elif event.kind == "val":
            vals = " ".join(f"{k}={v:.4f}" for k, v in event.scalars.items())
            say(err_console, f"validation step {event.step}: {vals}")
        else:
            say(err_console, f"{event.kind} step {event.step}: ", event.message)


def train(
    run: Path = typer.Option(
        ..., "--run", "--run-dir",
        help="Run folder: checkpoints, logs, config.json; resumes when it has checkpoints. Under torchrun write "
        "--run-dir (torchrun's own parser mistakes --run for its --run-path).",
    ),
    config: str | None = typer.Option(None, "--config", "-c", help="v1, v2, v3, our config.json, or an official HiFi-GAN config.json."),
    data: Path | None = typer.Option(None, "--data", help="A folder made by `vocoder prepare` (train.jsonl, val.jsonl)."),
    batch_size: int | None = typer.Option(
        None, "--batch-size",
        help="Segments per step, global: under torchrun each of N processes takes batch/N, as the official code (16).",
    ),
    segment: int | None = typer.Option(None, "--segment", help="Segment length in samples (8192)."),
    lr: float | None = typer.Option(None, "--lr", help="AdamW learning rate (2e-4)."),
    max_steps: int | None = typer.Option(None, "--max-steps", help="Stop at this global step (0: no limit)."),
    max_minutes: float | None = typer.Option(None, "--max-minutes", help="Stop after this many minutes of this invocation."),
    init_from: str | None = typer.Option(
        None, "--init-from",
        help="Start from these generator weights (fine-tuning): a weights name (`vocoder weights list`, pulled on "
        "first use), our .safetensors, or an official g_XXXXXXXX; a do_XXXXXXXX beside it restores the "
        "discriminators, both optimisers, the step and the decayed lr. Not read when --run has checkpoints.",
    ),
    reset_optimizer: bool | None = typer.Option(
        None, "--reset-optimizer/--keep-optimizer",
        help="With --init-from and a do_ file: keep the weights but start fresh optimisers at step 0 and --lr.",
    ),
    gta_mels: Path | None = typer.Option(None, "--gta-mels", help="Folder of <clip>.npy acoustic-model mels (GTA fine-tuning)."),
    overrides: list[str] = typer.Option([], "--set", help="Any config value: key=value, generator.x=..., mel.x=... (repeatable)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N (torchrun picks cuda:LOCAL_RANK)."),
    compile_: bool | None = typer.Option(None, "--compile/--no-compile", help="torch.compile the networks."),
    data_on_device: str | None = typer.Option(None, "--data-on-device", help="auto (when it fits), on, off."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only notes and the final line."),
) -> None:
    """Train HiFi-GAN (LSGAN over MPD+MSD, feature matching x2, mel L1 x45, AdamW 2e-4, decay 0.999/epoch)."""
    rank = int(os.environ.get("RANK", "0"))
    with user_errors():
        if init_from is not None and ckpt.latest_checkpoint(run) is not None:
            if rank == 0:
                say(err_console, ("note", "yellow"), " ", str(run), " has checkpoints: resuming it; --init-from is "
                    "not used")
            init_from = None
        cfg = resolve_config(
            run, config, overrides,
            data=str(data.resolve()) if data else None,
            batch_size=batch_size, segment=segment, lr=lr, max_steps=max_steps, max_minutes=max_minutes,
            init_from=_init_from(init_from) if init_from else None,
            gta_mels=str(gta_mels.resolve()) if gta_mels else None,
            compile=compile_, data_on_device=data_on_device, reset_optimizer=reset_optimizer,
        )
        done = finished_step(run, cfg)
        if done is not None:  # resuming would stop at once: say so, and how to go on
            if rank == 0:
                say(err_console, ("note", "yellow"), " ", finished_message(run, done, cfg.max_steps))
            raise typer.Exit(0)
        dev = resolve_device(device)
        if dev.startswith("cuda") and "LOCAL_RANK" in os.environ:
            dev = f"cuda:{os.environ['LOCAL_RANK']}"
        stop = {"requested": False}

        def on_sigint(signum: int, frame: object) -> None:
            if stop["requested"]:
                raise KeyboardInterrupt
            stop["requested"] = True
            say(err_console, ("stopping after this step (checkpoint first); Ctrl-C again to abort", "yellow"))

        previous = signal.signal(signal.SIGINT, on_sigint)
        try:
            with _Display(quiet or rank != 0) as display:
                outcome = run_training(
                    cfg, run, device=dev, on_event=display if rank == 0 else None,
                    stop_requested=lambda: stop["requested"],
                )
        finally:
            signal.signal(signal.SIGINT, previous)
    if rank == 0:
        best = f", best val mel L1 {outcome.best_val_mel_l1:.4f}" if outcome.best_val_mel_l1 is not None else ""
        say(err_console, ("stopped", "green"), f" at step {outcome.step} (epoch {outcome.epoch}, {outcome.reason}); "
            "checkpoint ", str(outcome.checkpoint), best)


def _init_from(spec: str) -> str:
    """``--init-from`` as a file: a path as given, or a weights name resolved as ``--weights`` resolves it:
    a registered name is pulled on first use (under torchrun only from the cache: N processes must not
    download the same file at once; the error says to run `vocoder weights pull NAME` first)."""
    from vocoder_cli.weights.resolve import ensure_weights

    single = int(os.environ.get("WORLD_SIZE", "1")) <= 1
    try:
        if single and not Path(spec).expanduser().is_file() and spec.strip().lower() != "griffin-lim":
            spec = str(ensure_weights(spec, notify=notify_pull))
    except WeightsError as exc:
        reason = str(exc).removeprefix(f"{spec}: ")  # "PATH: no such weights file" names it once
        raise fail(f"--init-from {spec}: {reason}") from None
    return str(init_path(spec).resolve())
