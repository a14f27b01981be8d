"""Streaming resynthesis: audio blocks in (any size), audio out as soon as each sample is final.

Two stages, each with its state in plain attributes:

- :class:`StreamingMel` turns samples into log-mel frames that equal the offline frames exactly. Offline,
  the signal ``x[0:N]`` is reflect-padded by ``p = (n_fft - hop) / 2`` on each side and framed with
  ``center=False``, so frame ``t`` covers ``x[t*hop - p : t*hop - p + n_fft]``: it is final once
  ``t*hop + n_fft - p`` samples have arrived (half a window of future, 640 samples at hop 256). The
  left pad ``x[p], ..., x[1]`` is known after ``p + 1`` samples; the right pad only at the end.
- :class:`StreamingGenerator` turns frames into waveform samples, ``chunk`` frames at a time, each
  chunk synthesised with ``left`` frames of past and ``lookahead`` frames of future context (the chunked
  engine's argument, vocoder_cli/synthesis/engine.py). With ``lookahead`` >= the generator's receptive field
  (15 frames for V1/V2, 12 for V3) the output equals offline synthesis up to float rounding; a smaller
  look-ahead trades a bounded error for latency (docs/performance.md has the curve): the frames the
  generator would still see are filled with copies of the newest frame, which measured closer to offline
  than stopping the window there (zero padding inside every layer) or filling it with silence. At the end of
  the stream the rest is synthesised against the true end, as offline.

:class:`StreamingResynthesizer` joins them (plus streaming resamplers when the input or output rate
differs from the model's). Algorithmic latency, input sample to output sample without compute time:
``(chunk + lookahead) * hop + (n_fft - hop) / 2`` samples (:class:`StreamLatency`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import soxr
import torch

from vocoder_cli.audio import rate_problem
from vocoder_cli.errors import AudioError, ConfigError
from vocoder_cli.mel import MelSpectrogram
from vocoder_cli.models.generator import Generator
from vocoder_cli.synthesis.engine import Synthesizer
from vocoder_cli.synthesis.stream_generator import CachedStreamingGenerator
from vocoder_cli.synthesis.vocoder import receptive_field_frames

_EMPTY = np.zeros(0, dtype=np.float32)


def exact_lookahead_frames(synth: Synthesizer) -> int:
    """The look-ahead at which streaming equals offline synthesis: the generator's receptive field in
    frames (15 for V1/V2, 12 for V3), or the engine's context for a model without a generator config."""
    cfg = getattr(synth.vocoder.model, "cfg", None)
    return receptive_field_frames(cfg) if cfg is not None else synth.vocoder.context_frames


def ms_to_frames(ms: float, sample_rate: int, hop: int) -> int:
    """Whole mel frames covering ``ms`` milliseconds (rounded up: at least what was asked)."""
    if ms < 0 or not math.isfinite(ms):
        raise ConfigError(f"a duration in ms must be >= 0, not {ms}")
    return math.ceil(ms * sample_rate / (1000.0 * hop) - 1e-9)


@dataclass(frozen=True)
class StreamOptions:
    """``chunk_ms``: audio synthesised per generator call (latency vs throughput); ``lookahead_ms``: future
    context per chunk, None for the exact receptive-field bound (latency vs error). At the exact bound a
    torch HiFi-GAN streams with cached layer state (:mod:`vocoder_cli.synthesis.stream_generator`, each sample
    computed once, look-ahead exact to the sample); ``cached=False`` (or another model, e.g. ONNX) re-runs
    each chunk with its context."""

    chunk_ms: float = 40.0
    lookahead_ms: float | None = None
    cached: bool = True  # at the exact look-ahead, stream with cached layer state (no recomputed context)


@dataclass(frozen=True)
class StreamLatency:
    """Algorithmic latency in samples at the model's rate: the wait, without compute, between an input
    sample arriving and the output sample at the same time being ready (the worst sample of a chunk)."""

    chunk_frames: int
    lookahead_frames: int
    hop: int
    mel_future: int  # samples of future a mel frame needs beyond its own hop: (n_fft - hop) / 2
    sample_rate: int
    lag_samples: int | None = None  # the cached generator's exact right context (else lookahead * hop)

    @property
    def samples(self) -> int:
        lookahead = self.lookahead_frames * self.hop if self.lag_samples is None else self.lag_samples
        return self.chunk_frames * self.hop + lookahead + self.mel_future

    @property
    def ms(self) -> float:
        return 1000.0 * self.samples / self.sample_rate


