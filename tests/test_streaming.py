"""Streaming resynthesis: exact mels and audio against offline, byte-stream decoding, the real CLI in pipes."""

from __future__ import annotations

import io
import os
import re
import select
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from tests.helpers import tiny_generator, tiny_weights, tone
from vocoder_cli.audio import resample
from vocoder_cli.errors import AudioError, ConfigError
from vocoder_cli.mel import MelConfig
from vocoder_cli.models import Generator, generator_preset
from vocoder_cli.synthesis.engine import EngineOptions, Synthesizer
from vocoder_cli.synthesis.layout import ChannelsLastGenerator
from vocoder_cli.synthesis.stream_generator import CachedStreamingGenerator
from vocoder_cli.synthesis.streaming import (
    StreamingGenerator,
    StreamingMel,
    StreamingResynthesizer,
    StreamOptions,
)
from vocoder_cli.synthesis.streamio import (
    UNKNOWN_DATA_SIZE,
    PcmDecoder,
    WavStreamDecoder,
    parse_raw_format,
    streaming_wav_header,
)
from vocoder_cli.synthesis.vocoder import Vocoder, receptive_field_frames

REPO = Path(__file__).resolve().parents[1]
SR = 22050


@pytest.fixture(scope="module", autouse=True)
def _one_thread():  # type: ignore[no-untyped-def]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def synth_for(gen: Generator) -> Synthesizer:
    return Synthesizer(Vocoder(gen, MelConfig(), "test", receptive_field_frames(gen.cfg) + 2))


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """A tone plus noise bursts: broadband, so every mel bin and every look-ahead matters."""
    rng = np.random.default_rng(seed)
    x = tone(seconds, SR, 180.0) + 0.1 * rng.standard_normal(int(seconds * SR)).astype(np.float32)
    return (x * (np.arange(x.size) % 5000 < 3000)).astype(np.float32)


def blocks(wav: np.ndarray, size: int | list[int]) -> list[np.ndarray]:
    sizes = size if isinstance(size, list) else [size]
    out, i, k = [], 0, 0
    while i < wav.size:
        out.append(wav[i : i + sizes[k % len(sizes)]])
        i, k = i + sizes[k % len(sizes)], k + 1
    return out


def streamed(synth: Synthesizer, wav: np.ndarray, size: int | list[int], **kw: float) -> np.ndarray:
    resynth = StreamingResynthesizer(synth, StreamOptions(**kw))
    return np.concatenate(list(resynth.stream(blocks(wav, size))))


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.abs(a - b).max() / np.abs(b).max())


# ---------------------------------------------------------------------------------------------- mel


@pytest.mark.parametrize("size", [1, 7, 255, 256, 1000, [3, 1, 640, 17]])
@pytest.mark.parametrize("seconds", [0.4, 0.0175, 0.02])  # 0.0175 s = 385 samples: the shortest legal input
def test_streaming_mel_equals_offline_exactly(size: int | list[int], seconds: float) -> None:
    wav = speechlike(seconds)
    synth = synth_for(tiny_generator())
    stream = StreamingMel(synth.mel_fn)
    frames = [stream.push(b) for b in blocks(wav, size)] + [stream.finish()]
    offline = synth.mel(wav)
    assert torch.equal(torch.cat(frames, dim=-1), offline)  # bit-identical, frame count included


def test_streaming_mel_refuses_what_offline_refuses() -> None:
    stream = StreamingMel(synth_for(tiny_generator()).mel_fn)
    stream.push(np.zeros(384, np.float32))
    with pytest.raises(ValueError, match="too short"):
        stream.finish()


def test_frames_leave_as_soon_as_final() -> None:
    """Frame t needs samples up to t*hop + n_fft - pad = t*256 + 640: not one more."""
    stream = StreamingMel(synth_for(tiny_generator()).mel_fn)
    assert stream.push(np.ones(639, np.float32)).shape[-1] == 0
    assert stream.push(np.ones(1, np.float32)).shape[-1] == 1  # sample 640 completes frame 0
    assert stream.push(np.ones(255, np.float32)).shape[-1] == 0
    assert stream.push(np.ones(1, np.float32)).shape[-1] == 1


# ---------------------------------------------------------------------------------------------- audio


