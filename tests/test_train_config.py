"""TrainConfig (presets, --set, official config.json), the losses, and the segment sources."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vocoder_cli.data.segments import (
    BatchPlanner,
    DeviceSegments,
    LoaderSegments,
    segment_starts,
)
from vocoder_cli.errors import ConfigError
from vocoder_cli.training.config import TrainConfig, apply_overrides, load_config
from vocoder_cli.training.losses import (
    discriminator_loss,
    feature_loss,
    generator_loss,
    mel_l1,
)


def test_presets_carry_the_paper_recipe() -> None:
    cfg = load_config("v1")
    assert (cfg.segment, cfg.batch_size, cfg.lr, cfg.beta1, cfg.beta2, cfg.lr_decay) == (8192, 16, 2e-4, 0.8, 0.99, 0.999)
    assert (cfg.lambda_fm, cfg.lambda_mel) == (2.0, 45.0)
    assert cfg.loss_mel.f_max == 11025 and cfg.mel.f_max == 8000
    assert load_config("v2").generator.upsample_initial_channel == 128
    assert load_config("V3").generator.resblock == "2"


def test_set_overrides_convert_types_and_reach_nested_configs() -> None:
    cfg = apply_overrides(
        load_config("v1"),
        ["lr=1e-3", "batch_size=4", "compile=true", "mpd_periods=[2,3]", "mel.fmax=none",
         "generator=v2", "data_on_device=off"],
    )
    assert cfg.lr == 1e-3 and cfg.batch_size == 4 and cfg.compile is True and cfg.mpd_periods == (2, 3)
    assert cfg.mel.fmax is None and cfg.generator.upsample_initial_channel == 128 and cfg.preset == "v2"
    with pytest.raises(ConfigError, match="unknown key"):
        apply_overrides(cfg, ["learning_rate=1"])
    with pytest.raises(ConfigError, match="cannot read as int"):
        apply_overrides(cfg, ["batch_size=many"])
    with pytest.raises(ConfigError, match="key=value"):
        apply_overrides(cfg, ["batch_size"])
    with pytest.raises(ConfigError, match="hop_length is 128"):  # the generator's upsampling must equal the hop
        apply_overrides(cfg, ["mel.hop_length=128"])


def test_saved_config_round_trips(tmp_path: Path) -> None:
    cfg = apply_overrides(load_config("v3"), ["segment=4096", "mel=hifigan-16k"])
    cfg.save(tmp_path)
    again = TrainConfig.from_dict(json.loads((tmp_path / "config.json").read_text()))
    assert again == cfg and again.mel.sample_rate == 16000


def test_official_config_json_is_mapped(tmp_path: Path) -> None:
    official = {
        "resblock": "1", "num_gpus": 0, "batch_size": 24, "learning_rate": 0.0002, "adam_b1": 0.8, "adam_b2": 0.99,
        "lr_decay": 0.999, "seed": 1234, "upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4],
        "upsample_initial_channel": 512, "resblock_kernel_sizes": [3, 7, 11],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "segment_size": 8192, "num_mels": 80,
        "num_freq": 1025, "n_fft": 1024, "hop_size": 256, "win_size": 1024, "sampling_rate": 22050, "fmin": 0,
        "fmax": 8000, "fmax_for_loss": None,
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(official))
    cfg = load_config(str(path))
    assert cfg.batch_size == 24 and cfg.generator == load_config("v1").generator and cfg.mel == load_config("v1").mel
    with pytest.raises(ConfigError, match="neither a preset"):
        load_config(str(tmp_path / "missing.json"))


def test_losses_match_their_definitions() -> None:
    ones, zeros = [torch.ones(2, 5)], [torch.zeros(2, 5)]
    assert float(discriminator_loss(ones, zeros)) == 0.0  # perfect discriminator
    assert float(discriminator_loss(zeros, ones)) == 2.0  # (1-0)^2 + 1^2
    assert float(generator_loss(ones)) == 0.0 and float(generator_loss([torch.full((3,), 0.5)] * 2)) == 0.5
    real = [[torch.ones(2, 3), torch.zeros(4)], [torch.ones(5)]]
    fake = [[torch.zeros(2, 3), torch.zeros(4)], [torch.full((5,), 3.0)]]
    assert float(feature_loss(real, fake)) == pytest.approx(1.0 + 0.0 + 2.0)
    assert float(mel_l1(torch.zeros(1, 2, 3), torch.ones(1, 2, 3))) == 1.0


def test_planner_is_deterministic_and_covers_every_clip() -> None:
    a, b = BatchPlanner(7, 3, seed=11), BatchPlanner(7, 3, seed=11)
    assert a.steps_per_epoch == 3
    for index in range(3):
        ca, fa = a.plan(2, index)
        cb, fb = b.plan(2, index)
        assert torch.equal(ca, cb) and torch.equal(fa, fb)
    first_seven = torch.cat([a.plan(0, i)[0] for i in range(3)])[:7]
    assert sorted(first_seven.tolist()) == list(range(7))
    assert not torch.equal(a.plan(0, 0)[0], a.plan(1, 0)[0]) or not torch.equal(a.plan(0, 0)[1], a.plan(1, 0)[1])


def test_segment_starts_cover_the_whole_valid_range() -> None:
    fr = torch.tensor([0.0, 0.999999, 0.5], dtype=torch.float64)
    starts = segment_starts(fr, torch.tensor([100, 100, 10]), 10)
    assert starts.tolist() == [0, 90, 0]


def test_device_and_loader_sources_give_identical_batches(tmp_path: Path) -> None:
    import soundfile as sf

    from vocoder_cli.data.manifest import ManifestEntry

    rng = np.random.default_rng(0)
    wavs = [rng.uniform(-0.5, 0.5, n).astype(np.float32) for n in (3000, 1024, 700, 5000)]  # one shorter than a segment
    entries = []
    for i, wav in enumerate(wavs):
        sf.write(tmp_path / f"{i}.wav", wav, 8000, subtype="FLOAT")
        entries.append(ManifestEntry(str(tmp_path / f"{i}.wav"), len(wav) / 8000, 8000, len(wav)))
    planner = BatchPlanner(len(wavs), 3, seed=2)
    device = DeviceSegments(wavs, planner, 1024, torch.device("cpu"))
    loader = LoaderSegments(entries, planner, 1024, torch.device("cpu"), num_workers=1)
    for epoch in range(2):
        pairs = list(zip(device.batches(epoch, 1), loader.batches(epoch, 1)))
        assert len(pairs) == planner.steps_per_epoch - 1
        for a, b in pairs:
            assert torch.equal(a.wav, b.wav)
    # Every row is a real slice of its clip (zero-padded past the end of the short one).
    clips, fracs = planner.plan(0, 0)
    batch = device.gather(clips, fracs)
    for row, clip in enumerate(clips.tolist()):
        wav = wavs[clip]
        got = batch.wav[row].numpy()
        if len(wav) < 1024:
            assert np.array_equal(got[: len(wav)], wav) and not got[len(wav):].any()
        else:
            hits = [s for s in range(len(wav) - 1023) if np.array_equal(wav[s : s + 1024], got)]
            assert hits


def _tiny_step(amp: str):
    from tests.test_train import TINY
    from vocoder_cli.models import (
        Generator,
        MultiPeriodDiscriminator,
        MultiScaleDiscriminator,
    )
    from vocoder_cli.training.step import GANStep

    cfg = apply_overrides(load_config("v1"), TINY + [f"amp={amp}"])
    torch.manual_seed(0)
    gen = Generator(cfg.generator).apply_weight_norm()
    mpd, msd = MultiPeriodDiscriminator(width=cfg.disc_width), MultiScaleDiscriminator(cfg.disc_width)
    opt_g = torch.optim.AdamW(gen.parameters(), cfg.lr)
    opt_d = torch.optim.AdamW([*mpd.parameters(), *msd.parameters()], cfg.lr)
    return GANStep(cfg, gen, mpd, msd, opt_g, opt_d, torch.device("cpu")), gen, mpd


def test_bf16_autocast_step_runs_on_cpu_and_updates_both_networks() -> None:
    """The CUDA path's autocast code, exercised on CPU: bf16 forwards, float32 losses and mels."""
    from vocoder_cli.data.segments import Batch

    step, gen, mpd = _tiny_step("bf16")
    assert step.amp_dtype == torch.bfloat16
    g0 = [p.detach().clone() for p in gen.parameters()]
    d0 = [p.detach().clone() for p in mpd.parameters()]
    result = step(Batch(0.3 * torch.sin(torch.arange(2 * 1024).reshape(2, 1024) * 0.05)))
    assert not result.bad and all(torch.isfinite(v) and v.dtype == torch.float32 for v in result.losses.values())
    assert any(not torch.equal(a, b) for a, b in zip(g0, gen.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, mpd.parameters()))


def test_non_finite_batch_is_skipped_without_touching_the_weights() -> None:
    from vocoder_cli.data.segments import Batch

    step, gen, mpd = _tiny_step("off")
    g0 = [p.detach().clone() for p in gen.parameters()]
    d0 = [p.detach().clone() for p in mpd.parameters()]
    wav = 0.3 * torch.sin(torch.arange(2 * 1024).reshape(2, 1024) * 0.05)
    wav[0, 100] = float("nan")
    result = step(Batch(wav))
    assert result.d_skipped and result.g_skipped and result.bad
    assert all(torch.equal(a, b) for a, b in zip(g0, gen.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(d0, mpd.parameters()))
