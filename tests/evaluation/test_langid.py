"""Tests of xlt.evaluation.langid: held-out Bible accuracy per language, short strings, wrong-language rate.

Held-out verses are the Bible test and validation chapters (never used in training): the test split alone
has fewer than 200 verses for bn (195) and tr (198), so both held-out splits are used, ~450 per language.
The short strings are written for this file (sentences and single names), not copied from any corpus.
"""

from __future__ import annotations

import functools
import math
import re
from collections import Counter

import pytest

from xlt.data.sources import bible
from xlt.errors import ConfigError
from xlt.evaluation import langid

MIN_ACCURACY = 0.95


@functools.lru_cache(maxsize=None)
def held_out(lang: str) -> tuple[str, ...]:
    return tuple(v.text for split in ("test", "validation") for v in bible.verses(lang, split))


@pytest.mark.parametrize("lang", bible.LANGUAGES)
def test_held_out_bible_accuracy_per_language(lang: str) -> None:
    texts = held_out(lang)
    assert len(texts) >= 200
    found = langid.identify_all(texts)
    accuracy = sum(code == lang for code in found) / len(texts)
    confusions = Counter(code for code in found if code != lang).most_common(3)
    print(f"langid {lang}: {accuracy:.4f} on {len(texts)} held-out verses; confusions {confusions}")
    assert accuracy >= MIN_ACCURACY, (lang, accuracy, confusions)


SENTENCES = {
    "en": "The capital of France is Paris.",
    "de": "Die Hauptstadt von Frankreich ist Paris.",
    "fr": "La capitale de la France est Paris.",
    "es": "La capital de Francia es París.",
    "pt": "A capital da França é Paris.",
    "it": "La capitale della Francia è Parigi.",
    "id": "Ibu kota Prancis adalah Paris.",
    "vi": "Thủ đô của Pháp là Paris.",
    "tr": "Fransa'nın başkenti Paris'tir.",
    "pl": "Stolicą Francji jest Paryż.",
    "ro": "Capitala Franței este Paris.",
    "sw": "Mji mkuu wa Ufaransa ni Paris.",
    "tl": "Ang kabisera ng Pransya ay Paris.",
    "ko": "프랑스의 수도는 Paris입니다.",
    "ja": "フランスの首都はパリです。",
    "zh": "法国的首都是巴黎。",
    "ru": "Столица Франции — Париж.",
    "uk": "Столиця Франції — Париж.",
    "ar": "عاصمة فرنسا هي باريس.",
    "fa": "پایتخت فرانسه پاریس است.",
    "hi": "फ़्रांस की राजधानी पेरिस है।",
    "bn": "ফ্রান্সের রাজধানী প্যারিস।",
    "th": "เมืองหลวงของฝรั่งเศสคือปารีส",
}


@pytest.mark.parametrize("lang", sorted(SENTENCES))
def test_short_sentences(lang: str) -> None:
    assert langid.identify(SENTENCES[lang]) == lang


def test_names_and_undetermined_strings() -> None:
    script_decides = {"대한민국": "ko", "日本です": "ja", "北京": "zh", "Україна": "uk", "Россия": "ru",
                      "ایران": "fa", "भारत": "hi", "বাংলাদেশ": "bn", "ประเทศไทย": "th", "Deutschland": "de",
                      "Đức": "vi", "Niemcy": "pl"}  # fmt: skip
    assert {text: langid.identify(text) for text in script_decides} == script_decides
    for text in ["", "   ", "123", "2024-01-01", "!!!", "A", "ok", "Ελλάδα", "שלום", "😀😀"]:
        assert langid.identify(text) == "und", text
    assert langid.identify("The answer is 정답.") == "en"  # the script with the most letters wins
    assert langid.identify("정답은 Paris입니다") == "ko"


def test_candidates_narrow_the_answer() -> None:
    assert langid.identify("北京", candidates=["ja", "en"]) == "ja"  # Han alone, and zh is not a candidate
    assert langid.identify("La capitale de la France", candidates=["en", "ko"]) == "en"
    assert langid.identify("La capitale de la France est Paris", candidates=["ko", "ja"]) == "und"
    assert langid.identify("Столица Франции", candidates=("uk",)) == "uk"
    assert langid.identify_all(["Hello there my friend", "안녕"], candidates={"en", "ko"}) == ["en", "ko"]


