"""Shared CLI plumbing: the stderr console, progress bars, error rendering and exit codes.

stdout stays clean for pipes (audio or tables a user asked for); everything else goes to stderr.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from vocoder_cli.cli.display import say
from vocoder_cli.errors import VocoderError

# Exit codes: 0 all good, 1 some inputs failed (batch went on), 2 usage/config error.
EXIT_PARTIAL_FAILURE = 1
EXIT_USAGE = 2

err_console = Console(stderr=True, highlight=False)


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print one red line to stderr and return the Exit to raise."""
    say(err_console, ("error:", "bold red"), " ", message)
    return typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn core errors into one clear line and exit code 2 (no traceback for a user mistake)."""
    try:
        yield
    except VocoderError as exc:
        raise fail(str(exc)) from None


def progress_bar(quiet: bool = False, transient: bool = False) -> Progress:
    """A Rich progress bar on stderr; silent when stderr is not a terminal or with --quiet."""
    disabled = quiet or not err_console.is_terminal
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=disabled,
        transient=transient,
    )


def download_bar(quiet: bool = False) -> Progress:
    """A bytes / speed / ETA progress bar on stderr for downloads; silent when not a terminal."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        disable=quiet or not err_console.is_terminal,
    )


WEIGHTS_HELP = (
    "Vocoder weights: a name (`vocoder weights list`; default = hifigan-universal-v1, pulled on first use), "
    "a .safetensors or exported .onnx path, or griffin-lim (no weights)."
)
BACKEND_HELP = (
    "What runs the generator: torch, onnx (ONNX Runtime, CPU; safetensors weights are exported once to a "
    "cached .onnx), or auto (on the CPU with onnxruntime installed and the export within its accuracy check: "
    "the faster of torch and onnx for these weights on this machine, timed once and remembered; else torch)."
)
PRECISION_HELP = (
    "fp32, bf16 (on CUDA, or on a CPU with native bf16: AVX512-BF16/AMX; opt-in, see "
    "docs/performance.md for its quality cost) or fp16 (CUDA only)."
)
SKIP_EXISTING_HELP = "Keep outputs that already exist and do only what is missing (resume)."
OVERWRITE_HELP = "Replace output files that already exist (by default they are refused and left as they are)."
FLOAT_HELP = "Write 32-bit float samples instead of 16-bit PCM (WAV, AIFF, AU, CAF, W64)."
OFFLINE_HELP = "Never download: weights missing from the cache are an error (also VOCODER_OFFLINE=1)."


def notify_pull(message: str) -> None:
    """The one stderr line printed before weights are fetched on first use (or exported, or timed)."""
    say(err_console, message, style="bold")


def notifier(quiet: bool) -> Callable[[str], None] | None:
    """Where one-time notes go (weights pulled, exported to ONNX, ``--backend auto`` timing): stderr, or
    nowhere with ``--quiet``."""
    return None if quiet else notify_pull


def engine_backend(backend: str, precision: str, device: str, quiet: bool, streaming: bool = False) -> str:
    """``--backend`` as :func:`vocoder_cli.synthesis.precision.resolve_backend` resolves it for ``--precision`` (a
    usage error raises before anything loads), with its note printed unless ``quiet``."""
    from vocoder_cli.synthesis.precision import (
        cpu_has_native_bf16,
        precision_note,
        resolve_backend,
    )

    backend = resolve_backend(backend, precision, device, streaming=streaming)
    note = precision_note(precision, device, cpu_has_native_bf16())
    if note and not quiet:
        err_console.print(f"[yellow]note[/] {note}", soft_wrap=True)
    return backend


def resolve_device(device: str) -> str:
    """``auto`` -> cuda when available, else cpu; an explicit ``cuda`` without a GPU is an error."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise fail("--device cuda was requested but no CUDA GPU is available (use --device cpu)")
    return device


