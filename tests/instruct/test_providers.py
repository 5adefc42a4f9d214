"""Instruction-data providers on fixture files in each set's published schema and layout: MultiAlpaca,
xP3, Aya (dataset and collection), P3 with T0's clusters, generic files; the built-in meta-datasets through
the same interface; seqio mixtures over them (languages, rates, held-out clusters); one-line errors for
bad input; a short end-to-end training run from gin/runs/instruct_multialpaca.gin."""

from __future__ import annotations

import collections
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import seqio

from xlt.data import mixtures
from xlt.errors import ConfigError, DataError
from xlt.instruct import meta
from xlt.instruct import tasks as it
from xlt.instruct.providers import get_provider, provider_names
from xlt.instruct.providers.builtin import MetaProvider
from xlt.instruct.providers.p3 import DATASET_CLUSTERS, DEFAULT_HELD_OUT as T0_HELD_OUT

VOCAB = seqio.ByteVocabulary()
LENGTHS = {"inputs": 256, "targets": 128}
REPO = Path(__file__).resolve().parents[2]
# MultiAlpaca fixture: examples per language file (deliberately unequal, so rates differ).
ALPACA_SIZES = {"ko": 30, "ja": 12, "de": 6}


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _parquet(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def write_multialpaca(root: Path, sizes: dict[str, int] = ALPACA_SIZES) -> Path:
    """The hub layout: <lang>.jsonl with {"instruction", "input", "output"}; every other record has an input."""
    for lang, n in sizes.items():
        _jsonl(root / f"{lang}.jsonl", [{"instruction": f"[{lang}] instruction {i}",
                                         "input": f"context {i}" if i % 2 else "", "output": f"[{lang}] answer {i}"}
                                        for i in range(n)])
    return root


def _mixture_tasks(name: str) -> list[str]:
    return [t.name for t in seqio.get_mixture_or_task(name).tasks]


# ------------------------------------------------------------------------------------------ the providers
def test_registry_names_every_provider():
    assert set(provider_names()) >= {"builtin", "multialpaca", "xp3", "xp3mt", "aya", "aya_collection", "p3", "files"}
    with pytest.raises(ConfigError, match="unknown instruction data 'alpaca'; registered: aya"):
        get_provider("alpaca")


def test_builtin_meta_datasets_implement_the_interface():
    cfg = meta.MetaConfig(max_train=20, langid_languages=("en", "ko", "de"))
    p = MetaProvider(cfg)
    assert p.templated and p.default_held_out == meta.DEFAULT_HELD_OUT
    assert {"en", "ko"} <= set(p.languages())
    assert [t.name for t in p.tasks("ko")] == list(meta.tasks_for("ko", config=cfg))
    assert p.clusters() == meta.CLUSTERS
    assert p.size("country_currency", "ko", "train") == len(meta.items("country_currency", "ko", "train", cfg))
    setting = it.Setting("cross", "en")
    got = p.examples("country_currency", "ko", "test", setting, all_templates=True)
    assert got == meta.examples("country_currency", "ko", "test", mode="cross", template_lang="en", config=cfg,
                                all_templates=True)
    chars = sum(len(e["inputs"]) + len(e["targets"]) for e in p.examples("month_after", "ko", "train", setting))
    assert p.size("month_after", "ko", "train", "characters", setting=setting) == chars


def test_multialpaca_provider(tmp_path):
    p = get_provider("multialpaca", write_multialpaca(tmp_path / "multialpaca"))
    assert p.languages() == ("de", "ja", "ko") and not p.templated
    assert p.splits("ko") == ("train",)
    assert [(t.name, t.cluster) for t in p.tasks("ko")] == [("multialpaca", "instructions")]
    rows = list(p.examples("multialpaca", "ko", "train"))
    assert len(rows) == p.size("multialpaca", "ko") == 30
    assert rows[0]["inputs"] == "[ko] instruction 0" and rows[1]["inputs"] == "[ko] instruction 1\n\ncontext 1"
    assert rows[1]["targets"] == "[ko] answer 1" and {r["content_lang"] for r in rows} == {"ko"}
    assert p.size("multialpaca", "ko", "train", "characters") == sum(len(r["inputs"]) + len(r["targets"]) for r in rows)
    assert p.size("multialpaca", "ko", "train", "tokens", VOCAB) == sum(
        len(r["inputs"].encode()) + len(r["targets"].encode()) for r in rows)  # byte vocabulary: tokens = bytes
    only = get_provider("multialpaca", tmp_path / "multialpaca", languages=["ja"])
    assert only.languages() == ("ja",)


def test_xp3_provider_reads_per_prompt_files_not_merged(tmp_path):
    root = tmp_path / "xP3"
    a = [{"inputs": f"Sentence 1: a{i}\nSentence 2: b{i}\nParaphrase?", "targets": "Yes"} for i in range(5)]
    b = [{"inputs": f"요약: 문서 {i}", "targets": f"요약 {i}"} for i in range(3)]
    _jsonl(root / "ko" / "xp3_paws-x_ko_train_task_description-no-label.jsonl", a)
    _jsonl(root / "ko" / "xp3_GEM_xlsum_korean_train_summarize.jsonl", b)
    _jsonl(root / "ko" / "merged_ko.jsonl", a + b)  # the concatenation: must not be read twice
    _jsonl(root / "en" / "merged_en.jsonl", [{"inputs": "Q: 1+1?", "targets": "2"}] * 4)
    _jsonl(root / "code" / "merged_code.jsonl", [{"inputs": "def f():", "targets": "pass"}])  # not a language
    p = get_provider("xp3", root)
    assert p.languages() == ("en", "ko")
    assert [t.name for t in p.tasks("ko")] == ["gem_xlsum_korean_train_summarize",
                                                "paws_x_ko_train_task_description_no_label"]
    assert [t.name for t in p.tasks("en")] == ["xp3"] and p.size("xp3", "en") == 4
    assert sum(p.size(t.name, "ko") for t in p.tasks("ko")) == 8
    first = next(iter(p.examples("paws_x_ko_train_task_description_no_label", "ko", "train")))
    assert first["targets"] == "Yes" and first["cluster"] == "xp3"
    assert get_provider("xp3mt", root).name == "xp3mt"


def test_aya_dataset_and_collection(tmp_path):
    def aya(i: int, name: str, code: str) -> dict:
        return {"inputs": f"{name} question {i}", "targets": f"{name} answer {i}", "language": name,
                "language_code": code, "annotation_type": "original-annotations", "user_id": f"u{i}"}

    rows = [aya(i, "Korean", "kor") for i in range(4)] + [aya(i, "Yoruba", "yor") for i in range(3)] \
        + [aya(i, "Egyptian Arabic", "arz") for i in range(2)]
    root = tmp_path / "aya_dataset"
    _parquet(root / "data" / "train-00000-of-00001.parquet", rows)
    _parquet(root / "data" / "test-00000-of-00001.parquet", [aya(9, "Korean", "kor")])
    p = get_provider("aya", root)
    assert p.languages() == ("ar", "ko")  # Yoruba is not in xlt's table: skipped
    assert p.splits("ko") == ("train", "test")
    assert p.size("aya_dataset", "ko", "train") == 4 and p.size("aya_dataset", "ar", "train") == 2
    assert next(iter(p.examples("aya_dataset", "ko", "test")))["targets"] == "Korean answer 9"

    def coll(i: int, config: str, lang: str) -> dict:
        return {"id": i, "inputs": f"{config} in {i}", "targets": f"{config} out {i}", "dataset_name": config,
                "sub_dataset_name": "-", "task_type": "generation", "template_id": 1, "language": lang,
                "script": "Hang" if lang == "kor" else "Latn", "split": "train"}

    croot = tmp_path / "aya_collection"
    _parquet(croot / "translated_dolly" / "train-00000-of-00001.parquet",
             [coll(i, "translated_dolly", "kor") for i in range(5)] + [coll(9, "translated_dolly", "eng")])
    _parquet(croot / "templated_xlel_wd" / "train-00000-of-00001.parquet", [coll(i, "templated_xlel_wd", "kor")
                                                                            for i in range(2)])
    _parquet(croot / "templated_xlel_wd" / "validation-00000-of-00001.parquet", [coll(7, "templated_xlel_wd", "kor")])
    c = get_provider("aya_collection", croot)
    assert c.languages() == ("en", "ko")
    assert [(t.name, t.cluster) for t in c.tasks("ko")] == [("templated_xlel_wd", "templated"),
                                                            ("translated_dolly", "translated")]
    assert c.task_splits("templated_xlel_wd", "ko") == ("train", "validation")
    only = get_provider("aya_collection", croot, configs=["translated_dolly"])
    assert [t.name for t in only.tasks("ko")] == ["translated_dolly"]
    with pytest.raises(DataError, match="no config folder"):
        get_provider("aya_collection", croot, configs=["translated_flan_cot"]).languages()


def write_p3(root: Path) -> Path:
    """P3's parquet layout: <config>/<split>-00000-of-00001.parquet, configs = dataset + prompt."""
    def rows(config: str, n: int, target: str) -> list[dict]:
        return [{"answer_choices": ["Yes", "No"], "inputs": [1, 2, 3], "targets": [4],
                 "inputs_pretokenized": f"{config} input {i}\n", "targets_pretokenized": f" {target}"}
                for i in range(n)]

    for config, n in [("ag_news_classify_question_first", 8), ("adversarial_qa_dbidaf_answer_the_following_q", 4),
                      ("super_glue_cb_GPT_3_style", 6), ("super_glue_copa_best_option", 5),
                      ("super_glue_wic_same_sense", 3)]:
        _parquet(root / config / "train-00000-of-00001.parquet", rows(config, n, "World"))
        _parquet(root / config / "validation-00000-of-00001.parquet", rows(config, 2, "World"))
    score = [{"idx": [0, 0], "inputs": [1], "inputs_pretokenized": "x", "is_correct": True, "targets": [2],
              "targets_pretokenized": "Yes", "weight": 1.0}]
    _parquet(root / "super_glue_cb_GPT_3_style_score_eval" / "train-00000-of-00001.parquet", score)
    return root


def test_p3_provider_maps_configs_to_t0_clusters(tmp_path):
    p = get_provider("p3", write_p3(tmp_path / "P3"))
    assert p.languages() == ("en",) and p.default_held_out == T0_HELD_OUT
    clusters = {t.name: t.cluster for t in p.tasks("en")}
    assert clusters == {"ag_news": "topic_classification", "adversarial_qa_dbidaf": "extractive_qa",
                        "super_glue_cb": "natural_language_inference", "super_glue_copa": "sentence_completion",
                        "super_glue_wic": "word_sense"}
    rows = list(p.examples("super_glue_cb", "en", "train"))
    assert len(rows) == 6  # the _score_eval config is skipped
    assert rows[0]["inputs"] == "super_glue_cb_GPT_3_style input 0" and rows[0]["targets"] == "World"
    assert rows[0]["template_id"] == "GPT_3_style"
    # the table holds every T0 held-out dataset in a held-out cluster
    for dataset in ("anli", "super_glue_cb", "super_glue_rte", "super_glue_wsc.fixed", "winogrande_winogrande_xl",
                    "super_glue_copa", "hellaswag", "story_cloze_2016", "super_glue_wic"):
        assert DATASET_CLUSTERS[dataset] in T0_HELD_OUT
    # P3's original release: data/<config>/<split>.tfrecord-00000-of-00001 with tf.train.Example records
    import tensorflow as tf

    old = tmp_path / "P3_tfrecord" / "data" / "ag_news_classify" / "train.tfrecord-00000-of-00001"
    old.parent.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(old)) as writer:
        def text(value: str) -> tf.train.Feature:
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value.encode()]))

        for i in range(3):
            feature = {"inputs_pretokenized": text(f"news {i}\n"), "targets_pretokenized": text(" Sports"),
                       "inputs": tf.train.Feature(int64_list=tf.train.Int64List(value=[1, 2]))}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    tfr = get_provider("p3", tmp_path / "P3_tfrecord")
    assert [(r["inputs"], r["targets"], r["template_id"]) for r in tfr.examples("ag_news", "en", "train")] == [
        (f"news {i}", "Sports", "classify") for i in range(3)]
    _parquet(tmp_path / "P3" / "some_new_dataset_prompt" / "train-00000-of-00001.parquet",
             [{"inputs_pretokenized": "a", "targets_pretokenized": "b"}])
    with pytest.raises(DataError, match="'some_new_dataset_prompt' belongs to no dataset of the T0 cluster table"):
        get_provider("p3", tmp_path / "P3").languages()
    mapped = get_provider("p3", tmp_path / "P3", extra_clusters={"some_new_dataset": "sentiment"})
    assert "some_new_dataset" in [t.name for t in mapped.tasks("en")]


