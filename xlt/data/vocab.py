"""Vocabularies: the kinds xlt tokenizes with, and the record that makes a vocabulary travel with a checkpoint.

Kinds (all ``seqio.Vocabulary``, so tasks, training and evaluation use them alike):

* ``byte`` — UTF-8 bytes (ByT5's; no file, nothing to train).
* ``sentencepiece`` — a sentencepiece ``.model`` file (T5 / mT5 ``spiece.model``, Llama-2 ``tokenizer.model``,
  the models ``tools/train_tokenizer.py`` writes).
* ``tokenizers`` — a Hugging Face ``tokenizers`` ``tokenizer.json`` (GPT-2, BLOOM, Llama-3 style byte-level
  BPE and anything else that library serialises). ``encode`` never adds special tokens; which ones a model
  expects around a text is part of the record's conventions, not of the vocabulary.

A ``VocabularyRecord`` says which vocabulary a checkpoint's token ids mean: the kind, the file inside the
checkpoint (``None`` for bytes), its sha256 and the number of ids, plus the ``Conventions`` the model was
trained or imported with (is a BOS put in front of a text, is an EOS appended, which id starts the decoder,
which id pads). ``xlt.checkpoints`` stores the record in every checkpoint's ``CheckpointMeta``;
``vocabulary_from_record`` rebuilds the vocabulary from it after checking the file's sha256.

seqio (and with it TensorFlow) is imported only where a vocabulary is built, so reading a record stays light
(``tools/convert_hf.py``); the ``tokenizers`` kind's class lives in ``xlt.data.tokenizers_vocab``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gin

from xlt import paths
from xlt.errors import CheckpointError, ConfigError

if TYPE_CHECKING:
    import seqio

    from xlt.data.tokenizers_vocab import TokenizersVocabulary

KINDS = ("byte", "sentencepiece", "tokenizers")
# Where a training run keeps its vocabulary file, relative to MODEL_DIR (the record's ``file``).
RUN_DIR = "vocab"
# The files beside a tokenizer.json that name its special tokens (read in this order, the later one wins).
SPECIAL_TOKEN_FILES = ("special_tokens_map.json", "tokenizer_config.json")


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def sha256_of(path: str | Path) -> str:
    import tensorflow as tf

    digest = hashlib.sha256()
    with tf.io.gfile.GFile(str(path), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- The Hugging Face `tokenizers` kind ---------------------------------------------------------------------


def __getattr__(name: str):
    """``TokenizersVocabulary`` (xlt.data.tokenizers_vocab) is imported on first use: it subclasses
    seqio.Vocabulary, and seqio pulls in TensorFlow, which code that only reads records need not load."""
    if name == "TokenizersVocabulary":
        from xlt.data.tokenizers_vocab import TokenizersVocabulary
        return TokenizersVocabulary
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _token_content(value: Any) -> str | None:
    """A special token as tokenizer_config.json / special_tokens_map.json write it: a string or an
    AddedToken dict ({"content": ...})."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def special_ids(directory: str | Path, token_to_id: Callable[[str], int | None]) -> dict[str, int | None]:
    """The ``bos``/``eos``/``unk``/``pad`` ids that ``tokenizer_config.json`` (or ``special_tokens_map.json``)
    in ``directory`` names, mapped through ``token_to_id`` (None where a file names none)."""
    directory = Path(directory)
    named: dict[str, str] = {}
    for file in SPECIAL_TOKEN_FILES:  # the later file wins
        path = directory / file
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise CheckpointError(f"cannot read {path}: {_first_line(e)}") from e
        for key in ("bos", "eos", "unk", "pad"):
            token = _token_content(data.get(f"{key}_token")) if isinstance(data, Mapping) else None
            if token is not None:
                named[key] = token
    return {key: (token_to_id(named[key]) if key in named else None) for key in ("bos", "eos", "unk", "pad")}


def tokenizers_vocabulary(path: str | Path, **ids: int | None) -> TokenizersVocabulary:
    """A ``tokenizer.json``; special ids not given are read from the ``tokenizer_config.json`` beside it."""
    import tensorflow as tf
    from tokenizers import Tokenizer

    from xlt.data.tokenizers_vocab import TokenizersVocabulary

    path = Path(path)
    if not tf.io.gfile.exists(str(path)):
        raise ConfigError(f"Hugging Face tokenizer not found: {path}")
    missing = [k for k in ("eos_id", "bos_id", "unk_id") if k not in ids]
    if missing:
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as e:
            raise ConfigError(f"cannot read Hugging Face tokenizer {path}: {_first_line(e)}") from e
        found = special_ids(path.parent, tok.token_to_id)
        for k in missing:
            ids[k] = found[k.removesuffix("_id")]
    return TokenizersVocabulary(path, eos_id=ids["eos_id"], bos_id=ids["bos_id"], unk_id=ids["unk_id"])


