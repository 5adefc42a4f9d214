"""Benchmark templates: coverage of the native languages, slot contracts, and no leak of the answer."""

import pytest
import regex

import bench_fixtures as fx
from xlt import benchmarks
from xlt.benchmarks import templates as btpl
from xlt.errors import ConfigError

NATIVE = ("en", "ko", "ja", "zh", "de", "fr", "es", "ru")
SCRIPT = {"ko": r"\p{Hangul}", "ja": r"[\p{Hiragana}\p{Katakana}\p{Han}]", "zh": r"\p{Han}", "ru": r"\p{Cyrillic}"}
# benchmark -> (fixture sets, split, label field, every label value as published)
LABELS = {
    "xnli": (fx.XNLI, "test", "label", [0, 1, 2]),
    "xcopa": (fx.XCOPA, "test", "label", [0, 1]),
    "pawsx": (fx.PAWSX, "test", "label", [0, 1]),
    "xwinograd": (fx.XWINOGRAD, "test", "answer", ["1", "2"]),
    "xstorycloze": (fx.XSTORYCLOZE, "eval", "answer_right_ending", [1, 2]),
    "belebele": (fx.BELEBELE, "test", "correct_answer_num", ["1", "2", "3", "4"]),
    "kobest_boolq": ({"boolq": fx.KOBEST["boolq"]}, "test", "label", [0, 1]),
    "kobest_copa": ({"copa": fx.KOBEST["copa"]}, "test", "label", [0, 1]),
    "kobest_hellaswag": ({"hellaswag": fx.KOBEST["hellaswag"]}, "test", "label", [0, 1, 2, 3]),
    "kobest_sentineg": ({"sentineg": fx.KOBEST["sentineg"]}, "test", "label", [0, 1]),
    "kobest_wic": ({"wic": fx.KOBEST["wic"]}, "test", "label", [0, 1]),
}


@pytest.mark.parametrize("name", benchmarks.names(include_builtin=False))
def test_native_templates_for_every_native_language_the_benchmark_has(name):
    b = benchmarks.get(name)
    for lang in set(NATIVE) & set(b.languages) | {"en"}:
        found = b.templates(lang)
        assert len(found) >= 3, (name, lang)
        assert len({t.text for t in found}) == len(found)
        if lang in SCRIPT:  # written in the language, not an English copy
            assert all(regex.search(SCRIPT[lang], t.text) for t in found), (name, lang)


@pytest.mark.parametrize("fmt", sorted(btpl.FORMATS))
def test_every_format_has_english_templates_for_fixed_and_cross_modes(fmt):
    assert len(btpl.templates(fmt, "en")) >= 3


def _variants(records, field, values):
    """Every record once per label value (consecutive), content unchanged."""
    return [dict(r, **{field: v}) for r in records for v in values]


@pytest.mark.parametrize("name", sorted(LABELS))
def test_prompts_do_not_depend_on_the_gold_label(name, tmp_path):
    sets, split, field, values = LABELS[name]
    b = benchmarks.get(name)
    for config, records in sets.items():
        fx.write_jsonl(tmp_path / config / f"{split}.jsonl", _variants(records, field, values))
    b = benchmarks.get(name, source=str(tmp_path))
    langs = [lang for lang, config in b.configs.items() if config in sets]
    assert langs
    for lang in langs:
        for t_lang in b.template_languages:
            mode = "native" if t_lang == lang else "fixed"
            examples = b.examples(lang, template_mode=mode, template_lang=None if mode == "native" else t_lang)
            n_templates = len(b.templates(t_lang))
            per_record = len(values) * n_templates
            assert len(examples) % per_record == 0
            for start in range(0, len(examples), per_record):
                group = examples[start:start + per_record]
                for k in range(n_templates):
                    same_template = group[k::n_templates]
                    assert len({e["template_id"] for e in same_template}) == 1
                    assert len({e["inputs"] for e in same_template}) == 1, (name, lang, t_lang)
                    assert len({e["null_inputs"] for e in same_template}) == 1
                    assert len({tuple(e["options"]) for e in same_template}) == 1
                    assert sorted(e["answer"] for e in same_template) == list(range(len(values)))


def test_generation_prompts_do_not_depend_on_the_answers(tmp_path):
    qa = fx.TYDIQA["secondary_task"][:1]
    changed = [dict(qa[0], id=qa[0]["id"].replace("-1", "-2"), answers={"text": ["Nepal"], "answer_start": [0]})]
    fx.write_jsonl(tmp_path / "tydiqa" / "secondary_task" / "validation.jsonl", qa + changed)
    ex = benchmarks.get("tydiqa", source=str(tmp_path / "tydiqa")).examples("en")
    assert [e["inputs"] for e in ex[:3]] == [e["inputs"] for e in ex[3:]]
    math = [dict(fx.MGSM["en"][0], answer_number=n) for n in (18, 7)]
    fx.write_jsonl(tmp_path / "mgsm" / "en" / "test.jsonl", math)
    ex = benchmarks.get("mgsm", source=str(tmp_path / "mgsm")).examples("en")
    assert [e["inputs"] for e in ex[:3]] == [e["inputs"] for e in ex[3:]]
    assert [e["references"] for e in ex[::3]] == [["18"], ["7"]]


def test_null_prompts_hold_no_content(bench_dirs):
    ex = benchmarks.get("xnli", source=str(bench_dirs["xnli"])).examples("en")[0]
    premise = fx.XNLI["en"][0]["premise"]
    assert premise in ex["inputs"] and premise not in ex["null_inputs"]
    mc = benchmarks.get("belebele", source=str(bench_dirs["belebele"])).examples("ko")[0]
    assert all(option in mc["null_inputs"] for option in mc["options"])  # the options stay


@pytest.mark.parametrize("fmt,text,kwargs,match", [
    ("nli", "{premise} {hypothesis} {label}", {"choices": ("a", "b", "c")}, "unknown placeholder"),
    ("nli", "{premise} {hypothesis}", {"choices": ("a", "b")}, "needs 3 choices"),
    ("mrc", "{passage} {question}", {}, "must use options"),
    ("copa", "{premise} {options}", {}, "one text per variant"),
    ("winograd", "{sentence} {options}", {"choices": ("x", "y")}, "only label formats"),
    ("quiz", "{x}", {}, "unknown benchmark format"),
])
def test_template_contract_is_checked(fmt, text, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        btpl.add_template(fmt, "en", text, **kwargs)