def test_p3_training_mixture_excludes_held_out_clusters(tmp_path):
    p = get_provider("p3", write_p3(tmp_path / "P3"))
    reg = it.register_instruct_tasks(vocab=VOCAB, languages=("en",), train_languages=("en",), data=p)
    assert reg.train_mixture == "instruct_p3_train_en"
    trained = {it.task_info(n).task for n in _mixture_tasks(reg.train_mixture)}
    assert trained == {"ag_news", "adversarial_qa_dbidaf"}
    assert {it.task_info(n).task for n in _mixture_tasks(reg.heldout_mixtures["en"])} == {
        "super_glue_cb", "super_glue_copa", "super_glue_wic"}
    assert reg.train_rates == pytest.approx({"instruct_p3_ag_news_en": 8 / 12,
                                             "instruct_p3_adversarial_qa_dbidaf_en": 4 / 12})
    ds = seqio.get_mixture_or_task(reg.train_mixture).get_dataset(
        LENGTHS, split="train", shuffle=True, seed=0, num_epochs=None, passthrough_features=["cluster", "task"])
    seen = collections.Counter(ex["cluster"].decode() for ex in ds.take(200).as_numpy_iterator())
    assert set(seen) == {"topic_classification", "extractive_qa"}
    capped = it.register_instruct_tasks(vocab=VOCAB, languages=("en",), train_languages=("en",), data=p,
                                        max_task_examples=4, mixture_name="p3_capped")
    assert capped.train_rates == pytest.approx({"instruct_p3_ag_news_en": 0.5,
                                                "instruct_p3_adversarial_qa_dbidaf_en": 0.5})
    # a held-out cluster can be brought back only by naming held_out explicitly
    every = it.register_instruct_tasks(vocab=VOCAB, languages=("en",), train_languages=("en",), data=p, held_out=())
    assert every.train_mixture == "instruct_p3_train_en_all_clusters"
    assert len(_mixture_tasks(every.train_mixture)) == 5


