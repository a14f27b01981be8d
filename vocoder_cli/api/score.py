"""``score()``: pairs or folders -> per-file rows and a summary, as data (`vocoder score`).

Files are matched by relative path without extension; a problem with one file (silence, a length
mismatch, a metric library's error) is a row with an ``error`` and the batch goes on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vocoder_cli.api.devices import pick_device
from vocoder_cli.api.notes import Notify, log_notice
from vocoder_cli.errors import ConfigError
from vocoder_cli.metrics import FileResult, Metric, Pair, ScoreRun, pair_paths, parse_metrics, score_pairs
from vocoder_cli.metrics.registry import UNALIGNED_REASON, apply_rates, for_unaligned_pairs, usable_metrics
from vocoder_cli.shards import Shard, file_size, take_shard

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class ScorePlan:
    """What a run will score, known before any audio is read: the pairs, the metrics, the device, and how
    many progress steps (``on_done`` calls) it makes."""

    pairs: list[Pair]
    metrics: list[Metric]
    device: str
    positions: list[int] = field(default_factory=list)  # each pair's place in the whole (unsharded) list
    total: int = 0  # pairs in the whole list

    @property
    def steps(self) -> int:
        """One pass over the pairs for the CPU metrics, one per neural metric."""
        return len(self.pairs) * (int(any(not m.neural for m in self.metrics)) + sum(m.neural for m in self.metrics))


def default_metrics(have_ref: bool, unaligned: bool = False) -> str:
    """pesq,stoi,estoi with references (mcd when unaligned), dnsmos without."""
    return "dnsmos" if not have_ref else "mcd" if unaligned else "pesq,stoi,estoi"


def _as_pairs(pairs: Iterable[Pair | tuple[PathLike | None, PathLike] | PathLike]) -> list[Pair]:
    out: list[Pair] = []
    for item in pairs:
        if isinstance(item, Pair):
            out.append(item)
            continue
        ref, gen = item if isinstance(item, tuple) else (None, item)
        out.append(Pair(Path(gen).with_suffix("").as_posix(), Path(gen), None if ref is None else Path(ref)))
    if not out:
        raise ConfigError("no pairs to score")
    return out


def choose_metrics(
    spec: str | Sequence[str],
    have_ref: bool,
    *,
    unaligned: bool = False,
    wvmos_checkpoint: PathLike | None = None,
    notify: Callable[[str], None] | None = None,
) -> list[Metric]:
    """The metrics a spec names. Explicit names must all be usable here; ``all`` keeps what this install and
    these inputs allow (``notify`` hears ``skipping NAME: reason`` for the rest). With ``unaligned``, mcd
    becomes MCD after DTW and other paired metrics are a ConfigError (``all``: left out, with a note)."""
    text = spec if isinstance(spec, str) else ",".join(spec)
    is_all = "all" in [n.strip().lower() for n in text.split(",")]
    metrics = parse_metrics(text)
    if unaligned:
        metrics, left_out = for_unaligned_pairs(metrics, keep_applicable=is_all)
        if left_out and notify is not None:
            notify(f"--unaligned: left out {', '.join(left_out)} ({UNALIGNED_REASON}); "
                   "kept mcd as MCD after DTW and the reference-free metrics")
    if not is_all:
        paired = [m.name for m in metrics if m.paired]
        if paired and not have_ref:
            raise ConfigError(f"{', '.join(paired)} need references: give ref and gen (or pairs with a reference)")
        return metrics
    usable, notes = usable_metrics(metrics, have_ref, None if wvmos_checkpoint is None else str(wvmos_checkpoint),
                                   notify=notify)
    for note in notes:
        if notify is not None:
            notify(note)
    return usable


def score(
    ref: PathLike | None = None,
    gen: PathLike | None = None,
    *,
    pairs: Iterable[Pair | tuple[PathLike | None, PathLike] | PathLike] | None = None,
    metrics: str | Sequence[str] | None = None,
    unaligned: bool = False,
    rate: str | int | None = None,
    workers: int | None = None,
    device: str = "auto",
    batch_size: int = 8,
    wvmos_checkpoint: PathLike | None = None,
    notify: Notify | None = log_notice,
    on_plan: Callable[[ScorePlan], None] | None = None,
    on_done: Callable[[FileResult], None] | None = None,
    shard: Shard | None = None,
    on_shard: Callable[[int, list[Pair]], None] | None = None,
) -> ScoreRun:
    """Score generated audio against references (PESQ, STOI, ...) or on its own (DNSMOS, WV-MOS, NISQA).

    Give ``ref`` and ``gen`` (folders matched by relative path without extension, or two files), ``gen``
    alone (reference-free metrics), or ``pairs``: :class:`~vocoder_cli.metrics.Pair` objects,
    ``(ref, gen)`` tuples or bare generated paths. ``metrics``: names or a comma-separated string (``pesq,
    pesq-nb, stoi, estoi, mstft, mcd, pitch, sisdr, lsd, dnsmos, wvmos, nisqa, nisqa-tts`` or ``all``);
    default pesq,stoi,estoi with references, dnsmos without. ``unaligned``: references not time-aligned
    with the outputs (TTS): mcd after DTW and reference-free metrics only. ``rate``: Hz (or
    ``"NAME=HZ,..."``) for mstft, mcd, sisdr and lsd (default 22050). ``workers``: CPU processes (default:
    all cores). ``device``: for neural metrics (auto, cpu, cuda).

    Returns a :class:`~vocoder_cli.metrics.ScoreRun`: ``rows()`` (one dict per file: ``id``, one key per
    metric output, None where it failed, ``error``/``warning`` when any), ``summary()`` (one dict per key:
    mean, std, 95% interval, count, failures, library, sample rate), ``failures``. ``on_plan`` hears the
    :class:`ScorePlan` before scoring starts, ``on_done`` each file result as it is scored; ``notify`` one-line
    notes (metrics ``all`` left out, CREPE weights fetched on first use; default: the ``vocoder_cli`` logger). Raises
    ConfigError (or a MissingExtraError naming the extra to install) before any scoring. ``shard``/``on_shard``:
    as :func:`~vocoder_cli.api.resynth.resynthesize` (pairs sorted by id, dealt largest files first; the plan's
    ``positions`` place each pair in the whole list, for :func:`vocoder_cli.metrics.rows.rows_jsonl`)."""
    if pairs is not None:
        if ref is not None or gen is not None:
            raise ConfigError("give either ref/gen or pairs, not both")
        chosen_pairs = _as_pairs(pairs)
        have_ref = any(p.ref is not None for p in chosen_pairs)
    elif gen is not None:
        chosen_pairs = pair_paths(None if ref is None else Path(ref), Path(gen))
        have_ref = ref is not None
    elif ref is not None:
        chosen_pairs, have_ref = pair_paths(None, Path(ref)), False  # score(folder): reference-free
    else:
        raise ConfigError("give ref and gen, gen alone (reference-free metrics) or pairs")
    total, positions = len(chosen_pairs), list(range(len(chosen_pairs)))
    if shard is not None and shard.sharded:
        numbered = take_shard(
            list(enumerate(chosen_pairs)), shard, key=lambda item: f"{item[1].id}\t{item[0]:012d}",
            size=lambda item: sum(file_size(str(p)) for p in (item[1].gen, item[1].ref) if p is not None),
        )  # fmt: skip
        positions, chosen_pairs = [i for i, _ in numbered], [pair for _, pair in numbered]
        if on_shard is not None:
            on_shard(total, chosen_pairs)
        if not chosen_pairs:
            return ScoreRun([], [])
    spec = metrics if metrics is not None else default_metrics(have_ref, unaligned)
    chosen = choose_metrics(spec, have_ref, unaligned=unaligned, wvmos_checkpoint=wvmos_checkpoint, notify=notify)
    if not chosen:
        raise ConfigError("no usable metric" + (" (see the notes above)" if notify is not None else ""))
    chosen = apply_rates(chosen, None if rate is None else str(rate))
    dev = pick_device(device) if any(m.neural for m in chosen) else "cpu"
    plan = ScorePlan(chosen_pairs, chosen, dev, positions, total)
    if on_plan is not None:
        on_plan(plan)
    return score_pairs(
        chosen_pairs, chosen, workers=workers, device=dev, wvmos_checkpoint=wvmos_checkpoint,
        batch_size=batch_size, notify=notify, on_done=on_done,
    )  # fmt: skip
