"""Markdown tables for docs/quality.md from the JSON of scripts/quality/score_all.sh.

Usage: python scripts/quality/table.py OUT_DIR/scores > table.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SETS = ("ljspeech-dev", "reader_m-test", "allison_en-test")
VOCODERS = ("hifigan-lj-v1", "hifigan-universal-v1", "hifigan-lj-v2", "griffin-lim")
COLUMNS = (  # key, header, decimals
    ("pesq", "PESQ-wb ↑", 2), ("stoi", "STOI ↑", 3), ("mstft", "M-STFT ↓", 2), ("mcd", "MCD dB ↓", 2),
    ("f0_rmse", "f0 RMSE cents ↓", 1), ("vuv_f1", "V/UV F1 ↑", 3), ("periodicity", "periodicity ↓", 3),
    ("dnsmos_ovrl", "DNSMOS OVRL ↑", 2),
)


def cell(summary: dict, key: str, decimals: int) -> str:
    row = summary.get(key)
    if not row or row.get("mean") is None:
        return "-"
    text = f"{row['mean']:.{decimals}f}"
    if row.get("ci_low") is not None:
        half = (row["ci_high"] - row["ci_low"]) / 2
        text += f" ± {half:.{decimals}f}"
    if row.get("failures"):
        text += f" ({row['failures']} failed)"
    return text


def main(folder: Path) -> None:
    for name in SETS:
        truth = json.loads((folder / f"ground-truth.{name}.json").read_text())["summary"]
        print(f"\n### {name}\n")
        print("| vocoder | " + " | ".join(h for _, h, _ in COLUMNS) + " |")
        print("| --- |" + " --- |" * len(COLUMNS))
        for vocoder in VOCODERS:
            summary: dict = {}
            for path in sorted(folder.glob(f"{vocoder}.{name}.*.json")):  # one file per scoring pass
                summary.update(json.loads(path.read_text())["summary"])
            if not summary:
                continue
            print(f"| {vocoder} | " + " | ".join(cell(summary, k, d) for k, _, d in COLUMNS) + " |")
        print("| ground truth | " + " | ".join(cell(truth, k, d) if k.startswith("dnsmos") else "" for k, _, d in COLUMNS) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
