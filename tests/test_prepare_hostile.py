"""`vocoder prepare folder` on the hostile inputs of issue 13: each is a clear row in rejected.tsv or a
clear message, the rest is prepared, and the exit code is the documented one (1 rows, 2 usage)."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import soundfile as sf
from typer.testing import CliRunner

from tests.test_prepare import speechlike
from vocoder_cli.cli.app import app
from vocoder_cli.data.folder import prepare_folder
from vocoder_cli.data.manifest import read_manifest
from vocoder_cli.data.validate import ValidationRules

SR = 22050
RULES = ValidationRules(sample_rate=SR)


def clip(path: Path, seed: int = 0, seconds: float = 1.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, speechlike(seconds, SR, 110 + 10 * seed, seed=seed), SR)
    return path


def prepare(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["prepare", "folder", *args])


def rows(out: Path) -> dict[str, str]:
    with open(out / "rejected.tsv", newline="", encoding="utf-8", errors="surrogateescape") as handle:
        table = list(csv.reader(handle, delimiter="\t"))
    assert table[0] == ["path", "reason"] and all(len(r) == 2 for r in table)
    return {Path(p).name: reason for p, reason in table[1:]}


def kept(out: Path) -> list[str]:
    entries = read_manifest(out / "train.jsonl") + read_manifest(out / "val.jsonl")
    return sorted(Path(e.source or e.path).name for e in entries)


def test_non_utf8_sidecar_rejects_that_clip_only(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    clip(src / "a.wav", 0)
    clip(src / "b.wav", 1)
    (src / "a.txt").write_bytes("caf\u00e9 au lait\n".encode("latin-1"))  # crashed the whole run before
    (src / "b.txt").write_bytes("\ufeffna\u00efve\n".encode("utf-8"))  # a BOM is fine
    result = prepare(str(src), str(out))
    assert result.exit_code == 1, result.output
    assert rows(out) == {"a.wav": "transcript a.txt:1:4: not UTF-8 text (byte 0xe9); convert it, e.g. "
                                  "iconv -f latin1 -t utf-8"}
    (entry,) = read_manifest(out / "train.jsonl") + read_manifest(out / "val.jsonl")
    assert entry.text == "na\u00efve"
    assert "transcript 1" in " ".join(result.output.split())


def test_bad_or_missing_transcripts_file_is_a_usage_error(tmp_path: Path) -> None:
    src = tmp_path / "src"
    clip(src / "a.wav")
    meta = tmp_path / "meta.csv"
    meta.write_bytes(b"a|fine text\nb|caf\xe9\n")
    result = prepare(str(src), str(tmp_path / "out"), "--transcripts", str(meta))
    assert result.exit_code == 2, result.output
    assert "meta.csv:2:6: not UTF-8 text (byte 0xe9)" in " ".join(result.output.split())
    result = prepare(str(src), str(tmp_path / "out"), "--transcripts", str(tmp_path / "nope.csv"))
    assert result.exit_code == 2 and "nope.csv: transcripts file not found" in " ".join(result.output.split())
    assert "Traceback" not in result.output


def test_links_each_get_a_row_and_a_file_lands_once(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    clip(src / "real" / "a.wav", 0)
    clip(src / "real" / "b.wav", 1)
    outside = clip(tmp_path / "elsewhere" / "c.wav", 2)
    (src / "link_to_a.wav").symlink_to(src / "real" / "a.wav")  # was in the manifest twice
    (src / "link_to_c.wav").symlink_to(outside)  # a clip that lives elsewhere: used, once
    (src / "dangling.wav").symlink_to(tmp_path / "gone.wav")
    (src / "loop1.wav").symlink_to(src / "loop2.wav")
    (src / "loop2.wav").symlink_to(src / "loop1.wav")
    (src / "speaker2").symlink_to(tmp_path / "elsewhere2", target_is_directory=True)  # a linked folder
    clip(tmp_path / "elsewhere2" / "d.wav", 3)
    (src / "real_again").symlink_to(src / "real", target_is_directory=True)
    (src / "real" / "up").symlink_to(src, target_is_directory=True)
    result = prepare_folder(src, out, rules=RULES, val_fraction=0.5)
    assert kept(out) == ["a.wav", "b.wav", "c.wav", "d.wav"]  # the manifest holds the real paths
    report = rows(out)
    assert report["link_to_a.wav"] == f"duplicate (same file as {src / 'real' / 'a.wav'}, already included)"
    assert report["dangling.wav"] == f"broken link (points to {tmp_path / 'gone.wav'}, which does not exist)"
    assert report["loop1.wav"].startswith("link loop") and report["loop2.wav"].startswith("link loop")
    assert report["real_again"] == f"duplicate folder (same as {src / 'real'}, already included)"
    assert report["up"] == f"link loop (links back to {src})"
    assert len(result.rejected) == len(report) == 6


def test_awkward_names_and_truncated_wavs_are_rows(tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    clip(src / "good.wav")
    sf.write(src / "tab\there.wav", np.zeros(SR, np.float32), SR)  # silent: rejected, name with a tab
    sf.write(src / "new\nline.wav", np.zeros(SR, np.float32), SR)
    full = clip(src / "cut.wav", 4).read_bytes()
    (src / "cut.wav").write_bytes(full[: len(full) // 2])  # accepted at half length before
    (src / os.fsdecode(b"latin\xe9.wav")).write_bytes(full)
    result = prepare(str(src), str(out))
    assert result.exit_code == 1, result.output
    report = rows(out)
    assert report["tab\there.wav"].startswith("silent") and report["new\nline.wav"].startswith("silent")
    assert report["cut.wav"] == "truncated (the WAV header promises 22050 samples, the file holds 11014)"
    assert report[os.fsdecode(b"latin\xe9.wav")] == "file name is not valid UTF-8 (rename the file)"
    assert kept(out) == ["good.wav"]
    assert json.loads((out / "dataset.json").read_text())["rejected"] == 4
    shown = result.output.replace("\n", "")  # (Rich wraps long lines at the test console's width)
    assert "new\\nline.wav: silent" in shown and "tab\\there.wav: silent" in shown  # escaped, one line each
