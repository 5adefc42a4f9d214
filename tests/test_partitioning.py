"""Partitioning tests: a sharded train step computes what the single-device step computes (also for
grouped-query attention with fewer KV heads than the tensor axis, and under a run's own rules), gradient
accumulation changes nothing, bad meshes and bad rules fail with one clear error, the rules table places axes
as documented, and the logical constraints really reach the compiled program."""

from __future__ import annotations

import functools

import flax.linen as nn
import gin
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from random_params import random_params
from xlt import decoding, partitioning, step
from xlt.errors import ConfigError
from xlt.models import ModelConfig, build_model
from xlt.models import blocks, decoder, encdec, layers

BATCH, T = 8, 32
LR = 0.5
BASE = dict(vocab_size=384, d_model=32, num_layers=2, d_ff=64, max_len=64)
LAYOUT_KW = {
    "gpt": dict(layout="gpt"),
    "llama": dict(layout="llama", num_heads=8, num_kv_heads=4),
    "t5": dict(layout="t5", head_dim=16),
    "bloom": dict(layout="bloom"),  # ALiBi: the [batch, heads, 1, keys] bias under every mesh
}
MESHES = [(8, 1, 1), (2, 2, 2), (1, 2, 4)]
# Grouped-query attention with fewer KV heads than the tensor axis of the (1, 2, 4) and (2, 1, 4) meshes:
# the KV projections are replicated over ``tensor`` (their logical axis ``kv_heads`` does not divide).
GQA_KW = {
    "llama_kv1": dict(layout="llama", num_heads=8, num_kv_heads=1),
    "llama_kv2": dict(layout="llama", num_heads=8, num_kv_heads=2),
}
ALL_KW = {**LAYOUT_KW, **GQA_KW}
GQA_MESHES = [(1, 2, 4), (2, 1, 4)]


def make_cfg(layout: str, **overrides) -> ModelConfig:
    return ModelConfig(**{**BASE, **ALL_KW[layout], **overrides})


def packed_rows(rng, lengths_per_row):
    """Tokens, segment ids (1, 2, then 0 padding) and positions restarting at 0 per segment."""
    tok = np.zeros((len(lengths_per_row), T), np.int32)
    seg = np.zeros_like(tok)
    pos = np.zeros_like(tok)
    for r, lens in enumerate(lengths_per_row):
        start = 0
        for s, n in enumerate(lens):
            tok[r, start:start + n] = rng.integers(1, BASE["vocab_size"], size=n)
            seg[r, start:start + n] = s + 1
            pos[r, start:start + n] = np.arange(n)
            start += n
    return tok, seg, pos


