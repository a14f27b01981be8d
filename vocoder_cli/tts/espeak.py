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
import difflib
import itertools
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from vocoder_cli.audio import resample
from vocoder_cli.errors import ConfigError, TextError, VocoderError
from vocoder_cli.mel import MelConfig, MelSpectrogram
from vocoder_cli.tts.base import (
    AcousticOutput,
    LoadOptions,
    PreparedText,
    check_options,
    int_option,
)

NAME = "espeak"
OPTIONS = ("voice", "rate", "pitch")
DEFAULT_VOICE = "en-us"
RATE_RANGE = (80, 450)  # words per minute: eSpeak NG's own bounds
PITCH_RANGE = (0, 99)
_MAX_VOICE_CHARS = 39  # eSpeak copies names into 40-byte buffers (voices.c); longer ones are cut or overflow
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_RATE, _PITCH = 1, 3
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class EspeakUnavailable(VocoderError):
    """Neither the espeakng-loader wheel nor a system libespeak-ng could be loaded."""


class _Voice(ctypes.Structure):
    """eSpeak's ``espeak_VOICE``. ``languages`` stays a raw pointer: it is a list of (priority byte,
    NUL-terminated language) pairs ended by a 0 byte, which a ``c_char_p`` would cut at the first NUL."""

    _fields_ = [
        ("name", ctypes.c_char_p), ("languages", ctypes.c_void_p), ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte), ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte), ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int), ("spare", ctypes.c_void_p),
    ]  # fmt: skip


@dataclass(frozen=True)
class VoiceInfo:
    """One voice (or voice variant) as eSpeak NG lists it from its data."""

    name: str  # e.g. "English (Great Britain)"
    identifier: str  # its file within espeak-ng-data, e.g. "gmw/en"; variants "!v/f3"
    languages: tuple[str, ...]  # e.g. ("en-gb", "en"), most preferred first

    @property
    def file(self) -> str:
        """The last part of the identifier ("en-GB-x-rp", "f3"), which eSpeak accepts as a name."""
        return self.identifier.rsplit("/", 1)[-1]


def _languages(address: int | None) -> tuple[str, ...]:
    if not address:
        return ()
    out = []
    while ctypes.string_at(address, 1) != b"\0":
        language = ctypes.string_at(address + 1)  # after the priority byte, up to its NUL
        out.append(language.decode("utf-8", "replace"))
        address += 1 + len(language) + 1
    return tuple(out)


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
    voices: tuple[VoiceInfo, ...] = ()  # listed once, on first use
    variants: tuple[VoiceInfo, ...] = ()
    resolved: dict[str, str] = field(default_factory=dict)  # what the user wrote -> what eSpeak is given


