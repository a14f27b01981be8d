"""The batch synthesis engine behind `resynth`, `tts`, `report` and `bench`.

Inputs are log-mels; outputs are waveforms trimmed to exactly ``frames * hop`` samples. Mels of similar
length are batched together, and a padded batch gives each item what it gives alone (HiFi-GAN zeroes each
layer's padded tail; other models are batched by equal length only); a mel longer than
``chunk_frames`` is synthesised in chunks overlapped by the generator's receptive field, so the result
equals one-shot synthesis while memory stays flat however long the input is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from vocoder_cli.errors import ConfigError
from vocoder_cli.mel import MelSpectrogram
from vocoder_cli.models.generator import Generator
from vocoder_cli.synthesis.layout import LAYOUT_PRECISIONS, ChannelsLastGenerator
from vocoder_cli.synthesis.precision import check_precision, true_fp32
from vocoder_cli.synthesis.vocoder import Vocoder


@dataclass(frozen=True)
class EngineOptions:
    batch_size: int = 8
    max_batch_frames: int = 16384  # frames per batch, summed over items (bounds memory)
    chunk_frames: int = 2048  # longer mels are synthesised in overlapping chunks
    precision: str = "fp32"  # fp32 | fp16 | bf16 (fp16 on CUDA only, bf16 on CUDA or the CPU)
    cpu_layout: str = "channels-last"  # HiFi-GAN on the CPU: channels-last (synthesis/layout.py) or plain


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
        self.cpu_model: ChannelsLastGenerator | None = None
        if (self.device.type == "cpu" and vocoder.backend == "torch" and isinstance(vocoder.model, Generator)
                and self.options.cpu_layout == "channels-last" and self.options.precision in LAYOUT_PRECISIONS):
            self.cpu_model = ChannelsLastGenerator(vocoder.model, self.options.precision)

    @property
    def model(self) -> torch.nn.Module:
        """The module a batch runs through: the channels-last copy on the CPU, else the vocoder's own model."""
        return self.cpu_model if self.cpu_model is not None else self.vocoder.model

    @property
    def fp32_tail(self) -> bool:
        """Whether the generator's narrow stages and conv_post run float32 under a lower precision
        (Generator.fp32_tail_start)."""
        return self.options.precision != "fp32"

    @property
    def dtype(self) -> torch.dtype:
        """The generator's compute precision: float32, or float16/bfloat16 for ``--precision fp16/bf16``."""
        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[self.options.precision]

    def autocast(self) -> AbstractContextManager:
        """The numeric mode of a generator call: autocast for fp16/bf16; for fp32 on CUDA, cuDNN's TF32 off
        (PyTorch's default runs fp32 convolutions in TF32, which moved trained-weights output by up to 15%
        of peak on an H200; fp32 here means what it means on the CPU)."""
        if self.options.precision == "fp32":
            return true_fp32() if self.device.type == "cuda" else nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    @torch.inference_mode()
    def mel(self, wav: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Log-mel [n_mels, frames] of one waveform at the vocoder's rate (computed on the engine's device)."""
        tensor = torch.as_tensor(wav, dtype=torch.float32, device=self.device)
        return self.mel_fn(tensor[None])[0]

    @property
    def pads_exactly(self) -> bool:
        """Whether a batch of unequal lengths gives every item exactly its own output: HiFi-GAN on torch zeroes
        each layer's padded tail (``Generator.generate(lengths=...)``). Other models (ONNX, Griffin-Lim) are
        batched with items of equal length only."""
        return self.vocoder.backend == "torch" and isinstance(self.vocoder.model, Generator)

    @torch.inference_mode()
    def run_batch(self, batch: torch.Tensor, lengths: Sequence[int] | None = None) -> torch.Tensor:
        """One forward pass, no batching or chunking: mel [B, n_mels, frames] -> float32 audio
        [B, frames * hop] on the engine's device (for callers that cut their own windows, e.g. streaming).
        ``lengths``: each item's frames in a padded batch (where :attr:`pads_exactly`).
        HiFi-GAN on the CPU runs the channels-last copy made once at construction (its precision built in)."""
        if self.cpu_model is not None:
            return self.cpu_model(batch.to(self.device), lengths)[:, 0]
        with self.autocast():
            if self.fp32_tail or lengths is not None:
                out = self.vocoder.model.generate(batch.to(self.device), fp32_tail=self.fp32_tail, lengths=lengths)
            else:
                out = self.vocoder.model(batch.to(self.device))
        return out.float()[:, 0]

    def padded_batch(self, mels: Sequence[torch.Tensor]) -> torch.Tensor:
        """Mels [n_mels, frames_i] -> one batch [B, n_mels, max frames] on the engine's device, the shorter
        ones padded with the silence level."""
        fill = self.vocoder.mel.silence_level
        batch = torch.full((len(mels), mels[0].shape[0], max(m.shape[-1] for m in mels)), fill, device=self.device)
        for i, m in enumerate(mels):
            batch[i, :, : m.shape[-1]] = m.to(self.device)
        return batch

    def _one_shot_batch(self, mels: Sequence[torch.Tensor]) -> list[np.ndarray]:
        hop = self.vocoder.hop_length
        lengths = [m.shape[-1] for m in mels]
        padded = self.pads_exactly and min(lengths) < max(lengths)
        wavs = self.run_batch(self.padded_batch(mels), lengths if padded else None)
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
        """Indices grouped by similar length (equal length where padding would change the output: not
        :attr:`pads_exactly`): sorted, then cut by batch size and total frames."""
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        group: list[int] = []
        for i in order:
            if group and (
                len(group) >= self.options.batch_size
                or (len(group) + 1) * lengths[i] > self.options.max_batch_frames
                or (not self.pads_exactly and lengths[i] != lengths[group[0]])
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
