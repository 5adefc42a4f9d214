"""Benchmark metrics against hand-computed values: SQuAD EM/F1 (TyDiQA), MGSM's final number, PMI and
per-character rank classification, Korean morpheme ROUGE-L, the line-level language confusion rate; and
the existing evaluator's record builder consuming benchmark examples."""

import math

import pytest

from xlt import benchmarks
from xlt.errors import ConfigError
from xlt.evaluation import calibration, confusion, metrics
from xlt.instruct import meta


# -------------------------------------------------------------------------------------- TyDiQA / SQuAD
def test_squad_normalization_is_the_official_one():
    assert metrics.squad_normalize("  The U.S.A.,  an   Apple! ") == "usa apple"
    assert metrics.squad_normalize("Theater") == "theater"  # "the" only as a word
    assert metrics.squad_normalize("서울특별시.") == "서울특별시"


def test_squad_em_and_f1_by_hand():
    preds = ["the Himalayas", "In the Himalayas mountains", "Nepal", "서울특별시."]
    refs = [["in the Himalayas", "the Himalayas"], ["in the Himalayas", "the Himalayas"], ["in the Himalayas"],
            ["서울특별시", "서울특별시"]]
    em, f1 = metrics.squad_scores(preds, refs)
    # 2: tokens [in, himalayas, mountains] vs [in, himalayas]: P=2/3, R=1 -> F1=0.8 (vs [himalayas]: 0.5)
    assert em == [1.0, 0.0, 0.0, 1.0]
    assert f1 == pytest.approx([1.0, 0.8, 0.0, 1.0])
    assert metrics.squad_exact_match(preds, refs) == pytest.approx(0.5)
    assert metrics.squad_f1(preds, refs) == pytest.approx(0.7)
    # partial overlap: [the, red, car] -> [red, car] vs [blue, car]: 1 shared, P=1/2, R=1/2
    assert metrics.squad_f1(["the red car"], ["a blue car"]) == pytest.approx(0.5)


def test_tydiqa_metric_names_resolve_to_functions():
    fns = benchmarks.metric_functions()
    assert set(benchmarks.get("tydiqa").metrics) | set(benchmarks.get("mgsm").metrics) <= set(fns)
    assert fns["squad_f1"](["In the Himalayas mountains"], [["in the Himalayas"]], "en") == pytest.approx(0.8)


# --------------------------------------------------------------------------------------------- MGSM
@pytest.mark.parametrize("text,lang,number", [
    ("She makes 9 * 2 = $18 every day. The answer is 18.", None, 18.0),
    ("The answer is 1,234.", None, 1234.0),
    ("答えは１８ドルです。", None, 18.0),
    ("Total: $18.00", None, 18.0),
    ("Es sind 2,5 kg.", "de", 2.5),
    ("Sie zahlt 1.000 Euro.", "de", 1000.0),
    ("It costs 1.000 dollars.", "en", 1.0),
    ("La réponse est 12\u202f345.", "fr", 12345.0),
    ("It fell to -5 degrees", None, -5.0),
    ("Version 1.2.3 was released in 2021", None, 2021.0),
    ("I do not know.", None, None),
])
def test_final_number_extraction(text, lang, number):
    assert metrics.extract_final_number(text, lang) == number


def test_number_match_by_hand():
    preds = ["So she makes $18 every day.", "The answer is 18.5", "答えは１８ドルです。", "I don't know"]
    assert metrics.number_match_scores(preds, ["18"] * 4) == [1.0, 0.0, 1.0, 0.0]
    assert metrics.number_match(preds, ["18"] * 4) == 0.5
    with pytest.raises(ConfigError, match="must be numbers"):
        metrics.number_match(["18"], ["eighteen"])


