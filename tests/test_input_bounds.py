"""One bad input never exhausts memory: header sample rates and sample counts are checked before anything is
decoded or resampled (1 kHz..768 kHz, at most 4096 samples per byte of file), rate options are bounded, and
running out of memory on one file is that file's error. Real files, the real CLI (resynth, score, report,
prepare, tts), real numbers."""

from __future__ import annotations

import csv
import io
import math
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from tests.helpers import tiny_weights, tone
from vocoder_cli.audio import (
    MAX_RATE_RATIO,
    MAX_SAMPLE_RATE,
    MIN_SAMPLE_RATE,
    read_audio,
    read_audio_bytes,
    resample,
    wav_rate,
)
from vocoder_cli.cli.app import app
from vocoder_cli.errors import AudioError

REPO = Path(__file__).resolve().parents[1]
SR = 22050
# 0 and > 2^31 Hz libsndfile will not open at all ("SF_INFO struct incomplete"); 1, 999 and 800 kHz it opens.
BAD_RATES = [0, 1, 999, MAX_SAMPLE_RATE + 1, 800_000, 2**31 - 1, 4_000_000_000]


def wav_with_rate(rate: int, samples: int = SR, channels: int = 1) -> bytes:
    """A 16-bit PCM WAV of a tone whose header claims ``rate`` (any 32-bit value; soundfile cannot write 0)."""
    pcm = (np.round(tone(samples / SR, SR) * 20000)).astype("<i2")
    data = np.repeat(pcm, channels).tobytes()
    fmt = struct.pack("<HHIIHH", 1, channels, rate, (rate * 2 * channels) & 0xFFFFFFFF, 2 * channels, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def lying_flac(path: Path) -> Path:
    """A 1 s FLAC whose STREAMINFO claims 2^36 - 1 samples (libsndfile would size a 256 GiB array by it)."""
    sf.write(path, tone(1.0, SR), SR, format="FLAC")
    data = bytearray(path.read_bytes())
    info = 8 + 10  # "fLaC", the block header, then 10 bytes before the field holding the sample count
    value = int.from_bytes(data[info : info + 8], "big") | ((1 << 36) - 1)
    data[info : info + 8] = value.to_bytes(8, "big")
    path.write_bytes(bytes(data))
    return path


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_weights(tmp_path_factory.mktemp("w") / "tiny.safetensors")


# --------------------------------------------------------------------------------------------- core


@pytest.mark.parametrize("rate", BAD_RATES)
def test_a_header_rate_out_of_range_is_refused_before_decoding(tmp_path: Path, rate: int) -> None:
    path = tmp_path / f"r{rate}.wav"
    path.write_bytes(wav_with_rate(rate))
    expected = f"{path}: the header's sample rate {rate} Hz is outside the supported range 1000..768000 Hz"
    with pytest.raises(AudioError) as caught:
        read_audio(path, SR)
    assert str(caught.value) == expected
    with pytest.raises(AudioError, match=f"^<stdin>: the header's sample rate {rate} Hz"):
        read_audio_bytes(path.read_bytes(), SR)
    assert wav_rate(path) == rate


@pytest.mark.parametrize("rate", [MIN_SAMPLE_RATE, 8000, 48000, MAX_SAMPLE_RATE])
def test_rates_at_and_inside_the_bounds_are_read(tmp_path: Path, rate: int) -> None:
    path = tmp_path / "ok.wav"
    path.write_bytes(wav_with_rate(rate, samples=2000, channels=2))
    loaded = read_audio(path, SR)
    assert loaded.sr == SR and loaded.wav.size == math.floor(2000 * SR / rate + 0.5)  # soxr rounds half up
    assert read_audio(path).wav.size == 2000


def test_a_header_sample_count_larger_than_the_file_can_hold_is_refused(tmp_path: Path) -> None:
    path = lying_flac(tmp_path / "lie.flac")
    assert sf.info(path).frames == (1 << 36) - 1
    with pytest.raises(AudioError, match=f"claims {(1 << 36) - 1} frames x 1 channels, more than a "
                                         f"{path.stat().st_size}-byte file can hold"):
        read_audio(path, SR)


def test_resample_refuses_rates_out_of_range_and_stays_within_its_bound() -> None:
    x = np.ones(1000, dtype=np.float32)
    for low, high in [(1, SR), (SR, 1), (SR, 0), (SR, 10**9)]:
        with pytest.raises(AudioError, match=f"cannot resample {low} Hz -> {high} Hz: sample rate"):
            resample(x, low, high, name="x.wav")
    assert resample(x, MIN_SAMPLE_RATE, MAX_SAMPLE_RATE).size == MAX_RATE_RATIO * x.size == 768_000
    assert resample(x, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE).size == 1  # 1000 / 768 = 1.3, rounded


# --------------------------------------------------------------------------------------------- CLI


def bad_folder(folder: Path) -> dict[str, str]:
    """Good and bad inputs side by side; returns {file name: the reason expected for it} (good: '')."""
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(folder / "good.wav", tone(1.0, SR), SR)
    expected = {"good.wav": ""}
    for rate in (0, 1, 4_000_000_000):
        (folder / f"r{rate}.wav").write_bytes(wav_with_rate(rate))
        expected[f"r{rate}.wav"] = f"the header's sample rate {rate} Hz is outside the supported range"
    lying_flac(folder / "lie.flac")
    expected["lie.flac"] = f"the header claims {(1 << 36) - 1} frames x 1 channels, more than a"
    return expected


def test_resynth_batch_goes_on_past_bad_rates(tmp_path: Path, weights: Path) -> None:
    expected = bad_folder(tmp_path / "in")
    result = CliRunner().invoke(app, ["resynth", str(tmp_path / "in"), str(tmp_path / "out"), "-w", str(weights),
                                      "--backend", "torch", "-q"])
    assert result.exit_code == 1, result.output
    output = " ".join(result.output.split())
    for name, reason in expected.items():
        if reason:
            assert f"failed {tmp_path / 'in' / name}: {reason}" in output, output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.wav"]
    assert sf.info(tmp_path / "out" / "good.wav").frames == (SR // 256) * 256


def test_resynth_stdin_with_a_bad_rate(weights: Path) -> None:
    result = CliRunner().invoke(app, ["resynth", "-", "-", "-w", str(weights), "--backend", "torch", "-q"],
                                input=wav_with_rate(1))
    assert result.exit_code == 1
    assert "failed <stdin>: the header's sample rate 1 Hz is outside" in " ".join(result.output.split())


def test_score_scores_the_good_pairs_and_names_each_bad_file(tmp_path: Path) -> None:
    expected = bad_folder(tmp_path / "gen")
    ref = tmp_path / "ref"
    ref.mkdir()
    for name in expected:
        sf.write(ref / Path(name).with_suffix(".wav"), tone(1.0, SR), SR)
    (ref / "r1.wav").write_bytes(wav_with_rate(1))  # a bad reference too
    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(app, ["score", str(ref), str(tmp_path / "gen"), "-m", "mcd", "--per-file",
                                      "-f", "csv", "-o", str(out), "-j", "2", "-q"])
    assert result.exit_code == 1, result.output
    rows = {row["id"]: row for row in csv.DictReader(io.StringIO(out.read_text())) if row.get("id")}
    assert float(rows["good"]["mcd"]) == pytest.approx(0.0, abs=1e-6)
    assert rows["r1"]["error"] == f"{tmp_path / 'gen' / 'r1.wav'}: the header's sample rate 1 Hz is outside the " \
                                  "supported range 1000..768000 Hz"
    for name, reason in expected.items():
        if reason:
            assert reason in rows[Path(name).stem]["error"] and rows[Path(name).stem]["mcd"] == ""


def test_report_lists_bad_rates_as_problems(tmp_path: Path) -> None:
    expected = bad_folder(tmp_path / "gen")
    ref = tmp_path / "ref"
    ref.mkdir()
    for name in expected:
        sf.write(ref / Path(name).with_suffix(".wav"), tone(1.0, SR), SR)
    result = CliRunner().invoke(app, ["report", str(tmp_path / "rep"), "--set", f"x={ref}:{tmp_path / 'gen'}",
                                      "-m", "mcd", "-q"])
    assert result.exit_code == 1, result.output
    output = " ".join(result.output.split())
    assert "x: r1: " in output and "sample rate 1 Hz is outside the supported range" in output
    assert (tmp_path / "rep" / "index.html").is_file()


def test_prepare_rejects_bad_rates_and_writes_nothing_huge(tmp_path: Path) -> None:
    expected = bad_folder(tmp_path / "src")
    result = CliRunner().invoke(app, ["prepare", "folder", str(tmp_path / "src"), str(tmp_path / "ds"),
                                      "--segment", "1000", "-q"])
    assert result.exit_code == 1, result.output
    with open(tmp_path / "ds" / "rejected.tsv", newline="") as handle:
        rejected = {Path(p).name: reason for p, reason in list(csv.reader(handle, delimiter="\t"))[1:]}
    assert sorted(rejected) == sorted(name for name, reason in expected.items() if reason)
    for name, reason in rejected.items():
        assert expected[name] in reason
    assert rejected["r1.wav"] == "the header's sample rate 1 Hz is outside the supported range 1000..768000 Hz"
    written = [p for p in (tmp_path / "ds").rglob("*") if p.is_file()]
    assert max(p.stat().st_size for p in written) < 100_000  # before: a 2.9 GB wavs/r1.wav claiming 18 h


@pytest.mark.parametrize(
    "args",
    [
        ["resynth", "in.wav", "out.wav", "--out-sr", "999"],
        ["resynth", "in.wav", "out.wav", "--out-sr", "768001"],
        ["tts", "Hello.", "-o", "out.wav", "--out-sr", "0"],
        ["prepare", "folder", "src", "ds", "--sample-rate", "1"],
        ["prepare", "folder", "src", "ds", "-r", "4000000000"],
    ],
)
def test_rate_options_out_of_range_are_usage_errors(args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    option = next(a for a in args if a.startswith("-") and len(a) > 1)
    assert option in message and ("1000" in message or "768000" in message), message


def test_raw_format_rate_out_of_range_is_a_usage_error(weights: Path) -> None:
    result = CliRunner().invoke(app, ["resynth", "-", "-", "--stream", "--raw-format", "s16le:1", "-w",
                                      str(weights)], input=b"\0" * 100)
    assert result.exit_code == 2
    assert "--raw-format 's16le:1': rate must be in 1000..768000 Hz" in " ".join(result.output.split())


def test_out_sr_at_the_bound_is_honoured(tmp_path: Path, weights: Path) -> None:
    sf.write(tmp_path / "in.wav", tone(0.2, SR), SR)
    result = CliRunner().invoke(app, ["resynth", str(tmp_path / "in.wav"), str(tmp_path / "out.wav"), "-w",
                                      str(weights), "--backend", "torch", "--out-sr", "768000", "-q"])
    assert result.exit_code == 0, result.output
    info = sf.info(tmp_path / "out.wav")
    assert info.samplerate == 768_000 and info.frames == round((int(0.2 * SR) // 256) * 256 * 768_000 / SR)


# ------------------------------------------------------------------------------- out of memory, per file

# Runs a command twice in one process: once to warm up (every lazy import done at full memory), then, with the
# big file copied in, under an address-space limit 64 MiB above what the process already maps: room for the
# small files, not for the big one's 123 MB of float32 samples.
MEMORY_SCRIPT = textwrap.dedent(
    """
    import json, resource, shutil, sys
    from typer.testing import CliRunner
    from vocoder_cli.cli.app import app

    plan = json.loads(sys.argv[1])
    warm = CliRunner().invoke(app, plan["warm"])
    assert warm.exception is None or isinstance(warm.exception, SystemExit), warm.output
    used = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (used + (64 << 20), resource.RLIM_INFINITY))
    shutil.copyfile(*plan["copy"])
    result = CliRunner().invoke(app, plan["run"])
    print("EXIT", result.exit_code, type(result.exception).__name__)
    print(result.output)
    """
)


def big_clip(path: Path) -> Path:
    """A valid 768 kHz clip of 40 s: 61 MB as 16-bit PCM, 123 MB once decoded to float32 (written in blocks)."""
    with sf.SoundFile(path, "w", MAX_SAMPLE_RATE, 1, "PCM_16", format="WAV") as out:
        for second in range(40):
            t = np.arange(MAX_SAMPLE_RATE, dtype=np.float64) / MAX_SAMPLE_RATE + second
            out.write((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32))
    return path


def run_out_of_memory(plan: dict) -> str:
    import json

    done = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, json.dumps(plan)], capture_output=True, text=True,
                          timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    return " ".join(done.stdout.split())


def test_score_out_of_memory_on_one_file_is_that_files_row(tmp_path: Path) -> None:
    """The big file is a row with the reason, the small pairs are scored, exit 1 (before: a MemoryError
    could end the whole batch)."""
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    for folder in (ref, gen):
        folder.mkdir()
        for i in range(2):
            sf.write(folder / f"s{i}.wav", tone(1.0, SR, 200 + 50 * i), SR)
    sf.write(ref / "big.wav", tone(1.0, SR), SR)
    command = ["score", str(ref), str(gen), "-m", "mcd", "--per-file", "-f", "csv", "-j", "1", "-q"]
    output = run_out_of_memory({"warm": command, "run": command,
                                "copy": [str(big_clip(tmp_path / "big.hidden")), str(gen / "big.wav")]})
    assert "EXIT 1 SystemExit" in output, output
    assert f"big,,,{gen / 'big.wav'}: out of memory decoding this file" in output, output
    assert "s0,0.0,0.0,," in output and "s1,0.0,0.0,," in output, output


def test_prepare_out_of_memory_on_one_file_is_that_files_row(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for i in range(2):
        sf.write(src / f"s{i}.wav", tone(1.0, SR, 200 + 50 * i), SR)
    run = ["prepare", "folder", str(src), str(tmp_path / "ds"), "--segment", "1000", "-q"]
    warm = ["prepare", "folder", str(src), str(tmp_path / "warm"), "--segment", "1000", "-q"]
    output = run_out_of_memory({"warm": warm, "run": run,
                                "copy": [str(big_clip(tmp_path / "big.hidden")), str(src / "big.wav")]})
    assert "EXIT 1 SystemExit" in output, output
    with open(tmp_path / "ds" / "rejected.tsv", newline="") as handle:
        rejected = {Path(p).name: reason for p, reason in list(csv.reader(handle, delimiter="\t"))[1:]}
    assert list(rejected) == ["big.wav"] and "MemoryError" in rejected["big.wav"], rejected
    assert (tmp_path / "ds" / "train.jsonl").read_text().count("\n") + \
        (tmp_path / "ds" / "val.jsonl").read_text().count("\n") == 2
