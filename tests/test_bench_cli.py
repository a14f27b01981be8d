"""Every `vocoder bench` subcommand, run small: its JSON rows carry the documented fields with sane values."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import require_module
from tests.helpers import tiny_weights
from vocoder_cli.cli.app import app
from vocoder_cli.synthesis.backends.tune import pick

runner = CliRunner()


def bench(*args: str) -> list[dict]:
    result = runner.invoke(app, ["bench", *args])
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


SYNTH_FIELDS = {"model", "backend", "parameters", "audio_seconds", "wall_seconds", "runs", "real_time_factor",
                "x_real_time", "reference_seconds", "speedup_vs_reference", "max_rel_error", "within_bar", "gflop",
                "gflops_per_second", "percent_of_peak", "auto_picks", "device", "batch", "precision", "threads",
                "torch", "load_average"}


def test_bench_synth_compares_backends_with_the_reference(tmp_path: Path) -> None:
    require_module("onnx", "onnx")
    require_module("onnxruntime", "onnx")
    weights = tiny_weights(tmp_path / "tiny.safetensors")  # explicit weights: no download, no default model
    rows = bench("synth", "--weights", str(weights), "--device", "cpu", "--backend", "torch,onnx", "--seconds", "0.5",
                 "--repeats", "2", "--json")
    assert [r["backend"] for r in rows] == ["reference", "torch", "onnx"]
    ref = rows[0]
    for row in rows:
        assert SYNTH_FIELDS <= set(row), SYNTH_FIELDS - set(row)
        assert row["model"] == str(weights) and row["device"] == "cpu" and row["batch"] == 1
        # 0.5 s of the demo speech at 22.05 kHz is 43 whole frames of 256 samples
        assert row["audio_seconds"] == pytest.approx(43 * 256 / 22050, abs=1e-4) and row["parameters"] > 10_000
        assert len(row["runs"]) == 2 and row["wall_seconds"] == pytest.approx(statistics.median(row["runs"]), abs=2e-6)
        assert row["reference_seconds"] == ref["wall_seconds"]  # one reference, timed in the same rounds
        assert row["speedup_vs_reference"] == pytest.approx(row["reference_seconds"] / row["wall_seconds"], rel=1e-3)
        assert row["real_time_factor"] == pytest.approx(row["wall_seconds"] / row["audio_seconds"], rel=1e-3)
        assert row["gflop"] == ref["gflop"] > 0
        assert row["gflops_per_second"] == pytest.approx(row["gflop"] / row["wall_seconds"], rel=1e-2, abs=0.006)  # JSON keeps 2 decimals
    assert ref["speedup_vs_reference"] == 1.0 and ref["max_rel_error"] == 0.0
    # the same weights through our torch generator and through ONNX Runtime: the same audio as the reference
    # our engine runs the generator channels-last (other oneDNN kernels, other summation order): float32
    # rounding, within the 1e-4 bar every backend is held to (real V1 weights: 6e-7)
    assert rows[1]["max_rel_error"] < 1e-4 and rows[2]["max_rel_error"] < 1e-4
    assert all(r["within_bar"] for r in rows)
    assert sum(r["auto_picks"] for r in rows) == 1  # auto runs torch, or onnx where clearly faster, on the CPU
    picked = pick({r["backend"]: r["wall_seconds"] for r in rows[1:]})
    assert next(r for r in rows if r["backend"] == picked)["auto_picks"]
    shown = runner.invoke(app, ["bench", "synth", "--weights", str(weights), "--device", "cpu", "--backend", "torch",
                                "--seconds", "0.3", "--repeats", "1"])
    assert shown.exit_code == 0, shown.output
    assert "reference" in shown.stdout and "tiny.safetensors" in shown.stdout and "RTF" in shown.stdout
    assert "jik876/hifi-gan's generator" in shown.stderr and "load average" in shown.stderr
    assert "fp32 GEMM" in shown.stderr  # % of peak is against a measured GEMM rate


def test_bench_synth_times_the_opt_in_bf16_path_beside_fp32(tmp_path: Path) -> None:
    """torch-bf16 really runs in bf16 (its error is far above fp32 rounding), is flagged against the 1e-4 bar,
    and is never what --backend auto picks."""
    weights = tiny_weights(tmp_path / "tiny.safetensors")
    rows = bench("synth", "--weights", str(weights), "--device", "cpu", "--backend", "torch,torch-bf16",
                 "--seconds", "0.3", "--repeats", "1", "--json")
    assert [r["backend"] for r in rows] == ["reference", "torch", "torch-bf16"]
    torch_row, bf16_row = rows[1], rows[2]
    assert torch_row["max_rel_error"] < 1e-4 and bf16_row["max_rel_error"] > 1e-3  # (real V1: 0.1, tiny: 0.7)
    assert not bf16_row["within_bar"] and not bf16_row["auto_picks"]


def test_bench_synth_presets_and_batch() -> None:
    rows = bench("synth", "--models", "v3", "--backend", "torch", "--device", "cpu", "--seconds", "0.2",
                 "--batch", "2", "--repeats", "1", "--json")
    assert [(r["model"], r["backend"]) for r in rows] == [("v3", "reference"), ("v3", "torch")]
    assert rows[1]["parameters"] == 1_462_273  # the V3 generator without weight norm
    assert rows[1]["batch"] == 2 and rows[1]["audio_seconds"] == pytest.approx(2 * 17 * 256 / 22050, abs=1e-4)
    assert rows[1]["max_rel_error"] < 1e-5 and rows[1]["gflop"] > 0


def test_bench_synth_refuses_an_onnx_file(tmp_path: Path) -> None:
    (tmp_path / "model.onnx").write_bytes(b"not used")
    result = runner.invoke(app, ["bench", "synth", "--weights", str(tmp_path / "model.onnx"), "--device", "cpu",
                                 "--backend", "torch"])
    assert result.exit_code == 2 and "needs the .safetensors weights" in result.output


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
