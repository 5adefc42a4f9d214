"""Is a tuned model's gain over the base in one cell real? A paired test over items, and the correction
for testing every cell of a matrix at once.

A cell of ``experiments.transfer_matrix`` compares a tuned row (``S`` seeds) with the untuned base on the
same items rendered with the same ``T`` templates. Its score is a macro average over tasks: every task
weighs the same, whatever its number of items (``xlt.evaluation.report.pool``). With balanced data (every
item scored under every template and seed, as the evaluator does), the cell's gain is

    gain = mean over tasks t of  mean over items i of t of  d_i,
    d_i  = mean over (seed, template) of tuned[i]  -  mean over templates of base[i],

the same number as the matrix's gain from the per-template records. Everything here is about ``d_i``.

**Interval: a two-level, stratified paired bootstrap.** One resample draws, within every task, as many
items as the task has, with replacement (stratified, so each task keeps its weight and its size); inside
every drawn item it draws the seeds (``S`` of ``S``) and the templates (``T`` of ``T``) with replacement,
and the item's difference is recomputed from those: the tuned mean over the drawn (seed, template) grid
minus the base mean over the same drawn templates (the base keeps its pairing with the tuned row by
template: the same prompt). The 95% interval is the percentile interval of the ``n_resamples`` resampled
gains. Resampling inside items is what the issue asks for (seed and prompt variation belong to the
uncertainty of a claim about the model). It makes the interval conservative: the item level already
carries each item's seed and template noise, and the inner level adds about as much again (drawing seeds
and templates crosswise adds a little more: their row and column spread). With 0/1 values and paired
items that noise dominates the variance of the gain: on the synthetic cells of
tests/evaluation/test_significance.py the interval is 1.41x the items-only one and covers the true gain
in 98% of simulations (items-only: 93%). ``resample_within=False`` gives the items-only interval. The
p-value below does not depend on this choice. A seed effect shared by every item (one seed simply better)
is not an item-level quantity and is not captured: report ``seed_std`` beside it, and run more seeds.

To make this cheap, the inner level is drawn once per item as ``inner`` replicates (64) of its resampled
difference; the outer level then draws (item, replicate) pairs, one random integer per drawn item. With
0/1 values an item's resampled difference takes few distinct values, so 64 replicates represent its
distribution closely. A 6 x 11 matrix with 500 items per cell (5 tasks x 100, 2 seeds, 4 templates) takes
1.5 s for all 66 cells on the 2-core development machine (``n_resamples`` = 2000, ``n_permutations`` =
9999; measured 2026-12-02 with other jobs running).

**p-value: a paired sign-flip permutation test** of H0 "tuned and base are exchangeable on every item"
(so every ``d_i`` is symmetric about 0) against the two-sided alternative, statistic the cell's gain:
every item's difference keeps its size and gets a random sign, independently (the task weights stay), and
``p = (1 + #{|gain*| >= |gain|}) / (1 + n_permutations)`` -- never 0, valid at every sample size. With at
most ``exact_up_to`` (16) non-zero differences every sign pattern is enumerated and ``p`` is exact. Why not
a bootstrap p-value: the bootstrap resamples around the observed gain, and turning its interval into a
test assumes the null distribution is a shifted copy of it -- poor with 0/1 data and small cells; the
permutation test gets the null from the null itself, and items where both models agree (``d_i = 0``,
most of them with 0/1 values) cost nothing; items whose weighted differences have the same size are
interchangeable, so a permutation only draws how many of each size keep their sign (``_kept_counts``).

**Many cells: ``adjust``** -- Holm's step-down (family-wise error, any dependence; the default) or
Benjamini-Hochberg (false discovery rate, independent or positively dependent tests), both as
``statsmodels.stats.multitest.multipletests`` computes them (``holm``, ``fdr_bh``; the tests check it).
A cell is significant when its adjusted p is at most ``alpha``. The smallest possible ``p`` is
``1 / (1 + n_permutations)`` = 1e-4, below Holm's first threshold ``0.05 / m`` for up to 500 cells.

Every draw comes from a ``numpy.random.Generator`` seeded with ``(seed, cell key)``: a cell's result does
not depend on the order in which cells are tested, and the same inputs give the same numbers.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xlt.errors import ConfigError, DataError

DEFAULT_RESAMPLES = 2000
DEFAULT_PERMUTATIONS = 9999
DEFAULT_CONFIDENCE = 0.95
INNER_REPLICATES = 64
EXACT_UP_TO = 16
CORRECTIONS = ("holm", "bh")
_CHUNK = 1 << 21  # elements of one (resamples x items) block: ~16 MB of float64


@dataclass(frozen=True)
class PairedCell:
    """The paired per-item values of one cell, per task: ``tuned[k]`` (items, seeds, templates) and
    ``base[k]`` (items, templates) of task ``tasks[k]``, items in the order of ``items[k]``, templates
    in the order of ``templates[k]``."""

    tasks: tuple[str, ...]
    items: tuple[tuple[str, ...], ...]
    templates: tuple[tuple[str, ...], ...]
    tuned: tuple[np.ndarray, ...]
    base: tuple[np.ndarray, ...]

    @classmethod
    def from_items(cls, tuned: Mapping[tuple[str, str], Mapping[tuple[Any, str], float]],
                   base: Mapping[tuple[str, str], Mapping[str, float]]) -> PairedCell:
        """From ``tuned[(task, item)][(seed, template)]`` and ``base[(task, item)][template]`` (e.g. 0/1
        correctness). Both must have the same items; every item the same templates in both, as many as the
        task's other items (every template of every item, or one rotating template per item), and every seed
        on each of them: DataError otherwise, naming the first item that breaks it. The template axis is the
        item's k-th template (sorted by id)."""
        if set(tuned) != set(base):
            only_t, only_b = sorted(set(tuned) - set(base)), sorted(set(base) - set(tuned))
            raise DataError(f"the tuned row and the base have different items (only tuned: {only_t[:3]}, "
                            f"only base: {only_b[:3]}); were they evaluated with the same settings?")
        if not tuned:
            raise DataError("no items to compare")
        by_task: dict[str, list[str]] = {}
        for task, item in sorted(tuned):
            by_task.setdefault(task, []).append(item)
        tasks, items, templates, tuned_arrays, base_arrays = [], [], [], [], []
        for task, names in by_task.items():
            first = (task, names[0])
            temps = tuple(sorted(base[first]))
            seeds = tuple(sorted({s for s, _ in tuned[first]}, key=str))
            t_rows, b_rows = [], []
            for name in names:
                key = (task, name)
                mine = tuple(sorted(base[key]))
                grid = {(s, t) for s in seeds for t in mine}
                if len(mine) != len(temps) or set(tuned[key]) != grid or len(tuned[key]) != len(grid):
                    raise DataError(f"item {task}/{name}: tuned (seed, template) values {sorted(tuned[key], key=str)} "
                                    f"and base templates {list(mine)} are not the grid of seeds {list(seeds)} x "
                                    f"the item's {len(temps)} template(s)")
                t_rows.append([[float(tuned[key][(s, t)]) for t in mine] for s in seeds])
                b_rows.append([float(base[key][t]) for t in mine])
            tasks.append(task)
            items.append(tuple(names))
            templates.append(temps)
            tuned_arrays.append(np.asarray(t_rows, dtype=np.float64))
            base_arrays.append(np.asarray(b_rows, dtype=np.float64))
        return cls(tuple(tasks), tuple(items), tuple(templates), tuple(tuned_arrays), tuple(base_arrays))

    @classmethod
    def from_arrays(cls, tuned: Mapping[str, Any], base: Mapping[str, Any]) -> PairedCell:
        """From ``{task: (items, seeds, templates) array}`` and ``{task: (items, templates) array}``."""
        if set(tuned) != set(base) or not tuned:
            raise DataError(f"tuned tasks {sorted(tuned)} and base tasks {sorted(base)} differ or are empty")
        tasks = tuple(tuned)
        t_arrays = tuple(np.asarray(tuned[t], dtype=np.float64) for t in tasks)
        b_arrays = tuple(np.asarray(base[t], dtype=np.float64) for t in tasks)
        for task, t, b in zip(tasks, t_arrays, b_arrays):
            if t.ndim != 3 or b.ndim != 2 or t.shape[0] != b.shape[0] or t.shape[2] != b.shape[1] or not t.size:
                raise DataError(f"task {task!r}: tuned shape {t.shape} must be (items, seeds, templates) and base "
                                f"shape {b.shape} (items, templates) with the same items and templates")
        return cls(tasks, tuple(tuple(str(i) for i in range(t.shape[0])) for t in t_arrays),
                   tuple(tuple(str(j) for j in range(t.shape[2])) for t in t_arrays), t_arrays, b_arrays)

    @property
    def n_items(self) -> int:
        return sum(t.shape[0] for t in self.tuned)

    def differences(self) -> tuple[np.ndarray, np.ndarray]:
        """(d, w): every item's difference (tuned mean over seeds x templates minus base mean over templates)
        and its weight in the macro average (1 / (tasks x items of its task)); ``gain = w @ d``."""
        d = np.concatenate([t.mean(axis=(1, 2)) - b.mean(axis=1) for t, b in zip(self.tuned, self.base)])
        w = np.concatenate([np.full(t.shape[0], 1.0 / (len(self.tasks) * t.shape[0])) for t in self.tuned])
        return d, w


