"""User text made printable: one line, control characters and undecodable file-name bytes as escapes.

Used wherever a name, id or text from a user is shown: the terminal (``cli.display``), figures
(``report.figures``), HTML. Printable text in any script is unchanged.
"""

from __future__ import annotations


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
