"""Audio I/O: load anything soundfile reads as mono float32 at a target rate; write atomically.

Every failure is an :class:`AudioError` naming the file, so a batch can report it and go on.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import soxr

from vocoder_cli.errors import AudioError

_UMASK = os.umask(0o022)
os.umask(_UMASK)

# The sample rates any input, output or rate option may have. Below 1 kHz nothing of speech is left; 768 kHz
# is the highest rate audio interfaces offer. A rate outside this range comes from a broken or hostile
# header (1 Hz, 0, 4 GHz), and it would drive an allocation: resampling 1 s at 1 Hz to 22.05 kHz asks for
# 22,050x the samples. Inside it, resampling changes a signal's length by at most MAX_RATE_RATIO.
MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 768_000
MAX_RATE_RATIO = MAX_SAMPLE_RATE // MIN_SAMPLE_RATE  # 768
RATE_RANGE = f"{MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz"

# The most samples (frames x channels) a header may claim per byte of its file. libsndfile trusts a FLAC
# header's sample count when it sizes the array it decodes into, so a 10 kB file claiming 2^36 samples asks
# for 256 GiB. Digital silence, the densest real content, is ~340 (mono) to ~550 (stereo) samples per byte
# in FLAC; uncompressed formats hold at most 1 (8-bit).
MAX_SAMPLES_PER_BYTE = 4096

# Extensions we look for when walking folders (anything libsndfile reads).
AUDIO_EXTENSIONS = frozenset({".wav", ".flac", ".ogg", ".opus", ".mp3", ".aiff", ".aif", ".au", ".caf", ".w64"})


def find_audio_files(root: Path, extensions: frozenset[str] = AUDIO_EXTENSIONS) -> list[Path]:
    """All files under ``root`` (recursive) with an audio extension, sorted for determinism."""
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in extensions)


@dataclass(frozen=True)
class WavShortfall:
    """A WAV data chunk that is shorter than its header says: ``declared`` and ``held`` in frames
    (or bytes when the format chunk gives no block size; ``unit`` says which)."""

    declared: int
    held: int
    unit: str

    @property
    def missing(self) -> int:
        return self.declared - self.held


def rate_problem(rate: int) -> str | None:
    """Why ``rate`` (Hz) cannot be used, or None when it lies in MIN_SAMPLE_RATE..MAX_SAMPLE_RATE."""
    if MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        return None
    return f"sample rate {rate} Hz is outside the supported range {RATE_RANGE}"


def header_problem(rate: int, frames: int, channels: int, size: int | None) -> str | None:
    """Why a decoder must not trust these header values, or None: a rate out of range, or more samples
    than ``size`` bytes of file can hold (MAX_SAMPLES_PER_BYTE). Checked before a sample is decoded."""
    if problem := rate_problem(rate):
        return f"the header's {problem}"
    if size is not None and frames * channels > MAX_SAMPLES_PER_BYTE * max(size, 1):
        return (f"the header claims {frames} frames x {channels} channels, more than a {size}-byte file can "
                f"hold (at most {MAX_SAMPLES_PER_BYTE} samples per byte): a corrupt or hostile header")
    return None


def wav_shortfall(source: str | Path | BinaryIO) -> WavShortfall | None:
    """How much of a RIFF/RF64 WAV file is missing, or None when nothing is (or it is not a WAV).

    libsndfile clamps the data chunk to the bytes present and reports only those frames (``sf.info``
    included), so a half-copied file passes as a shorter clip; only the header's own size field tells.
    An "unknown" size (0 or 0xFFFFFFFF, as streaming writers leave it) returns None. A file-like
    ``source`` is read from its start and rewound.
    """
    return _scan_source(source)[1]


def wav_rate(source: str | Path | BinaryIO) -> int | None:
    """The rate in a RIFF/RF64 WAV's fmt chunk, or None (not a WAV, no fmt chunk). Read by hand, so it
    names the rate of a file libsndfile refuses to open (0 Hz, 4 GHz: "SF_INFO struct incomplete")."""
    return _scan_source(source)[0]


def _scan_source(source: str | Path | BinaryIO) -> tuple[int | None, WavShortfall | None]:
    try:
        if isinstance(source, (str, Path)):
            with open(source, "rb") as handle:
                return _scan_wav(handle, os.fstat(handle.fileno()).st_size)
        if not source.seekable():
            return None, None
        origin = source.tell()
        try:
            total = source.seek(0, io.SEEK_END)
            source.seek(0)
            return _scan_wav(source, total)
        finally:
            source.seek(origin)
    except (OSError, ValueError):
        return None, None  # unreadable files are reported by the decoder


def _scan_wav(handle: BinaryIO, total: int) -> tuple[int | None, WavShortfall | None]:
    """(the fmt chunk's rate, the data chunk's shortfall); one seek per chunk, linear in the chunk count."""
    head = handle.read(12)
    if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
        return None, None
    rate, block_align, data64 = None, 0, None
    while True:
        chunk = handle.read(8)
        if len(chunk) < 8:
            return rate, None  # no data chunk header at all: libsndfile reports that itself
        kind, size = chunk[:4], int.from_bytes(chunk[4:], "little")
        start = handle.tell()
        if kind == b"fmt " and size >= 8:
            fmt = handle.read(min(size, 16))
            rate = int.from_bytes(fmt[4:8], "little") if len(fmt) >= 8 else None
            block_align = int.from_bytes(fmt[12:14], "little") if len(fmt) >= 14 else 0
        elif kind == b"ds64" and size >= 16:
            data64 = int.from_bytes(handle.read(16)[8:16], "little")
        elif kind == b"data":
            declared = data64 if head[:4] == b"RF64" and size == 0xFFFFFFFF else size
            if declared in (None, 0, 0xFFFFFFFF):
                return rate, None
            held = total - start
            if declared <= held:
                return rate, None
            unit = block_align or 1
            if declared // unit <= held // unit:  # what is missing is less than one whole frame
                return rate, None
            return rate, WavShortfall(declared // unit, held // unit, "samples" if block_align else "bytes")
        handle.seek(start + size + (size & 1))  # chunks are padded to even sizes


def wav_truncation(path: str | Path) -> str | None:
    """Why a RIFF/RF64 WAV file is cut short (see :func:`wav_shortfall`), or None."""
    short = wav_shortfall(path)
    if short is None:
        return None
    return f"truncated (the WAV header promises {short.declared} {short.unit}, the file holds {short.held})"


def truncation_warning(short: WavShortfall, sr: int, holder: str = "file") -> str:
    """The per-input warning for a WAV that is shorter than its header (the output covers what is there);
    ``holder`` names what held the samples: the file, or the stream for ``resynth --stream``."""
    seconds = f", {short.missing / sr:.3f} s" if short.unit == "samples" else ""
    return (f"truncated WAV: the header promises {short.declared} {short.unit}, the {holder} holds {short.held} "
            f"({short.missing} {short.unit} missing{seconds}); vocoded what is there")


def peak_warning(data: np.ndarray) -> str | None:
    """A warning when decoded samples exceed full scale (only float files can), else None.

    ``data`` is [T, channels] as decoded, before any downmix: what the file holds."""
    peak = float(np.max(np.abs(data))) if data.size else 0.0
    if not peak > 1.0:
        return None
    over = int(np.count_nonzero(np.abs(data) > 1.0))
    return (f"samples exceed full scale: peak {peak:.3f} ({20 * np.log10(peak):+.1f} dBFS), "
            f"{over} samples above 1.0; vocoded as they are (no clipping or normalising)")


def resample(wav: np.ndarray, sr_in: int, sr_out: int, *, name: str | Path = "<signal>") -> np.ndarray:
    """Band-limited resampling with soxr (VHQ) of ``wav`` [T]; identity when the rates agree.

    Both rates must lie in MIN_SAMPLE_RATE..MAX_SAMPLE_RATE, so the output holds at most
    ``MAX_RATE_RATIO * T + 1`` samples (768 per input sample, 3 KiB of float32): an allocation bounded by
    the input's real size, never by a header. Anything else raises :class:`AudioError` naming ``name``
    before soxr allocates.
    """
    if sr_in == sr_out:
        return wav
    for rate in (sr_in, sr_out):
        if problem := rate_problem(rate):
            raise AudioError(name, f"cannot resample {sr_in} Hz -> {sr_out} Hz: {problem}")
    size = int(np.size(wav))
    if math.ceil(size * sr_out / sr_in) > MAX_RATE_RATIO * size + 1:  # unreachable inside the range
        raise AudioError(name, f"resampling {size} samples {sr_in} Hz -> {sr_out} Hz exceeds the bound")
    out = soxr.resample(np.ascontiguousarray(wav, dtype=np.float32), sr_in, sr_out, quality="VHQ")
    return out.astype(np.float32, copy=False)


def _source_size(source: str | Path | BinaryIO) -> int | None:
    """The bytes a file (or seekable file-like, from its position) holds; None when unknown."""
    try:
        if isinstance(source, (str, Path)):
            return os.stat(source).st_size
        if source.seekable():
            origin = source.tell()
            end = source.seek(0, io.SEEK_END)
            source.seek(origin)
            return end - origin
    except (OSError, ValueError):
        pass
    return None


def _decode(source: str | Path | BinaryIO, name: str | Path | None) -> tuple[np.ndarray, int]:
    """Samples [T, channels] as float32 and the rate; the header is checked (:func:`header_problem`)
    before anything is decoded, and running out of memory on one file is that file's error."""
    size = _source_size(source)
    try:
        with sf.SoundFile(source) as handle:
            if problem := header_problem(handle.samplerate, handle.frames, handle.channels, size):
                raise AudioError(name, problem)
            data = handle.read(dtype="float32", always_2d=True)
            sr = handle.samplerate
    except MemoryError:
        raise AudioError(name, "out of memory decoding this file") from None
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        rate = wav_rate(source)  # libsndfile refuses 0 Hz or > 2^31 Hz without saying why
        if rate is not None and (problem := rate_problem(rate)):
            raise AudioError(name, f"the header's {problem}") from None
        raise AudioError(name, f"cannot decode audio ({exc})") from exc
    return data, int(sr)


