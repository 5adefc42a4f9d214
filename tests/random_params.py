"""Test parameters: random ones drawn on the host (logits O(1) and varied greedy outputs, so cached and
uncached paths, or sharded and single-device steps, cannot agree by accident: an init-scale model mostly
repeats one token), and looped parameters restacked for scanned layers."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from xlt.models.api import model_api


def random_params(cfg, model: nn.Module, seed: int):
    abstract = nn.meta.unbox(model_api(model).abstract_params())
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = jax.tree_util.keystr(path, simple=True, separator="/")
        shape = leaf.shape
        if name.endswith("scale"):
            x = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.endswith("bias"):
            x = 0.1 * rng.standard_normal(shape)
        elif name.endswith("rel_embedding"):
            x = 0.5 * rng.standard_normal(shape)
        elif name.endswith("embedding"):
            x = (0.5 if "position" in name else 0.3) * rng.standard_normal(shape)
        else:
            fan_in = shape[0] * shape[1] if name.endswith("out/kernel") else shape[0]
            x = rng.standard_normal(shape) / np.sqrt(fan_in)
            if name.endswith("query/kernel") and not cfg.scale_attention:
                x = x / np.sqrt(cfg.head_dim)
            if "lm_head" in name or name.endswith(("out/kernel", "wo/kernel")):
                x = 3.0 * x  # blocks outweigh the embedding (no copying) and logits are O(1)
        return jnp.asarray(x, jnp.float32)

    return jax.tree_util.tree_map_with_path(draw, abstract)


def stack_layers(tree):
    """Looped params (layers_0, layers_1, ...) -> scanned params (layers, stacked on axis 0)."""
    if not isinstance(tree, dict):
        return tree
    out = {k: stack_layers(v) for k, v in tree.items() if not k.startswith("layers_")}
    n = sum(k.startswith("layers_") for k in tree)
    if n:
        out["layers"] = jax.tree.map(lambda *xs: jnp.stack(xs), *[tree[f"layers_{i}"] for i in range(n)])
    return out
