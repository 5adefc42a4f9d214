"""A pre-norm transformer block and a stack of them (looped, or scanned with a remat policy)."""

from __future__ import annotations

import flax.linen as nn
import jax

from xlt.models.config import ModelConfig
from xlt.models.layers import Attention, Mlp, constrain, make_norm

Array = jax.Array

REMAT_POLICIES = {
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots": jax.checkpoint_policies.checkpoint_dots,
    "dots_no_batch": jax.checkpoint_policies.checkpoint_dots_with_no_batch_dims,
}


class Block(nn.Module):
    """x + SelfAttn(Norm(x)) [+ CrossAttn(Norm(x), encoded)] + Mlp(Norm(x))."""

    cfg: ModelConfig
    causal: bool
    cross: bool = False
    deterministic: bool = True
    scanned: bool = False  # return (carry, None) as nn.scan expects

    @nn.compact
    def __call__(self, x: Array, mask: Array, bias: Array | None, positions: Array,
                 encoded: Array | None = None, cross_mask: Array | None = None):
        cfg = self.cfg
        drop = nn.Dropout(cfg.dropout_rate)
        h = make_norm(cfg, "pre_attention_norm")(x)
        h = Attention(cfg, causal=self.causal, rope=cfg.position == "rope", name="self_attention")(
            h, h, mask, bias, positions, positions, deterministic=self.deterministic)
        x = x + drop(h, deterministic=self.deterministic)
        if self.cross:
            h = make_norm(cfg, "pre_cross_attention_norm")(x)
            h = Attention(cfg, causal=False, name="cross_attention")(
                h, encoded, cross_mask, deterministic=self.deterministic)
            x = x + drop(h, deterministic=self.deterministic)
        h = make_norm(cfg, "pre_mlp_norm")(x)
        h = Mlp(cfg, name="mlp")(h, deterministic=self.deterministic)
        x = constrain(x + drop(h, deterministic=self.deterministic), ("batch", "length", "embed"))
        return (x, None) if self.scanned else x


class Stack(nn.Module):
    """``num_layers`` Blocks; with ``cfg.scan_layers`` their parameters gain a leading ``layers`` axis."""

    cfg: ModelConfig
    num_layers: int
    causal: bool
    cross: bool = False
    deterministic: bool = True

    @nn.compact
    def __call__(self, x: Array, mask: Array, bias: Array | None, positions: Array,
                 encoded: Array | None = None, cross_mask: Array | None = None) -> Array:
        cfg = self.cfg
        block = Block
        if cfg.remat_policy != "none":
            block = nn.remat(Block, policy=REMAT_POLICIES[cfg.remat_policy], prevent_cse=not cfg.scan_layers)
        kwargs = dict(causal=self.causal, cross=self.cross, deterministic=self.deterministic)
        if cfg.scan_layers:
            scanned = nn.scan(block, variable_axes={"params": 0}, split_rngs={"params": True, "dropout": True},
                              in_axes=nn.broadcast, length=self.num_layers,
                              metadata_params={nn.PARTITION_NAME: "layers"})
            x, _ = scanned(cfg, scanned=True, name="layers", **kwargs)(x, mask, bias, positions, encoded, cross_mask)
            return x
        for i in range(self.num_layers):
            x = block(cfg, name=f"layers_{i}", **kwargs)(x, mask, bias, positions, encoded, cross_mask)
        return x
