"""stdin and stdout under real shell redirections, for every command that reads or writes ``-``: a closed
stream (``<&-``, ``>&-``) is a usage error before any work (exit 2), a reader that goes away (``| head -c
100``, ``| true``) ends the command quietly (exit 0), a stdout that cannot take the bytes (``>/dev/full``) is
one line and exit 1, a stdin that cannot be read (opened write-only) is one line and exit 1. Never a
traceback. Each case runs the real CLI in a subprocess through bash."""

from __future__ import annotations

import io
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import in_ci
from tests.helpers import tiny_weights, tone

REPO = Path(__file__).resolve().parents[1]
SR = 22050

CLOSED_STDOUT = "error: stdout is closed (was the command run with >&- ?): give an output file instead of -"
CLOSED_STDIN = "error: stdin is closed (was the command run with <&- ?): give an input file instead of -"
FULL = "error: cannot write to stdout: No space left on device"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("stdio")
    for side in ("ref", "gen"):
        (folder / side).mkdir()
        for i in range(2):
            sf.write(folder / side / f"c{i}.wav", tone(1.0, SR, 200 + 40 * i), SR)
    sf.write(folder / "in.wav", tone(1.5, SR), SR)
    (folder / "pairs.tsv").write_text(f"{folder / 'ref' / 'c0.wav'}\t{folder / 'gen' / 'c0.wav'}\n")
    (folder / "list.txt").write_text(f"{folder / 'in.wav'}\n")
    (folder / "text.txt").write_text("Hello there.\n")
    return {"dir": folder, "weights": tiny_weights(folder / "tiny.safetensors")}


@pytest.fixture(scope="module")
def espeak() -> None:
    from vocoder_cli.tts.espeak import Espeak, EspeakUnavailable

    try:
        Espeak()
    except EspeakUnavailable as exc:  # pragma: no cover - the test extra installs espeakng-loader
        if in_ci():
            pytest.fail(f"eSpeak NG unavailable: {exc}")
        pytest.skip(f"eSpeak NG unavailable: {exc}")


def shell(files: dict[str, Path], command: str, redirect: str) -> tuple[int, bytes, str]:
    """Run ``vocoder COMMAND REDIRECT`` in bash in the data folder; (exit code of vocoder, stdout, stderr).

    A redirect that starts with ``|`` pipes vocoder's stdout into that command; ``$?`` of vocoder is kept."""
    vocoder = f"{shlex.quote(sys.executable)} -m vocoder_cli {command}"
    if redirect.startswith("|"):
        script = f"{vocoder} {redirect}; exit ${{PIPESTATUS[0]}}"
    else:
        script = f"{vocoder} {redirect}"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "W": str(files["weights"])}
    done = subprocess.run(["bash", "-c", script], cwd=files["dir"], capture_output=True, env=env, timeout=300)
    stderr = done.stderr.decode(errors="replace")
    assert "Traceback" not in stderr and "Exception" not in stderr, stderr
    return done.returncode, done.stdout, " ".join(stderr.split())


W = '-w "$W" --backend torch -q'
STREAM = f"resynth - - --stream {W}"
WHOLE = f"resynth - - {W}"
TTS = f'tts "Hello there." -o - {W}'
SCORE_CSV = "score ref gen -m mcd -f csv -q"
SCORE_TABLE = "score ref gen -m mcd -q"


@pytest.mark.parametrize(
    "command,redirect,code,message",
    [
        # resynth --stream: stdin -> stdout as it arrives
        (STREAM, "< in.wav >&-", 2, CLOSED_STDOUT),
        (STREAM, "<&-", 2, CLOSED_STDIN),
        (STREAM, "< in.wav > /dev/full", 1, FULL),
        (STREAM, "0> unreadable", 1, "error: <stdin>: cannot read the input (Bad file descriptor)"),
        # resynth - -: a whole WAV in, a whole WAV out
        (WHOLE, "< in.wav >&-", 2, CLOSED_STDOUT),
        (WHOLE, "<&-", 2, CLOSED_STDIN),
        (WHOLE, "< in.wav > /dev/full", 1, FULL),
        (WHOLE, "0> unreadable", 1, "error: cannot read stdin: Bad file descriptor"),
        (f"resynth --files-from - out {W}", "<&-", 2, CLOSED_STDIN),
        # score to stdout (CSV and the table), pairs from stdin
        (SCORE_CSV, ">&-", 2, CLOSED_STDOUT),
        (SCORE_CSV, "> /dev/full", 1, FULL),
        (SCORE_TABLE, "> /dev/full", 1, FULL),
        ("score --pairs - -m mcd -q -o scores.csv", "<&-", 2, CLOSED_STDIN),
    ],
)
def test_closed_full_and_unreadable_streams(files: dict[str, Path], command: str, redirect: str, code: int,
                                            message: str) -> None:
    rc, stdout, stderr = shell(files, command, redirect)
    assert rc == code and message in stderr, (rc, stderr)
    assert stdout == b""


