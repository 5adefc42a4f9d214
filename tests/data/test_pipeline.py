"""The input pipeline: language tags survive packing exactly, realised shares follow the analytic weights
(static and per curriculum stage), and a resumed stream equals the uninterrupted one across a boundary."""

import numpy as np
import pytest

from xlt.data import mixtures as mx
from xlt.data import pipeline, tasks
from xlt.errors import ConfigError, DataError

LANGS = ("en", "ko", "zh", "sw")


@pytest.fixture(scope="module", autouse=True)
def registered():
    tasks.register_tasks(languages=LANGS)


def row_tasks(batch):
    """Task index of each unpacked row (the tag of its target tokens)."""
    tt = batch[pipeline.TARGET_TASK]
    return tt.max(axis=1)


def realised_shares(name, n_rows, stride_batches=256, start_step=0, steps=None):
    it = pipeline.batches(name, "decoder", {"targets": 8}, stride_batches, seed=3, start_step=start_step,
                          pack=False)
    counts = np.zeros(len(it.labels))
    for _ in range(steps or -(-n_rows // stride_batches)):
        counts += np.bincount(row_tasks(next(it)), minlength=len(it.labels))
    return dict(zip(it.labels, counts / counts.sum())), counts.sum()


@pytest.mark.parametrize("converter,lengths,task", [
    ("decoder", {"targets": 96}, "xlt_test_tags"),
    ("prefix_lm", {"inputs": 48, "targets": 48}, "xlt_test_tags_prefix"),
    ("encdec", {"inputs": 48, "targets": 48}, "xlt_test_tags_prefix"),
])
def test_language_tags_survive_packing(converter, lengths, task):
    pattern = "bible_{lang}" if task == "xlt_test_tags" else "bible_{lang}_prefix"
    mx.register_mixture(task, mx.proportional(mx.bible_sizes(LANGS)), task_pattern=pattern)
    vocab = tasks.vocabulary()
    it = pipeline.batches(task, converter, lengths, 8, seed=0)
    assert sorted(it.labels) == sorted(LANGS)
    for _ in range(3):
        b = next(it)
        tt, target, weights = b[pipeline.TARGET_TASK], b["decoder_target_tokens"], b["decoder_loss_weights"]
        assert target.max() < vocab.vocab_size and b["decoder_input_tokens"].max() < vocab.vocab_size
        np.testing.assert_array_equal(tt >= 0, weights > 0)
        segments = b["decoder_segment_ids"]
        for row in range(target.shape[0]):
            for seg in set(segments[row][weights[row] > 0]):
                at = (segments[row] == seg) & (weights[row] > 0)
                labels = set(tt[row][at])
                assert len(labels) == 1, "one segment, one language"
                lang = it.labels[labels.pop()]
                text = vocab.decode([int(t) for t in target[row][at] if t > 1])
                has_hangul = any("\uac00" <= c <= "\ud7a3" for c in text)
                has_han = any("\u4e00" <= c <= "\u9fff" for c in text)
                assert has_hangul == (lang == "ko"), (lang, text)
                if len(text) > 3:
                    assert has_han == (lang == "zh"), (lang, text)


def test_static_mixture_shares_match_weights():
    weights = mx.temperature(mx.bible_sizes(LANGS), alpha=0.3)
    mx.language_mixture(name="xlt_test_temperature", languages=LANGS, rate="temperature", alpha=0.3)
    shares, n = realised_shares("xlt_test_temperature", 12_000)
    assert n >= 10_000
    for lang in LANGS:
        assert abs(shares[lang] - weights[lang]) < 0.01, (lang, shares, weights)


def test_unimax_mixture_shares_match_weights():
    sizes = mx.bible_sizes(LANGS)
    budget = 0.5 * sum(sizes.values())
    weights = mx.unimax(sizes, budget, max_epochs=1.0)
    mx.language_mixture(name="xlt_test_unimax", languages=LANGS, rate="unimax", budget=budget)
    shares, _ = realised_shares("xlt_test_unimax", 12_000)
    for lang in LANGS:
        assert abs(shares[lang] - weights[lang]) < 0.01, (lang, shares, weights)


def test_curriculum_switches_weights_at_the_boundary():
    desc = mx.language_mixture(name="xlt_test_curriculum", languages=LANGS,
                               stages=[(0, {"en": 0.7}), (40, {"en": 0.3})])
    (_, first), (_, second) = desc["stages"]
    assert abs(sum(v for k, v in second.items() if k != "en") - 0.7) < 1e-9
    before, n1 = realised_shares("xlt_test_curriculum", 0, steps=40)
    after, n2 = realised_shares("xlt_test_curriculum", 0, start_step=40, steps=40)
    assert min(n1, n2) >= 10_000
    for lang in LANGS:
        assert abs(before[lang] - first[lang]) < 0.01, (lang, before, first)
        assert abs(after[lang] - second[lang]) < 0.01, (lang, after, second)


def test_resume_across_a_stage_boundary_is_exact():
    mx.language_mixture(name="xlt_test_resume", languages=("en", "ko"), stages=[(0, {"en": 0.8}), (3, {"en": 0.1})])
    full = pipeline.batches("xlt_test_resume", "decoder", {"targets": 64}, 4, seed=7)
    uninterrupted = [next(full) for _ in range(6)]
    assert full.stage == 1
    for start in (2, 4):
        resumed = pipeline.batches("xlt_test_resume", "decoder", {"targets": 64}, 4, seed=7, start_step=start)
        for k in range(start, 6):
            b = next(resumed)
            assert b.keys() == uninterrupted[k].keys()
            for key in b:
                np.testing.assert_array_equal(b[key], uninterrupted[k][key], err_msg=f"{key} at step {k}")
    other_seed = next(pipeline.batches("xlt_test_resume", "decoder", {"targets": 64}, 4, seed=8))
    assert not np.array_equal(other_seed["decoder_target_tokens"], uninterrupted[0]["decoder_target_tokens"])


def test_token_counts():
    tt = np.array([[0, 0, 1, -1], [2, 2, 2, 2]])
    np.testing.assert_array_equal(pipeline.task_token_counts(tt, 3), [2, 1, 4])


@pytest.mark.parametrize("kwargs,message", [
    (dict(languages=("en", "xx")), "xx"),
    (dict(languages=()), "no languages"),
    (dict(languages=LANGS, rate="zipf"), "rate"),
    (dict(languages=LANGS, rate="unimax"), "budget"),
    (dict(languages=LANGS, stages=[(0, {"en": 0.5}), (10, {"en": 0.2}), (5, {"en": 0.1})]), "out of order"),
    (dict(languages=LANGS, stages=[(0, {"en": 1.5})]), "shares"),
    (dict(languages=LANGS, stages=[(0, {"en": -0.1})]), "shares"),
    (dict(languages=LANGS, stages=[(10, {"en": 0.5})]), "step 0"),
    (dict(languages=LANGS, stages=[(0, {"fr": 0.5})]), "fr"),
])
def test_bad_mixture_config(kwargs, message):
    with pytest.raises((DataError, ConfigError), match=message):
        mx.language_mixture(name="xlt_test_bad", **kwargs)


def test_zero_weights_refused():
    with pytest.raises(DataError, match="sum"):
        mx.register_mixture("xlt_test_zero", {"en": 0.0, "ko": 0.0})


def test_unknown_name_and_converter():
    with pytest.raises(ConfigError, match="unknown task or mixture"):
        pipeline.batches("no_such_mixture", "decoder", {"targets": 8}, 4, 0)
    with pytest.raises(ConfigError, match="converter"):
        pipeline.batches("bible_en", "bert", {"targets": 8}, 4, 0)
