"""OUT_DIR of a report: built in a private sibling folder and swapped in only when complete.

A re-run must not leave the previous run's figures, audio or scores behind, and must never delete a
file the report did not write. So:

- every check below runs before any work (:func:`check_out_dir`);
- the new report is built in ``.<name>.building-XXXX`` beside OUT_DIR with symlinks resolved (same file
  system: the swap is renames; never inside OUT_DIR, even for ``vocoder report .``), and removed if the
  build fails (the previous report stays as it was);
- OUT_DIR may be missing, empty, or a previous report: a folder with the marker file
  ``.vocoder-report`` that lists every file the report wrote. Anything else (a folder with other
  files, a report folder where a user has added a file) is refused, naming the files;
- OUT_DIR and the input folders must not overlap either way: an input inside OUT_DIR would be deleted
  by the swap, and OUT_DIR inside an input would put the report's own audio copies among the files a
  later run scores;
- at the end a missing OUT_DIR is the staging folder renamed; an existing one keeps its folder (a shell
  standing in it stays valid): its old entries are moved aside, the new ones moved in, the marker last.
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


class StagingKept(ConfigError):
    """The report is complete but OUT_DIR changed during the build: the new report stays where it was
    built (the message names that folder), nothing is replaced."""


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


def _named(path: Path) -> str:
    """``path`` as given, and where it really is when a symlink (or ``..``) makes that differ."""
    real = path.resolve()
    return str(path) if real == Path(os.path.abspath(path)) else f"{path} (= {real})"


def check_overlap(out_dir: Path, inputs: Sequence[Path]) -> None:
    """Refuse (ConfigError, naming both folders) an input folder inside or equal to OUT_DIR, and an
    OUT_DIR inside an input folder; symlinks resolved."""
    root = out_dir.resolve()
    for path in inputs:
        real = path.resolve()
        if real == root or real.is_relative_to(root):
            raise ConfigError(f"the input folder {_named(path)} is inside OUT_DIR {_named(out_dir)}, which the "
                              "report replaces as a whole: move the input out or write the report elsewhere")
        if root.is_relative_to(real):
            raise ConfigError(f"OUT_DIR {_named(out_dir)} is inside the input folder {_named(path)}: the next run "
                              "would score the report's own audio copies with the inputs; write the report "
                              "outside the input folders")


def check_out_dir(out_dir: Path, inputs: Sequence[Path] = ()) -> None:
    """Refuse (ConfigError) an OUT_DIR the report could not replace without losing a user's file or
    mixing its output with its inputs (:func:`check_overlap`)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir}: exists and is not a folder")
    root = out_dir.resolve()
    if root.parent == root:
        raise ConfigError(f"{out_dir}: the report cannot replace a file system root; give a folder inside it")
    check_overlap(out_dir, inputs)
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
    """A new, private, empty folder beside ``out_dir`` (symlinks resolved) to build the report in."""
    root = out_dir.resolve()
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{root.name}.building-", dir=root.parent))
    except OSError as exc:
        raise ConfigError(f"{out_dir}: cannot create the folder the report is built in, beside it in "
                          f"{root.parent} ({exc.strerror or exc})") from None


def publish(staging: Path, out_dir: Path) -> None:
    """Write the marker (listing every file in ``staging``) and swap ``staging`` in as ``out_dir``.

    Re-checks ``out_dir`` first: if a user put a file there during the build, nothing is replaced and
    :class:`StagingKept` names the folder that holds the new report (which is kept)."""
    listing = {"files": [f for f in _files(staging) if f != MARKER]}
    (staging / MARKER).write_text(json.dumps(listing, indent=1) + "\n", encoding="utf-8")
    try:
        check_out_dir(out_dir)
    except ConfigError as exc:
        raise StagingKept(f"{exc}; the new report is kept in {staging}") from None
    root = out_dir.resolve()
    if not root.exists():
        staging.rename(root)
        return
    aside = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
    old = sorted(os.listdir(root), key=lambda name: name != MARKER)  # the old marker leaves first
    for name in old:
        (root / name).rename(aside / name)
    new = sorted(os.listdir(staging), key=lambda name: name == MARKER)  # the new marker arrives last
    for name in new:
        (staging / name).rename(root / name)
    staging.rmdir()
    shutil.rmtree(aside, ignore_errors=True)


def discard(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