def check_signal(wav: np.ndarray, name: str | Path | None) -> None:
    """Refuse signals no vocoder or metric can use: empty, NaN/inf."""
    if wav.size == 0:
        raise AudioError(name, "zero-length signal (no samples)")
    if not np.all(np.isfinite(wav)):
        bad = int(np.count_nonzero(~np.isfinite(wav)))
        raise AudioError(name, f"signal contains {bad} NaN/inf samples")


@dataclass(frozen=True)
class LoadedAudio:
    """A decoded input: ``wav`` float32 [T] mono at ``sr``, and what was wrong with the file but did not
    stop it from being used (samples above full scale, a WAV shorter than its header), one line each."""

    wav: np.ndarray
    sr: int
    warnings: tuple[str, ...] = ()


def read_audio(
    source: str | Path | BinaryIO,
    target_sr: int | None = None,
    *,
    name: str | Path | None = None,
) -> LoadedAudio:
    """Read a file (or seekable file-like), downmix to mono, check it and resample to ``target_sr``.

    Unusable input raises :class:`AudioError`; usable input with a problem comes back with warnings.
    The header's rate (MIN_SAMPLE_RATE..MAX_SAMPLE_RATE) and sample count are checked before decoding, and
    running out of memory on one file is that file's AudioError, so a batch goes on.
    """
    label = name if name is not None else (source if isinstance(source, (str, Path)) else None)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise AudioError(path, "file not found")
        if path.stat().st_size == 0:
            raise AudioError(path, "empty file (0 bytes)")
    short = wav_shortfall(source)
    data, sr = _decode(source, label)
    try:
        return _to_mono_at(data, sr, target_sr, short, label)
    except MemoryError:
        raise AudioError(label, f"out of memory processing {data.shape[0]} frames at {sr} Hz") from None


