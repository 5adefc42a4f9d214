"""Language sampling rates for multilingual mixtures, and their registration as seqio Mixtures.

Every rate function is pure: it takes per-language sizes (tokens or characters; any one unit) and
returns weights over the same languages that sum to 1, usable directly as seqio mixture rates.

* ``proportional(sizes)``: p_i = n_i / sum(n).
* ``temperature(sizes, alpha)``: mT5's sampling, p_i ∝ n_i ** alpha (alpha=1 proportional, 0 uniform).
* ``unimax(sizes, budget, max_epochs)``: UniMax (Chung et al., ICLR 2023). Languages are visited from
  smallest to largest; each gets an equal share of the budget still left, capped at ``max_epochs * n_i``,
  so what a small language cannot use flows to the larger ones. ``unimax_allocation`` returns the
  per-language budget (same unit as sizes); ``unimax`` its normalised weights.
* ``Curriculum``: weights that change at given training steps (e.g. PolyLM's non-English share rising
  from 30% to 60%); ``Curriculum.from_group_shares`` builds one from fixed shares for named languages
  with the rest split by temperature sampling.

``register_mixture`` registers a ``seqio.Mixture`` over per-language tasks (``bible_<lang>`` by default)
and ``bible_sizes`` gives the packaged Bible's characters per language for one split. A curriculum is
registered with ``register_curriculum`` (seqio mixtures have fixed rates); ``xlt.data.pipeline`` switches
its weights at stage boundaries. ``language_mixture`` is the gin entry point that builds either from a
run's config.
"""

from __future__ import annotations

import bisect
import math
import types
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import gin

from xlt.data import languages
from xlt.errors import DataError


def _check_number(value: object, what: str) -> float:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DataError(f"{what} must be a number, got {value!r}") from None
    if math.isnan(x) or math.isinf(x):
        raise DataError(f"{what} must be finite, got {value!r}")
    return x


def _check_sizes(sizes: Mapping[str, float]) -> dict[str, float]:
    """Known language codes with finite sizes > 0; at least one language."""
    if not sizes:
        raise DataError("no languages given: sizes is empty")
    out = {}
    for lang, n in sizes.items():
        languages.validate(lang)
        x = _check_number(n, f"size of {lang!r}")
        if x <= 0:
            raise DataError(f"size of {lang!r} must be > 0, got {n!r} (empty corpus?)")
        out[lang] = x
    return out


def check_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """Validate mixture weights (known codes, finite, >= 0, positive sum) and return them normalised."""
    if not weights:
        raise DataError("no languages given: weights is empty")
    out = {}
    for lang, w in weights.items():
        languages.validate(lang)
        x = _check_number(w, f"weight of {lang!r}")
        if x < 0:
            raise DataError(f"weight of {lang!r} must be >= 0, got {w!r}")
        out[lang] = x
    total = sum(out.values())
    if total <= 0:
        raise DataError(f"weights sum to {total!r}; at least one weight must be > 0")
    return {lang: x / total for lang, x in out.items()}


def proportional(sizes: Mapping[str, float]) -> dict[str, float]:
    """p_i = n_i / sum(n)."""
    return check_weights(_check_sizes(sizes))


def temperature(sizes: Mapping[str, float], alpha: float = 0.3) -> dict[str, float]:
    """mT5 temperature sampling: p_i ∝ n_i ** alpha (alpha=1 proportional, alpha=0 uniform)."""
    alpha = _check_number(alpha, "alpha")
    if alpha < 0:
        raise DataError(f"alpha must be >= 0, got {alpha!r}")
    checked = _check_sizes(sizes)
    # Scale by the largest size first so large counts with alpha > 1 do not overflow.
    top = max(checked.values())
    return check_weights({lang: (n / top) ** alpha for lang, n in checked.items()})


def unimax_allocation(sizes: Mapping[str, float], budget: float, max_epochs: float = 1.0) -> dict[str, float]:
    """UniMax budget per language (same unit as sizes), in the input's key order.

    Visiting languages from smallest to largest, each gets ``remaining / languages_left`` capped at
    ``max_epochs * n_i``. The allocations sum to ``budget`` when ``budget <= max_epochs * sum(n)``;
    otherwise every language is capped and the excess is left unused.
    """
    budget = _check_number(budget, "budget")
    if budget <= 0:
        raise DataError(f"budget must be > 0, got {budget!r}")
    max_epochs = _check_number(max_epochs, "max_epochs")
    if max_epochs <= 0:
        raise DataError(f"max_epochs must be > 0, got {max_epochs!r}")
    checked = _check_sizes(sizes)
    order = sorted(checked, key=lambda lang: (checked[lang], lang))
    remaining = budget
    alloc: dict[str, float] = {}
    for i, lang in enumerate(order):
        share = min(remaining / (len(order) - i), max_epochs * checked[lang])
        alloc[lang] = share
        remaining -= share
    return {lang: alloc[lang] for lang in checked}


def unimax(sizes: Mapping[str, float], budget: float, max_epochs: float = 1.0) -> dict[str, float]:
    """UniMax sampling weights: ``unimax_allocation`` normalised to sum 1."""
    return check_weights(unimax_allocation(sizes, budget, max_epochs))


