"""Model-level tests: parameter accounting, scan/loop equivalence, masking (packing, causality,
prefix-LM), config validation, numerics (bf16, attention reference), positions (T5 buckets, RoPE)
and dropout. Tiny configs; compiled functions are cached per model for the whole module."""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xlt.errors import ConfigError
from xlt.models import ModelConfig, build_model
from xlt.models import layers as L
from xlt import step

from random_params import stack_layers

T = 32  # sequence length of every test batch
B = 2  # rows per test batch

BASE = dict(vocab_size=384, d_model=32, num_layers=2, d_ff=64, max_len=64)
LAYOUT_KW = {
    "gpt": dict(layout="gpt"),
    "llama": dict(layout="llama", num_heads=8, num_kv_heads=4),
    "t5": dict(layout="t5", head_dim=16),
    "bloom": dict(layout="bloom", num_heads=4),  # ALiBi, embedding LayerNorm (more in tests/models/test_bloom.py)
}
LAYOUTS = tuple(LAYOUT_KW)
DECODER_ONLY = ("gpt", "llama", "bloom")
LOGICAL_AXES = {"batch", "length", "embed", "mlp", "heads", "kv_heads", "kv", "vocab", "layers", "relpos_buckets"}

# Two segments per row (lengths differ per row, and the encoder splits differently from the decoder).
DEC_SPLITS = ((12, 20), (20, 12))
ENC_SPLITS = ((14, 18), (9, 23))


def make_cfg(layout: str, **overrides) -> ModelConfig:
    return ModelConfig(**{**BASE, **LAYOUT_KW[layout], **overrides})


def shape_batch(cfg: ModelConfig, batch: int = 1, length: int = T) -> dict:
    b = {"decoder_input_tokens": jnp.ones((batch, length), jnp.int32)}
    if cfg.encoder_decoder:
        b["encoder_input_tokens"] = jnp.ones((batch, length), jnp.int32)
    return b


@functools.cache
def base_params(layout: str):
    """Initialised fp32 parameters of the layout's base config (dtype and dropout do not change them)."""
    cfg = make_cfg(layout)
    model = build_model(cfg)
    init = jax.jit(lambda rng: nn.meta.unbox(model.init(rng, shape_batch(cfg))["params"]))
    return init(jax.random.key(0))


@functools.cache
def model_bundle(layout: str, **overrides):
    """(cfg, model, params, jitted forward) for one config; shared by every test in the module.
    Only overrides that keep the parameter tree (dtype, dropout_rate) are used with it."""
    assert set(overrides) <= {"dtype", "dropout_rate"}, overrides
    cfg = make_cfg(layout, **overrides)
    model = build_model(cfg)
    fwd = jax.jit(lambda p, b: model.apply({"params": p}, b))
    return cfg, model, base_params(layout), fwd


def rand_tokens(rng: np.random.Generator, shape, vocab: int = BASE["vocab_size"]) -> np.ndarray:
    return rng.integers(1, vocab, size=shape).astype(np.int32)


def pack(splits, length: int = T):
    """Segment ids 1..1,2..2 (then 0 padding) and positions restarting at 0 in each segment."""
    seg = np.zeros((len(splits), length), np.int32)
    pos = np.zeros((len(splits), length), np.int32)
    for r, lens in enumerate(splits):
        start = 0
        for s, n in enumerate(lens):
            seg[r, start:start + n] = s + 1
            pos[r, start:start + n] = np.arange(n)
            start += n
    return seg, pos


