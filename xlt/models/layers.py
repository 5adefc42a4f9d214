"""Transformer building blocks shared by every layout.

Each parameter is created with its logical axis names (``nn.with_logical_partitioning``) and key
activations are constrained with ``constrain``; where they land on a mesh is decided only by
``xlt.partitioning.LOGICAL_AXIS_RULES``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

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
    def __call__(self, q_len: int, k_len: int) -> Array:
        cfg = self.cfg
        rel = jnp.arange(k_len)[None, :] - jnp.arange(q_len)[:, None]
        buckets = relative_bucket(rel, self.bidirectional, cfg.relative_buckets, cfg.relative_max_distance)
        table = self.param("rel_embedding",
                           nn.with_logical_partitioning(embed_init, ("relpos_buckets", "heads")),
                           (cfg.relative_buckets, cfg.num_heads), dtype_of(cfg.param_dtype))
        bias = jnp.take(table, buckets, axis=0)  # [q, k, heads]
        return jnp.transpose(bias, (2, 0, 1))[None].astype(cfg.dtype)  # [1, heads, q, k]


def relative_bias(cfg: ModelConfig, bidirectional: bool, length: int) -> Array | None:
    """A stack's shared relative position bias when ``cfg.position == 'relative'`` (rope is applied
    inside attention; learned and 'none' add no bias). Call from a compact method: it creates the
    ``relpos`` submodule there."""
    if cfg.position != "relative":
        return None
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


class Attention(nn.Module):
    """Multi-head (grouped-query when num_kv_heads < num_heads) self- or cross-attention."""

    cfg: ModelConfig
    causal: bool = True
    rope: bool = False

    @nn.compact
    def __call__(self, x: Array, kv: Array, mask: Array, bias: Array | None = None,
                 q_positions: Array | None = None, kv_positions: Array | None = None,
                 deterministic: bool = True) -> Array:
        cfg = self.cfg
        dense = functools.partial(Dense, use_bias=cfg.use_bias, dtype=cfg.dtype, param_dtype=cfg.param_dtype)
        # Unscaled attention (T5) moves the 1/sqrt(head_dim) into the query's initial scale.
        q_scale = 1.0 if cfg.scale_attention else 1.0 / cfg.head_dim
        q = dense((cfg.num_heads, cfg.head_dim), ("embed", "heads", "kv"), init_scale=q_scale, name="query")(x)
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
        out = constrain(out, ("batch", "length", "heads", "kv"))
        out = nn.Dropout(cfg.dropout_rate)(out, deterministic=deterministic)
        return dense((cfg.d_model,), ("heads", "kv", "embed"), contract=2, name="out")(out)
