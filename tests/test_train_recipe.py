"""Training-recipe fidelity with the official jik876/hifi-gan train.py / meldataset.py (issue 13):
fine-tuning restores an official run's training state and keeps its weight-norm g and v; clips are
peak-normalised to 0.95; amp=off is float32 everywhere; the default init is the one the official code
really trains from; batch_size is global; validation runs on the whole list, full utterances."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from tests.conftest import require_shared_weights
from tests.test_prepare import speechlike
from tests.test_train import SR, TINY, make_dataset
from vocoder_cli.data.manifest import ManifestEntry, write_manifest
from vocoder_cli.errors import ConfigError
from vocoder_cli.models import (
    Generator,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    generator_preset,
)
from vocoder_cli.training import checkpoint as ckpt
from vocoder_cli.training.config import apply_overrides, load_config
from vocoder_cli.training.distributed import DistInfo, split_batch
from vocoder_cli.training.init_from import load_init_weights, restore_training_state
from vocoder_cli.training.trainer import (
    build_models,
    build_segments,
    load_val_clips,
    resolve_config,
    train,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.nn.utils.(weight|spectral)_norm.*:FutureWarning")
REPO = Path(__file__).resolve().parents[1]
LJ_V2 = Path(os.environ.get("VOCODER_TEST_WEIGHTS", REPO.parent / "shared" / "weights")) / "hifigan-lj-v2"
FT = ["disc_width=0.125", "segment=1024", "batch_size=2", "num_workers=0", "log_interval=1", "val_interval=1000",
      "checkpoint_interval=1000"]
G = ".parametrizations.weight.original0"
V = ".parametrizations.weight.original1"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"))


def _legacy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our parametrized keys in the official code's legacy weight_norm / spectral_norm names."""
    names = {"original0": "weight_g", "original1": "weight_v", "original": "weight_orig", "0._u": "weight_u", "0._v": "weight_v"}
    out = {}
    for key, value in state.items():
        prefix, sep, leaf = key.partition(".parametrizations.weight.")
        out[f"{prefix}.{names[leaf]}" if sep else key] = value
    return out


def _v_over_g(state: dict[str, torch.Tensor]) -> torch.Tensor:
    """|v| / g of every output channel of every weight-normed layer, concatenated."""
    return torch.cat([state[k[: -len(G)] + V].flatten(1).norm(dim=1) / state[k].flatten()
                      for k in state if k.endswith(G)])


def official_run(folder: Path, steps: int = 99, epoch: int = 3, seed: int = 9) -> dict[str, object]:
    """An official-layout g_/do_ pair for the TINY model, as jik876/hifi-gan's train.py would save it
    after `steps + 1` updates in epoch `epoch`: legacy weight-norm keys, g != |v|, AdamW moments,
    optim_d over msd's then mpd's parameters, and the learning rate decayed `epoch` times."""
    cfg = apply_overrides(load_config("v1"), TINY)
    g = cfg.generator
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({
        "resblock": g.resblock, "upsample_rates": list(g.upsample_rates), "upsample_kernel_sizes": list(g.upsample_kernel_sizes),
        "upsample_initial_channel": g.upsample_initial_channel, "resblock_kernel_sizes": list(g.resblock_kernel_sizes),
        "resblock_dilation_sizes": [list(d) for d in g.resblock_dilation_sizes], "num_mels": 20, "n_fft": 64,
        "hop_size": 16, "win_size": 64, "sampling_rate": SR, "fmin": 0, "fmax": 4000, "segment_size": 1024,
    }))
    torch.manual_seed(seed)
    gen = Generator(g).apply_weight_norm()
    with torch.no_grad():  # a trained run's g drifts away from |v|: 0.3x to 3x here
        for name, p in gen.named_parameters():
            if name.endswith(G):
                p.mul_(torch.empty_like(p).uniform_(0.3, 3.0))
    mpd, msd = MultiPeriodDiscriminator(width=0.125), MultiScaleDiscriminator(width=0.125)
    optim_g = torch.optim.AdamW(gen.parameters(), 2e-4, betas=(0.8, 0.99))
    optim_d = torch.optim.AdamW(itertools.chain(msd.parameters(), mpd.parameters()), 2e-4, betas=(0.8, 0.99))
    scheds = [torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.999) for o in (optim_g, optim_d)]
    for _ in range(3):
        for opt in (optim_g, optim_d):
            for group in opt.param_groups:
                for p in group["params"]:
                    p.grad = torch.randn_like(p) * 1e-3
            opt.step()
    for _ in range(epoch):
        for sched in scheds:
            sched.step()
    torch.save({"generator": _legacy(gen.state_dict())}, folder / f"g_{steps:08d}")
    do = {"mpd": _legacy(mpd.state_dict()), "msd": _legacy(msd.state_dict()), "optim_g": optim_g.state_dict(),
          "optim_d": optim_d.state_dict(), "steps": steps, "epoch": epoch}
    torch.save(do, folder / f"do_{steps:08d}")
    return {"g": folder / f"g_{steps:08d}", "generator": gen.state_dict(), "mpd": mpd, "msd": msd,
            "optim_d": optim_d.state_dict(), "lr": optim_g.param_groups[0]["lr"]}