def test_files_provider_with_a_field_mapping(tmp_path):
    _jsonl(tmp_path / "mine" / "train.jsonl", [{"prompt": f"p{i}", "response": f"r{i}",
                                                "locale": "ko" if i % 3 else "en"}
                                               for i in range(9)])
    _parquet(tmp_path / "mine" / "test-00000-of-00001.parquet", [{"prompt": "pt", "response": "rt", "locale": "ko"}])
    p = get_provider("files", tmp_path / "mine", inputs_field="prompt", targets_field="response", lang_field="locale",
                     task="my_instructions")
    assert p.languages() == ("en", "ko")
    assert p.size("my_instructions", "ko", "train") == 6 and p.size("my_instructions", "en", "train") == 3
    assert p.task_splits("my_instructions", "ko") == ("train", "test")
    fixed = get_provider("files", tmp_path / "mine" / "train.jsonl", inputs_field="prompt", targets_field="response",
                         lang="ja")
    assert fixed.languages() == ("ja",) and [t.name for t in fixed.tasks("ja")] == ["mine"]
    with pytest.raises(ConfigError, match="exactly one of lang"):
        get_provider("files", tmp_path / "mine", inputs_field="prompt", targets_field="response")


# -------------------------------------------------------------------------------- mixtures over the data
@pytest.fixture(scope="module")
def alpaca_dir(tmp_path_factory) -> Path:
    return write_multialpaca(tmp_path_factory.mktemp("data") / "multialpaca")


