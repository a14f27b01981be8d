"""`prepare folder`: validate every clip of a folder once, cache resampled copies, write manifests.

The dataset folder follows :mod:`vocoder_cli.outputs`: it never overlaps the source, a non-empty folder
that `prepare` did not write is refused unless ``--overwrite``, and two clips whose converted copies would
share a name (``x.flac`` and ``x.ogg``) each get their own (``wavs/x.flac.wav``, ``wavs/x.ogg.wav``).
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from vocoder_cli.audio import AUDIO_EXTENSIONS, atomic_write_bytes
from vocoder_cli.data.manifest import (
    DATASET_INFO,
    PREPARED_BY,
    REPORT_FILE,
    TRAIN_MANIFEST,
    VAL_MANIFEST,
    ManifestEntry,
    is_dataset_folder,
    mark_dataset_folder,
    split_train_val,
    write_manifest,
)
from vocoder_cli.data.validate import ClipRejected, ValidationRules, load_checked
from vocoder_cli.errors import ConfigError
from vocoder_cli.outputs import (
    OutputPolicy,
    check_output_folder,
    check_separate,
    claim_names,
    collision_reason,
    keep_extension,
)

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
    renamed: list[tuple[str, str]] = field(default_factory=list)  # (source, converted copy) named with its extension

    @property
    def reasons(self) -> Counter:
        return Counter(r.kind for r in self.rejected)

    @property
    def hours(self) -> float:
        return sum(e.duration for e in self.train + self.val) / 3600


def _decode_text(data: bytes, name: str) -> str:
    """UTF-8 (a byte-order mark is dropped); anything else is an error naming the line and the byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ValueError(
            f"{name}:{line}:{column}: not UTF-8 text (byte 0x{data[exc.start]:02x}); "
            f"convert it, e.g. iconv -f latin1 -t utf-8"
        ) from None


def read_transcripts(path: Path) -> dict[str, str]:
    """``id|text`` or ``id|text|normalized`` lines (LJSpeech metadata.csv style); ``__`` means ``/``.

    The normalised text wins when present. Keys are ids without extension. A missing, unreadable or
    non-UTF-8 file is a :class:`ConfigError` (exit code 2) naming it, and the line and byte at fault.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: transcripts file not found" if not path.exists() else f"{path}: not a file")
    try:
        text = _decode_text(path.read_bytes(), str(path))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the transcripts ({exc.strerror})") from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    texts: dict[str, str] = {}
    for line in text.splitlines():
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
            try:
                return _decode_text(sidecar.read_bytes(), sidecar.name).strip()
            except OSError as exc:
                raise ClipRejected(f"transcript {sidecar.name} unreadable ({exc.strerror})") from None
            except ValueError as exc:
                raise ClipRejected(f"transcript {exc}") from None
    return None


@dataclass(frozen=True)
class CacheName:
    """Where a clip's converted copy goes (``path``), or why it cannot have one (``problem``: its name is
    another clip's); ``renamed`` when the source extension was kept to tell two clips apart."""

    path: Path | None
    problem: str | None = None
    renamed: bool = False


def cache_names(files: Sequence[Path], root: Path, out: Path) -> list[CacheName]:
    """``OUT/wavs/<relative path>.wav`` for each file, distinct on every common file system (the rule of
    :func:`vocoder_cli.outputs.claim_names`), decided up front so threads never race for one name."""
    rels = [f.relative_to(root) for f in files]
    claims = claim_names([r.with_suffix(".wav") for r in rels], [keep_extension(r, ".wav") for r in rels])
    names = []
    for rel, claim in zip(rels, claims):
        if claim.name is None:
            assert claim.clash is not None
            other = out / CACHE_DIR / str(claims[claim.clash].name)
            reason = collision_reason(out / CACHE_DIR / rel.with_suffix(".wav"), other, str(files[claim.clash]))
            names.append(CacheName(None, f"name clash: {reason}"))
        else:
            names.append(CacheName(out / CACHE_DIR / claim.name, renamed=claim.renamed))
    return names


