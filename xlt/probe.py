"""Probing a checkpoint from Python: scores, generations, hidden states and attention weights.

``probe = load("results/transfer_demo/base")`` restores the parameters, the model config and the vocabulary
recorded in the checkpoint (``xlt.checkpoints.CheckpointMeta``). Every method takes and returns plain
Python / numpy values.

Token layout (seqio's feature converters, as in training):

* decoder-only: a text (or prompt) is fed as ``[start] + ids(text)``: ``start`` is the recorded
  ``decoder_start_id`` (0, seqio's shifted-in token, for models xlt trained; the BOS of an imported
  Llama or GPT-2); no EOS is appended. ``score`` appends ``ids(continuation)`` to the prompt row
  and sums the log-probability of those tokens.
* encoder-decoder: a text (or prompt) is the encoder input ``ids(text) + [EOS]`` (seqio appends EOS to
  ``inputs``); a continuation is the decoder target ``ids(continuation)``, decoded from token 0.

Internals are read with flax's ``capture_intermediates`` (no model file is changed): the output of
every ``Block`` (hidden states), of the embedders (layer 0), of the shared relative position bias and,
for ``attention``, of the chosen layer's ``self_attention`` projections. Layer ``i`` (1-based) is block
``i`` of the decoder stack, or of the encoder stack for encoder-decoders; layer 0 is the embedding
output (token + learned positions) that enters block 1.

Scanned checkpoints (``scan_layers``) are unstacked into the looped layout on load (same numbers), and
rematerialisation is switched off: probing has no backward pass. With ``mesh_shape`` the parameters
are placed by ``xlt.partitioning`` rules and batches are sharded over the batch axes; the results are
the same as on one device.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import seqio

from xlt import checkpoints, decoding, partitioning
from xlt.data.vocab import Conventions
from xlt.errors import CheckpointError, ConfigError
from xlt.evaluation.scoring import score_options
from xlt.models import build_model
from xlt.models.blocks import Block
from xlt.models.config import ModelConfig
from xlt.models.layers import Attention, Dense, Embed, Norm, RelativePositionBias, apply_rope, attention_mask

PAD_ID, EOS_ID = 0, 1


def _unscan(params: Any, cfg: ModelConfig) -> Any:
    """Scanned stacks (``layers`` with a leading layer axis) -> ``layers_0`` .. ``layers_{L-1}``."""
    def unstack(stack: dict, n: int) -> dict:
        if "layers" not in stack:
            raise CheckpointError("scan_layers=True in the checkpoint's config but its stack has no 'layers' entry")
        out = {k: v for k, v in stack.items() if k != "layers"}
        for i in range(n):
            out[f"layers_{i}"] = jax.tree.map(lambda x, i=i: np.asarray(x)[i], stack["layers"])
        return out

    params = dict(params)
    if cfg.encoder_decoder:
        for part, n in (("encoder", cfg.num_encoder_layers), ("decoder", cfg.num_layers)):
            sub = dict(params[part])
            sub["stack"] = unstack(dict(sub["stack"]), n)
            params[part] = sub
    else:
        params["decoder"] = unstack(dict(params["decoder"]), cfg.num_layers)
    return params


def _vocabulary_from(meta: checkpoints.CheckpointMeta, vocabulary: Any) -> tuple[seqio.Vocabulary, Conventions]:
    """The checkpoint's recorded vocabulary and conventions; an explicit ``vocabulary`` ('byte', a
    sentencepiece .model or tokenizer.json path, a seqio.Vocabulary) for a checkpoint that records none, or
    one with the same ids as the record (a different one is refused)."""
    from xlt.data import vocab as vocab_lib

    if vocabulary is None:
        return checkpoints.vocabulary_of(meta), meta.vocabulary.conventions
    if isinstance(vocabulary, str):
        kind = "byte" if vocabulary == "byte" else "tokenizers" if vocabulary.endswith(".json") else "sentencepiece"
        vocabulary = vocab_lib.vocabulary(kind, None if kind == "byte" else vocabulary)
    if not isinstance(vocabulary, seqio.Vocabulary):
        raise ConfigError(f"vocabulary must be 'byte', a sentencepiece .model or tokenizer.json path or a "
                          f"seqio.Vocabulary, got {type(vocabulary).__name__}")
    record = vocab_lib.record_of(vocabulary)
    if meta.vocabulary is not None:
        checkpoints.check_vocabulary(meta, record, meta.path or "?")
        return vocabulary, meta.vocabulary.conventions
    return vocabulary, record.conventions


def _block_filter(mdl: nn.Module, method_name: str, attention_layer: str | None, stack: str) -> bool:
    """Capture Blocks, embedders and relative biases; the self-attention (and its projections) of one layer."""
    if method_name != "__call__":
        return False
    if isinstance(mdl, (Block, Embed, RelativePositionBias)):
        return True
    if attention_layer is None or not isinstance(mdl, (Attention, Dense)):
        return False
    path = tuple(mdl.scope.path) if mdl.scope is not None else ()
    if stack not in path:
        return False
    if isinstance(mdl, Attention):
        return path[-2:] == (attention_layer, "self_attention")
    return path[-3:-1] == (attention_layer, "self_attention")


class Probe:
    """A loaded model with probing methods (see the module docstring for the token layout)."""

    def __init__(self, cfg: ModelConfig, params: Any, vocab: seqio.Vocabulary, *, mesh=None,
                 meta: Any = None, batch_size: int = 32, start_id: int = PAD_ID):
        if cfg.scan_layers:
            params = _unscan(params, cfg)
        self.cfg = cfg.replace(scan_layers=False, remat_policy="none", dropout_rate=0.0)
        self.model = build_model(self.cfg)
        self.vocab = vocab
        self.mesh = mesh
        self.meta = meta
        self.start_id = int(start_id)  # the decoder row's first token (the checkpoint's decoder_start_id)
        self.batch_size = int(batch_size)
        if vocab.vocab_size > self.cfg.vocab_size:
            raise ConfigError(f"vocabulary has {vocab.vocab_size} ids but the model only {self.cfg.vocab_size}")
        self.params = decoding.place_params(self.model, jax.tree.map(jnp.asarray, params), mesh)
        self._jitted: dict[Any, Any] = {}

    # --- Tokens ------------------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """The token ids of a text as this probe feeds it (layout in the module docstring)."""
        if not isinstance(text, str):
            raise ConfigError(f"expected a string, got {type(text).__name__}")
        ids = list(self.vocab.encode(text))
        return ids + [EOS_ID] if self.cfg.encoder_decoder else [self.start_id] + ids

    def _text_ids(self, texts: Sequence[str], what: str) -> list[list[int]]:
        if isinstance(texts, str) or not isinstance(texts, Sequence) or len(texts) == 0:
            raise ConfigError(f"{what} must be a non-empty list of strings")
        rows = []
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ConfigError(f"{what}[{i}] is not a string ({type(t).__name__})")
            rows.append(self.encode(t))
        return rows

    # --- Scoring and generation ------------------------------------------------------------------

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> np.ndarray:
        """Summed log-likelihood [n] of each continuation given its prompt (natural log)."""
        rows = self._text_ids(prompts, "prompts")
        conts = self._text_ids(continuations, "continuations")
        if len(rows) != len(conts):
            raise ConfigError(f"{len(rows)} prompts but {len(conts)} continuations")
        options = []
        for i, (c, text) in enumerate(zip(conts, continuations)):
            ids = c[:-1] if self.cfg.encoder_decoder else c[1:]  # the continuation's own tokens only
            if not ids:
                raise ConfigError(f"continuations[{i}] is empty: nothing to score")
            options.append([ids])
        scores = score_options(self.model, self.params, rows, options, batch_size=self.batch_size, mesh=self.mesh)
        return np.asarray([s.loglik[0] for s in scores], np.float32)

    def generate(self, prompts: Sequence[str], max_new_tokens: int = 32, temperature: float = 0.0,
                 seed: int = 0) -> list[str]:
        """Continuations of each prompt (greedy at temperature 0), decoded up to EOS."""
        rows = self._text_ids(prompts, "prompts")
        out = decoding.generate(self.model, self.params, rows, max_new_tokens=max_new_tokens,
                                temperature=temperature, rng=jax.random.key(seed), mesh=self.mesh)
        texts = []
        for toks, n in zip(out.tokens, out.lengths):
            ids = [int(t) for t in toks[:n] if 2 <= t < self.vocab.vocab_size]
            texts.append(self.vocab.decode(ids))
        return texts

    # --- Internals -------------------------------------------------------------------------------

    @property
    def _stack(self) -> str:
        return "encoder" if self.cfg.encoder_decoder else "decoder"

    def _forward_fn(self, attention_layer: str | None):
        key = attention_layer
        if key not in self._jitted:
            filt = functools.partial(_block_filter, attention_layer=attention_layer, stack=self._stack)
            model = self.model

            def fwd(params, tokens, segments):
                if self.cfg.encoder_decoder:
                    batch = {"encoder_input_tokens": tokens, "encoder_segment_ids": segments}
                    _, state = model.apply({"params": params}, batch, method="encode", capture_intermediates=filt,
                                           mutable=["intermediates"])
                    return None, state["intermediates"]
                batch = {"decoder_input_tokens": tokens, "decoder_segment_ids": segments}
                logits, state = model.apply({"params": params}, batch, capture_intermediates=filt,
                                            mutable=["intermediates"])
                return logits, state["intermediates"]

            self._jitted[key] = jax.jit(fwd)
        return self._jitted[key]

    def _batch(self, texts: Sequence[str], max_tokens: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(tokens [n, T], segments [n, T] 1 on fed tokens, text mask [n, T] 1 on the text's own tokens)."""
        rows = self._text_ids(texts, "texts")
        if max_tokens is not None:
            if max_tokens < 1:
                raise ConfigError(f"max_tokens must be >= 1, got {max_tokens}")
            rows = [r[:max_tokens + 1] if not self.cfg.encoder_decoder else r[:max_tokens] for r in rows]
        longest = max(len(r) for r in rows)
        if self.cfg.position == "learned" and longest > self.cfg.max_len:
            raise ConfigError(f"a text has {longest} tokens, beyond the learned position table "
                              f"(max_len={self.cfg.max_len}); pass max_tokens=")
        width = decoding.bucket(longest, minimum=8)
        if self.cfg.position == "learned":
            width = min(width, self.cfg.max_len)
        tokens = np.zeros((len(rows), width), np.int32)
        segments = np.zeros((len(rows), width), np.int32)
        text = np.zeros((len(rows), width), bool)
        for i, r in enumerate(rows):
            tokens[i, :len(r)] = r
            segments[i, :len(r)] = 1
            if self.cfg.encoder_decoder:
                text[i, :len(r) - (1 if r[-1] == EOS_ID else 0)] = True
            else:
                text[i, 1:len(r)] = True
            if not text[i].any():
                raise ConfigError(f"texts[{i}] is empty (no tokens to probe)")
        return tokens, segments, text

    def intermediates(self, texts: Sequence[str], *, attention_layer: int | None = None,
                      max_tokens: int | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Raw captured flax intermediates (numpy; every Block, embedder and relative bias output, plus the
        ``self_attention`` of ``attention_layer`` with its projections) and the batch: tokens, segments,
        mask (the text's own tokens) and, for decoder-only layouts, the logits."""
        tokens, segments, mask = self._batch(texts, max_tokens)
        name = None if attention_layer is None else f"layers_{self._layer_index(attention_layer) - 1}"
        n = len(tokens)
        shards = decoding.batch_shards(self.mesh)
        per = -(-min(self.batch_size, decoding.bucket(n, minimum=1)) // shards) * shards
        fwd = self._forward_fn(name)
        chunks = []
        with decoding.mesh_context(self.mesh):
            for start in range(0, n, per):
                tok = np.zeros((per, tokens.shape[1]), np.int32)
                seg = np.zeros_like(tok)
                k = min(per, n - start)
                tok[:k], seg[:k] = tokens[start:start + k], segments[start:start + k]
                seg[k:, 0] = 1  # filler rows: one token, so no row is fully masked
                out = jax.device_get(fwd(self.params, *decoding.place_batch([tok, seg], self.mesh)))
                chunks.append(jax.tree.map(lambda x, k=k: np.asarray(x)[:k], out))
        logits = None if chunks[0][0] is None else np.concatenate([c[0] for c in chunks])
        inter = jax.tree.map(lambda *xs: np.concatenate(xs), *[c[1] for c in chunks])
        batch = {"tokens": tokens, "segments": segments, "mask": mask}
        if logits is not None:
            batch["logits"] = logits
        return _plain(inter), batch

    def _layer_index(self, layer: Any, allow_zero: bool = False) -> int:
        n = self.cfg.num_encoder_layers if self.cfg.encoder_decoder else self.cfg.num_layers
        lo = 0 if allow_zero else 1
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not lo <= layer <= n:
            raise ConfigError(f"layer must be an integer in [{lo}, {n}], got {layer!r}")
        return int(layer)

    def _stack_tree(self, tree: dict[str, Any]) -> dict[str, Any]:
        return tree["encoder"]["stack"] if self.cfg.encoder_decoder else tree["decoder"]

    def hidden_states(self, texts: Sequence[str], layers: Sequence[int] | None = None, *,
                      max_tokens: int | None = None) -> dict[str, Any]:
        """Residual-stream states per requested layer (default: all, 0..L).

        Returns ``states`` {layer: [n, T, d]}, ``mean`` {layer: [n, d]} (mean over the text's own tokens:
        the decoder's start token and the encoder's EOS are left out), ``mask`` [n, T] (True on those
        tokens), ``tokens`` [n, T] (the fed ids, 0-padded) and ``lengths`` [n] (fed tokens per row).
        ``max_tokens`` truncates each text's ids first."""
        n_layers = self.cfg.num_encoder_layers if self.cfg.encoder_decoder else self.cfg.num_layers
        layers = list(range(n_layers + 1)) if layers is None else [self._layer_index(i, True) for i in layers]
        inter, batch = self.intermediates(texts, max_tokens=max_tokens)
        stack = self._stack_tree(inter)
        states = {}
        for i in layers:
            if i == 0:
                x = inter["token_embedder"]["__call__"][0]
                if "position_embedder" in inter:
                    x = x + inter["position_embedder"]["__call__"][0]
            else:
                x = stack[f"layers_{i - 1}"]["__call__"][0]
            states[i] = np.asarray(x, np.float32)
        m = batch["mask"].astype(np.float32)[..., None]
        mean = {i: (s * m).sum(1) / m.sum(1) for i, s in states.items()}
        return {"states": states, "mean": mean, "mask": batch["mask"], "tokens": batch["tokens"],
                "lengths": batch["segments"].sum(1)}

    def attention(self, texts: Sequence[str], layer: int, *, max_tokens: int | None = None) -> np.ndarray:
        """Self-attention weights [n, heads, T, T] of block ``layer`` (1-based; the encoder's for
        encoder-decoders), recomputed from the captured query/key projections with the layer's rotary
        positions, relative bias, scale and (causal / padding) mask. Rows of padding queries are 0."""
        layer = self._layer_index(layer)
        inter, batch = self.intermediates(texts, attention_layer=layer, max_tokens=max_tokens)
        attn = self._stack_tree(inter)[f"layers_{layer - 1}"]["self_attention"]
        q = jnp.asarray(attn["query"]["__call__"][0], jnp.float32)
        k = jnp.asarray(attn["key"]["__call__"][0], jnp.float32)
        bias = None
        relpos = (inter["encoder"] if self.cfg.encoder_decoder else inter).get("relpos")
        if relpos is not None:
            bias = jnp.asarray(relpos["__call__"][0], jnp.float32)
        return np.asarray(attention_weights(self.cfg, q, k, jnp.asarray(batch["segments"]), bias,
                                            causal=not self.cfg.encoder_decoder))

    def unembed(self, states: np.ndarray) -> np.ndarray:
        """Logits from last-layer (or, as a logit lens, any layer's) decoder states [..., d]: final norm
        then the LM head (decoder-only layouts)."""
        if self.cfg.encoder_decoder:
            raise ConfigError("unembed applies to decoder-only layouts (probed states are the encoder's)")
        cfg, p = self.cfg, self.params
        x = Norm(kind=cfg.norm, eps=cfg.norm_eps, use_bias=cfg.use_bias, dtype=cfg.dtype,
                 param_dtype=cfg.param_dtype).apply({"params": p["final_norm"]}, jnp.asarray(states))
        if cfg.tie_embeddings:
            logits = jnp.einsum("...d,vd->...v", x, p["token_embedder"]["embedding"])
        else:
            logits = jnp.tensordot(x, p["lm_head"]["kernel"], axes=1)
            if "bias" in p["lm_head"]:
                logits = logits + p["lm_head"]["bias"]
        if cfg.unpadded_vocab_size is not None and cfg.unpadded_vocab_size < cfg.vocab_size:
            logits = jnp.where(jnp.arange(cfg.vocab_size) < cfg.unpadded_vocab_size, logits,
                               jnp.finfo(logits.dtype).min)
        return np.asarray(logits)


def attention_weights(cfg: ModelConfig, q: jax.Array, k: jax.Array, segments: jax.Array, bias: jax.Array | None,
                      causal: bool) -> jax.Array:
    """Softmax weights [b, heads, q, k] as every ``Attention`` implementation computes them (xla, blocked, cuDNN):
    rotary positions 0..T-1, grouped-query heads (query head h reads kv head h // (heads / kv_heads)),
    scale 1/sqrt(head_dim) unless unscaled (T5), relative bias, then the segment/causal mask."""
    b, t = segments.shape
    if cfg.position == "rope":
        pos = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
        q, k = apply_rope(q, pos, cfg.rope_theta), apply_rope(k, pos, cfg.rope_theta)
    group = cfg.num_heads // cfg.num_kv_heads
    k = jnp.repeat(k, group, axis=2)
    scale = 1.0 / math.sqrt(cfg.head_dim) if cfg.scale_attention else 1.0
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k) * scale
    if bias is not None:
        logits = logits + bias
    mask = attention_mask(segments, segments, causal=causal)
    logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min / 2)
    weights = jax.nn.softmax(logits, axis=-1)
    return jnp.where((segments > 0)[:, None, :, None], weights, 0.0)


def _plain(tree: Any) -> Any:
    """Frozen / nested flax dicts -> plain dicts (tuples of captured outputs kept)."""
    if isinstance(tree, (dict,)) or hasattr(tree, "items"):
        return {k: _plain(v) for k, v in tree.items()}
    return tree


def load(checkpoint_dir: str | Path, *, mesh_shape: Sequence[int] | None = None, vocabulary: Any = None,
         batch_size: int = 32) -> Probe:
    """A ``Probe`` on the checkpoint at ``checkpoint_dir`` (a training MODEL_DIR, a ``checkpoints/<step>``
    directory or a params-only directory). ``mesh_shape`` (data, fsdp, tensor) places the parameters on
    a mesh of the local devices. The vocabulary and its conventions (the decoder's start token) are the ones
    the checkpoint records; ``vocabulary`` ('byte', a sentencepiece .model or tokenizer.json path, a
    seqio.Vocabulary) serves a checkpoint that records none."""
    params, meta = checkpoints.load_params(checkpoint_dir)
    cfg = meta.model
    vocab, conventions = _vocabulary_from(meta, vocabulary)
    mesh = None
    if mesh_shape is not None:
        shape = tuple(int(s) for s in mesh_shape)
        devices = jax.devices()
        if -1 not in shape and 0 < math.prod(shape) < len(devices):  # a mesh over the first devices
            devices = devices[:math.prod(shape)]
        mesh = partitioning.make_mesh(shape, devices=devices)
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    try:
        return Probe(cfg, params, vocab, mesh=mesh, meta=meta, batch_size=batch_size,
                     start_id=conventions.decoder_start_id)
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {checkpoint_dir} does not match its recorded model: {e}") from e


__all__ = ["Probe", "attention_weights", "load"]
