"""One model interface per family: what trainer, evaluator, decoder, probe and tools ask of a model.

``model_api(cfg)`` gives a ``DecoderOnlyAPI`` (the ``gpt`` and ``llama`` layouts) or an ``EncoderDecoderAPI``
(``t5``), in the spirit of t5x's ``DecoderOnlyModel`` / ``EncoderDecoderModel``. Everything that differs
between the families lives here, so code outside ``xlt/models`` never branches on the layout:

* Features: the seqio feature converter a task kind takes (``feature_converter``), the model inputs it
  yields (``input_features``) and the batch shapes of a run (``batch_shapes``); the length a learned
  position table allows (``max_length`` / ``check_length``).
* Parameters: one init batch (``init_batch``), ``init`` with logical axis names, ``abstract_params`` and
  ``param_shardings`` on a mesh (through ``xlt.partitioning``'s rules), the stacks of layers
  (``stacks``) and the unstacking of a scanned checkpoint (``unscan``).
* The training loss (``loss``): plain, or chunked over the sequence with ``ModelConfig.loss_chunk_len``.
* Token layout (``text_tokens``, ``prompt_tokens``, ``target_tokens``) with the start and EOS ids as
  parameters (``model_api(cfg, start_id=..., eos_id=...)``; defaults ``DEFAULT_START_ID`` and
  ``DEFAULT_EOS_ID``, seqio's conventions).
* Cached decoding: ``init_cache``, ``apply_cached``, ``prefill`` and the layout half of generation
  (``decode_start``: the first logits and a step function; ``xlt.decoding`` owns the loop and sampling);
  option scoring (``score_shared``, one prompt computed once for all its options, and ``score_pairs``,
  the reference); the cache sizes to check on a mesh (``generation_cache``, ``scoring_cache``).
* Internals captured from the model's own forward (``capture``): the residual stream entering and
  leaving every block of the probed stack (the decoder, or the encoder of an encoder-decoder) and the
  softmax weights of its self-attention, sown into flax collections by ``Stack``, ``Block`` and
  ``Attention`` (``xlt.models.layers.HIDDEN_STATES`` / ``ATTENTION_WEIGHTS``); ``unembed`` runs the model's
  own layers after its last block (final norm, LM head) on given states.

A ``ModelAPI`` is a frozen dataclass (hashable: a static argument of ``jax.jit``); its module is built once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from xlt import losses, partitioning
from xlt.errors import CheckpointError, ConfigError
from xlt.models.config import ModelConfig
from xlt.models.decoder import Decoder
from xlt.models.encdec import EncoderDecoder
from xlt.models.layers import ATTENTION_WEIGHTS, HIDDEN_STATES, LMHead, Norm, write_slots

Array = jax.Array
Batch = Mapping[str, Array]

# Token conventions (seqio): 0 pads and starts the shifted-right decoder inputs, 1 ends a sequence. The
# one place a vocabulary's own conventions (a BOS id, a decoder start id) enter: model_api's arguments.
PAD_ID = 0
DEFAULT_START_ID = 0
DEFAULT_EOS_ID = 1

# seqio feature converters by task kind: a language-model task (targets only), a prefix-LM (inputs and
# targets in one decoder sequence, inputs attended bidirectionally) and inputs -> targets for an encoder.
CONVERTERS = ("decoder", "prefix_lm", "encdec")
TARGET_FEATURES = ("decoder_target_tokens", "decoder_loss_weights")


@contextlib.contextmanager
def mesh_context(mesh: Mesh | None) -> Iterator[None]:
    """The mesh and the logical axis rules that flax's constraints and boxed parameters resolve against
    (a no-op without a mesh). The one copy: step, decoding, scoring, probe and the tools use it."""
    if mesh is None:
        yield
        return
    with jax.set_mesh(mesh), nn.logical_axis_rules(partitioning.axis_rules()):
        yield


def abstract_unbox(tree: Any) -> Any:
    """Unbox without sharding constraints (safe on abstract values, inside or outside a mesh context)."""
    return jax.tree.map(lambda x: x.unbox(apply_constraint=False) if isinstance(x, nn.Partitioned) else x, tree,
                        is_leaf=lambda x: isinstance(x, nn.Partitioned))


def option_logprobs(logits: Array, targets: Array, weights: Array) -> Array:
    """Sum over positions of log_softmax(logits)[target] where weights, in fp32."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
    picked = jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    return jnp.sum(jnp.where(weights, picked, 0.0), axis=-1)


def _subtree(tree: Mapping[str, Any], path: Sequence[str]) -> Any:
    for part in path:
        tree = tree[part]
    return tree