def _encode(wav: np.ndarray, sr: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wav, sr, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def _same_bytes(path: Path, payload: bytes) -> bool:
    """Whether ``path`` already holds exactly ``payload`` (a converted copy from an earlier run: reused)."""
    try:
        return path.stat().st_size == len(payload) and path.read_bytes() == payload
    except OSError:
        return False


def _process(
    audio: Path, root: Path, cache: CacheName, rules: ValidationRules, texts: dict[str, str]
) -> tuple[ManifestEntry | None, Rejected | None, bool]:
    """Validate one file and, when it had to be converted, cache the converted copy (written only when the
    copy there is not already exactly it, so a re-run rewrites nothing and never reuses another clip's)."""
    try:
        wav, _, changed = load_checked(audio, rules)
        changed = changed or audio.suffix.lower() not in SEEKABLE
        target = audio
        if changed:
            if cache.path is None:
                raise ClipRejected(cache.problem or "name clash")
            payload = _encode(wav, rules.sample_rate)
            if not _same_bytes(cache.path, payload):
                atomic_write_bytes(cache.path, payload)
            target = cache.path
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
    except (OSError, MemoryError) as exc:  # the file vanished, a permission, a full disk: this clip only
        return None, Rejected(str(audio), f"unreadable ({type(exc).__name__}: {exc})"), False


def write_report(path: Path, rejected: list[Rejected]) -> Path:
    """``path<TAB>reason`` rows written with the csv module: a name holding a tab, a newline or a quote
    is quoted, so every row reads back whole (``csv.reader(f, delimiter="\t")``)."""
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="\t", lineterminator="\n")
    writer.writerow(["path", "reason"])
    writer.writerows([r.path, r.reason] for r in rejected)
    return atomic_write_bytes(path, buf.getvalue().encode("utf-8", errors="surrogateescape"))


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # undecodable bytes in a file name arrive as surrogates
        return False
    return True


