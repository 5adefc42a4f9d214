"""A pre-norm transformer block and a stack of them (looped, or scanned with a remat policy).

A forward applied with the HIDDEN_STATES collection mutable records the stack's input and every block's
output (stacked over layers when scanned, like the parameters); see ``xlt.models.layers``' capture collections.

With a ``cache_mode`` (cached decoding, see ``xlt.models.layers``) the stack is never rematerialised
(inference has no backward pass) and, when scanned, its "cache" collection is stacked over layers like
its parameters; parameter names and shapes are those of the training stack.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from xlt.models.config import ModelConfig
from xlt.models.layers import ATTENTION_WEIGHTS, HIDDEN_STATES, Attention, Mlp, capturing, constrain, make_norm

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
    cache_mode: str | None = None

    @nn.compact
    def __call__(self, x: Array, mask: Array, bias: Array | None, positions: Array,
                 encoded: Array | None = None, cross_mask: Array | None = None,
                 cache_index: Array | None = None):
        cfg = self.cfg
        drop = nn.Dropout(cfg.dropout_rate)
        # "shared" in an encoder-decoder groups rows over the encoded input; their own tokens take the
        # ordinary (uncached) self-attention.
        self_mode = None if (self.cross and self.cache_mode == "shared") else self.cache_mode
        h = make_norm(cfg, "pre_attention_norm")(x)
        h = Attention(cfg, causal=self.causal, rope=cfg.position == "rope", cache_mode=self_mode,
                      name="self_attention")(
            h, h, mask, bias, positions, positions, deterministic=self.deterministic, cache_index=cache_index)
        x = x + drop(h, deterministic=self.deterministic)
        if self.cross:
            h = make_norm(cfg, "pre_cross_attention_norm")(x)
            h = Attention(cfg, causal=False, cross=True, cache_mode=self.cache_mode, name="cross_attention")(
                h, encoded, cross_mask, deterministic=self.deterministic)
            x = x + drop(h, deterministic=self.deterministic)
        h = make_norm(cfg, "pre_mlp_norm")(x)
        h = Mlp(cfg, name="mlp")(h, deterministic=self.deterministic)
        x = constrain(x + drop(h, deterministic=self.deterministic), ("batch", "length", "embed"))
        if capturing(self, HIDDEN_STATES):
            self.sow(HIDDEN_STATES, "output", x)
        return (x, None) if self.scanned else x


class Stack(nn.Module):
    """``num_layers`` Blocks; with ``cfg.scan_layers`` their parameters gain a leading ``layers`` axis."""

    cfg: ModelConfig
    num_layers: int
    causal: bool
    cross: bool = False
    deterministic: bool = True
    cache_mode: str | None = None

    @nn.compact
    def __call__(self, x: Array, mask: Array, bias: Array | None, positions: Array,
                 encoded: Array | None = None, cross_mask: Array | None = None,
                 cache_index: Array | None = None) -> Array:
        cfg = self.cfg
        block = Block
        if cfg.remat_policy != "none" and self.cache_mode is None:
            block = nn.remat(Block, policy=REMAT_POLICIES[cfg.remat_policy], prevent_cse=not cfg.scan_layers)
        kwargs = dict(causal=self.causal, cross=self.cross, deterministic=self.deterministic)
        if capturing(self, HIDDEN_STATES):
            self.sow(HIDDEN_STATES, "input", x)  # the residual stream entering the first block
        rest = (mask, bias, positions, encoded, cross_mask)  # the same for every layer
        if self.cache_mode is not None:
            kwargs["cache_mode"] = self.cache_mode
            rest = rest + (cache_index,)
        if cfg.scan_layers:
            scanned = nn.scan(block, variable_axes={"params": 0, "cache": 0, HIDDEN_STATES: 0, ATTENTION_WEIGHTS: 0},
                              split_rngs={"params": True, "dropout": True},
                              in_axes=nn.broadcast, length=self.num_layers,
                              metadata_params={nn.PARTITION_NAME: "layers"})
            x, _ = scanned(cfg, scanned=True, name="layers", **kwargs)(x, *rest)
            return x
        for i in range(self.num_layers):
            x = block(cfg, name=f"layers_{i}", **kwargs)(x, *rest)
        return x
