"""Tacotron2 inference network, written for this package, loading torchaudio's state dicts as they are.

Module names follow torchaudio's ``Tacotron2`` key layout (``embedding``, ``encoder.convolutions.N.0``,
``decoder.attention_layer.location_layer.location_conv``, ``postnet.convolutions.N.1`` ...), so its
published checkpoints load with ``load_state_dict(strict=True)``. Inference matches
torchaudio's ``Tacotron2.infer`` operation for operation: the prenet keeps its dropout (p=0.5) on at
inference as Tacotron2 does, drawing from torch's global generator in the same order, so equal seeds give
equal mels (scripts/check_tacotron2_equivalence.py measures the difference: docs/tts.md).

Shapes: tokens [B, T_text] (int64, zero-padded), lengths [B]; mels [B, n_mels, frames].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812


@dataclass(frozen=True)
class Tacotron2Config:
    """Hyper-parameters (torchaudio's names); the defaults are its LJSpeech character model's."""

    n_symbols: int = 38
    n_mels: int = 80
    symbol_embedding_dim: int = 512
    encoder_embedding_dim: int = 512
    encoder_n_convolution: int = 3
    encoder_kernel_size: int = 5
    decoder_rnn_dim: int = 1024
    decoder_max_step: int = 2000
    decoder_early_stopping: bool = True
    attention_rnn_dim: int = 1024
    attention_hidden_dim: int = 128
    attention_location_n_filter: int = 32
    attention_location_kernel_size: int = 31
    prenet_dim: int = 256
    postnet_n_convolution: int = 5
    postnet_kernel_size: int = 5
    postnet_embedding_dim: int = 512
    gate_threshold: float = 0.5

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _conv_bn(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    """``Sequential(Conv1d, BatchNorm1d)``: the ``.0`` / ``.1`` keys of torchaudio's conv stacks."""
    return nn.Sequential(nn.Conv1d(c_in, c_out, kernel, padding=(kernel - 1) // 2), nn.BatchNorm1d(c_out))


class Encoder(nn.Module):
    """Embedded tokens [B, E, T] -> memory [B, T_max, E]: conv stack, then a bidirectional LSTM."""

    def __init__(self, cfg: Tacotron2Config) -> None:
        super().__init__()
        dim = cfg.encoder_embedding_dim
        self.convolutions = nn.ModuleList(
            _conv_bn(dim, dim, cfg.encoder_kernel_size) for _ in range(cfg.encoder_n_convolution)
        )
        self.lstm = nn.LSTM(dim, dim // 2, 1, batch_first=True, bidirectional=True)

    def forward(self, x: Tensor, lengths: Tensor, mask_padding: bool = False) -> Tensor:
        """``mask_padding`` zeroes the padded positions before every conv, so an item's memory is what
        it would be alone (torchaudio lets the pad symbol's embedding leak into the last frames)."""
        keep = (torch.arange(x.shape[-1], device=x.device)[None, :] < lengths.to(x.device)[:, None])[:, None]
        for conv in self.convolutions:
            if mask_padding:
                x = x * keep
            x = F.relu(conv(x))  # dropout is off at inference
        packed = nn.utils.rnn.pack_padded_sequence(
            x.transpose(1, 2), lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, _ = self.lstm(packed)
        memory, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True)
        return memory


class Prenet(nn.Module):
    """Two bias-free ReLU layers with dropout 0.5 that stays on at inference (Tacotron2's design)."""

    def __init__(self, in_dim: int, dim: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(in_dim, dim, bias=False), nn.Linear(dim, dim, bias=False)])

    def forward(self, x: Tensor) -> Tensor:
        for linear in self.layers:
            x = F.dropout(F.relu(linear(x)), p=0.5, training=True)
        return x


class LocationLayer(nn.Module):
    """Previous and cumulative attention [B, 2, T] -> location features [B, T, hidden]."""

    def __init__(self, n_filter: int, kernel: int, hidden: int) -> None:
        super().__init__()
        self.location_conv = nn.Conv1d(2, n_filter, kernel, padding=(kernel - 1) // 2, bias=False)
        self.location_dense = nn.Linear(n_filter, hidden, bias=False)

    def forward(self, weights_cat: Tensor) -> Tensor:
        return self.location_dense(self.location_conv(weights_cat).transpose(1, 2))


class Attention(nn.Module):
    """Location-sensitive attention: one step's context [B, E] and weights [B, T]."""

    def __init__(self, cfg: Tacotron2Config) -> None:
        super().__init__()
        hidden = cfg.attention_hidden_dim
        self.query_layer = nn.Linear(cfg.attention_rnn_dim, hidden, bias=False)
        self.memory_layer = nn.Linear(cfg.encoder_embedding_dim, hidden, bias=False)
        self.v = nn.Linear(hidden, 1, bias=False)
        self.location_layer = LocationLayer(cfg.attention_location_n_filter, cfg.attention_location_kernel_size, hidden)

    def forward(
        self, query: Tensor, memory: Tensor, processed_memory: Tensor, weights_cat: Tensor, pad_mask: Tensor
    ) -> tuple[Tensor, Tensor]:
        energies = self.v(
            torch.tanh(self.query_layer(query.unsqueeze(1)) + self.location_layer(weights_cat) + processed_memory)
        ).squeeze(2)
        weights = F.softmax(energies.masked_fill(pad_mask, -float("inf")), dim=1)
        context = torch.bmm(weights.unsqueeze(1), memory).squeeze(1)
        return context, weights


@dataclass
class DecoderOutput:
    mels: Tensor  # [B, n_mels, steps] before the postnet
    lengths: Tensor  # [B] int32: frames until each item's stop token (all steps when it never stopped)
    gates: Tensor  # [B, steps] stop-token logits
    alignments: Tensor  # [B, steps, T_text]
    stopped: Tensor  # [B] bool: False where the max-length guard cut the item


class Decoder(nn.Module):
    """Autoregressive decoder: one mel frame per step until every item's stop token fires."""

    def __init__(self, cfg: Tacotron2Config) -> None:
        super().__init__()
        self.cfg = cfg
        enc = cfg.encoder_embedding_dim
        self.prenet = Prenet(cfg.n_mels, cfg.prenet_dim)
        self.attention_rnn = nn.LSTMCell(cfg.prenet_dim + enc, cfg.attention_rnn_dim)
        self.attention_layer = Attention(cfg)
        self.decoder_rnn = nn.LSTMCell(cfg.attention_rnn_dim + enc, cfg.decoder_rnn_dim)
        self.linear_projection = nn.Linear(cfg.decoder_rnn_dim + enc, cfg.n_mels)
        self.gate_layer = nn.Linear(cfg.decoder_rnn_dim + enc, 1)

    def _start(self, memory: Tensor, lengths: Tensor) -> tuple[list[Tensor], Tensor, Tensor]:
        """The zero state before the first step: [att_h, att_c, dec_h, dec_c, weights, weights_cum, context],
        the memory's projection [B, T_text, hidden] and the padding mask [B, T_text] (True on padding)."""
        cfg = self.cfg
        batch, t_text = memory.shape[:2]
        zeros = memory.new_zeros
        pad_mask = torch.arange(t_text, device=memory.device)[None, :] >= lengths.to(memory.device)[:, None]
        state = [
            zeros(batch, cfg.attention_rnn_dim), zeros(batch, cfg.attention_rnn_dim),
            zeros(batch, cfg.decoder_rnn_dim), zeros(batch, cfg.decoder_rnn_dim),
            zeros(batch, t_text), zeros(batch, t_text), zeros(batch, cfg.encoder_embedding_dim),
        ]  # fmt: skip
        return state, self.attention_layer.memory_layer(memory), pad_mask

    def _step(
        self, x: Tensor, state: list[Tensor], memory: Tensor, processed_memory: Tensor, pad_mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
        """One decoder step from a prenet output ``x`` [B, prenet_dim]: (frame [B, n_mels], gate logit [B, 1],
        attention weights [B, T_text], new state), torchaudio's ``_Decoder.decode`` in eval mode."""
        att_h, att_c, dec_h, dec_c, weights, weights_cum, context = state
        att_h, att_c = self.attention_rnn(torch.cat((x, context), -1), (att_h, att_c))
        weights_cat = torch.cat((weights.unsqueeze(1), weights_cum.unsqueeze(1)), dim=1)
        context, weights = self.attention_layer(att_h, memory, processed_memory, weights_cat, pad_mask)
        weights_cum = weights_cum + weights
        dec_h, dec_c = self.decoder_rnn(torch.cat((att_h, context), -1), (dec_h, dec_c))
        hidden_context = torch.cat((dec_h, context), dim=1)
        frame = self.linear_projection(hidden_context)
        gate = self.gate_layer(hidden_context)
        return frame, gate, weights, [att_h, att_c, dec_h, dec_c, weights, weights_cum, context]

    def infer(self, memory: Tensor, lengths: Tensor, max_steps: int | None = None) -> DecoderOutput:
        """Free-running: each step reads the frame it predicted last."""
        cfg = self.cfg
        batch = memory.shape[0]
        state, processed_memory, pad_mask = self._start(memory, lengths)
        frame = memory.new_zeros(batch, cfg.n_mels)
        out_lengths = torch.zeros(batch, dtype=torch.int32, device=memory.device)
        finished = torch.zeros(batch, dtype=torch.bool, device=memory.device)
        frames, gates, aligns = [], [], []
        for _ in range(max_steps or cfg.decoder_max_step):
            frame, gate, weights, state = self._step(self.prenet(frame), state, memory, processed_memory, pad_mask)
            frames.append(frame)
            gates.append(gate.squeeze(1))
            aligns.append(weights)
            out_lengths[~finished] += 1
            finished |= torch.sigmoid(gate.squeeze(1)) > cfg.gate_threshold
            if cfg.decoder_early_stopping and bool(torch.all(finished)):
                break
        return DecoderOutput(
            mels=torch.stack(frames, dim=2),
            lengths=out_lengths,
            gates=torch.stack(gates, dim=1),
            alignments=torch.stack(aligns, dim=1),
            stopped=finished,
        )

    def teacher_forced(self, memory: Tensor, lengths: Tensor, mels: Tensor) -> DecoderOutput:
        """Teacher-forced (torchaudio's ``_Decoder.forward``): step t reads the true frame t-1 of ``mels``
        [B, n_mels, T] (a zero frame first), so the output has exactly T frames. The prenet runs once over
        all T frames [T, B, n_mels] before the loop, as there, so its dropout draws come in the same order."""
        batch, _, steps = mels.shape
        state, processed_memory, pad_mask = self._start(memory, lengths)
        inputs = self.prenet(torch.cat((mels.new_zeros(1, batch, self.cfg.n_mels), mels.permute(2, 0, 1)), dim=0))
        frames, gates, aligns = [], [], []
        for t in range(steps):
            frame, gate, weights, state = self._step(inputs[t], state, memory, processed_memory, pad_mask)
            frames.append(frame)
            gates.append(gate.squeeze(1))
            aligns.append(weights)
        return DecoderOutput(
            mels=torch.stack(frames, dim=2),
            lengths=torch.full((batch,), steps, dtype=torch.int32, device=memory.device),
            gates=torch.stack(gates, dim=1),
            alignments=torch.stack(aligns, dim=1),
            stopped=torch.ones(batch, dtype=torch.bool, device=memory.device),
        )


class Postnet(nn.Module):
    """Five conv layers predicting a residual [B, n_mels, frames] added to the decoder's mels."""

    def __init__(self, cfg: Tacotron2Config) -> None:
        super().__init__()
        n = cfg.postnet_n_convolution
        dims = [cfg.n_mels] + [cfg.postnet_embedding_dim] * (n - 1) + [cfg.n_mels]
        self.convolutions = nn.ModuleList(_conv_bn(dims[i], dims[i + 1], cfg.postnet_kernel_size) for i in range(n))

    def forward(self, x: Tensor) -> Tensor:
        last = len(self.convolutions) - 1
        for i, conv in enumerate(self.convolutions):
            x = conv(x) if i == last else torch.tanh(conv(x))
        return x


@dataclass
class Tacotron2Output:
    mels: Tensor  # [B, n_mels, steps] after the postnet (padded batch, like torchaudio's infer)
    lengths: Tensor  # [B] int32
    alignments: Tensor  # [B, steps, T_text]
    gates: Tensor  # [B, steps]
    stopped: Tensor  # [B] bool


class Tacotron2(nn.Module):
    """Tokens -> log-mels. ``infer`` equals torchaudio's; ``infer_trimmed`` keeps batch items independent."""

    def __init__(self, cfg: Tacotron2Config | None = None) -> None:
        super().__init__()
        self.cfg = cfg or Tacotron2Config()
        if self.cfg.symbol_embedding_dim != self.cfg.encoder_embedding_dim:
            raise ValueError("symbol_embedding_dim must equal encoder_embedding_dim")
        self.embedding = nn.Embedding(self.cfg.n_symbols, self.cfg.symbol_embedding_dim)
        self.encoder = Encoder(self.cfg)
        self.decoder = Decoder(self.cfg)
        self.postnet = Postnet(self.cfg)

    def _decode(
        self, tokens: Tensor, lengths: Tensor | None, max_steps: int | None, mask_padding: bool = False
    ) -> DecoderOutput:
        if lengths is None:
            lengths = torch.full((tokens.shape[0],), tokens.shape[1], dtype=torch.int64, device=tokens.device)
        memory = self.encoder(self.embedding(tokens).transpose(1, 2), lengths, mask_padding)
        return self.decoder.infer(memory, lengths, max_steps)

    def infer(self, tokens: Tensor, lengths: Tensor | None = None, max_steps: int | None = None) -> Tacotron2Output:
        """The whole padded batch through the postnet, exactly as torchaudio's ``Tacotron2.infer``."""
        out = self._decode(tokens, lengths, max_steps)
        mels = out.mels + self.postnet(out.mels)
        return Tacotron2Output(mels, out.lengths, out.alignments, out.gates, out.stopped)

    def infer_trimmed(
        self, tokens: Tensor, lengths: Tensor | None = None, max_steps: int | None = None
    ) -> tuple[list[Tensor], list[bool]]:
        """Per item: its mel [n_mels, frames] and whether it stopped, independent of its batch-mates.

        torchaudio's batched ``infer`` lets batch-mates leak into an item twice: the encoder convs see the
        pad symbol's embedding after a short item's end, and the postnet (±10 frames) sees the frames the
        decoder kept producing after the item stopped. Here padding is zeroed before every encoder conv
        and the postnet runs on each item's own frames, so an item in a batch equals the item alone
        (up to the prenet's dropout draws, which depend on the batch size).
        """
        out = self._decode(tokens, lengths, max_steps, mask_padding=True)
        mels = []
        for i, n in enumerate(out.lengths.tolist()):
            mel = out.mels[i : i + 1, :, :n]
            mels.append((mel + self.postnet(mel))[0])
        return mels, out.stopped.tolist()

    def teacher_forced(
        self, tokens: Tensor, lengths: Tensor | None, mels: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """torchaudio's ``Tacotron2.forward`` (its LJSpeech model has ``mask_padding=False``): the padded batch
        with the true mels [B, n_mels, T] as decoder input -> (mels before the postnet, after it
        [B, n_mels, T], stop-token logits [B, T], alignments [B, T, T_text])."""
        if lengths is None:
            lengths = torch.full((tokens.shape[0],), tokens.shape[1], dtype=torch.int64, device=tokens.device)
        memory = self.encoder(self.embedding(tokens).transpose(1, 2), lengths)
        out = self.decoder.teacher_forced(memory, lengths, mels)
        return out.mels, out.mels + self.postnet(out.mels), out.gates, out.alignments

    def teacher_forced_trimmed(self, tokens: Tensor, lengths: Tensor, mels: list[Tensor]) -> list[Tensor]:
        """Per item: its teacher-forced (GTA) mel [n_mels, T_i] from its true mel [n_mels, T_i], exactly T_i
        frames, independent of its batch-mates as in :meth:`infer_trimmed` (padding zeroed in the encoder,
        the postnet on each item's own frames; the decoder never reads past an item's own frames)."""
        longest = max(m.shape[-1] for m in mels)
        batch = torch.stack([F.pad(m, (0, longest - m.shape[-1])) for m in mels]).to(tokens.device)
        memory = self.encoder(self.embedding(tokens).transpose(1, 2), lengths, mask_padding=True)
        out = self.decoder.teacher_forced(memory, lengths, batch)
        result = []
        for i, mel in enumerate(mels):
            own = out.mels[i : i + 1, :, : mel.shape[-1]]
            result.append((own + self.postnet(own))[0])
        return result
