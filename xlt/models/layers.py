"""Transformer building blocks shared by every layout.

Each parameter is created with its logical axis names (``nn.with_logical_partitioning``) and key
activations are constrained with ``constrain``; where they land on a mesh is decided only by the run's
rules, ``xlt.partitioning.axis_rules()``. Query heads are ``heads``; key/value heads (fewer under
grouped-query attention) are ``kv_heads``, replicated by ``xlt.partitioning`` wherever they do not divide
over their mesh axis. Cached decoding keeps keys and values in flax's "cache" collection, with logical
names too (see "KV cache" below).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from xlt import losses, partitioning
from xlt.errors import ConfigError
from xlt.models.config import ModelConfig

Array = jax.Array

embed_init = nn.initializers.normal(stddev=0.02)


def constrain(x: Array, axes: Sequence[str | None]) -> Array:
    """Pin an activation's layout by logical axis names (a no-op outside a mesh context); ragged ``kv_heads``
    are replicated (``xlt.partitioning.constrain``)."""
    return partitioning.constrain(x, axes)


def dtype_of(name: str):
    return jnp.dtype(name)


class Dense(nn.Module):
    """y = x · W (+ b), contracting the last ``contract`` axes of x into ``features``."""

    features: tuple[int, ...]
    axes: tuple[str | None, ...]  # logical names of the kernel: contracted axes then feature axes
    contract: int = 1
    use_bias: bool = False
    dtype: str = "float32"
    param_dtype: str = "float32"
    init_scale: float = 1.0  # variance of the fan-in scaled truncated normal

    @nn.compact
    def __call__(self, x: Array) -> Array:
        in_shape = x.shape[-self.contract:]
        n_in = len(in_shape)
        init = nn.initializers.variance_scaling(  # fan-in over every contracted axis
            self.init_scale, "fan_in", "truncated_normal", in_axis=tuple(range(n_in)),
            out_axis=tuple(range(n_in, n_in + len(self.features))))
        kernel = self.param("kernel", partitioning.with_logical_partitioning(init, self.axes),
                            tuple(in_shape) + tuple(self.features), dtype_of(self.param_dtype))
        y = jnp.tensordot(x.astype(self.dtype), kernel.astype(self.dtype), axes=self.contract)
        if self.use_bias:
            bias = self.param("bias", partitioning.with_logical_partitioning(nn.initializers.zeros, self.axes[n_in:]),
                              tuple(self.features), dtype_of(self.param_dtype))
            y = y + bias.astype(self.dtype)
        return y


class Embed(nn.Module):
    """Token (or position) table with logical axes (vocab, embed); a tied ``LMHead`` reads its ``embedding``."""

    num_embeddings: int
    features: int
    axes: tuple[str, str] = ("vocab", "embed")
    dtype: str = "float32"
    param_dtype: str = "float32"

    def setup(self):
        self.embedding = self.param("embedding", nn.with_logical_partitioning(embed_init, self.axes),
                                    (self.num_embeddings, self.features), dtype_of(self.param_dtype))

    def __call__(self, ids: Array) -> Array:
        return jnp.take(self.embedding, ids, axis=0).astype(self.dtype)


class Norm(nn.Module):
    """LayerNorm (mean-centred, optional bias) or RMSNorm; statistics in fp32."""

    kind: str = "rmsnorm"
    eps: float = 1e-6
    use_bias: bool = False
    dtype: str = "float32"
    param_dtype: str = "float32"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        d = x.shape[-1]
        xf = x.astype(jnp.float32)
        if self.kind == "layernorm":
            xf = xf - jnp.mean(xf, axis=-1, keepdims=True)
        y = xf * jax.lax.rsqrt(jnp.mean(jnp.square(xf), axis=-1, keepdims=True) + self.eps)
        scale = self.param("scale", nn.with_logical_partitioning(nn.initializers.ones, ("embed",)),
                           (d,), dtype_of(self.param_dtype))
        y = y * scale.astype(jnp.float32)
        if self.use_bias and self.kind == "layernorm":
            bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros, ("embed",)),
                              (d,), dtype_of(self.param_dtype))
            y = y + bias.astype(jnp.float32)
        return y.astype(self.dtype)


def make_norm(cfg: ModelConfig, name: str) -> Norm:
    return Norm(kind=cfg.norm, eps=cfg.norm_eps, use_bias=cfg.use_bias, dtype=cfg.dtype,
                param_dtype=cfg.param_dtype, name=name)


ACTIVATIONS = {
    "gelu": functools.partial(jax.nn.gelu, approximate=False),
    "gelu_tanh": functools.partial(jax.nn.gelu, approximate=True),
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
}


class Mlp(nn.Module):
    """Feed-forward block: act(x·Wi)·Wo, or gated act(x·Wi_0) * (x·Wi_1) · Wo (SwiGLU, gated-GELU)."""

    cfg: ModelConfig

    @nn.compact
    def __call__(self, x: Array, deterministic: bool = True) -> Array:
        cfg = self.cfg
        dense = functools.partial(Dense, use_bias=cfg.use_bias, dtype=cfg.dtype, param_dtype=cfg.param_dtype)
        act = ACTIVATIONS[cfg.activation]
        if cfg.gated_mlp:
            h = act(dense((cfg.d_ff,), ("embed", "mlp"), name="wi_0")(x)) * dense((cfg.d_ff,), ("embed", "mlp"),
                                                                                   name="wi_1")(x)
        else:
            h = act(dense((cfg.d_ff,), ("embed", "mlp"), name="wi")(x))
        h = constrain(h, ("batch", "length", "mlp"))
        h = nn.Dropout(cfg.dropout_rate)(h, deterministic=deterministic)
        return dense((cfg.d_model,), ("mlp", "embed"), name="wo")(h)


# --- Positions ------------------------------------------------------------------------------------


def apply_rope(x: Array, positions: Array, theta: float) -> Array:
    """Rotary embedding on [batch, length, heads, head_dim], halves rotated (the Llama/HF convention)."""
    half = x.shape[-1] // 2
    freq = theta ** (-jnp.arange(half, dtype=jnp.float32) / half)
    angle = positions.astype(jnp.float32)[..., None] * freq  # [b, t, half]
    cos, sin = jnp.cos(angle)[:, :, None, :], jnp.sin(angle)[:, :, None, :]
    x1, x2 = jnp.split(x.astype(jnp.float32), 2, axis=-1)
    return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


def relative_bucket(relative: Array, bidirectional: bool, num_buckets: int, max_distance: int) -> Array:
    """T5's bucketing of (key - query) distances: exact for small, logarithmic up to max_distance."""
    n = -relative
    bucket = jnp.zeros_like(relative)
    if bidirectional:
        num_buckets //= 2
        bucket = bucket + (n < 0).astype(jnp.int32) * num_buckets
        n = jnp.abs(n)
    else:
        n = jnp.maximum(n, 0)
    max_exact = num_buckets // 2
    large = max_exact + (jnp.log(jnp.maximum(n, 1).astype(jnp.float32) / max_exact)
                         / math.log(max_distance / max_exact) * (num_buckets - max_exact)).astype(jnp.int32)
    large = jnp.minimum(large, num_buckets - 1)
    return bucket + jnp.where(n < max_exact, n, large)


