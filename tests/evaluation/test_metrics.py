"""Tests of xlt.evaluation.metrics against reference implementations (rouge_score, sacrebleu, a plain LCS table).

English ROUGE-L pairs are real: the same held-out verse in the King James Version (reference) and the World
English Bible (prediction), plus perturbed copies (words dropped, swapped, shuffled); both tokenizers agree
on this ASCII text, so the scores must be equal. Bible text is read from the installed package at run time.
"""

from __future__ import annotations

import functools
import random

import pytest
import sacrebleu
from rouge_score import rouge_scorer
from rouge_score import tokenize as rouge_tokenize

from xlt.data.sources import bible
from xlt.errors import ConfigError
from xlt.evaluation import metrics


def reference_lcs(a: list[str], b: list[str]) -> int:
    """Textbook O(len(a) * len(b)) dynamic programme."""
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def perturb(text: str, rng: random.Random) -> str:
    words = text.split()
    kind = rng.randrange(4)
    if kind == 0:  # drop about a third of the words
        words = [w for w in words if rng.random() > 0.3] or words[:1]
    elif kind == 1 and len(words) > 3:  # swap two words
        i, j = rng.sample(range(len(words)), 2)
        words[i], words[j] = words[j], words[i]
    elif kind == 2:  # shuffle
        rng.shuffle(words)
    else:  # repeat a span and add a word
        words = words[: len(words) // 2] * 2 + ["indeed"]
    return " ".join(words)


@functools.lru_cache(maxsize=1)
def english_pairs() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(predictions, references): WEB verses and perturbed KJV verses against KJV references."""
    kjv = {v.key: v.text for v in bible.verses("en", "test", "k")}
    web = {v.key: v.text for v in bible.verses("en", "test", "4")}
    keys = sorted(set(kjv) & set(web))[:150]
    rng = random.Random(0)
    preds = [web[k] for k in keys] + [perturb(kjv[k], rng) for k in keys]
    refs = [kjv[k] for k in keys] * 2
    return tuple(preds), tuple(refs)


# ------------------------------------------------------------------------------------------------ ROUGE-L
def test_lcs_matches_dynamic_programme_on_random_sequences() -> None:
    rng = random.Random(1)
    for _ in range(300):
        alphabet = "ab" if rng.random() < 0.3 else "abcdefgh"
        a = [rng.choice(alphabet) for _ in range(rng.randrange(0, 90))]
        b = [rng.choice(alphabet) for _ in range(rng.randrange(0, 90))]
        assert metrics.lcs_length(a, b) == reference_lcs(a, b) == metrics.lcs_length(b, a)
    long_a = [rng.choice("abcd") for _ in range(700)]  # far wider than a machine word
    long_b = [rng.choice("abcd") for _ in range(500)]
    assert metrics.lcs_length(long_a, long_b) == reference_lcs(long_a, long_b)
    assert metrics.lcs_length("ABCBDAB", "BDCABA") == 4  # the CLRS example
    assert metrics.lcs_length([], ["a"]) == 0 and metrics.lcs_length(["a"] * 5, ["a"] * 3) == 3


def test_english_rouge_l_equals_rouge_score() -> None:
    preds, refs = english_pairs()
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    ours = metrics.rouge_l_scores(preds, refs, "en")
    theirs = [scorer.score(ref, pred)["rougeL"].fmeasure for pred, ref in zip(preds, refs)]
    assert len(ours) == 300 and len(set(round(x, 6) for x in theirs)) > 100  # varied, not all 0 or 1
    for pred, ref, a, b in zip(preds, refs, ours, theirs):
        assert metrics.tokenize(pred, "en") == rouge_tokenize.tokenize(pred, None)
        assert a == pytest.approx(b, abs=1e-9), (pred, ref)
    assert metrics.rouge_l(preds, refs, "en") == pytest.approx(sum(theirs) / len(theirs), abs=1e-9)


def test_multi_reference_rouge_l_takes_the_best_reference_like_score_multi() -> None:
    preds, refs = english_pairs()
    scorer = rouge_scorer.RougeScorer(["rougeL"])
    multi = [[refs[i], preds[(i + 7) % len(preds)]] for i in range(40)]
    ours = metrics.rouge_l_scores(preds[:40], multi, "en")
    for pred, alts, score in zip(preds, multi, ours):
        assert score == pytest.approx(scorer.score_multi(alts, pred)["rougeL"].fmeasure, abs=1e-9)


def test_chinese_rouge_l_is_character_level_with_latin_runs_as_words() -> None:
    assert metrics.tokenize("我爱GPT4和２０２４年的北京。", "zh") == ["我", "爱", "gpt4", "和", "2024", "年", "的", "北", "京"]
    # pred 我喜欢北京 (5), ref 我爱北京天安门 (7): LCS 我北京 = 3; P = 3/5, R = 3/7, F = 2PR / (P + R) = 1/2.
    assert metrics.rouge_l(["我喜欢北京"], ["我爱北京天安门"], "zh") == pytest.approx(0.5, abs=1e-12)
    # Full-width letters and spacing do not matter; "GPT" is one token: 我 gpt 好 vs 我 用 gpt, LCS 2 of 3 each.
    assert metrics.rouge_l(["我 ＧＰＴ 好"], ["我用GPT"], "zh") == pytest.approx(2 / 3, abs=1e-12)
    assert metrics.rouge_l(["日本の首都は東京です"], ["東京"], "ja") == pytest.approx(2 * (2 / 10) * 1 / (2 / 10 + 1))


def test_korean_rouge_l_is_syllable_level_by_default() -> None:
    # 학교에 갔다 / 학교는 갔다: syllables 학 교 에 갔 다 vs 학 교 는 갔 다, LCS 4 of 5 -> F = 0.8;
    # at word level the two eojeol share only 갔다 (F = 0.5), and the stem 학교 gets no credit.
    assert metrics.tokenize("학교에 갔다.", "ko") == ["학", "교", "에", "갔", "다"]
    assert metrics.rouge_l(["학교에 갔다"], ["학교는 갔다"], "ko") == pytest.approx(0.8, abs=1e-12)
    assert metrics.rouge_l(["학교에 갔다"], ["학교는 갔다"], "ko", level="word") == pytest.approx(0.5, abs=1e-12)
    # Spacing errors (띄어쓰기) cost nothing at syllable level: P = R = 1.
    assert metrics.rouge_l(["나는 학교에갔다"], ["나는 학교에 갔다"], "ko") == 1.0
    # 서울은 한국의 수도 (8 syllables) vs 한국의 수도는 서울 (8): LCS 한국의수도 = 5 -> F = 5/8.
    assert metrics.rouge_l(["서울은 한국의 수도"], ["한국의 수도는 서울"], "ko") == pytest.approx(5 / 8, abs=1e-12)


def test_word_tokenizer_keeps_indic_vowel_signs_and_persian_zwnj() -> None:
    assert metrics.tokenize("हिंदी भाषा में।", "hi") == ["हिंदी", "भाषा", "में"]
    assert metrics.tokenize("می\u200cخواهم بروم.", "fa") == ["می\u200cخواهم", "بروم"]
    assert metrics.tokenize("Привет, Мир!", "ru") == ["привет", "мир"]
    assert metrics.rouge_l(["हिंदी भाषा"], ["हिंदी भाषा में"], "hi") == pytest.approx(0.8)
    thai = metrics.tokenize("สวัสดีครับ", "th")  # consonants carry their vowel and tone marks
    assert "".join(thai) == "สวัสดีครับ" and thai[1] == "วั" and len(thai) == 7


def test_rouge_l_empty_sides_score_zero_like_rouge_score() -> None:
    assert metrics.rouge_l_scores(["", "abc", "!!!"], ["abc", "", "abc"], "en") == [0.0, 0.0, 0.0]
    assert rouge_scorer.RougeScorer(["rougeL"]).score("abc", "")["rougeL"].fmeasure == 0.0


def test_morpheme_level_needs_kiwipiepy_and_korean() -> None:
    with pytest.raises(ConfigError, match="only available for ko"):
        metrics.tokenize("hello", "en", level="morpheme")
    try:
        import kiwipiepy  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="pip install kiwipiepy"):
            metrics.rouge_l(["학교에 갔다"], ["학교는 갔다"], "ko", level="morpheme")
    else:
        assert metrics.tokenize("학교에 갔다.", "ko", level="morpheme")[:2] == ["학교", "에"]


# ------------------------------------------------------------------------------------------- chrF / BLEU
def test_chrf_equals_sacrebleu_sentence_and_corpus() -> None:
    preds, refs = english_pairs()
    assert metrics.chrf(preds, refs) == pytest.approx(sacrebleu.corpus_chrf(list(preds), [list(refs)]).score, abs=1e-9)
    chrf_pp = sacrebleu.corpus_chrf(list(preds), [list(refs)], word_order=2).score
    assert metrics.chrf(preds, refs, word_order=2) == pytest.approx(chrf_pp, abs=1e-9)
    for pred, ref, score in zip(preds[:60], refs, metrics.sentence_chrf(preds[:60], refs[:60])):
        assert score == pytest.approx(sacrebleu.sentence_chrf(pred, [ref]).score, abs=1e-9)
    zh = [v.text for v in bible.verses("zh", "test")[:30]]
    assert metrics.chrf(zh[1:] + zh[:1], zh) == pytest.approx(sacrebleu.corpus_chrf(zh[1:] + zh[:1], [zh]).score)


def test_chrf_with_a_variable_number_of_references() -> None:
    preds, refs = english_pairs()
    multi = [[refs[i]] if i % 2 else [refs[i], preds[i + 1]] for i in range(20)]
    streams = [[m[0] for m in multi], [m[1] if len(m) > 1 else None for m in multi]]
    assert metrics.chrf(preds[:20], multi) == pytest.approx(sacrebleu.corpus_chrf(list(preds[:20]), streams).score)
    for pred, alts, score in zip(preds, multi, metrics.sentence_chrf(preds[:20], multi)):
        assert score == pytest.approx(sacrebleu.sentence_chrf(pred, alts).score, abs=1e-9)


@pytest.mark.parametrize(
    ("lang", "tokenizer"), [("en", "13a"), ("de", "13a"), ("zh", "zh"), ("ja", "char"), ("ko", "char"), ("hi", "intl")]
)
def test_bleu_equals_sacrebleu_with_the_language_tokenizer(lang: str, tokenizer: str) -> None:
    assert metrics.bleu_tokenizer(lang) == tokenizer
    refs = [v.text for v in bible.verses(lang, "test")[:40]]
    preds = [" ".join(r.split()[: max(1, len(r.split()) - 2)]) if " " in r else r[:-3] for r in refs]
    expected = sacrebleu.corpus_bleu(preds, [refs], tokenize=tokenizer).score
    assert 0 < metrics.bleu(preds, refs, lang) == pytest.approx(expected, abs=1e-9)
    sentence = metrics.sentence_bleu(preds[:5], refs[:5], lang)
    assert sentence == pytest.approx([sacrebleu.sentence_bleu(p, [r], tokenize=tokenizer).score
                                      for p, r in zip(preds, refs[:5])])  # fmt: skip


def test_bleu_tokenizer_choice_and_mecab_errors() -> None:
    assert metrics.bleu_tokenizer("th") == "char" and metrics.bleu_tokenizer("fa") == "intl"
    assert metrics.bleu(["a b c d"], ["a b c d"], "en", tokenize="char") == pytest.approx(100.0)
    with pytest.raises(ConfigError, match="unknown BLEU tokenizer 'flores200'"):
        metrics.bleu(["a"], ["a"], "en", tokenize="flores200")
    try:
        import MeCab  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="pip install mecab-python3 ipadic"):
            metrics.bleu(["東京"], ["東京"], "ja", tokenize="ja-mecab")


# ---------------------------------------------------------------------------------- accuracy / exact match
def test_accuracy() -> None:
    import numpy as np

    assert metrics.accuracy([0, 1, 2, 3], [0, 1, 1, 0]) == 0.5
    assert metrics.accuracy(np.array([1, 1]), [np.int64(1), 1]) == 1.0
    with pytest.raises(ConfigError, match="differ in length: 2 vs 3"):
        metrics.accuracy([0, 1], [0, 1, 2])
    with pytest.raises(ConfigError, match="empty"):
        metrics.accuracy([], [])
    with pytest.raises(ConfigError, match="integers"):
        metrics.accuracy([0.0], [0])


def test_exact_match_normalisation() -> None:
    assert metrics.normalize_answer("  Hello,   WORLD! ", "en") == "hello world"
    assert metrics.normalize_answer("ＡＢＣ，１２３。", "zh") == "abc123"  # full-width forms, CJK punctuation
    assert metrics.normalize_answer("東京 タワー「ｶﾀｶﾅ」", "ja") == "東京タワーカタカナ"  # half-width kana
    assert metrics.normalize_answer("Straße", "de") == "strasse"  # casefold, not lower
    assert metrics.normalize_answer("서울 입니다.", "ko") == "서울 입니다"  # ko keeps its word spaces
    assert metrics.normalize_answer("$5", "en") != metrics.normalize_answer("5", "en")  # symbols (S*) stay
    assert metrics.normalize_answer("5%", "en") == "5"  # "%" is punctuation (Po)
    preds = ["Paris.", "paris", "Lyon", "北京", "ＴＯＫＹＯ"]
    refs = ["paris", ["Rome", "PARIS!"], "Paris", "北 京。", ["tokyo"]]
    assert metrics.exact_match(preds[:3], refs[:3], "fr") == pytest.approx(2 / 3)
    assert metrics.exact_match(preds[3:], refs[3:], "zh") == 1.0
    assert metrics.exact_match(["北京"], ["北 京"], "en") == 0.0  # a space separates words in en


# ------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "call",
    [
        lambda: metrics.rouge_l(["a"], ["a"], "kr"),
        lambda: metrics.exact_match(["a"], ["a"], "jp"),
        lambda: metrics.bleu(["a"], ["a"], "english"),
        lambda: metrics.bleu_tokenizer("xx"),
    ],
)
def test_unknown_language_is_a_one_line_config_error(call) -> None:
    with pytest.raises(ConfigError) as err:
        call()
    assert "unknown language code" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: metrics.rouge_l(["a", "b"], ["a"], "en"), "differ in length: 2 predictions, 1 references"),
        (lambda: metrics.chrf([], []), "preds is empty"),
        (lambda: metrics.bleu(["a"], [[]], "en"), r"refs\[0\] must be a string or a non-empty list"),
        (lambda: metrics.exact_match(["a"], [None], "en"), r"refs\[0\]"),
        (lambda: metrics.rouge_l([None], ["a"], "en"), r"preds\[0\] must be a string"),
        (lambda: metrics.rouge_l("abc", ["a", "b", "c"], "en"), "preds must be a list"),
        (lambda: metrics.chrf(["a"], "a"), "refs must be a list"),
        (lambda: metrics.rouge_l(["a"], ["a"], "en", level="bpe"), "unknown tokenization level 'bpe'"),
        (lambda: metrics.chrf(["a"], ["a"], word_order=3), "word_order"),
    ],
)
def test_bad_input_raises_config_error(call, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        call()
