"""Language identification of model outputs, to report how often a model answers in the wrong language.

Two stages:

1. Script. Letters are counted per script and the script with the most letters decides (so a Korean answer
   quoting an English name is still Korean). Most scripts name the language at once: Hangul -> ko,
   Devanagari -> hi, Bengali -> bn, Thai -> th. Han and kana count together: any kana makes it ja, Han alone
   is zh (so a kana-free Japanese phrase such as "東京都" reads as zh). Two scripts are shared by two
   languages and are first told apart by letters only one of them uses: Arabic script is fa when Persian
   letters (پ چ ژ گ ک ی) outnumber Arabic-only ones (ي ك ة ى), ar when the reverse; Cyrillic is uk when
   і ї є ґ outnumber ы э ъ ё, ru when the reverse. When neither kind is present or they balance (about 1% of
   Ukrainian Bible verses have none of і ї є ґ), the classifier of stage 2, trained on that pair, decides.
2. Latin script (en, de, fr, es, pt, it, id, vi, tr, pl, ro, sw, tl): a multinomial naive Bayes classifier
   over character 1-4-grams of the casefolded words, each padded by one space so that n-grams see word
   starts and ends (n-grams do not span two words), add-0.5 smoothing and a uniform prior. It is trained at
   first use on the Bible train split: an evenly spaced sample of verses from every version of each
   language in the Bible database (mixing archaic and modern translations, e.g. KJV, BBE and WEB for
   English), the same number of characters (`TRAIN_CHARS_PER_LANGUAGE`) per language, and cached in memory
   for the process. Training is a pure function of the installed Bible, so results are deterministic; the
   Bible test and validation chapters are never seen in training. Why 1-4-grams rather than 1-3-grams: on
   the validation split whole verses are identified perfectly either way, but the error on the first 3
   words of a verse falls from 1.8% to 0.6% (first word alone: 25% to 18%). First use costs a few seconds,
   most of it reading and cleaning the Bible versions.

Output is 'und' (undetermined) for text with no letters (empty, numbers, punctuation), for text whose
dominant script belongs to no supported language (Greek, Hebrew...), and for Latin, Arabic or Cyrillic text
with fewer than `MIN_LETTERS` letters ("A", "ok"), where letter statistics say nothing. A single Hangul
syllable or Han character is enough, since the script alone decides.

`candidates` narrows the answer to a set of languages: the result is always one of them or 'und'; the
script stage picks among the candidates that use the dominant script (Han text with candidates {ja, en} is
ja), and the classifier only compares candidate languages.

Limits: a Latin-script language outside the 13 (Dutch, Catalan, ...) is reported as the closest of them;
Bible language is formal, so very short or informal outputs are identified less reliably than verses.
"""

from __future__ import annotations

import functools
import math
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import regex

from xlt.data import languages
from xlt.errors import ConfigError
from xlt.evaluation.metrics import check_lang

UNDETERMINED = "und"
LATIN_LANGUAGES: tuple[str, ...] = ("de", "en", "es", "fr", "id", "it", "pl", "pt", "ro", "sw", "tl", "tr", "vi")
MIN_LETTERS = 3  # fewest letters for a Latin, Arabic or Cyrillic text to be classified
NGRAM_ORDERS: tuple[int, ...] = (1, 2, 3, 4)
ALPHA = 0.5
TRAIN_CHARS_PER_LANGUAGE = 150_000
_MIN_COUNT = 2  # n-grams seen fewer times in every language are dropped from the model

_SCRIPT_NAMES: tuple[str, ...] = (
    "Latin", "Hangul", "Han", "Hiragana", "Katakana", "Arabic", "Cyrillic", "Devanagari", "Bengali", "Thai",
)  # fmt: skip
_SCRIPT_PATTERNS = tuple((name, regex.compile(rf"\p{{{name}}}")) for name in _SCRIPT_NAMES)
_SINGLE = {"Hangul": "ko", "Devanagari": "hi", "Bengali": "bn", "Thai": "th"}
# Script groups told apart by the classifier, and (for two of them) the letters only one language uses.
GROUPS: dict[str, tuple[str, ...]] = {"Latin": LATIN_LANGUAGES, "Arabic": ("ar", "fa"), "Cyrillic": ("ru", "uk")}
_MARKERS: dict[str, tuple[str, frozenset[str], str, frozenset[str]]] = {
    "Arabic": ("fa", frozenset("پچژگکی"), "ar", frozenset("يكةى")),
    "Cyrillic": ("uk", frozenset("іїєґ"), "ru", frozenset("ыэъё")),
}
_NON_LETTER = regex.compile(r"[^\p{L}\p{M}]+")