def local_vocabulary_file(url: str, kind: str) -> Path:
    """A local copy of the vocabulary file at ``url`` (downloaded once per process), for seqio and tokenizers,
    which open local files; a ``tokenizer.json`` comes with the ``tokenizer_config.json`` /
    ``special_tokens_map.json`` beside it (they name its special tokens). The copy keeps the file's name, so
    the record a run writes (``vocab/<name>``, sha256) is the one a local path to the same file gives."""
    if not paths.exists(url):
        raise ConfigError(f"{'sentencepiece model' if kind == 'sentencepiece' else 'Hugging Face tokenizer'} "
                          f"not found: {url}")
    return _downloaded_vocabulary(url, kind)


@functools.lru_cache(maxsize=None)
def _downloaded_vocabulary(url: str, kind: str) -> Path:
    where = paths.scratch_dir()
    local = paths.local_copy(url, where)
    if kind == "tokenizers":
        for name in SPECIAL_TOKEN_FILES:
            sibling = paths.path(url).parent / name
            if sibling.is_file():
                paths.copy_file(sibling, where / name)
    return local


# --- Building a vocabulary by kind ---------------------------------------------------------------------------


@gin.configurable
def vocabulary(kind: str = "byte", path: str | None = None, extra_ids: int = 0) -> seqio.Vocabulary:
    """The run's vocabulary: UTF-8 bytes (no training needed; ByT5's), a sentencepiece ``.model`` file, or a
    Hugging Face ``tokenizer.json`` (kind ``tokenizers``; no extra ids)."""
    import seqio
    import tensorflow as tf

    if kind == "byte":
        return seqio.ByteVocabulary(extra_ids=extra_ids)
    if kind not in KINDS:
        raise ConfigError(f"vocabulary.kind={kind!r}; choose one of {list(KINDS)}")
    if not path:
        raise ConfigError(f"vocabulary.kind={kind!r} needs vocabulary.path "
                          f"({'a .model file' if kind == 'sentencepiece' else 'a tokenizer.json'})")
    if paths.is_url(path):
        path = str(local_vocabulary_file(path, kind))
    if kind == "sentencepiece":
        if not tf.io.gfile.exists(path):
            raise ConfigError(f"sentencepiece model not found: {path}")
        vocab = seqio.SentencePieceVocabulary(path, extra_ids=extra_ids)
        try:  # seqio parses the file lazily; a broken one is one line here, not a protobuf traceback mid-run
            vocab.vocab_size
        except Exception as e:
            raise ConfigError(f"{path} is not a sentencepiece model: {_first_line(e)}") from e
        return vocab
    if extra_ids:
        raise ConfigError("vocabulary.extra_ids is not supported with kind='tokenizers' (add the tokens to "
                          "the tokenizer.json instead)")
    return tokenizers_vocabulary(path)


def kind_of(vocab: seqio.Vocabulary) -> str:
    import seqio

    from xlt.data.tokenizers_vocab import TokenizersVocabulary

    if isinstance(vocab, seqio.ByteVocabulary):
        return "byte"
    if isinstance(vocab, seqio.SentencePieceVocabulary):
        return "sentencepiece"
    if isinstance(vocab, TokenizersVocabulary):
        return "tokenizers"
    raise ConfigError(f"xlt cannot record a {type(vocab).__name__} in a checkpoint; use one of {list(KINDS)}")


def source_file(vocab: seqio.Vocabulary) -> str | None:
    """The file a vocabulary is read from (None for bytes)."""
    kind = kind_of(vocab)
    if kind == "sentencepiece":
        return vocab.sentencepiece_model_file
    if kind == "tokenizers":
        return vocab.path
    return None


def vocabulary_id(vocab: seqio.Vocabulary) -> str:
    """The one-string identity checkpoints recorded before ``VocabularyRecord`` (read back by
    ``record_from_legacy_id``): ``ByteVocabulary:<size>`` or ``sentencepiece:<sha256[:16]>:<size>:extra_ids=<n>``."""
    import seqio

    if isinstance(vocab, seqio.SentencePieceVocabulary):
        return f"sentencepiece:{sha256_of(vocab.sentencepiece_model_file)[:16]}:{vocab.vocab_size}:" \
               f"extra_ids={vocab.extra_ids}"
    return f"{type(vocab).__name__}:{vocab.vocab_size}"


