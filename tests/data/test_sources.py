"""Tests of the packaged sources (Bible, CLDR), the split rule and the language table.

Bible and CLDR text is read from the installed packages at run time; the only literal strings here are
synthetic ones written for the cleaning rules and a few single facts (a currency code, a country name).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

import pytest

from xlt.data import languages, splits
from xlt.data.sources import bible, cldr
from xlt.errors import DataError

# Verses each language loses to empty or placeholder rows: bn has 800 "-" rows, tr 893 "(same)" rows and
# pt 32 "verse line without text" rows for verses merged into the previous one; the rest lose at most a
# few dozen omitted or merged verses (ko 21, ja 16, zh 16, fa 13, tl 8, ar 1).
KNOWN_GAPS = {"bn": 800, "tr": 893, "pt": 32}
_SCRIPT_PREFIXES = {
    "Latin": ("LATIN",),
    "Hangul": ("HANGUL",),
    "Han": ("CJK UNIFIED",),
    "Kana/Han": ("HIRAGANA", "KATAKANA", "CJK UNIFIED"),
    "Cyrillic": ("CYRILLIC",),
    "Arabic": ("ARABIC",),
    "Devanagari": ("DEVANAGARI",),
    "Bengali": ("BENGALI",),
}


# ------------------------------------------------------------------------------------------- languages
def test_validate_accepts_table_codes_and_rejects_others_with_hints() -> None:
    assert languages.validate("ko") == "ko"
    for bad, hint in [("kr", "'ko'"), ("KO", "'ko'"), ("kor", "'ko'"), ("Korean", "'ko'"), ("jp", "'ja'")]:
        with pytest.raises(DataError) as err:
            languages.validate(bad)
        message = str(err.value)
        assert repr(bad) in message and hint in message and "\n" not in message and "zh" in message


def test_word_spaces_and_scripts() -> None:
    assert not languages.uses_word_spaces("zh") and not languages.uses_word_spaces("ja")
    assert languages.uses_word_spaces("ko") and languages.uses_word_spaces("en")
    assert languages.script("ko") == "Hangul" and languages.script("ru") == "Cyrillic"
    assert languages.from_iso639_3("kor") == "ko" and languages.from_iso639_3("arz") == "ar"
    assert languages.from_iso639_3("xyz") is None
    assert set(bible.LANGUAGES) <= set(languages.CODES)


# ----------------------------------------------------------------------------------------------- split
def test_split_rule_is_stable_and_respects_fractions() -> None:
    # Regression values of the documented rule: sha256("bible/1.1")[:8] / 2**64.
    assert splits.unit_fraction("bible", "1.1") == pytest.approx(0.88194017532788)
    assert [splits.split_of("bible", k) for k in ("1.1", "1.33", "2.2")] == ["train", "validation", "test"]
    counts = Counter(splits.split_of("t", str(i)) for i in range(20000))
    assert abs(counts["validation"] / 20000 - 0.01) < 0.003 and abs(counts["test"] / 20000 - 0.01) < 0.003
    with pytest.raises(DataError, match="dev"):
        splits.check_split("dev")


# ----------------------------------------------------------------------------------------------- clean
@pytest.mark.parametrize(
    ("lang", "raw", "expected"),
    [
        ("zh", "甲说： “走吧。” 乙答， 好。 ", "甲说：“走吧。”乙答，好。"),
        ("zh", "他看见 神的山（“山”或译“岭”）。", "他看见神的山。"),
        ("zh", "（有些抄本有第9、", ""),
        ("ja", "彼は言った。 「はい。」", "彼は言った。「はい。」"),
        ("ja", "［本節欠如］", ""),
        ("tr", "Yeni Bir Başlık. 1 Adam yola çıktı.", "Adam yola çıktı."),
        ("tr", "Ali 30 yaşındaydı. Sonra gitti.", "Ali 30 yaşındaydı. Sonra gitti."),
        ("tr", "(aynı)", ""),
        ("hi", "वह घर गया। (मत्ती 3:4, 2 लूका 5: 6)", "वह घर गया।"),
        ("hi", "वह आया* और गया।फिर सोया", "वह आया और गया। फिर सोया"),
        ("ru", "(12:3) Слово одно. (12:4) Слово два.", "Слово одно. Слово два."),
        ("id", "(12-3) Kata satu.", "Kata satu."),
        ("vi", "(1-:2) Một câu.", "Một câu."),
        ("pt", "(4.5) Uma frase. 6 Outra frase.", "Uma frase. Outra frase."),
        ("pt", "Verszeile ohne Text", ""),
        ("ko", "(Missing KJV: Some English words. >> 한국어 문장이다.)", "한국어 문장이다."),
        ("ko", "3절과 같음", ""),
        ("ko", "(앞절과 동일)", ""),
        ("ru", "(ADDED FROM KJV: Some English words. => Русская фраза.)", "Русская фраза."),
        ("tr", "(ADDED FROM KJV: “Some English words.“) Türkçe cümle.", "Türkçe cümle."),
        ("tl", "(In-update ni x: was in 1:15) Isang pangungusap. //", "Isang pangungusap. //"),
        ("ar", "( [ (Book 1:15) ) كلمة عربية ]", "كلمة عربية"),
        ("ar", "كلمة\u200e أخرى\u200f", "كلمة أخرى"),
        ("fa", "می\u200cخواهم رفت ، و آمد .", "می\u200cخواهم رفت، و آمد."),
        ("sw", "Kisha <Mtu> alisema [maneno haya] .", "Kisha Mtu alisema maneno haya."),
        ("ro", "El i- a spus: , Vino aşa!", "El i-a spus: Vino așa!"),
        ("ro", "22. Un verset.", "Un verset."),
        ("it", "0 Signore, ascolta.", "O Signore, ascolta."),
        ("fr", "Que dis-tu ? Rien .", "Que dis-tu ? Rien."),
        ("en", "  Some \t words ,here\\ . ", "Some words,here."),
        ("bn", "-", ""),
        ("en", "[]", ""),
        ("de", "(Klammer.) Ein Satz mit 500 Metern.", "(Klammer.) Ein Satz mit 500 Metern."),
    ],
)
def test_clean_rules(lang: str, raw: str, expected: str) -> None:
    assert bible.clean(raw, lang) == expected


# ----------------------------------------------------------------------------------------------- bible
def test_every_language_loads_with_most_verses() -> None:
    assert len(bible.LANGUAGES) == 22 and set(bible.VERSIONS) == set(bible.LANGUAGES)
    for lang in bible.LANGUAGES:
        s = bible.stats(lang)
        assert s["verses"]["train"] > 20000, lang
        assert all(s["verses"][split] > 150 for split in ("validation", "test")), lang
        assert s["dropped"] <= KNOWN_GAPS.get(lang, 25), (lang, s["dropped"])
        assert s["chars"]["train"] > 1_000_000, lang


@pytest.mark.parametrize("lang", bible.LANGUAGES)
def test_text_is_in_the_language_script_and_clean(lang: str) -> None:
    items = bible.verses(lang, None)
    assert [v.key for v in items] == sorted(v.key for v in items) and len({v.key for v in items}) == len(items)
    assert all(v.lang == lang and v.text == v.text.strip() and "  " not in v.text for v in items)
    markup = re.compile(r"[*\[\]<>\\\u200e\u200f\ufeff]|\(\d+[:.\-]+\d+\)|KJV|\(ADDED")
    assert [v.key for v in items if markup.search(v.text)] == []
    letters = [ch for v in items[::50] for ch in v.text if ch.isalpha()]
    prefixes = _SCRIPT_PREFIXES[languages.script(lang)]
    in_script = sum(unicodedata.name(ch, "").startswith(prefixes) for ch in letters)
    assert in_script / len(letters) > 0.97, lang


def test_zh_ja_have_no_layout_spaces_and_tr_no_heading() -> None:
    cjk_space = re.compile(r"[，。；：、！？「」『』（）“”\u4e00-\u9fff] | [，。；：、！？「」『』（）“”\u4e00-\u9fff]")
    for lang in ("zh", "ja"):
        assert [v.key for v in bible.verses(lang, None) if cjk_space.search(v.text)] == []
    heading = re.compile(r"^[^\d]{2,80}[.!?] \d{1,3} \S")
    assert [v.key for v in bible.verses("tr", None) if heading.match(v.text)] == []
    first = bible.verses("tr", "train")[0]
    assert first.key == "01.001.001" and not first.text[0].isdigit() and ". 1 " not in first.text


def test_no_verse_key_in_two_splits_across_languages() -> None:
    owner: dict[str, str] = {}
    for lang in bible.LANGUAGES:
        for split in splits.SPLITS:
            for v in bible.verses(lang, split):
                assert owner.setdefault(v.key, split) == split, (lang, v.key)
                assert bible.split_of_key(v.key) == split
    chapters = Counter(split for key, split in {k[:6]: s for k, s in owner.items()}.items())
    assert sum(chapters.values()) == 1189  # chapters of the canon
    for split in ("validation", "test"):
        assert 4 <= chapters[split] <= 30, chapters  # binomial(1189, 0.01): mean 11.9


def test_split_fractions_of_verses() -> None:
    s = bible.stats("en")
    total = sum(s["verses"].values())
    assert total == 31102
    for split in ("validation", "test"):
        assert 0.003 < s["verses"][split] / total < 0.025, s


def test_parallel_keys_are_aligned() -> None:
    langs = ["en", "ko", "zh", "bn"]
    rows = bible.parallel(langs, "validation")
    keys = [key for key, _ in rows]
    assert keys == sorted(keys) and len(rows) > 200
    per_lang = {lang: {v.key: v.text for v in bible.verses(lang, "validation")} for lang in langs}
    assert len(rows) == len(set.intersection(*(set(t) for t in per_lang.values())))
    for key, texts in rows:
        assert set(texts) == set(langs) and all(texts[lang] == per_lang[lang][key] for lang in langs)
    assert bible.parallel(langs, "validation") == rows  # deterministic


def test_version_override_and_errors() -> None:
    default, other = bible.verses("es", "test"), bible.verses("es", "test", version="v")
    assert [v.key for v in default][:50] == [v.key for v in other][:50] and default != other
    assert len(bible.COPYRIGHTED) == 13 and bible.VERSIONS["es"] in bible.COPYRIGHTED
    with pytest.raises(DataError, match="'xx'"):
        bible.verses("xx")
    with pytest.raises(DataError, match="'th'"):
        bible.verses("th")
    with pytest.raises(DataError, match="not a es version"):
        bible.verses("es", version="k")
    with pytest.raises(DataError, match="'dev'"):
        bible.verses("en", "dev")
    with pytest.raises(DataError, match="distinct"):
        bible.parallel(["en", "en"])


# ------------------------------------------------------------------------------------------------ cldr
def test_country_facts() -> None:
    assert cldr.territory_currency("KR") == "KRW"
    assert cldr.territory_currency("DE") == "EUR" and cldr.territory_currency("AQ") is None
    assert cldr.official_languages("KR")[0] == "ko"
    assert {"de", "fr", "it"} <= set(cldr.official_languages("CH"))
    name = cldr.territory_names("ko")["KR"]
    assert "대한민국" in name or "한국" in name
    with pytest.raises(DataError, match="'EU'"):
        cldr.territory_currency("EU")


def test_only_iso_countries_in_every_language() -> None:
    countries = set(cldr.countries())
    assert len(countries) == 249 and {"EU", "ZZ", "XK", "001", "QO"}.isdisjoint(countries)
    for lang in languages.CODES:
        names = cldr.territory_names(lang)
        assert set(names) <= countries and len(names) >= 245, lang
        assert all(isinstance(n, str) and n for n in names.values())
        assert set(cldr.currency_names(lang)) <= set(cldr.current_currencies())
        assert all(re.fullmatch("[a-z]{2}", code) for code in cldr.language_names(lang))
    assert "KRW" in cldr.currency_names("en") and "ko" in cldr.language_names("ko")


def test_containment_is_a_consistent_tree() -> None:
    containment = cldr.region_containment()
    assert "030" in cldr.containing_regions("KR") and "142" in cldr.containing_regions("KR")
    assert "KR" in containment["030"] and set(containment["030"]) <= set(containment["142"])
    outermost = Counter()
    for country in cldr.countries():
        chain = cldr.containing_regions(country)
        assert chain, country
        assert all(country in containment[region] for region in chain)
        for inner, outer in zip(chain, chain[1:]):
            assert set(containment[inner]) <= set(containment[outer])
        outermost[chain[-1]] += 1
    assert sum(outermost.values()) == 249 and set(outermost) == {"002", "009", "019", "142", "150"}
    assert set(cldr.region_names("ko")) == set(containment)


def test_month_and_day_names() -> None:
    from babel import Locale

    Locale.parse("ja").months["stand-alone"]["wide"][1]  # babel 2.18 leaks this alias into other locales
    for lang in languages.CODES:
        months, days = cldr.month_names(lang), cldr.day_names(lang)
        assert len(set(months)) == 12 and len(set(days)) == 7, lang
    assert all(m.endswith("월") for m in cldr.month_names("ko"))
    assert cldr.month_names("ko") != cldr.month_names("ja") != cldr.month_names("zh")


def test_cldr_split_follows_the_code_in_every_language() -> None:
    test_codes = set(cldr.territory_names("en", "test"))
    for lang in ("ko", "ar", "tl"):
        assert set(cldr.territory_names(lang, "test")) == test_codes
    held_out = len(test_codes) + len(cldr.territory_names("en", "validation"))
    assert 0.1 < held_out / 249 < 0.3
    assert all(cldr.split_of_code(code) == "test" for code in test_codes)
    facts = cldr.territory_facts("validation")
    assert set(facts) == set(cldr.territory_names("en", "validation"))