# ---------------------------------------------------------------------------------- rank classification
def test_rankings_by_hand():
    # option 0 "No": 2 tokens, 2 chars, log p = -4; option 1 "Not at all": 2 tokens, 10 chars, log p = -6;
    # content-free log p: -1 and -5.
    scores = calibration.ranking_scores([-4.0, -6.0], [2, 2], ["No", "Not at all"], null_loglik=[-1.0, -5.0])
    assert scores["sum"].tolist() == [-4.0, -6.0]
    assert scores["per_token"].tolist() == [-2.0, -3.0]
    assert scores["per_char"].tolist() == pytest.approx([-2.0, -0.6])
    assert scores["pmi"].tolist() == [-3.0, -1.0]
    assert calibration.rankings([-4.0, -6.0], [2, 2], ["No", "Not at all"], [-1.0, -5.0]) == \
        {"sum": 0, "per_token": 0, "per_char": 1, "pmi": 1}
    assert "pmi" not in calibration.rankings([-4.0, -6.0], [2, 2], ["No", "Not at all"])
    assert set(calibration.METRIC_OF_RANKING.values()) == set(benchmarks.CHOICE_METRICS)
    with pytest.raises(ConfigError, match="3 entries for 2 options"):
        calibration.ranking_scores([-1.0, -2.0], [1, 1, 1], ["a", "b"])


def test_choose_scores_each_content_free_prompt_once():
    examples = [{"id": str(i), "inputs": f"Premise {i}. Yes or no?", "null_inputs": "N/A. Yes or no?",
                 "options": ["Yes", "No"]} for i in range(3)]
    calls = []
    # "Yes" is favoured by the template alone: log p(Yes | N/A) = -0.1, log p(No | N/A) = -2.3
    table = {"N/A. Yes or no?": [-0.1, -2.3], "Premise 0. Yes or no?": [-0.5, -1.5],
             "Premise 1. Yes or no?": [-0.5, -1.2], "Premise 2. Yes or no?": [-0.2, -3.0]}

    def score(prompts, options):
        calls.append(list(prompts))
        return [(table[p], [1, 1]) for p in prompts]

    picks = calibration.choose(examples, score)
    assert calls == [[e["inputs"] for e in examples], ["N/A. Yes or no?"]]
    assert [p["sum"] for p in picks] == [0, 0, 0]
    # PMI: ex 0: -0.4 vs 0.8 -> No; ex 1: -0.4 vs 1.1 -> No; ex 2: -0.1 vs -0.7 -> Yes
    assert [p["pmi"] for p in picks] == [1, 1, 0]
    with pytest.raises(ConfigError, match="needs null_inputs"):
        calibration.choose([{"id": "x", "inputs": "p", "options": ["a", "b"]}], score)


# ------------------------------------------------------------------------------------ Korean ROUGE-L
def test_korean_morphemes_drop_punctuation():
    assert metrics.korean_morphemes("학교에 갔습니다.", "mecab") == ["학교", "에", "갔", "습니다"]
    assert metrics.korean_morphemes("학교에 갔습니다.", "kiwi") == ["학교", "에", "가", "었", "습니다"]
    assert metrics.korean_analyzer() == "mecab"
    with pytest.raises(ConfigError, match="unknown Korean analyser"):
        metrics.korean_morphemes("학교", "okt")


def test_korean_rouge_l_by_hand():
    # pred 나/는/밥/을/먹/었/다 (7) vs ref 밥/을/먹/었/어요 (5): LCS 4 -> P 4/7, R 4/5, F 2/3 (both analysers);
    # syllables 나는밥을먹었다 (7) vs 밥을먹었어요 (6): LCS 4 -> F 8/13.
    pred, ref = "나는 밥을 먹었다", "밥을 먹었어요"
    assert metrics.rouge_l_korean([pred], [ref]) == pytest.approx(2 / 3)
    assert metrics.rouge_l_korean([pred], [ref], analyzer="kiwi") == pytest.approx(2 / 3)
    assert metrics.rouge_l_korean([pred], [ref], unit="char") == pytest.approx(8 / 13)
    # pred 학생/이/도서관/에/갔/다 (6) vs ref 학생/들/이/도서관/에서/책/을/읽/는다 (9): LCS 학생 이 도서관 = 3
    # -> F 2/5; Kiwi splits 갔 into 가/었 (7 morphemes): F 3/8; syllables (9 vs 14): LCS 학생이도서관에다 = 8
    # -> F 16/23: the syllable level gives a different verb most of the credit.
    pred, ref = "학생이 도서관에 갔다", "학생들이 도서관에서 책을 읽는다."
    assert metrics.rouge_l_korean([pred], [ref], analyzer="mecab") == pytest.approx(2 / 5)
    assert metrics.rouge_l_korean([pred], [ref], analyzer="kiwi") == pytest.approx(3 / 8)
    assert metrics.rouge_l_korean([pred], [ref], unit="char") == pytest.approx(16 / 23)
    # best reference per example, mean over examples
    assert metrics.rouge_l_korean(["나는 밥을 먹었다", pred], [[ref, "밥을 먹었어요"], ref]) == \
        pytest.approx((2 / 3 + 2 / 5) / 2)
    with pytest.raises(ConfigError, match="unit"):
        metrics.rouge_l_korean([pred], [ref], unit="word")


