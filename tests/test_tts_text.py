"""Text side of `vocoder tts`: English normalisation, the Tacotron2 character frontend, inputs, splitting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vocoder_cli.errors import TextError, VocoderError
from vocoder_cli.tts.english import (
    normalize_english,
    number_to_words,
    ordinal_to_words,
    year_to_words,
)
from vocoder_cli.tts.tacotron2_lj import SYMBOLS, encode, prepare
from vocoder_cli.tts.texts import (
    MAX_ID_BYTES,
    TRANSCRIPTIONS,
    check_id,
    decode_text,
    items_from_dir,
    items_from_lines,
    mark_duplicates,
    split_text,
)


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


def test_split_text_never_reorders_words_around_one_cut_word() -> None:
    # "three." is longer than the limit: it is cut, and "two" (pending before it) must come first
    assert split_text("One two three. Four", 5) == ["One", "two", "three", ".", "Four"]


def test_items_from_dir_reads_course_layout_and_flags_bad_files(tmp_path: Path) -> None:
    tdir = tmp_path / "D" / "transcriptions"
    tdir.mkdir(parents=True)
    (tdir / "a.txt").write_text("Hello.", encoding="utf-8")
    (tdir / "b.txt").write_bytes(b"\xef\xbb\xbfWith a BOM.")
    (tdir / "c.txt").write_bytes(b"bad \xff\xfe bytes")
    (tdir / "notes.md").write_text("ignored")
    source = items_from_dir(tmp_path / "D")
    items = source.items
    assert [i.id for i in items] == ["a", "b", "c"]
    assert items[1].text == "With a BOM."
    assert items[2].text is None and items[2].error == "not UTF-8 text (byte 0xff at offset 4); save it as UTF-8"
    assert source.notes == (f"{tdir}: skipped 1 file ('notes.md'): only *.txt files are read, not subfolders",)
    assert [i.id for i in items_from_dir(tdir).items] == ["a", "b", "c"]  # the transcriptions folder itself
    assert items_from_dir(tdir).notes == source.notes  # ... with no note about a missing transcriptions/
    with pytest.raises(VocoderError, match="no .txt files"):
        items_from_dir(tmp_path)


def test_items_from_dir_lists_every_entry_it_cannot_read_and_notes_what_it_skips(tmp_path: Path) -> None:
    tdir = tmp_path / "D" / "transcriptions"
    (tdir / "sub").mkdir(parents=True)
    (tdir / "sub" / "deep.txt").write_text("Not searched.")
    (tdir / "ok.txt").write_text("Fine.")
    (tdir / "broken.txt").symlink_to(tmp_path / "nowhere.txt")
    (tdir / "loop.txt").symlink_to(tdir / "loop.txt")
    (tdir / "folder.txt").mkdir()
    os.mkfifo(tdir / "pipe.txt")  # reading it would block forever
    (tdir / "linked.txt").symlink_to(tdir / "ok.txt")  # a link to a readable file is fine
    (tdir / "README").write_text("x")
    (tdir / ("\u4e2d" * 78 + ".txt")).write_text("Fits: 234 bytes.")
    (tdir / ("\u4e2d" * 80 + ".txt")).write_text("Too long: 240 bytes plus a temporary name.")
    source = items_from_dir(tmp_path / "D")
    errors = {item.id: item.error for item in source.items}
    assert errors == {
        "broken": f"a broken symbolic link (to {str(tmp_path / 'nowhere.txt')!r})",
        "folder": "a folder, not a text file",
        "linked": None,
        "loop": "a symbolic link loop",
        "ok": None,
        "pipe": "not a regular file (a pipe, socket or device)",
        "\u4e2d" * 78: None,
        "\u4e2d" * 80: (
            "id is 240 bytes long as a file name (80 characters); output names allow at most 236 (a file name holds "
            "255 bytes, less '.wav' and the temporary name of an atomic write)"
        ),
    }
    assert source.notes == (
        f"{tdir}: skipped 1 subfolder ('sub') and 1 file ('README'): only *.txt files are read, not subfolders",
    )


def test_a_transcriptions_entry_that_is_not_a_folder_is_an_error_not_a_fall_back(tmp_path: Path) -> None:
    (tmp_path / "D").mkdir()
    (tmp_path / "D" / "README.txt").write_text("This folder holds the recordings.")
    (tmp_path / "D" / TRANSCRIPTIONS).symlink_to(tmp_path / "gone")
    with pytest.raises(VocoderError, match=r"transcriptions is a broken symbolic link \(to .*gone'\): fix it"):
        items_from_dir(tmp_path / "D")
    (tmp_path / "D" / TRANSCRIPTIONS).unlink()
    (tmp_path / "D" / TRANSCRIPTIONS).write_text("a file")
    with pytest.raises(VocoderError, match="transcriptions is a file, not a folder"):
        items_from_dir(tmp_path / "D")
    (tmp_path / "D" / TRANSCRIPTIONS).unlink()  # no transcriptions/ at all: D/*.txt, and a note says so
    source = items_from_dir(tmp_path / "D")
    assert [i.id for i in source.items] == ["README"]
    assert source.notes == (f"{tmp_path / 'D'} has no transcriptions/ folder: reading the .txt files in "
                            f"{tmp_path / 'D'} itself",)  # fmt: skip


def test_items_from_lines_reads_id_text_lines_and_keeps_bars_in_the_text() -> None:
    data = (
        "# comment\n"
        "a|Either | or, a bar is text|here\n"
        "x2|plain text\r\n"
        "\n"
        "no separator here\n"
        "../evil|escape\n"
        "a|again\n"
    ).encode() + b"bad|\xff\n"
    source = items_from_lines(data, "texts.txt")
    items = mark_duplicates(source.items)
    assert source.notes == ("texts.txt: 6 lines read as id|text: the text is everything after the first '|'",)
    assert items[0].id == "a" and items[0].text == "Either | or, a bar is text|here" and items[0].source == "texts.txt:2"
    assert items[1].text == "plain text"
    assert items[2].error == "expected id|text, found no '|'" and items[2].source == "texts.txt:5"
    assert items[3].error and "cannot name a file" in items[3].error
    assert items[4].error and "duplicate id" in items[4].error and "texts.txt:2" in items[4].error
    assert items[5].error == "not UTF-8 text (byte 0xff at offset 4); save it as UTF-8"


def test_ljspeech_metadata_is_recognised_and_its_normalised_column_spoken(data_dir: Path) -> None:
    meta = data_dir / "ljspeech" / "dev" / "metadata.csv"
    source = items_from_lines(meta.read_bytes(), "metadata.csv")
    rows = [line.split("|") for line in meta.read_text(encoding="utf-8").splitlines()]
    assert [(i.id, i.text) for i in source.items] == [(r[0], r[2]) for r in rows]
    assert source.notes == (
        f"metadata.csv: {len(rows)} lines read as LJSpeech metadata (id|text|normalised): the third column is spoken",
    )
    assert any(r[1] != r[2] for r in rows)  # numbers spelled out: the columns really differ


@pytest.mark.parametrize(
    ("data", "fmt", "texts", "note"),
    [
        # LJSpeech lines whose third column spells out the second's numbers: the third is spoken
        (b"LJ045-0058|1963.|nineteen sixty-three.\nLJ1|Mr. Ed|mister Ed\n", "auto",
         ["nineteen sixty-three.", "mister Ed"], "LJSpeech metadata"),
        # three columns that are not a normalisation of each other: the text keeps its bar
        (b"x|Yes|no\n", "auto", ["Yes|no"], "the third is not a normalised form of the second"),
        (b"x|Yes|no\n", "ljspeech", ["no"], "LJSpeech metadata"),
        (b"LJ1|1963.|nineteen sixty-three.\n", "id-text", ["1963.|nineteen sixty-three."], "read as id|text"),
        # one line with two bars and one with three: not LJSpeech metadata
        (b"a|b|b\nc|d|e|f\n", "auto", ["b|b", "d|e|f"], "read as id|text"),
        (b"a|Hello|\n", "auto", ["Hello"], "the second on 1 line whose third is empty"),
    ],
)
def test_texts_formats(data: bytes, fmt: str, texts: list[str], note: str) -> None:
    source = items_from_lines(data, "t", fmt)
    assert [i.text for i in source.items] == texts
    assert note in source.notes[0]


def test_the_ljspeech_format_refuses_lines_that_are_not_three_columns() -> None:
    source = items_from_lines(b"a|one|1\nb|two\nc|x|y|z\n", "m.csv", "ljspeech")
    assert [i.error for i in source.items] == [
        None,
        "expected 3 columns id|text|normalised (LJSpeech metadata), found 2",
        "expected 3 columns id|text|normalised (LJSpeech metadata), found 4",
    ]
    with pytest.raises(VocoderError, match="unknown texts format 'csv'"):
        items_from_lines(b"a|b", "m.csv", "csv")


def test_check_id() -> None:
    assert check_id("LJ001-0001") is None
    assert check_id("") and check_id("a/b") and check_id(".hidden") and check_id("x\ty") and check_id("x\x7fy")
    assert check_id("a" * MAX_ID_BYTES) is None and check_id("a" * (MAX_ID_BYTES + 1))
    assert MAX_ID_BYTES == 236
    assert check_id("\u4e2d" * 78) is None and "240 bytes" in (check_id("\u4e2d" * 80) or "")
    assert check_id("caf\udce9") is None  # a file name that was not UTF-8 keeps its bytes: it can name a file
    assert "cannot name a file" in (check_id("\ud800") or "")


def test_decode_text_names_the_byte() -> None:
    assert decode_text(b"\xef\xbb\xbfhi") == "hi"
    with pytest.raises(TextError, match=r"byte 0xff at offset 3\)"):
        decode_text(b"\xef\xbb\xbf\xff")
    with pytest.raises(TextError, match=r"byte 0xe9 at offset 3\)"):
        decode_text(b"caf\xe9")
