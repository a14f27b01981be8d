"""Byte streams for `resynth --stream`: a WAV header parsed incrementally, raw PCM, a streaming WAV writer.

Nothing here waits for the end of the input: :class:`WavStreamDecoder` and :class:`PcmDecoder` take
bytes in whatever pieces a pipe delivers (a partial header, half a sample) and return mono float32
samples as soon as whole frames are there; :func:`pump` moves a byte stream through a
:class:`~vocoder_cli.synthesis.streaming.StreamingResynthesizer` to an output stream, flushing every block.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from vocoder_cli.audio import RATE_RANGE, WavShortfall, rate_problem, to_pcm16
from vocoder_cli.errors import AudioError, ConfigError

if TYPE_CHECKING:
    from vocoder_cli.synthesis.streaming import StreamingResynthesizer

# encoding -> (numpy dtype, scale to [-1, 1), offset): the scale is what libsndfile uses when it reads
# the same samples from a file, so streamed and offline inputs agree exactly.
ENCODINGS: dict[str, tuple[str, float, float]] = {
    "u8": ("u1", 1 / 128, 128.0),
    "s8": ("i1", 1 / 128, 0.0),
    "s16le": ("<i2", 1 / 32768, 0.0),
    "s16be": (">i2", 1 / 32768, 0.0),
    "s32le": ("<i4", 1 / 2**31, 0.0),
    "s32be": (">i4", 1 / 2**31, 0.0),
    "f32le": ("<f4", 1.0, 0.0),
    "f32be": (">f4", 1.0, 0.0),
    "f64le": ("<f8", 1.0, 0.0),
    "f64be": (">f8", 1.0, 0.0),
}
S24 = "s24le"  # 3-byte little-endian samples (WAV 24-bit); decoded by hand
RAW_FORMAT_SYNTAX = "ENCODING:RATE[:CHANNELS], e.g. s16le:22050 or f32le:16000:2"

# The data size a streaming writer puts in its header when the length is unknown. sox writes (and reads
# without a warning) 0x7FFFF000; ffmpeg and aplay read to the end of the stream either way. 0 would make
# sox read nothing; 0xFFFFFFFF makes it warn of a premature end.
UNKNOWN_DATA_SIZE = 0x7FFFF000


@dataclass(frozen=True)
class PcmFormat:
    """Interleaved PCM: ``encoding`` (a key of :data:`ENCODINGS` or ``s24le``), rate in Hz, channels."""

    encoding: str
    rate: int
    channels: int = 1

    @property
    def sample_bytes(self) -> int:
        return 3 if self.encoding == S24 else np.dtype(ENCODINGS[self.encoding][0]).itemsize

    @property
    def frame_bytes(self) -> int:
        return self.sample_bytes * self.channels


def parse_raw_format(text: str) -> PcmFormat:
    """``s16le:22050`` -> PcmFormat (see :data:`RAW_FORMAT_SYNTAX`); a clear ConfigError otherwise."""
    parts = text.strip().lower().split(":")
    known = ", ".join([*ENCODINGS, S24])
    if len(parts) not in (2, 3):
        raise ConfigError(f"--raw-format {text!r}: expected {RAW_FORMAT_SYNTAX}")
    encoding = parts[0]
    if encoding not in ENCODINGS and encoding != S24:
        raise ConfigError(f"--raw-format {text!r}: unknown encoding {encoding!r}; known: {known}")
    try:
        rate, channels = int(parts[1]), int(parts[2]) if len(parts) == 3 else 1
    except ValueError:
        raise ConfigError(f"--raw-format {text!r}: rate and channels must be integers ({RAW_FORMAT_SYNTAX})") from None
    if rate_problem(rate) or not 1 <= channels <= 64:
        raise ConfigError(f"--raw-format {text!r}: rate must be in {RATE_RANGE} and channels 1..64")
    return PcmFormat(encoding, rate, channels)


class PcmDecoder:
    """Bytes in any pieces -> mono float32 samples [n] (channels averaged, as offline loading does).

    ``pending`` keeps the bytes of an incomplete frame until the rest arrives; at the end of the
    stream :attr:`leftover` says how many bytes were left over (input that stopped mid-sample).
    """

    def __init__(self, fmt: PcmFormat) -> None:
        self.fmt = fmt
        self.pending = b""

    def decode(self, data: bytes) -> np.ndarray:
        data = self.pending + data
        usable = len(data) - len(data) % self.fmt.frame_bytes
        self.pending = data[usable:]
        return self._convert(data[:usable])

    @property
    def leftover(self) -> int:
        return len(self.pending)

    def _convert(self, data: bytes) -> np.ndarray:
        if not data:
            return np.zeros(0, dtype=np.float32)
        with np.errstate(over="ignore", invalid="ignore"):  # NaN/inf float input: refused by the resynthesiser
            return self._to_mono(data)

    def _to_mono(self, data: bytes) -> np.ndarray:
        if self.fmt.encoding == S24:
            raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
            ints = (raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)) << 8  # sign-extend via the top byte
            samples = ints.astype(np.float64) / 2**31
        else:
            dtype, scale, offset = ENCODINGS[self.fmt.encoding]
            samples = (np.frombuffer(data, dtype=dtype).astype(np.float64) - offset) * scale
        frames = samples.reshape(-1, self.fmt.channels)
        mono = frames.mean(axis=1) if self.fmt.channels > 1 else frames[:, 0]
        return mono.astype(np.float32)


_WAVE_FORMAT_PCM, _WAVE_FORMAT_FLOAT, _WAVE_FORMAT_EXTENSIBLE = 1, 3, 0xFFFE


def _wav_encoding(tag: int, bits: int, name: str) -> str:
    if tag == _WAVE_FORMAT_PCM and bits in (8, 16, 24, 32):
        return {8: "u8", 16: "s16le", 24: S24, 32: "s32le"}[bits]
    if tag == _WAVE_FORMAT_FLOAT and bits in (32, 64):
        return {32: "f32le", 64: "f64le"}[bits]
    raise AudioError(name, f"unsupported WAV sample format (format tag {tag:#x}, {bits} bits): "
                           f"stream PCM 8/16/24/32-bit or float 32/64-bit, or use --raw-format")


# Everything a streamed WAV may hold before its audio data (RIFF header, fmt, and chunks we skip: LIST, JUNK,
# bext, id3 with cover art...). The parser keeps none of the skipped bytes, so memory does not grow with
# them; the cap bounds the time spent before the first sample and stops a stream of junk.
MAX_HEADER_BYTES = 16 << 20
_FMT_KEEP, _DS64_KEEP = 26, 16  # bytes of the fmt (through the extensible sub-format tag) and ds64 chunks we read


class WavStreamDecoder:
    """A WAV byte stream in any pieces -> mono float32 samples, as soon as the header is complete.

    RIFF and RF64 headers, PCM / IEEE-float / extensible formats, chunks before ``data`` (LIST, fact,
    JUNK) are skipped. A data size of 0 or 0xFFFFFFFF (or sox's 0x7FFFF000) means "unknown": read to the
    end of the stream; a real size stops decoding there (trailing chunks are ignored), and a stream that
    ends before it is reported by :attr:`shortfall`.

    The header is parsed as a state machine over the bytes as they arrive: each byte is looked at once,
    at most :data:`_FMT_KEEP` bytes are buffered (:attr:`buffered`), skipped chunks are counted, not kept,
    and everything before the audio data is capped at :data:`MAX_HEADER_BYTES`.
    """

    def __init__(self, name: str = "<stdin>") -> None:
        self.name = name
        self.format: PcmFormat | None = None
        self.pcm: PcmDecoder | None = None
        self.remaining: int | None = None  # data bytes still expected; None = unknown (to the end)
        self.declared: int | None = None  # the data chunk's size in bytes, when the header gives one
        self.bytes_in = 0
        self.header_bytes = 0  # bytes consumed before the audio data
        self._buf = bytearray()  # the bytes of the current header field (at most _FMT_KEEP)
        self._need = 12  # bytes to collect into _buf before the next step
        self._skip = 0  # bytes of the current chunk still to drop
        self._after_body = 0  # what to drop after a kept chunk body (its rest and pad byte)
        self._kind = b""  # the chunk whose body _buf collects
        self._riff = False  # the 12-byte RIFF/RF64 header has been read
        self._rf64 = False
        self._fmt: PcmFormat | None = None
        self._data64: int | None = None

    def decode(self, data: bytes) -> np.ndarray:
        self.bytes_in += len(data)
        if self.pcm is None:
            data = self._feed_header(data)
            if self.pcm is None:
                return np.zeros(0, dtype=np.float32)
        if self.remaining is not None:
            data, self.remaining = data[: self.remaining], max(0, self.remaining - len(data))
        return self.pcm.decode(data)

    def finish(self) -> None:
        """End of input: an error if no complete header ever arrived."""
        if self.pcm is None:
            if not self.bytes_in:
                raise AudioError(self.name, "empty input (0 bytes)")
            raise AudioError(self.name, f"input ended inside the WAV header ({self.bytes_in} bytes)")

    @property
    def leftover(self) -> int:
        return self.pcm.leftover if self.pcm else 0

    @property
    def buffered(self) -> int:
        """Header bytes held while waiting for the rest of a field (bounded by :data:`_FMT_KEEP`)."""
        return len(self._buf)

    @property
    def shortfall(self) -> WavShortfall | None:
        """After the end of input: how many frames the header's data size promised and how many came,
        or None when the stream held them all (or gave no size)."""
        if self.declared is None or not self.remaining or self.format is None:
            return None
        frame = self.format.frame_bytes
        return WavShortfall(self.declared // frame, (self.declared - self.remaining) // frame, "samples")

    def _feed_header(self, data: bytes) -> bytes:
        """Consume header bytes; returns the bytes after the data chunk's header (b"" until it is reached)."""
        view, pos = memoryview(data), 0
        while self.pcm is None:
            if self._skip:
                step = min(self._skip, len(view) - pos)
                pos, self._skip, self.header_bytes = pos + step, self._skip - step, self.header_bytes + step
                if self._skip:
                    return b""
                continue
            step = min(self._need - len(self._buf), len(view) - pos)
            self._buf += view[pos : pos + step]
            pos, self.header_bytes = pos + step, self.header_bytes + step
            if len(self._buf) < self._need:
                return b""
            field, self._buf = bytes(self._buf), bytearray()
            self._step(field)
        return bytes(view[pos:])

    def _step(self, field: bytes) -> None:
        """One complete header field: the RIFF header, a chunk header, or the kept start of a chunk body."""
        if self._kind:  # the start of a fmt or ds64 body
            if self._kind == b"fmt ":
                self._fmt = self._parse_fmt(field)
            elif len(field) >= 16:
                self._data64 = struct.unpack("<Q", field[8:16])[0]
            self._kind, self._skip, self._need = b"", self._after_body, 8
        elif not self._riff:  # the RIFF header
            if field[:4] not in (b"RIFF", b"RF64") or field[8:12] != b"WAVE":
                raise AudioError(self.name, "not a WAV stream (no RIFF/WAVE header); for raw PCM give --raw-format "
                                            + RAW_FORMAT_SYNTAX)
            self._riff, self._rf64, self._need = True, field[:4] == b"RF64", 8
        else:  # a chunk header
            kind, size = field[:4], struct.unpack("<I", field[4:8])[0]
            if kind == b"data":
                self._start_data(size)
                return
            padded = size + (size & 1)  # chunks are padded to even sizes
            if self.header_bytes + padded > MAX_HEADER_BYTES:
                chunk = kind.decode("latin-1")
                raise AudioError(
                    self.name, f"WAV header too long: chunk {chunk!r} of {size} bytes would put the audio data beyond "
                               f"the first {MAX_HEADER_BYTES} bytes (the most a streamed header may hold)")
            keep = min(size, _FMT_KEEP if kind == b"fmt " else _DS64_KEEP if kind == b"ds64" else 0)
            if keep:
                self._kind, self._need, self._after_body = kind, keep, padded - keep
            else:
                self._skip, self._need = padded, 8

    def _start_data(self, size: int) -> None:
        if self._fmt is None:
            raise AudioError(self.name, "WAV stream has a data chunk before its fmt chunk")
        declared = self._data64 if self._rf64 and size == 0xFFFFFFFF else size
        unknown = declared in (None, 0, 0xFFFFFFFF, UNKNOWN_DATA_SIZE)
        self.declared = None if unknown else declared
        self.remaining = self.declared
        self.format, self.pcm = self._fmt, PcmDecoder(self._fmt)

    def _parse_fmt(self, chunk: bytes) -> PcmFormat:
        if len(chunk) < 16:
            raise AudioError(self.name, "WAV fmt chunk is too short")
        tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", chunk[:16])
        if tag == _WAVE_FORMAT_EXTENSIBLE and len(chunk) >= 26:
            tag = struct.unpack("<H", chunk[24:26])[0]  # the first two bytes of the sub-format GUID
        if problem := rate_problem(rate):
            raise AudioError(self.name, f"the header's {problem}")
        if channels < 1:
            raise AudioError(self.name, f"WAV header has {channels} channels")
        return PcmFormat(_wav_encoding(tag, bits, self.name), rate, channels)


def streaming_wav_header(rate: int, float_output: bool = False) -> bytes:
    """A mono WAV header for a stream of unknown length (data size :data:`UNKNOWN_DATA_SIZE`)."""
    if float_output:  # IEEE float: the 18-byte fmt chunk (cbSize 0) that sox expects for non-PCM
        fmt = struct.pack("<HHIIHHH", _WAVE_FORMAT_FLOAT, 1, rate, rate * 4, 4, 32, 0)
    else:
        fmt = struct.pack("<HHIIHH", _WAVE_FORMAT_PCM, 1, rate, rate * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", UNKNOWN_DATA_SIZE)
    return b"RIFF" + struct.pack("<I", len(body) - 4 + UNKNOWN_DATA_SIZE) + body


def encode_samples(wav: np.ndarray, float_output: bool = False) -> bytes:
    """Mono samples -> little-endian bytes: s16le (clipped, x 32767) or f32le."""
    return np.asarray(wav, dtype="<f4").tobytes() if float_output else to_pcm16(wav).astype("<i2").tobytes()


@dataclass
class PumpReport:
    bytes_in: int = 0
    samples_in: int = 0  # decoded, at the input rate
    samples_out: int = 0
    leftover_bytes: int = 0  # an incomplete sample at the end of the input (ignored)
    shortfall: WavShortfall | None = None  # the input ended before its WAV header's data size
    input_rate: int = 0
    wall_seconds: float = 0.0
    compute_seconds: float = 0.0  # in the vocoder (not waiting for input or writing)
    events: list[str] = field(default_factory=list)


Decoder = WavStreamDecoder | PcmDecoder


def read_available(fd: int, size: int = 1 << 16) -> bytes:
    """Whatever the pipe holds now (at most ``size`` bytes), waiting only until something arrives."""
    return os.read(fd, size)


def pump(
    read: Callable[[], bytes],
    output: BinaryIO,
    decoder: Decoder,
    make_resynth: Callable[[int], "StreamingResynthesizer"],
    *,
    float_output: bool = False,
    wav_header: bool = True,
    out_rate: int,
) -> PumpReport:
    """Read bytes until EOF (``read`` returns b""), vocode, write and flush each ready block.

    ``make_resynth(input_rate)`` builds the resynthesiser once the input rate is known (from the
    WAV header, or at once for raw PCM). The output header is written with the first output bytes,
    so an input that fails early leaves stdout empty. An error reading the input is an AudioError; an
    OSError writing the output (BrokenPipeError: the reader went away; ENOSPC, EIO) propagates to the
    caller, which decides how to end. An input shorter than its WAV header says is still vocoded to its
    end and reported in :attr:`PumpReport.shortfall`.
    """
    report = PumpReport()
    start = time.perf_counter()
    resynth = None
    header_due = wav_header

    def write(samples: np.ndarray) -> None:
        nonlocal header_due
        payload = encode_samples(samples, float_output)
        if header_due:
            payload, header_due = streaming_wav_header(out_rate, float_output) + payload, False
        if payload:
            output.write(payload)
            output.flush()
        report.samples_out += samples.size

    name = decoder.name if isinstance(decoder, WavStreamDecoder) else "<stdin>"
    while True:
        try:
            data = read()
        except OSError as exc:
            raise AudioError(name, f"cannot read the input ({exc.strerror or exc})") from None
        if not data:
            break
        report.bytes_in += len(data)
        samples = decoder.decode(data)
        if resynth is None and samples.size:
            fmt = decoder.format if isinstance(decoder, WavStreamDecoder) else decoder.fmt
            assert fmt is not None
            rate = fmt.rate
            resynth, report.input_rate = make_resynth(rate), rate
        if samples.size and resynth is not None:
            report.samples_in += samples.size
            tick = time.perf_counter()
            out = resynth.push(samples)
            report.compute_seconds += time.perf_counter() - tick
            if out.size:
                write(out)
    if isinstance(decoder, WavStreamDecoder):
        decoder.finish()
        report.shortfall = decoder.shortfall
    report.leftover_bytes = decoder.leftover
    if resynth is None:
        raise AudioError("<stdin>", "zero-length signal (no samples)" if report.bytes_in else "empty input (0 bytes)")
    tick = time.perf_counter()
    out = resynth.finish()
    report.compute_seconds += time.perf_counter() - tick
    write(out)
    report.wall_seconds = time.perf_counter() - start
    return report

