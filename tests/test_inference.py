"""The batch synthesis engine: trimming, batching, chunking of long inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.helpers import TINY, tiny_generator
from vocoder_cli.errors import ConfigError
from vocoder_cli.mel import MelConfig
from vocoder_cli.models import Generator, generator_preset
from vocoder_cli.synthesis.engine import EngineOptions, Synthesizer
from vocoder_cli.synthesis.vocoder import Vocoder, receptive_field_frames


def make_vocoder(gen: Generator | None = None) -> Vocoder:
    gen = gen or tiny_generator()
    return Vocoder(gen, MelConfig(), "tiny", receptive_field_frames(gen.cfg) + 2)


def random_mels(lengths: list[int], seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(80, n, generator=g) * 2 - 6 for n in lengths]


@pytest.mark.parametrize(("preset", "precision"), [("tiny", "fp32"), ("v1", "fp32"), ("v2", "bf16")])
@pytest.mark.parametrize("layout", ["channels-last", "plain"])
def test_a_padded_batch_gives_each_item_its_own_output(preset: str, precision: str, layout: str) -> None:
    """Every layer's padded tail is zeroed (Generator.generate(lengths=...)), so an item's audio does not
    depend on its batch-mates, up to the last sample (before, the padding frames changed the last receptive
    field of every shorter item: up to 4% of peak with LJ_V1). Each output is exactly frames * hop long."""
    torch.manual_seed(0)
    vocoder = make_vocoder(tiny_generator() if preset == "tiny" else Generator(generator_preset(preset)).eval())
    options = {"precision": precision, "cpu_layout": layout}
    synth = Synthesizer(vocoder, options=EngineOptions(batch_size=8, **options))
    mels = random_mels([37, 60, 24, 5])
    assert list(synth.batches([m.shape[-1] for m in mels])) == [[3, 2, 0, 1]]  # one padded batch
    batched = synth.synthesize(mels)
    alone = [Synthesizer(vocoder, options=EngineOptions(batch_size=1, **options)).synthesize([m])[0] for m in mels]
    # float32 rounding (measured 5e-7 for V1; the tiny generator's inflated weights 5e-5, held to 1.5e-4 as
    # for chunking below); bf16 under autocast rounds a little differently per batch shape (measured 3.9e-4)
    bound = {"tiny": 1.5e-4, "v1": 1e-5}.get(preset, 2e-3)
    for mel, b, a in zip(mels, batched, alone):
        assert b.shape == a.shape == (mel.shape[-1] * 256,)  # exactly frames * hop: no padded tail
        assert np.abs(b - a).max() <= bound * np.abs(a).max(), (mel.shape, np.abs(b - a).max())


def test_models_that_cannot_zero_padding_are_batched_by_equal_length() -> None:
    """ONNX Runtime and Griffin-Lim run the padded batch as it is, so their batches hold equal lengths only
    (the torch generator batches similar lengths)."""
    vocoder = make_vocoder()
    lengths = [10, 12, 10, 12, 30]
    torch_groups = list(Synthesizer(vocoder, options=EngineOptions(batch_size=8)).batches(lengths))
    assert torch_groups == [[0, 2, 1, 3, 4]]
    onnx_like = Vocoder(vocoder.model, vocoder.mel, "tiny", vocoder.context_frames, backend="onnx")
    assert not Synthesizer(onnx_like).pads_exactly
    assert list(Synthesizer(onnx_like, options=EngineOptions(batch_size=8)).batches(lengths)) == [[0, 2], [1, 3], [4]]


def test_batches_group_similar_lengths_within_limits() -> None:
    synth = Synthesizer(make_vocoder(), options=EngineOptions(batch_size=3, max_batch_frames=400))
    lengths = [10, 200, 11, 12, 150, 13, 90]
    groups = list(synth.batches(lengths))
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    assert groups[0] == [0, 2, 3]  # the three shortest together
    for g in groups:
        assert len(g) <= 3 and len(g) * max(lengths[i] for i in g) <= 400 or len(g) == 1


# docs/resynth.md: chunked == one-shot up to float rounding, ~1e-7 on a real generator (V3, measured 9.7e-8).
# The tiny test generator's inflated weights (N(0, 0.2)) saturate its output, and its float32 rounding
# is larger (measured 9.8e-5): each is held to its own measured bound.
@pytest.mark.parametrize("name,bound", [("tiny", 1.5e-4), ("v3", 2e-7)])
def test_chunked_equals_one_shot(name: str, bound: float) -> None:
    gen = tiny_generator() if name == "tiny" else Generator(generator_preset("v3")).eval()
    vocoder = make_vocoder(gen)
    mel = random_mels([700])[0]
    one_shot = Synthesizer(vocoder, options=EngineOptions(chunk_frames=10_000)).synthesize([mel])[0]
    chunked = Synthesizer(vocoder, options=EngineOptions(chunk_frames=128)).synthesize([mel])[0]
    assert chunked.shape == one_shot.shape == (700 * 256,)
    err = np.abs(chunked - one_shot).max()
    assert err <= bound, err
    assert np.abs(one_shot).max() > 1e-3  # a real signal, not zeros


def test_long_input_runs_in_bounded_chunks() -> None:
    """Memory stays flat: the model never sees more than chunk + 2 * context frames."""
    vocoder = make_vocoder()
    seen: list[int] = []
    synth = Synthesizer(vocoder, options=EngineOptions(chunk_frames=256))
    assert synth.cpu_model is not None  # on the CPU the channels-last copy is what runs
    synth.model.register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[-1]))
    out = synth.synthesize(random_mels([5000]))[0]
    assert out.shape == (5000 * 256,)
    assert len(seen) == 20 and max(seen) <= 256 + 2 * vocoder.context_frames


def test_receptive_field_of_tiny_config() -> None:
    assert receptive_field_frames(TINY) >= 3


def test_precision_is_validated() -> None:
    with pytest.raises(ConfigError, match="precision"):
        Synthesizer(make_vocoder(), options=EngineOptions(precision="fp8"))
