"""Resumable, checksum-verified downloads (weights, LJSpeech), with a progress callback.

A partial download lives at ``DEST.part`` and is continued with an HTTP Range request; the file
gets its final name only after its sha256 matched. With a known size (``max_bytes``) a server that
announces or sends more is stopped there, so a wrong or hostile source cannot fill the disk.
``file://`` URLs work too (offline mirrors, tests).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from vocoder_cli.errors import DownloadError

ProgressCallback = Callable[[int, int | None], None]  # (bytes done, total bytes or None)
CHUNK = 1 << 20


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _open(url: str, start: int, timeout: float) -> tuple[object, int | None, bool]:
    """Open ``url`` from byte ``start``; returns (response, total size, whether it resumed)."""
    request = urllib.request.Request(url, headers={"User-Agent": "vocoder"})
    if start and url.startswith(("http://", "https://")):
        request.add_header("Range", f"bytes={start}-")
    response = urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (URL comes from the registry or the user)
    status = getattr(response, "status", 200)
    length = response.headers.get("Content-Length")
    if status == 206:
        total = int(response.headers.get("Content-Range", "").rpartition("/")[2] or 0) or None
        return response, total, True
    return response, int(length) if length else None, False


def _finish(part: Path, dest: Path, url: str, sha256: str | None) -> Path:
    """Verify the complete ``part`` and give it its final name (a bad one is deleted)."""
    if sha256 is not None:
        actual = sha256_of(part)
        if actual != sha256.lower():
            part.unlink(missing_ok=True)
            raise DownloadError(f"checksum mismatch for {url}: expected sha256 {sha256.lower()}, got {actual}")
    os.replace(part, dest)
    return dest


def download_file(
    url: str,
    dest: str | Path,
    sha256: str | None = None,
    *,
    progress: ProgressCallback | None = None,
    timeout: float = 60.0,
    max_bytes: int | None = None,
) -> Path:
    """Fetch ``url`` to ``dest``, resuming ``dest.part``; verify ``sha256`` before the final rename.

    A checksum mismatch deletes the partial file (a resume cannot fix corrupt bytes) and raises.
    An existing ``dest`` with the right checksum (or any existing ``dest`` when ``sha256`` is None)
    is returned without network access. ``max_bytes`` (the file's known size): a larger Content-Length
    is refused before reading, and the transfer stops one byte past it; the partial file is deleted.
    """
    dest = Path(dest)
    if dest.exists() and (sha256 is None or sha256_of(dest) == sha256.lower()):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    start = part.stat().st_size if part.exists() else 0
    if max_bytes is not None and start > max_bytes:  # a partial file longer than the whole: start over
        part.unlink()
        start = 0
    try:
        response, total, resumed = _open(url, start, timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # the .part is already complete: the server has nothing after it
            return _finish(part, dest, url, sha256)
        raise DownloadError(f"cannot download {url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        raise DownloadError(f"cannot download {url}: {exc}") from exc
    if not resumed:
        start = 0
    done = start
    if max_bytes is not None and total is not None and total > max_bytes:
        response.close()  # type: ignore[attr-defined]
        part.unlink(missing_ok=True)
        raise DownloadError(f"{url} announces {total} bytes, more than the {max_bytes} expected; refused")
    step = (lambda: CHUNK) if max_bytes is None else (lambda: min(CHUNK, max_bytes - done + 1))  # 1 byte past tells
    try:
        with response, open(part, "ab" if resumed else "wb") as out:  # type: ignore[attr-defined]
            if progress:
                progress(done, total)
            while block := response.read(step()):  # type: ignore[attr-defined]
                if max_bytes is not None and done + len(block) > max_bytes:
                    raise DownloadError(f"{url} sent more than the {max_bytes} bytes expected; stopped there")
                out.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
    except DownloadError:
        part.unlink(missing_ok=True)  # more than the file can be: nothing of it is worth resuming
        raise
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"download of {url} interrupted at {done} bytes ({exc}); run again to resume") from exc
    if total is not None and done < total:
        raise DownloadError(f"download of {url} stopped at {done} of {total} bytes; run again to resume")
    return _finish(part, dest, url, sha256)


def copy_verified(source: str | Path, dest: str | Path, sha256: str | None = None) -> Path:
    """Copy a local file into place with the same verify-then-rename guarantee."""
    return download_file(Path(source).resolve().as_uri(), dest, sha256)


__all__ = ["copy_verified", "download_file", "sha256_of"]
