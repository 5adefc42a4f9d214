"""Each benchmark provider on fixture files in the hub's own schema: label-id mapping, splits, languages."""

import json

import pytest

import bench_fixtures as fx
from xlt import benchmarks
from xlt.benchmarks import templates as btpl
from xlt.errors import ConfigError, DataError
from xlt.instruct import meta

PUBLIC = ("xnli", "xcopa", "pawsx", "xwinograd", "xstorycloze", "belebele", "tydiqa", "mgsm", "kobest_boolq",
          "kobest_copa", "kobest_hellaswag", "kobest_sentineg", "kobest_wic")
# (benchmark, content language with fixture data)
CASES = [("xnli", "en"), ("xnli", "de"), ("xcopa", "zh"), ("xcopa", "et"), ("pawsx", "ko"), ("pawsx", "en"),
         ("xwinograd", "ja"), ("xwinograd", "en"), ("xstorycloze", "en"), ("xstorycloze", "zh"),
         ("belebele", "ko"), ("belebele", "en"), ("tydiqa", "en"), ("tydiqa", "ko"), ("mgsm", "en"), ("mgsm", "ja"),
         ("kobest_boolq", "ko"), ("kobest_copa", "ko"), ("kobest_hellaswag", "ko"), ("kobest_sentineg", "ko"),
         ("kobest_wic", "ko")]
META_KEYS = {"id", "task", "cluster", "kind", "split", "content_lang", "template_lang", "template_id", "inputs",
             "targets", "options", "answer", "references", "units"}


def bench(name, dirs):
    return benchmarks.get(name, source=str(dirs[name]))


def test_registry_lists_every_public_benchmark_and_the_builtin_tasks():
    names = benchmarks.names()
    assert names[:len(PUBLIC)] == PUBLIC
    assert set(meta.TASKS) <= set(names)
    assert benchmarks.names(include_builtin=False) == PUBLIC
    assert set(benchmarks.for_language("ko")) == {"pawsx", "belebele", "tydiqa", "kobest_boolq", "kobest_copa",
                                                 "kobest_hellaswag", "kobest_sentineg", "kobest_wic"}


@pytest.mark.parametrize("name,lang", CASES)
def test_examples_have_the_evaluators_keys_and_one_prompt_per_template(name, lang, bench_dirs):
    b = bench(name, bench_dirs)
    examples = b.examples(lang)
    items = b.items(lang)
    templates = b.templates(examples[0]["template_lang"])
    assert len(templates) >= 3
    assert len(examples) == len(items) * len(templates)
    assert len({ex["id"] for ex in examples}) == len(examples)
    for ex in examples:
        assert META_KEYS <= set(ex)
        assert ex["benchmark"] == ex["task"] == name and ex["content_lang"] == lang
        assert ex["kind"] == b.kind and ex["split"] == b.default_split and ex["metrics"] == list(b.metrics)
        assert ex["inputs"].strip() and "{" not in ex["inputs"]
        if b.kind == meta.CHOICE:
            assert 0 <= ex["answer"] < len(ex["options"]) and ex["targets"] == ex["options"][ex["answer"]]
            assert ex["references"] == [ex["targets"]]
            assert ex["null_inputs"] != ex["inputs"] and btpl.NULL_VALUE in ex["null_inputs"]
        else:
            assert ex["options"] == [] and ex["answer"] == -1 and ex["targets"] == ex["references"][0]


def _gold(name, lang, dirs, template_index=0):
    b = bench(name, dirs)
    t_lang = b.examples(lang)[0]["template_lang"]
    return [ex for ex in b.examples(lang) if ex["template_id"] == f"{b.format}.{t_lang}.{template_index}"]


def test_xnli_label_ids_map_to_entailment_neutral_contradiction(bench_dirs):
    ex = _gold("xnli", "en", bench_dirs)
    assert [e["answer"] for e in ex] == [0, 1, 2]
    assert [e["targets"] for e in ex] == ["Yes", "Maybe", "No"]  # label 2 (contradiction) -> the third word
    assert ex[2]["options"] == ["Yes", "Maybe", "No"]
    de = _gold("xnli", "de", bench_dirs)
    assert [e["targets"] for e in de] == ["Vielleicht", "Ja", "Nein"] and de[0]["template_lang"] == "de"


