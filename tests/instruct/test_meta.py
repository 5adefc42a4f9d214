"""Meta-datasets on the real packaged corpora: clusters, example fields, gold among options, balanced answer
positions, split hygiene (no test unit in training), determinism, template modes and errors."""

from __future__ import annotations

import collections
import re

import pytest

from xlt.data.sources import bible, cldr
from xlt.errors import ConfigError, DataError
from xlt.instruct import meta
from xlt.instruct import templates as tpl

# Small caps and a 5-language language-id pool keep the suite to a few Bible versions (en x4, ko, fr, de, es).
CFG = meta.MetaConfig(max_train=240, langid_languages=("en", "ko", "de", "fr", "es"))
LANGS = ("en", "ko")
HANGUL = re.compile("[\uac00-\ud7a3]")
FIELDS = {"id", "task", "cluster", "kind", "split", "content_lang", "template_lang", "template_id", "inputs",
          "targets", "options", "answer", "references", "units"}


def _all(lang: str, split: str, **kwargs) -> dict[str, list[dict]]:
    return meta.meta_dataset(lang, split, config=CFG, **kwargs)


def test_catalogue_has_six_clusters_of_two_tasks_with_templates():
    assert len(meta.CLUSTERS) >= 6
    for cluster, tasks in meta.CLUSTERS.items():
        assert len(tasks) >= 2, cluster
    assert set(tpl.TASK_SLOTS) == set(meta.TASKS)
    for spec in meta.TASKS.values():
        assert spec.kind in (meta.CHOICE, meta.GENERATION)
        assert spec.metrics and (spec.kind == meta.GENERATION) == ("accuracy" not in spec.metrics), spec.name
    assert set(meta.DEFAULT_HELD_OUT) < set(meta.CLUSTERS)
    held = set(meta.training_tasks())
    assert held and all(meta.TASKS[t].cluster not in meta.DEFAULT_HELD_OUT for t in held)
    assert meta.training_tasks(held_out=tuple(meta.CLUSTERS)) == ()
    # Korean has every task but the two-version paraphrase task; both languages have every cluster
    assert set(meta.tasks_for("en")) == set(meta.TASKS)
    assert set(meta.tasks_for("ko")) == set(meta.TASKS) - {"verse_version_pair"}
    assert {meta.TASKS[t].cluster for t in meta.tasks_for("ko")} == set(meta.CLUSTERS)


@pytest.mark.parametrize("lang", LANGS)
def test_examples_carry_all_fields_and_consistent_gold(lang):
    for split in ("train", "test"):
        for task, rows in _all(lang, split).items():
            assert rows, (task, lang, split)
            spec = meta.TASKS[task]
            for ex in rows:
                assert set(ex) == FIELDS
                assert (ex["task"], ex["cluster"], ex["kind"]) == (task, spec.cluster, spec.kind)
                assert ex["content_lang"] == ex["template_lang"] == lang and ex["split"] == split
                assert ex["template_id"].startswith(f"{task}.{lang}.")
                assert ex["inputs"].strip() and ex["targets"].strip() and "{" not in ex["inputs"]
                if spec.kind == meta.CHOICE:
                    assert ex["options"].count(ex["targets"]) == 1, ex["id"]
                    assert ex["options"][ex["answer"]] == ex["targets"]
                    assert len(set(ex["options"])) == len(ex["options"])
                else:
                    assert ex["options"] == [] and ex["answer"] == -1
                    assert ex["targets"] in ex["references"]
    assert len({ex["id"] for rows in _all(lang, "test").values() for ex in rows}) == \
        sum(len(rows) for rows in _all(lang, "test").values())


@pytest.mark.parametrize("lang", LANGS)
def test_answer_positions_are_balanced_and_not_tied_to_templates(lang):
    for task in meta.tasks_for(lang, config=CFG):
        if meta.TASKS[task].kind != meta.CHOICE:
            continue
        rows = meta.examples(task, lang, "train", config=CFG)
        n_options = len(rows[0]["options"])
        positions = collections.Counter(ex["answer"] for ex in rows)
        assert set(positions) == set(range(n_options)), (task, positions)
        assert max(positions.values()) - min(positions.values()) <= 1, (task, positions)
        by_template = collections.Counter((ex["template_id"], ex["answer"]) for ex in rows)
        assert len(by_template) == 3 * n_options, (task, by_template)  # every template sees every position


