"""Autoregressive generation for every layout, with a KV cache or (as the reference) without.

Design
------
* Prompts of different lengths share one batch right-padded to a length bucket (a power of two), so a
  handful of shapes cover an evaluation and each compiles once. A row's tokens keep their true
  positions 0..len-1; the cache slot of a token is its position. Generated token j of a row sits at
  position len + j, so learned positions, RoPE and T5's relative bias see exactly what the training
  forward sees on the unpadded sequence.
* The cache is flax's "cache" collection (see ``xlt.models.layers``), created by ``init_cache`` with a
  fixed number of slots (prompt bucket + max_new_tokens), logical axes (batch, length, heads, kv), and a
  leading ``layers`` axis under ``scan_layers``. Prefill writes the whole prompt in one call
  (``cache_mode="extend"``, prompt padding is not written); each step then writes one token per row.
  ``prefix_lm=True`` prefills with ``decoder_causal_attention`` on the prompt, as seqio's prefix-LM
  features do in training, so the prompt attends to itself bidirectionally.
* Encoder-decoders encode once; cross-attention keys/values are projected once into the cache. The
  decoder starts from the start id (0: seqio's shifted-right targets).
* What differs per model family (how a row's next-token logits are computed, cached or not, the cache's
  size) is the model interface's (``xlt.models.api``: ``decode_start``, ``prefill``, ``init_cache``,
  ``generation_cache``); this module owns the inputs, the loop, sampling and EOS handling. Functions here
  take an xlt model or a ``ModelAPI`` (whose start and EOS ids they then use).
* ``use_cache=False`` recomputes the full training forward on a fixed-size buffer every step: the
  reference for tests and the baseline for benchmarks. Both paths share the loop, sampling and EOS
  handling, so they differ only in how logits are computed.
* The loop is one ``lax.while_loop`` inside one ``jax.jit`` (stopping once every row has emitted EOS).
  Step i samples with ``fold_in(rng, i)`` (see ``sample_logits``): a row's draws do not depend on the
  batch size or on the rows added to fill a mesh.
* On a mesh, parameters are placed by their logical axes, batch rows are padded to a multiple of the
  batch shards, and the cache is constrained by its logical axes, all through
  ``xlt.partitioning.axis_rules()`` (as ``xlt.step`` does for training).

Conventions (seqio): 0 is padding, 1 is EOS. Output rows hold the generated tokens up to and including
EOS, then 0; ``lengths`` counts them (EOS included).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding

from xlt import partitioning
from xlt.errors import ConfigError, DataError
from xlt.models.api import DEFAULT_EOS_ID, PAD_ID, ModelAPI, abstract_unbox, mesh_context, model_api
from xlt.models.config import ModelConfig

EOS_ID = DEFAULT_EOS_ID
Array = jax.Array


class Generation(NamedTuple):
    tokens: np.ndarray  # [batch, max_new_tokens] int32: generated ids, EOS included, then PAD_ID
    lengths: np.ndarray  # [batch] int32: generated tokens per row, EOS included


# --- Inputs, buckets and placement (shared with xlt.evaluation.scoring) ----------------------------------


def bucket(n: int, minimum: int = 16) -> int:
    """The padded size for n: the next power of two, at least ``minimum``."""
    return max(minimum, 1 << max(int(n) - 1, 0).bit_length())


def model_cfg(model: nn.Module | ModelAPI) -> ModelConfig:
    return model_api(model).cfg


def check_tokens(seqs: Sequence[np.ndarray], vocab_size: int, what: str) -> None:
    for i, s in enumerate(seqs):
        if s.size and (s.min() < 0 or s.max() >= vocab_size):
            raise DataError(f"{what} {i} has token ids outside [0, vocab_size={vocab_size})")


def as_token_lists(prompts: Any, lengths: Any = None, what: str = "prompt") -> list[np.ndarray]:
    """Token id lists, or a padded [batch, length] array with per-row ``lengths``, as int32 arrays."""
    if lengths is not None:
        arr = np.asarray(prompts)
        lens = np.asarray(lengths)
        if arr.ndim != 2 or lens.shape != (arr.shape[0],):
            raise ConfigError(f"padded {what}s must be [batch, length] with lengths [batch]; got {arr.shape} "
                              f"and {lens.shape}")
        if np.any(lens > arr.shape[1]):
            raise ConfigError(f"a {what} length exceeds the padded width {arr.shape[1]}")
        rows = [arr[i, :int(n)] for i, n in enumerate(lens)]
    elif isinstance(prompts, np.ndarray) and prompts.ndim == 2:
        raise ConfigError(f"a padded {what} array needs lengths=... (0 is a token id, not a length marker)")
    else:
        rows = [np.asarray(p) for p in prompts]
    out = []
    for i, r in enumerate(rows):
        if r.ndim != 1 or (r.size and not np.issubdtype(r.dtype, np.integer)):
            raise ConfigError(f"{what} {i} must be a 1-D sequence of token ids")
        if r.size == 0:
            raise ConfigError(f"{what} {i} is empty")
        out.append(r.astype(np.int32))
    if not out:
        raise ConfigError(f"no {what}s given")
    return out


def pad_rows(rows: Sequence[np.ndarray], width: int, n_rows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad rows with PAD_ID into [n_rows, width]; extra rows are a single PAD_ID token (length 1)."""
    n_rows = len(rows) if n_rows is None else n_rows
    out = np.full((n_rows, width), PAD_ID, np.int32)
    lens = np.ones((n_rows,), np.int32)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
        lens[i] = len(r)
    return out, lens


