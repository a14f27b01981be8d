"""Where texts come from, and how a text too long for one utterance is cut.

Sources: one argument; a folder ``D/transcriptions/ID.txt`` (the course layout; ``D`` may also be the
transcriptions folder itself); ``id|text`` lines, or an LJSpeech ``metadata.csv`` (``id|text|normalised``).
A source that cannot be read item by item (an undecodable file, a line without ``|``, a bad id, a broken
link) yields an item with an ``error``, so the batch goes on and the problem is listed; what a source
reader left out on purpose (subfolders, other files) and how it read the source are its ``notes``.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vocoder_cli.errors import TextError, VocoderError

TRANSCRIPTIONS = "transcriptions"
_BAD_ID = re.compile(r"[\x00-\x1f\x7f-\x9f/\\]")

# An id names OUT/<id>.wav and OUT/<id>.npy, and each is first written as a temporary file in the same
# folder (audio.atomic_write_bytes: "." + name + "." + 8 random characters + ".part"). Most file systems
# allow 255 bytes per name, so an id may take 255 - len(".wav") - len("..XXXXXXXX.part") = 236 bytes.
MAX_NAME_BYTES = 255
OUTPUT_SUFFIX = ".wav"  # the longest suffix an item's outputs get (.wav, .npy)
TEMPORARY_NAME_BYTES = len(".") + len(".") + 8 + len(".part")
MAX_ID_BYTES = MAX_NAME_BYTES - len(OUTPUT_SUFFIX) - TEMPORARY_NAME_BYTES

# --texts formats: one id|text pair a line, or LJSpeech's id|text|normalised (the third column is spoken).
TEXT_FORMATS = ("auto", "id-text", "ljspeech")


@dataclass(frozen=True)
class TextItem:
    """One text to speak and the id its outputs are named after."""

    id: str
    text: str | None  # None when the source could not be read (see ``error``)
    source: str  # where it came from: a path, FILE:LINE, <argument>, <stdin>
    error: str | None = None


@dataclass(frozen=True)
class TextSource:
    """What a source yielded: one item per entry (bad ones carry an ``error``) and one-line notes that
    say how it was read and what was left out on purpose."""

    items: list[TextItem]
    notes: tuple[str, ...] = field(default=())


def check_id(item_id: str) -> str | None:
    """Why ``item_id`` cannot name an output file, or None when it can.

    The limit is in bytes as the file system stores the name (UTF-8; an id read from a file name that
    was not UTF-8 keeps its original bytes), not in characters: 80 CJK characters are 240 bytes."""
    if not item_id:
        return "empty id"
    if _BAD_ID.search(item_id) or item_id.startswith("."):
        return f"id {item_id!r} cannot name a file (no slashes, control characters or leading dot)"
    try:
        size = len(os.fsencode(item_id))
    except UnicodeError:
        return f"id {item_id!r} cannot name a file (it holds characters no file name can encode)"
    if size > MAX_ID_BYTES:
        return (
            f"id is {size} bytes long as a file name ({len(item_id)} characters); output names allow at most "
            f"{MAX_ID_BYTES} (a file name holds {MAX_NAME_BYTES} bytes, less {OUTPUT_SUFFIX!r} and the "
            "temporary name of an atomic write)"
        )
    return None


def decode_text(data: bytes) -> str:
    """UTF-8 (a byte-order mark is ignored); anything else raises :class:`TextError` naming the byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        offset = exc.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        raise TextError(f"not UTF-8 text (byte 0x{data[offset]:02x} at offset {offset}); save it as UTF-8") from None


