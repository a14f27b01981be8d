"""The sharding rule: deterministic, balanced, every item exactly once; K/N from --shard, torchrun, SLURM."""

from __future__ import annotations

import pytest

from vocoder_cli.errors import ConfigError
from vocoder_cli.shards import (
    Shard,
    assign,
    describe,
    failures_tsv,
    launcher_shard,
    parse_shard,
    resolve_shard,
    take_shard,
)


def test_every_item_lands_in_exactly_one_shard_and_the_union_is_the_list() -> None:
    items = [(f"clip{i:03d}.wav", (i * 7919) % 101 + 1) for i in range(250)]
    for count in (1, 2, 3, 7):
        shards = [take_shard(items, Shard(k, count), key=lambda it: it[0], size=lambda it: it[1])
                  for k in range(1, count + 1)]
        flat = [it for shard in shards for it in shard]
        assert sorted(flat) == sorted(items) and len(flat) == len(set(flat))
        for shard in shards:
            assert shard == sorted(shard)  # key order inside a shard


def test_longest_first_balances_the_work() -> None:
    """Sizes 10, 9, ... dealt longest first to the least-loaded shard: the worked example by hand."""
    keys = ["a", "b", "c", "d", "e", "f"]
    sizes = [10, 9, 8, 7, 6, 5]
    # 10->1, 9->2, 8->3, 7->3 (8 is the least), 6->2 (9), 5->1 (10): loads 15, 15, 15
    assert assign(keys, sizes, 3) == [1, 2, 3, 3, 2, 1]
    many = [float((i * 37) % 97 + 1) for i in range(1000)]
    owner = assign([f"{i:04d}" for i in range(1000)], many, 4)
    loads = [sum(s for s, k in zip(many, owner) if k == shard) for shard in (1, 2, 3, 4)]
    assert max(loads) - min(loads) <= max(many)  # LPT: within one item of each other


def test_the_partition_does_not_depend_on_the_listing_order() -> None:
    items = [(f"{c}.wav", n) for c, n in zip("qwertyuiopasdfgh", range(16, 0, -1))]
    first = take_shard(items, Shard(2, 3), key=lambda it: it[0], size=lambda it: it[1])
    again = take_shard(list(reversed(items)), Shard(2, 3), key=lambda it: it[0], size=lambda it: it[1])
    assert first == again and first


@pytest.mark.parametrize("text", ["0/2", "3/2", "1/0", "a/b", "1", "1/2/3", "-1/2", ""])
def test_bad_shard_specs_are_refused_with_the_syntax(text: str) -> None:
    with pytest.raises(ConfigError, match="K/N with 1 <= K <= N"):
        parse_shard(text)


def test_shard_from_each_launcher() -> None:
    assert launcher_shard({}) is None
    torchrun = launcher_shard({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (torchrun.index, torchrun.count, torchrun.local_rank) == (4, 4, 1) and "torchrun" in torchrun.source
    array = launcher_shard({"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_COUNT": "5"})
    assert (array.index, array.count) == (3, 5) and "SLURM array" in array.source
    tasks = launcher_shard({"SLURM_PROCID": "0", "SLURM_NTASKS": "8"})
    assert (tasks.index, tasks.count) == (1, 8)
    assert launcher_shard({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}) is None  # one task: not sharded
    # torchrun inside an srun allocation: torchrun's numbers are the ones that split the work
    both = launcher_shard({"RANK": "1", "WORLD_SIZE": "2", "SLURM_PROCID": "0", "SLURM_NTASKS": "4"})
    assert (both.index, both.count) == (2, 2)
    with pytest.raises(ConfigError, match="outside the array"):
        launcher_shard({"SLURM_ARRAY_TASK_ID": "9", "SLURM_ARRAY_TASK_MIN": "10", "SLURM_ARRAY_TASK_COUNT": "5"})
    with pytest.raises(ConfigError, match="not an integer"):
        launcher_shard({"RANK": "x", "WORLD_SIZE": "2"})


def test_option_wins_alone_and_must_agree_with_a_launcher() -> None:
    assert resolve_shard(None, {}) == Shard()
    assert (resolve_shard("2/3", {}).index, resolve_shard("2/3", {}).source) == (2, "--shard")
    launched = {"RANK": "1", "WORLD_SIZE": "2"}
    assert resolve_shard(None, launched).index == 2
    assert resolve_shard("2/2", launched).count == 2
    with pytest.raises(ConfigError, match="disagrees with the launcher"):
        resolve_shard("1/2", launched)
    assert resolve_shard("1/3", {"RANK": "0", "WORLD_SIZE": "1"}).count == 3  # a world of one is no launcher


def test_the_shard_line_and_the_failures_list() -> None:
    shard = Shard(2, 8, "torchrun (RANK=1, WORLD_SIZE=8)")
    assert describe(shard, 1734, 13100, "files", "2999.6 s of audio") == (
        "shard 2/8: 1734 of 13100 files, 2999.6 s of audio (from torchrun (RANK=1, WORLD_SIZE=8))")
    assert describe(Shard(3, 3, "--shard"), 0, 2, "files") == "shard 3/3: 0 of 2 files: nothing to do (from --shard)"
    text = failures_tsv([("failed", "a\tb.wav", "line one\nline two"), ("refused", "c.wav", "exists")])
    assert text.decode().splitlines() == ["outcome\tinput\treason", "failed\ta b.wav\tline one line two",
                                          "refused\tc.wav\texists"]
