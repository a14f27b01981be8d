"""`vocoder resynth - - --stream`: stdin to stdout as the audio arrives (called by cli/resynth.py)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import BinaryIO, Optional

import typer

from vocoder_cli.audio import truncation_warning
from vocoder_cli.cli.common import EXIT_PARTIAL_FAILURE, err_console, fail, user_errors
from vocoder_cli.cli.display import say
from vocoder_cli.cli.stdio import stdout_failed
from vocoder_cli.errors import AudioError
from vocoder_cli.synthesis.engine import Synthesizer
from vocoder_cli.synthesis.streaming import StreamingResynthesizer, StreamOptions
from vocoder_cli.synthesis.streamio import (
    PcmDecoder,
    WavStreamDecoder,
    parse_raw_format,
    pump,
    read_available,
)


def run_stream(
    synth: Synthesizer,
    *,
    stdin: BinaryIO,
    stdout: BinaryIO,
    raw_format: Optional[str],
    raw_output: bool,
    chunk_ms: float,
    lookahead_ms: Optional[float],
    out_sr: Optional[int],
    float_output: bool,
    quiet: bool,
) -> None:
    """Pump ``stdin`` through a streaming resynthesiser to ``stdout`` (both checked open by the caller).

    Exit 0 when the reader closes the pipe; 1 (after all output is written) when the input ended before its
    WAV header's data size; 1 with one line when stdout cannot take the bytes (a full disk)."""
    with user_errors():
        decoder = PcmDecoder(parse_raw_format(raw_format)) if raw_format else WavStreamDecoder("<stdin>")
    model_rate = synth.vocoder.mel.sample_rate
    out_rate = out_sr or model_rate
    options = StreamOptions(chunk_ms=chunk_ms, lookahead_ms=lookahead_ms)
    built: list[StreamingResynthesizer] = []

    def make(in_rate: int) -> StreamingResynthesizer:
        resynth = StreamingResynthesizer(synth, options, in_rate=in_rate, out_rate=out_rate, name="<stdin>")
        built.append(resynth)
        if not quiet:
            lat = resynth.latency
            if lat.lag_samples is not None:
                ahead = f"{lat.lag_samples} samples (cached layer state, equals offline)"
            else:
                exact = "equals offline" if resynth.exact else f"approximate: exact needs {resynth.exact_lookahead_frames}"
                ahead = f"{lat.lookahead_frames} frames ({exact})"
            err_console.print(
                f"streaming {in_rate} Hz -> {out_rate} Hz | chunk {lat.chunk_frames} frames, look-ahead {ahead} "
                f"| algorithmic latency {lat.ms:.0f} ms",
                soft_wrap=True,
            )
        return resynth

    try:
        report = pump(
            _reader(stdin),
            stdout,
            decoder,
            make,
            float_output=float_output,
            wav_header=not raw_output,
            out_rate=out_rate,
        )
    except AudioError as exc:
        raise fail(str(exc), EXIT_PARTIAL_FAILURE) from None
    except OSError as exc:  # writing stdout: the reader went away (exit 0), or a full disk / EIO (exit 1)
        raise stdout_failed(exc) from None
    if report.leftover_bytes:
        say(err_console, ("warning", "yellow"), f" <stdin>: the input ended mid-sample; {report.leftover_bytes} "
            "trailing bytes ignored")
    if report.shortfall is not None:
        say(err_console, ("warning", "yellow"), " <stdin>: ",
            truncation_warning(report.shortfall, report.input_rate, holder="stream"))
    if not quiet:
        seconds = report.samples_out / out_rate
        rtf = report.compute_seconds / seconds if seconds else float("nan")
        err_console.print(
            f"streamed {seconds:.2f} s of audio in {report.wall_seconds:.2f} s | compute RTF {rtf:.3f} | "
            f"{synth.vocoder.name} on {synth.device}",
            soft_wrap=True,
        )
    if report.shortfall is not None:
        raise typer.Exit(EXIT_PARTIAL_FAILURE)  # everything there is was written; the input was cut short


def _reader(stream: BinaryIO) -> Callable[[], bytes]:
    """Whatever ``stream`` holds now, as soon as anything arrives (os.read on a pipe or file; read1 on an
    in-memory stdin)."""
    try:
        fd = stream.fileno()
    except (OSError, io.UnsupportedOperation):
        return lambda: stream.read1(1 << 16)  # type: ignore[attr-defined]
    return lambda: read_available(fd)