@dataclass(frozen=True)
class Stage:
    """Weights in force from ``start_step`` until the next stage starts (normalised on construction)."""

    start_step: int
    weights: Mapping[str, float]

    def __post_init__(self):
        if isinstance(self.start_step, bool) or not isinstance(self.start_step, int):
            raise DataError(f"stage start_step must be an int, got {self.start_step!r}")
        if self.start_step < 0:
            raise DataError(f"stage start_step must be >= 0, got {self.start_step!r}")
        object.__setattr__(self, "weights", types.MappingProxyType(check_weights(self.weights)))


@dataclass(frozen=True)
class Curriculum:
    """Stages ordered by start step, the first at step 0; ``weights_at(step)`` gives the weights in force."""

    stages: tuple[Stage, ...]

    def __post_init__(self):
        stages = tuple(self.stages)
        if not stages:
            raise DataError("a curriculum needs at least one stage")
        if stages[0].start_step != 0:
            raise DataError(f"the first stage must start at step 0, got {stages[0].start_step}")
        for prev, cur in zip(stages, stages[1:]):
            if cur.start_step == prev.start_step:
                raise DataError(f"duplicate stage start step {cur.start_step}")
            if cur.start_step < prev.start_step:
                raise DataError(f"stages out of order: step {cur.start_step} comes after step {prev.start_step}")
        object.__setattr__(self, "stages", stages)

    @property
    def boundaries(self) -> tuple[int, ...]:
        return tuple(s.start_step for s in self.stages)

    def stage_at(self, step: int) -> Stage:
        """The last stage whose start_step <= step."""
        if step < 0:
            raise DataError(f"step must be >= 0, got {step!r}")
        return self.stages[bisect.bisect_right(self.boundaries, step) - 1]

    def weights_at(self, step: int) -> dict[str, float]:
        return dict(self.stage_at(step).weights)

    @classmethod
    def from_weights(cls, stages: Iterable[tuple[int, Mapping[str, float]]]) -> Curriculum:
        """From ``[(start_step, weights), ...]``."""
        return cls(tuple(Stage(step, weights) for step, weights in stages))

    @classmethod
    def from_group_shares(
        cls,
        sizes: Mapping[str, float],
        stages: Sequence[tuple[int, Mapping[str, float]]],
        alpha: float = 1.0,
    ) -> Curriculum:
        """Fixed shares for named languages per stage; the rest split among the others ∝ n_i ** alpha.

        ``stages=[(0, {"en": 0.7}), (10_000, {"en": 0.4})]`` is PolyLM's curriculum: non-English data
        goes from 30% to 60% of the mixture at step 10,000. Named shares must lie in [0, 1] and sum to
        at most 1; a stage whose named shares sum below 1 needs at least one other language.
        """
        checked = _check_sizes(sizes)
        built = []
        for step, fixed in stages:
            shares = {}
            for lang, share in fixed.items():
                if lang not in checked:
                    languages.validate(lang)
                    raise DataError(f"stage at step {step}: language {lang!r} has no size in sizes")
                x = _check_number(share, f"share of {lang!r} at step {step}")
                if not 0 <= x <= 1:
                    raise DataError(f"share of {lang!r} at step {step} must be in [0, 1], got {share!r}")
                shares[lang] = x
            fixed_total = sum(shares.values())
            if fixed_total > 1 + 1e-9:
                raise DataError(f"stage at step {step}: fixed shares sum to {fixed_total!r} > 1")
            rest = {lang: n for lang, n in checked.items() if lang not in shares}
            weights = dict(shares)
            if fixed_total < 1 - 1e-12:
                if not rest:
                    raise DataError(f"stage at step {step}: fixed shares sum to {fixed_total!r} < 1 "
                                    "and no other language takes the rest")
                for lang, p in temperature(rest, alpha).items():
                    weights[lang] = (1 - fixed_total) * p
            else:
                weights.update({lang: 0.0 for lang in rest})
            built.append((step, {lang: weights[lang] for lang in checked}))
        return cls.from_weights(built)


def register_mixture(name: str, weights: Mapping[str, float], task_pattern: str = "bible_{lang}"):
    """Register (or replace) a seqio Mixture with rates ``weights`` over ``task_pattern.format(lang=...)``.

    Languages with weight 0 are left out. The tasks must already be registered
    (``xlt.data.tasks.register_tasks``). Returns the Mixture.
    """
    import seqio  # heavy; only needed here

    normalised = check_weights(weights)
    tasks = []
    for lang, rate in normalised.items():
        if rate == 0:
            continue
        task = task_pattern.format(lang=lang)
        if task not in seqio.TaskRegistry.names():
            raise DataError(f"task {task!r} is not registered; call xlt.data.tasks.register_tasks first")
        tasks.append((task, rate))
    if name in seqio.MixtureRegistry.names():
        seqio.MixtureRegistry.remove(name)
    return seqio.MixtureRegistry.add(name, tasks)


