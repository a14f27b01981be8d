"""Synthesis backends: the same generator run by PyTorch (eager) or by ONNX Runtime.

:func:`choose_backend` is the one place that decides what ``--backend auto`` means.
"""

from __future__ import annotations

import importlib.util

from vocoder_cli.errors import ConfigError

BACKENDS = ("auto", "torch", "onnx")


def onnx_runtime_available() -> bool:
    """Whether onnxruntime is importable (the `onnx` extra), without importing it."""
    return importlib.util.find_spec("onnxruntime") is not None


def onnx_exporter_available() -> bool:
    """Whether the ``onnx`` package (needed to export, not to run) is importable."""
    return importlib.util.find_spec("onnx") is not None


def choose_backend(
    requested: str, device: str, *, exportable: bool = True, onnx_checked: bool | None = None
) -> str:
    """``torch`` or ``onnx`` for a ``--backend`` value on ``device``.

    ``auto`` picks ONNX Runtime on the CPU when it is installed, the model can be had as ONNX
    (``exportable``: an ONNX file exists or the exporter is installed) and, when known, the export
    passed the accuracy check against PyTorch (``onnx_checked``); everything else runs on torch. An
    explicit choice is returned as it is (the loader says why it cannot run, if it cannot).
    """
    if requested not in BACKENDS:
        raise ConfigError(f"unknown backend {requested!r}: choose {', '.join(BACKENDS)}")
    if requested != "auto":
        return requested
    if str(device).startswith("cpu") and onnx_runtime_available() and exportable and onnx_checked is not False:
        return "onnx"
    return "torch"