def make_batch(cfg: ModelConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Packed batch, two segments per row, some rows with trailing padding; loss on real targets only."""
    rng = np.random.default_rng(seed)
    dec_lens = [(int(a), int(b)) for a, b in zip(rng.integers(6, 20, BATCH), rng.integers(6, 13, BATCH))]
    dec_lens[0] = (16, 16)  # one full row
    tok, seg, pos = packed_rows(rng, dec_lens)
    # Targets are the inputs shifted left within each segment (0 where a segment ends or on padding).
    tgt = np.where(np.roll(seg, -1, axis=1) == seg, np.roll(tok, -1, axis=1), 0)
    tgt[:, -1] = 0
    b = {
        "decoder_input_tokens": tok, "decoder_segment_ids": seg, "decoder_positions": pos,
        "decoder_target_tokens": tgt.astype(np.int32), "decoder_loss_weights": (tgt > 0).astype(np.float32),
    }
    if cfg.encoder_decoder:
        enc_lens = [(int(a), int(b)) for a, b in zip(rng.integers(4, 18, BATCH), rng.integers(4, 14, BATCH))]
        etok, eseg, epos = packed_rows(rng, enc_lens)
        b.update(encoder_input_tokens=etok, encoder_segment_ids=eseg, encoder_positions=epos)
    return b


def batch_shapes(batch):
    return {k: v.shape for k, v in batch.items()}


def first_layer(params):
    stack = params["decoder"]["stack"] if "stack" in params["decoder"] else params["decoder"]
    return stack["layers_0"]


def mlp_kernel(params):
    mlp = first_layer(params)["mlp"]
    return mlp["wi_0" if "wi_0" in mlp else "wi"]["kernel"]


def to_host(tree):
    return jax.tree.map(lambda x: np.asarray(jax.device_get(x)), tree)


@functools.cache
def host_params(layout: str):
    """Random parameters drawn on the host (no compiled init: the step, not the initialiser, is under
    test here). Norm scales, biases and position tables are perturbed so every leaf matters. Scaled like an
    initialisation (loss ~ log V), unlike tests/random_params.py's draw, whose peaked logits serve decoding."""
    cfg = make_cfg(layout)
    model = build_model(cfg)
    inputs = {k: jnp.zeros((1, T), jnp.int32) for k in make_batch(cfg)
              if not k.startswith(("decoder_target", "decoder_loss"))}
    abstract = nn.meta.unbox(jax.eval_shape(lambda r: model.init(r, inputs), jax.random.key(0))["params"])
    rng = np.random.default_rng(list(ALL_KW).index(layout))

    def draw(path, leaf):
        name = jax.tree_util.keystr(path, simple=True, separator="/")
        shape = leaf.shape
        if name.endswith("scale"):
            x = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.endswith("bias"):
            x = 0.05 * rng.standard_normal(shape)
        elif name.endswith("rel_embedding"):
            x = 0.5 * rng.standard_normal(shape)
        elif name.endswith("embedding"):
            x = 0.05 * rng.standard_normal(shape)
        else:  # kernels: fan-in over the contracted axes (two for the attention output projection)
            fan_in = shape[0] * shape[1] if name.endswith("out/kernel") else shape[0]
            x = rng.standard_normal(shape) / np.sqrt(fan_in)
            if name.endswith("query/kernel") and not cfg.scale_attention:  # T5 folds 1/sqrt(d_head) in here
                x = x / np.sqrt(cfg.head_dim)
        return x.astype(np.float32)

    return jax.tree_util.tree_map_with_path(draw, abstract)


def sgd_keeping_grads(lr: float) -> optax.GradientTransformation:
    """Plain SGD whose optimizer state is the last gradient, so the step's exact gradients come back
    (sharded like the parameters, since the state is built from the boxed parameters)."""

    def init(params):
        return {"grads": jax.tree.map(jnp.zeros_like, params)}

    def update(grads, state, params=None):
        return jax.tree.map(lambda g: -lr * g, grads), {"grads": grads}

    return optax.GradientTransformation(init, update)


def build_fns(layout: str, mesh_shape, *, grad_accum_steps: int = 1, **overrides):
    cfg = make_cfg(layout, **overrides)
    batch = make_batch(cfg)
    n = int(np.prod(mesh_shape))
    mesh = partitioning.make_mesh(mesh_shape, devices=jax.devices()[:n])
    tx = sgd_keeping_grads(LR)
    fns = step.build(build_model(cfg), tx, mesh, batch_shapes(batch), grad_accum_steps=grad_accum_steps)
    return cfg, batch, mesh, tx, fns


def run_step(layout: str, mesh_shape, *, grad_accum_steps: int = 1):
    """One SGD train step from host_params(layout) on the given mesh."""
    cfg, batch, mesh, tx, fns = build_fns(layout, mesh_shape, grad_accum_steps=grad_accum_steps)
    params = host_params(layout)
    state = step.TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))
    state = jax.device_put(state, fns.state_shardings)
    state, metrics = fns.train(state, partitioning.global_batch(batch, mesh))
    attention = first_layer(state.params)["self_attention"]
    return dict(init=params, params=to_host(state.params), grads=to_host(state.opt_state["grads"]),
                metrics=step.to_host(metrics),
                attention_specs={k: attention[k]["kernel"].sharding.spec for k in ("query", "key", "value")},
                kernel_sharding=mlp_kernel(state.params).sharding, kernel_shards=[
                    s.data.shape for s in mlp_kernel(state.params).addressable_shards],
                step=int(state.step), fns=fns, cfg=cfg, batch=batch)


@functools.cache
def reference(layout: str):
    """The single-device (1, 1, 1) step every sharded mesh must reproduce."""
    return run_step(layout, (1, 1, 1))


