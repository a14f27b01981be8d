"""NISQA v2.0: reference-free speech quality (``nisqa``: MOS, noisiness, coloration, discontinuity,
loudness) and naturalness of synthetic speech (``nisqa-tts``), with the published weights (CC BY-NC-SA 4.0).

The front end is NISQA's ``get_librosa_melspec`` + ``segment_specs`` as its ``run_predict.py`` applies them
to the two published checkpoints, whose args set ``ms_sr: null``: the file is analysed at its own sample
rate (no resampling), with a hop of int(0.01 sr) and a Hann window of int(0.02 sr) samples zero-padded to
a 4096-point FFT, centred frames (reflect padding), magnitude (power 1), 48 Slaney mel bands from 0 Hz to
``fmax`` (20 kHz for ``nisqa``, 8 kHz for ``nisqa-tts``; bands above the file's Nyquist frequency are
empty, as in librosa), 20 log10(max(x, 1e-4)) floored 80 dB under the clip's maximum. The spectrogram is
cut into 15-frame segments every ``seg_hop`` frames (4 for ``nisqa``, 1 for ``nisqa-tts``).
``scripts/check_nisqa_equivalence.py`` compares the scores with the official code's.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vocoder_cli.errors import WeightsError
from vocoder_cli.mel import hz_to_mel, mel_to_hz
from vocoder_cli.metrics.base import MetricError, Scores, require_length
from vocoder_cli.models.nisqa import Nisqa, NisqaConfig, load_nisqa

AMIN, TOP_DB = 1e-4, 80.0  # librosa.amplitude_to_db(S, ref=1.0, amin=1e-4, top_db=80.0)
# metric name -> (weights name, the metric's output key for each model output)
MODELS: dict[str, tuple[str, dict[str, str]]] = {
    "nisqa": ("nisqa", {"mos": "nisqa_mos", "noi": "nisqa_noi", "col": "nisqa_col", "dis": "nisqa_dis",
                        "loud": "nisqa_loud"}),
    "nisqa-tts": ("nisqa-tts", {"mos": "nisqa_tts"}),
}

Notify = Callable[[str], None]


def nisqa_weights(metric: str, path: str | os.PathLike[str] | None = None, *, notify: Notify | None = None) -> Path:
    """The checkpoint of ``metric`` (``nisqa`` or ``nisqa-tts``): ``path`` when given, else the weights
    entry of that name, pulled on first use (offline: `vocoder weights pull NAME --url file://COPY`)."""
    if path is not None:
        return Path(path)
    from vocoder_cli.weights.resolve import ensure_weights

    return ensure_weights(MODELS[metric][0], notify=notify)


def frame_params(sr: int, cfg: NisqaConfig) -> tuple[int, int]:
    """(hop, window) in samples at ``sr``, truncated as the official code does: int(sr * seconds).
    A rate where they make no sense (hop under one sample, a window longer than the FFT) is a MetricError."""
    hop, win = int(sr * cfg.hop_seconds), int(sr * cfg.win_seconds)
    if hop < 1 or win > cfg.n_fft:
        raise MetricError(f"NISQA cannot analyse {sr} Hz audio (hop {hop}, window {win} samples, "
                          f"FFT {cfg.n_fft} points)")
    return hop, win


def mel_filterbank(sr: int, cfg: NisqaConfig) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] Slaney-scale, Slaney-normalised filters from 0 Hz to ``cfg.fmax`` at ``sr``
    (librosa.filters.mel, which keeps filters above Nyquist: they are all zero)."""
    fft_freqs = np.linspace(0.0, sr / 2, 1 + cfg.n_fft // 2)
    mel_freqs = mel_to_hz(np.linspace(0.0, hz_to_mel(np.array(cfg.fmax)), cfg.n_mels + 2))
    ramps = mel_freqs[:, None] - fft_freqs[None, :]
    fdiff = np.diff(mel_freqs)
    weights = np.maximum(0.0, np.minimum(-ramps[:-2] / fdiff[:-1, None], ramps[2:] / fdiff[1:, None]))
    return weights * (2.0 / (mel_freqs[2:] - mel_freqs[:-2]))[:, None]


def mel_db(wav: np.ndarray, sr: int, cfg: NisqaConfig) -> np.ndarray:
    """Mono audio [T] at its own rate -> NISQA's mel spectrogram in dB [n_mels, 1 + T // hop] (float32)."""
    hop, win = frame_params(sr, cfg)
    padded = np.pad(wav.astype(np.float64), cfg.n_fft // 2, mode="reflect")
    window = torch.hann_window(win, periodic=True, dtype=torch.float64)
    spec = torch.stft(torch.from_numpy(padded), cfg.n_fft, hop, win, window, center=False, return_complex=True)
    mel = torch.from_numpy(mel_filterbank(sr, cfg)) @ spec.abs()
    db = 20.0 * torch.log10(mel.clamp_min(AMIN))
    return db.clamp_min(db.max() - TOP_DB).numpy().astype(np.float32)


def segments(mel: np.ndarray, cfg: NisqaConfig) -> torch.Tensor:
    """[n_mels, frames] -> [ceil((frames - seg_length + 1) / seg_hop), 1, n_mels, seg_length]: segment i
    holds frames i * seg_hop .. i * seg_hop + seg_length - 1."""
    windows = torch.from_numpy(mel).unfold(1, cfg.seg_length, 1)  # [n_mels, frames - seg_length + 1, seg_length]
    return windows[:, :: cfg.seg_hop].permute(1, 0, 2).unsqueeze(1).contiguous()


def segment_count(frames: int, cfg: NisqaConfig) -> int:
    return math.ceil((frames - cfg.seg_length + 1) / cfg.seg_hop)


@dataclass
class NisqaScorer:
    """One loaded NISQA model: :meth:`prepare` one file (its mel, or a MetricError), :meth:`score` a list."""

    model: Nisqa
    keys: dict[str, str]  # model output name -> metric key
    device: str = "cpu"
    batch_size: int = 8

    @classmethod
    def load(cls, metric: str, weights: str | os.PathLike[str], device: str = "cpu",
             batch_size: int = 8) -> NisqaScorer:
        """``metric``'s checkpoint (``nisqa`` or ``nisqa-tts``) on ``device``."""
        model = load_nisqa(weights, device)
        keys = MODELS[metric][1]
        if set(model.cfg.outputs) != set(keys):
            raise WeightsError(f"{weights}: a checkpoint with outputs {', '.join(model.cfg.outputs)}, "
                               f"not the {metric} model (outputs {', '.join(keys)})")
        return cls(model, {out: keys[out] for out in model.cfg.outputs}, device, batch_size)

    @property
    def cfg(self) -> NisqaConfig:
        return self.model.cfg

    def prepare(self, wav: np.ndarray, sr: int) -> np.ndarray:
        """Mono audio at its own rate -> mel dB [n_mels, frames]; too short or too long is a MetricError."""
        cfg = self.cfg
        hop = frame_params(sr, cfg)[0]
        require_length(wav, (cfg.seg_length - 1) * hop, sr, "NISQA")  # 1 + T // hop frames >= seg_length
        count = segment_count(1 + wav.size // hop, cfg)
        if count > cfg.max_segments:  # the official code refuses these too
            longest = (cfg.max_segments * cfg.seg_hop + cfg.seg_length - 2) * cfg.hop_seconds
            raise MetricError(f"too long for NISQA ({wav.size / sr:.1f} s gives {count} segments; the model "
                              f"takes at most {cfg.max_segments}, about {longest:.0f} s)")
        return mel_db(wav, sr, cfg)

    @torch.inference_mode()
    def score(self, mels: Sequence[np.ndarray]) -> list[Scores]:
        """Mels from :meth:`prepare` -> one ``{key: score}`` per input, ``batch_size`` files per forward pass."""
        out: list[Scores] = []
        for start in range(0, len(mels), self.batch_size):
            segs = [segments(m, self.cfg) for m in mels[start : start + self.batch_size]]
            lengths = torch.tensor([s.shape[0] for s in segs], device=self.device)
            batch = torch.nn.utils.rnn.pad_sequence(segs, batch_first=True).to(self.device)
            for row in self.model(batch, lengths).float().cpu().tolist():
                out.append({self.keys[name]: float(v) for name, v in zip(self.cfg.outputs, row)})
        return out
