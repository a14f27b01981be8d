"""Where texts come from, and how a text too long for one utterance is cut.

Sources: one argument; a folder ``D/transcriptions/ID.txt`` (the course layout; ``D`` may also be the
transcriptions folder itself); ``id|text`` lines (an LJSpeech ``metadata.csv`` works: its third,
normalised column is used when present). A source that cannot be read item by item (an undecodable
file, a line without ``|``, a bad id) yields an item with an ``error``, so the batch goes on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from vocoder_cli.errors import VocoderError

TRANSCRIPTIONS = "transcriptions"
_BAD_ID = re.compile(r"[\x00-\x1f/\\]")


@dataclass(frozen=True)
class TextItem:
    """One text to speak and the id its outputs are named after."""

    id: str
    text: str | None  # None when the source could not be read (see ``error``)
    source: str  # where it came from: a path, FILE:LINE, <argument>, <stdin>
    error: str | None = None


def check_id(item_id: str) -> str | None:
    """Why ``item_id`` cannot name an output file, or None when it can."""
    if not item_id:
        return "empty id"
    if _BAD_ID.search(item_id) or item_id.startswith(".") or len(item_id) > 200:
        return f"id {item_id!r} cannot name a file (no slashes, control characters or leading dot; at most 200 chars)"
    return None


def decode_text(data: bytes) -> str:
    """UTF-8 (a byte-order mark is ignored); raises UnicodeDecodeError otherwise."""
    return data.decode("utf-8-sig")


def _undecodable(exc: UnicodeDecodeError) -> str:
    return f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); save it as UTF-8"


def transcriptions_dir(folder: Path) -> Path:
    """``folder/transcriptions`` when it exists, else ``folder`` itself."""
    sub = folder / TRANSCRIPTIONS
    return sub if sub.is_dir() else folder


def items_from_dir(folder: str | Path) -> list[TextItem]:
    """One item per ``*.txt`` in ``folder/transcriptions`` (or ``folder``), sorted by id."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VocoderError(f"{folder}: no such folder")
    where = transcriptions_dir(folder)
    files = sorted(p for p in where.iterdir() if p.is_file() and p.suffix.lower() == ".txt")
    if not files:
        raise VocoderError(f"{folder}: no .txt files (expected {folder / TRANSCRIPTIONS}/ID.txt)")
    items = []
    for path in files:
        try:
            text = decode_text(path.read_bytes())
        except UnicodeDecodeError as exc:
            items.append(TextItem(path.stem, None, str(path), _undecodable(exc)))
        except OSError as exc:
            items.append(TextItem(path.stem, None, str(path), f"cannot read ({exc.strerror or exc})"))
        else:
            items.append(TextItem(path.stem, text, str(path), check_id(path.stem)))
    return items


def items_from_lines(data: bytes, source: str) -> list[TextItem]:
    """``id|text`` lines (``id|text|normalised`` uses the third column); blank and ``#`` lines skipped."""
    items = []
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for number, raw in enumerate(data.split(b"\n"), 1):
        where = f"{source}:{number}"
        try:
            line = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as exc:
            items.append(TextItem(f"line {number}", None, where, _undecodable(exc)))
            continue
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "|" not in line:
            items.append(TextItem(f"line {number}", None, where, "expected id|text (or id|text|normalised text)"))
            continue
        parts = line.split("|")
        item_id = parts[0].strip()
        text = parts[2] if len(parts) >= 3 and parts[2].strip() else parts[1]
        items.append(TextItem(item_id or f"line {number}", text, where, check_id(item_id)))
    return items


def mark_duplicates(items: Iterable[TextItem]) -> list[TextItem]:
    """A second item with an id already seen becomes an error (it would overwrite the first one's output)."""
    seen: dict[str, str] = {}
    out = []
    for item in items:
        if item.error is None and item.id in seen:
            item = TextItem(item.id, None, item.source, f"duplicate id {item.id!r} (first at {seen[item.id]})")
        elif item.error is None:
            seen[item.id] = item.source
        out.append(item)
    return out


# ---------------------------------------------------------------------------------------------
# Splitting a long text into utterances

_SENTENCE_BREAK = re.compile(r"(?<=[.!?;:])\s+")
_CLAUSE_BREAK = re.compile(r"(?<=[,)])\s+")


def _units(text: str, max_chars: int) -> Iterable[str]:
    """Sentences; a sentence longer than ``max_chars`` becomes clauses, then runs of words."""
    for sentence in _SENTENCE_BREAK.split(text.strip()):
        if len(sentence) <= max_chars:
            yield sentence
            continue
        for clause in _CLAUSE_BREAK.split(sentence):
            if len(clause) <= max_chars:
                yield clause
                continue
            words: list[str] = []
            for word in clause.split():
                while len(word) > max_chars:  # one "word" longer than the limit: cut it
                    yield word[:max_chars]
                    word = word[max_chars:]
                if words and len(" ".join([*words, word])) > max_chars:
                    yield " ".join(words)
                    words = []
                words.append(word)
            if words:
                yield " ".join(words)


def split_text(text: str, max_chars: int) -> list[str]:
    """Pieces of at most ``max_chars``: whole sentences packed greedily, long sentences cut at clauses."""
    pieces: list[str] = []
    for unit in _units(text, max_chars):
        if pieces and len(pieces[-1]) + 1 + len(unit) <= max_chars:
            pieces[-1] = f"{pieces[-1]} {unit}"
        else:
            pieces.append(unit)
    return [p for p in pieces if p.strip()]
