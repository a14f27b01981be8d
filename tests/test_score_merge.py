"""`vocoder score --shard K/N --rows FILE` then `vocoder score --merge ROWS...`: the same summary, byte for
byte, as one unsharded run over the same pairs (means are sums in the list's order: the merge restores it)."""

from __future__ import annotations

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
LAUNCHER_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN",
                 "SLURM_ARRAY_TASK_COUNT", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID")
METRICS = "pesq,stoi,mcd,sisdr,lsd"


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ref/ and gen/: nine pairs of real speech at several noise levels and lengths, one too short for STOI."""
    root = tmp_path_factory.mktemp("merge")
    speech = demo_speech(SR)
    rng = np.random.default_rng(7)
    for i in range(9):
        start, seconds = int(0.3 * i * SR), 0.3 if i == 4 else 0.9 + 0.1 * i
        x = speech[start : start + int(seconds * SR)]
        write(root / "ref" / f"d{i % 3}" / f"u{i}.wav", x, SR)
        write(root / "gen" / f"d{i % 3}" / f"u{i}.wav", x + 0.01 * i * rng.standard_normal(x.size).astype(np.float32), SR)
    return root


def score(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    clean: dict[str, str | None] = dict.fromkeys(LAUNCHER_VARS)
    clean.update(env or {})
    return runner.invoke(app, ["score", *args], env=clean)


@pytest.mark.parametrize("count", [2, 3])
def test_merged_shards_give_the_unsharded_summary_exactly(folders: Path, tmp_path: Path, count: int) -> None:
    pair_args = [str(folders / "ref"), str(folders / "gen"), "-m", METRICS, "-j", "1"]
    whole = {fmt: score(*pair_args, "-f", fmt, "--per-file") for fmt in ("json", "csv", "table")}
    assert whole["json"].exit_code == 1  # u4 is too short for STOI: a failure, counted and listed
    rows, seen = [], []
    for k in range(1, count + 1):
        rows.append(tmp_path / f"rows-{k}.jsonl")
        result = score(*pair_args, "--shard", f"{k}/{count}", "--rows", str(rows[-1]), "-f", "jsonl", "--per-file")
        assert result.exit_code in (0, 1), result.output
        assert f"shard {k}/{count}: " in result.stderr and " of 9 pairs, " in result.stderr
        seen += [json.loads(line)["id"] for line in result.stdout.splitlines()]
    assert sorted(seen) == sorted(set(seen)) and len(seen) == 9  # each pair scored by exactly one shard
    for fmt, expected in whole.items():
        merged = score("--merge", *map(str, rows), "-f", fmt, "--per-file")
        assert merged.exit_code == expected.exit_code == 1
        assert merged.stdout == expected.stdout and merged.stderr == expected.stderr
    summary = json.loads(whole["json"].stdout)["summary"]
    assert summary["stoi"]["count"] == 8 and summary["stoi"]["failures"] == 1 and summary["pesq"]["count"] == 9
    assert summary["pesq"]["ci_low"] < summary["pesq"]["mean"] < summary["pesq"]["ci_high"]


def test_shards_from_a_slurm_array_merge_too(folders: Path, tmp_path: Path) -> None:
    pair_args = [str(folders / "ref"), str(folders / "gen"), "-m", "sisdr,lsd", "-j", "1", "-f", "json"]
    rows = []
    for task in (1, 2):
        rows.append(str(tmp_path / f"rows-{task}.jsonl"))
        env = {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "2"}
        result = score(*pair_args, "--rows", rows[-1], env=env)
        assert result.exit_code == 0 and "(from SLURM array" in result.stderr, result.output
    assert score("--merge", *rows, "-f", "json").stdout == score(*pair_args).stdout


def test_merge_refuses_incomplete_duplicated_or_mismatched_rows(folders: Path, tmp_path: Path) -> None:
    pair_args = [str(folders / "ref"), str(folders / "gen"), "-j", "1", "-q"]
    one, two, other = (str(tmp_path / n) for n in ("1.jsonl", "2.jsonl", "other.jsonl"))
    assert score(*pair_args, "-m", "sisdr", "--shard", "1/2", "--rows", one).exit_code == 0
    assert score(*pair_args, "-m", "sisdr", "--shard", "2/2", "--rows", two).exit_code == 0
    assert score(*pair_args, "-m", "lsd", "--shard", "2/2", "--rows", other).exit_code == 0
    missing = score("--merge", one)
    assert missing.exit_code == 2 and "the rows cover" in missing.stderr and "of 9 pairs" in missing.stderr
    twice = score("--merge", one, one, two)
    assert twice.exit_code == 2 and "is in both" in twice.stderr
    mixed = score("--merge", one, other)
    assert mixed.exit_code == 2 and "differ in metrics, libraries or rates" in mixed.stderr
    not_rows = tmp_path / "x.jsonl"
    not_rows.write_text('{"id": "a"}\n')
    assert "not a rows file" in score("--merge", str(not_rows)).stderr
    assert score("--merge", one, two, "-m", "pesq").exit_code == 2  # nothing is scored again
    assert score(*pair_args, "-m", "sisdr", "--rows", one).exit_code == 2  # an existing rows file is kept
