"""Streaming resynthesis: error against offline synthesis as the look-ahead shrinks, latency, compute.

    python scripts/stream_latency.py errors  [--weights hifigan-lj-v1,hifigan-lj-v2,random-v3] [--clips 2] [--seconds 4]
    python scripts/stream_latency.py speed   [--models v1,v2,v3] [--threads 2] [--seconds 4] [--precision bf16]
                                             [--cached-only]

``errors``: real LJSpeech clips (../shared/data/ljspeech/dev/wavs) streamed through
vocoder_cli.synthesis.streaming with look-aheads of 15, 12, 10, 8, 6, 4, 2, 0 mel frames, compared with offline
synthesis of the same clip by the same weights (torch backend for both): relative max abs error
(max |stream - offline| / max |offline|), PESQ-wb of the streamed output with the offline output as
reference, and PESQ-wb of each against the recording (the delta is what a listener loses). ``random-v3``
means V3 with random weights (no real V3 weights are published in a form we can fetch): its PESQ is
meaningless and left out. ``speed``: per-chunk compute of V1/V2/V3 (random weights: same cost) when the
audio arrives one chunk at a time, as a real stream does, and the algorithmic latency of each setting, for
both streaming paths: cached layer state (the default at the exact look-ahead) and re-running each chunk
with its context (any look-ahead).
Timings on a shared, loaded machine are indicative only.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vocoder_cli.audio import load_audio, resample  # noqa: E402
from vocoder_cli.mel import MelConfig  # noqa: E402
from vocoder_cli.metrics.reference import pesq_at  # noqa: E402
from vocoder_cli.models import Generator, generator_preset  # noqa: E402
from vocoder_cli.synthesis.engine import EngineOptions, Synthesizer
from vocoder_cli.synthesis.streaming import StreamingResynthesizer, StreamOptions  # noqa: E402
from vocoder_cli.synthesis.vocoder import Vocoder, load_vocoder, receptive_field_frames  # noqa: E402

CLIPS = REPO.parent / "shared" / "data" / "ljspeech" / "dev" / "wavs"
LOOKAHEADS = (15, 12, 10, 8, 6, 4, 2, 0)


def vocoder_for(weights: str) -> Vocoder:
    if weights.startswith("random-"):
        torch.manual_seed(0)
        gen = Generator(generator_preset(weights.split("-", 1)[1])).eval()
        return Vocoder(gen, MelConfig(), weights, receptive_field_frames(gen.cfg) + 2)
    return load_vocoder(weights, backend="torch")


def frame_ms(frames: int, hop: int = 256, sr: int = 22050) -> float:
    return 1000.0 * frames * hop / sr


def stream(
    synth: Synthesizer, wav: np.ndarray, chunk_ms: float, lookahead_ms: float | None, block: int
) -> np.ndarray:
    resynth = StreamingResynthesizer(synth, StreamOptions(chunk_ms=chunk_ms, lookahead_ms=lookahead_ms))
    return np.concatenate(list(resynth.stream(wav[i : i + block] for i in range(0, wav.size, block))))


def pesq16(ref: np.ndarray, gen: np.ndarray, sr: int) -> float:
    return pesq_at(resample(ref, sr, 16000).astype(np.float64), resample(gen, sr, 16000).astype(np.float64), 16000, "wb")


def errors(args: argparse.Namespace) -> None:
    clips = sorted(CLIPS.glob("*.flac"))[: args.clips]
    chunk_frames = args.chunk_frames
    print(f"# chunk {chunk_frames} frames ({frame_ms(chunk_frames):.1f} ms); clips: {[c.name for c in clips]}, "
          f"first {args.seconds} s each; torch threads {torch.get_num_threads()}")
    print("| weights | look-ahead (frames / ms) | latency ms | rel. max error | PESQ vs offline | "
          "PESQ vs recording: stream - offline |")
    print("| --- | --- | --- | --- | --- | --- |")
    for weights in args.weights.split(","):
        synth = Synthesizer(vocoder_for(weights))
        sr = synth.vocoder.mel.sample_rate
        real = not weights.startswith("random-")
        data = []
        for clip in clips:
            wav, _ = load_audio(clip, sr)
            wav = wav[: int(args.seconds * sr)]
            offline = synth.synthesize([synth.mel(wav)])[0]
            data.append((wav, offline, pesq16(wav[: offline.size], offline, sr) if real else float("nan")))
        for la in LOOKAHEADS:
            errs, p_off, p_delta = [], [], []
            for wav, offline, p_ref in data:
                out = stream(synth, wav, frame_ms(chunk_frames), frame_ms(la), block=1024)
                assert out.size == offline.size, (out.size, offline.size)
                errs.append(float(np.abs(out - offline).max() / np.abs(offline).max()))
                if real:
                    p_off.append(pesq16(offline, out, sr))
                    p_delta.append(pesq16(wav[: out.size], out, sr) - p_ref)
            latency = (chunk_frames + la) * 256 + 384
            pesq_cols = (f"{statistics.mean(p_off):.3f} | {statistics.mean(p_delta):+.3f}" if real else "- | -")
            print(f"| {weights} | {la} / {frame_ms(la):.0f} | {1000 * latency / sr:.0f} | "
                  f"{max(errs):.2e} | {pesq_cols} |", flush=True)
        if real:
            print(f"| {weights} | offline PESQ vs recording: "
                  f"{statistics.mean(p for *_, p in data):.3f} | | | | |", flush=True)


SPEED_SETTINGS = (  # (chunk frames, look-ahead frames or None for exact, cached layer state)
    (1, None, True), (2, None, True), (4, None, True), (8, None, True),
    (4, None, False), (8, None, False), (16, None, False), (2, 4, False), (4, 3, False),
)


def speed(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    wav, sr = load_audio(sorted(CLIPS.glob("*.flac"))[0], 22050)
    wav = wav[: int(args.seconds * sr)]
    print(f"# torch threads {torch.get_num_threads()}; precision {args.precision}; {args.seconds} s of audio fed "
          "one chunk at a time; compute per chunk = median wall time of the push() that produced a chunk; "
          "compute RTF = all push() time / audio time")
    print("| model | path | chunk (frames / ms) | look-ahead | algorithmic latency ms | compute per chunk ms | "
          "compute RTF | offline RTF |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for model in args.models.split(","):
        synth = Synthesizer(vocoder_for(f"random-{model}"), options=EngineOptions(precision=args.precision))
        synth.synthesize([synth.mel(wav[:sr])])  # warm-up
        tick = time.perf_counter()
        synth.synthesize([synth.mel(wav)])
        offline_rtf = (time.perf_counter() - tick) / (wav.size / sr)
        for chunk_frames, la, cached in [s for s in SPEED_SETTINGS if s[2] or not args.cached_only]:
            options = StreamOptions(frame_ms(chunk_frames), None if la is None else frame_ms(la), cached=cached)
            resynth = StreamingResynthesizer(synth, options)
            block = chunk_frames * 256
            times, total = [], 0.0
            for i in range(0, wav.size, block):
                tick = time.perf_counter()
                out = resynth.push(wav[i : i + block])
                spent = time.perf_counter() - tick
                total += spent
                if out.size:
                    times.append(spent)
            lat = resynth.latency
            per_chunk = statistics.median(times)
            if lat.lag_samples is not None:
                path, ahead = "cached", f"{lat.lag_samples} samples (exact)"
            else:
                path = "re-run"
                ahead = f"{lat.lookahead_frames} frames" + (" (exact)" if la is None else "")
            print(f"| {model.upper()} | {path} | {chunk_frames} / {frame_ms(chunk_frames):.0f} | {ahead} | {lat.ms:.0f} | "
                  f"{1000 * per_chunk:.1f} | {total / (wav.size / sr):.2f} | {offline_rtf:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    e = sub.add_parser("errors")
    e.add_argument("--weights", default="hifigan-lj-v1,hifigan-lj-v2,random-v3")
    e.add_argument("--clips", type=int, default=2)
    e.add_argument("--seconds", type=float, default=4.0)
    e.add_argument("--chunk-frames", type=int, default=4)
    s = sub.add_parser("speed")
    s.add_argument("--models", default="v1,v2,v3")
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--seconds", type=float, default=4.0)
    s.add_argument("--precision", default="fp32", help="fp32 or bf16 (the engine's --precision)")
    s.add_argument("--cached-only", action="store_true", help="only the cached-layer-state path")
    args = parser.parse_args()
    errors(args) if args.what == "errors" else speed(args)


if __name__ == "__main__":
    main()
