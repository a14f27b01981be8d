"""The training loop, readable top to bottom: set up, resume, then step / log / validate / checkpoint.

The core never prints: progress goes to an ``on_event`` callback (the CLI renders it with Rich or as
plain lines). Works the same on one CPU, one GPU, or N processes under ``torchrun`` (DDP).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vocoder_cli.data.manifest import TRAIN_MANIFEST, VAL_MANIFEST, read_manifest
from vocoder_cli.data.segments import (
    BatchPlanner,
    DeviceSegments,
    LoaderSegments,
    clip_peaks,
    load_clip,
    load_gta_mel,
    match_gta_mels,
    peak_gain,
)
from vocoder_cli.errors import ConfigError, VocoderError
from vocoder_cli.models import (
    Generator,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
)
from vocoder_cli.training import checkpoint as ckpt
from vocoder_cli.training.config import (
    CONFIG_FILE,
    TrainConfig,
    apply_overrides,
    load_config,
    with_values,
)
from vocoder_cli.training.distributed import (
    DistInfo,
    any_rank,
    barrier,
    init_distributed,
    shutdown,
    split_batch,
)
from vocoder_cli.training.init_from import (
    InitWeights,
    init_configs,
    load_generator_weights,
    load_init_weights,
    restore_training_state,
)
from vocoder_cli.training.logs import RunLogger, mel_image
from vocoder_cli.training.precision import (
    apply_precision,
    describe_precision,
    resolve_precision,
)
from vocoder_cli.training.step import GANStep
from vocoder_cli.training.validation import validate

# Besides every log_interval steps (and this invocation's first step), a log line at least this often, so a
# slow machine (V1 on a laptop CPU: ~10 s per step) shows losses long before step 50.
LOG_SECONDS = 30.0


class TrainingDiverged(VocoderError):
    """Too many consecutive steps with non-finite gradients."""


@dataclass
class TrainEvent:
    kind: str  # start | step | val | checkpoint | note | end
    step: int = 0
    epoch: int = 0
    scalars: dict[str, float] = field(default_factory=dict)
    steps_per_sec: float = 0.0
    eta_s: float | None = None
    message: str = ""


@dataclass
class TrainOutcome:
    step: int
    epoch: int
    reason: str
    checkpoint: Path | None
    best_val_mel_l1: float | None


EventSink = Callable[[TrainEvent], None]


# ----------------------------------------------------------------------------------------------
# Configuration of a run (new or resumed)


def resolve_config(
    run_dir: Path,
    config: str | None = None,
    overrides: list[str] | None = None,
    **options: object,
) -> TrainConfig:
    """The config a run uses: the run folder's saved one when resuming, else ``--config``; then
    ``--set`` overrides and explicit options. Architecture changes to a run with checkpoints are refused."""
    saved_path = Path(run_dir) / CONFIG_FILE
    resuming = ckpt.latest_checkpoint(run_dir) is not None
    if saved_path.is_file() and (resuming or config is None):
        cfg = TrainConfig.from_dict(json.loads(saved_path.read_text(encoding="utf-8")))
        if config is not None:  # the same command line again is fine; another model is not
            wanted = apply_overrides(load_config(config), overrides or [])
            if not cfg.init_from and (wanted.generator, wanted.mel) != (cfg.generator, cfg.mel):
                raise ConfigError(
                    f"{run_dir} holds a run of another model config; resume it without --config or use a new --run"
                )
    else:
        cfg = load_config(config or "v1")
    base = cfg
    cfg = apply_overrides(cfg, overrides or [])
    cfg = with_values(cfg, **options)
    if cfg.init_from and not resuming:
        cfg = _adopt_init_config(cfg)
    if resuming and (cfg.generator, cfg.mel, cfg.segment) != (base.generator, base.mel, base.segment):
        raise ConfigError(f"{run_dir}: cannot change the model, mel or segment of a run that has checkpoints")
    if not cfg.data:
        raise ConfigError("--data PREPARED is required for a new run (a folder made by `vocoder prepare`)")
    return cfg


def _adopt_init_config(cfg: TrainConfig) -> TrainConfig:
    """Fine-tuning trains the architecture and mel of the weights it starts from."""
    generator, mel = init_configs(cfg.init_from)
    return replace(cfg, generator=generator, mel=mel, preset="init-from")


# ----------------------------------------------------------------------------------------------
# Data


def _fits_on_device(nbytes: int, device: torch.device) -> bool:
    """Audio may take a fifth of free GPU memory (activations need the rest), a quarter of RAM on CPU."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return nbytes < 0.2 * free
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return False
    return nbytes < 0.25 * ram


