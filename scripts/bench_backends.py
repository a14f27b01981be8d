"""Side-by-side synthesis speed and accuracy of the backends, in one process, on real speech.

For each HiFi-GAN variant (V1, V2, V3) the same weights run through:
  reference  the official architecture in plain eager PyTorch (vocoder_cli/synthesis/reference.py, weight
             norm removed as jik876/hifi-gan's inference.py does): what the official code runs
  eager      our CPU engine (`--backend torch`): the generator as 2-d convolutions on channels-last tensors
             (vocoder_cli/synthesis/layout.py), weight norm folded
  eager-1d   our Generator as written (1-d convolutions, contiguous tensors; not in the default list)
  onnx       our ONNX export run by ONNX Runtime, all graph optimisations (`--backend onnx`)
  onnx-spin  the same with ONNX Runtime's default of idle worker threads spinning (not in the default list)
  jit        torch.jit.trace + freeze + optimize_for_inference (oneDNN)
  compile    torch.compile (inductor; on CPU it builds C++ with gcc)
  bf16       the CPU engine at `--precision bf16`: bf16 weights cast once, channels-last, the stages from
             Generator.fp32_tail_start and conv_post in fp32 (opt-in; its bar is PESQ within 0.02 of fp32,
             scripts/precision_quality.py, not the 1e-4 error)
  bf16-autocast  our Generator under bf16 autocast with the same fp32 tail (the engine before the
             channels-last copy; not in the default list)
on the log-mel of ~`--seconds` of real LJSpeech speech (ljspeech/dev, concatenated). Timed runs are
interleaved (round robin over the candidates), so a busy machine slows all of them alike; the median is
reported. Accuracy is max |out - reference| / max |reference| on the same mel. FLOPs are counted with
torch.utils.flop_counter on the reference forward; the machine's peak is the measured GEMM rate of the
row's precision (best of ten 2048^3 matrix products on the same threads, vocoder_cli.synthesis.bench.
gemm_gflops; bf16 rows against the bf16 rate), printed with the nominal fp32 estimate beside it.

    python scripts/bench_backends.py                       # V1 (hifigan-lj-v1), V2 (hifigan-lj-v2), V3 (random)
    python scripts/bench_backends.py --variants v1 --seconds 5 --repeats 3 --candidates eager,onnx,jit
    python scripts/bench_backends.py --json results.jsonl  # one JSON object per (variant, candidate)
    python scripts/bench_backends.py --markdown table.md   # the docs/performance.md table, load average included

Weights: `--weights-v1/--weights-v2/--weights-v3` take a name or a .safetensors path; a name that is not in
the cache (or `random`) gives PyTorch's default init of that architecture, and the output says so.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from vocoder_cli.audio import resample  # noqa: E402
from vocoder_cli.demo import speech_mel  # noqa: E402
from vocoder_cli.mel import MelConfig, MelSpectrogram  # noqa: E402
from vocoder_cli.models import Generator, generator_preset  # noqa: E402
from vocoder_cli.synthesis.bench import count_gflop, load_average, machine_peak_gflops  # noqa: E402
from vocoder_cli.synthesis.layout import ChannelsLastGenerator  # noqa: E402
from vocoder_cli.synthesis.reference import reference_for  # noqa: E402

DEFAULT_WEIGHTS = {"v1": "hifigan-lj-v1", "v2": "hifigan-lj-v2", "v3": "random"}
CANDIDATES = ("eager", "onnx", "jit", "compile")
Runner = Callable[[torch.Tensor], np.ndarray]


def real_mel(data: Path, seconds: float, mel: MelConfig) -> torch.Tensor:
    """[1, n_mels, frames] log-mel of real speech: ljspeech/dev clips concatenated, cut to ``seconds``."""
    clips = sorted((data / "ljspeech" / "dev" / "wavs").glob("*.flac"))
    if not clips:
        print(f"no ljspeech/dev in {data}: using the bundled demo prompts", file=sys.stderr)
        return speech_mel(mel, seconds)[None]
    parts, total = [], 0
    for clip in clips:
        wav, sr = sf.read(clip, dtype="float32")
        wav = resample(wav, sr, mel.sample_rate)
        parts.append(wav)
        total += wav.size
        if total >= seconds * mel.sample_rate:
            break
    wav = np.concatenate(parts)[: int(seconds * mel.sample_rate)]
    with torch.inference_mode():
        return MelSpectrogram(mel)(torch.from_numpy(np.ascontiguousarray(wav))[None])


def load_weights(variant: str, spec: str) -> tuple[Generator, MelConfig, str]:
    """Our generator with real weights (name or path), or PyTorch's default init when unavailable."""
    if spec != "random":
        from vocoder_cli.errors import WeightsError
        from vocoder_cli.weights.format import load_generator
        from vocoder_cli.weights.resolve import resolve_weights

        try:
            loaded = load_generator(resolve_weights(spec))
        except WeightsError as exc:
            print(f"[{variant}] {spec}: {exc}; using random weights", file=sys.stderr)
        else:
            if loaded.config != generator_preset(variant):
                raise SystemExit(f"{spec} is not a {variant} generator")
            return loaded.generator, loaded.mel, spec
    torch.manual_seed(0)
    return Generator(generator_preset(variant)).eval(), MelConfig(), "random (PyTorch default init)"


