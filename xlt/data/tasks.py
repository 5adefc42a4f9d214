"""seqio Tasks over local real text: one pretraining task per (source, language), e.g. ``bible_ko``.

``bible_<lang>`` is plain language modelling (``targets`` only). ``bible_<lang>_prefix`` splits each verse
at its middle character into ``inputs`` and ``targets`` (T5's prefix-LM objective): the real-text task
for encoder-decoder layouts and prefix-LM decoders until span corruption and instruction data land.

Tasks are registered by ``register_tasks`` (gin-configurable), which takes the vocabulary, so a run
switches tokenizer with one binding. Every example carries its language code as the feature ``lang``.
"""

from __future__ import annotations

import functools

import gin
import seqio
import tensorflow as tf

from xlt.data.sources import bible
from xlt.errors import ConfigError

VOCABULARIES = ("byte", "sentencepiece")


@gin.configurable
def vocabulary(kind: str = "byte", path: str | None = None, extra_ids: int = 0) -> seqio.Vocabulary:
    """UTF-8 bytes (no training needed; ByT5's) or a sentencepiece model file."""
    if kind == "byte":
        return seqio.ByteVocabulary(extra_ids=extra_ids)
    if kind == "sentencepiece":
        if not path:
            raise ConfigError("vocabulary.kind='sentencepiece' needs vocabulary.path (a .model file)")
        if not tf.io.gfile.exists(path):
            raise ConfigError(f"sentencepiece model not found: {path}")
        return seqio.SentencePieceVocabulary(path, extra_ids=extra_ids)
    raise ConfigError(f"vocabulary.kind={kind!r}; choose one of {list(VOCABULARIES)}")


def _bible_dataset(split: str, shuffle_files: bool = False, seed: int | None = None, *, lang: str) -> tf.data.Dataset:
    del shuffle_files, seed  # one in-memory shard; the task's shuffle buffer does the shuffling
    texts = [v.text for v in bible.verses(lang, split)]
    return tf.data.Dataset.from_tensor_slices({"text": texts, "lang": [lang] * len(texts)})


def _to_targets(ds: tf.data.Dataset) -> tf.data.Dataset:
    return ds.map(lambda ex: {"targets": ex["text"], "lang": ex["lang"]}, num_parallel_calls=tf.data.AUTOTUNE)


def _split_halves(ds: tf.data.Dataset) -> tf.data.Dataset:
    """inputs = first half of the verse's characters, targets = the rest (character-wise: no word spaces
    needed, so zh and ja split as well as en)."""
    def fn(ex):
        chars = tf.strings.unicode_split(ex["text"], "UTF-8")
        mid = tf.size(chars) // 2
        return {"inputs": tf.strings.reduce_join(chars[:mid]), "targets": tf.strings.reduce_join(chars[mid:]),
                "lang": ex["lang"]}
    return ds.map(fn, num_parallel_calls=tf.data.AUTOTUNE).filter(
        lambda ex: tf.strings.length(ex["inputs"]) > 0)


def _register(name: str, task: seqio.Task) -> None:
    if name in seqio.TaskRegistry.names():
        seqio.TaskRegistry.remove(name)
    seqio.TaskRegistry.add_provider(name, task)


@gin.configurable
def register_tasks(vocab: seqio.Vocabulary | None = None, languages: tuple[str, ...] = bible.LANGUAGES) -> list[str]:
    """Register ``bible_<lang>`` and ``bible_<lang>_prefix`` tasks (re-registering replaces an earlier
    vocabulary). Returns the registered names."""
    vocab = vocab or vocabulary()
    feature = seqio.Feature(vocab, add_eos=True, dtype=tf.int32)
    names = []
    for lang in languages:
        source = seqio.FunctionDataSource(functools.partial(_bible_dataset, lang=lang),
                                          splits=("train", "validation", "test"))
        kinds = {f"bible_{lang}": ([_to_targets], {"targets": feature}),
                 f"bible_{lang}_prefix": ([_split_halves], {"inputs": feature, "targets": feature})}
        for name, (prep, features) in kinds.items():
            _register(name, seqio.Task(
                name, source=source,
                preprocessors=prep + [seqio.preprocessors.tokenize, seqio.preprocessors.append_eos],
                output_features=features, shuffle_buffer_size=10_000))
            names.append(name)
    return names


def vocabulary_id(vocab: seqio.Vocabulary) -> str:
    """A short identity of a vocabulary, recorded in checkpoints so a mismatched one is refused."""
    if isinstance(vocab, seqio.SentencePieceVocabulary):
        return f"sentencepiece:{vocab.sentencepiece_model_file}:{vocab.vocab_size}"
    return f"{type(vocab).__name__}:{vocab.vocab_size}"