# ---------------------------------------------------------------------------------------------
# Fine-tuning from an official checkpoint


def test_official_pair_restores_g_v_discriminators_and_both_optimisers_in_place(tmp_path: Path, dataset: Path) -> None:
    made = official_run(tmp_path / "official")
    cfg = resolve_config(tmp_path / "ft", "v1", FT, data=str(dataset), init_from=str(made["g"]))
    init = load_init_weights(cfg.init_from)
    notes: list[str] = []
    generator, mpd, msd, d_loaded = build_models(cfg, init, notes)
    assert d_loaded and "discriminators do_00000099" in notes[0] and "g and v kept" in notes[0]
    # The generator carries the checkpoint's own g and v, bit for bit (|v| / g from 0.3 to 3, not 1).
    state = generator.state_dict()
    for key, value in made["generator"].items():
        assert torch.equal(state[key], value), key
    ratio = _v_over_g(state)
    assert float(ratio.min()) < 0.5 and float(ratio.max()) > 2.0
    optim_g = torch.optim.AdamW(generator.parameters(), cfg.lr)
    optim_d = torch.optim.AdamW([*mpd.parameters(), *msd.parameters()], cfg.lr)
    restored = restore_training_state(init, False, d_loaded, optim_g, optim_d, mpd, msd)
    assert (restored.step, restored.epoch) == (100, 3)
    assert optim_g.param_groups[0]["lr"] == pytest.approx(2e-4 * 0.999**3, rel=1e-12)
    assert optim_g.param_groups[0]["betas"] == (0.8, 0.99)
    # optim_d: the official one lists msd's parameters first; ours mpd's. Each moment lands on its parameter.
    official = made["optim_d"]["state"]
    n_msd = len(list(made["msd"].parameters()))
    ours = list(mpd.parameters()) + list(msd.parameters())
    assert torch.equal(optim_d.state[ours[0]]["exp_avg"], official[n_msd]["exp_avg"])  # mpd's first
    assert torch.equal(optim_d.state[ours[-1]]["exp_avg_sq"], official[n_msd - 1]["exp_avg_sq"])  # msd's last
    assert all(optim_d.state[p]["exp_avg"].shape == p.shape for p in ours)


def test_fine_tuning_continues_the_official_run(tmp_path: Path, dataset: Path) -> None:
    """One step from an official g_00000099/do_00000099 pair: the run continues at step 100 -> 101 with
    the decayed lr, the AdamW step counts go on from 3, and the saved config states fp32."""
    made = official_run(tmp_path / "official")
    run = tmp_path / "ft"
    cfg = resolve_config(run, "v1", FT, data=str(dataset), init_from=str(made["g"]), max_steps=101)
    events = []
    outcome = train(cfg, run, device="cpu", on_event=events.append)
    notes = [e.message for e in events if e.kind == "note"]
    assert outcome.step == 101 and [s for s, _ in ckpt.list_checkpoints(run)] == [101]
    assert any("restored the official training state" in n and "step 100, epoch 3, lr 0.000199401" in n for n in notes)
    state = ckpt.load_state(ckpt.state_path(run, 101))
    assert (state["step"], state["epoch"], state["batch_index"]) == (101, 3, 1)  # epoch 3 restarted from batch 0
    assert state["optim_g"]["param_groups"][0]["lr"] == pytest.approx(2e-4 * 0.999**3, rel=1e-12)
    assert {float(s["step"]) for s in state["optim_g"]["state"].values()} == {4.0}
    # g and v moved by one AdamW step from the checkpoint's own: |v| / g is still the checkpoint's.
    before, after = _v_over_g(made["generator"]), _v_over_g(state["generator"])
    assert float((after / before - 1).abs().max()) < 0.05 and float(after.max()) > 2.0
    saved = json.loads((run / "config.json").read_text())
    assert (saved["amp"], saved["tf32"]) == ("off", False) and any(n.startswith("precision: float32 everywhere") for n in notes)
    # --max-steps is a global step: one at or below where the official run continues is refused.
    with pytest.raises(ConfigError, match="--max-steps 150 to train 50 more"):
        train(resolve_config(tmp_path / "ft2", "v1", FT, data=str(dataset), init_from=str(made["g"]), max_steps=50),
              tmp_path / "ft2", device="cpu")