def _replace_subtree(tree: Mapping[str, Any], path: Sequence[str], value: Any) -> dict[str, Any]:
    out = dict(tree)
    if len(path) == 1:
        out[path[0]] = value
    else:
        out[path[0]] = _replace_subtree(tree[path[0]], path[1:], value)
    return out


def _layer_outputs(node: Mapping[str, Any], name: str, n: int, what: str) -> list[Array]:
    """Per-layer sown values ``name`` of a stack's captured collection: ``layers_i`` (looped) or one ``layers``
    entry stacked over layers (scanned)."""
    if "layers" in node:
        stacked = _subtree(node["layers"], name.split("/"))[0]
        return [stacked[i] for i in range(n)]
    try:
        return [_subtree(node[f"layers_{i}"], name.split("/"))[0] for i in range(n)]
    except KeyError as e:
        raise ConfigError(f"the model's forward recorded no {what} ({e})") from e


@dataclasses.dataclass(frozen=True)
class ModelAPI:
    """The interface of one model family (see the module docstring); build it with ``model_api``."""

    cfg: ModelConfig
    start_id: int = DEFAULT_START_ID
    eos_id: int = DEFAULT_EOS_ID

    # What the family is: set by the subclasses.
    family = "abstract"
    supports_prefix_lm = False  # whether a prompt can be attended bidirectionally in the decoder itself
    converters = ()  # the feature converters (CONVERTERS) that feed the family; the first is its plain LM

    def __post_init__(self):
        for name in ("start_id", "eos_id"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value < self.cfg.vocab_size:
                raise ConfigError(f"{name}={value!r} is outside the vocabulary of {self.cfg.vocab_size}")

    @property
    def layout(self) -> str:
        """The layout's name (``ModelConfig.layout``), for reports."""
        return self.cfg.layout

    @functools.cached_property
    def model(self) -> nn.Module:
        return self._build()

    def _build(self) -> nn.Module:
        raise NotImplementedError

    # --- Features and lengths -------------------------------------------------------------------------

    def feature_converter(self, has_inputs: bool) -> str:
        """The seqio feature converter for a task with (``has_inputs``) or without an ``inputs`` feature."""
        raise NotImplementedError

    def check_converter(self, converter: str) -> None:
        if converter not in self.converters:
            raise ConfigError(f"feature converter {converter!r} does not feed a {self.family} model; choose one "
                              f"of {list(self.converters)}")

    def input_features(self, converter: str, pack: bool) -> tuple[str, ...]:
        """The model-input features (seqio feature-converter names) a batch carries; targets excluded."""
        raise NotImplementedError

    def feature_lengths(self, converter: str, lengths: Mapping[str, int]) -> dict[str, int]:
        """Sequence length of every feature (model inputs and targets) from the task-level lengths."""
        raise NotImplementedError

    def batch_shapes(self, converter: str, lengths: Mapping[str, int], batch_size: int,
                     pack: bool) -> dict[str, tuple[int, int]]:
        """[batch, length] of every feature the converter yields: model inputs, targets and loss weights."""
        self.check_converter(converter)
        per_feature = self.feature_lengths(converter, lengths)
        names = self.input_features(converter, pack) + TARGET_FEATURES
        return {k: (batch_size, per_feature[k]) for k in names}

    @property
    def max_length(self) -> int | None:
        """The longest sequence the positions allow (a learned table's size; None: no limit)."""
        return self.cfg.max_len if self.cfg.position == "learned" else None

    def check_length(self, length: int, what: str, hint: str = "") -> None:
        """One ConfigError for a sequence beyond the learned position table (``what`` names it)."""
        limit = self.max_length
        if limit is not None and length > limit:
            raise ConfigError(f"{what} exceeds the learned position table (ModelConfig.max_len={limit}){hint}")

    def check_continuation_length(self, prompt_len: int, continuation_len: int, what: str) -> None:
        """``check_length`` for a prompt and its continuation (generated tokens, an option): one decoder
        sequence in a decoder-only model, two sequences in an encoder-decoder. ``what`` names the pair."""
        raise NotImplementedError

    def check_prefix_lm(self, prefix_lm: bool) -> None:
        if prefix_lm and not self.supports_prefix_lm:
            raise ConfigError(f"prefix_lm applies to decoder-only layouts; the {self.cfg.layout!r} layout's encoder "
                              "is already bidirectional")

    # --- Parameters ---------------------------------------------------------------------------------------

    def init_batch(self, batch_size: int = 1, length: int = 1) -> dict[str, Array]:
        """The smallest batch of model inputs ``init`` traces (parameter shapes do not depend on it)."""
        return {k: jnp.zeros((batch_size, length), jnp.int32) for k in self.input_features(self.converters[0], False)}

    def init(self, rng: Array) -> Any:
        """Parameters boxed with their logical axis names (``nn.meta.unbox`` for the arrays)."""
        return self.model.init(rng, self.init_batch())["params"]

    def abstract_params(self, mesh: Mesh | None = None) -> Any:
        """Boxed ShapeDtypeStructs of the parameters (``init`` traced, nothing allocated)."""
        with mesh_context(mesh):
            return jax.eval_shape(self.init, jax.random.key(0))

    def param_shardings(self, mesh: Mesh) -> Any:
        """NamedShardings of the parameters from their logical axes, checked for divisibility."""
        return _param_shardings(self, mesh)

    @property
    def stacks(self) -> tuple[tuple[tuple[str, ...], int], ...]:
        """(parameter path, number of layers) of each stack of blocks."""
        raise NotImplementedError

    @property
    def probed_stack(self) -> tuple[tuple[str, ...], int]:
        """The stack whose states ``capture`` reads: the decoder, or an encoder-decoder's encoder."""
        raise NotImplementedError

    def unscan(self, params: Any) -> Any:
        """Parameters of ``scan_layers`` (each stack's ``layers`` with a leading layer axis) in the looped
        layout, ``layers_0`` .. ``layers_{n-1}`` (the same numbers)."""
        for path, n in self.stacks:
            stack = _subtree(params, path)
            if "layers" not in stack:
                raise CheckpointError(f"scan_layers=True in the model config but stack {'/'.join(path)} has no "
                                      "'layers' entry")
            looped = {k: v for k, v in stack.items() if k != "layers"}
            for i in range(n):
                looped[f"layers_{i}"] = jax.tree.map(lambda x, i=i: x[i], stack["layers"])
            params = _replace_subtree(params, path, looped)
        return params

    # --- Training -------------------------------------------------------------------------------------------

    def loss(self, params: Any, batch: Batch, dropout_rng: Array | None = None, z_loss: float = 0.0):
        """Sums over weighted target tokens: (cross-entropy + z-loss, metrics sums), not normalised.

        With ``cfg.loss_chunk_len`` the model returns its final hidden states and LM-head kernel
        (``output="hidden"``) and ``xlt.losses.chunked_cross_entropy`` computes the loss that many positions
        at a time, never building the [batch, length, vocab] logits; otherwise the model returns the logits
        and ``xlt.losses.cross_entropy`` takes them. Both give the same loss, metrics and gradients."""
        cfg = self.cfg
        rngs = {"dropout": dropout_rng} if dropout_rng is not None else None
        variables, deterministic = {"params": params}, dropout_rng is None
        targets, weights = batch["decoder_target_tokens"], batch.get("decoder_loss_weights")
        if cfg.loss_chunk_len:
            hidden, kernel = self.model.apply(variables, batch, deterministic=deterministic, rngs=rngs,
                                              output="hidden")
            return losses.chunked_cross_entropy(hidden, kernel, targets, weights, chunk_len=cfg.loss_chunk_len,
                                                kernel_layout=LMHead.kernel_layout(cfg), z_loss=z_loss,
                                                unpadded_vocab_size=cfg.unpadded_vocab_size)
        logits = self.model.apply(variables, batch, deterministic=deterministic, rngs=rngs)
        return losses.cross_entropy(logits, targets, weights, z_loss=z_loss)

    def logits(self, params: Any, batch: Batch) -> Array:
        """The training forward's [batch, length, vocab] logits (deterministic)."""
        return self.model.apply({"params": params}, batch)

    # --- Token layout -----------------------------------------------------------------------------------------

    def text_tokens(self, ids: Sequence[int], max_tokens: int | None = None) -> tuple[list[int], slice]:
        """A text as the model reads it, and where the text's own tokens sit in it (probing: hidden states,
        attention, a scored prompt). ``max_tokens`` keeps that many of the fed tokens beyond the start."""
        raise NotImplementedError

    def prompt_tokens(self, ids: Sequence[int], max_input_len: int | None = None, reserve: int = 0) -> list[int]:
        """An ``inputs`` feature as training saw it (seqio appends EOS to inputs), its last tokens kept to fit
        ``max_input_len`` with ``reserve`` positions left for a continuation that shares the sequence."""
        raise NotImplementedError

    def target_tokens(self, ids: Sequence[int]) -> list[int]:
        """A ``targets`` feature (an answer option): its ids then EOS."""
        return [int(i) for i in ids] + [self.eos_id]

    def _truncate(self, tokens: list[int], keep: int | None, max_input_len: int | None) -> list[int]:
        if keep is None:
            return tokens
        if keep < 2:
            raise ConfigError(f"max_input_len={max_input_len} leaves no room for a prompt")
        return tokens[-keep:] if len(tokens) > keep else tokens

    # --- Cached decoding and scoring --------------------------------------------------------------------------

    def init_cache(self, batch_size: int, length: int, encoded_length: int | None = None) -> Any:
        """An empty cache of ``length`` slots per row, boxed with its logical axis names (see
        ``xlt.decoding.init_cache``)."""
        raise NotImplementedError

    def apply_cached(self, params: Any, cache: Any, batch: Batch, mode: str = "extend",
                     encoded: Array | None = None) -> tuple[Array, Any]:
        """One cached forward: (logits, new cache). ``mode="shared"`` leaves the cache as it was."""
        raise NotImplementedError

    def prefill(self, params: Any, tokens: Array, lengths: Array, slots: int, *,
                prefix_lm: bool = False) -> tuple[Array, Any]:
        """Write right-padded prompts [rows, width] into a fresh cache of ``slots`` positions in one call
        (bidirectionally with ``prefix_lm``); returns the logits at each row's last prompt token [rows, V] and
        the cache. Padding is not written."""
        raise ConfigError(f"prefill applies to decoder-only models, not a {self.family} one")

    def generation_cache(self, width: int, max_new: int) -> tuple[int, int | None]:
        """(cache slots, encoded length) of a generation from prompts padded to ``width``."""
        raise NotImplementedError

    def scoring_cache(self, width: int) -> tuple[int, int | None] | None:
        """(cache slots, encoded length) of option scoring from prompts padded to ``width`` (None: no cache)."""
        raise NotImplementedError

    def decode_start(self, params: Any, tokens: Array, lengths: Array, max_new: int, *, prefix_lm: bool,
                     use_cache: bool) -> tuple[Array | None, Any, Callable[[Any, Array, Array], tuple[Array, Any]]]:
        """The layout half of generation from right-padded prompts [rows, width] with ``lengths``:
        (logits of generated token 0 or None, the loop state, ``step(state, previous token, i)`` -> (logits
        [rows, vocab] of token i, new state)). Without first logits the loop starts at i = 0 (the previous
        token is then meaningless). ``use_cache=False`` recomputes the training forward every step."""
        raise NotImplementedError

    def score_shared(self, params: Any, prompts: Array, prompt_lens: Array, options: Array, option_lens: Array, *,
                     prefix_lm: bool) -> Array:
        """prompts [n, P], options [n, O, K] -> summed log-likelihood [n, O] (0 for padded options), every
        prompt computed once for all its options."""
        raise NotImplementedError

    def score_pairs(self, params: Any, prompts: Array, prompt_lens: Array, options: Array, option_lens: Array, *,
                    prefix_lm: bool) -> Array:
        """Rows of (prompt [P], option [K]) -> summed option log-likelihood per row, by the training forward."""
        raise NotImplementedError

    # --- Internals ----------------------------------------------------------------------------------------------

    def _probe_apply(self, params: Any, tokens: Array, segments: Array, mutable: list[str],
                     intermediates: Callable | None) -> tuple[Array | None, Any]:
        raise NotImplementedError

    def capture(self, params: Any, tokens: Array, segments: Array, *, attention_layers: Sequence[int] = (),
                intermediates: Callable[[nn.Module, str], bool] | None = None) -> dict[str, Any]:
        """The probed stack's forward on tokens [b, T] (segment ids: 1 on tokens, 0 on padding), recording:

        ``hidden``: L + 1 states [b, T, d], the residual stream entering block 1 (the embedding output) then
        the output of every block; ``attention``: {layer (1-based): softmax weights [b, heads, T, T]} of the
        requested layers' self-attention, the probabilities that produced the layer's output in this forward
        (rows of padding queries attend among the padding); ``logits`` of a decoder-only model (else None);
        ``intermediates``: flax's ``capture_intermediates`` with the given filter (when one is given).
        Under ``jax.jit`` only what is returned is kept, so unrequested layers' weights cost nothing extra."""
        path, n = self.probed_stack
        mutable = [HIDDEN_STATES] + ([ATTENTION_WEIGHTS] if attention_layers else [])
        if intermediates is not None:
            mutable.append("intermediates")
        logits, state = self._probe_apply(params, tokens, segments, mutable, intermediates)
        hid = _subtree(state[HIDDEN_STATES], path)
        out: dict[str, Any] = {"logits": logits,
                               "hidden": [hid["input"][0]] + _layer_outputs(hid, "output", n, "hidden states")}
        if attention_layers:
            weights = _layer_outputs(_subtree(state[ATTENTION_WEIGHTS], path), "self_attention/weights", n,
                                     "attention weights")
            out["attention"] = {int(i): weights[int(i) - 1] for i in attention_layers}
        if intermediates is not None:
            out["intermediates"] = state["intermediates"]
        return out

    def unembed(self, params: Any, states: Array) -> Array:
        """Logits [..., vocab] from decoder states [..., d_model] (the last block's output, or any block's as a
        logit lens): the model's own layers after its last block (final norm, LM head, padded-vocabulary mask)
        applied to them."""
        raise NotImplementedError


@functools.lru_cache(maxsize=32)
def _param_shardings(api: ModelAPI, mesh: Mesh) -> Any:
    boxed = api.abstract_params(mesh)
    shardings = partitioning.logical_sharding(nn.get_partition_spec(boxed), mesh, shapes=abstract_unbox(boxed))
    partitioning.check_divisible(abstract_unbox(boxed), shardings, "parameter")
    return shardings


def _valid(lengths: Array, width: int) -> Array:
    return jnp.arange(width)[None, :] < lengths[:, None]


class DecoderOnlyAPI(ModelAPI):
    """``gpt`` / ``llama``: one causal decoder; a prompt and its continuation share the sequence."""

    family = "decoder-only"
    supports_prefix_lm = True
    converters = ("decoder", "prefix_lm")

    def _build(self) -> nn.Module:
        return Decoder(self.cfg)

    def feature_converter(self, has_inputs: bool) -> str:
        return "prefix_lm" if has_inputs else "decoder"

    def input_features(self, converter: str, pack: bool) -> tuple[str, ...]:
        self.check_converter(converter)
        names = ("decoder_input_tokens",)
        if pack:
            names += ("decoder_segment_ids", "decoder_positions")
        if converter == "prefix_lm":
            names += ("decoder_causal_attention",)
        return names

    def feature_lengths(self, converter: str, lengths: Mapping[str, int]) -> dict[str, int]:
        dec = sum(lengths.values())  # a prefix-LM's inputs and targets share the decoder sequence
        return {k: dec for k in self.input_features(converter, True) + TARGET_FEATURES}

    def check_continuation_length(self, prompt_len, continuation_len, what):
        self.check_length(prompt_len + continuation_len, what)

    @property
    def stacks(self):
        return ((("decoder",), self.cfg.num_layers),)

    @property
    def probed_stack(self):
        return self.stacks[0]

    # Token layout: the decoder reads [start] + ids (seqio's targets shifted right).

    def text_tokens(self, ids, max_tokens=None):
        ids = [int(i) for i in ids]
        if max_tokens is not None:
            ids = ids[:max_tokens]
        return [self.start_id] + ids, slice(1, 1 + len(ids))

    def prompt_tokens(self, ids, max_input_len=None, reserve=0):
        tokens = [self.start_id] + [int(i) for i in ids] + [self.eos_id]
        keep = None if max_input_len is None else max_input_len - reserve  # the continuation follows in-sequence
        return self._truncate(tokens, keep, max_input_len)

    # Cached decoding.

    def init_cache(self, batch_size, length, encoded_length=None):
        batch = {"decoder_input_tokens": jnp.zeros((batch_size, length), jnp.int32),
                 "decoder_positions": jnp.zeros((batch_size, length), jnp.int32)}
        return self.model.init(jax.random.key(0), batch, cache_mode="extend")["cache"]

    def apply_cached(self, params, cache, batch, mode="extend", encoded=None):
        variables = {"params": params, "cache": cache}
        if mode == "extend":
            logits, state = self.model.apply(variables, batch, cache_mode=mode, mutable=["cache"])
            return logits, state["cache"]
        return self.model.apply(variables, batch, cache_mode=mode), cache

    def prefill(self, params, tokens, lengths, slots, *, prefix_lm=False):
        rows, width = tokens.shape
        valid = _valid(lengths, width)
        cache = nn.meta.unbox(self.init_cache(rows, slots))
        prompt = {"decoder_input_tokens": tokens, "decoder_positions": jnp.where(valid, jnp.arange(width), 0),
                  "decoder_segment_ids": valid.astype(jnp.int32)}
        if prefix_lm:
            prompt["decoder_causal_attention"] = valid.astype(jnp.int32)
        logits, cache = self.apply_cached(params, cache, prompt)
        return jnp.take_along_axis(logits, (lengths - 1)[:, None, None], axis=1)[:, 0], cache

    def generation_cache(self, width, max_new):
        return width + max_new, None

    def scoring_cache(self, width):
        return width, None

    def _position_ids(self, length: int) -> Array:
        """0..length-1, clipped into a learned position table (slots past it only ever hold padding)."""
        pos = jnp.arange(length, dtype=jnp.int32)
        return pos if self.max_length is None else jnp.minimum(pos, self.max_length - 1)

    def decode_start(self, params, tokens, lengths, max_new, *, prefix_lm, use_cache):
        rows, width = tokens.shape
        slots = width + max_new
        last = lengths - 1  # position of each row's last prompt token
        if use_cache:
            first, cache = self.prefill(params, tokens, lengths, slots, prefix_lm=prefix_lm)

            def step(cache, tok, i):  # token i-1 sits at position len + i - 1
                b = {"decoder_input_tokens": tok[:, None], "decoder_positions": (last + i)[:, None]}
                logits, cache = self.apply_cached(params, cache, b)
                return logits[:, 0], cache

            return first, cache, step

        buf = jnp.pad(tokens, ((0, 0), (0, max_new)))
        full_batch = {"decoder_positions": jnp.broadcast_to(self._position_ids(slots), (rows, slots))}
        if prefix_lm:
            full_batch["decoder_causal_attention"] = _valid(lengths, slots).astype(jnp.int32)

        def full(buf, pos):
            logits = self.logits(params, {**full_batch, "decoder_input_tokens": buf})
            return jnp.take_along_axis(logits, pos[:, None, None], axis=1)[:, 0]

        def step_full(buf, tok, i):  # token i-1 at position len + i - 1; nothing to write before token 0
            buf = write_slots(buf, tok[:, None], jnp.where(i > 0, last + i, slots)[:, None])
            return full(buf, last + i), buf

        return None, buf, step_full

    def score_shared(self, params, prompts, prompt_lens, options, option_lens, *, prefix_lm):
        n, width = prompts.shape
        _, n_opts, opt_width = options.shape
        o_valid = jnp.arange(opt_width)[None, None, :] < option_lens[..., None]  # [n, O, K]
        flat = options.reshape(n * n_opts, opt_width)
        last, cache = self.prefill(params, prompts, prompt_lens, width, prefix_lm=prefix_lm)  # last: [n, V]
        # The first option token is predicted by the prompt's last position ...
        first = jnp.take_along_axis(jax.nn.log_softmax(last.astype(jnp.float32), axis=-1), options[:, :, 0], axis=1)
        first = jnp.where(option_lens > 0, first, 0.0)
        # ... the others by the option's own positions, all options of a prompt in one forward on its cache.
        positions = jnp.where(o_valid, prompt_lens[:, None, None] + jnp.arange(opt_width), 0)
        chunk = {"decoder_input_tokens": flat, "decoder_positions": positions.reshape(flat.shape)}
        logits, _ = self.apply_cached(params, cache, chunk, mode="shared")
        rest = option_logprobs(logits[:, :-1], flat[:, 1:], o_valid.reshape(flat.shape)[:, 1:])
        return first + rest.reshape(n, n_opts)

    def score_pairs(self, params, prompts, prompt_lens, options, option_lens, *, prefix_lm):
        # Prompt then option in one row, option token k at position len + k.
        width, opt_width = prompts.shape[1], options.shape[1]
        length = width + opt_width
        pos = jnp.arange(length)[None, :]
        offset = jnp.clip(pos - prompt_lens[:, None], 0, opt_width - 1)
        option_part = jnp.take_along_axis(options, offset, axis=1)
        in_option = (pos >= prompt_lens[:, None]) & (pos < (prompt_lens + option_lens)[:, None])
        in_prompt = pos < prompt_lens[:, None]
        tokens = jnp.where(in_prompt, jnp.pad(prompts, ((0, 0), (0, opt_width))),
                           jnp.where(in_option, option_part, PAD_ID))
        batch = {"decoder_input_tokens": tokens, "decoder_positions": jnp.where(in_prompt | in_option, pos, 0)}
        if prefix_lm:
            batch["decoder_causal_attention"] = in_prompt.astype(jnp.int32)
        logits = self.logits(params, batch)
        # Position t predicts token t + 1: the option's tokens are predicted from len - 1 .. len + n - 2.
        targets = jnp.pad(tokens[:, 1:], ((0, 0), (0, 1)))
        weights = jnp.pad(in_option[:, 1:], ((0, 0), (0, 1)))
        return option_logprobs(logits, targets, weights)

    # Internals.

    def _probe_apply(self, params, tokens, segments, mutable, intermediates):
        batch = {"decoder_input_tokens": tokens, "decoder_segment_ids": segments}
        return self.model.apply({"params": params}, batch, mutable=mutable,
                                capture_intermediates=intermediates or False)

    def unembed(self, params, states):
        return _unembed(self, params, jnp.asarray(states))


@functools.partial(jax.jit, static_argnums=0)
def _unembed(api: DecoderOnlyAPI, params: Any, states: Array) -> Array:
    """The decoder's forward on dummy tokens with the input of its final norm replaced by ``states`` (flax's
    method interception): the layers after the last block run exactly as in the model; the discarded
    stack is dead code XLA removes."""
    lead, d = states.shape[:-1], states.shape[-1]
    flat = states.reshape(-1, 1, d)

    def replace_final_norm_input(next_fun, args, kwargs, context):
        module = context.module
        if (context.method_name == "__call__" and isinstance(module, Norm) and module.scope is not None
                and tuple(module.scope.path) == ("final_norm",)):
            return next_fun(flat.astype(args[0].dtype), *args[1:], **kwargs)
        return next_fun(*args, **kwargs)

    tokens = jnp.full(flat.shape[:2], PAD_ID, jnp.int32)
    with nn.intercept_methods(replace_final_norm_input):
        logits = api.logits(params, {"decoder_input_tokens": tokens})
    return logits.reshape(lead + logits.shape[-1:])


class EncoderDecoderAPI(ModelAPI):
    """``t5``: an encoder reads the inputs, a decoder with cross-attention produces the targets from the
    start id. Probing reads the encoder."""

    family = "encoder-decoder"
    supports_prefix_lm = False
    converters = ("encdec",)

    def _build(self) -> nn.Module:
        return EncoderDecoder(self.cfg)

    def feature_converter(self, has_inputs: bool) -> str:
        return "encdec"  # inputs -> targets (seqio's converter needs the task to have inputs)

    def input_features(self, converter, pack):
        self.check_converter(converter)
        names = ("encoder_input_tokens", "decoder_input_tokens")
        if pack:
            names += ("encoder_segment_ids", "encoder_positions", "decoder_segment_ids", "decoder_positions")
        return names

    def feature_lengths(self, converter, lengths):
        enc, dec = lengths["inputs"], lengths["targets"]
        return {k: enc if k.startswith("encoder_") else dec
                for k in self.input_features(converter, True) + TARGET_FEATURES}

    def check_continuation_length(self, prompt_len, continuation_len, what):
        self.check_length(prompt_len, what)
        self.check_length(continuation_len, what)

    @property
    def stacks(self):
        return ((("encoder", "stack"), self.cfg.num_encoder_layers), (("decoder", "stack"), self.cfg.num_layers))

    @property
    def probed_stack(self):
        return self.stacks[0]

    # Token layout: the encoder reads ids + [EOS]; the decoder starts from the start id.

    def text_tokens(self, ids, max_tokens=None):
        ids = [int(i) for i in ids]
        tokens = ids + [self.eos_id]
        if max_tokens is not None:
            tokens = tokens[:max_tokens]
        return tokens, slice(0, min(len(ids), len(tokens)))

    def prompt_tokens(self, ids, max_input_len=None, reserve=0):
        del reserve  # the continuation is decoded in its own sequence
        return self._truncate([int(i) for i in ids] + [self.eos_id], max_input_len, max_input_len)

    def _decoder_inputs(self, targets: Array) -> Array:
        """seqio's shifted-right targets: the start id, then every target but the last."""
        return jnp.pad(targets[:, :-1], ((0, 0), (1, 0)), constant_values=self.start_id)

    def _encoder_batch(self, tokens: Array, lengths: Array) -> dict[str, Array]:
        return {"encoder_input_tokens": tokens,
                "encoder_segment_ids": _valid(lengths, tokens.shape[1]).astype(jnp.int32)}

    # Cached decoding.

    def init_cache(self, batch_size, length, encoded_length=None):
        if encoded_length is None:
            raise ConfigError("init_cache for an encoder-decoder needs encoded_length")
        encoded = jnp.zeros((batch_size, encoded_length, self.cfg.d_model), self.cfg.dtype)
        batch = {"decoder_input_tokens": jnp.zeros((batch_size, length), jnp.int32),
                 "decoder_positions": jnp.zeros((batch_size, length), jnp.int32),
                 "encoder_input_tokens": jnp.zeros((batch_size, encoded_length), jnp.int32)}
        return self.model.init(jax.random.key(0), encoded, batch, cache_mode="extend", method="decode")["cache"]

    def apply_cached(self, params, cache, batch, mode="extend", encoded=None):
        variables = {"params": params, "cache": cache}
        if mode == "extend":
            logits, state = self.model.apply(variables, encoded, batch, cache_mode=mode, mutable=["cache"],
                                             method="decode")
            return logits, state["cache"]
        return self.model.apply(variables, encoded, batch, cache_mode=mode, method="decode"), cache

    def generation_cache(self, width, max_new):
        return max_new, width

    def scoring_cache(self, width):
        return None  # options decode against the encoding, uncached

    def decode_start(self, params, tokens, lengths, max_new, *, prefix_lm, use_cache):
        self.check_prefix_lm(prefix_lm)
        rows, width = tokens.shape
        enc = self._encoder_batch(tokens, lengths)
        if use_cache:
            encoded = self.model.apply({"params": params}, enc, method="encode")
            cache = nn.meta.unbox(self.init_cache(rows, max_new, width))
            first = {"decoder_input_tokens": jnp.full((rows, 1), self.start_id, jnp.int32),
                     "decoder_positions": jnp.zeros((rows, 1), jnp.int32), **enc}
            logits, cache = self.apply_cached(params, cache, first, encoded=encoded)

            def step(cache, tok, i):
                b = {"decoder_input_tokens": tok[:, None], "decoder_positions": jnp.full((rows, 1), i), **enc}
                logits, cache = self.apply_cached(params, cache, b)
                return logits[:, 0], cache

            return logits[:, 0], cache, step

        def full(buf, i):
            return self.logits(params, {**enc, "decoder_input_tokens": buf})[:, i]

        buf = jnp.zeros((rows, max_new), jnp.int32).at[:, 0].set(self.start_id)

        def step_full(buf, tok, i):  # token i-1 at position i (position 0 keeps the start token)
            buf = write_slots(buf, tok[:, None], jnp.full((rows, 1), jnp.where(i > 0, i, max_new)))
            return full(buf, i), buf

        return None, buf, step_full

    def score_shared(self, params, prompts, prompt_lens, options, option_lens, *, prefix_lm):
        self.check_prefix_lm(prefix_lm)
        n, _ = prompts.shape
        _, n_opts, opt_width = options.shape
        o_valid = jnp.arange(opt_width)[None, None, :] < option_lens[..., None]  # [n, O, K]
        flat = options.reshape(n * n_opts, opt_width)
        enc = self._encoder_batch(prompts, prompt_lens)
        encoded = self.model.apply({"params": params}, enc, method="encode")  # once per prompt
        dec = {**enc, "decoder_input_tokens": self._decoder_inputs(flat)}
        logits = self.model.apply({"params": params}, encoded, dec, cache_mode="shared", method="decode")
        return option_logprobs(logits, flat, o_valid.reshape(flat.shape)).reshape(n, n_opts)

    def score_pairs(self, params, prompts, prompt_lens, options, option_lens, *, prefix_lm):
        self.check_prefix_lm(prefix_lm)
        o_valid = jnp.arange(options.shape[1])[None, :] < option_lens[:, None]
        batch = {**self._encoder_batch(prompts, prompt_lens), "decoder_input_tokens": self._decoder_inputs(options)}
        return option_logprobs(self.logits(params, batch), options, o_valid)

    # Internals.

    def _probe_apply(self, params, tokens, segments, mutable, intermediates):
        batch = {"encoder_input_tokens": tokens, "encoder_segment_ids": segments}
        _, state = self.model.apply({"params": params}, batch, method="encode", mutable=mutable,
                                    capture_intermediates=intermediates or False)
        return None, state

    def unembed(self, params, states):
        raise ConfigError("unembed applies to decoder-only layouts (probed states are the encoder's)")


def model_api(model: ModelConfig | nn.Module | ModelAPI, *, start_id: int | None = None,
              eos_id: int | None = None) -> ModelAPI:
    """The interface of a model config, an xlt model (``Decoder`` / ``EncoderDecoder``) or an existing API
    (returned as is unless new token conventions are given). ``start_id`` / ``eos_id`` default to seqio's
    (``DEFAULT_START_ID``, ``DEFAULT_EOS_ID``)."""
    if isinstance(model, ModelAPI):
        changes = {k: v for k, v in (("start_id", start_id), ("eos_id", eos_id)) if v is not None}
        return dataclasses.replace(model, **changes) if changes else model
    cfg = model if isinstance(model, ModelConfig) else getattr(model, "cfg", None)
    if not isinstance(cfg, ModelConfig):
        raise ConfigError(f"expected an xlt model (Decoder or EncoderDecoder) or a ModelConfig, got "
                          f"{type(model).__name__}")
    family = EncoderDecoderAPI if cfg.encoder_decoder else DecoderOnlyAPI
    return family(cfg, DEFAULT_START_ID if start_id is None else start_id,
                  DEFAULT_EOS_ID if eos_id is None else eos_id)


__all__ = ["CONVERTERS", "DEFAULT_EOS_ID", "DEFAULT_START_ID", "DecoderOnlyAPI", "EncoderDecoderAPI", "ModelAPI",
           "PAD_ID", "abstract_unbox", "mesh_context", "model_api", "option_logprobs"]
