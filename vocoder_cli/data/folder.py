"""`prepare folder`: validate every clip of a folder once, cache resampled copies, write manifests."""

from __future__ import annotations

import io
import json
import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from vocoder_cli.audio import atomic_write_bytes, find_audio_files
from vocoder_cli.data.manifest import (
    DATASET_INFO,
    REPORT_FILE,
    TRAIN_MANIFEST,
    VAL_MANIFEST,
    ManifestEntry,
    split_train_val,
    write_manifest,
)
from vocoder_cli.data.validate import ClipRejected, ValidationRules, load_checked
from vocoder_cli.errors import ConfigError

# Formats read sample-exactly at any offset (what the training segment reader needs); others are converted.
SEEKABLE = frozenset({".wav", ".flac"})
CACHE_DIR = "wavs"

Progress = Callable[[int, int], None]  # (files done, files total)


@dataclass
class Rejected:
    path: str
    reason: str

    @property
    def kind(self) -> str:
        """The first word of the reason (``unreadable``, ``silent``, ...): what the console counts."""
        return self.reason.split(" ", 1)[0]


@dataclass
class PrepareResult:
    out: Path
    train: list[ManifestEntry]
    val: list[ManifestEntry]
    rejected: list[Rejected] = field(default_factory=list)
    converted: int = 0

    @property
    def reasons(self) -> Counter:
        return Counter(r.kind for r in self.rejected)

    @property
    def hours(self) -> float:
        return sum(e.duration for e in self.train + self.val) / 3600


def read_transcripts(path: Path) -> dict[str, str]:
    """``id|text`` or ``id|text|normalized`` lines (LJSpeech metadata.csv style); ``__`` means ``/``.

    The normalised text wins when present. Keys are ids without extension.
    """
    texts: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.rstrip("\n").split("|")
        if len(parts) < 2 or not parts[0].strip():
            continue
        key = parts[0].strip().replace("__", "/")
        key = key.rsplit(".", 1)[0] if Path(key).suffix.lower() in {".wav", ".flac", ".mp3", ".ogg"} else key
        text = parts[2] if len(parts) > 2 and parts[2].strip() else parts[1]
        texts[key] = text.strip()
    return texts


def _text_for(audio: Path, root: Path, texts: dict[str, str]) -> str | None:
    rel = audio.relative_to(root).with_suffix("").as_posix()
    if rel in texts:
        return texts[rel]
    if audio.stem in texts:
        return texts[audio.stem]
    for ext in (".txt", ".lab"):
        sidecar = audio.with_suffix(ext)
        if sidecar.is_file():
            return sidecar.read_text(encoding="utf-8").strip()
    return None


def _cache_path(out: Path, audio: Path, root: Path) -> Path:
    return out / CACHE_DIR / audio.relative_to(root).with_suffix(".wav")


def _process(
    audio: Path, root: Path, out: Path, rules: ValidationRules, texts: dict[str, str]
) -> tuple[ManifestEntry | None, Rejected | None, bool]:
    """Validate one file and, when it had to be converted, cache the converted copy (once)."""
    try:
        cached = _cache_path(out, audio, root)
        wav, _, changed = load_checked(audio, rules)
        changed = changed or audio.suffix.lower() not in SEEKABLE
        target = audio
        if changed:
            fresh = cached.is_file() and cached.stat().st_mtime >= audio.stat().st_mtime
            if not fresh or sf.info(str(cached)).samplerate != rules.sample_rate:
                buf = io.BytesIO()
                sf.write(buf, wav, rules.sample_rate, subtype="PCM_16", format="WAV")
                atomic_write_bytes(cached, buf.getvalue())
            target = cached
        entry = ManifestEntry(
            path=str(target.resolve()),
            duration=round(wav.shape[0] / rules.sample_rate, 4),
            sample_rate=rules.sample_rate,
            num_samples=int(wav.shape[0]),
            text=_text_for(audio, root, texts),
            source=str(audio.resolve()) if changed else None,
        )
        return entry, None, changed
    except ClipRejected as exc:
        return None, Rejected(str(audio), exc.reason), False


def write_report(path: Path, rejected: list[Rejected]) -> Path:
    lines = ["path\treason"] + [f"{r.path}\t{r.reason}" for r in rejected]
    return atomic_write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))


def prepare_files(
    files: list[Path],
    root: Path,
    out: Path,
    *,
    rules: ValidationRules,
    texts: dict[str, str] | None = None,
    val_fraction: float = 0.05,
    seed: int = 1234,
    progress: Progress | None = None,
    workers: int | None = None,
    info: dict | None = None,
) -> PrepareResult:
    """Validate ``files`` (under ``root``), split the usable ones, write manifests, report and info."""
    out.mkdir(parents=True, exist_ok=True)
    texts = texts or {}
    entries: list[ManifestEntry] = []
    rejected: list[Rejected] = []
    converted = 0
    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:  # libsndfile and soxr release the GIL
        results = pool.map(lambda f: _process(f, root, out, rules, texts), files)
        for done, (entry, bad, changed) in enumerate(results, start=1):
            if entry is not None:
                entries.append(entry)
            if bad is not None:
                rejected.append(bad)
            converted += int(changed)
            if progress:
                progress(done, len(files))
    if not entries:
        write_report(out / REPORT_FILE, rejected)
        raise ConfigError(f"no usable audio among {len(files)} files (see {out / REPORT_FILE})")
    train, val = split_train_val(entries, val_fraction, seed)
    write_manifest(out / TRAIN_MANIFEST, train)
    write_manifest(out / VAL_MANIFEST, val)
    write_report(out / REPORT_FILE, rejected)
    summary = {
        "sample_rate": rules.sample_rate,
        "source": str(root.resolve()),
        "files": len(files),
        "train": len(train),
        "val": len(val),
        "rejected": len(rejected),
        "rejected_by_reason": dict(Counter(r.kind for r in rejected)),
        "hours": round(sum(e.duration for e in entries) / 3600, 4),
        "val_fraction": val_fraction,
        "seed": seed,
        "rules": rules.to_dict(),
        **(info or {}),
    }
    atomic_write_bytes(out / DATASET_INFO, (json.dumps(summary, indent=2) + "\n").encode("utf-8"))
    return PrepareResult(out, train, val, rejected, converted)


def prepare_folder(
    source: Path,
    out: Path,
    *,
    rules: ValidationRules,
    transcripts: Path | None = None,
    val_fraction: float = 0.05,
    seed: int = 1234,
    progress: Progress | None = None,
) -> PrepareResult:
    """Every audio file under ``source`` (recursive), with transcripts from a file or sidecars."""
    source = Path(source)
    if not source.is_dir():
        raise ConfigError(f"{source}: not a folder")
    out = Path(out)
    files = [f for f in find_audio_files(source) if not f.resolve().is_relative_to(out.resolve())]
    if not files:
        raise ConfigError(f"{source}: no audio files found (looked for .wav, .flac, .ogg, .mp3, ...)")
    texts = read_transcripts(transcripts) if transcripts else {}
    return prepare_files(
        files, source, out, rules=rules, texts=texts, val_fraction=val_fraction, seed=seed, progress=progress
    )