def test_belebele_one_based_answer_strings_and_flores_configs(bench_dirs):
    b = bench("belebele", bench_dirs)
    assert b.config_for("ko") == "kor_Hang" and b.config_for("zh") == "zho_Hans"
    ex = _gold("belebele", "ko", bench_dirs)  # read from the hub-style parquet shard
    assert ex[0]["answer"] == 2 and ex[0]["targets"] == "건반을 너무 세게 누르는 것"  # "3" -> index 2
    assert ex[1]["answer"] == 0 and ex[1]["targets"] == "손이 빨리 지친다"
    assert "C. 건반을 너무 세게 누르는 것" in ex[0]["inputs"]  # letter options, in record order
    assert len(ex[0]["options"]) == 4


def test_xcopa_cause_and_effect_pick_the_question(bench_dirs):
    ex = _gold("xcopa", "zh", bench_dirs)
    assert [e["answer"] for e in ex] == [0, 0, 1]
    assert "原因" in ex[0]["inputs"] and "结果" in ex[2]["inputs"]
    assert ex[2]["targets"] == "茶变凉了。"
    et = bench("xcopa", bench_dirs).examples("et")  # no Estonian templates: English, marked as such
    assert {e["template_lang"] for e in et} == {"en"} and all(e["template_fallback"] for e in et)
    assert not any(e["template_fallback"] for e in ex)


def test_kobest_copa_korean_question_words(bench_dirs):
    ex = _gold("kobest_copa", "ko", bench_dirs)
    assert "결과" in ex[0]["inputs"] and "원인" in ex[1]["inputs"]
    assert [e["targets"] for e in ex] == ["물의 양이 줄어들었다.", "사과가 익었다."]


def test_two_option_sets_map_their_answer_fields(bench_dirs):
    wino = _gold("xwinograd", "ja", bench_dirs)
    assert bench("xwinograd", bench_dirs).config_for("ja") == "jp"
    assert [e["answer"] for e in wino] == [0, 1] and wino[1]["targets"] == "スーツケース"
    story = _gold("xstorycloze", "en", bench_dirs)
    assert story[0]["answer"] == 1 and story[0]["targets"].startswith("The next weekend")
    assert "I danced terribly and broke a friend's toe." in story[0]["inputs"]
    assert bench("xstorycloze", bench_dirs).default_split == "eval"
    paws = _gold("pawsx", "ko", bench_dirs)
    assert [e["targets"] for e in paws] == ["예", "아니요"]  # label 1 paraphrase, 0 not
    hs = _gold("kobest_hellaswag", "ko", bench_dirs)
    assert hs[0]["targets"] == "한 남자가 주먹을 날린다." and len(hs[0]["options"]) == 4
    senti = _gold("kobest_sentineg", "ko", bench_dirs)
    assert [e["targets"] for e in senti] == ["부정", "긍정"]
    assert len(bench("kobest_sentineg", bench_dirs).examples("ko", "test_originated")) == 6
    wic = _gold("kobest_wic", "ko", bench_dirs, template_index=1)
    assert wic[0]["targets"] == "다름" and "단어 '배'의 뜻" in wic[0]["inputs"]


def test_tydiqa_goldp_selects_the_language_by_id_prefix(bench_dirs):
    b = bench("tydiqa", bench_dirs)
    assert set(b.languages) == {"ar", "bn", "en", "fi", "id", "ko", "ru", "sw", "te"}
    en = b.items("en")
    assert len(en) == 1 and en[0].references == ("in the Himalayas", "the Himalayas")
    ko = b.items("ko")
    assert len(ko) == 1 and ko[0].references == ("서울특별시",)  # repeated gold answers counted once
    ex = b.examples("ko")
    assert ex[0]["template_lang"] == "ko" and "대한민국의 수도는 어디인가?" in ex[0]["inputs"]
    fi = b.examples("fi")
    assert {e["template_lang"] for e in fi} == {"en"} and fi[0]["template_fallback"]


