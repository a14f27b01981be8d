"""Printing text that came from users (file names, set names, texts, reasons that quote them) safely.

Two traps: Rich parses ``[...]`` as markup (``a[/]b.wav`` raises MarkupError, ``[bold]x`` prints ``x``),
and raw control bytes (ESC, CR, newlines) in a name reach the terminal. So every line built here is a
:class:`rich.text.Text` (never parsed as markup) and every string passes through :func:`visible`.
"""

from __future__ import annotations

from rich.console import Console
from rich.text import Text


def visible(text: object) -> str:
    """``text`` as printable characters on one line: control characters as ``\\n``, ``\\x1b``, ...; bytes
    that were not UTF-8 in a file name (Python's surrogate escapes) as ``\\xff``. Printable text, any
    script, is unchanged."""
    text = str(text)
    if text.isprintable():
        return text
    out = []
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for an undecodable byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(ascii(ch)[1:-1])
    return "".join(out)


def line(*parts: object) -> Text:
    """One line of literal text: each part is a string (or anything with ``str``), or a ``(text, style)``
    pair. Nothing is parsed as markup, and every part is made :func:`visible`."""
    text = Text()
    for part in parts:
        if isinstance(part, tuple):
            text.append(visible(part[0]), style=part[1])
        else:
            text.append(visible(part))
    return text


def say(console: Console, *parts: object, style: str | None = None) -> None:
    """Print :func:`line` ``(*parts)`` on ``console`` (soft-wrapped: a long path is never cut)."""
    console.print(line(*parts), style=style, soft_wrap=True, highlight=False)


def cell(value: object) -> Text:
    """A table cell for a user-provided value (Rich tables parse plain strings as markup)."""
    return Text(visible(value))
