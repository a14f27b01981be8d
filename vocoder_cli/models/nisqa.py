"""NISQA v2.0 (Mittag et al. 2021) in our own network code, configured by the args stored in its checkpoints.

The two published checkpoints are two different networks (gabrielmittag/NISQA, ``weights/``):

- ``nisqa.tar`` (model ``NISQA_DIM``, speech quality): an "adapt" CNN (six 3x3 conv + batch-norm + ReLU
  layers, adaptive max-pooling to 24x7, 12x5 and 6x3) per mel segment, a 2-layer self-attention block
  (d_model 64, one head, feed-forward 64, post-norm), and five attention-pooling heads with a
  128-unit feed-forward scorer: MOS, noisiness, discontinuity, coloration, loudness (in that order).
- ``nisqa_tts.tar`` (model ``NISQA``, naturalness of synthetic speech): a "standard" CNN (the same six
  layers with fixed 2x2 max-pooling and a 768 -> 20 projection), a bidirectional LSTM (128 units), and
  last-step pooling (forward state at the last segment, backward state at the first) into one output.

Parameter names follow the official ones after dropping the ``.model`` wrappers (:func:`_rename`), so the
checkpoint's ``model_state_dict`` loads strictly. Dropout is left out: the metric only runs in eval mode.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from vocoder_cli.errors import WeightsError

# The official NISQA_DIM head order (NISQA_lib.predict_dim): mos, noi, dis, col, loud.
DIM_OUTPUTS = ("mos", "noi", "dis", "col", "loud")
_POOL_AFTER = {0: 0, 1: 1, 3: 2}  # CNN layer index -> pooling stage (after conv1, conv2 and conv4)


@dataclass(frozen=True)
class NisqaConfig:
    """Front end and network of one checkpoint (the subset of the official args these models use)."""

    # front end: librosa mel spectrogram at the file's own rate, dB, cut into overlapping segments
    n_fft: int = 4096
    hop_seconds: float = 0.01
    win_seconds: float = 0.02
    n_mels: int = 48
    fmax: float = 20_000.0
    seg_length: int = 15  # mel frames per segment (the CNN's input width)
    seg_hop: int = 4  # frames between segment starts
    max_segments: int = 1300  # the official code refuses longer inputs
    # network
    cnn: str = "adapt"  # "adapt" (adaptive max-pooling) or "standard" (2x2 max-pooling)
    channels: tuple[int, int, int] = (16, 32, 64)
    cnn_pools: tuple[tuple[int, int], ...] = ((24, 7), (12, 5), (6, 3))  # adapt only
    cnn_fc: int | None = None  # a linear projection of the CNN's output
    td: str = "self_att"  # "self_att" or "lstm"
    sa_d_model: int = 64
    sa_heads: int = 1
    sa_layers: int = 2
    sa_ff: int = 64
    lstm_hidden: int = 128
    lstm_layers: int = 1
    pool: str = "att"  # "att" (attention pooling with a feed-forward scorer) or "last_step_bi"
    pool_att_h: int = 128
    outputs: tuple[str, ...] = DIM_OUTPUTS  # one pooling head per output

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> NisqaConfig:
        """The official checkpoint's ``args`` -> a config; variants no published model uses are refused."""
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise WeightsError(f"unsupported NISQA variant: {what}")

        model = args.get("model")
        need(model in ("NISQA", "NISQA_DIM"), f"model {model!r} (expected NISQA or NISQA_DIM)")
        need(args.get("cnn_model") in ("adapt", "standard"), f"cnn_model {args.get('cnn_model')!r}")
        need(tuple(_pair(args.get("cnn_kernel_size"))) == (3, 3), f"cnn_kernel_size {args.get('cnn_kernel_size')!r}")
        need(args.get("td") in ("self_att", "lstm"), f"td {args.get('td')!r}")
        need(args.get("td_2") in (None, "skip"), f"td_2 {args.get('td_2')!r}")
        need(not args.get("td_sa_pos_enc"), "self-attention with positional encoding")
        need(args.get("td") != "lstm" or bool(args.get("td_lstm_bidirectional")), "a one-directional LSTM")
        pool = args.get("pool")
        need(pool == "last_step_bi" or (pool == "att" and args.get("pool_att_h")), f"pool {pool!r}")
        need(pool != "last_step_bi" or args.get("td") == "lstm", "last-step pooling without an LSTM")
        need(not args.get("ms_sr"), f"ms_sr {args.get('ms_sr')!r} (the published models use the file's own rate)")
        adapt = args["cnn_model"] == "adapt"
        return cls(
            n_fft=int(args["ms_n_fft"]),
            hop_seconds=float(args["ms_hop_length"]),
            win_seconds=float(args["ms_win_length"]),
            n_mels=int(args["ms_n_mels"]),
            fmax=float(args["ms_fmax"]),
            seg_length=int(args["ms_seg_length"]),
            seg_hop=int(args["ms_seg_hop_length"]),
            max_segments=int(args["ms_max_segments"]),
            cnn=args["cnn_model"],
            channels=(int(args["cnn_c_out_1"]), int(args["cnn_c_out_2"]), int(args["cnn_c_out_3"])),
            cnn_pools=tuple(_pair(args[f"cnn_pool_{i}"]) for i in (1, 2, 3)) if adapt else (),
            cnn_fc=int(args["cnn_fc_out_h"]) if args.get("cnn_fc_out_h") else None,
            td=args["td"],
            sa_d_model=int(args.get("td_sa_d_model") or 0),
            sa_heads=int(args.get("td_sa_nhead") or 0),
            sa_layers=int(args.get("td_sa_num_layers") or 0),
            sa_ff=int(args.get("td_sa_h") or 0),
            lstm_hidden=int(args.get("td_lstm_h") or 0),
            lstm_layers=int(args.get("td_lstm_num_layers") or 0),
            pool=pool,
            pool_att_h=int(args.get("pool_att_h") or 0),
            outputs=DIM_OUTPUTS if model == "NISQA_DIM" else ("mos",),
        )