def test_mgsm_references_are_the_answer_number(bench_dirs):
    ex = bench("mgsm", bench_dirs).examples("ja")
    assert ex[0]["references"] == ["18"] and ex[0]["template_lang"] == "ja"
    assert all("18" not in e["inputs"] for e in ex)


def test_template_modes(bench_dirs):
    b = bench("pawsx", bench_dirs)
    cross = b.examples("ko", template_mode="cross", template_lang="en")
    assert {e["template_lang"] for e in cross} == {"en"} and not any(e["template_fallback"] for e in cross)
    assert {e["targets"] for e in cross} <= {"No", "Yes", "False", "True", "no", "yes"}
    fixed = b.examples("ko", template_mode="fixed", template_lang="ko")
    assert fixed == b.examples("ko")
    with pytest.raises(ConfigError, match="cross mode"):
        b.examples("ko", template_mode="cross", template_lang="ko")
    with pytest.raises(ConfigError, match="no ru templates"):
        b.examples("ko", template_mode="fixed", template_lang="ru")
    with pytest.raises(ConfigError, match="template mode"):
        b.examples("ko", template_mode="translated")
    one = b.examples("ko", all_templates=False)
    assert len(one) == 2 and one[0]["template_id"] != one[1]["template_id"]


def test_max_items_keeps_the_first_items_with_all_their_templates(bench_dirs):
    b = bench("xnli", bench_dirs)
    ex = b.examples("en", max_items=2)
    assert len(ex) == 2 * 3 and {e["id"].split("/")[3] for e in ex} == {"0", "1"}
    with pytest.raises(ConfigError, match="max_items"):
        b.examples("en", max_items=0)


# ------------------------------------------------------------------------------------------------ errors
def _one_line(err):
    return "\n" not in str(err.value)


def test_unknown_benchmark_is_one_line():
    with pytest.raises(ConfigError, match="unknown benchmark 'xnly'; registered: xnli") as err:
        benchmarks.get("xnly")
    assert _one_line(err)


@pytest.mark.parametrize("name,lang", [("xnli", "ko"), ("xcopa", "en"), ("kobest_boolq", "en"), ("tydiqa", "ja")])
def test_a_language_the_benchmark_lacks_is_one_line(name, lang, bench_dirs):
    with pytest.raises(ConfigError, match=f"benchmark '{name}' has no language '{lang}'") as err:
        bench(name, bench_dirs).examples(lang)
    assert _one_line(err)


def test_check_validates_without_reading_data(tmp_path):
    b = benchmarks.get("xnli", source=str(tmp_path / "not_there_yet"))
    assert b.check("de") == ("test", "de")
    assert b.check("sw", "validation") == ("validation", "en")  # English fallback
    assert b.check("de", template_mode="cross", template_lang="en") == ("test", "en")
    for bad, match in [(dict(lang="ko"), "has no language"), (dict(lang="de", split="dev"), "has no split"),
                       (dict(lang="de", template_mode="cross", template_lang="de"), "cross mode")]:
        with pytest.raises(ConfigError, match=match):
            b.check(bad.pop("lang"), **bad)
    assert benchmarks.get("next_verse_choice").check("ko", template_mode="cross", template_lang="en") == \
        ("test", "en")


def test_unknown_split_is_one_line(bench_dirs):
    with pytest.raises(ConfigError, match="has no split 'test'; splits: train, eval") as err:
        bench("xstorycloze", bench_dirs).examples("en", "test")
    assert _one_line(err)


def test_a_file_in_the_wrong_schema_is_one_line(tmp_path):
    # SNLI-style field names instead of XNLI's
    fx.write_jsonl(tmp_path / "en" / "test.jsonl", [{"sentence1": "a", "sentence2": "b", "gold_label": "neutral"}])
    with pytest.raises(DataError, match=r"xnli: .*en/test record 0 lacks field\(s\) premise, hypothesis, label") as err:
        benchmarks.get("xnli", source=str(tmp_path)).examples("en")
    assert _one_line(err)


