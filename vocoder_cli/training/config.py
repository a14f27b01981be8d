"""TrainConfig: every number of the HiFi-GAN recipe, overridable with ``--set key=value``, saved as JSON.

``--config`` takes a preset (v1, v2, v3), one of our saved ``config.json`` files, or an official
HiFi-GAN ``config.json`` (its keys ``resblock``, ``segment_size``, ``learning_rate``, ... are mapped).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from vocoder_cli.errors import ConfigError
from vocoder_cli.mel import MEL_PRESETS, MelConfig, mel_preset
from vocoder_cli.models.config import (
    GENERATOR_PRESETS,
    GeneratorConfig,
    configs_from_official,
    generator_preset,
)

CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class TrainConfig:
    """The whole recipe. Defaults are the paper's and the official code's V1 values."""

    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    mel: MelConfig = field(default_factory=MelConfig)
    preset: str = "v1"
    # recipe
    segment: int = 8192
    batch_size: int = 16  # per step across all processes (each of N DDP processes takes batch_size / N), as the official code
    lr: float = 2e-4
    beta1: float = 0.8
    beta2: float = 0.99
    weight_decay: float = 0.01  # torch.optim.AdamW's default, which the official code uses
    lr_decay: float = 0.999  # per epoch
    lambda_fm: float = 2.0
    lambda_mel: float = 45.0
    grad_clip: float = 0.0  # max gradient norm; 0 disables (the official recipe does not clip)
    mpd_periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    disc_width: float = 1.0  # discriminator channel multiplier (1: the official sizes; small for tests)
    generator_init: str = "official"  # official: PyTorch's default init, what the official code really trains from; normal: N(0, 0.01)
    # level: every clip scaled to this peak where it is loaded (the official loader's normalize(audio) * 0.95)
    peak_normalize: str = "auto"  # auto: on, but off with GTA mels (as the official fine-tuning) | on | off
    peak_level: float = 0.95
    # stopping
    max_steps: int = 0  # 0: no limit
    max_minutes: float = 0.0  # 0: no limit
    # bookkeeping
    seed: int = 1234
    log_interval: int = 50
    val_interval: int = 1000
    checkpoint_interval: int = 5000
    keep_checkpoints: int = 3
    val_clips: int = 0  # validate on the first N clips of val.jsonl; 0: all of them (the official code)
    metric_clips: int = 3  # of those, how many get PESQ/STOI and audio/mel images
    val_max_seconds: float = 0.0  # cut validation clips to this length; 0: full utterances (the official code)
    nan_guard: int = 10  # stop after this many consecutive non-finite steps
    # speed
    data_on_device: str = "auto"  # auto | on | off
    num_workers: int = 2
    amp: str = "auto"  # auto (bf16 on CUDA) | bf16 | off (fp32 everywhere: TF32 off too); saved as resolved
    tf32: bool = True  # TF32 matmuls/convolutions beside bf16 autocast; always off with amp=off
    compile: bool = False
    mel_dtype: str = "float32"  # the in-step mel frontend's compute dtype
    # inputs
    data: str = ""
    gta_mels: str = ""
    init_from: str = ""
    reset_optimizer: bool = False  # --init-from with a do_ file: fresh optimisers, step 0, lr from this config
    wandb_project: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "mpd_periods", tuple(int(p) for p in self.mpd_periods))
        self.generator.check_mel(self.mel)
        if self.segment % self.mel.hop_length:
            raise ConfigError(f"segment {self.segment} must be a multiple of the hop length {self.mel.hop_length}")
        if self.batch_size < 1 or self.segment < self.mel.n_fft:
            raise ConfigError("batch_size must be >= 1 and segment at least n_fft samples")
        if self.data_on_device not in ("auto", "on", "off"):
            raise ConfigError(f"data_on_device must be auto, on or off, got {self.data_on_device!r}")
        if self.amp not in ("auto", "bf16", "off"):
            raise ConfigError(f"amp must be auto, bf16 or off, got {self.amp!r}")
        if self.mel_dtype not in ("float32", "float64"):
            raise ConfigError("mel_dtype must be float32 or float64")
        if self.generator_init not in ("official", "normal"):
            raise ConfigError(f"generator_init must be official or normal, got {self.generator_init!r}")
        if self.peak_normalize not in ("auto", "on", "off"):
            raise ConfigError(f"peak_normalize must be auto, on or off, got {self.peak_normalize!r}")
        if not 0 < self.peak_level <= 1:
            raise ConfigError(f"peak_level must be in (0, 1], got {self.peak_level}")
        if self.val_clips < 0 or self.val_max_seconds < 0:
            raise ConfigError("val_clips and val_max_seconds must be >= 0 (0: no limit)")

    @property
    def normalize_peaks(self) -> bool:
        """Whether clips are scaled to ``peak_level`` where they are loaded (off for GTA mels by default:
        the acoustic model's mels describe the audio at its recorded level)."""
        return self.peak_normalize == "on" or (self.peak_normalize == "auto" and not self.gta_mels)

    @property
    def loss_mel(self) -> MelConfig:
        return self.mel.for_loss()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["generator"] = self.generator.to_dict()
        data["mel"] = self.mel.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown training config keys: {sorted(unknown)}")
        values = dict(data)
        preset = str(values.get("preset", "v1"))
        gen = values.get("generator", preset)
        values["generator"] = generator_preset(gen) if isinstance(gen, str) else GeneratorConfig.from_dict(gen)
        mel = values.get("mel", "hifigan-22k")
        values["mel"] = mel_preset(mel) if isinstance(mel, str) else MelConfig.from_dict(mel)
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"bad training config: {exc}") from None

    def save(self, run_dir: Path) -> Path:
        from vocoder_cli.audio import atomic_write_bytes

        return atomic_write_bytes(Path(run_dir) / CONFIG_FILE, (json.dumps(self.to_dict(), indent=2) + "\n").encode())