class StreamingMel:
    """Samples [n] (float, any block size) -> the offline log-mel frames [n_mels, k] as soon as final.

    State: ``head`` holds the first samples until the left reflect pad is known; then ``buffer`` holds
    the padded signal from the start of the next frame on (float64, < n_fft + block samples).
    """

    def __init__(self, mel_fn: MelSpectrogram) -> None:
        cfg = mel_fn.cfg
        if cfg.center:
            raise ConfigError("streaming needs the HiFi-GAN framing (center=False)")
        self.mel_fn = mel_fn
        self.n_fft, self.hop = cfg.n_fft, cfg.hop_length
        self.pad = (cfg.n_fft - cfg.hop_length) // 2
        self.head = np.zeros(0, dtype=np.float64)
        self.buffer: np.ndarray | None = None  # None until the left pad is known
        self.samples_in = 0
        self.frames_out = 0

    def push(self, samples: np.ndarray) -> torch.Tensor:
        """New final frames [n_mels, k] (k may be 0)."""
        samples = np.asarray(samples, dtype=np.float64).reshape(-1)
        self.samples_in += samples.size
        if self.buffer is None:
            self.head = np.concatenate([self.head, samples])
            if self.head.size <= self.pad:
                return self._no_frames()
            left = self.head[self.pad : 0 : -1]  # x[p], ..., x[1]: torch's reflect pad
            self.buffer, self.head = np.concatenate([left, self.head]), self.head[:0]
        else:
            self.buffer = np.concatenate([self.buffer, samples])
        return self._frames()

    def finish(self) -> torch.Tensor:
        """The remaining frames [n_mels, k], framed against the right reflect pad (end of stream)."""
        if self.buffer is None:
            raise ValueError(
                f"signal of {self.samples_in} samples is too short for the mel frontend (needs > {self.pad})"
            )
        right = self.buffer[-self.pad - 1 : -1][::-1]  # x[N-2], ..., x[N-1-p]
        self.buffer = np.concatenate([self.buffer, right])
        frames = self._frames()
        self.buffer = self.buffer[:0]
        return frames

    def _frames(self) -> torch.Tensor:
        assert self.buffer is not None
        count = (self.buffer.size - self.n_fft) // self.hop + 1 if self.buffer.size >= self.n_fft else 0
        if count == 0:
            return self._no_frames()
        used = torch.from_numpy(self.buffer[: (count - 1) * self.hop + self.n_fft])
        frames = self.mel_fn.from_padded(used[None])[0]
        self.buffer = self.buffer[count * self.hop :]
        self.frames_out += count
        return frames

    def _no_frames(self) -> torch.Tensor:
        return torch.zeros(self.mel_fn.cfg.n_mels, 0)


class StreamingGenerator:
    """Log-mel frames [n_mels, k] (any k) -> waveform samples [k' * hop], one chunk at a time.

    Output frames ``[done, done + chunk)`` are synthesised from ``mel[done - left : done + chunk +
    lookahead]`` as soon as those frames exist; when ``lookahead < receptive``, the window is extended to
    ``receptive`` frames of future with copies of its last frame (a guess that the sound holds). State:
    ``mel`` holds the frames from ``mel_start`` on (the left context of the next chunk and everything
    newer); ``done`` counts frames already output.
    """

    def __init__(
        self,
        generate: Callable[[torch.Tensor], torch.Tensor],
        hop: int,
        n_mels: int,
        *,
        chunk_frames: int,
        lookahead_frames: int,
        left_frames: int,
        receptive_frames: int = 0,
    ) -> None:
        if chunk_frames < 1 or lookahead_frames < 0 or left_frames < 0:
            raise ConfigError("chunk must be >= 1 frame, look-ahead and left context >= 0")
        self.generate = generate  # mel [1, n_mels, F] -> wav [1, F * hop]
        self.hop, self.chunk, self.lookahead, self.left = hop, chunk_frames, lookahead_frames, left_frames
        self.hold = max(0, receptive_frames - lookahead_frames)  # guessed future frames per window
        self.mel = torch.zeros(n_mels, 0)
        self.mel_start = 0  # absolute index of mel[:, 0]
        self.frames_in = 0
        self.done = 0

    def push(self, frames: torch.Tensor) -> np.ndarray:
        """Samples of every chunk that became ready (possibly none)."""
        self.mel = torch.cat([self.mel, frames.float().cpu()], dim=-1)
        self.frames_in += frames.shape[-1]
        out = []
        while self.frames_in - self.done >= self.chunk + self.lookahead:
            out.append(self._synthesise(self.done + self.chunk, self.done + self.chunk + self.lookahead, end=False))
        return np.concatenate(out) if out else _EMPTY

    def finish(self) -> np.ndarray:
        """The frames still owed, against the true end of the mel (what offline synthesis sees)."""
        if self.done == self.frames_in:
            return _EMPTY
        return self._synthesise(self.frames_in, self.frames_in, end=True)

    def _synthesise(self, stop: int, context_stop: int, end: bool) -> np.ndarray:
        lo = max(0, self.done - self.left)
        window = self.mel[:, lo - self.mel_start : context_stop - self.mel_start]
        if self.hold and not end:  # the future is not here yet: assume the newest frame holds
            window = torch.cat([window, window[:, -1:].expand(-1, self.hold)], dim=-1)
        wav = self.generate(window[None])[0]
        out = wav[(self.done - lo) * self.hop : (stop - lo) * self.hop].cpu().numpy().astype(np.float32)
        self.done = stop
        keep_from = max(0, stop - self.left)  # the next chunk's left context
        self.mel = self.mel[:, keep_from - self.mel_start :]
        self.mel_start = keep_from
        return out