@pytest.mark.parametrize("record,match", [
    ({"premise": "a", "hypothesis": "b", "label": "neutral"}, "field 'label' = 'neutral'; expected one of 0, 1, 2"),
    ({"premise": "a", "hypothesis": "b", "label": 3}, "field 'label' = 3"),
    ({"premise": 1, "hypothesis": "b", "label": 0}, "field 'premise' must be a string"),
])
def test_a_label_outside_the_published_ids_is_one_line(tmp_path, record, match):
    fx.write_jsonl(tmp_path / "en" / "test.jsonl", [record])
    with pytest.raises(DataError, match=match) as err:
        benchmarks.get("xnli", source=str(tmp_path)).examples("en")
    assert _one_line(err)


def test_belebele_answer_zero_based_is_rejected(tmp_path):
    record = dict(fx.BELEBELE["eng_Latn"][0], correct_answer_num="0")
    fx.write_jsonl(tmp_path / "eng_Latn" / "test.jsonl", [record])
    with pytest.raises(DataError, match="correct_answer_num' = '0'"):
        benchmarks.get("belebele", source=str(tmp_path)).examples("en")


def test_missing_local_files_name_what_is_there(tmp_path, bench_dirs):
    with pytest.raises(DataError, match="does not exist") as err:
        benchmarks.get("xnli", source=str(tmp_path / "nowhere")).examples("en")
    assert _one_line(err)
    with pytest.raises(DataError, match=r"no fr/test.jsonl or .parquet .*holds: de, en") as err:
        bench("xnli", bench_dirs).examples("fr")
    assert _one_line(err)


def test_hub_parquet_conversion_layout_is_read(tmp_path):
    # <config>/<split>/0000.parquet, as the hub's parquet branch lays a dataset out
    fx.write_parquet(tmp_path / "en" / "test" / "0000.parquet", fx.XWINOGRAD["en"])
    ex = benchmarks.get("xwinograd", source=str(tmp_path)).examples("en")
    assert len(ex) == 3 and ex[0]["targets"] == "trophy"


