"""One sharding rule for every batch command: which items this process does, when many share a corpus.

A corpus job is split over processes, GPUs and nodes by the launchers people already run; nothing here
schedules anything. Every process computes the same partition from the same list:

1. the items are sorted by their key (the output path, say), so the order never depends on how a folder
   was listed;
2. they are dealt longest first (by a size: bytes of the input) to the shard with the least work so far,
   the lowest shard number winning a tie (greedy LPT), so shards finish together;
3. shard K of N (1-based) takes the items dealt to it, in key order.

Where K and N come from, first match wins: ``--shard K/N``; torchrun (``RANK``, ``WORLD_SIZE``, device
``cuda:LOCAL_RANK``); a SLURM job array (``SLURM_ARRAY_TASK_ID`` with ``SLURM_ARRAY_TASK_MIN`` and
``SLURM_ARRAY_TASK_COUNT``); SLURM tasks (``SLURM_PROCID`` of ``SLURM_NTASKS``). ``--shard`` that disagrees
with a launcher's world is an error: two rules at once would process items twice or never.
"""

from __future__ import annotations

import heapq
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from vocoder_cli.errors import ConfigError

T = TypeVar("T")
SHARD_SYNTAX = "K/N with 1 <= K <= N, e.g. --shard 1/4"


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``; ``source`` says where the numbers came from."""

    index: int = 1
    count: int = 1
    source: str = "single process"
    local_rank: int | None = None  # torchrun's LOCAL_RANK: the GPU this process should use

    @property
    def sharded(self) -> bool:
        return self.count > 1

    def __str__(self) -> str:
        return f"shard {self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"K/N"`` -> Shard; anything else is a ConfigError giving the syntax."""
    found = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not found:
        raise ConfigError(f"--shard {text!r}: expected {SHARD_SYNTAX}")
    index, count = int(found.group(1)), int(found.group(2))
    if count < 1 or not 1 <= index <= count:
        raise ConfigError(f"--shard {text!r}: expected {SHARD_SYNTAX}")
    return Shard(index, count, "--shard")


def _int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} in the environment is not an integer") from None