class RelativePositionBias(nn.Module):
    """Learned per-head bias over bucketed distances, computed once per stack and shared by its layers."""

    cfg: ModelConfig
    bidirectional: bool

    @nn.compact
    def __call__(self, q_len: int, k_len: int, q_positions: Array | None = None,
                 k_positions: Array | None = None) -> Array:
        """[1, heads, q, k] from the index distance, or [batch, heads, q, k] from explicit per-row
        ``q_positions`` [batch, q] and ``k_positions`` [batch, k] (cached decoding)."""
        cfg = self.cfg
        if q_positions is None:
            rel = jnp.arange(k_len)[None, :] - jnp.arange(q_len)[:, None]
        else:
            rel = k_positions[:, None, :] - q_positions[:, :, None]
        buckets = relative_bucket(rel, self.bidirectional, cfg.relative_buckets, cfg.relative_max_distance)
        table = self.param("rel_embedding",
                           nn.with_logical_partitioning(embed_init, ("relpos_buckets", "heads")),
                           (cfg.relative_buckets, cfg.num_heads), dtype_of(cfg.param_dtype))
        bias = jnp.take(table, buckets, axis=0)  # [q, k, heads] (or [batch, q, k, heads])
        if q_positions is not None:
            return jnp.transpose(bias, (0, 3, 1, 2)).astype(cfg.dtype)  # [batch, heads, q, k]
        return jnp.transpose(bias, (2, 0, 1))[None].astype(cfg.dtype)  # [1, heads, q, k]


def relative_bias(cfg: ModelConfig, bidirectional: bool, length: int, q_positions: Array | None = None,
                  k_positions: Array | None = None) -> Array | None:
    """A stack's shared relative position bias when ``cfg.position == 'relative'`` (rope is applied
    inside attention; learned and 'none' add no bias). Call from a compact method: it creates the
    ``relpos`` submodule there. With positions (cached decoding) the bias is per row, [b, heads, q, k]."""
    if cfg.position != "relative":
        return None
    if q_positions is not None:
        return RelativePositionBias(cfg, bidirectional=bidirectional, name="relpos")(
            q_positions.shape[1], k_positions.shape[1], q_positions, k_positions)
    return RelativePositionBias(cfg, bidirectional=bidirectional, name="relpos")(length, length)


def alibi_slopes(num_heads: int) -> np.ndarray:
    """BLOOM's ALiBi slopes [heads] (Press et al. 2022; HF ``_get_alibi_slopes``), float32.

    For n = the largest power of two <= heads, head h < n gets 2**(-8 (h + 1) / n); the remaining heads take
    every other slope of the 2n-head sequence: 2**(-8 (2j + 1) / 2n) for j = 0, 1, ... Each slope is the
    correctly rounded power of the float32 base (torch's float32 ``pow`` can be one ulp off it).
    """
    closest = 2 ** math.floor(math.log2(num_heads))
    base = np.float64(np.float32(2.0 ** (-(2.0 ** -(math.log2(closest) - 3)))))
    slopes = base ** np.arange(1, closest + 1)
    if closest != num_heads:
        extra_base = np.float64(np.float32(2.0 ** (-(2.0 ** -(math.log2(2 * closest) - 3)))))
        extra = min(closest, num_heads - closest)
        slopes = np.concatenate([slopes, extra_base ** np.arange(1, 1 + 2 * extra, 2)])
    return slopes.astype(np.float32)


