"""Synthesis speed and accuracy of each backend against the official architecture (`vocoder bench synth`).

For one generator (a preset with random weights, or real weights) the same mel of real speech runs
through the reference, jik876/hifi-gan's generator in plain eager PyTorch
(:mod:`vocoder_cli.bench_reference`), and through each backend as `resynth` runs it (the
:class:`~vocoder_cli.synthesis.engine.Synthesizer` engine). Timed runs are interleaved round robin, so a change
in machine load hits every candidate alike; medians are reported with every run. Accuracy is
max |out - reference| / max |reference| (the bar is 1e-4).
"""

from __future__ import annotations

import copy
import os
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vocoder_cli.errors import ConfigError, WeightsError
from vocoder_cli.mel import MelConfig
from vocoder_cli.models import Generator, generator_preset
from vocoder_cli.synthesis.backends import (
    choose_backend,
    onnx_exporter_available,
    onnx_runtime_available,
)
from vocoder_cli.synthesis.backends.onnx import ACCURACY_BAR
from vocoder_cli.synthesis.backends.tune import pick
from vocoder_cli.synthesis.engine import EngineOptions, Synthesizer
from vocoder_cli.synthesis.precision import cpu_has_native_bf16
from vocoder_cli.synthesis.reference import reference_for
from vocoder_cli.synthesis.vocoder import Vocoder, receptive_field_frames

REFERENCE = "reference"
TORCH_BF16 = "torch-bf16"  # torch under bf16 autocast: the opt-in lower-precision path, timed beside the rest


@dataclass(frozen=True)
class SynthRow:
    """One candidate (the reference or a backend) on one model."""

    model: str
    backend: str  # reference | torch | onnx | torch-bf16
    parameters: int
    audio_seconds: float  # summed over the batch
    wall_seconds: float  # median of the timed runs
    runs: tuple[float, ...]
    reference_seconds: float  # the reference's median, from the same interleaved rounds
    max_rel_error: float  # max |out - reference| / max |reference|
    gflop: float  # per pass, counted on the reference

    @property
    def real_time_factor(self) -> float:
        return self.wall_seconds / self.audio_seconds

    @property
    def speedup(self) -> float:
        """How many times faster than the reference (reference seconds / these seconds)."""
        return self.reference_seconds / self.wall_seconds

    @property
    def gflops_per_second(self) -> float:
        return self.gflop / self.wall_seconds


@dataclass
class BenchModel:
    """A generator to compare: our torch module (the reference gets its weights) and each backend."""

    name: str
    generator: Generator
    mel: MelConfig
    backends: dict[str, Vocoder]


def machine_peak_gflops(threads: int, dtype: torch.dtype = torch.float32) -> tuple[float, str]:
    """The practical peak for ``dtype``: the best of a few 2048 x 2048 matrix products (MKL/oneDNN GEMM, the
    fastest kernel torch has; bf16 runs AMX tiles or AVX512-BF16 where the CPU has them), with the nominal
    fp32 estimate from /proc/cpuinfo for comparison, and a sentence saying how it was reckoned. Measured,
    because the nominal figure misleads: an AVX-512 flag does not say whether the core has 512-bit FMA units
    (AMD Zen 4 splits them in two), and nothing in /proc/cpuinfo gives an AMX tile rate."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    mhz = [float(m) for m in re.findall(r"cpu MHz\s*:\s*([\d.]+)", info)] or [2000.0]
    flags_line = re.search(r"flags\s*:(.*)", info)
    flags = set(flags_line.group(1).split()) if flags_line else set()
    per_cycle = 64 if "avx512f" in flags else 32 if {"avx2", "fma"} <= flags else 16
    model = (re.findall(r"model name\s*:\s*(.*)", info) or ["unknown CPU"])[0].strip()
    nominal = threads * per_cycle * mhz[0] / 1000
    measured = gemm_gflops(threads, dtype=dtype)
    name = "bf16" if dtype == torch.bfloat16 else "fp32"
    return measured, (f"{model}: {name} GEMM (2048^3, {threads} threads) measured {measured:.0f} GFLOP/s"
                      + (f"; nominal fp32 {threads} x {per_cycle} FLOP/cycle x {mhz[0] / 1000:.2f} GHz = {nominal:.0f}"
                         if name == "fp32" else ""))


def gemm_gflops(threads: int, n: int = 2048, repeats: int = 10, dtype: torch.dtype = torch.float32) -> float:
    """Best GFLOP/s of ``repeats`` n x n matrix products in ``dtype`` on ``threads`` threads (~1 s). The best,
    not the median: on a shared VM single products vary by 15% (neighbours, clocks), and the peak is the
    ceiling."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        a @ b, a @ b  # warm-up (clocks, threads, allocator)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
        return 2 * n**3 / best / 1e9
    finally:
        torch.set_num_threads(before)


