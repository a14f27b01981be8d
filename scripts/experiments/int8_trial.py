"""Static int8 quantization of a HiFi-GAN generator through ONNX Runtime: its PESQ cost and speed.

The generator is exported to ONNX (vocoder_cli.synthesis.backends.onnx.export_onnx), then quantized with
ONNX Runtime's static quantizer: QDQ format, int8 per-channel weights, uint8 activations calibrated
(MinMax) on the log-mels of a few clips that are not scored (reader_m/train), the output-rate stage and
conv_post left in float32 as bf16 keeps them. Both models resynthesise the ljspeech/dev clips from their
log-mels; PESQ (wide band, against the recordings) and the median wall time of a 5 s forward pass on
ONNX Runtime are printed for fp32 and int8. The bar is the one for bf16: mean PESQ within 0.02 of fp32.

    python scripts/experiments/int8_trial.py                 # hifigan-lj-v1
    python scripts/experiments/int8_trial.py --weights hifigan-lj-v2 --calibration 8
    python scripts/experiments/int8_trial.py --scope resblocks --stages 0,1 --method percentile

``--scope`` picks what is quantized: ``all`` (every convolution before the float32 tail) or ``resblocks``
(only the convolutions inside the residual blocks, of the stages in ``--stages``); ``--method`` the
activation calibration (ONNX Runtime's MinMax, Percentile at 99.999%, or Entropy).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from vocoder_cli.audio import resample  # noqa: E402
from vocoder_cli.mel import MelSpectrogram  # noqa: E402
from vocoder_cli.metrics.reference import pesq_wb  # noqa: E402
from vocoder_cli.synthesis.backends.onnx import export_onnx, make_session  # noqa: E402
from vocoder_cli.synthesis.vocoder import load_vocoder  # noqa: E402

DATA = REPO.parent / "shared" / "data"
CALIBRATION_FRAMES = 200  # mel frames per calibration input (2.3 s)


def mel_pieces(mel: np.ndarray, frames: int) -> list[np.ndarray]:
    """[1, n_mels, T] -> the whole pieces of ``frames`` frames, in order."""
    return [mel[..., i : i + frames] for i in range(0, mel.shape[-1] - frames + 1, frames)]


def clips(folder: Path, sr: int, count: int | None = None) -> list[np.ndarray]:
    files = sorted(folder.glob("*.flac"))[:count]
    out = []
    for f in files:
        audio, rate = sf.read(f, dtype="float32")
        out.append(resample(audio, rate, sr))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="hifigan-lj-v1")
    parser.add_argument("--calibration", type=int, default=6, help="reader_m/train clips for calibration")
    parser.add_argument("--scope", choices=("all", "resblocks"), default="all")
    parser.add_argument("--stages", default=None, help="with --scope resblocks: comma-separated stage indices")
    parser.add_argument("--method", choices=("minmax", "percentile", "entropy"), default="minmax")
    args = parser.parse_args()
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    vocoder = load_vocoder(args.weights)
    generator, cfg = vocoder.model, vocoder.mel
    to_mel = MelSpectrogram(cfg)
    mel_of = lambda a: to_mel(torch.from_numpy(a)[None]).numpy()  # noqa: E731  [1, n_mels, frames]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            # pieces of one length: ORT's percentile and entropy calibrators stack their inputs
            self.mels = iter(piece for a in clips(DATA / "reader_m" / "train" / "wavs", cfg.sample_rate,
                                                  args.calibration)
                             for piece in mel_pieces(mel_of(a), CALIBRATION_FRAMES))

        def get_next(self) -> dict | None:
            mel = next(self.mels, None)
            return None if mel is None else {"mel": mel}

    with tempfile.TemporaryDirectory() as tmp:
        fp32_path, int8_path = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        export_onnx(generator, cfg, fp32_path)
        import onnx

        graph = onnx.load(str(fp32_path)).graph
        start = generator.fp32_tail_start
        tail = [n.name for n in graph.node if n.op_type in ("Conv", "ConvTranspose")
                and any(f"ups.{i}" in n.name or f"resblocks.{j}" in n.name or "conv_post" in n.name
                        for i in range(start, generator.num_upsamples)
                        for j in range(start * generator.num_kernels, len(generator.resblocks)))]
        convs = [n.name for n in graph.node if n.op_type in ("Conv", "ConvTranspose")]
        if args.scope == "resblocks":
            stages = range(start) if args.stages is None else [int(i) for i in args.stages.split(",")]
            chosen = {f"resblocks.{i * generator.num_kernels + k}/" for i in stages for k in range(generator.num_kernels)}
            tail = [n for n in convs if not any(c in n for c in chosen)]
        method = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                  "entropy": CalibrationMethod.Entropy}[args.method]
        quantize_static(str(fp32_path), str(int8_path), Reader(), quant_format=QuantFormat.QDQ,
                        per_channel=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8,
                        nodes_to_exclude=tail, calibrate_method=method)
        sessions = {"fp32": make_session(fp32_path), "int8": make_session(int8_path)}
        refs = clips(DATA / "ljspeech" / "dev" / "wavs", cfg.sample_rate)
        scores: dict[str, list[float]] = {name: [] for name in sessions}
        for ref in refs:
            mel = mel_of(ref)
            for name, session in sessions.items():
                out = session.run(None, {"mel": mel})[0].reshape(-1)[: ref.size]
                scores[name].append(pesq_wb(ref[: out.size], out, cfg.sample_rate)["pesq"])
        probe = np.concatenate([mel_of(r) for r in refs], axis=-1)[..., : int(5 * cfg.sample_rate / cfg.hop_length)]
        times: dict[str, list[float]] = {name: [] for name in sessions}
        for _ in range(5):  # round robin, so load changes hit both alike
            for name, session in sessions.items():
                t = time.perf_counter()
                session.run(None, {"mel": probe})
                times[name].append(time.perf_counter() - t)
    fp32_pesq = statistics.fmean(scores["fp32"])
    for name in sessions:
        change = statistics.fmean(scores[name]) - fp32_pesq
        worst = max(abs(a - b) for a, b in zip(scores[name], scores["fp32"]))
        print(f"{args.weights} {name}: PESQ {statistics.fmean(scores[name]):.4f} (change {change:+.4f}, largest "
              f"per-file {worst:.4f}); 5 s forward {statistics.median(times[name]):.3f} s "
              f"(x{statistics.median(times['fp32']) / statistics.median(times[name]):.2f} of ONNX fp32); "
              f"{len(tail)} of {len(convs)} convolutions kept float32 ({args.scope}, {args.method})")


if __name__ == "__main__":
    main()
