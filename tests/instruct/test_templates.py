"""Template registry: coverage per (task, language), slot contracts, scripts, CLDR language names, Korean
particles, plural forms, template modes and errors. Needs no corpus (CLDR only)."""

from __future__ import annotations

import re

import pytest
from babel import Locale

from xlt.errors import ConfigError, DataError
from xlt.instruct import templates as tpl

LANGS = ("en", "ko", "ja", "zh", "de", "fr", "es", "ru")
HANGUL = re.compile("[\uac00-\ud7a3]")
KANA = re.compile("[\u3040-\u30ff]")
HAN = re.compile("[\u4e00-\u9fff]")
CYRILLIC = re.compile("[\u0400-\u04ff]")
LATIN = re.compile("[A-Za-z]")
SAMPLE = {
    "text": "TEXT", "text1": "TEXT-ONE", "text2": "TEXT-TWO", "name": "NAME", "name1": "NAME-ONE",
    "name2": "NAME-TWO", "country": "COUNTRY", "beginning": "BEGINNING", "month": "MONTH", "day": "DAY",
    "n": 3, "src_lang": "en", "tgt_lang": "ko", "lang1": "ja", "lang2": "de",
    "options": ["OPTION-A", "OPTION-B", "OPTION-C"],
}


def _instruction_only(template: tpl.Template) -> str:
    """The rendered prompt with neutral content (language names stay: they are in the template's language)."""
    neutral = {k: ("∎" if isinstance(v, str) and k not in tpl.LANG_SLOTS else v) for k, v in SAMPLE.items()}
    return tpl.render(template, neutral | {"options": []}) + " " + " ".join(template.choices)


@pytest.mark.parametrize("lang", LANGS)
def test_three_distinct_templates_per_task_and_language(lang):
    for task in tpl.TASK_SLOTS:
        found = tpl.templates(task, lang)
        assert len(found) >= 3, (task, lang)
        assert len({t.text for t in found}) == len(found), (task, lang)
        assert [t.index for t in found] == list(range(len(found)))
        assert len({t.id for t in found}) == len(found)
    assert set(LANGS) <= set(tpl.template_languages())


@pytest.mark.parametrize("lang", LANGS)
def test_templates_use_their_slots_and_render_completely(lang):
    for task, slots in tpl.TASK_SLOTS.items():
        for t in tpl.templates(task, lang):
            assert slots.required <= t.fields <= slots.allowed, t.id
            out = tpl.render(t, SAMPLE)
            assert "{" not in out and "}" not in out, (t.id, out)
            for slot in t.fields - tpl.LANG_SLOTS - {"options", "n"}:
                assert SAMPLE[slot] in out, (t.id, slot)
            if "options" in t.fields:
                assert all(o in out for o in SAMPLE["options"]), t.id
            if slots.binary:  # answer words are in the template language and named in the prompt
                assert len(t.choices) == 2
                assert all(c.lower() in t.text.lower() for c in t.choices), t.id


@pytest.mark.parametrize("lang", LANGS)
def test_templates_are_written_in_their_language_script(lang):
    for task in tpl.TASK_SLOTS:
        if lang == "ja":  # label-only prompts ("英語：…") may be all kanji; every task has kana somewhere
            assert any(KANA.search(_instruction_only(t)) for t in tpl.templates(task, lang)), task
        for t in tpl.templates(task, lang):
            words = _instruction_only(t)
            if lang == "ko":
                assert HANGUL.search(words) and not KANA.search(words), t.id
            elif lang == "ja":
                assert (KANA.search(words) or HAN.search(words)) and not HANGUL.search(words), t.id
            elif lang == "zh":
                assert HAN.search(words) and not KANA.search(words) and not HANGUL.search(words), t.id
            elif lang == "ru":
                assert CYRILLIC.search(words) and not LATIN.search(words), t.id
            else:
                assert LATIN.search(words), t.id
                assert not (HANGUL.search(words) or KANA.search(words) or HAN.search(words)
                            or CYRILLIC.search(words)), t.id


def test_language_names_are_rendered_in_the_instruction_language_from_cldr():
    for lang in LANGS:
        t = tpl.templates("verse_translation", lang)[2]
        out = tpl.render(t, {"text": "x", "src_lang": "en", "tgt_lang": "ja"}).lower()
        assert Locale(lang).languages["ja"].lower() in out, (lang, out)
        assert Locale(lang).languages["en"].lower() in out, (lang, out)
    assert tpl.language_name("ja", "ko") == "일본어"
    assert tpl.language_name("ko", "en") == "Korean"
    with pytest.raises(DataError, match="'xx'"):
        tpl.language_name("xx", "en")


