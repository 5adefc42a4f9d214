"""Language sampling rates for multilingual mixtures, and their registration as seqio Mixtures.

Every rate function is pure: it takes per-language sizes (tokens, characters or examples; any one unit) and
returns weights over the same languages that sum to 1, usable directly as seqio mixture rates. Rates are
chosen by name from one registry (``register_rate``, ``rate_weights``); a new rate is one function
``fn(sizes, **params) -> weights`` registered under a name, and every consumer (``language_mixture``, the
curricula, the instruction mixtures of ``xlt.instruct.tasks``) can use it by that name.

* ``proportional(sizes)``: p_i = n_i / sum(n).
* ``temperature(sizes, alpha)``: mT5's sampling, p_i ∝ n_i ** alpha (alpha=1 proportional, 0 uniform).
* ``unimax(sizes, budget, max_epochs)``: UniMax (Chung et al., ICLR 2023). Languages are visited from
  smallest to largest; each gets an equal share of the budget still left, capped at ``max_epochs * n_i``,
  so what a small language cannot use flows to the larger ones. ``unimax_allocation`` returns the
  per-language budget (same unit as sizes); ``unimax`` its normalised weights.
* ``Curriculum``: weights that change at given training steps (e.g. PolyLM's non-English share rising
  from 30% to 60%); ``Curriculum.from_group_shares`` (the one fixed-share builder) gives named languages
  fixed shares per stage and splits the rest by any registered rate.

Sizes come from the tasks themselves: every xlt task registers its language, a size function and the
size's unit with ``xlt.data.tasks`` (the packaged Bible's characters for ``bible_<lang>``, TFDS's example
counts or a sizes file for ``mc4_<lang>``, the number of items for instruction tasks), and ``task_sizes``
asks them. ``register_mixture`` registers a ``seqio.Mixture`` over per-language tasks (``bible_<lang>`` by
default); ``bible_sizes`` gives the packaged Bible's characters per language for one split. A curriculum is
registered with ``register_curriculum`` (seqio mixtures have fixed rates); ``xlt.data.pipeline`` switches
its weights at stage boundaries. ``language_mixture`` is the gin entry point that builds either from a
run's config.
"""

from __future__ import annotations

import bisect
import inspect
import math
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import gin

from xlt.data import languages
from xlt.errors import ConfigError, DataError


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


# --- The rate registry ---------------------------------------------------------------------------------

RateFn = Callable[..., Mapping[str, float]]
_RATES: dict[str, RateFn] = {}


