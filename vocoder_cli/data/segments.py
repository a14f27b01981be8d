"""Random training segments, reproducible and resumable: the plan of batch ``i`` of epoch ``e`` is a pure
function of (seed, epoch, i, rank), so a run resumes at the exact data position with no sampler state.

Two sources produce identical segments from the same plan:

* :class:`DeviceSegments`: every clip concatenated into one tensor on the training device; a batch is
  one gather with torch index arithmetic (no DataLoader, no host-device copies of audio).
* :class:`LoaderSegments`: a DataLoader whose workers read only each segment's samples from disk
  (``soundfile`` seek), for datasets that do not fit in device memory.

With GTA mels (precomputed acoustic-model mels, one ``.npy`` per clip), starts are frame-aligned and
the batch carries the matching mel slice.

Level: like the official loader (``normalize(audio) * 0.95`` on every clip before it is cut), each clip
can be scaled by one gain, ``peak_level / peak`` over the whole clip (:func:`peak_gain`), applied where
its samples are loaded: :func:`load_clip` for the device tensor and validation, the DataLoader worker
for streamed segments (gains from :func:`clip_peaks`, one pass over the files at start-up).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from vocoder_cli.data.manifest import ManifestEntry


@dataclass
class Batch:
    wav: torch.Tensor  # [B, segment] float32
    mel: torch.Tensor | None = None  # [B, n_mels, segment // hop] when training on GTA mels


def peak_gain(peak: float, level: float) -> np.float32:
    """The factor that brings a clip's peak to ``level`` (1 for digital silence, as librosa's normalize)."""
    return np.float32(level / peak) if peak > np.finfo(np.float32).tiny else np.float32(1.0)


def load_clip(path: str | Path, peak_level: float | None = None) -> np.ndarray:
    """A whole clip as float32 mono [T] (channels averaged), scaled to ``peak_level`` when given."""
    data, _ = sf.read(path, dtype="float32", always_2d=True)
    wav = np.ascontiguousarray(data.mean(axis=1), dtype=np.float32)
    if peak_level is not None:
        wav *= peak_gain(float(np.abs(wav).max(initial=0.0)), peak_level)
    return wav


def clip_peaks(paths: list[str], block: int = 1 << 18) -> np.ndarray:
    """The peak |sample| of each clip's mono mix (what :func:`load_clip` sees), read block by block."""
    peaks = np.zeros(len(paths), dtype=np.float64)
    for i, path in enumerate(paths):
        peak = 0.0
        for data in sf.blocks(path, blocksize=block, dtype="float32", always_2d=True):
            peak = max(peak, float(np.abs(data.mean(axis=1)).max(initial=0.0)))
        peaks[i] = peak
    return peaks


def steps_per_epoch(n_clips: int, batch: int, world: int = 1) -> int:
    """Every clip once per epoch across all ranks (cycling the order to fill the last batch)."""
    return max(1, math.ceil(n_clips / (batch * world)))


