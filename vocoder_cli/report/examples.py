"""One sampled file prepared for the eye and the ear: both signals on one time axis, their levels,
their log-mels (the HiFi-GAN recipe at 22.05 kHz) and the lag that best aligns them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vocoder_cli.audio import load_audio, resample
from vocoder_cli.mel import MelSpectrogram, mel_preset

MEL_PRESET = "hifigan-22k"
ZOOM_SECONDS = 0.04
MAX_LAG_MS = 50  # a vocoder's output is aligned by construction; search +-50 ms for a surprise


@dataclass(frozen=True)
class Level:
    """RMS and peak of a signal in dBFS (full scale = 1.0); -inf for digital silence."""

    rms_dbfs: float
    peak_dbfs: float

    @classmethod
    def of(cls, wav: np.ndarray) -> Level:
        x = wav.astype(np.float64)
        rms = float(np.sqrt(np.mean(x * x))) if x.size else 0.0
        peak = float(np.max(np.abs(x))) if x.size else 0.0
        return cls(_db(rms), _db(peak))


def _db(value: float) -> float:
    return 20 * float(np.log10(value)) if value > 0 else float("-inf")


@dataclass(frozen=True)
class ExampleAudio:
    """``ref``/``gen`` [T] float32 at ``sr`` (the reference's rate; the generated audio resampled to it)
    and trimmed to one length, as the metrics see them; ``*_mel`` [n_mels, frames] natural-log mels."""

    ref: np.ndarray | None
    gen: np.ndarray
    sr: int
    ref_level: Level | None
    gen_level: Level
    ref_mel: np.ndarray | None
    gen_mel: np.ndarray
    mel_sr: int
    mel_hop: int
    mel_floor: float
    zoom: tuple[int, int]  # sample range of the close-up: the loudest ZOOM_SECONDS of the reference
    lag_ms: int | None  # gen's loudness envelope delayed by this many ms against ref's (0 = aligned)
    correlation: float | None  # Pearson correlation of the two waveforms at zero lag (phase agreement)
    trimmed: int  # samples cut from the longer signal


def envelope(wav: np.ndarray, sr: int) -> np.ndarray:
    """RMS in 1 ms blocks [T // (sr / 1000)], mean removed: timing without phase (a GAN vocoder's
    waveform does not follow the reference's phase, so the waveforms themselves barely correlate)."""
    block = max(1, sr // 1000)
    n = wav.size // block
    rms = np.sqrt(np.mean(wav[: n * block].astype(np.float64).reshape(n, block) ** 2, axis=1))
    return rms - rms.mean()


def envelope_lag_ms(ref: np.ndarray, gen: np.ndarray, sr: int, max_ms: int = MAX_LAG_MS) -> int:
    """How many ms the generated audio's envelope lags the reference's (negative: it leads)."""
    a, b = envelope(ref, sr), envelope(gen, sr)
    return best_lag(a, b, min(max_ms, max(a.size - 1, 0)))


def correlation(ref: np.ndarray, gen: np.ndarray) -> float | None:
    a, b = ref.astype(np.float64), gen.astype(np.float64)
    a, b = a - a.mean(), b - b.mean()
    norm = float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.dot(a, b) / norm) if norm > 0 else None


def best_lag(ref: np.ndarray, gen: np.ndarray, max_lag: int) -> int:
    """The delay of ``gen`` against ``ref`` (in samples, within +-max_lag) with the largest cross-correlation."""
    n = ref.size + gen.size
    size = 1 << (n - 1).bit_length()
    xc = np.fft.irfft(np.fft.rfft(gen, size) * np.conj(np.fft.rfft(ref, size)), size)
    lags = np.concatenate([xc[: max_lag + 1], xc[-max_lag:]]) if max_lag else xc[:1]
    index = int(np.argmax(lags))
    return index if index <= max_lag else index - 2 * max_lag - 1


def _loudest(wav: np.ndarray, width: int) -> tuple[int, int]:
    if wav.size <= width:
        return 0, wav.size
    energy = np.convolve(wav.astype(np.float64) ** 2, np.ones(width), mode="valid")
    start = int(np.argmax(energy))
    return start, start + width


def load_example(ref_path: Path | None, gen_path: Path) -> ExampleAudio:
    """Read one pair as the metrics do (mono, generated audio at the reference's rate, trimmed to the
    shorter). Raises AudioError for a file that cannot be read."""
    import torch

    gen, sr = load_audio(gen_path)
    ref = None
    trimmed = 0
    if ref_path is not None:
        ref, ref_sr = load_audio(ref_path)
        gen, sr = resample(gen, sr, ref_sr), ref_sr
        n = min(ref.size, gen.size)
        trimmed = max(ref.size, gen.size) - n
        ref, gen = ref[:n], gen[:n]
    cfg = mel_preset(MEL_PRESET)
    mel_fn = MelSpectrogram(cfg)

    def mel(x: np.ndarray) -> np.ndarray:
        x = resample(x, sr, cfg.sample_rate)
        if x.size < cfg.n_fft:
            x = np.pad(x, (0, cfg.n_fft - x.size))
        with torch.inference_mode():
            return mel_fn(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None])[0].numpy()

    return ExampleAudio(
        ref=ref, gen=gen, sr=sr,
        ref_level=Level.of(ref) if ref is not None else None, gen_level=Level.of(gen),
        ref_mel=mel(ref) if ref is not None else None, gen_mel=mel(gen),
        mel_sr=cfg.sample_rate, mel_hop=cfg.hop_length, mel_floor=cfg.silence_level,
        zoom=_loudest(ref if ref is not None else gen, max(1, int(ZOOM_SECONDS * sr))),
        lag_ms=envelope_lag_ms(ref, gen, sr) if ref is not None else None,
        correlation=correlation(ref, gen) if ref is not None else None, trimmed=trimmed,
    )