class Espeak:
    """The process-wide eSpeak NG engine (its C state is global: one instance, calls serialised)."""

    _instance: _Library | None = None
    _lock = threading.RLock()  # re-entrant: speaking resolves the voice, which lists voices

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
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        lib.espeak_ListVoices.argtypes = [ctypes.POINTER(_Voice)]
        lib.espeak_SetVoiceByProperties.argtypes = [ctypes.POINTER(_Voice)]
        lib.espeak_GetCurrentVoice.restype = ctypes.POINTER(_Voice)
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

    # -- voices ---------------------------------------------------------------------------------

    def _list(self, variants: bool) -> tuple[VoiceInfo, ...]:
        """eSpeak's voice list (or its variants), copied: the library frees it on the next listing."""
        selector = None
        if variants:
            spec = ctypes.create_string_buffer(b"variant")
            selector = _Voice(languages=ctypes.addressof(spec))
        array = self._state.lib.espeak_ListVoices(ctypes.byref(selector) if selector is not None else None)
        out = []
        for index in itertools.count():
            if not array[index]:
                break
            voice = array[index].contents
            out.append(
                VoiceInfo(
                    (voice.name or b"").decode("utf-8", "replace"),
                    (voice.identifier or b"").decode("utf-8", "replace"),
                    _languages(voice.languages),
                )
            )
        return tuple(out)

    def voices(self) -> tuple[VoiceInfo, ...]:
        """Every voice in the library's data (not the variants)."""
        with Espeak._lock:
            if not self._state.voices:
                self._state.voices = self._list(variants=False)
                self._state.variants = self._list(variants=True)
            return self._state.voices

    def variants(self) -> tuple[VoiceInfo, ...]:
        """The voice variants (``en-us+f3``, ``de+Alex``): another timbre for any voice."""
        self.voices()
        return self._state.variants

    def voice_names(self) -> list[str]:
        """The names ``voice`` accepts besides full names and identifiers: every language and voice file,
        sorted (``en``, ``en-gb``, ``en-gb-x-rp``, ``en-us``, ...)."""
        names = {language.lower() for voice in self.voices() for language in voice.languages}
        names |= {voice.file.lower() for voice in self.voices()}
        return sorted(names)

    def resolve_voice(self, voice: str) -> str:
        """The voice eSpeak NG itself would use for ``voice``, as an identifier its SetVoiceByName takes
        (``en-gb`` -> ``gmw/en``, ``en-us+f3`` -> ``gmw/en-US+f3``); a ConfigError naming what is accepted.

        Accepted, case-insensitively, as the ``espeak-ng -v`` command accepts them: a voice's name
        ("English (Great Britain)"), its identifier ("gmw/en-GB-x-rp") or the identifier's last part
        ("en-gb-x-rp"), or a language a voice lists ("en-gb": eSpeak picks the voice, as espeak-ng does
        when a name matches no voice), each optionally with ``+VARIANT`` (a variant's name or file, or
        eSpeak's numbers: ``+N`` is ``mN``, ``+1N`` is ``fN``). Everything is checked here against the
        library's own lists before the library sees it: an empty name crashes eSpeak NG 1.52, a long one
        overruns its 40-byte name buffers, any other string is tried as a file path, and an unknown
        variant is silently ignored."""
        with Espeak._lock:
            cached = self._state.resolved.get(voice)
            if cached is None:
                resolved = self._resolve(voice)
                if not self._speaks(resolved):
                    raise ConfigError(
                        f"{NAME}: --acoustic-opt voice={voice!r}: eSpeak NG lists this voice ({resolved}) but "
                        "cannot load its dictionary (this installation's data lacks it); choose another voice"
                    )
                cached = self._state.resolved[voice] = resolved
        return cached

    def _speaks(self, resolved: str) -> bool:
        """Whether the voice loads and reads a probe text (a listed voice whose dictionary is missing from
        the data, such as fo, kaa and xex in the espeakng-loader wheel, reads nothing at all)."""
        state = self._state
        state.voice = ""  # the engine's voice changes here: the next _configure sets it again
        if state.lib.espeak_SetVoiceByName(resolved.encode("ascii")) != 0:
            return False
        return bool(self._text_to_phonemes("a hello 1"))

    def _resolve(self, voice: str) -> str:
        base, plus, variant = voice.strip().partition("+")
        if not base.strip():
            raise ConfigError(_voice_error(voice, "no voice name", self))
        if not voice.isascii() or not voice.isprintable():
            raise ConfigError(_voice_error(voice, "eSpeak NG's voice names are printable ASCII", self))
        if len(voice) > _MAX_VOICE_CHARS:
            raise ConfigError(_voice_error(voice, f"longer than eSpeak NG's {_MAX_VOICE_CHARS} characters", self))
        key = base.strip().lower()
        voices = self.voices()
        match = (
            next((v for v in voices if v.name.lower() == key), None)
            or next((v for v in voices if v.identifier.lower() == key), None)
            or next((v for v in voices if v.file.lower() == key), None)
        )
        listing = [v for v in voices for language in v.languages if language.lower() == key]
        if match is None and listing:  # eSpeak's choice; its language match is case-sensitive: the listed spelling
            spelled = next(language for language in listing[0].languages if language.lower() == key)
            match = self._voice_for_language(spelled) or listing[0]
        if match is None:
            raise ConfigError(_voice_error(voice, "no such voice or language", self))
        if plus:
            return f"{match.identifier}+{self._variant(voice, variant.strip())}"
        return match.identifier

    def _variant(self, voice: str, variant: str) -> str:
        key = variant.lower()
        if key.isdigit():  # eSpeak's numbered variants: 1-9 male m1..m9, 11-19 female f1..f9
            number = int(key)
            key = f"m{number}" if 0 < number < 10 else f"f{number - 10}" if 10 < number < 20 else ""
        found = next((v for v in self.variants() if key in (v.file.lower(), v.name.lower())), None)
        if found is None:
            files = sorted((v.file for v in self.variants()), key=str.lower)
            close = difflib.get_close_matches(variant, files, n=4, cutoff=0.6)
            examples = [f for f in ("f3", "m3", "whisper", "Alex") if f in files] or files[:4]
            nearest = f"closest: {', '.join(close)}; " if close else ""
            raise ConfigError(
                f"{NAME}: --acoustic-opt voice={voice!r}: eSpeak NG has no variant {variant!r}; {nearest}accepted "
                f"after +: one of its {len(files)} variants such as {', '.join(examples)} (`vocoder tts --list` shows "
                "them all), or a number: N for mN, 10+N for fN"
            )
        return found.file

    def _voice_for_language(self, language: str) -> VoiceInfo | None:
        """The voice eSpeak NG picks for a language (its own scoring, as ``espeak-ng -v LANGUAGE`` does)."""
        with Espeak._lock:
            state = self._state
            buffer = ctypes.create_string_buffer(language.encode("ascii"))
            status = state.lib.espeak_SetVoiceByProperties(ctypes.byref(_Voice(languages=ctypes.addressof(buffer))))
            state.voice = ""  # the engine's voice changed: the next _configure sets it again
            if status != 0:
                return None
            current = state.lib.espeak_GetCurrentVoice()
            identifier = (current.contents.identifier or b"").decode("utf-8", "replace") if current else ""
        return next((v for v in self.voices() if v.identifier == identifier.split("+")[0]), None)

    def _configure(self, voice: str, rate: int, pitch: int) -> None:
        state = self._state
        if state.voice != voice:
            resolved = self.resolve_voice(voice)
            if state.lib.espeak_SetVoiceByName(resolved.encode("ascii")) != 0:
                state.voice = ""  # set the voice again next time
                raise ConfigError(f"eSpeak NG cannot load voice {voice!r} ({resolved})")
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
        carries over from one text to the next, so within a run a text can come out up to a few hundred samples longer
        or shorter depending on what was spoken before it (the same run order gives the same audio)."""
        payload = text.replace("\0", " ").encode("utf-8", "replace") + b"\0"  # a NUL would end the text there
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

    def phonemes(self, text: str, voice: str = DEFAULT_VOICE) -> str:
        """eSpeak's phoneme string for ``text`` ('' when it would say nothing).

        eSpeak NG 1.52 reads one character ahead at some clause breaks (``0¡0``) and keeps it for the next
        call once the text is used up, so the last clause would be missing here and turn up in the next
        text's phonemes. A few calls on a single space (never an empty text: that crashes the library)
        collect it; one that gives nothing twice in a row has nothing left."""
        with Espeak._lock:
            self._configure(voice, self._state.rate or 175, self._state.pitch or 50)
            return self._text_to_phonemes(text)

    def _text_to_phonemes(self, text: str) -> str:
        """:meth:`phonemes` in the voice the engine has now (the caller holds the lock)."""
        encoded = text.replace("\0", " ").encode("utf-8", "replace")
        lib = self._state.lib
        buffer = ctypes.create_string_buffer(encoded)
        pointer = ctypes.c_char_p(ctypes.addressof(buffer))
        parts = []
        while pointer.value:
            out = lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8, 0)
            parts.append((out or b"").decode("utf-8", "replace"))
        empty = 0
        for _ in range(8):
            space = ctypes.create_string_buffer(b" ")
            rest = ctypes.c_char_p(ctypes.addressof(space))
            out = lib.espeak_TextToPhonemes(ctypes.byref(rest), _CHARS_UTF8, 0)
            parts.append((out or b"").decode("utf-8", "replace"))
            empty = empty + 1 if not parts[-1].strip() else 0
            if empty == 2:
                break
        return " ".join(p for p in parts if p.strip())


def _voice_error(voice: str, why: str, engine: Espeak) -> str:
    """One line: the option, what is wrong with it, and what is accepted (with the closest names)."""
    names = engine.voice_names()
    close = difflib.get_close_matches(voice.strip().partition("+")[0].lower(), names, n=4, cutoff=0.6)
    nearest = f"closest: {', '.join(close)}; " if close else ""
    return (
        f"{NAME}: --acoustic-opt voice={voice!r}: {why}; {nearest}accepted: an eSpeak NG voice or language "
        f"({len(names)} names such as en-us, en-gb, de, fr; `vocoder tts --list` shows them all), "
        "optionally with +VARIANT (e.g. en-us+f3)"
    )


def _is_control(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cf", "Co", "Cn", "Cs") and char not in "\t\n\r"


class EspeakAcoustic:
    """The acoustic-model protocol around :class:`Espeak`: mels in the vocoder's own config."""

    name = NAME

    def __init__(
        self, mel: MelConfig, voice: str = DEFAULT_VOICE, rate: int = 175, pitch: int = 50, seed: int = 0
    ) -> None:
        self.engine = Espeak()
        self.mel_config = mel
        self.voice, self.rate, self.pitch, self.seed = voice, rate, pitch, seed
        self.max_chars = 1000  # eSpeak has no limit; this bounds the memory of one utterance's mel
        self._mel = MelSpectrogram(mel)
        identifier = self.engine.resolve_voice(voice).partition("+")[0]  # an unknown voice fails here
        languages = [lang for v in self.engine.voices() if v.identifier == identifier for lang in v.languages]
        self.english = any(lang.split("-")[0] == "en" for lang in languages)

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
            elif self.english and char.isalpha() and "LATIN" not in unicodedata.name(char, ""):
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


@dataclass(frozen=True)
class EspeakOptions:
    """``--acoustic-opt`` for espeak, checked."""

    voice: str = DEFAULT_VOICE
    rate: int = 175
    pitch: int = 50


def parse_options(options: dict[str, str]) -> EspeakOptions:
    """Check every option before the library sees it: known keys, integers in eSpeak's ranges, and a
    voice eSpeak NG lists (see :meth:`Espeak.resolve_voice`); a ConfigError names the option otherwise."""
    check_options(NAME, options, OPTIONS)
    rate = int_option(NAME, options, "rate", 175, RATE_RANGE, "words per minute")
    pitch = int_option(NAME, options, "pitch", 50, PITCH_RANGE, "eSpeak's pitch scale")
    voice = options.get("voice", DEFAULT_VOICE)
    Espeak().resolve_voice(voice)
    return EspeakOptions(voice, rate, pitch)


def load(options: LoadOptions) -> EspeakAcoustic:
    opts = parse_options(options.options)
    if options.weights is not None:
        raise ConfigError(f"{NAME} has no weights; drop --acoustic-weights")
    return EspeakAcoustic(options.target_mel, opts.voice, opts.rate, opts.pitch, options.seed)