def test_multialpaca_mixture_languages_and_rates(alpaca_dir):
    from xlt.data import pipeline

    langs = tuple(ALPACA_SIZES)
    p = get_provider("multialpaca", alpaca_dir)
    reg = it.register_instruct_tasks(vocab=VOCAB, languages=langs, train_languages=langs, data=p)
    assert reg.train_mixture == "instruct_multialpaca_train_ko_ja_de" and reg.data == "multialpaca"
    total = sum(ALPACA_SIZES.values())
    assert reg.train_rates == pytest.approx({f"instruct_multialpaca_{lang}": n / total
                                             for lang, n in ALPACA_SIZES.items()})
    ds = seqio.get_mixture_or_task(reg.train_mixture).get_dataset(
        LENGTHS, split="train", shuffle=True, seed=0, num_epochs=None, passthrough_features=["lang"])
    seen = collections.Counter(ex["lang"].decode() for ex in ds.take(1200).as_numpy_iterator())
    for lang, n in ALPACA_SIZES.items():
        assert seen[lang] / 1200 == pytest.approx(n / total, abs=0.05)
    # batches through the pipeline carry the mixture's languages, per task metadata
    lengths = pipeline.task_feature_lengths("prefix_lm", 256, 128)
    batch = next(pipeline.batches(reg.train_mixture, "prefix_lm", lengths, batch_size=4, seed=0, pack=False))
    assert batch["decoder_target_tokens"].shape == (4, 256) and batch["decoder_loss_weights"].sum() > 0
    assert set(pipeline.task_labels(reg.train_mixture)) == set(langs)

    sizes = {lang: float(n) for lang, n in ALPACA_SIZES.items()}
    temp = it.register_instruct_tasks(vocab=VOCAB, languages=langs, train_languages=langs, data=p, rate="temperature",
                                      alpha=0.5, mixture_name="alpaca_temp")
    want = mixtures.temperature(sizes, 0.5)
    assert temp.train_rates == pytest.approx({f"instruct_multialpaca_{k}": v for k, v in want.items()})
    uni = it.register_instruct_tasks(vocab=VOCAB, languages=langs, train_languages=langs, data=p, rate="unimax",
                                     budget=36, mixture_name="alpaca_unimax")
    want = mixtures.unimax(sizes, 36)  # de capped at one epoch (6), the rest shared equally (15, 15)
    assert uni.train_rates == pytest.approx({f"instruct_multialpaca_{k}": v for k, v in want.items()})
    assert uni.train_rates["instruct_multialpaca_de"] == pytest.approx(6 / 36)
    chars = it.register_instruct_tasks(vocab=VOCAB, languages=langs, train_languages=langs, data=p,
                                       size_unit="characters", mixture_name="alpaca_chars")
    by_chars = {lang: p.size("multialpaca", lang, "train", "characters") for lang in langs}
    assert chars.train_rates == pytest.approx({f"instruct_multialpaca_{k}": v / sum(by_chars.values())
                                               for k, v in by_chars.items()})
    from xlt.data import tasks as data_tasks
    meta_ = data_tasks.require_task_meta("instruct_multialpaca_ko")
    assert meta_.language == "ko" and meta_.unit == "characters" and meta_.size_of("x") == by_chars["ko"]


