"""Hugging Face checkpoints ⇄ xlt params-only checkpoints: GPT-2 (PolyLM), Llama, T5 v1.1 / mT5 (and original
T5), BLOOM / BLOOMZ.

Import reads ``config.json`` and the weights (``model.safetensors``, sharded safetensors with
``model.safetensors.index.json``, or ``pytorch_model.bin`` / its sharded index) tensor by tensor, maps each
one onto the xlt parameter tree and writes a params-only checkpoint (``xlt.checkpoints.save_params``) with a
``model.gin`` binding the ModelConfig next to it; tokenizer files are kept under ``hf/``. Export does the
reverse and writes ``config.json`` plus safetensors that ``transformers``' ``from_pretrained`` loads.

What each family maps where (config fields, tensor rules, what export requires) is declared once per family
in ``xlt.models.hf_families``; this module is the generic reader and writer and never looks at the layout.

* ``--pad_vocab_to_multiple`` pads embedding/LM-head rows with zeros and records the true size as
  ``ModelConfig.unpadded_vocab_size`` (those logits are masked in the model); export strips the rows again.

Host memory: one copy of the parameters plus one tensor in flight. Import reads each HF tensor lazily and
writes it straight into the (pre-allocated, for scanned layers) parameter array; export streams tensors
into the safetensors files with a hand-written header, so no full second copy is ever built.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import ml_dtypes
import numpy as np

from xlt import checkpoints
from xlt import paths as xlt_paths  # (``paths`` is a loop variable below)
from xlt.data import vocab as vocab_lib
from xlt.errors import CheckpointError, ConfigError
from xlt.files import read_json_object
from xlt.models import ModelConfig
from xlt.models.config import round_up
# Per-family knowledge (config fields, tensor rules, export requirements) lives with the layouts; re-exported here
# for callers of this module.
from xlt.models.hf_families import (FAMILIES, SUPPORTED, Family, Rule, export_family, family_of,  # noqa: F401
                                   need)

DTYPES = {"float32": np.dtype(np.float32), "bfloat16": np.dtype(ml_dtypes.bfloat16), "float16": np.dtype(np.float16)}
SAFETENSORS_DTYPES = {np.dtype(np.float32): "F32", np.dtype(ml_dtypes.bfloat16): "BF16", np.dtype(np.float16): "F16"}
DEFAULT_MAX_SHARD_BYTES = 5 * 1024 ** 3
# Files kept from the HF directory (tokenizer, generation settings) and written back on export.
KEPT_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
              "generation_config.json", "vocab.json", "merges.txt", "vocab.txt", "spiece.model", "tokenizer.model",
              "sentencepiece.bpe.model", "chat_template.jinja", "chat_template.json")
WEIGHT_FILES = ("model.safetensors.index.json", "model.safetensors", "pytorch_model.bin.index.json",
                "pytorch_model.bin")


# Token ids and generation settings carried from an imported config.json into an exported one.
CARRIED_CONFIG_KEYS = ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id",
                       "task_specific_params", "initializer_range", "initializer_factor")


# --- Reading Hugging Face checkpoints -----------------------------------------------------------------------


def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover - the hf extra installs it
        raise ConfigError("Hugging Face interop needs torch and safetensors: pip install -e '.[hf]'") from e
    return torch


def _to_numpy(t) -> np.ndarray:
    torch = _torch()
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


class TensorSource:
    """Lazy, tensor-by-tensor access to the weights of a HF checkpoint directory."""

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        self._files: dict[str, str] = {}  # tensor name -> file name
        self._handles: dict[str, Any] = {}
        found = next((n for n in WEIGHT_FILES if (self.directory / n).is_file()), None)
        if found is None:
            raise CheckpointError(f"no weights in {self.directory}: expected one of {', '.join(WEIGHT_FILES)}")
        self.kind = "safetensors" if "safetensors" in found else "torch"
        if found.endswith(".index.json"):
            index = read_json_object(self.directory / found, "weights index")
            weight_map = index.get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise CheckpointError(f"corrupt weights index {self.directory / found}: no weight_map")
            self._files = {str(k): str(v) for k, v in weight_map.items()}
        else:
            for name in self._open(found).keys():
                self._files[name] = found
        for file in sorted(set(self._files.values())):
            if not (self.directory / file).is_file():
                raise CheckpointError(f"weights shard {file} listed in {found} is missing from {self.directory}")
        self.description = found

    def _open(self, file: str):
        if file not in self._handles:
            path = self.directory / file
            try:
                if self.kind == "safetensors":
                    from safetensors import safe_open
                    _torch()
                    self._handles[file] = safe_open(str(path), framework="pt")
                else:
                    self._handles[file] = _torch().load(str(path), map_location="cpu", mmap=True, weights_only=True)
            except CheckpointError:
                raise
            except Exception as e:
                raise CheckpointError(f"cannot read weights file {path}: {str(e).splitlines()[0]}") from e
        return self._handles[file]

    @property
    def names(self) -> list[str]:
        return list(self._files)

    def __contains__(self, name: str) -> bool:
        return name in self._files

    def file_of(self, name: str) -> str:
        return self._files[name]

    def shape(self, name: str) -> tuple[int, ...]:
        handle = self._open(self._files[name])
        try:
            if self.kind == "safetensors":
                return tuple(handle.get_slice(name).get_shape())
            return tuple(handle[name].shape)
        except Exception as e:
            raise CheckpointError(f"tensor {name!r} cannot be read from {self._files[name]}: {e}") from e

    def get(self, name: str) -> np.ndarray:
        handle = self._open(self._files[name])
        try:
            tensor = handle.get_tensor(name) if self.kind == "safetensors" else handle[name]
        except Exception as e:
            raise CheckpointError(f"tensor {name!r} cannot be read from {self._files[name]}: {e}") from e
        return _to_numpy(tensor)

    def close(self) -> None:
        self._handles.clear()


# --- Writing safetensors, streamed ---------------------------------------------------------------------------


def _header_bytes(entries: Sequence[tuple[str, tuple[int, ...], np.dtype]]) -> tuple[bytes, int]:
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape, dtype in entries:
        size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        header[name] = {"dtype": SAFETENSORS_DTYPES[dtype], "shape": list(shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the data starts 8-byte aligned
    return raw, offset


def write_safetensors(directory: Path, entries: Sequence[tuple[str, tuple[int, ...], np.dtype]],
                      arrays: Iterator[tuple[str, np.ndarray]], max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES
                      ) -> list[str]:
    """Write tensors given one at a time by ``arrays`` (same order as ``entries``) into ``model.safetensors``,
    or ``model-0000k-of-0000n.safetensors`` plus ``model.safetensors.index.json`` past ``max_shard_bytes``."""
    shards: list[list[tuple[str, tuple[int, ...], np.dtype]]] = [[]]
    size = 0
    for entry in entries:
        nbytes = int(np.prod(entry[1], dtype=np.int64)) * entry[2].itemsize
        if shards[-1] and size + nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(entry)
        size += nbytes
    files = (["model.safetensors"] if len(shards) == 1 else
             [f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors" for k in range(len(shards))])
    total = 0
    weight_map = {}
    for file, shard in zip(files, shards):
        header, data_bytes = _header_bytes(shard)
        total += data_bytes
        with open(directory / file, "wb") as f:
            f.write(len(header).to_bytes(8, "little"))
            f.write(header)
            for name, shape, dtype in shard:
                got_name, array = next(arrays)
                if got_name != name or tuple(array.shape) != tuple(shape) or array.dtype != dtype:
                    raise RuntimeError(f"internal: tensor stream gave {got_name} {array.shape} {array.dtype}, "
                                       f"expected {name} {shape} {dtype}")
                f.write(memoryview(np.ascontiguousarray(array).reshape(-1).view(np.uint8)))
                weight_map[name] = file
    if len(files) > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return files


# --- Config translation --------------------------------------------------------------------------------------


def config_from_hf(hf: Mapping[str, Any], tensor_names: Sequence[str], *, dtype: str = "float32",
                   pad_vocab_to_multiple: int | None = None, scan_layers: bool = False) -> ModelConfig:
    """The ModelConfig of a HF config.json (``tensor_names``: the checkpoint's tensors, e.g. T5's untied head)."""
    family = family_of(hf)
    vocab = int(need(hf, "vocab_size"))
    padded = round_up(vocab, pad_vocab_to_multiple) if pad_vocab_to_multiple and pad_vocab_to_multiple > 1 else vocab
    return family.model_config(hf, tensor_names, param_dtype=dtype,
                               dtype="float32" if dtype == "float32" else "bfloat16", scan_layers=scan_layers,
                               vocab_size=padded, unpadded_vocab_size=vocab if padded != vocab else None)


def hf_config_from(cfg: ModelConfig, family: Family, dtype: np.dtype,
                   carried: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The config.json of ``cfg`` as ``family`` (``carried``: an imported config.json's token ids etc.)."""
    family.check_exportable(cfg)
    vocab = cfg.unpadded_vocab_size or cfg.vocab_size
    out: dict[str, Any] = {k: carried[k] for k in CARRIED_CONFIG_KEYS if carried and k in carried}
    out.update(architectures=[family.architecture], model_type=family.model_type, vocab_size=vocab,
               dtype={"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}[dtype.name],
               tie_word_embeddings=bool(cfg.tie_embeddings))
    family.config_to_hf(cfg, out)
    return out


# --- Parameter mapping ---------------------------------------------------------------------------------------


def _prefix(names: Sequence[str], family: Family) -> str:
    """The base-model prefix a checkpoint uses, e.g. ``transformer.`` for GPT2LMHeadModel, none for GPT2Model."""
    if len(family.prefixes) == 1:
        return family.prefixes[0]
    for p in family.prefixes:
        if p + family.prefix_probe in names:
            return p
    raise CheckpointError(f"tensor {family.prefixes[0] + family.prefix_probe!r} is missing from the checkpoint")


def rules_for(cfg: ModelConfig, family: Family, prefix: str = "") -> list[Rule]:
    """The mapping of every xlt parameter of ``cfg`` onto HF tensors of ``family`` (``prefix``: the base-model
    prefix used by the checkpoint, e.g. ``transformer.`` for GPT2LMHeadModel, empty for GPT2Model)."""
    return family.rules(cfg, prefix)


def _ignorable(family: Family, cfg: ModelConfig) -> Callable[[str], bool]:
    """HF tensors that carry nothing for xlt: causal-mask and rotary buffers, tied copies of the embedding."""
    patterns = list(family.ignorable)
    if cfg.tie_embeddings:
        patterns.append(r"^lm_head\.weight$")
    compiled = [re.compile(p) for p in patterns]
    return lambda name: any(c.search(name) for c in compiled)


def _instances(rule: Rule, scanned: bool) -> Iterator[tuple[int | None, tuple[str, ...], tuple[str, ...]]]:
    """(layer index into a scanned array or None, full xlt paths, HF name templates with {i} filled)."""
    if rule.stack is None:
        yield None, rule.xlt, rule.hf
        return
    for i in range(rule.num_layers):
        base = f"{rule.stack}/layers" if scanned else f"{rule.stack}/layers_{i}"
        yield (i if scanned else None), tuple(f"{base}/{x}" for x in rule.xlt), tuple(n.format(i=i) for n in rule.hf)


def abstract_params(cfg: ModelConfig) -> dict[str, jax.ShapeDtypeStruct]:
    """Flat {path: ShapeDtypeStruct} of the model's parameters, from an abstract (free) init."""
    import flax.linen as nn

    from xlt.models.api import model_api

    tree = nn.meta.unbox(model_api(cfg).abstract_params())
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(p, simple=True, separator="/"): x for p, x in flat}