def load_average() -> tuple[float, float, float] | None:
    """The 1/5/15-minute load average (None where the OS has none): say how busy the machine was."""
    try:
        return tuple(round(x, 2) for x in os.getloadavg())  # type: ignore[return-value]
    except OSError:
        return None


def count_gflop(model: nn.Module, mel: torch.Tensor) -> float:
    """GFLOP of one forward pass, counted on meta tensors (no arithmetic is done)."""
    from torch.utils.flop_counter import FlopCounterMode

    meta = copy.deepcopy(model).to("meta")
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        meta(mel.to("meta"))
    return counter.get_total_flops() / 1e9


def preset_model(name: str, backends: Sequence[str], mel: MelConfig | None = None) -> BenchModel:
    """A preset (v1, v2, v3) with PyTorch's default init (seed 0): speed does not depend on the weights'
    values (accuracy does a little; real weights give the figure that counts)."""
    mel = mel or MelConfig()
    cfg = generator_preset(name)
    torch.manual_seed(0)
    generator = Generator(cfg).eval()
    vocoders: dict[str, Vocoder] = {}
    for backend in backends:
        if backend in ("torch", TORCH_BF16):
            vocoders[backend] = Vocoder(generator, mel, name, receptive_field_frames(cfg) + 2)
        elif backend == "onnx":
            vocoders[backend] = _temporary_onnx(generator, mel, name)
        else:
            raise ConfigError(f"unknown backend {backend!r}: torch, onnx or {TORCH_BF16}")
    return BenchModel(name, generator, mel, vocoders)


def _temporary_onnx(generator: Generator, mel: MelConfig, name: str) -> Vocoder:
    from vocoder_cli.synthesis.backends.onnx import export_onnx, load_onnx

    with tempfile.TemporaryDirectory(prefix="vocoder-bench-") as tmp:
        export_onnx(generator, mel, Path(tmp) / f"{name}.onnx")
        loaded = load_onnx(Path(tmp) / f"{name}.onnx")  # the session holds the model in memory
    return Vocoder(loaded.generator, mel, name, receptive_field_frames(loaded.config) + 2, backend="onnx")


def weights_model(
    weights: str,
    backends: Sequence[str],
    device: str = "cpu",
    *,
    offline: bool | None = None,
    notify: Callable[[str], None] | None = None,
) -> BenchModel:
    """Real weights (a name or a ``.safetensors`` path): the reference needs the torch weights, so an
    exported ``.onnx`` file cannot be compared here."""
    from vocoder_cli.synthesis.backends.onnx import is_onnx_path
    from vocoder_cli.synthesis.vocoder import load_vocoder
    from vocoder_cli.weights.format import load_generator
    from vocoder_cli.weights.resolve import ensure_weights

    path = ensure_weights(weights, offline=offline, notify=notify)
    if is_onnx_path(path):
        raise WeightsError(f"{path}: bench synth compares against the official architecture in PyTorch, so it "
                           "needs the .safetensors weights (or a name), not an exported .onnx")
    loaded = load_generator(path, "cpu")
    loads = {b: "torch" if b == TORCH_BF16 else b for b in backends}  # torch-bf16 runs the torch model
    loaded_by = {k: load_vocoder(weights, device, offline=offline, notify=notify, backend=k) for k in set(loads.values())}
    vocoders = {b: loaded_by[k] for b, k in loads.items()}
    label = next(iter(vocoders.values())).name if vocoders else weights
    return BenchModel(label, loaded.generator.eval(), loaded.mel, vocoders)