class BatchPlanner:
    """Which clips and where in them, for any (epoch, index, rank): deterministic under ``seed``."""

    def __init__(self, n_clips: int, batch: int, seed: int, rank: int = 0, world: int = 1) -> None:
        if n_clips < 1:
            raise ValueError("no training clips")
        self.n_clips, self.batch, self.seed, self.rank, self.world = n_clips, batch, seed, rank, world
        self.steps_per_epoch = steps_per_epoch(n_clips, batch, world)
        self._order: tuple[int, torch.Tensor] | None = None

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        if self._order is None or self._order[0] != epoch:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            need = self.steps_per_epoch * self.batch * self.world
            reps = math.ceil(need / self.n_clips)
            order = torch.cat([torch.randperm(self.n_clips, generator=gen) for _ in range(reps)])[:need]
            self._order = (epoch, order)
        return self._order[1]

    def plan(self, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(clip indices [B] int64, start fractions [B] float64 in [0, 1))."""
        start = (index * self.world + self.rank) * self.batch
        clips = self._epoch_order(epoch)[start : start + self.batch]
        gen = torch.Generator().manual_seed(((self.seed * 7919 + epoch) * 1_000_003 + index) * 131 + self.rank)
        return clips.clone(), torch.rand(self.batch, generator=gen, dtype=torch.float64)


def segment_starts(fracs: torch.Tensor, avail: torch.Tensor, length: int) -> torch.Tensor:
    """Start positions (in samples, or frames for GTA) spread uniformly over every valid start."""
    room = (avail - length + 1).clamp(min=1).to(torch.float64)
    return torch.minimum((fracs * room).floor().to(torch.int64), (room - 1).to(torch.int64))


def load_gta_mel(path: Path, n_mels: int) -> np.ndarray:
    mel = np.load(path, allow_pickle=False)
    if mel.ndim == 3 and mel.shape[0] == 1:
        mel = mel[0]
    if mel.ndim != 2 or mel.shape[0] != n_mels:
        raise ValueError(f"shape {mel.shape} is not [{n_mels}, frames]")
    return np.ascontiguousarray(mel, dtype=np.float32)


def match_gta_mels(
    entries: list[ManifestEntry], gta_dir: Path, hop: int, n_mels: int
) -> tuple[list[ManifestEntry], list[int], list[str]]:
    """Pair each clip with ``gta_dir/<stem>.npy``; returns (kept entries, usable frames, problems).

    As in the official fine-tuning code, a mel one frame longer or shorter than the audio's
    ``samples // hop`` is fine (the longer side is cropped); a larger difference, a missing file or a
    wrong shape excludes the clip with a per-file message.
    """
    kept, frames, problems = [], [], []
    for entry in entries:
        path = Path(gta_dir) / f"{entry.stem}.npy"
        if not path.is_file():
            problems.append(f"{entry.path}: no GTA mel at {path}")
            continue
        try:
            mel_frames = np.load(path, mmap_mode="r", allow_pickle=False).shape[-1]
            load_gta_mel(path, n_mels)
        except (ValueError, OSError) as exc:
            problems.append(f"{path}: unusable GTA mel ({exc})")
            continue
        audio_frames = entry.num_samples // hop
        if abs(mel_frames - audio_frames) > 1:
            problems.append(
                f"{path}: {mel_frames} mel frames but the audio has {audio_frames} (hop {hop}); "
                "more than one frame apart, so the mel was not made from this audio with this hop"
            )
            continue
        kept.append(entry)
        frames.append(min(mel_frames, audio_frames))
    return kept, frames, problems


class DeviceSegments:
    """All clips in one device tensor; a batch is a gather (zero-padded where a clip is short)."""

    def __init__(
        self,
        wavs: list[np.ndarray],
        planner: BatchPlanner,
        segment: int,
        device: torch.device,
        mels: list[np.ndarray] | None = None,
        hop: int = 256,
    ) -> None:
        self.planner, self.segment, self.device, self.hop = planner, segment, device, hop
        lengths = [len(w) for w in wavs]
        if mels is not None:  # GTA: use only the frames both sides have
            lengths = [min(len(w) // hop, m.shape[1]) * hop for w, m in zip(wavs, mels)]
        pad = np.zeros(segment, dtype=np.float32)
        flat = np.concatenate([w[:n] for w, n in zip(wavs, lengths)] + [pad])
        self.audio = torch.from_numpy(flat).to(device)
        self.lengths = torch.tensor(lengths, dtype=torch.int64, device=device)
        self.offsets = torch.tensor(np.concatenate([[0], np.cumsum(lengths)[:-1]]), dtype=torch.int64, device=device)
        self.total = int(sum(lengths))
        self.mel_bank = None
        if mels is not None:
            frames = [n // hop for n in lengths]
            seg_frames = segment // hop
            pad_m = np.zeros((mels[0].shape[0], seg_frames), dtype=np.float32)
            self.mel_bank = torch.from_numpy(np.concatenate([m[:, :f] for m, f in zip(mels, frames)] + [pad_m], 1)).to(
                device
            )
            self.frame_offsets = self.offsets // hop
        self._arange = torch.arange(segment, device=device)

    @property
    def nbytes(self) -> int:
        return self.audio.numel() * 4 + (self.mel_bank.numel() * 4 if self.mel_bank is not None else 0)

    def gather(self, clips: torch.Tensor, fracs: torch.Tensor) -> Batch:
        clips = clips.to(self.device)
        fracs = fracs.to(self.device)
        length = self.lengths[clips]
        if self.mel_bank is None:
            start = segment_starts(fracs, length, self.segment)
        else:
            start = segment_starts(fracs, length // self.hop, self.segment // self.hop) * self.hop
        pos = start[:, None] + self._arange[None, :]
        valid = pos < length[:, None]
        idx = torch.where(valid, self.offsets[clips][:, None] + pos, torch.full_like(pos, self.total))
        wav = self.audio[idx]
        mel = None
        if self.mel_bank is not None:
            seg_frames = self.segment // self.hop
            fpos = start[:, None] // self.hop + torch.arange(seg_frames, device=self.device)[None, :]
            fvalid = fpos < (length // self.hop)[:, None]
            fidx = torch.where(fvalid, self.frame_offsets[clips][:, None] + fpos, torch.full_like(fpos, self.total // self.hop))
            mel = self.mel_bank[:, fidx].permute(1, 0, 2)  # [B, n_mels, frames]
            # Frames past the clip's end read the zero pad; make them silence instead.
            mel = torch.where(fvalid[:, None, :], mel, torch.full_like(mel, math.log(1e-5)))
        return Batch(wav, mel)

    def batches(self, epoch: int, start_index: int = 0) -> Iterator[Batch]:
        for index in range(start_index, self.planner.steps_per_epoch):
            yield self.gather(*self.planner.plan(epoch, index))


class _SegmentReader(Dataset):
    """Reads one planned segment (only its samples) from disk: the DataLoader worker's job."""

    def __init__(
        self,
        entries: list[ManifestEntry],
        segment: int,
        hop: int,
        gta: list[tuple[Path, int]] | None,
        gains: np.ndarray | None = None,
    ) -> None:
        self.entries, self.segment, self.hop, self.gta = entries, segment, hop, gta
        self.gains = None if gains is None else np.asarray(gains, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, item: tuple[int, float]) -> tuple[torch.Tensor, torch.Tensor]:
        clip, frac = item
        entry = self.entries[clip]
        fracs = torch.tensor([frac], dtype=torch.float64)
        if self.gta is None:
            length = entry.num_samples
            start = int(segment_starts(fracs, torch.tensor([length]), self.segment)[0])
        else:
            mel_path, frames = self.gta[clip]
            length = frames * self.hop
            start = int(segment_starts(fracs, torch.tensor([frames]), self.segment // self.hop)[0]) * self.hop
        n = max(0, min(self.segment, length - start))
        wav = np.zeros(self.segment, dtype=np.float32)
        data, _ = sf.read(entry.path, start=start, frames=n, dtype="float32", always_2d=True)
        wav[: data.shape[0]] = data.mean(axis=1)
        if self.gains is not None:
            wav *= self.gains[clip]
        if self.gta is None:
            return torch.from_numpy(wav), torch.empty(0)
        seg_frames = self.segment // self.hop
        mel_full = np.load(mel_path, mmap_mode="r")
        mel_full = mel_full[0] if mel_full.ndim == 3 else mel_full
        mel = np.full((mel_full.shape[0], seg_frames), math.log(1e-5), dtype=np.float32)
        f0 = start // self.hop
        take = max(0, min(seg_frames, frames - f0))
        mel[:, :take] = mel_full[:, f0 : f0 + take]
        return torch.from_numpy(wav), torch.from_numpy(mel)


class _PlannedBatches(Sampler):
    """Yields the planned (clip, fraction) pairs of one epoch from a start index; set before iterating."""

    def __init__(self, planner: BatchPlanner) -> None:
        self.planner = planner
        self.epoch, self.start_index = 0, 0

    def __len__(self) -> int:
        return self.planner.steps_per_epoch - self.start_index

    def __iter__(self) -> Iterator[list[tuple[int, float]]]:
        for index in range(self.start_index, self.planner.steps_per_epoch):
            clips, fracs = self.planner.plan(self.epoch, index)
            yield list(zip(clips.tolist(), fracs.tolist()))


class LoaderSegments:
    """The same planned segments through a DataLoader (workers read from disk; pinned transfers)."""

    def __init__(
        self,
        entries: list[ManifestEntry],
        planner: BatchPlanner,
        segment: int,
        device: torch.device,
        num_workers: int = 2,
        gta: list[tuple[Path, int]] | None = None,
        hop: int = 256,
        gains: np.ndarray | None = None,
    ) -> None:
        """``gains``: one float32 factor per clip (see :func:`peak_gain`), or None for the raw level."""
        self.planner, self.device = planner, device
        self.sampler = _PlannedBatches(planner)
        self.loader = DataLoader(
            _SegmentReader(entries, segment, hop, gta, gains),
            batch_sampler=self.sampler,
            num_workers=num_workers,
            pin_memory=device.type == "cuda",
            persistent_workers=num_workers > 0,
            prefetch_factor=4 if num_workers > 0 else None,
        )
        self.gta = gta is not None

    def batches(self, epoch: int, start_index: int = 0) -> Iterator[Batch]:
        self.sampler.epoch, self.sampler.start_index = epoch, start_index
        for wav, mel in self.loader:
            yield Batch(
                wav.to(self.device, non_blocking=True), mel.to(self.device, non_blocking=True) if self.gta else None
            )
