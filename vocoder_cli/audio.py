"""Audio I/O: load anything soundfile reads as mono float32 at a target rate; write atomically.

Every failure is an :class:`AudioError` naming the file, so a batch can report it and go on.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from vocoder_cli.errors import AudioError

_UMASK = os.umask(0o022)
os.umask(_UMASK)

# Extensions we look for when walking folders (anything libsndfile reads).
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".au", ".caf", ".w64"})


def find_audio_files(root: Path, extensions: frozenset[str] = AUDIO_EXTENSIONS) -> list[Path]:
    """All files under ``root`` (recursive) with an audio extension, sorted for determinism."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in extensions)


def wav_truncation(path: str | Path) -> str | None:
    """Why a RIFF/RF64 WAV file is cut short, or None: libsndfile silently returns the frames that are
    there, so a half-copied file would pass as a shorter clip. The data chunk's declared size is
    compared with the bytes the file holds; an "unknown" size (0 or 0xFFFFFFFF, as streaming writers
    leave it) and other formats return None."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
            if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
                return None
            total = os.fstat(handle.fileno()).st_size
            block_align, data64 = 0, None
            while True:
                chunk = handle.read(8)
                if len(chunk) < 8:
                    return None  # no data chunk header at all: libsndfile reports that itself
                kind, size = chunk[:4], int.from_bytes(chunk[4:], "little")
                start = handle.tell()
                if kind == b"fmt " and size >= 14:
                    block_align = int.from_bytes(handle.read(14)[12:14], "little")
                elif kind == b"ds64" and size >= 16:
                    data64 = int.from_bytes(handle.read(16)[8:16], "little")
                elif kind == b"data":
                    declared = data64 if head[:4] == b"RF64" and size == 0xFFFFFFFF else size
                    if declared in (None, 0, 0xFFFFFFFF):
                        return None
                    held = total - start
                    if declared <= held:
                        return None
                    unit = block_align or 1
                    what = "samples" if block_align else "bytes"
                    return (f"truncated (the WAV header promises {declared // unit} {what}, "
                            f"the file holds {held // unit})")
                handle.seek(start + size + (size & 1))  # chunks are padded to even sizes
    except OSError:
        return None  # unreadable files are reported by the decoder


def resample(wav: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Band-limited resampling with soxr (VHQ); identity when the rates agree."""
    if sr_in == sr_out:
        return wav
    out = soxr.resample(np.ascontiguousarray(wav, dtype=np.float32), sr_in, sr_out, quality="VHQ")
    return out.astype(np.float32, copy=False)


def _decode(source: str | Path | BinaryIO, name: str | Path | None) -> tuple[np.ndarray, int]:
    try:
        data, sr = sf.read(source, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise AudioError(name, f"cannot decode audio ({exc})") from exc
    return data, int(sr)


def check_signal(wav: np.ndarray, name: str | Path | None) -> None:
    """Refuse signals no vocoder or metric can use: empty, NaN/inf."""
    if wav.size == 0:
        raise AudioError(name, "zero-length signal (no samples)")
    if not np.all(np.isfinite(wav)):
        bad = int(np.count_nonzero(~np.isfinite(wav)))
        raise AudioError(name, f"signal contains {bad} NaN/inf samples")


def load_audio(
    source: str | Path | BinaryIO,
    target_sr: int | None = None,
    *,
    name: str | Path | None = None,
) -> tuple[np.ndarray, int]:
    """Read a file (or file-like), downmix to mono, check it and resample to ``target_sr``.

    Returns ``(wav, sr)`` with ``wav`` float32 of shape [T]; ``sr`` is ``target_sr`` when given.
    """
    label = name if name is not None else (source if isinstance(source, (str, Path)) else None)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise AudioError(path, "file not found")
        if path.stat().st_size == 0:
            raise AudioError(path, "empty file (0 bytes)")
    data, sr = _decode(source, label)
    wav = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    check_signal(wav, label)
    if target_sr is not None and target_sr != sr:
        wav, sr = resample(wav, sr, target_sr), target_sr
    return np.ascontiguousarray(wav, dtype=np.float32), sr


def load_audio_bytes(data: bytes, target_sr: int | None = None, name: str = "<stdin>") -> tuple[np.ndarray, int]:
    """Like :func:`load_audio` for an in-memory file (e.g. a WAV read from stdin)."""
    if not data:
        raise AudioError(name, "empty input (0 bytes)")
    return load_audio(io.BytesIO(data), target_sr, name=name)


def to_pcm16(wav: np.ndarray) -> np.ndarray:
    """Clip to [-1, 1] and scale by 32767 (never 32768, which wraps +1.0 to -32768)."""
    return np.round(np.clip(wav, -1.0, 1.0) * 32767.0).astype(np.int16)


def encode_wav(wav: np.ndarray, sr: int, subtype: str = "PCM_16") -> bytes:
    """A complete WAV file in memory (for stdout)."""
    buf = io.BytesIO()
    _write(buf, wav, sr, subtype, "WAV")
    return buf.getvalue()


def _write(target: str | BinaryIO, wav: np.ndarray, sr: int, subtype: str, fmt: str) -> None:
    data = to_pcm16(wav) if subtype == "PCM_16" else np.asarray(wav, dtype=np.float32)
    sf.write(target, data, sr, subtype=subtype, format=fmt)


def save_audio(path: str | Path, wav: np.ndarray, sr: int, subtype: str = "PCM_16") -> Path:
    """Write atomically (see :func:`atomic_write_bytes`); the container follows the suffix.

    ``subtype`` is ``PCM_16`` (clipped, scaled by 32767) or ``FLOAT`` (WAV only).
    """
    path = Path(path)
    fmt = {".flac": "FLAC", ".ogg": "OGG"}.get(path.suffix.lower(), "WAV")
    if fmt != "WAV":
        subtype = "PCM_16" if fmt == "FLAC" else "VORBIS"
    buf = io.BytesIO()
    if subtype == "VORBIS":
        sf.write(buf, np.clip(wav, -1.0, 1.0).astype(np.float32), sr, subtype=subtype, format=fmt)
    else:
        _write(buf, wav, sr, subtype, fmt)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_write_bytes(path: str | Path, payload: bytes) -> Path:
    """Write a temporary file in the same folder, then ``os.replace`` it onto ``path``.

    A crash or Ctrl-C never leaves a half-written file under the final name.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
