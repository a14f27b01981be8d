"""``load()`` and :class:`Vocoder`: weights by name or path, then mel <-> audio in that vocoder's recipe.

A :class:`Vocoder` is the batch engine (:class:`~vocoder_cli.synthesis.engine.Synthesizer`) with a tensor
interface: ``mel(audio)`` computes the log-mel the weights were trained on, ``vocode(mel)`` turns log-mels
into audio of exactly ``frames * hop_length`` samples, ``stream(blocks)`` vocodes audio as it arrives.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from vocoder_cli.api.devices import pick_device
from vocoder_cli.api.notes import Notify, log_notice
from vocoder_cli.errors import AudioError, ConfigError
from vocoder_cli.mel import MelConfig, check_mel_fits
from vocoder_cli.synthesis.engine import EngineOptions, Synthesizer
from vocoder_cli.synthesis.streaming import StreamingResynthesizer, StreamOptions


class Vocoder:
    """A loaded vocoder on one device. Build it with :func:`load`.

    Attributes: ``name`` (weights name or path), ``mel_config`` (the recipe its mels follow),
    ``sample_rate`` (Hz), ``hop_length`` (samples per mel frame), ``n_mels``, ``device``, ``backend``
    (torch or onnx), ``precision`` (fp32, bf16, fp16). ``engine`` is the underlying batch engine.
    """

    def __init__(self, engine: Synthesizer) -> None:
        self.engine = engine

    @classmethod
    def from_model(
        cls,
        model: torch.nn.Module,
        mel_config: MelConfig | None = None,
        *,
        device: str | None = None,
        precision: str = "fp32",
        name: str = "model",
        context_frames: int | None = None,
        batch_size: int = 8,
        chunk_frames: int = 2048,
    ) -> Vocoder:
        """Wrap a generator in memory, e.g. the one a training loop is updating, to validate it without
        writing a file.

        ``model``: our :class:`~vocoder_cli.models.Generator` (weight norm on or off) or any module mapping
        log-mels [B, n_mels, F] to audio [B, 1, F * hop]. ``mel_config``: the recipe it was trained on
        (default: hifigan-22k). ``device``: default, where the model's parameters are. ``context_frames``:
        frames of context each side when a long mel is vocoded in chunks (default: the exact receptive field
        of our Generator; 32 for other modules, so give ``chunk_frames`` above your longest mel there).
        On the CPU the engine runs a copy made now (build the Vocoder again after more training steps); on
        CUDA it runs the module itself, in inference mode."""
        from vocoder_cli.models.generator import Generator
        from vocoder_cli.synthesis.vocoder import Vocoder as _Raw
        from vocoder_cli.synthesis.vocoder import receptive_field_frames

        mel = mel_config or MelConfig()
        if isinstance(model, Generator):
            if model.cfg.hop_length != mel.hop_length:
                raise ConfigError(f"the generator upsamples by {model.cfg.hop_length}, the mel hop is {mel.hop_length}")
            context = receptive_field_frames(model.cfg) + 2 if context_frames is None else context_frames
        else:
            context = 32 if context_frames is None else context_frames
        first = next(model.parameters(), None)
        where = pick_device(device if device is not None else (first.device if first is not None else "cpu"))
        options = EngineOptions(batch_size=batch_size, chunk_frames=chunk_frames, precision=precision)
        return cls(Synthesizer(_Raw(model, mel, name, context), where, options))

    def __repr__(self) -> str:
        return (f"Vocoder({self.name!r}, device={self.device!r}, backend={self.backend!r}, "
                f"precision={self.precision!r}, sample_rate={self.sample_rate})")

    @property
    def name(self) -> str:
        return self.engine.vocoder.name

    @property
    def mel_config(self) -> MelConfig:
        return self.engine.vocoder.mel

    @property
    def sample_rate(self) -> int:
        return self.mel_config.sample_rate

    @property
    def hop_length(self) -> int:
        return self.mel_config.hop_length

    @property
    def n_mels(self) -> int:
        return self.mel_config.n_mels

    @property
    def device(self) -> str:
        return str(self.engine.device)

    @property
    def backend(self) -> str:
        return self.engine.vocoder.backend

    @property
    def precision(self) -> str:
        return self.engine.options.precision

    @torch.inference_mode()
    def mel(self, audio: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Natural-log mel in this vocoder's recipe.

        ``audio``: float waveform [T] or [B, T] at :attr:`sample_rate`, in [-1, 1]. Returns float32
        [B, n_mels, T // hop_length] on :attr:`device` (B = 1 for a 1-d input). Raises AudioError for
        NaN/inf samples or a signal shorter than half a window."""
        wav = torch.as_tensor(audio).detach().to(self.engine.device, torch.float32)
        if wav.dim() == 1:
            wav = wav[None]
        if wav.dim() != 2:
            raise AudioError("<tensor>", f"expected audio [T] or [B, T], got shape {tuple(wav.shape)}")
        if not torch.isfinite(wav).all():
            raise AudioError("<tensor>", "signal contains NaN/inf samples")
        try:
            return self.engine.mel_fn(wav)
        except (RuntimeError, ValueError) as exc:
            raise AudioError("<tensor>", f"too short ({wav.shape[-1]} samples at {self.sample_rate} Hz): {exc}") from None

    def vocode(
        self,
        mel: torch.Tensor | Sequence[torch.Tensor],
        lengths: Sequence[int] | torch.Tensor | None = None,
    ) -> torch.Tensor | list[torch.Tensor]:
        """Audio from natural-log mels in this vocoder's recipe (check ``mel_config``).

        - ``mel`` [n_mels, F] -> float32 audio [F * hop_length];
        - ``mel`` [B, n_mels, F] -> [B, F * hop_length];
        - ``mel`` [B, n_mels, F] with ``lengths`` (B frame counts, a padded batch) -> a list of B tensors,
          item i exactly ``lengths[i] * hop_length`` samples (padding never leaks into the audio);
        - a list of [n_mels, F_i] -> a list of [F_i * hop_length].

        Audio comes back on the CPU at :attr:`sample_rate`. Items are batched by length and long ones
        synthesised in overlapping chunks (equal to one pass within float rounding). A mel that cannot
        come from this recipe (shape, log base, NaN) is a MelMismatchError."""
        if isinstance(mel, torch.Tensor):
            if mel.dim() == 2:
                return self._run([mel])[0]
            if mel.dim() != 3:
                check_mel_fits(mel, self.mel_config)  # names the expected shape
            if lengths is None:
                return torch.stack(self._run(list(mel)))
            counts = [int(n) for n in lengths]
            if len(counts) != mel.shape[0] or any(not 0 < n <= mel.shape[-1] for n in counts):
                raise ConfigError(f"lengths {counts} do not fit a batch of {mel.shape[0]} mels of {mel.shape[-1]} frames")
            return self._run([m[:, :n] for m, n in zip(mel, counts)])
        if lengths is not None:
            raise ConfigError("lengths applies to a padded [B, n_mels, frames] tensor, not a list of mels")
        return self._run(list(mel))

    def _run(self, mels: list[torch.Tensor]) -> list[torch.Tensor]:
        items = [m.detach().float() for m in mels]
        for i, m in enumerate(items):
            check_mel_fits(m, self.mel_config, name=f"mel {i}" if len(items) > 1 else "mel")
        return [torch.from_numpy(w) for w in self.engine.synthesize(items)]

    def streamer(
        self,
        *,
        in_rate: int | None = None,
        out_rate: int | None = None,
        chunk_ms: float = 40.0,
        lookahead_ms: float | None = None,
    ) -> StreamingResynthesizer:
        """A push-style stream: ``s.push(samples) -> final samples so far``, ``s.finish() -> the rest``.

        ``in_rate``/``out_rate``: Hz of the audio pushed in and given back (default :attr:`sample_rate`).
        ``chunk_ms``: audio per generator call (latency vs throughput). ``lookahead_ms``: future context;
        None is the exact bound, where the stream equals offline resynthesis. ``s.latency.ms`` is the
        algorithmic latency in milliseconds."""
        options = StreamOptions(chunk_ms=chunk_ms, lookahead_ms=lookahead_ms)
        return StreamingResynthesizer(self.engine, options, in_rate=in_rate, out_rate=out_rate)

    def stream(
        self,
        blocks: Iterable[np.ndarray | torch.Tensor],
        *,
        in_rate: int | None = None,
        out_rate: int | None = None,
        chunk_ms: float = 40.0,
        lookahead_ms: float | None = None,
    ) -> Iterator[np.ndarray]:
        """Resynthesise audio as it arrives: mono float blocks [n] (any sizes) in, float32 blocks out as
        soon as each sample is final (never empty blocks). Together the output has the length offline
        resynthesis gives. Options as :meth:`streamer`."""
        stream = self.streamer(in_rate=in_rate, out_rate=out_rate, chunk_ms=chunk_ms, lookahead_ms=lookahead_ms)
        yield from stream.stream(np.asarray(torch.as_tensor(b).detach().cpu(), dtype=np.float32) for b in blocks)


