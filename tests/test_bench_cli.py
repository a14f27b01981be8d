"""Every `vocoder bench` subcommand, run small: its JSON rows carry the documented fields with sane values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.helpers import tiny_weights
from vocoder_cli.cli.app import app

runner = CliRunner()


def bench(*args: str) -> list[dict]:
    result = runner.invoke(app, ["bench", *args])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_bench_synth_rows(tmp_path: Path) -> None:
    weights = tiny_weights(tmp_path / "tiny.safetensors")  # explicit weights: no download, no default model
    (row,) = bench("synth", "--weights", str(weights), "--device", "cpu", "--seconds", "0.5", "--repeats", "1",
                   "--json")
    assert {"model", "parameters", "audio_seconds", "wall_seconds", "real_time_factor", "x_real_time", "device",
            "batch", "precision", "threads", "torch"} <= set(row)
    assert row["device"] == "cpu" and row["audio_seconds"] == 0.5 and row["batch"] == 1
    assert row["parameters"] > 10_000 and row["wall_seconds"] > 0
    assert row["real_time_factor"] == pytest.approx(row["wall_seconds"] / 0.5, rel=1e-3 + 5e-4 / row["wall_seconds"])
    result = runner.invoke(app, ["bench", "synth", "--weights", str(weights), "--device", "cpu", "--seconds", "0.5",
                                 "--repeats", "1"])
    assert result.exit_code == 0 and "synthesis on cpu" in result.stdout and "RTF" in result.stdout


def test_bench_score_rows() -> None:
    rows = bench("score", "--metrics", "sisdr,mstft", "--clips", "3", "--seconds", "0.5", "--workers", "1,2", "--json")
    assert [r["workers"] for r in rows] == [1, 2]
    for row in rows:
        assert {"metrics", "workers", "files", "audio_seconds", "wall_seconds", "files_per_second", "x_real_time",
                "speed_up", "failures"} <= set(row)
        assert row["metrics"] == ["sisdr", "mstft"] and row["files"] == 3 and row["failures"] == 0
        assert row["audio_seconds"] == pytest.approx(1.5, abs=1e-3) and row["wall_seconds"] > 0
        # wall_seconds is printed to 1 ms, so a short run's rate can differ by that rounding as well
        rounding = 5e-4 / row["wall_seconds"]
        assert row["files_per_second"] == pytest.approx(3 / row["wall_seconds"], rel=1e-2 + rounding)
    assert rows[0]["speed_up"] == 1.0


@pytest.mark.slow
def test_bench_train_rows() -> None:
    (row,) = bench("train", "--configs", "v3", "--steps", "1", "--warmup", "0", "--batch-size", "1", "--segment",
                   "8192", "--device", "cpu", "--json")
    assert {"config", "batch_size", "segment", "device", "seconds_per_step", "steps_per_sec", "clips_per_sec",
            "samples_per_sec", "peak_memory_mib", "gpu_busy_share", "torch"} <= set(row)
    assert (row["config"], row["batch_size"], row["segment"], row["device"]) == ("v3", 1, 8192, "cpu")
    assert row["seconds_per_step"] > 0
    assert row["samples_per_sec"] == pytest.approx(8192 * row["steps_per_sec"], rel=1e-2)
    assert row["peak_memory_mib"] is None and row["gpu_busy_share"] is None  # CUDA-only measurements
