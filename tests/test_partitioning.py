"""Partitioning tests: a sharded train step computes what the single-device step computes, gradient
accumulation changes nothing, bad meshes fail with one clear error, the rules table places axes as
documented, and the logical constraints really reach the compiled program."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import PartitionSpec as P

from xlt import partitioning, step
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
}
MESHES = [(8, 1, 1), (2, 2, 2), (1, 2, 4)]


def make_cfg(layout: str, **overrides) -> ModelConfig:
    return ModelConfig(**{**BASE, **LAYOUT_KW[layout], **overrides})


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


def mlp_kernel(params):
    stack = params["decoder"]["stack"] if "stack" in params["decoder"] else params["decoder"]
    mlp = stack["layers_0"]["mlp"]
    return mlp["wi_0" if "wi_0" in mlp else "wi"]["kernel"]


def to_host(tree):
    return jax.tree.map(lambda x: np.asarray(jax.device_get(x)), tree)


def run_step(layout: str, mesh_shape, *, grad_accum_steps: int = 1, tx=None, **overrides):
    """Build, init and run one train step; return (initial params, state after, metrics, fns, state0 shardings)."""
    cfg = make_cfg(layout, **overrides)
    batch = make_batch(cfg)
    n = int(np.prod(mesh_shape))
    mesh = partitioning.make_mesh(mesh_shape, devices=jax.devices()[:n])
    fns = step.build(build_model(cfg), tx or optax.sgd(LR), mesh, batch_shapes(batch),
                     grad_accum_steps=grad_accum_steps)
    state = fns.init(jax.random.key(0))
    kernel_sharding = mlp_kernel(state.params).sharding
    init_params = to_host(state.params)
    state, metrics = fns.train(state, partitioning.global_batch(batch, mesh))
    return dict(init=init_params, params=to_host(state.params), metrics=step.to_host(metrics),
                kernel_sharding=kernel_sharding, mesh=mesh, fns=fns, cfg=cfg, batch=batch, state=state)


@functools.cache
def reference(layout: str):
    """The single-device (1, 1, 1) step every sharded mesh must reproduce."""
    return run_step(layout, (1, 1, 1))


def assert_trees_close(actual, expected, rtol, atol, what):
    flat_a = jax.tree_util.tree_flatten_with_path(actual)[0]
    flat_e = jax.tree.leaves(expected)
    assert jax.tree.structure(actual) == jax.tree.structure(expected)
    for (path, a), e in zip(flat_a, flat_e):
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=f"{what} {jax.tree_util.keystr(path)}")


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
    assert sharding.is_fully_replicated == (fsdp == tensor == 1)
    assert ref["kernel_sharding"].is_fully_replicated
    batch_spec = got["fns"].batch_shardings["decoder_input_tokens"].spec
    assert batch_spec == P(("data", "fsdp"), None)

    # Initialisation does not depend on the mesh.
    assert_trees_close(got["init"], ref["init"], rtol=0, atol=0, what="init")

    # Loss, metrics, gradient norm and the SGD update (-LR * grad) match the single-device step.
    m, rm = got["metrics"], ref["metrics"]
    assert m["tokens"] == rm["tokens"] == float(ref["batch"]["decoder_loss_weights"].sum())
    assert 3.0 < rm["loss"] < 10.0  # ~ log(384) at initialisation: a real loss
    assert rm["grad_norm"] > 1e-3
    for key in ("loss", "cross_entropy", "accuracy", "grad_norm"):
        np.testing.assert_allclose(m[key], rm[key], rtol=1e-5, atol=1e-6, err_msg=key)
    grads = jax.tree.map(lambda new, old: (old - new) / LR, got["params"], got["init"])
    ref_grads = jax.tree.map(lambda new, old: (old - new) / LR, ref["params"], ref["init"])
    assert_trees_close(grads, ref_grads, rtol=1e-5, atol=1e-6, what="grad")
    assert_trees_close(got["params"], ref["params"], rtol=1e-5, atol=1e-6, what="updated param")


@pytest.mark.parametrize("layout", list(LAYOUT_KW))
def test_loss_fn_value_and_grad_sharded(layout):
    """xlt.step.loss_fn under value_and_grad: params sharded by their logical axes on (2, 2, 2)."""
    cfg = make_cfg(layout)
    model = build_model(cfg)
    batch = make_batch(cfg, seed=1)
    inputs = {k: v for k, v in batch.items() if not k.startswith(("decoder_target", "decoder_loss"))}
    boxed = jax.eval_shape(lambda r: model.init(r, {k: jnp.zeros((1, T), jnp.int32) for k in inputs}),
                           jax.random.key(0))["params"]
    params = to_host(jax.jit(lambda r: nn.meta.unbox(model.init(
        r, {k: jnp.zeros((1, T), jnp.int32) for k in inputs})["params"]))(jax.random.key(0)))
    f = jax.value_and_grad(lambda p, b: step.loss_fn(model, p, b)[0])

    mesh1 = partitioning.make_mesh((1, 1, 1), devices=jax.devices()[:1])
    mesh8 = partitioning.make_mesh((2, 2, 2))
    results = []
    for mesh in (mesh1, mesh8):
        shardings = partitioning.logical_sharding(nn.get_partition_spec(boxed), mesh)
        p = jax.device_put(params, shardings)
        with jax.set_mesh(mesh), nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES):
            loss, grads = jax.jit(f)(p, partitioning.global_batch(batch, mesh))
        results.append((float(loss), to_host(grads)))
    (l1, g1), (l8, g8) = results
    np.testing.assert_allclose(l8, l1, rtol=1e-5)
    assert_trees_close(g8, g1, rtol=1e-5, atol=1e-6, what="grad")


# --- 2. gradient accumulation -------------------------------------------------------------------------


@pytest.mark.parametrize("layout", list(LAYOUT_KW))
def test_grad_accumulation(layout):
    ref = run_step(layout, (2, 1, 1), grad_accum_steps=1)
    for k in (2, 4):
        got = run_step(layout, (2, 1, 1), grad_accum_steps=k)
        for key in ("loss", "cross_entropy", "accuracy", "tokens", "grad_norm"):
            np.testing.assert_allclose(got["metrics"][key], ref["metrics"][key], rtol=1e-5, atol=1e-6,
                                       err_msg=f"accum {k}: {key}")
        assert_trees_close(got["params"], ref["params"], rtol=1e-5, atol=1e-5, what=f"accum {k}")


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
    cfg = make_cfg("llama", num_kv_heads=2)
    shapes = batch_shapes(make_batch(cfg))
    with pytest.raises(ConfigError) as e:
        step.build(build_model(cfg), optax.sgd(LR), partitioning.make_mesh((1, 2, 4)), shapes)
    msg = str(e.value)
    assert "self_attention/key/kernel" in msg, msg
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
    with jax.set_mesh(mesh), nn.logical_axis_rules(partitioning.LOGICAL_AXIS_RULES):
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
    # The MLP hidden activation is pinned to (batch -> data+fsdp, length, mlp -> tensor).
    assert ('[{"data", "fsdp"}, {}, {"tensor"}]' in text) or ("devices=[4,1,2]" in text)

    # The same step with `constrain` made a no-op has none of them: the count above comes from it.
    identity = lambda x, axes: x  # noqa: E731
    for mod in (layers, blocks, decoder, encdec):
        monkeypatch.setattr(mod, "constrain", identity)
    assert count_constraints(lowered_text(layout)) == 0