# --- The record ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Conventions:
    """How token ids are laid out around a text for the model that a record belongs to.

    ``add_bos``/``add_eos``: the tokenizer puts ``bos_id`` before / ``eos_id`` after a text (HF's
    ``add_special_tokens=True``). ``decoder_start_id``: the id every decoder row begins with, the token the
    first prediction is made from (seqio's shifted-in 0 for models xlt trained; T5's
    ``decoder_start_token_id``; a decoder-only import's BOS). ``pad_id``: the tokenizer's padding id (xlt
    masks padding by segment ids whatever it is)."""

    add_bos: bool = False
    bos_id: int | None = None
    add_eos: bool = True
    eos_id: int | None = 1
    pad_id: int | None = 0
    decoder_start_id: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Conventions:
        if not isinstance(data, Mapping):
            raise CheckpointError(f"{where}: vocabulary conventions must be an object, got {type(data).__name__}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise CheckpointError(f"{where}: unknown vocabulary conventions {unknown}")
        for key, value in data.items():
            kind = bool if key.startswith("add_") else int
            optional = key not in ("add_bos", "add_eos", "decoder_start_id")
            if not (isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
                    or (optional and value is None)):
                raise CheckpointError(f"{where}: vocabulary convention {key}={value!r} is not a "
                                      f"{kind.__name__}{' or null' if optional else ''}")
        return cls(**dict(data))


def xlt_conventions(vocab: seqio.Vocabulary) -> Conventions:
    """The layout xlt's own pipeline gives a vocabulary (seqio's converters): no BOS, EOS appended, decoder
    rows start from the shifted-in 0, padding 0."""
    return Conventions(add_bos=False, bos_id=None, add_eos=True, eos_id=vocab.eos_id, pad_id=0, decoder_start_id=0)


@dataclasses.dataclass(frozen=True)
class VocabularyRecord:
    """Which vocabulary a checkpoint's ids mean: ``kind``, ``size`` (ids, extra ids included), ``file``
    (path inside the checkpoint, relative to its root; None for bytes), ``sha256`` of that file,
    ``extra_ids`` and the ``conventions``. Records from before this format may hold only the first 16 hex
    digits of the sha256 and no file."""

    kind: str
    size: int
    conventions: Conventions = Conventions()
    file: str | None = None
    sha256: str | None = None
    extra_ids: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "size": self.size, "file": self.file, "sha256": self.sha256,
                "extra_ids": self.extra_ids, "conventions": self.conventions.to_dict()}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> VocabularyRecord:
        if not isinstance(data, Mapping):
            raise CheckpointError(f"{where}: the vocabulary record must be an object, got {type(data).__name__}")
        unknown = sorted(set(data) - {"kind", "size", "file", "sha256", "extra_ids", "conventions"})
        if unknown:
            raise CheckpointError(f"{where}: unknown vocabulary record fields {unknown}")
        kind, size = data.get("kind"), data.get("size")
        if kind not in KINDS:
            raise CheckpointError(f"{where}: vocabulary kind {kind!r} is not one of {list(KINDS)}")
        if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
            raise CheckpointError(f"{where}: vocabulary size {size!r} is not a positive integer")
        file, sha = data.get("file"), data.get("sha256")
        if kind != "byte" and not (isinstance(sha, str) and sha):
            raise CheckpointError(f"{where}: a {kind} vocabulary record needs its sha256")
        for name, value in (("file", file), ("sha256", sha)):
            if value is not None and not isinstance(value, str):
                raise CheckpointError(f"{where}: vocabulary {name} must be a string, got {value!r}")
        extra = data.get("extra_ids", 0)
        if not isinstance(extra, int) or isinstance(extra, bool) or extra < 0:
            raise CheckpointError(f"{where}: vocabulary extra_ids {extra!r} is not a non-negative integer")
        conventions = Conventions.from_dict(data.get("conventions", {}), where)
        return cls(kind=kind, size=size, conventions=conventions, file=file, sha256=sha, extra_ids=extra)

    def same_ids(self, other: VocabularyRecord) -> bool:
        """Do both records describe the same token ids (kind, size, extra ids, file contents)? A legacy
        16-digit sha256 matches the full digest it starts. File names and conventions do not matter."""
        if (self.kind, self.size, self.extra_ids) != (other.kind, other.size, other.extra_ids):
            return False
        if self.kind == "byte":
            return True
        a, b = self.sha256 or "", other.sha256 or ""
        return bool(a and b) and (a.startswith(b) or b.startswith(a))

    def describe(self) -> str:
        if self.kind == "byte":
            return f"byte vocabulary ({self.size} ids)"
        return f"{self.kind} vocabulary {self.file or '(file not recorded)'} ({self.size} ids, sha256 " \
               f"{(self.sha256 or '?')[:12]}…)"


def record_of(vocab: seqio.Vocabulary, *, file: str | None = None,
              conventions: Conventions | None = None) -> VocabularyRecord:
    """The record of ``vocab`` whose file will sit at ``file`` inside the checkpoint (default
    ``vocab/<its name>``); ``conventions`` default to xlt's pipeline's (``xlt_conventions``)."""
    kind = kind_of(vocab)
    source = source_file(vocab)
    sha = None
    if source is not None:
        file = file or f"{RUN_DIR}/{Path(source).name}"
        sha = sha256_of(source)
    return VocabularyRecord(kind=kind, size=int(vocab.vocab_size), file=file if source else None, sha256=sha,
                            extra_ids=int(vocab.extra_ids),
                            conventions=conventions if conventions is not None else xlt_conventions(vocab))


