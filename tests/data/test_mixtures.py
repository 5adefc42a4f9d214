"""Mixture rates: closed forms on hand-made sizes, UniMax by hand, sampling checks (numpy and seqio),
curricula and validation errors; the rate registry, and sizes asked of the tasks (Bible characters for
Bible tasks, mC4's TFDS counts or a sizes file for mC4 tasks)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from xlt.data import mixtures as mx
from xlt.errors import ConfigError, DataError

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


# ---- the rate registry ---------------------------------------------------------------------------------


def test_registry_holds_the_three_rates():
    assert {"proportional", "temperature", "unimax"} <= set(mx.rate_names())
    _close(mx.rate_weights("proportional", SIZES), mx.proportional(SIZES))
    _close(mx.rate_weights("temperature", SIZES, alpha=0.3), mx.temperature(SIZES, 0.3))
    _close(mx.rate_weights("temperature", SIZES), mx.temperature(SIZES))  # None / absent: the default alpha
    # Parameters a rate does not take are not passed on (language_mixture passes all of them).
    _close(mx.rate_weights("unimax", SIZES, alpha=0.3, budget=600, max_epochs=2.0), mx.unimax(SIZES, 600, 2.0))
    _close(mx.rate_weights("proportional", SIZES, alpha=0.3, budget=None), mx.proportional(SIZES))


@pytest.fixture
def sqrt_rate():
    """A newcomer's rate: p ∝ sqrt(n), capped at ``cap`` of the largest."""
    @mx.register_rate("xlt_test_sqrt")
    def sqrt_rate(sizes, cap=1.0):
        top = max(sizes.values())
        return {k: min(math.sqrt(v), cap * math.sqrt(top)) for k, v in sizes.items()}

    yield sqrt_rate
    mx._RATES.pop("xlt_test_sqrt")


def test_register_a_new_rate_by_name(sqrt_rate):
    assert "xlt_test_sqrt" in mx.rate_names()
    root = {k: math.sqrt(v) for k, v in SIZES.items()}
    _close(mx.rate_weights("xlt_test_sqrt", SIZES, alpha=0.3), {k: v / sum(root.values()) for k, v in root.items()})
    capped = mx.rate_weights("xlt_test_sqrt", SIZES, cap=0.5)
    assert capped["en"] == pytest.approx(capped["fr"])  # both at the cap, sqrt(1000)/2 < sqrt(250)
    # The curriculum builder splits the rest by it too.
    cur = mx.Curriculum.from_group_shares(SIZES, [(0, {"en": 0.5})], rate="xlt_test_sqrt")
    rest = {k: v for k, v in root.items() if k != "en"}
    _close(cur.weights_at(0), {"en": 0.5, **{k: 0.5 * v / sum(rest.values()) for k, v in rest.items()}})


@pytest.mark.parametrize("call, error, match", [
    (lambda: mx.rate_weights("zipf", SIZES), ConfigError,
     r"rate 'zipf' is not registered; choose one of .*proportional"),
    (lambda: mx.rate_weights("unimax", SIZES), ConfigError, r"rate='unimax' needs budget"),
    (lambda: mx.check_rate("unimax", "language_mixture.", budget=None), ConfigError,
     r"language_mixture.rate='unimax' needs language_mixture.budget"),
    (lambda: mx.Curriculum.from_group_shares(SIZES, [(0, {"en": 1.0})], rate="zipf"), ConfigError, "'zipf'"),
    (lambda: mx.register_rate("", mx.proportional), ConfigError, "non-empty"),
    (lambda: mx.register_rate("xlt_test_bad", 3), ConfigError, "not callable"),
])
def test_rate_errors(call, error, match):
    with pytest.raises(error, match=match) as info:
        call()
    assert "\n" not in str(info.value)


def test_one_fixed_share_builder_for_every_rate():
    """language_mixture's curricula and Curriculum.from_group_shares are one builder: both give the rest
    ``rate_weights`` of the rest's sizes."""
    stages = [(0, {"en": 0.7}), (10, {"en": 0.2, "ko": 0.1})]
    for rate, params in [("proportional", {}), ("temperature", {"alpha": 0.5}), ("unimax", {"budget": 500.0})]:
        cur = mx.Curriculum.from_group_shares(SIZES, stages, rate=rate, **params)
        for step, fixed in stages:
            rest = {k: v for k, v in SIZES.items() if k not in fixed}
            want = {k: (1 - sum(fixed.values())) * p for k, p in mx.rate_weights(rate, rest, **params).items()}
            _close(cur.weights_at(step), {**fixed, **want}, tol=1e-12)


# ---- sizes from the tasks --------------------------------------------------------------------------------


def _rates(name):
    import seqio
    mixture = seqio.get_mixture_or_task(name)
    return {t.name: mixture.get_rate(t) for t in mixture.tasks}


def test_bible_tasks_report_bible_characters():
    from xlt.data import tasks

    tasks.register_tasks(languages=("en", "ko"))
    sizes, unit = mx.task_sizes({"en": "bible_en", "ko": "bible_ko_prefix"})
    assert unit == "characters" and sizes == {k: float(v) for k, v in mx.bible_sizes(["en", "ko"]).items()}
    assert tasks.task_language("bible_ko_prefix") == "ko" and tasks.task_language("no_such_task") is None
    desc = mx.language_mixture(name="xlt_test_bible_prop", languages=("en", "ko"), rate="proportional")
    assert desc["unit"] == "characters"
    want = mx.proportional(mx.bible_sizes(["en", "ko"]))
    _close(_rates("xlt_test_bible_prop"), {f"bible_{k}": v for k, v in want.items()})