def packed_batch(cfg: ModelConfig, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    seg, pos = pack(DEC_SPLITS)
    b = {"decoder_input_tokens": rand_tokens(rng, (B, T)), "decoder_segment_ids": seg, "decoder_positions": pos}
    if cfg.encoder_decoder:
        eseg, epos = pack(ENC_SPLITS)
        b.update(encoder_input_tokens=rand_tokens(rng, (B, T)), encoder_segment_ids=eseg, encoder_positions=epos)
    return b


def unpacked_batch(cfg: ModelConfig, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    b = {"decoder_input_tokens": rand_tokens(rng, (B, T))}
    if cfg.encoder_decoder:
        b["encoder_input_tokens"] = rand_tokens(rng, (B, T))
    return b


def logits(layout: str, batch, **overrides) -> np.ndarray:
    _, _, params, fwd = model_bundle(layout, **overrides)
    return np.asarray(fwd(params, {k: jnp.asarray(v) for k, v in batch.items()}))


def seg_slice(splits, row: int, seg: int) -> slice:
    start = sum(splits[row][:seg])
    return slice(start, start + splits[row][seg])


# --- 1. parameter count and logical axis names ------------------------------------------------------


@pytest.mark.parametrize("scan", [False, True])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_param_count_and_logical_axes(layout, scan):
    cfg = make_cfg(layout, scan_layers=scan)
    model = build_model(cfg)
    boxed = jax.eval_shape(lambda r: model.init(r, shape_batch(cfg)), jax.random.key(0))["params"]
    abstract = nn.meta.unbox(boxed)
    n_params = sum(math.prod(x.shape) for x in jax.tree.leaves(abstract))
    assert cfg.param_count()["total"] == n_params

    specs = nn.get_partition_spec(boxed)
    flat_specs = jax.tree_util.tree_flatten_with_path(
        specs, is_leaf=lambda x: isinstance(x, jax.sharding.PartitionSpec))[0]
    flat_shapes = jax.tree_util.tree_flatten_with_path(abstract)[0]
    assert len(flat_specs) == len(flat_shapes) > 0
    n_stacked = 0
    for (path, spec), (path2, leaf) in zip(flat_specs, flat_shapes):
        name = jax.tree_util.keystr(path)
        assert path == path2
        assert isinstance(spec, jax.sharding.PartitionSpec), name
        assert len(spec) == leaf.ndim, f"{name}: {spec} vs shape {leaf.shape}"
        assert all(a in LOGICAL_AXES for a in spec), f"{name}: {spec}"
        in_stack = "'layers'" in name
        assert ("layers" in spec) == in_stack, name
        if in_stack:
            assert scan
            assert spec[0] == "layers" and leaf.shape[0] == cfg.num_layers, name
            n_stacked += 1
    assert (n_stacked > 0) == scan


@pytest.mark.parametrize("layout, overrides", [
    ("gpt", dict(position="rope")),
    ("gpt", dict(use_bias=False, norm="rmsnorm")),
    ("llama", dict(position="learned", tie_embeddings=True)),
    ("llama", dict(norm="layernorm", use_bias=True, gated_mlp=False)),
    ("t5", dict(tie_embeddings=True, num_encoder_layers=3)),
])
def test_param_count_supported_overrides(layout, overrides):
    cfg = make_cfg(layout, **overrides)
    model = build_model(cfg)
    abstract = jax.eval_shape(lambda r: model.init(r, shape_batch(cfg)), jax.random.key(0))["params"]
    assert cfg.param_count()["total"] == sum(math.prod(x.shape) for x in jax.tree.leaves(nn.meta.unbox(abstract)))


@pytest.mark.parametrize("layout, overrides", [
    ("gpt", dict(position="relative")),
    ("gpt", dict(position="rope")),
    ("llama", dict(position="learned")),
    ("llama", dict(position="relative")),
    ("gpt", dict(position="none")),
    ("t5", dict(position="rope")),
    ("t5", dict(position="none")),
])
def test_param_count_position_overrides(layout, overrides):
    """The position field is honoured by every layout, and param_count() follows it."""
    cfg = make_cfg(layout, **overrides)
    model = build_model(cfg)
    abstract = jax.eval_shape(lambda r: model.init(r, shape_batch(cfg)), jax.random.key(0))["params"]
    assert cfg.param_count()["total"] == sum(math.prod(x.shape) for x in jax.tree.leaves(nn.meta.unbox(abstract)))
    names = "/".join(jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(abstract)[0])
    assert ("relpos" in names) == (cfg.position == "relative")
    assert ("position_embedder" in names) == (cfg.position == "learned")


def test_learned_positions_rejected_for_encoder_decoder():
    with pytest.raises(ConfigError, match="position='learned'"):
        make_cfg("t5", position="learned")


# --- 2. scanned + remat == looped ---------------------------------------------------------------------


def mean_loss(model, params, batch):
    total, _ = step.loss_fn(model, params, batch)
    return total / jnp.sum(batch["decoder_loss_weights"])


@pytest.mark.parametrize("layout", LAYOUTS)
def test_scan_remat_matches_loop(layout):
    cfg, model, params, fwd = model_bundle(layout)
    scan_cfg = cfg.replace(scan_layers=True, remat_policy="full")
    scan_model = build_model(scan_cfg)
    stacked = stack_layers(params)
    ref_abstract = jax.eval_shape(lambda r: scan_model.init(r, shape_batch(scan_cfg)), jax.random.key(0))["params"]
    ref_abstract = nn.meta.unbox(ref_abstract)
    assert jax.tree.structure(stacked) == jax.tree.structure(ref_abstract)
    assert jax.tree.map(lambda a: a.shape, stacked) == jax.tree.map(lambda a: a.shape, ref_abstract)

    batch = {k: jnp.asarray(v) for k, v in packed_batch(cfg).items()}
    batch["decoder_target_tokens"] = jnp.roll(batch["decoder_input_tokens"], -1, axis=1)
    batch["decoder_loss_weights"] = (batch["decoder_segment_ids"] > 0).astype(jnp.float32)
    model_inputs = {k: v for k, v in batch.items() if not k.startswith(("decoder_target", "decoder_loss"))}

    def loss_and_logits(m):
        def f(p):
            return mean_loss(m, p, batch), m.apply({"params": p}, model_inputs)
        return jax.jit(jax.value_and_grad(f, has_aux=True))

    (loop_loss, loop_logits), loop_grads = loss_and_logits(model)(params)
    (scan_loss, scan_logits), scan_grads = loss_and_logits(scan_model)(stacked)
    np.testing.assert_allclose(np.asarray(loop_logits), np.asarray(fwd(params, model_inputs)), atol=1e-6, rtol=0)
    np.testing.assert_allclose(np.asarray(scan_logits), np.asarray(loop_logits), atol=1e-5, rtol=0)
    np.testing.assert_allclose(float(scan_loss), float(loop_loss), rtol=1e-6)
    expected = stack_layers(loop_grads)
    flat_e = jax.tree_util.tree_flatten_with_path(expected)[0]
    flat_s = jax.tree.leaves(scan_grads)
    assert len(flat_e) == len(flat_s)
    for (path, e), s in zip(flat_e, flat_s):
        np.testing.assert_allclose(np.asarray(s), np.asarray(e), atol=1e-5, rtol=1e-5,
                                   err_msg=jax.tree_util.keystr(path))
    assert max(float(jnp.max(jnp.abs(g))) for g in flat_s) > 1e-3  # the gradients are not trivially zero


# --- 3. packing isolation -------------------------------------------------------------------------------


def perturb(batch, key, splits, seg):
    """Fresh random tokens on segment ``seg`` (0-based) of every row of feature ``key``."""
    out = {k: v.copy() for k, v in batch.items()}
    rng = np.random.default_rng(1234 + seg)
    for r in range(B):
        sl = seg_slice(splits, r, seg)
        new = rand_tokens(rng, (sl.stop - sl.start,))
        new = np.where(new == out[key][r, sl], (new % (BASE["vocab_size"] - 1)) + 1, new)  # really different
        out[key][r, sl] = new
    return out


def seg_logits(lg, splits, seg):
    return [lg[r, seg_slice(splits, r, seg)] for r in range(B)]


def assert_segments(a, b, splits, seg, same: bool, atol=1e-6):
    for r, (x, y) in enumerate(zip(seg_logits(a, splits, seg), seg_logits(b, splits, seg))):
        if same:
            np.testing.assert_allclose(x, y, atol=atol, rtol=0, err_msg=f"row {r} segment {seg + 1}")
        else:
            assert np.max(np.abs(x - y)) > 1e-4, f"row {r} segment {seg + 1} did not change"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_packing_isolation_perturbation(layout):
    cfg = model_bundle(layout)[0]
    batch = packed_batch(cfg)
    base = logits(layout, batch)
    keys = [("decoder_input_tokens", DEC_SPLITS)]
    if cfg.encoder_decoder:
        keys.append(("encoder_input_tokens", ENC_SPLITS))
    for key, splits in keys:
        for seg in (0, 1):
            changed = logits(layout, perturb(batch, key, splits, seg))
            other = 1 - seg
            # The other segment's logits (decoder positions) are unaffected ...
            assert_segments(base, changed, DEC_SPLITS, other, same=True)
            # ... while the perturbed segment's own logits do change (so the test can fail).
            assert_segments(base, changed, DEC_SPLITS, seg, same=False)


def alone_batch(cfg, batch, seg):
    """Segment ``seg`` of each packed row on its own, unpacked (positions from 0, zero padding)."""
    out = {"decoder_input_tokens": np.zeros((B, T), np.int32)}
    if cfg.encoder_decoder:
        out["encoder_input_tokens"] = np.zeros((B, T), np.int32)
    for r in range(B):
        sl = seg_slice(DEC_SPLITS, r, seg)
        out["decoder_input_tokens"][r, :sl.stop - sl.start] = batch["decoder_input_tokens"][r, sl]
        if cfg.encoder_decoder:
            sl = seg_slice(ENC_SPLITS, r, seg)
            out["encoder_input_tokens"][r, :sl.stop - sl.start] = batch["encoder_input_tokens"][r, sl]
    return out


@pytest.mark.parametrize("layout", LAYOUTS)
def test_packed_equals_unpacked(layout):
    cfg = model_bundle(layout)[0]
    batch = packed_batch(cfg)
    packed = logits(layout, batch)
    for seg in (0, 1):
        alone = logits(layout, alone_batch(cfg, batch, seg))
        for r in range(B):
            sl = seg_slice(DEC_SPLITS, r, seg)
            n = sl.stop - sl.start
            np.testing.assert_allclose(packed[r, sl], alone[r, :n], atol=1e-5, rtol=0,
                                       err_msg=f"{layout} row {r} segment {seg + 1}")
    # Sanity: the segments are not trivially identical to each other.
    assert np.max(np.abs(packed[0, :4] - packed[0, DEC_SPLITS[0][0]:DEC_SPLITS[0][0] + 4])) > 1e-4


# --- 4. causality ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_causality(layout):
    cfg = model_bundle(layout)[0]
    batch = unpacked_batch(cfg)
    base = logits(layout, batch)
    for t in (0, 7, 19, T - 1):
        changed = {k: v.copy() for k, v in batch.items()}
        changed["decoder_input_tokens"][:, t] = changed["decoder_input_tokens"][:, t] % (cfg.vocab_size - 1) + 1
        new = logits(layout, changed)
        np.testing.assert_allclose(new[:, :t], base[:, :t], atol=1e-6, rtol=0, err_msg=f"t={t}")
        assert np.all(np.max(np.abs(new[:, t] - base[:, t]), axis=-1) > 1e-4), f"t={t}"
    if cfg.encoder_decoder:  # the encoder is bidirectional: a late input token reaches the first target
        changed = {k: v.copy() for k, v in batch.items()}
        changed["encoder_input_tokens"][:, T - 1] = changed["encoder_input_tokens"][:, T - 1] % (cfg.vocab_size - 1) + 1
        new = logits(layout, changed)
        assert np.all(np.max(np.abs(new[:, 0] - base[:, 0]), axis=-1) > 1e-5)


# --- 5. prefix-LM ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", DECODER_ONLY)
def test_prefix_lm(layout):
    cfg = model_bundle(layout)[0]
    P = 12
    batch = unpacked_batch(cfg)
    batch["decoder_causal_attention"] = np.broadcast_to((np.arange(T) < P).astype(np.int32), (B, T)).copy()
    base = logits(layout, batch)

    def change(b, t):
        out = {k: v.copy() for k, v in b.items()}
        out["decoder_input_tokens"][:, t] = out["decoder_input_tokens"][:, t] % (cfg.vocab_size - 1) + 1
        return out

    # Inside the prefix: earlier prefix positions see the change (bidirectional) ...
    p = 8
    new = logits(layout, change(batch, p))
    for q in range(p):
        assert np.all(np.max(np.abs(new[:, q] - base[:, q]), axis=-1) > 1e-5), f"position {q}"
    # ... which a plain causal LM would not.
    causal = {k: v for k, v in batch.items() if k != "decoder_causal_attention"}
    np.testing.assert_allclose(logits(layout, change(causal, p))[:, :p], logits(layout, causal)[:, :p],
                               atol=1e-6, rtol=0)
    # Targets stay causal: a change at or after P reaches nothing before it.
    for t in (P, P + 5, T - 1):
        new = logits(layout, change(batch, t))
        np.testing.assert_allclose(new[:, :t], base[:, :t], atol=1e-6, rtol=0, err_msg=f"t={t}")
        assert np.all(np.max(np.abs(new[:, t] - base[:, t]), axis=-1) > 1e-4)


# --- 6. config validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, field", [
    (dict(layout="bert"), "layout"),
    (dict(layout="llama", num_heads=6, num_kv_heads=4), "num_kv_heads"),
    (dict(layout="gpt", activation="swish"), "activation"),
    (dict(layout="llama", d_model=36, num_heads=4), "head_dim"),  # head_dim 9 with rope
    (dict(layout="gpt", dropout_rate=1.0), "dropout_rate"),
    (dict(layout="gpt", norm="batchnorm"), "norm"),
    (dict(layout="gpt", d_model=0), "d_model"),
    (dict(layout="t5", relative_buckets=1), "relative_buckets"),
    (dict(layout="gpt", position="relative", relative_max_distance=8), "relative_max_distance"),
])
def test_config_validation(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        ModelConfig(**{**BASE, **kwargs})


def test_config_layout_defaults_and_overrides():
    cfg = make_cfg("llama")
    assert (cfg.norm, cfg.position, cfg.gated_mlp, cfg.tie_embeddings, cfg.head_dim) == ("rmsnorm", "rope", True,
                                                                                        False, 4)
    assert make_cfg("gpt", position="rope").position == "rope"
    assert make_cfg("t5").num_encoder_layers == 2
    assert make_cfg("gpt").num_encoder_stack_layers == 0
    assert ModelConfig(layout="llama", d_model=36, num_heads=4, head_dim=8).head_dim == 8


# --- 7. dtypes and the attention implementation -----------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_bfloat16(layout):
    cfg = make_cfg(layout)
    cfg16, model16, _, _ = model_bundle(layout, dtype="bfloat16")
    abstract32 = jax.eval_shape(lambda r: build_model(cfg).init(r, shape_batch(cfg)), jax.random.key(0))
    abstract16 = jax.eval_shape(lambda r: model16.init(r, shape_batch(cfg16)), jax.random.key(0))
    assert jax.tree.structure(abstract16) == jax.tree.structure(abstract32)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(nn.meta.unbox(abstract16)))  # fp32 storage
    batch = packed_batch(cfg)
    out16 = logits(layout, batch, dtype="bfloat16")
    assert out16.dtype == jnp.bfloat16
    assert np.all(np.isfinite(out16.astype(np.float32)))
    # Same fp32 parameters: bf16 logits track the fp32 ones.
    out32 = logits(layout, batch)
    err = np.max(np.abs(out16.astype(np.float32) - out32))
    assert err < 0.05 * max(np.max(np.abs(out32)), 1e-3), err


