"""Transformer building blocks shared by every layout.

Each parameter is created with its logical axis names (``nn.with_logical_partitioning``) and key
activations are constrained with ``constrain``; where they land on a mesh is decided only by
``xlt.partitioning.LOGICAL_AXIS_RULES``. Cached decoding keeps keys and values in flax's "cache"
collection, with logical names too (see "KV cache" below).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from xlt.errors import ConfigError
from xlt.models.config import ModelConfig

Array = jax.Array

embed_init = nn.initializers.normal(stddev=0.02)


def constrain(x: Array, axes: Sequence[str | None]) -> Array:
    """Pin an activation's layout by logical axis names (a no-op outside a mesh context)."""
    return nn.with_logical_constraint(x, tuple(axes))


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
        kernel = self.param("kernel", nn.with_logical_partitioning(init, self.axes),
                            tuple(in_shape) + tuple(self.features), dtype_of(self.param_dtype))
        y = jnp.tensordot(x.astype(self.dtype), kernel.astype(self.dtype), axes=self.contract)
        if self.use_bias:
            bias = self.param("bias", nn.with_logical_partitioning(nn.initializers.zeros, self.axes[n_in:]),
                              tuple(self.features), dtype_of(self.param_dtype))
            y = y + bias.astype(self.dtype)
        return y


class Embed(nn.Module):
    """Token (or position) table with logical axes (vocab, embed); ``attend`` gives tied logits."""

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

    def attend(self, x: Array) -> Array:
        return jnp.einsum("...d,vd->...v", x, self.embedding.astype(self.dtype))


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


def resolve_attention_impl(impl: str, dtype: str) -> str:
    """'auto' takes the cuDNN fused kernel on a GPU in half precision, XLA everywhere else."""
    if impl != "auto":
        return impl
    on_gpu = jax.default_backend() == "gpu"
    return "cudnn" if on_gpu and dtype in ("bfloat16", "float16") else "xla"


# --- KV cache -------------------------------------------------------------------------------------
#
# The cache lives in flax's "cache" collection. Per attention layer it holds ``cached_key`` and
# ``cached_value`` [batch, slots, kv_heads, head_dim] (logical axes batch, length, heads, kv); per decoder
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
CACHE_AXES = ("batch", "length", "heads", "kv")
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
        logits = logits + bias.reshape(n_ctx, group, kv_heads, per_kv, q_len, slots + q_len).astype(jnp.float32)
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


