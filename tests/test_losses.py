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
