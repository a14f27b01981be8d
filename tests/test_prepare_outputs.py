"""`vocoder prepare` never loses a clip or a file: clips whose converted copies would share a name each keep
their own, a cached copy is reused only when it is exactly that clip's, the dataset folder never overlaps the
source, and a non-empty folder prepare did not write is refused unless --overwrite."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from typer.testing import CliRunner

from tests.test_prepare import speechlike
from tests.test_prepare_ljspeech import build_archive
from vocoder_cli.cli.app import app
from vocoder_cli.data.folder import prepare_folder
from vocoder_cli.data.ljspeech import prepare_ljspeech
from vocoder_cli.data.manifest import ManifestEntry, read_manifest
from vocoder_cli.data.validate import ValidationRules
from vocoder_cli.outputs import OutputError

SR = 22050
RULES = ValidationRules(sample_rate=SR)


def prepare(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["prepare", "folder", *args])


def entries(out: Path) -> list[ManifestEntry]:
    return read_manifest(out / "train.jsonl") + read_manifest(out / "val.jsonl")


def converted(audio: np.ndarray, sr: int) -> np.ndarray:
    """What prepare's copy of ``audio`` holds: resampled to 22.05 kHz and stored as 16-bit PCM."""
    wav = soxr.resample(audio, sr, SR, quality="VHQ") if sr != SR else audio
    return np.round(np.clip(wav, -1, 1) * 32767) / 32768


