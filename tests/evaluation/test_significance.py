"""xlt.evaluation.significance: the paired bootstrap and sign-flip test of a matrix cell on synthetic data with
known answers (fixed seeds: deterministic), and the Holm / Benjamini-Hochberg corrections against statsmodels."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from xlt.errors import ConfigError, DataError
from xlt.evaluation import significance as sig


def simulate(rng: np.random.Generator, delta: float, n_items=(60, 40), seeds: int = 2,
             templates: int = 3) -> sig.PairedCell:
    """0/1 values of a cell whose true gain is ``delta``: items of varying difficulty, template effects shared
    by both models, every (seed, template) an independent draw; the tuned model is ``delta`` more likely right
    on every item and template."""
    tuned, base = {}, {}
    for k, n in enumerate(n_items):
        p = rng.uniform(0.25, 0.65, n)
        pb = np.clip(p[:, None] + rng.normal(0.0, 0.05, templates)[None, :], 0.0, 1.0)
        base[f"t{k}"] = (rng.random((n, templates)) < pb).astype(float)
        tuned[f"t{k}"] = (rng.random((n, seeds, templates)) < (pb + delta)[:, None, :]).astype(float)
    return sig.PairedCell.from_arrays(tuned, base)


def run_simulations(delta: float, n: int, **kw):
    rng = np.random.default_rng(20261202)
    return [sig.paired_test(simulate(rng, delta), n_resamples=1000, n_permutations=999, seed=i, **kw)
            for i in range(n)]


# ------------------------------------------------------------------------------------------- point estimate
def test_gain_is_the_macro_average_over_tasks_of_the_item_differences():
    # Task a: 2 items, 2 seeds x 2 templates; task b: 1 item. Tasks weigh the same whatever their sizes.
    tuned = {("a", "1"): {(0, "x"): 1, (0, "y"): 1, (1, "x"): 1, (1, "y"): 0},
             ("a", "2"): {(0, "x"): 0, (0, "y"): 0, (1, "x"): 0, (1, "y"): 0},
             ("b", "1"): {(0, "x"): 1, (0, "y"): 1, (1, "x"): 1, (1, "y"): 1}}
    base = {("a", "1"): {"x": 0, "y": 0}, ("a", "2"): {"x": 1, "y": 0}, ("b", "1"): {"x": 0, "y": 1}}
    cell = sig.PairedCell.from_items(tuned, base)
    assert cell.tasks == ("a", "b") and cell.n_items == 3
    # task a: items (0.75 - 0) and (0 - 0.5) -> 0.125; task b: 1 - 0.5 = 0.5; macro: 0.3125
    test = sig.paired_test(cell, n_resamples=200, seed=0)
    assert test.gain == pytest.approx(0.3125)
    assert test.n_items == 3 and test.n_tasks == 2
    # The same as the matrix's gain: the mean over tasks of the per-(seed, template) accuracies' mean.
    tuned_score = np.mean([np.mean([0.5, 0.5, 0.5, 0.0]), 1.0])
    base_score = np.mean([np.mean([0.5, 0.0]), np.mean([0.0, 1.0])])
    assert test.gain == pytest.approx(tuned_score - base_score)


def test_items_must_pair_and_fill_the_grid():
    base = {("a", "1"): {"x": 1}}
    with pytest.raises(DataError, match="different items"):
        sig.PairedCell.from_items({("a", "2"): {(0, "x"): 1}}, base)
    with pytest.raises(DataError, match="grid"):
        sig.PairedCell.from_items({("a", "1"): {(0, "x"): 1, (0, "y"): 0}}, base)
    with pytest.raises(DataError, match="grid"):  # a seed missing on one item
        sig.PairedCell.from_items({("a", "1"): {(0, "x"): 1, (1, "x"): 1}, ("a", "2"): {(0, "x"): 1}},
                                  {("a", "1"): {"x": 1}, ("a", "2"): {"x": 0}})
    with pytest.raises(DataError, match="no items"):
        sig.PairedCell.from_items({}, {})
    with pytest.raises(DataError, match="grid"):  # one item with two templates, the other with one
        sig.PairedCell.from_items({("a", "1"): {(0, "x"): 1, (0, "y"): 1}, ("a", "2"): {(0, "x"): 1}},
                                  {("a", "1"): {"x": 1, "y": 0}, ("a", "2"): {"x": 0}})


def test_one_rotating_template_per_item_pairs_each_item_with_its_own_template():
    # all_templates=False: every item is scored under one template, not the same one for every item.
    tuned = {("a", "1"): {(0, "x"): 1, (1, "x"): 1}, ("a", "2"): {(0, "y"): 0, (1, "y"): 1}}
    base = {("a", "1"): {"x": 0}, ("a", "2"): {"y": 0}}
    cell = sig.PairedCell.from_items(tuned, base)
    assert cell.n_items == 2 and sig.paired_test(cell).gain == pytest.approx(((1 - 0) + (0.5 - 0)) / 2)


# ------------------------------------------------------------------------------------------------ p-values
def test_sign_flip_p_is_exact_for_few_differences():
    w = np.full(3, 1 / 3)
    # Three items all +1: of 8 sign patterns only all-plus and all-minus reach |gain| = 1.
    p, used = sig.sign_flip_p(np.ones(3), w, rng=np.random.default_rng(0))
    assert (p, used) == (0.25, 0)
    assert sig.sign_flip_p(np.zeros(3), w, rng=np.random.default_rng(0)) == (1.0, 0)
    # Zero differences add nothing: the same p with any number of agreeing items.
    p_zeros, _ = sig.sign_flip_p(np.array([1.0, 1.0, 1.0, 0.0, 0.0]), np.full(5, 0.2), rng=np.random.default_rng(0))
    assert p_zeros == 0.25


def test_monte_carlo_p_matches_enumeration():
    rng = np.random.default_rng(7)
    d = rng.choice([-1.0, -0.5, 0.5, 1.0], size=14, p=[0.15, 0.15, 0.3, 0.4])
    w = np.full(14, 1 / 14)
    exact, used = sig.sign_flip_p(d, w, rng=np.random.default_rng(1))
    assert used == 0
    # Brute force over all 2^14 sign patterns, independently of the implementation.
    stats = [abs(sum(s * x for s, x in zip(signs, d))) for signs in itertools.product((1, -1), repeat=14)]
    assert exact == pytest.approx(np.mean(np.array(stats) >= abs(d.sum()) - 1e-12))
    approx, used = sig.sign_flip_p(d, w, exact_up_to=0, n_permutations=20000, rng=np.random.default_rng(1))
    assert used == 20000 and approx == pytest.approx(exact, abs=0.01)


def test_kept_counts_are_binomial_half():
    counts = np.array([1, 7, 63, 64, 65, 130])  # within one 64-bit word, exactly one, across words
    kept = sig._kept_counts(counts, 100_000, np.random.default_rng(0))
    assert kept.shape == (100_000, 6) and (kept >= 0).all() and (kept <= counts).all()
    assert kept[:, 5].max() > 64 and kept[:, 0].max() == 1  # bits counted across words; a 1-item group
    np.testing.assert_allclose(kept.mean(axis=0), counts / 2, rtol=0.02, atol=0.01)
    np.testing.assert_allclose(kept.var(axis=0), counts / 4, rtol=0.05, atol=0.01)


def test_no_difference_is_not_significant_and_its_interval_covers_zero():
    tests = run_simulations(0.0, 120)
    rejected = np.mean([t.p <= 0.05 for t in tests])
    assert rejected <= 0.1  # nominal 0.05 (the p-value is valid: about 5% of null cells reach it)
    assert 0.4 <= np.mean([t.p < 0.5 for t in tests]) <= 0.6  # p roughly uniform under the null
    assert np.mean([t.ci[0] <= 0.0 <= t.ci[1] for t in tests]) >= 0.93


def test_interval_coverage_and_width():
    delta = 0.1
    two_level = run_simulations(delta, 120)
    item_only = run_simulations(delta, 120, resample_within=False)
    coverage = np.mean([t.ci[0] <= delta <= t.ci[1] for t in two_level])
    assert 0.93 <= coverage <= 1.0
    assert 0.9 <= np.mean([t.ci[0] <= delta <= t.ci[1] for t in item_only]) <= 0.99
    # Resampling seeds and templates inside items widens the interval (1.41x here), not wildly (module docstring).
    ratio = np.mean([(a.ci[1] - a.ci[0]) / (b.ci[1] - b.ci[0]) for a, b in zip(two_level, item_only)])
    assert 1.0 < ratio < 1.5
    assert all(t.ci[0] <= t.gain <= t.ci[1] for t in two_level)


def test_large_difference_is_significant_every_time():
    for t in run_simulations(0.25, 20):
        assert t.p <= 1 / 1000 and t.ci[0] > 0.0


def test_deterministic_given_seed_and_key():
    cell = simulate(np.random.default_rng(3), 0.05)
    a = sig.paired_test(cell, seed=5, key="en/ko")
    assert a == sig.paired_test(cell, seed=5, key="en/ko")
    b = sig.paired_test(cell, seed=5, key="en/ja")
    assert b.gain == a.gain and b.ci != a.ci


def test_bad_settings():
    cell = simulate(np.random.default_rng(0), 0.0)
    with pytest.raises(ConfigError, match="n_resamples"):
        sig.paired_test(cell, n_resamples=0)
    with pytest.raises(ConfigError, match="confidence"):
        sig.paired_test(cell, confidence=95)


# ------------------------------------------------------------------------------------- multiple comparisons
@pytest.mark.parametrize("method, reference", [("holm", "holm"), ("bh", "fdr_bh")])
def test_corrections_match_statsmodels(method, reference):
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    rng = np.random.default_rng(11)
    cases = [rng.uniform(0, 1, 20), rng.uniform(0, 0.01, 66), np.concatenate([rng.uniform(0, 0.002, 5),
             rng.uniform(0, 1, 30)]), np.array([0.01, 0.01, 0.04, 0.04, 0.5, 1.0, 0.0]), np.array([0.3])]
    for p in cases:
        reject, expected, _, _ = multitest.multipletests(p, alpha=0.05, method=reference)
        got = sig.adjust(p, method)
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-15)
        np.testing.assert_array_equal(got <= 0.05, reject)


def test_corrections_by_hand():
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005 x4, 0.01 x3, 0.03 x2, 0.04 x1 -> 0.02, 0.03, 0.06, 0.06 (monotone)
    np.testing.assert_allclose(sig.adjust(p, "holm"), [0.03, 0.06, 0.06, 0.02])
    # BH: sorted 0.005*4/1, 0.01*4/2, 0.03*4/3, 0.04*4/4 -> 0.02, 0.02, 0.04, 0.04
    np.testing.assert_allclose(sig.adjust(p, "bh"), [0.02, 0.04, 0.04, 0.02])
    tests = {"a": sig.CellTest(0.1, (0.0, 0.2), 0.01, 10, 1, 10, 0, 0.95), "b": None,
             "c": sig.CellTest(0.1, (0.0, 0.2), 0.04, 10, 1, 10, 0, 0.95)}
    out = sig.correct(tests, "holm", alpha=0.05)
    assert out == {"a": (pytest.approx(0.02), True), "b": None, "c": (pytest.approx(0.04), True)}
    with pytest.raises(ConfigError, match="correction"):
        sig.adjust(p, "bonferroni")
    with pytest.raises(DataError, match="p-values"):
        sig.adjust([0.5, 1.5])