def build_segments(cfg: TrainConfig, info: DistInfo, notes: list[str]) -> tuple[object, BatchPlanner]:
    data = Path(cfg.data)
    entries = read_manifest(data / TRAIN_MANIFEST)
    wrong = [e for e in entries if e.sample_rate != cfg.mel.sample_rate]
    if wrong:
        raise ConfigError(
            f"{len(wrong)} training clips are at {wrong[0].sample_rate} Hz but the mel config expects "
            f"{cfg.mel.sample_rate} Hz; prepare the data with --sample-rate {cfg.mel.sample_rate}"
        )
    hop = cfg.mel.hop_length
    gta_frames = None
    if cfg.gta_mels:
        entries, gta_frames, problems = match_gta_mels(entries, Path(cfg.gta_mels), hop, cfg.mel.n_mels)
        notes.extend(f"GTA: excluded {p}" for p in problems)
        if not entries:
            raise ConfigError(f"no training clip has a usable GTA mel in {cfg.gta_mels}")
    per_process = split_batch(cfg.batch_size, info.world)
    if info.enabled:
        notes.append(f"batch {cfg.batch_size} per step: {per_process} segments in each of {info.world} processes")
    planner = BatchPlanner(len(entries), per_process, cfg.seed, info.rank, info.world)
    level = cfg.peak_level if cfg.normalize_peaks else None
    notes.append(_level_note(cfg))
    nbytes = sum(e.num_samples for e in entries) * 4 * (1 + (cfg.mel.n_mels / hop if cfg.gta_mels else 0))
    on_device = cfg.data_on_device == "on" or (cfg.data_on_device == "auto" and _fits_on_device(int(nbytes), info.device))
    if on_device:
        wavs = [load_clip(e.path, level) for e in entries]
        mels = None
        if cfg.gta_mels:
            mels = [load_gta_mel(Path(cfg.gta_mels) / f"{e.stem}.npy", cfg.mel.n_mels) for e in entries]
        source = DeviceSegments(wavs, planner, cfg.segment, info.device, mels=mels, hop=hop)
        notes.append(f"data on {info.device}: {len(entries)} clips, {source.nbytes / 2**20:.0f} MiB, no DataLoader")
    else:
        gta = None
        if cfg.gta_mels:
            gta = [(Path(cfg.gta_mels) / f"{e.stem}.npy", f) for e, f in zip(entries, gta_frames)]
        gains = None
        if level is not None:
            started = time.monotonic()
            gains = np.array([peak_gain(p, level) for p in clip_peaks([e.path for e in entries])], dtype=np.float32)
            notes.append(f"peak levels of {len(entries)} clips read in {time.monotonic() - started:.1f} s")
        source = LoaderSegments(
            entries, planner, cfg.segment, info.device, cfg.num_workers, gta=gta, hop=hop, gains=gains
        )
        notes.append(f"data streamed by a DataLoader ({cfg.num_workers} workers): {nbytes / 2**20:.0f} MiB")
    return source, planner


def _level_note(cfg: TrainConfig) -> str:
    if cfg.normalize_peaks:
        return f"level: every clip peak-normalised to {cfg.peak_level:g} where it is loaded (as the official loader)"
    if cfg.gta_mels and cfg.peak_normalize == "auto":
        return "level: clips at their recorded level (with GTA mels, as the official fine-tuning)"
    return "level: clips at their recorded level (peak_normalize=off)"