def _pair(value: Any) -> tuple[int, int]:
    return (int(value), int(value)) if isinstance(value, int) else (int(value[0]), int(value[1]))


class FramewiseCNN(nn.Module):
    """One mel segment [N, 1, n_mels, seg_length] -> a feature vector [N, fan_out].

    Six 3x3 conv -> batch-norm -> ReLU layers, max-pooled after layers 1, 2 and 4: adaptively to fixed
    sizes ("adapt"; layer 6 then spans the last pooled width, so the width becomes 1) or by 2x2 with the
    first pool padding the width by one ("standard": 48x15 -> 24x8 -> 12x4 -> 6x2)."""

    def __init__(self, cfg: NisqaConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c1, c2, c3 = cfg.channels
        ins, outs = (1, c1, c2, c3, c3, c3), (c1, c2, c3, c3, c3, c3)
        for i in range(6):
            last_adapt = i == 5 and cfg.cnn == "adapt"
            kernel, padding = ((3, cfg.cnn_pools[2][1]), (1, 0)) if last_adapt else ((3, 3), (1, 1))
            setattr(self, f"conv{i + 1}", nn.Conv2d(ins[i], outs[i], kernel, padding=padding))
            setattr(self, f"bn{i + 1}", nn.BatchNorm2d(outs[i]))
        if cfg.cnn == "adapt":
            height, width = cfg.cnn_pools[2][0], 1
        else:
            height, width = cfg.n_mels // 8, (cfg.seg_length // 2 + 1) // 4
        self.flat = c3 * height * width
        self.fc = nn.Linear(self.flat, cfg.cnn_fc) if cfg.cnn_fc else None
        self.fan_out = cfg.cnn_fc or self.flat

    def _pool(self, x: torch.Tensor, stage: int) -> torch.Tensor:
        if self.cfg.cnn == "adapt":
            return F.adaptive_max_pool2d(x, self.cfg.cnn_pools[stage])
        return F.max_pool2d(x, 2, 2, padding=(0, 1) if stage == 0 else 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(6):
            x = F.relu(getattr(self, f"bn{i + 1}")(getattr(self, f"conv{i + 1}")(x)))
            if i in _POOL_AFTER:
                x = self._pool(x, _POOL_AFTER[i])
        x = x.reshape(x.shape[0], self.flat)
        return self.fc(x) if self.fc is not None else x


class SelfAttentionLayer(nn.Module):
    """Post-norm transformer encoder layer (ReLU feed-forward); padded steps are masked as keys."""

    def __init__(self, d_model: int, heads: int, ff: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, heads, batch_first=True)
        self.linear1, self.linear2 = nn.Linear(d_model, ff), nn.Linear(ff, d_model)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.self_attn(x, x, x, key_padding_mask=padding, need_weights=False)[0])
        return self.norm2(x + self.linear2(F.relu(self.linear1(x))))


class SelfAttention(nn.Module):
    """[B, S, fan_in] -> [B, S, d_model]: linear projection, layer norm, then the encoder layers."""

    def __init__(self, fan_in: int, cfg: NisqaConfig) -> None:
        super().__init__()
        self.linear = nn.Linear(fan_in, cfg.sa_d_model)
        self.norm1 = nn.LayerNorm(cfg.sa_d_model)
        self.layers = nn.ModuleList(SelfAttentionLayer(cfg.sa_d_model, cfg.sa_heads, cfg.sa_ff)
                                    for _ in range(cfg.sa_layers))
        self.fan_out = cfg.sa_d_model

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        padding = torch.arange(x.shape[1], device=x.device)[None, :] >= lengths[:, None]
        x = self.norm1(self.linear(x))
        for layer in self.layers:
            x = layer(x, padding)
        return x


class BiLSTM(nn.Module):
    """[B, S, fan_in] -> [B, S, 2 * hidden]: forward and backward states, each sequence to its own length."""

    def __init__(self, fan_in: int, cfg: NisqaConfig) -> None:
        super().__init__()
        self.lstm = nn.LSTM(fan_in, cfg.lstm_hidden, cfg.lstm_layers, batch_first=True, bidirectional=True)
        self.fan_out = 2 * cfg.lstm_hidden

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        return pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=x.shape[1])[0]


