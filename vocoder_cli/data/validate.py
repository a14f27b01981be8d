"""Per-file checks for training audio: every reason a clip is unusable, found once at prepare time."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from vocoder_cli.audio import (
    header_problem,
    rate_problem,
    resample,
    wav_rate,
    wav_truncation,
)
from vocoder_cli.errors import ConfigError


@dataclass(frozen=True)
class ValidationRules:
    """What a training clip must satisfy; the defaults fit HiFi-GAN at 22.05 kHz."""

    sample_rate: int = 22050
    min_samples: int = 8192  # one training segment at the target rate
    max_channels: int = 2  # stereo is averaged to mono; more channels is probably not speech
    silence_dbfs: float = -60.0  # a peak below this is silence
    clip_level: float = 0.999  # |x| at or above this counts as a clipped sample
    max_clipped_fraction: float = 0.001  # more clipped samples than this share rejects the clip

    def __post_init__(self) -> None:
        if problem := rate_problem(self.sample_rate):
            raise ConfigError(f"target {problem}")

    def to_dict(self) -> dict:
        return asdict(self)


class ClipRejected(Exception):
    """A clip failed a check; ``reason`` is one short, user-readable sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def load_checked(path: Path, rules: ValidationRules) -> tuple[np.ndarray, int, bool]:
    """Read ``path``, check it and return (mono float32 at the target rate, source rate, changed).

    ``changed`` is true when the returned signal differs from the file's samples (downmixed or
    resampled), i.e. when a converted copy must be cached. Raises :class:`ClipRejected`.
    """
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        rate = wav_rate(path)  # libsndfile refuses 0 Hz without saying why
        if rate is not None and (problem := rate_problem(rate)):
            raise ClipRejected(f"the header's {problem}") from None
        raise ClipRejected(f"unreadable ({exc})") from None
    # The header's rate and length drive the decode and the resampling: checked before either.
    if reason := header_problem(info.samplerate, info.frames, info.channels, path.stat().st_size):
        raise ClipRejected(reason)
    if reason := wav_truncation(path):  # libsndfile would return the part that is there, without a word
        raise ClipRejected(reason)
    if info.channels < 1 or info.channels > rules.max_channels:
        raise ClipRejected(f"wrong channel count ({info.channels}; at most {rules.max_channels} allowed)")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise ClipRejected(f"unreadable ({exc})") from None
    if data.size == 0:
        raise ClipRejected("empty (zero samples)")
    if not np.all(np.isfinite(data)):
        raise ClipRejected(f"contains {int(np.count_nonzero(~np.isfinite(data)))} NaN/inf samples")
    clipped = float(np.mean(np.abs(data) >= rules.clip_level))
    if clipped > rules.max_clipped_fraction:
        raise ClipRejected(f"clipped ({clipped:.2%} of samples at full scale)")
    wav = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    peak = float(np.max(np.abs(wav)))
    if peak <= 10 ** (rules.silence_dbfs / 20):
        level = "-inf" if peak == 0 else f"{20 * np.log10(peak):.1f}"
        raise ClipRejected(f"silent (peak {level} dBFS, below {rules.silence_dbfs:g} dBFS)")
    wav = resample(wav, sr, rules.sample_rate)
    if wav.shape[0] < rules.min_samples:
        raise ClipRejected(
            f"too short ({wav.shape[0]} samples at {rules.sample_rate} Hz; one training segment is "
            f"{rules.min_samples})"
        )
    changed = data.shape[1] > 1 or sr != rules.sample_rate
    return np.ascontiguousarray(wav, dtype=np.float32), int(sr), changed