def load_val_clips(cfg: TrainConfig) -> list[tuple[str, np.ndarray]]:
    """The whole validation list, full utterances (as the official code), at the training level;
    ``val_clips`` / ``val_max_seconds`` cap the count and the length when set (0: no cap)."""
    path = Path(cfg.data) / VAL_MANIFEST
    if not path.is_file():
        return []
    entries = read_manifest(path)
    if cfg.val_clips:
        entries = entries[: cfg.val_clips]
    level = cfg.peak_level if cfg.normalize_peaks else None
    clips = []
    for entry in entries:
        wav = load_clip(entry.path, level)  # the whole clip's peak, then the cap: as training sees it
        if cfg.val_max_seconds:
            wav = wav[: int(cfg.val_max_seconds * cfg.mel.sample_rate)]
        wav = wav[: len(wav) // cfg.mel.hop_length * cfg.mel.hop_length]
        if len(wav) >= cfg.mel.n_fft:
            clips.append((entry.stem, wav))
    return clips


# ----------------------------------------------------------------------------------------------
# Models


def build_models(
    cfg: TrainConfig, init: InitWeights | None, notes: list[str]
) -> tuple[Generator, nn.Module, nn.Module, bool]:
    """Fresh or ``--init-from`` networks, the generator in weight-norm form; the flag says whether the
    discriminators came from ``init``.

    Fresh generators keep PyTorch's default init (``generator_init=official``: what the official code
    trains from, its N(0, 0.01) being lost after weight norm) or get N(0, 0.01) (``normal``).
    """
    generator = Generator(cfg.generator)
    mpd, msd = MultiPeriodDiscriminator(cfg.mpd_periods, cfg.disc_width), MultiScaleDiscriminator(cfg.disc_width)
    d_loaded = False
    if init is None:
        if cfg.generator_init == "normal":
            generator.init_normal(0.01)
        generator.apply_weight_norm()
        notes.append(
            "fresh generator: N(0, 0.01) init (generator_init=normal)" if cfg.generator_init == "normal"
            else "fresh generator: PyTorch's default init, as the official code really trains (generator_init=official)"
        )
        return generator, mpd, msd, d_loaded
    load_generator_weights(generator, init)
    notes.extend(init.notes)
    if init.discriminators is not None:
        try:
            mpd.load_state_dict(init.discriminators[0])
            msd.load_state_dict(init.discriminators[1])
            d_loaded = True
        except RuntimeError:
            mpd, msd = MultiPeriodDiscriminator(cfg.mpd_periods, cfg.disc_width), MultiScaleDiscriminator(cfg.disc_width)
            notes.append("the do_ discriminators do not fit this config's (mpd_periods, disc_width): they start untrained")
    return generator, mpd, msd, d_loaded


def _rng_state(device: torch.device) -> dict[str, object]:
    state: dict[str, object] = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


# ----------------------------------------------------------------------------------------------
# The loop


def train(
    cfg: TrainConfig,
    run_dir: Path,
    *,
    device: str = "cpu",
    on_event: EventSink | None = None,
    stop_requested: Callable[[], bool] | None = None,
) -> TrainOutcome:
    """Train (or resume) the run in ``run_dir`` until a stopping rule fires; returns where it stopped."""
    emit = on_event or (lambda event: None)
    info = init_distributed(device)
    try:
        return _train(cfg, Path(run_dir), info, emit, stop_requested or (lambda: False))
    finally:
        shutdown(info)


def _train(cfg: TrainConfig, run_dir: Path, info: DistInfo, emit: EventSink, stop_requested: Callable[[], bool]) -> TrainOutcome:
    dev = info.device
    cfg = resolve_precision(cfg, dev)
    apply_precision(cfg, dev)
    split_batch(cfg.batch_size, info.world)  # a batch that does not split over the processes: fail first
    torch.manual_seed(cfg.seed + info.rank)
    if info.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg.save(run_dir)

    # Models, optimisers, schedulers (AdamW, exponential decay per epoch, as the official recipe).
    # On resume the checkpoint replaces every weight, so --init-from is not read again.
    latest = ckpt.latest_checkpoint(run_dir)
    notes: list[str] = [describe_precision(cfg)]
    init = load_init_weights(cfg.init_from) if cfg.init_from and latest is None else None
    generator, mpd, msd, d_loaded = build_models(cfg, init, notes if latest is None else [])  # resume: weights follow
    generator.to(dev), mpd.to(dev), msd.to(dev)
    betas = (cfg.beta1, cfg.beta2)
    optim_g = torch.optim.AdamW(generator.parameters(), cfg.lr, betas=betas, weight_decay=cfg.weight_decay)
    optim_d = torch.optim.AdamW(
        [*mpd.parameters(), *msd.parameters()], cfg.lr, betas=betas, weight_decay=cfg.weight_decay
    )

    # Fine-tuning from an official g_/do_ pair: its optimiser states, step and epoch (before the
    # schedulers are built, so they continue from the restored, decayed learning rate).
    step, epoch, index = 0, 0, 0
    if init is not None:
        restored = restore_training_state(init, cfg.reset_optimizer, d_loaded, optim_g, optim_d, mpd, msd)
        step, epoch = restored.step, restored.epoch
        notes.extend(restored.notes)
        if step and cfg.max_steps and step >= cfg.max_steps:
            raise ConfigError(
                f"--max-steps {cfg.max_steps} is not above step {step}, where the official checkpoint's run "
                f"continues (max_steps is a global step): use e.g. --max-steps {step + cfg.max_steps} to train "
                f"{cfg.max_steps} more, or --reset-optimizer to count from 0"
            )
    sched_g = torch.optim.lr_scheduler.ExponentialLR(optim_g, gamma=cfg.lr_decay)
    sched_d = torch.optim.lr_scheduler.ExponentialLR(optim_d, gamma=cfg.lr_decay)
    sched_g.last_epoch = sched_d.last_epoch = epoch

    # Resume: everything, including the data position and RNG states.
    best = ckpt.read_best(run_dir)
    if latest is not None:
        state = ckpt.load_state(latest)
        generator.load_state_dict(state["generator"])
        mpd.load_state_dict(state["mpd"])
        msd.load_state_dict(state["msd"])
        optim_g.load_state_dict(state["optim_g"])
        optim_d.load_state_dict(state["optim_d"])
        sched_g.load_state_dict(state["sched_g"])
        sched_d.load_state_dict(state["sched_d"])
        step, epoch, index = int(state["step"]), int(state["epoch"]), int(state["batch_index"])
        torch.set_rng_state(state["rng"]["cpu"])
        if dev.type == "cuda" and "cuda" in state["rng"]:
            torch.cuda.set_rng_state(state["rng"]["cuda"], dev)

    source, planner = build_segments(cfg, info, notes)
    val_clips = load_val_clips(cfg) if info.is_main else []
    if info.is_main and not val_clips:
        notes.append("no validation clips (empty val manifest): no validation, no `best` checkpoint")

    # Wrappers: DDP across processes, then optionally torch.compile. Keep the raw modules for saving.
    g_run, mpd_run, msd_run = generator, mpd, msd
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [dev.index] if dev.type == "cuda" else None
        g_run, mpd_run, msd_run = (DDP(m, device_ids=ids) for m in (generator, mpd, msd))
    if cfg.compile:
        g_run, mpd_run, msd_run = (torch.compile(m) for m in (g_run, mpd_run, msd_run))
    stepper = GANStep(cfg, g_run, mpd_run, msd_run, optim_g, optim_d, dev)

    logger = RunLogger(
        run_dir, enabled=info.is_main, resume_step=step, wandb_project=cfg.wandb_project, config=cfg.to_dict()
    )
    for note in notes + logger.notes:
        emit(TrainEvent("note", step, epoch, message=note))
    emit(TrainEvent("start", step, epoch, message="resumed" if latest is not None else "new run"))

    def save(reason: str) -> Path | None:
        """Every rank calls this at the same step (it ends in a barrier); rank 0 writes."""
        nonlocal saved_step
        saved_step, path = step, None
        if info.is_main:
            state = {
                "step": step, "epoch": epoch, "batch_index": index,
                "generator": generator.state_dict(), "mpd": mpd.state_dict(), "msd": msd.state_dict(),
                "optim_g": optim_g.state_dict(), "optim_d": optim_d.state_dict(),
                "sched_g": sched_g.state_dict(), "sched_d": sched_d.state_dict(),
                "rng": _rng_state(dev), "best_val_mel_l1": best,
            }
            path = ckpt.save_checkpoint(run_dir, step, state, generator, cfg.mel, cfg.keep_checkpoints)
            emit(TrainEvent("checkpoint", step, epoch, message=f"{reason}: {path.name}"))
        barrier(info)
        return path

    started = time.monotonic()
    window_start, window_steps = time.monotonic(), 0
    first_step = step + 1  # this invocation's first step is always logged: a sign of life before log_interval
    bad_streak, reason = 0, ""
    saved_step = step if latest is not None else None  # decided locally on every rank, never from the file system
    if cfg.max_steps and step >= cfg.max_steps:
        reason = "max_steps"
        emit(TrainEvent("note", step, epoch, message=finished_message(run_dir, step, cfg.max_steps)))
    sums: dict[str, torch.Tensor] = {}
    while not reason:
        for batch in source.batches(epoch, index):
            result = stepper(batch)
            step, index, window_steps = step + 1, index + 1, window_steps + 1
            for key, value in result.losses.items():
                sums[key] = sums.get(key, 0) + value
            epoch_done = index >= planner.steps_per_epoch
            if epoch_done:
                epoch, index = epoch + 1, 0
                with warnings.catch_warnings():  # torch warns when the guard skipped this epoch's last update
                    warnings.simplefilter("ignore", UserWarning)
                    sched_g.step()
                    sched_d.step()

            # NaN/inf guard: the step was skipped for the network(s) concerned; stop after K in a row.
            bad_streak = bad_streak + 1 if result.bad else 0
            if result.bad:
                emit(TrainEvent("note", step, epoch, message=f"non-finite gradients at step {step}: update skipped"))
                logger.scalars(step, {"guard/skipped_step": 1.0})
                if bad_streak >= cfg.nan_guard:
                    save("diverged")
                    raise TrainingDiverged(
                        f"{bad_streak} consecutive steps with non-finite gradients (up to step {step}); "
                        "lower --lr or enable --set grad_clip=..., then resume from the last good checkpoint"
                    )

            now = time.monotonic()
            if step % cfg.log_interval == 0 or step == first_step or now - window_start >= LOG_SECONDS:
                rate = window_steps / max(now - window_start, 1e-9)
                scalars = {k: float(v) / window_steps for k, v in sums.items()}
                scalars.update({"lr": optim_g.param_groups[0]["lr"], "speed/steps_per_sec": rate, "epoch": float(epoch)})
                scalars["speed/samples_per_sec"] = rate * cfg.batch_size  # batch_size is global
                logger.scalars(step, scalars)
                emit(TrainEvent("step", step, epoch, scalars, rate, _eta(cfg, step, rate, started)))
                window_start, window_steps, sums = now, 0, {}

            if val_clips and step % cfg.val_interval == 0:
                result_v = validate(generator, val_clips, cfg.mel, dev, cfg.metric_clips)
                logger.scalars(step, result_v.scalars)
                for name, wav, mel, real in result_v.samples:
                    logger.audio(step, f"audio/{name}", wav, cfg.mel.sample_rate)
                    logger.image(step, f"mel/{name}", mel_image(np.concatenate([mel, real], axis=0)))
                logger.flush()
                for note in result_v.notes:
                    emit(TrainEvent("note", step, epoch, message=note))
                value = result_v.scalars["val/mel_l1"]
                if best is None or value < best:
                    best = value
                    ckpt.save_best(run_dir, generator, cfg.mel, step, value)
                emit(TrainEvent("val", step, epoch, result_v.scalars))
            if info.enabled and step % cfg.val_interval == 0:
                barrier(info)

            if step % cfg.checkpoint_interval == 0:
                save("interval")

            timed_out = cfg.max_minutes > 0 and (time.monotonic() - started) / 60 >= cfg.max_minutes
            if cfg.max_steps and step >= cfg.max_steps:
                reason = "max_steps"
            elif any_rank(timed_out or stop_requested(), info):
                reason = "max_minutes" if timed_out else "interrupted"
            if reason or epoch_done:
                break
    if saved_step != step:
        save(reason)
    logger.close()
    emit(TrainEvent("end", step, epoch, message=reason))
    return TrainOutcome(step, epoch, reason, ckpt.state_path(run_dir, step), best)


def finished_step(run_dir: Path, cfg: TrainConfig) -> int | None:
    """The step of the run's latest checkpoint when it has already reached ``cfg.max_steps`` (resuming
    would stop at once), else None. Reads file names only."""
    found = ckpt.list_checkpoints(run_dir)
    if not found or not cfg.max_steps or found[-1][0] < cfg.max_steps:
        return None
    return found[-1][0]


def finished_message(run_dir: Path, step: int, max_steps: int) -> str:
    """What to do with a run that has reached its max_steps (a global step: a larger value trains on)."""
    return (f"the run in {run_dir} is finished: step {step} reached max_steps {max_steps}; to train on, give a "
            f"higher limit, e.g. vocoder train --run {run_dir} --max-steps {2 * step} (0: no limit)")


def _eta(cfg: TrainConfig, step: int, rate: float, started: float) -> float | None:
    left = []
    if cfg.max_steps and rate > 0:
        left.append((cfg.max_steps - step) / rate)
    if cfg.max_minutes:
        left.append(cfg.max_minutes * 60 - (time.monotonic() - started))
    return max(0.0, min(left)) if left else None


__all__ = ["TrainEvent", "TrainOutcome", "TrainingDiverged", "finished_message", "finished_step", "resolve_config",
           "train"]