# ---------------------------------------------------------------------------------- language confusion
def test_lid176_identifies_lines_offline():
    assert confusion.identify_line("오늘은 날씨가 정말 좋아서 공원에 산책을 갔습니다")[0] == "ko"
    assert confusion.identify_line("The weather was really nice so I went for a walk")[0] == "en"
    assert confusion.identify_line("Der Hund läuft schnell über die Straße")[0] == "de"


def test_line_pass_rate_by_hand():
    responses = [
        "오늘은 날씨가 정말 좋아서 공원에 산책을 갔습니다.\nThe weather was really nice, so I went for a walk.",  # fails
        "오늘은 날씨가 정말 좋아서 공원에 산책을 갔습니다.",  # passes
        "네",  # no line of 5 tokens: skipped
        "저는 학생입니다. 그리고 매일 아침 학교에 갑니다.\nQ: What do you do every morning before school starts?",
    ]  # the last passes: what follows "\nQ:" is cut
    checks = [confusion.check_response(r, "ko") for r in responses]
    assert [c.languages for c in checks] == [("ko", "en"), ("ko",), (), ("ko",)]
    result = confusion.language_confusion(responses, "ko", whole_answer=False)
    assert result == pytest.approx({"line_pass_rate": 2 / 3, "line_accuracy": (0.5 + 1 + 1) / 3, "skipped": 1 / 4})
    assert confusion.line_pass_rate(responses, "ko") == pytest.approx(2 / 3)


def test_line_level_and_whole_answer_rates_side_by_side():
    # A Korean answer with one English line is Korean as a whole (more Hangul than Latin letters) but fails
    # the line-level check. A Japanese answer is wrong as a whole; line-level, its one line has no spaces,
    # so it is one whitespace token for a Korean-expected response and is skipped, as in the benchmark.
    mixed = "오늘은 날씨가 정말 좋아서 공원에 오랫동안 산책을 하고 왔습니다.\nI went for a long walk"
    japanese = "今日は天気がとてもいいので、公園まで散歩に行きました"
    result = confusion.language_confusion([mixed, japanese, "오늘은 날씨가 정말 좋아서 공원에 산책을 갔습니다."], "ko")
    assert result["line_pass_rate"] == pytest.approx(1 / 2)
    assert result["skipped"] == pytest.approx(1 / 3)
    assert result["wrong_language"] == pytest.approx(1 / 3)  # only the Japanese answer, as a whole


def test_low_confidence_lines_fail_and_short_lines_are_skipped(monkeypatch):
    seen = []

    def fake(line):
        seen.append(line)
        return ("ko", 0.2) if "uncertain" in line else ("ko", 0.9)

    monkeypatch.setattr(confusion, "identify_line", fake)
    texts = ["one two three four five", "one two three four uncertain", "too short", "你好你好你好"]
    assert confusion.line_pass_rate(texts[:3], "ko") == pytest.approx(1 / 2)  # "unknown" (p <= 0.3) fails
    assert "too short" not in seen
    assert confusion.check_response(texts[3], "zh").languages == ("ko",)  # 6 characters = 6 zh tokens
    assert confusion.check_response("你好", "zh").skipped
    assert confusion.language_confusion(["네"], "ko", whole_answer=False) == \
        {"line_pass_rate": 1.0, "line_accuracy": 1.0, "skipped": 1.0}


