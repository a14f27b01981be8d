"""Validation on the whole validation list, full utterances, at the training level (as the official
code): mel L1 (the full-band loss mel, unweighted, averaged over clips, as the official code's
``validation/mel_spec_error``; ``best`` is picked on it), PESQ and STOI on a few clips when those
packages are installed, and the audio and mel images to log."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from vocoder_cli.audio import resample
from vocoder_cli.mel import MelConfig, MelSpectrogram


@dataclass
class ValidationResult:
    scalars: dict[str, float]
    samples: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)  # name, wav, mel, real mel
    notes: list[str] = field(default_factory=list)


def _pesq_stoi(ref: np.ndarray, deg: np.ndarray, sr: int, notes: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    try:
        from pesq import pesq  # optional: the `train` extra

        out["pesq_wb"] = float(pesq(16000, resample(ref, sr, 16000), resample(deg, sr, 16000), "wb"))
    except ImportError:
        notes.append("pesq is not installed: no PESQ in validation (pip install 'vocoder[train]')")
    except Exception as exc:  # noqa: BLE001 - PESQ refuses silence etc.; one clip must not stop training
        notes.append(f"PESQ failed on a validation clip ({exc})")
    try:
        from pystoi import stoi

        out["stoi"] = float(stoi(ref, deg, sr, extended=False))
    except ImportError:
        notes.append("pystoi is not installed: no STOI in validation (pip install 'vocoder[train]')")
    return out


@torch.no_grad()
def validate(
    generator: nn.Module,
    clips: list[tuple[str, np.ndarray]],
    mel_cfg: MelConfig,
    device: torch.device,
    metric_clips: int = 3,
) -> ValidationResult:
    """Vocode each clip from its own mel; compare loss mels (and PESQ/STOI on the first ``metric_clips``)."""
    was_training = generator.training
    generator.eval()
    mel_in = MelSpectrogram(mel_cfg, compute_dtype=torch.float32)
    mel_loss = MelSpectrogram(mel_cfg.for_loss(), compute_dtype=torch.float32)
    l1s, metrics, samples, notes = [], {}, [], []
    for i, (name, wav) in enumerate(clips):
        x = torch.from_numpy(wav).to(device)[None]
        y_hat = generator(mel_in(x)).float().squeeze(1)
        n = min(x.shape[-1], y_hat.shape[-1])
        real_mel, fake_mel = mel_loss(x[:, :n]), mel_loss(y_hat[:, :n])
        l1s.append(float(torch.nn.functional.l1_loss(fake_mel, real_mel)))
        if i < metric_clips:
            ref, deg = wav[:n], y_hat[0, :n].cpu().numpy()
            for key, value in _pesq_stoi(ref, deg, mel_cfg.sample_rate, notes).items():
                metrics.setdefault(key, []).append(value)
            samples.append((name, deg, fake_mel[0].cpu().numpy(), real_mel[0].cpu().numpy()))
    generator.train(was_training)
    scalars = {"val/mel_l1": float(np.mean(l1s))} if l1s else {}
    scalars.update({f"val/{k}": float(np.mean(v)) for k, v in metrics.items()})
    return ValidationResult(scalars, samples, sorted(set(notes)))
