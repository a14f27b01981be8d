"""Output containers: the suffix names the container and the file really is one; what libsndfile cannot write
at that rate or sample format is refused before any work, with one line and exit code 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from tests.helpers import tiny_weights, tone, write
from vocoder_cli.audio import (
    CONTAINERS,
    output_problem,
    save_audio,
    to_pcm16,
    writable_suffixes,
)
from vocoder_cli.cli.app import app
from vocoder_cli.errors import AudioError

runner = CliRunner()
SR = 22050
# What `sf.info(...).format` reports for each suffix this libsndfile writes.
FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG", ".opus": "OGG", ".mp3": "MP3", ".aiff": "AIFF",
           ".aif": "AIFF", ".au": "AU", ".caf": "CAF", ".w64": "W64"}  # fmt: skip
LOSSY = {".ogg", ".opus", ".mp3"}
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tiny_weights(tmp_path_factory.mktemp("w") / "tiny.safetensors"))


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write(tmp_path_factory.mktemp("in") / "in.wav", tone(0.5, SR), SR)


def test_this_libsndfile_writes_every_container_the_table_names() -> None:
    # soundfile 0.12+ bundles libsndfile >= 1.1 (MP3 and Opus): everything in the table is writable here
    assert writable_suffixes() == tuple(CONTAINERS)
    assert set(CONTAINERS) == set(FORMATS)


@pytest.mark.parametrize("suffix", list(FORMATS))
def test_save_audio_writes_the_container_its_suffix_names(tmp_path: Path, suffix: str) -> None:
    rate = 24000 if suffix == ".opus" else SR
    wav = tone(0.5, rate, amp=0.5)
    path = save_audio(tmp_path / f"x{suffix}", wav, rate)
    info = sf.info(path)
    assert info.format == FORMATS[suffix] and info.samplerate == rate
    if suffix == ".opus":
        assert info.subtype == "OPUS"
    if suffix == ".ogg":
        assert info.subtype == "VORBIS"
    back, _ = sf.read(path, dtype="float32")
    if suffix in LOSSY:  # a lossy codec: close, not equal (the codec's delay is removed by libsndfile)
        n = min(back.size, wav.size)
        assert abs(back.size - wav.size) < 0.05 * wav.size
        assert np.corrcoef(back[:n], wav[:n])[0, 1] > 0.9
    else:  # 16-bit PCM: exactly the samples scaled by 32767
        assert np.array_equal(sf.read(path, dtype="int16")[0], to_pcm16(wav))
    assert not list(tmp_path.glob(".*part"))


@pytest.mark.parametrize("suffix", [".wav", ".aiff", ".au", ".caf", ".w64"])
def test_float_output_is_32_bit_float_where_the_container_has_it(tmp_path: Path, suffix: str) -> None:
    wav = tone(0.2, SR) * 1.5  # above full scale: float keeps it
    path = save_audio(tmp_path / f"x{suffix}", wav, SR, "FLOAT")
    assert sf.info(path).subtype == "FLOAT"
    assert np.array_equal(sf.read(path, dtype="float32")[0], wav)


@pytest.mark.parametrize(
    ("name", "sr", "subtype", "problem"),
    [
        ("x.opus", 22050, "PCM_16", "Ogg Opus (.opus) takes only 8000, 12000, 16000, 24000, 48000 Hz, not 22050 Hz"),
        ("x.mp3", 96000, "PCM_16", "MP3 (.mp3) takes only 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100"),
        ("x.ogg", 384000, "PCM_16", "Ogg Vorbis (.ogg) takes at most 200000 Hz, not 384000 Hz"),
        ("x.flac", 768000, "PCM_16", "FLAC (.flac) takes at most 655350 Hz"),
        ("x.flac", 22050, "FLOAT", "FLAC (.flac) holds 16-bit samples here, not 32-bit float: drop --float"),
        ("x.mp3", 22050, "FLOAT", "MP3 (.mp3) is a lossy codec, not 32-bit float"),
        ("x.xyz", 22050, "PCM_16", ".xyz is not an audio format this tool writes: give an audio file name"),
        ("x", 22050, "PCM_16", "no suffix names the audio format"),
        ("x.wav", 22050, "PCM_24", "unknown sample format 'PCM_24'"),
    ],
)
def test_what_a_container_cannot_hold_is_named(tmp_path: Path, name: str, sr: int, subtype: str, problem: str) -> None:
    found = output_problem(name, sr, subtype)
    assert found is not None and problem in found
    with pytest.raises(AudioError, match="x"):
        save_audio(tmp_path / name, np.zeros(100, np.float32), sr, subtype)
    assert not list(tmp_path.iterdir())  # nothing written, not even a temporary file


def test_tts_writes_the_named_containers(tmp_path: Path, weights: str) -> None:
    for name, extra in [("a.mp3", []), ("a.ogg", []), ("a.flac", []), ("a.opus", ["--out-sr", "48000"]),
                        ("a.aiff", ["--float"]), ("a.caf", [])]:  # fmt: skip
        result = runner.invoke(app, ["tts", "Hello there.", "-o", str(tmp_path / name), "-w", weights, *extra])
        assert result.exit_code == 0, (name, result.output)
        info = sf.info(tmp_path / name)
        assert info.format == FORMATS[Path(name).suffix] and info.frames > SR // 4, name
    assert sf.info(tmp_path / "a.opus").samplerate == 48000 and sf.info(tmp_path / "a.aiff").subtype == "FLOAT"
    assert (tmp_path / "a.mp3").read_bytes()[:4] != b"RIFF"  # really MP3, not WAV bytes under that name


@pytest.mark.parametrize(
    ("name", "extra", "message"),
    [
        ("x.opus", [], "x.opus: Ogg Opus (.opus) takes only 8000, 12000, 16000, 24000, 48000 Hz, not 22050 Hz: "
                       "choose one with --out-sr"),
        ("x.flac", ["--float"], "x.flac: FLAC (.flac) holds 16-bit samples here, not 32-bit float"),
        ("x.mp3", ["--out-sr", "96000"], "x.mp3: MP3 (.mp3) takes only"),
        ("x.txt", [], "x.txt: .txt is not an audio format this tool writes"),
        ("x.wav", ["--out-sr", "1"], "--out-sr 1: give a rate from 1000 to 768000 Hz"),
        ("x.wav", ["--out-sr", "0"], "--out-sr 0: give a rate from 1000 to 768000 Hz"),
        ("x.wav", ["--out-sr", "-22050"], "--out-sr -22050: give a rate from 1000 to 768000 Hz"),
        ("x.wav", ["--out-sr", "768001"], "--out-sr 768001: give a rate from 1000 to 768000 Hz"),
    ],
)
def test_tts_refuses_outputs_it_cannot_write_before_any_work(
    tmp_path: Path, weights: str, name: str, extra: list[str], message: str
) -> None:
    result = runner.invoke(app, ["tts", "Hello.", "-o", str(tmp_path / name), "-w", weights, *extra])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_tts_batches_and_stdout_check_the_rate_too(tmp_path: Path, weights: str) -> None:
    texts = tmp_path / "t.txt"
    texts.write_text("a|Hi.\n")
    result = runner.invoke(app, ["tts", "--texts", str(texts), str(tmp_path / "out"), "-w", weights, "--out-sr", "0"])
    assert result.exit_code == 2 and "--out-sr 0: give a rate from 1000" in result.stderr
    result = runner.invoke(app, ["tts", "Hi.", "-o", "-", "-w", weights, "--out-sr", "900000"])
    assert result.exit_code == 2 and "--out-sr 900000" in result.stderr and not result.stdout_bytes


def test_tts_output_rates_in_range_write_that_rate_and_a_low_one_is_noted(tmp_path: Path, weights: str) -> None:
    seconds = {}
    for rate in (1000, 8000, 16000, 48000, 768000):
        out = tmp_path / f"r{rate}.wav"
        result = runner.invoke(app, ["tts", "Hello there.", "-o", str(out), "-w", weights, "--out-sr", str(rate)])
        assert result.exit_code == 0, result.output
        info = sf.info(out)
        assert info.samplerate == rate and info.frames > 0
        seconds[rate] = info.frames / rate
        noted = "note: --out-sr" in result.stderr
        assert noted == (rate < 16000), (rate, result.stderr)  # the tiny weights' mels reach 8 kHz
        if rate == 8000:
            assert ("--out-sr 8000 keeps frequencies up to 4000 Hz; the vocoder's mels describe up to 8000 Hz "
                    "(model rate 22050 Hz), so the band from 4000 to 8000 Hz is removed") in result.stderr
    assert max(seconds.values()) - min(seconds.values()) < 0.01  # the same speech at every rate


def test_resynth_writes_the_named_container_or_refuses_before_any_work(
    tmp_path: Path, weights: str, speech: Path
) -> None:
    result = runner.invoke(app, ["resynth", str(speech), str(tmp_path / "b.mp3"), "-w", weights])
    assert result.exit_code == 0, result.output
    assert sf.info(tmp_path / "b.mp3").format == "MP3"
    result = runner.invoke(app, ["resynth", str(speech), str(tmp_path / "b.aiff"), "-w", weights, "--float"])
    assert result.exit_code == 0 and sf.info(tmp_path / "b.aiff").subtype == "FLOAT"
    for name, extra, message in [
        ("c.opus", [], "c.opus: Ogg Opus (.opus) takes only 8000, 12000, 16000, 24000, 48000 Hz, not 22050 Hz"),
        ("c.flac", ["--float"], "FLAC (.flac) holds 16-bit samples here"),
    ]:
        result = runner.invoke(app, ["resynth", str(speech), str(tmp_path / name), "-w", weights, *extra])
        assert result.exit_code == 2 and message in result.stderr, result.output
        assert not (tmp_path / name).exists()
    result = runner.invoke(app, ["resynth", str(speech), str(tmp_path / "c.opus"), "-w", weights, "--out-sr", "16000"])
    assert result.exit_code == 0 and sf.info(tmp_path / "c.opus").samplerate == 16000


def test_an_ogg_vorbis_rate_that_crashes_libvorbis_is_refused(tmp_path: Path, weights: str, speech: Path) -> None:
    # libvorbis ends the process (SIGSEGV) above 200 kHz: a subprocess, so a regression cannot take pytest down
    out = tmp_path / "v.ogg"
    done = subprocess.run(
        [sys.executable, "-m", "vocoder_cli", "resynth", str(speech), str(out), "-w", weights, "--out-sr", "384000"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Ogg Vorbis (.ogg) takes at most 200000 Hz, not 384000 Hz" in done.stderr and not out.exists()