def alibi_bias(cfg: ModelConfig, key_positions: Array) -> Array | None:
    """ALiBi's attention bias [batch, heads, 1, keys] when ``cfg.position == 'alibi'`` (else None), float32.

    Head h adds ``slope_h * key_positions[b, k]`` to every query's logit for key k, as HF's BLOOM does
    (``build_alibi_tensor``: the key's position in its row). Within one query's softmax this equals the paper's
    ``-slope_h * (query position - key position)``, since the two differ by a constant per query; so with
    positions from ``decoder_positions`` it is exact for packed rows (positions restart per segment and a query
    only sees its own segment), for padded rows, for a prefix-LM's bidirectional prefix and for the KV cache (a
    slot's key position is its token's position). The query axis is 1 (broadcast), so the bias costs
    [batch, heads, keys], not [batch, heads, queries, keys]. Kept in float32 whatever the compute dtype:
    slope * position reaches the hundreds, where bf16 would round it by whole units."""
    if cfg.position != "alibi":
        return None
    slopes = jnp.asarray(alibi_slopes(cfg.num_heads))
    return slopes[None, :, None, None] * key_positions.astype(jnp.float32)[:, None, None, :]


# --- Attention ------------------------------------------------------------------------------------


def attention_mask(q_segments: Array, kv_segments: Array, causal: bool,
                   prefix: Array | None = None) -> Array:
    """Boolean [batch, 1, q, k]: same packed segment, and (if causal) no looking ahead.

    ``prefix`` (1 on a segment's input part, as seqio's ``decoder_causal_attention``) lets the prefix of
    a prefix-LM see itself bidirectionally while its targets stay causal.
    """
    mask = q_segments[:, :, None] == kv_segments[:, None, :]
    if causal:
        q_len, k_len = q_segments.shape[1], kv_segments.shape[1]
        allowed = jnp.arange(k_len)[None, :] <= jnp.arange(q_len)[:, None]
        if prefix is not None:
            allowed = allowed[None] | (prefix[:, :, None].astype(bool) & prefix[:, None, :].astype(bool))
        mask = mask & allowed
    return mask[:, None]


@flax.struct.dataclass
class SegmentMask:
    """An attention mask kept as its factors instead of a [batch, 1, q, k] array.

    Query i may see key j when ``q_segments[b, i] == kv_segments[b, j]`` and, if ``causal``, j <= i or both
    are in the prefix (``prefix``: 1 on a segment's input part, seqio's ``decoder_causal_attention``):
    exactly ``attention_mask(q_segments, kv_segments, causal, prefix)``, which ``dense()`` returns.
    The decoder stacks of the training forward pass one of these down to ``Attention``; ``causal`` is static
    (not traced), so ``blocked_attention`` knows while tracing that a causal mask without a prefix hides
    every key after a query block's last position and can skip those keys. Cached decoding passes dense
    masks, and ``Attention`` accepts both.
    """

    q_segments: Array  # [batch, q] int
    kv_segments: Array  # [batch, k] int
    prefix: Array | None = None  # [batch, q] (self-attention only)
    causal: bool = flax.struct.field(pytree_node=False, default=False)

    def dense(self) -> Array:
        """The boolean [batch, 1, q, k] mask."""
        return attention_mask(self.q_segments, self.kv_segments, self.causal, self.prefix)

    @property
    def hides_future(self) -> bool:
        """True when no query sees a key at a later position (causal, no bidirectional prefix)."""
        return self.causal and self.prefix is None and self.q_segments.shape[1] == self.kv_segments.shape[1]

    def block(self, q_start: int, q_stop: int, k_stop: int) -> Array:
        """The boolean [batch, 1, q_stop - q_start, k_stop] mask of queries [q_start, q_stop) against keys
        [0, k_stop), built from the segment ids (no [q, k] mask of the whole sequence is made)."""
        if self.prefix is not None:
            return self.dense()[:, :, q_start:q_stop, :k_stop]
        mask = self.q_segments[:, q_start:q_stop, None] == self.kv_segments[:, None, :k_stop]
        if self.causal:
            mask = mask & (jnp.arange(k_stop)[None, :] <= jnp.arange(q_start, q_stop)[:, None])
        return mask[:, None]


def dense_mask(mask: Array | SegmentMask | None) -> Array | None:
    """A boolean [batch, 1|heads, q, k] mask (or None) from either form."""
    return mask.dense() if isinstance(mask, SegmentMask) else mask


def _grouped(x: Array | None, kv_heads: int, group: int) -> Array | None:
    """[b, 1|heads, q, k] (mask or bias) -> [b, 1|kv_heads, 1|group, q, k], query head n = (n // group, n % group);
    unchanged without grouping (group 1)."""
    if x is None or group == 1:
        return x
    if x.shape[1] == 1:
        return x[:, :, None]
    return x.reshape(x.shape[0], kv_heads, group, *x.shape[2:])


