"""``espeak``: eSpeak NG speaks the text, our mel frontend turns its audio into the vocoder's mels.

Works offline on a fresh machine: the ``espeakng-loader`` wheel (``pip install 'vocoder[tts]'``) ships
libespeak-ng and its data; a system install (``apt-get install espeak-ng``) is the fallback. The library
is driven through ctypes (its C API: ``espeak_Initialize`` in synchronous mode, a synth callback that
collects 16-bit samples). Its voice is formant synthesis: intelligible, robotic. It is here so that
tests, demos and pipelines always have a text frontend, and to show what a vocoder does with mels of
audio no human produced. eSpeak NG is GPL-3.0-or-later, loaded as a separate library at run time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vocoder_cli.audio import resample
from vocoder_cli.errors import ConfigError, TextError, VocoderError
from vocoder_cli.mel import MelConfig, MelSpectrogram
from vocoder_cli.tts.base import AcousticOutput, LoadOptions, PreparedText, check_options

NAME = "espeak"
OPTIONS = ("voice", "rate", "pitch")
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE, _PITCH = 1, 3
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EspeakUnavailable(VocoderError):
    """Neither the espeakng-loader wheel nor a system libespeak-ng could be loaded."""


def _locate() -> tuple[str, str | None, str]:
    """(library path, data path or None for the library's default, where it came from)."""
    try:
        import espeakng_loader

        return espeakng_loader.get_library_path(), espeakng_loader.get_data_path(), "espeakng-loader wheel"
    except (ImportError, RuntimeError):
        pass
    system = ctypes.util.find_library("espeak-ng")
    if system:
        return system, None, "system libespeak-ng"
    raise EspeakUnavailable(
        "eSpeak NG is not installed: pip install 'vocoder[tts]' (the espeakng-loader wheel ships it) "
        "or apt-get install espeak-ng"
    )


@dataclass
class _Library:
    lib: ctypes.CDLL
    sample_rate: int
    origin: str
    voice: str = ""
    rate: int = 0
    pitch: int = 0
    seedable: bool = False  # espeak_ng_SetRandSeed exists (eSpeak NG >= 1.51): output is reproducible


class Espeak:
    """The process-wide eSpeak NG engine (its C state is global: one instance, calls serialised)."""

    _instance: _Library | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        with Espeak._lock:
            if Espeak._instance is None:
                Espeak._instance = self._open()
        self._state = Espeak._instance
        self._chunks: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # keep a reference: ctypes must not free it

    @staticmethod
    def _open() -> _Library:
        path, data, origin = _locate()
        try:
            lib = ctypes.CDLL(path)
        except OSError as exc:
            raise EspeakUnavailable(f"cannot load eSpeak NG from {path} ({exc})") from exc
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
            ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode() if data else None, 0)
        if rate <= 0:
            raise EspeakUnavailable(f"eSpeak NG from {path} failed to initialise (data: {data or 'default'})")
        seedable = hasattr(lib, "espeak_ng_SetRandSeed")
        if seedable:
            lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        return _Library(lib, rate, origin, seedable=seedable)

    @property
    def sample_rate(self) -> int:
        return self._state.sample_rate

    @property
    def origin(self) -> str:
        return self._state.origin

    def _collect(self, wav: ctypes.POINTER(ctypes.c_short), count: int, _events: int) -> int:  # type: ignore[valid-type]
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0  # 0: go on

    def _configure(self, voice: str, rate: int, pitch: int) -> None:
        state = self._state
        if state.voice != voice:
            if state.lib.espeak_SetVoiceByName(voice.encode()) != 0:
                state.voice = ""  # unknown: set the voice again next time
                raise ConfigError(f"eSpeak NG has no voice {voice!r} (try en-us, en, en-gb-x-rp, de, fr ...)")
            state.voice, state.rate, state.pitch = voice, 0, 0  # a voice change resets rate and pitch
        if state.rate != rate:
            state.lib.espeak_SetParameter(_RATE, rate, 0)
            state.rate = rate
        if state.pitch != pitch:
            state.lib.espeak_SetParameter(_PITCH, pitch, 0)
            state.pitch = pitch

    def speak(self, text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50, seed: int = 0) -> np.ndarray:
        """float32 samples in [-1, 1] at :attr:`sample_rate` (may be empty for unspeakable text).

        eSpeak's random generator is reseeded with ``seed`` before every text; its pitch flutter still
        carries over from one text to the next, so within a run a text can come out a few samples longer
        or shorter depending on what was spoken before it (the same run order gives the same audio)."""
        payload = text.encode("utf-8") + b"\0"
        with Espeak._lock:
            self._configure(voice, rate, pitch)
            self._chunks = []
            lib = self._state.lib
            if self._state.seedable:
                lib.espeak_ng_SetRandSeed(seed)
            lib.espeak_SetSynthCallback(self._callback)
            status = lib.espeak_Synth(payload, len(payload), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            chunks, self._chunks = self._chunks, []
        if status != 0:
            raise TextError(f"eSpeak NG failed to synthesise this text (status {status})")
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32) / 32768.0

    def phonemes(self, text: str, voice: str = "en-us") -> str:
        """eSpeak's phoneme string for ``text`` ('' when it would say nothing)."""
        with Espeak._lock:
            self._configure(voice, self._state.rate or 175, self._state.pitch or 50)
            buffer = ctypes.create_string_buffer(text.encode("utf-8"))
            pointer = ctypes.c_char_p(ctypes.addressof(buffer))
            parts = []
            while pointer.value:
                out = self._state.lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8, 0)
                if out:
                    parts.append(out.decode("utf-8", "replace"))
        return " ".join(p for p in parts if p.strip())