def test_resolve_attention_impl(monkeypatch):
    assert jax.default_backend() == "cpu"
    assert L.resolve_attention_impl("auto", "float32") == "blocked"  # measured faster on CPU in fp32
    for dtype in ("bfloat16", "float16"):
        assert L.resolve_attention_impl("auto", dtype) == "xla"
    assert L.resolve_attention_impl("cudnn", "float32") == "cudnn"
    assert L.resolve_attention_impl("xla", "bfloat16") == "xla"
    assert L.resolve_attention_impl("xla", "float32") == "xla"
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert L.resolve_attention_impl("auto", "bfloat16") == "cudnn"
    assert L.resolve_attention_impl("auto", "float16") == "cudnn"
    assert L.resolve_attention_impl("auto", "float32") == "xla"
    assert L.resolve_attention_impl("xla", "bfloat16") == "xla"
    assert L.resolve_attention_impl("blocked", "bfloat16") == "blocked"


def reference_attention(q, k, v, mask, bias, scale):
    """Plain einsum softmax attention with grouped-query heads (query head n uses kv head n // group)."""
    q, k, v = (np.asarray(t, np.float64) for t in (q, k, v))
    group = q.shape[2] // k.shape[2]
    k, v = np.repeat(k, group, axis=2), np.repeat(v, group, axis=2)
    s = np.einsum("btnh,bsnh->bnts", q, k) * scale
    if bias is not None:
        s = s + np.asarray(bias, np.float64)
    s = np.where(np.asarray(mask), s, -1e30)
    s = s - s.max(axis=-1, keepdims=True)
    p = np.exp(s)
    p = p / p.sum(axis=-1, keepdims=True)
    return np.einsum("bnts,bsnh->btnh", p, v)