@pytest.fixture
def mc4_tasks(monkeypatch):
    """mC4 tasks with TFDS dataset info faked: examples per TFDS split (mC4 names them by language)."""
    from xlt.data import tasks

    info = {"ko": 900, "ko-validation": 9, "sw": 100, "sw-validation": 1}
    asked = []

    def fake_num_examples(tfds_name, split, data_dir=None):
        asked.append((tfds_name, split))
        return info[split]

    monkeypatch.setattr(tasks, "tfds_num_examples", fake_num_examples)
    tasks.register_tasks(languages=("ko", "sw"))  # Bible tasks of the same languages, with other sizes
    return tasks.register_mc4_tasks(languages=("ko", "sw")), asked


def test_mc4_mixture_weighted_by_mc4_sizes_not_bible(mc4_tasks):
    names, asked = mc4_tasks
    assert names == ["mc4_ko", "mc4_sw"]
    desc = mx.language_mixture(name="xlt_test_mc4_prop", languages=("ko", "sw"), rate="proportional",
                               task_pattern="mc4_{lang}")
    assert ("c4/multilingual:3.1.0", "ko") in asked and ("c4/multilingual:3.1.0", "sw") in asked
    assert desc["unit"] == "examples"
    _close(_rates("xlt_test_mc4_prop"), {"mc4_ko": 0.9, "mc4_sw": 0.1})
    bible = mx.proportional(mx.bible_sizes(["ko", "sw"]))  # sw has more Bible text than ko
    assert bible["sw"] > bible["ko"]
    # Temperature and the validation split ask the same tasks.
    mx.language_mixture(name="xlt_test_mc4_temp", languages=("ko", "sw"), alpha=0.5, task_pattern="mc4_{lang}")
    _close(_rates("xlt_test_mc4_temp"), {"mc4_ko": 30 / 40, "mc4_sw": 10 / 40})
    sizes, _ = mx.task_sizes({"ko": "mc4_ko", "sw": "mc4_sw"}, split="validation")
    assert sizes == {"ko": 9.0, "sw": 1.0}


def test_mc4_sizes_file(tmp_path):
    from xlt.data import tasks

    path = tmp_path / "mc4_sizes.json"
    path.write_text(json.dumps({"unit": "characters", "ko": {"train": 3000, "validation": 30}, "sw": 1000}))
    tasks.register_mc4_tasks(languages=("ko", "sw"), sizes_file=str(path))
    sizes, unit = mx.task_sizes({"ko": "mc4_ko", "sw": "mc4_sw"})
    assert (sizes, unit) == ({"ko": 3000.0, "sw": 1000.0}, "characters")
    mx.language_mixture(name="xlt_test_mc4_file", languages=("ko", "sw"), rate="proportional",
                        task_pattern="mc4_{lang}")
    _close(_rates("xlt_test_mc4_file"), {"mc4_ko": 0.75, "mc4_sw": 0.25})
    with pytest.raises(DataError, match=r"has no size for 'sw' split 'validation'"):
        mx.task_sizes({"sw": "mc4_sw"}, split="validation")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"ko": {"train": "many"}}))
    with pytest.raises(DataError, match=r"size of 'ko' split 'train' must be a number"):
        tasks.register_mc4_tasks(languages=("ko",), sizes_file=str(bad))
    with pytest.raises(ConfigError, match="sizes file not found"):
        tasks.register_mc4_tasks(languages=("ko",), sizes_file=str(tmp_path / "missing.json"))


def test_task_size_errors(mc4_tasks, monkeypatch):
    import seqio
    from xlt.data import tasks

    with pytest.raises(DataError, match=r"task 'mc4_en' is not registered"):
        mx.language_mixture(name="xlt_test_mc4_missing", languages=("en",), task_pattern="mc4_{lang}")
    with pytest.raises(DataError, match=r"different units: (.*characters.*examples|.*examples.*characters)"):
        mx.task_sizes({"ko": "mc4_ko", "sw": "bible_sw"})
    with pytest.raises(DataError, match=r"task 'mc4_ko' carries language 'ko', not 'sw'"):
        mx.task_sizes({"sw": "mc4_ko"})
    source = seqio.FunctionDataSource(lambda split, shuffle_files: None, splits=("train",))
    seqio.TaskRegistry.add("xlt_test_bare_sw", source=source, output_features={})
    try:
        with pytest.raises(DataError, match="no language or size metadata; register it with"):
            mx.task_sizes({"sw": "xlt_test_bare_sw"})
    finally:
        seqio.TaskRegistry.remove("xlt_test_bare_sw")
    monkeypatch.setattr(tasks, "tfds_num_examples", lambda *a, **k: None)
    with pytest.raises(DataError, match=r"task 'mc4_ko' does not know the size of its 'train' split"):
        mx.task_sizes({"ko": "mc4_ko"})
    monkeypatch.setattr(tasks, "tfds_num_examples", lambda *a, **k: float("inf"))
    with pytest.raises(DataError, match=r"size of its 'train' split is inf"):
        mx.task_sizes({"ko": "mc4_ko"})