def _to_mono_at(
    data: np.ndarray, sr: int, target_sr: int | None, short: WavShortfall | None, label: str | Path | None
) -> LoadedAudio:
    """Decoded samples [T, channels] -> checked mono at ``target_sr`` with the input's warnings."""
    wav = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    check_signal(wav, label)
    warnings = [w for w in (peak_warning(data),) if w]
    if short is not None:
        warnings.append(truncation_warning(short, sr))
    if target_sr is not None and target_sr != sr:
        wav, sr = resample(wav, sr, target_sr, name=label if label is not None else "<stdin>"), target_sr
    return LoadedAudio(np.ascontiguousarray(wav, dtype=np.float32), sr, tuple(warnings))


def load_audio(
    source: str | Path | BinaryIO,
    target_sr: int | None = None,
    *,
    name: str | Path | None = None,
) -> tuple[np.ndarray, int]:
    """:func:`read_audio` without the warnings: ``(wav, sr)``, ``wav`` float32 [T], ``sr`` = ``target_sr``
    when given."""
    loaded = read_audio(source, target_sr, name=name)
    return loaded.wav, loaded.sr


def read_audio_bytes(data: bytes, target_sr: int | None = None, name: str = "<stdin>") -> LoadedAudio:
    """Like :func:`read_audio` for an in-memory file (e.g. a WAV read from stdin)."""
    if not data:
        raise AudioError(name, "empty input (0 bytes)")
    return read_audio(io.BytesIO(data), target_sr, name=name)


def load_audio_bytes(data: bytes, target_sr: int | None = None, name: str = "<stdin>") -> tuple[np.ndarray, int]:
    """Like :func:`load_audio` for an in-memory file (e.g. a WAV read from stdin)."""
    loaded = read_audio_bytes(data, target_sr, name)
    return loaded.wav, loaded.sr


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


