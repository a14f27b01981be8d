"""Two CPU processes under torchrun (gloo backend) run the same `vocoder train` command line as DDP;
batch_size is global (split over the processes), as in the official code."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_train import TINY, make_dataset
from vocoder_cli.data.segments import BatchPlanner
from vocoder_cli.training import checkpoint as ckpt

REPO = Path(__file__).resolve().parents[1]


def test_ranks_get_disjoint_shards_of_each_epoch() -> None:
    planners = [BatchPlanner(10, 2, seed=3, rank=r, world=2) for r in range(2)]
    assert planners[0].steps_per_epoch == 3  # ceil(10 / (2 * 2))
    seen = []
    for index in range(3):
        for planner in planners:
            seen += planner.plan(epoch=4, index=index)[0].tolist()
    assert sorted(seen[:10]) == list(range(10))  # every clip once before any repeats


@pytest.mark.slow
def test_torchrun_two_process_gloo_ddp(tmp_path: Path) -> None:
    data = make_dataset(tmp_path)
    run = tmp_path / "run"
    # --run-dir, not --run: torchrun's argparse treats --run as an ambiguous abbreviation of its --run-path.
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "vocoder_cli", "train", "--run-dir", str(run), "--data", str(data), "--config", "v1",
        "--max-steps", "4", "--device", "cpu",
    ]
    for item in TINY:
        cmd += ["--set", item]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stderr.count("stopped at step 4") == 1  # only rank 0 reports
    # batch_size is global, as the official code: batch 2 over 2 processes is 1 segment in each.
    assert "batch 2 per step: 1 segments in each of 2 processes" in " ".join(proc.stderr.split())
    state = ckpt.load_state(ckpt.state_path(run, 4))
    # 5 clips, global batch 2: 3 steps per epoch, as one process (before, batch 2 per process: 2).
    assert (state["step"], state["epoch"], state["batch_index"]) == (4, 1, 1)
    with open(run / "metrics.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["tag"] == "speed/samples_per_sec"]
    rates = {r["step"]: float(r["value"]) for r in csv.DictReader(open(run / "metrics.csv")) if r["tag"] == "speed/steps_per_sec"}
    assert len(rows) == 4  # rank 0 alone writes the log: one row per step
    for row in rows:
        assert float(row["value"]) == pytest.approx(rates[row["step"]] * 2, rel=1e-5)  # global batch 2
