"""`vocoder train` over two nodes: two `torchrun --nnodes 2 --nproc_per_node 1 --node_rank 0/1` launches on
this machine meeting at a localhost rendezvous (gloo). The global batch is kept, only global rank 0 (not
each node's local rank 0) writes checkpoints and logs, and a run whose second node is killed resumes."""

from __future__ import annotations

import csv
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_train import TINY, make_dataset
from vocoder_cli.training import checkpoint as ckpt

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # two launchers and a restart: about a minute on 2 cores


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _launch(node: int, port: int, run: Path, data: Path, steps: int, *sets: str) -> subprocess.Popen[str]:
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
        "--node_rank", str(node), "--master_addr", "127.0.0.1", "--master_port", str(port),
        "-m", "vocoder_cli", "train", "--run-dir", str(run), "--data", str(data), "--config", "v1",
        "--max-steps", str(steps), "--device", "cpu",
    ]
    for item in [*TINY, *sets]:
        cmd += ["--set", item]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _descendants(pid: int) -> list[int]:
    """``pid``'s children, grandchildren, ... (torchrun starts its workers in sessions of their own, so
    killing the launcher's process group leaves them running)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found += children
            todo += children
    return found


def _kill_node(node: subprocess.Popen[str]) -> None:
    """SIGKILL a launcher and every process under it, as a node that loses power."""
    for pid in [node.pid, *_descendants(node.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    node.communicate()


def _both(run: Path, data: Path, steps: int, *sets: str) -> list[tuple[int, str]]:
    port = _free_port()
    nodes = [_launch(n, port, run, data, steps, *sets) for n in (0, 1)]
    done = []
    for node in nodes:
        out, err = node.communicate(timeout=300)
        done.append((node.returncode, out + err))
    return done


def _steps(run: Path, tag: str) -> list[int]:
    with open(run / "metrics.csv", newline="") as handle:
        return [int(r["step"]) for r in csv.DictReader(handle) if r["tag"] == tag]


def test_two_nodes_keep_the_global_batch_and_only_global_rank_0_writes(tmp_path: Path) -> None:
    data = make_dataset(tmp_path)
    run = tmp_path / "run"
    (code0, text0), (code1, text1) = _both(run, data, 4)
    assert code0 == code1 == 0, text0[-3000:] + text1[-3000:]
    flat0, flat1 = " ".join(text0.split()), " ".join(text1.split())
    assert "stopped at step 4" in flat0 and "stopped at step 4" not in flat1  # node 1's local rank 0 is quiet
    assert "batch 2 per step: 1 segments in each of 2 processes" in flat0
    state = ckpt.load_state(ckpt.state_path(run, 4))
    # 5 clips, global batch 2: 3 steps per epoch, as one process and as two on one node.
    assert (state["step"], state["epoch"], state["batch_index"]) == (4, 1, 1)
    assert _steps(run, "loss/g") == [1, 2, 3, 4]  # one writer: each step once


def test_a_run_whose_second_node_is_killed_resumes(tmp_path: Path) -> None:
    data = make_dataset(tmp_path)
    run = tmp_path / "run"
    port = _free_port()
    nodes = [_launch(n, port, run, data, 40, "checkpoint_interval=2") for n in (0, 1)]
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not ckpt.list_checkpoints(run) and nodes[0].poll() is None:
        time.sleep(0.05)
    assert ckpt.list_checkpoints(run), "no checkpoint was written"
    _kill_node(nodes[1])  # node 1 dies: its launcher and its worker
    try:
        nodes[0].communicate(timeout=240)  # node 0's collective fails and its launcher gives up
    except subprocess.TimeoutExpired:
        _kill_node(nodes[0])
    assert nodes[0].returncode != 0  # node 0 did not go on alone
    last = ckpt.list_checkpoints(run)[-1][0]
    assert 2 <= last < 40
    (code0, text0), (code1, text1) = _both(run, data, last + 2, "checkpoint_interval=2")
    assert code0 == code1 == 0, text0[-3000:] + text1[-3000:]
    assert "resumed" in text0 and f"stopped at step {last + 2}" in " ".join(text0.split())
    assert ckpt.load_state(ckpt.state_path(run, last + 2))["step"] == last + 2
    assert _steps(run, "loss/g") == list(range(1, last + 3))  # rows after the last checkpoint were dropped