def backends_to_compare(requested: str, device: str) -> list[str]:
    """``all`` means every backend that can run here; otherwise the comma-separated list as given (``auto``
    becomes the backend it picks here)."""
    if requested != "all":
        listed = [b.strip() for b in requested.split(",") if b.strip()]
        picked = [b if b == TORCH_BF16 else choose_backend(b, device, exportable=onnx_exporter_available())
                  for b in listed]
        return list(dict.fromkeys(picked))
    onnx = device == "cpu" and onnx_runtime_available() and onnx_exporter_available()
    bf16 = device.startswith("cuda") or cpu_has_native_bf16()  # emulated bf16 is slower than fp32: not offered
    return ["torch"] + (["onnx"] if onnx else []) + ([TORCH_BF16] if bf16 else [])


def _precision_of(backend: str, precision: str) -> str:
    """``torch-bf16`` is torch at bf16; ``--precision`` applies to torch; ONNX Runtime runs fp32."""
    return "bf16" if backend == TORCH_BF16 else precision if backend == "torch" else "fp32"


def compare_backends(
    model: BenchModel,
    mel: torch.Tensor,
    *,
    device: str = "cpu",
    batch: int = 1,
    repeats: int = 3,
    precision: str = "fp32",
) -> list[SynthRow]:
    """Time the reference and every backend of ``model`` on ``mel`` [n_mels, frames] (``batch`` copies),
    interleaved round robin after one untimed warm-up each; rows in order, the reference first."""
    reference = reference_for(model.generator).to(device)
    batched = mel[None].expand(batch, -1, -1).contiguous()

    def run_reference() -> np.ndarray:
        with torch.inference_mode():
            return reference(batched.to(device))[:, 0].float().cpu().numpy()

    runners: dict[str, Callable[[], np.ndarray]] = {REFERENCE: run_reference}
    for backend, vocoder in model.backends.items():
        vocoder.model.to(device)
        synth = Synthesizer(vocoder, device, EngineOptions(batch_size=batch, precision=_precision_of(backend, precision)))
        runners[backend] = lambda synth=synth: np.stack(synth.synthesize([mel] * batch))
    outputs = {name: run() for name, run in runners.items()}  # warm-up, and the outputs compared
    times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(repeats):
        for name, run in runners.items():
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            run()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    ref_out, ref_time = outputs[REFERENCE], statistics.median(times[REFERENCE])
    scale = max(float(np.max(np.abs(ref_out))), 1e-12)
    gflop = count_gflop(reference.cpu(), batched)
    params = sum(p.numel() for p in model.generator.parameters())
    audio = batch * mel.shape[-1] * model.mel.hop_length / model.mel.sample_rate
    return [
        SynthRow(model.name, name, params, audio, statistics.median(t), tuple(t), ref_time,
                 float(np.max(np.abs(outputs[name] - ref_out))) / scale, gflop)
        for name, t in times.items()
    ]


def auto_pick(rows: list[SynthRow], model: str, device: str) -> str:
    """The backend ``--backend auto`` would run for this model given these measurements: where ONNX Runtime
    is a candidate (CPU, installed, within the accuracy bar), the faster of torch and onnx here, as the
    loader's own timing decides (:func:`vocoder_cli.synthesis.backends.tune.pick`: ONNX only when clearly faster); else torch."""
    mine = {r.backend: r for r in rows if r.model == model and r.backend in ("torch", "onnx")}
    checked = None if "onnx" not in mine else mine["onnx"].max_rel_error <= ACCURACY_BAR
    if choose_backend("auto", device, exportable=onnx_exporter_available(), onnx_checked=checked) == "torch":
        return "torch"
    if len(mine) < 2:
        return "onnx"
    return pick({name: r.wall_seconds for name, r in mine.items()})