@pytest.mark.parametrize("size", [1, 3, 1000, 4097, [5, 2048, 1, 333]])
def test_streamed_equals_offline_at_the_default_lookahead(size: int | list[int]) -> None:
    wav = speechlike(0.5 if size in (1, 3) else 1.3)
    synth = synth_for(tiny_generator())
    offline = synth.synthesize([synth.mel(wav)])[0]
    out = streamed(synth, wav, size)
    assert out.shape == offline.shape == (wav.size // 256 * 256,)
    assert rel_err(out, offline) <= 1e-4  # measured 3.1e-5: float rounding of the saturated tiny generator
    assert np.abs(offline).max() > 0.1


def test_v3_architecture_streams_exactly() -> None:
    torch.manual_seed(0)
    synth = synth_for(Generator(generator_preset("v3")).eval())
    wav = speechlike(0.8, seed=1)
    offline = synth.synthesize([synth.mel(wav)])[0]
    out = streamed(synth, wav, 777, chunk_ms=100)
    assert rel_err(out, offline) <= 1e-5  # measured 9e-7


def test_shorter_lookahead_trades_error_for_latency() -> None:
    synth = synth_for(tiny_generator())
    wav = speechlike(1.0)
    offline = synth.synthesize([synth.mel(wav)])[0]
    exact = StreamingResynthesizer(synth, StreamOptions(cached=False))
    short = StreamingResynthesizer(synth, StreamOptions(lookahead_ms=0))
    assert exact.latency.lookahead_frames == 6 and short.latency.lookahead_frames == 0  # tiny: RF 6 frames
    assert exact.exact and not short.exact
    assert short.latency.samples == exact.latency.samples - 6 * 256
    out = streamed(synth, wav, 512, lookahead_ms=0)
    assert out.shape == offline.shape
    assert rel_err(out, offline) > 1e-2  # no future context is a real, measurable error


def test_short_lookahead_windows_hold_the_newest_frame() -> None:
    """Look-ahead 2 of a receptive field 5: every window gets 3 copies of its newest frame, except the last,
    which sees the true end of the mel as offline synthesis does."""
    windows: list[torch.Tensor] = []

    def generate(mel: torch.Tensor) -> torch.Tensor:
        windows.append(mel[0].clone())
        return torch.zeros(1, mel.shape[-1] * 4)

    gen = StreamingGenerator(generate, 4, 1, chunk_frames=2, lookahead_frames=2, left_frames=3, receptive_frames=5)
    frames = torch.arange(10.0)[None]
    out = np.concatenate([gen.push(frames[:, i : i + 1]) for i in range(10)] + [gen.finish()])
    assert out.size == 40
    assert windows[0].tolist() == [[0, 1, 2, 3, 3, 3, 3]]  # frames 0-1 out, 2-3 future, 3 held 3 times
    assert windows[1].tolist() == [[0, 1, 2, 3, 4, 5, 5, 5, 5]]  # left context 3 frames back
    assert windows[-1].tolist() == [[5, 6, 7, 8, 9]]  # the end: no guessing


def test_latency_and_lookahead_of_the_real_architectures() -> None:
    """The documented numbers: exact look-ahead 15 frames (V1/V2) and 12 (V3) when each chunk is re-run with
    its context; 3,258 and 2,582 samples (148 and 117 ms: latency 212 and 181 ms) with cached layer state; default chunk 4 frames."""
    for name, frames, lag, ms, cached_ms in [("v1", 15, 3258, 238.0, 211.6), ("v3", 12, 2582, 203.2, 181.0)]:
        vocoder = Vocoder(Generator(generator_preset(name)), MelConfig(), name, 0)
        recompute = StreamingResynthesizer(Synthesizer(vocoder), StreamOptions(cached=False))
        assert recompute.latency.lookahead_frames == frames
        assert recompute.latency.chunk_frames == 4
        assert recompute.latency.samples == (4 + frames) * 256 + 384
        assert recompute.latency.ms == pytest.approx(ms, abs=0.1)
        cached = StreamingResynthesizer(Synthesizer(vocoder))
        assert isinstance(cached.generator, CachedStreamingGenerator) and cached.generator.lag_samples == lag
        assert cached.latency.samples == 4 * 256 + lag + 384
        assert cached.latency.ms == pytest.approx(cached_ms, abs=0.1)
    with pytest.raises(ConfigError):
        StreamingResynthesizer(synth_for(tiny_generator()), StreamOptions(lookahead_ms=-1))


def test_resampled_input_equals_offline_load_then_synthesis() -> None:
    """16 kHz in: soxr's streaming resampler gives the one-shot resampler's samples."""
    synth = synth_for(tiny_generator())
    wav16 = resample(speechlike(1.2), SR, 16000)
    offline = synth.synthesize([synth.mel(resample(wav16, 16000, SR))])[0]
    resynth = StreamingResynthesizer(synth, in_rate=16000)
    out = np.concatenate(list(resynth.stream(blocks(wav16, [1, 100, 999]))))
    assert rel_err(out, offline) <= 1e-4
    resynth_out = StreamingResynthesizer(synth, out_rate=16000)
    out16 = np.concatenate(list(resynth_out.stream(blocks(resample(wav16, 16000, SR), 512))))
    assert rel_err(out16, resample(offline, SR, 16000)) <= 1e-4


def test_bad_stream_input_is_an_audio_error() -> None:
    synth = synth_for(tiny_generator())
    resynth = StreamingResynthesizer(synth, name="<stdin>")
    with pytest.raises(AudioError, match="<stdin>: signal contains 1 NaN"):
        resynth.push(np.array([0.0, np.nan], np.float32))
    with pytest.raises(AudioError, match="zero-length"):
        StreamingResynthesizer(synth).finish()
    short = StreamingResynthesizer(synth)
    short.push(np.zeros(100, np.float32))
    with pytest.raises(AudioError, match="too short"):
        short.finish()


# ---------------------------------------------------------------------------------------------- bytes


@pytest.mark.parametrize("subtype,channels", [("PCM_16", 1), ("PCM_24", 2), ("FLOAT", 1), ("PCM_U8", 1), ("PCM_32", 3)])
def test_wav_stream_decoder_matches_libsndfile(subtype: str, channels: int) -> None:
    wav = np.stack([speechlike(0.1, seed=c) * 0.9 for c in range(channels)], axis=1)
    buf = io.BytesIO()
    sf.write(buf, wav, SR, subtype=subtype, format="WAV")
    data = buf.getvalue()
    expected, _ = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    decoder = WavStreamDecoder()
    out = np.concatenate([decoder.decode(data[i : i + 1]) for i in range(len(data))])  # byte by byte
    assert decoder.format is not None and decoder.format.rate == SR and decoder.format.channels == channels
    np.testing.assert_allclose(out, expected.mean(axis=1), atol=1e-7)
    assert decoder.leftover == 0


def sox_style_header(rate: int, data_size: int) -> bytes:
    """WAVE_FORMAT_EXTENSIBLE 16-bit mono + fact + LIST chunks, as sox and ffmpeg write to pipes."""
    guid_pcm = struct.pack("<H", 1) + bytes.fromhex("000000001000800000aa00389b71")
    fmt = struct.pack("<HHIIHHHHI", 0xFFFE, 1, rate, rate * 2, 2, 16, 22, 16, 4) + guid_pcm
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"fact" + struct.pack("<II", 4, 0)
    chunks += b"LIST" + struct.pack("<I", 5) + b"INFOx\0"  # odd size: padded to even
    return b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + chunks + b"data" + struct.pack("<I", data_size)


@pytest.mark.parametrize("size", [0, 0xFFFFFFFF, UNKNOWN_DATA_SIZE])
def test_unknown_data_size_reads_to_the_end(size: int) -> None:
    pcm = (np.arange(1001, dtype=np.int16) * 7).astype("<i2").tobytes()
    decoder = WavStreamDecoder()
    out = decoder.decode(sox_style_header(16000, size) + pcm + b"\x01")  # plus half a sample
    assert out.size == 1001 and decoder.format is not None and decoder.format.rate == 16000
    assert decoder.leftover == 1
    np.testing.assert_array_equal(out, np.arange(1001) * 7 / 32768.0)


def test_a_real_data_size_stops_there() -> None:
    pcm = np.ones(10, dtype="<i2").tobytes()
    decoder = WavStreamDecoder()
    assert decoder.decode(sox_style_header(SR, 8) + pcm + b"LIST....").size == 4


def test_not_a_wav_stream_names_the_fix() -> None:
    with pytest.raises(AudioError, match="not a WAV stream.*--raw-format"):
        WavStreamDecoder().decode(b"ID3\x03" + b"\0" * 20)
    with pytest.raises(AudioError, match="empty input"):
        WavStreamDecoder().finish()
    decoder = WavStreamDecoder()
    decoder.decode(b"RIFF\0\0\0\0WAVEfmt ")
    with pytest.raises(AudioError, match="inside the WAV header"):
        decoder.finish()


def test_raw_formats() -> None:
    fmt = parse_raw_format("S16LE:22050")
    assert (fmt.encoding, fmt.rate, fmt.channels, fmt.frame_bytes) == ("s16le", 22050, 1, 2)
    assert parse_raw_format("f32le:16000:2").frame_bytes == 8
    for bad in ["s16le", "wav:22050", "s16le:abc", "s16le:0", "s16le:1:2:3"]:
        with pytest.raises(ConfigError, match="--raw-format"):
            parse_raw_format(bad)
    decoder = PcmDecoder(parse_raw_format("f32le:8000:2"))
    data = np.array([[0.5, -0.5], [1.0, 0.0]], dtype="<f4").tobytes()
    assert decoder.decode(data[:5]).size == 0 and decoder.leftover == 5  # mid-sample, mid-frame
    np.testing.assert_array_equal(decoder.decode(data[5:]), [0.0, 0.5])


def test_streaming_header_is_read_back_by_the_stdlib_and_ourselves() -> None:
    import wave

    payload = streaming_wav_header(16000) + np.arange(50, dtype="<i2").tobytes()
    with wave.open(io.BytesIO(payload)) as w:
        assert (w.getframerate(), w.getsampwidth(), w.getnchannels()) == (16000, 2, 1)
        assert len(w.readframes(10**6)) == 100
    decoder = WavStreamDecoder()
    floats = streaming_wav_header(SR, float_output=True) + np.ones(3, "<f4").tobytes()
    assert decoder.decode(floats).tolist() == [1, 1, 1]


def junk_wav(chunks: int, chunk_body: int = 2, rate: int = 16000, pcm: bytes = b"\x01\x00" * 10) -> bytes:
    """A PCM WAV with ``chunks`` JUNK chunks of ``chunk_body`` bytes before its fmt chunk."""
    junk = (b"JUNK" + struct.pack("<I", chunk_body) + b"j" * chunk_body + b"\0" * (chunk_body & 1)) * chunks
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    body = b"WAVE" + junk + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", len(pcm)) + pcm
    return b"RIFF" + struct.pack("<I", len(body)) + body


def test_header_parsing_is_linear_and_keeps_nothing_it_skips() -> None:
    """200,000 small chunks (2 MB) before the fmt chunk, delivered 5 bytes at a time: the decoder never holds
    more than the 26 bytes of one header field (before: it kept the whole header and re-parsed it on every
    read, quadratic: 6.4 MB took 23 s), and every byte is counted once."""
    data = junk_wav(200_000)
    decoder = WavStreamDecoder()
    most, out = 0, []
    for i in range(0, len(data), 5):
        out.append(decoder.decode(data[i : i + 5]))
        most = max(most, decoder.buffered)
    assert most <= 26
    assert decoder.header_bytes == len(data) - 20 and decoder.bytes_in == len(data)
    np.testing.assert_array_equal(np.concatenate(out), np.full(10, 1 / 32768))
    assert decoder.format is not None and decoder.format.rate == 16000


def test_header_bytes_are_capped() -> None:
    """Junk past MAX_HEADER_BYTES before the data is an error (at the chunk that would cross it), and a chunk
    that declares a size beyond the cap is refused from its header, before its body is read."""
    from vocoder_cli.synthesis.streamio import MAX_HEADER_BYTES

    decoder = WavStreamDecoder()
    data = junk_wav(MAX_HEADER_BYTES // 65544 + 1, chunk_body=65536)
    with pytest.raises(AudioError, match=f"WAV header too long: chunk 'JUNK' of 65536 bytes would put the audio "
                                         f"data beyond the first {MAX_HEADER_BYTES} bytes"):
        for i in range(0, len(data), 65536):
            decoder.decode(data[i : i + 65536])
    assert decoder.header_bytes <= MAX_HEADER_BYTES and decoder.buffered <= 26
    huge = WavStreamDecoder()
    with pytest.raises(AudioError, match="chunk 'LIST' of 4294967295 bytes"):
        huge.decode(b"RIFF\xff\xff\xff\xffWAVELIST\xff\xff\xff\xff")
    assert huge.header_bytes == 20


@pytest.mark.parametrize("rate", [0, 1, 999, 768_001, 4_000_000_000])
def test_stream_header_rate_out_of_range(rate: int) -> None:
    header = sox_style_header(16000, 0)
    header = header[:24] + struct.pack("<I", rate) + header[28:]  # the fmt chunk's rate field
    with pytest.raises(AudioError, match=f"the header's sample rate {rate} Hz is outside the supported range "
                                         "1000..768000 Hz"):
        WavStreamDecoder().decode(header + b"\0" * 100)


def test_cut_stream_reports_its_shortfall() -> None:
    """A header that promises 1000 frames (stereo, 4 bytes each) over a stream that ends after 300."""
    fmt = struct.pack("<HHIIHH", 1, 2, 16000, 64000, 4, 16)
    header = b"RIFF" + struct.pack("<I", 4036) + b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data"
    decoder = WavStreamDecoder()
    out = decoder.decode(header + struct.pack("<I", 4000) + b"\0\1" * 600 + b"\7")
    decoder.finish()
    assert out.size == 300 and decoder.leftover == 1
    short = decoder.shortfall
    assert short is not None and (short.declared, short.held, short.unit) == (1000, 300, "samples")
    whole = WavStreamDecoder()
    whole.decode(header + struct.pack("<I", 4000) + b"\0" * 4000)
    assert whole.shortfall is None


# ---------------------------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_weights(tmp_path_factory.mktemp("w") / "tiny.safetensors")


def cli(weights: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "vocoder_cli", "resynth", "-", "-", "--stream", "-w", str(weights),
            "--backend", "torch", *extra]


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def wav_bytes(wav: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wav, sr, subtype=subtype, format="WAV")
    return buf.getvalue()


def decode_output(data: bytes) -> np.ndarray:
    decoder = WavStreamDecoder()
    out = decoder.decode(data)
    assert decoder.format is not None and decoder.format.rate == SR and decoder.leftover == 0
    return out


def offline_pcm(weights: Path, wav: np.ndarray) -> np.ndarray:
    from vocoder_cli.synthesis.vocoder import load_vocoder

    synth = Synthesizer(load_vocoder(str(weights), backend="torch"))
    return synth.synthesize([synth.mel(wav)])[0]


def test_cli_raw_input_that_stops_mid_sample(weights: Path) -> None:
    wav = speechlike(0.6, seed=3)
    raw = (np.round(wav * 32767).astype("<i2")).tobytes() + b"\x7f"  # an odd byte count
    done = subprocess.run(cli(weights, "--raw-format", "s16le:16000", "--raw-output", "--float", "-q"),
                          input=raw, capture_output=True, env=env(), timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert b"ended mid-sample; 1 trailing bytes ignored" in done.stderr
    out = np.frombuffer(done.stdout, dtype="<f4")  # raw f32le, no header
    at_model_rate = resample(np.round(wav * 32767) / 32768, 16000, SR)
    expected = offline_pcm(weights, at_model_rate.astype(np.float32))
    assert out.shape == expected.shape and rel_err(out, expected) <= 1e-4


def test_cli_reader_closing_the_pipe_is_a_clean_exit(weights: Path) -> None:
    producer = subprocess.Popen(cli(weights, "--chunk-ms", "20"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=env())
    reader = subprocess.Popen(["head", "-c", "1000"], stdin=producer.stdout, stdout=subprocess.PIPE)
    assert producer.stdout is not None and producer.stdin is not None
    producer.stdout.close()  # only `head` holds the read end now
    try:
        producer.stdin.write(wav_bytes(speechlike(6.0)))  # ~260 kB of output: far past head's 1000 bytes
        producer.stdin.close()
    except BrokenPipeError:
        pass  # the vocoder may exit before reading all its input
    got = reader.communicate(timeout=120)[0]
    stderr = producer.communicate(timeout=120)[1].decode()
    assert len(got) == 1000
    assert producer.returncode == 0, stderr
    assert "Traceback" not in stderr and "Exception" not in stderr, stderr


def test_cli_slow_producer_gets_output_before_its_input_ends(weights: Path) -> None:
    """Small pieces with pauses; the first audio comes back while stdin is still open."""
    wav = speechlike(1.0, seed=5)
    data = wav_bytes(wav)
    proc = subprocess.Popen(cli(weights, "--chunk-ms", "20"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env())
    assert proc.stdin is not None and proc.stdout is not None
    first_half = len(data) // 2
    for i in range(0, first_half, 101):  # ~110 writes of 101 bytes (odd: pieces end mid-sample)
        proc.stdin.write(data[i : min(i + 101, first_half)])
        proc.stdin.flush()
        time.sleep(0.002)
    received = b""
    deadline = time.monotonic() + 60
    while len(received) <= 44 + 256 * 2 and time.monotonic() < deadline:  # header + at least one frame
        if select.select([proc.stdout], [], [], 1.0)[0]:
            received += os.read(proc.stdout.fileno(), 1 << 16)
    assert len(received) > 44 + 256 * 2, "no audio came back while the input was still arriving"
    proc.stdin.write(data[first_half:])
    proc.stdin.close()
    received += proc.stdout.read()
    assert proc.wait(timeout=60) == 0
    stderr = proc.stderr.read() if proc.stderr else b""
    assert re.search(rb"look-ahead \d+ samples \(cached layer state, equals offline\)", stderr), stderr.decode()
    assert received[:4] == b"RIFF" and struct.unpack("<I", received[40:44])[0] == UNKNOWN_DATA_SIZE
    expected = offline_pcm(weights, sf.read(io.BytesIO(data), dtype="float32")[0])
    out = decode_output(received)
    assert out.shape == expected.shape
    assert np.abs(out - expected).max() <= 1.5 / 32767 + 1e-4  # 16-bit rounding plus float rounding


@pytest.mark.parametrize(
    "args,stdin,code,message",
    [
        (["--raw-format", "s16le"], b"", 2, "--raw-format 's16le': expected"),
        ([], b"", 1, "<stdin>: empty input (0 bytes)"),
        ([], b"OggS" + b"\0" * 60, 1, "not a WAV stream"),
    ],
)
def test_cli_stream_errors(weights: Path, args: list[str], stdin: bytes, code: int, message: str) -> None:
    from typer.testing import CliRunner

    from vocoder_cli.cli.app import app

    result = CliRunner().invoke(app, cli(weights, *args)[3:], input=stdin)
    assert result.exit_code == code and message in result.output, result.output
    assert "Traceback" not in result.output


def test_cli_stream_usage(weights: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vocoder_cli.cli.app import app

    runner = CliRunner()
    result = runner.invoke(app, ["resynth", "in.wav", str(tmp_path), "--stream", "-w", str(weights)])
    assert result.exit_code == 2 and "--stream reads audio from stdin" in result.output
    result = runner.invoke(app, ["resynth", "-", "-", "--raw-format", "s16le:8000", "-w", str(weights)])
    assert result.exit_code == 2 and "need --stream" in result.output


def test_cli_cut_stream_warns_like_offline_and_exits_1_after_all_output(weights: Path, tmp_path: Path) -> None:
    """A WAV cut at 0.7 of its data (a writer killed mid-way): everything there is comes out, vocoded as offline
    vocodes the same cut file; then the offline warning (for the stream) and exit 1 (before: exit 0, silent)."""
    from vocoder_cli.audio import read_audio

    full = wav_bytes(speechlike(1.0, seed=8)[:16000], 16000)  # 1 s at 16 kHz
    cut = full[: 44 + int(0.7 * (len(full) - 44)) // 2 * 2]
    (tmp_path / "cut.wav").write_bytes(cut)
    offline = read_audio(tmp_path / "cut.wav")
    assert len(offline.warnings) == 1 and "the file holds 11200" in offline.warnings[0]
    done = subprocess.run(cli(weights), input=cut, capture_output=True, env=env(), timeout=120)
    assert done.returncode == 1, done.stderr.decode()
    stderr = " ".join(done.stderr.decode().split())
    assert ("warning <stdin>: " + offline.warnings[0].replace("the file holds", "the stream holds")) in stderr
    assert "streamed " in stderr and "Traceback" not in stderr  # the summary: all output was written first
    expected = offline_pcm(weights, resample(offline.wav, 16000, SR))
    out = decode_output(done.stdout)
    assert out.shape == expected.shape and np.abs(out - expected).max() <= 1.5 / 32767 + 1e-4


def test_cli_stream_refuses_a_bad_header_rate_before_any_output(weights: Path) -> None:
    bad = bytearray(wav_bytes(speechlike(0.2)))
    bad[24:28] = struct.pack("<I", 1)  # 1 Hz: the streaming resampler would grow without bound
    done = subprocess.run(cli(weights, "-q"), input=bytes(bad), capture_output=True, env=env(), timeout=120)
    assert done.returncode == 1 and done.stdout == b""
    assert b"error: <stdin>: the header's sample rate 1 Hz is outside the supported range" in done.stderr


# ---------------------------------------------------------------------------------------------- data


@pytest.mark.data
def test_real_clip_streams_like_offline(data_dir: Path) -> None:
    from vocoder_cli.audio import load_audio

    wav, _ = load_audio(sorted((data_dir / "ljspeech" / "dev" / "wavs").glob("*.flac"))[0], SR)
    wav = wav[: 2 * SR]
    torch.manual_seed(0)
    synth = synth_for(Generator(generator_preset("v3")).eval())
    offline = synth.synthesize([synth.mel(wav)])[0]
    out = streamed(synth, wav, [1, 511, 4096, 64])
    assert out.shape == offline.shape and rel_err(out, offline) <= 1e-5


# ------------------------------------------------------------------------------- cached layer state


@pytest.mark.parametrize("preset", ["v1", "v2", "v3"])
@pytest.mark.parametrize(("chunk", "block"), [(1, 1), (4, 3), (3, 10), (100, 57)])
def test_cached_generator_equals_offline_for_any_chunk_and_block(preset: str, chunk: int, block: int) -> None:
    """Every layer keeps its own state (ResBlock1 for V1/V2, ResBlock2 for V3): same samples as one forward
    pass of the whole mel, exactly frames * hop of them, whatever the chunk and the block sizes."""
    torch.manual_seed(0)
    gen = Generator(generator_preset(preset)).eval()
    mel = torch.randn(80, 57) - 5.0
    with torch.inference_mode():
        offline = gen(mel[None])[0, 0].numpy()
    stream = CachedStreamingGenerator(gen, chunk)
    out = np.concatenate([stream.push(mel[:, i : i + block]) for i in range(0, 57, block)] + [stream.finish()])
    assert out.shape == offline.shape
    assert rel_err(out, offline) <= 1e-5  # measured 3e-7 - 1.1e-6


@pytest.mark.parametrize(("kernel", "stride"), [(16, 8), (4, 2), (5, 3), (3, 1)])
def test_transposed_conv_layer_overlap_adds_what_the_offline_layer_computes(kernel: int, stride: int) -> None:
    """One transposed convolution streamed in uneven blocks: the samples of ``conv_transpose1d`` with its
    padding, exactly ``n * stride`` of them, also where the kernel is not a whole number of strides (it is
    zero-padded to one)."""
    from vocoder_cli.synthesis.stream_generator import _ConvTranspose

    torch.manual_seed(0)
    conv = torch.nn.ConvTranspose1d(6, 5, kernel, stride, padding=(kernel - stride) // 2)
    x = torch.randn(23, 6)  # [time, channels]
    with torch.inference_mode():
        offline = conv(F.leaky_relu(x.T[None], 0.1))[0].T
        layer = _ConvTranspose(conv, 0.1, torch.float32)
        parts = [layer.push(x[i : i + n]) for i, n in ((0, 1), (1, 0), (1, 7), (8, 15))] + [layer.finish()]
    out = torch.cat(parts)
    assert out.shape == (23 * stride, 5) and layer.lag == (kernel - stride) // 2
    assert float((out - offline).abs().max()) < 1e-5


@pytest.mark.parametrize(("kernel", "dilation"), [(3, 1), (3, 5), (11, 5), (7, 3)])
def test_conv_layer_sums_its_taps_like_the_offline_layer(kernel: int, dilation: int) -> None:
    """One dilated convolution streamed in uneven blocks (shorter than its span too): ``conv1d`` with its
    'same' padding, sample for sample."""
    from vocoder_cli.synthesis.stream_generator import _Conv

    torch.manual_seed(0)
    conv = torch.nn.Conv1d(6, 5, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2)
    x = torch.randn(41, 6)
    with torch.inference_mode():
        offline = conv(F.leaky_relu(x.T[None], 0.1))[0].T
        layer = _Conv(conv, 0.1, torch.float32)
        parts = [layer.push(x[i : i + n]) for i, n in ((0, 1), (1, 2), (3, 30), (33, 8))] + [layer.finish()]
    out = torch.cat(parts)
    assert out.shape == (41, 5) and float((out - offline).abs().max()) < 1e-5


@pytest.mark.parametrize("preset", ["v1", "v2"])
def test_cached_bf16_stream_casts_weights_once_and_stays_within_bf16_rounding(preset: str) -> None:
    """``--precision bf16`` streaming: the weights are bf16 once, with the offline engine's float32 tail (V2's
    last two stages, conv_post always); the stream really computes in bf16 (far from float32 rounding) and is
    as close to float32 as the offline bf16 engine is (bf16 is emulated on CPUs without bf16 instructions:
    the same arithmetic, only slower)."""
    torch.manual_seed(0)
    gen = Generator(generator_preset(preset)).eval()
    mel = torch.randn(80, 40) - 5.0
    stream = CachedStreamingGenerator(gen, 4, dtype=torch.bfloat16, fp32_tail=True)
    conv_pre, *stages, conv_post, _ = stream.layers.layers
    start = gen.fp32_tail_start
    assert conv_pre.dtype == torch.bfloat16 and conv_post.dtype == torch.float32
    assert [stage.layers[0].dtype for stage in stages] == [torch.bfloat16] * start + [torch.float32] * (4 - start)
    with torch.inference_mode():
        fp32 = gen(mel[None])[0, 0].numpy()
        engine = ChannelsLastGenerator(gen, "bf16")(mel[None])[0, 0].numpy()
    out = np.concatenate([stream.push(mel[:, i : i + 3]) for i in range(0, 40, 3)] + [stream.finish()])
    assert out.shape == fp32.shape and out.dtype == np.float32
    engine_err = rel_err(engine, fp32)
    assert 1e-3 < rel_err(out, fp32) < 2 * engine_err and engine_err < 1e-2  # measured V1 6.2e-3 / 4.8e-3


def test_cached_generator_emits_each_sample_once_its_receptive_field_is_in() -> None:
    """After F frames exactly F * hop - lag samples are out: the look-ahead is the exact right context in
    samples (V1: 3,258 = 12.7 frames, not rounded up to the 15-frame bound the chunked path needs)."""
    gen = Generator(generator_preset("v1")).eval()
    stream = CachedStreamingGenerator(gen, 1)
    assert stream.lag_samples == 3258 and stream.lag_samples <= receptive_field_frames(gen.cfg) * 256
    out = 0
    for frames in range(1, 30):
        out += stream.push(torch.randn(80, 1)).size
        assert out == max(0, frames * 256 - stream.lag_samples)
    out += stream.finish().size
    assert out == 29 * 256


@pytest.mark.parametrize("cached", [True, False])
def test_measured_latency_is_the_documented_latency(cached: bool) -> None:
    """Push the input one sample at a time and note when each output sample leaves: the longest wait between
    input sample j arriving and output sample j leaving is latency.samples - 1 (both streaming paths)."""
    synth = synth_for(tiny_generator())
    resynth = StreamingResynthesizer(synth, StreamOptions(chunk_ms=25, cached=cached))
    assert isinstance(resynth.generator, CachedStreamingGenerator) == cached
    wav = speechlike(0.3)
    waits, emitted = [], 0
    for received, sample in enumerate(wav, start=1):
        out = resynth.push(sample[None])
        waits += [received - (j + 1) for j in range(emitted, emitted + out.size)]
        emitted += out.size
    assert emitted > 0.5 * wav.size
    assert max(waits) == resynth.latency.samples - 1


def test_cached_stream_equals_offline_through_the_resynthesizer() -> None:
    """The default streaming path (cached, exact) on a real-size model: offline samples within 1e-5."""
    torch.manual_seed(1)
    synth = synth_for(Generator(generator_preset("v3")).eval())
    wav = speechlike(0.6)
    offline = synth.synthesize([synth.mel(wav)])[0]
    resynth = StreamingResynthesizer(synth)
    assert isinstance(resynth.generator, CachedStreamingGenerator)
    out = np.concatenate(list(resynth.stream(blocks(wav, [300, 7, 1024]))))
    assert rel_err(out, offline) <= 1e-5


def test_bf16_stream_through_the_resynthesizer_matches_offline_bf16() -> None:
    """``--precision bf16`` reaches the cached engine: bf16 layers, output as close to the offline bf16
    synthesis of the same audio as bf16 rounding allows (and not the float32 output)."""
    torch.manual_seed(1)
    gen = Generator(generator_preset("v3")).eval()
    vocoder = Vocoder(gen, MelConfig(), "test", receptive_field_frames(gen.cfg) + 2)
    bf16, fp32 = Synthesizer(vocoder, options=EngineOptions(precision="bf16")), Synthesizer(vocoder)
    wav = speechlike(0.5)
    resynth = StreamingResynthesizer(bf16)
    assert isinstance(resynth.generator, CachedStreamingGenerator)
    assert resynth.generator.layers.layers[0].dtype == torch.bfloat16
    out = np.concatenate(list(resynth.stream(blocks(wav, [300, 7, 1024]))))
    offline_bf16, offline_fp32 = bf16.synthesize([bf16.mel(wav)])[0], fp32.synthesize([fp32.mel(wav)])[0]
    assert 1e-3 < rel_err(out, offline_fp32) < 3e-2 and rel_err(out, offline_bf16) < 3e-2


def test_cli_auto_backend_streams_with_cached_layer_state(weights: Path, tmp_path: Path) -> None:
    """`--backend auto` (the default) streams on torch with cached layer state even where ONNX Runtime would
    be picked offline: ONNX can only re-run each chunk with its context (~4x the work)."""
    args = [a for a in cli(weights) if a not in ("--backend", "torch")] + ["--backend", "auto"]
    wav = speechlike(0.5)
    done = subprocess.run(args, input=wav_bytes(wav), capture_output=True, timeout=120,
                          env={**env(), "VOCODER_CACHE_DIR": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr.decode()
    assert b"cached layer state, equals offline" in done.stderr, done.stderr.decode()
    assert not (tmp_path / "cache" / "onnx").exists()  # nothing exported for a stream
    assert decode_output(done.stdout).size == (wav.size // 256) * 256  # frames * hop, as offline