def test_train_languages_select_the_mixture(alpaca_dir):
    reg = it.register_instruct_tasks(vocab=VOCAB, languages=("ko", "ja"), train_languages=("ja",),
                                     data=get_provider("multialpaca", alpaca_dir))
    assert _mixture_tasks(reg.train_mixture) == ["instruct_multialpaca_ja"]
    ds = seqio.get_mixture_or_task(reg.train_mixture).get_dataset(
        LENGTHS, split="train", shuffle=False, num_epochs=1, passthrough_features=["lang"])
    got = list(ds.as_numpy_iterator())
    assert len(got) == ALPACA_SIZES["ja"] and {ex["lang"] for ex in got} == {b"ja"}
    first = VOCAB.decode(got[0]["inputs"][:-1].tolist())
    assert first == "[ja] instruction 0" and got[0]["inputs"][-1] == 1  # EOS appended


# ------------------------------------------------------------------------------------------------- errors
def _first_line(error: Exception) -> str:
    """What the CLI prints (``xlt: error: <first line>``)."""
    return str(error).splitlines()[0]


def test_errors_are_one_line_and_come_before_registration(tmp_path, alpaca_dir):
    p = get_provider("multialpaca", alpaca_dir)
    before = set(seqio.TaskRegistry.names())
    cases = [
        (dict(languages=("ko", "en"), train_languages=("en",)), DataError,
         "instruction data 'multialpaca' has no training language 'en'; it has: de, ja, ko"),
        (dict(languages=("ko",), train_languages=("ko",), template_mode="cross", template_lang="en"), ConfigError,
         "already rendered"),
        (dict(languages=("ko",), train_languages=("ko",), held_out=("paraphrase",)), ConfigError,
         "unknown task cluster 'paraphrase'"),
        (dict(languages=("ko",), train_languages=("ko",), rate="unimax"), ConfigError,
         "needs register_instruct_tasks.budget"),
        (dict(languages=("ko",), train_languages=("ko",), size_unit="bytes"), ConfigError, "size unit 'bytes'"),
        (dict(languages=("ko",), train_languages=("ko",), size_unit="characters", max_task_examples=10), ConfigError,
         "caps tasks in examples"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message) as info:
            it.register_instruct_tasks(vocab=VOCAB, data=p, mixture_name="never", **kwargs)
        assert re.search(message, _first_line(info.value))  # gin appends its call context on later lines
    wrong = _jsonl(tmp_path / "bad" / "ko.jsonl", [{"inputs": "q", "targets": "a"}])  # xP3's schema, not MultiAlpaca's
    with pytest.raises(DataError, match=r"ko\.jsonl:1: missing field 'instruction' \(has: inputs, targets\)") as info:
        it.register_instruct_tasks(vocab=VOCAB, languages=("ko",), train_languages=("ko",),
                                   data=get_provider("multialpaca", wrong.parent), mixture_name="never")
    assert "missing field 'instruction'" in _first_line(info.value)
    p3_wrong = _jsonl(tmp_path / "p3" / "ag_news_classify" / "train.jsonl", [{"inputs": "q", "targets": "a"}])
    with pytest.raises(DataError, match=r"train\.jsonl:1: missing field 'inputs_pretokenized'"):
        get_provider("p3", p3_wrong.parent.parent).languages()
    aya_wrong = _jsonl(tmp_path / "aya" / "train.jsonl", [{"inputs": "q", "targets": "a", "lang": "ko"}])
    with pytest.raises(DataError, match=r"train\.jsonl:1: missing field 'language_code'"):
        get_provider("aya", aya_wrong.parent).languages()
    with pytest.raises(DataError, match="not a readable Parquet file"):
        (tmp_path / "broken").mkdir()
        (tmp_path / "broken" / "ko.parquet").write_bytes(b"not parquet")
        get_provider("files", tmp_path / "broken", lang="ko").languages()
    with pytest.raises(DataError, match="no data files found"):
        (tmp_path / "empty").mkdir()
        get_provider("multialpaca", tmp_path / "empty").languages()
    with pytest.raises(DataError, match="neither a local file or directory nor a hub name"):
        get_provider("multialpaca", str(tmp_path / "absent" / "dir")).languages()
    with pytest.raises(ConfigError, match="unknown instruction data 'xp4'"):
        it.register_instruct_tasks(vocab=VOCAB, languages=("ko",), train_languages=("ko",), data="xp4")
    assert set(seqio.TaskRegistry.names()) == before and "never" not in seqio.MixtureRegistry.names()


def test_hub_source_fails_in_one_line_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(DataError, match="cannot fetch hub dataset 'DAMO-NLP-MT/multialpaca'") as info:
        get_provider("multialpaca", languages=["ko"]).languages()
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match="'data/multialpaca' is no local path, and as a hub name: cannot fetch"):
        get_provider("multialpaca", "data/multialpaca", languages=["ko"]).languages()


