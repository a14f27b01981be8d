"""A HiFi-GAN generator that streams with cached layer state: each sample is computed once.

The chunked streaming of :class:`vocoder_cli.synthesis.streaming.StreamingGenerator` re-synthesises every chunk with
its receptive field of context on both sides (about 6x the offline work at a 40 ms chunk). Here every
layer keeps the little state it needs instead, so a chunk costs what offline synthesis of that chunk
costs, and the output equals offline synthesis up to float rounding:

- a stride-1 convolution keeps the last ``dilation * (kernel - 1)`` inputs and outputs only the samples
  whose whole window has arrived ("valid" convolution over the buffered signal); the offline zero padding
  is its initial state (``padding`` zeros) and, at the end of the stream, ``padding`` zeros appended;
- a transposed convolution (stride ``u``) overlap-adds: each input sample's ``kernel`` outputs are added
  into a running tail, and the ``u`` samples per input that no later input can reach are emitted;
- a residual connection delays its input by its branch's lag and adds it to the branch's output; the
  multi-receptive-field sum emits as many samples as its slowest block has produced.

So an output sample leaves as soon as its receptive field has arrived: the look-ahead is the exact
bound, in samples (:attr:`CachedStreamingGenerator.lag_samples`), not rounded up to frames. Layers are
taken from a :class:`vocoder_cli.models.Generator` (ResBlock1 and ResBlock2); anything else is refused.
Tensors are [batch, channels, time] throughout.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vocoder_cli.errors import ConfigError
from vocoder_cli.models.generator import LRELU_SLOPE, Generator, ResBlock1, ResBlock2


class _Layer:
    """push(x [B, C, n]) -> the output samples [B, C', m] that became final; finish() -> the rest.
    ``lag``: output samples (at this layer's output rate) still owed after ``n`` inputs, in steady state."""

    lag: int

    def push(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def finish(self) -> torch.Tensor:
        raise NotImplementedError


class _Conv(_Layer):
    """Stride-1 'same' Conv1d, optionally after a leaky ReLU, over a buffer of the last inputs."""

    def __init__(self, conv: nn.Conv1d, slope: float | None) -> None:
        (kernel,), (dilation,), (padding,), (stride,) = conv.kernel_size, conv.dilation, conv.padding, conv.stride
        span = dilation * (kernel - 1)
        if stride != 1 or conv.groups != 1 or 2 * padding != span or conv.padding_mode != "zeros":
            raise ConfigError(f"cannot stream {conv}: only stride-1, zero-padded 'same' convolutions")
        self.conv, self.slope, self.span, self.padding, self.lag = conv, slope, span, padding, padding
        self.buffer: torch.Tensor | None = None  # [B, C_in, <= span]: the window's past

    def _start(self, like: torch.Tensor) -> torch.Tensor:
        return like.new_zeros(like.shape[0], self.conv.in_channels, self.padding)  # the offline left pad

    def push(self, x: torch.Tensor) -> torch.Tensor:
        if self.slope is not None:
            x = F.leaky_relu(x, self.slope)
        buffer = torch.cat([self._start(x) if self.buffer is None else self.buffer, x], dim=-1)
        return self._convolve(buffer)

    def finish(self) -> torch.Tensor:
        assert self.buffer is not None, "finish() before any push()"
        return self._convolve(torch.cat([self.buffer, self._start(self.buffer)], dim=-1))  # the right pad

    def _convolve(self, buffer: torch.Tensor) -> torch.Tensor:
        if buffer.shape[-1] <= self.span:  # not one whole window yet
            self.buffer = buffer
            return buffer.new_zeros(buffer.shape[0], self.conv.out_channels, 0)
        self.buffer = buffer[..., buffer.shape[-1] - self.span :]  # the next window's past
        return F.conv1d(buffer, self.conv.weight, self.conv.bias, dilation=self.conv.dilation)


class _ConvTranspose(_Layer):
    """ConvTranspose1d (stride u, kernel k, padding (k - u) / 2) after a leaky ReLU, by overlap-add."""

    def __init__(self, conv: nn.ConvTranspose1d, slope: float) -> None:
        (kernel,), (stride,), (padding,) = conv.kernel_size, conv.stride, conv.padding
        if kernel - stride != 2 * padding or conv.dilation != (1,) or conv.output_padding != (0,) or conv.groups != 1:
            raise ConfigError(f"cannot stream {conv}: only kernel - stride == 2 * padding")
        self.conv, self.slope, self.stride, self.padding, self.lag = conv, slope, stride, padding, padding
        self.tail: torch.Tensor | None = None  # [B, C_out, k - u] partial sums, starting at the next output
        self.to_crop = padding  # output samples before time 0 (the offline padding crops them)

    def push(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        if x.shape[-1] == 0:
            return x.new_zeros(x.shape[0], c.out_channels, 0)
        full = F.conv_transpose1d(F.leaky_relu(x, self.slope), c.weight, None, stride=self.stride)
        if self.tail is not None:
            full[..., : self.tail.shape[-1]] += self.tail
        ready = x.shape[-1] * self.stride  # no later input reaches these
        self.tail = full[..., ready:]
        out = full[..., self.to_crop : ready]
        self.to_crop = max(0, self.to_crop - ready)
        return self._bias(out)

    def finish(self) -> torch.Tensor:
        assert self.tail is not None, "finish() before any push()"
        return self._bias(self.tail[..., self.to_crop : self.to_crop + self.padding])  # the rest, up to n * u

    def _bias(self, out: torch.Tensor) -> torch.Tensor:
        return out if self.conv.bias is None else out + self.conv.bias[:, None]


class _Sequence(_Layer):
    def __init__(self, layers: list[_Layer], rates: list[int] | None = None) -> None:
        self.layers = layers
        lag = 0
        for layer, rate in zip(layers, rates or [1] * len(layers)):
            lag = lag * rate + layer.lag  # a transposed conv multiplies the lag before it by its stride
        self.lag = lag

    def push(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer.push(x)
        return x

    def finish(self) -> torch.Tensor:
        out: torch.Tensor | None = None
        for layer in self.layers:
            flushed = layer.finish() if out is None else torch.cat([layer.push(out), layer.finish()], dim=-1)
            out = flushed
        assert out is not None
        return out


class _Residual(_Layer):
    """branch(x) + x, with x held back until the branch has caught up."""

    def __init__(self, branch: _Layer) -> None:
        self.branch, self.lag = branch, branch.lag
        self.held: torch.Tensor | None = None

    def push(self, x: torch.Tensor) -> torch.Tensor:
        self.held = x if self.held is None else torch.cat([self.held, x], dim=-1)
        return self._add(self.branch.push(x))

    def finish(self) -> torch.Tensor:
        return self._add(self.branch.finish())

    def _add(self, y: torch.Tensor) -> torch.Tensor:
        assert self.held is not None
        n = y.shape[-1]
        out, self.held = y + self.held[..., :n], self.held[..., n:]
        return out


class _MeanOfBlocks(_Layer):
    """(block_0(x) + block_1(x) + ...) / count: the multi-receptive-field fusion, emitted in step."""

    def __init__(self, blocks: list[_Layer]) -> None:
        self.blocks, self.lag = blocks, max(b.lag for b in blocks)
        self.pending: list[torch.Tensor | None] = [None] * len(blocks)

    def push(self, x: torch.Tensor) -> torch.Tensor:
        return self._emit([b.push(x) for b in self.blocks])

    def finish(self) -> torch.Tensor:
        return self._emit([b.finish() for b in self.blocks])

    def _emit(self, new: list[torch.Tensor]) -> torch.Tensor:
        self.pending = [y if p is None else torch.cat([p, y], dim=-1) for p, y in zip(self.pending, new)]
        n = min(p.shape[-1] for p in self.pending if p is not None)
        total = self.pending[0][..., :n]  # the offline order: ((b0 + b1) + b2) / 3
        for p in self.pending[1:]:
            total = total + p[..., :n]
        self.pending = [p[..., n:] for p in self.pending]
        return total / len(self.blocks)


class _Elementwise(_Layer):
    """A stateless function of each sample (tanh): nothing is owed at the end."""

    lag = 0

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.fn = fn
        self.empty: torch.Tensor | None = None  # [B, C, 0], what finish() returns

    def push(self, x: torch.Tensor) -> torch.Tensor:
        self.empty = x[..., :0]
        return self.fn(x)

    def finish(self) -> torch.Tensor:
        assert self.empty is not None, "finish() before any push()"
        return self.empty


def _resblock(block: nn.Module) -> _Layer:
    if isinstance(block, ResBlock1):
        pairs = [_Residual(_Sequence([_Conv(c1, LRELU_SLOPE), _Conv(c2, LRELU_SLOPE)]))
                 for c1, c2 in zip(block.convs1, block.convs2)]
        return _Sequence(list(pairs))
    if isinstance(block, ResBlock2):
        return _Sequence([_Residual(_Conv(conv, LRELU_SLOPE)) for conv in block.convs])
    raise ConfigError(f"cannot stream a {type(block).__name__}")


class _Float32(_Layer):
    """The wrapped layers in float32 with autocast off: :meth:`Generator.generate`'s ``fp32_tail``."""

    def __init__(self, inner: _Layer) -> None:
        self.inner, self.lag = inner, inner.lag
        self.device_type = "cpu"

    def push(self, x: torch.Tensor) -> torch.Tensor:
        self.device_type = x.device.type
        with torch.autocast(self.device_type, enabled=False):
            return self.inner.push(x.float())

    def finish(self) -> torch.Tensor:
        with torch.autocast(self.device_type, enabled=False):
            return self.inner.finish()


def streaming_layers(generator: Generator, fp32_tail: bool = False) -> _Sequence:
    """The generator's layers as streaming layers, sharing its parameters (no copy); ``fp32_tail`` as in
    :meth:`Generator.generate` (the stages from ``fp32_tail_start`` and conv_post in float32 under autocast)."""
    layers: list[_Layer] = [_Conv(generator.conv_pre, None)]
    rates = [1]
    k = generator.num_kernels
    start = generator.fp32_tail_start
    for i, up in enumerate(generator.ups):
        stage = _Sequence([_ConvTranspose(up, LRELU_SLOPE),
                           _MeanOfBlocks([_resblock(b) for b in generator.resblocks[i * k : (i + 1) * k]])],
                          [up.stride[0], 1])
        layers.append(_Float32(stage) if fp32_tail and i >= start else stage)
        rates.append(up.stride[0])
    post = _Conv(generator.conv_post, 0.01)  # the official default slope here
    layers += [_Float32(post) if fp32_tail else post, _Elementwise(torch.tanh)]
    rates += [1, 1]
    return _Sequence(layers, rates)


class CachedStreamingGenerator:
    """Log-mel frames [n_mels, k] (any k) -> waveform samples, ``chunk_frames`` frames per generator step.

    After ``F`` frames, ``F * hop - lag_samples`` samples are out (``lag_samples``: the generator's exact
    right context, e.g. 3,690 samples = 167 ms for V1 at 22.05 kHz); :meth:`finish` gives the rest, for
    exactly ``F * hop`` in all. ``autocast`` wraps each step (bf16 on the CPU, fp16/bf16 on CUDA), with
    ``fp32_tail`` as the offline engine runs it.
    """

    def __init__(
        self,
        generator: Generator,
        chunk_frames: int = 1,
        *,
        device: torch.device | str = "cpu",
        autocast: Callable[[], AbstractContextManager] = nullcontext,
        fp32_tail: bool = False,
    ) -> None:
        if not isinstance(generator, Generator):
            raise ConfigError(f"cached streaming needs a HiFi-GAN Generator, not {type(generator).__name__}")
        if chunk_frames < 1:
            raise ConfigError("chunk must be >= 1 frame")
        self.layers = streaming_layers(generator, fp32_tail)
        self.hop, self.chunk, self.device, self.autocast = generator.hop_length, chunk_frames, torch.device(device), autocast
        self.pending = torch.zeros(1, generator.cfg.n_mels, 0, device=self.device)
        self.frames_in = 0
        self.samples_out = 0

    @property
    def lag_samples(self) -> int:
        return self.layers.lag

    @torch.inference_mode()
    def push(self, frames: torch.Tensor) -> np.ndarray:
        """Samples that became final (possibly none), float32 [m]."""
        self.pending = torch.cat([self.pending, frames.to(self.device, torch.float32)[None]], dim=-1)
        self.frames_in += frames.shape[-1]
        ready = self.pending.shape[-1] - self.pending.shape[-1] % self.chunk
        if ready == 0:
            return np.zeros(0, dtype=np.float32)
        step, self.pending = self.pending[..., :ready], self.pending[..., ready:]
        with self.autocast():
            return self._out(self.layers.push(step))

    @torch.inference_mode()
    def finish(self) -> np.ndarray:
        """The rest, up to ``frames * hop`` samples in all (the offline length)."""
        if self.frames_in == 0:
            return np.zeros(0, dtype=np.float32)
        with self.autocast():
            out = self.layers.push(self.pending) if self.pending.shape[-1] else None
            rest = self.layers.finish()
        wav = self._out(rest if out is None else torch.cat([out, rest], dim=-1))
        assert self.samples_out == self.frames_in * self.hop, (self.samples_out, self.frames_in)
        return wav

    def _out(self, wav: torch.Tensor) -> np.ndarray:
        self.samples_out += wav.shape[-1]
        return wav[0, 0].float().cpu().numpy()