class StreamingResynthesizer:
    """Audio in [n] at ``in_rate`` (any block size) -> vocoded audio at ``out_rate``, as soon as final.

    ``push`` returns the samples that became final (often none), ``finish`` the rest; together they give
    exactly ``frames * hop`` samples at the model's rate, the offline length. Input resampling uses
    soxr's streaming resampler (VHQ), which gives the same samples as the one-shot resampler offline.
    """

    def __init__(
        self,
        synth: Synthesizer,
        options: StreamOptions | None = None,
        *,
        in_rate: int | None = None,
        out_rate: int | None = None,
        name: str = "<stream>",
    ) -> None:
        options = options or StreamOptions()
        cfg = synth.vocoder.mel
        self.synth, self.name, self.model_rate = synth, name, cfg.sample_rate
        self.in_rate, self.out_rate = in_rate or cfg.sample_rate, out_rate or cfg.sample_rate
        # The rates size the streaming resamplers' buffers: a header's 1 Hz would grow them without bound.
        if problem := rate_problem(self.in_rate):
            raise AudioError(name, f"input {problem}")
        if problem := rate_problem(self.out_rate):
            raise ConfigError(f"output {problem}")
        exact = exact_lookahead_frames(synth)
        lookahead = (
            exact if options.lookahead_ms is None else ms_to_frames(options.lookahead_ms, cfg.sample_rate, cfg.hop_length)
        )
        chunk = max(1, ms_to_frames(options.chunk_ms, cfg.sample_rate, cfg.hop_length))
        self.exact_lookahead_frames = exact
        mel_future = (cfg.n_fft - cfg.hop_length) // 2
        self.mel = StreamingMel(synth.mel_fn)
        self.generator: StreamingGenerator | CachedStreamingGenerator
        if lookahead >= exact and options.cached and isinstance(synth.vocoder.model, Generator):
            self.generator = CachedStreamingGenerator(
                synth.vocoder.model, chunk, device=synth.device, dtype=synth.dtype, fp32_tail=synth.fp32_tail,
            )
            lag: int | None = self.generator.lag_samples
        else:
            self.generator = StreamingGenerator(
                synth.run_batch,
                cfg.hop_length,
                cfg.n_mels,
                chunk_frames=chunk,
                lookahead_frames=lookahead,
                left_frames=exact,
                receptive_frames=exact,
            )
            lag = None
        self.latency = StreamLatency(chunk, lookahead, cfg.hop_length, mel_future, cfg.sample_rate, lag)
        self.resample_in = self._resampler(self.in_rate, self.model_rate)
        self.resample_out = self._resampler(self.model_rate, self.out_rate)
        self.samples_in = 0  # at in_rate
        self.samples_out = 0  # at out_rate

    @staticmethod
    def _resampler(rate_in: int, rate_out: int) -> soxr.ResampleStream | None:
        if rate_in == rate_out:
            return None
        return soxr.ResampleStream(rate_in, rate_out, 1, dtype="float32", quality="VHQ")

    @property
    def exact(self) -> bool:
        """Whether the output equals offline synthesis (look-ahead >= the receptive field)."""
        return self.latency.lookahead_frames >= self.exact_lookahead_frames

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Mono float samples [n] -> the output samples [m] that became final (m may be 0)."""
        samples = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
        if not np.all(np.isfinite(samples)):
            bad = int(np.count_nonzero(~np.isfinite(samples)))
            raise AudioError(self.name, f"signal contains {bad} NaN/inf samples")
        self.samples_in += samples.size
        if self.resample_in is not None:
            samples = self.resample_in.resample_chunk(samples, last=False)
        return self._vocode(samples, last=False)

    def finish(self) -> np.ndarray:
        """End of stream: the remaining output samples."""
        if self.samples_in == 0:
            raise AudioError(self.name, "zero-length signal (no samples)")
        tail = _EMPTY
        if self.resample_in is not None:
            tail = self.resample_in.resample_chunk(_EMPTY, last=True)
        return self._vocode(tail, last=True)

    def stream(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """Yield output blocks (never empty) as the input blocks arrive, then the tail."""
        for block in blocks:
            out = self.push(block)
            if out.size:
                yield out
        out = self.finish()
        if out.size:
            yield out

    def _vocode(self, samples: np.ndarray, last: bool) -> np.ndarray:
        with torch.inference_mode():
            wav = self.generator.push(self.mel.push(samples))
            if last:
                try:
                    frames = self.mel.finish()
                except ValueError as exc:
                    reason = f"too short ({self.mel.samples_in} samples at {self.model_rate} Hz): {exc}"
                    raise AudioError(self.name, reason) from None
                wav = np.concatenate([wav, self.generator.push(frames), self.generator.finish()])
        if self.resample_out is not None:
            wav = self.resample_out.resample_chunk(wav, last=last)
        self.samples_out += wav.size
        return wav