def _is_control(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cf", "Co", "Cn") and char not in "\t\n\r"


class EspeakAcoustic:
    """The acoustic-model protocol around :class:`Espeak`: mels in the vocoder's own config."""

    name = NAME

    def __init__(self, mel: MelConfig, voice: str = "en-us", rate: int = 175, pitch: int = 50, seed: int = 0) -> None:
        self.engine = Espeak()
        self.mel_config = mel
        self.voice, self.rate, self.pitch, self.seed = voice, rate, pitch, seed
        self.max_chars = 1000  # eSpeak has no limit; this bounds the memory of one utterance's mel
        self._mel = MelSpectrogram(mel)
        self.engine.phonemes("test", voice)  # an unknown voice fails here, before any item

    def prepare(self, text: str) -> PreparedText:
        """Drop control characters and what eSpeak says nothing for; refuse a text with nothing to say."""
        text = unicodedata.normalize("NFC", text)
        dropped: list[str] = []
        notes: list[str] = []
        foreign: list[str] = []
        kept = []
        for char in text:
            if _is_control(char):
                if char not in dropped:
                    dropped.append(char)
                continue
            kept.append(char)
        clean = " ".join("".join(kept).split())
        for char in dict.fromkeys(c for c in clean if ord(c) > 127 and not c.isspace()):
            if not self.engine.phonemes(char, self.voice):
                dropped.append(char)
            elif self.voice.startswith("en") and char.isalpha() and "LATIN" not in unicodedata.name(char, ""):
                foreign.append(char)
        if foreign:
            notes.append(f"not English letters, read as character names by eSpeak: {' '.join(foreign)}")
        if not self.engine.phonemes(clean, self.voice):
            raise TextError("nothing to say (eSpeak NG finds no speakable text)")
        return PreparedText(clean, tuple(dropped), tuple(notes))

    def infer(self, texts: Sequence[str]) -> list[AcousticOutput]:
        outputs = []
        for text in texts:
            wav = self.engine.speak(text, self.voice, self.rate, self.pitch, self.seed)
            wav = resample(wav, self.engine.sample_rate, self.mel_config.sample_rate)
            if wav.size <= self.mel_config.n_fft:
                raise TextError("eSpeak NG produced no audio for this text")
            with torch.inference_mode():
                outputs.append(AcousticOutput(self._mel(torch.from_numpy(wav))[0]))
        return outputs


def load(options: LoadOptions) -> EspeakAcoustic:
    check_options(NAME, options.options, OPTIONS)
    opts = options.options
    try:
        rate, pitch = int(opts.get("rate", 175)), int(opts.get("pitch", 50))
    except ValueError as exc:
        raise ConfigError(f"{NAME}: rate and pitch must be integers ({exc})") from None
    if not 80 <= rate <= 450 or not 0 <= pitch <= 99:
        raise ConfigError(f"{NAME}: rate must be 80-450 words per minute and pitch 0-99")
    if options.weights is not None:
        raise ConfigError(f"{NAME} has no weights; drop --acoustic-weights")
    return EspeakAcoustic(options.target_mel, opts.get("voice", "en-us"), rate, pitch, options.seed)