def bible_sizes(langs: Iterable[str], split: str = "train") -> dict[str, int]:
    """Characters per language in one split of the packaged Bible."""
    from xlt.data.sources import bible

    out = {}
    for lang in langs:
        languages.validate(lang)
        if lang not in bible.LANGUAGES:
            raise DataError(f"no packaged Bible for {lang!r}; available: {', '.join(bible.LANGUAGES)}")
        chars = bible.stats(lang)["chars"]
        if split not in chars:
            raise DataError(f"unknown split {split!r}; choose one of {', '.join(chars)}")
        out[lang] = chars[split]
    return out


# --- Curricula: mixtures whose weights change with the training step -----------------------------------

@dataclass(frozen=True)
class RegisteredCurriculum:
    """A curriculum over languages plus the task name pattern that maps a language to its seqio task."""

    curriculum: Curriculum
    task_pattern: str = "bible_{lang}"

    def task_rates(self, stage: Stage) -> dict[str, float]:
        return {self.task_pattern.format(lang=lang): rate for lang, rate in stage.weights.items()}

    def languages_by_task(self) -> dict[str, str]:
        langs = {lang for stage in self.curriculum.stages for lang in stage.weights}
        return {self.task_pattern.format(lang=lang): lang for lang in sorted(langs)}


_CURRICULA: dict[str, RegisteredCurriculum] = {}
_validate_code = languages.validate  # ``language_mixture`` has a parameter named ``languages``


def register_curriculum(name: str, curriculum: Curriculum, task_pattern: str = "bible_{lang}") -> RegisteredCurriculum:
    """Register (or replace) a curriculum under ``name`` for ``xlt.data.pipeline`` (seqio has no notion of a
    mixture that changes with the step). The tasks must be registered; languages with weight 0 in every
    stage are allowed."""
    import seqio

    if name in seqio.MixtureRegistry.names() or name in seqio.TaskRegistry.names():
        raise DataError(f"{name!r} is already a seqio task or mixture; give the curriculum another name")
    registered = RegisteredCurriculum(curriculum, task_pattern)
    for task in registered.languages_by_task():
        if task not in seqio.TaskRegistry.names():
            raise DataError(f"task {task!r} is not registered; call xlt.data.tasks.register_tasks first")
    _CURRICULA[name] = registered
    return registered


def get_curriculum(name: str) -> RegisteredCurriculum | None:
    return _CURRICULA.get(name)


def curriculum_names() -> tuple[str, ...]:
    return tuple(sorted(_CURRICULA))


RATES = ("proportional", "temperature", "unimax")


@gin.configurable
def language_mixture(name: str | None = None, languages: Sequence[str] = (), rate: str = "temperature",
                     alpha: float = 0.3, budget: float | None = None, max_epochs: float = 1.0,
                     stages: Sequence[tuple[int, Mapping[str, float]]] = (),
                     task_pattern: str = "bible_{lang}") -> dict[str, object] | None:
    """Register the run's language mixture from gin (a no-op while ``name`` is unbound).

    Sizes are the packaged Bible's training characters per language. ``rate`` picks the rate function
    (``alpha`` for temperature; ``budget`` in characters and ``max_epochs`` for UniMax). With ``stages``
    — ``[(start_step, {lang: share}), ...]`` — it is a curriculum: named languages get fixed shares, the
    others split the rest by ``rate``'s weights (PolyLM: ``[(0, {'en': 0.7}), (N, {'en': 0.4})]``).
    Returns a description (stage start steps and weights) for logging.
    """
    if name is None:
        return None
    if not languages:
        raise DataError(f"language_mixture {name!r}: no languages given")
    sizes = bible_sizes(languages)
    if rate not in RATES:
        raise DataError(f"language_mixture.rate={rate!r}; choose one of {list(RATES)}")
    if rate == "unimax" and budget is None:
        raise DataError("language_mixture.rate='unimax' needs language_mixture.budget (characters)")
    base = {"proportional": lambda s: proportional(s), "temperature": lambda s: temperature(s, alpha),
            "unimax": lambda s: unimax(s, budget, max_epochs)}[rate]
    if not stages:
        weights = base(sizes)
        register_mixture(name, weights, task_pattern)
        return {"stages": [(0, weights)]}
    built = []
    for step, fixed in stages:
        rest = {lang: n for lang, n in sizes.items() if lang not in fixed}
        for lang in fixed:
            if lang not in sizes:
                _validate_code(lang)
                raise DataError(f"stage at step {step}: {lang!r} is not one of the mixture's languages")
        weights = {lang: float(share) for lang, share in fixed.items()}
        fixed_total = sum(_check_number(v, f"share of {k!r} at step {step}") for k, v in weights.items())
        if not 0 <= fixed_total <= 1 + 1e-9 or any(v < 0 for v in weights.values()):
            raise DataError(f"stage at step {step}: fixed shares must be >= 0 and sum to <= 1, got {fixed}")
        if rest:
            for lang, p in base(rest).items():
                weights[lang] = (1 - fixed_total) * p
        built.append((step, weights))
    register_curriculum(name, Curriculum.from_weights(built), task_pattern)
    return {"stages": built}
