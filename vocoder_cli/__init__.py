"""vocoder: batch neural vocoding with HiFi-GAN.

The public Python API (``import vocoder_cli as vc``; docs/api.md has examples and the stability rule)::

    vc.load(name_or_path=None, device="cpu", precision="fp32", backend="auto") -> vc.Vocoder
    vc.Vocoder.from_model(generator, mel_config) -> vc.Vocoder  (a generator in memory, e.g. in training)
        .mel(audio [T] or [B, T]) -> log-mel [B, n_mels, frames];  .vocode(mel) -> audio, exact lengths
        .stream(blocks) -> audio blocks as soon as final;  .streamer() -> push/finish
    vc.resynthesize(inputs, output, ...) -> vc.ResynthResult      (`vocoder resynth`)
    vc.speak(text or {id: text}, output, ...) -> vc.TtsResult      (`vocoder tts`)
    vc.score(ref, gen, metrics=...) -> vc.ScoreRun                 (`vocoder score`)
    vc.build_report(out_dir, sets, ...) -> vc.ReportResult         (`vocoder report`)
    vc.load_audio(path, rate) -> [T];  vc.save_audio(path, audio, rate);  vc.demo_folder()
    vc.VocoderError and its subclasses: the errors a user can act on

Names load on first use, so ``import vocoder_cli`` stays cheap. The core never prints and never exits:
it returns values and raises the typed errors in :mod:`vocoder_cli.errors`; the Typer app in
:mod:`vocoder_cli.cli` renders them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    "load": "vocoder_cli.api.vocoder",
    "Vocoder": "vocoder_cli.api.vocoder",
    "resynthesize": "vocoder_cli.api.resynth",
    "ResynthResult": "vocoder_cli.api.resynth",
    "speak": "vocoder_cli.api.speak",
    "TtsResult": "vocoder_cli.api.speak",
    "score": "vocoder_cli.api.score",
    "ScorePlan": "vocoder_cli.api.score",
    "ScoreRun": "vocoder_cli.metrics.runner",
    "FileResult": "vocoder_cli.metrics.runner",
    "Pair": "vocoder_cli.metrics.pairing",
    "build_report": "vocoder_cli.api.report",
    "ReportPlan": "vocoder_cli.api.report",
    "ReportResult": "vocoder_cli.report.results",
    "load_audio": "vocoder_cli.api.files",
    "save_audio": "vocoder_cli.api.files",
    "demo_folder": "vocoder_cli.api.files",
    "MelConfig": "vocoder_cli.mel",
    "VocoderError": "vocoder_cli.errors",
    "ConfigError": "vocoder_cli.errors",
    "AudioError": "vocoder_cli.errors",
    "MelMismatchError": "vocoder_cli.errors",
    "WeightsError": "vocoder_cli.errors",
    "DownloadError": "vocoder_cli.errors",
    "TextError": "vocoder_cli.errors",
    "MissingExtraError": "vocoder_cli.metrics.base",
}

__all__ = [
    "AudioError", "ConfigError", "DownloadError", "FileResult", "MelConfig", "MelMismatchError", "MissingExtraError",
    "Pair", "ReportPlan", "ReportResult", "ResynthResult", "ScorePlan", "ScoreRun", "TextError", "TtsResult", "Vocoder",
    "VocoderError", "WeightsError", "__version__", "build_report", "demo_folder", "load", "load_audio", "resynthesize", "save_audio", "score",
    "speak",
]


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (``import vocoder_cli`` loads no torch)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vocoder_cli' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # static type checkers and IDEs see the real definitions
    from vocoder_cli.api.files import demo_folder, load_audio, save_audio
    from vocoder_cli.api.report import ReportPlan, build_report
    from vocoder_cli.api.resynth import ResynthResult, resynthesize
    from vocoder_cli.api.score import ScorePlan, score
    from vocoder_cli.api.speak import TtsResult, speak
    from vocoder_cli.api.vocoder import Vocoder, load
    from vocoder_cli.errors import (
        AudioError,
        ConfigError,
        DownloadError,
        MelMismatchError,
        TextError,
        VocoderError,
        WeightsError,
    )
    from vocoder_cli.mel import MelConfig
    from vocoder_cli.metrics.base import MissingExtraError
    from vocoder_cli.metrics.pairing import Pair
    from vocoder_cli.metrics.runner import FileResult, ScoreRun
    from vocoder_cli.report.results import ReportResult
