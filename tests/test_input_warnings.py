"""Hostile but usable inputs: a float WAV above full scale and a WAV shorter than its header are vocoded,
and each gets a warning naming the file and what was wrong (issue 11)."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from tests.helpers import tiny_weights, tone, write
from vocoder_cli.audio import (
    read_audio,
    read_audio_bytes,
    wav_shortfall,
    wav_truncation,
)
from vocoder_cli.cli.app import app

SR = 22050


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_weights(tmp_path_factory.mktemp("w") / "tiny.safetensors")


def loud_float_wav(path: Path) -> Path:
    """1 s float WAV whose peak is exactly 1.7 (4.61 dBFS); |x| > 1 on a known number of samples."""
    x = tone(1.0, SR, amp=1.0)
    x = (1.7 * x / np.abs(x).max()).astype(np.float32)
    return write(path, x, SR, subtype="FLOAT")


def _data_size_offset(payload: bytes) -> int:
    return payload.index(b"data") + 4


def header_promises_more(path: Path, extra_samples: int) -> Path:
    """A 16-bit mono WAV whose data chunk size field is patched ``extra_samples`` samples larger."""
    buf = io.BytesIO()
    sf.write(buf, tone(1.0, SR), SR, format="WAV", subtype="PCM_16")
    payload = bytearray(buf.getvalue())
    at = _data_size_offset(payload)
    size = struct.unpack("<I", payload[at : at + 4])[0]
    payload[at : at + 4] = struct.pack("<I", size + 2 * extra_samples)
    path.write_bytes(bytes(payload))
    return path


def test_float_wav_above_full_scale_is_read_with_its_peak(tmp_path: Path) -> None:
    path = loud_float_wav(tmp_path / "loud.wav")
    on_disk = sf.read(path, dtype="float32")[0]
    assert np.abs(on_disk).max() == pytest.approx(1.7, abs=1e-6)  # soundfile returns float samples unclipped
    loaded = read_audio(path, SR)
    assert len(loaded.warnings) == 1
    over = int(np.count_nonzero(np.abs(on_disk) > 1.0))
    assert over > 1000
    assert loaded.warnings[0].startswith(f"samples exceed full scale: peak 1.700 (+4.6 dBFS), {over} samples above 1.0")
    assert np.abs(loaded.wav).max() == pytest.approx(1.7, abs=1e-6)  # not silently clipped or normalised


def test_libsndfile_hides_a_short_data_chunk_and_we_find_it(tmp_path: Path) -> None:
    path = header_promises_more(tmp_path / "short.wav", extra_samples=5000)
    # libsndfile clamps to what is there: neither sf.info nor sf.read says anything is missing.
    assert sf.info(path).frames == SR and sf.read(path)[0].shape == (SR,)
    short = wav_shortfall(path)
    assert short is not None
    assert (short.declared, short.held, short.missing, short.unit) == (SR + 5000, SR, 5000, "samples")
    loaded = read_audio(path, SR)
    assert loaded.warnings == (
        f"truncated WAV: the header promises {SR + 5000} samples, the file holds {SR} (5000 samples missing, "
        "0.227 s); vocoded what is there",
    )
    assert loaded.wav.shape == (SR,)
    assert wav_truncation(path) == f"truncated (the WAV header promises {SR + 5000} samples, the file holds {SR})"


def test_a_file_cut_mid_sample_counts_whole_samples(tmp_path: Path) -> None:
    whole = write(tmp_path / "whole.wav", tone(1.0, SR), SR, subtype="PCM_16")
    cut = tmp_path / "cut.wav"
    cut.write_bytes(whole.read_bytes()[:-3001])  # 1500.5 samples gone
    short = wav_shortfall(cut)
    assert short is not None and (short.declared, short.held, short.missing) == (SR, SR - 1501, 1501)
    assert sf.info(cut).frames == SR - 1501
    # the same bytes from a pipe give the same warning
    loaded = read_audio_bytes(cut.read_bytes(), SR)
    assert "(1501 samples missing, 0.068 s)" in loaded.warnings[0]


def test_clean_files_and_streaming_headers_give_no_warning(tmp_path: Path) -> None:
    clean = write(tmp_path / "clean.wav", tone(1.0, SR, amp=0.76), SR, subtype="FLOAT")  # peak 0.988
    assert read_audio(clean).warnings == ()
    flac = write(tmp_path / "clean.flac", tone(1.0, SR), SR)
    assert read_audio(flac).warnings == () and wav_shortfall(flac) is None
    # a streaming writer leaves the size unknown (0xFFFFFFFF): not a truncation
    payload = bytearray(write(tmp_path / "s.wav", tone(0.5, SR), SR, subtype="PCM_16").read_bytes())
    at = _data_size_offset(payload)
    payload[at : at + 4] = b"\xff\xff\xff\xff"
    (tmp_path / "stream.wav").write_bytes(bytes(payload))
    assert wav_shortfall(tmp_path / "stream.wav") is None


def test_resynth_vocodes_hostile_files_and_names_each_problem(tmp_path: Path, weights: Path) -> None:
    src = tmp_path / "in"
    loud_float_wav(src / "loud.wav")
    header_promises_more(src / "short.wav", extra_samples=5000)
    write(src / "good.wav", tone(1.0, SR), SR)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["resynth", str(src), str(out), "--weights", str(weights)])
    assert result.exit_code == 0, result.output  # warnings are not failures
    for name in ("loud", "short", "good"):
        wav, sr = sf.read(out / f"{name}.wav")
        assert sr == SR and wav.shape == (SR // 256 * 256,) and np.abs(wav).max() > 0.01
    lines = [line for line in result.stderr.splitlines() if line.startswith("warning ")]
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith(f"warning {src / 'loud.wav'}: samples exceed full scale: peak 1.700 (+4.6 dBFS)")
    assert lines[1].startswith(f"warning {src / 'short.wav'}: truncated WAV: the header promises {SR + 5000} samples")
    assert "3 files written, 2 with warnings |" in result.stderr


def test_resynth_from_a_pipe_warns_about_a_truncated_wav(tmp_path: Path, weights: Path) -> None:
    data = header_promises_more(tmp_path / "p.wav", extra_samples=2205).read_bytes()
    result = CliRunner().invoke(app, ["resynth", "-", "-", "--weights", str(weights)], input=data)
    assert result.exit_code == 0, result.stderr
    assert sf.read(io.BytesIO(result.stdout_bytes))[0].shape == (SR // 256 * 256,)
    assert "warning <stdin>: truncated WAV: the header promises 24255 samples, the file holds 22050 (2205 samples " \
           "missing, 0.100 s)" in result.stderr
