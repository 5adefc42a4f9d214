"""seqio Tasks and Mixtures over the meta-datasets: features and pass-through strings, zero-shot training
mixtures, rates, loss weights after the prefix-LM and encoder-decoder feature converters, reading batches
through xlt.data.pipeline, gin binding, eval accessors and errors."""

from __future__ import annotations

import gin
import numpy as np
import pytest
import seqio

from xlt.errors import ConfigError, DataError
from xlt.instruct import meta
from xlt.instruct import tasks as it

VOCAB = seqio.ByteVocabulary()
CFG = meta.MetaConfig(max_train=120, langid_languages=("en", "ko", "de", "fr", "es"))
LENGTHS = {"inputs": 1024, "targets": 256}


@pytest.fixture(scope="module")
def reg() -> it.Registration:
    return it.register_instruct_tasks(vocab=VOCAB, languages=("en", "ko"), train_languages=("en",), config=CFG)


def _mixture_tasks(name: str) -> list[str]:
    return [t.name for t in seqio.get_mixture_or_task(name).tasks]


def test_tasks_tokenize_and_pass_strings_through(reg):
    name = reg.tasks[("country_currency", "ko")]
    assert name == "instruct_native_country_currency_ko"
    ds = seqio.get_mixture_or_task(name).get_dataset(LENGTHS, split="test", shuffle=False, num_epochs=1)
    got = list(ds.as_numpy_iterator())
    raw = it.registered_examples(name, "test")
    assert len(got) == len(raw) == 3 * len(meta.items("country_currency", "ko", "test", CFG))  # every template
    for ex, want in zip(got, raw):
        assert ex["inputs"].dtype == np.int32 and ex["inputs"][-1] == 1 and ex["targets"][-1] == 1  # EOS
        assert VOCAB.decode(ex["inputs"][:-1].tolist()) == want["inputs"]
        assert VOCAB.decode(ex["targets"][:-1].tolist()) == want["targets"]
        assert (ex["lang"], ex["task"], ex["cluster"]) == (b"ko", b"country_currency", b"factual_qa")
        assert ex["template_id"].decode() == want["template_id"]
    train = seqio.get_mixture_or_task(name).get_dataset(LENGTHS, split="train", shuffle=False, num_epochs=1)
    assert sum(1 for _ in train) == len(meta.items("country_currency", "ko", "train", CFG))  # one template


def test_zero_shot_mixture_never_contains_held_out_clusters(reg):
    assert reg.train_mixture == "instruct_native_train_en"
    names = _mixture_tasks(reg.train_mixture)
    clusters = {it.task_info(n).task: meta.TASKS[it.task_info(n).task].cluster for n in names}
    assert set(clusters.values()) == set(meta.CLUSTERS) - set(meta.DEFAULT_HELD_OUT)
    assert {it.task_info(n).lang for n in names} == {"en"}
    assert sum(reg.train_rates.values()) == pytest.approx(1.0)
    ds = seqio.get_mixture_or_task(reg.train_mixture).get_dataset(
        LENGTHS, split="train", shuffle=True, seed=0, num_epochs=None, passthrough_features=["lang", "cluster"])
    seen = {(ex["lang"].decode(), ex["cluster"].decode()) for ex in ds.take(150).as_numpy_iterator()}
    assert {lang for lang, _ in seen} == {"en"}
    assert not {cluster for _, cluster in seen} & set(meta.DEFAULT_HELD_OUT)
    assert len({cluster for _, cluster in seen}) >= 3
    for lang in ("en", "ko"):
        held = {meta.TASKS[it.task_info(n).task].cluster for n in _mixture_tasks(reg.heldout_mixtures[lang])}
        assert held == set(meta.DEFAULT_HELD_OUT)