def test_clips_whose_copies_would_share_a_name_each_keep_their_own(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    clips = {  # name: (audio, rate); all three wanted wavs/x.wav before
        "x.flac": (speechlike(1.0, 16000, 120, seed=1), 16000),
        "x.ogg": (speechlike(1.5, SR, 200, seed=2), SR),
        "x.wav": (speechlike(0.8, SR, 160, seed=3), SR),  # mono at the rate: used in place, no copy
    }
    for name, (audio, sr) in clips.items():
        sf.write(src / name, audio, sr)
    result = prepare("--val-fraction", "0.3", str(src), str(out))
    assert result.exit_code == 0, result.output
    by_source = {Path(e.source or e.path).name: e for e in entries(out)}
    assert set(by_source) == set(clips)
    assert len({e.path for e in by_source.values()}) == 3  # no clip twice (so never in train and val at once)
    assert by_source["x.flac"].path == str((out / "wavs" / "x.flac.wav").resolve())
    assert by_source["x.ogg"].path == str((out / "wavs" / "x.ogg.wav").resolve())
    assert by_source["x.wav"].path == str((src / "x.wav").resolve())
    got, _ = sf.read(out / "wavs" / "x.flac.wav", dtype="float32")
    want = converted(*clips["x.flac"])
    assert len(got) == len(want) == SR and np.abs(got - want).max() < 1e-4  # its own audio, not x.ogg's
    assert sf.info(out / "wavs" / "x.ogg.wav").frames == int(1.5 * SR)
    shown = " ".join(result.output.split())
    assert "renamed 2 converted copies kept the source extension because another clip has the same name" in shown
    assert json.loads((out / "dataset.json").read_text())["renamed"] == 2


def test_copies_that_would_be_one_file_on_macos_or_windows(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    sf.write(src / "A.flac", speechlike(1.0, 16000, 120, seed=1), 16000)  # both need a copy: A.wav, a.wav
    sf.write(src / "a.flac", speechlike(1.2, 16000, 140, seed=2), 16000)
    sf.write(src / "B.wav", speechlike(1.0, SR, 150, seed=3), SR)  # used in place: no copy, nothing collides
    sf.write(src / "b.wav", speechlike(1.0, SR, 170, seed=4), SR)
    result = prepare_folder(src, out, rules=RULES)
    assert sorted(Path(e.source or e.path).name for e in entries(out)) == ["A.flac", "B.wav", "b.wav"]
    (bad,) = result.rejected
    assert bad.path == str(src / "a.flac") and bad.kind == "name"
    assert bad.reason.startswith(f"name clash: its output {out / 'wavs' / 'a.wav'} and") and "rename one" in bad.reason
    assert [p.name for p in (out / "wavs").iterdir()] == ["A.wav"]  # the first keeps the plain name


def test_a_cached_copy_is_reused_only_when_it_is_exactly_that_clip(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    sf.write(src / "x.ogg", speechlike(1.0, SR, 200, seed=1), SR)
    prepare_folder(src, out, rules=RULES)
    copy = out / "wavs" / "x.wav"
    first = copy.stat().st_mtime_ns
    prepare_folder(src, out, rules=RULES)
    assert copy.stat().st_mtime_ns == first  # unchanged source: the copy is reused, not rewritten
    # x.ogg is replaced by an x.flac of the same length, older than the copy: the copy is not its audio
    (src / "x.ogg").unlink()
    fresh = speechlike(1.0, 16000, 110, seed=2)
    sf.write(src / "x.flac", fresh, 16000)
    os.utime(src / "x.flac", ns=(first - 10**9, first - 10**9))
    prepare_folder(src, out, rules=RULES)
    (entry,) = entries(out)
    got, _ = sf.read(copy, dtype="float32")
    assert entry.source == str((src / "x.flac").resolve()) and np.abs(got - converted(fresh, 16000)).max() < 1e-4


def test_output_and_source_trees_must_not_overlap(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    sf.write(src / "sub" / "a.wav", speechlike(1.0, SR), SR)
    (tmp_path / "link").symlink_to(src, target_is_directory=True)
    cases = [
        ((src, src), "same folder"),  # silently skipped every subfolder before
        ((src, src / "prepared"), "is inside input folder"),
        ((src / "sub", src), "is inside output folder"),
        ((tmp_path / "link", src / "prepared"), "is inside input folder"),
    ]
    for (source, out), words in cases:
        result = prepare(str(source), str(out))
        shown = " ".join(result.output.split())
        assert result.exit_code == 2 and words in shown and str(source) in shown and str(out) in shown, shown
    assert sorted(p.relative_to(src).as_posix() for p in src.rglob("*")) == ["sub", "sub/a.wav"]


def test_a_foreign_non_empty_folder_is_refused_unless_overwrite(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "mine"
    src.mkdir()
    sf.write(src / "a.wav", speechlike(1.0, SR), SR)
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    (out / "train.jsonl").write_text("my own manifest\n")
    result = prepare(str(src), str(out))
    assert result.exit_code == 2
    assert "is not empty and was not written by vocoder prepare" in " ".join(result.output.split())
    assert (out / "train.jsonl").read_text() == "my own manifest\n"
    assert sorted(os.listdir(out)) == ["notes.txt", "train.jsonl"]
    result = prepare(str(src), str(out), "--overwrite")
    assert result.exit_code == 0 and (out / "notes.txt").read_text() == "my notes"
    assert len(entries(out)) == 1
    assert prepare(str(src), str(out)).exit_code == 0  # now it is prepare's own folder: re-runs update it
    (tmp_path / "file").write_text("x")
    result = prepare(str(src), str(tmp_path / "file"), "--overwrite")
    assert result.exit_code == 2 and "not a folder" in result.output


def test_own_folders_are_recognised_even_from_an_interrupted_or_older_run(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    sf.write(src / "a.flac", speechlike(1.0, 16000), 16000)
    older = tmp_path / "older"  # dataset.json of an earlier version (no prepared_by)
    (older / "wavs").mkdir(parents=True)
    (older / "dataset.json").write_text(json.dumps({"sample_rate": SR, "train": 1, "val": 0, "rules": {}}))
    prepare_folder(src, older, rules=RULES)
    assert json.loads((older / "dataset.json").read_text())["prepared_by"] == "vocoder prepare"
    cut = tmp_path / "cut"  # a run stopped half-way leaves its claim and some copies, no manifests
    cut.mkdir()
    (cut / "dataset.json").write_text(json.dumps({"prepared_by": "vocoder prepare", "complete": False}))
    (cut / "wavs").mkdir()
    prepare_folder(src, cut, rules=RULES)
    assert len(entries(cut)) == 1 and json.loads((cut / "dataset.json").read_text())["complete"] is True
    stranger = tmp_path / "stranger"  # a dataset.json that is not ours
    stranger.mkdir()
    (stranger / "dataset.json").write_text('{"name": "someone else\'s"}')
    with pytest.raises(OutputError, match="not written by vocoder prepare"):
        prepare_folder(src, stranger, rules=RULES)


def test_ljspeech_refuses_foreign_folders_and_overlap_but_resumes_its_own(tmp_path: Path) -> None:
    archive = tmp_path / "LJSpeech-1.1.tar.bz2"
    build_archive(archive)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x")
    with pytest.raises(OutputError, match="not written by vocoder prepare"):
        prepare_ljspeech(foreign, archive=archive)
    assert os.listdir(foreign) == ["keep.txt"]
    out = tmp_path / "lj"
    prepare_ljspeech(out, archive=archive)
    extracted = out / "raw" / "LJSpeech-1.1"
    result = CliRunner().invoke(app, ["prepare", "ljspeech", str(extracted / "prepared"), "--archive", str(extracted)])
    assert result.exit_code == 2 and "is inside input folder" in " ".join(result.output.split())
    result = CliRunner().invoke(app, ["prepare", "ljspeech", str(out), "--archive", str(archive)])
    assert result.exit_code == 1 and "kept 5 clips" in " ".join(result.output.split())  # its own folder: re-run