def _describe(names: list[str], what: str) -> str:
    shown = ", ".join(repr(n) for n in names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"{len(names)} {what}{'s' if len(names) != 1 else ''} ({shown})"


def _unusable(path: Path) -> str | None:
    """Why a directory entry named ``*.txt`` cannot be read as a text, or None when it is a regular file."""
    try:
        info = path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop"
        if path.is_symlink():
            return f"a broken symbolic link (to {os.readlink(path)!r})"
        return f"cannot read ({exc.strerror or exc})"
    if stat.S_ISDIR(info.st_mode):
        return "a folder, not a text file"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file (a pipe, socket or device)"
    return None


def text_folder(folder: Path) -> tuple[Path, str | None]:
    """Where the ``*.txt`` files are: ``folder/transcriptions`` when it exists, else ``folder`` (with a
    note). A ``transcriptions`` entry that is not a usable folder (a broken link, a file) is an error,
    never a silent fall back to ``folder/*.txt``."""
    sub = folder / TRANSCRIPTIONS
    if sub.is_dir():
        return sub, None
    if os.path.lexists(sub):
        why = _unusable(sub) or "a file, not a folder"
        raise VocoderError(f"{sub} is {why}: fix it, or pass the folder that holds the .txt files")
    if folder.name == TRANSCRIPTIONS:
        return folder, None
    return folder, f"{folder} has no {TRANSCRIPTIONS}/ folder: reading the .txt files in {folder} itself"


def items_from_dir(folder: str | Path) -> TextSource:
    """One item per ``*.txt`` in ``folder/transcriptions`` (or ``folder``), sorted by id.

    A ``*.txt`` entry that cannot be read (broken link, link loop, folder, undecodable) is an item with
    an error; subfolders and other files are named in a note (they are not searched)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VocoderError(f"{folder}: {'not a folder' if folder.exists() else 'no such folder'}")
    where, note = text_folder(folder)
    try:
        entries = sorted(where.iterdir())
    except OSError as exc:
        raise VocoderError(f"{where}: cannot list ({exc.strerror or exc})") from None
    items, folders, others = [], [], []
    for path in entries:
        if path.suffix.lower() != ".txt":
            (folders if path.is_dir() else others).append(path.name)
            continue
        problem = _unusable(path)
        if problem is not None:
            items.append(TextItem(path.stem, None, str(path), problem))
            continue
        try:
            text = decode_text(path.read_bytes())
        except TextError as exc:
            items.append(TextItem(path.stem, None, str(path), exc.reason))
        except OSError as exc:
            items.append(TextItem(path.stem, None, str(path), f"cannot read ({exc.strerror or exc})"))
        else:
            items.append(TextItem(path.stem, text, str(path), check_id(path.stem)))
    if not items:
        raise VocoderError(f"{folder}: no .txt files (expected {folder / TRANSCRIPTIONS}/ID.txt)")
    notes = [note] if note else []
    skipped = [_describe(folders, "subfolder")] if folders else []
    skipped += [_describe(others, "file")] if others else []
    if skipped:
        notes.append(f"{where}: skipped {' and '.join(skipped)}: only *.txt files are read, not subfolders")
    return TextSource(items, tuple(notes))


def _words(text: str) -> set[str]:
    return set(re.findall(r"[^\W\d_]+", text.lower()))


def _normalised_form(raw: str, normalised: str) -> bool:
    """Whether ``normalised`` reads like ``raw`` with numbers and abbreviations spelled out (LJSpeech's
    third column): at least a third of its words are words of ``raw`` after English normalisation.
    Every line of LJSpeech 1.1 passes (the lowest share is 0.43, a serial number spelled digit by digit)."""
    from vocoder_cli.tts.english import normalize_english

    said = _words(normalised)
    if not said:
        return True  # an empty third column: the second is spoken
    if 3 * len(said & _words(raw)) >= len(said):
        return True  # most lines: no numbers to spell out
    return 3 * len(said & _words(normalize_english(raw))) >= len(said)


def items_from_lines(data: bytes, source: str, fmt: str = "auto") -> TextSource:
    """Items from ``--texts`` lines; blank lines and ``#`` lines are skipped.

    ``fmt``: ``id-text`` (the text is everything after the first ``|``, so it may hold ``|``),
    ``ljspeech`` (``id|text|normalised``: exactly three columns, the third spoken, the second where the
    third is empty), or ``auto``: ``ljspeech`` when every line with a ``|`` has three columns and every
    third column is a normalised form of the second (what LJSpeech's metadata.csv looks like), else
    ``id-text``.
    The note says which format was used, on how many lines, and why."""
    if fmt not in TEXT_FORMATS:
        raise VocoderError(f"unknown texts format {fmt!r} (one of {', '.join(TEXT_FORMATS)})")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    rows: list[tuple[int, str | None, str]] = []  # (line number, line or None, error)
    for number, raw in enumerate(data.split(b"\n"), 1):
        try:
            line = decode_text(raw).rstrip("\r")
        except TextError as exc:
            rows.append((number, None, exc.reason))
            continue
        if line.strip() and not line.lstrip().startswith("#"):
            rows.append((number, line, ""))
    lines = [line for _, line, _ in rows if line is not None and "|" in line]  # the others fail either way
    three = bool(lines) and all(line.count("|") == 2 for line in lines)
    detected = fmt == "auto"
    if detected:
        fmt = "ljspeech" if three and all(_normalised_form(*line.split("|")[1:]) for line in lines) else "id-text"
    items: list[TextItem] = []
    fallback = 0
    for number, line, error in rows:
        where = f"{source}:{number}"
        if line is None:
            items.append(TextItem(f"line {number}", None, where, error))
            continue
        if "|" not in line:
            expected = "id|text|normalised (LJSpeech metadata)" if fmt == "ljspeech" else "id|text"
            items.append(TextItem(f"line {number}", None, where, f"expected {expected}, found no '|'"))
            continue
        item_id, _, text = line.partition("|")
        item_id = item_id.strip()
        if fmt == "ljspeech":
            columns = line.split("|")
            if len(columns) != 3:
                reason = f"expected 3 columns id|text|normalised (LJSpeech metadata), found {len(columns)}"
                items.append(TextItem(item_id or f"line {number}", None, where, reason))
                continue
            text = columns[2] if columns[2].strip() else columns[1]
            fallback += not columns[2].strip()
        items.append(TextItem(item_id or f"line {number}", text, where, check_id(item_id)))
    count = f"{len(items)} line{'s' if len(items) != 1 else ''}"
    if fmt == "ljspeech":
        note = f"{source}: {count} read as LJSpeech metadata (id|text|normalised): the third column is spoken"
        if fallback:
            note += f" (the second on {fallback} line{'s' if fallback != 1 else ''} whose third is empty)"
    else:
        note = f"{source}: {count} read as id|text: the text is everything after the first '|'"
        if three and detected:
            note += (
                " (three columns, but the third is not a normalised form of the second: "
                "--texts-format ljspeech speaks the third)"
            )
    return TextSource(items, (note,))


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
                if len(word) > max_chars and words:  # the words before it come first
                    yield " ".join(words)
                    words = []
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
