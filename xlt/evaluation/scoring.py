"""Rank classification: the log-likelihood of each answer option given its prompt.

``score_options`` computes every prompt once, however many options it has:

* decoder-only: the prompt is prefilled into a KV cache (``cache_mode="extend"``; bidirectionally with
  ``prefix_lm``, as seqio's prefix-LM features train it), the log-probability of each option's first
  token is read from the prompt's last position, and then all options of the prompt are run in one
  forward against that cache (``cache_mode="shared"``): option rows are grouped per prompt and the
  prompt's keys and values are contracted once per group, never copied per option.
* encoder-decoder: the prompt is encoded once and the options decode against the encoding grouped the
  same way (cross-attention keys and values projected once per prompt).

The per-family computation is the model interface's (``xlt.models.api``: ``score_shared`` and
``score_pairs``); this module validates, buckets, batches and places the inputs.

``score_options_naive`` runs one full training forward per prompt+option pair (prompt recomputed for
every option): the reference in tests and the baseline for benchmarks.

Shapes are bucketed (prompts per batch fixed to ``batch_size``; lengths and option counts rounded up to
powers of two), so an evaluation compiles a few programs, not one per example. Prompts are batched in order
of length (prompt, then longest option), so a batch pads to its own longest rather than to the longest of a
random draw; results come back in the caller's order. Padding is masked:
padded prompt tokens are never written to the cache, padded options and option tokens carry no weight.

The result per prompt is an ``OptionScores``: summed log-likelihood and token count per option, so
the caller picks sum or length-normalised ranking.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import Mesh

from xlt.decoding import (PAD_ID, as_token_lists, batch_shards, bucket, check_cache_divisible, check_tokens,
                          mesh_context, place_batch, place_params)
from xlt.errors import ConfigError
from xlt.models.api import ModelAPI, model_api

Array = jax.Array


class OptionScores(NamedTuple):
    loglik: np.ndarray  # [n_options] float32: sum of log p(option token | prompt, earlier option tokens)
    num_tokens: np.ndarray  # [n_options] int32: tokens per option

    def normalized(self) -> np.ndarray:
        """Per-token log-likelihood (length-normalised ranking)."""
        return self.loglik / self.num_tokens

    def best(self, length_normalized: bool = False) -> int:
        return int(np.argmax(self.normalized() if length_normalized else self.loglik))


def _validate(api: ModelAPI, prompts: Any, options: Any, prefix_lm: bool,
              batch_size: int) -> tuple[list[np.ndarray], list[list[np.ndarray]]]:
    api.check_prefix_lm(prefix_lm)
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    prompt_rows = as_token_lists(prompts)
    if len(options) != len(prompt_rows):
        raise ConfigError(f"{len(prompt_rows)} prompts but {len(options)} option lists")
    option_rows = []
    for i, opts in enumerate(options):
        if len(opts) == 0:
            raise ConfigError(f"prompt {i} has no options")
        option_rows.append(as_token_lists(opts, what=f"prompt {i}: option"))
    check_tokens(prompt_rows, api.cfg.vocab_size, "prompt")
    for i, opts in enumerate(option_rows):
        check_tokens(opts, api.cfg.vocab_size, f"prompt {i}: option")
        n, k = len(prompt_rows[i]), max(len(o) for o in opts)
        api.check_continuation_length(n, k, f"prompt {i} ({n} tokens) with its longest option ({k} tokens)")
    return prompt_rows, option_rows


def _batches(n: int, size: int):
    for start in range(0, n, size):
        yield range(start, min(start + size, n))


@functools.partial(jax.jit, static_argnames=("model", "prefix_lm", "mesh"))
def _score_shared(model: ModelAPI, params: Any, prompts: Array, prompt_lens: Array, options: Array,
                  option_lens: Array, *, prefix_lm: bool, mesh: Mesh | None) -> Array:
    """prompts [n, P], options [n, O, K] -> summed log-likelihood [n, O] (0 for padded options)."""
    del mesh  # part of the cache key only
    return model.score_shared(params, prompts, prompt_lens, options, option_lens, prefix_lm=prefix_lm)


def score_options(model: nn.Module | ModelAPI, params: Any, prompts: Sequence[Sequence[int]],
                  options: Sequence[Sequence[Sequence[int]]], *, prefix_lm: bool = False, batch_size: int = 8,
                  mesh: Mesh | None = None) -> list[OptionScores]:
    """Log-likelihood of every option of every prompt, each prompt computed once.

    ``prompts[i]`` is fed verbatim (decoder-only: the option continues it; encoder-decoder: it is the
    encoder input and the option the decoder target); ``options[i]`` is a non-empty list of non-empty
    token lists. ``batch_size`` prompts (with all their options) go through one forward; with ``mesh``
    the prompts are sharded over the batch axes. Returns one ``OptionScores`` per prompt.
    """
    api = model_api(model)
    prompt_rows, option_rows = _validate(api, prompts, options, prefix_lm, batch_size)
    rows_per_batch = -(-batch_size // batch_shards(mesh)) * batch_shards(mesh)
    results: list[OptionScores | None] = [None] * len(prompt_rows)
    order = sorted(range(len(prompt_rows)), key=lambda i: (len(prompt_rows[i]), len(option_rows[i]),
                                                          max(len(o) for o in option_rows[i])))
    params = place_params(api, params, mesh)
    with mesh_context(mesh):
        for span in _batches(len(order), rows_per_batch):
            idx = [order[j] for j in span]
            width = bucket(max(len(prompt_rows[i]) for i in idx))
            n_opts = bucket(max(len(option_rows[i]) for i in idx), minimum=1)
            opt_width = bucket(max(len(o) for i in idx for o in option_rows[i]), minimum=8)
            cache = api.scoring_cache(width)
            if mesh is not None and cache is not None:
                check_cache_divisible(api, mesh, rows_per_batch, *cache)
            p_tok = np.full((rows_per_batch, width), PAD_ID, np.int32)
            p_len = np.ones((rows_per_batch,), np.int32)
            o_tok = np.full((rows_per_batch, n_opts, opt_width), PAD_ID, np.int32)
            o_len = np.zeros((rows_per_batch, n_opts), np.int32)
            for r, i in enumerate(idx):
                p_tok[r, :len(prompt_rows[i])] = prompt_rows[i]
                p_len[r] = len(prompt_rows[i])
                for j, o in enumerate(option_rows[i]):
                    o_tok[r, j, :len(o)] = o
                    o_len[r, j] = len(o)
            scores = _score_shared(api, params, *place_batch([p_tok, p_len, o_tok, o_len], mesh),
                                   prefix_lm=prefix_lm, mesh=mesh)
            scores = np.asarray(jax.device_get(scores))
            for r, i in enumerate(idx):
                k = len(option_rows[i])
                results[i] = OptionScores(scores[r, :k].astype(np.float32), o_len[r, :k].copy())
    return results  # type: ignore[return-value]  # every index was filled


# --- The reference: one forward per prompt+option -----------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("model", "prefix_lm", "mesh"))
def _score_pairs(model: ModelAPI, params: Any, prompts: Array, prompt_lens: Array, options: Array,
                 option_lens: Array, *, prefix_lm: bool, mesh: Mesh | None) -> Array:
    """Rows of (prompt [P], option [K]) -> summed option log-likelihood per row, by the training forward."""
    del mesh
    return model.score_pairs(params, prompts, prompt_lens, options, option_lens, prefix_lm=prefix_lm)


def score_options_naive(model: nn.Module | ModelAPI, params: Any, prompts: Sequence[Sequence[int]],
                        options: Sequence[Sequence[Sequence[int]]], *, prefix_lm: bool = False,
                        batch_size: int = 8, mesh: Mesh | None = None) -> list[OptionScores]:
    """Same result as ``score_options``, by one full forward per prompt+option (``batch_size`` pairs
    per forward): the reference, recomputing each prompt for every option."""
    api = model_api(model)
    prompt_rows, option_rows = _validate(api, prompts, options, prefix_lm, batch_size)
    pairs = [(i, o) for i, opts in enumerate(option_rows) for o in opts]
    rows_per_batch = -(-batch_size // batch_shards(mesh)) * batch_shards(mesh)
    flat: list[float] = []
    params = place_params(api, params, mesh)
    with mesh_context(mesh):
        for idx in _batches(len(pairs), rows_per_batch):
            width = bucket(max(len(prompt_rows[pairs[j][0]]) for j in idx))
            opt_width = bucket(max(len(pairs[j][1]) for j in idx), minimum=8)
            p_tok = np.full((rows_per_batch, width), PAD_ID, np.int32)
            p_len = np.ones((rows_per_batch,), np.int32)
            o_tok = np.full((rows_per_batch, opt_width), PAD_ID, np.int32)
            o_len = np.zeros((rows_per_batch,), np.int32)
            for r, j in enumerate(idx):
                p, o = prompt_rows[pairs[j][0]], pairs[j][1]
                p_tok[r, :len(p)], p_len[r], o_tok[r, :len(o)], o_len[r] = p, len(p), o, len(o)
            scores = _score_pairs(api, params, *place_batch([p_tok, p_len, o_tok, o_len], mesh),
                                  prefix_lm=prefix_lm, mesh=mesh)
            flat.extend(np.asarray(jax.device_get(scores))[:len(idx)].tolist())
    results, k = [], 0
    for opts in option_rows:
        results.append(OptionScores(np.asarray(flat[k:k + len(opts)], np.float32),
                                    np.asarray([len(o) for o in opts], np.int32)))
        k += len(opts)
    return results


__all__ = ["OptionScores", "score_options", "score_options_naive"]
