"""Scoring throughput: build a set of real-speech clips and their noisy copies, time the runner."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vocoder_cli.audio import find_audio_files, load_audio, save_audio
from vocoder_cli.demo import demo_speech
from vocoder_cli.metrics.base import Metric
from vocoder_cli.metrics.pairing import Pair, pair_paths
from vocoder_cli.metrics.runner import score_pairs


@dataclass(frozen=True)
class ScoreBench:
    workers: int
    files: int
    audio_seconds: float
    wall_seconds: float
    failures: int

    @property
    def files_per_second(self) -> float:
        return self.files / self.wall_seconds


def make_bench_set(folder: Path, clips: int, seconds: float, sr: int = 22050, source: Path | None = None,
                   snr_db: float = 20.0, seed: int = 0) -> list[Pair]:
    """``clips`` references of ``seconds`` each (cut cyclically from ``source`` files or the demo
    prompts) and generated copies with white noise at ``snr_db`` and 100 samples trimmed."""
    speech = (np.concatenate([load_audio(p, sr)[0] for p in find_audio_files(source)])
              if source else demo_speech(sr))
    rng = np.random.default_rng(seed)
    length = int(seconds * sr)
    tiled = np.tile(speech, int(np.ceil((length + speech.size) / speech.size)) + 1)
    for i in range(clips):
        start = (i * 7919 * sr // 1000) % speech.size
        ref = tiled[start : start + length]
        noise = rng.standard_normal(length).astype(np.float32)
        noise *= np.sqrt(np.mean(ref**2) / np.mean(noise**2) / 10 ** (snr_db / 10))
        save_audio(folder / "ref" / f"clip{i:04d}.wav", ref, sr)
        save_audio(folder / "gen" / f"clip{i:04d}.wav", (ref + noise)[:-100], sr)
    return pair_paths(folder / "ref", folder / "gen")


def time_scoring(pairs: list[Pair], metrics: list[Metric], workers: int, device: str = "cpu",
                 wvmos_checkpoint: str | None = None) -> ScoreBench:
    """Wall time of one full scoring run (loading, resampling, metrics, pool start-up included); pitch
    tracks are computed every time, never read from the cache."""
    start = time.perf_counter()
    run = score_pairs(pairs, metrics, workers=workers, device=device, wvmos_checkpoint=wvmos_checkpoint,
                      track_cache=False)
    wall = time.perf_counter() - start
    seconds = sum(load_audio(p.ref or p.gen)[0].size for p in pairs[:1]) * len(pairs)  # clips share a length
    sr = load_audio(pairs[0].ref or pairs[0].gen)[1]
    return ScoreBench(workers, len(pairs), seconds / sr, wall, len(run.failures))
