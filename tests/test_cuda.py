"""Every CUDA path, on a real GPU (skipped with the reason where there is none; the CPU tests cover the
same code on the CPU): the mel frontend, synthesis in fp32/fp16/bf16, `resynth --device cuda`, the
training step under bf16 autocast, GPU-resident and DataLoader segments, resume with the CUDA RNG,
torch.compile, and the CUDA-only measurements of `bench train` and `bench synth`.

Run on a lent GPU with scripts/gpu/verify_cuda.sh (docs/performance.md has what it measured). Tolerances
are loose where the GPU legitimately differs (TF32 convolutions, half precision, cuDNN's algorithm
choice); each test prints the number it measured.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import requires_cuda
from tests.helpers import tiny_generator, tiny_weights
from tests.test_prepare import speechlike

pytestmark = [pytest.mark.cuda, requires_cuda]

CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def restore_precision_flags():  # type: ignore[no-untyped-def]
    """Training switches TF32 and cuDNN autotuning process-wide; give every test the defaults back."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = saved


def speech_batch(n: int = 3, seconds: float = 1.0, sr: int = 22050) -> torch.Tensor:
    return torch.from_numpy(np.stack([speechlike(seconds, sr, 110 + 30 * i, seed=i) for i in range(n)]))


def rel_err(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> float:
    a, b = torch.as_tensor(a).double().cpu(), torch.as_tensor(b).double().cpu()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


# ----------------------------------------------------------------------------------------------
# Mel frontend


def test_mel_on_cuda_matches_the_cpu() -> None:
    from vocoder_cli.mel import MelConfig, MelSpectrogram

    wav = speech_batch()
    for cfg in (MelConfig(), MelConfig().for_loss()):
        ref = MelSpectrogram(cfg)(wav)  # float64 on the CPU
        got64 = MelSpectrogram(cfg)(wav.to(CUDA))
        got32 = MelSpectrogram(cfg, compute_dtype=torch.float32)(wav.to(CUDA))
        assert got64.device.type == "cuda" and got64.dtype == got32.dtype == torch.float32
        assert got64.shape == ref.shape == (3, cfg.n_mels, wav.shape[-1] // cfg.hop_length)
        e64, e32 = float((got64.cpu() - ref).abs().max()), float((got32.cpu() - ref).abs().max())
        print(f"mel fmax={cfg.fmax}: |cuda float64 - cpu| = {e64:.2e}, |cuda float32 - cpu| = {e32:.2e}")
        assert e64 < 1e-4
        assert e32 < 5e-2  # quiet bins (log of ~1e-5) move most in float32; loud ones agree to ~1e-4
        loud = ref > -4
        assert float((got32.cpu() - ref)[loud].abs().max()) < 5e-3


def test_mel_ignores_an_enclosing_autocast_on_cuda() -> None:
    from vocoder_cli.mel import MelConfig, MelSpectrogram

    wav = speech_batch(2).to(CUDA)
    mel = MelSpectrogram(MelConfig(), compute_dtype=torch.float32)
    plain = mel(wav)
    for dtype in (torch.bfloat16, torch.float16):
        with torch.autocast("cuda", dtype=dtype):
            inside = mel(wav)
        assert inside.dtype == torch.float32 and torch.equal(inside, plain)


# ----------------------------------------------------------------------------------------------
# Synthesis


def _demo_mel() -> torch.Tensor:
    from vocoder_cli.demo import speech_mel
    from vocoder_cli.mel import MelConfig

    return speech_mel(MelConfig(), 2.0)


@pytest.mark.parametrize("preset", ["v1", "v2", "v3"])
def test_generator_fp32_on_cuda_matches_the_cpu(preset: str) -> None:
    from vocoder_cli.models import Generator, generator_preset

    torch.manual_seed(0)
    gen = Generator(generator_preset(preset)).eval()
    mel = _demo_mel()[None]
    with torch.inference_mode():
        ref = gen(mel)
        gen.to(CUDA)
        tf32 = gen(mel.to(CUDA)).cpu()
        with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
            fp32 = gen(mel.to(CUDA)).cpu()
    e_tf32, e_fp32 = rel_err(tf32, ref), rel_err(fp32, ref)
    print(f"{preset}: cuda vs cpu, max|diff|/max|cpu|: TF32 convolutions {e_tf32:.2e}, TF32 off {e_fp32:.2e}")
    assert e_fp32 < 1e-3  # cuDNN's own algorithms (Winograd, FFT) round differently from oneDNN's
    assert e_tf32 < 5e-2


def test_synthesizer_fp16_and_bf16_on_cuda_stay_close_to_fp32() -> None:
    from vocoder_cli.mel import MelConfig
    from vocoder_cli.models import Generator, generator_preset
    from vocoder_cli.synthesis.engine import EngineOptions, Synthesizer
    from vocoder_cli.synthesis.vocoder import Vocoder, receptive_field_frames

    torch.manual_seed(0)
    cfg = generator_preset("v2")
    gen = Generator(cfg).eval().to(CUDA)
    vocoder = Vocoder(gen, MelConfig(), "v2", receptive_field_frames(cfg) + 2)
    mels = [_demo_mel()[:, :n] for n in (40, 150, 90)]
    outs = {}
    for precision in ("fp32", "fp16", "bf16"):
        synth = Synthesizer(vocoder, "cuda", EngineOptions(batch_size=8, precision=precision))
        outs[precision] = synth.synthesize(mels)
        assert [len(w) for w in outs[precision]] == [n * 256 for n in (40, 150, 90)]
        assert all(w.dtype == np.float32 and np.isfinite(w).all() for w in outs[precision])
    for precision, bound in (("fp16", 5e-2), ("bf16", 2e-1)):
        errs = [rel_err(a, b) for a, b in zip(outs[precision], outs["fp32"])]
        print(f"{precision} vs fp32 (random v2 weights): max rel error {max(errs):.2e}")
        assert max(errs) < bound
    # Chunked synthesis of a long mel on the GPU equals one shot (float rounding aside).
    long_mel = _demo_mel()
    synth = Synthesizer(vocoder, "cuda", EngineOptions(chunk_frames=64))
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        chunked = synth.synthesize([long_mel])[0]
        whole = Synthesizer(vocoder, "cuda").synthesize([long_mel])[0]
    assert rel_err(chunked, whole) < 1e-4


def test_padded_batches_and_cached_streams_on_cuda_equal_one_item_offline() -> None:
    """On the GPU too: a padded batch gives each item its own audio (each layer's padded tail zeroed), and the
    cached streaming engine (its convolutions as cuBLAS products, weights cast once) equals offline synthesis
    in fp32 and stays within half precision's rounding in fp16/bf16."""
    from vocoder_cli.mel import MelConfig
    from vocoder_cli.models import Generator, generator_preset
    from vocoder_cli.synthesis.engine import EngineOptions, Synthesizer
    from vocoder_cli.synthesis.stream_generator import CachedStreamingGenerator
    from vocoder_cli.synthesis.vocoder import Vocoder, receptive_field_frames

    torch.manual_seed(0)
    cfg = generator_preset("v1")
    gen = Generator(cfg).eval().to(CUDA)
    vocoder = Vocoder(gen, MelConfig(), "v1", receptive_field_frames(cfg) + 2)
    mels = [_demo_mel()[:, :n] for n in (40, 150, 90)]
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        synth = Synthesizer(vocoder, "cuda", EngineOptions(batch_size=8))
        batched = synth.synthesize(mels)
        alone = [synth.synthesize([m])[0] for m in mels]
    errs = [rel_err(b, a) for b, a in zip(batched, alone)]
    print(f"cuda fp32 padded batch vs alone: {max(errs):.2e}")
    assert max(errs) < 1e-4
    mel = mels[1]
    for precision, bound in (("fp32", 1e-4), ("fp16", 5e-2), ("bf16", 2e-1)):
        synth = Synthesizer(vocoder, "cuda", EngineOptions(precision=precision))
        stream = CachedStreamingGenerator(gen, 4, device="cuda", dtype=synth.dtype, fp32_tail=synth.fp32_tail)
        out = np.concatenate([stream.push(mel[:, i : i + 7]) for i in range(0, 150, 7)] + [stream.finish()])
        err = rel_err(out, alone[1])
        print(f"cuda {precision} cached stream vs fp32 offline: {err:.2e}")
        assert out.shape == alone[1].shape and err < bound


def test_resynth_cli_on_cuda_in_every_precision(tmp_path: Path) -> None:
    import soundfile as sf

    from vocoder_cli.cli.app import app

    weights = tiny_weights(tmp_path / "tiny.safetensors")
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        sf.write(src / f"c{i}.wav", speechlike(0.5 + 0.3 * i, 22050, 120 + 20 * i, seed=i), 22050)
    runner = CliRunner()
    outs = {}
    for precision in ("fp32", "fp16", "bf16"):
        out = tmp_path / precision
        result = runner.invoke(app, ["resynth", str(src), str(out), "-w", str(weights), "--device", "cuda",
                                     "--precision", precision, "--float"])
        assert result.exit_code == 0, result.output
        assert "cuda (torch)" in " ".join(result.output.split())  # --backend auto runs torch on a GPU
        outs[precision] = {p.name: sf.read(p)[0] for p in sorted(out.glob("*.wav"))}
        assert len(outs[precision]) == 3
    # The tiny generator's large random weights drive tanh into saturation, where half precision flips
    # samples between +-1 (seen on the H200: 0.59 of peak), so its outputs are only checked for shape and
    # range here; how close fp16/bf16 stay to fp32 is measured with real weights (docs/performance.md).
    for name, wav in outs["fp32"].items():
        for precision in ("fp32", "fp16", "bf16"):
            got = outs[precision][name]
            assert len(got) == len(sf.read(src / name)[0]) // 256 * 256
            assert np.isfinite(got).all() and np.abs(got).max() <= 1.0 + 1e-5


def test_onnx_backend_is_refused_on_cuda_and_auto_means_torch(tmp_path: Path) -> None:
    from vocoder_cli.errors import WeightsError
    from vocoder_cli.synthesis.vocoder import load_vocoder

    weights = tiny_weights(tmp_path / "tiny.safetensors")
    assert load_vocoder(str(weights), "cuda", backend="auto").backend == "torch"
    with pytest.raises(WeightsError, match="runs on the CPU"):
        load_vocoder(str(weights), "cuda", backend="onnx")


def test_bench_synth_rows_on_cuda() -> None:
    from vocoder_cli.synthesis.bench import compare_backends, preset_model

    model = preset_model("v3", ["torch"])
    mel = _demo_mel()
    for precision, bound in (("fp32", 5e-2), ("bf16", 2e-1)):
        rows = compare_backends(model, mel, device="cuda", batch=2, repeats=2, precision=precision)
        assert [r.backend for r in rows] == ["reference", "torch"]
        assert all(r.wall_seconds > 0 and r.gflop > 0 for r in rows)
        print(f"bench synth v3 {precision}: torch vs reference max rel error {rows[1].max_rel_error:.2e}")
        assert rows[1].max_rel_error < bound


# ----------------------------------------------------------------------------------------------
# Training


def test_bf16_step_on_cuda_updates_both_networks_with_float32_losses() -> None:
    from tests.test_train import TINY
    from vocoder_cli.data.segments import Batch
    from vocoder_cli.models import (
        Generator,
        MultiPeriodDiscriminator,
        MultiScaleDiscriminator,
    )
    from vocoder_cli.training.config import apply_overrides, load_config
    from vocoder_cli.training.precision import apply_precision, resolve_precision
    from vocoder_cli.training.step import GANStep

    cfg = resolve_precision(apply_overrides(load_config("v1"), TINY), CUDA)
    assert (cfg.amp, cfg.tf32) == ("bf16", True)
    apply_precision(cfg, CUDA)
    torch.manual_seed(0)
    gen = Generator(cfg.generator).apply_weight_norm().to(CUDA)
    mpd = MultiPeriodDiscriminator(width=cfg.disc_width).to(CUDA)
    msd = MultiScaleDiscriminator(cfg.disc_width).to(CUDA)
    step = GANStep(cfg, gen, mpd, msd, torch.optim.AdamW(gen.parameters(), cfg.lr),
                   torch.optim.AdamW([*mpd.parameters(), *msd.parameters()], cfg.lr), CUDA)
    assert step.amp_dtype == torch.bfloat16
    g0 = [p.detach().clone() for p in gen.parameters()]
    d0 = [p.detach().clone() for p in mpd.parameters()]
    wav = 0.3 * torch.sin(torch.arange(2 * 1024, device=CUDA).reshape(2, 1024) * 0.05)
    result = step(Batch(wav))
    assert not result.bad
    for value in result.losses.values():
        assert value.device.type == "cuda" and value.dtype == torch.float32 and torch.isfinite(value)
    assert all(p.dtype == torch.float32 for p in gen.parameters())  # autocast, not a bf16 model
    assert any(not torch.equal(a, b) for a, b in zip(g0, gen.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, mpd.parameters()))


def test_device_segments_on_cuda_equal_the_cpu_and_the_loader(tmp_path: Path) -> None:
    import soundfile as sf

    from vocoder_cli.data.manifest import ManifestEntry
    from vocoder_cli.data.segments import BatchPlanner, DeviceSegments, LoaderSegments

    rng = np.random.default_rng(0)
    wavs = [rng.uniform(-0.5, 0.5, n).astype(np.float32) for n in (3000, 1024, 700, 5000)]
    entries = []
    for i, wav in enumerate(wavs):
        sf.write(tmp_path / f"{i}.wav", wav, 8000, subtype="FLOAT")
        entries.append(ManifestEntry(str(tmp_path / f"{i}.wav"), len(wav) / 8000, 8000, len(wav)))
    planner = BatchPlanner(len(wavs), 3, seed=2)
    on_gpu = DeviceSegments(wavs, planner, 1024, CUDA)
    on_cpu = DeviceSegments(wavs, planner, 1024, torch.device("cpu"))
    loader = LoaderSegments(entries, planner, 1024, CUDA, num_workers=1)  # pinned memory, non-blocking copies
    for epoch in range(2):
        for a, b, c in zip(on_gpu.batches(epoch), on_cpu.batches(epoch), loader.batches(epoch)):
            assert a.wav.device.type == c.wav.device.type == "cuda"
            assert torch.equal(a.wav.cpu(), b.wav) and torch.equal(c.wav.cpu(), b.wav)


def _run(run_dir: Path, data: Path, steps: int, *extra: str, **options: object):
    from tests.test_train import TINY
    from vocoder_cli.training.trainer import resolve_config, train

    cfg = resolve_config(run_dir, "v1", TINY + list(extra), data=str(data), max_steps=steps, **options)
    events = []
    outcome = train(cfg, run_dir, device="cuda", on_event=events.append)
    return outcome, events


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.test_train import make_dataset

    return make_dataset(tmp_path_factory.mktemp("data"))


def _params(path: Path) -> dict[str, torch.Tensor]:
    from vocoder_cli.training import checkpoint as ckpt

    state = ckpt.load_state(path)
    return {f"{part}.{k}": v for part in ("generator", "mpd", "msd") for k, v in state[part].items()}


def test_train_on_cuda_with_validation_then_resume(tmp_path: Path, dataset: Path) -> None:
    from vocoder_cli.training import checkpoint as ckpt

    # 5 clips, batch 2: 3 steps per epoch; validation (mel L1 on the GPU) at step 4.
    straight, events = _run(tmp_path / "straight", dataset, 6, "val_interval=4", "metric_clips=1")
    messages = " | ".join(e.message for e in events)
    assert "data on cuda" in messages and "bf16 autocast" in messages, messages
    assert straight.step == 6 and straight.best_val_mel_l1 is not None and np.isfinite(straight.best_val_mel_l1)
    state = ckpt.load_state(ckpt.state_path(tmp_path / "straight", 6))
    assert state["rng"]["cuda"].dtype == torch.uint8 and state["rng"]["cuda"].device.type == "cpu"
    assert all(v.device.type == "cpu" for v in _params(ckpt.state_path(tmp_path / "straight", 6)).values())
    # Stop at step 4 and resume to 6: the CUDA RNG state goes back in; the weights match the straight run
    # (bit for bit where cuDNN picks deterministic kernels; within a few Adam steps of lr otherwise).
    _run(tmp_path / "resumed", dataset, 4, "val_interval=4", "metric_clips=1")
    second, events = _run(tmp_path / "resumed", dataset, 6, "val_interval=4", "metric_clips=1")
    assert events[[e.kind for e in events].index("start")].message == "resumed" and second.step == 6
    a = _params(ckpt.state_path(tmp_path / "straight", 6))
    b = _params(ckpt.state_path(tmp_path / "resumed", 6))
    worst = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    print(f"resume on cuda: max |weight difference| after 6 steps = {worst:.2e} ({'bit-identical' if worst == 0 else 'not bit-identical'})")
    assert worst < 5e-3


def test_train_on_cuda_through_the_dataloader(tmp_path: Path, dataset: Path) -> None:
    outcome, events = _run(tmp_path / "off", dataset, 2, "data_on_device=off", "num_workers=1")
    assert outcome.step == 2
    assert any("DataLoader (1 workers)" in e.message for e in events)
    losses = [e.scalars["loss/g"] for e in events if e.kind == "step"]
    assert losses and all(np.isfinite(losses))


def test_bench_train_measures_peak_memory_and_gpu_busy_share() -> None:
    from tests.test_train import TINY
    from vocoder_cli.training.bench import measure_training_speed
    from vocoder_cli.training.config import apply_overrides, load_config

    speed = measure_training_speed(apply_overrides(load_config("v1"), TINY), CUDA, steps=2, warmup=1)
    print(f"bench train tiny on cuda: {speed.steps_per_sec:.1f} steps/s, peak {speed.peak_memory_mib} MiB, busy {speed.gpu_busy_share}")
    assert speed.device.startswith("cuda") and speed.amp == "bf16" and speed.tf32
    assert speed.peak_memory_mib is not None and speed.peak_memory_mib > 0
    assert speed.gpu_busy_share is None or 0 < speed.gpu_busy_share <= 1


def test_compiled_training_on_cuda(tmp_path: Path, dataset: Path) -> None:
    """torch.compile of G, MPD and MSD (weight-norm parametrisations, bf16 autocast), then a checkpoint
    that loads into plain modules (saved from the raw modules, not the compiled wrappers)."""
    from vocoder_cli.training import checkpoint as ckpt
    from vocoder_cli.weights.format import load_generator

    outcome, events = _run(tmp_path / "c", dataset, 3, compile=True)
    assert outcome.step == 3
    losses = [e.scalars["loss/g"] for e in events if e.kind == "step"]
    assert len(losses) == 3 and all(np.isfinite(losses))
    params = _params(ckpt.state_path(tmp_path / "c", 3))
    assert not any("_orig_mod" in k for k in params)
    g = sorted((tmp_path / "c" / "checkpoints").glob("g_*.safetensors"))
    assert g and load_generator(g[-1]).config.upsample_rates == (4, 4)


def test_tiny_generator_helper_runs_on_cuda() -> None:
    """The test helpers' tiny generator (used across the CPU suite) on the GPU, fp32 vs the CPU."""
    gen = tiny_generator()
    mel = _demo_mel()[None, :, :50]
    with torch.inference_mode(), torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        ref = gen(mel)
        got = gen.to(CUDA)(mel.to(CUDA)).cpu()
    assert rel_err(got, ref) < 1e-4