@dataclass(frozen=True)
class CellTest:
    """The paired test of one cell (see the module docstring)."""

    gain: float
    ci: tuple[float, float]
    p: float
    n_items: int
    n_tasks: int
    n_resamples: int
    n_permutations: int  # 0: the p-value is exact (every sign pattern enumerated)
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return {"gain": self.gain, "ci": list(self.ci), "p": self.p, "n_items": self.n_items,
                "n_tasks": self.n_tasks}


def rng_for(seed: int, key: str = "") -> np.random.Generator:
    """The generator of one cell: seeded with (seed, crc32(key)), independent of the order of the cells."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(key.encode("utf-8"))]))


def _inner_replicates(tuned: np.ndarray, base: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """(items, reps): each item's difference after drawing its seeds and its templates with replacement (the
    same drawn templates for the tuned row and the base)."""
    n, s, t = tuned.shape
    seed_idx = rng.integers(0, s, size=(n, reps, s))
    temp_idx = rng.integers(0, t, size=(n, reps, t))
    rows = np.arange(n)[:, None, None, None]
    picked = tuned[rows, seed_idx[:, :, :, None], temp_idx[:, :, None, :]]  # (n, reps, s, t)
    base_picked = base[np.arange(n)[:, None, None], temp_idx]  # (n, reps, t)
    return picked.mean(axis=(2, 3)) - base_picked.mean(axis=2)


def bootstrap_gains(cell: PairedCell, *, n_resamples: int = DEFAULT_RESAMPLES, inner: int = INNER_REPLICATES,
                    resample_within: bool = True, rng: np.random.Generator) -> np.ndarray:
    """``n_resamples`` gains of the two-level stratified bootstrap (items within tasks; seeds and templates
    within items unless ``resample_within`` is False). A drawn item with a drawn inner replicate is one
    uniform draw from the task's pool of (item, replicate) differences: one random integer per drawn item."""
    out = np.zeros(n_resamples)
    for t, b in zip(cell.tuned, cell.base):
        n = t.shape[0]
        pool = (_inner_replicates(t, b, inner, rng) if resample_within
                else (t.mean(axis=(1, 2)) - b.mean(axis=1))[:, None]).reshape(-1)
        share = 1.0 / (len(cell.tasks) * n)
        index = np.int32 if pool.size < 2**31 else np.int64  # int32 draws are several times faster
        step = max(1, _CHUNK // n)
        for lo in range(0, n_resamples, step):
            hi = min(n_resamples, lo + step)
            out[lo:hi] += share * pool[rng.integers(0, pool.size, size=(hi - lo, n), dtype=index)].sum(axis=1)
    return out


def _kept_counts(counts: np.ndarray, rows: int, rng: np.random.Generator) -> np.ndarray:
    """(rows, groups): per group of ``counts[g]`` items, how many keep their sign, Binomial(counts[g], 1/2):
    the number of set bits among ``counts[g]`` random bits (64 per word, popcount), which costs a word per
    64 items instead of a binomial draw per group."""
    if not hasattr(np, "bitwise_count"):  # numpy < 2
        return rng.binomial(counts, 0.5, size=(rows, len(counts)))
    words = (counts + 63) // 64
    starts = np.concatenate([[0], np.cumsum(words)[:-1]])
    mask = np.full(int(words.sum()), np.iinfo(np.uint64).max, dtype=np.uint64)
    rest = counts % 64
    last = starts + words - 1
    mask[last[rest > 0]] = (np.uint64(1) << rest[rest > 0].astype(np.uint64)) - np.uint64(1)
    draws = np.frombuffer(rng.bytes(rows * mask.size * 8), dtype=np.uint64).reshape(rows, mask.size)
    bits = np.bitwise_count(draws & mask).astype(np.int64)
    return np.add.reduceat(bits, starts, axis=1)


def sign_flip_p(d: np.ndarray, w: np.ndarray, *, n_permutations: int = DEFAULT_PERMUTATIONS,
                exact_up_to: int = EXACT_UP_TO, rng: np.random.Generator) -> tuple[float, int]:
    """(two-sided p, permutations used; 0 = exact) of the sign-flip test of ``w @ d`` (module docstring).

    Items whose weighted differences have the same size are interchangeable under the flips, so a
    permutation draws, per distinct size ``v`` held by ``k`` items, how many of them keep their sign
    (Binomial(k, 1/2)): the statistic is the sum of ``v * (2 * kept - k)``, distributed exactly as with
    one coin per item."""
    a = (w * d)[d != 0]
    if a.size == 0:
        return 1.0, 0
    observed = abs(float(math.fsum(a)))
    tol = 1e-9 * float(np.abs(a).sum())  # sums of the same terms in another order: equal up to rounding
    if a.size <= exact_up_to:
        patterns = ((np.arange(2 ** a.size)[:, None] >> np.arange(a.size)) & 1).astype(np.float64)
        stats = np.abs((2.0 * patterns - 1.0) @ a)
        return float(np.mean(stats >= observed - tol)), 0
    sizes, counts = np.unique(np.abs(a), return_counts=True)
    hits = 0
    step = max(1, _CHUNK // (len(sizes) + a.size // 64))
    for lo in range(0, n_permutations, step):
        rows = min(step, n_permutations - lo)
        stats = np.abs((2.0 * _kept_counts(counts, rows, rng) - counts) @ sizes)
        hits += int(np.count_nonzero(stats >= observed - tol))
    return (1 + hits) / (1 + n_permutations), n_permutations


def paired_test(cell: PairedCell, *, n_resamples: int = DEFAULT_RESAMPLES,
                n_permutations: int = DEFAULT_PERMUTATIONS, confidence: float = DEFAULT_CONFIDENCE,
                seed: int = 0, key: str = "", inner: int = INNER_REPLICATES, resample_within: bool = True,
                exact_up_to: int = EXACT_UP_TO) -> CellTest:
    """Gain, percentile interval and sign-flip p of one cell; deterministic in (inputs, seed, key)."""
    for name, value, low in (("n_resamples", n_resamples, 1), ("n_permutations", n_permutations, 1),
                             ("inner", inner, 1), ("exact_up_to", exact_up_to, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence!r}")
    rng = rng_for(seed, key)
    d, w = cell.differences()
    gain = float(math.fsum(d * w))
    gains = bootstrap_gains(cell, n_resamples=n_resamples, inner=inner, resample_within=resample_within, rng=rng)
    tail = (1.0 - confidence) / 2.0
    low, high = (float(x) for x in np.quantile(gains, [tail, 1.0 - tail]))
    p, used = sign_flip_p(d, w, n_permutations=n_permutations, exact_up_to=exact_up_to, rng=rng)
    return CellTest(gain, (low, high), p, cell.n_items, len(cell.tasks), n_resamples, used, confidence)


def adjust(pvalues: Sequence[float], method: str = "holm") -> np.ndarray:
    """Adjusted p-values of a family of tests: ``holm`` (step-down, family-wise error) or ``bh``
    (Benjamini-Hochberg, false discovery rate); reject where the adjusted p <= alpha."""
    if method not in CORRECTIONS:
        raise ConfigError(f"correction {method!r}; choose one of {', '.join(CORRECTIONS)}")
    p = np.asarray(pvalues, dtype=np.float64)
    if p.ndim != 1 or np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise DataError(f"p-values must be a list of numbers in [0, 1], got {list(pvalues)!r}")
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * ranked))
    else:
        adjusted = np.minimum.accumulate((m / np.arange(1, m + 1) * ranked)[::-1])[::-1]
        adjusted = np.minimum(1.0, adjusted)
    out = np.empty(m)
    out[order] = adjusted
    return out


def correct(tests: Mapping[Any, CellTest | None], method: str = "holm", alpha: float = 0.05
            ) -> dict[Any, tuple[float, bool] | None]:
    """{key: (adjusted p, significant)} over the family of the given cells' tests (None: a cell without a
    test, left out of the family and None in the result)."""
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha!r}")
    keys = [k for k, t in tests.items() if t is not None]
    adjusted = adjust([tests[k].p for k in keys], method)  # type: ignore[union-attr]
    out: dict[Any, tuple[float, bool] | None] = {k: None for k in tests}
    for k, a in zip(keys, adjusted):
        out[k] = (float(a), bool(a <= alpha))
    return out
