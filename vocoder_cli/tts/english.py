"""English text normalisation for character-input acoustic models (numbers, abbreviations, symbols).

Character Tacotron2 models trained on LJSpeech read lower-case letters and a little punctuation: a digit,
"Mr." or "&" is something they never saw. This module rewrites such text the way LJSpeech's normalised
transcripts are written ("$5" -> "five dollars", "1984" -> "nineteen eighty-four", "Dr." -> "doctor"),
and folds accented Latin letters to ASCII ("café" -> "cafe"). Written for this package; it follows the
conventions of the usual Tacotron "english_cleaners" without their dependencies (inflect, unidecode).
"""

from __future__ import annotations

import re
import unicodedata

_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SCALES = ("", "thousand", "million", "billion", "trillion")
_ORDINAL_WORDS = {
    "one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
    "nine": "ninth", "twelve": "twelfth",
}  # fmt: skip

_ABBREVIATIONS = {
    "mr": "mister", "mrs": "misess", "ms": "miss", "dr": "doctor", "drs": "doctors", "st": "saint",
    "co": "company", "jr": "junior", "sr": "senior", "maj": "major", "gen": "general", "rev": "reverend",
    "lt": "lieutenant", "hon": "honorable", "sgt": "sergeant", "capt": "captain", "esq": "esquire",
    "ltd": "limited", "col": "colonel", "ft": "fort", "vs": "versus", "etc": "et cetera",
}  # fmt: skip
_ABBREVIATION_RE = re.compile(r"\b(" + "|".join(sorted(_ABBREVIATIONS, key=len, reverse=True)) + r")\.", re.I)
# "No." is an abbreviation only before a number ("No. 5"), never at the end of "Say no."
_NUMBER_RE = re.compile(r"\bno\.(?=\s*\d)", re.I)

# Typographic characters with a plain equivalent the models know.
_TYPOGRAPHIC = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u2032": "'", "\u00b4": "'",
        "\u2013": " - ", "\u2014": " - ", "\u2015": " - ", "\u2212": "-",
        "\u2026": "...", "[": "(", "]": ")", "{": "(", "}": ")", "_": " ",
    }
)  # fmt: skip
_SYMBOLS = (("&", " and "), ("@", " at "), ("+", " plus "), ("%", " percent "))


def _below_thousand(n: int) -> str:
    words = []
    if n >= 100:
        words.append(f"{_ONES[n // 100]} hundred")
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10] + (f"-{_ONES[n % 10]}" if n % 10 else ""))
    elif n or not words:
        words.append(_ONES[n])
    return " ".join(words)


_MAX_DIGITS = 15  # up to the trillions: longer digit runs are read digit by digit (and never hit int()'s limit)


def _digits(text: str) -> str:
    """Digit by digit: "007" -> "zero zero seven"."""
    return " ".join(_ONES[int(d)] for d in text)


def _cardinal(text: str) -> str:
    """Words for a run of digits of any length (a very long run is read digit by digit)."""
    return _digits(text) if len(text) > _MAX_DIGITS else number_to_words(int(text))


def number_to_words(n: int) -> str:
    """Cardinal words: 1234 -> "one thousand two hundred thirty-four"; digit by digit past trillions."""
    if n < 0:
        return "minus " + number_to_words(-n)
    if n >= 1000 ** len(_SCALES):
        return " ".join(_ONES[int(d)] for d in str(n))
    if n < 1000:
        return _below_thousand(n)
    groups = []
    scale = 0
    while n:
        n, part = divmod(n, 1000)
        if part:
            groups.append(_below_thousand(part) + (f" {_SCALES[scale]}" if scale else ""))
        scale += 1
    return " ".join(reversed(groups))


def year_to_words(n: int) -> str:
    """How years are read: 1984 -> "nineteen eighty-four", 1900 -> "nineteen hundred", 2005 -> "two thousand five"."""
    if not 1000 < n < 3000 or 2000 <= n < 2010:
        return number_to_words(n)
    high, low = divmod(n, 100)
    if low == 0:
        return f"{number_to_words(high)} hundred"
    return f"{number_to_words(high)} {'oh ' if low < 10 else ''}{number_to_words(low)}"


def ordinal_to_words(n: int) -> str:
    words = number_to_words(n)
    head, sep, last = words.rpartition(" ")
    last_part = last.rpartition("-")
    word = last_part[2]
    if word in _ORDINAL_WORDS:
        word = _ORDINAL_WORDS[word]
    elif word.endswith("y"):
        word = word[:-1] + "ieth"
    else:
        word += "th"
    return head + sep + last_part[0] + last_part[1] + word


def _money(match: re.Match[str], unit: str, sub_unit: str) -> str:
    digits = match.group(1).replace(",", "")
    cents = int((match.group(2) or "0")[:2].ljust(2, "0"))
    if len(digits) > _MAX_DIGITS:
        return f"{_digits(digits)} {unit}s" + (f", {number_to_words(cents)} {sub_unit}s" if cents else "")
    whole = int(digits)
    parts = []
    if whole or not cents:
        parts.append(f"{number_to_words(whole)} {unit}{'' if whole == 1 else 's'}")
    if cents:
        parts.append(f"{number_to_words(cents)} {sub_unit}{'' if cents == 1 else 's'}")
    return ", ".join(parts)


def _decimal(match: re.Match[str]) -> str:
    whole, frac = match.group(1), match.group(2)
    return f"{_cardinal(whole)} point {_digits(frac)}"


def _integer(match: re.Match[str]) -> str:
    text = match.group(0)
    if len(text) > 1 and text.startswith("0"):
        return _digits(text)  # "007": digits, not a number
    return year_to_words(int(text)) if len(text) == 4 else _cardinal(text)


def _ordinal(match: re.Match[str]) -> str:
    digits = match.group(1)
    return _digits(digits) if len(digits) > _MAX_DIGITS else ordinal_to_words(int(digits))


def expand_numbers(text: str) -> str:
    """Digits -> words: money, decimals, ordinals, years, cardinals (in that order)."""
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)
    text = re.sub(r"\$(\d[\d,]*)(?:\.(\d+))?", lambda m: _money(m, "dollar", "cent"), text)
    text = re.sub("\u00a3" + r"(\d[\d,]*)(?:\.(\d+))?", lambda m: _money(m, "pound", "penny"), text)
    text = re.sub(r"(\d+)\.(\d+)", _decimal, text)
    text = re.sub(r"(\d+)(?:st|nd|rd|th)\b", _ordinal, text, flags=re.I)
    return re.sub(r"\d+", _integer, text)


def fold_to_ascii(text: str) -> str:
    """Accented Latin letters lose their accents (NFKD, combining marks dropped); other scripts stay."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_TYPOGRAPHIC))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def normalize_english(text: str) -> str:
    """Fold to ASCII, expand numbers, abbreviations and a few symbols, lower-case, collapse whitespace."""
    text = fold_to_ascii(text)
    text = _NUMBER_RE.sub("number", text)
    text = expand_numbers(text)
    text = _ABBREVIATION_RE.sub(lambda m: _ABBREVIATIONS[m.group(1).lower()], text)
    for symbol, words in _SYMBOLS:
        text = text.replace(symbol, words)
    return re.sub(r"\s+", " ", text.lower()).strip()
