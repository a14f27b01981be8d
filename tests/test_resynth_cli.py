"""`vocoder resynth` as a user runs it: every input shape, every bad input, reruns, pipes."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from tests.helpers import tiny_weights, tone, write
from vocoder_cli.cli.app import app
from vocoder_cli.mel import MelConfig, MelSpectrogram
from vocoder_cli.synthesis.vocoder import load_vocoder

runner = CliRunner()
SR = 22050


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_weights(tmp_path_factory.mktemp("w") / "tiny.safetensors")


def run(*args: str, input: bytes | None = None):  # noqa: A002
    return runner.invoke(app, ["resynth", *args], input=input)


def test_folder_in_folder_out_mirrors_relative_paths(tmp_path: Path, weights: Path) -> None:
    src = tmp_path / "in"
    write(src / "a.wav", tone(1.0, SR), SR)
    write(src / "sub" / "b.flac", tone(0.5, 16000), 16000)
    result = run(str(src), str(tmp_path / "out"), "--weights", str(weights))
    assert result.exit_code == 0, result.output
    a, sr_a = sf.read(tmp_path / "out" / "a.wav")
    b, sr_b = sf.read(tmp_path / "out" / "sub" / "b.wav")
    assert sr_a == sr_b == SR
    assert len(a) == SR // 256 * 256  # frames * hop at the model's rate
    assert len(b) == (SR // 2) // 256 * 256  # resampled 16 kHz -> 22.05 kHz first
    assert np.abs(a).max() > 0.01
    assert "2 files written" in result.stderr and "RTF" in result.stderr
    assert not list((tmp_path / "out").rglob("*.part"))


def test_file_to_file_with_out_sr_and_float(tmp_path: Path, weights: Path) -> None:
    src = write(tmp_path / "x.wav", tone(1.0, SR), SR)
    out = tmp_path / "y.wav"
    result = run(str(src), str(out), "--weights", str(weights), "--out-sr", "16000", "--float")
    assert result.exit_code == 0, result.output
    info = sf.info(out)
    assert info.samplerate == 16000 and info.subtype == "FLOAT"
    assert abs(info.frames - 16000 * (SR // 256 * 256) / SR) <= 1


def test_stdin_to_stdout_pipe(tmp_path: Path, weights: Path) -> None:
    buf = io.BytesIO()
    sf.write(buf, tone(0.8, SR), SR, format="WAV", subtype="PCM_16")
    result = run("-", "-", "--weights", str(weights), input=buf.getvalue())
    assert result.exit_code == 0, result.stderr
    wav, sr = sf.read(io.BytesIO(result.stdout_bytes))
    assert sr == SR and len(wav) == int(0.8 * SR) // 256 * 256
    assert result.stdout_bytes[:4] == b"RIFF"


def test_files_from_list(tmp_path: Path, weights: Path) -> None:
    a = write(tmp_path / "d1" / "a.wav", tone(0.5, SR), SR)
    b = write(tmp_path / "d2" / "b.wav", tone(0.5, SR), SR)
    listing = tmp_path / "list.txt"
    listing.write_text(f"# inputs\n{a}\n\n{b}\n")
    result = run(str(tmp_path / "out"), "--files-from", str(listing), "--weights", str(weights))
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").rglob("*.wav")) == ["a.wav", "b.wav"]
    result = run(str(tmp_path / "out2"), "--files-from", "-", "--weights", str(weights), input=f"{a}\n".encode())
    assert result.exit_code == 0 and (tmp_path / "out2" / "a.wav").exists()


def _nan_file(path: Path) -> Path:
    sf.write(path, np.full(4000, np.nan, dtype=np.float32), SR, subtype="FLOAT")
    return path


def _truncated_wav(path: Path) -> Path:
    buf = io.BytesIO()
    sf.write(buf, tone(1.0, SR), SR, format="WAV", subtype="PCM_16")
    path.write_bytes(buf.getvalue()[:30])  # header cut in the middle
    return path


def _zero_length_wav(path: Path) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
    return path


def test_bad_inputs_never_stop_the_batch(tmp_path: Path, weights: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "empty.wav").write_bytes(b"")
    _truncated_wav(src / "truncated.wav")
    (src / "corrupt.wav").write_bytes(b"RIFF" + np.random.default_rng(0).bytes(5000))
    (src / "notes.wav").write_text("this is not audio\n")
    _zero_length_wav(src / "zero.wav")
    _nan_file(src / "nan.wav")
    write(src / "tiny.wav", np.zeros(100, np.float32), SR)
    write(src / "sr8k.wav", tone(1.0, 8000), 8000)
    write(src / "sr96k.wav", tone(1.0, 96000), 96000)
    write(src / "stereo.wav", tone(1.0, 44100, channels=2), 44100)
    write(src / "silence.wav", np.zeros(SR, np.float32), SR)
    result = run(str(src), str(tmp_path / "out"), "--weights", str(weights))
    assert result.exit_code == 1
    err = result.stderr
    expected_failures = {
        "empty.wav": "empty file",
        "truncated.wav": "cannot decode",
        "corrupt.wav": "cannot decode",
        "notes.wav": "cannot decode",
        "zero.wav": "zero-length",
        "nan.wav": "NaN",
        "tiny.wav": "too short",
    }
    for name, reason in expected_failures.items():
        line = next((ln for ln in err.splitlines() if name in ln), "")
        assert reason in line, (name, err)
    for name in ("sr8k", "sr96k", "stereo", "silence"):
        wav, sr = sf.read(tmp_path / "out" / f"{name}.wav")
        assert sr == SR and len(wav) == SR // 256 * 256, name
    assert "4 files written" in err and "7 failed" in err
    assert not (tmp_path / "out" / "empty.wav").exists()


def test_ten_minute_file_is_vocoded_in_chunks(tmp_path: Path, weights: Path) -> None:
    long = write(tmp_path / "long.flac", tone(600.0, SR, amp=0.3), SR)
    result = run(str(long), str(tmp_path / "out"), "--weights", str(weights), "--chunk-frames", "4096")
    assert result.exit_code == 0, result.output
    info = sf.info(tmp_path / "out" / "long.wav")
    assert info.frames == 600 * SR // 256 * 256


def test_skip_existing_does_only_what_is_missing(tmp_path: Path, weights: Path) -> None:
    src = tmp_path / "in"
    for i in range(3):
        write(src / f"{i}.wav", tone(0.5, SR, freq=200 + 50 * i), SR)
    out = tmp_path / "out"
    assert run(str(src), str(out), "--weights", str(weights)).exit_code == 0
    (out / "1.wav").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.wav")}
    result = run(str(src), str(out), "--weights", str(weights), "--skip-existing")
    assert result.exit_code == 0
    assert "1 file written, 2 skipped" in result.stderr
    after = {p.name: p.stat().st_mtime_ns for p in out.glob("*.wav")}
    assert after["0.wav"] == before["0.wav"] and after["2.wav"] == before["2.wav"] and "1.wav" in after


def test_from_mels_accepts_fitting_mels_and_refuses_others(tmp_path: Path, weights: Path) -> None:
    mel = MelSpectrogram(MelConfig())(torch.from_numpy(tone(1.0, SR)))[0]
    src = tmp_path / "mels"
    src.mkdir()
    np.save(src / "good.npy", mel.numpy())
    torch.save(mel.unsqueeze(0), src / "good_pt.pt")
    np.save(src / "wrong_bins.npy", np.zeros((100, 50), np.float32))
    np.save(src / "linear.npy", np.exp(mel.numpy()))
    np.save(src / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    result = run(str(src), str(tmp_path / "out"), "--weights", str(weights), "--from-mels")
    assert result.exit_code == 1
    assert sf.info(tmp_path / "out" / "good.wav").frames == mel.shape[-1] * 256
    assert (tmp_path / "out" / "good_pt.wav").exists()
    err = result.stderr
    assert "wrong_bins.npy" in err and "expected a natural-log mel of shape [80, frames]" in err
    assert "linear.npy" in err and "linear-amplitude" in err
    assert "pickled.npy" in err and "cannot read mel" in err


def test_vocoded_audio_matches_the_input_mel(tmp_path: Path) -> None:
    """Griffin-Lim needs no weights: its output's mel must be close to the input's (real vocoding)."""
    wav = tone(1.0, SR)
    src = write(tmp_path / "t.wav", wav, SR)
    result = run(str(src), str(tmp_path / "gl.wav"), "--weights", "griffin-lim")
    assert result.exit_code == 0, result.output
    out, _ = sf.read(tmp_path / "gl.wav", dtype="float32")
    mel = MelSpectrogram(MelConfig())
    ref = mel(torch.from_numpy(wav[: len(out)]))
    got = mel(torch.from_numpy(out))
    assert (ref - got).abs().mean() < 0.5  # mean log-mel distance (nats); a wrong frame alignment gives > 1


def test_usage_errors_exit_2(tmp_path: Path, weights: Path) -> None:
    assert run(str(tmp_path)).exit_code == 2  # no output given
    result = run(str(tmp_path / "missing.wav"), str(tmp_path / "o"), "--weights", str(tmp_path / "nope.safetensors"))
    assert result.exit_code == 2 and "nope.safetensors" in result.stderr
    src = tmp_path / "two"
    write(src / "a.wav", tone(0.5, SR), SR)
    write(src / "b.wav", tone(0.5, SR), SR)
    result = run(str(src), str(tmp_path / "single.wav"), "--weights", str(weights))
    assert result.exit_code == 2 and "2 inputs cannot go to the single output" in result.stderr


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    """The write fails half-way (a 4 KiB file-size limit, as a full disk would): the temporary file
    already holds 4 KiB then, and must be gone afterwards; the previous file stays as it was."""
    import errno
    import subprocess
    import sys

    script = (
        "import resource, signal, sys\n"
        "import numpy as np\n"
        "from pathlib import Path\n"
        "from vocoder_cli.audio import save_audio\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"  # get EFBIG instead of being killed
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))\n"
        "try:\n"
        "    save_audio(Path(sys.argv[1]), np.zeros(22050, np.float32), 22050)\n"  # 44 KB
        "except OSError as exc:\n"
        "    print(exc.errno)\n"
    )
    target = tmp_path / "out.wav"
    target.write_bytes(b"the previous version")
    out = subprocess.run([sys.executable, "-c", script, str(target)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(errno.EFBIG)], out  # it failed mid-write, after 4096 bytes
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]  # no .out.wav.*.part left behind
    assert target.read_bytes() == b"the previous version"


def test_load_vocoder_griffin_lim() -> None:
    vocoder = load_vocoder("griffin-lim")
    assert vocoder.hop_length == 256 and vocoder.mel.sample_rate == SR


def test_default_weights_offline_say_what_to_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOCODER_DATA_DIR", str(tmp_path / "data"))
    src = write(tmp_path / "a.wav", tone(0.5, SR), SR)
    result = run(str(src), str(tmp_path / "out"), "--offline")
    assert result.exit_code == 2
    assert "offline mode is on" in result.stderr and "vocoder weights pull hifigan-universal-v1" in result.stderr


def test_inputs_sharing_an_output_name_survive_or_are_refused_with_reason(tmp_path: Path, weights: Path) -> None:
    src = tmp_path / "in"
    write(src / "x.flac", tone(0.5, SR), SR)  # x.flac, x.ogg and X.wav all wanted out/x.wav
    write(src / "x.ogg", tone(1.0, 16000), 16000)
    write(src / "X.wav", tone(1.5, SR), SR)
    write(src / "Take.wav", tone(0.6, SR), SR)  # Take.wav / take.wav: one file on macOS and Windows
    write(src / "take.wav", tone(0.7, SR), SR)
    out = tmp_path / "out"
    result = run(str(src), str(out), "--weights", str(weights))
    assert result.exit_code == 1, result.output
    frames = {p.name: sf.info(p).frames for p in out.iterdir()}
    assert frames == {  # each output holds its own input (lengths tell them apart)
        "x.flac.wav": SR // 2 // 256 * 256,
        "x.ogg.wav": SR // 256 * 256,
        "X.wav.wav": int(1.5 * SR) // 256 * 256,
        "Take.wav": int(0.6 * SR) // 256 * 256,
    }
    err = " ".join(result.stderr.split())
    assert f"renamed {src / 'x.ogg'} -> {out / 'x.ogg.wav'} (another input has the same name)" in err
    assert f"failed {src / 'take.wav'}: its output {out / 'take.wav'} and {out / 'Take.wav'}" in err
    assert "4 files written, 1 failed" in err
    # two folders mirrored into one: the second a.wav is refused, naming the first
    write(tmp_path / "d1" / "a.wav", tone(0.5, SR), SR)
    write(tmp_path / "d2" / "a.wav", tone(0.8, SR), SR)
    result = run(str(tmp_path / "d1"), str(tmp_path / "d2"), str(tmp_path / "o2"), "--weights", str(weights))
    assert result.exit_code == 1
    assert sf.info(tmp_path / "o2" / "a.wav").frames == SR // 2 // 256 * 256
    assert f"is also the output of {tmp_path / 'd1' / 'a.wav'}" in " ".join(result.stderr.split())


def test_existing_outputs_are_refused_kept_or_replaced_as_asked(tmp_path: Path, weights: Path) -> None:
    src = tmp_path / "in"
    for name in ("a", "b", "c"):
        write(src / f"{name}.wav", tone(0.5, SR), SR)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.wav").write_bytes(b"the user's own recording")
    result = run(str(src), str(out), "--weights", str(weights))
    assert result.exit_code == 1, result.output
    assert (out / "a.wav").read_bytes() == b"the user's own recording"
    assert sf.info(out / "b.wav").frames == sf.info(out / "c.wav").frames == SR // 2 // 256 * 256
    err = " ".join(result.stderr.split())
    assert f"refused {src / 'a.wav'}: {out / 'a.wav'} already exists: not replaced (add --overwrite" in err
    assert "--skip-existing to keep it" in err and "2 files written, 1 refused" in err
    again = run(str(src), str(out), "--weights", str(weights))  # a plain re-run replaces nothing at all
    assert again.exit_code == 1 and "0 files written, 3 refused" in again.stderr
    assert "nothing vocoded" in again.stderr and "nan" not in again.stderr
    kept = run(str(src), str(out), "--weights", str(weights), "--skip-existing")
    assert kept.exit_code == 0 and "0 files written, 3 skipped" in kept.stderr
    assert (out / "a.wav").read_bytes() == b"the user's own recording"
    replaced = run(str(src), str(out), "--weights", str(weights), "--overwrite")
    assert replaced.exit_code == 0 and "3 files written" in replaced.stderr
    assert sf.info(out / "a.wav").frames == SR // 2 // 256 * 256
    both = run(str(src), str(out), "--weights", str(weights), "--overwrite", "--skip-existing")
    assert both.exit_code == 2 and "--overwrite and --skip-existing contradict" in both.stderr


def test_a_single_named_output_that_exists_is_a_usage_error_before_any_work(tmp_path: Path, weights: Path) -> None:
    src = write(tmp_path / "a.wav", tone(0.5, SR), SR)
    target = tmp_path / "b.wav"
    target.write_bytes(b"keep me")
    missing = str(tmp_path / "no-such-weights.safetensors")  # never reached: refused before loading weights
    result = run(str(src), str(target), "--weights", missing)
    assert result.exit_code == 2
    assert f"{target} already exists: add --overwrite to replace it" in " ".join(result.stderr.split())
    assert "no-such-weights" not in result.stderr and target.read_bytes() == b"keep me"
    result = run(str(src), str(target), "--weights", str(weights), "--skip-existing")
    assert result.exit_code == 0 and target.read_bytes() == b"keep me" and "1 skipped" in result.stderr
    result = run(str(src), str(target), "--weights", str(weights), "--overwrite")
    assert result.exit_code == 0 and sf.info(target).frames == SR // 2 // 256 * 256


def test_overlapping_input_and_output_trees_are_refused(tmp_path: Path, weights: Path) -> None:
    src = tmp_path / "in"
    write(src / "a.wav", tone(0.5, SR), SR)
    write(src / "sub" / "b.wav", tone(0.5, SR), SR)
    (tmp_path / "link").symlink_to(src, target_is_directory=True)
    cases = [
        ([str(src), str(src)], "same folder"),
        ([str(src), str(src / "out")], "is inside input folder"),
        ([str(src / "sub"), str(src)], "is inside output folder"),
        ([str(src), str(tmp_path / "link" / "out")], "is inside input folder"),  # through a link
        ([str(src / "a.wav"), str(src)], "is inside output folder"),  # its output would be the input itself
        ([str(src / "a.wav"), str(tmp_path / "link" / "a.wav")], "same file"),
        ([str(src / "sub"), str(src / "sub" / "x.wav")], "is inside input folder"),
    ]
    for args, words in cases:
        result = run(*args, "--weights", str(weights))
        err = " ".join(result.stderr.split())
        assert result.exit_code == 2 and words in err, (args, err)
        assert args[0] in err and args[1] in err
    assert sorted(p.relative_to(src).as_posix() for p in src.rglob("*")) == ["a.wav", "sub", "sub/b.wav"]
    listing = tmp_path / "list.txt"
    listing.write_text(f"{tmp_path / 'elsewhere.wav'}\n{src / 'out' / 'old.wav'}\n")  # --files-from is checked too
    result = run(str(src / "out"), "--files-from", str(listing), "--weights", str(weights))
    assert result.exit_code == 1 and result.stderr.count("file not found") == 2  # missing inputs fail themselves
    write(src / "out" / "old.wav", tone(0.5, SR), SR)
    result = run(str(src / "out"), "--files-from", str(listing), "--weights", str(weights))
    assert result.exit_code == 2 and "is inside output folder" in result.stderr


def test_summary_says_nothing_vocoded_and_agrees_in_number(tmp_path: Path, weights: Path) -> None:
    (tmp_path / "bad.wav").write_bytes(b"")
    result = run(str(tmp_path / "bad.wav"), str(tmp_path / "out"), "--weights", str(weights))
    assert result.exit_code == 1
    summary = result.stderr.strip().splitlines()[-1]
    assert summary.startswith("0 files written, 1 failed | nothing vocoded |") and "nan" not in summary
    write(tmp_path / "one.wav", tone(0.5, SR), SR)
    result = run(str(tmp_path / "one.wav"), str(tmp_path / "out"), "--weights", str(weights))
    summary = result.stderr.strip().splitlines()[-1]
    assert result.exit_code == 0 and summary.startswith("1 file written |") and "RTF" in summary
