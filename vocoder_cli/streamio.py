"""Byte streams for `resynth --stream`: a WAV header parsed incrementally, raw PCM, a streaming WAV writer.

Nothing here waits for the end of the input: :class:`WavStreamDecoder` and :class:`PcmDecoder` take
bytes in whatever pieces a pipe delivers (a partial header, half a sample) and return mono float32
samples as soon as whole frames are there; :func:`pump` moves a byte stream through a
:class:`~vocoder_cli.streaming.StreamingResynthesizer` to an output stream, flushing every block.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO

import numpy as np

from vocoder_cli.audio import to_pcm16
from vocoder_cli.errors import AudioError, ConfigError

if TYPE_CHECKING:
    from vocoder_cli.streaming import StreamingResynthesizer

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
    if rate <= 0 or not 1 <= channels <= 64:
        raise ConfigError(f"--raw-format {text!r}: rate must be > 0 and channels 1..64")
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


class WavStreamDecoder:
    """A WAV byte stream in any pieces -> mono float32 samples, as soon as the header is complete.

    RIFF and RF64 headers, PCM / IEEE-float / extensible formats, chunks before ``data`` (LIST, fact,
    JUNK) are skipped. A data size of 0 or 0xFFFFFFFF (or sox's 0x7FFFF000) means "unknown": read to the
    end of the stream; a real size stops decoding there (trailing chunks are ignored).
    """

    def __init__(self, name: str = "<stdin>") -> None:
        self.name = name
        self.header = b""
        self.format: PcmFormat | None = None
        self.pcm: PcmDecoder | None = None
        self.remaining: int | None = None  # data bytes still expected; None = unknown (to the end)
        self.bytes_in = 0

    def decode(self, data: bytes) -> np.ndarray:
        self.bytes_in += len(data)
        if self.pcm is None:
            self.header += data
            data = self._parse_header()
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

    def _parse_header(self) -> bytes:
        """Consume the header once the whole of it is buffered; returns the data bytes after it."""
        head = self.header
        if len(head) < 12:
            return b""
        if head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
            raise AudioError(self.name, "not a WAV stream (no RIFF/WAVE header); for raw PCM give --raw-format "
                                        + RAW_FORMAT_SYNTAX)
        pos, fmt, data64 = 12, None, None
        while True:
            if len(head) < pos + 8:
                return b""
            kind, size = head[pos : pos + 4], struct.unpack("<I", head[pos + 4 : pos + 8])[0]
            body = pos + 8
            if kind == b"data":
                if fmt is None:
                    raise AudioError(self.name, "WAV stream has a data chunk before its fmt chunk")
                declared = data64 if head[:4] == b"RF64" and size == 0xFFFFFFFF else size
                unknown = declared in (None, 0, 0xFFFFFFFF, UNKNOWN_DATA_SIZE)
                self.remaining = None if unknown else declared
                self.format, self.pcm = fmt, PcmDecoder(fmt)
                return head[body:]
            if size > 1 << 20:
                raise AudioError(self.name, f"WAV chunk {kind!r} of {size} bytes before the audio data")
            if len(head) < body + size:
                return b""  # wait for the whole chunk
            chunk = head[body : body + size]
            if kind == b"fmt ":
                fmt = self._parse_fmt(chunk)
            elif kind == b"ds64" and size >= 16:
                data64 = struct.unpack("<Q", chunk[8:16])[0]
            pos = body + size + (size & 1)  # chunks are padded to even sizes

    def _parse_fmt(self, chunk: bytes) -> PcmFormat:
        if len(chunk) < 16:
            raise AudioError(self.name, "WAV fmt chunk is too short")
        tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", chunk[:16])
        if tag == _WAVE_FORMAT_EXTENSIBLE and len(chunk) >= 26:
            tag = struct.unpack("<H", chunk[24:26])[0]  # the first two bytes of the sub-format GUID
        if channels < 1 or rate < 1:
            raise AudioError(self.name, f"WAV header has {channels} channels at {rate} Hz")
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
    so an input that fails early leaves stdout empty. BrokenPipeError (the reader went away)
    propagates to the caller.
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

    while True:
        data = read()
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
    report.leftover_bytes = decoder.leftover
    if resynth is None:
        raise AudioError("<stdin>", "zero-length signal (no samples)" if report.bytes_in else "empty input (0 bytes)")
    tick = time.perf_counter()
    out = resynth.finish()
    report.compute_seconds += time.perf_counter() - tick
    write(out)
    report.wall_seconds = time.perf_counter() - start
    return report

