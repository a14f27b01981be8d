"""The espeak acoustic model: real eSpeak NG (the espeakng-loader wheel or the system library)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import skip_unless_ci
from vocoder_cli.errors import ConfigError, TextError
from vocoder_cli.mel import MelConfig, MelSpectrogram, mel_preset
from vocoder_cli.tts.base import LoadOptions
from vocoder_cli.tts.espeak import (
    Espeak,
    EspeakAcoustic,
    EspeakUnavailable,
    parse_options,
)
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
    # eSpeak's flutter moves a text's length by up to ~300 samples from call to call (docs/tts.md): 3 frames
    assert out.mel.shape[0] == 80 and abs(out.mel.shape[1] - wav.size // 256) <= 3 and not out.reached_max_length
    assert (out.mel[:, :frames] - expected[:, :frames]).abs().mean() < 0.2
    assert out.mel.min() >= cfg.silence_level - 1e-4 and out.mel.max() > 0.0  # natural log, loud speech


def test_other_sample_rates_are_resampled_first() -> None:
    cfg = mel_preset("hifigan-16k")
    model = EspeakAcoustic(cfg)
    (out,) = model.infer(["Testing one two three."])
    native = Espeak().speak("Testing one two three.").size
    frames = native * 16000 / 22050 / 256  # 75 frames; at the native rate it would be 107
    assert out.mel.shape[0] == 80 and abs(out.mel.shape[1] - frames) <= 3  # flutter: a few hundred samples


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
    with pytest.raises(ConfigError, match="voice='xx-nonexistent': no such voice or language"):
        load_acoustic("espeak", LoadOptions(**opts, options={"voice": "xx-nonexistent"}))
    with pytest.raises(ConfigError, match="has no option speed"):
        load_acoustic("espeak", LoadOptions(**opts, options={"speed": "2"}))
    with pytest.raises(ConfigError, match=r"rate='5' is out of range; rate takes an integer from 80 to 450"):
        load_acoustic("espeak", LoadOptions(**opts, options={"rate": "5"}))
    model = load_acoustic("espeak", LoadOptions(**opts, options={"voice": "en", "rate": "200"}))
    assert model.prepare("Colour.").text == "Colour."


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"voice": ""}, "voice='': no voice name; accepted: an eSpeak NG voice or language"),
        ({"voice": "+f3"}, "voice='+f3': no voice name"),
        ({"voice": "en-zz"}, "voice='en-zz': no such voice or language; closest: en-"),
        ({"voice": "f3"}, "voice='f3': no such voice or language"),  # a variant is not a voice
        ({"voice": "en-us+nonexistent"}, "eSpeak NG has no variant 'nonexistent'; accepted after +: one of its"),
        ({"voice": "en+"}, "eSpeak NG has no variant ''"),
        ({"voice": "en-us+99"}, "no variant '99'"),
        ({"voice": "x" * 40}, "longer than eSpeak NG's 39 characters"),
        ({"voice": "../../../etc/passwd"}, "no such voice or language"),  # never a file path for the library
        ({"voice": "caf\u00e9"}, "eSpeak NG's voice names are printable ASCII"),
        ({"voice": "en\x00us"}, "eSpeak NG's voice names are printable ASCII"),
        ({"rate": ""}, "rate='' is not an integer; rate takes an integer from 80 to 450 (words per minute)"),
        ({"rate": "1e3"}, "rate='1e3' is not an integer"),
        ({"rate": "451"}, "rate='451' is out of range"),
        ({"rate": "-100"}, "rate='-100' is out of range"),
        ({"pitch": "100"}, "pitch='100' is out of range; pitch takes an integer from 0 to 99"),
        ({"pitch": "-1"}, "pitch='-1' is out of range"),
        ({"pitch": "fifty"}, "pitch='fifty' is not an integer"),
    ],
)
def test_every_bad_option_is_one_error_before_the_library_sees_it(options: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_options(options)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert str(caught.value).startswith("espeak: --acoustic-opt ")


def test_voices_are_accepted_by_every_name_espeak_ng_accepts() -> None:
    engine = Espeak()
    voices = engine.voices()
    assert len(voices) > 100 and len(engine.variants()) > 50  # listed from the library's data
    by_id = {v.identifier: v for v in voices}
    assert by_id["gmw/en"].languages == ("en-gb", "en") and by_id["gmw/en"].name == "English (Great Britain)"
    # a language a voice lists resolves to the voice eSpeak NG itself picks for it (as espeak-ng -v does)
    assert engine.resolve_voice("en-gb") == engine.resolve_voice("EN-GB") == "gmw/en"
    assert engine.resolve_voice("en-us") == "gmw/en-US"
    assert engine.resolve_voice("English (Great Britain)") == "gmw/en"  # a voice's name
    assert engine.resolve_voice("gmw/en-GB-x-rp") == engine.resolve_voice("en-gb-x-rp") == "gmw/en-GB-x-rp"
    assert engine.resolve_voice("en-us+f3") == "gmw/en-US+f3"  # a variant after +
    assert engine.resolve_voice("en-gb+3") == "gmw/en+m3" and engine.resolve_voice("en-gb+13") == "gmw/en+f3"
    assert engine.resolve_voice("de+ALEX") == "gmw/de+Alex"  # the variant file's own spelling
    unusable = set()
    for voice in voices:  # every listed language and file name is accepted, unless the data lacks the voice
        for name in (*voice.languages, voice.file):
            try:
                assert engine.resolve_voice(name)
            except ConfigError as exc:
                assert "eSpeak NG lists this voice" in str(exc) and "cannot load its dictionary" in str(exc)
                unusable.add(voice.identifier)
    # the espeakng-loader wheel lists fo, kaa and xex without their dictionaries: they read nothing
    assert len(unusable) <= 5 and not any(v.startswith("gmw/") for v in unusable), unusable
    # the names reach the same voice: en-gb speaks exactly as its voice file gmw/en, not as en-us
    text = "Tomato water, a dance in the bath."
    assert engine.phonemes(text, "en-gb") == engine.phonemes(text, "gmw/en") != engine.phonemes(text, "en-us")
    british, same = engine.speak(text, "en-gb"), engine.speak(text, "gmw/en")
    assert abs(british.size - same.size) < 0.002 * british.size  # pitch flutter carries over between calls


def test_phonemes_do_not_lose_text_after_a_clause_break_or_leak_it_into_the_next_call() -> None:
    engine = Espeak()
    zero = engine.phonemes("0")
    assert engine.phonemes("0\u00a10") == f"{zero} {zero}"  # eSpeak reads ahead at the inverted mark
    assert engine.phonemes("\u00a1") == ""  # ... and nothing of the last text turns up here
    assert engine.phonemes("1\u00a12\u00a13\u00a14").count(" ") == 3
    assert engine.phonemes("") == ""