def blocked_attention(q: Array, k: Array, v: Array, mask: Array | SegmentMask | None = None,
                      bias: Array | None = None, scale: float | None = None, *,
                      block_len: int = 128, return_weights: bool = False) -> Array | tuple[Array, Array]:
    """Softmax attention as einsums, causal query blocks skipping the keys they cannot see.

    q [b, t, heads, d]; k, v [b, s, kv_heads, d] (grouped-query: query head n reads kv head
    n // (heads / kv_heads)); mask: a ``SegmentMask``, a boolean [b, 1|heads, t, s] array or None; bias
    [1|b, 1|heads, t, s] (T5's relative position bias) or None; scale None is 1/sqrt(d). Returns
    [b, t, heads, d] in v's dtype. The same function as ``jax.nn.dot_product_attention(...,
    implementation='xla')`` with the same numerics (logits in fp32 or wider, scaled then biased, masked
    logits set to the same large negative number, softmax in fp32, probabilities cast to v's dtype).

    Where the mask hides every later key (a ``SegmentMask`` with ``hides_future``: causal self-attention,
    packed or not, without a prefix-LM prefix), the queries are split into blocks of ``block_len``
    positions (the last one shorter when ``block_len`` does not divide t) and block i attends only to keys
    [0, end of block i): the all-masked upper triangle is neither computed nor differentiated, about
    (n + 1) / 2n of the score work for n blocks. Everything else (a prefix-LM mask, non-causal encoder
    self-attention, cross-attention, dense masks) is one block over all keys: no skipping, the same
    einsums. A query row whose keys are all masked (never the case in causal self-attention, where a token
    sees itself) averages the values of the keys its block computes, as jax does over all keys.

    Layout: q, k and v are transposed once to [b, heads, length, d] (grouped-query: q to [b, kv_heads, group,
    length, d]), so every block's two contractions are batched matmuls over (b, kv_heads) without per-block
    transposes; the [b, heads, t_block, s] scores and probabilities are the only large tensors. Without
    grouping the group axis is left out altogether (4-D einsums took about 13% less time than 5-D ones with a
    unit group axis on CPU). There is no dropout on the attention probabilities (xlt's XLA and cuDNN paths
    have none either: dropout is on the output).

    ``return_weights=True`` also returns the softmax weights [b, heads, t, s] in fp32 that produced the output
    (keys a causal block skipped hold 0): ``Attention``'s capture mode sows them (see ``ATTENTION_WEIGHTS``).
    """
    b, t, heads, d = q.shape
    s, kv_heads = k.shape[1], k.shape[2]
    group = heads // kv_heads
    scale = 1.0 / math.sqrt(d) if scale is None else scale
    if isinstance(mask, SegmentMask) and mask.hides_future and block_len < t:
        bounds = [(start, min(start + block_len, t), min(start + block_len, t)) for start in range(0, t, block_len)]
    else:
        bounds = [(0, t, s)]
        mask = dense_mask(mask)
    logits_dtype = jnp.promote_types(q.dtype, jnp.float32)
    precision = {jnp.dtype(jnp.bfloat16): jax.lax.DotAlgorithmPreset.BF16_BF16_F32,
                 jnp.dtype(jnp.float16): jax.lax.DotAlgorithmPreset.F16_F16_F32}.get(jnp.dtype(q.dtype))
    large_negative = jnp.asarray(-0.7 * float(jnp.finfo(jnp.float32).max), logits_dtype)
    if group == 1:
        qt = jnp.transpose(q, (0, 2, 1, 3))  # [b, heads, t, d]
        spec_logits, spec_out = "bktd,bksd->bkts", "bkts,bksd->bktd"
    else:
        qt = jnp.transpose(q.reshape(b, t, kv_heads, group, d), (0, 2, 3, 1, 4))  # [b, kv, g, t, d]
        spec_logits, spec_out = "bkgtd,bksd->bkgts", "bkgts,bksd->bkgtd"
    kt, vt = (jnp.transpose(a, (0, 2, 1, 3)) for a in (k, v))  # [b, kv, s, d]
    bias = _grouped(bias, kv_heads, group)
    outs, weights = [], []
    for q0, q1, k1 in bounds:
        logits = jnp.einsum(spec_logits, qt[..., q0:q1, :], kt[:, :, :k1], precision=precision,
                            preferred_element_type=logits_dtype)
        logits = logits * jnp.asarray(scale, logits_dtype)
        if bias is not None:  # a query axis of 1 (ALiBi) broadcasts over every block
            block_bias = bias[..., :k1] if bias.shape[-2] == 1 else bias[..., q0:q1, :k1]
            logits = (logits + block_bias).astype(logits_dtype)
        if isinstance(mask, SegmentMask):
            block_mask = _grouped(mask.block(q0, q1, k1), kv_heads, group)
        else:
            block_mask = None if mask is None else _grouped(mask, kv_heads, group)[..., q0:q1, :k1]
        if block_mask is not None:
            logits = jnp.where(block_mask, logits, large_negative)
        probs32 = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)
        if return_weights:  # [b, kv, (g,) q1 - q0, s]: the skipped keys get weight 0
            weights.append(jnp.pad(probs32, [(0, 0)] * (probs32.ndim - 1) + [(0, s - k1)]))
        outs.append(jnp.einsum(spec_out, probs32.astype(v.dtype), vt[:, :, :k1]))
    out = outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=-2)  # [b, kv, (g,) t, d]
    out = jnp.transpose(out, (0, 2, 1, 3) if group == 1 else (0, 3, 1, 2, 4)).reshape(b, t, heads, d)
    if not return_weights:
        return out
    w = weights[0] if len(weights) == 1 else jnp.concatenate(weights, axis=-2)
    return out, w.reshape(b, heads, t, s)  # query head n = (kv head n // group, n % group)