class AttentionPool(nn.Module):
    """[B, S, D] -> [B, 1]: softmax over valid steps of a 2-layer scorer, weighted mean, linear output."""

    def __init__(self, fan_in: int, hidden: int) -> None:
        super().__init__()
        self.linear1, self.linear2 = nn.Linear(fan_in, hidden), nn.Linear(hidden, 1)
        self.linear3 = nn.Linear(fan_in, 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        scores = self.linear2(F.relu(self.linear1(x)))[..., 0]  # [B, S]
        padding = torch.arange(x.shape[1], device=x.device)[None, :] >= lengths[:, None]
        weights = torch.softmax(scores.masked_fill(padding, float("-inf")), dim=1)
        return self.linear3(torch.einsum("bs,bsd->bd", weights, x))


class LastStepPool(nn.Module):
    """[B, S, 2H] of a bidirectional LSTM -> [B, 1]: the forward state at the last valid step and the
    backward state at the first step, concatenated, through a linear output."""

    def __init__(self, fan_in: int) -> None:
        super().__init__()
        self.linear = nn.Linear(fan_in, 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        half = x.shape[-1] // 2
        forward = x[torch.arange(x.shape[0], device=x.device), lengths - 1, :half]
        return self.linear(torch.cat([forward, x[:, 0, half:]], dim=1))


class Nisqa(nn.Module):
    """Segments [B, S, 1, n_mels, seg_length] (zero-padded after ``lengths[b]``) -> scores [B, outputs]."""

    def __init__(self, cfg: NisqaConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.cnn = FramewiseCNN(cfg)
        self.td: SelfAttention | BiLSTM = (SelfAttention if cfg.td == "self_att" else BiLSTM)(self.cnn.fan_out, cfg)
        fan = self.td.fan_out
        heads = [AttentionPool(fan, cfg.pool_att_h) if cfg.pool == "att" else LastStepPool(fan) for _ in cfg.outputs]
        self.heads = nn.ModuleList(heads)

    def forward(self, segments: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        batch, steps = segments.shape[:2]
        valid = torch.arange(steps, device=segments.device)[None, :] < lengths[:, None]
        features = self.cnn(segments[valid])  # padding never goes through the CNN
        x = features.new_zeros(batch, steps, features.shape[-1])
        x[valid] = features
        x = self.td(x, lengths)
        return torch.cat([head(x, lengths) for head in self.heads], dim=1)


# official key prefix -> ours: the ``.model`` wrappers go, the pooling modules become ``heads``
_RENAMES = (
    (re.compile(r"^cnn\.model\.fc_out\."), "cnn.fc."),
    (re.compile(r"^cnn\.model\."), "cnn."),
    (re.compile(r"^time_dependency\.model\."), "td."),
    (re.compile(r"^pool_layers\.(\d+)\.model\."), r"heads.\1."),
    (re.compile(r"^pool\.model\."), "heads.0."),
)


def _rename(key: str) -> str:
    for pattern, replacement in _RENAMES:
        key, count = pattern.subn(replacement, key)
        if count:
            break
    return key


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[NisqaConfig, dict[str, torch.Tensor]]:
    """An official NISQA ``.tar`` (a torch zip: ``{'args', 'model_state_dict'}``), read with
    ``weights_only=True`` (the published files hold only dicts, lists, numbers, strings and tensors)."""
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not a usable file"
        raise WeightsError(f"{path}: cannot read the NISQA checkpoint safely ({exc})") from exc
    if not isinstance(checkpoint, dict) or not {"args", "model_state_dict"} <= set(checkpoint):
        raise WeightsError(f"{path}: not a NISQA checkpoint (expected 'args' and 'model_state_dict')")
    try:
        cfg = NisqaConfig.from_args(checkpoint["args"])
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"{path}: the NISQA checkpoint's args are incomplete ({exc!r})") from exc
    except WeightsError as exc:
        raise WeightsError(f"{path}: {exc}") from None
    state = {_rename(k): v for k, v in checkpoint["model_state_dict"].items()}
    return cfg, state


def load_nisqa(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Nisqa:
    """Build the network the checkpoint's args describe and load its weights (strict) -> eval mode."""
    cfg, state = read_checkpoint(path)
    model = Nisqa(cfg)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{path}: weights do not fit the network its args describe ({exc})") from exc
    model.cnn.to(memory_format=torch.channels_last)  # about 1.5x faster convolutions on CPU; same scores to 1e-5
    return model.eval().to(device)
