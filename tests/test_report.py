"""`vocoder report` as a user runs it: the files it writes, numbers equal to `vocoder score`'s,
reference-free sets, the problems section and exit codes, usage errors, HTML escaping, --weights."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.conftest import require_module, require_shared_weights
from tests.helpers import write
from vocoder_cli.cli.app import app
from vocoder_cli.demo import demo_speech
from vocoder_cli.errors import ConfigError
from vocoder_cli.report.build import sample_positions
from vocoder_cli.report.sets import parse_set, slugify

require_module("pesq", "metrics")
require_module("matplotlib", "report")
runner = CliRunner()
SR = 22050
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ref/ and gen/ from the bundled real speech: gen = ref + noise at 20, 10 and 0 dB SNR (a ranking)."""
    root = tmp_path_factory.mktemp("report")
    speech = demo_speech(SR)
    rng = np.random.default_rng(0)
    for i, snr in enumerate((20, 10, 0)):
        x = speech[i * 2 * SR : (i + 1) * 2 * SR]
        noise = rng.standard_normal(x.size).astype(np.float32)
        noise *= np.sqrt(np.mean(x**2) / np.mean(noise**2) / 10 ** (snr / 10))
        gen = x + noise
        gen *= min(1.0, 0.5 / float(np.max(np.abs(gen))))  # well below full scale (DNSMOS refuses clipping)
        write(root / "ref" / f"snr{snr}.wav", x, SR)
        write(root / "gen" / f"snr{snr}.flac", gen[:-100], SR)
    return root