def resolve_attention_impl(impl: str, dtype: str) -> str:
    """The implementation ``Attention`` runs for ``ModelConfig.attention_impl``.

    'auto' takes the cuDNN fused kernel on a GPU in half precision; ``blocked_attention`` on a CPU in
    float32 (measured at the gpt_25m shape, 8 × 512 × 8 heads of 64: about half the forward + backward
    time of jax's XLA path, see ``tools/bench.py attention``); jax.nn.dot_product_attention's XLA path
    everywhere else (GPU float32, TPU, and CPU half precision, which was not measured).
    """
    if impl != "auto":
        return impl
    backend = jax.default_backend()
    if backend == "gpu" and dtype in ("bfloat16", "float16"):
        return "cudnn"
    if backend == "cpu" and dtype == "float32":
        return "blocked"
    return "xla"


# --- KV cache -------------------------------------------------------------------------------------
#
# The cache lives in flax's "cache" collection. Per attention layer it holds ``cached_key`` and
# ``cached_value`` [batch, slots, kv_heads, head_dim] (logical axes batch, length, kv_heads, kv); per decoder
# stack one ``slot_positions`` [batch, slots] holds the position of the token in each slot, -1 while empty.
# Its length is fixed when it is created (by ``model.init(..., cache_mode="extend")`` on a batch of that
# length), so a decode loop compiles once.
# Under ``nn.scan`` the per-layer entries gain a leading ``layers`` axis, as parameters do.
#
# Cache modes (``cache_mode`` of Decoder / EncoderDecoder.decode, passed down to each Attention):
#   None      no cache: the training forward, unchanged.
#   "extend"  a chunk of tokens (the whole prompt, or one new token per row) at explicit positions is
#             written into the slot equal to its position (tokens with segment id 0 are not written),
#             then attends to every filled slot at a position <= its own. Cross-attention keys and
#             values are computed once, on the call that passes the encoded input, and read afterwards.
#   "shared"  read-only: groups of ``rows // cache_rows`` consecutive rows share one cached context
#             (a prompt's KV cache, or for encoder-decoders the encoded input) and are scored against
#             it without copying it per row: option scoring computes a prompt once for all its options.

CACHE_MODES = ("extend", "shared")
QUERY_AXES = ("batch", "length", "heads", "kv")  # queries and the attention output
KV_AXES = ("batch", "length", "kv_heads", "kv")  # projected keys and values, and the KV cache
CACHE_AXES = KV_AXES
SLOT_AXES = ("batch", "length")


def empty_slots(shape: tuple[int, ...]) -> Array:
    return jnp.full(shape, -1, jnp.int32)


def write_slots(cache: Array, chunk: Array, index: Array) -> Array:
    """cache[b, index[b, t]] = chunk[b, t]; an index outside [0, slots) writes nothing.

    One token per row (the decode step) is an elementwise select, which every partitioner keeps
    local; longer chunks (prefill) scatter per row."""
    slots = cache.shape[1]
    if chunk.shape[1] == 1:
        hit = jnp.arange(slots)[None, :] == index  # [b, slots]
        hit = hit.reshape(hit.shape + (1,) * (cache.ndim - 2))
        return jnp.where(hit, chunk.astype(cache.dtype), cache)
    return jax.vmap(lambda c, u, i: c.at[i].set(u.astype(c.dtype), mode="drop"))(cache, chunk, index)


def extend_slots(slot_positions: Array, positions: Array, segments: Array | None,
                 prefix: Array | None = None) -> tuple[Array, Array, Array]:
    """Record a chunk in the slot table; return (new slot table, mask [b, 1, q, slots], write index).

    A query sees every filled slot at a position <= its own; with ``prefix`` (decoder_causal_attention)
    a prefix query also sees the prefix keys written by the same chunk, so a prompt prefilled in one call
    is bidirectional exactly as in the training forward."""
    slots = slot_positions.shape[1]
    valid = jnp.ones(positions.shape, bool) if segments is None else segments > 0
    index = jnp.where(valid, positions, slots)
    table = write_slots(slot_positions, positions, index)
    filled = table[:, None, :] >= 0
    allowed = filled & (table[:, None, :] <= positions[:, :, None])
    if prefix is not None:
        key_prefix = write_slots(jnp.zeros_like(table, dtype=bool), prefix.astype(bool), index)
        allowed = allowed | (prefix.astype(bool)[:, :, None] & key_prefix[:, None, :] & filled)
    return table, allowed[:, None], index


def shared_slots(slot_positions: Array, positions: Array) -> tuple[Array, Array]:
    """For "shared" mode: (mask [rows, 1, q, slots + q], key positions [rows, slots + q]).

    Row r belongs to context row r // group. It sees its context's filled slots at positions <= its own
    and, causally by chunk index, its own chunk."""
    rows, q_len = positions.shape
    group = rows // slot_positions.shape[0]
    ctx = jnp.repeat(slot_positions, group, axis=0)  # [rows, slots] int32, small
    ctx_mask = (ctx[:, None, :] >= 0) & (ctx[:, None, :] <= positions[:, :, None])
    own = jnp.broadcast_to(jnp.tril(jnp.ones((q_len, q_len), bool)), (rows, q_len, q_len))
    return jnp.concatenate([ctx_mask, own], axis=-1)[:, None], jnp.concatenate([ctx, positions], axis=-1)


