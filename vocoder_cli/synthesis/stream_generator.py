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

One stream is one signal, time-major: [time, channels]. Every convolution is a sum of matrix products, one
per kernel tap, over shifted views of the buffered window ([T_out, C_in] @ [C_in, C_out], no copy; in bf16
or fp16 one product over the unfolded window instead, so that the taps are summed in float32 and rounded
once), with the weights laid out, and cast to their precision, once. A stream step is a few frames, a few to a few
thousand samples per layer: there PyTorch's own 1-d convolution falls back to its unblocked kernels
(``slow_conv_dilated2d``: about 1 ms for a 256-channel, kernel-11 layer over 8 samples on one Ice Lake core,
where the products take 0.2 ms), so the products are what makes small chunks keep up.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vocoder_cli.errors import ConfigError
from vocoder_cli.models.generator import LRELU_SLOPE, Generator, ResBlock1, ResBlock2


class _Layer:
    """push(x [n, C]) -> the output samples [m, C'] that became final; finish() -> the rest.
    ``lag``: output samples (at this layer's output rate) still owed after ``n`` inputs, in steady state."""

    lag: int

    def push(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def finish(self) -> torch.Tensor:
        raise NotImplementedError


def _bias(conv: nn.Module, dtype: torch.dtype) -> torch.Tensor | None:
    return None if conv.bias is None else conv.bias.detach().to(dtype)


class _Conv(_Layer):
    """Stride-1 'same' Conv1d, optionally after a leaky ReLU, over a buffer of the last inputs: one matrix
    product per kernel tap. Computes in ``dtype`` (its input is cast to it)."""

    def __init__(self, conv: nn.Conv1d, slope: float | None, dtype: torch.dtype) -> None:
        (kernel,), (dilation,), (padding,), (stride,) = conv.kernel_size, conv.dilation, conv.padding, conv.stride
        span = dilation * (kernel - 1)
        if stride != 1 or conv.groups != 1 or 2 * padding != span or conv.padding_mode != "zeros":
            raise ConfigError(f"cannot stream {conv}: only stride-1, zero-padded 'same' convolutions")
        self.slope, self.span, self.padding, self.lag, self.dilation = slope, span, padding, padding, dilation
        self.in_channels, self.out_channels, self.dtype = conv.in_channels, conv.out_channels, dtype
        # [C_out, C_in, k] -> [k * C_in, C_out] (row j * C_in + c: tap j of input channel c), and as k views
        # [C_in, C_out], one per tap
        self.weight = conv.weight.detach().permute(2, 1, 0).reshape(-1, conv.out_channels).to(dtype).contiguous()
        self.taps = self.weight.split(conv.in_channels)
        self.bias = _bias(conv, dtype)
        self.buffer: torch.Tensor | None = None  # [<= span, C_in]: the window's past

    def _start(self, like: torch.Tensor) -> torch.Tensor:
        return like.new_zeros(self.padding, self.in_channels)  # the offline left pad

    def push(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.dtype)
        if self.slope is not None:
            x = F.leaky_relu(x, self.slope)
        buffer = torch.cat([self._start(x) if self.buffer is None else self.buffer, x])
        return self._convolve(buffer)

    def finish(self) -> torch.Tensor:
        assert self.buffer is not None, "finish() before any push()"
        return self._convolve(torch.cat([self.buffer, self._start(self.buffer)]))  # the right pad

    def _convolve(self, buffer: torch.Tensor) -> torch.Tensor:
        length = buffer.shape[0]
        if length <= self.span:  # not one whole window yet
            self.buffer = buffer
            return buffer.new_zeros(0, self.out_channels)
        self.buffer = buffer[length - self.span :]  # the next window's past
        steps = length - self.span
        if self.dtype != torch.float32:
            # bf16/fp16: one product over the unfolded window (one copy), accumulated in float32 inside the
            # kernel and rounded once, as a convolution is; summing the taps in place would round per tap
            windows = buffer.unfold(0, self.span + 1, 1)[..., :: self.dilation]  # [steps, C_in, k], a view
            columns = windows.transpose(1, 2).reshape(steps, -1)  # [steps, k * C_in]
            return columns @ self.weight if self.bias is None else torch.addmm(self.bias, columns, self.weight)
        first, *rest = self.taps
        out = buffer[:steps] @ first if self.bias is None else torch.addmm(self.bias, buffer[:steps], first)
        for j, tap in enumerate(rest, start=1):  # output t += buffer[t + j * dilation] @ tap j
            out.addmm_(buffer[j * self.dilation : j * self.dilation + steps], tap)
        return out


class _ConvTranspose(_Layer):
    """ConvTranspose1d (stride u, kernel k, padding (k - u) / 2) after a leaky ReLU, by overlap-add: one
    matrix product gives each input sample's k outputs, added into a running tail. Computes in ``dtype``."""

    def __init__(self, conv: nn.ConvTranspose1d, slope: float, dtype: torch.dtype) -> None:
        (kernel,), (stride,), (padding,) = conv.kernel_size, conv.stride, conv.padding
        if kernel - stride != 2 * padding or conv.dilation != (1,) or conv.output_padding != (0,) or conv.groups != 1:
            raise ConfigError(f"cannot stream {conv}: only kernel - stride == 2 * padding")
        self.slope, self.stride, self.padding, self.lag = slope, stride, padding, padding
        self.pieces = -(-kernel // stride)  # the kernel in stride-long pieces (zero-padded to a whole number)
        self.out_channels, self.dtype = conv.out_channels, dtype
        weight = F.pad(conv.weight.detach(), (0, self.pieces * stride - kernel))  # [C_in, C_out, pieces * u]
        # -> [C_in, pieces * u * C_out]: column (j, o) is output offset j, channel o
        self.weight = weight.permute(0, 2, 1).reshape(conv.in_channels, -1).to(dtype).contiguous()
        self.bias = _bias(conv, dtype)
        self.tail: torch.Tensor | None = None  # [(pieces - 1) * u, C_out] partial sums, from the next output
        self.to_crop = padding  # output samples before time 0 (the offline padding crops them)

    def push(self, x: torch.Tensor) -> torch.Tensor:
        steps = x.shape[0]
        if steps == 0:
            return x.new_zeros(0, self.out_channels, dtype=self.dtype)
        u, m = self.stride, self.pieces
        products = (F.leaky_relu(x.to(self.dtype), self.slope) @ self.weight).view(steps, m, u, self.out_channels)
        full = products.new_zeros(steps + m - 1, u, self.out_channels)
        for piece in range(m):  # input t's piece i lands on output block t + i
            full[piece : piece + steps] += products[:, piece]
        full = full.view((steps + m - 1) * u, self.out_channels)
        if self.tail is not None:
            full[: self.tail.shape[0]] += self.tail
        ready = steps * u  # no later input reaches these
        self.tail = full[ready:]
        out = full[self.to_crop : ready]
        self.to_crop = max(0, self.to_crop - ready)
        return self._add_bias(out)

    def finish(self) -> torch.Tensor:
        assert self.tail is not None, "finish() before any push()"
        return self._add_bias(self.tail[self.to_crop : self.to_crop + self.padding])  # the rest, up to n * u

    def _add_bias(self, out: torch.Tensor) -> torch.Tensor:
        return out if self.bias is None else out + self.bias


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
            flushed = layer.finish() if out is None else torch.cat([layer.push(out), layer.finish()])
            out = flushed
        assert out is not None
        return out


class _Residual(_Layer):
    """branch(x) + x, with x held back until the branch has caught up."""

    def __init__(self, branch: _Layer) -> None:
        self.branch, self.lag = branch, branch.lag
        self.held: torch.Tensor | None = None

    def push(self, x: torch.Tensor) -> torch.Tensor:
        self.held = x if self.held is None else torch.cat([self.held, x])
        return self._add(self.branch.push(x))

    def finish(self) -> torch.Tensor:
        return self._add(self.branch.finish())

    def _add(self, y: torch.Tensor) -> torch.Tensor:
        assert self.held is not None
        n = y.shape[0]
        out, self.held = y + self.held[:n], self.held[n:]
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
        self.pending = [y if p is None else torch.cat([p, y]) for p, y in zip(self.pending, new)]
        n = min(p.shape[0] for p in self.pending if p is not None)
        total = self.pending[0][:n]  # the offline order: ((b0 + b1) + b2) / 3
        for p in self.pending[1:]:
            total = total + p[:n]
        self.pending = [p[n:] for p in self.pending]
        return total / len(self.blocks)


class _Elementwise(_Layer):
    """A stateless function of each sample (tanh): nothing is owed at the end."""

    lag = 0

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.fn = fn
        self.empty: torch.Tensor | None = None  # [0, C], what finish() returns

    def push(self, x: torch.Tensor) -> torch.Tensor:
        self.empty = x[:0]
        return self.fn(x)

    def finish(self) -> torch.Tensor:
        assert self.empty is not None, "finish() before any push()"
        return self.empty


def _resblock(block: nn.Module, dtype: torch.dtype) -> _Layer:
    if isinstance(block, ResBlock1):
        pairs = [_Residual(_Sequence([_Conv(c1, LRELU_SLOPE, dtype), _Conv(c2, LRELU_SLOPE, dtype)]))
                 for c1, c2 in zip(block.convs1, block.convs2)]
        return _Sequence(list(pairs))
    if isinstance(block, ResBlock2):
        return _Sequence([_Residual(_Conv(conv, LRELU_SLOPE, dtype)) for conv in block.convs])
    raise ConfigError(f"cannot stream a {type(block).__name__}")


def streaming_layers(generator: Generator, dtype: torch.dtype = torch.float32, fp32_tail: bool = False) -> _Sequence:
    """The generator's layers as streaming layers, their weights copied once in ``dtype``; ``fp32_tail`` as in
    :meth:`Generator.generate` (the stages from ``fp32_tail_start`` and conv_post in float32, their input cast
    to float32)."""
    start = generator.fp32_tail_start if fp32_tail else generator.num_upsamples
    layers: list[_Layer] = [_Conv(generator.conv_pre, None, dtype)]
    rates = [1]
    k = generator.num_kernels
    for i, up in enumerate(generator.ups):
        stage_dtype = torch.float32 if i >= start else dtype
        blocks = [_resblock(b, stage_dtype) for b in generator.resblocks[i * k : (i + 1) * k]]
        layers.append(_Sequence([_ConvTranspose(up, LRELU_SLOPE, stage_dtype), _MeanOfBlocks(blocks)],
                                [up.stride[0], 1]))
        rates.append(up.stride[0])
    post_dtype = torch.float32 if fp32_tail else dtype
    layers += [_Conv(generator.conv_post, 0.01, post_dtype), _Elementwise(torch.tanh)]  # the official slope 0.01
    rates += [1, 1]
    return _Sequence(layers, rates)


class CachedStreamingGenerator:
    """Log-mel frames [n_mels, k] (any k) -> waveform samples, ``chunk_frames`` frames per generator step.

    After ``F`` frames, ``F * hop - lag_samples`` samples are out (``lag_samples``: the generator's exact
    right context, e.g. 3,258 samples = 148 ms for V1 at 22.05 kHz); :meth:`finish` gives the rest, for
    exactly ``F * hop`` in all. The layers compute in ``dtype`` (float32; bfloat16 on the CPU or CUDA,
    float16 on CUDA), with ``fp32_tail`` as the offline engine runs it; the weights are cast once, here.
    """

    def __init__(
        self,
        generator: Generator,
        chunk_frames: int = 1,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
        fp32_tail: bool = False,
    ) -> None:
        if not isinstance(generator, Generator):
            raise ConfigError(f"cached streaming needs a HiFi-GAN Generator, not {type(generator).__name__}")
        if chunk_frames < 1:
            raise ConfigError("chunk must be >= 1 frame")
        self.device = torch.device(device)  # where the generator's weights are
        with torch.no_grad():
            self.layers = streaming_layers(generator, dtype, fp32_tail)
        self.hop, self.chunk = generator.hop_length, chunk_frames
        self.pending = torch.zeros(0, generator.cfg.n_mels, device=self.device)  # [frames, n_mels]
        self.frames_in = 0
        self.samples_out = 0

    @property
    def lag_samples(self) -> int:
        return self.layers.lag

    @torch.inference_mode()
    def push(self, frames: torch.Tensor) -> np.ndarray:
        """Samples that became final (possibly none), float32 [m]."""
        self.pending = torch.cat([self.pending, frames.to(self.device, torch.float32).T])
        self.frames_in += frames.shape[-1]
        ready = self.pending.shape[0] - self.pending.shape[0] % self.chunk
        if ready == 0:
            return np.zeros(0, dtype=np.float32)
        step, self.pending = self.pending[:ready], self.pending[ready:]
        return self._out(self.layers.push(step))

    @torch.inference_mode()
    def finish(self) -> np.ndarray:
        """The rest, up to ``frames * hop`` samples in all (the offline length)."""
        if self.frames_in == 0:
            return np.zeros(0, dtype=np.float32)
        out = self.layers.push(self.pending) if self.pending.shape[0] else None
        rest = self.layers.finish()
        wav = self._out(rest if out is None else torch.cat([out, rest]))
        assert self.samples_out == self.frames_in * self.hop, (self.samples_out, self.frames_in)
        return wav

    def _out(self, wav: torch.Tensor) -> np.ndarray:
        self.samples_out += wav.shape[0]
        return wav[:, 0].float().cpu().numpy()