@pytest.mark.parametrize("num_kv", [4, 2])
@pytest.mark.parametrize("scale", [None, 1.0])
def test_dot_product_attention_matches_reference(num_kv, scale):
    rng = np.random.default_rng(0)
    b, t, n, h = 2, 16, 4, 8
    q = rng.normal(size=(b, t, n, h)).astype(np.float32)
    k = rng.normal(size=(b, t, num_kv, h)).astype(np.float32)
    v = rng.normal(size=(b, t, num_kv, h)).astype(np.float32)
    bias = rng.normal(size=(b, n, t, t)).astype(np.float32)
    seg, _ = pack([(6, 10), (16, 0)], length=t)
    mask = L.attention_mask(jnp.asarray(seg), jnp.asarray(seg), causal=True)
    got = jax.nn.dot_product_attention(q, k, v, bias=bias, mask=mask, scale=scale, implementation="xla")
    ref = reference_attention(q, k, v, mask, bias, 1 / math.sqrt(h) if scale is None else scale)
    np.testing.assert_allclose(np.asarray(got), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_attention_module_matches_reference(layout):
    """xlt's Attention (projections, GQA, rope, scale, mask, bias) against a hand-written computation."""
    cfg = make_cfg(layout)
    rope = cfg.position == "rope"
    rng = np.random.default_rng(1)
    x = rng.normal(size=(B, T, cfg.d_model)).astype(np.float32)
    seg, pos = pack(DEC_SPLITS)
    mask = L.attention_mask(jnp.asarray(seg), jnp.asarray(seg), causal=True)
    bias = rng.normal(size=(1, cfg.num_heads, T, T)).astype(np.float32) if cfg.position == "relative" else None
    attn = L.Attention(cfg, causal=True, rope=rope)
    params = attn.init(jax.random.key(3), x, x, mask, bias, jnp.asarray(pos), jnp.asarray(pos))["params"]
    params = nn.meta.unbox(params)
    got = attn.apply({"params": params}, x, x, mask, bias, jnp.asarray(pos), jnp.asarray(pos))

    def proj(name):
        y = np.einsum("btd,dnh->btnh", x, np.asarray(params[name]["kernel"]))
        return y + np.asarray(params[name]["bias"]) if cfg.use_bias else y

    q, k, v = proj("query"), proj("key"), proj("value")
    if rope:
        q, k = (np.asarray(L.apply_rope(jnp.asarray(t_, jnp.float32), jnp.asarray(pos), cfg.rope_theta))
                for t_ in (q, k))
    scale = 1 / math.sqrt(cfg.head_dim) if cfg.scale_attention else 1.0
    ctx = reference_attention(q, k, v, mask, None if bias is None else np.broadcast_to(bias, (B,) + bias.shape[1:]),
                              scale)
    ref = np.einsum("btnh,nhd->btd", ctx, np.asarray(params["out"]["kernel"]))
    if cfg.use_bias:
        ref = ref + np.asarray(params["out"]["bias"])
    np.testing.assert_allclose(np.asarray(got), ref, atol=1e-5, rtol=1e-4)


# blocked_attention against jax.nn.dot_product_attention(implementation='xla'): same outputs and gradients.
# Each case: (q_len, kv_len, heads, kv_heads, q-side segment splits, kv-side splits, causal, prefix, bias, block_len).
BLOCKED_CASES = {
    "causal": (24, 24, 4, 4, None, None, True, False, False, 8),
    "causal_packed": (24, 24, 4, 4, ((10, 14), (7, 12)), None, True, False, False, 8),
    "causal_gqa_packed": (24, 24, 8, 2, ((10, 14), (24,)), None, True, False, False, 8),
    "causal_ragged_blocks": (23, 23, 4, 2, ((9, 14), (5, 11)), None, True, False, False, 7),  # 23 = 3·7 + 2
    "causal_relative_bias": (24, 24, 4, 4, ((10, 14), (24,)), None, True, False, True, 8),
    "prefix_lm_packed": (24, 24, 4, 2, ((10, 14), (7, 12)), None, True, True, False, 8),
    "encoder_bias_packed": (24, 24, 4, 4, ((10, 14), (7, 12)), None, False, False, True, 8),
    "cross_packed": (16, 24, 8, 4, ((6, 10), (16,)), ((10, 14), (9, 15)), False, False, False, 8),
    "one_block": (24, 24, 4, 4, ((10, 14), (7, 12)), None, True, False, False, 64),
}


def blocked_case(name):
    t, s, heads, kv_heads, q_splits, kv_splits, causal, prefix, with_bias, block_len = BLOCKED_CASES[name]
    rng = np.random.default_rng(7)
    d = 6  # unlike any block or sequence length, so score shapes are told from context shapes below
    q = jnp.asarray(rng.normal(size=(B, t, heads, d)), jnp.float32)
    k = jnp.asarray(rng.normal(size=(B, s, kv_heads, d)), jnp.float32)
    v = jnp.asarray(rng.normal(size=(B, s, kv_heads, d)), jnp.float32)
    q_seg = jnp.asarray(pack(q_splits, t)[0]) if q_splits else jnp.ones((B, t), jnp.int32)
    kv_seg = q_seg if s == t and kv_splits is None else jnp.asarray(pack(kv_splits, s)[0])
    pre = None
    if prefix:  # the first 4 tokens of each segment are the prefix-LM's bidirectional inputs
        _, pos = pack(q_splits, t)
        pre = jnp.asarray((pos < 4) & (np.asarray(q_seg) > 0), jnp.int32)
    mask = L.SegmentMask(q_seg, kv_seg, pre, causal=causal)
    bias = jnp.asarray(rng.normal(size=(1, heads, t, s)), jnp.float32) if with_bias else None
    cot = jnp.asarray(rng.normal(size=(B, t, heads, d)), jnp.float32)
    return (q, k, v, bias), mask, cot, block_len


@pytest.mark.parametrize("scale", [None, 1.0])  # scaled (gpt, llama) and unscaled (t5) logits
@pytest.mark.parametrize("name", list(BLOCKED_CASES))
def test_blocked_attention_matches_xla(name, scale):
    (q, k, v, bias), mask, cot, block_len = blocked_case(name)

    def xla(q, k, v, bias):
        b = None if bias is None else jnp.broadcast_to(bias, (q.shape[0],) + bias.shape[1:])
        return jax.nn.dot_product_attention(q, k, v, bias=b, mask=mask.dense(), scale=scale, implementation="xla")

    def blocked(q, k, v, bias):
        return L.blocked_attention(q, k, v, mask, bias, scale, block_len=block_len)

    (want, want_vjp), (got, got_vjp) = jax.vjp(xla, q, k, v, bias), jax.vjp(jax.jit(blocked), q, k, v, bias)
    np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-6, rtol=1e-5)
    want_g, got_g = want_vjp(cot), got_vjp(cot)
    for g, w, what in zip(got_g, want_g, ("q", "k", "v", "bias")):
        if w is not None:
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=1e-5, rtol=1e-5, err_msg=f"d{what}")
    assert float(jnp.max(jnp.abs(want_g[0]))) > 1e-2  # the gradients are not trivially zero


