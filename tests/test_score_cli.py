"""`vocoder score` as a user runs it: folders, pairs lists, formats, failures and exit codes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import require_module
from tests.helpers import write
from vocoder_cli.cli.app import app
from vocoder_cli.demo import demo_speech

require_module("pesq", "metrics")
runner = CliRunner()
SR = 22050


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ref/ and gen/: 'same' (identical), 'noisy' (20 dB SNR, 100 samples shorter), 'sub/x' (identical)."""
    root = tmp_path_factory.mktemp("score")
    speech = demo_speech(SR)
    rng = np.random.default_rng(0)
    clips = {"same": speech[: 2 * SR], "noisy": speech[2 * SR : 4 * SR], "sub/x": speech[4 * SR : 6 * SR]}
    for name, x in clips.items():
        write(root / "ref" / f"{name}.wav", x, SR)
        gen = x if name != "noisy" else (x + 0.03 * rng.standard_normal(x.size).astype(np.float32))[:-100]
        write(root / "gen" / f"{name}.flac", gen, SR)
    return root


def score(*args: str, input: str | None = None):  # noqa: A002
    return runner.invoke(app, ["score", *args], input=input)


def test_folders_jsonl_rows_and_clean_stdout(folders: Path) -> None:
    result = score(str(folders / "ref"), str(folders / "gen"), "-m", "pesq,stoi", "-f", "jsonl", "--per-file")
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in map(json.loads, result.stdout.splitlines())}  # every stdout line is JSON
    assert sorted(rows) == ["noisy", "same", "sub/x"]
    assert set(rows["same"]) == {"id", "pesq", "stoi"}
    assert rows["same"]["pesq"] == pytest.approx(4.644, abs=1e-3) and rows["same"]["stoi"] == pytest.approx(1.0)
    assert 1.0 < rows["noisy"]["pesq"] < 4.0 and rows["noisy"]["stoi"] < rows["same"]["stoi"]