def test_malformed_jsonl_is_one_line(tmp_path):
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "test.jsonl").write_text('{"premise": "a"\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"test.jsonl:1: not a JSON record") as err:
        benchmarks.get("xnli", source=str(tmp_path)).examples("en")
    assert _one_line(err)


def test_tydiqa_ids_without_a_language_prefix_are_rejected(tmp_path):
    record = dict(fx.TYDIQA["secondary_task"][0], id="3001470000000000000")
    fx.write_jsonl(tmp_path / "secondary_task" / "validation.jsonl", [record])
    with pytest.raises(DataError, match="does not start with a TyDi QA language"):
        benchmarks.get("tydiqa", source=str(tmp_path)).examples("en")


# ---------------------------------------------------------------------------------------------- hub path
@pytest.mark.parametrize("name,lang,hub,config,split", [
    ("xnli", "en", "facebook/xnli", "en", "test"),
    ("belebele", "ko", "facebook/belebele", "kor_Hang", "test"),
    ("xwinograd", "ja", "Muennighoff/xwinograd", "jp", "test"),
    ("tydiqa", "ko", "google-research-datasets/tydiqa", "secondary_task", "validation"),
    ("kobest_wic", "ko", "skt/kobest_v1", "wic", "test"),
    ("xstorycloze", "zh", "juletxara/xstory_cloze", "zh", "eval"),
])
def test_hub_names_configs_and_splits_go_to_datasets(monkeypatch, name, lang, hub, config, split):
    import datasets

    calls = []
    data = {"xnli": fx.XNLI["en"], "belebele": fx.BELEBELE["kor_Hang"], "xwinograd": fx.XWINOGRAD["jp"],
            "tydiqa": fx.TYDIQA["secondary_task"], "kobest_wic": fx.KOBEST["wic"], "xstorycloze": fx.XSTORYCLOZE["zh"]}

    def load_dataset(path, cfg, split):
        calls.append((path, cfg, split))
        return [json.loads(json.dumps(r)) for r in data[name]]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    b = benchmarks.get(name)
    assert b.source == hub
    assert b.examples(lang)
    assert calls == [(hub, config, split)]


def test_a_script_only_hub_set_is_read_from_its_parquet_conversion(monkeypatch):
    import datasets

    calls = []

    def load_dataset(path, cfg, split, revision=None):
        calls.append(revision)
        if revision is None:
            raise RuntimeError("Dataset scripts are no longer supported, but found mgsm.py")
        return [dict(r) for r in fx.MGSM["en"]]

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    assert benchmarks.get("mgsm").examples("en")[0]["references"] == ["18"]
    assert calls == [None, "refs/convert/parquet"]


def test_an_unreachable_hub_is_one_line(monkeypatch):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'facebook/xnli' on the Hub (LocalEntryNotFoundError)\nmore detail")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataError, match=r"xnli: cannot load hub dataset 'facebook/xnli' config 'en'.*source") as err:
        benchmarks.get("xnli").examples("en")
    assert _one_line(err)


# ------------------------------------------------------------------------------------ built-in adapter
def test_builtin_tasks_through_the_protocol_keep_meta_examples():
    b = benchmarks.get("country_name_pair")
    assert b.builtin and b.held_out and b.kind == meta.CHOICE and "ko" in b.languages
    ours = b.examples("ko", "test", max_items=3)
    theirs = meta.examples("country_name_pair", "ko", "test", all_templates=True)
    assert [{k: e[k] for k in META_KEYS} for e in ours] == theirs[:len(ours)]
    assert len({e["id"].rsplit("/", 1)[0] for e in ours}) == 3
    assert all(not e["template_fallback"] and e["null_inputs"] != e["inputs"] for e in ours)
    gen = benchmarks.get("month_after")
    assert not gen.held_out and gen.metrics == meta.TASKS["month_after"].metrics
    assert "null_inputs" not in gen.examples("en", max_items=1)[0]
    with pytest.raises(ConfigError, match="has no language"):
        benchmarks.get("verse_version_pair").examples("ko")


# ------------------------------------------------------------------------------------------- TFDS path
def test_tfds_source_maps_records_to_the_hub_schema(monkeypatch):
    import numpy as np
    import tensorflow_datasets as tfds

    calls = []
    tfds_xnli = [{  # TFDS's xnli layout, as tfds.as_numpy yields it (bytes, numpy ints)
        "premise": {"de": "Der Zug fährt um acht Uhr ab.".encode(), "en": b"The train leaves at eight."},
        "hypothesis": {"language": np.array([b"de", b"en"], dtype=object),
                       "translation": np.array(["Heute fährt kein Zug.".encode(), b"No train runs today."],
                                               dtype=object)},
        "label": np.int64(2)}]
    tfds_paws = [{"sentence1": "그는 런던에서 태어났다.".encode(), "sentence2": "그는 파리에서 태어났다.".encode(),
                  "label": np.int64(0)}]

    def load(name, split, data_dir, download):
        calls.append((name, split, data_dir, download))
        return {"xnli": tfds_xnli, "paws_x_wiki/ko": tfds_paws}[name]

    monkeypatch.setattr(tfds, "load", load)
    monkeypatch.setattr(tfds, "as_numpy", lambda ds: iter(ds))
    ex = benchmarks.get("xnli", source="tfds:/data/tfds").examples("de", "validation")
    assert ex[0]["inputs"].startswith("Der Zug fährt um acht Uhr ab.") and "Heute fährt kein Zug." in ex[0]["inputs"]
    assert ex[0]["answer"] == 2 and ex[0]["targets"] == "Nein"
    paws = benchmarks.get("pawsx", source="tfds").examples("ko")
    assert paws[0]["targets"] == "아니요"
    assert calls == [("xnli", "validation", "/data/tfds", False), ("paws_x_wiki/ko", "test", None, False)]
    with pytest.raises(ConfigError, match="'belebele' is not in TensorFlow Datasets") as err:
        benchmarks.get("belebele", source="tfds").examples("ko")
    assert _one_line(err)


def test_an_unprepared_tfds_dataset_is_one_line(monkeypatch):
    import tensorflow_datasets as tfds

    def load(*args, **kwargs):
        raise AssertionError("Dataset xnli: could not find data in /nowhere.\nPlease make sure to call ...")

    monkeypatch.setattr(tfds, "load", load)
    with pytest.raises(DataError, match=r"xnli: cannot read TFDS dataset 'xnli' split 'test'") as err:
        benchmarks.get("xnli", source="tfds:/nowhere").examples("en")
    assert _one_line(err)