def score_shapes(fn, *args) -> list[tuple[int, ...]]:
    """Output shapes of every dot_general in fn's forward and backward (a jaxpr walk)."""
    shapes = []

    def walk(jaxpr):
        for eqn in jaxpr.eqns:
            if eqn.primitive.name == "dot_general":
                shapes.append(tuple(eqn.outvars[0].aval.shape))
            for param in eqn.params.values():  # nested jaxprs (pjit, custom_jvp, ...)
                if hasattr(param, "jaxpr"):
                    walk(param.jaxpr if hasattr(param.jaxpr, "eqns") else param.jaxpr.jaxpr)

    walk(jax.make_jaxpr(jax.grad(lambda *a: jnp.sum(fn(*a) ** 2), argnums=(0, 1, 2)))(*args).jaxpr)
    return shapes


def test_blocked_attention_skips_the_masked_upper_triangle():
    """Causal without a prefix: no score matrix covers keys after its query block (forward or backward), and
    the score elements computed are the causal blocks only. A prefix-LM mask takes one full block."""
    (q, k, v, _), mask, _, _ = blocked_case("causal_packed")  # t = 24, blocks of 8
    t = q.shape[1]

    def scores(m):
        shapes = score_shapes(lambda q, k, v: L.blocked_attention(q, k, v, m, block_len=8), q, k, v)
        return [sh for sh in shapes if q.shape[-1] not in sh[-2:]]  # [b, heads, q block, keys], not head_dim ones

    causal = scores(mask)
    assert {sh[-2:] for sh in causal} == {(8, 8), (8, 16), (8, 24)}
    elements = sum(sh[-2] * sh[-1] for sh in set(causal))
    assert elements == 8 * (8 + 16 + 24) < t * t
    (_, _, _, _), prefix_mask, _, _ = blocked_case("prefix_lm_packed")
    assert {sh[-2:] for sh in scores(prefix_mask)} == {(t, t)}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_blocked_attention_model_matches_xla(layout):
    """Whole models, attention_impl 'blocked' (blocks of 8 positions, 4 per row; scanned layers with remat, so
    the mask passes through nn.scan and nn.remat) vs 'xla' (looped), same parameters: the same logits and
    loss gradients on packed rows (and, decoder-only, on a packed prefix-LM batch)."""
    params = base_params(layout)
    batch = {k: jnp.asarray(v) for k, v in packed_batch(make_cfg(layout)).items()}
    batch["decoder_target_tokens"] = jnp.roll(batch["decoder_input_tokens"], -1, axis=1)
    batch["decoder_loss_weights"] = (batch["decoder_segment_ids"] > 0).astype(jnp.float32)
    batches = [batch]
    if layout in DECODER_ONLY:
        _, pos = pack(DEC_SPLITS)
        batches.append({**batch, "decoder_causal_attention": jnp.asarray(pos < 5, jnp.int32)})
    results = {}
    for impl, scan in (("xla", False), ("blocked", True)):
        model = build_model(make_cfg(layout, attention_impl=impl, attention_block_len=8, scan_layers=scan,
                                     remat_policy="dots_no_batch" if scan else "none"))
        f = jax.jit(jax.value_and_grad(lambda p, b, m=model: (mean_loss(m, p, b), m.apply({"params": p}, b)),
                                       has_aux=True))
        results[impl] = [f(stack_layers(params) if scan else params, b) for b in batches]
    for ((want_loss, want_logits), want_g), ((got_loss, got_logits), got_g) in zip(results["xla"],
                                                                                    results["blocked"]):
        want_g = stack_layers(want_g)
        assert jax.tree.structure(got_g) == jax.tree.structure(want_g)
        np.testing.assert_allclose(np.asarray(got_logits), np.asarray(want_logits), atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(float(got_loss), float(want_loss), rtol=1e-6)
        for (path, w), g in zip(jax.tree_util.tree_flatten_with_path(want_g)[0], jax.tree.leaves(got_g)):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=1e-6, rtol=1e-4,
                                       err_msg=jax.tree_util.keystr(path))


