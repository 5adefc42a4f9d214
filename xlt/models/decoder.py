"""Decoder-only language model: the ``gpt`` (PolyLM / GPT-2), ``llama`` and ``bloom`` layouts.

Inputs follow seqio's decoder feature converters: ``decoder_input_tokens`` and, when packed,
``decoder_segment_ids`` / ``decoder_positions``; ``decoder_causal_attention`` marks a prefix-LM's
bidirectional inputs.

``cache_mode`` selects cached decoding (see ``xlt.models.layers``): "extend" writes the tokens into the
"cache" collection at their ``decoder_positions`` (required; segment id 0 marks padding that is not
written; ``decoder_causal_attention`` makes the chunk's prefix bidirectional, so prefill a prefix-LM
prompt in one call) and "shared" scores groups of rows, causally, against a prompt cache without
writing it. The parameters are the same in every mode.

Positions: a learned table (gpt), rotary (llama, applied inside attention), ALiBi (bloom: a per-head bias by key
position, ``xlt.models.layers.alibi_bias``, from ``decoder_positions`` in training and from the cache's slot
positions in cached calls) or T5's relative bias; ``embedding_norm`` (bloom) normalises the token embeddings
before the first block.

``output="logits"`` (the default) returns the [batch, length, vocab] logits; ``output="hidden"`` returns
``(hidden, kernel)``, the final hidden states (after the final norm and its dropout) and the LM-head kernel,
for ``xlt.losses.chunked_cross_entropy`` (see ``xlt.models.layers.LMHead``).
"""

from __future__ import annotations

from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from xlt.models.blocks import Stack
from xlt.models.config import ModelConfig
from xlt.models.layers import (Embed, LMHead, SegmentMask, alibi_bias, cache_context, cached_positions, constrain,
                               make_norm, relative_bias)

Array = jax.Array


def segments_and_positions(tokens: Array, segments: Array | None, positions: Array | None):
    """Unpacked inputs are one segment each, with positions 0..T-1."""
    if segments is None:
        segments = jnp.ones_like(tokens, dtype=jnp.int32)
    if positions is None:
        positions = jnp.broadcast_to(jnp.arange(tokens.shape[1], dtype=jnp.int32), tokens.shape)
    return segments, positions


class Decoder(nn.Module):
    cfg: ModelConfig

    @nn.compact
    def __call__(self, batch: Mapping[str, Array], deterministic: bool = True,
                 cache_mode: str | None = None, output: str = "logits") -> Array | tuple[Array, Array]:
        cfg = self.cfg
        tokens = batch["decoder_input_tokens"]
        if cache_mode is None:
            segments, positions = segments_and_positions(
                tokens, batch.get("decoder_segment_ids"), batch.get("decoder_positions"))
        else:
            segments, positions = batch.get("decoder_segment_ids"), cached_positions(batch)
        embedder = Embed(cfg.vocab_size, cfg.d_model, dtype=cfg.dtype, param_dtype=cfg.param_dtype,
                         name="token_embedder")
        x = embedder(tokens)
        if cfg.position == "learned":
            x = x + Embed(cfg.max_len, cfg.d_model, axes=("length", "embed"), dtype=cfg.dtype,
                          param_dtype=cfg.param_dtype, name="position_embedder")(positions)
        if cfg.embedding_norm:  # BLOOM's word_embeddings_layernorm
            x = make_norm(cfg, "embedding_norm")(x)
        x = nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
        x = constrain(x, ("batch", "length", "embed"))
        if cache_mode is None:
            mask = SegmentMask(segments, segments, batch.get("decoder_causal_attention"), causal=True)
            bias = relative_bias(cfg, bidirectional=False, length=tokens.shape[1])
            if bias is None:
                bias = alibi_bias(cfg, positions)
            cache_index = None
        else:
            mask, bias, cache_index = cache_context(self, cfg, cache_mode, positions, segments,
                                                    batch.get("decoder_causal_attention"))
        x = Stack(cfg, cfg.num_layers, causal=True, deterministic=deterministic, cache_mode=cache_mode,
                  name="decoder")(x, mask, bias, positions, cache_index=cache_index)
        x = make_norm(cfg, "final_norm")(x)
        x = nn.Dropout(cfg.dropout_rate)(x, deterministic=deterministic)
        return LMHead(cfg, embedder if cfg.tie_embeddings else None, name="lm_head")(x, output)
