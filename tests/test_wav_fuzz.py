"""Property-based fuzzing of the WAV readers (hypothesis, bounded to a few seconds): ``audio.wav_shortfall``,
``audio.read_audio`` and ``streamio.WavStreamDecoder`` on arbitrary bytes and on mutated real WAV files,
the stream fed in random piece sizes. Properties: no exception but AudioError; memory bounded by the input
(the stream buffers at most one 26-byte header field, the offline reader returns at most 4096 samples per
input byte); on valid files, the stream and the offline reader give the same samples."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vocoder_cli.audio import (
    MAX_SAMPLE_RATE,
    MAX_SAMPLES_PER_BYTE,
    MIN_SAMPLE_RATE,
    read_audio,
    wav_shortfall,
)
from vocoder_cli.errors import AudioError
from vocoder_cli.synthesis.streamio import WavStreamDecoder

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
SUBTYPES = ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"]


def real_wav(subtype: str, channels: int, frames: int, rate: int, seed: int) -> bytes:
    """A WAV as libsndfile writes it (RIFF, fmt, data; WAVE_FORMAT_EXTENSIBLE for > 2 channels)."""
    rng = np.random.default_rng(seed)
    data = (0.8 * rng.uniform(-1, 1, (frames, channels))).astype(np.float32)
    buf = io.BytesIO()
    sf.write(buf, data, rate, subtype=subtype, format="WAV")
    return buf.getvalue()


def with_chunks(wav: bytes, chunks: list[tuple[bytes, bytes]]) -> bytes:
    """``wav`` (a plain RIFF/fmt/data file) with extra chunks between fmt and data, sizes fixed up: still valid."""
    fmt_end = 12 + 8 + struct.unpack("<I", wav[16:20])[0]
    extra = b"".join(kind + struct.pack("<I", len(body)) + body + b"\0" * (len(body) & 1) for kind, body in chunks)
    body = wav[8:fmt_end] + extra + wav[fmt_end:]
    return b"RIFF" + struct.pack("<I", len(body)) + body


@st.composite
def valid_wavs(draw: st.DrawFn) -> bytes:
    wav = real_wav(
        draw(st.sampled_from(SUBTYPES)),
        draw(st.integers(1, 3)),
        draw(st.integers(1, 600)),
        draw(st.sampled_from([MIN_SAMPLE_RATE, 8000, 16000, 22050, 44100, MAX_SAMPLE_RATE])),
        draw(st.integers(0, 2**16)),
    )
    kinds = st.sampled_from([b"LIST", b"JUNK", b"bext", b"id3 ", b"PAD ", b"cue "])
    chunks = draw(st.lists(st.tuples(kinds, st.binary(max_size=40)), max_size=6))
    return with_chunks(wav, chunks) if chunks else wav


@st.composite
def mutated_wavs(draw: st.DrawFn) -> bytes:
    """A valid WAV with its header bytes overwritten, the file cut, or bytes inserted in the header."""
    data = bytearray(draw(valid_wavs()))
    head = min(len(data), 120)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["byte", "word", "cut", "insert"]))
        pos = draw(st.integers(0, head - 1))
        if kind == "byte":
            data[pos] = draw(st.integers(0, 255))
        elif kind == "word":  # a size or rate field: the values that break readers
            value = draw(st.sampled_from([0, 1, 2, 0x7FFFF000, 0xFFFFFFFF, 2**31, 999, 768_001, 4_000_000_000]))
            data[pos : pos + 4] = value.to_bytes(4, "little")
        elif kind == "cut":
            del data[draw(st.integers(0, len(data))) :]
            head = max(1, min(head, len(data)))
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        if not data:
            break
    return bytes(data)


def pieces(data: bytes, sizes: list[int]) -> list[bytes]:
    out, pos, i = [], 0, 0
    while pos < len(data):
        step = sizes[i % len(sizes)]
        out.append(data[pos : pos + step])
        pos, i = pos + step, i + 1
    return out


def stream(data: bytes, sizes: list[int]) -> tuple[np.ndarray | None, WavStreamDecoder]:
    """Samples from the stream decoder (None when it refused the input with an AudioError); checks the bound
    on what it holds after every piece."""
    decoder = WavStreamDecoder()
    out = []
    try:
        for piece in pieces(data, sizes):
            out.append(decoder.decode(piece))
            assert decoder.buffered <= 26
            assert decoder.pcm is None or decoder.pcm.leftover < decoder.pcm.fmt.frame_bytes
        decoder.finish()
    except AudioError:
        return None, decoder
    samples = np.concatenate(out) if out else np.zeros(0, np.float32)
    assert samples.dtype == np.float32 and samples.size <= len(data)
    return samples, decoder


def offline(data: bytes) -> np.ndarray | None:
    try:
        loaded = read_audio(io.BytesIO(data), name="fuzz.wav")
    except AudioError:
        return None
    assert loaded.wav.dtype == np.float32 and loaded.wav.ndim == 1 and np.isfinite(loaded.wav).all()
    assert MIN_SAMPLE_RATE <= loaded.sr <= MAX_SAMPLE_RATE
    assert loaded.wav.size <= MAX_SAMPLES_PER_BYTE * len(data)
    return loaded.wav


def check_shortfall(data: bytes) -> None:
    short = wav_shortfall(io.BytesIO(data))
    assert short is None or (short.declared > short.held >= 0 and short.unit in ("samples", "bytes"))


SIZES = st.lists(st.integers(1, 300), min_size=1, max_size=8)


@FUZZ
@given(data=valid_wavs(), sizes=SIZES)
def test_valid_files_stream_and_offline_agree(data: bytes, sizes: list[int]) -> None:
    check_shortfall(data)
    expected = offline(data)
    assert expected is not None
    got, decoder = stream(data, sizes)
    assert got is not None and decoder.shortfall is None and decoder.leftover == 0
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-7)


@FUZZ
@given(data=mutated_wavs(), sizes=SIZES)
def test_mutated_headers_never_raise_anything_but_audio_error(data: bytes, sizes: list[int]) -> None:
    check_shortfall(data)
    offline(data)
    got, decoder = stream(data, sizes)
    if got is not None and decoder.shortfall is not None:  # a cut stream: what it says is what came
        short = decoder.shortfall
        assert short.held < short.declared and got.size == short.held


@FUZZ
@given(data=st.binary(max_size=2048), sizes=SIZES)
def test_arbitrary_bytes_never_raise_anything_but_audio_error(data: bytes, sizes: list[int]) -> None:
    check_shortfall(data)
    offline(data)
    stream(data, sizes)


@FUZZ
@given(body=st.binary(max_size=512), sizes=SIZES)
def test_arbitrary_bytes_behind_a_riff_header(body: bytes, sizes: list[int]) -> None:
    """Random chunks after ``RIFF....WAVE`` reach the chunk walkers (plain random bytes rarely do)."""
    data = b"RIFF" + struct.pack("<I", len(body) + 4) + b"WAVE" + body
    check_shortfall(data)
    offline(data)
    stream(data, sizes)


@pytest.mark.parametrize("subtype", SUBTYPES)
def test_each_subtype_agrees_byte_by_byte(subtype: str) -> None:
    """The deterministic core of the first property: every sample format, one byte at a time."""
    data = with_chunks(real_wav(subtype, 2, 300, 16000, 1), [(b"LIST", b"odd")])
    got, _ = stream(data, [1])
    expected = offline(data)
    assert got is not None and expected is not None and got.size == 300
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-7)


def test_a_data_chunk_short_by_less_than_a_frame_is_not_truncated() -> None:
    """Found by the fuzz above: a 16-bit data chunk declared as 1 byte with none present is short by no whole
    sample, so there is no shortfall to report (it was reported as 0 of 0 samples missing)."""
    import io

    from vocoder_cli.audio import wav_shortfall

    head = (b"RIFF.\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\xe8\x03\x00\x00\xe8\x03\x00\x00\x02\x00"
            b"\x08\x00LIST\x00\x00\x00\x00data\x01\x00\x00\x00")
    assert wav_shortfall(io.BytesIO(head)) is None
    assert wav_shortfall(io.BytesIO(head[:-4] + (4).to_bytes(4, "little") + b"\x00\x00")).missing == 1