def batch_shards(mesh: Mesh | None) -> int:
    if mesh is None:
        return 1
    return partitioning.mesh_axis_size(mesh, partitioning.logical_to_spec(("batch",))[0])


def param_shardings(model: nn.Module | ModelAPI, mesh: Mesh) -> Any:
    """NamedShardings of the model's parameters from their logical axes (checked for divisibility)."""
    return model_api(model).param_shardings(mesh)


def place_params(model: nn.Module, params: Any, mesh: Mesh | None) -> Any:
    return params if mesh is None else jax.device_put(params, param_shardings(model, mesh))


def place_batch(arrays: Sequence[np.ndarray], mesh: Mesh | None) -> list[Any]:
    """Host arrays onto the mesh, rows sharded over the batch axes, other axes replicated."""
    if mesh is None:
        return [jnp.asarray(a) for a in arrays]
    return [jax.device_put(a, NamedSharding(mesh, partitioning.logical_to_spec(("batch",) + (None,) * (a.ndim - 1))))
            for a in arrays]


# --- The cache ---------------------------------------------------------------------------------------------


def init_cache(model: nn.Module | ModelAPI, batch_size: int, length: int, encoded_length: int | None = None) -> Any:
    """An empty cache of ``length`` slots per row, boxed with its logical axis names.

    ``nn.meta.unbox`` gives the arrays (constrained to their shardings under a mesh context);
    ``nn.get_partition_spec`` their logical specs. Encoder-decoders also need ``encoded_length``, the
    encoder input length the cross-attention cache holds. Under ``jax.jit`` only the cache is computed."""
    return model_api(model).init_cache(batch_size, length, encoded_length)


@functools.lru_cache(maxsize=64)
def cache_specs(model: nn.Module, batch_size: int, length: int, encoded_length: int | None = None) -> Any:
    """Logical PartitionSpecs of the cache (a tree like the cache)."""
    return nn.get_partition_spec(jax.eval_shape(lambda: init_cache(model, batch_size, length, encoded_length)))


def check_cache_divisible(model: nn.Module, mesh: Mesh, batch_size: int, length: int,
                          encoded_length: int | None = None) -> None:
    specs = cache_specs(model, batch_size, length, encoded_length)
    shapes = abstract_unbox(jax.eval_shape(lambda: init_cache(model, batch_size, length, encoded_length)))
    partitioning.check_divisible(shapes, partitioning.logical_sharding(specs, mesh, shapes=shapes), "cache")


def apply_cached(model: nn.Module | ModelAPI, params: Any, cache: Any, batch: dict[str, Array], mode: str = "extend",
                 encoded: Array | None = None) -> tuple[Array, Any]:
    """One cached forward: (logits, new cache). ``mode="shared"`` leaves the cache as it was."""
    return model_api(model).apply_cached(params, cache, batch, mode, encoded)


# --- Sampling -------------------------------------------------------------------------------------------------


