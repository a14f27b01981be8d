"""`vocoder mels`: the official formula to float precision, batched == alone, resynth's input and output rules,
the config record, and the round trip `mels` -> `resynth --from-mels` == `resynth`."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from tests.conftest import requires_cuda
from tests.helpers import tiny_weights, tone, write
from tests.test_mel import reference_mel
from vocoder_cli.cli.app import app
from vocoder_cli.mel import MEL_PRESETS, MelConfig, MelSpectrogram
from vocoder_cli.melfiles import batched_mels, read_config_file

runner = CliRunner()
SR = 22050


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_weights(tmp_path_factory.mktemp("w") / "tiny.safetensors")


def run(*args: str, input: bytes | None = None):  # noqa: A002
    return runner.invoke(app, ["mels", *args], input=input)


def test_real_speech_equals_the_official_formula_batched(tmp_path: Path, data_dir: Path, weights: Path) -> None:
    """Eight real LJSpeech clips of different lengths in one batch: each .npy equals the official recipe (numpy
    float64, librosa filterbank) to float32 rounding, with frames == samples // hop."""
    src = data_dir / "ljspeech" / "dev" / "wavs"
    result = run(str(src), str(tmp_path / "m"), "--weights", str(weights), "--batch-size", "8")
    assert result.exit_code == 0, result.output
    clips = sorted(src.glob("*.flac"))
    assert len(clips) == 8
    worst = 0.0
    for clip in clips:
        wav, sr = sf.read(clip, dtype="float32")
        assert sr == SR
        mel = np.load(tmp_path / "m" / f"{clip.stem}.npy")
        assert mel.dtype == np.float32 and mel.shape == (80, len(wav) // 256)
        worst = max(worst, float(np.abs(mel - reference_mel(wav, MelConfig())).max()))
    assert worst <= 6e-7  # half an ulp of float32 at |log-mel| in [8, 16) is 4.8e-7 (test_mel.py's bound)


@pytest.mark.parametrize("preset", ["hifigan-22k", "torchaudio-22k", "hifigan-44k"])
def test_batched_equals_alone(preset: str) -> None:
    cfg = MEL_PRESETS[preset]
    gen = torch.Generator().manual_seed(0)
    wavs = [torch.randn(n, generator=gen) * 0.1 for n in (cfg.n_fft + 1, 5000, 22050, 7777)]
    frontend = MelSpectrogram(cfg)
    batched = batched_mels(frontend, wavs)
    for wav, mel in zip(wavs, batched):
        alone = frontend(wav)[0]
        assert mel.shape == alone.shape == (cfg.n_mels, cfg.num_frames(len(wav)))
        assert torch.equal(mel, alone)


def test_round_trip_through_resynth_equals_resynth(tmp_path: Path, weights: Path) -> None:
    src = tmp_path / "in"
    write(src / "a.wav", tone(1.0, SR), SR)
    write(src / "sub" / "b.wav", tone(0.6, SR, freq=330.0), SR)
    assert run(str(src), str(tmp_path / "m"), "--weights", str(weights)).exit_code == 0
    assert sorted(p.relative_to(tmp_path / "m").as_posix() for p in (tmp_path / "m").rglob("*.npy")) == [
        "a.npy", "sub/b.npy",
    ]  # fmt: skip
    common = ["--weights", str(weights), "--float", "--quiet"]
    direct = runner.invoke(app, ["resynth", str(src), str(tmp_path / "direct"), *common])
    via = runner.invoke(app, ["resynth", "--from-mels", str(tmp_path / "m"), str(tmp_path / "via"), *common])
    assert direct.exit_code == 0 and via.exit_code == 0, via.output
    for name in ("a.wav", "sub/b.wav"):
        a, _ = sf.read(tmp_path / "direct" / name, dtype="float32")
        b, _ = sf.read(tmp_path / "via" / name, dtype="float32")
        assert a.shape == b.shape and np.abs(a).max() > 0.01
        assert np.array_equal(a, b)


def test_config_recorded_and_other_configs_refused(tmp_path: Path, weights: Path) -> None:
    src = write(tmp_path / "a.wav", tone(0.5, SR), SR)
    out = tmp_path / "m"
    assert run(str(src), str(out), "--weights", str(weights)).exit_code == 0
    record = json.loads((out / "mel_config.json").read_text())
    assert record["written_by"] == "vocoder mels" and record["source"] == str(weights)
    assert read_config_file(out / "mel_config.json") == MelConfig()
    # a second config into the same folder is a usage error before any work; nothing is replaced
    before = (out / "a.npy").read_bytes()
    result = run(str(src), str(out), "--preset", "hifigan-16k", "--overwrite")
    assert result.exit_code == 0  # --overwrite: the user asked for it
    result = run(str(src), str(tmp_path / "m2"), "--preset", "hifigan-16k")
    assert result.exit_code == 0 and np.load(tmp_path / "m2" / "a.npy").shape == (80, 8000 // 256)
    result = run(str(src), str(tmp_path / "m2"), "--weights", str(weights), "--skip-existing")
    assert result.exit_code == 2 and "records mels of another config (different sample_rate)" in result.stderr
    assert before != (out / "a.npy").read_bytes()  # --overwrite above did replace it (16 kHz mels now)
    # --config reads the record, and a single .npy output gets NAME.mel_config.json beside it
    result = run(str(src), str(tmp_path / "one.npy"), "--config", str(tmp_path / "m2" / "mel_config.json"))
    assert result.exit_code == 0, result.output
    assert read_config_file(tmp_path / "one.mel_config.json") == MEL_PRESETS["hifigan-16k"]


def test_official_config_json_is_read(tmp_path: Path) -> None:
    official = {
        "resblock": "1", "upsample_rates": [8, 8, 2, 2], "upsample_kernel_sizes": [16, 16, 4, 4],
        "upsample_initial_channel": 512, "resblock_kernel_sizes": [3, 7, 11],
        "resblock_dilation_sizes": [[1, 3, 5], [1, 3, 5], [1, 3, 5]], "segment_size": 8192, "num_mels": 80,
        "n_fft": 1024, "hop_size": 256, "win_size": 1024, "sampling_rate": 22050, "fmin": 0, "fmax": 8000,
    }  # fmt: skip
    path = tmp_path / "config.json"
    path.write_text(json.dumps(official))
    assert read_config_file(path) == MelConfig()


def test_stdin_to_stdout_and_existing_files(tmp_path: Path, weights: Path) -> None:
    buf = io.BytesIO()
    sf.write(buf, tone(0.8, SR), SR, format="WAV", subtype="PCM_16")
    result = run("-", "-", "--weights", str(weights), input=buf.getvalue())
    assert result.exit_code == 0, result.stderr
    mel = np.load(io.BytesIO(result.stdout_bytes), allow_pickle=False)
    assert mel.shape == (80, int(0.8 * SR) // 256)
    src = write(tmp_path / "a.wav", tone(0.5, SR), SR)
    (tmp_path / "mine.npy").write_bytes(b"not ours")
    result = run(str(src), str(tmp_path / "mine.npy"), "--weights", str(weights))
    assert result.exit_code == 2 and "already exists" in result.stderr
    assert (tmp_path / "mine.npy").read_bytes() == b"not ours"


def test_bad_inputs_are_named_and_the_batch_goes_on(tmp_path: Path, weights: Path) -> None:
    src = tmp_path / "in"
    write(src / "good.wav", tone(0.5, SR), SR)
    write(src / "short.wav", tone(0.01, SR), SR)  # 220 samples: shorter than the 384-sample padding
    (src / "broken.wav").write_bytes(b"RIFF....not a wav")
    listing = tmp_path / "list.txt"
    listing.write_text(f"{src / 'good.wav'}\n{src / 'short.wav'}\n{src / 'broken.wav'}\n")
    result = run(str(tmp_path / "out"), "--files-from", str(listing), "--weights", str(weights))
    assert result.exit_code == 1
    assert "short.wav: too short (220 samples at 22050 Hz; needs > 384)" in result.stderr
    assert "broken.wav" in result.stderr and "1 file written" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.npy", "mel_config.json"]


@requires_cuda
def test_cuda_equals_cpu(tmp_path: Path, weights: Path) -> None:
    src = tmp_path / "in"
    for i, seconds in enumerate((0.3, 1.0, 2.5)):
        write(src / f"{i}.wav", tone(seconds, SR, freq=200.0 + 50 * i), SR)
    for device in ("cpu", "cuda"):
        result = run(str(src), str(tmp_path / device), "--weights", str(weights), "--device", device)
        assert result.exit_code == 0, result.output
    for i in range(3):
        cpu, gpu = np.load(tmp_path / "cpu" / f"{i}.npy"), np.load(tmp_path / "cuda" / f"{i}.npy")
        assert cpu.shape == gpu.shape and np.abs(cpu - gpu).max() <= 1e-5  # float64 STFT on both


def test_shards_add_up_to_the_unsharded_run(tmp_path: Path, weights: Path) -> None:
    """`mels --shard K/N` follows the rule of every batch command: each file in exactly one shard, the
    union equal to one unsharded run byte for byte (each mel is computed on its own: batching never pads
    one file with another)."""
    src = tmp_path / "wavs"
    for i, freq in enumerate((110.0, 220.0, 330.0, 440.0, 550.0)):
        write(src / f"clip{i}.wav", tone(0.3 + 0.2 * i, 22050, freq), 22050)
    assert run(str(src), str(tmp_path / "all"), "-w", str(weights), "-q").exit_code == 0
    for k in (1, 2, 3):
        result = run(str(src), str(tmp_path / "sharded"), "-w", str(weights), "--shard", f"{k}/3")
        assert result.exit_code == 0, result.output
        assert f"shard {k}/3:" in result.output
    whole = sorted(p.name for p in (tmp_path / "all").glob("*.npy"))
    assert whole == sorted(p.name for p in (tmp_path / "sharded").glob("*.npy")) and len(whole) == 5
    for name in whole:
        assert (tmp_path / "all" / name).read_bytes() == (tmp_path / "sharded" / name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "sharded").glob(".vocoder-failures-shard-*")) == [
        f".vocoder-failures-shard-{k}-of-3.tsv" for k in (1, 2, 3)]