def test_train_languages_and_rates():
    both = it.register_instruct_tasks(vocab=VOCAB, languages=("en", "ko"), train_languages=("en", "ko"), config=CFG)
    assert both.train_mixture == "instruct_native_train_en_ko"
    share = {lang: sum(r for n, r in both.train_rates.items() if n.endswith(f"_{lang}")) for lang in ("en", "ko")}
    sizes = {lang: sum(len(meta.items(t, lang, "train", CFG)) for t in meta.training_tasks()) for lang in share}
    assert share["en"] == pytest.approx(sizes["en"] / (sizes["en"] + sizes["ko"]))
    flat = it.register_instruct_tasks(vocab=VOCAB, languages=("en", "ko"), train_languages=("en", "ko"),
                                      config=CFG, rate="temperature", alpha=0.0, task_alpha=0.0,
                                      mixture_name="xlt_test_instruct_flat")
    assert all(r == pytest.approx(1 / len(flat.train_rates)) for r in flat.train_rates.values())
    full = it.register_instruct_tasks(vocab=VOCAB, languages=("en",), held_out=(), config=CFG)
    assert full.train_mixture == "instruct_native_train_en_all_clusters"
    assert {meta.TASKS[it.task_info(n).task].cluster for n in _mixture_tasks(full.train_mixture)} == set(meta.CLUSTERS)
    cross = it.register_instruct_tasks(vocab=VOCAB, languages=("ko",), train_languages=("ko",),
                                       template_mode="cross", template_lang="en", config=CFG)
    assert cross.train_mixture == "instruct_cross_en_train_ko"
    row = it.registered_examples(cross.tasks[("month_after", "ko")], "test")[0]
    assert (row["content_lang"], row["template_lang"]) == ("ko", "en")


def _task_examples(name: str, n: int) -> list[dict]:
    ds = seqio.get_mixture_or_task(name).get_dataset(LENGTHS, split="validation", shuffle=False, num_epochs=1)
    return list(ds.take(n).as_numpy_iterator())


def _converted(name: str, converter: seqio.FeatureConverter, n: int) -> list[dict]:
    ds = seqio.get_mixture_or_task(name).get_dataset(LENGTHS, split="validation", shuffle=False, num_epochs=1)
    return list(converter(ds.take(n), LENGTHS).as_numpy_iterator())


@pytest.mark.parametrize("task", ["verse_translation_choice", "country_currency"])
def test_prefix_lm_puts_loss_on_the_response_only(reg, task):
    name = reg.tasks[(task, "ko")]
    raw = _task_examples(name, 6)
    rows = _converted(name, seqio.PrefixLMFeatureConverter(pack=False), 6)
    assert len(rows) == len(raw) == 6
    for ex, row in zip(raw, rows):
        n_in, n_tg = len(ex["inputs"]), len(ex["targets"])
        loss, causal = row["decoder_loss_weights"], row["decoder_causal_attention"]
        assert np.all(loss[:n_in] == 0) and np.all(loss[n_in:n_in + n_tg] == 1) and np.all(loss[n_in + n_tg:] == 0)
        assert np.array_equal(row["decoder_target_tokens"][:n_in + n_tg], np.concatenate([ex["inputs"], ex["targets"]]))
        assert np.all(causal[:n_in + 1] == 1) and np.all(causal[n_in + 1:] == 0)  # prompt is bidirectional
    packed = _converted(name, seqio.PrefixLMFeatureConverter(pack=True), 6)
    loss = np.concatenate([r["decoder_loss_weights"] for r in packed])
    causal = np.concatenate([r["decoder_causal_attention"] for r in packed])
    segments = sum(len(set(r["decoder_segment_ids"][r["decoder_segment_ids"] > 0])) for r in packed)
    assert loss.sum() == sum(len(ex["targets"]) for ex in raw)
    assert causal.sum() == sum(len(ex["inputs"]) for ex in raw) + segments
    assert (loss * causal).sum() == segments  # only the first target position is also a prompt position


def test_encdec_puts_loss_on_the_targets_only(reg):
    name = reg.tasks[("verse_translation", "ko")]
    raw = _task_examples(name, 4)
    rows = _converted(name, seqio.EncDecFeatureConverter(pack=False), 4)
    for ex, row in zip(raw, rows):
        n_in, n_tg = len(ex["inputs"]), len(ex["targets"])
        assert np.array_equal(row["encoder_input_tokens"][:n_in], ex["inputs"])
        assert np.array_equal(row["decoder_target_tokens"][:n_tg], ex["targets"])
        assert row["decoder_loss_weights"].sum() == n_tg and np.all(row["decoder_loss_weights"][:n_tg] == 1)


def test_batches_through_the_pipeline(reg):
    from xlt.data import pipeline

    lengths = pipeline.task_feature_lengths("prefix_lm", 1024, 768)
    stream = pipeline.batches(reg.train_mixture, "prefix_lm", lengths, batch_size=2, seed=0, pack=False)
    for _ in range(2):
        batch = next(stream)
        assert batch["decoder_target_tokens"].shape == (2, 1024)
        assert batch["decoder_loss_weights"].sum() > 0
    assert set(pipeline.task_labels(reg.train_mixture)) == {"en"}


