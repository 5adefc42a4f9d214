"""Mixture rates: closed forms on hand-made sizes, UniMax by hand, sampling checks (numpy and seqio),
curricula and validation errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xlt.data import mixtures as mx
from xlt.errors import DataError

SIZES = {"en": 1000.0, "fr": 250.0, "sw": 40.0, "ko": 10.0}


def _close(got: dict, want: dict, tol: float = 1e-12):
    assert set(got) == set(want)
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=tol), k


# ---- proportional / temperature ---------------------------------------------------------------------


def test_proportional_by_hand():
    _close(mx.proportional(SIZES), {"en": 1000 / 1300, "fr": 250 / 1300, "sw": 40 / 1300, "ko": 10 / 1300})


def test_temperature_alpha_one_is_proportional():
    _close(mx.temperature(SIZES, alpha=1.0), mx.proportional(SIZES))


def test_temperature_alpha_zero_is_uniform():
    _close(mx.temperature(SIZES, alpha=0.0), {k: 0.25 for k in SIZES})


def test_temperature_alpha_03_closed_form():
    # 1000**.3 = 7.943282, 250**.3 = 5.240612, 40**.3 = 3.024252, 10**.3 = 1.995262 -> sum 18.203409
    got = mx.temperature(SIZES, alpha=0.3)
    want = {"en": 7.943282 / 18.203409, "fr": 5.240612 / 18.203409,
            "sw": 3.024252 / 18.203409, "ko": 1.995262 / 18.203409}
    _close(got, want, tol=1e-6)
    assert sum(got.values()) == pytest.approx(1.0)
    # flatter than proportional: the smallest language gains, the largest loses
    assert got["ko"] > mx.proportional(SIZES)["ko"] and got["en"] < mx.proportional(SIZES)["en"]


def test_temperature_large_sizes_do_not_overflow():
    got = mx.temperature({"en": 1e300, "fr": 1e299}, alpha=2.0)
    _close(got, {"en": 100 / 101, "fr": 1 / 101}, tol=1e-12)


# ---- UniMax -----------------------------------------------------------------------------------------


def test_unimax_small_language_capped_rest_split_equally():
    # a: 600/3 = 200 > 10 -> 10; left 590; b: 590/2 = 295 <= 500 -> 295; c: 295.
    alloc = mx.unimax_allocation({"ko": 10, "fr": 500, "en": 1000}, 600)
    _close(alloc, {"ko": 10.0, "fr": 295.0, "en": 295.0})
    _close(mx.unimax({"ko": 10, "fr": 500, "en": 1000}, 600), {"ko": 10 / 600, "fr": 295 / 600, "en": 295 / 600})


def test_unimax_two_languages_capped():
    # ko: 200 > 10 -> 10; left 590; fr: 295 > 100 -> 100; left 490; en: 490 <= 1000.
    alloc = mx.unimax_allocation({"ko": 10, "fr": 100, "en": 1000}, 600)
    _close(alloc, {"ko": 10.0, "fr": 100.0, "en": 490.0})


def test_unimax_max_epochs_raises_caps():
    # caps 40, 400, 4000: ko 200 > 40 -> 40; fr 280 <= 400; en 280.
    alloc = mx.unimax_allocation({"ko": 10, "fr": 100, "en": 1000}, 600, max_epochs=4)
    _close(alloc, {"ko": 40.0, "fr": 280.0, "en": 280.0})


def test_unimax_nobody_capped_is_uniform():
    sizes = {"ko": 100, "fr": 200, "en": 300}
    _close(mx.unimax(sizes, budget=150), {k: 1 / 3 for k in sizes})
    _close(mx.unimax_allocation(sizes, budget=150), {k: 50.0 for k in sizes})


@pytest.mark.parametrize("budget,max_epochs", [(600, 1), (1300, 1), (50, 1), (2000, 2), (37.5, 0.5)])
def test_unimax_allocations_sum_to_budget(budget, max_epochs):
    alloc = mx.unimax_allocation(SIZES, budget, max_epochs)
    assert budget <= sum(SIZES.values()) * max_epochs
    assert sum(alloc.values()) == pytest.approx(budget)
    for lang, a in alloc.items():
        assert 0 < a <= SIZES[lang] * max_epochs + 1e-9


def test_unimax_budget_beyond_all_data_caps_everyone():
    alloc = mx.unimax_allocation(SIZES, budget=10_000, max_epochs=2)
    _close(alloc, {k: 2 * v for k, v in SIZES.items()})
    _close(mx.unimax(SIZES, 10_000, 2), mx.proportional(SIZES))


# ---- sampling: realized shares match the weights ----------------------------------------------------


@pytest.mark.parametrize("weights", [
    mx.proportional(SIZES),
    mx.temperature(SIZES, 0.3),
    mx.temperature(SIZES, 0.0),
    mx.unimax({"ko": 10, "fr": 100, "en": 1000, "sw": 40}, 600),
], ids=["proportional", "temperature", "uniform", "unimax"])
def test_numpy_sampling_matches_weights(weights):
    langs = list(weights)
    p = np.array([weights[k] for k in langs])
    draws = np.random.default_rng(0).choice(len(langs), size=50_000, p=p)
    shares = np.bincount(draws, minlength=len(langs)) / len(draws)
    for i, lang in enumerate(langs):
        assert abs(shares[i] - p[i]) < 0.01, (lang, shares[i], p[i])


def test_seqio_mixture_sampling_matches_weights():
    seqio = pytest.importorskip("seqio")
    from xlt.data import tasks

    langs = ("en", "ko", "sw", "zh")
    tasks.register_tasks(languages=langs)
    sizes = mx.bible_sizes(langs)
    weights = mx.proportional(sizes)  # about en .38, sw .35, ko .16, zh .11: clearly non-uniform
    assert max(weights.values()) - min(weights.values()) > 0.2
    mx.register_mixture("xlt_test_mixture", weights)
    mx.register_mixture("xlt_test_mixture", weights)  # re-registering replaces, no error
    ds = seqio.get_mixture_or_task("xlt_test_mixture").get_dataset(
        sequence_length={"targets": 64}, split="train", shuffle=True, seed=0, num_epochs=None,
        passthrough_features=["lang"])
    n = 20_000
    counts: dict[str, int] = {}
    for lang in ds.map(lambda ex: ex["lang"]).batch(1000).take(n // 1000).as_numpy_iterator():
        for code in lang:
            counts[code.decode()] = counts.get(code.decode(), 0) + 1
    assert sum(counts.values()) == n
    for lang in langs:
        assert abs(counts.get(lang, 0) / n - weights[lang]) < 0.01, (lang, counts, weights)


def test_register_mixture_needs_registered_tasks():
    with pytest.raises(DataError, match="bible_th"):
        mx.register_mixture("xlt_test_missing", {"th": 1.0})


def test_bible_sizes_are_train_chars():
    from xlt.data.sources import bible

    sizes = mx.bible_sizes(["en", "ko"])
    assert sizes == {"en": bible.stats("en")["chars"]["train"], "ko": bible.stats("ko")["chars"]["train"]}
    assert all(v > 0 for v in sizes.values())
    with pytest.raises(DataError, match="'th'"):
        mx.bible_sizes(["th"])
    with pytest.raises(DataError, match="'xx'"):
        mx.bible_sizes(["xx"])


# ---- curriculum -------------------------------------------------------------------------------------


def test_weights_at_boundaries():
    cur = mx.Curriculum.from_weights([(0, {"en": 3, "fr": 1}), (100, {"en": 1, "fr": 1}), (250, {"fr": 1})])
    _close(cur.weights_at(0), {"en": 0.75, "fr": 0.25})
    _close(cur.weights_at(99), {"en": 0.75, "fr": 0.25})
    _close(cur.weights_at(100), {"en": 0.5, "fr": 0.5})
    _close(cur.weights_at(249), {"en": 0.5, "fr": 0.5})
    _close(cur.weights_at(250), {"fr": 1.0})
    _close(cur.weights_at(10**9), {"fr": 1.0})
    assert cur.stage_at(150).start_step == 100
    with pytest.raises(DataError, match="-1"):
        cur.weights_at(-1)


def test_from_group_shares_polylm():
    sizes = {"en": 1000.0, "fr": 250.0, "sw": 40.0, "ko": 10.0}
    cur = mx.Curriculum.from_group_shares(sizes, stages=[(0, {"en": 0.7}), (5000, {"en": 0.4})], alpha=0.3)
    rest = {k: v ** 0.3 for k, v in sizes.items() if k != "en"}
    total = sum(rest.values())
    for step, en_share in [(0, 0.7), (4999, 0.7), (5000, 0.4), (9000, 0.4)]:
        w = cur.weights_at(step)
        assert w["en"] == pytest.approx(en_share, abs=1e-12)
        assert sum(w.values()) == pytest.approx(1.0)
        for k in rest:
            assert w[k] == pytest.approx((1 - en_share) * rest[k] / total, abs=1e-12), (step, k)


def test_from_group_shares_full_share_zeroes_others():
    cur = mx.Curriculum.from_group_shares({"en": 5, "fr": 5}, stages=[(0, {"en": 1.0})])
    _close(cur.weights_at(0), {"en": 1.0, "fr": 0.0})


# ---- validation -------------------------------------------------------------------------------------


@pytest.mark.parametrize("call,match", [
    (lambda: mx.proportional({"xx": 1}), "'xx'"),
    (lambda: mx.proportional({"en": 0}), "'en'.*0"),
    (lambda: mx.proportional({}), "empty"),
    (lambda: mx.proportional({"en": float("nan")}), "nan"),
    (lambda: mx.temperature({"en": 1, "fr": -3}), "-3"),
    (lambda: mx.temperature({"en": 1}, alpha=-0.5), "-0.5"),
    (lambda: mx.temperature({"en": 1}, alpha=float("nan")), "nan"),
    (lambda: mx.unimax({"en": 1}, budget=0), "budget.*0"),
    (lambda: mx.unimax({"en": 1}, budget=-5), "-5"),
    (lambda: mx.unimax({"en": 1}, budget=10, max_epochs=0), "max_epochs.*0"),
    (lambda: mx.check_weights({"en": -0.1, "fr": 1}), "-0.1"),
    (lambda: mx.check_weights({"en": 0, "fr": 0}), "sum to 0"),
    (lambda: mx.check_weights({"en": float("nan")}), "nan"),
    (lambda: mx.check_weights({"zz": 1}), "'zz'"),
    (lambda: mx.Curriculum.from_weights([(0, {"en": 1}), (20, {"fr": 1}), (10, {"en": 1})]), "10"),
    (lambda: mx.Curriculum.from_weights([(5, {"en": 1})]), "step 0.*5"),
    (lambda: mx.Curriculum.from_weights([(0, {"en": 1}), (7, {"fr": 1}), (7, {"en": 1})]), "duplicate.*7"),
    (lambda: mx.Curriculum.from_weights([]), "at least one stage"),
    (lambda: mx.Curriculum.from_weights([(0, {"en": -1})]), "-1"),
    (lambda: mx.Curriculum.from_group_shares({"en": 1, "fr": 1}, [(0, {"en": 1.5})]), "1.5"),
    (lambda: mx.Curriculum.from_group_shares({"en": 1, "fr": 1}, [(0, {"de": 0.5})]), "'de'"),
    (lambda: mx.Curriculum.from_group_shares({"en": 1}, [(0, {"en": 0.5})]), "no other language"),
    (lambda: mx.Curriculum.from_group_shares({"en": 1, "fr": 1}, [(0, {"en": 0.5})], alpha=-1), "-1"),
])
def test_validation_errors(call, match):
    with pytest.raises(DataError, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_stage_is_frozen_and_normalised():
    stage = mx.Stage(0, {"en": 2, "fr": 2})
    assert dict(stage.weights) == {"en": 0.5, "fr": 0.5}
    with pytest.raises(TypeError):
        stage.weights["en"] = 1.0  # type: ignore[index]
    assert math.isclose(sum(stage.weights.values()), 1.0)