def test_reset_optimizer_and_a_lone_g_file_say_so(tmp_path: Path, dataset: Path) -> None:
    from typer.testing import CliRunner

    from vocoder_cli.cli.app import app

    made = official_run(tmp_path / "official")
    args = ["train", "--run", str(tmp_path / "ft"), "--data", str(dataset), "--init-from", str(made["g"]),
            "--reset-optimizer", "--max-steps", "1", "--device", "cpu"]
    for item in FT:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "--reset-optimizer: the official optimiser states (step 100) are not used; fresh AdamW at lr 0.0002, step 0" in text
    state = ckpt.load_state(ckpt.state_path(tmp_path / "ft", 1))
    assert state["optim_g"]["param_groups"][0]["lr"] == 2e-4 and state["step"] == 1
    # The weights (g and v, discriminators) still come from the checkpoint.
    assert float((_v_over_g(state["generator"]) / _v_over_g(made["generator"]) - 1).abs().max()) < 0.05
    # A g_ file alone: the log says the discriminators start untrained.
    (made["g"].parent / "do_00000099").unlink()
    init = load_init_weights(str(made["g"]))
    assert init.training is None and init.discriminators is None
    assert "no do_00000099 beside it: the discriminators start untrained" in init.notes[0]


@pytest.mark.data
def test_real_lj_v2_checkpoint_keeps_its_g_and_v() -> None:
    """The published LJ_V2 generator: |v| / g spans 0.26-5.6 by layer median (0.13-15 by channel); the
    training generator keeps exactly that, where re-deriving weight norm from folded weights made it 1."""
    require_shared_weights("hifigan-lj-v2/generator_v2")
    from vocoder_cli.weights.official import (
        import_official_generator,
        official_training_generator,
    )

    raw = torch.load(LJ_V2 / "generator_v2", map_location="cpu", weights_only=True)["generator"]
    state, gen_cfg, _ = official_training_generator(LJ_V2 / "generator_v2")
    medians = [float((state[k[: -len(G)] + V].flatten(1).norm(dim=1) / state[k].flatten()).median())
               for k in state if k.endswith(G)]
    assert len(medians) == 78 and 0.26 < min(medians) < 0.27 and 5.58 < max(medians) < 5.59
    generator = Generator(gen_cfg).apply_weight_norm()
    generator.load_state_dict(state)
    assert torch.equal(generator.state_dict()["ups.0" + G], raw["ups.0.weight_g"])
    assert torch.equal(generator.state_dict()["resblocks.4.convs2.1" + V], raw["resblocks.4.convs2.1.weight_v"])
    before = import_official_generator(LJ_V2 / "generator_v2").generator  # the inference import: folded
    refolded = Generator(gen_cfg)
    refolded.load_state_dict(before.state_dict())
    assert float((_v_over_g(refolded.apply_weight_norm().state_dict()) - 1).abs().max()) < 1e-5  # the old path
    mel = torch.randn(1, 80, 24, generator=torch.Generator().manual_seed(0)) - 5
    with torch.no_grad():
        torch.testing.assert_close(generator.eval()(mel), before(mel), atol=1e-5, rtol=0)  # same function


# ---------------------------------------------------------------------------------------------
# Level


def _one_clip_dataset(root: Path, wav: np.ndarray) -> Path:
    root.mkdir(parents=True)
    sf.write(root / "quiet.wav", wav, SR, subtype="FLOAT")
    write_manifest(root / "train.jsonl", [ManifestEntry(str(root / "quiet.wav"), len(wav) / SR, SR, len(wav))])
    write_manifest(root / "val.jsonl", [ManifestEntry(str(root / "quiet.wav"), len(wav) / SR, SR, len(wav))])
    return root


