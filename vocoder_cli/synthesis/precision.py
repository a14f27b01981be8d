"""Numeric precision of synthesis (fp32, bf16, fp16) and the backend it allows: checked before anything loads."""

from __future__ import annotations

import platform
from contextlib import AbstractContextManager

import torch

from vocoder_cli.errors import ConfigError


def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bf16 instructions for oneDNN's convolutions (AVX512-BF16 or AMX on x86);
    elsewhere bf16 is emulated and slower than fp32.

    oneDNN's own answer (``torch.ops.mkldnn._is_mkldnn_bf16_supported``) is true on any AVX-512 x86 CPU,
    where it emulates bf16: on an Ice Lake Xeon (AVX-512 and VNNI, no AVX512-BF16) bf16 HiFi-GAN V1 ran at
    0.38x fp32. So on x86 the instructions themselves are asked for; on other CPUs oneDNN's answer stands."""
    if not torch.backends.mkldnn.is_available():
        return False
    if platform.machine().lower() in ("x86_64", "amd64", "i386", "i686"):
        probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        if all(callable(probe) for probe in probes):
            return any(probe() for probe in probes)
        return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux reports them (``/proc/cpuinfo``); empty where there is none."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def precision_note(precision: str, device: str | torch.device, native_bf16: bool) -> str | None:
    """A warning worth printing for this precision here, or None: bf16 on a CPU without native bf16 runs
    emulated and is slower than fp32 (``native_bf16``: :func:`cpu_has_native_bf16`)."""
    if precision == "bf16" and torch.device(device).type == "cpu" and not native_bf16:
        return ("this CPU has no native bf16 (AVX512-BF16 or AMX): --precision bf16 is emulated here and likely "
                "slower than fp32 (vocoder bench synth --backend torch,torch-bf16 measures it)")
    return None


def check_precision(precision: str, device: torch.device, backend: str = "torch") -> None:
    """Refuse a precision this device/backend cannot run, with the reason (ConfigError)."""
    if precision not in ("fp32", "fp16", "bf16"):
        raise ConfigError(f"--precision must be fp32, fp16 or bf16, not {precision!r}")
    if precision == "fp32":
        return
    if backend != "torch":
        raise ConfigError(f"--precision {precision} needs --backend torch (the {backend} backend runs fp32)")
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("--precision fp16 runs on CUDA only; on the CPU use bf16")


def true_fp32() -> AbstractContextManager:
    """cuDNN convolutions in full float32 (TF32 off), every other cuDNN setting as it is."""
    cudnn = torch.backends.cudnn
    return cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic,
                       allow_tf32=False)


def resolve_backend(backend: str, precision: str, device: str | torch.device, streaming: bool = False) -> str:
    """The backend to load for ``--backend`` at ``--precision``, checked before anything is loaded or
    exported. ``auto`` means torch with a lower precision (ONNX Runtime runs our exports in fp32) and when
    streaming (the cached-layer-state engine needs the torch generator; ONNX would re-run every chunk with
    its context: V1 streamed at RTF 2.69 on ONNX against 0.43 cached, docs/performance.md)."""
    backend = "torch" if backend == "auto" and (precision != "fp32" or streaming) else backend
    check_precision(precision, torch.device(device), "torch" if backend == "auto" else backend)
    return backend