@dataclass(frozen=True)
class Container:
    """What an output suffix names and what libsndfile can put in it (measured with libsndfile 1.2.2)."""

    format: str  # libsndfile's major format
    subtype: str  # what a default (16-bit) output writes: PCM_16, or the codec of a lossy format
    float_subtype: str | None  # what --float writes; None: the container holds no 32-bit float samples
    rates: tuple[int, ...] = ()  # the only rates the codec takes (empty: any rate up to max_rate)
    max_rate: int | None = None  # FLAC's header field; libvorbis crashes the process above 200 kHz
    description: str = ""
    lossy: bool = False

    @property
    def available(self) -> bool:
        """Whether this soundfile/libsndfile writes it (MP3 and Opus need libsndfile >= 1.1 and 1.0.29)."""
        try:
            return self.subtype in sf.available_subtypes(self.format)
        except (KeyError, ValueError, TypeError):
            return False


CONTAINERS: dict[str, Container] = {
    ".wav": Container("WAV", "PCM_16", "FLOAT", description="WAV"),
    ".flac": Container("FLAC", "PCM_16", None, max_rate=655350, description="FLAC"),
    ".ogg": Container("OGG", "VORBIS", None, max_rate=200000, description="Ogg Vorbis", lossy=True),
    ".opus": Container(
        "OGG", "OPUS", None, rates=(8000, 12000, 16000, 24000, 48000), description="Ogg Opus", lossy=True
    ),
    ".mp3": Container(
        "MP3", "MPEG_LAYER_III", None, rates=(8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000),
        description="MP3", lossy=True,
    ),
    ".aiff": Container("AIFF", "PCM_16", "FLOAT", description="AIFF"),
    ".aif": Container("AIFF", "PCM_16", "FLOAT", description="AIFF"),
    ".au": Container("AU", "PCM_16", "FLOAT", description="AU"),
    ".caf": Container("CAF", "PCM_16", "FLOAT", description="CAF"),
    ".w64": Container("W64", "PCM_16", "FLOAT", description="Wave64"),
}


def writable_suffixes() -> tuple[str, ...]:
    """The output suffixes this soundfile/libsndfile can write, in a stable order."""
    return tuple(suffix for suffix, container in CONTAINERS.items() if container.available)


def output_problem(path: str | Path, sr: int | None, subtype: str = "PCM_16") -> str | None:
    """Why audio at ``sr`` Hz (``subtype`` PCM_16, or FLOAT for ``--float``) cannot be written to ``path``
    in the container its suffix names, or None when it can. Callers ask before any work is done;
    ``sr`` None checks what does not depend on the rate."""
    suffix = Path(path).suffix.lower()
    container = CONTAINERS.get(suffix)
    if container is None:
        what = f"{suffix} is not an audio format this tool writes" if suffix else "no suffix names the audio format"
        return f"{what}: give an audio file name such as out.wav ({', '.join(writable_suffixes())})"
    if not container.available:
        return (
            f"this libsndfile ({sf.__libsndfile_version__}) cannot write {container.description} ({suffix}); "
            f"write one of {', '.join(writable_suffixes())}"
        )
    if subtype not in ("PCM_16", "FLOAT"):
        return f"unknown sample format {subtype!r} (PCM_16 or FLOAT)"
    if subtype == "FLOAT" and container.float_subtype is None:
        kind = "is a lossy codec" if container.lossy else "holds 16-bit samples here"
        return f"{container.description} ({suffix}) {kind}, not 32-bit float: drop --float, or write .wav"
    if sr is None:
        return None
    if container.rates and sr not in container.rates:
        rates = ", ".join(str(r) for r in container.rates)
        return f"{container.description} ({suffix}) takes only {rates} Hz, not {sr} Hz: choose one with --out-sr"
    if container.max_rate is not None and sr > container.max_rate:
        return f"{container.description} ({suffix}) takes at most {container.max_rate} Hz, not {sr} Hz"
    return None


def save_audio(path: str | Path, wav: np.ndarray, sr: int, subtype: str = "PCM_16") -> Path:
    """Write atomically (see :func:`atomic_write_bytes`) in the container the suffix names.

    ``subtype`` is ``PCM_16`` (clipped, scaled by 32767; a lossy codec gets the clipped float samples)
    or ``FLOAT`` (32-bit float; WAV, AIFF, AU, CAF, Wave64). What the container cannot hold raises
    :class:`AudioError` before anything is written (:func:`output_problem`, which callers check first).
    """
    path = Path(path)
    problem = output_problem(path, sr, subtype)
    if problem is not None:
        raise AudioError(path, problem)
    container = CONTAINERS[path.suffix.lower()]
    buf = io.BytesIO()
    if subtype == "FLOAT":
        sf.write(buf, np.asarray(wav, dtype=np.float32), sr, subtype=container.float_subtype, format=container.format)
    elif container.subtype == "PCM_16":
        sf.write(buf, to_pcm16(wav), sr, subtype="PCM_16", format=container.format)
    else:
        clipped = np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0)
        sf.write(buf, clipped, sr, subtype=container.subtype, format=container.format)
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