def test_blocked_attention_bfloat16():
    """bf16 inputs (fp32 logits and softmax, as jax's XLA path): same dtype out, close to the XLA path."""
    (q, k, v, _), mask, _, _ = blocked_case("causal_gqa_packed")
    q, k, v = (a.astype(jnp.bfloat16) for a in (q, k, v))
    got = jax.jit(lambda q, k, v: L.blocked_attention(q, k, v, mask, block_len=8))(q, k, v)
    want = jax.nn.dot_product_attention(q, k, v, mask=mask.dense(), implementation="xla")
    assert got.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want, np.float32), atol=2e-2)
    grads = jax.grad(lambda q: jnp.sum(L.blocked_attention(q, k, v, mask, block_len=8).astype(jnp.float32)))(q)
    assert grads.dtype == jnp.bfloat16 and bool(jnp.all(jnp.isfinite(grads.astype(jnp.float32))))


def test_segment_mask_blocks_equal_dense():
    seg = jnp.asarray([[1, 1, 1, 2, 2, 0, 0], [1, 1, 1, 1, 1, 1, 2]])
    for causal in (True, False):
        m = L.SegmentMask(seg, seg, causal=causal)
        dense = np.asarray(m.dense())
        np.testing.assert_array_equal(dense, np.asarray(L.attention_mask(seg, seg, causal=causal)))
        for q0, q1, k1 in ((0, 3, 3), (3, 6, 6), (6, 7, 7), (2, 5, 7)):
            np.testing.assert_array_equal(np.asarray(m.block(q0, q1, k1)), dense[:, :, q0:q1, :k1])
    prefix = jnp.asarray([[1, 0, 0, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0]])
    assert L.SegmentMask(seg, seg, causal=True).hides_future
    assert not L.SegmentMask(seg, seg, prefix, causal=True).hides_future
    assert not L.SegmentMask(seg, seg, causal=False).hides_future
    np.testing.assert_array_equal(np.asarray(L.SegmentMask(seg, seg, prefix, causal=True).dense()),
                                  np.asarray(L.attention_mask(seg, seg, causal=True, prefix=prefix)))


