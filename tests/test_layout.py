"""The CPU engine's channels-last generator: the same function as the 1-d model, precision fixed once."""

from __future__ import annotations

import pytest
import torch

from vocoder_cli.mel import MelConfig
from vocoder_cli.models import Generator, generator_preset
from vocoder_cli.models.generator import FP32_TAIL_CHANNELS
from vocoder_cli.synthesis.engine import EngineOptions, Synthesizer
from vocoder_cli.synthesis.layout import ChannelsLastGenerator
from vocoder_cli.synthesis.precision import cpu_has_native_bf16
from vocoder_cli.synthesis.vocoder import Vocoder, receptive_field_frames


def _generator(variant: str, seed: int = 0) -> Generator:
    torch.manual_seed(seed)
    return Generator(generator_preset(variant)).eval()


def _mel(frames: int = 48, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(2, 80, frames, generator=gen) - 5.0


@pytest.mark.parametrize("variant", ["v1", "v2", "v3"])
def test_fp32_channels_last_is_the_same_function(variant: str) -> None:
    generator = _generator(variant)
    mel = _mel()
    with torch.inference_mode():
        ref = generator(mel)
        out = ChannelsLastGenerator(generator, "fp32")(mel)
    assert out.shape == ref.shape == (2, 1, 48 * 256) and out.dtype == torch.float32 and out.is_contiguous()
    assert float((out - ref).abs().max() / ref.abs().max()) < 1e-5  # float32 rounding of other kernels


def test_the_copy_leaves_the_original_alone_and_folds_weight_norm() -> None:
    generator = _generator("v3").apply_weight_norm()
    mel = _mel(16)
    with torch.inference_mode():
        ref = generator(mel)
        out = ChannelsLastGenerator(generator, "fp32")(mel)
    assert isinstance(generator.conv_pre, torch.nn.Conv1d)  # the 1-d model (ONNX export, training) is untouched
    assert float((out - ref).abs().max() / ref.abs().max()) < 1e-5


def test_fp32_tail_start_follows_the_channel_rule() -> None:
    """The stages that stay float32 under bf16: every stage with at most 16 output channels and those after it
    (conv_post, to one channel, always)."""
    assert FP32_TAIL_CHANNELS == 16
    assert _generator("v1").fp32_tail_start == 4  # 256, 128, 64, 32 channels: every stage in bf16
    assert _generator("v2").fp32_tail_start == 2  # 64, 32, 16, 8: the last two
    assert _generator("v3").fp32_tail_start == 3  # 128, 64, 32 (three stages): every stage in bf16


@pytest.mark.parametrize("variant", ["v1", "v2"])
def test_bf16_weights_are_cast_once_with_the_float32_tail(variant: str) -> None:
    generator = _generator(variant)
    model = ChannelsLastGenerator(generator, "bf16")
    net, start = model.net, generator.fp32_tail_start
    assert net.conv_pre.weight.dtype == torch.bfloat16 and net.conv_post.weight.dtype == torch.float32
    for i, up in enumerate(net.ups):
        assert up.weight.dtype == (torch.float32 if i >= start else torch.bfloat16)
        for block in net.resblocks[i * net.num_kernels : (i + 1) * net.num_kernels]:
            assert all(p.dtype == up.weight.dtype for p in block.parameters())
    assert net.conv_pre.weight.is_contiguous(memory_format=torch.channels_last)


def test_bf16_accuracy_against_fp32() -> None:
    """bf16 (native on AVX512-BF16/AMX, emulated elsewhere: same numbers, only slower) stays close to float32
    and the float32 tail brings it closer than autocast over every layer. Quality in PESQ: docs/performance.md."""
    generator = _generator("v2")
    mel = _mel(40)
    with torch.inference_mode():
        ref = generator(mel)
        out = ChannelsLastGenerator(generator, "bf16")(mel)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            all_bf16 = generator(mel).float()
    err, err_all = float((out - ref).abs().max()), float((all_bf16 - ref).abs().max())
    assert out.dtype == torch.float32 and 0 < err < err_all
    assert err / float(ref.abs().max()) < 0.05


def test_the_cpu_engine_runs_the_copy_and_other_devices_do_not() -> None:
    generator = _generator("v3")
    vocoder = Vocoder(generator, MelConfig(), "v3", receptive_field_frames(generator.cfg) + 2)
    synth = Synthesizer(vocoder, "cpu", EngineOptions(precision="bf16"))
    assert isinstance(synth.model, ChannelsLastGenerator) and synth.model.precision == "bf16"
    assert Synthesizer(vocoder, "cpu", EngineOptions(cpu_layout="plain")).model is generator
    with torch.inference_mode():
        mel = _mel(30)[0]
        plain = Synthesizer(vocoder, "cpu", EngineOptions(cpu_layout="plain")).synthesize([mel])[0]
        fast = Synthesizer(vocoder, "cpu").synthesize([mel])[0]
    assert fast.shape == plain.shape == (30 * 256,)
    assert abs(fast - plain).max() / abs(plain).max() < 1e-5


@pytest.mark.skipif(not cpu_has_native_bf16(), reason="needs a CPU with native bf16 (AVX512-BF16 or AMX): not here")
@pytest.mark.filterwarnings("ignore:TF32 acceleration on top of oneDNN")
def test_native_bf16_kernels_agree_with_pytorchs_own_bf16_convolution() -> None:
    """Where oneDNN has bf16 instructions the copy runs them (AMX tiles or AVX512-BF16 dot products); with
    oneDNN switched off PyTorch computes the same bf16 layers with its own kernels. Both stay within bf16's
    rounding of each other and of float32 (measured on an AMX Xeon: 0.6% of peak each)."""
    generator = _generator("v3")
    mel = _mel(24)
    model = ChannelsLastGenerator(generator, "bf16")
    with torch.inference_mode():
        native = model(mel)
        with torch.backends.mkldnn.flags(enabled=False):
            fallback = model(mel)
        ref = generator(mel)
    peak = float(ref.abs().max())
    assert float((native - fallback).abs().max()) / peak < 0.02
    assert float((native - ref).abs().max()) / peak < 0.02 and float((fallback - ref).abs().max()) / peak < 0.02