@pytest.fixture(scope="module")
def one_pair(folders: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One clip of ``folders`` (DNSMOS costs seconds per clip on a busy CPU)."""
    root = tmp_path_factory.mktemp("one")
    for side, ext in (("ref", "wav"), ("gen", "flac")):
        (root / side).mkdir()
        shutil.copy(folders / side / f"snr20.{ext}", root / side / f"snr20.{ext}")
    return root


def report(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["report", *args])


def score_json(*args: str) -> dict:
    result = runner.invoke(app, ["score", *args, "-f", "json", "--per-file"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_files_written_and_numbers_equal_score(folders: Path, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    result = report(str(out), "--set", f"noisy={folders / 'ref'}:{folders / 'gen'}", "-m", "pesq,stoi,mstft", "-q")
    assert result.exit_code == 0, result.output
    page = (out / "index.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "No problems" in page
    # the per-file numbers are `vocoder score`'s, exactly
    ours = json.loads((out / "scores" / "noisy.json").read_text())
    theirs = score_json(str(folders / "ref"), str(folders / "gen"), "-m", "pesq,stoi,mstft")
    assert ours == theirs
    assert [f["id"] for f in ours["files"]] == ["snr0", "snr10", "snr20"]
    rows = list(csv.DictReader(io.StringIO((out / "scores" / "noisy.csv").read_text())))
    assert [float(r["pesq"]) for r in rows] == [f["pesq"] for f in ours["files"]]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["groups"][0]["summary"]["pesq"] == ours["summary"]["pesq"]
    assert summary["problems"] == []
    # worst, median, best by PESQ: the 0, 10 and 20 dB files; each drawn and playable
    pesq = {f["id"]: f["pesq"] for f in ours["files"]}
    assert pesq["snr0"] < pesq["snr10"] < pesq["snr20"]
    for name in ("distribution", "snr0", "snr10", "snr20"):
        assert (out / "figures" / f"noisy-{name}.png").read_bytes()[:8] == PNG
    for name in ("snr0", "snr10", "snr20"):
        for side in ("reference", "generated"):
            wav = out / "audio" / "noisy" / f"{name}-{side}.wav"
            assert wav.read_bytes()[:4] == b"RIFF"
            assert f'src="audio/noisy/{name}-{side}.wav"' in page
    assert "worst by pesq" in page and "best by pesq" in page and "median by pesq" in page
    assert "<script" not in page and "http" not in page.split("<body>")[1]  # opens from disk, no network


@pytest.mark.slow  # DNSMOS' ONNX sessions: about a minute here, three runs of one clip
def test_reference_free_set_gets_only_reference_free_metrics(one_pair: Path, tmp_path: Path) -> None:
    require_module("speechmos", "dnsmos")
    out = tmp_path / "rep"
    result = report(str(out), "--set", f"paired={one_pair / 'ref'}:{one_pair / 'gen'}",
                    "--set", f"alone=:{one_pair / 'gen'}", "-m", "stoi,dnsmos", "-n", "1", "-q")
    assert result.exit_code == 0, result.output
    alone = json.loads((out / "scores" / "alone.json").read_text())
    paired = json.loads((out / "scores" / "paired.json").read_text())
    assert list(alone["metrics"]) == ["dnsmos"] and list(paired["metrics"]) == ["stoi", "dnsmos"]
    assert alone == score_json(str(one_pair / "gen"), "-m", "dnsmos")
    assert 1.0 < alone["summary"]["dnsmos_ovrl"]["mean"] < 5.0
    # one example of the reference-free set: the generated audio only
    assert list((out / "audio" / "alone").iterdir())[0].name.endswith("-generated.wav")
    assert len(list((out / "audio" / "alone").iterdir())) == 1
    page = (out / "index.html").read_text()
    top = page.split("<h2>Comparison</h2>")[1].split('<section class="group"')[0]
    assert top.count("<table>") == 2 and top.count("<th>dnsmos_ovrl ↑</th>") == 2  # one table per metric family
    assert top.count("<th>stoi ↑</th>") == 1


def test_problems_are_listed_and_the_report_is_still_written(folders: Path, tmp_path: Path) -> None:
    gen = tmp_path / "gen"
    shutil.copytree(folders / "gen", gen)
    (gen / "snr10.flac").write_bytes(b"not audio at all")  # unreadable
    write(gen / "stray.wav", demo_speech(SR)[: SR], SR)  # no reference with this id
    out = tmp_path / "rep"
    result = report(str(out), "--set", f"good={folders / 'ref'}:{folders / 'gen'}",
                    "--set", f"bad={folders / 'ref'}:{gen}", "--set", f"gone={tmp_path / 'nowhere'}:{gen}",
                    "-m", "stoi", "-n", "1", "-q")
    assert result.exit_code == 1
    page = (out / "index.html").read_text()
    assert "Problems (3)" in page
    problems = json.loads((out / "summary.json").read_text())["problems"]
    by_item = {(p["group"], p["item"]): p["message"] for p in problems}
    assert "no such file or folder" in by_item[("gone", "")]
    assert by_item[("bad", "stray")] == "no reference file with this id"
    assert "snr10.flac" in by_item[("bad", "snr10")]
    for text in ("nowhere", "stray", "snr10.flac"):
        assert text in page and text in result.stderr
    assert (out / "figures" / "comparison.png").read_bytes()[:8] == PNG  # good and bad side by side
    # the good set and the good files of the bad set are still scored
    good = json.loads((out / "scores" / "good.json").read_text())
    assert good["summary"]["stoi"]["count"] == 3
    bad = json.loads((out / "scores" / "bad.json").read_text())
    assert bad["summary"]["stoi"]["count"] == 2 and bad["summary"]["stoi"]["failures"] == 2


@pytest.mark.parametrize("spec", ["noequals", "=ref:gen", "name=", "name=ref:"])
def test_bad_set_syntax_is_a_usage_error(spec: str, tmp_path: Path) -> None:
    result = report(str(tmp_path / "rep"), "--set", spec)
    assert result.exit_code == 2
    assert "--set" in result.stderr
    assert not (tmp_path / "rep").exists()


def test_usage_errors(folders: Path, tmp_path: Path) -> None:
    pair = f"{folders / 'ref'}:{folders / 'gen'}"
    twice = report(str(tmp_path / "r"), "--set", f"a={pair}", "--set", f"a={pair}")
    assert twice.exit_code == 2 and "unique" in twice.stderr
    no_weights = report(str(tmp_path / "r"), "--set", f"a={folders / 'ref'}")
    assert no_weights.exit_code == 2 and "--weights" in no_weights.stderr
    rank = report(str(tmp_path / "r"), "--set", f"a={pair}", "-m", "stoi", "--rank-by", "pesq")
    assert rank.exit_code == 2 and "--rank-by" in rank.stderr
    paired_only = report(str(tmp_path / "r"), "--set", f"a=:{folders / 'gen'}", "-m", "stoi")
    assert paired_only.exit_code == 2 and "need references" in paired_only.stderr


def test_set_names_are_escaped(folders: Path, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    name = '<b>x</b> & "y"'
    result = report(str(out), "--set", f"{name}={folders / 'ref'}:{folders / 'gen'}", "-m", "stoi", "-n", "1", "-q")
    assert result.exit_code == 0, result.output
    page = (out / "index.html").read_text()
    assert "<b>" not in page and "&lt;b&gt;x&lt;/b&gt; &amp; &quot;y&quot;" in page
    assert (out / "scores" / "b-x-b-y.json").exists()  # the file names are slugs


@pytest.mark.data
def test_weights_resynthesise_real_speech(data_dir: Path, tmp_path: Path) -> None:
    """Real LJ Speech clips resynthesised by Griffin-Lim (no download) inside the report."""
    ref = tmp_path / "lj"
    for path in sorted((data_dir / "ljspeech" / "dev" / "wavs").glob("*.flac"))[:2]:
        ref.mkdir(exist_ok=True)
        shutil.copy(path, ref / path.name)
    out = tmp_path / "rep"
    result = report(str(out), "--set", f"lj={ref}", "--weights", "griffin-lim", "-m", "stoi,mstft", "-n", "1",
                    "--device", "cpu", "-q")
    assert result.exit_code == 0, result.output
    generated = sorted(p.name for p in (out / "resynth" / "griffin-lim" / "lj").iterdir())
    assert generated == ["LJ001-0001.wav", "LJ001-0002.wav"]
    ours = json.loads((out / "scores" / "lj-griffin-lim.json").read_text())
    assert ours == score_json(str(ref), str(out / "resynth" / "griffin-lim" / "lj"), "-m", "stoi,mstft")
    assert 0.9 < ours["summary"]["stoi"]["mean"] < 1.0  # docs/quality.md: Griffin-Lim STOI 0.973 on these
    summary = json.loads((out / "summary.json").read_text())
    assert summary["groups"][0]["name"] == "lj · griffin-lim" and summary["groups"][0]["weights"] == "griffin-lim"
    # built in a staging folder, but the page and the numbers name where the audio ends up
    assert summary["groups"][0]["gen"] == str(out / "resynth" / "griffin-lim" / "lj")
    assert f"generated <code>{out / 'resynth' / 'griffin-lim' / 'lj'}</code>" in (out / "index.html").read_text()


def test_parse_set_forms() -> None:
    both = parse_set("inner=a/ref:b/gen")
    assert (both.name, both.ref, both.gen) == ("inner", Path("a/ref"), Path("b/gen"))
    free = parse_set("tts=:out")
    assert free.ref is None and free.gen == Path("out")
    gen_here = parse_set("lj=refs")
    assert gen_here.ref == Path("refs") and gen_here.gen is None
    assert parse_set("a=b=c:d").name == "a"  # the first '=' ends the name
    with pytest.raises(ConfigError):
        parse_set("x")


def test_slugs_are_unique_and_safe() -> None:
    taken: set[str] = set()
    assert [slugify(s, taken) for s in ("A b", "a-b", "../../etc", "")] == ["a-b", "a-b-2", "etc", "set"]


def test_wide_comparison_tables_are_split_evenly() -> None:
    from vocoder_cli.report.html import _chunks

    keys = [f"k{i}" for i in range(15)]
    assert [len(c) for c in _chunks(keys, 6)] == [5, 5, 5] and sum(_chunks(keys, 6), []) == keys
    assert [len(c) for c in _chunks(keys[:6], 6)] == [6] and [len(c) for c in _chunks(keys[:7], 6)] == [4, 3]


def test_sample_positions_worst_median_best() -> None:
    assert sample_positions(20, 3) == [0, 10, 19]
    assert sample_positions(2, 3) == [0, 1]
    assert sample_positions(5, 1) == [2]
    assert sample_positions(0, 3) == []


def test_without_matplotlib_the_error_names_the_extra(folders: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an install without the extra looks like
    result = report(str(tmp_path / "rep"), "--set", f"a={folders / 'ref'}:{folders / 'gen'}", "-m", "stoi")
    assert result.exit_code == 2
    assert "pip install 'vocoder[report]'" in result.stderr


def test_rerun_replaces_the_previous_report(folders: Path, tmp_path: Path) -> None:
    """A second run into the same OUT_DIR leaves none of the first run's scores, figures or audio."""
    out = tmp_path / "rep"
    pair = f"{folders / 'ref'}:{folders / 'gen'}"
    first = report(str(out), "--set", f"alpha={pair}", "-m", "stoi", "-n", "1", "-q")
    assert first.exit_code == 0, first.output
    assert (out / "scores" / "alpha.json").exists() and (out / "audio" / "alpha").is_dir()
    owned = json.loads((out / ".vocoder-report").read_text())["files"]
    assert "index.html" in owned and "scores/alpha.json" in owned
    second = report(str(out), "--set", f"beta={pair}", "-m", "stoi", "-n", "1", "-q")
    assert second.exit_code == 0, second.output
    left = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert not [f for f in left if "alpha" in f], left
    assert "scores/beta.json" in left and "figures/beta-distribution.png" in left
    assert "alpha" not in (out / "index.html").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]  # no staging or old folders left beside it