def test_training_segments_are_peak_normalised_to_0_95_on_both_sources(tmp_path: Path) -> None:
    wav = speechlike(1024 / SR, SR).astype(np.float32)
    wav *= 0.2 / np.abs(wav).max()  # a quiet clip exactly one segment long: the segment is the whole clip
    data = _one_clip_dataset(tmp_path / "data", wav)
    peaks = {}
    for where in ("on", "off"):
        cfg = resolve_config(tmp_path / where, "v1", TINY + ["batch_size=1", f"data_on_device={where}"], data=str(data))
        notes: list[str] = []
        source, _ = build_segments(cfg, DistInfo(), notes)
        batch = next(iter(source.batches(0)))
        peaks[where] = batch.wav
        assert any("peak-normalised to 0.95" in n for n in notes)
    assert torch.equal(peaks["on"], peaks["off"])
    assert float(peaks["on"].abs().max()) == pytest.approx(0.95, abs=1e-6)  # before: 0.2, the raw level
    np.testing.assert_allclose(peaks["on"][0].numpy(), wav * (0.95 / 0.2), rtol=1e-6, atol=1e-7)
    # Off by config, and off by default with GTA mels (the acoustic model's mels describe the recorded level).
    cfg = resolve_config(tmp_path / "raw", "v1", TINY + ["batch_size=1", "peak_normalize=off"], data=str(data))
    source, _ = build_segments(cfg, DistInfo(), [])
    assert float(next(iter(source.batches(0))).wav.abs().max()) == pytest.approx(0.2, abs=1e-6)
    cfg = resolve_config(tmp_path / "gta", "v1", TINY + ["batch_size=1"], data=str(data), gta_mels=str(tmp_path))
    assert not cfg.normalize_peaks and apply_overrides(cfg, ["peak_normalize=on"]).normalize_peaks


# ---------------------------------------------------------------------------------------------
# Validation