@pytest.mark.parametrize(
    "command,redirect,code,message",
    [
        (TTS, ">&-", 2, CLOSED_STDOUT),
        (TTS, "> /dev/full", 1, FULL),
        (f"tts - -o out.wav {W}", "<&-", 2, CLOSED_STDIN),
        (f"tts --texts - outdir {W}", "<&-", 2, CLOSED_STDIN),
        (f"tts - -o out.wav {W}", "0> unreadable", 1, "error: cannot read stdin: Bad file descriptor"),
    ],
)
def test_tts_closed_and_full_streams(files: dict[str, Path], espeak: None, command: str, redirect: str, code: int,
                                     message: str) -> None:
    rc, stdout, stderr = shell(files, command, redirect)
    assert rc == code and message in stderr, (rc, stderr)


@pytest.mark.parametrize(
    "command,redirect",
    [
        (STREAM, "< in.wav | head -c 100 > head.out"),
        (WHOLE, "< in.wav | head -c 100 > head.out"),
        (SCORE_CSV + " --per-file", "| head -c 10 > head.out"),
        (SCORE_TABLE, "| true"),
    ],
)
def test_a_reader_that_goes_away_is_a_quiet_exit_0(files: dict[str, Path], command: str, redirect: str) -> None:
    (files["dir"] / "head.out").unlink(missing_ok=True)
    rc, _, stderr = shell(files, command, redirect)
    assert rc == 0, stderr
    assert "error" not in stderr, stderr
    if "head -c" in redirect:
        assert (files["dir"] / "head.out").stat().st_size == (100 if "resynth" in command else 10)


def test_tts_to_a_reader_that_goes_away_is_a_quiet_exit_0(files: dict[str, Path], espeak: None) -> None:
    """Before: `tts -o -` into a pipe that closed exited 1 without a word, where resynth --stream exited 0."""
    (files["dir"] / "head.out").unlink(missing_ok=True)
    rc, _, stderr = shell(files, TTS, "| head -c 100 > head.out")
    assert rc == 0 and "error" not in stderr, stderr
    assert (files["dir"] / "head.out").read_bytes()[:4] == b"RIFF" and (files["dir"] / "head.out").stat().st_size == 100


def test_the_same_commands_work_on_open_streams(files: dict[str, Path], espeak: None) -> None:
    """The happy paths through the same code: WAVs out that decode to the expected lengths, CSV text out."""
    for command in (STREAM, WHOLE):
        rc, stdout, stderr = shell(files, command, "< in.wav")
        assert rc == 0, stderr
        wav, sr = sf.read(io.BytesIO(stdout), dtype="float32")
        assert sr == SR and wav.size == (int(1.5 * SR) // 256) * 256
    rc, stdout, stderr = shell(files, TTS, "")
    assert rc == 0 and stdout[:4] == b"RIFF", stderr
    rc, stdout, stderr = shell(files, "score --pairs - -m mcd -f csv -q", "< pairs.tsv")
    assert rc == 0 and stdout.decode().startswith("metric,"), stderr
    rc, _, stderr = shell(files, f"resynth --files-from - listed {W}", "< list.txt")
    assert rc == 0 and sf.info(files["dir"] / "listed" / "in.wav").frames == (int(1.5 * SR) // 256) * 256
    assert np.isfinite(sf.read(files["dir"] / "listed" / "in.wav")[0]).all()