def test_out_dir_with_other_files_is_refused(folders: Path, tmp_path: Path) -> None:
    """A non-empty folder that is not a report, or a report a user added a file to: exit 2, untouched."""
    pair = f"{folders / 'ref'}:{folders / 'gen'}"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("keep me")
    refused = report(str(mine), "--set", f"a={pair}", "-m", "stoi", "-q")
    assert refused.exit_code == 2 and "not a previous report" in refused.stderr and "thesis.tex" in refused.stderr
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]
    out = tmp_path / "rep"
    assert report(str(out), "--set", f"a={pair}", "-m", "stoi", "-n", "1", "-q").exit_code == 0
    (out / "figures" / "my-notes.txt").write_text("mine")
    again = report(str(out), "--set", f"a={pair}", "-m", "stoi", "-n", "1", "-q")
    assert again.exit_code == 2 and "figures/my-notes.txt" in again.stderr
    assert (out / "figures" / "my-notes.txt").read_text() == "mine" and (out / "scores" / "a.json").exists()
    (out / "figures" / "my-notes.txt").unlink()
    # a set read from inside the previous report (the swap would delete it)
    inside = report(str(out), "--set", f"a=:{out / 'audio' / 'a'}", "-m", "dnsmos", "-q")
    assert inside.exit_code == 2 and "inside OUT_DIR" in inside.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    assert report(str(empty), "--set", f"a={pair}", "-m", "stoi", "-n", "1", "-q").exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "mine", "rep"]


