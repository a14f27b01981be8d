"""Per-file score rows that shards write and `vocoder score --merge` joins into one run.

A rows file is JSON lines: a header, then one row per scored pair::

    {"format": "vocoder-score-rows", "version": 1, "shard": "2/3", "pairs": 60, "metrics": {...}}
    {"index": 4, "id": "spk1/utt3", "scores": {"pesq": 3.71, ...}, "errors": [], "warnings": []}

``index`` is the pair's place in the whole (unsharded) list and ``pairs`` that list's length, so the merge
puts the rows back in the order one process would have scored them: the summary (sums of floats in that
order) is then exactly the unsharded one, bit for bit. Floats are written with Python's shortest
round-trip repr and file names with ``\\u`` escapes (undecodable bytes survive). ``metrics`` records what
each metric was computed with (library, version, rate); shards that disagree are refused.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vocoder_cli.errors import ConfigError
from vocoder_cli.metrics.runner import FileResult, ScoreRun

ROWS_FORMAT = "vocoder-score-rows"
ROWS_VERSION = 1


@dataclass(frozen=True)
class RecordedMetric:
    """A metric as a rows file recorded it: enough for summaries and reports (name, output keys, info)."""

    name: str
    keys: tuple[str, ...]
    recorded: dict[str, Any]

    def info(self) -> dict[str, Any]:
        return dict(self.recorded)


def rows_jsonl(run: ScoreRun, indices: Sequence[int], total: int, shard: str) -> str:
    """``run``'s results (``indices[i]``: result i's place in the whole list of ``total`` pairs) as a rows
    file; ``shard`` (``K/N``) is for people reading it."""
    if len(indices) != len(run.results):
        raise ValueError("one index per result")
    metrics = {m.name: m.info() for m in run.metrics}
    lines = [{"format": ROWS_FORMAT, "version": ROWS_VERSION, "shard": shard, "pairs": total, "metrics": metrics}]
    for index, result in zip(indices, run.results):
        lines.append({"index": index, "id": result.id, "scores": {k: result.scores.get(k) for k in run.keys},
                      "errors": result.errors, "warnings": result.warnings})
    return "".join(json.dumps(line) + "\n" for line in lines)


def _parse(text: str, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    try:
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name}: not a rows file (line {exc.lineno}: {exc.msg})") from None
    if not lines or not isinstance(lines[0], dict) or lines[0].get("format") != ROWS_FORMAT:
        raise ConfigError(f"{name}: not a rows file (write one with vocoder score --rows FILE)")
    if lines[0].get("version") != ROWS_VERSION:
        raise ConfigError(f"{name}: rows format version {lines[0].get('version')}, this vocoder reads {ROWS_VERSION}")
    return lines[0], lines[1:]


def merge_rows(files: Sequence[tuple[str, str]]) -> ScoreRun:
    """One run from the rows files ``(name, text)`` of every shard, rows in the whole list's order.

    Raises :class:`ConfigError` when the files disagree on the list or the metrics (a library version
    too), when a pair is in two files (the same file given twice, or shards of different splits), or
    when pairs are missing (a shard not merged or not finished), naming how many and the first ones."""
    if not files:
        raise ConfigError("--merge needs the rows files of every shard")
    header0, name0 = None, ""
    rows: dict[int, tuple[str, dict[str, Any]]] = {}
    for name, text in files:
        header, body = _parse(text, name)
        if header0 is None:
            header0, name0 = header, name
        elif (header["pairs"], header["metrics"]) != (header0["pairs"], header0["metrics"]):
            what = "list length" if header["pairs"] != header0["pairs"] else "metrics, libraries or rates"
            raise ConfigError(f"{name} and {name0} differ in {what}: they are not shards of one run")
        for row in body:
            index = int(row["index"])
            if index in rows:
                raise ConfigError(f"pair {row['id']!r} (#{index + 1}) is in both {rows[index][0]} and {name}")
            rows[index] = (name, row)
    assert header0 is not None
    total = int(header0["pairs"])
    missing = [i for i in range(total) if i not in rows]
    if missing or len(rows) != total:
        raise ConfigError(f"the rows cover {len(rows)} of {total} pairs: {len(missing)} missing (#"
                          f"{', #'.join(str(i + 1) for i in missing[:5])}{', ...' if len(missing) > 5 else ''}); "
                          "merge the rows of every shard, or re-run the missing ones")
    metrics = [RecordedMetric(name, tuple(info["keys"]), info) for name, info in header0["metrics"].items()]
    results = [FileResult(row["id"], dict(row["scores"]), list(row["errors"]), list(row["warnings"]))
               for _, row in (rows[i] for i in range(total))]
    return ScoreRun(metrics, results)  # type: ignore[arg-type]  (RecordedMetric: the part of Metric reports use)
