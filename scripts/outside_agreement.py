"""Agreement of our signal metrics with the outside implementations they are tested against, on every
LJSpeech dev clip: white noise at 20 dB SNR and a 4 kHz band limit (resampled through 8 kHz).

    python scripts/outside_agreement.py [DATA_DIR]      # default ../shared/data

M-STFT and SI-SDR against auraloss (MultiResolutionSTFTLoss with its defaults, SISDRLoss), the whole
clip; MCD frame by frame against mel-cepstral-distance's distance on our mel-cepstra (times 10 sqrt(2) /
ln 10), the whole clip; MCD-DTW (banded and unrestricted) against its exact DTW on the first 2 s (its DTW
is pure Python). Prints one row per clip and damage, then the largest differences.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import auraloss
import mel_cepstral_distance
import numpy as np
import soundfile as sf
import soxr
import torch

from vocoder_cli.metrics.signal import mcd, mcd_unaligned, mstft, sisdr, world_mel_cepstra

MCD_DB = 10.0 * math.sqrt(2.0) / math.log(10.0)


def damaged(x: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    noise = np.random.default_rng(0).standard_normal(x.size)
    noise *= np.sqrt(np.mean(x.astype(np.float64) ** 2) / np.mean(noise**2) / 100.0)
    band = soxr.resample(soxr.resample(x, sr, 8000), 8000, sr)[: x.size]
    return {"noise20": (x + noise).astype(np.float32), "band4k": np.pad(band, (0, x.size - band.size)).astype(np.float32)}


def main() -> None:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "data"
    mr_stft, si_sdr = auraloss.freq.MultiResolutionSTFTLoss(), auraloss.time.SISDRLoss()
    worst: dict[str, float] = {}
    print("clip damage | mstft ours / auraloss | sisdr ours / auraloss | mcd ours / lib | "
          "2 s: mcd_dtw banded / unrestricted / lib")
    for path in sorted((data / "ljspeech" / "dev" / "wavs").glob("*.flac")):
        x, sr = sf.read(path, dtype="float32")
        for name, g in damaged(x, sr).items():
            tg, tx = torch.from_numpy(g).double()[None, None], torch.from_numpy(x).double()[None, None]
            m_ours, m_lib = mstft(x, g, sr)["mstft"], float(mr_stft(tg, tx))
            s_ours, s_lib = sisdr(x, g, sr)["sisdr"], -float(si_sdr(tg, tx))
            a, b = world_mel_cepstra(x.astype(np.float64), sr), world_mel_cepstra(g.astype(np.float64), sr)
            c_ours = mcd(x, g, sr)["mcd"]
            c_lib = MCD_DB * mel_cepstral_distance.compare_mfccs(a.T, b.T, s=1, D=25, aligning="pad")[0]
            n = 2 * sr
            a2, b2 = world_mel_cepstra(x[:n].astype(np.float64), sr), world_mel_cepstra(g[:n].astype(np.float64), sr)
            d_band, d_free = mcd(x[:n], g[:n], sr)["mcd_dtw"], mcd_unaligned(x[:n], g[:n], sr)["mcd_dtw"]
            d_lib = MCD_DB * mel_cepstral_distance.compare_mfccs(a2.T, b2.T, s=1, D=25, aligning="dtw",
                                                                 dtw_radius=None)[0]
            for key, diff in (("mstft rel", abs(m_ours - m_lib) / m_lib), ("sisdr abs dB", abs(s_ours - s_lib)),
                              ("mcd rel", abs(c_ours - c_lib) / c_lib), ("mcd_dtw unrestricted rel", abs(d_free - d_lib) / d_lib),
                              ("mcd_dtw banded rel", abs(d_band - d_lib) / d_lib)):
                worst[key] = max(worst.get(key, 0.0), diff)
            print(f"{path.stem} {name} | {m_ours:.6f} / {m_lib:.6f} | {s_ours:.4f} / {s_lib:.4f} | "
                  f"{c_ours:.6f} / {c_lib:.6f} | {d_band:.6f} / {d_free:.6f} / {d_lib:.6f}", flush=True)
    print("largest difference: " + ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))


if __name__ == "__main__":
    main()
