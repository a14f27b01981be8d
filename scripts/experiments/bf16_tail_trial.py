"""Trial: which part of a HiFi-GAN generator must stay float32 under bf16 autocast (docs/performance.md).

Resynthesises ljspeech/dev (../shared/data) with the given weights in fp32 and in bf16 with different parts
kept in float32 (full = the last upsampling stage and conv_post, as `--precision bf16` ships; up = the last
transposed conv only; res = the last stage's resblocks only; post = conv_post only; none = every layer
bf16), and prints the change in mean PESQ-wb against the recordings, the largest per-file change, and the
summed time (fp32 first, so its time includes warm-up). Measured 2026-12-04 for hifigan-lj-v2: full +0.002, res -0.013, up -0.053,
post -0.075, none -0.077. Not used by vocoder; kept so the claim can be re-run:

    python scripts/experiments/bf16_tail_trial.py hifigan-lj-v2
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from pesq import pesq

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from vocoder_cli.audio import resample  # noqa: E402
from vocoder_cli.mel import MelSpectrogram  # noqa: E402
from vocoder_cli.models.generator import LRELU_SLOPE, Generator  # noqa: E402
from vocoder_cli.weights.format import load_generator  # noqa: E402
from vocoder_cli.weights.resolve import ensure_weights  # noqa: E402

CLIPS = REPO.parent / "shared" / "data" / "ljspeech" / "dev" / "wavs"
MODES = ("fp32", "full", "up", "res", "post", "none")  # what stays float32: see the docstring


def bf16(enabled: bool) -> torch.autocast:
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)


def forward(g: Generator, mel: torch.Tensor, mode: str) -> torch.Tensor:
    """Generator.forward with the last stage's parts in float32 as ``mode`` says (under an outer autocast)."""
    x = g.conv_pre(mel)
    last = g.num_upsamples - 1
    for i, up in enumerate(g.ups):
        up32 = i == last and mode in ("full", "up")
        with bf16(not up32):
            x = up(F.leaky_relu(x.float() if up32 else x, LRELU_SLOPE))
        res32 = i == last and mode in ("full", "res")
        with bf16(not res32):
            x = x.float() if res32 else x
            blocks = g.resblocks[i * g.num_kernels : (i + 1) * g.num_kernels]
            xs = blocks[0](x)
            for block in blocks[1:]:
                xs = xs + block(x)
            x = xs / g.num_kernels
    post32 = mode in ("full", "post")
    with bf16(not post32):
        x = g.conv_post(F.leaky_relu(x.float() if post32 else x))
    return torch.tanh(x.float())


def main() -> None:
    torch.set_num_threads(2)
    for weights in sys.argv[1].split(","):
        loaded = load_generator(ensure_weights(weights), "cpu")
        g, mel_fn = loaded.generator.eval(), MelSpectrogram(loaded.mel)
        scores: dict[str, list[float]] = {m: [] for m in MODES}
        seconds = dict.fromkeys(MODES, 0.0)
        for clip in sorted(CLIPS.glob("*.flac")):
            wav, sr = sf.read(clip, dtype="float32")
            wav = resample(wav, sr, 22050)
            with torch.inference_mode():
                mel = mel_fn(torch.from_numpy(wav)[None])
                for mode in MODES:
                    start = time.perf_counter()
                    if mode == "fp32":
                        out = g(mel)
                    else:
                        with bf16(True):
                            out = forward(g, mel, mode)
                    seconds[mode] += time.perf_counter() - start
                    y = out.float()[0, 0].numpy()
                    n = min(y.size, wav.size)
                    ref16, gen16 = resample(wav[:n], 22050, 16000), resample(y[:n], 22050, 16000)
                    scores[mode].append(pesq(16000, ref16, gen16, "wb"))
        base = np.array(scores["fp32"])
        for mode in MODES:
            change = np.array(scores[mode]) - base
            print(f"{weights} {mode}: PESQ change {change.mean():+.4f}, largest per-file {np.abs(change).max():.4f}, "
                  f"{seconds[mode]:.2f} s")


if __name__ == "__main__":
    main()