def test_attention_mask_values():
    seg = jnp.asarray([[1, 1, 1, 2, 2, 0]])
    prefix = jnp.asarray([[1, 1, 0, 1, 0, 0]])
    causal = np.asarray(L.attention_mask(seg, seg, causal=True))[0, 0]
    full = np.asarray(L.attention_mask(seg, seg, causal=False))[0, 0]
    plm = np.asarray(L.attention_mask(seg, seg, causal=True, prefix=prefix))[0, 0]
    s = np.asarray(seg)[0]
    p = np.asarray(prefix)[0].astype(bool)
    for q in range(6):
        for k in range(6):
            same = s[q] == s[k]
            assert full[q, k] == same, (q, k)
            assert causal[q, k] == (same and k <= q), (q, k)
            assert plm[q, k] == (same and (k <= q or (p[q] and p[k]))), (q, k)
    assert L.attention_mask(seg, seg, causal=True).shape == (1, 1, 6, 6)
    enc = jnp.asarray([[1, 1, 2, 2, 2, 2, 0, 0]])
    cross = np.asarray(L.attention_mask(seg, enc, causal=False))[0, 0]
    assert cross.shape == (6, 8)
    np.testing.assert_array_equal(cross, s[:, None] == np.asarray(enc)[0][None, :])


# --- 8. relative position buckets ---------------------------------------------------------------------------


