"""seqio Tasks over local real text: one pretraining task per (source, language), e.g. ``bible_ko``.

``bible_<lang>`` is plain language modelling (``targets`` only). ``bible_<lang>_prefix`` splits each verse
at its middle character into ``inputs`` and ``targets`` (T5's prefix-LM objective): the real-text task
for encoder-decoder layouts and prefix-LM decoders until span corruption and instruction data land.

Tasks are registered by ``register_tasks`` (gin-configurable), which takes the vocabulary, so a run
switches tokenizer with one binding. Every example carries its language code as the feature ``lang``.

Task metadata. seqio's Task has no place for what a mixture needs to know, so every xlt task is registered
with a ``TaskMeta`` in a side registry here: its language (``task_language``: never parsed from the name) and
a size function per split with its unit — the packaged Bible's characters for ``bible_<lang>``, TFDS's
example counts (``tfds_num_examples``) or a sizes file for ``mc4_<lang>``, the number of items for the
instruction tasks (``xlt.instruct.tasks``). ``xlt.data.mixtures.task_sizes`` asks them; a task registered
elsewhere joins with ``register_task_meta``.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import gin
import seqio
import tensorflow as tf

from xlt.data.sources import bible
from xlt.data.vocab import vocabulary, vocabulary_id  # noqa: F401 - the vocabulary kinds live in xlt.data.vocab
from xlt.errors import ConfigError, DataError

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


# --- Task metadata ---------------------------------------------------------------------------------------

SIZE_UNITS = ("characters", "tokens", "examples")


@dataclass(frozen=True)
class TaskMeta:
    """What a mixture asks of a task: the language its examples carry and the size of a split.

    ``size(split)`` returns a number in ``unit`` (one of ``SIZE_UNITS``), or None when it is unknown."""

    language: str
    size: Callable[[str], float | None]
    unit: str

    def size_of(self, task: str, split: str = "train") -> float:
        """The size of ``split`` as a finite number > 0, or a one-line DataError naming the task."""
        n = self.size(split)
        if n is None or isinstance(n, bool):
            raise DataError(f"task {task!r} does not know the size of its {split!r} split")
        n = float(n)
        if not math.isfinite(n) or n <= 0:
            raise DataError(f"task {task!r}: size of its {split!r} split is {n!r} {self.unit}; need a finite "
                            "number > 0")
        return n


_TASK_META: dict[str, TaskMeta] = {}


def register_task_meta(name: str, language: str, size: Callable[[str], float | None], unit: str) -> TaskMeta:
    """Record (or replace) the metadata of task ``name``."""
    if unit not in SIZE_UNITS:
        raise ConfigError(f"task {name!r}: size unit {unit!r}; choose one of {', '.join(SIZE_UNITS)}")
    if not isinstance(language, str) or not language:
        raise ConfigError(f"task {name!r}: language must be a language code, got {language!r}")
    meta = TaskMeta(language, size, unit)
    _TASK_META[name] = meta
    return meta


def task_meta(name: str) -> TaskMeta | None:
    return _TASK_META.get(name)


def require_task_meta(name: str) -> TaskMeta:
    """The metadata of a registered task, or a one-line DataError saying what is missing."""
    if name not in seqio.TaskRegistry.names():
        raise DataError(f"task {name!r} is not registered; call xlt.data.tasks.register_tasks first")
    if name not in _TASK_META:
        raise DataError(f"task {name!r} has no language or size metadata; register it with "
                        "xlt.data.tasks.register_task_meta")
    return _TASK_META[name]


def task_language(name: str) -> str | None:
    """The language a task's examples carry (its metadata), None for a task without one."""
    meta = _TASK_META.get(name)
    return None if meta is None else meta.language


def _register(name: str, task: seqio.Task, language: str, size: Callable[[str], float | None], unit: str) -> None:
    if name in seqio.TaskRegistry.names():
        seqio.TaskRegistry.remove(name)
    seqio.TaskRegistry.add_provider(name, task)
    register_task_meta(name, language, size, unit)


def bible_chars(lang: str, split: str = "train") -> int:
    """Characters in one split of the packaged Bible for ``lang`` (the ``bible_<lang>`` tasks' size)."""
    chars = bible.stats(lang)["chars"]
    if split not in chars:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(chars)}")
    return chars[split]


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
                output_features=features, shuffle_buffer_size=256),
                lang, functools.partial(bible_chars, lang), "characters")
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


