"""bf16 synthesis on the CPU (issue 11's opt-in lower-precision path) and the precisions we refuse."""

from __future__ import annotations

import platform
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from tests.helpers import tiny_weights, tone
from vocoder_cli.cli.app import app
from vocoder_cli.errors import ConfigError
from vocoder_cli.mel import MelConfig
from vocoder_cli.models import Generator, generator_preset
from vocoder_cli.synthesis.engine import EngineOptions, Synthesizer
from vocoder_cli.synthesis.precision import (
    cpu_flags,
    cpu_has_native_bf16,
    precision_note,
    resolve_backend,
)
from vocoder_cli.synthesis.streaming import StreamingResynthesizer
from vocoder_cli.synthesis.vocoder import Vocoder, receptive_field_frames


def synth(precision: str) -> Synthesizer:
    torch.manual_seed(0)
    gen = Generator(generator_preset("v3")).eval()
    return Synthesizer(Vocoder(gen, MelConfig(), "v3", receptive_field_frames(gen.cfg) + 2),
                       options=EngineOptions(precision=precision))


def test_bf16_on_the_cpu_runs_the_convolutions_in_bf16() -> None:
    """Autocast on the CPU: the output is float32, close to fp32 but not equal (bf16 really ran)."""
    wav = tone(0.5, 22050)
    fp32, bf16 = synth("fp32"), synth("bf16")
    mel = fp32.mel(wav)
    a, b = fp32.synthesize([mel])[0], bf16.synthesize([mel])[0]
    assert b.dtype == np.float32 and a.shape == b.shape
    rel = np.abs(a - b).max() / np.abs(a).max()
    assert 1e-4 < rel < 0.1  # measured 1e-2 on V3; fp32 rounding alone is < 1e-6
    assert np.corrcoef(a, b)[0, 1] > 0.999


def test_cached_streaming_follows_the_engine_precision() -> None:
    """The streaming generator runs under the engine's autocast: bf16 streamed == bf16 offline closely."""
    engine = synth("bf16")
    wav = tone(0.4, 22050)
    offline = engine.synthesize([engine.mel(wav)])[0]
    resynth = StreamingResynthesizer(engine)
    out = np.concatenate([resynth.push(wav), resynth.finish()])
    assert out.shape == offline.shape
    assert np.abs(out - offline).max() / np.abs(offline).max() < 0.05  # both bf16, different roundings
    fp32 = synth("fp32")
    assert np.abs(out - fp32.synthesize([fp32.mel(wav)])[0]).max() > 0  # and not silently fp32


def test_refused_precisions_say_why() -> None:
    with pytest.raises(ConfigError, match="fp16 runs on CUDA only"):
        synth("fp16")
    with pytest.raises(ConfigError, match="fp32, fp16 or bf16"):
        synth("fp8")
    assert resolve_backend("auto", "bf16", "cpu") == "torch" and resolve_backend("auto", "fp32", "cpu") == "auto"
    assert resolve_backend("auto", "fp32", "cpu", streaming=True) == "torch"  # the cached streaming engine
    assert resolve_backend("onnx", "fp32", "cpu", streaming=True) == "onnx"  # an explicit choice stands
    with pytest.raises(ConfigError, match="needs --backend torch"):
        resolve_backend("onnx", "bf16", "cpu")


def test_resynth_cli_bf16_and_its_errors(tmp_path: Path) -> None:
    weights = tiny_weights(tmp_path / "tiny.safetensors")
    sf.write(tmp_path / "in.wav", tone(0.3, 22050), 22050)
    runner = CliRunner()
    ok = runner.invoke(app, ["resynth", str(tmp_path / "in.wav"), str(tmp_path / "out"), "-w", str(weights),
                             "--precision", "bf16", "--device", "cpu", "-q"])
    assert ok.exit_code == 0, ok.output
    out, sr = sf.read(tmp_path / "out" / "in.wav")
    assert sr == 22050 and out.size == 25 * 256  # 0.3 s = 6615 samples -> 25 frames
    fp16 = runner.invoke(app, ["resynth", str(tmp_path / "in.wav"), str(tmp_path / "o2"), "-w", str(weights),
                               "--precision", "fp16", "--device", "cpu", "-q"])
    assert fp16.exit_code == 2 and "fp16 runs on CUDA only" in fp16.output
    onnx = runner.invoke(app, ["resynth", str(tmp_path / "in.wav"), str(tmp_path / "o3"), "-w", str(weights),
                               "--precision", "bf16", "--backend", "onnx", "--device", "cpu", "-q"])
    assert onnx.exit_code == 2 and "needs --backend torch" in onnx.output
    assert not (tmp_path / "o2").exists() or not any((tmp_path / "o2").iterdir())


