"""Log-mel files: audio in, ``.npy`` mels out in a stated :class:`MelConfig`, with the config recorded beside them.

The files are what ``vocoder resynth --from-mels`` and ``vocoder train --gta-mels`` read: float32
``[n_mels, frames]``, natural log, ``frames == samples // hop`` in HiFi-GAN framing. Inputs, output names,
existing files and overlapping trees follow resynth's rules (:func:`plan_jobs`, :mod:`vocoder_cli.outputs`);
writes are atomic. Items are batched: each waveform is reflect-padded on its own (so its edges are exactly
the one-file result), the padded signals are zero-filled to the longest and framed together, and each mel
is cut back to its own frame count, so a batched mel equals the mel computed alone.

The config goes into ``mel_config.json`` in an output folder (``NAME.mel_config.json`` beside a single
output file): ``{"written_by": "vocoder mels", "source": ..., "mel_config": {...}}``. A folder that already
holds mels of another config is refused before any work (mixing them would train a vocoder on two meanings
of a bin).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vocoder_cli.audio import atomic_write_bytes, read_audio, read_audio_bytes
from vocoder_cli.errors import ConfigError, VocoderError
from vocoder_cli.mel import MelConfig, MelSpectrogram
from vocoder_cli.outputs import OutputError, OutputPolicy
from vocoder_cli.synthesis.resynthesis import (
    STDIO,
    Failure,
    InputWarning,
    ItemProgress,
    Job,
    Report,
    plan_jobs,
    settled,
)

MEL_SUFFIX = ".npy"
CONFIG_NAME = "mel_config.json"
WRITTEN_BY = "vocoder mels"


def plan_mel_jobs(inputs: Sequence[str], output: str, policy: OutputPolicy | None = None) -> list[Job]:
    """Each audio input's ``.npy`` target: resynth's rule with ``.npy`` names (``-``: stdout, one input)."""
    return plan_jobs(inputs, output, out_ext=MEL_SUFFIX, policy=policy, single_exts=frozenset({MEL_SUFFIX}))


def config_path(output: str) -> Path | None:
    """Where the mel config is recorded for ``output`` (None for stdout)."""
    if output == STDIO:
        return None
    out = Path(output)
    if out.suffix.lower() == MEL_SUFFIX and not out.is_dir():
        return out.with_name(out.stem + "." + CONFIG_NAME)
    return out / CONFIG_NAME


def config_record(cfg: MelConfig, source: str) -> dict[str, Any]:
    return {"written_by": WRITTEN_BY, "source": source, "mel_config": cfg.to_dict()}


def read_config_file(path: str | Path) -> MelConfig:
    """A mel config from JSON: a ``mel_config.json`` of this command, a bare MelConfig object, or an official
    HiFi-GAN ``config.json`` (``sampling_rate``, ``hop_size`` ...). Errors name the file."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable JSON config ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a JSON object")
    if isinstance(raw.get("mel_config"), dict):
        raw = raw["mel_config"]
    if "hop_size" in raw and "sampling_rate" in raw:
        from vocoder_cli.weights.official import read_official_config

        return read_official_config(path)[1]
    try:
        return MelConfig.from_dict(raw)
    except (ConfigError, TypeError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


def check_config_record(output: str, cfg: MelConfig, policy: OutputPolicy) -> Path | None:
    """Refuse, before any work, an output whose recorded config differs from ``cfg`` (unless --overwrite);
    returns the record's path (None for stdout)."""
    path = config_path(output)
    if path is None or not path.exists():
        return path
    try:
        recorded = read_config_file(path)
    except ConfigError as exc:
        if policy.existing == "overwrite":
            return path
        raise OutputError(f"{path} exists and is not a mel config this command wrote ({exc}); add --overwrite") from None
    if recorded != cfg and policy.existing != "overwrite":
        differ = [k for k, v in cfg.to_dict().items() if recorded.to_dict().get(k) != v]
        raise OutputError(
            f"{path} records mels of another config (different {', '.join(differ)}): write these elsewhere, "
            "or add --overwrite to replace the record (the mels there already keep their old config)"
        )
    return path


def write_config_record(path: Path | None, cfg: MelConfig, source: str) -> None:
    if path is None:
        return
    payload = json.dumps(config_record(cfg, source), indent=2).encode() + b"\n"
    if path.exists() and path.read_bytes() == payload:
        return
    atomic_write_bytes(path, payload)


def npy_bytes(mel: np.ndarray) -> bytes:
    """A float32 ``.npy`` file's bytes (no pickles)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(mel, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def batched_mels(frontend: MelSpectrogram, wavs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Log-mels ``[n_mels, frames]`` of waveforms ``[T_i]`` in one STFT, each equal to its one-by-one mel.

    Each waveform is reflect-padded alone, zero-filled to the longest padded length ``[B, T_max]``, framed,
    and cut to its own ``cfg.num_frames(T_i)`` frames: the frames kept never reach the zero fill."""
    cfg = frontend.cfg
    pad = cfg.n_fft // 2 if cfg.center else (cfg.n_fft - cfg.hop_length) // 2
    padded = []
    for wav in wavs:
        if wav.shape[-1] <= pad:
            raise ValueError(f"signal of {wav.shape[-1]} samples is too short for the mel frontend (needs > {pad})")
        x = wav.to(frontend.compute_dtype)[None, None]
        padded.append(torch.nn.functional.pad(x, (pad, pad), mode="reflect")[0, 0])
    longest = max(p.shape[-1] for p in padded)
    batch = torch.stack([torch.nn.functional.pad(p, (0, longest - p.shape[-1])) for p in padded])
    mels = frontend.from_padded(batch)
    return [mels[i, :, : cfg.num_frames(w.shape[-1])] for i, w in enumerate(wavs)]


@dataclass
class MelOptions:
    policy: OutputPolicy = field(default_factory=OutputPolicy)
    batch_size: int = 16  # waveforms per STFT call
    group_size: int = 64  # files decoded at once (bounds memory)
    source: str = ""  # what the config came from (weights name, preset, file), recorded in the JSON


class MelExtractor:
    """Runs :class:`Job` s (audio -> ``.npy``) on ``device``; the report counts written seconds of audio."""

    def __init__(self, cfg: MelConfig, device: str, options: MelOptions, stdin: bytes | None = None) -> None:
        self.cfg = cfg
        self.device = torch.device(device)
        self.options = options
        self.stdin = stdin
        self.frontend = MelSpectrogram(cfg)

    def _load(self, job: Job) -> tuple[torch.Tensor, tuple[str, ...]]:
        sr = self.cfg.sample_rate
        loaded = read_audio_bytes(self.stdin or b"", sr) if job.source == STDIO else read_audio(job.source, sr)
        return torch.from_numpy(loaded.wav), loaded.warnings

    def run(
        self, jobs: Sequence[Job], on_progress: Callable[[float], None] | None = None
    ) -> tuple[Report, bytes | None]:
        """Every job; returns the report and, for a stdout job, the ``.npy`` bytes. A bad input is a failure
        naming it, and the batch goes on."""
        report, payload = Report(), None
        start = time.perf_counter()
        progress = ItemProgress(on_progress)
        todo = []
        for job in jobs:
            if job.problem is not None:
                report.failures.append(Failure(job.label, job.problem))
                progress.done(id(job))
            elif self._settled(job, report):
                progress.done(id(job))
            else:
                if job.renamed:
                    report.renamed.append(job)
                todo.append(job)
        for first in range(0, len(todo), self.options.group_size):
            ready: list[tuple[Job, torch.Tensor]] = []
            for job in todo[first : first + self.options.group_size]:
                try:
                    wav, warnings = self._load(job)
                except VocoderError as exc:
                    report.failures.append(Failure(job.label, getattr(exc, "reason", str(exc))))
                    progress.done(id(job))
                    continue
                pad = (self.cfg.n_fft // 2) if self.cfg.center else (self.cfg.n_fft - self.cfg.hop_length) // 2
                if wav.shape[-1] <= pad or self.cfg.num_frames(wav.shape[-1]) < 1:
                    reason = f"too short ({wav.shape[-1]} samples at {self.cfg.sample_rate} Hz; needs > {pad})"
                    report.failures.append(Failure(job.label, reason))
                    progress.done(id(job))
                    continue
                report.warnings.extend(InputWarning(job.label, w) for w in warnings)
                ready.append((job, wav))
            ready.sort(key=lambda item: item[1].shape[-1])  # similar lengths share a batch: less zero fill
            for at in range(0, len(ready), self.options.batch_size):
                chunk = ready[at : at + self.options.batch_size]
                with torch.inference_mode():
                    mels = self.compute(chunk, report)
                for (job, wav), mel in zip(chunk, mels):
                    if isinstance(mel, str):
                        report.failures.append(Failure(job.label, mel))
                    elif not self._settled(job, report):
                        payload = self._write(job, mel.cpu().numpy(), wav.shape[-1], report) or payload
                    progress.done(id(job))
        report.wall_seconds = time.perf_counter() - start
        return report, payload

    def compute(self, chunk: Sequence[tuple[Job, torch.Tensor]], report: Report) -> list[torch.Tensor | str]:
        """One batch's mels [n_mels, frames] (or, per item, the reason it failed): waveforms [T_i] in, on the
        CPU. Here the frontend's log-mels; teacher forcing (:mod:`vocoder_cli.tts.gta`) overrides it."""
        mels = batched_mels(self.frontend, [wav.to(self.device) for _, wav in chunk])
        return list(mels)

    def _settled(self, job: Job, report: Report) -> bool:
        return settled(self.options.policy, job, report)

    def _write(self, job: Job, mel: np.ndarray, samples: int, report: Report) -> bytes | None:
        data = npy_bytes(mel)
        if job.target != STDIO:
            try:
                atomic_write_bytes(job.target, data)
            except OSError as exc:
                report.failures.append(Failure(job.label, f"cannot write {job.target}: {exc}"))
                return None
        report.written.append(job.target)
        report.audio_seconds += samples / self.cfg.sample_rate
        return data if job.target == STDIO else None


def weights_mel_config(
    weights: str, offline: bool | None = None, notify: Callable[[str], None] | None = None
) -> tuple[MelConfig, str]:
    """The mel config a vocoder's weights were trained on, and its name, read from the file's metadata
    (pulled first when a registered name is not cached yet, unless offline); no generator is built."""
    from vocoder_cli.synthesis.vocoder import GRIFFIN_LIM, is_onnx_path
    from vocoder_cli.weights.format import read_metadata
    from vocoder_cli.weights.resolve import canonical_name, ensure_weights

    if weights == GRIFFIN_LIM:
        from vocoder_cli.mel import mel_preset

        return mel_preset("hifigan-22k"), GRIFFIN_LIM
    path = ensure_weights(weights, offline=offline, notify=notify)
    label = str(path) if Path(weights).expanduser().is_file() else canonical_name(weights)
    if is_onnx_path(path):
        from vocoder_cli.synthesis.vocoder import load_vocoder

        return load_vocoder(str(path), "cpu", backend="onnx").mel, label
    try:
        return MelConfig.from_dict(json.loads(read_metadata(path)["mel_config"])), label
    except (KeyError, json.JSONDecodeError, TypeError, ConfigError) as exc:
        raise ConfigError(f"{path}: broken mel config metadata ({exc})") from None
