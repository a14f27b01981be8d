"""Text side of `vocoder tts`: English normalisation, the Tacotron2 character frontend, inputs, splitting."""

from __future__ import annotations

from pathlib import Path

import pytest

from vocoder_cli.errors import TextError, VocoderError
from vocoder_cli.tts.english import normalize_english, number_to_words, ordinal_to_words, year_to_words
from vocoder_cli.tts.tacotron2_lj import SYMBOLS, encode, prepare
from vocoder_cli.tts.texts import check_id, items_from_dir, items_from_lines, mark_duplicates, split_text


@pytest.mark.parametrize(
    ("n", "words"),
    [
        (0, "zero"),
        (13, "thirteen"),
        (40, "forty"),
        (99, "ninety-nine"),
        (101, "one hundred one"),
        (1234, "one thousand two hundred thirty-four"),
        (1_000_000, "one million"),
        (2_000_017, "two million seventeen"),
        (-5, "minus five"),
    ],
)
def test_number_to_words(n: int, words: str) -> None:
    assert number_to_words(n) == words


def test_years_and_ordinals_read_the_way_people_say_them() -> None:
    assert year_to_words(1984) == "nineteen eighty-four"
    assert year_to_words(1900) == "nineteen hundred"
    assert year_to_words(1905) == "nineteen oh five"
    assert year_to_words(2005) == "two thousand five"
    assert year_to_words(2024) == "twenty twenty-four"
    assert [ordinal_to_words(n) for n in (1, 2, 3, 12, 20, 21, 101)] == [
        "first", "second", "third", "twelfth", "twentieth", "twenty-first", "one hundred first",
    ]  # fmt: skip


def test_normalize_english_expands_what_ljspeech_transcripts_spell_out() -> None:
    assert normalize_english("Mr. Smith paid $5.50 on May 1st, 1984.") == (
        "mister smith paid five dollars, fifty cents on may first, nineteen eighty-four."
    )
    assert normalize_english("No. 7 said no.") == "number seven said no."
    assert (
        normalize_english("Caf\u00e9 & na\u00efve \u2014 42% of 0.5")
        == "cafe and naive - forty-two percent of zero point five"
    )
    assert normalize_english("1,000,000 people; $1 and $0.01; agent 007") == (
        "one million people; one dollar and one cent; agent zero zero seven"
    )


def test_encode_matches_torchaudios_character_ids() -> None:
    # torchaudio's documented example for its english_characters symbol set
    assert encode("hello world!") == [19, 16, 23, 23, 26, 11, 34, 26, 29, 23, 15, 2]
    assert len(SYMBOLS) == 38 and SYMBOLS[0] == "_" and SYMBOLS[11] == " "
    assert encode("A_b#") == [12, 0, 13]  # lower-cased; '_' is the pad symbol; '#' is dropped


def test_prepare_reports_exactly_what_tacotron2_cannot_read() -> None:
    prepared = prepare('He said "hello" \u2014 #1 \u4e2d\u6587 ok.')
    assert prepared.text == "he said hello - one ok."
    assert prepared.dropped == ("#", "\u4e2d", "\u6587")  # quote marks are dropped silently (LJSpeech has them)
    with pytest.raises(TextError, match="nothing tacotron2-lj can read"):
        prepare("\u4e2d\u6587 ###")
    with pytest.raises(TextError):
        prepare("...")


def test_split_text_keeps_sentences_whole_and_respects_the_limit() -> None:
    text = "One two three. Four five six! Seven, eight, nine, ten eleven twelve; thirteen."
    pieces = split_text(text, 30)
    assert all(len(p) <= 30 for p in pieces)
    assert " ".join(pieces) == text  # nothing lost, order kept
    assert pieces[0] == "One two three. Four five six!"
    long_word = "x" * 75
    assert split_text(long_word, 30) == ["x" * 30, "x" * 30, "x" * 15]
    assert split_text("short.", 30) == ["short."]


def test_items_from_dir_reads_course_layout_and_flags_bad_files(tmp_path: Path) -> None:
    tdir = tmp_path / "D" / "transcriptions"
    tdir.mkdir(parents=True)
    (tdir / "a.txt").write_text("Hello.", encoding="utf-8")
    (tdir / "b.txt").write_bytes(b"\xef\xbb\xbfWith a BOM.")
    (tdir / "c.txt").write_bytes(b"bad \xff\xfe bytes")
    (tdir / "notes.md").write_text("ignored")
    items = items_from_dir(tmp_path / "D")
    assert [i.id for i in items] == ["a", "b", "c"]
    assert items[1].text == "With a BOM."
    assert items[2].text is None and "not UTF-8" in (items[2].error or "") and "0xff" in (items[2].error or "")
    assert [i.id for i in items_from_dir(tdir)] == ["a", "b", "c"]  # the transcriptions folder itself works too
    with pytest.raises(VocoderError, match="no .txt files"):
        items_from_dir(tmp_path)


def test_items_from_lines_uses_ljspeech_normalised_column() -> None:
    data = (
        "# comment\n"
        "LJ001-0001|Printing, in 1 sense|Printing, in one sense\n"
        "x2|plain text\r\n"
        "\n"
        "no separator here\n"
        "../evil|escape\n"
        "LJ001-0001|again\n"
    ).encode() + b"bad|\xff\n"
    items = mark_duplicates(items_from_lines(data, "meta.csv"))
    assert items[0].id == "LJ001-0001" and items[0].text == "Printing, in one sense" and items[0].source == "meta.csv:2"
    assert items[1].text == "plain text"
    assert items[2].error and "expected id|text" in items[2].error and items[2].source == "meta.csv:5"
    assert items[3].error and "cannot name a file" in items[3].error
    assert items[4].error and "duplicate id" in items[4].error and "meta.csv:2" in items[4].error
    assert items[5].error and "not UTF-8" in items[5].error


def test_check_id() -> None:
    assert check_id("LJ001-0001") is None
    assert check_id("") and check_id("a/b") and check_id(".hidden") and check_id("x\ty")