def test_failures_are_rows_listed_on_stderr_with_exit_1(folders: Path, tmp_path: Path) -> None:
    gen = tmp_path / "gen"
    for f in (folders / "gen").rglob("*.flac"):
        target = gen / f.relative_to(folders / "gen")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(f.read_bytes())
    (gen / "noisy.flac").write_bytes(b"")  # broken output
    write(gen / "stray.wav", np.zeros(SR, dtype=np.float32), SR)  # no reference
    result = score(str(folders / "ref"), str(gen), "-m", "pesq", "-f", "jsonl", "--per-file")
    assert result.exit_code == 1
    rows = {r["id"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert rows["noisy"]["pesq"] is None and "empty file" in rows["noisy"]["error"]
    assert rows["stray"]["error"] == "no reference file with this id"
    assert "2 of 4 files failed" in result.stderr
    assert "noisy" in result.stderr and "stray: no reference file" in result.stderr


def test_pairs_from_stdin_to_a_csv_file(folders: Path, tmp_path: Path) -> None:
    lines = "".join(f"{folders / 'ref' / n}.wav\t{folders / 'gen' / n}.flac\n" for n in ("same", "noisy"))
    out = tmp_path / "scores.csv"
    result = score("--pairs", "-", "-m", "sisdr,pesq", "-f", "csv", "--per-file", "-o", str(out), input=lines)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # the result went to the file; the summary table to stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["id"] for r in rows] == [f"{folders / 'gen' / n}" for n in ("same", "noisy")]
    assert float(rows[0]["sisdr"]) > 60 and 10 < float(rows[1]["sisdr"]) < 40
    assert "sisdr" in result.stderr


def test_json_summary_records_library_version_and_rate(folders: Path) -> None:
    result = score(str(folders / "ref"), str(folders / "gen"), "-m", "pesq,mstft", "-f", "json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["metrics"]["pesq"]["library"] == "pesq" and payload["metrics"]["pesq"]["version"]
    assert payload["metrics"]["pesq"]["sample_rate"] == 16000
    assert payload["summary"]["pesq"]["count"] == 3 and payload["summary"]["pesq"]["failures"] == 0
    pesq = payload["summary"]["pesq"]
    assert pesq["ci_low"] < pesq["mean"] < pesq["ci_high"]
    assert payload["failures"] == [] and "files" not in payload


def test_table_output(folders: Path) -> None:
    result = score(str(folders / "ref"), str(folders / "gen"), "-m", "stoi", "--per-file")
    assert result.exit_code == 0, result.output
    assert "scores over 3 files" in result.stdout and "per file" in result.stdout and "sub/x" in result.stdout


def test_usage_errors_exit_2(folders: Path) -> None:
    result = score(str(folders / "gen"), "-m", "pesq")
    assert result.exit_code == 2 and "pesq need references" in result.stderr
    result = score(str(folders / "ref"), str(folders / "gen"), "-m", "pesq,bogus")
    assert result.exit_code == 2 and "unknown metric 'bogus'" in result.stderr
    result = score(str(folders / "nope"), str(folders / "gen"))
    assert result.exit_code == 2 and "no such file or folder" in result.stderr
    result = score(str(folders / "gen"), "-m", "wvmos", "--wvmos-ckpt", str(folders / "missing.ckpt"))
    assert result.exit_code == 2 and "vocoder weights pull wvmos" in result.stderr


def test_all_without_references_runs_the_reference_free_metrics(folders: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    require_module("speechmos", "dnsmos")
    monkeypatch.setenv("VOCODER_DATA_DIR", str(tmp_path))  # no WV-MOS checkpoint here: skipped with a warning
    result = score(str(folders / "gen" / "same.flac"), "-m", "all", "-f", "jsonl", "--per-file")
    assert result.exit_code == 0, result.output
    (row,) = map(json.loads, result.stdout.splitlines())
    assert set(row) == {"id", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808"}
    assert all(1 < row[k] < 5 for k in row if k != "id")
    assert "skipping wvmos" in result.stderr


def test_clipped_and_mismatched_files_are_reported(tmp_path: Path) -> None:
    speech = demo_speech(SR)[: 2 * SR]
    write(tmp_path / "ref" / "clip.wav", speech, SR)
    write(tmp_path / "gen" / "clip.wav", np.clip(speech * 20, -1, 1), SR)  # hard-clipped output
    write(tmp_path / "ref" / "long.wav", speech, SR)
    write(tmp_path / "gen" / "long.wav", speech[: SR], SR)  # half the length: a wrong pairing
    write(tmp_path / "ref" / "nan.wav", speech, SR)
    write(tmp_path / "gen" / "nan.wav", np.where(np.arange(speech.size) == 99, np.nan, speech), SR, "FLOAT")
    result = score(str(tmp_path / "ref"), str(tmp_path / "gen"), "-m", "pesq", "-f", "jsonl", "--per-file")
    assert result.exit_code == 1
    rows = {r["id"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert "clipped" in rows["clip"]["warning"] and rows["clip"]["pesq"] < 3.0
    assert "error" not in rows["clip"]
    assert rows["long"]["pesq"] is None and "length mismatch" in rows["long"]["error"]
    assert rows["nan"]["pesq"] is None and "nan.wav: signal contains 1 NaN/inf samples" in rows["nan"]["error"]
    assert "warning: clip: generated audio is clipped" in result.stderr


def test_silent_or_dc_outputs_fail_and_never_raise_the_mean(folders: Path, tmp_path: Path) -> None:
    """Before: an all-zero output got SI-SDR 0.0 dB (better than real bad outputs) and counted as scored."""
    speech = demo_speech(SR)[: 2 * SR]
    write(tmp_path / "ref" / "ok.wav", speech, SR)
    write(tmp_path / "gen" / "ok.wav", speech + 0.05 * np.sin(np.arange(speech.size)).astype(np.float32), SR)
    write(tmp_path / "ref" / "dead.wav", speech, SR)
    write(tmp_path / "gen" / "dead.wav", np.zeros_like(speech), SR)
    write(tmp_path / "ref" / "offset.wav", speech, SR, "FLOAT")
    write(tmp_path / "gen" / "offset.wav", np.full_like(speech, 0.5), SR, "FLOAT")
    result = score(str(tmp_path / "ref"), str(tmp_path / "gen"), "-m", "sisdr,mstft,lsd", "-f", "json", "--per-file")
    assert result.exit_code == 1, result.output
    payload = json.loads(result.stdout)
    rows = {r["id"]: r for r in payload["files"]}
    assert rows["dead"]["sisdr"] is None and "generated audio is silent (peak -inf dBFS" in rows["dead"]["error"]
    assert rows["offset"]["mstft"] is None and "generated audio is DC only" in rows["offset"]["error"]
    assert payload["summary"]["sisdr"]["count"] == 1 and payload["summary"]["sisdr"]["failures"] == 2
    assert payload["summary"]["sisdr"]["mean"] == rows["ok"]["sisdr"]


def test_rate_option_moves_the_signal_metrics_and_the_summary_says_so(folders: Path) -> None:
    args = [str(folders / "ref"), str(folders / "gen"), "-m", "mstft,pesq"]
    result = score(*args, "-f", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metrics"]["mstft"]["sample_rate"] == 22050  # the declared default
    result = score(*args, "--rate", "16000", "-f", "json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)["metrics"]
    assert info["mstft"]["sample_rate"] == 16000 and info["pesq"]["sample_rate"] == 16000
    result = score(*args, "--rate", "mstft=44100")
    assert result.exit_code == 0 and "44.1 kHz" in result.stdout and "22.05 kHz" not in result.stdout
    for bad, message in (("pesq=8000", "pesq is defined at 16000 Hz"), ("fast", "expected HZ or NAME=HZ"),
                         ("mstft=100", "expected 8000..384000 Hz"), ("lsd=16000", "lsd is not among")):
        result = score(*args, "--rate", bad)
        assert result.exit_code == 2 and message in " ".join(result.stderr.split()), (bad, result.stderr)


def test_unaligned_pairs_get_mcd_after_full_dtw(tmp_path: Path) -> None:
    """TTS output against the recording of the same text: different lengths, so the aligned metrics refuse
    the pair, while `--unaligned` gives MCD after an unconstrained DTW, lower for the same speech said more
    slowly than for other speech of the same length."""
    speech = demo_speech(SR)
    ref = speech[: 2 * SR]
    cut = [0, int(0.6 * SR), int(1.3 * SR), ref.size]  # said more slowly: two 0.15 s stretches repeated
    back = int(0.15 * SR)
    stretched = np.concatenate([ref[cut[0] : cut[1]], ref[cut[1] - back : cut[2]], ref[cut[2] - back :]])
    other = speech[3 * SR : 3 * SR + stretched.size]
    write(tmp_path / "ref" / "a.wav", ref, SR)
    write(tmp_path / "same" / "a.wav", stretched, SR)
    write(tmp_path / "other" / "a.wav", other, SR)

    refused = score(str(tmp_path / "ref"), str(tmp_path / "same"), "-m", "mcd", "-f", "json", "--per-file", "-q")
    assert refused.exit_code == 1 and "length mismatch" in json.loads(refused.stdout)["files"][0]["error"]

    def mcd_dtw(gen: str) -> float:
        result = score(str(tmp_path / "ref"), str(tmp_path / gen), "-m", "mcd", "--unaligned", "-f", "json", "-q")
        assert result.exit_code == 0, result.output
        summary = json.loads(result.stdout)["summary"]
        assert set(summary) == {"mcd_dtw"}  # no frame-aligned MCD without alignment
        return summary["mcd_dtw"]["mean"]

    same, other_speech = mcd_dtw("same"), mcd_dtw("other")
    assert 0.0 < same < 0.6 * other_speech, (same, other_speech)
    usage = score(str(tmp_path / "ref"), str(tmp_path / "same"), "-m", "pesq,mcd", "--unaligned")
    assert usage.exit_code == 2 and "'pesq' compares aligned signals" in usage.stderr


def _named_pairs(root: Path, names: list[bytes]) -> None:
    """ref/ and gen/ whose file names are raw bytes (markup, ESC, a '/' making a sub-folder)."""
    import os

    speech = demo_speech(SR)
    rng = np.random.default_rng(3)
    for i, name in enumerate(names):
        x = speech[i * SR // 2 : i * SR // 2 + SR]
        for side, wav in (("ref", x), ("gen", x + 0.01 * rng.standard_normal(x.size).astype(np.float32))):
            target = os.fsencode(root / side) + b"/" + name + b".wav"
            os.makedirs(os.path.dirname(target), exist_ok=True)
            write(root / side / "plain.wav", wav, SR)
            os.rename(root / side / "plain.wav", target)


@pytest.mark.parametrize("per_file", [True, False])
def test_markup_and_control_characters_in_file_ids_are_shown_as_text(tmp_path: Path, per_file: bool) -> None:
    """`a[/]b.wav` (a sub-folder `a[` holding `]b.wav`) crashed `score --per-file` with a MarkupError and
    lost every score; `[bold]x` was shown as `x`; a raw ESC reached the terminal."""
    _named_pairs(tmp_path, [b"a[/]b", b"[bold]x", b"e\x1b[31mred", b"[red]warn[/red]"])
    args = [str(tmp_path / "ref"), str(tmp_path / "gen"), "-m", "stoi", *(["--per-file"] if per_file else [])]
    result = score(*args)
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.stdout and "scores over 4 files" in result.stdout
    if per_file:
        for shown in ("a[/]b", "[bold]x", "e\\x1b[31mred", "[red]warn[/red]"):
            assert shown in result.stdout, (shown, result.stdout)
    # a failing file with such an id: its line on stderr is text as well
    (tmp_path / "gen" / "[bold]x.wav").write_bytes(b"broken")
    failed = score(*args)
    assert failed.exit_code == 1 and "[bold]x: " in failed.stderr and "\x1b" not in failed.output


def test_all_with_unaligned_keeps_what_applies_and_says_what_it_left_out(tmp_path: Path, monkeypatch) -> None:
    """`-m all --unaligned` was a usage error; it now keeps mcd (after DTW) and the reference-free metrics
    and names the others with the reason. Explicit names that need alignment stay a usage error."""
    require_module("speechmos", "dnsmos")
    monkeypatch.setenv("VOCODER_DATA_DIR", str(tmp_path / "data"))  # no WV-MOS / NISQA weights: skipped
    speech = demo_speech(SR)
    write(tmp_path / "ref" / "a.wav", speech[: 2 * SR], SR)
    write(tmp_path / "gen" / "a.wav", speech[: int(2.5 * SR)], SR)  # 0.5 s longer: not aligned
    result = score(str(tmp_path / "ref"), str(tmp_path / "gen"), "-m", "all", "--unaligned", "-f", "json", "-q")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["summary"]
    assert set(summary) == {"mcd_dtw", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808"}
    text = " ".join(result.stderr.split())
    assert "--unaligned: left out pesq, pesq-nb, stoi, estoi, mstft, pitch, sisdr, lsd" in text
    assert "time-aligned" in text
    default = score(str(tmp_path / "ref"), str(tmp_path / "gen"), "--unaligned", "-f", "json", "-q")
    assert default.exit_code == 0 and set(json.loads(default.stdout)["summary"]) == {"mcd_dtw"}
    explicit = score(str(tmp_path / "ref"), str(tmp_path / "gen"), "-m", "stoi,mcd", "--unaligned")
    assert explicit.exit_code == 2 and "'stoi' compares aligned signals" in explicit.stderr


def test_length_mismatch_points_to_unaligned(tmp_path: Path) -> None:
    speech = demo_speech(SR)
    write(tmp_path / "ref" / "a.wav", speech[: 2 * SR], SR)
    write(tmp_path / "gen" / "a.wav", speech[: 3 * SR], SR)
    result = score(str(tmp_path / "ref"), str(tmp_path / "gen"), "-m", "stoi,mstft", "-f", "jsonl", "--per-file")
    assert result.exit_code == 1
    (row,) = map(json.loads, result.stdout.splitlines())
    assert "length mismatch" in row["error"] and "--unaligned" in row["error"]
    assert "--unaligned" in result.stderr


def test_intervals_are_clipped_to_the_metric_range_and_marked(tmp_path: Path) -> None:
    """Three files, one identical (PESQ 4.644, STOI 1.0): the t-intervals reached 5.0 and 1.01 without a word."""
    speech = demo_speech(SR)
    rng = np.random.default_rng(4)
    for i, level in enumerate((0.0, 0.02, 0.3)):
        x = speech[i * 2 * SR : (i + 1) * 2 * SR]
        write(tmp_path / "ref" / f"c{i}.wav", x, SR)
        write(tmp_path / "gen" / f"c{i}.wav", x + level * float(np.std(x)) * rng.standard_normal(x.size), SR)
    args = [str(tmp_path / "ref"), str(tmp_path / "gen"), "-m", "pesq,stoi,sisdr"]
    payload = json.loads(score(*args, "-f", "json").stdout)
    pesq, stoi, sisdr = (payload["summary"][k] for k in ("pesq", "stoi", "sisdr"))
    assert pesq["ci_clipped"] and pesq["ci_high"] == 4.644 and pesq["ci_low"] < pesq["mean"]
    assert stoi["ci_clipped"] and stoi["ci_high"] == 1.0
    assert sisdr["ci_clipped"] is False  # SI-SDR (dB) has no bound
    assert payload["metrics"]["pesq"]["ranges"] == {"pesq": [0.999, 4.644]}
    assert payload["metrics"]["sisdr"]["ranges"] == {"sisdr": None}
    rows = {r["metric"]: r for r in csv.DictReader(io.StringIO(score(*args, "-f", "csv").stdout))}
    assert rows["stoi"]["ci_clipped"] == "True" and rows["sisdr"]["ci_clipped"] == "False"
    table = score(*args)
    assert "4.644]*" in table.stdout and "1.000]*" in table.stdout
    assert "interval clipped to the metric's range" in " ".join(table.stdout.split())


def test_output_file_is_never_replaced_unless_asked(folders: Path, tmp_path: Path) -> None:
    """`-o FILE` replaced any existing file; now only with --overwrite, checked before any scoring."""
    out = tmp_path / "scores.csv"
    out.write_text("my notes\n")
    args = [str(folders / "ref"), str(folders / "gen"), "-m", "stoi", "-f", "csv", "-o", str(out)]
    refused = score(*args)
    assert refused.exit_code == 2 and "--overwrite" in refused.stderr and out.read_text() == "my notes\n"
    replaced = score(*args, "--overwrite")
    assert replaced.exit_code == 0 and out.read_text().startswith("metric,mean")
    folder = score(*args[:-1], str(tmp_path))
    assert folder.exit_code == 2 and "is a folder" in folder.stderr
    under_a_file = score(*args[:-1], str(out / "x.csv"))
    assert under_a_file.exit_code == 2 and "not a folder" in under_a_file.stderr
    fresh = tmp_path / "new" / "deeper" / "s.json"
    made = score(*args[:-2], "-f", "json", "-o", str(fresh))
    assert made.exit_code == 0 and json.loads(fresh.read_text())["summary"]["stoi"]["count"] == 3


def test_long_work_is_announced_before_it_starts(tmp_path: Path) -> None:
    """CREPE pitch costs most of a second of CPU per second of audio: 160 s of outputs is minutes. The note names the
    metric, the estimate and the -m list without it; here every pair lacks its reference, so nothing runs long."""
    speech = demo_speech(SR)
    long = np.tile(speech, int(np.ceil(40 * SR / speech.size)))[: 40 * SR]
    for i in range(4):
        write(tmp_path / "gen" / f"take{i}.wav", long, SR)
    write(tmp_path / "ref" / "other.wav", speech[:SR], SR)
    result = score(str(tmp_path / "ref"), str(tmp_path / "gen"), "-m", "stoi,pitch", "-j", "1", "--device", "cpu")
    assert result.exit_code == 1  # no reference for either output: failures, fast
    text = " ".join(result.stderr.split())
    assert "note: scoring will take about" in text and "pitch about 2 min" in text, text
    assert "160 s of audio" in text and "to leave it out: -m stoi" in text
    assert text.index("note:") < text.index("files failed")  # said before the work, not after
    quiet = score(str(tmp_path / "ref"), str(tmp_path / "gen"), "-m", "stoi", "-j", "1")
    assert "note:" not in quiet.stderr  # STOI on 80 s: about a second


def test_score_tables_fit_80_columns(folders: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The summary at 80 columns: whole headers and whole numbers (no `…`), lines within 80."""
    monkeypatch.setenv("COLUMNS", "80")
    result = score(str(folders / "ref"), str(folders / "gen"), "-m", "pesq,stoi,estoi,mstft,mcd", "--per-file")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in result.stdout
    for header in ("metric", "mean", "std", "95% CI", "count", "failures", "mcd_dtw"):
        assert header in result.stdout
