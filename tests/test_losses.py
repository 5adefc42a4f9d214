"""xlt.losses: the chunked cross-entropy equals the plain one (values, metrics and gradients) on CPU."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xlt import losses
from xlt.errors import ConfigError


def make(b=2, t=13, d=16, v=50, seed=0):
    k = jax.random.split(jax.random.key(seed), 4)
    hidden = jax.random.normal(k[0], (b, t, d))
    table = jax.random.normal(k[1], (v, d)) * 0.3
    targets = jax.random.randint(k[2], (b, t), 0, v - 5)
    weights = (jax.random.uniform(k[3], (b, t)) > 0.3).astype(jnp.float32)
    return hidden, table, targets, weights


@pytest.mark.parametrize("layout", ["vd", "dv"])
@pytest.mark.parametrize("chunk_len", [1, 4, 13, 64])
def test_chunked_equals_plain(layout, chunk_len):
    hidden, table, targets, weights = make()
    kernel = table if layout == "vd" else table.T
    spec = "btd,vd->btv" if layout == "vd" else "btd,dv->btv"

    def plain(h, k):
        return losses.cross_entropy(jnp.einsum(spec, h, k), targets, weights, z_loss=1e-3, unpadded_vocab_size=45)

    def chunked(h, k):
        return losses.chunked_cross_entropy(h, k, targets, weights, chunk_len=chunk_len, kernel_layout=layout,
                                            z_loss=1e-3, unpadded_vocab_size=45)

    (want, want_m), want_g = jax.value_and_grad(plain, argnums=(0, 1), has_aux=True)(hidden, kernel)
    (got, got_m), got_g = jax.jit(jax.value_and_grad(chunked, argnums=(0, 1), has_aux=True))(hidden, kernel)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    for key in want_m:
        np.testing.assert_allclose(got_m[key], want_m[key], rtol=1e-5, atol=1e-6)
    for g, w in zip(got_g, want_g):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-6)


def test_default_weights_and_matches_step_loss():
    """Without weights, positions with target 0 carry no loss, as in xlt.step.loss_fn."""
    hidden, table, targets, _ = make(seed=1)
    targets = targets.at[:, -3:].set(0)
    want, _ = losses.cross_entropy(jnp.einsum("btd,vd->btv", hidden, table), targets)
    got, metrics = losses.chunked_cross_entropy(hidden, table, targets, chunk_len=5)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    np.testing.assert_allclose(metrics["z_loss"], 0.0)


def test_bfloat16_hidden_close_to_fp32():
    hidden, table, targets, weights = make(seed=2)
    want, _ = losses.cross_entropy(jnp.einsum("btd,vd->btv", hidden, table), targets, weights)
    got, _ = losses.chunked_cross_entropy(hidden.astype(jnp.bfloat16), table.astype(jnp.bfloat16), targets, weights,
                                          chunk_len=4)
    np.testing.assert_allclose(got, want, rtol=2e-2)
    grads = jax.grad(lambda h: losses.chunked_cross_entropy(h, table.astype(jnp.bfloat16), targets, weights)[0])(
        hidden.astype(jnp.bfloat16))
    assert grads.dtype == jnp.bfloat16 and bool(jnp.all(jnp.isfinite(grads.astype(jnp.float32))))


def test_bad_shapes_are_config_errors():
    hidden, table, targets, _ = make()
    with pytest.raises(ConfigError, match="kernel_layout"):
        losses.chunked_cross_entropy(hidden, table, targets, kernel_layout="x")
    with pytest.raises(ConfigError, match="does not match d_model"):
        losses.chunked_cross_entropy(hidden, table.T, targets)
    with pytest.raises(ConfigError, match="chunk_len"):
        losses.chunked_cross_entropy(hidden, table, targets, chunk_len=0)


# --- The train step: ModelConfig.loss_chunk_len (chunked from the model's hidden states) == the plain loss -----

import gin  # noqa: E402
import optax  # noqa: E402

from xlt import cli, partitioning, step  # noqa: E402
from xlt.models import ModelConfig, build_model  # noqa: E402

B, T = 2, 32
CHUNK = 7  # does not divide T: the last chunk is padded with zero-weight positions


def tiny_config(layout: str, **overrides) -> ModelConfig:
    """gin/models/{layout}_tiny.gin with overrides."""
    import xlt.train  # noqa: F401  (registers ``train``, which the model files bind)

    cli.load_gin([f"models/{layout}_tiny.gin"], [])
    try:
        return ModelConfig().replace(**overrides)
    finally:
        gin.clear_config()


def packed_step_batch(cfg: ModelConfig, seed: int = 0) -> dict[str, jax.Array]:
    """Two packed segments per row (then padding), random loss weights (some 0) on the decoder side."""
    rng = np.random.default_rng(seed)

    def packed(splits):
        seg, pos = np.zeros((B, T), np.int32), np.zeros((B, T), np.int32)
        for r, lens in enumerate(splits):
            start = 0
            for s, n in enumerate(lens):
                seg[r, start:start + n], pos[r, start:start + n] = s + 1, np.arange(n)
                start += n
        return seg, pos

    vocab = cfg.unpadded_vocab_size or cfg.vocab_size
    seg, pos = packed(((12, 17), (20, 12)))
    weights = (rng.uniform(size=(B, T)) > 0.25) * (seg > 0)
    batch = {"decoder_input_tokens": rng.integers(1, vocab, (B, T)) * (seg > 0),
             "decoder_target_tokens": rng.integers(1, vocab, (B, T)) * (seg > 0),
             "decoder_segment_ids": seg, "decoder_positions": pos, "decoder_loss_weights": weights}
    if cfg.encoder_decoder:
        eseg, epos = packed(((14, 18), (9, 20)))
        batch.update(encoder_input_tokens=rng.integers(1, vocab, (B, T)) * (eseg > 0), encoder_segment_ids=eseg,
                     encoder_positions=epos)
    return {k: jnp.asarray(v, jnp.float32 if k == "decoder_loss_weights" else jnp.int32) for k, v in batch.items()}


STEP_CASES = {
    "gpt": ("gpt", {}),  # tied head ([vocab, d_model] embedding table)
    "gpt_padded_vocab": ("gpt", dict(unpadded_vocab_size=300)),
    "llama": ("llama", {}),  # untied lm_head [d_model, vocab], grouped-query attention
    "t5": ("t5", {}),
    "t5_original": ("t5", dict(scale_decoder_output=True, unpadded_vocab_size=300)),
    "t5_tied": ("t5", dict(tie_embeddings=True)),
}


def close_trees(got, want) -> None:
    """fp32 agreement up to summation order, leaf by leaf: relative 1e-5, absolute 1e-5 of the largest entry of
    the whole tree (gradients that are zero in exact arithmetic, e.g. the key bias's, are rounding noise)."""
    assert jax.tree.structure(got) == jax.tree.structure(want)
    scale = max(float(np.max(np.abs(np.asarray(w)))) for w in jax.tree.leaves(want))
    for (path, w), g in zip(jax.tree_util.tree_flatten_with_path(want)[0], jax.tree.leaves(got)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-5 * scale,
                                   err_msg=jax.tree_util.keystr(path))


def value_shapes(jaxpr) -> set[tuple[int, ...]]:
    """Shapes of every value a jaxpr computes, nested jaxprs (scan bodies, custom VJPs, pjit) included."""
    out = set()
    for eqn in jaxpr.eqns:
        out.update(tuple(v.aval.shape) for v in eqn.outvars if hasattr(v.aval, "shape"))
        for param in eqn.params.values():
            for sub in (param if isinstance(param, (tuple, list)) else (param,)):
                inner = getattr(sub, "jaxpr", None)
                if inner is not None:
                    out |= value_shapes(inner if hasattr(inner, "eqns") else inner.jaxpr)
    return out


def init_params(cfg: ModelConfig, batch):
    inputs = {k: v for k, v in batch.items() if not k.startswith(("decoder_target", "decoder_loss"))}
    return jax.jit(lambda r: flax_unbox(build_model(cfg).init(r, inputs)["params"]))(jax.random.key(0))


def flax_unbox(tree):
    import flax.linen as nn

    return nn.meta.unbox(tree)


@pytest.mark.parametrize("case", list(STEP_CASES))
def test_chunked_loss_fn_equals_plain(case):
    """xlt.step.loss_fn with loss_chunk_len (no [batch, length, vocab] logits) vs without: same loss, metrics and
    gradients (fp32, z-loss on, packed rows with loss weights)."""
    layout, overrides = STEP_CASES[case]
    cfg = tiny_config(layout, **overrides)
    batch = packed_step_batch(cfg)
    params = init_params(cfg, batch)
    results, shapes = {}, {}
    for chunk in (None, CHUNK):
        model = build_model(cfg.replace(loss_chunk_len=chunk))
        f = jax.value_and_grad(lambda p, m=model: step.loss_fn(m, p, batch, z_loss=1e-3), has_aux=True)
        results[chunk] = jax.jit(f)(params)
        shapes[chunk] = value_shapes(jax.make_jaxpr(f)(params).jaxpr)
    full_logits = (B, T, cfg.vocab_size)
    assert full_logits in shapes[None]
    assert full_logits not in shapes[CHUNK] and (B, CHUNK, cfg.vocab_size) in shapes[CHUNK]  # chunks only
    (want, want_m), want_g = results[None]
    (got, got_m), got_g = results[CHUNK]
    np.testing.assert_allclose(float(got), float(want), rtol=1e-6)
    for key in ("cross_entropy", "z_loss", "correct"):
        np.testing.assert_allclose(float(got_m[key]), float(want_m[key]), rtol=1e-6, err_msg=key)
    close_trees(got_g, want_g)
    head = "token_embedder" if cfg.tie_embeddings else ("decoder" if cfg.encoder_decoder else "lm_head")
    assert float(jnp.max(jnp.abs(jax.tree.leaves(got_g[head])[0]))) > 1e-3  # the head's gradient is not zero


def test_chunked_loss_fn_with_dropout_equals_plain():
    """The same dropout rng draws the same masks in both forwards (the head sits after the last dropout)."""
    cfg = tiny_config("gpt", dropout_rate=0.2)
    batch = packed_step_batch(cfg, seed=1)
    params = init_params(cfg, batch)
    rng = jax.random.key(5)
    got, want = (jax.jit(jax.value_and_grad(
        lambda p, m=build_model(cfg.replace(loss_chunk_len=c)): step.loss_fn(m, p, batch, rng)[0]))(params)
        for c in (CHUNK, None))
    no_dropout = step.loss_fn(build_model(cfg), params, batch)[0]
    assert abs(float(want[0]) - float(no_dropout)) > 1e-3  # dropout is active
    np.testing.assert_allclose(float(got[0]), float(want[0]), rtol=1e-6)
    close_trees(got[1], want[1])


@pytest.mark.parametrize("layout", ["gpt", "llama", "t5"])
def test_chunked_train_step_equals_plain(layout, devices):
    """xlt.step.build on a (data 2, tensor 2) mesh (vocabulary and heads sharded): one SGD step with the chunked
    loss gives the metrics and updated parameters of the plain one."""
    cfg = tiny_config(layout)
    batch = packed_step_batch(cfg, seed=2)
    shapes = {k: v.shape for k, v in batch.items()}
    mesh = partitioning.make_mesh((2, 1, 2), devices=devices[:4])
    out = {}
    for chunk in (None, CHUNK):
        fns = step.build(build_model(cfg.replace(loss_chunk_len=chunk)), optax.sgd(0.5), mesh, shapes, z_loss=1e-4)
        state = fns.init(jax.random.key(0))
        before = jax.device_get(state.params)  # the step donates the state
        arrays = partitioning.global_batch({k: np.asarray(v) for k, v in batch.items()}, mesh)
        new_state, metrics = fns.train(state, arrays)
        out[chunk] = (before, jax.device_get(new_state.params), step.to_host(metrics))
    (p0, want_p, want_m), (p0_c, got_p, got_m) = out[None], out[CHUNK]
    for a, b in zip(jax.tree.leaves(p0), jax.tree.leaves(p0_c)):
        np.testing.assert_array_equal(a, b)  # same initialisation
    assert set(got_m) == set(want_m)
    for key in want_m:
        np.testing.assert_allclose(got_m[key], want_m[key], rtol=1e-5, atol=1e-7, err_msg=key)
    assert want_m["grad_norm"] > 0
    updates = lambda new: jax.tree.map(lambda a, b: np.asarray(a, np.float64) - b, new, p0)  # -0.5 · gradient
    close_trees(updates(got_p), updates(want_p))


def test_loss_chunk_len_validation():
    with pytest.raises(ConfigError, match="loss_chunk_len"):
        ModelConfig(loss_chunk_len=0)
    assert ModelConfig(loss_chunk_len=256).loss_chunk_len == 256


def test_model_output_hidden_and_head():
    """output='hidden' gives the states the head multiplies: logits = hidden · kernel in the head's layout
    (tied [vocab, d_model], untied [d_model, vocab]), padding rows masked only in the logits."""
    for layout, overrides in (("gpt", dict(unpadded_vocab_size=300)), ("t5", dict(scale_decoder_output=True))):
        cfg = tiny_config(layout, **overrides)
        batch = packed_step_batch(cfg)
        params = init_params(cfg, batch)
        model = build_model(cfg)
        logits = model.apply({"params": params}, batch)
        hidden, kernel = model.apply({"params": params}, batch, output="hidden")
        assert hidden.shape == (B, T, cfg.d_model)
        spec = "btd,vd->btv" if cfg.tie_embeddings else "btd,dv->btv"
        want = losses.mask_vocab(jnp.einsum(spec, hidden, kernel), cfg.unpadded_vocab_size)
        np.testing.assert_allclose(np.asarray(logits), np.asarray(want), rtol=1e-5, atol=1e-5)
        with pytest.raises(ConfigError, match="output"):
            model.apply({"params": params}, batch, output="probs")
