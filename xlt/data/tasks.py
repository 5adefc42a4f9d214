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
from xlt.data.vocab import vocabulary, vocabulary_id  # noqa: F401 - the vocabulary kinds live in xlt.data.vocab
from xlt.errors import ConfigError

def _bible_dataset(split: str, shuffle_files: bool = False, seed: int | None = None, *, lang: str) -> tf.data.Dataset:
    """One split's verses. Shuffled here, as raw strings with a buffer the size of the split: a full
    permutation (a fresh one each epoch) for the cost of shuffling pointers, so the task's own buffer,
    which holds tokenized examples, can stay small and the first batch comes fast."""
    texts = [v.text for v in bible.verses(lang, split)]
    ds = tf.data.Dataset.from_tensor_slices({"text": texts, "lang": [lang] * len(texts)})
    if shuffle_files:
        ds = ds.shuffle(len(texts), seed=seed, reshuffle_each_iteration=True)
    return ds


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
                output_features=features, shuffle_buffer_size=256))
            names.append(name)
    return names


MC4_TFDS = "c4/multilingual:3.1.0"


def mc4_languages() -> tuple[str, ...]:
    """The language splits TFDS's mC4 builder defines (101 languages plus 'und')."""
    from tensorflow_datasets.text import c4
    return tuple(c4.MC4_LANGUAGES)


def _mc4_to_targets(ds: tf.data.Dataset, lang: str) -> tf.data.Dataset:
    return ds.map(lambda ex: {"targets": ex["text"], "lang": tf.constant(lang)},
                  num_parallel_calls=tf.data.AUTOTUNE)


@gin.configurable
def register_mc4_tasks(vocab: seqio.Vocabulary | None = None, languages: tuple[str, ...] = ("en",),
                       tfds_name: str = MC4_TFDS, data_dir: str | None = None) -> list[str]:
    """Register ``mc4_<lang>`` language-modelling tasks over TFDS mC4 (needs the prepared TFDS data, e.g.
    on GCS via ``data_dir``; nothing is downloaded here). mC4 names its splits by language: ``<lang>`` for
    train and ``<lang>-validation``. Mix them with ``xlt.data.mixtures.register_mixture(...,
    task_pattern='mc4_{lang}')`` (sizes: the TFDS split sizes)."""
    vocab = vocab or vocabulary()
    known = mc4_languages()
    feature = seqio.Feature(vocab, add_eos=True, dtype=tf.int32)
    names = []
    for lang in languages:
        if lang not in known:
            raise ConfigError(f"mC4 has no language {lang!r}; it has {len(known)}: {', '.join(known[:20])} …")
        name = f"mc4_{lang.replace('-', '_')}"
        source = seqio.TfdsDataSource(tfds_name=tfds_name, tfds_data_dir=data_dir,
                                      splits={"train": lang, "validation": f"{lang}-validation"})
        _register(name, seqio.Task(
            name, source=source,
            preprocessors=[functools.partial(_mc4_to_targets, lang=lang), seqio.preprocessors.tokenize,
                           seqio.preprocessors.append_eos],
            output_features={"targets": feature}, shuffle_buffer_size=10_000))
        names.append(name)
    return names