def test_a_failed_build_keeps_the_previous_report(folders: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "rep"
    pair = f"{folders / 'ref'}:{folders / 'gen'}"
    assert report(str(out), "--set", f"old={pair}", "-m", "stoi", "-n", "1", "-q").exit_code == 0
    before = (out / "index.html").read_bytes()

    def broken(result: object) -> str:  # the last step fails, after every figure and score was written
        raise RuntimeError("disk full")

    monkeypatch.setattr("vocoder_cli.report.html.render_page", broken)
    failed = report(str(out), "--set", f"new={pair}", "-m", "stoi", "-n", "1", "-q")
    assert isinstance(failed.exception, RuntimeError)
    assert (out / "index.html").read_bytes() == before and not (out / "scores" / "new.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rep"]


@pytest.mark.data
def test_nisqa_in_a_report(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """NISQA (weights imported from ../shared/weights) scores a reference-free set; the numbers are the
    official code's (tests/test_metrics_nisqa.py) and the page shows its five keys."""
    from tests.test_metrics_nisqa import NISQA_ORDER, OFFICIAL, WEIGHTS

    require_shared_weights("nisqa/nisqa.tar")
    monkeypatch.setenv("VOCODER_DATA_DIR", str(tmp_path / "data"))
    pulled = runner.invoke(app, ["weights", "pull", "nisqa", "--url", (WEIGHTS / "nisqa.tar").as_uri(), "-q"])
    assert pulled.exit_code == 0, pulled.output
    clips = list(OFFICIAL)[:2]
    gen = tmp_path / "gen"
    gen.mkdir()
    for clip in clips:
        shutil.copy(data_dir / clip, gen / Path(clip).name)
    out = tmp_path / "rep"
    result = report(str(out), "--set", f"x=:{gen}", "-m", "nisqa", "-n", "1", "--device", "cpu", "-q")
    assert result.exit_code == 0, result.output
    ours = json.loads((out / "scores" / "x.json").read_text())
    rows = {r["id"]: r for r in ours["files"]}
    for clip in clips:
        assert [rows[Path(clip).stem][k] for k in NISQA_ORDER] == pytest.approx(OFFICIAL[clip]["nisqa"], abs=0.01)
    summary = json.loads((out / "summary.json").read_text())["groups"][0]
    assert summary["rank_by"] == "nisqa_mos" and summary["summary"]["nisqa_mos"]["count"] == 2
    page = (out / "index.html").read_text()
    assert all(f"{k} ↑" in page for k in NISQA_ORDER) and "worst by nisqa_mos" in page


def _speech_pairs(root: Path, names: list[bytes], seconds: float = 1.0) -> tuple[Path, Path]:
    """ref/ and gen/ (gen = ref + noise) with file names given as raw bytes (math text, markup, ESC, bytes
    that are not UTF-8): written under a plain name, then renamed, as a user's files would be."""
    import os

    speech = demo_speech(SR)
    rng = np.random.default_rng(1)
    n = int(seconds * SR)
    for i, name in enumerate(names):
        x = speech[i * n // 2 : i * n // 2 + n]
        for side, wav in (("ref", x), ("gen", x + 0.01 * rng.standard_normal(x.size).astype(np.float32))):
            folder = root / side
            write(folder / "plain.wav", wav, SR)
            os.rename(folder / "plain.wav", os.fsencode(folder) + b"/" + name + b".wav")
    return root / "ref", root / "gen"


HOSTILE_IDS = [b"a$\\frac$", b"b$x^$", b"c$unbalanced", b"d\\sqrt{", b"e[bold]x", b"f\x1b[31mred", b"g\tt"]


def test_math_text_and_markup_in_names_are_drawn_literally(tmp_path: Path) -> None:
    """Set names and file ids reach figure titles, tick labels and the HTML page: matplotlib math text
    (`$x$`, an unbalanced `$`, `\\frac`) used to raise ValueError and kill the report."""
    ref, gen = _speech_pairs(tmp_path, HOSTILE_IDS)
    names = ["$\\frac$ x$^$", "a$b [bold]s[/]\x1b[2Jclear"]
    out = tmp_path / "rep"
    result = report(str(out), *(a for n in names for a in ("--set", f"{n}={ref}:{gen}")), "-m", "stoi",
                    "-n", str(len(HOSTILE_IDS)), "-q")
    assert result.exit_code == 0, result.output
    figures = sorted(p.name for p in (out / "figures").iterdir())
    assert len(figures) == 2 * (len(HOSTILE_IDS) + 1) + 1  # every example, both distributions, the comparison
    assert all((out / "figures" / f).read_bytes()[:8] == PNG for f in figures)
    summary = json.loads((out / "summary.json").read_text())
    assert [g["name"] for g in summary["groups"]] == names
    assert all(g["summary"]["stoi"]["count"] == len(HOSTILE_IDS) for g in summary["groups"])
    # stderr shows the names as text: markup is not applied, ESC is shown as \x1b
    assert "\x1b" not in result.stderr
    for name in names:
        shown = name.replace("\x1b", "\\x1b")
        assert f"{shown}: {len(HOSTILE_IDS)} files, 0 failed" in result.stderr


def test_figure_text_is_literal() -> None:
    """The strings matplotlib receives: math text off, control characters and undecodable bytes visible."""
    from vocoder_cli.printable import visible as literal

    assert literal("$\\frac$ a[b]") == "$\\frac$ a[b]"
    assert literal("a\x1bb\nc") == "a\\x1bb\\nc"
    assert literal("d\udcffe") == "d\\xffe"  # os.fsdecode of the byte 0xff: FreeType crashes on it


def test_undecodable_file_names_do_not_break_the_written_files(tmp_path: Path) -> None:
    """A file id with bytes that are not UTF-8 appears as \\xff in the page, summary.json and scores/*.json;
    before, writing them raised UnicodeEncodeError after all the scoring."""
    ref, gen = _speech_pairs(tmp_path, [b"ok", b"bad\xffname"])
    out = tmp_path / "rep"
    result = report(str(out), "--set", f"s={ref}:{gen}", "-m", "stoi", "-q")
    assert result.exit_code in (0, 1), result.output  # whether soundfile can open such a name is not ours
    scores = json.loads((out / "scores" / "s.json").read_text(encoding="utf-8"))
    assert sorted(f["id"] for f in scores["files"]) == ["bad\\xffname", "ok"]
    assert "bad\\xffname" in (out / "index.html").read_text(encoding="utf-8")
    assert "bad\\xffname" in (out / "scores" / "s.csv").read_text(encoding="utf-8")


def test_report_into_the_current_empty_folder(folders: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`vocoder report .` in an empty folder: before, the staging folder was built inside OUT_DIR, the
    report refused it after all the work and named a folder it had deleted. Now it is written, twice."""
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    pair = f"{folders / 'ref'}:{folders / 'gen'}"
    for _ in range(2):  # the second run replaces the first, the folder (and a shell standing in it) stays
        result = report(".", "--set", f"a={pair}", "-m", "stoi", "-n", "1", "-q")
        assert result.exit_code == 0, result.output
        assert sorted(p.name for p in here.iterdir()) == [".vocoder-report", "audio", "figures", "index.html",
                                                          "scores", "summary.csv", "summary.json"]
        assert Path.cwd() == here and here.is_dir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here"]  # no staging or old folder left beside it


def test_output_inside_an_input_or_input_inside_output_is_refused(folders: Path, tmp_path: Path) -> None:
    """Before: OUT_DIR inside an input folder scored the report's own audio/ copies on the next run (a
    changed mean, exit 0). Now refused before any work, both ways, naming both folders, through symlinks."""
    inputs = tmp_path / "inputs"
    shutil.copytree(folders / "ref", inputs / "ref")
    shutil.copytree(folders / "gen", inputs / "gen")
    link = tmp_path / "link"
    link.symlink_to(inputs)
    cases = [
        (inputs / "rep", f"a=:{inputs}", "is inside the input folder"),  # reference-free set over the parent
        (inputs / "gen" / "rep", f"a={inputs / 'ref'}:{inputs / 'gen'}", "is inside the input folder"),
        (inputs / "rep", f"a={link}:{link / 'gen'}", "is inside the input folder"),  # the input through a symlink
        (link / "rep", f"a={inputs}:{inputs / 'gen'}", "is inside the input folder"),  # OUT_DIR through a symlink
        (tmp_path / "out", f"a={tmp_path / 'out' / 'x'}:{inputs / 'gen'}", "is inside OUT_DIR"),
        (inputs, f"a={inputs / 'ref'}:{inputs / 'gen'}", "is inside OUT_DIR"),  # OUT_DIR == the inputs' parent
    ]
    before = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    for out, spec, message in cases:
        result = report(str(out), "--set", spec, "-m", "dnsmos" if spec.startswith("a=:") else "stoi", "-q")
        text = " ".join(result.stderr.split())
        assert result.exit_code == 2 and message in text, (out, spec, result.stderr)
        assert str(out) in text
        assert "Traceback" not in result.output
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == before  # nothing written
    through = report(str(inputs / "rep"), "--set", f"a={link}:{link / 'gen'}", "-m", "stoi", "-q")
    assert f"{link} (= {inputs})" in " ".join(through.stderr.split())  # the symlink and where it points


def test_a_file_added_during_the_build_keeps_the_new_report_and_says_where(folders: Path, tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The one check that must run after the work (a user put a file into OUT_DIR meanwhile): nothing is
    replaced, and the message names the folder holding the new report, which exists."""
    import re

    from vocoder_cli.report import html

    out = tmp_path / "rep"
    pair = f"{folders / 'ref'}:{folders / 'gen'}"
    assert report(str(out), "--set", f"old={pair}", "-m", "stoi", "-n", "1", "-q").exit_code == 0
    render = html.render_page

    def meanwhile(result: object) -> str:
        (out / "notes.txt").write_text("mine")
        return render(result)  # type: ignore[arg-type]

    monkeypatch.setattr(html, "render_page", meanwhile)
    result = report(str(out), "--set", f"new={pair}", "-m", "stoi", "-n", "1", "-q")
    text = " ".join(result.stderr.split())
    assert result.exit_code == 2 and "notes.txt" in text, result.output
    kept = Path(re.search(r"the new report is kept in (\S+)", text).group(1))  # type: ignore[union-attr]
    assert kept.is_dir() and (kept / "scores" / "new.json").is_file() and (kept / "index.html").is_file()
    assert (out / "scores" / "old.json").is_file() and (out / "notes.txt").read_text() == "mine"


def test_clipped_interval_is_marked_in_the_page_and_the_summary(tmp_path: Path) -> None:
    """Three near-identical pairs: STOI about 0.99-1.0, whose t-interval reaches past 1.0; it is cut at
    1.0 and marked (summary.json, summary.csv, the page)."""
    speech = demo_speech(SR)
    rng = np.random.default_rng(2)
    for i, level in enumerate((0.0, 0.02, 0.3)):
        x = speech[i * SR : (i + 1) * SR]
        write(tmp_path / "ref" / f"c{i}.wav", x, SR)
        write(tmp_path / "gen" / f"c{i}.wav", x + level * float(np.std(x)) * rng.standard_normal(x.size), SR)
    out = tmp_path / "rep"
    result = report(str(out), "--set", f"s={tmp_path / 'ref'}:{tmp_path / 'gen'}", "-m", "stoi", "-n", "1", "-q")
    assert result.exit_code == 0, result.output
    stoi = json.loads((out / "summary.json").read_text())["groups"][0]["summary"]["stoi"]
    assert stoi["ci_clipped"] is True and stoi["ci_high"] == 1.0 and stoi["ci_low"] < stoi["mean"] < 1.0
    rows = list(csv.DictReader(io.StringIO((out / "summary.csv").read_text())))
    assert rows[0]["ci_clipped"] == "True" and float(rows[0]["ci_high"]) == 1.0
    page = (out / "index.html").read_text()
    assert "clipped to the metric's range" in page and "1.000]*" in page


def test_long_work_is_announced_before_it_starts(tmp_path: Path) -> None:
    """As in `vocoder score`: CREPE pitch on 160 s of outputs is minutes, said before any scoring (here no
    output has its reference, so nothing runs long)."""
    speech = demo_speech(SR)
    long = np.tile(speech, int(np.ceil(40 * SR / speech.size)))[: 40 * SR]
    for i in range(4):
        write(tmp_path / "gen" / f"take{i}.wav", long, SR)
    write(tmp_path / "ref" / "other.wav", speech[:SR], SR)
    out = tmp_path / "rep"
    result = report(str(out), "--set", f"s={tmp_path / 'ref'}:{tmp_path / 'gen'}", "-m", "stoi,pitch", "-j", "1",
                    "--device", "cpu", "-n", "1")
    assert result.exit_code == 1, result.output  # five unpaired files: problems, the report is written
    text = " ".join(result.stderr.split())
    assert "note: scoring will take about" in text and "pitch about 2 min" in text and "-m stoi" in text, text
    assert text.index("note:") < text.index("problem(s)")


def test_progress_bar_shows_set_names_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal each stage's bar is labelled with the set name, in a column Rich reads as markup:
    `a[/]b[/]c` raised MarkupError there (only on a terminal, so after the scoring had started)."""
    from rich.console import Console

    from vocoder_cli.cli import common
    from vocoder_cli.cli.report import _RichProgress

    buffer = io.StringIO()
    monkeypatch.setattr(common, "err_console", Console(file=buffer, force_terminal=True, width=100, color_system=None))
    with common.progress_bar() as progress:  # the bar `vocoder report` draws on a terminal
        sink = _RichProgress(progress)
        sink.stage("scoring a[/]b[/]c \x1b[2J", 2)
        sink.advance()
        progress.refresh()
    assert "scoring a[/]b[/]c \\x1b[2J" in buffer.getvalue()
