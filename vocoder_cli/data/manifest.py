"""JSONL manifests: one clip per line (path, duration, sample rate, samples, text), easy to inspect and edit.

Paths are stored relative to the manifest's folder when the audio lives inside it (so a prepared
dataset can be moved), absolute otherwise; :func:`read_manifest` resolves them either way.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

from vocoder_cli.audio import atomic_write_bytes
from vocoder_cli.errors import ConfigError

TRAIN_MANIFEST = "train.jsonl"
VAL_MANIFEST = "val.jsonl"
DATASET_INFO = "dataset.json"
REPORT_FILE = "rejected.tsv"
PREPARED_BY = "vocoder prepare"  # dataset.json's "prepared_by": how a re-run recognises its own folder


@dataclass(frozen=True)
class ManifestEntry:
    """One usable clip at the dataset's sample rate."""

    path: str
    duration: float
    sample_rate: int
    num_samples: int
    text: str | None = None
    source: str | None = None  # the original file when ``path`` is a resampled copy

    @property
    def stem(self) -> str:
        return Path(self.path).stem


def _relative(path: str, root: Path) -> str:
    try:
        return Path(path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(Path(path).resolve())


def write_manifest(path: str | Path, entries: list[ManifestEntry]) -> Path:
    """Write ``entries`` as JSON lines, atomically."""
    path = Path(path)
    lines = []
    for entry in entries:
        row = {k: v for k, v in asdict(entry).items() if v is not None}
        row["path"] = _relative(entry.path, path.parent)
        lines.append(json.dumps(row, ensure_ascii=False))
    return atomic_write_bytes(path, ("\n".join(lines) + "\n" if lines else "").encode("utf-8"))


def read_manifest(path: str | Path) -> list[ManifestEntry]:
    """Parse a JSONL manifest; a broken line is a :class:`ConfigError` naming the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: manifest not found (run `vocoder prepare` first)")
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            audio = Path(row["path"])
            if not audio.is_absolute():
                audio = path.parent / audio
            entries.append(
                ManifestEntry(
                    path=str(audio),
                    duration=float(row["duration"]),
                    sample_rate=int(row["sample_rate"]),
                    num_samples=int(row.get("num_samples", round(float(row["duration"]) * int(row["sample_rate"])))),
                    text=row.get("text"),
                    source=row.get("source"),
                )
            )
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}:{number}: not a manifest line ({exc})") from None
    return entries


def is_dataset_folder(folder: Path) -> bool:
    """Whether ``folder`` was written by `vocoder prepare` (its dataset.json says so; older versions'
    dataset.json is recognised by its keys), so a re-run may update it."""
    try:
        info = json.loads((Path(folder) / DATASET_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(info, dict):
        return False
    return info.get("prepared_by") == PREPARED_BY or {"sample_rate", "train", "val", "rules"} <= info.keys()


def mark_dataset_folder(folder: Path) -> None:
    """Claim ``folder`` for `vocoder prepare` before anything else is written into it (a dataset.json saying
    the run has not finished, replaced by the summary at the end), so an interrupted run (a download, a
    long validation) is recognised as its own when it is run again."""
    if not is_dataset_folder(folder):
        info = {"prepared_by": PREPARED_BY, "complete": False}
        atomic_write_bytes(Path(folder) / DATASET_INFO, (json.dumps(info, indent=2) + "\n").encode("utf-8"))


def split_train_val(items: list, val_fraction: float = 0.05, seed: int = 1234) -> tuple[list, list]:
    """A deterministic split: shuffle a copy with ``random.Random(seed)``, the first share is validation.

    At least one item goes to validation whenever there are two or more items and the fraction is > 0.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    shuffled = list(items)
    random.Random(seed).shuffle(shuffled)
    n_val = round(len(shuffled) * val_fraction)
    if val_fraction > 0 and n_val == 0 and len(shuffled) >= 2:
        n_val = 1
    return shuffled[n_val:], shuffled[:n_val]
