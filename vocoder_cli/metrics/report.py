"""Score runs as text: CSV, JSON lines and JSON (the Rich tables live in the CLI).

Every string is :func:`encodable`: a file name with bytes that are not UTF-8 (Python keeps them as
surrogate escapes) is written with those bytes as ``\\xff``, so the output is always valid UTF-8."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from vocoder_cli.metrics.runner import ScoreRun

SUMMARY_FIELDS = ("metric", "mean", "std", "ci_low", "ci_high", "ci_clipped", "count", "failures")


def encodable(value: Any) -> Any:
    """``value`` with every string's undecodable file-name bytes (surrogate escapes) as ``\\xNN`` (any
    other lone surrogate as ``\\uNNNN``); lists and dicts recursively; anything else as it is."""
    if isinstance(value, str):
        if value.isascii() or not any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
            return value
        return "".join(_escape_surrogate(ch) for ch in value)
    if isinstance(value, dict):
        return {encodable(k): encodable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encodable(v) for v in value]
    return value


def _escape_surrogate(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for the byte code - 0xDC00
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}" if 0xD800 <= code <= 0xDFFF else ch


def summary_rows(run: ScoreRun) -> list[dict[str, Any]]:
    """One row per output key, with what it was computed on (library, version, sample rate)."""
    by_key = {k: m for m in run.metrics for k in m.keys}
    rows = []
    for s in run.summaries():
        info = by_key[s.key].info()
        rows.append({
            "metric": s.key, "mean": s.mean, "std": s.std, "ci_low": s.ci_low, "ci_high": s.ci_high,
            "ci_clipped": s.ci_clipped, "count": s.count, "failures": s.failures,
            "library": f"{info['library']} {info['version']}", "sample_rate": info["sample_rate"],
        })
    return rows


def file_rows(run: ScoreRun) -> list[dict[str, Any]]:
    return [encodable(r.row(run.keys)) for r in run.results]


def to_csv(run: ScoreRun, per_file: bool) -> str:
    buf = io.StringIO()
    if per_file:
        fields = ["id", *run.keys, "error", "warning"]
        rows = file_rows(run)
    else:
        fields = [*SUMMARY_FIELDS, "library", "sample_rate"]
        rows = summary_rows(run)
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in fields})
    return buf.getvalue()


def to_jsonl(run: ScoreRun, per_file: bool) -> str:
    rows = file_rows(run) if per_file else summary_rows(run)
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def to_json(run: ScoreRun, per_file: bool) -> str:
    payload: dict[str, Any] = {
        "metrics": run.info(),
        "summary": {row.pop("metric"): row for row in summary_rows(run)},
        "failures": [encodable({"id": r.id, "error": "; ".join(r.errors)}) for r in run.failures],
    }
    if per_file:
        payload["files"] = file_rows(run)
    return json.dumps(payload, indent=2, ensure_ascii=False) + "\n"


RENDERERS = {"csv": to_csv, "jsonl": to_jsonl, "json": to_json}