def torch_runner(model: nn.Module, bf16: bool = False) -> Runner:
    def run(mel: torch.Tensor) -> np.ndarray:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model.generate(mel, fp32_tail=True) if bf16 else model(mel)  # bf16 as the engine runs it
            return out.float().numpy()

    return run


def build(candidate: str, generator: Generator, mel_cfg: MelConfig, mel: torch.Tensor, tmp: Path) -> Runner:
    """A callable for one candidate (setup, export or compilation happens here or on its first call)."""
    if candidate == "eager":
        return torch_runner(ChannelsLastGenerator(generator, "fp32"))
    if candidate == "eager-1d":
        return torch_runner(generator)
    if candidate == "bf16":  # `--precision bf16`: opt-in, judged by PESQ (scripts/precision_quality.py)
        return torch_runner(ChannelsLastGenerator(generator, "bf16"))
    if candidate == "bf16-autocast":
        return torch_runner(generator, bf16=True)
    if candidate in ("onnx", "onnx-spin"):
        from vocoder_cli.synthesis.backends.onnx import (
            OnnxGenerator,
            export_onnx,
            load_onnx,
            make_session,
        )

        path = tmp / "model.onnx"
        if not path.is_file():
            export_onnx(generator, mel_cfg, path)
        if candidate == "onnx-spin":  # the same model, worker threads spinning while idle (ONNX Runtime's default)
            return torch_runner(OnnxGenerator(make_session(path, spinning=True), generator.cfg))
        return torch_runner(load_onnx(path).generator)
    if candidate == "jit":
        with torch.no_grad():
            traced = torch.jit.trace(generator, mel, check_trace=False)
        frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))
        return torch_runner(frozen)
    if candidate == "compile":
        return torch_runner(torch.compile(generator, backend="inductor", dynamic=False))
    raise SystemExit(f"unknown candidate {candidate!r}: {', '.join(CANDIDATES)}, eager-1d, onnx-spin, bf16, "
                     "bf16-autocast")