def record_from_legacy_id(vocab_id: Any) -> VocabularyRecord | None:
    """A record from the string older checkpoints kept (``vocabulary_id``); None for '' / None (not recorded).
    A sentencepiece id carries a 16-digit sha256 prefix and no file name."""
    if vocab_id in (None, ""):
        return None
    if not isinstance(vocab_id, str):
        raise CheckpointError(f"unreadable vocabulary entry {vocab_id!r} in an older checkpoint")
    parts = vocab_id.split(":")
    try:
        if parts[0] == "ByteVocabulary" and len(parts) == 2:
            size = int(parts[1])
            return VocabularyRecord(kind="byte", size=size, extra_ids=size - 259)
        if parts[0] == "sentencepiece" and len(parts) == 4 and parts[3].startswith("extra_ids="):
            return VocabularyRecord(kind="sentencepiece", size=int(parts[2]), sha256=parts[1],
                                    extra_ids=int(parts[3].removeprefix("extra_ids=")))
    except ValueError:
        pass
    raise CheckpointError(f"unreadable vocabulary entry {vocab_id!r} in an older checkpoint")


def recorded_file(record: VocabularyRecord, checkpoint_dir: str | Path) -> Path:
    """The vocabulary file ``record`` names inside ``checkpoint_dir``, after checking that it is there and has
    the recorded sha256 (a changed or replaced file is refused: the ids would mean other tokens). In a bucket
    checkpoint (``gs://…``) it is a local copy of the object, made for this call."""
    path = paths.path(checkpoint_dir) / str(record.file)
    if not path.is_file():
        raise CheckpointError(f"vocabulary file {path} recorded by checkpoint {checkpoint_dir} is missing")
    where = path
    if paths.is_url(path):  # seqio and tokenizers open local files; the copy is what is checked and read
        path = paths.local_copy(path)
    sha = sha256_of(path)
    if not (record.sha256 and sha.startswith(record.sha256)):
        raise CheckpointError(f"vocabulary file {where} has sha256 {sha[:12]}… but the checkpoint records "
                              f"{(record.sha256 or '?')[:12]}…: the file was changed after the checkpoint "
                              "was written")
    return path


def vocabulary_from_record(record: VocabularyRecord, checkpoint_dir: str | Path) -> seqio.Vocabulary:
    """Rebuild the vocabulary a record describes; its file is ``checkpoint_dir / record.file`` and must have
    the recorded sha256 (a changed or replaced file is refused: the ids would mean other tokens)."""
    import seqio

    from xlt.data.tokenizers_vocab import TokenizersVocabulary

    if record.kind == "byte":
        vocab: seqio.Vocabulary = seqio.ByteVocabulary(extra_ids=record.extra_ids)
    else:
        if not record.file:
            raise CheckpointError(f"checkpoint {checkpoint_dir} records a {record.kind} vocabulary (sha256 "
                                  f"{record.sha256}) but not its file (written by an older xlt); pass the "
                                  "vocabulary explicitly")
        path = recorded_file(record, checkpoint_dir)
        c = record.conventions
        try:
            if record.kind == "sentencepiece":
                vocab = seqio.SentencePieceVocabulary(str(path), extra_ids=record.extra_ids)
            else:
                vocab = TokenizersVocabulary(path, eos_id=c.eos_id, bos_id=c.bos_id)
        except ConfigError as e:
            raise CheckpointError(str(e)) from e
    if vocab.vocab_size != record.size:
        raise CheckpointError(f"checkpoint {checkpoint_dir} records a {record.kind} vocabulary of {record.size} "
                              f"ids but its file gives {vocab.vocab_size}")
    return vocab


def of_task(mixture_or_task_name: str) -> seqio.Vocabulary:
    """The one vocabulary a registered seqio task, mixture or curriculum tokenizes with (every feature of every
    task of every stage)."""
    import seqio

    from xlt.data import pipeline  # a curriculum is xlt's (stages of task rates), not a seqio mixture

    tasks = [seqio.get_mixture_or_task(name) for _, rates in pipeline.stages_of(mixture_or_task_name)
             for name in rates]
    found: list[seqio.Vocabulary] = []
    for task in tasks:
        for feature in task.output_features.values():
            if feature.vocabulary not in found:
                found.append(feature.vocabulary)
    if len(found) != 1:
        raise ConfigError(f"{mixture_or_task_name} tokenizes with {len(found)} different vocabularies; a "
                          "checkpoint records one")
    return found[0]
