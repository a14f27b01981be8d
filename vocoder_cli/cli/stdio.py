"""stdin and stdout for commands that read or write ``-``: one behaviour for every command.

- stdin or stdout closed by the shell (``<&-``, ``>&-``): Python sets ``sys.stdin``/``sys.stdout`` to None;
  the command refuses before any work, naming the stream (exit 2).
- The reader of stdout goes away (``| head -c N``, a player that quits): the reader has what it wanted,
  so the command stops quietly with exit 0, as ``resynth --stream`` always has.
- stdout cannot take the bytes (``> /dev/full``, a full disk, EIO): one error line, exit 1.
"""

from __future__ import annotations

import errno
import io
import os
import sys
from typing import BinaryIO

import typer

from vocoder_cli.cli.common import EXIT_PARTIAL_FAILURE, fail


def require_stdout() -> BinaryIO:
    """The binary stdout, or a usage error when the shell closed it."""
    stream = sys.stdout
    if stream is None or not _fd_open(stream):
        raise fail("stdout is closed (was the command run with >&- ?): give an output file instead of -")
    return stream.buffer


def require_stdin() -> BinaryIO:
    """The binary stdin, or a usage error when the shell closed it."""
    stream = sys.stdin
    if stream is None or not _fd_open(stream):
        raise fail("stdin is closed (was the command run with <&- ?): give an input file instead of -")
    return stream.buffer


def read_stdin() -> bytes:
    """All of stdin (for ``-`` as a whole-file input)."""
    try:
        return require_stdin().read()
    except OSError as exc:
        raise fail(f"cannot read stdin: {exc.strerror or exc}", EXIT_PARTIAL_FAILURE) from None


def read_stdin_lines() -> list[str]:
    """All of stdin as lines of text (a list of paths or pairs): UTF-8, with bytes that are not UTF-8 kept
    as ``os.fsdecode`` keeps them in file names; ``\n``, ``\r\n`` and ``\r`` end lines, as in text mode."""
    text = read_stdin().decode("utf-8", "surrogateescape")
    return io.StringIO(text, newline=None).read().split("\n")


def write_stdout(payload: bytes | str) -> None:
    """Write and flush ``payload`` to stdout under the rules above."""
    out = require_stdout()
    try:
        out.write(payload.encode("utf-8") if isinstance(payload, str) else payload)
        out.flush()
    except OSError as exc:
        raise stdout_failed(exc) from None


def stdout_failed(exc: OSError) -> typer.Exit:
    """The Exit for an error writing stdout: quiet exit 0 when the reader left, else one line and exit 1."""
    if isinstance(exc, BrokenPipeError) or exc.errno == errno.EPIPE:
        silence_stdout()
        return typer.Exit(0)
    silence_stdout()  # the interpreter's final flush must not raise the same error again
    return fail(f"cannot write to stdout: {exc.strerror or exc}", EXIT_PARTIAL_FAILURE)


def silence_stdout() -> None:
    """Point stdout's descriptor at /dev/null and drop Python's buffer, so the interpreter's final flush
    cannot raise again (BrokenPipeError, ENOSPC) after the command has decided how to end."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def _fd_open(stream: object) -> bool:
    try:
        os.fstat(stream.fileno())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        # an in-memory stream (tests, CliRunner) has no descriptor but is usable
        return hasattr(stream, "buffer")
    return True
