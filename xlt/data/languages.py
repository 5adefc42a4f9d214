"""The single table of language codes that xlt accepts, and checks on them.

Codes are ISO 639-1 (two letters). Each entry also lists the ISO 639-3 codes (macrolanguage first, then
individual languages) that public datasets such as Aya use for it, so readers can map them here.
Every language of the packaged Bible is in the table; Thai is in it for CLDR-only tasks.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from xlt.errors import DataError


@dataclass(frozen=True)
class Language:
    """One supported language: code, English name, writing system and ISO 639-3 aliases."""

    code: str
    name: str
    script: str
    iso639_3: tuple[str, ...]
    word_spaces: bool = True


_TABLE: tuple[Language, ...] = (
    Language("ar", "Arabic", "Arabic",
             ("ara", "arb", "ars", "ary", "arz", "acm", "acq", "aeb", "ajp", "apc", "apd", "ayl")),  # fmt: skip
    Language("bn", "Bengali", "Bengali", ("ben",)),
    Language("de", "German", "Latin", ("deu",)),
    Language("en", "English", "Latin", ("eng",)),
    Language("es", "Spanish", "Latin", ("spa",)),
    Language("fa", "Persian", "Arabic", ("fas", "pes", "prs")),
    Language("fr", "French", "Latin", ("fra",)),
    Language("hi", "Hindi", "Devanagari", ("hin",)),
    Language("id", "Indonesian", "Latin", ("ind",)),
    Language("it", "Italian", "Latin", ("ita",)),
    Language("ja", "Japanese", "Kana/Han", ("jpn",), word_spaces=False),
    Language("ko", "Korean", "Hangul", ("kor",)),
    Language("pl", "Polish", "Latin", ("pol",)),
    Language("pt", "Portuguese", "Latin", ("por",)),
    Language("ro", "Romanian", "Latin", ("ron",)),
    Language("ru", "Russian", "Cyrillic", ("rus",)),
    Language("sw", "Swahili", "Latin", ("swa", "swh")),
    Language("th", "Thai", "Thai", ("tha",), word_spaces=False),
    Language("tl", "Tagalog", "Latin", ("tgl", "fil")),
    Language("tr", "Turkish", "Latin", ("tur",)),
    Language("uk", "Ukrainian", "Cyrillic", ("ukr",)),
    Language("vi", "Vietnamese", "Latin", ("vie",)),
    Language("zh", "Chinese", "Han", ("zho", "cmn"), word_spaces=False),
)

LANGUAGES: dict[str, Language] = {lang.code: lang for lang in _TABLE}
CODES: tuple[str, ...] = tuple(sorted(LANGUAGES))
_FROM_ISO639_3: dict[str, str] = {alias: lang.code for lang in _TABLE for alias in lang.iso639_3}


def validate(code: str) -> str:
    """Return `code` if xlt supports it, else raise DataError naming close and valid codes."""
    if code in LANGUAGES:
        return code
    raise DataError(f"unknown language code {code!r}{_hint(code)}; valid codes: {', '.join(CODES)}")


def _hint(code: object) -> str:
    """'; did you mean ...' for a code that differs in case, uses ISO 639-3, a locale or an English name."""
    if not isinstance(code, str):
        return ""
    text = code.strip()
    lower = text.lower()
    guesses = [
        lower if lower in LANGUAGES else None,
        lower.replace("_", "-").split("-")[0] if lower.replace("_", "-").split("-")[0] in LANGUAGES else None,
        _FROM_ISO639_3.get(lower),
        next((lang.code for lang in _TABLE if lang.name.lower() == lower), None),
    ]
    close = list(dict.fromkeys(g for g in guesses if g))
    if not close and lower:
        same_initial = [c for c in CODES if c[0] == lower[0]]
        close = same_initial[:3] if same_initial else difflib.get_close_matches(lower, CODES, n=2, cutoff=0.5)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


def from_iso639_3(code: str) -> str | None:
    """ISO 639-1 code for an ISO 639-3 code (e.g. 'kor' -> 'ko', 'arz' -> 'ar'), None if not supported."""
    return _FROM_ISO639_3.get(code.lower())


def name(code: str) -> str:
    """English name of a supported language."""
    return LANGUAGES[validate(code)].name


def script(code: str) -> str:
    """Writing system of a supported language (e.g. 'Hangul', 'Kana/Han', 'Cyrillic')."""
    return LANGUAGES[validate(code)].script


def uses_word_spaces(code: str) -> bool:
    """Whether the language separates words with spaces (False for zh, ja, th).

    Per-word statistics (tokenizer fertility) and whitespace tokenization (ROUGE) are only meaningful
    where this is True; the others must be counted per character.
    """
    return LANGUAGES[validate(code)].word_spaces