def test_gin_binds_train_languages_and_config():
    gin.parse_config("register_instruct_tasks.languages = ('en', 'ko')\n"
                     "register_instruct_tasks.train_languages = ('en', 'ko')\n"
                     "register_instruct_tasks.held_out = ('paraphrase', 'sentence_completion', 'language_id')\n"
                     "register_instruct_tasks.config = @instruct_config()\n"
                     "instruct_config.max_train = 60\n"
                     "instruct_config.langid_languages = ('en', 'ko', 'de', 'fr', 'es')")
    try:
        got = it.register_instruct_tasks(vocab=VOCAB)
    finally:
        gin.clear_config()
    assert got.train_mixture == "instruct_native_train_en_ko"
    infos = [it.task_info(n) for n in _mixture_tasks(got.train_mixture)]
    assert {info.lang for info in infos} == {"en", "ko"}
    assert {info.config.max_train for info in infos} == {60}
    assert max(len(meta.items(i.task, i.lang, "train", i.config)) for i in infos) == 60


def test_eval_examples_give_options_and_answers():
    rows = it.eval_examples("verse_translation_choice", "ko", "test", config=CFG)
    assert len(rows) == 3 * len(meta.items("verse_translation_choice", "ko", "test", CFG))
    assert all(len(r["options"]) == CFG.num_options and r["options"][r["answer"]] == r["targets"] for r in rows)
    cross = it.eval_examples("verse_translation_choice", "ko", "test", template_mode="cross", template_lang="en",
                             config=CFG, all_templates=False)
    assert {r["template_lang"] for r in cross} == {"en"} and len(cross) == len(rows) // 3
    with pytest.raises(ConfigError, match="needs template_lang"):
        it.eval_examples("verse_translation_choice", "ko", template_mode="cross")


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(languages=("en", "")), DataError, "empty language code"),
    (dict(languages=("en", "xx")), DataError, "unknown language code 'xx'"),
    (dict(languages="en"), ConfigError, "list of language codes"),
    (dict(languages=("en",), train_languages=("ko",)), ConfigError, r"train_languages \['ko'\] are not in"),
    (dict(languages=("en", "en")), ConfigError, "repeats"),
    (dict(held_out=("nli",)), ConfigError, "unknown task cluster 'nli'"),
    (dict(held_out=tuple(meta.CLUSTERS)), ConfigError, "leaves no training task"),
    (dict(languages=("sw",), train_languages=("sw",)), ConfigError, "no native sw templates"),
    (dict(template_mode="cross", template_lang="en"), ConfigError, "cross mode needs a template language other"),
    (dict(template_mode="fixed"), ConfigError, "needs template_lang"),
    (dict(template_mode="native", template_lang="en"), ConfigError, "takes no template_lang"),
    (dict(template_mode="sideways", template_lang="en"), ConfigError, "template_mode 'sideways'"),
    (dict(rate="uniform"), ConfigError, "rate 'uniform'"),
    (dict(tasks=("capital_city",)), ConfigError, "unknown instruction task"),
    (dict(tasks=("next_verse_choice",)), ConfigError, "leaves no training task"),
])
def test_registration_errors(kwargs, error, match):
    before = set(seqio.TaskRegistry.names())
    with pytest.raises(error, match=match):
        it.register_instruct_tasks(vocab=VOCAB, config=CFG, **kwargs)
    assert set(seqio.TaskRegistry.names()) == before
    with pytest.raises(ConfigError, match="not a registered instruction task"):
        it.task_info("instruct_native_nothing_en")


def test_fallback_setting_for_a_language_without_templates():
    got = it.register_instruct_tasks(vocab=VOCAB, languages=("sw",), train_languages=("sw",), fallback_lang="en",
                                     tasks=("country_currency", "month_after"), config=CFG)
    assert got.setting == "native_or_en"
    assert got.tasks[("month_after", "sw")] == "instruct_native_or_en_month_after_sw"
    row = it.registered_examples(got.tasks[("month_after", "sw")], "validation")[0]
    assert (row["content_lang"], row["template_lang"]) == ("sw", "en")
