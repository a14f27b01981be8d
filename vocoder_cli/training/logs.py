"""Run logs: a CSV of every scalar (always), TensorBoard event files (scalars, audio, mel images) when
``tensorboard`` is installed, and W&B when a project is configured and ``wandb`` is installed.

On resume, rows and events after the resumed step (written after the last checkpoint, then lost to
the interruption) are dropped so the curves do not double back.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import numpy as np

from vocoder_cli.audio import atomic_write_bytes

METRICS_CSV = "metrics.csv"
TB_DIR = "tb"
_HEADER = ["step", "time", "tag", "value"]


def mel_image(mel: np.ndarray, floor: float = -11.5129) -> np.ndarray:
    """A log-mel [n_mels, frames] as a grayscale image [1, n_mels, frames] in [0, 1], low bins at the bottom."""
    top = max(float(mel.max()), floor + 1.0)
    img = (np.clip(mel, floor, top) - floor) / (top - floor)
    return img[::-1][None].astype(np.float32).copy()


class RunLogger:
    """Write scalars/audio/images for one run; every method is a no-op on non-main ranks."""

    def __init__(
        self, run_dir: Path, *, enabled: bool = True, resume_step: int = 0, wandb_project: str = "", config: dict | None = None
    ) -> None:
        self.enabled = enabled
        self.notes: list[str] = []
        self.tb = None
        self.wandb = None
        if not enabled:
            return
        self.csv_path = Path(run_dir) / METRICS_CSV
        self._truncate_csv(resume_step)
        new = not self.csv_path.exists()
        self._csv_file = open(self.csv_path, "a", newline="", encoding="utf-8")  # noqa: SIM115
        self._csv = csv.writer(self._csv_file)
        if new:
            self._csv.writerow(_HEADER)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(Path(run_dir) / TB_DIR), purge_step=resume_step + 1 if resume_step else None)
        except ImportError:
            self.notes.append("tensorboard is not installed: logging scalars to metrics.csv only")
        if wandb_project:
            try:
                import wandb

                self.wandb = wandb.init(project=wandb_project, dir=str(run_dir), config=config, resume="allow")
            except ImportError:
                self.notes.append("wandb is not installed (pip install 'vocoder[wandb]'): W&B logging is off")

    def _truncate_csv(self, resume_step: int) -> None:
        if not self.csv_path.exists():
            return
        with open(self.csv_path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= resume_step] if rows else [_HEADER]
        if len(kept) != len(rows):
            buf = io.StringIO()
            csv.writer(buf).writerows(kept)
            atomic_write_bytes(self.csv_path, buf.getvalue().encode("utf-8"))

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        now = round(time.time(), 3)
        for tag, value in values.items():
            self._csv.writerow([step, now, tag, f"{value:.7g}"])
            if self.tb is not None:
                self.tb.add_scalar(tag, value, step)
        self._csv_file.flush()
        if self.wandb is not None:
            self.wandb.log(values, step=step)

    def audio(self, step: int, tag: str, wav: np.ndarray, sample_rate: int) -> None:
        if self.enabled and self.tb is not None:
            self.tb.add_audio(tag, np.clip(wav, -1, 1)[None], step, sample_rate=sample_rate)

    def image(self, step: int, tag: str, chw: np.ndarray) -> None:
        if self.enabled and self.tb is not None:
            self.tb.add_image(tag, chw, step, dataformats="CHW")

    def flush(self) -> None:
        if self.enabled and self.tb is not None:
            self.tb.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        self._csv_file.close()
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()

    def __enter__(self) -> "RunLogger":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