def test_fp32_tail_keeps_the_output_rate_stage_in_float32() -> None:
    """Without autocast the flag changes nothing; under bf16 it brings the output closer to fp32 (the stage
    at the output rate is where bf16 hurt LJ_V2's PESQ)."""
    torch.manual_seed(0)
    gen = Generator(generator_preset("v2")).eval()
    mel = torch.randn(1, 80, 40) - 5.0
    with torch.inference_mode():
        ref = gen(mel)
        assert torch.equal(gen.generate(mel, fp32_tail=True), ref)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            all_bf16, tail32 = gen(mel).float(), gen.generate(mel, fp32_tail=True)
    assert tail32.dtype == torch.float32
    err_all, err_tail = (all_bf16 - ref).abs().max(), (tail32 - ref).abs().max()
    assert 0 < err_tail < err_all


def test_bf16_needs_hifigan_weights(tmp_path: Path) -> None:
    sf.write(tmp_path / "in.wav", tone(0.3, 22050), 22050)
    result = CliRunner().invoke(app, ["resynth", str(tmp_path / "in.wav"), str(tmp_path / "out"), "-w", "griffin-lim",
                                      "--precision", "bf16", "--device", "cpu", "-q"])
    assert result.exit_code == 2 and "applies to HiFi-GAN weights" in result.output


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_fp32_on_cuda_means_full_float32_convolutions() -> None:
    """PyTorch runs CUDA fp32 convolutions in TF32 by default (on an H200 that moved LJ_V2's output by up to
    15% of peak); the engine's fp32 turns cuDNN's TF32 off around each call and restores the setting after.
    (The flag itself needs no GPU to set; tests/test_cuda.py runs the synthesis on one.)"""
    gen = Generator(generator_preset("v3"))
    vocoder = Vocoder(gen, MelConfig(), "v3", receptive_field_frames(gen.cfg) + 2)
    before = torch.backends.cudnn.allow_tf32
    with Synthesizer(vocoder, "cuda").autocast():
        assert torch.backends.cudnn.allow_tf32 is False
    assert torch.backends.cudnn.allow_tf32 == before
    bf16 = Synthesizer(vocoder, "cuda", EngineOptions(precision="bf16")).autocast()
    assert isinstance(bf16, torch.autocast) and bf16.fast_dtype == torch.bfloat16  # (not entered: no CUDA here)


def test_tts_takes_the_same_precision_option(tmp_path: Path) -> None:
    """`tts --precision` goes through the same checks as resynth, before any model is loaded."""
    weights = tiny_weights(tmp_path / "tiny.safetensors")
    result = CliRunner().invoke(app, ["tts", "Hello there.", "-o", str(tmp_path / "a.wav"), "-w", str(weights),
                                      "--precision", "fp16", "--device", "cpu", "-q"])
    assert result.exit_code == 2 and "fp16 runs on CUDA only" in result.output
    assert not (tmp_path / "a.wav").exists()


def test_bf16_on_a_cpu_without_native_bf16_is_announced_as_emulated() -> None:
    """The CLI prints this note (unless --quiet): emulated bf16 is slower than fp32, so say so up front."""
    note = precision_note("bf16", "cpu", native_bf16=False)
    assert note is not None and "emulated" in note and "slower than fp32" in note
    assert precision_note("bf16", "cpu", native_bf16=True) is None
    assert precision_note("bf16", "cuda", native_bf16=False) is None and precision_note("fp32", "cpu", False) is None


@pytest.mark.skipif(not cpu_flags(), reason="needs /proc/cpuinfo (Linux) to read the CPU's flags: not here")
@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 flags: not an x86 CPU here")
def test_native_bf16_means_the_instructions_not_onednns_emulation() -> None:
    """oneDNN calls every AVX-512 CPU bf16-capable and emulates bf16 where the instructions are missing
    (0.38x fp32 on an Ice Lake Xeon): only AVX512-BF16 or AMX count as native."""
    flags = cpu_flags()
    assert cpu_has_native_bf16() == bool(flags & {"avx512_bf16", "amx_bf16"}), sorted(flags & {"avx512f", "avx512_bf16", "amx_bf16"})
