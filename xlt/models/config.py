"""One config dataclass for every model layout.

A layout (``gpt``, ``llama``, ``t5``, ``bloom``) is a named set of component choices — norm, MLP, positions,
biases, tying — not a separate model file. Any choice a layout makes can be overridden field by
field, so a new variant (say, GPT with rotary positions) is a gin binding rather than a copy.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import gin

from xlt.errors import ConfigError

# Component defaults per layout. Every key is a field of ModelConfig whose default is None.
LAYOUTS: dict[str, dict[str, Any]] = {
    # PolyLM / GPT-2: learned absolute positions, pre-LayerNorm with bias, GELU MLP, tied embeddings.
    "gpt": dict(
        encoder_decoder=False, norm="layernorm", norm_eps=1e-5, activation="gelu_tanh", gated_mlp=False,
        position="learned", use_bias=True, tie_embeddings=True, scale_attention=True, embedding_norm=False,
    ),
    # Llama: rotary positions, RMSNorm, SwiGLU, grouped-query attention, untied embeddings.
    "llama": dict(
        encoder_decoder=False, norm="rmsnorm", norm_eps=1e-5, activation="silu", gated_mlp=True,
        position="rope", use_bias=False, tie_embeddings=False, scale_attention=True, embedding_norm=False,
    ),
    # T5 v1.1 / mT5: encoder-decoder, bucketed relative position bias shared across layers,
    # RMSNorm without bias, gated-GELU, untied LM head, unscaled attention logits (the scale is
    # folded into the query initialisation, as in Mesh TensorFlow).
    "t5": dict(
        encoder_decoder=True, norm="rmsnorm", norm_eps=1e-6, activation="gelu_tanh", gated_mlp=True,
        position="relative", use_bias=False, tie_embeddings=False, scale_attention=False, embedding_norm=False,
    ),
    # BLOOM / BLOOMZ (BigScience 2022): ALiBi positions (a per-head linear bias on the attention logits, no
    # position table), a LayerNorm on the token embeddings, pre-LayerNorm with bias, tanh-GELU MLP (HF's
    # ``bloom_gelu``), biases everywhere, tied embeddings.
    "bloom": dict(
        encoder_decoder=False, norm="layernorm", norm_eps=1e-5, activation="gelu_tanh", gated_mlp=False,
        position="alibi", use_bias=True, tie_embeddings=True, scale_attention=True, embedding_norm=True,
    ),
}

NORMS = ("layernorm", "rmsnorm")
ACTIVATIONS = ("gelu", "gelu_tanh", "relu", "silu")
# 'alibi': BLOOM's attention with linear biases, head h adding slope_h * (key position) to its logits (see
# xlt.models.layers.alibi_bias); decoder-only layouts.
POSITIONS = ("learned", "rope", "relative", "alibi", "none")
# 'xla': jax.nn.dot_product_attention's XLA path; 'blocked': xlt.models.layers.blocked_attention (einsums,
# causal query blocks that skip the all-masked key blocks); 'cudnn': the fused GPU kernel; 'auto': see
# xlt.models.layers.resolve_attention_impl.
ATTENTION_IMPLS = ("auto", "xla", "blocked", "cudnn")
REMAT_POLICIES = ("none", "full", "dots", "dots_no_batch")
DTYPES = ("float32", "bfloat16", "float16")


@gin.configurable
@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Shape and component choices of a transformer. ``None`` fields take the layout's default."""

    layout: str = "gpt"
    vocab_size: int = 512
    d_model: int = 64
    num_layers: int = 2  # decoder layers (the only stack for decoder-only layouts)
    num_encoder_layers: int | None = None  # t5 only; defaults to num_layers
    num_heads: int = 4
    num_kv_heads: int | None = None  # grouped-query attention when < num_heads
    head_dim: int | None = None  # defaults to d_model // num_heads
    d_ff: int = 256
    max_len: int = 2048  # learned-position table size
    rope_theta: float = 10_000.0
    relative_buckets: int = 32
    relative_max_distance: int = 128
    dropout_rate: float = 0.0
    # Layout components (None: the layout's default).
    encoder_decoder: bool | None = None
    norm: str | None = None
    norm_eps: float | None = None
    activation: str | None = None
    gated_mlp: bool | None = None
    position: str | None = None
    use_bias: bool | None = None
    tie_embeddings: bool | None = None
    scale_attention: bool | None = None
    embedding_norm: bool | None = None  # a norm (``norm``, ``use_bias``) on the token embeddings (BLOOM)
    # Numerics and compilation.
    dtype: str = "float32"  # compute dtype of activations
    param_dtype: str = "float32"
    scan_layers: bool = False
    remat_policy: str = "none"
    attention_impl: str = "auto"
    attention_block_len: int = 128  # query positions per causal block of attention_impl 'blocked'
    # Checkpoint interop (xlt.interop.hf). vocab_size may be padded to a multiple for sharding: ids at or
    # above unpadded_vocab_size (the tokenizer's size) are padding rows whose logits are masked out.
    unpadded_vocab_size: int | None = None
    # Original T5 (HF ``scale_decoder_outputs``): the final decoder state is scaled by d_model**-0.5 before
    # the LM head. Encoder-decoder layouts only; T5 v1.1 and mT5 leave it off.
    scale_decoder_output: bool = False
    # Train-step loss (xlt.step.loss_fn). None: the model's [batch, length, vocab] logits and
    # xlt.losses.cross_entropy. An int: the model hands the step its final hidden states and LM-head kernel
    # (``output="hidden"``) and xlt.losses.chunked_cross_entropy computes the loss and its gradients this many
    # positions at a time, so the full logits (and their fp32 copy and gradient) are never built. The loss
    # and gradients are the same either way; it saves memory where the vocabulary is large (PolyLM's 256k).
    loss_chunk_len: int | None = None

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ConfigError(f"unknown model layout {self.layout!r}; choose one of {sorted(LAYOUTS)}")
        for name, value in LAYOUTS[self.layout].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.num_kv_heads is None:
            object.__setattr__(self, "num_kv_heads", self.num_heads)
        if self.head_dim is None:
            object.__setattr__(self, "head_dim", self.d_model // max(self.num_heads, 1))
        if self.encoder_decoder and self.num_encoder_layers is None:
            object.__setattr__(self, "num_encoder_layers", self.num_layers)
        self.validate()

    def validate(self) -> None:
        """Fail with one clear line before anything is compiled."""
        positive = ("vocab_size", "d_model", "num_layers", "num_heads", "num_kv_heads", "head_dim", "d_ff", "max_len",
                    "attention_block_len")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"ModelConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.num_heads % self.num_kv_heads:
            raise ConfigError(
                f"ModelConfig.num_heads={self.num_heads} is not a multiple of num_kv_heads={self.num_kv_heads}")
        choices = dict(norm=NORMS, activation=ACTIVATIONS, position=POSITIONS, attention_impl=ATTENTION_IMPLS,
                       remat_policy=REMAT_POLICIES, dtype=DTYPES, param_dtype=DTYPES)
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"ModelConfig.{name}={getattr(self, name)!r}; choose one of {list(allowed)}")
        if self.position == "rope" and self.head_dim % 2:
            raise ConfigError(f"rotary positions need an even head_dim, got {self.head_dim}")
        if self.encoder_decoder and self.position == "learned":
            raise ConfigError("ModelConfig.position='learned' is not implemented for encoder-decoder layouts; "
                              "use 'relative', 'rope' or 'none'")
        if self.encoder_decoder and self.position == "alibi":
            raise ConfigError("ModelConfig.position='alibi' is implemented for decoder-only layouts only; "
                              "use 'relative', 'rope' or 'none'")
        if self.encoder_decoder and self.embedding_norm:
            raise ConfigError("ModelConfig.embedding_norm is implemented for decoder-only layouts only")
        if self.position == "relative" and not self.relative_max_distance > self.relative_buckets // 2 >= 1:
            raise ConfigError(f"ModelConfig.relative_max_distance={self.relative_max_distance} must exceed "
                              f"relative_buckets//2={self.relative_buckets // 2} (the exactly-bucketed range), "
                              "with relative_buckets >= 2")
        if self.unpadded_vocab_size is not None and not 0 < self.unpadded_vocab_size <= self.vocab_size:
            raise ConfigError(f"ModelConfig.unpadded_vocab_size={self.unpadded_vocab_size} must be in "
                              f"[1, vocab_size={self.vocab_size}]")
        if self.scale_decoder_output and not self.encoder_decoder:
            raise ConfigError("ModelConfig.scale_decoder_output is for encoder-decoder layouts (original T5) only")
        if self.loss_chunk_len is not None and self.loss_chunk_len <= 0:
            raise ConfigError(f"ModelConfig.loss_chunk_len must be > 0 (or None for the unchunked loss), got "
                              f"{self.loss_chunk_len}")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ConfigError(f"ModelConfig.dropout_rate must be in [0, 1), got {self.dropout_rate}")

    def gin_bindings(self) -> list[str]:
        """``ModelConfig.<field> = <value>`` lines that rebuild this config: the layout, the shape, and every
        other field that differs from the layout's defaults."""
        base = ModelConfig(layout=self.layout)
        always = ("layout", "vocab_size", "d_model", "num_layers", "num_heads", "d_ff")
        return [f"ModelConfig.{f.name} = {getattr(self, f.name)!r}" for f in dataclasses.fields(self)
                if f.name in always or getattr(self, f.name) != getattr(base, f.name)]

    def replace(self, **changes) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def num_encoder_stack_layers(self) -> int:
        return self.num_encoder_layers if self.encoder_decoder else 0

    # --- Size and cost -------------------------------------------------------------------------------

    def param_count(self) -> dict[str, int]:
        """Analytic parameter counts (checked against the initialised model in the tests)."""
        d, f, hd = self.d_model, self.d_ff, self.head_dim
        bias = bool(self.use_bias)
        attn = d * hd * (self.num_heads + 2 * self.num_kv_heads) + self.num_heads * hd * d
        if bias:
            attn += hd * (self.num_heads + 2 * self.num_kv_heads) + d
        n_in = 2 if self.gated_mlp else 1
        mlp = n_in * d * f + f * d + ((n_in * f + d) if bias else 0)
        norm = d * (2 if self.norm == "layernorm" and bias else 1)
        dec_layer = attn + mlp + 2 * norm + ((attn + norm) if self.encoder_decoder else 0)
        enc_layer = attn + mlp + 2 * norm
        embed = self.vocab_size * d
        counts = {
            "embedding": embed,
            "lm_head": 0 if self.tie_embeddings else embed,
            "positions": self.max_len * d if self.position == "learned" else 0,
            "relative_bias": (self.relative_buckets * self.num_heads * (2 if self.encoder_decoder else 1)
                              if self.position == "relative" else 0),
            "decoder_layers": self.num_layers * dec_layer,
            "encoder_layers": self.num_encoder_stack_layers * enc_layer,
            "final_norms": norm * (2 if self.encoder_decoder else 1),
            "embedding_norm": norm if self.embedding_norm else 0,
        }
        counts["total"] = sum(counts.values())
        return counts

    def flops_per_token(self, seq_len: int, input_len: int | None = None) -> dict[str, float]:
        """Training FLOPs per token: 6·N_matmul plus attention, 12·L·H·d_head·T (PaLM, appendix B).

        N_matmul counts every weight a token multiplies (the LM head once, no embedding lookup or
        position table). The attention term counts the full T×T score and context matmuls, as PaLM and
        MaxText do, not the causal half. For encoder-decoder layouts the cost is per target token of a
        pair (input_len encoder tokens, seq_len decoder tokens), encoder work included.
        """
        c = self.param_count()
        hd_total = self.num_heads * self.head_dim
        head = c["embedding"] if self.tie_embeddings else c["lm_head"]
        if not self.encoder_decoder:
            matmul = c["decoder_layers"] + head
            attn = 12 * self.num_layers * hd_total * seq_len
            return {"matmul": 6.0 * matmul, "attention": float(attn), "total": 6.0 * matmul + attn}
        input_len = input_len or seq_len
        ratio = input_len / seq_len
        matmul = c["decoder_layers"] + head + c["encoder_layers"] * ratio
        attn = 12 * hd_total * (self.num_layers * (seq_len + input_len)  # self + cross attention
                                + self.num_encoder_layers * input_len * ratio)
        return {"matmul": 6.0 * matmul, "attention": float(attn), "total": 6.0 * matmul + attn}


def round_up(n: int, multiple: int) -> int:
    return int(math.ceil(n / multiple) * multiple)