def test_formats_capitalise_inflect_and_pluralise():
    fr = tpl.templates("verse_translation", "fr")[2]
    assert tpl.render(fr, {"text": "x", "src_lang": "en", "tgt_lang": "ko"}).startswith("Anglais : x\nCoréen :")
    ko = tpl.templates("verse_translation", "ko")[0]
    assert "한국어로 번역하세요" in tpl.render(ko, {"text": "x", "src_lang": "en", "tgt_lang": "ko"})
    assert tpl.korean_particle("미국", "이/가") == "미국이"
    assert tpl.korean_particle("캐나다", "이/가") == "캐나다가"
    assert tpl.korean_particle("부산", "으로/로") == "부산으로"
    assert tpl.korean_particle("3월", "으로/로") == "3월로"  # final ㄹ takes 로
    assert tpl.korean_particle("3월", "은/는") == "3월은"
    assert tpl.korean_particle("2", "은/는") == "2는"
    assert [tpl.plural(n, "one=месяц;few=месяца;many=месяцев;other=месяца", "ru") for n in (1, 3, 5, 21)] == \
        ["1 месяц", "3 месяца", "5 месяцев", "21 месяц"]
    assert tpl.plural(1, "one=day;other=days", "en") == "1 day"
    assert tpl.plural(2, "one=day;other=days", "en") == "2 days"
    de = tpl.templates("month_after", "de")[1]
    assert tpl.render(de, {"month": "März", "n": 1}).endswith("in 1 Monat?")
    assert tpl.render(de, {"month": "März", "n": 4}).endswith("in 4 Monaten?")
    inline = tpl.templates("country_continent", "ja")[1]
    assert "アジア、ヨーロッパ" in tpl.render(inline, {"country": "日本", "options": ["アジア", "ヨーロッパ"]})
    lettered = tpl.templates("country_name_language", "en")[2]
    assert "A. Korean\nB. German" in tpl.render(lettered, {"name": "x", "options": ["Korean", "German"]})


def test_template_modes_resolve_the_template_language():
    task = "country_currency"
    assert tpl.resolve_template_lang("native", "ko", task) == "ko"
    assert tpl.resolve_template_lang("native", "sw", task, fallback_lang="en") == "en"
    assert tpl.resolve_template_lang("fixed", "ko", task, "en") == "en"
    assert tpl.resolve_template_lang("fixed", "en", task, "en") == "en"
    assert tpl.resolve_template_lang("cross", "ko", task, "en") == "en"
    assert tpl.resolve_template_lang("cross", "en", task, "ko") == "ko"


@pytest.mark.parametrize("args,error,match", [
    (("native", "sw", "country_currency"), ConfigError, "no native sw templates.*fallback_lang"),
    (("native", "ko", "country_currency", "en"), ConfigError, "native mode"),
    (("cross", "en", "country_currency", "en"), ConfigError, "cross mode needs a template language other"),
    (("fixed", "ko", "country_currency"), ConfigError, "needs template_lang"),
    (("fixed", "ko", "country_currency", "sw"), ConfigError, "no sw templates"),
    (("native", "sw", "country_currency", None, "sw"), ConfigError, "no sw templates"),
    (("sideways", "ko", "country_currency"), ConfigError, "template mode 'sideways'"),
    (("native", "kr", "country_currency"), DataError, "unknown language code 'kr'.*'ko'"),
    (("native", "ko", "capital_city"), ConfigError, "unknown task 'capital_city'"),
])
def test_template_mode_errors(args, error, match):
    with pytest.raises(error, match=match):
        tpl.resolve_template_lang(*args)


@pytest.mark.parametrize("kwargs,match", [
    (dict(task="country_currency", lang="en", text="Name the currency."), "must use country"),
    (dict(task="country_currency", lang="en", text="{country} {capital}?"), "unknown placeholder.*capital"),
    (dict(task="country_currency", lang="en", text="{country:upper}?"), "unknown format 'upper'"),
    (dict(task="country_currency", lang="en", text="{country:을/를까}?"), "unknown Korean particle"),
    (dict(task="month_after", lang="en", text="{month} {n:#one=month}"), "needs an 'other=' form"),
    (dict(task="country_name_pair", lang="en", text="{name1} {name2}?"), "yes/no task needs choices"),
    (dict(task="country_currency", lang="en", text="{country}?", choices=("Yes", "No")), "only yes/no"),
    (dict(task="country_name_pair", lang="en", text="{name1} {name2}?", choices=("Yes", "Yes")), "two distinct"),
    (dict(task="country_continent", lang="en", text="{country} {options}", options_style="table"),
     "options_style 'table'"),
    (dict(task="country_currency", lang="en", text="Which currency is used in {country}?"), "duplicate"),
    (dict(task="country_currency", lang="xx", text="{country}"), "unknown language code 'xx'"),
    (dict(task="capital_city", lang="en", text="{country}"), "unknown task 'capital_city'"),
    (dict(task="country_currency", lang="en", text="{country!r}"), "plain name"),
])
def test_add_template_rejects_broken_templates(kwargs, match):
    before = {key: len(v) for key, v in tpl._REGISTRY.items()}
    with pytest.raises((ConfigError, DataError), match=match):
        tpl.add_template(**kwargs)
    assert {key: len(v) for key, v in tpl._REGISTRY.items()} == before


def test_lookup_and_render_errors():
    with pytest.raises(ConfigError, match="no sw templates for task 'country_currency'.*en"):
        tpl.templates("country_currency", "sw")
    with pytest.raises(ConfigError, match="unknown task"):
        tpl.templates("nope", "en")
    with pytest.raises(DataError, match="no value for country"):
        tpl.render(tpl.templates("country_currency", "en")[0], {})
    assert not tpl.has_templates("country_currency", "sw")
