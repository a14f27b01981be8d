"""`--shard K/N` for every batch command: one option, one call that keeps this process's items.

    jobs = take_my_shard(shard, jobs, key=..., size=..., what="files", amount=..., quiet=quiet)

The rule itself (sorting, the longest-first deal, K/N from --shard, torchrun or SLURM) is
:mod:`vocoder_cli.shards`; here it is parsed, printed and turned into exit codes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import typer

from vocoder_cli.audio import atomic_write_bytes
from vocoder_cli.cli.common import err_console, fail
from vocoder_cli.cli.display import say
from vocoder_cli.errors import ConfigError
from vocoder_cli.shards import (
    Shard,
    describe,
    device_for,
    failures_path,
    failures_tsv,
    multi_gpu_note,
    resolve_shard,
    take_shard,
)

T = TypeVar("T")

SHARD_HELP = (
    "Process only shard K of N of the sorted list (1-based; shards balanced by input size, longest first). "
    "Default: torchrun's RANK/WORLD_SIZE, else SLURM's array or task ids, else everything."
)


def shard_option() -> str | None:
    """The ``--shard K/N`` option (a fresh Typer OptionInfo for each command)."""
    return typer.Option(None, "--shard", metavar="K/N", help=SHARD_HELP)  # type: ignore[no-any-return]


def current_shard(option: str | None) -> Shard:
    """This process's shard from ``--shard`` and the launcher's environment; a bad or contradictory spec
    exits 2 with the reason."""
    try:
        return resolve_shard(option)
    except ConfigError as exc:
        raise fail(str(exc)) from None


def announcer(
    shard: Shard, what: str, amount: Callable[[list[T]], str] | None = None, quiet: bool = False
) -> Callable[[int, list[T]], None]:
    """The ``on_shard(total, mine)`` callback of the API's batch functions: one stderr line says which
    shard, how much of the list and where the rule came from (unless ``quiet``); a shard with no items
    says so and exits 0 before any weights are loaded."""

    def announce(total: int, mine: list[T]) -> None:
        if not mine or not quiet:
            say(err_console, describe(shard, len(mine), total, what, amount(mine) if mine and amount else None))
        if not mine:
            raise typer.Exit(0)

    return announce


def take_my_shard(
    option: str | None,
    items: Sequence[T],
    *,
    key: Callable[[T], str],
    size: Callable[[T], float],
    what: str,
    amount: Callable[[list[T]], str] | None = None,
    quiet: bool = False,
) -> tuple[list[T], Shard]:
    """This shard's items (every item, in the list's own order, when not sharded), announced as
    :func:`announcer` does."""
    shard = current_shard(option)
    if not shard.sharded:
        return list(items), shard
    mine = take_shard(items, shard, key=key, size=size)
    announcer(shard, what, amount, quiet)(len(items), mine)
    return mine, shard


def shard_device(device: str, shard: Shard, command: str, quiet: bool = False) -> str:
    """The device for this process (``cuda:LOCAL_RANK`` under torchrun); alone on a machine with several
    GPUs, a note says how to use them all."""
    if not device.startswith("cuda"):
        return device
    import torch

    gpus = torch.cuda.device_count()
    device = device_for(device, shard, gpus)
    note = multi_gpu_note(device, shard, gpus, command)
    if note and not quiet:
        say(err_console, ("note:", "yellow"), " ", note)
    return device


def write_failures(folder: str, shard: Shard, rows: Sequence[tuple[str, str, str]]) -> None:
    """A sharded run's failures (``outcome, input, reason``) in its own file in the output folder, written
    (atomically) even when empty, so a re-run that fixed everything leaves no stale list."""
    if not shard.sharded:
        return
    path = failures_path(folder, shard)
    try:
        atomic_write_bytes(path, failures_tsv(rows))
    except OSError as exc:
        say(err_console, ("warning:", "yellow"), f" cannot write the failures list {path}: {exc}")
        return
    if rows:
        say(err_console, f"{len(rows)} failures listed in ", path)