def bench_variant(variant: str, args: argparse.Namespace, peaks: dict[str, float]) -> list[dict]:
    generator, mel_cfg, source = load_weights(variant, getattr(args, f"weights_{variant}"))
    mel = real_mel(args.data, args.seconds, mel_cfg)
    audio_s = mel.shape[-1] * mel_cfg.hop_length / mel_cfg.sample_rate
    reference = reference_for(generator)
    flops = count_gflop(reference, mel) * 1e9
    runners: dict[str, Runner] = {"reference": torch_runner(reference)}
    setup: dict[str, float] = {"reference": 0.0}
    outputs: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="bench-backends-") as tmp:
        for name in args.candidates:
            start = time.perf_counter()
            try:
                runners[name] = build(name, generator, mel_cfg, mel, Path(tmp))
                outputs[name] = runners[name](mel)  # first call: warm-up (and compilation)
            except Exception as exc:  # noqa: BLE001 (a candidate that cannot run here is reported, not fatal)
                print(f"[{variant}] {name}: cannot run here ({exc.__class__.__name__}: {exc})", file=sys.stderr)
                runners.pop(name, None)
                continue
            setup[name] = time.perf_counter() - start
        outputs["reference"] = runners["reference"](mel)
        times: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(args.repeats):  # round robin: load changes hit every candidate alike
            for name, run in runners.items():
                start = time.perf_counter()
                run(mel)
                times[name].append(time.perf_counter() - start)
    ref_out = outputs["reference"]
    ref_time = statistics.median(times["reference"])
    rows = []
    for name in runners:
        wall = statistics.median(times[name])
        err = float(np.max(np.abs(outputs[name] - ref_out)) / np.max(np.abs(ref_out)))
        rows.append({
            "variant": variant, "candidate": name, "weights": source, "audio_seconds": round(audio_s, 3),
            "wall_seconds": round(wall, 4), "all_seconds": [round(t, 4) for t in times[name]],
            "speedup_vs_reference": round(ref_time / wall, 3), "rtf": round(wall / audio_s, 4),
            "max_rel_error": err, "gflop": round(flops / 1e9, 2), "gflops_per_s": round(flops / 1e9 / wall, 1),
            "percent_of_peak": round(100 * flops / 1e9 / wall / peaks["bf16" if name.startswith("bf16") else "fp32"], 1),
            "setup_seconds": round(setup[name], 2),
            "threads": torch.get_num_threads(), "torch": torch.__version__, "load_average": load_average(),
        })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="v1,v2,v3")
    parser.add_argument("--candidates", default=",".join(CANDIDATES))
    parser.add_argument("--seconds", type=float, default=5.0, help="Audio per forward pass (real speech).")
    parser.add_argument("--repeats", type=int, default=3, help="Timed runs per candidate (median).")
    parser.add_argument("--threads", type=int, default=None, help="torch and ONNX Runtime threads.")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--json", type=Path, default=None, help="Also write one JSON object a line here.")
    parser.add_argument("--markdown", type=Path, default=None, help="Also write the docs/performance.md table here.")
    for variant, default in DEFAULT_WEIGHTS.items():
        parser.add_argument(f"--weights-{variant}", default=default, help=f"{variant} weights (or random).")
    args = parser.parse_args()
    args.candidates = [c.strip() for c in args.candidates.split(",") if c.strip()]
    if args.threads:
        torch.set_num_threads(args.threads)
    peak, how = machine_peak_gflops(torch.get_num_threads())
    peaks = {"fp32": peak}
    if any(c.startswith("bf16") for c in args.candidates):
        peaks["bf16"], bf16_how = machine_peak_gflops(torch.get_num_threads(), torch.bfloat16)
        how += f"; {bf16_how.split(': ', 1)[1]} (the peak of the bf16 rows)"
    start_load = load_average()
    print(f"peak: {how}; torch {torch.__version__}; load average {start_load}")
    rows: list[dict] = []
    for variant in [v.strip() for v in args.variants.split(",")]:
        rows += bench_variant(variant, args, peaks)
        head = (f"{'variant':7} {'candidate':9} {'wall s':>7} {'RTF':>6} {'x ref':>6} {'rel err':>9} "
                f"{'GFLOP/s':>8} {'% peak':>6} {'setup s':>7}")
        print(f"\n{variant}: {rows[-1]['weights']}, {rows[-1]['audio_seconds']} s of real speech, "
              f"{rows[-1]['gflop']} GFLOP per pass\n{head}")
        for r in rows:
            if r["variant"] == variant:
                print(f"{variant:7} {r['candidate']:9} {r['wall_seconds']:7.3f} {r['rtf']:6.3f} "
                      f"{r['speedup_vs_reference']:6.2f} {r['max_rel_error']:9.2e} {r['gflops_per_s']:8.1f} "
                      f"{r['percent_of_peak']:6.1f} {r['setup_seconds']:7.1f}")
        sys.stdout.flush()
    if args.json:
        args.json.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = markdown_table(rows, how, start_load)
    print("\n" + table)
    if args.markdown:
        args.markdown.write_text(table)


def markdown_table(rows: list[dict], peak_how: str, start_load: tuple | None) -> str:
    """The docs/performance.md table: one line per (variant, candidate), with the machine and its load."""
    lines = [
        f"Machine: {peak_how}; torch {torch.__version__}, {rows[0]['threads']} threads. Load average (1/5/15 min) "
        f"at the start {start_load}, at the end {rows[-1]['load_average']}.",
        "",
        "| variant | weights | candidate | median wall s | RTF | x reference | max rel err vs reference | GFLOP/s "
        "| % of peak | runs s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['variant'].upper()} | {r['weights']} | {r['candidate']} | {r['wall_seconds']:.3f} | {r['rtf']:.3f} "
            f"| {r['speedup_vs_reference']:.2f} | {r['max_rel_error']:.1e} | {r['gflops_per_s']:.1f} "
            f"| {r['percent_of_peak']:.1f} | {' '.join(f'{t:.2f}' for t in r['all_seconds'])} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
