"""`--backend auto`'s decision rule: a margin for a near tie, the CPU load measured while timing."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from vocoder_cli.synthesis.backends.tune import (
    BUSY_SHARE,
    MAX_LOADED_TRIES,
    ONNX_MARGIN,
    BackendChoice,
    LoadMeter,
    pick,
)


def test_onnx_is_chosen_only_when_clearly_faster() -> None:
    assert ONNX_MARGIN == 1.10
    assert pick({"torch": 1.00, "onnx": 0.95}) == "torch"  # 5 % is noise: the engine with every feature wins
    assert pick({"torch": 1.00, "onnx": 1.0 / 1.099}) == "torch"
    assert pick({"torch": 1.00, "onnx": 1.0 / 1.101}) == "onnx"
    assert pick({"torch": 5.89, "onnx": 1.88}) == "onnx"
    assert pick({"torch": 0.50, "onnx": 0.90}) == "torch"


def test_a_choice_made_under_load_is_not_settled_until_enough_tries() -> None:
    assert BUSY_SHARE == 0.25 and MAX_LOADED_TRIES == 3
    quiet = BackendChoice("onnx", {"torch": 1.0, "onnx": 0.5}, 2.0, others_busy=0.05)
    unknown = BackendChoice("onnx", {"torch": 1.0, "onnx": 0.5}, 2.0, others_busy=None)
    busy = BackendChoice("onnx", {"torch": 1.0, "onnx": 0.5}, 2.0, others_busy=0.6)
    assert quiet.settled and unknown.settled and not quiet.under_load and not unknown.under_load
    assert busy.under_load and not busy.settled
    assert BackendChoice("onnx", {}, 2.0, others_busy=0.6, tries=3).settled


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the load meter reads /proc/stat (Linux only)")
def test_load_meter_sees_another_process_burning_a_core() -> None:
    """A child process spinning on one core for a second: at least a third of a 2-core machine's CPU time
    (half in theory; other work on the machine only adds to it)."""
    meter = LoadMeter()
    child = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass"])
    time.sleep(0.2)  # let it start spinning
    meter.start()
    time.sleep(1.0)  # this process sleeps: its own CPU time is not counted either way
    share = meter.stop()
    child.wait()
    assert share is not None
    assert share >= 0.8 / (os.cpu_count() or 1) - 0.05


def test_quiet_silences_the_one_time_notes(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """With -q, `resynth --backend auto` exports and times without a word on stderr; without it, both notes
    are printed (a fresh cache for each run)."""
    from typer.testing import CliRunner

    from tests.conftest import require_module

    require_module("onnxruntime", "onnx")

    from tests.helpers import tiny_weights, tone, write
    from vocoder_cli.cli.app import app

    weights = tiny_weights(tmp_path / "tiny.safetensors")
    write(tmp_path / "in" / "a.wav", tone(0.5, 22050), 22050)
    runner = CliRunner()
    for quiet, cache in ((True, "quiet"), (False, "loud")):
        monkeypatch.setenv("VOCODER_CACHE_DIR", str(tmp_path / cache))
        args = ["resynth", str(tmp_path / "in"), str(tmp_path / f"out-{cache}"), "-w", str(weights), "--device", "cpu"]
        done = runner.invoke(app, [*args, "-q"] if quiet else args)
        assert done.exit_code == 0, done.output
        assert (tmp_path / f"out-{cache}" / "a.wav").is_file()
        if quiet:
            assert done.stderr == ""
        else:
            assert "exporting " in done.stderr and "--backend auto: timed torch and onnx" in done.stderr


def test_the_cli_lets_idle_openmp_threads_sleep_unless_the_user_chose() -> None:
    """The CLI sets OMP_WAIT_POLICY=PASSIVE before torch (and its OpenMP runtime) loads, and keeps a policy
    the user set; the library alone (no CLI) changes nothing."""
    code = "import os, {mod}; import torch; print(os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}

    def policy(module: str, **extra: str) -> str:
        done = subprocess.run([sys.executable, "-c", code.format(mod=module)], env={**env, **extra},
                              capture_output=True, text=True, check=True)
        return done.stdout.strip()

    assert policy("vocoder_cli.cli.app") == "PASSIVE"
    assert policy("vocoder_cli.cli.app", OMP_WAIT_POLICY="ACTIVE") == "ACTIVE"
    assert policy("vocoder_cli.cli.app", GOMP_SPINCOUNT="10000") == "None"
    assert policy("vocoder_cli.synthesis.engine") == "None"
