"""The espeak acoustic model: real eSpeak NG (the espeakng-loader wheel or the system library)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vocoder_cli.errors import ConfigError, TextError
from vocoder_cli.mel import MelConfig, MelSpectrogram, mel_preset
from vocoder_cli.tts.base import LoadOptions
from tests.conftest import skip_unless_ci
from vocoder_cli.tts.espeak import Espeak, EspeakAcoustic, EspeakUnavailable
from vocoder_cli.tts.registry import load_acoustic

try:
    Espeak()
except EspeakUnavailable as exc:  # pragma: no cover - the test extra installs espeakng-loader
    skip_unless_ci(f"eSpeak NG unavailable: {exc}")


def test_espeak_speaks_at_its_native_rate() -> None:
    engine = Espeak()
    wav = engine.speak("Hello world, this is a test.")
    assert engine.sample_rate == 22050
    assert wav.dtype == np.float32 and 1.0 < wav.size / engine.sample_rate < 4.0
    assert 0.1 < np.abs(wav).max() <= 1.0
    slower = engine.speak("Hello world, this is a test.", rate=100)
    assert slower.size > 1.4 * wav.size  # words per minute really changes the duration
    assert engine.phonemes("hello") and engine.phonemes("...") == ""


def test_mels_are_the_vocoders_mels_of_espeaks_audio() -> None:
    cfg = mel_preset("hifigan-22k")
    model = EspeakAcoustic(cfg)
    (out,) = model.infer([model.prepare("Speech synthesis.").text])
    # eSpeak's pitch flutter carries over between calls: the same text differs by a few samples
    wav = Espeak().speak("Speech synthesis.")
    expected = MelSpectrogram(cfg)(torch.from_numpy(wav))[0]
    frames = min(out.mel.shape[1], expected.shape[1])
    assert out.mel.shape[0] == 80 and abs(out.mel.shape[1] - wav.size // 256) <= 1 and not out.reached_max_length
    assert (out.mel[:, :frames] - expected[:, :frames]).abs().mean() < 0.2
    assert out.mel.min() >= cfg.silence_level - 1e-4 and out.mel.max() > 0.0  # natural log, loud speech


def test_other_sample_rates_are_resampled_first() -> None:
    cfg = mel_preset("hifigan-16k")
    model = EspeakAcoustic(cfg)
    (out,) = model.infer(["Testing one two three."])
    native = Espeak().speak("Testing one two three.").size
    assert out.mel.shape[0] == 80 and abs(out.mel.shape[1] - native * 16000 / 22050 / 256) <= 1


def test_prepare_drops_control_and_silent_characters_and_names_foreign_letters() -> None:
    model = EspeakAcoustic(MelConfig())
    prepared = model.prepare("hello\x07 world \u266a \u4e2d")
    assert prepared.text == "hello world \u266a \u4e2d"
    assert prepared.dropped == ("\x07", "\u266a")
    assert any("\u4e2d" in note and "character names" in note for note in prepared.notes)
    with pytest.raises(TextError, match="nothing to say"):
        model.prepare(" ... \u266a ")


def test_options_are_checked() -> None:
    opts = dict(target_mel=MelConfig())
    with pytest.raises(ConfigError, match="no voice"):
        load_acoustic("espeak", LoadOptions(**opts, options={"voice": "xx-nonexistent"}))
    with pytest.raises(ConfigError, match="has no option speed"):
        load_acoustic("espeak", LoadOptions(**opts, options={"speed": "2"}))
    with pytest.raises(ConfigError, match="rate must be"):
        load_acoustic("espeak", LoadOptions(**opts, options={"rate": "5"}))
    model = load_acoustic("espeak", LoadOptions(**opts, options={"voice": "en", "rate": "200"}))
    assert model.prepare("Colour.").text == "Colour."