def _unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, value in flat.items():
        node = tree
        *parents, leaf = path.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def _flatten(tree: Any) -> dict[str, Any]:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(p, simple=True, separator="/"): x for p, x in flat}


def _layer_shape(shape: tuple[int, ...], layer: int | None) -> tuple[int, ...]:
    return tuple(shape[1:]) if layer is not None else tuple(shape)


def _unpadded(shape: tuple[int, ...], axis: int | None, vocab: int) -> tuple[int, ...]:
    if axis is None:
        return shape
    return shape[:axis] + (vocab,) + shape[axis + 1:]


def _hf_shapes(rule: Rule, xlt_shapes: Sequence[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """The HF tensor shapes a rule implies, found by running ``to_hf`` on zero-stride (memory-free) arrays."""
    dummies = [np.broadcast_to(np.zeros((), np.float32), s) for s in xlt_shapes]
    return [tuple(x.shape) for x in rule.to_hf(*dummies)]


def _resolve(name: str, source: TensorSource) -> str:
    options = name.split("|")
    return next((o for o in options if o in source), options[0])


def _local_dir(hf_dir: str | Path) -> Path:
    """``hf_dir`` as a local directory: itself, or a bucket directory's copy (downloaded once per process)."""
    return xlt_paths.downloaded(str(hf_dir)) if xlt_paths.is_url(hf_dir) else Path(hf_dir)


def convert_from_hf(hf_dir: str | Path, *, dtype: str = "float32", pad_vocab_to_multiple: int | None = None,
                    scan_layers: bool = False) -> tuple[ModelConfig, dict[str, Any], dict[str, Any]]:
    """Read a HF checkpoint directory into ``(ModelConfig, params tree of numpy arrays, info)``. A bucket
    directory (``gs://…``) is read through a local copy, made once per process (safetensors and the
    tokenizer libraries open local files); ``info`` records the URL."""
    url = str(hf_dir) if xlt_paths.is_url(hf_dir) else None
    if not xlt_paths.path(hf_dir).is_dir():
        raise CheckpointError(f"Hugging Face checkpoint directory not found: {hf_dir}")
    hf_dir = _local_dir(hf_dir)
    if dtype not in DTYPES:
        raise ConfigError(f"dtype={dtype!r}; choose one of {list(DTYPES)}")
    hf = read_json_object(hf_dir / "config.json", "config.json")
    family = family_of(hf)
    source = TensorSource(hf_dir)
    try:
        cfg, params = _read_params(source, hf, family, dtype, pad_vocab_to_multiple, scan_layers)
    finally:
        source.close()
    info = {"hf_config": hf, "model_type": family.model_type, "architecture": family.architecture,
            "hf_dir": url or str(hf_dir.absolute()), "weights": source.description}
    return cfg, params, info


def _read_params(source: TensorSource, hf: Mapping[str, Any], family: Family, dtype: str,
                 pad_vocab_to_multiple: int | None, scan_layers: bool) -> tuple[ModelConfig, dict[str, Any]]:
    hf_dir = source.directory
    names = source.names
    cfg = config_from_hf(hf, names, dtype=dtype, pad_vocab_to_multiple=pad_vocab_to_multiple,
                         scan_layers=scan_layers)
    prefix = _prefix(names, family)
    expected = abstract_params(cfg)
    target = DTYPES[dtype]
    true_vocab = cfg.unpadded_vocab_size or cfg.vocab_size
    flat: dict[str, np.ndarray] = {}
    used: set[str] = set()
    for rule in rules_for(cfg, family, prefix):
        hf_shapes = None
        for layer, paths, templates in _instances(rule, cfg.scan_layers):
            want = [_unpadded(_layer_shape(tuple(expected[p].shape), layer), rule.vocab_axis, true_vocab)
                    for p in paths]
            hf_shapes = hf_shapes or _hf_shapes(rule, want)
            hf_names = [_resolve(t, source) for t in templates]
            for name, shape in zip(hf_names, hf_shapes):
                if name not in source:
                    raise CheckpointError(f"tensor {name!r} is missing from {hf_dir} ({source.description}); "
                                          f"config.json describes a {family.architecture} that needs it")
                if source.shape(name) != shape:
                    raise CheckpointError(f"tensor {name!r} has shape {source.shape(name)} but config.json implies "
                                          f"{shape} (for xlt {paths[0]})")
            arrays = rule.to_xlt(*[source.get(n) for n in hf_names])
            used.update(hf_names)
            for path, array, shape in zip(paths, arrays, want):
                if rule.vocab_axis is not None and cfg.vocab_size != true_vocab:
                    padded = np.zeros(_layer_shape(tuple(expected[path].shape), layer), target)
                    index = [slice(None)] * array.ndim
                    index[rule.vocab_axis] = slice(0, true_vocab)
                    padded[tuple(index)] = array
                    array = padded
                if layer is None:  # own the memory: a torch .bin tensor may be a view of the mmap'd file
                    flat[path] = np.array(array, dtype=target, order="C", copy=True if source.kind == "torch" else None)
                else:
                    if path not in flat:
                        flat[path] = np.empty(tuple(expected[path].shape), target)
                    flat[path][layer] = array
            del arrays
    ignorable = _ignorable(family, cfg)
    unused = [n for n in names if n not in used and not ignorable(n)]
    if unused:
        raise CheckpointError(f"unexpected tensor {unused[0]!r} with shape {source.shape(unused[0])} in {hf_dir} "
                              f"({len(unused)} unused): xlt's {family.model_type} mapping has no place for it "
                              "(config.json may not match the weights)")
    missing = sorted(set(expected) - set(flat))
    if missing:  # a gap in the rules, never the user's fault
        raise RuntimeError(f"internal: no HF tensor maps to xlt parameter {missing[0]}")
    return cfg, _unflatten(flat)


# --- Tokenizers ----------------------------------------------------------------------------------------------
#
# An imported model brings its tokenizer: a sentencepiece model (``spiece.model``: T5 / mT5, ``tokenizer.model``:
# Llama-2 style) as xlt's sentencepiece kind, else ``tokenizer.json`` (GPT-2, BLOOM, Llama-3 style BPE) as the
# Hugging Face ``tokenizers`` kind. The file is copied into the checkpoint (``hf/<name>``) and recorded with its
# sha256 and the conventions transformers applies around a text (``tokenizer_conventions``).

SENTENCEPIECE_FILES = ("spiece.model", "tokenizer.model")  # not sentencepiece.bpe.model: XLM-R shifts its ids
TOKENIZERS_FILE = "tokenizer.json"


def tokenizer_file(directory: str | Path) -> str | None:
    """The tokenizer file of a HF directory that xlt reads (sentencepiece first: it is what the documented
    fine-tuning runs bind as ``vocabulary.path``), or None."""
    return next((n for n in (*SENTENCEPIECE_FILES, TOKENIZERS_FILE) if (Path(directory) / n).is_file()), None)


def _config_id(hf: Mapping[str, Any], key: str) -> int | None:
    value = hf.get(key)
    if isinstance(value, list):  # e.g. Llama-3 instruct lists several EOS ids; the first is the tokenizer's
        value = value[0] if value else None
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


def _added_around(encode: Callable[[str, bool], list[int]]) -> tuple[list[int], list[int]]:
    """The ids a tokenizer's post-processor puts before and after a text (its BOS / EOS)."""
    text = "a b"
    plain, full = encode(text, False), encode(text, True)
    for i in range(len(full) - len(plain) + 1):
        if full[i:i + len(plain)] == plain:
            return full[:i], full[i + len(plain):]
    raise CheckpointError(f"the tokenizer's special tokens change the ids of {text!r} itself: {full} vs {plain}")


def tokenizer_conventions(directory: str | Path, hf: Mapping[str, Any], vocab) -> vocab_lib.Conventions:
    """How transformers lays a text out for this model: BOS/EOS added or not (``tokenizer_config.json``'s
    ``add_bos_token``/``add_eos_token``, else what ``tokenizer.json``'s post-processor adds, else the
    family's sentencepiece tokenizer class: Llama adds BOS, T5 appends EOS), the special ids (the tokenizer's
    files, then ``config.json``), and the decoder start: ``decoder_start_token_id`` for encoder-decoders, the
    BOS for decoder-only models (for GPT-2, which adds none, its ``<|endoftext|>``: the prefix
    lm-evaluation-harness scores from), else the EOS."""
    directory = Path(directory)
    config_file = directory / "tokenizer_config.json"
    tok_cfg = read_json_object(config_file, "tokenizer_config.json") if config_file.is_file() else {}
    if isinstance(vocab, vocab_lib.TokenizersVocabulary):
        token_to_id = vocab.tokenizer.token_to_id

        def encode(text: str, special: bool) -> list[int]:
            return list(vocab.tokenizer.encode(text, add_special_tokens=special).ids)

        before, after = _added_around(encode)
        own = {"bos": None, "eos": None, "pad": None, "unk": None}
    else:
        sp = vocab.tokenizer

        def token_to_id(token: str) -> int | None:
            i = sp.piece_to_id(token)
            return i if sp.id_to_piece(i) == token else None

        llama = hf.get("model_type") == "llama"
        before = [i for i in [sp.bos_id()] if llama and i >= 0]
        after = [i for i in [sp.eos_id()] if not llama and i >= 0]
        own = {k: (i if i >= 0 else None) for k, i in
               (("bos", sp.bos_id()), ("eos", sp.eos_id()), ("pad", sp.pad_id()), ("unk", sp.unk_id()))}
    named = vocab_lib.special_ids(directory, token_to_id)

    def pick(key: str, added: list[int]) -> int | None:
        for value in (named[key], added[0] if added else None, own[key], _config_id(hf, f"{key}_token_id")):
            if value is not None:
                return value
        return None

    bos, eos, pad = pick("bos", before), pick("eos", after), pick("pad", [])
    add_bos = tok_cfg.get("add_bos_token") if isinstance(tok_cfg.get("add_bos_token"), bool) else bool(before)
    add_eos = tok_cfg.get("add_eos_token") if isinstance(tok_cfg.get("add_eos_token"), bool) else bool(after)
    # Decoder rows start from the config's decoder_start_token_id (T5 and mT5 configs carry one), else from the
    # BOS (Llama, BLOOM) or, for tokenizers without one (GPT-2), the EOS, as lm-evaluation-harness does.
    start = _config_id(hf, "decoder_start_token_id")
    if start is None:
        start = bos if bos is not None else (eos if eos is not None else 0)
    return vocab_lib.Conventions(add_bos=add_bos, bos_id=bos, add_eos=add_eos, eos_id=eos, pad_id=pad,
                                 decoder_start_id=start)


def tokenizer_vocabulary(directory: str | Path, hf: Mapping[str, Any]):
    """``(vocabulary, conventions, file name)`` of the tokenizer in a HF directory, or None without one."""
    import seqio

    directory = Path(directory)
    name = tokenizer_file(directory)
    if name is None:
        return None
    path = directory / name
    try:
        if name in SENTENCEPIECE_FILES:
            config_file = directory / "tokenizer_config.json"
            tok_cfg = read_json_object(config_file, "tokenizer_config.json") if config_file.is_file() else {}
            extra = tok_cfg.get("extra_ids", 100 if name == "spiece.model" else 0)  # T5Tokenizer's default
            vocab = seqio.SentencePieceVocabulary(str(path), extra_ids=int(extra or 0))
            vocab.tokenizer  # noqa: B018 - load now, so a corrupt file fails here
        else:
            vocab = vocab_lib.TokenizersVocabulary(path)
    except (ConfigError, RuntimeError, OSError, ValueError) as e:
        raise CheckpointError(f"cannot read the tokenizer {path}: {str(e).strip().splitlines()[0]}") from e
    conventions = tokenizer_conventions(directory, hf, vocab)
    if isinstance(vocab, vocab_lib.TokenizersVocabulary):  # its EOS/BOS are what the files name
        vocab = vocab_lib.TokenizersVocabulary(path, eos_id=conventions.eos_id, bos_id=conventions.bos_id)
    return vocab, conventions, name


def tokenizer_record(directory: str | Path, hf: Mapping[str, Any], prefix: str = "hf/"
                     ) -> vocab_lib.VocabularyRecord | None:
    """The vocabulary record of the tokenizer in ``directory``, its file to sit at ``prefix + name`` inside
    the checkpoint; None when the directory has no tokenizer xlt reads."""
    found = tokenizer_vocabulary(directory, hf)
    if found is None:
        return None
    vocab, conventions, name = found
    return vocab_lib.record_of(vocab, file=prefix + name, conventions=conventions)


def tokenizer_files_for_export(meta: checkpoints.CheckpointMeta) -> dict[str, Path]:
    """HF-named tokenizer files to write next to an exported model: the kept ``hf/`` files of an import,
    else the vocabulary file the checkpoint records when its name is one transformers reads."""
    root = xlt_paths.path(meta.root or meta.path or ".")
    kept = root / "hf"
    if kept.is_dir():
        return {f.name: f for f in sorted(kept.iterdir()) if f.is_file() and f.name in KEPT_FILES}
    record = meta.vocabulary
    if record is not None and record.file and Path(record.file).name in KEPT_FILES:
        # the file the model was trained with, or a one-line error: never a changed or silently dropped tokenizer
        return {Path(record.file).name: vocab_lib.recorded_file(record, root)}
    return {}


# --- Import / export -----------------------------------------------------------------------------------------


def model_gin(cfg: ModelConfig, comments: Sequence[str] = ()) -> str:
    """Gin bindings of ``cfg`` (``ModelConfig.gin_bindings``) under ``comments``."""
    lines = [f"# {c}" for c in comments] + ["train.model = @ModelConfig()"] + cfg.gin_bindings()
    return "\n".join(lines) + "\n"


def import_hf(hf_dir: str | Path, out: str | Path, *, dtype: str = "float32", pad_vocab_to_multiple: int | None = None,
              scan_layers: bool = False, overwrite: bool = False) -> Path:
    """Convert a HF checkpoint directory into an xlt params-only checkpoint at ``out`` (atomically):
    ``out/params``, ``out/meta.json``, ``out/model.gin`` and the tokenizer files under ``out/hf/``."""
    out = xlt_paths.absolute(out)  # a URL (gs://…) stays one: save_params writes to buckets
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise CheckpointError(f"output {out} already exists and is not empty; remove it or pass --overwrite")
    cfg, params, info = convert_from_hf(hf_dir, dtype=dtype, pad_vocab_to_multiple=pad_vocab_to_multiple,
                                        scan_layers=scan_layers)
    hf_dir = _local_dir(hf_dir)  # the copy convert_from_hf read
    extra: dict[str, str | bytes | Path] = {
        "model.gin": model_gin(cfg, [f"Imported from Hugging Face {info['architecture']} at {info['hf_dir']}",
                                     f"by tools/convert_hf.py; parameters: xlt.checkpoints.load_params('{out}')."])}
    for name in KEPT_FILES:
        if (hf_dir / name).is_file():
            extra[f"hf/{name}"] = hf_dir / name
    meta = checkpoints.CheckpointMeta(kind="params", model=cfg, source=info,
                                      vocabulary=import_tokenizer(hf_dir, info["hf_config"], cfg))
    return checkpoints.save_params(out, params, meta, extra_files=extra, overwrite=overwrite)


def import_tokenizer(hf_dir: Path, hf: Mapping[str, Any], cfg: ModelConfig) -> vocab_lib.VocabularyRecord | None:
    """The record of the tokenizer an import copies to ``hf/`` (None, with a warning, without one)."""
    record = tokenizer_record(hf_dir, hf, prefix="hf/")
    if record is None:
        logging.warning("%s has no tokenizer (%s): the checkpoint records no vocabulary, so fine-tuning, evaluation "
                        "and probing will refuse it", hf_dir, ", ".join((*SENTENCEPIECE_FILES, TOKENIZERS_FILE)))
    elif record.size > (cfg.unpadded_vocab_size or cfg.vocab_size):
        raise CheckpointError(f"the tokenizer in {hf_dir} has {record.size} ids but the model only "
                              f"{cfg.unpadded_vocab_size or cfg.vocab_size}")
    return record


def export_hf(xlt_path: str | Path, out: str | Path, *, dtype: str | None = None,
              max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES, overwrite: bool = False) -> Path:
    """Write the params of an xlt checkpoint (params-only or a training run) as a HF checkpoint directory:
    ``config.json``, safetensors (sharded past ``max_shard_bytes``) and any kept tokenizer files. To a URL
    (``gs://…``) the directory is written locally first and then uploaded file by file (not atomic as a whole:
    an interrupted upload leaves some files, and ``--overwrite`` replaces them)."""
    out = xlt_paths.absolute(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise CheckpointError(f"output {out} already exists and is not empty; remove it or pass --overwrite")
    if dtype is not None and dtype not in DTYPES:
        raise ConfigError(f"dtype={dtype!r}; choose one of {list(DTYPES)}")
    params, meta = checkpoints.load_params(xlt_path)
    cfg = checkpoints.model_config_from_meta(meta)
    family = export_family(cfg, (meta.source or {}).get("model_type"))
    family.check_exportable(cfg)
    flat = _flatten(params)
    expected = abstract_params(cfg)
    problem = checkpoints.describe_param_mismatch({k: list(v.shape) for k, v in flat.items()},
                                                  {k: list(v.shape) for k, v in expected.items()})
    if problem:
        raise CheckpointError(f"checkpoint {meta.path} does not match its recorded model config: {problem}")
    true_vocab = cfg.unpadded_vocab_size or cfg.vocab_size
    stored = sorted({a.dtype for a in flat.values()}, key=str)
    out_dtype = DTYPES[dtype] if dtype else (stored[0] if len(stored) == 1 and stored[0] in SAFETENSORS_DTYPES
                                             else DTYPES["float32"])
    rules = rules_for(cfg, family, family.prefixes[0])
    entries: list[tuple[str, tuple[int, ...], np.dtype]] = []
    for rule in rules:
        shapes = None
        for layer, paths, names in _instances(rule, cfg.scan_layers):
            want = [_unpadded(_layer_shape(tuple(flat[p].shape), layer), rule.vocab_axis, true_vocab) for p in paths]
            shapes = shapes or _hf_shapes(rule, want)
            entries += [(n.split("|")[0], s, out_dtype) for n, s in zip(names, shapes)]

    def stream() -> Iterator[tuple[str, np.ndarray]]:
        for rule in rules:
            for layer, paths, names in _instances(rule, cfg.scan_layers):
                arrays = []
                for path in paths:
                    a = flat[path] if layer is None else flat[path][layer]
                    if rule.vocab_axis is not None:
                        index = [slice(None)] * a.ndim
                        index[rule.vocab_axis] = slice(0, true_vocab)
                        a = a[tuple(index)]
                    arrays.append(a)
                for name, array in zip(names, rule.to_hf(*arrays)):
                    yield name.split("|")[0], np.asarray(array, dtype=out_dtype)

    carried = (meta.source or {}).get("hf_config")
    config = hf_config_from(cfg, family, out_dtype, carried)
    tokenizer_files = tokenizer_files_for_export(meta)  # checked before anything is written
    url = xlt_paths.is_url(out)
    tmp = xlt_paths.scratch_dir() / out.name if url else out.parent / f".{out.name}.xlt-tmp"
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        write_safetensors(tmp, entries, stream(), max_shard_bytes)
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        for name, file in tokenizer_files.items():
            xlt_paths.copy_file(file, tmp / name)
        if out.exists():
            xlt_paths.rmtree(out) if out.is_dir() else out.unlink()
        xlt_paths.move_tree(tmp, out)  # a rename locally, an upload to a URL
    except OSError as e:
        raise CheckpointError(f"cannot write Hugging Face checkpoint {out}: {str(e).splitlines()[0]}") from e
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


# --- Command line --------------------------------------------------------------------------------------------


def parse_size(text: str) -> int:
    """'5GB', '500MB', '10KB' or a byte count."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]i?B)?\s*", text, re.IGNORECASE)
    if not match:
        raise ConfigError(f"--max_shard_size={text!r}: use a byte count or e.g. 5GB, 500MB")
    unit = (match.group(2) or "B").upper().replace("IB", "B")
    return int(float(match.group(1)) * {"B": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3}[unit])


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line and exit status 2, like every xlt entry point
        raise ConfigError(f"{self.prog}: {message}")


def run(argv: Sequence[str]) -> Path:
    """``import --hf_dir=D --out=O [--dtype] [--pad_vocab_to_multiple=N] [--scan_layers] [--overwrite]`` or
    ``export --xlt_dir=O --out=D [--dtype] [--max_shard_size=5GB] [--overwrite]``."""
    parser = _Parser(prog="convert_hf", description="Convert checkpoints between Hugging Face and xlt.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    imp = sub.add_parser("import", help="Hugging Face directory -> xlt params-only checkpoint + model.gin")
    imp.add_argument("--hf_dir", required=True)
    imp.add_argument("--out", required=True)
    imp.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    imp.add_argument("--pad_vocab_to_multiple", type=int, default=None)
    imp.add_argument("--scan_layers", action="store_true")
    imp.add_argument("--overwrite", action="store_true")
    exp = sub.add_parser("export", help="xlt checkpoint (params-only or MODEL_DIR) -> Hugging Face directory")
    exp.add_argument("--xlt_dir", required=True)
    exp.add_argument("--out", required=True)
    exp.add_argument("--dtype", default=None, choices=sorted(DTYPES))
    exp.add_argument("--max_shard_size", default="5GB")
    exp.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(list(argv))
    if args.command == "import":
        if args.pad_vocab_to_multiple is not None and args.pad_vocab_to_multiple < 1:
            raise ConfigError(f"--pad_vocab_to_multiple={args.pad_vocab_to_multiple} must be >= 1")
        path = import_hf(args.hf_dir, args.out, dtype=args.dtype, pad_vocab_to_multiple=args.pad_vocab_to_multiple,
                         scan_layers=args.scan_layers, overwrite=args.overwrite)
        print(f"wrote xlt checkpoint {path} (model config: {path / 'model.gin'})")
    else:
        path = export_hf(args.xlt_dir, args.out, dtype=args.dtype, max_shard_bytes=parse_size(args.max_shard_size),
                         overwrite=args.overwrite)
        print(f"wrote Hugging Face checkpoint {path}")
    return path
