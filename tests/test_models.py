"""HiFi-GAN models: official parameter counts, config checks, shapes, weight-norm folding."""

from __future__ import annotations

import pytest
import torch

from vocoder_cli.errors import ConfigError
from vocoder_cli.mel import MelConfig
from vocoder_cli.models import (
    Generator,
    GeneratorConfig,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
)
from vocoder_cli.models.config import configs_from_official, generator_preset
from vocoder_cli.synthesis.vocoder import receptive_field_frames


def n_params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize(("name", "count"), [("v1", 13_936_130), ("v2", 928_514), ("v3", 1_464_322)])
def test_generator_parameter_counts_equal_official(name: str, count: int) -> None:
    assert n_params(Generator(generator_preset(name)).apply_weight_norm()) == count


def test_discriminator_parameter_counts() -> None:
    assert n_params(MultiPeriodDiscriminator()) == 41_105_770  # ~41.1M
    assert n_params(MultiScaleDiscriminator()) == 29_618_821  # ~29.6M


def test_upsample_product_must_equal_hop() -> None:
    cfg = GeneratorConfig(upsample_rates=(8, 8, 2), upsample_kernel_sizes=(16, 16, 4))
    with pytest.raises(ConfigError, match="product of upsample_rates .* is 128, but the mel hop_length is 256"):
        cfg.check_mel(MelConfig())
    cfg.check_mel(MelConfig(hop_length=128))
    with pytest.raises(ConfigError, match="n_mels"):
        generator_preset("v1").check_mel(MelConfig(n_mels=100, fmax=8000.0))


def test_official_config_json_is_checked_at_load() -> None:
    official = {
        "resblock": "1", "upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4],
        "upsample_initial_channel": 512, "resblock_kernel_sizes": [3, 7, 11],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "num_mels": 80, "n_fft": 1024,
        "hop_size": 256, "win_size": 1024, "sampling_rate": 22050, "fmin": 0, "fmax": 8000,
    }
    gen, mel = configs_from_official(official)
    assert gen == generator_preset("v1") and mel == MelConfig()
    with pytest.raises(ConfigError, match="must be equal"):
        configs_from_official({**official, "hop_size": 300})


@pytest.mark.parametrize("name", ["v2", "v3"])
def test_generator_output_shape_and_range(name: str) -> None:
    gen = Generator(generator_preset(name)).eval()
    with torch.no_grad():
        out = gen(torch.randn(2, 80, 12))
    assert out.shape == (2, 1, 12 * 256)
    assert out.abs().max() <= 1.0
    with torch.no_grad():  # drive the last convolution to ~5: the final tanh bounds the waveform (tanh(5) = 0.9999)
        gen.conv_post.bias.fill_(5.0)
        loud = gen(torch.randn(1, 80, 12))
    assert 0.99 < loud.max() <= 1.0


def test_weight_norm_folding_preserves_the_function() -> None:
    torch.manual_seed(0)
    gen = Generator(generator_preset("v3")).apply_weight_norm().eval()
    mel = torch.randn(1, 80, 16)
    with torch.no_grad():
        before = gen(mel)
        gen.remove_weight_norm()
        after = gen(mel)
    assert not any("parametrizations" in k for k in gen.state_dict())
    torch.testing.assert_close(before, after, atol=1e-6, rtol=0)


def test_receptive_field_frames_of_the_official_architectures() -> None:
    """The context chunked and streamed synthesis keep (docs/performance.md): 15 frames for V1/V2, 12 for V3."""
    assert [receptive_field_frames(generator_preset(n)) for n in ("v1", "v2", "v3")] == [15, 15, 12]


@pytest.mark.parametrize("name", ["v1", "v3"])
def test_receptive_field_bound_covers_the_real_one(name: str) -> None:
    """Perturb one frame: no output sample further than the bound may change."""
    torch.manual_seed(0)
    cfg = generator_preset(name)
    gen = Generator(cfg).eval()
    mel = torch.randn(1, 80, 64)
    bumped = mel.clone()
    bumped[..., 32] += 3.0
    with torch.no_grad():
        changed = (gen(mel) - gen(bumped)).abs()[0, 0].nonzero().flatten()
    reach = max(32 * 256 - changed.min().item(), changed.max().item() - 33 * 256) / 256
    bound = receptive_field_frames(cfg)
    assert 5 < reach <= bound, (reach, bound)


def test_discriminators_return_scores_and_feature_maps() -> None:
    y, y_hat = torch.randn(2, 1, 4096), torch.randn(2, 1, 4096)
    for disc, n in ((MultiPeriodDiscriminator(), 5), (MultiScaleDiscriminator(), 3)):
        real, fake, fm_r, fm_g = disc(y, y_hat)
        assert len(real) == len(fake) == len(fm_r) == len(fm_g) == n
        assert all(r.shape[0] == 2 for r in real)
        assert [f.shape for f in fm_r[0]] == [f.shape for f in fm_g[0]]