# ------------------------------------------------------------------------------------------- gin files
def write_xp3(root: Path) -> Path:
    _jsonl(root / "ko" / "xp3_paws-x_ko_train_task_description.jsonl",
           [{"inputs": f"문장 {i}\n같은 뜻인가요?", "targets": "예" if i % 2 else "아니요"}
            for i in range(6)])
    _jsonl(root / "en" / "xp3_paws-x_en_train_task_description.jsonl",
           [{"inputs": f"Sentence {i}\nSame meaning?", "targets": "Yes"} for i in range(10)])
    return root


def write_aya(root: Path) -> Path:
    rows = [{"inputs": f"q{i}", "targets": f"a{i}", "language": "Korean" if i % 2 else "Standard Arabic",
             "language_code": "kor" if i % 2 else "arb", "annotation_type": "original-annotations",
             "user_id": "u"} for i in range(10)]
    return _parquet(root / "data" / "train-00000-of-00001.parquet", rows).parent.parent


@pytest.mark.parametrize("gin_file, writer, langs", [
    ("runs/instruct_multialpaca.gin", write_multialpaca, ["ko", "de"]),
    ("runs/instruct_xp3.gin", write_xp3, ["en", "ko"]),
    ("runs/instruct_aya.gin", write_aya, ["ar", "ko"]),
])
def test_gin_files_register_their_mixture_from_a_local_copy(tmp_path, gin_file, writer, langs):
    import gin

    from xlt import cli, train

    data_dir = writer(tmp_path / "data")
    cli.load_gin(["models/gpt_tiny.gin", gin_file], [f"DATA_DIR = '{data_dir}'", f"TRAIN_LANGUAGES = {langs}",
                                                     "MODEL_DIR = 'unused'"])
    try:
        train.register_data()
        name = gin.query_parameter("%MIXTURE_OR_TASK_NAME")
        template_mode = gin.query_parameter("%TEMPLATE_MODE")
    finally:
        gin.clear_config()
    assert template_mode == "native"
    tasks = _mixture_tasks(name)
    assert {it.task_info(t).lang for t in tasks} == set(langs)
    assert {it.task_info(t).provider.name for t in tasks} == {Path(gin_file).stem.removeprefix("instruct_")}