def shared_prefix_attention(q: Array, k: Array, v: Array, ctx_k: Array, ctx_v: Array, mask: Array,
                            bias: Array | None, scale: float) -> Array:
    """Softmax over [context keys, own keys] for rows grouped over a shared context.

    q, k, v: [rows, q, heads|kv_heads, d]; ctx_k, ctx_v: [rows // group, slots, kv_heads, d];
    mask [rows, 1, q, slots + q], bias [rows, heads, q, slots + q]. The context is contracted per group,
    never copied per row."""
    rows, q_len, heads, d = q.shape
    n_ctx, slots, kv_heads, _ = ctx_k.shape
    group, per_kv = rows // n_ctx, heads // kv_heads
    qg = q.reshape(n_ctx, group, q_len, kv_heads, per_kv, d)
    kg = k.reshape(n_ctx, group, q_len, kv_heads, d)
    vg = v.reshape(n_ctx, group, q_len, kv_heads, d)
    s_ctx = jnp.einsum("ngtkhd,nskd->ngkhts", qg, ctx_k, preferred_element_type=jnp.float32)
    s_own = jnp.einsum("ngtkhd,ngskd->ngkhts", qg, kg, preferred_element_type=jnp.float32)
    logits = jnp.concatenate([s_ctx, s_own], axis=-1) * scale
    if bias is not None:
        bias = bias.reshape(n_ctx, group, kv_heads, per_kv, bias.shape[2], slots + q_len)  # q axis: q_len or 1
        logits = logits + bias.astype(jnp.float32)
    mask = mask.reshape(n_ctx, group, 1, 1, q_len, slots + q_len)
    logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min / 2)
    probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    out = (jnp.einsum("ngkhts,nskd->ngtkhd", probs[..., :slots], ctx_v)
           + jnp.einsum("ngkhts,ngskd->ngtkhd", probs[..., slots:], vg))
    return out.reshape(rows, q_len, heads, d)


def grouped_cross_attention(q: Array, k: Array, v: Array, mask: Array, scale: float | None) -> Array:
    """Rows in groups over one encoded input: fold each group's queries into one longer query."""
    rows, q_len, heads, d = q.shape
    n_ctx = k.shape[0]
    group = rows // n_ctx
    qg = q.reshape(n_ctx, group * q_len, heads, d)
    mask = mask.reshape(n_ctx, group, 1, q_len, mask.shape[-1]).transpose(0, 2, 1, 3, 4)
    mask = mask.reshape(n_ctx, 1, group * q_len, mask.shape[-1])
    out = jax.nn.dot_product_attention(qg, k, v, mask=mask, scale=scale, implementation="xla")
    return out.reshape(rows, q_len, heads, d)


def check_groups(rows: int, ctx_rows: int, what: str) -> None:
    if ctx_rows == 0 or rows % ctx_rows:
        raise ConfigError(f"cache_mode='shared': {rows} rows do not group evenly over the {ctx_rows} rows of the "
                          f"{what}")


# Capture collections (read through ``xlt.models.api.ModelAPI.capture``): a forward applied with one of them
# mutable records what the model computes, and nothing else changes. ``Attention`` sows its softmax weights
# [batch, heads, q, k] (fp32) under "weights" into ATTENTION_WEIGHTS; ``Stack`` sows the residual stream that
# enters its first block ("input") and ``Block`` its output ("output") into HIDDEN_STATES.
ATTENTION_WEIGHTS = "attention_weights"
HIDDEN_STATES = "hidden_states"


def capturing(module: nn.Module, collection: str) -> bool:
    """Whether this forward records into ``collection``: the caller made it mutable (``init``, which makes
    every collection but flax's "intermediates" mutable, never records)."""
    return module.is_mutable_collection(collection) and not module.is_initializing()