def _from_official(data: dict[str, Any]) -> TrainConfig:
    gen, mel = configs_from_official(data)
    mapping = {
        "batch_size": "batch_size",
        "learning_rate": "lr",
        "adam_b1": "beta1",
        "adam_b2": "beta2",
        "lr_decay": "lr_decay",
        "segment_size": "segment",
        "seed": "seed",
    }
    extra = {ours: data[theirs] for theirs, ours in mapping.items() if theirs in data}
    # The official code's loss mel uses fmax_for_loss (null = sr / 2): exactly MelConfig.for_loss().
    return TrainConfig(generator=gen, mel=mel, preset="official", **extra)


def load_config(name_or_path: str) -> TrainConfig:
    """A preset name (v1/v2/v3), our config.json, or an official HiFi-GAN config.json."""
    if name_or_path.lower() in GENERATOR_PRESETS:
        return TrainConfig(generator=generator_preset(name_or_path), preset=name_or_path.lower())
    path = Path(name_or_path)
    if not path.is_file():
        raise ConfigError(
            f"--config {name_or_path!r} is neither a preset ({', '.join(GENERATOR_PRESETS)}) nor a file"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not JSON ({exc})") from None
    if "upsample_rates" in data and "sampling_rate" in data:
        return _from_official(data)
    return TrainConfig.from_dict(data)


def _convert(text: str, current: Any, key: str) -> Any:
    """Parse ``text`` as the type of ``current`` (bool, int, float, str, tuple/list via JSON)."""
    try:
        if isinstance(current, bool):
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true/false")
        if isinstance(current, int):
            return int(text)
        if isinstance(current, float) or current is None and key in ("fmax",):
            return None if text.lower() in ("none", "null") else float(text)
        if isinstance(current, (tuple, list)):
            return json.loads(text)
        return text
    except (ValueError, json.JSONDecodeError) as exc:
        raise ConfigError(f"--set {key}={text}: cannot read as {type(current).__name__} ({exc})") from None


def apply_overrides(cfg: TrainConfig, overrides: list[str]) -> TrainConfig:
    """Apply ``key=value`` strings; ``generator.x`` and ``mel.x`` reach into the nested configs, and
    ``generator=v2`` / ``mel=hifigan-16k`` swap in a preset."""
    data = cfg.to_dict()
    for item in overrides:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        head, _, sub = key.partition(".")
        if head not in data:
            raise ConfigError(f"--set {key}: unknown key; known: {', '.join(sorted(data))}")
        if head in ("generator", "mel") and not sub:
            presets = GENERATOR_PRESETS if head == "generator" else MEL_PRESETS
            if value not in presets:
                raise ConfigError(f"--set {head}={value}: unknown preset; known: {', '.join(presets)}")
            data[head] = dict(presets[value].to_dict())
            if head == "generator":
                data["preset"] = value
            continue
        if sub:
            if not isinstance(data[head], dict) or sub not in data[head]:
                raise ConfigError(f"--set {key}: unknown key")
            data[head][sub] = _convert(value, data[head][sub], sub)
        else:
            data[key] = _convert(value, data[key], key)
    return TrainConfig.from_dict(data)


def with_values(cfg: TrainConfig, **values: Any) -> TrainConfig:
    """``replace`` that skips None (options the user did not give)."""
    given = {k: v for k, v in values.items() if v is not None}
    return replace(cfg, **given) if given else cfg
