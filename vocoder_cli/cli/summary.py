"""The closing lines of batch commands (`resynth`, `tts`): per-item rows and one summary line, worded the
same way everywhere (counts with plural agreement, no real-time factor when nothing was vocoded)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console

from vocoder_cli.cli.display import say


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 file``, ``2 files``, ``0 files`` (``plural`` for nouns that do not just take an s)."""
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"


def row(console: Console, kind: str, style: str, *parts: object) -> None:
    """One per-item line: ``kind`` (``failed``, ``refused``, ...) in ``style``, then literal parts."""
    say(console, (kind, style), " ", *parts)


def outcome_parts(
    noun: str, *, written: int, skipped: int = 0, refused: int = 0, failed: int = 0, warned: int = 0
) -> list[object]:
    """``3 files written, 1 skipped, 2 refused, 1 failed`` as :func:`say` parts (zero counts left out, except
    written)."""
    parts: list[object] = [f"{counted(written, noun)} written"]
    if skipped:
        parts.append(f", {skipped} skipped (already there)")
    if warned:
        parts += [", ", (f"{warned} with warnings", "yellow")]
    if refused:
        parts += [", ", (f"{refused} refused (already there)", "red")]
    if failed:
        parts += [", ", (f"{failed} failed", "red")]
    return parts


def timing(
    audio_seconds: float, wall_seconds: float, rtf: float | None, stages: Sequence[tuple[str, float | None]] = ()
) -> str:
    """``3.1 s audio in 2.0 s | RTF 0.645`` (with per-stage factors), or ``nothing vocoded``."""
    if rtf is None:
        return "nothing vocoded"
    detail = f" ({', '.join(f'{name} {value:.3f}' for name, value in stages if value is not None)})" if stages else ""
    return f"{audio_seconds:.1f} s audio in {wall_seconds:.1f} s | RTF {rtf:.3f}{detail}"
