"""The batch synthesis engine behind `resynth`, `tts` and `bench`.

Inputs are log-mels; outputs are waveforms trimmed to exactly ``frames * hop`` samples (padding a
batch never leaves a buzzing tail). Mels of similar length are batched together; a mel longer than
``chunk_frames`` is synthesised in chunks overlapped by the generator's receptive field, so the result
equals one-shot synthesis while memory stays flat however long the input is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vocoder_cli.backends import choose_backend, onnx_exporter_available
from vocoder_cli.backends.onnx import ACCURACY_BAR, cache_path, cached_export, is_onnx_path, load_onnx
from vocoder_cli.backends.tune import choice_key, measure_faster, remembered_backend
from vocoder_cli.errors import ConfigError, WeightsError
from vocoder_cli.mel import MelConfig, MelSpectrogram, mel_preset
from vocoder_cli.models.config import GeneratorConfig
from vocoder_cli.models.generator import Generator

GRIFFIN_LIM = "griffin-lim"


def receptive_field_frames(cfg: GeneratorConfig) -> int:
    """Mel frames on each side that influence an output sample (exact bound, from the layer shapes)."""

    def resblock_halfwidth(kernel: int, dilations: tuple[int, ...]) -> int:
        per_conv = sum((kernel - 1) * d // 2 for d in dilations)
        return per_conv + (len(dilations) * (kernel - 1) // 2 if cfg.resblock == "1" else 0)

    half = 3  # conv_post, in output samples
    blocks = max(resblock_halfwidth(k, d) for k, d in zip(cfg.resblock_kernel_sizes, cfg.resblock_dilation_sizes))
    for rate, kernel in reversed(list(zip(cfg.upsample_rates, cfg.upsample_kernel_sizes))):
        half += blocks
        half = math.ceil((half + kernel) / rate)  # through the transposed conv, back to its input rate
    return half + 3  # conv_pre


@dataclass
class Vocoder:
    """A mel -> waveform model with the mel config it expects."""

    model: nn.Module
    mel: MelConfig
    name: str
    context_frames: int
    backend: str = "torch"  # torch | onnx (what runs ``model``)

    @property
    def hop_length(self) -> int:
        return self.mel.hop_length


def load_vocoder(
    weights: str,
    device: str | torch.device = "cpu",
    *,
    offline: bool | None = None,
    notify: Callable[[str], None] | None = None,
    backend: str = "torch",
) -> Vocoder:
    """``griffin-lim`` (no weights), a weights file path (``.safetensors`` or our ``.onnx``), or a weights
    name (``default`` included).

    A registered name missing from the cache is pulled first (``notify`` gets one line saying what and
    from where), unless offline mode is on (``offline=True`` or ``VOCODER_OFFLINE=1``): then it is an
    error that gives the command to run. ``backend`` is torch, onnx or auto (see
    :func:`vocoder_cli.backends.choose_backend`); safetensors weights on the onnx backend are exported
    once to a cached ONNX file (``notify`` says so).
    """
    if weights == GRIFFIN_LIM:
        from vocoder_cli.griffinlim import GriffinLim

        mel = mel_preset("hifigan-22k")
        return Vocoder(GriffinLim(mel).to(device).eval(), mel, GRIFFIN_LIM, context_frames=16)
    from vocoder_cli.weights.download import sha256_of
    from vocoder_cli.weights.resolve import canonical_name, ensure_weights

    path = ensure_weights(weights, offline=offline, notify=notify)
    label = str(path) if Path(weights).expanduser().is_file() else canonical_name(weights)
    if is_onnx_path(path):
        if backend == "torch":
            raise WeightsError(f"{path}: an ONNX model runs on the onnx backend only (--backend onnx or auto)")
        return _onnx_vocoder(path, label, str(device))[0]
    if choose_backend(backend, str(device)) == "onnx":
        digest = sha256_of(path)
        cached = cache_path(path, sha256=digest)  # keyed by the weights' sha256, the opset and the ORT version
        exportable = cached.is_file() or onnx_exporter_available()
        if choose_backend(backend, str(device), exportable=exportable) == "onnx":
            key = choice_key(digest, torch.get_num_threads()) if backend == "auto" else None
            remembered = remembered_backend(key) if key else None
            if remembered == "torch":  # measured faster here before: no ONNX session needed
                return _torch_vocoder(path, label, device)
            if notify is not None and not cached.is_file():
                notify(f"exporting {label} to ONNX for the onnx backend (once; cached in {cached.parent})")
            vocoder, passed = _onnx_vocoder(cached_export(path, cached), label, str(device))
            if choose_backend(backend, str(device), onnx_checked=passed) == "onnx":
                if key is None or remembered == "onnx":
                    return vocoder
                return _faster(_torch_vocoder(path, label, device), vocoder, key, notify)
    return _torch_vocoder(path, label, device)


def _torch_vocoder(path: Path, label: str, device: str | torch.device) -> Vocoder:
    from vocoder_cli.weights.format import load_generator

    loaded = load_generator(path, device)
    if loaded.mel.center:
        raise WeightsError(f"{path}: generators trained on centred mels are not supported for synthesis")
    return Vocoder(loaded.generator, loaded.mel, label, receptive_field_frames(loaded.config) + 2)


def _faster(torch_vocoder: Vocoder, onnx_vocoder: Vocoder, key: str, notify: Callable[[str], None] | None) -> Vocoder:
    """``auto`` on the CPU, first time for these weights here: time both, keep and remember the faster."""
    from vocoder_cli.bench import speech_mel

    mel = torch_vocoder.mel
    choice = measure_faster(
        {"torch": torch_vocoder.model, "onnx": onnx_vocoder.model},
        lambda: speech_mel(mel, 2.0)[None],
        key,
        notify=notify,
        hop_seconds=mel.hop_length / mel.sample_rate,
    )
    return onnx_vocoder if choice.backend == "onnx" else torch_vocoder


def _onnx_vocoder(path: Path, label: str, device: str) -> tuple[Vocoder, bool]:
    """One of our ONNX files as a Vocoder, and whether its export passed the accuracy check."""
    if not device.startswith("cpu"):
        raise WeightsError(f"the onnx backend runs on the CPU, not {device}: use --backend torch there")
    loaded = load_onnx(path)
    if loaded.mel.center:
        raise WeightsError(f"{path}: generators trained on centred mels are not supported for synthesis")
    context = receptive_field_frames(loaded.config) + 2
    return Vocoder(loaded.generator, loaded.mel, label, context, backend="onnx"), loaded.max_rel_error <= ACCURACY_BAR


def cpu_has_native_bf16() -> bool:
    """Whether oneDNN runs bf16 convolutions natively here (AVX512-BF16 or AMX); elsewhere bf16 is emulated
    and slower than fp32."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def precision_note(precision: str, device: str | torch.device, native_bf16: bool) -> str | None:
    """A warning worth printing for this precision here, or None: bf16 on a CPU without native bf16 runs
    emulated and is slower than fp32 (``native_bf16``: :func:`cpu_has_native_bf16`)."""
    if precision == "bf16" and torch.device(device).type == "cpu" and not native_bf16:
        return ("this CPU has no native bf16 (AVX512-BF16 or AMX): --precision bf16 is emulated here and likely "
                "slower than fp32 (vocoder bench synth --backend torch,torch-bf16 measures it)")
    return None