# ------------------------------------------------------------------------------- evaluator compatibility
def test_the_evaluators_record_builder_consumes_benchmark_examples(bench_dirs):
    from xlt.evaluation import evaluate

    b = benchmarks.get("xnli", source=str(bench_dirs["xnli"]))
    examples = evaluate._cap_items(b.examples("en"), 2)
    assert len(examples) == 6
    # One {ranking: chosen option} per example: a perfect model by the summed score, option 0 by the others.
    predictions = [{"sum": ex["answer"], "per_token": 0, "per_char": 0, "pmi": 0} for ex in examples]
    records = evaluate._records_for(examples, predictions, meta.CHOICE, b, "en")
    by = {(r["template_id"], r["metric"]): r["value"] for r in records}
    assert by[("nli.en.0", "accuracy")] == 1.0 and by[("nli.en.0", "accuracy_norm")] == 0.5
    assert by[("nli.en.0", "accuracy_char")] == 0.5 and by[("nli.en.0", "accuracy_pmi")] == 0.5
    assert {r["task"] for r in records} == {"xnli"} and {r["cluster"] for r in records} == {"nli"}
    gen = benchmarks.get("tydiqa", source=str(bench_dirs["tydiqa"]))
    gex = gen.examples("en")
    values = {m: f(["the Himalayas"] * len(gex), [e["references"] for e in gex], "en")
              for m, f in benchmarks.metric_functions().items() if m in gen.metrics}
    assert values == {"squad_exact_match": 1.0, "squad_f1": 1.0}
    assert math.isfinite(values["squad_f1"])


def test_pmi_choices_with_a_real_model_match_an_independent_computation(bench_dirs):
    """``calibration.choose`` over ``score_options`` (shared prompt cache) equals argmax of
    log p(option | prompt) - log p(option | null prompt) from the one-forward-per-pair reference."""
    import numpy as np

    from random_params import random_params
    from xlt.evaluation import scoring
    from xlt.models import ModelConfig, build_model

    cfg = ModelConfig(vocab_size=96, d_model=32, num_layers=2, d_ff=64, max_len=24, layout="gpt")
    model = build_model(cfg)
    params = random_params(cfg, model, seed=3)

    def encode(text, keep):  # a toy byte vocabulary that fits the tiny model (the text's first bytes)
        return [2 + b % 94 for b in text.encode("utf-8")][:keep]

    def score(prompts, options):
        out = scoring.score_options(model, params, [encode(p, 16) for p in prompts],
                                    [[encode(o, 6) for o in opts] for opts in options], batch_size=4)
        return [(s.loglik, s.num_tokens) for s in out]

    examples = (benchmarks.get("xcopa", source=str(bench_dirs["xcopa"])).examples("zh")
                + benchmarks.get("pawsx", source=str(bench_dirs["pawsx"])).examples("ko"))
    picks = calibration.choose(examples, score)
    assert any(p["pmi"] != p["sum"] for p in picks)  # the calibration changes some choices
    for ex, pick in zip(examples, picks):
        opts = [[encode(o, 6) for o in ex["options"]]]
        cond = scoring.score_options_naive(model, params, [encode(ex["inputs"], 16)], opts)[0]
        null = scoring.score_options_naive(model, params, [encode(ex["null_inputs"], 16)], opts)[0]
        np.testing.assert_allclose(cond.loglik, score([ex["inputs"]], [ex["options"]])[0][0], rtol=1e-4, atol=1e-4)
        assert pick["pmi"] == int(np.argmax(cond.loglik - null.loglik))
        assert pick["sum"] == int(np.argmax(cond.loglik))
        assert pick["per_char"] == int(np.argmax(cond.loglik / np.array([len(o) for o in ex["options"]])))
        assert pick["per_token"] == int(np.argmax(cond.loglik / cond.num_tokens))