def discover(source: Path, exclude: Path | None = None) -> tuple[list[Path], list[Rejected]]:
    """Audio files under ``source`` (recursive, linked folders followed), each real file once.

    Every link that cannot be used is a row, never a silent omission: a dangling link, a link loop, a
    link to a folder already included, and a second path (a link) to a file already included. Real
    entries are visited before links at each level, so the real path is the one kept."""
    files: list[Path] = []
    rejected: list[Rejected] = []
    seen_files: dict[str, Path] = {}
    seen_dirs: dict[str, Path] = {}
    skip = os.path.realpath(exclude) if exclude is not None else None

    def visit(folder: Path, ancestors: tuple[str, ...]) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: (e.is_symlink(), e.name))
        except OSError as exc:
            rejected.append(Rejected(str(folder), f"unreadable folder ({exc.strerror})"))
            return
        for entry in entries:
            path = Path(entry.path)
            if entry.is_symlink():
                try:
                    real = os.path.realpath(path, strict=True)
                except FileNotFoundError:
                    rejected.append(Rejected(str(path), f"broken link (points to {os.readlink(path)}, which does not exist)"))
                    continue
                except OSError:  # ELOOP
                    rejected.append(Rejected(str(path), f"link loop ({os.readlink(path)} never reaches a file)"))
                    continue
            else:
                real = os.path.realpath(path)
            if os.path.isdir(real):
                if skip is not None and (real == skip or real.startswith(skip + os.sep)):
                    continue  # the output folder (its cached copies) is never an input
                if real in ancestors:
                    rejected.append(Rejected(str(path), f"link loop (links back to {seen_dirs.get(real, real)})"))
                elif real in seen_dirs:
                    rejected.append(Rejected(str(path), f"duplicate folder (same as {seen_dirs[real]}, already included)"))
                else:
                    seen_dirs[real] = path
                    visit(path, (*ancestors, real))
            elif path.suffix.lower() in AUDIO_EXTENSIONS and os.path.isfile(real):
                if not _utf8(str(path)):  # a manifest is UTF-8 JSON: such a name cannot be written into it
                    rejected.append(Rejected(str(path), "file name is not valid UTF-8 (rename the file)"))
                elif real in seen_files:
                    rejected.append(Rejected(str(path), f"duplicate (same file as {seen_files[real]}, already included)"))
                else:
                    seen_files[real] = path
                    files.append(path)

    root = os.path.realpath(source)
    seen_dirs[root] = Path(source)
    visit(Path(source), (root,))
    return sorted(files), rejected


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
    rejected: list[Rejected] | None = None,
) -> PrepareResult:
    """Validate ``files`` (under ``root``), split the usable ones, write manifests, report and info.

    ``rejected``: rows found before validation (links that cannot be used), reported with the rest. The
    caller has claimed ``out`` (:func:`claim_dataset_folder`)."""
    out.mkdir(parents=True, exist_ok=True)
    texts = texts or {}
    entries: list[ManifestEntry] = []
    rejected = list(rejected or [])
    renamed: list[tuple[str, str]] = []
    converted = 0
    workers = workers or min(8, os.cpu_count() or 1)
    names = cache_names(files, root, out)
    with ThreadPoolExecutor(max_workers=workers) as pool:  # libsndfile and soxr release the GIL
        results = pool.map(lambda job: _process(job[0], root, job[1], rules, texts), zip(files, names))
        for done, (audio, cache, (entry, bad, changed)) in enumerate(zip(files, names, results), start=1):
            if entry is not None:
                entries.append(entry)
                if changed and cache.renamed:
                    renamed.append((str(audio), str(cache.path)))
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
        "prepared_by": PREPARED_BY,
        "complete": True,
        "sample_rate": rules.sample_rate,
        "source": str(root.resolve()),
        "files": len(files),
        "converted": converted,
        "renamed": len(renamed),
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
    return PrepareResult(out, train, val, rejected, converted, renamed)


def claim_dataset_folder(out: Path, inputs: Sequence[Path], overwrite: bool = False) -> None:
    """Before any work: refuse an ``out`` that overlaps an input tree, or a non-empty folder `prepare` did
    not write (unless ``overwrite``); then mark ``out`` as prepare's, so even an interrupted run is
    recognised as its own next time. Raises :class:`~vocoder_cli.outputs.OutputError`."""
    check_separate(inputs, out)
    check_output_folder(out, OutputPolicy.from_flags(overwrite=overwrite), is_dataset_folder, PREPARED_BY)
    mark_dataset_folder(out)


def prepare_folder(
    source: Path,
    out: Path,
    *,
    rules: ValidationRules,
    transcripts: Path | None = None,
    val_fraction: float = 0.05,
    seed: int = 1234,
    progress: Progress | None = None,
    overwrite: bool = False,
) -> PrepareResult:
    """Every audio file under ``source`` (recursive), with transcripts from a file or sidecars.

    ``overwrite``: write into a non-empty folder that `prepare` did not write (see :func:`claim_dataset_folder`)."""
    source = Path(source)
    if not source.is_dir():
        raise ConfigError(f"{source}: not a folder")
    out = Path(out)
    check_separate([source], out)
    texts = read_transcripts(transcripts) if transcripts else {}  # a bad transcripts file: exit 2 before any work
    files, link_problems = discover(source, exclude=out)
    if not files:
        detail = f"; {len(link_problems)} unusable links, e.g. {link_problems[0].path}: {link_problems[0].reason}" if link_problems else ""
        raise ConfigError(f"{source}: no audio files found (looked for .wav, .flac, .ogg, .mp3, ...){detail}")
    claim_dataset_folder(out, [source], overwrite)
    return prepare_files(
        files, source, out, rules=rules, texts=texts, val_fraction=val_fraction, seed=seed, progress=progress,
        rejected=link_problems,
    )
