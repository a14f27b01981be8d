"""Property-based fuzz of the text frontends: arbitrary text never raises anything but the typed errors.

Bounded (a few dozen examples per property, no deadline) so the file runs in a few seconds on 2 cores.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from vocoder_cli.audio import atomic_write_bytes
from vocoder_cli.errors import TextError, VocoderError
from vocoder_cli.tts.english import normalize_english
from vocoder_cli.tts.tacotron2_lj import SYMBOLS, prepare
from vocoder_cli.tts.texts import (
    MAX_ID_BYTES,
    check_id,
    decode_text,
    items_from_lines,
    split_text,
)

FUZZ = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# Text that stresses the frontends: digits (ASCII and others), money, abbreviations, separators, every
# plane of Unicode (including lone surrogates, which only a Python caller can pass).
_PIECES = st.sampled_from(
    ["$", "\u00a3", ".", ",", "|", "#", " ", "\n", "\r", "\t", "Mr.", "No. ", "1st", "\u0661\u0662", "\u00b2",
     "\u2460", "&", "%", "@", "+", "\u2014", "\u2026", "\u200b", "\x00", "\x07", "\ud800", "\U0001f600", "e\u0301"]
)  # fmt: skip
TEXT = st.lists(st.one_of(st.text(max_size=12), st.from_regex(r"[0-9,.]{1,30}", fullmatch=True), _PIECES),
                max_size=30).map("".join)  # fmt: skip


@FUZZ
@given(TEXT)
@example("9" * 5000)  # more digits than Python converts to an int by default
@example("$" + "1" * 4400 + ".99 and 1" * 3 + "." + "2" * 4400)
@example("on the " + "7" * 4400 + "th")
def test_english_normalisation_returns_plain_lower_case_text(text: str) -> None:
    out = normalize_english(text)
    assert out == out.strip() and "  " not in out
    assert out == out.lower()
    assert not any(c.isdigit() and c.isascii() for c in out)  # every ASCII digit is spelled out


@FUZZ
@given(TEXT)
@example("9" * 5000)
def test_tacotron2_frontend_keeps_only_its_symbols_or_raises_text_error(text: str) -> None:
    try:
        prepared = prepare(text)
    except TextError:
        return
    assert prepared.text and set(prepared.text) <= set(SYMBOLS)
    assert len(set(prepared.dropped)) == len(prepared.dropped)


@FUZZ
@given(TEXT, st.integers(min_value=1, max_value=80))
@example("x" * 75, 30)
@example("a. " * 50, 3)
@example("One two three.\u2028Four five\u00a0six!", 5)
def test_split_text_respects_the_limit_and_keeps_every_word(text: str, limit: int) -> None:
    pieces = split_text(text, limit)
    assert all(0 < len(p) <= limit and p.strip() for p in pieces)
    assert "".join("".join(pieces).split()) == "".join(text.split())  # every character, in order


@FUZZ
@given(st.binary(max_size=300))
@example(b"\xef\xbb\xbf\xff")
@example(b"caf\xe9")
def test_decode_text_is_utf8_or_a_text_error_naming_the_byte(data: bytes) -> None:
    try:
        text = decode_text(data)
    except TextError as exc:
        assert "not UTF-8 text (byte 0x" in exc.reason
        offset = int(exc.reason.split(" at offset ")[1].split(")")[0])
        assert f"0x{data[offset]:02x}" in exc.reason
        return
    assert text == data.decode("utf-8-sig")


ID_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.sampled_from("\u4e2d\u6587a\U0001f600."), min_size=60, max_size=90),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=230, max_size=260),
)


@FUZZ
@given(ID_TEXT)
@example("\u4e2d" * 78)  # 234 bytes: fits
@example("\u4e2d" * 80)  # 240 bytes: too long for the temporary name
@example("a" * MAX_ID_BYTES)
@example("a" * (MAX_ID_BYTES + 1))
@example("\ud800")
@example("..")
def test_an_accepted_id_really_names_every_output_and_its_temporary_file(item_id: str) -> None:
    reason = check_id(item_id)
    if reason is not None:
        assert isinstance(reason, str) and reason
        return
    with tempfile.TemporaryDirectory() as tmp:  # the real file system: .wav and .npy, via atomic writes
        for suffix in (".wav", ".npy"):
            written = atomic_write_bytes(Path(tmp) / f"{item_id}{suffix}", b"x")
            assert written.read_bytes() == b"x"
        assert sorted(os.listdir(tmp)) == sorted(f"{item_id}{s}" for s in (".npy", ".wav"))


LINES = st.lists(
    st.one_of(st.binary(max_size=40), st.text(max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
              st.sampled_from([b"a|b", b"a|b|c", b"LJ1|1963.|nineteen sixty-three.", b"#x|y", b"|", b"||", b""])),
    max_size=12,
).map(b"\n".join)  # fmt: skip


@FUZZ
@given(LINES, st.sampled_from(["auto", "id-text", "ljspeech"]))
def test_items_from_lines_yields_one_item_per_line_that_is_not_blank_or_a_comment(data: bytes, fmt: str) -> None:
    source = items_from_lines(data, "t.txt", fmt)
    assert len(source.notes) == 1 and "t.txt: " in source.notes[0]
    numbers = [int(item.source.rsplit(":", 1)[1]) for item in source.items]
    assert numbers == sorted(set(numbers))
    raw_lines = (data[3:] if data.startswith(b"\xef\xbb\xbf") else data).split(b"\n")
    for item in source.items:
        raw = raw_lines[int(item.source.rsplit(":", 1)[1]) - 1]
        assert (item.text is None) == (item.error is not None and item.text is None)
        if item.error is None:
            assert check_id(item.id) is None
            line = raw.decode("utf-8-sig").rstrip("\r")
            if "read as id|text" in source.notes[0]:
                assert item.text == line.partition("|")[2]
            else:
                columns = line.split("|")
                assert item.text == (columns[2] if columns[2].strip() else columns[1])


@FUZZ
@given(st.binary(max_size=200))
def test_items_from_lines_never_raises_on_bytes(data: bytes) -> None:
    for fmt in ("auto", "id-text", "ljspeech"):
        items_from_lines(data, "-", fmt)
    with pytest.raises(VocoderError, match="unknown texts format"):
        items_from_lines(data, "-", "csv")


def _espeak():  # type: ignore[no-untyped-def]
    from vocoder_cli.mel import MelConfig
    from vocoder_cli.tts.espeak import EspeakAcoustic, EspeakUnavailable

    try:
        return EspeakAcoustic(MelConfig())
    except EspeakUnavailable as exc:  # pragma: no cover - the test extra installs espeakng-loader
        from tests.conftest import skip_unless_ci

        skip_unless_ci(f"eSpeak NG unavailable: {exc}")


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXT)
@example("\ud800 lone surrogate")
@example("\x00\x00")
@example("<speak>" * 10)
@example("0\u00a10")  # eSpeak reads ahead at the clause break: the last 0 must not be lost
def test_espeak_frontend_and_phonemes_raise_only_text_errors(text: str) -> None:
    model = _espeak()
    try:
        prepared = model.prepare(text)
    except TextError:
        return
    assert prepared.text == prepared.text.strip() and model.engine.phonemes(prepared.text)
    for char in prepared.dropped:  # a control character (removed), or one eSpeak says nothing for
        assert char not in prepared.text or not model.engine.phonemes(char)
    wav = model.engine.speak(prepared.text)
    assert wav.dtype == np.float32 and np.all(np.isfinite(wav)) and np.abs(wav).max(initial=0.0) <= 1.0
