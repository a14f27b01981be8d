"""Where weights live on disk: the per-user data dir (overridable) and one folder per named weight.

Layout: ``data_dir()/weights/<name>/<file>``; ``data_dir()/registry.json`` holds user registry entries.
Set ``VOCODER_DATA_DIR`` to move everything (CI, shared machines, tests). Files derived from weights or
audio (ONNX exports, pitch tracks) live in :func:`cache_dir` instead (``VOCODER_CACHE_DIR``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import platformdirs

from vocoder_cli.errors import WeightsError

DATA_DIR_ENV = "VOCODER_DATA_DIR"
CACHE_DIR_ENV = "VOCODER_CACHE_DIR"
GENERATOR_FILE = "generator.safetensors"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def data_dir() -> Path:
    """``$VOCODER_DATA_DIR``, else platformdirs' per-user data dir for "vocoder"."""
    override = os.environ.get(DATA_DIR_ENV)
    return Path(override).expanduser() if override else Path(platformdirs.user_data_dir("vocoder"))


def cache_dir() -> Path:
    """Derived files that can always be rebuilt (ONNX exports, pitch tracks): ``$VOCODER_CACHE_DIR``,
    else platformdirs' per-user cache dir for "vocoder". Deleting it only costs time."""
    override = os.environ.get(CACHE_DIR_ENV)
    return Path(override).expanduser() if override else Path(platformdirs.user_cache_dir("vocoder"))


def weights_dir() -> Path:
    return data_dir() / "weights"


def check_name(name: str) -> str:
    """A weights name is one safe path component (letters, digits, ``.``, ``_``, ``-``)."""
    if not _NAME_RE.match(name) or name in (".", ".."):
        raise WeightsError(
            f"invalid weights name {name!r}: use letters, digits, '.', '_' or '-' (at most 100, no slashes)"
        )
    return name


def weight_dir(name: str) -> Path:
    """The cache folder of one named weight (not created)."""
    return weights_dir() / check_name(name)


def cached_file(name: str, file_name: str) -> Path:
    """The cache path of a named weight's file (it may not exist yet)."""
    return weight_dir(name) / file_name


def cached_names() -> list[str]:
    """Names that have a folder with at least one complete (non-``.part``) file in the cache."""
    root = weights_dir()
    if not root.is_dir():
        return []
    names = []
    for folder in sorted(root.iterdir()):
        if folder.is_dir() and any(f.is_file() and not f.name.endswith(".part") for f in folder.iterdir()):
            names.append(folder.name)
    return names


def cached_files(name: str) -> list[Path]:
    """The complete files in a name's cache folder, sorted."""
    folder = weight_dir(name)
    if not folder.is_dir():
        return []
    return sorted(f for f in folder.iterdir() if f.is_file() and not f.name.endswith(".part"))
