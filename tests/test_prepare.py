"""`vocoder prepare folder`: every bad-input case is reported and excluded; manifests and the split."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf
from typer.testing import CliRunner

from tests.conftest import requires_data
from vocoder_cli.cli.app import app
from vocoder_cli.data.folder import prepare_folder, read_transcripts
from vocoder_cli.data.manifest import read_manifest, split_train_val
from vocoder_cli.data.validate import ValidationRules

SR = 22050


def speechlike(seconds: float, sr: int, f0: float = 140.0, amp: float = 0.3, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a syllable-rate envelope and a little noise (no real speech needed here)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)
    return (amp * x * env / 2.3 + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


def make_bad_folder(root: Path) -> dict[str, str]:
    """Good and bad files of every kind; returns {relative path: expected reason word} for the bad ones."""
    (root / "spk1").mkdir(parents=True)
    (root / "spk2").mkdir()
    for i in range(4):
        sf.write(root / "spk1" / f"good{i}.wav", speechlike(1.0, SR, 120 + 20 * i, seed=i), SR)
    sf.write(root / "spk2" / "low_rate.flac", speechlike(1.0, 16000, 200), 16000)  # resampled + cached
    sf.write(root / "spk2" / "stereo.wav", np.stack([speechlike(1.0, SR), speechlike(1.0, SR, 180)], 1), SR)
    (root / "spk2" / "stereo.txt").write_text("a sidecar transcript\n")
    (root / "garbage.wav").write_bytes(b"RIFF0000WAVEnot really audio at all" * 10)
    (root / "empty.wav").write_bytes(b"")
    sf.write(root / "short.wav", speechlike(0.2, SR), SR)  # 4410 samples < 8192
    sf.write(root / "silent.wav", np.zeros(SR, dtype=np.float32), SR)
    nan = speechlike(1.0, SR)
    nan[100:110] = np.nan
    sf.write(root / "nan.wav", nan, SR, subtype="FLOAT")
    sf.write(root / "three_channels.wav", np.stack([speechlike(1.0, SR)] * 3, 1), SR)
    clipped = np.clip(speechlike(1.0, SR, amp=3.0), -1.0, 1.0)
    sf.write(root / "clipped.wav", clipped, SR, subtype="FLOAT")
    return {
        "garbage.wav": "unreadable",
        "empty.wav": "unreadable",
        "short.wav": "too",
        "silent.wav": "silent",
        "nan.wav": "contains",
        "three_channels.wav": "wrong",
        "clipped.wav": "clipped",
    }


def test_every_bad_input_is_reported_and_excluded(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    bad = make_bad_folder(src)
    result = prepare_folder(src, out, rules=ValidationRules(sample_rate=SR), val_fraction=0.2, seed=7)

    rejected = {Path(r.path).name: r.reason for r in result.rejected}
    assert set(rejected) == set(bad)
    for name, word in bad.items():
        assert rejected[name].startswith(word), (name, rejected[name])
    assert "NaN" in rejected["nan.wav"] and "3" in rejected["three_channels.wav"]
    assert "8192" in rejected["short.wav"]

    report = (out / "rejected.tsv").read_text().splitlines()
    assert report[0] == "path\treason" and len(report) == 1 + len(bad)

    kept = read_manifest(out / "train.jsonl") + read_manifest(out / "val.jsonl")
    assert len(kept) == 6 and len(read_manifest(out / "val.jsonl")) == 1
    by_name = {Path(e.source or e.path).name: e for e in kept}
    assert set(by_name) == {"good0.wav", "good1.wav", "good2.wav", "good3.wav", "low_rate.flac", "stereo.wav"}
    for entry in kept:
        info = sf.info(entry.path)
        assert info.samplerate == SR and info.channels == 1 and info.frames == entry.num_samples
        assert entry.sample_rate == SR and abs(entry.duration - entry.num_samples / SR) < 1e-3
    # Resampled and downmixed copies are cached in the dataset folder; good files are used in place.
    assert Path(by_name["low_rate.flac"].path).is_relative_to(out / "wavs")
    assert by_name["low_rate.flac"].num_samples == SR
    assert Path(by_name["stereo.wav"].path).is_relative_to(out / "wavs")
    assert Path(by_name["good0.wav"].path) == (src / "spk1" / "good0.wav").resolve()
    assert by_name["stereo.wav"].text == "a sidecar transcript"

    info = json.loads((out / "dataset.json").read_text())
    assert info["rejected"] == 7 and info["train"] + info["val"] == 6 and info["sample_rate"] == SR


def test_manifest_is_plain_jsonl_with_relative_cache_paths(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    make_bad_folder(src)
    prepare_folder(src, out, rules=ValidationRules(sample_rate=SR), val_fraction=0.0)
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 6
    assert all({"path", "duration", "sample_rate", "num_samples"} <= set(r) for r in rows)
    cached = [r for r in rows if r["path"].startswith("wavs/")]
    assert len(cached) == 2 and all("source" in r for r in cached)


def test_resampled_copies_are_cached_between_runs(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    make_bad_folder(src)
    rules = ValidationRules(sample_rate=SR)
    prepare_folder(src, out, rules=rules)
    cached = out / "wavs" / "spk2" / "low_rate.wav"
    first = cached.stat().st_mtime_ns
    result = prepare_folder(src, out, rules=rules)
    assert cached.stat().st_mtime_ns == first
    assert result.converted == 2


def test_split_is_deterministic_and_seeded() -> None:
    items = list(range(100))
    train_a, val_a = split_train_val(items, 0.05, seed=1234)
    train_b, val_b = split_train_val(items, 0.05, seed=1234)
    assert val_a == val_b and train_a == train_b and len(val_a) == 5
    assert sorted(train_a + val_a) == items
    assert split_train_val(items, 0.05, seed=1)[1] != val_a
    assert len(split_train_val(items[:3], 0.05)[1]) == 1  # at least one validation clip


def test_transcript_file_formats(tmp_path: Path) -> None:
    path = tmp_path / "meta.csv"
    path.write_text("LJ001-0001|Raw text 1|normalized text one\nsub__name|Allison text\nbroken line\n")
    texts = read_transcripts(path)
    assert texts == {"LJ001-0001": "normalized text one", "sub/name": "Allison text"}


def test_cli_reports_counts_and_exits_1_when_files_were_rejected(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    make_bad_folder(src)
    result = CliRunner().invoke(app, ["prepare", "folder", str(src), str(out), "--val-fraction", "0.2"])
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "kept 6 clips" in text and "rejected 7" in text
    for word in ("unreadable 2", "silent 1", "clipped 1", "too 1", "wrong 1", "contains 1"):
        assert word in text
    assert (out / "train.jsonl").is_file()


def test_cli_no_usable_audio_is_a_usage_error(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    sf.write(src / "silent.wav", np.zeros(SR, dtype=np.float32), SR)
    result = CliRunner().invoke(app, ["prepare", "folder", str(src), str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "no usable audio" in result.output


@requires_data
def test_real_16k_speech_is_resampled_with_transcripts(tmp_path: Path, data_dir: Path) -> None:
    src = tmp_path / "allison"
    src.mkdir()
    clips = sorted((data_dir / "allison_en" / "train").rglob("*.flac"))[:3]
    for clip in clips:
        (src / clip.name).write_bytes(clip.read_bytes())
    transcripts = data_dir / "allison_en" / "train" / "transcripts.txt"
    result = prepare_folder(src, tmp_path / "out", rules=ValidationRules(sample_rate=SR), transcripts=transcripts)
    entries = result.train + result.val
    assert len(entries) == 3 and not result.rejected
    for entry in entries:
        original = sf.info(entry.source)
        assert original.samplerate == 16000
        assert abs(entry.num_samples - original.frames * SR / 16000) <= 2
    assert sum(e.text is not None for e in entries) >= 2