def prefill(model: nn.Module | ModelAPI, params: Any, tokens: Array, lengths: Array, slots: int, *,
            prefix_lm: bool = False) -> tuple[Array, Any]:
    """Write right-padded prompts [rows, width] into a fresh cache of ``slots`` positions in one call
    (bidirectionally with ``prefix_lm``); returns the logits at each row's last prompt token [rows, V] and
    the cache. Padding is not written. Decoder-only models."""
    return model_api(model).prefill(params, tokens, lengths, slots, prefix_lm=prefix_lm)


def sample_logits(logits: Array, rng: Array | None, *, greedy: bool, temperature: Array | float = 1.0,
                  top_k: int = 0, top_p: Array | float | None = None) -> Array:
    """Next token per row from [batch, vocab] logits: argmax, or a draw at ``temperature`` from the
    ``top_k`` most likely tokens (0: all), further cut to the smallest set whose probability reaches
    ``top_p`` (None: no cut). A draw is argmax(logits + Gumbel noise) with one noise block per call;
    with jax's partitionable threefry (the default) row r's noise depends only on r, so a row's draw does
    not change with the batch size or the rows added to fill a mesh."""
    logits = logits.astype(jnp.float32)
    if greedy:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = logits / temperature
    vocab = logits.shape[-1]
    if top_k or top_p is not None:  # candidates sorted by logit, exactly k of them
        vals, ids = jax.lax.top_k(logits, top_k if top_k else vocab)
        if top_p is not None:
            probs = jax.nn.softmax(vals, axis=-1)
            before = jnp.cumsum(probs, axis=-1) - probs  # mass of the more likely candidates
            vals = jnp.where(before < top_p, vals, -jnp.inf)  # the most likely is always kept
    else:
        vals, ids = logits, None
    choice = jnp.argmax(vals + jax.random.gumbel(rng, vals.shape, jnp.float32), axis=-1)
    if ids is not None:
        choice = jnp.take_along_axis(ids, choice[:, None], axis=-1)[:, 0]
    return choice.astype(jnp.int32)


# --- The loop ---------------------------------------------------------------------------------------------------


def _decode_loop(first_logits: Array | None, state: Any, step: Callable[[Any, Array, Array], tuple[Array, Any]],
                 sample: Callable[[Array, Array], Array], max_new: int, eos_id: Array,
                 rows: int) -> tuple[Array, Array]:
    """``step(state, previous token, i)`` gives the logits of token i. With ``first_logits`` (a prefill)
    token 0 is sampled from them; without, the loop starts at i = 0 (previous token: PAD_ID), so the
    model is traced once. Rows stop at EOS (later tokens are PAD_ID); the loop ends when all have."""
    out = jnp.zeros((rows, max_new), jnp.int32)
    if first_logits is None:
        start, tok, done = 0, jnp.full((rows,), PAD_ID, jnp.int32), jnp.zeros((rows,), bool)
    else:
        start, tok = 1, sample(first_logits, jnp.int32(0))
        out, done = out.at[:, 0].set(tok), tok == eos_id

    def cond(carry):
        i, _, _, done, _ = carry
        return (i < max_new) & ~jnp.all(done)

    def body(carry):
        i, tok, out, done, state = carry
        logits, state = step(state, tok, i)
        new = jnp.where(done, PAD_ID, sample(logits, i))
        out = jax.lax.dynamic_update_slice(out, new[:, None], (0, i))
        return i + 1, new, out, done | (new == eos_id), state

    _, _, out, _, _ = jax.lax.while_loop(cond, body, (jnp.int32(start), tok, out, done, state))
    is_eos = out == eos_id
    lengths = jnp.where(jnp.any(is_eos, axis=1), jnp.argmax(is_eos, axis=1) + 1, max_new)
    return out, lengths.astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("api", "max_new", "greedy", "top_k", "use_top_p", "prefix_lm",
                                             "use_cache", "mesh"))
def _generate_jit(api: ModelAPI, params: Any, tokens: Array, lengths: Array, rng: Array, eos_id: Array,
                  temperature: Array, top_p: Array, *, max_new: int, greedy: bool, top_k: int, use_top_p: bool,
                  prefix_lm: bool, use_cache: bool, mesh: Mesh | None) -> tuple[Array, Array]:
    del mesh  # part of the cache key only: the trace runs under its context

    def sample(logits, i):
        return sample_logits(logits, jax.random.fold_in(rng, i), greedy=greedy, temperature=temperature,
                             top_k=top_k, top_p=top_p if use_top_p else None)

    first, state, step = api.decode_start(params, tokens, lengths, max_new, prefix_lm=prefix_lm, use_cache=use_cache)
    return _decode_loop(first, state, step, sample, max_new, eos_id, tokens.shape[0])