def test_validation_uses_the_whole_list_full_length_at_the_training_level(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    entries = []
    for i, seconds in enumerate([1.0, 2.5] * 5 + [12.0]):  # 11 clips, one longer than the old 10 s cut
        wav = (0.1 + 0.05 * i) * speechlike(seconds, SR, 120 + 10 * i, seed=i) / 0.5
        sf.write(root / f"v{i}.wav", wav.astype(np.float32), SR, subtype="FLOAT")
        entries.append(ManifestEntry(str(root / f"v{i}.wav"), seconds, SR, len(wav)))
    write_manifest(root / "val.jsonl", entries)
    cfg = resolve_config(tmp_path / "run", "v1", TINY, data=str(root))
    clips = load_val_clips(cfg)
    assert len(clips) == 11  # before: the first 8
    assert [len(w) for _, w in clips] == [e.num_samples // 16 * 16 for e in entries]  # before: cut to 10 s
    assert all(float(np.abs(w).max()) == pytest.approx(0.95, abs=1e-6) for _, w in clips)  # before: raw
    capped = load_val_clips(apply_overrides(cfg, ["val_max_seconds=2", "val_clips=3"]))
    assert [len(w) for _, w in capped] == [8000, 16000, 8000]


# ---------------------------------------------------------------------------------------------
# Precision


def test_amp_off_is_float32_everywhere_and_the_config_says_so() -> None:
    from vocoder_cli.training.precision import apply_precision, resolve_precision
    from vocoder_cli.training.step import GANStep

    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        cfg = apply_overrides(load_config("v1"), TINY + ["amp=off"])
        assert cfg.tf32  # the config default; a CUDA run with amp=off still must not use it
        cuda_off = resolve_precision(cfg, torch.device("cuda"))
        assert (cuda_off.amp, cuda_off.tf32) == ("off", False)
        torch.backends.cudnn.allow_tf32 = True  # torch's default for convolutions
        apply_precision(cuda_off, torch.device("cpu"))
        assert torch.backends.cuda.matmul.allow_tf32 is False and torch.backends.cudnn.allow_tf32 is False
        assert torch.get_float32_matmul_precision() == "highest"
        auto = apply_overrides(load_config("v1"), TINY)
        assert (resolve_precision(auto, torch.device("cuda")).amp, resolve_precision(auto, torch.device("cuda")).tf32) == ("bf16", True)
        assert resolve_precision(auto, torch.device("cpu")).amp == "off"
        torch.manual_seed(0)
        gen = Generator(cuda_off.generator).apply_weight_norm()
        mpd, msd = MultiPeriodDiscriminator(width=cfg.disc_width), MultiScaleDiscriminator(cfg.disc_width)
        step = GANStep(cuda_off, gen, mpd, msd, torch.optim.AdamW(gen.parameters()),
                       torch.optim.AdamW([*mpd.parameters(), *msd.parameters()]), torch.device("cpu"))
        wav = 0.3 * torch.sin(torch.arange(2 * 1024).reshape(2, 1024) * 0.05)
        assert step.amp_dtype is None and step.mel_loss(wav).dtype == torch.float32
        assert step.mel_loss.compute_dtype == torch.float32 and gen(step.mel_input(wav)).dtype == torch.float32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


# ---------------------------------------------------------------------------------------------
# Initialisation


def test_default_init_is_what_the_official_code_really_trains_from() -> None:
    """The official init_weights runs after legacy weight_norm, so it changes nothing (upstream issue
    145): the effective weights are PyTorch's default init. Ours is that, draw for draw."""
    from tests.test_weights_official import OFFICIAL_CONFIGS, RefGenerator

    # The mechanism: N(0, 0.01) written into a legacy weight-normed conv's `weight` is recomputed away.
    torch.manual_seed(0)
    conv = nn.utils.weight_norm(nn.Conv1d(8, 8, 3))
    x = torch.randn(1, 8, 32)
    before = conv(x)
    conv.weight.data.normal_(0.0, 0.01)  # what the official init_weights does
    torch.testing.assert_close(conv(x), before, atol=0, rtol=0)

    # Same seed, official module order: our fresh V2 generator's weights equal the reference's.
    torch.manual_seed(1234)
    ref = RefGenerator(OFFICIAL_CONFIGS["v2"])
    torch.manual_seed(1234)
    ours = Generator(generator_preset("v2"))
    for name, w in ours.state_dict().items():
        prefix = name[: -len(".weight")]
        if name.endswith(".weight"):  # legacy weight norm: v is the init draw, g = |v|
            module = ref.get_submodule(prefix)
            assert torch.equal(w, module.weight_v), name
            torch.testing.assert_close(module.weight_g.flatten(), w.flatten(1).norm(dim=1))
        else:
            assert torch.equal(w, ref.state_dict()[name]), name
    # Statistics: default Kaiming-uniform std 1/sqrt(3 fan_in) = 0.0417 for a 64-channel k=3 conv; 0.01 with normal.
    w = ours.resblocks[0].convs1[0].weight.detach()
    assert float(w.std()) == pytest.approx(1 / np.sqrt(3 * 64 * 3), rel=0.05)
    torch.manual_seed(1234)
    normal = Generator(generator_preset("v2")).init_normal(0.01)
    assert float(normal.resblocks[0].convs1[0].weight.detach().std()) == pytest.approx(0.01, rel=0.05)
    assert torch.equal(normal.conv_pre.weight, ours.conv_pre.weight)  # conv_pre is not in init_weights' reach
    # The output of a fresh network on a speech-like mel: both are mostly the DC of conv_post's bias
    # (default init in both); the signal around it (std over time) starts far louder with the default
    # (measured on 3 s of real speech, seeds 0-3: 107-261x for V2, 45-78x V1, 21-42x V3).
    from vocoder_cli.mel import MelConfig, MelSpectrogram

    mel = MelSpectrogram(MelConfig())(torch.from_numpy(speechlike(1.0, 22050).astype(np.float32)))
    with torch.no_grad():
        loud, quiet = float(ours(mel).std()), float(normal(mel).std())
    assert loud / quiet > 20, (loud, quiet)


def test_generator_init_config_reaches_a_run(dataset: Path, tmp_path: Path) -> None:
    for init, std in (("official", 1 / np.sqrt(3 * 8 * 3)), ("normal", 0.01)):
        cfg = resolve_config(tmp_path / init, "v1", TINY + [f"generator_init={init}"], data=str(dataset))
        notes: list[str] = []
        torch.manual_seed(0)
        gen, _, _, _ = build_models(cfg, None, notes)
        gen.remove_weight_norm()
        # generator.resblocks.1: 8 channels (32 / 2**2), kernel 3: fan_in 24
        weights = torch.cat([c.weight.detach().flatten() for c in gen.resblocks[1].convs])
        assert float(weights.std()) == pytest.approx(std, rel=0.2)
        assert f"generator_init={init}" in notes[0]


# ---------------------------------------------------------------------------------------------
# Multi-GPU batch


def test_batch_size_is_global_and_must_split_over_processes() -> None:
    assert [split_batch(16, n) for n in (1, 2, 4, 8)] == [16, 8, 4, 2]
    with pytest.raises(ConfigError, match="use 15 or 18"):
        split_batch(16, 3)