def test_no_test_unit_appears_in_training_data():
    units = {split: collections.defaultdict(set) for split in ("train", "validation", "test")}
    for lang in LANGS:
        for split in units:
            for task, rows in _all(lang, split).items():
                for ex in rows:
                    for unit in ex["units"]:  # gold and every distractor
                        assert meta.unit_split(unit) == split, (ex["id"], unit)
                        units[split][task].add(unit)
    for task in meta.TASKS:
        assert not units["test"][task] & units["train"][task], task
        assert not units["validation"][task] & units["train"][task], task
    train_all = set().union(*units["train"].values())
    assert not set().union(*units["test"].values()) & train_all
    assert any(u.startswith("bible:") for u in train_all) and any(u.startswith("cldr:") for u in train_all)
    assert any(u.startswith("calendar:") for u in train_all)


def test_gold_answers_match_the_sources():
    for ex in meta.examples("country_currency", "ko", "test", config=CFG):
        code = ex["units"][0].split(":")[1]
        assert ex["targets"] == cldr.currency_names("ko")[cldr.territory_currency(code)]
        assert cldr.territory_names("ko")[code] in ex["inputs"]
    for ex in meta.examples("month_after", "en", "train", config=CFG):
        start, n = (int(x) for x in ex["units"][0].split("/")[1].split("+"))
        assert ex["targets"] == cldr.month_names("en")[(start - 1 + n) % 12]
    ko_names = set(cldr.language_names("ko").values())
    for ex in meta.examples("verse_language_name", "ko", "test", config=CFG):
        assert ex["targets"] in ko_names
    test_ko = {v.key: v.text for v in bible.verses("ko", "test")}
    for ex in meta.examples("verse_translation", "ko", "test", config=CFG):
        assert ex["targets"] == test_ko[ex["units"][0].split(":")[1]]
        assert "한국어" in ex["inputs"]  # the target language is named in the instruction
    yes = [ex for ex in meta.examples("verse_translation_pair", "en", "test", config=CFG) if ex["answer"] == 0]
    assert yes and all(len(set(ex["units"])) == 1 for ex in yes)  # positives pair a verse with itself


def test_deterministic_seeded_and_prefix_stable():
    a = meta.examples("verse_ending_choice", "ko", "train", config=CFG)
    meta._items.cache_clear()
    assert meta.examples("verse_ending_choice", "ko", "train", config=CFG) == a
    other = meta.examples("verse_ending_choice", "ko", "train", config=meta.MetaConfig(
        seed=1, max_train=240, langid_languages=CFG.langid_languages))
    assert [ex["units"] for ex in other] != [ex["units"] for ex in a]
    small = meta.examples("verse_ending_choice", "ko", "train", config=meta.MetaConfig(
        max_train=50, langid_languages=CFG.langid_languages))
    assert small == a[:50]
    # the candidate order does not depend on the language: parallel test sets
    en = [ex["units"][0] for ex in meta.examples("verse_translation", "en", "test", config=CFG)]
    ko = [ex["units"][0] for ex in meta.examples("verse_translation", "ko", "test", config=CFG)]
    assert en == ko


def test_all_templates_expands_each_item():
    one = meta.examples("country_continent", "ja", "test", config=CFG)
    every = meta.examples("country_continent", "ja", "test", config=CFG, all_templates=True)
    assert len(every) == 3 * len(one)
    assert {ex["template_id"] for ex in every} == {t.id for t in tpl.templates("country_continent", "ja")}


