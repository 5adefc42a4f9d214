"""Rank classification with calibrated and length-normalised scores: sum, per token, per character, PMI.

Given the summed log-likelihood ``log p(option | prompt)`` of each option (``xlt.evaluation.scoring``),
four rankings pick an option:

* ``sum``: the summed log-likelihood (``accuracy``);
* ``per_token``: divided by the option's token count (``accuracy_norm``; depends on the tokenizer);
* ``per_char``: divided by the option's length in characters (lm-evaluation-harness's ``acc_norm``
  normalises this way, so scores compare across tokenizers);
* ``pmi``: ``log p(option | prompt) - log p(option | content-free prompt)``, the pointwise mutual
  information of option and content (Holtzman et al., 2021, domain-conditional PMI; the content-free
  input "N/A" of Zhao et al., 2021). The content-free prompt is the same template with every content slot
  replaced by "N/A" (the examples' ``null_inputs``), so the options' prior under the template's own words,
  answer prefix and option list is what gets subtracted: an option the template makes likely whatever the
  content ("Yes" after "Yes or no?") no longer wins by default.

``rankings`` computes all four from the scores; ``choose`` runs a model through ``score_options`` for the
prompts and (once per distinct content-free prompt and option set) for the content-free prompts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from xlt.errors import ConfigError

RANKINGS: tuple[str, ...] = ("sum", "per_token", "per_char", "pmi")
METRIC_OF_RANKING: dict[str, str] = {"sum": "accuracy", "per_token": "accuracy_norm",
                                     "per_char": "accuracy_char", "pmi": "accuracy_pmi"}


def _vector(name: str, values: Any, n: int | None = None) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ConfigError(f"{name} must be a non-empty list of numbers, one per option, got shape {arr.shape}")
    if n is not None and arr.size != n:
        raise ConfigError(f"{name} has {arr.size} entries for {n} options")
    return arr


def ranking_scores(loglik: Sequence[float], num_tokens: Sequence[int], option_texts: Sequence[str],
                   null_loglik: Sequence[float] | None = None) -> dict[str, np.ndarray]:
    """The score of every option under each ranking (higher is better); ``pmi`` only with ``null_loglik``."""
    ll = _vector("loglik", loglik)
    n = ll.size
    tokens = _vector("num_tokens", num_tokens, n)
    if np.any(tokens < 1):
        raise ConfigError(f"every option needs at least one token, got {list(num_tokens)}")
    if len(option_texts) != n:
        raise ConfigError(f"{len(option_texts)} option texts for {n} options")
    chars = np.asarray([max(len(t), 1) for t in option_texts], dtype=np.float64)
    out = {"sum": ll, "per_token": ll / tokens, "per_char": ll / chars}
    if null_loglik is not None:
        out["pmi"] = ll - _vector("null_loglik", null_loglik, n)
    return out


def rankings(loglik: Sequence[float], num_tokens: Sequence[int], option_texts: Sequence[str],
             null_loglik: Sequence[float] | None = None) -> dict[str, int]:
    """The chosen option index under each ranking (first index on ties, as ``np.argmax``)."""
    return {name: int(np.argmax(s)) for name, s in
            ranking_scores(loglik, num_tokens, option_texts, null_loglik).items()}


ScoreFn = Callable[[list[str], list[list[str]]], list[tuple[Sequence[float], Sequence[int]]]]


def choose(examples: Sequence[dict[str, Any]], score: ScoreFn, *, calibrate: bool = True) -> list[dict[str, int]]:
    """Rankings of every example (dicts with ``inputs``, ``options`` and, to calibrate, ``null_inputs``).

    ``score(prompts, options)`` returns, per prompt, (summed log-likelihoods, token counts) of its options:
    e.g. ``Evaluator.score`` wrapping ``xlt.evaluation.scoring.score_options`` with the evaluator's token
    layout. Content-free prompts are scored once per distinct (null prompt, options) pair, so a template's
    label verbalizer costs one extra prompt, not one per example.
    """
    if calibrate:
        missing = [i for i, ex in enumerate(examples) if "null_inputs" not in ex]
        if missing:
            raise ConfigError(f"PMI calibration needs null_inputs; example {examples[missing[0]].get('id', missing[0])!r}"
                              " has none")
    prompts = [ex["inputs"] for ex in examples]
    options = [list(ex["options"]) for ex in examples]
    scored = score(prompts, options)
    if len(scored) != len(examples):
        raise ConfigError(f"score() returned {len(scored)} results for {len(examples)} prompts")
    nulls: list[Sequence[float] | None] = [None] * len(examples)
    if calibrate:
        keys = [(ex["null_inputs"], tuple(ex["options"])) for ex in examples]
        unique = list(dict.fromkeys(keys))
        null_scores = score([k[0] for k in unique], [list(k[1]) for k in unique])
        by_key = {k: s[0] for k, s in zip(unique, null_scores)}
        nulls = [by_key[k] for k in keys]
    return [rankings(ll, n, opts, null) for (ll, n), opts, null in zip(scored, options, nulls)]