def t5_bucket(relative_position: int, bidirectional: bool, num_buckets: int = 32, max_distance: int = 128) -> int:
    """Mesh-TF / HF ``_relative_position_bucket`` for one (memory - query) distance, in plain Python."""
    ret = 0
    n = -relative_position
    if bidirectional:
        num_buckets //= 2
        if n < 0:
            ret += num_buckets
        n = abs(n)
    else:
        n = max(n, 0)
    max_exact = num_buckets // 2
    if n < max_exact:
        return ret + n
    val = max_exact + int(math.log(n / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact))
    return ret + min(val, num_buckets - 1)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_relative_bucket_matches_t5(bidirectional):
    rel = np.arange(-200, 201)
    got = np.asarray(L.relative_bucket(jnp.asarray(rel, jnp.int32), bidirectional, 32, 128))
    ref = np.array([t5_bucket(int(r), bidirectional) for r in rel])
    np.testing.assert_array_equal(got, ref)
    assert got.min() == 0 and got.max() == 31
    if bidirectional:  # keys before the query use 0..15, keys after it 16..31
        assert got[rel == 0] == 0 and got[rel == -1] == 1 and got[rel == 1] == 17
    else:  # causal: every future key shares bucket 0
        assert np.all(got[rel >= 0] == 0) and got[rel == -1] == 1 and got[rel == -200] == 31


# --- 9. RoPE ----------------------------------------------------------------------------------------------------


def test_rope_preserves_norms():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 16, 3, 8)).astype(np.float32)
    pos = rng.integers(0, 1000, size=(2, 16)).astype(np.int32)
    y = np.asarray(L.apply_rope(jnp.asarray(x), jnp.asarray(pos), 10_000.0))
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-5)
    assert np.max(np.abs(y - x)) > 1e-2  # it does rotate
    y0 = np.asarray(L.apply_rope(jnp.asarray(x), jnp.zeros((2, 16), jnp.int32), 10_000.0))
    np.testing.assert_allclose(y0, x, atol=1e-6)  # position 0 is the identity


def test_rope_matches_llama_convention():
    """HF Llama: inv_freq = theta^(-2i/d), x*cos + rotate_half(x)*sin with rotate_half = [-x2, x1]."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1, 5, 2, 8))
    pos = np.array([[0, 1, 2, 7, 300]])
    inv_freq = 10_000.0 ** (-np.arange(0, 8, 2) / 8)
    ang = pos[..., None] * inv_freq  # [1, 5, 4]
    cos = np.concatenate([np.cos(ang)] * 2, -1)[:, :, None]
    sin = np.concatenate([np.sin(ang)] * 2, -1)[:, :, None]
    rot = np.concatenate([-x[..., 4:], x[..., :4]], -1)
    ref = x * cos + rot * sin
    got = L.apply_rope(jnp.asarray(x, jnp.float32), jnp.asarray(pos), 10_000.0)
    np.testing.assert_allclose(np.asarray(got), ref, atol=1e-4)


def test_rope_relative():
    rng = np.random.default_rng(1)
    q = jnp.asarray(rng.normal(size=(1, 1, 1, 16)).astype(np.float32))
    k = jnp.asarray(rng.normal(size=(1, 1, 1, 16)).astype(np.float32))

    def score(m, n):
        rq = L.apply_rope(q, jnp.full((1, 1), m, jnp.int32), 10_000.0)
        rk = L.apply_rope(k, jnp.full((1, 1), n, jnp.int32), 10_000.0)
        return float(jnp.sum(rq * rk))

    for shift in (0, 1, 3, 17):
        s = [score(m + shift, m) for m in (0, 5, 40, 123)]
        np.testing.assert_allclose(s, s[0], rtol=1e-4, atol=1e-5, err_msg=f"shift {shift}")
    assert abs(score(3, 0) - score(0, 0)) > 1e-3  # and it does depend on the shift


# --- 10. dropout -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS)
def test_dropout(layout):
    cfg, drop_model, params, _ = model_bundle(layout, dropout_rate=0.1)
    batch = {k: jnp.asarray(v) for k, v in packed_batch(cfg).items()}

    @jax.jit
    def run(p, b, rngs):
        train = [drop_model.apply({"params": p}, b, deterministic=False, rngs={"dropout": r}) for r in rngs]
        return train, drop_model.apply({"params": p}, b, deterministic=True)

    (a, a2, b), eval_out = run(params, batch, [jax.random.key(1), jax.random.key(1), jax.random.key(2)])
    a, a2, b, eval_out = map(np.asarray, (a, a2, b, eval_out))
    np.testing.assert_array_equal(a, a2)  # same rng, same mask
    assert np.max(np.abs(a - b)) > 1e-3  # another rng, another mask
    assert np.max(np.abs(a - eval_out)) > 1e-3  # dropout is active in training
    # deterministic=True is exactly the dropout-free model.
    np.testing.assert_allclose(eval_out, logits(layout, packed_batch(cfg)), atol=1e-6, rtol=0)


def test_relative_max_distance_too_small():
    """relative_max_distance at or below the exact range used to divide by log(1)=0 and give NaN logits."""
    with pytest.raises(ConfigError, match="relative_max_distance=16"):
        make_cfg("t5", relative_max_distance=16)
    cfg = make_cfg("t5", relative_max_distance=17)  # smallest valid: every bucket finite
    model = build_model(cfg)
    out = jax.jit(lambda p, b: model.apply({"params": p}, b))(
        base_params("t5"), {k: jnp.asarray(v) for k, v in unpacked_batch(cfg).items()})
    assert np.all(np.isfinite(np.asarray(out)))