def generate(model: nn.Module | ModelAPI, params: Any, prompts: Any, *, max_new_tokens: int, lengths: Any = None,
             eos_id: int | None = None, temperature: float = 0.0, top_k: int = 0, top_p: float = 1.0,
             rng: Array | None = None, prefix_lm: bool = False, use_cache: bool = True,
             mesh: Mesh | None = None) -> Generation:
    """Generate up to ``max_new_tokens`` per prompt; each row stops at its first ``eos_id``.

    ``model``: an xlt model or a ``ModelAPI`` (``xlt.models.api.model_api``, which carries the start and EOS
    ids). ``prompts``: token id lists, or a padded [batch, length] array with ``lengths``. Decoder-only models
    continue the prompt (fed verbatim: ``ModelAPI.text_tokens`` / ``prompt_tokens`` lay a text out as in
    training); encoder-decoders encode it and decode from the start id. ``eos_id`` defaults to the
    interface's. ``temperature=0`` is greedy; otherwise
    tokens are drawn with ``rng`` from the ``top_k`` (0: all) most likely, cut to nucleus ``top_p``.
    ``prefix_lm`` (decoder-only) makes the prompt bidirectional as seqio's decoder_causal_attention does.
    ``use_cache=False`` recomputes the full forward each step (the reference). With ``mesh``, params and
    rows are sharded by ``xlt.partitioning`` (rows padded to a multiple of the batch shards).
    """
    api = model_api(model)
    cfg = api.cfg
    rows = as_token_lists(prompts, lengths)
    check_tokens(rows, cfg.vocab_size, "prompt")
    if not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
    eos_id = api.eos_id if eos_id is None else eos_id  # default: the model interface's (EOS_ID unless given)
    if not 0 <= eos_id < cfg.vocab_size:
        raise ConfigError(f"eos_id={eos_id} is outside the vocabulary of {cfg.vocab_size}")
    if temperature < 0 or not math.isfinite(temperature):
        raise ConfigError(f"temperature must be >= 0, got {temperature}")
    if not 0 <= top_k <= cfg.vocab_size:
        raise ConfigError(f"top_k must be in [0, vocab_size={cfg.vocab_size}], got {top_k}")
    if not 0.0 < top_p <= 1.0:
        raise ConfigError(f"top_p must be in (0, 1], got {top_p}")
    greedy = temperature == 0.0
    if not greedy and rng is None:
        raise ConfigError("sampling (temperature > 0) needs rng=jax.random.key(...)")
    api.check_prefix_lm(prefix_lm)
    longest = max(len(r) for r in rows)
    api.check_continuation_length(longest, max_new_tokens,
                                  f"prompt of {longest} tokens + max_new_tokens={max_new_tokens}")
    n_rows = -(-len(rows) // batch_shards(mesh)) * batch_shards(mesh)
    width = bucket(longest)
    tokens, lens = pad_rows(rows, width, n_rows)
    if mesh is not None:
        partitioning.check_batch(n_rows, mesh, what="generate batch")
        if use_cache:
            check_cache_divisible(api, mesh, n_rows, *api.generation_cache(width, max_new_tokens))
    rng = jax.random.key(0) if rng is None else rng
    params = place_params(api, params, mesh)
    tokens_d, lens_d = place_batch([tokens, lens], mesh)
    with mesh_context(mesh):
        out, out_lens = _generate_jit(
            api, params, tokens_d, lens_d, rng, jnp.int32(eos_id), jnp.float32(temperature if not greedy else 1.0),
            jnp.float32(top_p), max_new=int(max_new_tokens), greedy=greedy,
            top_k=int(top_k), use_top_p=(not greedy) and top_p < 1.0, prefix_lm=prefix_lm,
            use_cache=use_cache, mesh=mesh)
    out, out_lens = jax.device_get((out, out_lens))
    return Generation(np.asarray(out)[:len(rows)], np.asarray(out_lens)[:len(rows)])