def test_ties_in_marker_letters_go_to_the_classifier() -> None:
    # No і/ї/є/ґ and no ы/э/ъ/ё: Ukrainian words decide.
    assert langid.identify("А якщо не послухають, то вирву народ цей") == "uk"
    assert langid.identify("Я люблю читать книги по вечерам") == "ru"
    assert langid.identify("در حال برخاسته، به خانه خود رفت") == "fa"  # no Persian-only letter


def test_naive_bayes_matches_a_plain_reference() -> None:
    texts = {"aa": "abba abab baba abba", "bb": "cdcd dcdc abcd cddc", "cc": "xyz abc xyz zyx"}
    model = langid.NaiveBayes.train(texts, alpha=0.5, min_count=1)

    def grams(text: str) -> Counter[str]:  # written out independently of langid.ngrams
        out: Counter[str] = Counter()
        for word in re.findall("[a-z]+", text.lower()):
            padded = f" {word} "
            out.update(padded[i : i + n] for n in (1, 2, 3, 4) for i in range(len(padded) - n + 1))
        del out[" "]
        return out

    def reference(text: str) -> dict[str, float]:
        counts = {lang: grams(t) for lang, t in texts.items()}
        vocab = {g for c in counts.values() for g in c}
        out = {}
        for lang, c in counts.items():
            score = 0.0
            for g, k in grams(text).items():
                if g in vocab:
                    order_vocab = sum(1 for v in vocab if len(v) == len(g))
                    order_total = sum(n for h, n in c.items() if len(h) == len(g))
                    score += k * math.log((c[g] + 0.5) / (order_total + 0.5 * order_vocab))
            out[lang] = score
        return out

    for query in ["abba", "dcd", "zyx abc", "qqq"]:
        ours, theirs = model.scores(query), reference(query)
        assert ours == pytest.approx(theirs, abs=1e-9)
    assert model.predict("abab") == "aa" and model.predict("cdcd") == "bb" and model.predict("xyz") == "cc"
    assert model.predict("xyz", candidates=["aa", "bb"]) in {"aa", "bb"}


def test_model_is_cached_and_deterministic() -> None:
    assert langid.model() is langid.model()
    texts = {lang: langid.training_text(lang, 30_000) for lang in ("ro", "it")}
    assert texts == {lang: langid.training_text(lang, 30_000) for lang in ("ro", "it")}
    first, again = langid.NaiveBayes.train(texts), langid.NaiveBayes.train(dict(reversed(texts.items())))
    assert again.index == first.index and (again.log_prob == first.log_prob).all()


def test_wrong_language_rate_on_mixed_lists() -> None:
    texts = [SENTENCES["ko"], "서울입니다", "네, 맞습니다.", SENTENCES["en"], SENTENCES["ja"], "42", "", SENTENCES["zh"]]
    # ko x3, en, ja, zh are wrong (3), "42" and "" are undetermined (not wrong): 3 / 8.
    assert langid.wrong_language_rate(texts, "ko") == pytest.approx(3 / 8)
    assert langid.language_counts(texts) == {"ko": 3, "und": 2, "en": 1, "ja": 1, "zh": 1}
    assert langid.wrong_language_rate([SENTENCES["en"]] * 3, "en") == 0.0
    assert langid.wrong_language_rate(texts, "ko", candidates=["ko", "en"]) == pytest.approx(1 / 8)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: langid.wrong_language_rate(["a"], "kr"), "unknown language code 'kr'"),
        (lambda: langid.wrong_language_rate([], "ko"), "at least one text"),
        (lambda: langid.wrong_language_rate("abc", "en"), "list of strings"),
        (lambda: langid.wrong_language_rate(["a"], "en", candidates=["ko"]), "not among the candidates"),
        (lambda: langid.identify("hello", candidates="en"), "not the string 'en'"),
        (lambda: langid.identify("hello", candidates=[]), "candidates is empty"),
        (lambda: langid.identify("hello", candidates=["english"]), "unknown language code"),
        (lambda: langid.identify(None), "needs a string"),
        (lambda: langid.model("Greek"), "no classifier for script group"),
    ],
)
def test_bad_input_raises_config_error(call, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        call()