# ------------------------------------------------------------------------------------------- end to end
def _train(args: list[str], env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "JAX_PLATFORMS": "cpu", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "xlt.train", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow  # two `python -m xlt.train` processes: ~1 min on an idle 2-core machine, minutes when loaded
def test_train_from_the_multialpaca_gin_file(tmp_path, alpaca_dir):
    model_dir = tmp_path / "run"
    common = ["--gin_file=models/gpt_tiny.gin", "--gin_file=runs/instruct_multialpaca.gin",
              f"--gin.DATA_DIR='{alpaca_dir}'", "--gin.TRAIN_LANGUAGES=['ko', 'ja', 'de']", "--gin.TRAIN_STEPS=3",
              "--gin.BATCH_SIZE=8", "--gin.SEQ_LEN=128", "--gin.INPUT_LEN=96", "--gin.CHECKPOINT_EVERY=3"]
    bad = _train(common + [f"--gin.MODEL_DIR='{model_dir}'", "--gin.TRAIN_LANGUAGES=['ko', 'en']"])
    assert bad.returncode == 2, bad.stderr[-2000:]
    last = bad.stderr.strip().splitlines()[-1]
    want = "xlt: error: instruction data 'multialpaca' has no training language 'en'; it has: ko"
    assert last == want, bad.stderr[-2000:]
    assert not model_dir.exists()  # refused before anything was written

    done = _train(common + [f"--gin.MODEL_DIR='{model_dir}'"])
    assert done.returncode == 0, done.stderr[-3000:]
    records = [json.loads(line) for line in (model_dir / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["step"] == 3 and np.isfinite(records[-1]["loss"])
    shares = {k.split("/", 1)[1] for r in records for k in r if k.startswith("lang_share/")}
    assert shares <= {"ko", "ja", "de"} and shares
