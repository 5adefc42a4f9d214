"""Model layouts: one config (``ModelConfig``), two module families (decoder-only, encoder-decoder)."""

from __future__ import annotations

import flax.linen as nn

from xlt.models.config import LAYOUTS, ModelConfig
from xlt.models.decoder import Decoder
from xlt.models.encdec import EncoderDecoder

__all__ = ["LAYOUTS", "ModelConfig", "build_model", "input_features"]


def build_model(cfg: ModelConfig) -> nn.Module:
    return EncoderDecoder(cfg) if cfg.encoder_decoder else Decoder(cfg)


def input_features(cfg: ModelConfig, prefix_lm: bool = False) -> tuple[str, ...]:
    """The model-input features a batch carries for this layout (seqio feature-converter names)."""
    if cfg.encoder_decoder:
        return ("encoder_input_tokens", "encoder_segment_ids", "encoder_positions",
                "decoder_input_tokens", "decoder_segment_ids", "decoder_positions")
    extra = ("decoder_causal_attention",) if prefix_lm else ()
    return ("decoder_input_tokens", "decoder_segment_ids", "decoder_positions") + extra