class Attention(nn.Module):
    """Multi-head (grouped-query when num_kv_heads < num_heads) self- or cross-attention.

    ``cache_mode`` (see "KV cache" above) is None for the training forward; ``cross`` marks
    cross-attention, whose cache holds the projected encoder keys and values. ``mask`` is a boolean
    [batch, 1, q, k] array or a ``SegmentMask``; the uncached forward runs the implementation
    ``resolve_attention_impl`` picks, cached calls always jax's XLA path."""

    cfg: ModelConfig
    causal: bool = True
    rope: bool = False
    cross: bool = False
    cache_mode: str | None = None

    @nn.compact
    def __call__(self, x: Array, kv: Array | None, mask: Array, bias: Array | None = None,
                 q_positions: Array | None = None, kv_positions: Array | None = None,
                 deterministic: bool = True, cache_index: Array | None = None) -> Array:
        cfg = self.cfg
        dense = functools.partial(Dense, use_bias=cfg.use_bias, dtype=cfg.dtype, param_dtype=cfg.param_dtype)
        # Unscaled attention (T5) moves the 1/sqrt(head_dim) into the query's initial scale.
        q_scale = 1.0 if cfg.scale_attention else 1.0 / cfg.head_dim
        q = dense((cfg.num_heads, cfg.head_dim), ("embed", "heads", "kv"), init_scale=q_scale, name="query")(x)
        if self.cache_mode is not None:
            out = self._cached(dense, q, kv, mask, bias, q_positions, kv_positions, cache_index)
            return self._output(dense, out, deterministic)
        k = dense((cfg.num_kv_heads, cfg.head_dim), ("embed", "kv_heads", "kv"), name="key")(kv)
        v = dense((cfg.num_kv_heads, cfg.head_dim), ("embed", "kv_heads", "kv"), name="value")(kv)
        if self.rope:
            q = apply_rope(q, q_positions, cfg.rope_theta)
            k = apply_rope(k, kv_positions, cfg.rope_theta)
        q, k, v = constrain(q, QUERY_AXES), constrain(k, KV_AXES), constrain(v, KV_AXES)
        impl = resolve_attention_impl(cfg.attention_impl, cfg.dtype)
        if impl == "cudnn" and cfg.position == "alibi":
            impl = "xla"  # the cuDNN kernel takes no [b, heads, 1, keys] bias
        scale = None if cfg.scale_attention else 1.0
        if capturing(self, ATTENTION_WEIGHTS):
            # Capture mode: the output is computed from the weights that are sown. 'blocked' keeps its causal
            # blocks; 'xla' and 'cudnn' take one block over all keys, the same numerics as jax's XLA path
            # (see blocked_attention), since neither of jax's kernels returns its probabilities.
            block_len = cfg.attention_block_len if impl == "blocked" else q.shape[1]
            out, weights = blocked_attention(q, k, v, mask, bias, scale, block_len=block_len, return_weights=True)
            self.sow(ATTENTION_WEIGHTS, "weights", weights)
        elif impl == "blocked":
            out = blocked_attention(q, k, v, mask, bias, scale, block_len=cfg.attention_block_len)
        else:
            if bias is not None:
                bias = jnp.broadcast_to(bias, (q.shape[0],) + bias.shape[1:])
            out = jax.nn.dot_product_attention(q, k, v, bias=bias, mask=dense_mask(mask), scale=scale,
                                               implementation=impl)
        return self._output(dense, out, deterministic)

    def _cached(self, dense, q: Array, kv: Array | None, mask: Array, bias: Array | None,
                q_positions: Array | None, kv_positions: Array | None, cache_index: Array | None) -> Array:
        """Attention against the "cache" collection (called from ``__call__``, so it may define the
        key/value projections and the cache variables)."""
        cfg = self.cfg
        mode = self.cache_mode
        mask = dense_mask(mask)
        if mode not in CACHE_MODES:
            raise ConfigError(f"cache_mode={mode!r}; choose one of {list(CACHE_MODES)} or None")
        scale = None if cfg.scale_attention else 1.0
        kv_shape = (cfg.num_kv_heads, cfg.head_dim)

        def project(inputs):
            k = dense(kv_shape, ("embed", "kv_heads", "kv"), name="key")(inputs)
            v = dense(kv_shape, ("embed", "kv_heads", "kv"), name="value")(inputs)
            return k, v

        def cache_vars(shape, dtype):
            init = partitioning.with_logical_partitioning(jnp.zeros, KV_AXES)
            return (self.variable("cache", "cached_key", init, shape, dtype),
                    self.variable("cache", "cached_value", init, shape, dtype))

        if self.cross:
            if mode == "shared":  # options grouped over their prompt's encoding: project it once
                k, v = project(kv)
                check_groups(q.shape[0], k.shape[0], "encoded input")
                q, k, v = constrain(q, QUERY_AXES), constrain(k, KV_AXES), constrain(v, KV_AXES)
                return grouped_cross_attention(q, k, v, mask, scale)
            if kv is not None:  # the call that brings the encoded input fills the cross cache
                k, v = project(kv)
                ck, cv = cache_vars(k.shape, k.dtype)
                if not self.is_initializing():
                    ck.value, cv.value = constrain(k, KV_AXES), constrain(v, KV_AXES)
            elif not self.has_variable("cache", "cached_key"):
                raise ConfigError("cross-attention cache is empty: pass the encoded input on the first "
                                  "cache_mode='extend' call")
            else:
                ck, cv = cache_vars(None, None)
            return jax.nn.dot_product_attention(q, ck.value, cv.value, mask=mask, scale=scale,
                                                implementation="xla")

        k, v = project(kv)
        if self.rope:
            q = apply_rope(q, q_positions, cfg.rope_theta)
            k = apply_rope(k, kv_positions, cfg.rope_theta)
        q, k, v = constrain(q, QUERY_AXES), constrain(k, KV_AXES), constrain(v, KV_AXES)
        if mode == "shared":
            if not self.has_variable("cache", "cached_key"):
                raise ConfigError("cache_mode='shared' needs a cache filled by cache_mode='extend'")
            ctx_k, ctx_v = self.get_variable("cache", "cached_key"), self.get_variable("cache", "cached_value")
            check_groups(q.shape[0], ctx_k.shape[0], "cache")
            return shared_prefix_attention(q, k, v, ctx_k, ctx_v, mask, bias,
                                           1.0 / math.sqrt(cfg.head_dim) if scale is None else scale)
        ck, cv = cache_vars(k.shape, k.dtype)
        if not self.is_initializing():
            ck.value = constrain(write_slots(ck.value, k, cache_index), KV_AXES)
            cv.value = constrain(write_slots(cv.value, v, cache_index), KV_AXES)
        if bias is not None:
            bias = jnp.broadcast_to(bias, (q.shape[0],) + bias.shape[1:])
        return jax.nn.dot_product_attention(q, ck.value, cv.value, bias=bias, mask=mask, scale=scale,
                                            implementation="xla")

    def _output(self, dense, out: Array, deterministic: bool) -> Array:
        cfg = self.cfg
        out = constrain(out, QUERY_AXES)
        out = nn.Dropout(cfg.dropout_rate)(out, deterministic=deterministic)
        return dense((cfg.d_model,), ("heads", "kv", "embed"), contract=2, name="out")(out)