def register_rate(name: str, fn: RateFn | None = None):
    """Register ``fn(sizes, **params) -> weights`` under ``name`` (replacing an earlier one); usable as a
    decorator, ``@register_rate("zipf")``. Its keyword parameters are what ``rate_weights`` may pass on;
    parameters without a default are required."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a rate's name must be a non-empty string, got {name!r}")

    def add(f: RateFn) -> RateFn:
        if not callable(f):
            raise ConfigError(f"rate {name!r}: {f!r} is not callable")
        _RATES[name] = f
        return f

    return add if fn is None else add(fn)


def rate_names() -> tuple[str, ...]:
    return tuple(sorted(_RATES))


def get_rate(rate: str) -> RateFn:
    """The rate function registered as ``rate``; a one-line ConfigError naming the registered ones if none."""
    if rate not in _RATES:
        raise ConfigError(f"rate {rate!r} is not registered; choose one of {', '.join(rate_names())} "
                          "(xlt.data.mixtures.register_rate adds one)")
    return _RATES[rate]


def _rate_kwargs(rate: str, params: Mapping[str, object], what: str) -> dict[str, object]:
    """The entries of ``params`` that ``rate``'s function takes (None means unset); a ConfigError when a
    required one is missing."""
    sig = inspect.signature(get_rate(rate))
    wanted = list(sig.parameters.values())[1:]  # after sizes
    kwargs = {}
    for p in wanted:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        value = params.get(p.name)
        if value is not None:
            kwargs[p.name] = value
        elif p.default is inspect.Parameter.empty:
            raise ConfigError(f"{what}rate={rate!r} needs {what}{p.name}")
    return kwargs


def check_rate(rate: str, what: str = "", **params) -> None:
    """Fail now, before any sizes are asked for, if ``rate`` is unknown or lacks a required parameter."""
    _rate_kwargs(rate, params, what)


def rate_weights(rate: str, sizes: Mapping[str, float], what: str = "", **params) -> dict[str, float]:
    """Weights over ``sizes``' languages from the rate registered as ``rate``. ``params`` may hold more than
    the rate takes (``language_mixture`` passes alpha, budget and max_epochs to whichever rate it names); only
    those in the rate function's signature are passed on, None meaning unset. ``what`` prefixes the names in
    an error (e.g. ``'language_mixture.'``)."""
    kwargs = _rate_kwargs(rate, params, what)
    return check_weights(get_rate(rate)(sizes, **kwargs))


register_rate("proportional", proportional)
register_rate("temperature", temperature)
register_rate("unimax", unimax)


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
        *,
        rate: str = "temperature",
        **rate_params,
    ) -> Curriculum:
        """Fixed shares for named languages per stage; the rest split among the others by ``rate``.

        The one fixed-share builder (``language_mixture`` builds its curricula here). The others' weights
        are ``rate_weights(rate, their sizes, alpha=alpha, **rate_params)``: by default temperature
        sampling, p_i ∝ n_i ** alpha. ``stages=[(0, {"en": 0.7}), (10_000, {"en": 0.4})]`` is PolyLM's
        curriculum: non-English data goes from 30% to 60% of the mixture at step 10,000. Named shares must
        lie in [0, 1] and sum to at most 1; a stage whose named shares sum below 1 needs at least one other
        language.
        """
        checked = _check_sizes(sizes)
        check_rate(rate, alpha=alpha, **rate_params)
        built = []
        for step, fixed in stages:
            shares = {}
            for lang, share in fixed.items():
                if lang not in checked:
                    languages.validate(lang)
                    raise DataError(f"stage at step {step}: language {lang!r} is not one of the mixture's "
                                    f"languages {sorted(checked)}")
                x = _check_number(share, f"share of {lang!r} at step {step}")
                if not 0 <= x <= 1:
                    raise DataError(f"stage at step {step}: fixed shares must each be in [0, 1], "
                                    f"got {lang!r}: {share!r}")
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
                for lang, p in rate_weights(rate, rest, alpha=alpha, **rate_params).items():
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
    """Characters per language in one split of the packaged Bible (what the ``bible_<lang>`` tasks report)."""
    from xlt.data import tasks
    from xlt.data.sources import bible

    out = {}
    for lang in langs:
        languages.validate(lang)
        if lang not in bible.LANGUAGES:
            raise DataError(f"no packaged Bible for {lang!r}; available: {', '.join(bible.LANGUAGES)}")
        out[lang] = tasks.bible_chars(lang, split)
    return out


def task_sizes(task_by_language: Mapping[str, str], split: str = "train") -> tuple[dict[str, float], str]:
    """(size per language, unit) asked of each language's task (``xlt.data.tasks`` task metadata).

    Every task must be registered with metadata whose language is the one it stands for, and all must
    report sizes in the same unit (Bible characters and mC4 examples do not mix)."""
    from xlt.data import tasks

    sizes: dict[str, float] = {}
    units: dict[str, str] = {}
    for lang, task in task_by_language.items():
        meta = tasks.require_task_meta(task)
        if meta.language != lang:
            raise DataError(f"task {task!r} carries language {meta.language!r}, not {lang!r}")
        sizes[lang] = meta.size_of(task, split)
        units.setdefault(meta.unit, task)
    if len(units) > 1:
        raise DataError("the tasks report sizes in different units: "
                        + ", ".join(f"{task} in {unit}" for unit, task in units.items()))
    return sizes, next(iter(units))


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


@gin.configurable
def language_mixture(name: str | None = None, languages: Sequence[str] = (), rate: str = "temperature",
                     alpha: float = 0.3, budget: float | None = None, max_epochs: float = 1.0,
                     stages: Sequence[tuple[int, Mapping[str, float]]] = (),
                     task_pattern: str = "bible_{lang}", split: str = "train") -> dict[str, object] | None:
    """Register the run's language mixture from gin (a no-op while ``name`` is unbound).

    Sizes are asked of the tasks ``task_pattern.format(lang=...)`` (``task_sizes``): the packaged Bible's
    training characters for ``bible_{lang}``, TFDS's example counts (or a sizes file) for ``mc4_{lang}``.
    ``rate`` names a registered rate (``rate_names()``); it takes what it needs of ``alpha`` (temperature),
    ``budget`` (UniMax, in the tasks' size unit) and ``max_epochs``. With ``stages`` —
    ``[(start_step, {lang: share}), ...]`` — it is a curriculum (``Curriculum.from_group_shares``): named
    languages get fixed shares, the others split the rest by ``rate``'s weights (PolyLM:
    ``[(0, {'en': 0.7}), (N, {'en': 0.4})]``). Returns a description (stage start steps and weights, the
    size unit) for logging.
    """
    if name is None:
        return None
    if not languages:
        raise DataError(f"language_mixture {name!r}: no languages given")
    for lang in languages:
        _validate_code(lang)
    params = dict(alpha=alpha, budget=budget, max_epochs=max_epochs)
    check_rate(rate, "language_mixture.", **params)
    sizes, unit = task_sizes({lang: task_pattern.format(lang=lang) for lang in languages}, split)
    if not stages:
        weights = rate_weights(rate, sizes, "language_mixture.", **params)
        register_mixture(name, weights, task_pattern)
        return {"stages": [(0, weights)], "unit": unit}
    curriculum = Curriculum.from_group_shares(sizes, stages, alpha, rate=rate, budget=budget, max_epochs=max_epochs)
    register_curriculum(name, curriculum, task_pattern)
    return {"stages": [(stage.start_step, dict(stage.weights)) for stage in curriculum.stages], "unit": unit}
