"""OUT_DIR of a report: built in a private sibling folder and swapped in only when complete.

A re-run must not leave the previous run's figures, audio or scores behind, and must never delete a
file the report did not write. So:

- the new report is built in ``.<name>.building-XXXX`` beside OUT_DIR (same file system: the swap is
  two renames), and removed if the build fails (the previous report stays as it was);
- OUT_DIR may be missing, empty, or a previous report: a folder with the marker file
  ``.vocoder-report`` that lists every file the report wrote. Anything else (a folder with other
  files, a report folder where a user has added a file) is refused before any work, naming the files;
- at the end the old OUT_DIR is renamed aside, the new one renamed in, the old one deleted.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from vocoder_cli.errors import ConfigError

MARKER = ".vocoder-report"
_SHOWN = 5


def _files(root: Path) -> list[str]:
    """Every file and symlink under ``root``, relative, POSIX-style, sorted."""
    out = []
    for folder, dirs, names in os.walk(root):
        base = Path(folder)
        out += [(base / n).relative_to(root).as_posix() for n in names]
        out += [(base / d).relative_to(root).as_posix() for d in dirs if (base / d).is_symlink()]
    return sorted(out)


def _foreign(out_dir: Path) -> list[str]:
    """Files in ``out_dir`` that a previous report did not write (all of them when it has no marker)."""
    files = _files(out_dir)
    try:
        owned = set(json.loads((out_dir / MARKER).read_text(encoding="utf-8"))["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return files
    return [f for f in files if f != MARKER and f not in owned]


def check_out_dir(out_dir: Path, inputs: Sequence[Path] = ()) -> None:
    """Refuse (ConfigError) an OUT_DIR the report could not replace without losing a user's file, and
    input folders inside it (the swap would delete them)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir}: exists and is not a folder")
    root = out_dir.resolve()
    for path in inputs:
        if path.resolve() == root or path.resolve().is_relative_to(root):
            raise ConfigError(f"{path}: an input folder inside OUT_DIR {out_dir}, which the report replaces; "
                              "move it out or write the report elsewhere")
    if not out_dir.is_dir():
        return
    foreign = _foreign(out_dir)
    if not foreign:
        return
    shown = ", ".join(foreign[:_SHOWN]) + (f" and {len(foreign) - _SHOWN} more" if len(foreign) > _SHOWN else "")
    what = ("is a report folder with files the report did not write" if (out_dir / MARKER).exists()
            else f"is not empty and is not a previous report (no {MARKER} marker)")
    raise ConfigError(f"{out_dir}: {what} ({shown}); the report replaces OUT_DIR as a whole, so choose "
                      "another folder, or move those files away")


def staging_dir(out_dir: Path) -> Path:
    """A new, private, empty folder beside ``out_dir`` to build the report in."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building-", dir=out_dir.parent))


def publish(staging: Path, out_dir: Path) -> None:
    """Write the marker (listing every file in ``staging``) and swap ``staging`` in as ``out_dir``.

    Re-checks ``out_dir`` first: if a user put a file there during the build, nothing is replaced and the
    ConfigError names the folder that holds the new report."""
    listing = {"files": [f for f in _files(staging) if f != MARKER]}
    (staging / MARKER).write_text(json.dumps(listing, indent=1) + "\n", encoding="utf-8")
    try:
        check_out_dir(out_dir)
    except ConfigError as exc:
        raise ConfigError(f"{exc}; the new report is in {staging}") from None
    if not out_dir.exists():
        staging.rename(out_dir)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
    out_dir.rename(aside / "report")
    staging.rename(out_dir)
    shutil.rmtree(aside, ignore_errors=True)


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
