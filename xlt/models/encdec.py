"""Encoder-decoder: the ``t5`` layout (T5 v1.1 / mT5).

Inputs follow seqio's EncDecFeatureConverter: ``encoder_input_tokens``, ``decoder_input_tokens`` and,
when packed, the segment ids and positions of both. The token embedding is shared by both stacks;
each stack has its own relative position bias, computed once and shared by its layers.

``decode(..., cache_mode=...)`` is cached decoding (see ``xlt.models.layers``). "extend": the decoder
tokens are written into the self-attention cache at their ``decoder_positions``; the cross-attention
keys and values are projected from ``encoded`` on the call that passes it (the first) and read from the
cache afterwards, when ``encoded`` may be None; ``encoder_input_tokens`` or ``encoder_segment_ids``
still give the encoder padding mask. "shared": groups of decoder rows (the options of one prompt) attend
to one encoded row each, projected once per group; their own tokens take the uncached self-attention.

``output="hidden"`` (of ``__call__`` and ``decode``) returns ``(hidden, kernel)`` instead of the logits: the
final decoder states (after the final norm, its dropout and, with ``scale_decoder_output``, the d_model**-0.5
scaling) and the LM-head kernel, for ``xlt.losses.chunked_cross_entropy`` (see ``xlt.models.layers.LMHead``).
"""

from __future__ import annotations

from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from xlt.models.blocks import Stack
from xlt.models.config import ModelConfig
from xlt.models.decoder import segments_and_positions
from xlt.models.layers import (Embed, LMHead, SegmentMask, cache_context, cached_positions, check_groups, constrain,
                               make_norm, relative_bias)

Array = jax.Array


def encoder_segments(batch: Mapping[str, Array]) -> Array:
    """Packed: the given ids. Unpacked: 1 on tokens, 0 on padding (id 0), so padding is never attended."""
    segments = batch.get("encoder_segment_ids")
    return (batch["encoder_input_tokens"] != 0).astype("int32") if segments is None else segments


class Encoder(nn.Module):
    cfg: ModelConfig
    embedder: Embed

    @nn.compact
    def __call__(self, batch: Mapping[str, Array], deterministic: bool = True) -> Array:
        cfg = self.cfg
        tokens = batch["encoder_input_tokens"]
        segments, positions = segments_and_positions(tokens, encoder_segments(batch), batch.get("encoder_positions"))
        x = nn.Dropout(cfg.dropout_rate)(self.embedder(tokens), deterministic=deterministic)
        x = constrain(x, ("batch", "length", "embed"))
        bias = relative_bias(cfg, True, tokens.shape[1])
        mask = SegmentMask(segments, segments, causal=False)
        x = Stack(cfg, cfg.num_encoder_layers, causal=False, deterministic=deterministic, name="stack")(
            x, mask, bias, positions)
        return nn.Dropout(cfg.dropout_rate)(make_norm(cfg, "final_norm")(x), deterministic=deterministic)


class CrossDecoder(nn.Module):
    cfg: ModelConfig
    embedder: Embed

    @nn.compact
    def __call__(self, encoded: Array | None, batch: Mapping[str, Array], deterministic: bool = True,
                 cache_mode: str | None = None, output: str = "logits") -> Array | tuple[Array, Array]:
        cfg = self.cfg
        tokens = batch["decoder_input_tokens"]
        if cache_mode == "extend":
            segments, positions = batch.get("decoder_segment_ids"), cached_positions(batch)
        else:
            segments, positions = segments_and_positions(
                tokens, batch.get("decoder_segment_ids"), batch.get("decoder_positions"))
        x = nn.Dropout(cfg.dropout_rate)(self.embedder(tokens), deterministic=deterministic)
        x = constrain(x, ("batch", "length", "embed"))
        cache_index = None
        if cache_mode == "extend":
            mask, bias, cache_index = cache_context(self, cfg, cache_mode, positions, segments)
            enc_valid = encoder_segments(batch) > 0
            cross_mask = jnp.broadcast_to(enc_valid[:, None, None, :],
                                          (tokens.shape[0], 1, tokens.shape[1], enc_valid.shape[1]))
        else:
            bias = relative_bias(cfg, False, tokens.shape[1])
            mask = SegmentMask(segments, segments, causal=True)
            enc_segments = encoder_segments(batch)
            if cache_mode is not None:  # "shared": decoder rows in groups over the encoder rows
                check_groups(tokens.shape[0], enc_segments.shape[0], "encoded input")
                enc_segments = jnp.repeat(enc_segments, tokens.shape[0] // enc_segments.shape[0], axis=0)
            # Unpacked decoder rows are segment 1 and see every non-padding encoder token.
            cross_mask = SegmentMask(segments, enc_segments, causal=False)
        x = Stack(cfg, cfg.num_layers, causal=True, cross=True, deterministic=deterministic, cache_mode=cache_mode,
                  name="stack")(x, mask, bias, positions, encoded, cross_mask, cache_index=cache_index)
        x = nn.Dropout(cfg.dropout_rate)(make_norm(cfg, "final_norm")(x), deterministic=deterministic)
        if cfg.scale_decoder_output:  # original T5
            x = x * cfg.d_model ** -0.5
        return LMHead(cfg, self.embedder if cfg.tie_embeddings else None, name="lm_head")(x, output)


class EncoderDecoder(nn.Module):
    cfg: ModelConfig

    def setup(self):
        cfg = self.cfg
        self.token_embedder = Embed(cfg.vocab_size, cfg.d_model, dtype=cfg.dtype, param_dtype=cfg.param_dtype)
        self.encoder = Encoder(cfg, self.token_embedder)
        self.decoder = CrossDecoder(cfg, self.token_embedder)

    def encode(self, batch: Mapping[str, Array], deterministic: bool = True) -> Array:
        return self.encoder(batch, deterministic)

    def decode(self, encoded: Array | None, batch: Mapping[str, Array], deterministic: bool = True,
               cache_mode: str | None = None, output: str = "logits") -> Array | tuple[Array, Array]:
        return self.decoder(encoded, batch, deterministic, cache_mode=cache_mode, output=output)

    def __call__(self, batch: Mapping[str, Array], deterministic: bool = True,
                 output: str = "logits") -> Array | tuple[Array, Array]:
        return self.decode(self.encode(batch, deterministic), batch, deterministic, output=output)
