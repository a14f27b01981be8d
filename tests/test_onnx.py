"""ONNX export and the ONNX Runtime backend: same output as PyTorch (max |diff| / max |ref| <= 1e-4) on
real and random weights, dynamic batch and length, self-describing files, clear errors (issue 11)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from tests.conftest import require_module, require_shared_weights
from tests.helpers import tiny_weights, tone, write
from vocoder_cli.cli.app import app
from vocoder_cli.errors import ConfigError, WeightsError
from vocoder_cli.mel import MelConfig, MelSpectrogram
from vocoder_cli.models import Generator, generator_preset
from vocoder_cli.synthesis.backends import choose_backend
from vocoder_cli.synthesis.backends.onnx import (
    FORMAT_TAG,
    cache_path,
    export_onnx,
    load_onnx,
    relative_error,
)
from vocoder_cli.synthesis.backends.tune import MAX_LOADED_TRIES, pick
from vocoder_cli.synthesis.engine import EngineOptions, Synthesizer
from vocoder_cli.synthesis.vocoder import load_vocoder

onnx = require_module("onnx", "onnx")
require_module("onnxruntime", "onnx")

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()
SR = 22050
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.nn.utils.(weight|spectral)_norm.*:FutureWarning")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOCODER_DATA_DIR", str(tmp_path / "data"))  # nothing from the user's weights cache


def _speech_mel(mel: MelConfig, frames: int, offset: int = 0) -> torch.Tensor:
    """[n_mels, frames] log-mel of the bundled real speech."""
    demo = REPO / "vocoder_cli" / "assets" / "demo" / "demo-echodone.flac"
    wav, sr = sf.read(demo, dtype="float32")
    from vocoder_cli.audio import resample

    wav = resample(wav, sr, mel.sample_rate)
    segment = wav[offset * mel.hop_length : (offset + frames) * mel.hop_length]
    assert segment.size == frames * mel.hop_length, "the demo clip is long enough"
    with torch.inference_mode():
        return MelSpectrogram(mel)(torch.from_numpy(np.ascontiguousarray(segment))[None])[0]


@pytest.mark.parametrize("preset", ["v3", pytest.param("v1", marks=pytest.mark.slow)])
def test_random_weights_export_equals_torch_at_any_batch_and_length(tmp_path: Path, preset: str) -> None:
    torch.manual_seed(3)
    generator = Generator(generator_preset(preset)).eval()  # PyTorch's default init, as the official code trains from
    mel_cfg = MelConfig()
    result = export_onnx(generator, mel_cfg, tmp_path / f"{preset}.onnx")
    assert result.passed and result.max_rel_error < 1e-4
    loaded = load_onnx(result.path)
    assert loaded.config == generator.cfg and loaded.mel == mel_cfg  # self-describing
    assert loaded.metadata["format"] == FORMAT_TAG
    # one exported model, two lengths, batch 1 and batch 3 (rows from different parts of real speech)
    for frames in (37, 150):
        batch = torch.stack([_speech_mel(mel_cfg, frames, offset) for offset in (0, 40, 80)])
        with torch.inference_mode():
            expected = generator(batch).numpy()
            got = loaded.generator(batch).numpy()
            single = loaded.generator(batch[1:2]).numpy()
        assert got.shape == expected.shape == (3, 1, frames * 256)
        assert relative_error(got, expected) <= 1e-4
        assert relative_error(single, expected[1:2]) <= 1e-4
    print(f"{preset} random weights: export check {result.max_rel_error:.2e}")


@pytest.mark.data
@pytest.mark.slow
def test_real_lj_v2_clip_through_the_cli_equals_torch(data_dir: Path, tmp_path: Path) -> None:
    official = require_shared_weights("hifigan-lj-v2/generator_v2") / "hifigan-lj-v2"
    done = runner.invoke(app, ["weights", "import", str(official / "generator_v2"), "--name", "ljv2"])
    assert done.exit_code == 0, done.output
    weights = tmp_path / "data" / "weights" / "ljv2" / "generator.safetensors"
    model = tmp_path / "lj_v2.onnx"
    done = runner.invoke(app, ["export", "onnx", str(weights), str(model)])
    assert done.exit_code == 0, done.output
    assert "max |diff| / max |ref| = " in done.stderr and "within the 0.0001 bar" in done.stderr
    meta = {p.key: p.value for p in onnx.load(str(model), load_external_data=False).metadata_props}
    assert json.loads(meta["mel_config"])["hop_length"] == 256 and meta["format"] == FORMAT_TAG
    assert json.loads(meta["generator_config"])["upsample_initial_channel"] == 128  # V2

    clip = sorted((data_dir / "ljspeech" / "dev" / "wavs").glob("*.flac"))[0]
    outs = {}
    for label, args in {"torch": ["--weights", str(weights), "--backend", "torch"],
                        "onnx": ["--weights", str(model)]}.items():
        out = tmp_path / f"{label}.wav"
        done = runner.invoke(app, ["resynth", str(clip), str(out), "--float", *args])
        assert done.exit_code == 0, done.output
        assert f"on cpu ({label})" in done.stderr
        outs[label] = sf.read(out, dtype="float32")[0]
    rel = relative_error(outs["onnx"], outs["torch"])
    print(f"LJ_V2 on {clip.name}: onnx vs torch max |diff| / max |ref| = {rel:.2e}")
    assert outs["onnx"].shape == outs["torch"].shape and rel <= 1e-4


def test_backend_onnx_exports_once_to_the_cache_and_reuses_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOCODER_CACHE_DIR", str(tmp_path / "cache"))
    weights = tiny_weights(tmp_path / "tiny.safetensors")
    lines: list[str] = []
    vocoder = load_vocoder(str(weights), backend="onnx", notify=lines.append)
    cached = cache_path(weights)
    assert vocoder.backend == "onnx" and cached.is_file()
    assert cached.parent == tmp_path / "cache" / "onnx" and "-opset17-ort" in cached.name
    assert len(lines) == 1 and lines[0].startswith("exporting ") and str(cached.parent) in lines[0]
    stamp = cached.stat().st_mtime_ns
    lines.clear()
    again = load_vocoder(str(weights), backend="onnx", notify=lines.append)
    assert again.backend == "onnx" and not lines and cached.stat().st_mtime_ns == stamp  # no second export
    torch_vocoder = load_vocoder(str(weights), backend="torch")
    mels = [_speech_mel(torch_vocoder.mel, n) for n in (40, 220)]
    got = Synthesizer(vocoder, options=EngineOptions(chunk_frames=96)).synthesize(mels)  # chunked + one-shot
    expected = Synthesizer(torch_vocoder, options=EngineOptions(chunk_frames=96)).synthesize(mels)
    for g, e in zip(got, expected):
        assert g.shape == e.shape and relative_error(g, e) <= 1e-4


def test_not_onnx_and_foreign_onnx_are_clear_errors(tmp_path: Path) -> None:
    src = write(tmp_path / "in.wav", tone(0.5, SR), SR)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not a protobuf at all \x00\x01\x02" * 10)
    with pytest.raises(WeightsError, match=r"garbage\.onnx: not a readable ONNX model"):
        load_onnx(garbage)
    done = runner.invoke(app, ["resynth", str(src), str(tmp_path / "o.wav"), "--weights", str(garbage)])
    assert done.exit_code == 2 and "garbage.onnx: not a readable ONNX model" in done.stderr

    helper = onnx.helper
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "foreign",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 80, 4])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 80, 4])],
    )
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(foreign))
    with pytest.raises(WeightsError, match=r"foreign\.onnx: an ONNX model, but not a vocoder generator"):
        load_onnx(foreign)
    done = runner.invoke(app, ["resynth", str(src), str(tmp_path / "o.wav"), "--weights", str(foreign)])
    assert done.exit_code == 2 and "not a vocoder generator" in done.stderr and "vocoder export onnx" in done.stderr
    missing = runner.invoke(app, ["resynth", str(src), str(tmp_path / "o.wav"), "--weights", "nothere.onnx"])
    assert missing.exit_code == 2 and "nothere.onnx: no such weights file" in missing.stderr


def test_backend_choice_and_onnx_only_on_its_backend(tmp_path: Path) -> None:
    assert choose_backend("auto", "cpu") == "onnx"  # onnxruntime is installed here
    assert choose_backend("auto", "cpu", onnx_checked=False) == "torch"
    assert choose_backend("auto", "cuda") == "torch"
    assert choose_backend("torch", "cpu") == "torch" and choose_backend("onnx", "cpu") == "onnx"
    with pytest.raises(ConfigError, match="unknown backend 'tvm'"):
        choose_backend("tvm", "cpu")
    torch.manual_seed(0)
    model = export_onnx(Generator(generator_preset("v3")).eval(), MelConfig(), tmp_path / "v3.onnx").path
    with pytest.raises(WeightsError, match=r"v3\.onnx: an ONNX model runs on the onnx backend only"):
        load_vocoder(str(model), backend="torch")
    with pytest.raises(WeightsError, match="the onnx backend runs on the CPU, not cuda"):
        load_vocoder(str(model), device="cuda", backend="onnx")


def test_export_cli_refuses_what_it_cannot_export(tmp_path: Path) -> None:
    weights = tiny_weights(tmp_path / "tiny.safetensors")
    bad = runner.invoke(app, ["export", "onnx", str(weights), str(tmp_path / "x.bin")])
    assert bad.exit_code == 2 and "must end in .onnx" in bad.stderr
    foreign = tmp_path / "foreign.safetensors"
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(foreign))
    bad = runner.invoke(app, ["export", "onnx", str(foreign), str(tmp_path / "x.onnx")])
    assert bad.exit_code == 2 and "not a vocoder generator file" in bad.stderr
    assert not (tmp_path / "x.onnx").exists()
    good = runner.invoke(app, ["export", "onnx", str(weights), str(tmp_path / "tiny.onnx")])
    assert good.exit_code == 0, good.output
    assert not list(tmp_path.glob("*.part"))  # atomic write


def _unwritable_folder(tmp_path: Path) -> Path:
    """A folder this process cannot create files in: a read-only folder, or (as root, which ignores
    permissions) /sys, where even root gets EACCES; skipped if neither refuses here."""
    import tempfile

    if os.geteuid() != 0:
        folder = tmp_path / "locked"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    try:
        fd, probe = tempfile.mkstemp(dir="/sys")
    except OSError:
        return Path("/sys")
    os.close(fd)
    os.unlink(probe)
    pytest.skip("no folder refuses writes to this process")


def test_export_errors_are_one_line_with_the_right_exit_code(tmp_path: Path) -> None:
    """An unwritable folder, a folder as OUT and `--opset 99` gave tracebacks; an existing OUT was replaced."""
    from vocoder_cli.synthesis.backends.onnx import MIN_OPSET, supported_opsets

    weights = str(tiny_weights(tmp_path / "tiny.safetensors"))
    low, high = supported_opsets()
    assert low == MIN_OPSET == 13 and high >= 17  # torch 2.13's TorchScript exporter: 20
    for opset in ("99", "12", str(high + 1)):
        result = runner.invoke(app, ["export", "onnx", weights, str(tmp_path / "x.onnx"), "--opset", opset])
        assert result.exit_code == 2, result.output
        assert f"--opset {opset}: supported here: {low}..{high}" in " ".join(result.stderr.split())
    assert not (tmp_path / "x.onnx").exists()
    folder = tmp_path / "model.onnx"
    folder.mkdir()
    onto_folder = runner.invoke(app, ["export", "onnx", weights, str(folder)])
    assert onto_folder.exit_code == 2 and "is a folder" in onto_folder.stderr and not list(folder.iterdir())
    under_a_file = runner.invoke(app, ["export", "onnx", weights, str(tmp_path / "tiny.safetensors" / "x.onnx")])
    assert under_a_file.exit_code == 2 and "is not a folder" in under_a_file.stderr
    locked = _unwritable_folder(tmp_path)
    denied = runner.invoke(app, ["export", "onnx", weights, str(locked / "x.onnx")])
    assert denied.exit_code == 1 and "cannot write" in denied.stderr, denied.output
    for result in (onto_folder, under_a_file, denied):
        assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
    out = tmp_path / "mine.onnx"
    out.write_bytes(b"someone else's model")
    kept = runner.invoke(app, ["export", "onnx", weights, str(out)])
    assert kept.exit_code == 2 and "--overwrite" in kept.stderr and out.read_bytes() == b"someone else's model"
    replaced = runner.invoke(app, ["export", "onnx", weights, str(out), "--overwrite", "--opset", str(high)])
    assert replaced.exit_code == 0, replaced.output
    assert load_onnx(out).metadata["opset"] == str(high) and f"opset {high}" in replaced.stderr


def test_bench_synth_on_the_onnx_backend(tmp_path: Path) -> None:
    done = runner.invoke(app, ["bench", "synth", "--models", "v3", "--backend", "onnx", "--seconds", "0.5",
                               "--repeats", "1", "--json"])
    assert done.exit_code == 0, done.output
    row = json.loads(done.stdout.strip().splitlines()[-1])
    assert row["backend"] == "onnx" and row["model"] == "v3" and row["parameters"] == 1_462_273
    assert row["real_time_factor"] > 0


def test_auto_times_torch_and_onnx_once_and_remembers_the_faster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--backend auto` on the CPU: the first load measures both backends on real speech and keeps the faster
    by the margin rule (which one depends on the CPU: docs/performance.md); later loads read a settled choice,
    keyed by the weights, the CPU, the thread count and the library versions."""
    monkeypatch.setenv("VOCODER_CACHE_DIR", str(tmp_path / "cache"))
    choice_file = tmp_path / "cache" / "backend-choice.json"
    weights = tiny_weights(tmp_path / "tiny.safetensors")
    lines: list[str] = []
    first = load_vocoder(str(weights), backend="auto", notify=lines.append)
    assert len(lines) == 2 and lines[0].startswith("exporting ") and "timed torch and onnx on this machine" in lines[1]
    assert "best of 5" in lines[1] and "of the CPU meanwhile" in lines[1]
    stored = json.loads(choice_file.read_text())
    (key, record), = stored.items()
    assert f"{torch.get_num_threads()} threads" in key and "torch " in key and "ort " in key
    assert set(record["seconds"]) == {"torch", "onnx"} and record["audio_seconds"] == pytest.approx(2.0, abs=0.02)
    assert first.backend == record["backend"] == pick(record["seconds"]) and record["tries"] == 1
    assert 0.0 <= record["others_busy"] <= 1.0
    record["others_busy"] = 0.0  # as if timed on a quiet machine: settled
    choice_file.write_text(json.dumps({key: record}))
    lines.clear()
    again = load_vocoder(str(weights), backend="auto", notify=lines.append)
    assert again.backend == first.backend and not lines  # remembered: nothing measured, nothing said
    record["backend"] = "onnx" if first.backend == "torch" else "torch"  # the file decides, not a new timing
    choice_file.write_text(json.dumps({key: record}))
    assert load_vocoder(str(weights), backend="auto").backend == record["backend"]
    # a choice made while other programs used most of the CPU is timed again on the next load ...
    loaded = {**record, "others_busy": 0.9, "tries": 1}
    choice_file.write_text(json.dumps({key: loaded}))
    lines.clear()
    load_vocoder(str(weights), backend="auto", notify=lines.append)
    assert len(lines) == 1 and "timed torch and onnx" in lines[0]
    assert json.loads(choice_file.read_text())[key]["tries"] == 2
    # ... until MAX_LOADED_TRIES timings were made: then the least loaded one stands
    choice_file.write_text(json.dumps({key: {**loaded, "tries": MAX_LOADED_TRIES}}))
    lines.clear()
    assert load_vocoder(str(weights), backend="auto", notify=lines.append).backend == loaded["backend"] and not lines