def _check_candidates(candidates: Iterable[str] | None) -> frozenset[str]:
    if candidates is None:
        return frozenset(languages.CODES)
    if isinstance(candidates, str):
        raise ConfigError(f"candidates must be a collection of language codes, not the string {candidates!r}")
    out = frozenset(check_lang(c) for c in candidates)
    if not out:
        raise ConfigError("candidates is empty: give at least one language code (or None for all)")
    return out


# ------------------------------------------------------------------------------------------- classifier
def words(text: str) -> Counter[str]:
    """Word counts of `text` as the classifier sees it: NFKC, casefolded, split at every non-letter."""
    return Counter(_NON_LETTER.sub(" ", unicodedata.normalize("NFKC", text).casefold()).split())


def ngrams(text: str) -> Counter[str]:
    """Character n-gram counts (orders `NGRAM_ORDERS`) of the words of `text`, each padded as " word ".

    N-grams do not cross words, so the counts follow from the word counts: a training text is cut into
    its distinct words once (a few thousand per language) instead of sliding over every character.
    """
    counts: Counter[str] = Counter()
    for word, k in words(text).items():
        padded = f" {word} "
        for n in NGRAM_ORDERS:
            for i in range(len(padded) - n + 1):
                counts[padded[i : i + n]] += k
    counts.pop(" ", None)
    return counts


@dataclass(frozen=True)
class NaiveBayes:
    """Multinomial naive Bayes over character n-grams: log P(n-gram | language) per vocabulary entry."""

    langs: tuple[str, ...]
    index: dict[str, int]
    log_prob: np.ndarray  # [vocabulary, language]

    @classmethod
    def train(cls, texts: dict[str, str], alpha: float = ALPHA, min_count: int = _MIN_COUNT) -> NaiveBayes:
        """Fit on one training text per language (counts per n-gram order, add-`alpha` smoothing)."""
        langs = tuple(sorted(texts))
        counts = [ngrams(texts[lang]) for lang in langs]
        vocab = sorted({g for c in counts for g, k in c.items() if k >= min_count})
        index = {g: i for i, g in enumerate(vocab)}
        table = np.zeros((len(vocab), len(langs)), dtype=np.float64)
        for j, c in enumerate(counts):
            for g, k in c.items():
                i = index.get(g)
                if i is not None:
                    table[i, j] = k
        order = np.array([len(g) for g in vocab])
        log_prob = np.empty_like(table)
        for n in NGRAM_ORDERS:
            rows = order == n
            totals = table[rows].sum(axis=0) + alpha * rows.sum()
            log_prob[rows] = np.log(table[rows] + alpha) - np.log(totals)
        return cls(langs, index, log_prob)

    def scores(self, text: str) -> dict[str, float]:
        """Log-likelihood of `text` under each language (uniform prior; unseen n-grams are ignored)."""
        counts = ngrams(text)
        rows, weights = [], []
        for g, k in counts.items():
            i = self.index.get(g)
            if i is not None:
                rows.append(i)
                weights.append(k)
        total = np.asarray(weights, dtype=np.float64) @ self.log_prob[rows] if rows else np.zeros(len(self.langs))
        return dict(zip(self.langs, total.tolist()))

    def predict(self, text: str, candidates: Iterable[str] | None = None) -> str:
        """Most likely language among `candidates` (all trained languages if None); ties go to the first code."""
        allowed = set(self.langs if candidates is None else candidates) & set(self.langs)
        scores = self.scores(text)
        best, best_score = UNDETERMINED, -math.inf
        for lang in self.langs:
            if lang in allowed and scores[lang] > best_score:
                best, best_score = lang, scores[lang]
        return best