def load(
    name_or_path: str | Path | None = None,
    device: str = "cpu",
    precision: str = "fp32",
    backend: str = "auto",
    *,
    offline: bool | None = None,
    notify: Notify | None = log_notice,
    batch_size: int = 8,
    chunk_frames: int = 2048,
    streaming: bool = False,
) -> Vocoder:
    """Load a vocoder.

    ``name_or_path``: a weights name (``vocoder weights list``; None or ``"default"`` is
    hifigan-universal-v1, any speaker), a ``.safetensors`` or exported ``.onnx`` path, or ``"griffin-lim"``
    (no weights). A registered name missing from the cache is fetched on first use, as the CLI does
    (``notify`` hears one line first; default: the ``vocoder_cli`` logger); ``offline=True`` (or ``VOCODER_OFFLINE=1``) makes that a WeightsError
    that says what to run instead.

    ``device``: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``. ``precision``: ``fp32``; ``bf16`` (CUDA, or a
    CPU with AVX512-BF16/AMX) or ``fp16`` (CUDA) for HiFi-GAN weights. ``backend``: ``torch``, ``onnx``
    (ONNX Runtime, CPU) or ``auto`` (on the CPU, the faster of both for these weights, timed once and
    remembered; torch elsewhere, with a lower precision, or with ``streaming=True``). ``batch_size``: mels
    per forward pass; ``chunk_frames``: longer mels are vocoded in overlapping chunks of this many frames.
    Raises ConfigError or WeightsError before anything runs."""
    from vocoder_cli.synthesis.precision import resolve_backend
    from vocoder_cli.synthesis.vocoder import load_vocoder
    from vocoder_cli.weights.registry import DEFAULT_ALIAS

    device = pick_device(device)
    if batch_size < 1 or chunk_frames < 1:
        raise ConfigError(f"batch_size and chunk_frames must be positive, got {batch_size} and {chunk_frames}")
    backend = resolve_backend(backend, precision, device, streaming=streaming)
    weights = DEFAULT_ALIAS if name_or_path is None else str(name_or_path)
    raw = load_vocoder(weights, device, offline=offline, notify=notify, backend=backend)
    options = EngineOptions(batch_size=batch_size, chunk_frames=chunk_frames, precision=precision)
    return Vocoder(Synthesizer(raw, device, options))
