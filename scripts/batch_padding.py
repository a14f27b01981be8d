"""Padded batches: does an item's audio depend on its batch-mates, and what does exactness cost?

    python scripts/batch_padding.py [--weights hifigan-lj-v1] [--clips 4] [--repeats 4] [--threads 2]

Real clips (../shared/data/ljspeech/dev/wavs), their mels in one padded batch:

- torch (the CPU engine's channels-last copy): each item's audio from the padded batch with each layer's
  padded tail zeroed (``lengths``, what the engine does) and without (the padding frames as they are),
  against the item vocoded alone: max |difference| / peak; then both batch runs timed, interleaved;
- ONNX Runtime (which cannot zero a padded tail): the padded batch in one run against the items run one
  length at a time (what the engine does for it), timed, interleaved.

Timings on a shared machine move by 10% or more between runs: compare the columns of one run.
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

from vocoder_cli.audio import load_audio  # noqa: E402
from vocoder_cli.synthesis.engine import Synthesizer  # noqa: E402
from vocoder_cli.synthesis.vocoder import load_vocoder  # noqa: E402

CLIPS = REPO.parent / "shared" / "data" / "ljspeech" / "dev" / "wavs"


def timed(runs: dict[str, callable], repeats: int) -> dict[str, list[float]]:
    """Each run ``repeats`` times, the order alternating every round."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for rep in range(repeats):
        for name in list(runs)[:: 1 if rep % 2 == 0 else -1]:
            tick = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - tick)
    return times


def report(times: dict[str, list[float]]) -> str:
    return "; ".join(f"{name}: best {min(t):.2f} s, median {statistics.median(t):.2f} s" for name, t in times.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="hifigan-lj-v1")
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    synth = Synthesizer(load_vocoder(args.weights, backend="torch"))
    assert synth.cpu_model is not None, "the CPU engine's channels-last copy"
    hop = synth.vocoder.hop_length
    mels = [synth.mel(load_audio(c, synth.vocoder.mel.sample_rate)[0]) for c in sorted(CLIPS.glob("*.flac"))[: args.clips]]
    lengths = [m.shape[-1] for m in mels]
    batch = synth.padded_batch(mels)
    print(f"# {args.weights}, {len(mels)} clips of {lengths} frames in one padded batch, {args.threads} threads")
    with torch.inference_mode():
        alone = [synth.cpu_model(m[None])[0, 0].numpy() for m in mels]
        zeroed = synth.cpu_model(batch, lengths)[:, 0].numpy()
        as_is = synth.cpu_model(batch)[:, 0].numpy()
        for name, out in (("tails zeroed", zeroed), ("padding as it is", as_is)):
            errors = [np.abs(out[i, : n * hop] - a).max() / np.abs(a).max() for i, (n, a) in enumerate(zip(lengths, alone))]
            print(f"torch, {name}: max |batched - alone| / peak per item: {' '.join(f'{e:.1e}' for e in errors)}")
        print("torch timing:", report(timed({"tails zeroed": lambda: synth.cpu_model(batch, lengths),
                                             "padding as it is": lambda: synth.cpu_model(batch)}, args.repeats)))
    onnx = Synthesizer(load_vocoder(args.weights, backend="onnx"))
    print("onnx timing:", report(timed({"by equal length": lambda: onnx.synthesize(mels),
                                        "one padded batch": lambda: onnx.run_batch(batch)}, args.repeats)))


if __name__ == "__main__":
    main()