def tfds_num_examples(tfds_name: str, split: str, data_dir: str | None = None) -> int:
    """Examples in one split of a prepared TFDS dataset, from its dataset info (nothing is read or downloaded
    beyond ``dataset_info.json``)."""
    import tensorflow_datasets as tfds

    try:
        splits = tfds.builder(tfds_name, data_dir=data_dir).info.splits
        n = splits[split].num_examples
    except Exception as e:  # noqa: BLE001  (TFDS raises several kinds for missing data)
        raise DataError(f"no TFDS split info for {tfds_name} split {split!r} (data_dir={data_dir!r}): prepare "
                        f"the dataset or pass a sizes file ({type(e).__name__})") from None
    return n if n > 0 else None  # TFDS records 0 for splits it did not count


def read_sizes_file(path: str) -> tuple[dict[str, dict[str, float]], str]:
    """A JSON sizes file: ``{"unit": "characters", "<lang>": {"train": n, "validation": m}, ...}`` (a bare
    number means the train split; ``unit`` defaults to ``examples``). Returns ({lang: {split: n}}, unit)."""
    if not tf.io.gfile.exists(path):
        raise ConfigError(f"sizes file not found: {path}")
    try:
        with tf.io.gfile.GFile(path) as f:
            raw = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"sizes file {path}: not JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(raw, dict):
        raise DataError(f"sizes file {path}: expected an object of languages, got {type(raw).__name__}")
    unit = raw.pop("unit", "examples")
    if unit not in SIZE_UNITS:
        raise DataError(f"sizes file {path}: unit {unit!r}; choose one of {', '.join(SIZE_UNITS)}")
    sizes = {}
    for lang, entry in raw.items():
        by_split = entry if isinstance(entry, dict) else {"train": entry}
        for split, n in by_split.items():
            if isinstance(n, bool) or not isinstance(n, (int, float)):
                raise DataError(f"sizes file {path}: size of {lang!r} split {split!r} must be a number, got {n!r}")
        sizes[lang] = dict(by_split)
    return sizes, unit


def _size_from_file(sizes: dict[str, dict[str, float]], path: str, lang: str, split: str) -> float:
    if split not in sizes.get(lang, {}):
        raise DataError(f"sizes file {path} has no size for {lang!r} split {split!r}")
    return sizes[lang][split]


@gin.configurable
def register_mc4_tasks(vocab: seqio.Vocabulary | None = None, languages: tuple[str, ...] = ("en",),
                       tfds_name: str = MC4_TFDS, data_dir: str | None = None,
                       sizes_file: str | None = None) -> list[str]:
    """Register ``mc4_<lang>`` language-modelling tasks over TFDS mC4 (needs the prepared TFDS data, e.g.
    on GCS via ``data_dir``; nothing is downloaded here). mC4 names its splits by language: ``<lang>`` for
    train and ``<lang>-validation``. Mix them with ``xlt.data.mixtures.language_mixture(...,
    task_pattern='mc4_{lang}')``: sizes are the TFDS split sizes in examples (documents, as mT5 counts them),
    or those of ``sizes_file`` (``read_sizes_file``; e.g. characters counted offline) when given."""
    vocab = vocab or vocabulary()
    known = mc4_languages()
    for lang in languages:
        if lang not in known:
            raise ConfigError(f"mC4 has no language {lang!r}; it has {len(known)}: {', '.join(known[:20])} …")
    file_sizes, file_unit = read_sizes_file(sizes_file) if sizes_file else (None, None)
    feature = seqio.Feature(vocab, add_eos=True, dtype=tf.int32)
    names = []
    for lang in languages:
        name = f"mc4_{lang.replace('-', '_')}"
        tfds_splits = {"train": lang, "validation": f"{lang}-validation"}
        source = seqio.TfdsDataSource(tfds_name=tfds_name, tfds_data_dir=data_dir, splits=tfds_splits)
        if file_sizes is not None:
            size, unit = functools.partial(_size_from_file, file_sizes, sizes_file, lang), file_unit
        else:
            def size(split, s=tfds_splits):  # looks tfds_num_examples up when called (tests fake it)
                return tfds_num_examples(tfds_name, s.get(split, split), data_dir)
            unit = "examples"
        _register(name, seqio.Task(
            name, source=source,
            preprocessors=[functools.partial(_mc4_to_targets, lang=lang), seqio.preprocessors.tokenize,
                           seqio.preprocessors.append_eos],
            output_features={"targets": feature}, shuffle_buffer_size=10_000),
            lang, size, unit)
        names.append(name)
    return names