def check_precision(precision: str, device: torch.device, backend: str = "torch") -> None:
    """Refuse a precision this device/backend cannot run, with the reason (ConfigError)."""
    if precision not in ("fp32", "fp16", "bf16"):
        raise ConfigError(f"--precision must be fp32, fp16 or bf16, not {precision!r}")
    if precision == "fp32":
        return
    if backend != "torch":
        raise ConfigError(f"--precision {precision} needs --backend torch (the {backend} backend runs fp32)")
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("--precision fp16 runs on CUDA only; on the CPU use bf16")


def true_fp32() -> AbstractContextManager:
    """cuDNN convolutions in full float32 (TF32 off), every other cuDNN setting as it is."""
    cudnn = torch.backends.cudnn
    return cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic,
                       allow_tf32=False)


def resolve_backend(backend: str, precision: str, device: str | torch.device, streaming: bool = False) -> str:
    """The backend to load for ``--backend`` at ``--precision``, checked before anything is loaded or
    exported. ``auto`` means torch with a lower precision (ONNX Runtime runs our exports in fp32) and when
    streaming (the cached-layer-state engine needs the torch generator; ONNX would re-run every chunk with
    its context: V1 streamed at RTF 2.69 on ONNX against 0.43 cached, docs/performance.md)."""
    backend = "torch" if backend == "auto" and (precision != "fp32" or streaming) else backend
    check_precision(precision, torch.device(device), "torch" if backend == "auto" else backend)
    return backend


@dataclass(frozen=True)
class EngineOptions:
    batch_size: int = 8
    max_batch_frames: int = 16384  # frames per batch, summed over items (bounds memory)
    chunk_frames: int = 2048  # longer mels are synthesised in overlapping chunks
    precision: str = "fp32"  # fp32 | fp16 | bf16 (autocast; fp16 on CUDA only, bf16 on CUDA or the CPU)