def test_cross_and_fixed_modes_keep_items_and_change_instructions():
    native = meta.examples("country_currency", "ko", "test", config=CFG)
    cross = meta.examples("country_currency", "ko", "test", mode="cross", template_lang="en", config=CFG)
    assert [ex["units"] for ex in cross] == [ex["units"] for ex in native]
    assert [ex["targets"] for ex in cross] == [ex["targets"] for ex in native]  # answers stay in Korean
    for ex in cross:
        assert ex["template_lang"] == "en" != ex["content_lang"]
        assert HANGUL.search(ex["inputs"]) and re.search("[A-Za-z]{4,}", ex["inputs"])
    pairs = meta.examples("verse_translation_pair", "ko", "test", mode="cross", template_lang="en", config=CFG)
    assert {tuple(ex["options"]) for ex in pairs} <= {("Yes", "No"), ("yes", "no"), ("True", "False")}
    assert any("Korean" in ex["inputs"] for ex in pairs)  # language names in the instruction's language
    fixed = meta.examples("month_after", "en", "test", mode="fixed", template_lang="ko", config=CFG)
    assert all(ex["template_lang"] == "ko" and HANGUL.search(ex["inputs"]) for ex in fixed)
    assert all(not HANGUL.search(ex["targets"]) for ex in fixed)


def test_language_without_templates_needs_an_explicit_fallback():
    with pytest.raises(ConfigError, match="no native sw templates"):
        meta.examples("country_currency", "sw", "test", config=CFG)
    rows = meta.examples("country_currency", "sw", "test", fallback_lang="en", config=CFG)
    assert rows and all(ex["template_lang"] == "en" and ex["content_lang"] == "sw" for ex in rows)


def test_split_verse_cuts_near_the_middle():
    begin, end = meta.split_verse("one two three four five six seven eight nine ten", "en")
    assert f"{begin} {end}" == "one two three four five six seven eight nine ten"
    assert 3 <= len(begin.split()) <= 7
    assert meta.split_verse("too short a verse", "en") is None
    zh = "起初神创造天地，地是空虚混沌，渊面黑暗，神的灵运行在水面上。"
    begin, end = meta.split_verse(zh, "zh")
    assert begin + end == zh and begin.endswith("，")


@pytest.mark.parametrize("call,error,match", [
    (lambda: meta.items("verse_version_pair", "ko", "test", CFG), DataError, "two Bible versions of 'ko'"),
    (lambda: meta.items("verse_translation", "th", "test", CFG), DataError, "no Bible text|none for 'th'"),
    (lambda: meta.items("verse_translation", "kr", "test", CFG), DataError, "unknown language code 'kr'"),
    (lambda: meta.items("verse_translation", "", "test", CFG), DataError, "unknown language code ''"),
    (lambda: meta.items("capital_city", "ko", "test", CFG), ConfigError, "unknown instruction task"),
    (lambda: meta.items("verse_translation", "ko", "dev", CFG), DataError, "unknown split 'dev'"),
    (lambda: meta.tasks_for("ko", clusters=("nli",)), ConfigError, "unknown task cluster 'nli'"),
    (lambda: meta.training_tasks("paraphrase"), ConfigError, "list of names"),
    (lambda: meta.MetaConfig(num_options=1), ConfigError, "num_options"),
    (lambda: meta.MetaConfig(pivot="th"), ConfigError, "pivot='th' has no Bible text"),
    (lambda: meta.MetaConfig(pivot="en", pivot_alt="en"), ConfigError, "must differ"),
    (lambda: meta.MetaConfig(langid_languages=("en",)), ConfigError, "langid_languages"),
    (lambda: meta.MetaConfig(max_train=0), ConfigError, "max_train"),
    (lambda: meta.examples("country_currency", "en", "test", mode="cross", template_lang="en"), ConfigError,
     "cross mode"),
])
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_thai_has_cldr_and_calendar_tasks_only():
    tasks = meta.tasks_for("th", config=CFG)
    assert "country_currency" in tasks and "month_after" in tasks and "verse_translation" not in tasks
    rows = meta.examples("month_after", "th", "test", fallback_lang="en", config=CFG)
    assert rows and all(re.search("[\u0e00-\u0e7f]", ex["targets"]) for ex in rows)