def mask_padded_vocab(logits: Array, cfg: ModelConfig) -> Array:
    """Logits of vocabulary padding rows (ids >= ``cfg.unpadded_vocab_size``) set to the dtype's minimum,
    so they never win an argmax or take probability mass; a no-op for an unpadded vocabulary."""
    return losses.mask_vocab(logits, cfg.unpadded_vocab_size)


MODEL_OUTPUTS = ("logits", "hidden")


class LMHead(nn.Module):
    """The language-model head; the only code that knows its parameters.

    Tied (``cfg.tie_embeddings``): the token embedder's table [vocab, d_model] (pass the ``Embed`` as
    ``embedder``); untied: its own ``kernel`` [d_model, vocab] (logical axes embed, vocab), created here.
    ``output="logits"`` gives the [batch, length, vocab] logits, vocabulary padding masked;
    ``output="hidden"`` gives ``(x, kernel)``: the final hidden states unchanged and the kernel in the
    compute dtype, laid out as ``kernel_layout(cfg)`` says, for ``xlt.losses.chunked_cross_entropy``
    (which masks the padding itself given ``cfg.unpadded_vocab_size``). Gradients reach the parameters
    through the returned kernel.
    """

    cfg: ModelConfig
    embedder: Embed | None = None

    @staticmethod
    def kernel_layout(cfg: ModelConfig) -> str:
        """'vd' (tied embedding table) or 'dv' (untied kernel): ``chunked_cross_entropy``'s kernel_layout."""
        return "vd" if cfg.tie_embeddings else "dv"

    def setup(self):
        cfg = self.cfg
        if cfg.tie_embeddings:
            if self.embedder is None:
                raise ConfigError("a tied LM head needs the token embedder")
            return
        init = nn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal", in_axis=(0,), out_axis=(1,))
        self.untied = self.param("kernel", nn.with_logical_partitioning(init, ("embed", "vocab")),
                                 (cfg.d_model, cfg.vocab_size), dtype_of(cfg.param_dtype))

    def kernel(self) -> Array:
        """The head's kernel in the compute dtype, [vocab, d_model] tied or [d_model, vocab] untied."""
        w = self.embedder.embedding if self.cfg.tie_embeddings else self.untied
        return w.astype(self.cfg.dtype)

    def __call__(self, x: Array, output: str = "logits") -> Array | tuple[Array, Array]:
        cfg = self.cfg
        if output == "hidden":
            return constrain(x, ("batch", "length", "embed")), self.kernel()
        if output != "logits":
            raise ConfigError(f"model output={output!r}; choose one of {list(MODEL_OUTPUTS)}")
        spec = "...d,vd->...v" if self.kernel_layout(cfg) == "vd" else "...d,dv->...v"
        logits = mask_padded_vocab(jnp.einsum(spec, x.astype(cfg.dtype), self.kernel()), cfg)
        return constrain(logits, ("batch", "length", "vocab"))


def cache_context(module: nn.Module, cfg: ModelConfig, mode: str, positions: Array, segments: Array | None,
                  prefix: Array | None = None) -> tuple[Array, Array | None, Array | None]:
    """(mask, relative bias, cache write index) of a cached call to a decoder stack.

    Call from the stack owner's compact method: it keeps the stack's ``slot_positions`` table in the
    "cache" collection of ``module`` and creates the ``relpos`` submodule there, as ``relative_bias``."""
    if mode == "extend":
        slots = module.variable("cache", "slot_positions", nn.with_logical_partitioning(empty_slots, SLOT_AXES),
                                positions.shape)
        table, mask, index = extend_slots(slots.value, positions, segments, prefix)
        if not module.is_initializing():
            slots.value = table
        key_positions = table
    elif mode == "shared":
        if not module.has_variable("cache", "slot_positions"):
            raise ConfigError("cache_mode='shared' needs a cache filled by cache_mode='extend'")
        table = module.get_variable("cache", "slot_positions")
        check_groups(positions.shape[0], table.shape[0], "cache")
        mask, key_positions = shared_slots(table, positions)
        index = None
    else:
        raise ConfigError(f"cache_mode={mode!r}; choose one of {list(CACHE_MODES)} or None")
    bias = relative_bias(cfg, False, positions.shape[1], positions, key_positions)
    if bias is None:
        bias = alibi_bias(cfg, key_positions)
    return mask, bias, index


def cached_positions(batch) -> Array:
    """Cached calls place tokens by explicit ``decoder_positions`` (a row's slot is its position)."""
    if "decoder_positions" not in batch:
        raise ConfigError("cached decoding needs decoder_positions in the batch (the slot of each token)")
    return batch["decoder_positions"]
