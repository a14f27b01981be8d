"""Two training runs side by side, step by step: are their losses the same within noise?

Made for a precision check (the same recipe, seed and data order in fp32 and bf16), it reads each run's
``metrics.csv`` (``step,time,tag,value``) and, per tag, over windows of steps: both means and the paired
difference (b - a) with its 95% interval. Both runs draw the same segments at each step when seed and data
are the same, so the paired difference removes the batch-to-batch spread that dominates a single curve;
an interval that contains 0 means no difference the run can show.

    python scripts/compare_runs.py runs/fp32 runs/bf16
    python scripts/compare_runs.py runs/fp32 runs/bf16 --tags loss/mel_l1,loss/d --window 50 --markdown t.md
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
from pathlib import Path

DEFAULT_TAGS = ("loss/mel_l1", "loss/g_adv", "loss/g_fm", "loss/d")


def read_metrics(run: Path) -> dict[str, dict[int, float]]:
    """``RUN/metrics.csv`` -> tag -> step -> value (the last row wins for a repeated step)."""
    out: dict[str, dict[int, float]] = {}
    with open(run / "metrics.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            out.setdefault(row["tag"], {})[int(row["step"])] = float(row["value"])
    return out


def t95(n: int) -> float:
    """Two-sided 95% t quantile for a mean of ``n`` values (scipy, from the ``metrics`` extra)."""
    from scipy import stats

    return float(stats.t.ppf(0.975, n - 1))


def compare(a: dict[int, float], b: dict[int, float], window: int) -> list[dict[str, float]]:
    steps = sorted(set(a) & set(b))
    rows = []
    for start in range(0, len(steps), window):
        chunk = steps[start : start + window]
        if len(chunk) < 2:
            continue
        diffs = [b[s] - a[s] for s in chunk]
        mean = statistics.fmean(diffs)
        half = t95(len(chunk)) * statistics.stdev(diffs) / math.sqrt(len(chunk))
        rows.append({"first": chunk[0], "last": chunk[-1], "a": statistics.fmean(a[s] for s in chunk),
                     "b": statistics.fmean(b[s] for s in chunk), "diff": mean, "low": mean - half, "high": mean + half})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument("--tags", default=",".join(DEFAULT_TAGS))
    parser.add_argument("--window", type=int, default=50, help="steps per row")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args()
    a, b = read_metrics(args.run_a), read_metrics(args.run_b)
    lines = [f"| tag | steps | {args.run_a.name} mean | {args.run_b.name} mean | paired difference (b - a) "
             "| 95% interval | contains 0 |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for tag in args.tags.split(","):
        if tag not in a or tag not in b:
            print(f"{tag}: not logged in both runs")
            continue
        for r in compare(a[tag], b[tag], args.window):
            lines.append(f"| {tag} | {r['first']}-{r['last']} | {r['a']:.4f} | {r['b']:.4f} | {r['diff']:+.4f} "
                         f"| [{r['low']:+.4f}, {r['high']:+.4f}] | {'yes' if r['low'] <= 0 <= r['high'] else 'no'} |")
    print("\n".join(lines))
    if args.markdown:
        args.markdown.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
