"""`vocoder tts` inputs that used to crash, guess or skip without a word: acoustic options, arguments that
are not UTF-8, `--texts` formats, `--dir` entries that cannot be read, ids too long for a file name, and
the Tacotron2 download error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from typer.testing import CliRunner

from tests.conftest import skip_unless_ci
from tests.helpers import tiny_weights
from vocoder_cli.cli.app import app
from vocoder_cli.tts.espeak import Espeak, EspeakUnavailable

runner = CliRunner()
MISSING_WEIGHTS = "/nonexistent/vocoder.safetensors"  # an option error must come before the weights are read

try:
    Espeak()
except EspeakUnavailable as exc:  # pragma: no cover - the test extra installs espeakng-loader
    skip_unless_ci(f"eSpeak NG unavailable: {exc}")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tiny_weights(tmp_path_factory.mktemp("w") / "tiny.safetensors"))


def run(*args: str, input: bytes | str | None = None):  # noqa: A002
    return runner.invoke(app, ["tts", *args], input=input)


def vocoder(*args: str | bytes) -> subprocess.CompletedProcess[bytes]:
    """The real CLI in a child process: a crash inside eSpeak (SIGSEGV) shows as its exit status."""
    return subprocess.run([sys.executable, "-m", "vocoder_cli", *args], capture_output=True, timeout=300, check=False)


@pytest.mark.parametrize(
    ("opt", "message"),
    [
        ("voice=", "--acoustic-opt voice= has an empty value; give voice=VALUE"),
        ("voice=  ", "--acoustic-opt voice= has an empty value"),
        ("=en", "--acoustic-opt takes KEY=VALUE, got '=en'"),
        ("speed=2", "acoustic model 'espeak' has no option speed (its options: voice, rate, pitch)"),
        ("voice=xx-nonexistent", "espeak: --acoustic-opt voice='xx-nonexistent': no such voice or language"),
        ("voice=en-us+nonexistent", "eSpeak NG has no variant 'nonexistent'"),
        ("voice=f3", "espeak: --acoustic-opt voice='f3': no such voice or language"),
        ("voice=" + "e" * 60, "longer than eSpeak NG's 39 characters"),
        ("rate=", "--acoustic-opt rate= has an empty value"),
        ("rate=fast", "espeak: --acoustic-opt rate='fast' is not an integer; rate takes an integer from 80 to 450"),
        ("rate=79", "espeak: --acoustic-opt rate='79' is out of range; rate takes an integer from 80 to 450"),
        ("rate=451", "rate='451' is out of range"),
        ("pitch=100", "espeak: --acoustic-opt pitch='100' is out of range; pitch takes an integer from 0 to 99"),
        ("pitch=-1", "pitch='-1' is out of range"),
    ],
)
def test_every_bad_espeak_option_is_one_line_and_exit_2_before_anything_loads(
    tmp_path: Path, opt: str, message: str
) -> None:
    result = run("Hi.", "-o", str(tmp_path / "x.wav"), "-w", MISSING_WEIGHTS, "--acoustic-opt", opt)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not list(tmp_path.iterdir())


def test_an_empty_voice_no_longer_crashes_espeak(tmp_path: Path, weights: str) -> None:
    for opt in ("voice=", "voice=+", "voice=en+", "voice= +f3"):
        done = vocoder("tts", "hi", "--acoustic-opt", opt, "-o", str(tmp_path / "x.wav"), "-w", weights)
        assert done.returncode == 2, (opt, done.returncode, done.stderr)  # was 139 (SIGSEGV) for voice=
        assert done.stderr.decode().startswith("error: ") and not (tmp_path / "x.wav").exists()


def test_tacotron2_and_repeated_options_are_checked_too(tmp_path: Path) -> None:
    common = ["Hi.", "-o", str(tmp_path / "x.wav"), "-w", MISSING_WEIGHTS]
    for opts, message in [
        (["max_steps=0"], "tacotron2-lj: --acoustic-opt max_steps='0' is out of range; max_steps takes an integer "
                          "from 1 to 20000 (decoder frames, 86 a second)"),
        (["max_steps=1e9"], "max_steps='1e9' is not an integer"),
        (["max_chars=5"], "max_chars='5' is out of range; max_chars takes an integer from 20 to 1000"),
        (["voice=en"], "acoustic model 'tacotron2-lj' has no option voice (its options: max_steps, max_chars)"),
        (["max_steps=10", "max_steps=20"], "--acoustic-opt max_steps is given twice ('10' and '20'); give it once"),
    ]:  # fmt: skip
        args = [a for opt in opts for a in ("--acoustic-opt", opt)]
        result = run(*common, "-a", "tacotron2-lj", *args)
        assert result.exit_code == 2 and message in result.stderr, (opts, result.stderr)
    result = run(*common, "-a", "nope", "--acoustic-opt", "x=1")
    assert result.exit_code == 2 and "unknown acoustic model 'nope'; known: espeak, tacotron2-lj" in result.stderr


def test_voices_espeak_ng_accepts_are_accepted(tmp_path: Path, weights: str) -> None:
    sizes = {}
    for voice in ("en-gb", "EN-GB", "English (Great Britain)", "gmw/en-GB-x-rp", "en-us+f3", "de+Alex", "en+13"):
        out = tmp_path / f"{len(sizes)}.wav"
        result = run("Tomato water.", "-o", str(out), "-w", weights, "--acoustic-opt", f"voice={voice}")
        assert result.exit_code == 0, (voice, result.output)
        sizes[voice] = sf.info(out).frames
    assert abs(sizes["en-gb"] - sizes["EN-GB"]) < 0.01 * sizes["en-gb"]  # the same voice
    listing = run("--list")
    assert listing.exit_code == 0
    flat = " ".join(listing.stdout.split())
    assert "espeak voices (--acoustic-opt voice=NAME;" in flat and " en-gb, " in flat and " en-gb-x-rp, " in flat
    assert "espeak variants (voice=NAME+VARIANT;" in flat and " f3, " in flat and " Alex, " in flat


def test_arguments_that_are_not_utf8_are_named_with_their_byte(tmp_path: Path, weights: str) -> None:
    out = tmp_path / "x.wav"
    done = vocoder("tts", b"Hi \xff there", "-o", str(out), "-w", weights)
    assert done.returncode == 2, done.stderr
    assert done.stderr.decode() == (
        "error: the TEXT argument is not UTF-8 text (byte 0xff at offset 3); pass UTF-8 (or use - and stdin)\n"
    )
    done = vocoder("tts", "Hi.", "-o", str(out), "-w", weights, "--acoustic-opt", b"voice=en\xe9")
    assert done.returncode == 2
    assert done.stderr.decode() == (
        "error: --acoustic-opt 'voice' is not UTF-8 text (byte 0xe9 at offset 8); pass UTF-8 (or use - and stdin)\n"
    )
    assert not out.exists()
    done = subprocess.run(  # stdin: the same rule, the same kind of line
        [sys.executable, "-m", "vocoder_cli", "tts", "-", "-o", str(out), "-w", weights],
        input=b"caf\xe9", capture_output=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.decode() == "error: <stdin>: not UTF-8 text (byte 0xe9 at offset 3); save it as UTF-8\n"
    # a UTF-8 text in any script is fine
    result = run("Caf\u00e9 \u4e2d\u6587 \U0001f600.", "-o", str(out), "-w", weights)
    assert result.exit_code == 0, result.output


def test_texts_with_bars_keep_them_and_a_note_says_how_the_file_was_read(tmp_path: Path, weights: str) -> None:
    texts = tmp_path / "t.txt"
    texts.write_text("a|Either this | or that | and more.\nb|Plain.\n")
    result = run("--texts", str(texts), str(tmp_path / "out"), "-w", weights, "--save-mels")
    assert result.exit_code == 0, result.output
    assert f"note: {texts}: 2 lines read as id|text: the text is everything after the first '|'" in result.stderr
    whole = sf.info(tmp_path / "out" / "a.wav").duration
    texts.write_text("a|Either this\n")
    run("--texts", str(texts), str(tmp_path / "short"), "-w", weights)
    assert whole > 1.5 * sf.info(tmp_path / "short" / "a.wav").duration  # all of the text was spoken
    # three columns that are not LJSpeech's: spoken whole, and the note says how to get the third column
    texts.write_text("x|Yes|no thanks\n")
    result = run("--texts", str(texts), str(tmp_path / "o2"), "-w", weights)
    assert "the third is not a normalised form of the second: --texts-format ljspeech speaks the third" in result.stderr
    result = run("--texts", str(texts), str(tmp_path / "o3"), "-w", weights, "--texts-format", "ljspeech")
    assert result.exit_code == 0 and "read as LJSpeech metadata (id|text|normalised)" in result.stderr
    assert sf.info(tmp_path / "o3" / "x.wav").duration < sf.info(tmp_path / "o2" / "x.wav").duration
    result = run("--texts", str(texts), str(tmp_path / "o4"), "-w", weights, "-q")
    assert result.exit_code == 0 and result.stderr == ""  # --quiet: no note


def test_texts_format_usage_errors(tmp_path: Path) -> None:
    texts = tmp_path / "t.txt"
    texts.write_text("a|b\n")
    result = run("--texts", str(texts), str(tmp_path / "o"), "--texts-format", "csv")
    assert result.exit_code == 2 and "--texts-format must be one of auto, id-text, ljspeech, not 'csv'" in result.stderr
    result = run("Hi.", "-o", str(tmp_path / "x.wav"), "--texts-format", "ljspeech")
    assert result.exit_code == 2 and "--texts-format applies to --texts only" in result.stderr


def test_every_dir_entry_that_is_skipped_is_listed_or_noted(tmp_path: Path, weights: str) -> None:
    tdir = tmp_path / "D" / "transcriptions"
    (tdir / "more").mkdir(parents=True)
    (tdir / "more" / "hidden.txt").write_text("Not searched.")
    (tdir / "good.txt").write_text("Hello there.")
    (tdir / "broken.txt").symlink_to(tmp_path / "nowhere.txt")
    (tdir / "loop.txt").symlink_to(tdir / "loop.txt")
    os.mkfifo(tdir / "fifo.txt")
    (tdir / "notes.md").write_text("x")
    (tdir / ("\u4e2d" * 78 + ".txt")).write_text("Seventy-eight characters fit.")
    (tdir / ("\u4e2d" * 80 + ".txt")).write_text("Eighty do not.")
    out = tmp_path / "out"
    result = run("--dir", str(tmp_path / "D"), str(out), "-w", weights, "--save-mels")
    assert result.exit_code == 1, result.output
    err = result.stderr
    assert f"note: {tdir}: skipped 1 subfolder ('more') and 1 file ('notes.md')" in err
    assert f"failed broken ({tdir / 'broken.txt'}): a broken symbolic link" in err
    assert f"failed loop ({tdir / 'loop.txt'}): a symbolic link loop" in err
    assert f"failed fifo ({tdir / 'fifo.txt'}): not a regular file" in err
    assert "id is 240 bytes long as a file name (80 characters); output names allow at most 236" in err
    assert "2 items written" in err and "4 failed" in err
    long_id = "\u4e2d" * 78  # 234 bytes: its .wav, .npy and their temporary files all fit
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{long_id}.npy", f"{long_id}.wav", "good.npy", "good.wav"]
    )


def test_a_transcriptions_link_that_is_broken_stops_the_run_instead_of_reading_the_parent(
    tmp_path: Path, weights: str
) -> None:
    (tmp_path / "D").mkdir()
    (tmp_path / "D" / "README.txt").write_text("This folder holds the recordings.")
    (tmp_path / "D" / "transcriptions").symlink_to(tmp_path / "elsewhere")
    result = run("--dir", str(tmp_path / "D"), str(tmp_path / "out"), "-w", weights)
    assert result.exit_code == 2
    assert f"{tmp_path / 'D' / 'transcriptions'} is a broken symbolic link" in result.stderr
    assert not (tmp_path / "out").exists()
    (tmp_path / "D" / "transcriptions").unlink()  # without it, D/*.txt is read, and a note says so
    result = run("--dir", str(tmp_path / "D"), str(tmp_path / "out"), "-w", weights)
    assert result.exit_code == 0 and "has no transcriptions/ folder: reading the .txt files in" in result.stderr


def test_the_tacotron2_download_error_says_what_to_do_without_that_host(
    tmp_path: Path, weights: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOCODER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("VOCODER_OFFLINE", raising=False)
    (tmp_path / "data").mkdir()
    gone = (tmp_path / "unreachable" / "tacotron2_english_characters_1500_epochs_ljspeech.pth").as_uri()
    (tmp_path / "data" / "registry.json").write_text(
        json.dumps({"weights": [{"name": "tacotron2-lj", "url": gone, "kind": "acoustic",
                                 "file_name": "tacotron2_english_characters_1500_epochs_ljspeech.pth"}]})
    )  # fmt: skip
    result = run("Hi.", "-o", str(tmp_path / "x.wav"), "-a", "tacotron2-lj", "--no-verify", "-w", weights)
    assert result.exit_code == 2
    err = " ".join(result.stderr.split())
    assert f"cannot download {gone}" in err
    assert (
        "Without access to that host: download tacotron2_english_characters_1500_epochs_ljspeech.pth on another "
        "machine and pass --acoustic-weights PATH, or fetch it from a mirror once with "
        "`vocoder weights pull tacotron2-lj --no-verify --url MIRROR_URL`"
    ) in err
