"""Probing a checkpoint from Python: scores, generations, hidden states and attention weights.

``probe = load("results/transfer_demo/base")`` restores the parameters, the model config and the vocabulary
recorded in the checkpoint (``xlt.checkpoints.CheckpointMeta``). Every method takes and returns plain
Python / numpy values.

Token layout (seqio's feature converters, as in training; ``xlt.models.api.ModelAPI.text_tokens``):

* decoder-only: a text (or prompt) is fed as ``[start] + ids(text)``: ``start`` is the recorded
  ``decoder_start_id`` (0, seqio's shifted-in token, for models xlt trained; the BOS of an imported
  Llama or GPT-2); no EOS is appended. ``score`` appends ``ids(continuation)`` to the prompt row
  and sums the log-probability of those tokens.
* encoder-decoder: a text (or prompt) is the encoder input ``ids(text) + [EOS]`` (seqio appends EOS to
  ``inputs``); a continuation is the decoder target ``ids(continuation)``, decoded from the start token.

Internals are captured from the model's own forward through its interface (``ModelAPI.capture``): the
residual stream entering block 1 (layer 0: the embedding output) and leaving every block, and the
softmax weights a block's self-attention computed, sown by the model's ``Stack``, ``Block`` and
``Attention``. Layer ``i`` (1-based) is block ``i`` of the decoder stack, or of the encoder stack for
encoder-decoders. ``unembed`` runs the model's own final norm and LM head. ``intermediates`` also gives
flax's ``capture_intermediates`` of every ``Block``, embedder and relative bias and, for one layer, its
``self_attention`` projections.

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
from xlt.models.api import model_api
from xlt.models.blocks import Block
from xlt.models.config import ModelConfig
from xlt.models.layers import Attention, Dense, Embed, RelativePositionBias


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


def _block_filter(mdl: nn.Module, method_name: str, attention_layer: str | None, stack: tuple[str, ...]) -> bool:
    """Capture Blocks, embedders and relative biases; the self-attention (and its projections) of one layer
    of ``stack`` (a module path prefix)."""
    if method_name != "__call__":
        return False
    if isinstance(mdl, (Block, Embed, RelativePositionBias)):
        return True
    if attention_layer is None or not isinstance(mdl, (Attention, Dense)):
        return False
    path = tuple(mdl.scope.path) if mdl.scope is not None else ()
    if path[:len(stack)] != stack:
        return False
    if isinstance(mdl, Attention):
        return path[-2:] == (attention_layer, "self_attention")
    return path[-3:-1] == (attention_layer, "self_attention")


class Probe:
    """A loaded model with probing methods (see the module docstring for the token layout)."""

    def __init__(self, cfg: ModelConfig, params: Any, vocab: seqio.Vocabulary, *, mesh=None,
                 meta: Any = None, batch_size: int = 32, start_id: int | None = None, eos_id: int | None = None):
        if cfg.scan_layers:
            params = model_api(cfg).unscan(params)
        self.cfg = cfg.replace(scan_layers=False, remat_policy="none", dropout_rate=0.0)
        # The token layout with the checkpoint's conventions (decoder start token, EOS): model_api owns it.
        self.api = model_api(self.cfg, start_id=start_id, eos_id=eos_id)
        self.model = self.api.model
        self.vocab = vocab
        self.mesh = mesh
        self.meta = meta
        self.batch_size = int(batch_size)
        if vocab.vocab_size > self.cfg.vocab_size:
            raise ConfigError(f"vocabulary has {vocab.vocab_size} ids but the model only {self.cfg.vocab_size}")
        self.params = decoding.place_params(self.api, jax.tree.map(jnp.asarray, params), mesh)
        self._jitted: dict[Any, Any] = {}

    @property
    def start_id(self) -> int:
        """The decoder row's first token: the checkpoint's ``decoder_start_id`` (0 for models xlt trained)."""
        return self.api.start_id

    # --- Tokens ------------------------------------------------------------------------------------

    def encode(self, text: str) -> list[int]:
        """The token ids of a text as this probe feeds it (layout in the module docstring)."""
        return self._fed(text)[0]

    def _fed(self, text: str, max_tokens: int | None = None) -> tuple[list[int], slice]:
        """(fed token ids, where the text's own tokens sit among them)."""
        if not isinstance(text, str):
            raise ConfigError(f"expected a string, got {type(text).__name__}")
        return self.api.text_tokens(self.vocab.encode(text), max_tokens)

    def _texts(self, texts: Sequence[str], what: str) -> list[str]:
        if isinstance(texts, str) or not isinstance(texts, Sequence) or len(texts) == 0:
            raise ConfigError(f"{what} must be a non-empty list of strings")
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise ConfigError(f"{what}[{i}] is not a string ({type(t).__name__})")
        return list(texts)

    def _text_ids(self, texts: Sequence[str], what: str) -> list[list[int]]:
        return [self.encode(t) for t in self._texts(texts, what)]

    # --- Scoring and generation ------------------------------------------------------------------

    def score(self, prompts: Sequence[str], continuations: Sequence[str]) -> np.ndarray:
        """Summed log-likelihood [n] of each continuation given its prompt (natural log)."""
        rows = self._text_ids(prompts, "prompts")
        conts = self._texts(continuations, "continuations")
        if len(rows) != len(conts):
            raise ConfigError(f"{len(rows)} prompts but {len(conts)} continuations")
        options = []
        for i, text in enumerate(conts):
            ids = list(self.vocab.encode(text))  # the continuation's own tokens only
            if not ids:
                raise ConfigError(f"continuations[{i}] is empty: nothing to score")
            options.append([ids])
        scores = score_options(self.api, self.params, rows, options, batch_size=self.batch_size, mesh=self.mesh)
        return np.asarray([s.loglik[0] for s in scores], np.float32)

    def generate(self, prompts: Sequence[str], max_new_tokens: int = 32, temperature: float = 0.0,
                 seed: int = 0) -> list[str]:
        """Continuations of each prompt (greedy at temperature 0), decoded up to EOS."""
        rows = self._text_ids(prompts, "prompts")
        out = decoding.generate(self.api, self.params, rows, max_new_tokens=max_new_tokens, eos_id=self.api.eos_id,
                                temperature=temperature, rng=jax.random.key(seed), mesh=self.mesh)
        texts = []
        for toks, n in zip(out.tokens, out.lengths):
            ids = [int(t) for t in toks[:n] if t != self.api.eos_id and t < self.vocab.vocab_size]
            texts.append(self.vocab.decode(ids))
        return texts

    # --- Internals -------------------------------------------------------------------------------

    def _capture_fn(self, attention_layer: int | None, raw_layer: int | None, raw: bool):
        """Jitted ``ModelAPI.capture`` on (params, tokens, segments): the hidden states, the attention weights
        of ``attention_layer`` (1-based) and, with ``raw``, flax's intermediates (with the self-attention
        projections of ``raw_layer``)."""
        key = (attention_layer, raw_layer, raw)
        if key not in self._jitted:
            filt = None
            if raw:
                name = None if raw_layer is None else f"layers_{raw_layer - 1}"
                filt = functools.partial(_block_filter, attention_layer=name, stack=self.api.probed_stack[0])
            layers = () if attention_layer is None else (attention_layer,)

            def fwd(params, tokens, segments):
                return self.api.capture(params, tokens, segments, attention_layers=layers, intermediates=filt)

            self._jitted[key] = jax.jit(fwd)
        return self._jitted[key]

    def _batch(self, texts: Sequence[str], max_tokens: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(tokens [n, T], segments [n, T] 1 on fed tokens, text mask [n, T] 1 on the text's own tokens)."""
        texts = self._texts(texts, "texts")
        if max_tokens is not None and max_tokens < 1:
            raise ConfigError(f"max_tokens must be >= 1, got {max_tokens}")
        fed = [self._fed(t, max_tokens) for t in texts]
        longest = max(len(r) for r, _ in fed)
        self.api.check_length(longest, f"a text of {longest} tokens", hint="; pass max_tokens=")
        width = decoding.bucket(longest, minimum=8)
        if self.api.max_length is not None:
            width = min(width, self.api.max_length)
        tokens = np.zeros((len(fed), width), np.int32)
        segments = np.zeros((len(fed), width), np.int32)
        text = np.zeros((len(fed), width), bool)
        for i, (r, own) in enumerate(fed):
            tokens[i, :len(r)] = r
            segments[i, :len(r)] = 1
            text[i, own] = True
            if not text[i].any():
                raise ConfigError(f"texts[{i}] is empty (no tokens to probe)")
        return tokens, segments, text

    def _run(self, texts: Sequence[str], max_tokens: int | None, *, attention_layer: int | None = None,
             raw_layer: int | None = None, raw: bool = False) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """``ModelAPI.capture`` over the texts in batches (sharded over the mesh's batch axes; filler rows of
        one token), as numpy, and the batch: tokens, segments and mask (the text's own tokens)."""
        tokens, segments, mask = self._batch(texts, max_tokens)
        n = len(tokens)
        shards = decoding.batch_shards(self.mesh)
        per = -(-min(self.batch_size, decoding.bucket(n, minimum=1)) // shards) * shards
        fwd = self._capture_fn(attention_layer, raw_layer, raw)
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
        captured = jax.tree.map(lambda *xs: np.concatenate(xs), *chunks)
        return captured, {"tokens": tokens, "segments": segments, "mask": mask}

    def intermediates(self, texts: Sequence[str], *, attention_layer: int | None = None,
                      max_tokens: int | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Raw captured flax intermediates (numpy; every Block, embedder and relative bias output, plus the
        ``self_attention`` of ``attention_layer`` with its projections) and the batch: tokens, segments,
        mask (the text's own tokens) and, for decoder-only layouts, the logits."""
        layer = None if attention_layer is None else self._layer_index(attention_layer)
        captured, batch = self._run(texts, max_tokens, raw_layer=layer, raw=True)
        if captured["logits"] is not None:
            batch["logits"] = captured["logits"]
        return _plain(captured["intermediates"]), batch

    def _layer_index(self, layer: Any, allow_zero: bool = False) -> int:
        n = self.api.probed_stack[1]
        lo = 0 if allow_zero else 1
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or not lo <= layer <= n:
            raise ConfigError(f"layer must be an integer in [{lo}, {n}], got {layer!r}")
        return int(layer)

    def hidden_states(self, texts: Sequence[str], layers: Sequence[int] | None = None, *,
                      max_tokens: int | None = None) -> dict[str, Any]:
        """Residual-stream states per requested layer (default: all, 0..L).

        Returns ``states`` {layer: [n, T, d]}, ``mean`` {layer: [n, d]} (mean over the text's own tokens:
        the decoder's start token and the encoder's EOS are left out), ``mask`` [n, T] (True on those
        tokens), ``tokens`` [n, T] (the fed ids, 0-padded) and ``lengths`` [n] (fed tokens per row).
        ``max_tokens`` truncates each text's ids first."""
        n_layers = self.api.probed_stack[1]
        layers = list(range(n_layers + 1)) if layers is None else [self._layer_index(i, True) for i in layers]
        captured, batch = self._run(texts, max_tokens)
        states = {i: np.asarray(captured["hidden"][i], np.float32) for i in layers}
        m = batch["mask"].astype(np.float32)[..., None]
        mean = {i: (s * m).sum(1) / m.sum(1) for i, s in states.items()}
        return {"states": states, "mean": mean, "mask": batch["mask"], "tokens": batch["tokens"],
                "lengths": batch["segments"].sum(1)}

    def attention(self, texts: Sequence[str], layer: int, *, max_tokens: int | None = None) -> np.ndarray:
        """Self-attention weights [n, heads, T, T] of block ``layer`` (1-based; the encoder's for
        encoder-decoders): the softmax the layer computed in the model's forward (rotary positions, relative
        bias, scale and causal / padding mask included). Rows of padding queries are 0."""
        layer = self._layer_index(layer)
        captured, batch = self._run(texts, max_tokens, attention_layer=layer)
        weights = np.asarray(captured["attention"][layer], np.float32)
        return np.where(batch["segments"].astype(bool)[:, None, :, None], weights, 0.0)

    def unembed(self, states: np.ndarray) -> np.ndarray:
        """Logits from last-layer (or, as a logit lens, any layer's) decoder states [..., d]: the model's own
        final norm and LM head (decoder-only layouts)."""
        return np.asarray(self.api.unembed(self.params, jnp.asarray(states)))


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
                     start_id=conventions.decoder_start_id, eos_id=conventions.eos_id)
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint {checkpoint_dir} does not match its recorded model: {e}") from e


__all__ = ["Probe", "load"]