class Synthesizer:
    """Batched, chunked, inference-mode synthesis on one device."""

    def __init__(self, vocoder: Vocoder, device: str | torch.device = "cpu", options: EngineOptions | None = None):
        self.vocoder = vocoder
        self.device = torch.device(device)
        self.options = options or EngineOptions()
        self.mel_fn = MelSpectrogram(vocoder.mel)
        check_precision(self.options.precision, self.device, vocoder.backend)
        if self.options.precision != "fp32" and not isinstance(vocoder.model, Generator):
            raise ConfigError(f"--precision {self.options.precision} applies to HiFi-GAN weights, not {vocoder.name}")

    @property
    def fp32_tail(self) -> bool:
        """Whether the generator's output-rate stage runs float32 under a lower precision (Generator.generate)."""
        return self.options.precision != "fp32"

    def autocast(self) -> AbstractContextManager:
        """The numeric mode of a generator call: autocast for fp16/bf16; for fp32 on CUDA, cuDNN's TF32 off
        (PyTorch's default runs fp32 convolutions in TF32, which moved trained-weights output by up to 15%
        of peak on an H200; fp32 here means what it means on the CPU)."""
        if self.options.precision == "fp32":
            return true_fp32() if self.device.type == "cuda" else nullcontext()
        dtype = torch.float16 if self.options.precision == "fp16" else torch.bfloat16
        return torch.autocast(self.device.type, dtype=dtype)

    @torch.inference_mode()
    def mel(self, wav: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Log-mel [n_mels, frames] of one waveform at the vocoder's rate (computed on the engine's device)."""
        tensor = torch.as_tensor(wav, dtype=torch.float32, device=self.device)
        return self.mel_fn(tensor[None])[0]

    @torch.inference_mode()
    def run_batch(self, batch: torch.Tensor) -> torch.Tensor:
        """One forward pass, no batching or chunking: mel [B, n_mels, frames] -> float32 audio
        [B, frames * hop] on the engine's device (for callers that cut their own windows, e.g. streaming)."""
        with self.autocast():
            if self.fp32_tail:
                out = self.vocoder.model.generate(batch.to(self.device), fp32_tail=True)
            else:
                out = self.vocoder.model(batch.to(self.device))
        return out.float()[:, 0]

    def _one_shot_batch(self, mels: Sequence[torch.Tensor]) -> list[np.ndarray]:
        hop = self.vocoder.hop_length
        longest = max(m.shape[-1] for m in mels)
        fill = self.vocoder.mel.silence_level
        batch = torch.full((len(mels), mels[0].shape[0], longest), fill, device=self.device)
        for i, m in enumerate(mels):
            batch[i, :, : m.shape[-1]] = m.to(self.device)
        wavs = self.run_batch(batch)
        return [wavs[i, : m.shape[-1] * hop].cpu().numpy() for i, m in enumerate(mels)]

    def synthesize_long(self, mel: torch.Tensor, on_chunk: Callable[[float], None] | None = None) -> np.ndarray:
        """Chunked synthesis of one mel [n_mels, frames]; equals one-shot within float rounding.
        ``on_chunk(fraction)`` is told the share of the frames done after each chunk (progress bars)."""
        hop, ctx, size = self.vocoder.hop_length, self.vocoder.context_frames, self.options.chunk_frames
        frames = mel.shape[-1]
        out = np.empty(frames * hop, dtype=np.float32)
        for start in range(0, frames, size):
            stop = min(start + size, frames)
            lo, hi = max(0, start - ctx), min(frames, stop + ctx)
            wav = self.run_batch(mel[None, :, lo:hi].to(self.device))[0]
            out[start * hop : stop * hop] = wav[(start - lo) * hop : (stop - lo) * hop].cpu().numpy()
            if on_chunk is not None:
                on_chunk(stop / frames)
        return out

    def batches(self, lengths: Sequence[int]) -> Iterator[list[int]]:
        """Indices grouped by similar length: sorted, then cut by batch size and total frames."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        group: list[int] = []
        for i in order:
            if group and (
                len(group) >= self.options.batch_size
                or (len(group) + 1) * lengths[i] > self.options.max_batch_frames
            ):
                yield group
                group = []
            group.append(i)
        if group:
            yield group

    def each_batch(
        self, mels: Sequence[torch.Tensor], on_chunk: Callable[[int, float], None] | None = None
    ) -> Iterator[tuple[list[int], list[np.ndarray]]]:
        """Synthesise ``mels`` batch by batch, yielding ``(indices, waveforms)`` as each batch is done, so a
        caller can write (and count) each output as soon as it exists. Mels longer than ``chunk_frames`` come
        alone, chunked; ``on_chunk(index, fraction)`` follows their chunks."""
        short = [i for i, m in enumerate(mels) if m.shape[-1] <= self.options.chunk_frames]
        for group in self.batches([mels[i].shape[-1] for i in short]):
            idx = [short[g] for g in group]
            yield idx, self._one_shot_batch([mels[i] for i in idx])
        for i in (i for i, m in enumerate(mels) if m.shape[-1] > self.options.chunk_frames):
            report = None if on_chunk is None else (lambda fraction, i=i: on_chunk(i, fraction))
            yield [i], [self.synthesize_long(mels[i], report)]

    def synthesize(self, mels: Sequence[torch.Tensor]) -> list[np.ndarray]:
        """Waveforms for many mels, in input order; each exactly ``frames * hop`` samples long."""
        results: list[np.ndarray | None] = [None] * len(mels)
        for idx, wavs in self.each_batch(mels):
            for i, wav in zip(idx, wavs):
                results[i] = wav
        return [r for r in results if r is not None]  # every slot is filled above