class Attention(nn.Module):
    """Multi-head (grouped-query when num_kv_heads < num_heads) self- or cross-attention.

    ``cache_mode`` (see "KV cache" above) is None for the training forward; ``cross`` marks
    cross-attention, whose cache holds the projected encoder keys and values."""

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
        k = dense((cfg.num_kv_heads, cfg.head_dim), ("embed", "heads", "kv"), name="key")(kv)
        v = dense((cfg.num_kv_heads, cfg.head_dim), ("embed", "heads", "kv"), name="value")(kv)
        if self.rope:
            q = apply_rope(q, q_positions, cfg.rope_theta)
            k = apply_rope(k, kv_positions, cfg.rope_theta)
        q, k, v = (constrain(t, ("batch", "length", "heads", "kv")) for t in (q, k, v))
        impl = resolve_attention_impl(cfg.attention_impl, cfg.dtype)
        if bias is not None:
            bias = jnp.broadcast_to(bias, (q.shape[0],) + bias.shape[1:])
        out = jax.nn.dot_product_attention(
            q, k, v, bias=bias, mask=mask, scale=None if cfg.scale_attention else 1.0, implementation=impl)
        return self._output(dense, out, deterministic)

    def _cached(self, dense, q: Array, kv: Array | None, mask: Array, bias: Array | None,
                q_positions: Array | None, kv_positions: Array | None, cache_index: Array | None) -> Array:
        """Attention against the "cache" collection (called from ``__call__``, so it may define the
        key/value projections and the cache variables)."""
        cfg = self.cfg
        mode = self.cache_mode
        if mode not in CACHE_MODES:
            raise ConfigError(f"cache_mode={mode!r}; choose one of {list(CACHE_MODES)} or None")
        scale = None if cfg.scale_attention else 1.0
        kv_shape = (cfg.num_kv_heads, cfg.head_dim)

        def project(inputs):
            k = dense(kv_shape, ("embed", "heads", "kv"), name="key")(inputs)
            v = dense(kv_shape, ("embed", "heads", "kv"), name="value")(inputs)
            return k, v

        def cache_vars(shape, dtype):
            init = nn.with_logical_partitioning(jnp.zeros, CACHE_AXES)
            return (self.variable("cache", "cached_key", init, shape, dtype),
                    self.variable("cache", "cached_value", init, shape, dtype))

        if self.cross:
            if mode == "shared":  # options grouped over their prompt's encoding: project it once
                k, v = project(kv)
                check_groups(q.shape[0], k.shape[0], "encoded input")
                q, k, v = (constrain(t, CACHE_AXES) for t in (q, k, v))
                return grouped_cross_attention(q, k, v, mask, scale)
            if kv is not None:  # the call that brings the encoded input fills the cross cache
                k, v = project(kv)
                ck, cv = cache_vars(k.shape, k.dtype)
                if not self.is_initializing():
                    ck.value, cv.value = constrain(k, CACHE_AXES), constrain(v, CACHE_AXES)
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
        q, k, v = (constrain(t, CACHE_AXES) for t in (q, k, v))
        if mode == "shared":
            if not self.has_variable("cache", "cached_key"):
                raise ConfigError("cache_mode='shared' needs a cache filled by cache_mode='extend'")
            ctx_k, ctx_v = self.get_variable("cache", "cached_key"), self.get_variable("cache", "cached_value")
            check_groups(q.shape[0], ctx_k.shape[0], "cache")
            return shared_prefix_attention(q, k, v, ctx_k, ctx_v, mask, bias,
                                           1.0 / math.sqrt(cfg.head_dim) if scale is None else scale)
        ck, cv = cache_vars(k.shape, k.dtype)
        if not self.is_initializing():
            ck.value = constrain(write_slots(ck.value, k, cache_index), CACHE_AXES)
            cv.value = constrain(write_slots(cv.value, v, cache_index), CACHE_AXES)
        if bias is not None:
            bias = jnp.broadcast_to(bias, (q.shape[0],) + bias.shape[1:])
        return jax.nn.dot_product_attention(q, ck.value, cv.value, bias=bias, mask=mask, scale=scale,
                                            implementation="xla")

    def _output(self, dense, out: Array, deterministic: bool) -> Array:
        cfg = self.cfg
        out = constrain(out, ("batch", "length", "heads", "kv"))
        out = nn.Dropout(cfg.dropout_rate)(out, deterministic=deterministic)
        return dense((cfg.d_model,), ("heads", "kv", "embed"), contract=2, name="out")(out)


def mask_padded_vocab(logits: Array, cfg: ModelConfig) -> Array:
    """Logits of vocabulary padding rows (ids >= ``cfg.unpadded_vocab_size``) set to the dtype's minimum,
    so they never win an argmax or take probability mass; a no-op for an unpadded vocabulary."""
    if cfg.unpadded_vocab_size is None or cfg.unpadded_vocab_size >= cfg.vocab_size:
        return logits
    valid = jnp.arange(cfg.vocab_size) < cfg.unpadded_vocab_size
    return jnp.where(valid, logits, jnp.finfo(logits.dtype).min)


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
    return mask, bias, index


def cached_positions(batch) -> Array:
    """Cached calls place tokens by explicit ``decoder_positions`` (a row's slot is its position)."""
    if "decoder_positions" not in batch:
        raise ConfigError("cached decoding needs decoder_positions in the batch (the slot of each token)")
    return batch["decoder_positions"]
