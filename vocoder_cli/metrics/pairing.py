"""Which reference goes with which generated file: relative path without extension, or a pairs list.

Unmatched files are kept as pairs with the missing side set to None, so they show up as failures
instead of silently shrinking the test set.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from vocoder_cli.audio import find_audio_files
from vocoder_cli.errors import ConfigError


@dataclass(frozen=True)
class Pair:
    """One row to score: ``ref`` is None for reference-free runs (or when the reference is missing)."""

    id: str
    gen: Path | None
    ref: Path | None = None


def _index(root: Path) -> dict[str, Path]:
    """Files under a folder keyed by relative path without extension (``spk1/utt3``)."""
    if not root.exists():
        raise ConfigError(f"{root}: no such file or folder")
    if root.is_file():
        return {root.stem: root}
    files = find_audio_files(root)
    if not files:
        raise ConfigError(f"{root}: no audio files found")
    index: dict[str, Path] = {}
    for path in files:
        key = path.relative_to(root).with_suffix("").as_posix()
        if key in index:
            raise ConfigError(f"{root}: two files share the id {key!r} ({index[key].name}, {path.name})")
        index[key] = path
    return index


def pair_paths(ref: Path | None, gen: Path) -> list[Pair]:
    """Match REF and GEN (folders or single files); with ``ref=None``, every GEN file alone."""
    gens = _index(gen)
    if ref is None:
        return [Pair(key, path) for key, path in sorted(gens.items())]
    if ref.is_file() and gen.is_file():  # two single files: pair them whatever their names
        return [Pair(gen.stem, gen, ref)]
    refs = _index(ref)
    return [Pair(key, gens.get(key), refs.get(key)) for key in sorted(set(gens) | set(refs))]


def parse_pairs(lines: Iterable[str], source: str = "pairs") -> list[Pair]:
    """``ref<TAB>gen`` lines (or one path per line for reference-free metrics); ``#`` comments and
    blank lines are skipped. The id is the generated path without extension."""
    pairs: list[Pair] = []
    seen: set[str] = set()
    for number, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) > 2 or not all(f.strip() for f in fields):
            raise ConfigError(f"{source}:{number}: expected 'ref<TAB>gen' or a single path, got {line!r}")
        gen = Path(fields[-1].strip())
        ref = Path(fields[0].strip()) if len(fields) == 2 else None
        key = gen.with_suffix("").as_posix()
        if key in seen:
            raise ConfigError(f"{source}:{number}: {gen} is listed twice")
        seen.add(key)
        pairs.append(Pair(key, gen, ref))
    if not pairs:
        raise ConfigError(f"{source}: no pairs found")
    return pairs