def training_text(lang: str, chars: int = TRAIN_CHARS_PER_LANGUAGE) -> str:
    """About `chars` characters of Bible train-split text in `lang`, evenly spread over its versions and books."""
    from xlt.data.sources import bible

    versions = [v.id for v in bible.VERSION_INFO.values() if v.lang == lang]
    if not versions:
        raise ConfigError(f"no Bible text in {lang!r} to train the language identifier")
    parts = []
    for version in versions:
        verses = bible.verses(lang, "train", version)
        budget = chars // len(versions)
        step = max(1, sum(len(v.text) for v in verses) // budget)
        taken, total = [], 0
        for verse in verses[::step]:
            if total >= budget:
                break
            taken.append(verse.text)
            total += len(verse.text) + 1
        parts.append("\n".join(taken))
    return "\n".join(parts)


@functools.lru_cache(maxsize=None)
def model(group: str = "Latin") -> NaiveBayes:
    """The classifier of one script group ('Latin', 'Arabic', 'Cyrillic'), trained on first use and kept."""
    if group not in GROUPS:
        raise ConfigError(f"no classifier for script group {group!r}; groups: {', '.join(GROUPS)}")
    return NaiveBayes.train({lang: training_text(lang) for lang in GROUPS[group]})


# -------------------------------------------------------------------------------------------- interface
@functools.lru_cache(maxsize=65536)
def _script_of(ch: str) -> str | None:
    if not ch.isalpha():
        return None
    return next((name for name, pattern in _SCRIPT_PATTERNS if pattern.match(ch)), "Other")


def script_counts(text: str) -> Counter[str]:
    """Letters of `text` per script: the names in `_SCRIPT_NAMES`, plus 'Other' for any other script."""
    counts = Counter(map(_script_of, text))
    counts.pop(None, None)
    return counts


def identify(text: str, candidates: Iterable[str] | None = None) -> str:
    """Language code of `text` (one of `candidates`, all supported languages if None), or 'und'."""
    if not isinstance(text, str):
        raise ConfigError(f"identify() needs a string, got {type(text).__name__}")
    allowed = _check_candidates(candidates)
    text = unicodedata.normalize("NFKC", text)
    counts = script_counts(text)
    kana = counts["Hiragana"] + counts["Katakana"]
    counts["CJK"] = kana + counts["Han"]
    script, top = max(((s, counts[s]) for s in (*_SINGLE, "CJK", *GROUPS, "Other")), key=lambda item: item[1])
    if top == 0 or script == "Other":
        return UNDETERMINED  # no letters, or mostly letters of a script that no supported language uses
    if script in _SINGLE:
        return _pick((_SINGLE[script],), allowed)
    if script == "CJK":
        return _pick(("ja", "zh") if kana else ("zh", "ja"), allowed)
    if top < MIN_LETTERS:
        return UNDETERMINED
    options = [lang for lang in GROUPS[script] if lang in allowed]
    if len(options) <= 1:
        return _pick(tuple(options), allowed)
    if script in _MARKERS:
        first, first_letters, second, second_letters = _MARKERS[script]
        evidence = sum(ch in first_letters for ch in text) - sum(ch in second_letters for ch in text)
        if evidence:
            return first if evidence > 0 else second
    return model(script).predict(text, options)


def _pick(preference: tuple[str, ...], allowed: frozenset[str]) -> str:
    return next((lang for lang in preference if lang in allowed), UNDETERMINED)


def identify_all(texts: Sequence[str], candidates: Iterable[str] | None = None) -> list[str]:
    """`identify` of each text."""
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise ConfigError(f"texts must be a list of strings, got {type(texts).__name__}")
    allowed = None if candidates is None else _check_candidates(candidates)
    return [identify(text, allowed) for text in texts]


def language_counts(texts: Sequence[str], candidates: Iterable[str] | None = None) -> dict[str, int]:
    """How many texts are identified as each language (including 'und'), most frequent first."""
    return dict(Counter(identify_all(texts, candidates)).most_common())


def wrong_language_rate(
    texts: Sequence[str], expected_lang: str, candidates: Iterable[str] | None = None
) -> float:
    """Fraction of `texts` identified as a language other than `expected_lang`.

    The denominator is all texts; 'und' outputs (empty, numbers, one letter) count as not wrong, since
    nothing shows they are in another language (`language_counts` gives the full breakdown).
    """
    check_lang(expected_lang)
    if candidates is not None and expected_lang not in _check_candidates(candidates):
        raise ConfigError(f"expected language {expected_lang!r} is not among the candidates {sorted(candidates)}")
    found = identify_all(texts, candidates)
    if not found:
        raise ConfigError("wrong_language_rate() needs at least one text")
    return sum(lang not in (expected_lang, UNDETERMINED) for lang in found) / len(found)