def assert_trees_close(actual, expected, rtol, atol, what):
    """Leaf by leaf: |a - e| <= atol_leaf + rtol * |e|, where atol_leaf = max(atol, rtol * max|e_leaf|).

    fp32 sums reordered across devices differ by ~1e-7 of the largest term summed, so an element
    that is a small difference of large terms (an embedding row's gradient) can miss a bare atol of
    1e-6 while its leaf is equal to ~1e-6 relative; scaling atol by the leaf keeps the check at fp32
    precision for every leaf. A real mistake (a dropped shard, a double count) is O(1) relative."""
    flat_a = jax.tree_util.tree_flatten_with_path(actual)[0]
    flat_e = jax.tree.leaves(expected)
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for (path, a), e in zip(flat_a, flat_e):
        leaf_atol = max(atol, rtol * float(np.max(np.abs(e))))
        np.testing.assert_allclose(a, e, rtol=rtol, atol=leaf_atol, err_msg=f"{what} {jax.tree_util.keystr(path)}")


# --- 1. sharded == single device ----------------------------------------------------------------------


@pytest.mark.parametrize("mesh_shape", MESHES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("layout", list(LAYOUT_KW))
def test_sharded_step_matches_single_device(layout, mesh_shape):
    ref = reference(layout)
    got = run_step(layout, mesh_shape)
    data, fsdp, tensor = mesh_shape
    cfg = got["cfg"]

    # Parameters really are laid out over the mesh.
    sharding = got["kernel_sharding"]
    assert sharding.spec == P("fsdp", "tensor")
    assert sharding.shard_shape((cfg.d_model, cfg.d_ff)) == (cfg.d_model // fsdp, cfg.d_ff // tensor)
    assert set(got["kernel_shards"]) == {(cfg.d_model // fsdp, cfg.d_ff // tensor)}
    assert sharding.is_fully_replicated == (fsdp == tensor == 1)
    assert ref["kernel_sharding"].is_fully_replicated
    assert got["fns"].batch_shardings["decoder_input_tokens"].spec == P(("data", "fsdp"), None)
    assert got["step"] == ref["step"] == 1
    assert_matches_reference(got, ref)


def assert_matches_reference(got, ref):
    """Loss, metrics, gradient norm and the SGD update (-LR * grad) match the single-device step."""
    m, rm = got["metrics"], ref["metrics"]
    assert m["tokens"] == rm["tokens"] == float(ref["batch"]["decoder_loss_weights"].sum())
    assert 3.0 < rm["loss"] < 10.0  # ~ log(384) at initialisation: a real loss
    assert rm["grad_norm"] > 1e-3
    for key in ("loss", "cross_entropy", "accuracy", "grad_norm"):
        np.testing.assert_allclose(m[key], rm[key], rtol=1e-5, atol=1e-6, err_msg=key)
    grads, ref_grads = got["grads"], ref["grads"]
    np.testing.assert_allclose(np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in jax.tree.leaves(ref_grads))),
                               rm["grad_norm"], rtol=1e-5)
    # Every parameter receives a gradient (nothing is cut off by a mask or a constraint), except the
    # key bias: q·b_k is the same for every key, so softmax ignores it and its gradient is exactly 0.
    for path, g in jax.tree_util.tree_flatten_with_path(ref_grads)[0]:
        name = jax.tree_util.keystr(path, simple=True, separator="/")
        if name.endswith("key/bias"):
            assert np.max(np.abs(g)) < 1e-7, name
        else:
            assert np.max(np.abs(g)) > 1e-6, name
    assert_trees_close(grads, ref_grads, rtol=1e-5, atol=1e-6, what="grad")
    assert_trees_close(got["params"], ref["params"], rtol=1e-5, atol=1e-6, what="updated param")


@pytest.mark.parametrize("mesh_shape", GQA_MESHES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("variant", list(GQA_KW))
def test_gqa_fewer_kv_heads_than_tensor_axis(variant, mesh_shape):
    """1 or 2 KV heads on a tensor axis of 4: the key/value projections are replicated over ``tensor``
    (``kv_heads`` does not divide), the query heads stay sharded, and the step equals the single-device one."""
    ref = reference(variant)
    got = run_step(variant, mesh_shape)
    assert got["cfg"].num_kv_heads < mesh_shape[2]
    specs = got["attention_specs"]
    assert specs["query"] == P("fsdp", "tensor", None)
    assert specs["key"] == specs["value"] == P("fsdp", None, None)
    assert got["kernel_sharding"].spec == P("fsdp", "tensor")
    assert got["step"] == ref["step"] == 1
    assert_matches_reference(got, ref)


def test_gqa_kv_heads_that_divide_stay_sharded():
    """The fallback is per array: 4 KV heads on a tensor axis of 4 are sharded like the query heads."""
    got = run_step("llama", (1, 2, 4))
    assert got["attention_specs"]["key"] == got["attention_specs"]["value"] == P("fsdp", "tensor", None)


@pytest.fixture
def mlp_over_fsdp():
    """A run's own rules: the MLP hidden axis over ``fsdp``, the model axis over ``tensor``."""
    gin.bind_parameter("axis_rules.overrides", [("mlp", "fsdp"), ("embed", "tensor")])
    yield
    gin.clear_config()


@pytest.mark.parametrize("layout", ["gpt", "llama"])
def test_custom_rules_change_placement_not_results(layout, mlp_over_fsdp):
    """Bound rules reach the train step: the MLP kernel [embed, mlp] is placed (tensor, fsdp) instead of
    (fsdp, tensor), and the step still equals the single-device step."""
    assert partitioning.axis_rules()[2:4] == (("embed", "tensor"), ("mlp", "fsdp"))
    ref = reference(layout)  # one device: the rules place nothing
    got = run_step(layout, (1, 2, 4))
    cfg = got["cfg"]
    assert got["kernel_sharding"].spec == P("tensor", "fsdp")
    assert set(got["kernel_shards"]) == {(cfg.d_model // 4, cfg.d_ff // 2)}
    assert got["attention_specs"]["query"] == P("tensor", None, None)  # heads lost tensor to embed
    assert_matches_reference(got, ref)


def test_gqa_generation_on_mesh_matches_single_device(devices):
    """Cached greedy decoding with 2 KV heads on a tensor axis of 4 (KV cache replicated over ``tensor``)
    gives the single-device tokens."""
    cfg = make_cfg("llama_kv2", max_len=24)
    model = build_model(cfg)
    params = random_params(cfg, model, seed=7)
    rng = np.random.default_rng(0)
    prompts = [rng.integers(2, cfg.vocab_size, n).tolist() for n in (3, 9, 5, 1)]
    want = decoding.generate(model, params, prompts, max_new_tokens=6, eos_id=1).tokens
    mesh = partitioning.make_mesh((1, 2, 4), devices=devices)
    got = decoding.generate(model, params, prompts, max_new_tokens=6, eos_id=1, mesh=mesh).tokens
    assert len({tuple(r) for r in np.asarray(want)}) > 1  # varied outputs, not one repeated token
    np.testing.assert_array_equal(got, want)


def test_init_independent_of_mesh():
    """The compiled initialiser gives the same parameters on a sharded mesh as on one device."""
    states = []
    for shape in ((1, 1, 1), (1, 2, 4)):
        *_, fns = build_fns("gpt", shape)
        states.append(fns.init(jax.random.key(0)))
    single, sharded = states
    assert not mlp_kernel(sharded.params).sharding.is_fully_replicated
    assert_trees_close(to_host(sharded.params), to_host(single.params), rtol=0, atol=0, what="init")
    # Embedding std 0.02, a real (non-zero, non-constant) initialisation.
    emb = np.asarray(single.params["token_embedder"]["embedding"])
    assert 0.015 < emb.std() < 0.025


# --- 2. gradient accumulation -------------------------------------------------------------------------


@pytest.mark.parametrize("layout", list(LAYOUT_KW))
def test_grad_accumulation(layout):
    """Accumulating 2 or 4 microbatches on a (2, 1, 1) mesh reproduces the one-shot step (which
    test_sharded_step_matches_single_device ties to every mesh)."""
    ref = reference(layout)
    for k in (2, 4):
        got = run_step(layout, (2, 1, 1), grad_accum_steps=k)
        for key in ("loss", "cross_entropy", "accuracy", "tokens", "grad_norm"):
            np.testing.assert_allclose(got["metrics"][key], ref["metrics"][key], rtol=1e-5, atol=1e-6,
                                       err_msg=f"accum {k}: {key}")
        assert_trees_close(got["grads"], ref["grads"], rtol=1e-5, atol=1e-6, what=f"accum {k} grad")
        assert_trees_close(got["params"], ref["params"], rtol=1e-5, atol=1e-6, what=f"accum {k} param")


def test_grad_accumulation_microbatch_must_divide_mesh():
    cfg = make_cfg("gpt")
    shapes = batch_shapes(make_batch(cfg))
    with pytest.raises(ConfigError, match=r"microbatch.*data\*fsdp=8"):
        step.build(build_model(cfg), optax.sgd(LR), partitioning.make_mesh((8, 1, 1)), shapes, grad_accum_steps=2)
    with pytest.raises(ConfigError, match="grad_accum_steps=3"):
        step.build(build_model(cfg), optax.sgd(LR), partitioning.make_mesh((1, 1, 1), jax.devices()[:1]), shapes,
                   grad_accum_steps=3)


# --- 3. errors ----------------------------------------------------------------------------------------------


def test_mesh_errors(devices):
    with pytest.raises(ConfigError) as e:
        partitioning.make_mesh((3, 1, 1))
    msg = str(e.value)
    assert "data=3" in msg and "3 devices" in msg and "8 are present" in msg
    with pytest.raises(ConfigError, match="at most one -1"):
        partitioning.make_mesh((-1, -1, 2))
    with pytest.raises(ConfigError, match=r"3 entries"):
        partitioning.make_mesh((4, 2))
    with pytest.raises(ConfigError, match=r"3 entries"):
        partitioning.make_mesh((2, 2, 1, 2))
    with pytest.raises(ConfigError, match="8 devices do not divide by 3"):
        partitioning.make_mesh((-1, 3, 1))
    with pytest.raises(ConfigError, match="positive"):
        partitioning.make_mesh((0, 8, 1))


def test_mesh_fill(devices):
    mesh = partitioning.make_mesh((-1, 2, 1))
    assert mesh.axis_names == ("data", "fsdp", "tensor")
    assert dict(mesh.shape) == {"data": 4, "fsdp": 2, "tensor": 1}
    mesh = partitioning.make_mesh((2, 1, -1))
    assert dict(mesh.shape) == {"data": 2, "fsdp": 1, "tensor": 4}
    assert dict(partitioning.make_mesh((-1, 1, 1), devices=devices[:2]).shape) == {"data": 2, "fsdp": 1, "tensor": 1}
    assert sorted(d.id for d in partitioning.make_mesh((2, 2, 2)).devices.flat) == sorted(d.id for d in devices)


def test_parameter_not_divisible():
    """Query heads (and every axis but ``kv_heads``) must divide: 2 heads on a tensor axis of 4 is an error
    naming the first such array in tree order, the attention output kernel [heads, kv, embed]. (Before
    ``kv_heads`` existed, 2 KV heads failed the same way on the key kernel; they are now replicated, see
    test_gqa_fewer_kv_heads_than_tensor_axis.)"""
    cfg = make_cfg("llama", num_heads=2, num_kv_heads=2, head_dim=16)
    shapes = batch_shapes(make_batch(cfg))
    with pytest.raises(ConfigError) as e:
        step.build(build_model(cfg), optax.sgd(LR), partitioning.make_mesh((1, 2, 4)), shapes)
    msg = str(e.value)
    assert "self_attention/out/kernel" in msg and "dimension 0" in msg, msg
    assert "'tensor'" in msg and "size 4" in msg and "size 2" in msg, msg


@pytest.mark.parametrize("mesh_shape, batch_size, n", [((8, 1, 1), 6, 8), ((2, 2, 2), 6, 4), ((1, 4, 2), 2, 4)])
def test_batch_not_divisible(mesh_shape, batch_size, n):
    cfg = make_cfg("gpt")
    mesh = partitioning.make_mesh(mesh_shape)
    with pytest.raises(ConfigError, match=rf"BATCH_SIZE={batch_size} .*data\*fsdp={n}"):
        partitioning.check_batch(batch_size, mesh)
    shapes = {k: (batch_size,) + v.shape[1:] for k, v in make_batch(cfg).items()}
    with pytest.raises(ConfigError, match=rf"BATCH_SIZE={batch_size}"):
        step.build(build_model(cfg), optax.sgd(LR), mesh, shapes)
    partitioning.check_batch(n * 3, mesh)  # a multiple is fine


# --- 4. the rules table ------------------------------------------------------------------------------------


def test_logical_rules():
    spec = partitioning.logical_to_spec
    assert spec(("batch", "length", "embed")) == P(("data", "fsdp"), None, None)
    assert spec(("embed", "mlp")) == P("fsdp", "tensor")
    assert spec(("mlp", "embed")) == P("tensor", "fsdp")
    assert spec(("vocab", "embed")) == P("tensor", "fsdp")
    assert spec(("layers", "embed", "heads", "kv")) == P(None, "fsdp", "tensor", None)
    assert spec(("batch", "length", "heads", "kv")) == P(("data", "fsdp"), None, "tensor", None)
    assert spec(("batch", "length", "vocab")) == P(("data", "fsdp"), None, "tensor")
    assert spec(("relpos_buckets", "heads")) == P(None, "tensor")
    mesh = partitioning.make_mesh((2, 2, 2))
    assert partitioning.batch_sharding(mesh).spec == P(("data", "fsdp"), None)
    assert partitioning.replicated(mesh).is_fully_replicated


def test_kv_heads_fit_to_shape():
    """``kv_heads`` is replicated exactly where its dimension does not divide; other axes are left for
    ``check_divisible`` to reject."""
    mesh = partitioning.make_mesh((1, 2, 4))
    fit = partitioning.fit_axes
    assert fit((32, 2, 16), ("embed", "kv_heads", "kv"), mesh) == ("embed", None, "kv")
    assert fit((32, 1, 16), ("embed", "kv_heads", "kv"), mesh) == ("embed", None, "kv")
    assert fit((32, 8, 16), ("embed", "kv_heads", "kv"), mesh) == ("embed", "kv_heads", "kv")
    assert fit((32, 2, 16), ("embed", "heads", "kv"), mesh) == ("embed", "heads", "kv")
    want = P(("data", "fsdp"), None, "tensor", None)
    assert partitioning.logical_to_spec(("batch", "length", "kv_heads", "kv")) == want
    specs = {"k": P("embed", "kv_heads", "kv"), "q": P("embed", "heads", "kv")}
    shapes = {"k": jax.ShapeDtypeStruct((32, 2, 16), jnp.float32),
              "q": jax.ShapeDtypeStruct((32, 8, 16), jnp.float32)}
    got = partitioning.logical_sharding(specs, mesh, shapes=shapes)
    assert got["k"].spec == P("fsdp", None, None) and got["q"].spec == P("fsdp", "tensor", None)
    partitioning.check_divisible(shapes, got, "parameter")
    # Without shapes the names are taken as they are, and the check names the ragged array.
    with pytest.raises(ConfigError, match=r"parameter k: dimension 1 of size 2 .*'tensor' of size 4"):
        partitioning.check_divisible(shapes, partitioning.logical_sharding(specs, mesh), "parameter")


def test_axis_rules_default_and_overrides():
    assert partitioning.axis_rules() == partitioning.LOGICAL_AXIS_RULES
    assert {a for a, _ in partitioning.LOGICAL_AXIS_RULES} == set(partitioning.LOGICAL_AXES)
    # Overrides replace an axis's entries in place (its precedence), a chain of entries included.
    rules = partitioning.axis_rules(overrides=[("vocab", None), ("mlp", ["fsdp", "tensor"]), ("mlp", "tensor")])
    assert [a for a, _ in rules] == [a for a, _ in partitioning.LOGICAL_AXIS_RULES[:3]] + ["mlp", "mlp"] + [
        a for a, _ in partitioning.LOGICAL_AXIS_RULES[4:]]
    assert dict(rules)["vocab"] is None and rules[3] == ("mlp", ("fsdp", "tensor"))
    spec = functools.partial(partitioning.logical_to_spec, rules=rules)
    assert spec(("embed", "mlp")) == P("fsdp", "tensor")  # embed took fsdp: mlp falls back to tensor
    assert spec(("batch", "length", "mlp")) == P(("data", "fsdp"), None, "tensor")
    assert spec(("mlp",)) == P(("fsdp", "tensor"))
    assert spec(("vocab", "embed")) == P(None, "fsdp")
    # replace: a whole table of the run's own; axes it leaves out are replicated.
    own = partitioning.axis_rules(replace=[("batch", "data"), ("heads", "tensor")])
    assert own == (("batch", "data"), ("heads", "tensor"))
    assert partitioning.logical_to_spec(("batch", "embed", "heads"), own) == P("data", None, "tensor")


def test_axis_rules_from_gin_reach_every_reader():
    gin.parse_config("axis_rules.replace = [('batch', 'data'), ('mlp', 'fsdp'), ('heads', 'tensor')]")
    try:
        assert partitioning.logical_to_spec(("embed", "mlp")) == P(None, "fsdp")
        mesh = partitioning.make_mesh((2, 2, 2))
        assert partitioning.batch_sharding(mesh).spec == P("data", None)
        with pytest.raises(ConfigError, match=r"BATCH_SIZE=3 does not divide over the batch mesh axes data=2"):
            partitioning.check_batch(3, mesh)
        partitioning.check_batch(2, mesh)
    finally:
        gin.clear_config()
    assert partitioning.batch_sharding(partitioning.make_mesh((2, 2, 2))).spec == P(("data", "fsdp"), None)


@pytest.mark.parametrize("kwargs, match", [
    (dict(overrides=[("mpl", "tensor")]),
     r"axis_rules.overrides: rule \('mpl', 'tensor'\) names unknown logical axis 'mpl'"),
    (dict(overrides=[("mlp", "model")]), r"unknown mesh axis 'model'; mesh axes: data, fsdp, tensor"),
    (dict(overrides=[("batch", ("data", "data"))]),
     r"rule \('batch', \('data', 'data'\)\) uses mesh axis 'data' twice"),
    (dict(replace=[("embed", "fsdp"), ("heads",)]), r"axis_rules.replace: rule \('heads',\) is not a"),
    (dict(replace="embed"), r"axis_rules.replace must be a sequence"),
    (dict(overrides=[("mlp", 3)]), r"mesh axes must be None, a name or names"),
])
def test_axis_rules_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match) as e:
        partitioning.axis_rules(**kwargs)
    assert "\n" not in str(e.value).split("\n  In call to configurable")[0]  # one line (gin appends its note)


def test_global_batch_is_sharded():
    mesh = partitioning.make_mesh((2, 2, 2))
    local = {"decoder_input_tokens": np.arange(BATCH * T, dtype=np.int32).reshape(BATCH, T)}
    g = partitioning.global_batch(local, mesh)["decoder_input_tokens"]
    assert g.shape == (BATCH, T)
    assert g.sharding.spec == P(("data", "fsdp"), None)
    assert {s.data.shape for s in g.addressable_shards} == {(BATCH // 4, T)}
    np.testing.assert_array_equal(np.asarray(g), local["decoder_input_tokens"])


# --- 5. constraints reach the compiled program ------------------------------------------------------------


def lowered_text(layout: str) -> str:
    cfg = make_cfg(layout)
    batch = make_batch(cfg)
    mesh = partitioning.make_mesh((2, 2, 2))
    fns = step.build(build_model(cfg), optax.sgd(LR), mesh, batch_shapes(batch))
    abstract_batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=fns.batch_shardings[k])
                      for k, v in batch.items()}
    with jax.set_mesh(mesh), nn.logical_axis_rules(partitioning.axis_rules()):
        return fns.train.jitted.lower(fns.abstract_state, abstract_batch).as_text()


def count_constraints(text: str) -> int:
    return text.count("sdy.sharding_constraint") + text.count("@Sharding")


@pytest.mark.parametrize("layout", ["llama", "t5"])
def test_constraints_in_lowered_step(layout, monkeypatch):
    text = lowered_text(layout)
    n = count_constraints(text)
    cfg = make_cfg(layout)
    layers_total = cfg.num_layers + cfg.num_encoder_stack_layers
    # At least: per layer q, k, v, attention out, mlp hidden, block output (forward pass alone).
    assert n >= 6 * layers_total, n
    # Shardy spells each constraint out: q/k/v/attention output as (batch -> data+fsdp, length,
    # heads -> tensor, kv), the MLP hidden as (batch, length, mlp -> tensor), the residual stream
    # as (batch, length, embed replicated since fsdp is taken by batch).
    assert text.count('<@mesh, [{"data", "fsdp"}, {}, {"tensor"}, {}]>') >= 4 * layers_total
    assert text.count('<@mesh, [{"data", "fsdp"}, {}, {"tensor"}]>') >= layers_total
    assert text.count('<@mesh, [{"data", "fsdp"}, {}, {}]>') >= layers_total

    # The same step with `constrain` made a no-op has none of them: the count above comes from it.
    identity = lambda x, axes: x  # noqa: E731
    for mod in (layers, blocks, decoder, encdec):
        monkeypatch.setattr(mod, "constrain", identity)
    assert count_constraints(lowered_text(layout)) == 0
