"""`vocoder bench synth`: each backend against the official architecture, side by side, on real speech."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import torch
import typer
from rich.table import Table

from vocoder_cli.cli.common import (
    OFFLINE_HELP,
    err_console,
    fail,
    notify_pull,
    resolve_device,
    user_errors,
)
from vocoder_cli.cli.display import cell, line
from vocoder_cli.cli.tables import fit
from vocoder_cli.demo import speech_mel
from vocoder_cli.synthesis.backends.onnx import ACCURACY_BAR
from vocoder_cli.synthesis.bench import (
    REFERENCE,
    TORCH_BF16,
    SynthRow,
    auto_pick,
    backends_to_compare,
    compare_backends,
    load_average,
    machine_peak_gflops,
    preset_model,
    weights_model,
)
from vocoder_cli.weights.registry import DEFAULT_ALIAS


def _row_json(r: SynthRow, peak: float | None, extra: dict) -> dict:
    return {
        "model": r.model, "backend": r.backend, "parameters": r.parameters, "audio_seconds": round(r.audio_seconds, 4),
        "wall_seconds": round(r.wall_seconds, 6), "runs": [round(t, 6) for t in r.runs],
        "real_time_factor": round(r.real_time_factor, 6), "x_real_time": round(1 / r.real_time_factor, 3),
        "reference_seconds": round(r.reference_seconds, 6), "speedup_vs_reference": round(r.speedup, 4),
        "max_rel_error": r.max_rel_error, "within_bar": r.max_rel_error <= ACCURACY_BAR,
        "gflop": round(r.gflop, 3), "gflops_per_second": round(r.gflops_per_second, 2),
        "percent_of_peak": None if peak is None else round(100 * r.gflops_per_second / peak, 2), **extra,
    }


def bench_synth(
    models: Optional[str] = typer.Option(
        None, "--models", help="Comma-separated presets with random weights (e.g. v1,v2,v3) instead of --weights."
    ),
    weights: Optional[str] = typer.Option(
        None, "--weights", "-w",
        help="Comma-separated weights (names or .safetensors paths; default: the default weights, pulled on first use).",
    ),
    backend: str = typer.Option(
        "all", "--backend", help="Backends to compare with the reference: all (every one that runs here), or a "
        "comma-separated list of torch, onnx, torch-bf16 (bf16 autocast: opt-in, judged by PESQ, not the 1e-4 bar).",
    ),
    audio: Optional[Path] = typer.Option(
        None, "--audio", help="Speech to vocode: an audio file or folder (default: the bundled demo prompts)."
    ),
    offline: bool = typer.Option(False, "--offline", help=OFFLINE_HELP),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    seconds: float = typer.Option(10.0, "--seconds", min=0.05, help="Length of the test utterance."),
    batch: int = typer.Option(1, "--batch", min=1, help="Utterances per forward pass."),
    repeats: int = typer.Option(3, "--repeats", min=1, help="Timed runs of each, interleaved (median reported)."),
    precision: str = typer.Option("fp32", "--precision", help="Precision of the torch backend: fp32, fp16 (CUDA) or bf16 (the reference is fp32)."),
    threads: Optional[int] = typer.Option(None, "--threads", min=1, help="CPU threads (torch and ONNX Runtime)."),
    as_json: bool = typer.Option(False, "--json", help="JSON lines on stdout instead of a table."),
) -> None:
    """Each backend against the official architecture in plain eager PyTorch: time, real-time factor, speed-up
    and accuracy (max |out - reference| / max |reference|), on the mel of real speech."""
    if threads:
        torch.set_num_threads(threads)
    device = resolve_device(device)
    if models and weights:
        raise fail("give --models (random-weight presets) or --weights, not both")
    backends = backends_to_compare(backend, device)
    peaks: dict[str, tuple[float, str]] = {}
    if device == "cpu":
        peaks["fp32"] = machine_peak_gflops(torch.get_num_threads())
        if TORCH_BF16 in backends or precision == "bf16":
            peaks["bf16"] = machine_peak_gflops(torch.get_num_threads(), torch.bfloat16)
    rows: list[SynthRow] = []
    with user_errors():
        if models:
            specs = [preset_model(m.strip(), backends) for m in models.split(",") if m.strip()]
        else:
            specs = [weights_model(w.strip(), backends, device, offline=offline or None, notify=notify_pull)
                     for w in (weights or DEFAULT_ALIAS).split(",") if w.strip()]
        mel = speech_mel(specs[0].mel, seconds, audio)
        for spec in specs:
            spec_mel = mel if spec.mel == specs[0].mel else speech_mel(spec.mel, seconds, audio)
            rows += compare_backends(spec, spec_mel, device=device, batch=batch, repeats=repeats, precision=precision)
    load = load_average()
    extra = {"device": device, "batch": batch, "precision": precision, "threads": torch.get_num_threads(),
             "torch": torch.__version__, "load_average": load}
    chosen = {r.model: auto_pick(rows, r.model, device) for r in rows}
    def peak(r: SynthRow) -> float | None:
        """The GEMM rate of the row's precision: bf16 rows against the bf16 peak, the rest against fp32."""
        bf16 = r.backend == TORCH_BF16 or (precision == "bf16" and r.backend == "torch")
        return peaks.get("bf16" if bf16 else "fp32", (None, ""))[0]

    if as_json:
        for r in rows:
            typer.echo(json.dumps({**_row_json(r, peak(r), extra), "auto_picks": chosen[r.model] == r.backend,
                                   "peak_gflops": peak(r)}))
        return
    title = f"synthesis on {device}: {torch.get_num_threads()} threads, torch {torch.__version__}"
    table = Table(title=title)
    for col in ("model", "backend", "wall s", "RTF", "x ref", "rel err", "GFLOP/s", "% peak"):
        table.add_column(col, justify="left" if col in ("model", "backend") else "right", no_wrap=col != "model")
    for r in rows:
        err = "-" if r.backend == REFERENCE else f"{r.max_rel_error:.1e}" + ("" if r.max_rel_error <= ACCURACY_BAR else " !")
        table.add_row(cell(Path(r.model).name), r.backend + (" *" if chosen[r.model] == r.backend else ""), f"{r.wall_seconds:.3f}",
                      f"{r.real_time_factor:.3f}", f"{r.speedup:.2f}", err, f"{r.gflops_per_second:.1f}",
                      "-" if peak(r) is None else f"{100 * r.gflops_per_second / peak(r):.1f}")
    from rich.console import Console

    console = Console()
    console = console if console.is_terminal else Console(width=120)  # a file or pipe gets whole cells
    console.print(fit(table, console))
    notes = [f"reference = jik876/hifi-gan's generator in plain eager PyTorch, fp32, the same weights; "
             f"{rows[0].audio_seconds:.2f} s of real speech per pass; medians of {repeats} interleaved runs",
             f"x ref = reference s / backend s; rel err = max |out - reference| / max |reference|; "
             f"* = what --backend auto picks; ! = above the accuracy bar {ACCURACY_BAR:g}"]
    if any(r.backend == TORCH_BF16 for r in rows):
        notes.append("torch-bf16 = --precision bf16: opt-in, never picked by auto; its bar is PESQ within 0.02 "
                     "of fp32 (docs/performance.md), not the 1e-4 error")
    for name, (_, how) in peaks.items():
        notes.append(f"% peak ({name} rows) = of the {name} GEMM rate: {how}")
    if load is not None:
        notes.append(f"load average (1/5/15 min): {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for note in notes:  # wrapped at word boundaries to the terminal (no user text but the CPU's name)
        err_console.print(line((note, "dim")))

