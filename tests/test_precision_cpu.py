"""bf16 synthesis on the CPU (issue 11's opt-in lower-precision path) and the precisions we refuse."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from tests.helpers import tiny_weights, tone
from vocoder_cli.cli.app import app
from vocoder_cli.errors import ConfigError
from vocoder_cli.inference import EngineOptions, Synthesizer, Vocoder, backend_for_precision, receptive_field_frames
from vocoder_cli.mel import MelConfig
from vocoder_cli.models import Generator, generator_preset
from vocoder_cli.streaming import StreamingResynthesizer


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
    assert backend_for_precision("auto", "bf16") == "torch" and backend_for_precision("auto", "fp32") == "auto"


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
