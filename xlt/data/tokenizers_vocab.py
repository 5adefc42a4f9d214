"""The Hugging Face ``tokenizers`` vocabulary kind: a ``tokenizer.json`` as a seqio vocabulary (see
``xlt.data.vocab`` for the kinds, records and how a vocabulary travels with a checkpoint)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import seqio
import tensorflow as tf

from xlt.errors import ConfigError


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


class TokenizersVocabulary(seqio.Vocabulary):
    """A Hugging Face ``tokenizer.json`` as a seqio vocabulary.

    ``encode`` is ``Tokenizer.encode(text, add_special_tokens=False).ids``: the ids transformers'
    ``tokenizer(text, add_special_tokens=False)`` gives for the same file. ``eos_id`` / ``bos_id`` /
    ``unk_id`` are the tokenizer's special tokens (a ``tokenizer.json`` does not say which of its added
    tokens is the EOS: ``tokenizer_config.json`` does, see ``xlt.data.vocab.special_ids``; ``unk_id``
    defaults to the model's own unknown token); seqio's ``append_eos`` appends ``eos_id``. ``decode`` drops
    special tokens. The TF ops (``encode_tf`` / ``decode_tf``, used by seqio tasks) call the same Python
    tokenizer through ``tf.numpy_function``.
    """

    def __init__(self, path: str | Path, *, eos_id: int | None = None, bos_id: int | None = None,
                 unk_id: int | None = None):
        from tokenizers import Tokenizer

        super().__init__(extra_ids=0)
        self._path = str(path)
        try:
            with tf.io.gfile.GFile(self._path, "rb") as f:
                text = f.read().decode("utf-8")
            self._tokenizer = Tokenizer.from_str(text)
        except Exception as e:
            raise ConfigError(f"cannot read Hugging Face tokenizer {self._path}: {_first_line(e)}") from e
        self._digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        ids = self._tokenizer.get_vocab(with_added_tokens=True).values()
        self._size = max(ids) + 1 if ids else 0
        for name, value in (("eos_id", eos_id), ("bos_id", bos_id), ("unk_id", unk_id)):
            if value is not None and not 0 <= value < self._size:
                raise ConfigError(f"{name}={value} is outside the {self._size} ids of {self._path}")
        if unk_id is None:  # the model's own unknown token (WordLevel, WordPiece, BPE without byte fallback)
            unk_token = getattr(self._tokenizer.model, "unk_token", None)
            unk_id = self._tokenizer.token_to_id(unk_token) if isinstance(unk_token, str) else None
        self._eos, self._bos, self._unk = eos_id, bos_id, unk_id

    @property
    def path(self) -> str:
        return self._path

    @property
    def tokenizer(self):
        """The ``tokenizers.Tokenizer``."""
        return self._tokenizer

    @property
    def eos_id(self) -> int | None:
        return self._eos

    @property
    def bos_id(self) -> int | None:
        return self._bos

    @property
    def unk_id(self) -> int | None:
        return self._unk

    @property
    def _base_vocab_size(self) -> int:
        return self._size

    def _encode(self, s: str) -> list[int]:
        return list(self._tokenizer.encode(s, add_special_tokens=False).ids)

    def _decode(self, ids) -> str:
        return self._tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)

    def _encode_tf(self, s: tf.Tensor) -> tf.Tensor:
        def encode(x) -> np.ndarray:  # x: bytes, or a 0-d numpy array of bytes
            x = x.item() if isinstance(x, np.ndarray) else x
            return np.asarray(self._encode(x.decode("utf-8")), np.int32)

        s = tf.convert_to_tensor(s, tf.string)
        if s.shape.rank == 0:
            out = tf.numpy_function(encode, [s], tf.int32, stateful=False)
            out.set_shape([None])
            return out
        return tf.map_fn(self._encode_tf, s, fn_output_signature=tf.RaggedTensorSpec([None], tf.int32))

    def _decode_tf(self, ids: tf.Tensor) -> tf.Tensor:
        def decode(x: np.ndarray) -> np.ndarray:
            rows = x.reshape(-1, x.shape[-1]) if x.ndim else x.reshape(1, 1)
            out = np.array([self._decode(r).encode("utf-8") for r in rows], dtype=object)
            return out.reshape(x.shape[:-1]) if x.ndim else out.reshape(())

        ids = tf.convert_to_tensor(ids, tf.int32)
        out = tf.numpy_function(decode, [ids], tf.string, stateful=False)
        out.set_shape(ids.shape[:-1])
        return out

    def __eq__(self, other: Any) -> bool:
        return (isinstance(other, TokenizersVocabulary) and self._digest == other._digest
                and (self._eos, self._bos, self._unk) == (other._eos, other._bos, other._unk))

    def __hash__(self) -> int:
        return hash(self._digest)
