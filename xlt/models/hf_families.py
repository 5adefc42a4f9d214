"""What xlt knows about each Hugging Face model family, declared once per family next to the layouts.

A ``Family`` is everything ``xlt.interop.hf`` needs to import and export one HF ``model_type``: the xlt layout
it maps to, its config.json fields both ways (``config_from_hf`` / ``config_to_hf``), the ModelConfig
choices export requires (``requires`` plus ``check_export``), its tensor rules (``rules``: every xlt parameter
onto HF tensors), the base-model prefixes its checkpoints use and the HF tensors that carry nothing for xlt.
The generic reader and writer in ``xlt.interop.hf`` never look at the layout: adding a family is adding one
entry to ``FAMILIES`` here (with its rules function), as levanter registers a model's config, HF mapping and
module together.

Conventions of the rules (checked against transformers' own logits by tests/interop/test_hf_interop.py):

* torch ``nn.Linear`` weights are [out, in]; xlt kernels are (in..., out...), e.g. the query kernel is
  [d_model, heads, head_dim] and the attention output kernel [heads, head_dim, d_model].
* GPT-2 ``Conv1D`` weights are already [in, out]; ``c_attn`` fuses query, key and value along ``out``
  ([3, heads, head_dim]); BLOOM's ``query_key_value`` is an ``nn.Linear`` fused per head ([heads, 3, head_dim]).
* HF Llama checkpoints already use the rotate-half rotary layout that ``xlt.models.layers.apply_rope``
  implements (the interleaved Meta layout is permuted by HF's own conversion script), so q/k need no permutation.
* T5 keeps each stack's relative attention bias in layer 0 (``block.0.layer.0.SelfAttention``); xlt keeps
  one per stack (``encoder/relpos``, ``decoder/relpos``). An ``lm_head.weight`` in the checkpoint means an
  untied head (transformers 5 always writes ``tie_word_embeddings: true`` for T5); ``scale_decoder_outputs``
  (or, in older configs, a tied ``tie_word_embeddings``) is ``ModelConfig.scale_decoder_output``.
* BLOOM has no position parameters: its ALiBi slopes are a function of the head count
  (``xlt.models.layers.alibi_slopes``, the same rule as HF's ``_get_alibi_slopes``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from xlt.errors import ConfigError
from xlt.models.config import ModelConfig

HF_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_fast": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh",
                  "gelu": "gelu", "relu": "relu", "silu": "silu", "swish": "silu"}
XLT_ACTIVATIONS = {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu", "silu": "silu"}

# --- Tensor rules -----------------------------------------------------------------------------------------

Transform = Callable[..., tuple[np.ndarray, ...]]


@dataclasses.dataclass(frozen=True)
class Rule:
    """xlt parameters ``xlt`` ⇄ HF tensors ``hf``. In a per-layer rule (``stack`` set) the xlt paths are
    relative to the layer and ``{i}`` in the HF names is the layer index; ``a|b`` lists accepted aliases of a HF
    name (the first is written). ``vocab_axis`` is the vocabulary axis of the (single) xlt parameter."""

    xlt: tuple[str, ...]
    hf: tuple[str, ...]
    to_xlt: Transform
    to_hf: Transform
    stack: str | None = None
    num_layers: int = 0
    vocab_axis: int | None = None


def _same(*xs):
    return xs


def _transpose(w):
    return (w.T,)


def _linear_in(*out_shape: int) -> Transform:
    """torch Linear [prod(out), in] -> kernel [in, *out]."""
    return lambda w: (w.T.reshape(w.shape[1], *out_shape),)


def _linear_in_hf(k):
    return (k.reshape(k.shape[0], -1).T,)


def _linear_out(heads: int, head_dim: int) -> Transform:
    """torch Linear [d, heads*head_dim] -> kernel [heads, head_dim, d]."""
    return lambda w: (w.T.reshape(heads, head_dim, w.shape[0]),)


def _linear_out_hf(k):
    return (k.reshape(-1, k.shape[-1]).T,)


def _conv_out(heads: int, head_dim: int) -> Transform:
    return lambda w: (w.reshape(heads, head_dim, w.shape[1]),)


def _conv_out_hf(k):
    return (k.reshape(-1, k.shape[-1]),)


def _gpt2_qkv(heads: int, head_dim: int) -> Transform:
    def to_xlt(w):
        return tuple(x.reshape(x.shape[0], heads, head_dim) for x in np.split(w, 3, axis=1))
    return to_xlt


def _gpt2_qkv_hf(q, k, v):
    return (np.concatenate([x.reshape(x.shape[0], -1) for x in (q, k, v)], axis=1),)


def _gpt2_qkv_bias(heads: int, head_dim: int) -> Transform:
    return lambda b: tuple(x.reshape(heads, head_dim) for x in np.split(b, 3))


def _gpt2_qkv_bias_hf(q, k, v):
    return (np.concatenate([x.reshape(-1) for x in (q, k, v)]),)


def _bloom_qkv(heads: int, head_dim: int) -> Transform:
    """BLOOM ``query_key_value.weight`` [heads*3*head_dim, d] (rows: head, then q/k/v, then head_dim) ->
    query, key, value kernels [d, heads, head_dim]."""
    def to_xlt(w):
        w = w.reshape(heads, 3, head_dim, w.shape[1])
        return tuple(np.transpose(w[:, j], (2, 0, 1)) for j in range(3))
    return to_xlt


def _bloom_qkv_hf(q, k, v):
    w = np.stack([np.transpose(x, (1, 2, 0)) for x in (q, k, v)], axis=1)  # [heads, 3, head_dim, d]
    return (w.reshape(-1, w.shape[-1]),)


def _bloom_qkv_bias(heads: int, head_dim: int) -> Transform:
    return lambda b: tuple(b.reshape(heads, 3, head_dim)[:, j] for j in range(3))


def _bloom_qkv_bias_hf(q, k, v):
    return (np.stack([q, k, v], axis=1).reshape(-1),)


def _in_stack(rules: Sequence[Rule], stack: str, num_layers: int) -> list[Rule]:
    return [dataclasses.replace(r, stack=stack, num_layers=num_layers) for r in rules]


def _untied_head(cfg: ModelConfig, path: str = "lm_head/kernel") -> list[Rule]:
    if cfg.tie_embeddings:
        return []
    return [Rule((path,), ("lm_head.weight",), _transpose, _transpose, vocab_axis=1)]


# --- config.json helpers ------------------------------------------------------------------------------------


def need(hf: Mapping[str, Any], key: str, *aliases: str) -> Any:
    """``hf[key]`` (or the first alias present), else a one-line ConfigError naming the key."""
    for k in (key, *aliases):
        if hf.get(k) is not None:
            return hf[k]
    raise ConfigError(f"config.json has no {key!r}")


def _activation(name: Any, field: str) -> str:
    if name not in HF_ACTIVATIONS:
        raise ConfigError(f"config.json {field}={name!r} is not supported; xlt has {sorted(HF_ACTIVATIONS)}")
    return HF_ACTIVATIONS[name]


def _rope_theta(hf: Mapping[str, Any]) -> float:
    params = hf.get("rope_parameters") or {}
    scaling = hf.get("rope_scaling") or {}
    for what, d in (("rope_parameters", params), ("rope_scaling", scaling)):
        kind = d.get("rope_type", d.get("type", "default")) if isinstance(d, Mapping) else "default"
        if kind not in ("default", None):
            raise ConfigError(f"config.json {what} rope_type={kind!r} is not supported (xlt implements plain RoPE)")
    theta = params.get("rope_theta") if isinstance(params, Mapping) else None
    return float(theta if theta is not None else hf.get("rope_theta", 10_000.0))


def _no_gqa(cfg: ModelConfig, model_type: str) -> None:
    if cfg.num_kv_heads != cfg.num_heads:
        raise ConfigError(f"cannot export to Hugging Face {model_type}: grouped-query attention "
                          f"(num_kv_heads={cfg.num_kv_heads} < num_heads={cfg.num_heads})")


def _heads_fill_width(cfg: ModelConfig, model_type: str) -> None:
    if cfg.head_dim * cfg.num_heads != cfg.d_model:
        raise ConfigError(f"cannot export to Hugging Face {model_type}: head_dim*num_heads="
                          f"{cfg.head_dim * cfg.num_heads} != d_model={cfg.d_model}")


# --- GPT-2 (PolyLM) -------------------------------------------------------------------------------------------


def _gpt2_config(hf: Mapping[str, Any], tensor_names: Sequence[str]) -> dict[str, Any]:
    if hf.get("scale_attn_by_inverse_layer_idx"):
        raise ConfigError("config.json scale_attn_by_inverse_layer_idx=true is not supported")
    if hf.get("add_cross_attention"):
        raise ConfigError("config.json add_cross_attention=true is not supported (decoder-only GPT-2 only)")
    d = int(need(hf, "n_embd", "hidden_size"))
    heads = int(need(hf, "n_head", "num_attention_heads"))
    if d % heads:
        raise ConfigError(f"config.json n_embd={d} is not a multiple of n_head={heads}")
    return dict(d_model=d, num_layers=int(need(hf, "n_layer", "num_hidden_layers")), num_heads=heads,
                head_dim=d // heads, d_ff=int(hf.get("n_inner") or 4 * d),
                max_len=int(need(hf, "n_positions", "max_position_embeddings")),
                norm_eps=float(hf.get("layer_norm_epsilon", 1e-5)),
                activation=_activation(hf.get("activation_function", "gelu_new"), "activation_function"),
                tie_embeddings=hf.get("tie_word_embeddings", True) is not False,
                scale_attention=hf.get("scale_attn_weights", True) is not False,
                dropout_rate=float(hf.get("resid_pdrop", 0.0) or 0.0))


def _gpt2_to_hf(cfg: ModelConfig, out: dict[str, Any]) -> None:
    out.update(n_embd=cfg.d_model, n_layer=cfg.num_layers, n_head=cfg.num_heads, n_inner=cfg.d_ff,
               n_positions=cfg.max_len, activation_function=XLT_ACTIVATIONS[cfg.activation],
               layer_norm_epsilon=cfg.norm_eps, scale_attn_weights=bool(cfg.scale_attention),
               resid_pdrop=cfg.dropout_rate, embd_pdrop=cfg.dropout_rate, attn_pdrop=cfg.dropout_rate)


def _gpt2_check(cfg: ModelConfig) -> None:
    _no_gqa(cfg, "gpt2")
    _heads_fill_width(cfg, "gpt2")


def _gpt2_rules(cfg: ModelConfig, p: str) -> list[Rule]:
    h, hd = cfg.num_heads, cfg.head_dim
    L = f"{p}h.{{i}}."
    layer = [
        Rule(("pre_attention_norm/scale", "pre_attention_norm/bias"), (L + "ln_1.weight", L + "ln_1.bias"),
             _same, _same),
        Rule(("self_attention/query/kernel", "self_attention/key/kernel", "self_attention/value/kernel"),
             (L + "attn.c_attn.weight",), _gpt2_qkv(h, hd), _gpt2_qkv_hf),
        Rule(("self_attention/query/bias", "self_attention/key/bias", "self_attention/value/bias"),
             (L + "attn.c_attn.bias",), _gpt2_qkv_bias(h, hd), _gpt2_qkv_bias_hf),
        Rule(("self_attention/out/kernel",), (L + "attn.c_proj.weight",), _conv_out(h, hd), _conv_out_hf),
        Rule(("self_attention/out/bias",), (L + "attn.c_proj.bias",), _same, _same),
        Rule(("pre_mlp_norm/scale", "pre_mlp_norm/bias"), (L + "ln_2.weight", L + "ln_2.bias"), _same, _same),
        Rule(("mlp/wi/kernel",), (L + "mlp.c_fc.weight",), _same, _same),
        Rule(("mlp/wi/bias",), (L + "mlp.c_fc.bias",), _same, _same),
        Rule(("mlp/wo/kernel",), (L + "mlp.c_proj.weight",), _same, _same),
        Rule(("mlp/wo/bias",), (L + "mlp.c_proj.bias",), _same, _same),
    ]
    return ([Rule(("token_embedder/embedding",), (p + "wte.weight",), _same, _same, vocab_axis=0),
             Rule(("position_embedder/embedding",), (p + "wpe.weight",), _same, _same)]
            + _in_stack(layer, "decoder", cfg.num_layers)
            + [Rule(("final_norm/scale", "final_norm/bias"), (p + "ln_f.weight", p + "ln_f.bias"), _same, _same)]
            + _untied_head(cfg))


# --- Llama ------------------------------------------------------------------------------------------------------


def _llama_config(hf: Mapping[str, Any], tensor_names: Sequence[str]) -> dict[str, Any]:
    if hf.get("attention_bias") or hf.get("mlp_bias"):
        raise ConfigError("config.json attention_bias/mlp_bias=true is not supported (xlt's llama has no biases)")
    d = int(need(hf, "hidden_size"))
    heads = int(need(hf, "num_attention_heads"))
    return dict(d_model=d, num_layers=int(need(hf, "num_hidden_layers")), num_heads=heads,
                num_kv_heads=int(hf.get("num_key_value_heads") or heads),
                head_dim=int(hf.get("head_dim") or d // heads), d_ff=int(need(hf, "intermediate_size")),
                max_len=int(hf.get("max_position_embeddings", 2048)), rope_theta=_rope_theta(hf),
                norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
                activation=_activation(hf.get("hidden_act", "silu"), "hidden_act"),
                tie_embeddings=bool(hf.get("tie_word_embeddings", False)),
                dropout_rate=float(hf.get("attention_dropout", 0.0) or 0.0))


def _llama_to_hf(cfg: ModelConfig, out: dict[str, Any]) -> None:
    out.update(hidden_size=cfg.d_model, num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads,
               num_key_value_heads=cfg.num_kv_heads, head_dim=cfg.head_dim, intermediate_size=cfg.d_ff,
               hidden_act=XLT_ACTIVATIONS[cfg.activation], max_position_embeddings=cfg.max_len,
               rms_norm_eps=cfg.norm_eps, rope_theta=cfg.rope_theta,
               rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
               attention_bias=False, mlp_bias=False, attention_dropout=cfg.dropout_rate)


def _llama_rules(cfg: ModelConfig, p: str) -> list[Rule]:
    h, kv, hd = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    L = f"{p}layers.{{i}}."
    layer = [
        Rule(("pre_attention_norm/scale",), (L + "input_layernorm.weight",), _same, _same),
        Rule(("self_attention/query/kernel",), (L + "self_attn.q_proj.weight",), _linear_in(h, hd), _linear_in_hf),
        Rule(("self_attention/key/kernel",), (L + "self_attn.k_proj.weight",), _linear_in(kv, hd), _linear_in_hf),
        Rule(("self_attention/value/kernel",), (L + "self_attn.v_proj.weight",), _linear_in(kv, hd), _linear_in_hf),
        Rule(("self_attention/out/kernel",), (L + "self_attn.o_proj.weight",), _linear_out(h, hd), _linear_out_hf),
        Rule(("pre_mlp_norm/scale",), (L + "post_attention_layernorm.weight",), _same, _same),
        Rule(("mlp/wi_0/kernel",), (L + "mlp.gate_proj.weight",), _transpose, _transpose),
        Rule(("mlp/wi_1/kernel",), (L + "mlp.up_proj.weight",), _transpose, _transpose),
        Rule(("mlp/wo/kernel",), (L + "mlp.down_proj.weight",), _transpose, _transpose),
    ]
    return ([Rule(("token_embedder/embedding",), (p + "embed_tokens.weight",), _same, _same, vocab_axis=0)]
            + _in_stack(layer, "decoder", cfg.num_layers)
            + [Rule(("final_norm/scale",), (p + "norm.weight",), _same, _same)]
            + _untied_head(cfg))


# --- T5 v1.1 / mT5 / original T5 ----------------------------------------------------------------------------------


def _t5_config(hf: Mapping[str, Any], tensor_names: Sequence[str], *, mt5: bool) -> dict[str, Any]:
    proj = str(hf.get("feed_forward_proj", "relu"))
    gated = proj.startswith("gated-")
    act = proj.split("-", 1)[1] if gated else proj
    act = "gelu_new" if proj == "gated-gelu" else act  # transformers' special case (T5 v1.1)
    if hf.get("pad_token_id", 0) not in (0, None):
        raise ConfigError(f"config.json pad_token_id={hf['pad_token_id']}: xlt's T5 encoder treats id 0 as padding")
    if mt5:
        scale = False  # MT5ForConditionalGeneration never rescales the decoder output
    elif "scale_decoder_outputs" in hf:
        scale = bool(hf["scale_decoder_outputs"])
    else:
        scale = hf.get("tie_word_embeddings", True) is not False
    layers = int(need(hf, "num_layers"))
    return dict(d_model=int(need(hf, "d_model")), num_layers=int(hf.get("num_decoder_layers") or layers),
                num_encoder_layers=layers, num_heads=int(need(hf, "num_heads")), head_dim=int(need(hf, "d_kv")),
                d_ff=int(need(hf, "d_ff")), relative_buckets=int(hf.get("relative_attention_num_buckets", 32)),
                relative_max_distance=int(hf.get("relative_attention_max_distance", 128)),
                norm_eps=float(hf.get("layer_norm_epsilon", 1e-6)), gated_mlp=gated,
                activation=_activation(act, "feed_forward_proj"),
                tie_embeddings="lm_head.weight" not in tensor_names, scale_decoder_output=scale,
                dropout_rate=float(hf.get("dropout_rate", 0.0) or 0.0))


def _t5_to_hf(cfg: ModelConfig, out: dict[str, Any], *, mt5: bool) -> None:
    act = XLT_ACTIVATIONS[cfg.activation]
    proj = ("gated-gelu" if cfg.activation == "gelu_tanh" else f"gated-{act}") if cfg.gated_mlp else act
    out.update(d_model=cfg.d_model, d_kv=cfg.head_dim, d_ff=cfg.d_ff, num_layers=cfg.num_encoder_layers,
               num_decoder_layers=cfg.num_layers, num_heads=cfg.num_heads,
               relative_attention_num_buckets=cfg.relative_buckets,
               relative_attention_max_distance=cfg.relative_max_distance, layer_norm_epsilon=cfg.norm_eps,
               feed_forward_proj=proj, is_encoder_decoder=True, dropout_rate=cfg.dropout_rate)
    out.setdefault("pad_token_id", 0)
    out.setdefault("eos_token_id", 1)
    out.setdefault("decoder_start_token_id", 0)
    if not mt5:
        out["scale_decoder_outputs"] = bool(cfg.scale_decoder_output)


def _t5_check(cfg: ModelConfig, *, mt5: bool) -> None:
    _no_gqa(cfg, "mt5" if mt5 else "t5")
    if mt5 and cfg.scale_decoder_output:
        raise ConfigError("cannot export to Hugging Face mt5 with ModelConfig.scale_decoder_output=True")


def _t5_rules(cfg: ModelConfig, p: str) -> list[Rule]:
    h, hd = cfg.num_heads, cfg.head_dim

    def attention(hf_prefix: str, xlt_name: str) -> list[Rule]:
        return [Rule((f"{xlt_name}/query/kernel",), (hf_prefix + "q.weight",), _linear_in(h, hd), _linear_in_hf),
                Rule((f"{xlt_name}/key/kernel",), (hf_prefix + "k.weight",), _linear_in(h, hd), _linear_in_hf),
                Rule((f"{xlt_name}/value/kernel",), (hf_prefix + "v.weight",), _linear_in(h, hd), _linear_in_hf),
                Rule((f"{xlt_name}/out/kernel",), (hf_prefix + "o.weight",), _linear_out(h, hd), _linear_out_hf)]

    def mlp(hf_prefix: str) -> list[Rule]:
        names = ("wi_0", "wi_1", "wo") if cfg.gated_mlp else ("wi", "wo")
        return [Rule((f"mlp/{n}/kernel",), (f"{hf_prefix}DenseReluDense.{n}.weight",), _transpose, _transpose)
                for n in names]

    enc = "encoder.block.{i}.layer."
    encoder_layer = ([Rule(("pre_attention_norm/scale",), (enc + "0.layer_norm.weight",), _same, _same)]
                     + attention(enc + "0.SelfAttention.", "self_attention")
                     + [Rule(("pre_mlp_norm/scale",), (enc + "1.layer_norm.weight",), _same, _same)] + mlp(enc + "1."))
    dec = "decoder.block.{i}.layer."
    decoder_layer = ([Rule(("pre_attention_norm/scale",), (dec + "0.layer_norm.weight",), _same, _same)]
                     + attention(dec + "0.SelfAttention.", "self_attention")
                     + [Rule(("pre_cross_attention_norm/scale",), (dec + "1.layer_norm.weight",), _same, _same)]
                     + attention(dec + "1.EncDecAttention.", "cross_attention")
                     + [Rule(("pre_mlp_norm/scale",), (dec + "2.layer_norm.weight",), _same, _same)] + mlp(dec + "2."))
    rel = "block.0.layer.0.SelfAttention.relative_attention_bias.weight"
    return ([Rule(("token_embedder/embedding",), ("shared.weight|encoder.embed_tokens.weight",), _same, _same,
                  vocab_axis=0),
             Rule(("encoder/relpos/rel_embedding",), ("encoder." + rel,), _same, _same)]
            + _in_stack(encoder_layer, "encoder/stack", cfg.num_encoder_layers)
            + [Rule(("encoder/final_norm/scale",), ("encoder.final_layer_norm.weight",), _same, _same),
               Rule(("decoder/relpos/rel_embedding",), ("decoder." + rel,), _same, _same)]
            + _in_stack(decoder_layer, "decoder/stack", cfg.num_layers)
            + [Rule(("decoder/final_norm/scale",), ("decoder.final_layer_norm.weight",), _same, _same)]
            + _untied_head(cfg, "decoder/lm_head/kernel"))


# --- BLOOM / BLOOMZ -----------------------------------------------------------------------------------------------


def _bloom_config(hf: Mapping[str, Any], tensor_names: Sequence[str]) -> dict[str, Any]:
    if hf.get("apply_residual_connection_post_layernorm"):
        raise ConfigError("config.json apply_residual_connection_post_layernorm=true is not supported "
                          "(xlt's blocks add the residual before the norm, as BLOOM's released models do)")
    d = int(need(hf, "hidden_size", "n_embed"))
    heads = int(need(hf, "n_head", "num_attention_heads"))
    if d % heads:
        raise ConfigError(f"config.json hidden_size={d} is not a multiple of n_head={heads}")
    # BLOOM's MLP is always 4 * hidden_size wide and its head_dim hidden_size / n_head; no position table
    # (``max_len`` is left at xlt's default: ALiBi has no length limit built in).
    return dict(d_model=d, num_layers=int(need(hf, "n_layer", "num_hidden_layers")), num_heads=heads,
                head_dim=d // heads, d_ff=4 * d, norm_eps=float(hf.get("layer_norm_epsilon", 1e-5)),
                tie_embeddings=hf.get("tie_word_embeddings", True) is not False,
                dropout_rate=float(hf.get("hidden_dropout", 0.0) or 0.0))


def _bloom_to_hf(cfg: ModelConfig, out: dict[str, Any]) -> None:
    out.update(hidden_size=cfg.d_model, n_layer=cfg.num_layers, n_head=cfg.num_heads,
               layer_norm_epsilon=cfg.norm_eps, hidden_dropout=cfg.dropout_rate, attention_dropout=cfg.dropout_rate,
               apply_residual_connection_post_layernorm=False, pretraining_tp=1, slow_but_exact=False)


def _bloom_check(cfg: ModelConfig) -> None:
    _no_gqa(cfg, "bloom")
    _heads_fill_width(cfg, "bloom")
    if cfg.d_ff != 4 * cfg.d_model:
        raise ConfigError(f"cannot export to Hugging Face bloom: d_ff={cfg.d_ff} (BloomForCausalLM's MLP is "
                          f"4*d_model={4 * cfg.d_model})")


def _bloom_rules(cfg: ModelConfig, p: str) -> list[Rule]:
    h, hd = cfg.num_heads, cfg.head_dim
    L = f"{p}h.{{i}}."
    attn = L + "self_attention."
    layer = [
        Rule(("pre_attention_norm/scale", "pre_attention_norm/bias"),
             (L + "input_layernorm.weight", L + "input_layernorm.bias"), _same, _same),
        Rule(("self_attention/query/kernel", "self_attention/key/kernel", "self_attention/value/kernel"),
             (attn + "query_key_value.weight",), _bloom_qkv(h, hd), _bloom_qkv_hf),
        Rule(("self_attention/query/bias", "self_attention/key/bias", "self_attention/value/bias"),
             (attn + "query_key_value.bias",), _bloom_qkv_bias(h, hd), _bloom_qkv_bias_hf),
        Rule(("self_attention/out/kernel",), (attn + "dense.weight",), _linear_out(h, hd), _linear_out_hf),
        Rule(("self_attention/out/bias",), (attn + "dense.bias",), _same, _same),
        Rule(("pre_mlp_norm/scale", "pre_mlp_norm/bias"),
             (L + "post_attention_layernorm.weight", L + "post_attention_layernorm.bias"), _same, _same),
        Rule(("mlp/wi/kernel",), (L + "mlp.dense_h_to_4h.weight",), _transpose, _transpose),
        Rule(("mlp/wi/bias",), (L + "mlp.dense_h_to_4h.bias",), _same, _same),
        Rule(("mlp/wo/kernel",), (L + "mlp.dense_4h_to_h.weight",), _transpose, _transpose),
        Rule(("mlp/wo/bias",), (L + "mlp.dense_4h_to_h.bias",), _same, _same),
    ]
    return ([Rule(("token_embedder/embedding",), (p + "word_embeddings.weight",), _same, _same, vocab_axis=0),
             Rule(("embedding_norm/scale", "embedding_norm/bias"),
                  (p + "word_embeddings_layernorm.weight", p + "word_embeddings_layernorm.bias"), _same, _same)]
            + _in_stack(layer, "decoder", cfg.num_layers)
            + [Rule(("final_norm/scale", "final_norm/bias"), (p + "ln_f.weight", p + "ln_f.bias"), _same, _same)]
            + _untied_head(cfg))


# --- The registry ---------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Family:
    """One supported Hugging Face model family: the xlt layout it maps to and everything import/export need."""

    model_type: str
    architecture: str  # the class export names in config.json
    layout: str
    accepted: tuple[str, ...]  # architectures import accepts
    config_from_hf: Callable[[Mapping[str, Any], Sequence[str]], dict[str, Any]]  # ModelConfig fields of a
    #   config.json (and the checkpoint's tensor names), besides layout / vocabulary / dtypes
    config_to_hf: Callable[[ModelConfig, dict[str, Any]], None]  # writes the family's config.json keys
    rules: Callable[[ModelConfig, str], list[Rule]]  # every xlt parameter onto HF tensors, given the prefix
    requires: Mapping[str, Any]  # ModelConfig field values the HF architecture hard-codes
    check_export: Callable[[ModelConfig], None] = lambda cfg: None  # further checks, raising ConfigError
    prefixes: tuple[str, ...] = ("",)  # base-model prefixes checkpoints use (the first is written on export)
    prefix_probe: str = ""  # a tensor name under the prefix that tells which prefix a checkpoint uses
    ignorable: tuple[str, ...] = ()  # regexes of HF tensors that carry nothing for xlt
    layout_default: bool = False  # the family an xlt checkpoint of this layout exports to by default

    def model_config(self, hf: Mapping[str, Any], tensor_names: Sequence[str], **common: Any) -> ModelConfig:
        """The ModelConfig of a config.json of this family; ``common``: vocabulary, dtypes, scanning."""
        return ModelConfig(layout=self.layout, **self.config_from_hf(hf, tensor_names), **common)

    def check_exportable(self, cfg: ModelConfig) -> None:
        """Raise a one-line ConfigError unless ``cfg`` is expressible as this family."""
        if cfg.layout != self.layout:
            raise ConfigError(f"cannot export a {cfg.layout!r} model as Hugging Face {self.model_type}")
        for name, value in self.requires.items():
            if getattr(cfg, name) != value:
                raise ConfigError(f"cannot export to Hugging Face {self.model_type}: ModelConfig.{name}="
                                  f"{getattr(cfg, name)!r} ({self.architecture} needs {value!r})")
        self.check_export(cfg)


_T5_IGNORABLE = (r"^(encoder|decoder)\.embed_tokens\.weight$",  # tied copies of ``shared``
                 # old T5 conversions carry a cross-attention relative bias that transformers itself ignores
                 r"^decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias\.weight$")

FAMILIES: dict[str, Family] = {f.model_type: f for f in (
    Family("gpt2", "GPT2LMHeadModel", "gpt", ("GPT2LMHeadModel", "GPT2Model"), _gpt2_config, _gpt2_to_hf,
           _gpt2_rules, dict(encoder_decoder=False, norm="layernorm", use_bias=True, position="learned",
                             gated_mlp=False, embedding_norm=False),
           _gpt2_check, prefixes=("transformer.", ""), prefix_probe="wte.weight",
           ignorable=(r"(^|\.)h\.\d+\.attn\.(bias|masked_bias)$",), layout_default=True),
    Family("llama", "LlamaForCausalLM", "llama", ("LlamaForCausalLM",), _llama_config, _llama_to_hf, _llama_rules,
           dict(encoder_decoder=False, norm="rmsnorm", use_bias=False, position="rope", gated_mlp=True,
                scale_attention=True, embedding_norm=False),
           prefixes=("model.", ""), prefix_probe="embed_tokens.weight", ignorable=(r"rotary_emb\.inv_freq$",),
           layout_default=True),
    Family("t5", "T5ForConditionalGeneration", "t5", ("T5ForConditionalGeneration",),
           lambda hf, names: _t5_config(hf, names, mt5=False), lambda cfg, out: _t5_to_hf(cfg, out, mt5=False),
           _t5_rules, dict(encoder_decoder=True, norm="rmsnorm", use_bias=False, position="relative",
                            scale_attention=False),
           lambda cfg: _t5_check(cfg, mt5=False), ignorable=_T5_IGNORABLE, layout_default=True),
    Family("mt5", "MT5ForConditionalGeneration", "t5", ("MT5ForConditionalGeneration",),
           lambda hf, names: _t5_config(hf, names, mt5=True), lambda cfg, out: _t5_to_hf(cfg, out, mt5=True),
           _t5_rules, dict(encoder_decoder=True, norm="rmsnorm", use_bias=False, position="relative",
                            scale_attention=False),
           lambda cfg: _t5_check(cfg, mt5=True), ignorable=_T5_IGNORABLE),
    Family("bloom", "BloomForCausalLM", "bloom", ("BloomForCausalLM", "BloomModel"), _bloom_config, _bloom_to_hf,
           _bloom_rules, dict(encoder_decoder=False, norm="layernorm", use_bias=True, position="alibi", gated_mlp=False,
                              activation="gelu_tanh", embedding_norm=True, scale_attention=True),
           _bloom_check, prefixes=("transformer.", ""), prefix_probe="word_embeddings.weight", layout_default=True),
)}
SUPPORTED = ", ".join(a for f in FAMILIES.values() for a in f.accepted)


def family_of(hf: Mapping[str, Any]) -> Family:
    """The family of a config.json (by ``model_type``; every listed architecture must be one it accepts)."""
    model_type = hf.get("model_type")
    archs = hf.get("architectures") or []
    family = FAMILIES.get(model_type)
    if family is None:
        shown = archs[0] if archs else model_type
        raise ConfigError(f"unsupported Hugging Face architecture {shown!r} (model_type={model_type!r}); "
                          f"xlt imports {SUPPORTED}")
    for arch in archs:
        if arch not in family.accepted:
            raise ConfigError(f"unsupported Hugging Face architecture {arch!r}: xlt imports the language-model "
                              f"class of {model_type} ({', '.join(family.accepted)})")
    return family


def export_family(cfg: ModelConfig, source_model_type: str | None = None) -> Family:
    """The family to export ``cfg`` as: the one it was imported from when that can express it (mT5 cannot
    express ``scale_decoder_output``), else its layout's default family."""
    source = FAMILIES.get(source_model_type)
    if source is not None and source.layout == cfg.layout:
        try:
            source.check_exportable(cfg)
            return source
        except ConfigError:
            pass
    for family in FAMILIES.values():
        if family.layout_default and family.layout == cfg.layout:
            return family
    raise ConfigError(f"no Hugging Face family for xlt layout {cfg.layout!r}")

