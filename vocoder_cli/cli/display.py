"""Printing text that came from users (file names, set names, texts, reasons that quote them) safely.

Two traps: Rich parses ``[...]`` as markup (``a[/]b.wav`` raises MarkupError, ``[bold]x`` prints ``x``),
and raw control bytes (ESC, CR, newlines) in a name reach the terminal. So every line built here is a
:class:`rich.text.Text` (never parsed as markup) and every string passes through :func:`visible`.
"""

from __future__ import annotations

from rich.console import Console
from rich.text import Text

from vocoder_cli.printable import visible

__all__ = ["cell", "line", "say", "visible"]


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