def launcher_shard(env: Mapping[str, str] | None = None) -> Shard | None:
    """The shard a launcher's environment assigns to this process, or None when there is none (or a
    world of one)."""
    env = os.environ if env is None else env
    rank, world = _int(env, "RANK"), _int(env, "WORLD_SIZE")
    if rank is not None and world is not None:
        if world < 1 or not 0 <= rank < world:
            raise ConfigError(f"torchrun's RANK={rank} does not fit WORLD_SIZE={world}")
        return Shard(rank + 1, world, f"torchrun (RANK={rank}, WORLD_SIZE={world})", _int(env, "LOCAL_RANK"))
    task, low, tasks = (_int(env, n) for n in ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT"))
    if task is not None and tasks is not None:
        low = 0 if low is None else low
        if tasks < 1 or not 0 <= task - low < tasks:
            raise ConfigError(f"SLURM_ARRAY_TASK_ID={task} is outside the array (min {low}, count {tasks}); "
                              "give --shard K/N for arrays with steps or gaps")
        return Shard(task - low + 1, tasks,
                     f"SLURM array (SLURM_ARRAY_TASK_ID={task}, MIN={low}, COUNT={tasks})")
    proc, ntasks = _int(env, "SLURM_PROCID"), _int(env, "SLURM_NTASKS")
    if proc is not None and ntasks is not None and ntasks > 1:
        if not 0 <= proc < ntasks:
            raise ConfigError(f"SLURM_PROCID={proc} does not fit SLURM_NTASKS={ntasks}")
        return Shard(proc + 1, ntasks, f"SLURM tasks (SLURM_PROCID={proc}, SLURM_NTASKS={ntasks})",
                     _int(env, "SLURM_LOCALID"))
    return None


def resolve_shard(option: str | None, env: Mapping[str, str] | None = None) -> Shard:
    """This process's shard: ``--shard`` (``option``), else the launcher's, else the whole list."""
    launched = launcher_shard(env)
    if option is None:
        return launched if launched is not None and launched.count > 1 else Shard()
    chosen = parse_shard(option)
    if launched is not None and launched.count > 1 and (launched.index, launched.count) != (chosen.index, chosen.count):
        raise ConfigError(f"--shard {option} disagrees with the launcher: {launched.source} means "
                          f"{launched.index}/{launched.count}; drop --shard or run without the launcher")
    return chosen


def assign(keys: Sequence[str], sizes: Sequence[float], count: int) -> list[int]:
    """The 1-based shard of each item: longest first to the least-loaded shard (ties: the lower shard);
    items of equal size are dealt in key order. Deterministic for the same keys and sizes."""
    if len(keys) != len(sizes):
        raise ValueError("one size per key")
    order = sorted(range(len(keys)), key=lambda i: (-sizes[i], keys[i]))
    heap = [(0.0, shard) for shard in range(1, count + 1)]
    owner = [0] * len(keys)
    for i in order:
        load, shard = heapq.heappop(heap)
        owner[i] = shard
        heapq.heappush(heap, (load + max(0.0, float(sizes[i])), shard))
    return owner


def take_shard(items: Sequence[T], shard: Shard, key: Callable[[T], str], size: Callable[[T], float]) -> list[T]:
    """The items of ``shard``, in key order (all of them, sorted, for a single process)."""
    ordered = sorted(items, key=key)
    if not shard.sharded:
        return ordered
    owner = assign([key(item) for item in ordered], [size(item) for item in ordered], shard.count)
    return [item for item, k in zip(ordered, owner) if k == shard.index]


def file_size(path: str) -> float:
    """Bytes of ``path`` (0 when it cannot be read: the item still belongs to exactly one shard)."""
    try:
        return float(os.path.getsize(path))
    except OSError:
        return 0.0


def describe(shard: Shard, taken: int, total: int, what: str, amount: str | None = None) -> str:
    """The one line a sharded run prints first: which shard, how much of the list, where the rule came from.
    ``what``: the items' plural noun (``files``); ``amount``: their size in words (``312.4 s of audio``)."""
    size = f", {amount}" if amount else ""
    rest = "" if taken else ": nothing to do"
    return f"{shard}: {taken} of {total} {what}{size}{rest} (from {shard.source})"


def audio_seconds(paths: Sequence[str]) -> float:
    """Seconds of audio in ``paths`` from their headers (a file whose header cannot be read counts 0)."""
    import soundfile as sf

    total = 0.0
    for path in paths:
        try:
            info = sf.info(path)
        except (RuntimeError, OSError, ValueError, TypeError):  # LibsndfileError is a RuntimeError
            continue
        if info.samplerate > 0 and info.frames > 0:
            total += info.frames / info.samplerate
    return total


def device_for(device: str, shard: Shard, gpu_count: int) -> str:
    """The device of this process: under a launcher on a GPU node, rank ``LOCAL_RANK`` takes
    ``cuda:LOCAL_RANK`` (for a plain or ``auto``-resolved ``cuda``). When the launcher already gave each
    process its own GPU (SLURM ``--gpus-per-task``: ``gpu_count`` visible GPUs, fewer than the local rank
    needs), the one visible is used. An explicit ``cuda:I`` is kept."""
    if device == "cuda" and shard.local_rank is not None and shard.local_rank < gpu_count:
        return f"cuda:{shard.local_rank}"
    return device


def multi_gpu_note(device: str, shard: Shard, gpu_count: int, command: str) -> str | None:
    """What to say when ``--device cuda`` runs alone on a machine with several GPUs (one of them works, the
    others idle): how to use them all. None under a launcher, on one GPU, or on the CPU."""
    if not device.startswith("cuda") or gpu_count < 2 or shard.local_rank is not None or shard.sharded:
        return None
    return (f"{gpu_count} GPUs here and this process uses one; to use them all: torchrun --nproc_per_node "
            f"{gpu_count} --no-python vocoder {command} ... (each rank takes its shard of the list and "
            "cuda:LOCAL_RANK)")


def failures_path(folder: str | os.PathLike[str], shard: Shard) -> str:
    """Where a sharded run lists its failures: a hidden TSV in the output folder, one per shard, so shards
    never write the same file: ``OUT/.vocoder-failures-shard-K-of-N.tsv``."""
    return os.path.join(folder, f".vocoder-failures-shard-{shard.index}-of-{shard.count}.tsv")


def failures_tsv(rows: Sequence[tuple[str, str, str]]) -> bytes:
    """``outcome<TAB>input<TAB>reason`` lines under a header (tabs and newlines inside a field become
    spaces, so each row stays one line)."""
    def clean(text: str) -> str:
        return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")

    lines = ["outcome\tinput\treason"] + ["\t".join(clean(f) for f in row) for row in rows]
    return ("\n".join(lines) + "\n").encode("utf-8", "surrogateescape")
