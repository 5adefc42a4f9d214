"""xlt as an lm-evaluation-harness backend: every harness task on an xlt checkpoint, on one device or a mesh.

The harness (``lm-eval`` 0.4.13, the ``harness`` extra) asks a model three kinds of request; ``XltLM``
answers them with xlt's own machinery:

* ``loglikelihood`` (multiple-choice and single-continuation tasks): requests are tokenised exactly as the
  harness's ``hf`` backend does (``TemplateLM._encode_pair``: trailing context whitespace moved to the
  continuation; an empty context becomes the prefix token, BOS or else EOS; the context truncated from the
  left so that context + continuation fit ``max_length`` + 1 tokens), then grouped by their (truncated)
  context and scored with ``xlt.evaluation.scoring.score_options``: each distinct context is computed
  once, all its continuations against it. ``is_greedy`` (used by ``acc`` of lambada-style tasks and the
  ``exact_match`` of multiple-choice ones) is read off one greedy ``xlt.decoding.generate`` per context,
  as long as its longest continuation: a continuation is the greedy one exactly when it is a prefix of
  that generation (each greedy step then conditions on the same tokens as the scored continuation).
* ``loglikelihood_rolling`` (perplexity tasks): the document is cut into the harness's disjoint rolling
  windows (``get_rolling_token_windows`` / ``make_disjoint_window``, each of at most ``max_length``
  tokens, the first conditioned on the prefix token) and every window scored as above.
* ``generate_until``: contexts encoded as the hf backend encodes a generation batch (left-truncated to
  ``max_length - max_gen_toks`` tokens for decoder-only models), greedy (or sampled with ``do_sample``)
  generation with the KV cache up to ``max_gen_toks`` tokens or EOS, decoded without special tokens and
  cut at the first stop sequence of ``until`` (the EOS text added), as ``postprocess_generated_text`` does.

Encoder-decoders (T5 / mT5) are handled as the hf backend handles ``AutoModelForSeq2SeqLM``: the context is
the encoder input (with the tokenizer's EOS), the continuation the decoder target, decoded from the
decoder start token. Differences from the hf backend, by design: (1) for learned absolute positions
(GPT-2) the default ``max_length`` is the position table size minus one, because xlt's scorer also feeds
the last continuation token; (2) for encoder-decoders a generation is at most ``max_gen_toks`` tokens (the
hf backend passes ``max_length = context width + max_gen_toks`` to ``generate``, which for a seq2seq
model bounds the decoder alone, so it may generate more).

Use it from the harness's own command line (``python -m xlt.harness`` registers the model and hands every
argument to lm-eval's CLI unchanged; lm-eval 0.4.13 has no plugin discovery)::

    python -m xlt.harness --model xlt --model_args checkpoint=DIR,mesh_shape=1x2x4 --batch_size 16 \\
        --tasks xnli_de --include_path my_tasks/

or from Python with ``run_harness_tasks``. ``batch_size`` is the number of distinct contexts (with all
their continuations) or generation prompts per forward; lm-eval passes it to the model itself.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jax
import numpy as np

from xlt import decoding
from xlt.errors import CheckpointError, ConfigError, DataError, XltError
from xlt.evaluation.scoring import score_options
from xlt.models.api import ModelAPI, model_api

try:  # the optional ``harness`` extra
    from lm_eval import utils as lm_utils
    from lm_eval.api.model import TemplateLM
    from lm_eval.models import utils as lm_model_utils
except ImportError as e:  # pragma: no cover - only without the extra
    raise ImportError("xlt.harness needs lm-evaluation-harness: pip install -e '.[harness]'") from e

from tqdm import tqdm

log = logging.getLogger(__name__)

MODEL_NAME = "xlt"
LM_EVAL_PREFIX = "lm_eval:"  # how xlt's benchmark lists name a harness task (``lm_eval:xnli_ko``)
DEFAULT_MAX_LENGTH = 2048  # lm-eval's own default when nothing records a context length
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "spiece.model", "tokenizer.model",
                   "sentencepiece.bpe.model", "vocab.json")


# --- Tokenizers --------------------------------------------------------------------------------------------


def _load_tokenizer(checkpoint_dir: str | Path):
    """The Hugging Face tokenizer an imported checkpoint carries, or None for xlt-trained checkpoints.

    ``tools/convert_hf.py`` copies the tokenizer files of the source model into ``<checkpoint>/hf/``;
    fine-tuned models keep the import as an ancestor directory, so the parent and grandparent are looked at
    too (as ``xlt.probe`` looks for the sentencepiece model). The one place that knows where the tokenizer
    lives: switch it to the checkpoint record once that carries the vocabulary."""
    from xlt import paths

    where = paths.path(checkpoint_dir)
    for root in (where, where.parent, where.parent.parent):
        if paths.is_url(root) and str(root).rstrip("/").count("/") < 2:  # above gs://bucket: no such folder
            continue
        hf_dir = root / "hf"
        if hf_dir.is_dir() and any((hf_dir / f).is_file() for f in TOKENIZER_FILES):
            import transformers

            try:
                # transformers reads local files: a bucket's hf/ is read through a local copy (as the vocabulary is)
                return transformers.AutoTokenizer.from_pretrained(str(paths.local_tree(hf_dir)))
            except (OSError, ValueError, KeyError) as e:
                raise CheckpointError(f"cannot load the Hugging Face tokenizer in {hf_dir}: "
                                      f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    return None


# lm-eval's two request layouts, by model family: causal (context and continuation in one sequence) or seq2seq
# (context to the encoder, continuation to the decoder).
LM_EVAL_LAYOUT = {"decoder-only": "causal", "encoder-decoder": "seq2seq"}


class SeqioTokenizer:
    """A seqio vocabulary (an xlt-trained checkpoint's byte or sentencepiece vocabulary) behind the small
    part of the Hugging Face tokenizer interface the harness uses, with xlt's token layout (seqio's
    feature converters, as ``xlt.probe`` feeds text): decoder-only models see ``[0] + ids`` (the 0 is the
    shifted-in start token, here the prefix/BOS token); encoder inputs are ``ids + [EOS]``. ``encode``
    with ``add_special_tokens=False`` gives the bare ids (continuations)."""

    pad_token_id = decoding.PAD_ID
    eos_token_id = decoding.EOS_ID

    def __init__(self, vocab: Any, api: ModelAPI):
        self.vocab = vocab
        self.api = api  # the token layout (start token, EOS) is the model interface's
        starts = api.text_tokens([])[0][:1] == [api.start_id]  # decoder-only rows begin with the start token
        self.bos_token_id = api.start_id if starts else None
        self.name_or_path = type(vocab).__name__
        self.pad_token, self.eos_token, self.bos_token = "<pad>", "</s>", "<pad>" if starts else None

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = [int(i) for i in self.vocab.encode(text)]
        if not add_special_tokens:
            return ids
        return self.api.text_tokens(ids)[0]

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
        ids = [int(i) for i in ids]
        if not skip_special_tokens:
            specials = {decoding.PAD_ID: "<pad>", decoding.EOS_ID: "</s>"}
            if len(ids) == 1 and ids[0] in specials:
                return specials[ids[0]]
        # 0 pad, 1 EOS, 2 UNK (seqio's reserved ids); ids past the vocabulary are vocabulary padding.
        return self.vocab.decode([i for i in ids if 2 <= i < self.vocab.vocab_size])


# --- Options ------------------------------------------------------------------------------------------------


def parse_mesh_shape(value: Any) -> tuple[int, ...] | None:
    """``1x2x4`` (lm-eval's ``--model_args`` cannot hold commas inside a value), or a sequence of ints."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        parts = value.lower().replace("*", "x").split("x")
    elif isinstance(value, Sequence):
        parts = list(value)
    else:
        raise ConfigError(f"mesh_shape must look like 1x2x4 (data x fsdp x tensor), got {value!r}")
    try:
        return tuple(int(p) for p in parts)
    except (TypeError, ValueError):
        raise ConfigError(f"mesh_shape must look like 1x2x4 (data x fsdp x tensor), got {value!r}") from None


def _positive_int(name: str, value: Any) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = None
    if n is None or n < 1 or (isinstance(value, float) and n != value) or isinstance(value, bool):
        hint = " (xlt does not detect batch sizes: pass an integer)" if str(value).startswith("auto") else ""
        raise ConfigError(f"{name} must be a positive integer, got {value!r}{hint}")
    return n


def _as_bool(name: str, value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ConfigError(f"{name} must be true or false, got {value!r}")


def _default_max_length(meta: dict[str, Any], cfg: Any, tokenizer: Any) -> int:
    """The context length the hf backend would use for the same model (its ``resolve_max_length``: the
    Hugging Face config's n_positions / max_position_embeddings / n_ctx, else the tokenizer's
    model_max_length, else 2048), for imported models; xlt's ``max_len`` for xlt-trained ones. Learned
    position tables are one short of it (see the module docstring)."""
    hf_config = (getattr(meta, "source", None) or {}).get("hf_config")
    if isinstance(hf_config, dict):
        length = lm_model_utils.resolve_max_length(SimpleNamespace(**hf_config), tokenizer, default=DEFAULT_MAX_LENGTH)
    else:
        length = int(cfg.max_len)
    position_limit = model_api(cfg).max_length  # a learned position table's size, else None
    if position_limit is not None:
        length = min(length, position_limit - 1)
    return int(length)


# --- The model ----------------------------------------------------------------------------------------------


class XltLM(TemplateLM):
    """An xlt checkpoint (or loaded model) as an lm-eval ``LM``; see the module docstring.

    Model arguments (``--model_args k=v,...``): ``checkpoint`` (a params-only / imported checkpoint, a
    training MODEL_DIR or one of its ``checkpoints/<step>`` directories), ``mesh_shape`` (``data x fsdp x
    tensor``, e.g. ``1x2x4``; default one device), ``max_length`` (context window in tokens; default as
    the hf backend resolves it), ``max_gen_toks`` (default 256), ``add_bos_token`` and ``prefix_token_id``
    (as the hf backend's), ``seed`` (for ``do_sample``). lm-eval itself passes ``batch_size``,
    ``max_batch_size`` and ``device`` (xlt places arrays by JAX devices and the mesh; ``device`` is
    ignored). From Python, ``model``, ``params`` and ``tokenizer`` (and optionally ``mesh``) may be given
    instead of a checkpoint, e.g. the live parameters of a training run.
    """

    def __init__(self, checkpoint: str | Path | None = None, mesh_shape: Any = None, batch_size: Any = 1,
                 max_length: Any = None, max_gen_toks: Any = 256, add_bos_token: Any = None,
                 prefix_token_id: Any = None, seed: Any = 0, max_batch_size: Any = None, device: Any = None,
                 trust_remote_code: Any = None, *, model: Any = None, params: Any = None, tokenizer: Any = None,
                 mesh: Any = None, meta: dict[str, Any] | None = None):
        super().__init__()
        del max_batch_size, trust_remote_code  # lm-eval passes them to every model; nothing to do with them
        if device not in (None, "", "cpu", "cuda") and not str(device).startswith(("cuda:", "tpu")):
            log.info("xlt places arrays by JAX devices and mesh_shape; device=%r is ignored", device)
        self.batch_size_per_call = _positive_int("batch_size", batch_size)
        if checkpoint is not None:
            if model is not None or params is not None:
                raise ConfigError("pass either checkpoint= or model= and params=, not both")
            from xlt import probe as xlt_probe

            tokenizer = tokenizer if tokenizer is not None else _load_tokenizer(checkpoint)
            # The checkpoint's recorded vocabulary is checked on load; the harness then tokenises with the Hugging
            # Face tokenizer of an imported model (the same file), or with the recorded seqio vocabulary.
            loaded = xlt_probe.load(checkpoint, mesh_shape=parse_mesh_shape(mesh_shape),
                                    batch_size=self.batch_size_per_call)
            # The interface carries the recorded token conventions (decoder start, EOS), as the evaluator's does.
            model, params, mesh, meta = loaded.api, loaded.params, loaded.mesh, loaded.meta
            if tokenizer is None:
                tokenizer = SeqioTokenizer(loaded.vocab, loaded.api)
            self.checkpoint = str(checkpoint)
        else:
            if model is None or params is None or tokenizer is None:
                raise ConfigError("XltLM needs checkpoint=DIR (or model=, params= and tokenizer=)")
            if mesh_shape is not None:
                raise ConfigError("mesh_shape applies to checkpoint=; pass mesh= with a loaded model")
            params = decoding.place_params(model, params, mesh)
            self.checkpoint = None
        self.model, self.params, self.mesh, self.tokenizer = model, params, mesh, tokenizer
        self.meta = meta  # the checkpoint's CheckpointMeta (None for a model given in Python)
        self.cfg = decoding.model_cfg(model)
        # The one layout fact the harness needs: which of lm-eval's two request layouts applies.
        self.backend = LM_EVAL_LAYOUT[model_api(model).family]
        self._max_length = (_default_max_length(self.meta, self.cfg, tokenizer) if max_length is None
                            else _positive_int("max_length", max_length))
        position_limit = model_api(model).max_length  # a learned position table's size, else None
        if position_limit is not None and self._max_length >= position_limit:
            raise ConfigError(f"max_length={self._max_length} must be below the learned position table "
                              f"(max_len={self.cfg.max_len}): xlt also feeds the last continuation token")
        # Prompt + generated tokens must fit a learned position table; other position kinds have no bound.
        self._position_limit = math.inf if position_limit is None else position_limit
        self._max_gen_toks = _positive_int("max_gen_toks", max_gen_toks)
        self.add_bos_token = _as_bool("add_bos_token", add_bos_token)
        self.custom_prefix_token_id = None if prefix_token_id is None else int(prefix_token_id)
        self.seed = int(seed)
        if self.eot_token_id is None:
            raise ConfigError("the tokenizer has no EOS token (needed for generation and empty contexts)")

    # --- lm-eval's model properties ------------------------------------------------------------------

    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def prefix_token_id(self) -> int:
        if self.custom_prefix_token_id is not None:
            return self.custom_prefix_token_id
        bos = getattr(self.tokenizer, "bos_token_id", None)
        return bos if bos is not None else self.tokenizer.eos_token_id

    @property
    def max_length(self) -> int:
        return self._max_length

    @property
    def max_gen_toks(self) -> int:
        return self._max_gen_toks

    @property
    def batch_size(self) -> int:
        return self.batch_size_per_call

    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.tokenizer, "name_or_path", type(self.tokenizer).__name__)).replace("/", "__")

    def get_model_info(self) -> dict[str, Any]:
        n_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(self.params))
        return {"model_num_parameters": n_params, "model_dtype": self.cfg.dtype, "model_layout": self.cfg.layout,
                "xlt_checkpoint": self.checkpoint,
                "mesh_shape": None if self.mesh is None else dict(self.mesh.shape)}

    # --- Tokenisation (the hf backend's) -------------------------------------------------------------

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, left_truncate_len: int | None = None,
                   **kwargs) -> list[int]:
        """As ``HFLM.tok_encode``: the tokenizer's own special tokens unless told otherwise (or the text
        already starts with the prefix token's text)."""
        if add_special_tokens is None:
            add_special_tokens = self.add_bos_token
            prefix_text = self.tokenizer.decode([self.prefix_token_id], skip_special_tokens=False)
            if prefix_text and string.startswith(prefix_text):
                add_special_tokens = False
        kw = {} if add_special_tokens is None else {"add_special_tokens": bool(add_special_tokens)}
        ids = list(self.tokenizer.encode(string, **kw))
        return ids[-left_truncate_len:] if left_truncate_len else ids

    def _encode_context(self, string: str, left_truncate_len: int) -> list[int]:
        """A generation context as ``HFLM.tok_batch_encode`` encodes one row: decoder-only models take the
        tokenizer default (or ``add_bos_token``; nothing added if the text starts with BOS), encoders the
        tokenizer default; then left truncation."""
        kw: dict[str, bool] = {}
        if self.backend == "causal":
            bos = getattr(self.tokenizer, "bos_token", None)
            if bos and string.startswith(bos):
                kw = {"add_special_tokens": False}
            elif self.add_bos_token is not None:
                kw = {"add_special_tokens": self.add_bos_token}
        ids = list(self.tokenizer.encode(string, **kw))
        return ids[-left_truncate_len:] if left_truncate_len else ids

    def tok_decode(self, tokens: Iterable[int], skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(list(tokens), skip_special_tokens=skip_special_tokens)

    # --- Scoring ------------------------------------------------------------------------------------

    def _fitted(self, context: list[int], continuation: list[int]) -> tuple[int, ...]:
        """The context tokens fed before ``continuation``, truncated from the left as the hf backend
        truncates its input: (context + continuation)[-(max_length + 1):][:-1] for decoder-only models,
        context[-max_length:] for encoders."""
        if not context or not continuation:
            raise DataError("a loglikelihood request needs a non-empty context and continuation (after tokenising)")
        if len(continuation) > self.max_length:
            raise DataError(f"a continuation of {len(continuation)} tokens exceeds max_length={self.max_length}")
        if self.backend == "causal":
            excess = len(context) + len(continuation) - (self.max_length + 1)
            return tuple(context[max(excess, 0):])
        return tuple(context[-self.max_length:])

    def _greedy_prefixes(self, prompts: list[tuple[int, ...]], options: list[list[list[int]]]) -> list[list[bool]]:
        """Per option: is it what greedy decoding from its prompt produces? One greedy generation per prompt,
        ``batch_size`` rows per call (padded, so a call compiles once per prompt-length bucket), as long as
        the longest option rounded up to a power of two; where that would not fit a learned position table,
        prompts are generated in groups of equal longest-option length instead (each fits by construction).
        Generation stops only at a token id no option of the call contains, so stopping never changes a
        comparison."""
        out: list[list[bool]] = [[] for _ in prompts]
        longest = [max(len(o) for o in opts) for opts in options]
        steps = decoding.bucket(max(longest), minimum=4)
        if max(len(p) for p in prompts) + steps <= self._position_limit:
            calls = [(list(range(len(prompts))), steps)]
        else:
            by_len: dict[int, list[int]] = collections.defaultdict(list)
            for i, n in enumerate(longest):
                by_len[n].append(i)
            calls = list((idx, n) for n, idx in by_len.items())
        for idx, n_steps in calls:
            rows = [list(prompts[i]) for i in idx]
            rows += [rows[0]] * (self.batch_size - len(rows))
            used = {t for i in idx for o in options[i] for t in o}
            stop = next(t for t in range(self.cfg.vocab_size) if t not in used)
            gen = decoding.generate(self.model, self.params, rows, max_new_tokens=n_steps, eos_id=stop,
                                    mesh=self.mesh)
            for r, i in enumerate(idx):
                out[i] = [bool(np.array_equal(gen.tokens[r, :len(o)], o)) for o in options[i]]
        return out

    def _score(self, pairs: list[tuple[list[int], list[int]]], *, with_greedy: bool, desc: str,
               disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """(log-likelihood, is_greedy) per (context, continuation) token pair, contexts computed once each."""
        groups: dict[tuple[int, ...], list[int]] = collections.defaultdict(list)
        for k, (ctx, cont) in enumerate(pairs):
            groups[self._fitted(ctx, cont)].append(k)
        # Longest contexts first (as the hf backend orders requests): similar shapes share a batch.
        order = sorted(groups, key=lambda p: (-len(p), p))
        results: list[tuple[float, bool] | None] = [None] * len(pairs)
        step = self.batch_size
        with tqdm(total=len(pairs), desc=desc, disable=disable_tqdm) as bar:
            for start in range(0, len(order), step):
                prompts = order[start:start + step]
                options = [[list(pairs[k][1]) for k in groups[p]] for p in prompts]
                scores = score_options(self.model, self.params, [list(p) for p in prompts], options,
                                       batch_size=step, mesh=self.mesh)
                greedy = (self._greedy_prefixes(prompts, options) if with_greedy
                          else [[False] * len(o) for o in options])
                for p, s, g in zip(prompts, scores, greedy):
                    for j, k in enumerate(groups[p]):
                        results[k] = (float(s.loglik[j]), g[j])
                bar.update(sum(len(groups[p]) for p in prompts))
        return results  # type: ignore[return-value]

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs) -> list[tuple[float, bool]]:
        res = self._score([(ctx, cont) for _, ctx, cont in requests], with_greedy=True,
                          desc="Running loglikelihood requests (xlt)", disable_tqdm=disable_tqdm)
        for (request_str, _, _), answer in zip(requests, res):
            if request_str is not None:
                self.cache_hook.add_partial("loglikelihood", request_str, answer)
        return res

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        windows: list[tuple[list[int], list[int]]] = []
        owner: list[int] = []
        for i, (string,) in enumerate(req.args for req in requests):
            for ctx, cont in map(lm_utils.make_disjoint_window,
                                 lm_utils.get_rolling_token_windows(token_list=self.tok_encode(string),
                                                                    prefix_token=self.prefix_token_id,
                                                                    max_seq_len=self.max_length, context_len=1)):
                windows.append((ctx, cont))
                owner.append(i)
        totals = [0.0] * len(requests)
        if windows:
            scored = self._score(windows, with_greedy=False, desc="Running loglikelihood_rolling windows (xlt)",
                                 disable_tqdm=disable_tqdm)
            for i, (ll, _) in zip(owner, scored):
                totals[i] += ll
        for req, total in zip(requests, totals):
            self.cache_hook.add_partial("loglikelihood_rolling", req.args, total)
        return totals

    # --- Generation -------------------------------------------------------------------------------------

    def _sampling(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """xlt.decoding.generate's sampling arguments from the normalised harness kwargs."""
        do_sample = bool(kwargs.pop("do_sample", False))
        temperature = float(kwargs.pop("temperature", 0.0) or 0.0)
        top_k = int(kwargs.pop("top_k", 0) or 0)
        top_p = float(kwargs.pop("top_p", 1.0) or 1.0)
        if kwargs:
            raise ConfigError(f"generation arguments not supported by xlt: {sorted(kwargs)} "
                              "(supported: until, max_gen_toks, do_sample, temperature, top_k, top_p)")
        if not do_sample or temperature == 0.0:
            return {"temperature": 0.0}
        return {"temperature": temperature, "top_k": top_k, "top_p": top_p, "rng": jax.random.key(self.seed)}

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        eos_text = self.tok_decode([self.eot_token_id], skip_special_tokens=False)
        by_kwargs: dict[str, list[int]] = collections.defaultdict(list)
        args = [req.args for req in requests]
        for i, (_, gen_kwargs) in enumerate(args):
            if not isinstance(gen_kwargs, dict):
                raise DataError(f"generation arguments must be a dict, got {type(gen_kwargs).__name__}")
            by_kwargs[json.dumps(gen_kwargs, sort_keys=True, default=str)].append(i)
        out: list[str | None] = [None] * len(requests)
        with tqdm(total=len(requests), desc="Running generate_until requests (xlt)", disable=disable_tqdm) as bar:
            for idx in by_kwargs.values():
                kwargs = dict(lm_model_utils.normalize_gen_kwargs(dict(args[idx[0]][1]), self.max_gen_toks))
                until = lm_model_utils.handle_stop_sequences(kwargs.pop("until", None), eos=eos_text)
                max_gen = _positive_int("max_gen_toks", kwargs.pop("max_gen_toks"))
                kwargs.pop("max_length", None)  # hf's prompt+generation length; max_gen_toks bounds xlt
                sampling = self._sampling(kwargs)
                if self.backend == "causal":
                    room = self.max_length - max_gen
                    if room < 1:
                        raise ConfigError(f"max_gen_toks={max_gen} leaves no room for a context in "
                                          f"max_length={self.max_length}")
                else:
                    room = self.max_length
                encoded = {i: self._encode_context(args[i][0], room) for i in idx}
                ordered = sorted(idx, key=lambda i: (-len(encoded[i]), args[i][0]))
                for start in range(0, len(ordered), self.batch_size):
                    part = ordered[start:start + self.batch_size]
                    rows = [encoded[i] for i in part]
                    rows += [rows[0]] * (self.batch_size - len(rows))  # one compilation per length bucket
                    gen = decoding.generate(self.model, self.params, rows,
                                            max_new_tokens=max_gen, eos_id=self.eot_token_id, mesh=self.mesh,
                                            **sampling)
                    for r, i in enumerate(part):
                        text = self.tok_decode(gen.tokens[r, :gen.lengths[r]].tolist())
                        text = lm_model_utils.postprocess_generated_text(text, until, None)
                        out[i] = text
                        self.cache_hook.add_partial("generate_until", args[i], text)
                    bar.update(len(part))
        return out  # type: ignore[return-value]


# --- Registration, command line, Python entry point ------------------------------------------------------


def register() -> None:
    """Register ``XltLM`` as lm-eval model ``xlt`` (idempotent). lm-eval's built-in models are registered
    first: its registry imports them only while it is empty."""
    import lm_eval.models  # noqa: F401  (registers the built-in names lazily)
    from lm_eval.api.registry import model_registry

    if model_registry.get(MODEL_NAME, None) is not XltLM:
        model_registry.register(MODEL_NAME)(XltLM)


if __name__ != "__main__":  # ``python -m xlt.harness`` registers the importable module's class (below)
    register()


def strip_prefix(name: str) -> str:
    """``lm_eval:xnli_ko`` -> ``xnli_ko`` (names without the prefix pass through)."""
    return name[len(LM_EVAL_PREFIX):] if name.startswith(LM_EVAL_PREFIX) else name


def run_harness_tasks(checkpoint_or_model: str | Path | XltLM, task_names: Sequence[str], *,
                      num_fewshot: int | None = None, limit: int | float | None = None, batch_size: int = 8,
                      mesh_shape: Any = None, include_path: str | Path | Sequence[str | Path] | None = None,
                      random_seed: int = 0, log_samples: bool = False, task_manager: Any = None,
                      **model_args: Any) -> dict[str, Any]:
    """Evaluate harness tasks on an xlt checkpoint (or an ``XltLM`` already built, e.g. on live
    parameters) through ``lm_eval.simple_evaluate``.

    ``task_names``: harness task or group names, each optionally prefixed ``lm_eval:``. ``include_path``
    adds task directories (local YAML tasks). Returns ``{"results": {task: {metric: value}}, "raw": ...}``
    where metric names are the harness's without the filter suffix when it is ``none`` (``acc``,
    ``acc_stderr``, ``exact_match,strip`` keeps its filter), and ``raw`` is simple_evaluate's full output.
    ``task_manager``: an ``lm_eval.tasks.TaskManager`` already built (indexing lm-eval's own tasks takes
    seconds; ``xlt.benchmarks.harness_tasks.task_manager`` keeps one per include path), instead of
    ``include_path``.
    """
    import lm_eval
    from lm_eval.tasks import TaskManager

    if isinstance(task_names, str) or not task_names:
        raise ConfigError("task_names must be a non-empty list of harness task names")
    names = [strip_prefix(str(n)) for n in task_names]
    if isinstance(checkpoint_or_model, XltLM):
        if mesh_shape is not None or model_args:
            raise ConfigError("mesh_shape and model arguments apply when a checkpoint path is given")
        lm = checkpoint_or_model
    else:
        lm = XltLM(checkpoint=str(checkpoint_or_model), mesh_shape=mesh_shape, batch_size=batch_size, **model_args)
    paths = None
    if task_manager is not None and include_path is not None:
        raise ConfigError("give include_path or task_manager, not both")
    if include_path is not None:
        paths = [str(p) for p in ([include_path] if isinstance(include_path, (str, Path)) else include_path)]
        for p in paths:
            if not Path(p).is_dir():
                raise ConfigError(f"include_path {p} is not a directory")
    manager = task_manager if task_manager is not None else TaskManager(include_path=paths)
    unknown = [n for n in names if n not in manager.all_tasks]
    if unknown:
        raise ConfigError(f"unknown lm-eval task(s): {', '.join(unknown)}")
    raw = lm_eval.simple_evaluate(model=lm, tasks=names, num_fewshot=num_fewshot, limit=limit,
                                  task_manager=manager, log_samples=log_samples, random_seed=random_seed,
                                  numpy_random_seed=random_seed, torch_random_seed=random_seed,
                                  fewshot_random_seed=random_seed, bootstrap_iters=0)
    results = {}
    for task, metrics in raw["results"].items():
        clean = {}
        for key, value in metrics.items():
            if key == "alias":
                continue
            metric, _, filt = key.partition(",")
            clean[metric if filt in ("", "none") else key] = value
        results[task] = clean
    return {"results": results, "raw": raw}


def lm_from_evaluator(evaluator: Any) -> XltLM:
    """``XltLM`` on the model an ``xlt.evaluation.evaluate.Evaluator`` holds (loaded from a checkpoint or live
    parameters): the tokenizer is found as ``XltLM(checkpoint=...)`` finds it (the Hugging Face tokenizer an
    imported checkpoint carries, else the recorded vocabulary), so the numbers are those of ``lm_eval --model
    xlt`` on the same checkpoint, without loading the parameters twice."""
    where = getattr(evaluator, "checkpoint", None)
    tokenizer = _load_tokenizer(where) if where else None
    if tokenizer is None:
        tokenizer = SeqioTokenizer(evaluator.vocab, evaluator.api)
    return XltLM(model=evaluator.api, params=evaluator.params, tokenizer=tokenizer, mesh=evaluator.mesh,
                 meta=evaluator.meta, batch_size=evaluator.batch_size)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m xlt.harness`` / ``xlt-lm-eval``: lm-eval's command line with model ``xlt`` registered;
    every argument is handed to it unchanged. xlt's one-line errors exit with status 2."""
    from lm_eval.__main__ import cli_evaluate

    argv = list(sys.argv[1:] if argv is None else argv)
    saved = sys.argv
    sys.argv = ["lm-eval", *argv]
    try:
        cli_evaluate()
    except XltError as e:
        print(f"xlt: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return 2
    finally:
        sys.argv = saved
    return 0


__all__ = ["MODEL_NAME", "SeqioTokenizer", "XltLM", "lm_from_evaluator", "main", "parse_mesh_shape", "register",
           "run_harness_tasks", "strip_prefix"]

if __name__ == "__main__":
    from xlt import harness as _importable  # registers xlt.harness.XltLM, the class lm-eval will build

    sys.exit(_importable.main())
