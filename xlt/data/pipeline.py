"""From a registered task, mixture or curriculum to the per-process batches the train step consumes.

Determinism. The batch at step k is a pure function of (task/mixture/curriculum, seed, feature lengths,
batch size, k):

* Every task's examples are shuffled with a seed derived from (seed, stage, task), languages are drawn
  with ``tf.data.Dataset.sample_from_datasets`` seeded the same way, and tf.data runs in deterministic
  order; so a stage's stream of packed batches is fixed.
* A curriculum is a list of stages (``xlt.data.mixtures.Curriculum``). Stage s owns steps
  [start_s, start_{s+1}) and its own stream, starting at its first batch at step start_s. The batch at
  step k is batch ``k - start_s`` of stage s's stream, whatever happened before: a run resumed at step k
  builds only stage s's stream and skips ``k - start_s`` batches, and reaches the next boundary exactly
  as an uninterrupted run does. (Each stage begins a fresh, differently shuffled pass over every
  language. On corpora much larger than one stage's budget this is the same as continuing the pass.)
* A plain seqio Task or Mixture is a curriculum with one stage.

Language accounting. Each example's target ids are offset by ``task_index * stride`` (stride > vocab
size) before seqio's feature converter packs them, and the offset is removed right after: packing only
looks at lengths and non-zero ids, so the model features are unchanged, and every target position
gets the index of the task it came from (``target_task``, -1 where the loss weight is 0). The trainer
turns these into the realised per-language token share of each logging window.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping

import jax
import numpy as np
import seqio
import tensorflow as tf

from xlt.data import mixtures
from xlt.errors import ConfigError

CONVERTERS = {
    "decoder": seqio.DecoderFeatureConverter,
    "prefix_lm": seqio.PrefixLMFeatureConverter,
    "encdec": seqio.EncDecFeatureConverter,
}
TARGET_TASK = "target_task"  # host-side feature: task index per target position (-1: no loss)
_INT32_MAX = 2**31 - 1


def check_registered(name: str) -> None:
    if mixtures.get_curriculum(name) is not None:
        return
    if name not in seqio.TaskRegistry.names() and name not in seqio.MixtureRegistry.names():
        known = sorted(set(seqio.TaskRegistry.names()) | set(seqio.MixtureRegistry.names())
                       | set(mixtures.curriculum_names()))
        raise ConfigError(f"unknown task or mixture {name!r}; registered: {', '.join(known[:12])}"
                          + (f" … ({len(known)} in all)" if len(known) > 12 else ""))


def task_feature_lengths(converter: str, seq_len: int, input_len: int | None = None) -> dict[str, int]:
    """Task-level lengths. prefix_lm: inputs+targets share the decoder's seq_len (inputs take input_len)."""
    if converter == "decoder":
        return {"targets": seq_len}
    input_len = input_len or seq_len // 2
    if converter == "prefix_lm":
        return {"inputs": input_len, "targets": seq_len - input_len}
    return {"inputs": input_len, "targets": seq_len}


def stages_of(name: str) -> tuple[tuple[int, dict[str, float]], ...]:
    """``((start_step, {task_name: rate}), ...)`` for a curriculum, mixture or task."""
    check_registered(name)
    curriculum = mixtures.get_curriculum(name)
    if curriculum is not None:
        return tuple((s.start_step, curriculum.task_rates(s)) for s in curriculum.curriculum.stages)
    if name in seqio.MixtureRegistry.names():
        mixture = seqio.get_mixture_or_task(name)
        return ((0, {t.name: float(mixture.get_rate(t)) for t in mixture.tasks}),)
    return ((0, {name: 1.0}),)


def output_features(name: str) -> Mapping[str, seqio.Feature]:
    """The output features shared by every task of ``name``."""
    first = stages_of(name)[0][1]
    return seqio.get_mixture_or_task(next(iter(first))).output_features


def task_labels(name: str) -> tuple[str, ...]:
    """One label per task index of ``target_task``: the task's language where known, else its name."""
    tasks = _task_order(name)
    curriculum = mixtures.get_curriculum(name)
    by_task = curriculum.languages_by_task() if curriculum is not None else {}
    return tuple(by_task.get(t) or _language_of_task(t) or t for t in tasks)


def _language_of_task(task_name: str) -> str | None:
    """The ``lang`` a task's examples carry, from its metadata (``xlt.data.tasks.task_language``); None for a
    task registered without any (it is then labelled by its name)."""
    from xlt.data import tasks
    return tasks.task_language(task_name)


def _task_order(name: str) -> tuple[str, ...]:
    order: list[str] = []
    for _, rates in stages_of(name):
        order.extend(t for t in rates if t not in order)
    return tuple(order)


def _derived_seed(*parts: object) -> int:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def _stride(tasks: tuple[str, ...]) -> int:
    vocab = max(seqio.get_mixture_or_task(t).output_features["targets"].vocabulary.vocab_size for t in tasks)
    if vocab * len(tasks) > _INT32_MAX:
        raise ConfigError(f"{len(tasks)} tasks × vocabulary {vocab} overflow int32 language tags")
    return vocab


def _stage_dataset(rates: Mapping[str, float], order: tuple[str, ...], converter: str,
                   lengths: Mapping[str, int], local_batch: int, seed: int, stage: int, split: str, pack: bool,
                   shard_info: seqio.ShardInfo | None) -> tf.data.Dataset:
    stride = _stride(order)
    keys = tuple(lengths)
    datasets, weights = [], []
    for task_name, rate in rates.items():
        if rate <= 0:
            continue
        index = order.index(task_name)
        task = seqio.get_mixture_or_task(task_name)
        ds = task.get_dataset(sequence_length=dict(lengths), split=split, use_cached=False, shuffle=True,
                              seed=_derived_seed(seed, stage, task_name), num_epochs=None,
                              shard_info=shard_info, trim_output_features=True)

        def tag(ex, index=index):
            out = {k: ex[k] for k in keys}
            out["targets"] = tf.where(ex["targets"] > 0, ex["targets"] + index * stride, ex["targets"])
            return out

        datasets.append(ds.map(tag, num_parallel_calls=tf.data.AUTOTUNE))
        weights.append(float(rate))
    if len(datasets) == 1:
        ds = datasets[0]
    else:
        total = sum(weights)
        ds = tf.data.Dataset.sample_from_datasets(datasets, [w / total for w in weights],
                                                  seed=_derived_seed(seed, stage, "mix"))
    ds = CONVERTERS[converter](pack=pack)(ds, dict(lengths))
    ds = ds.batch(local_batch, drop_remainder=True)

    def untag(batch):
        out = dict(batch)
        target = batch["decoder_target_tokens"]
        out["decoder_target_tokens"] = target % stride
        out["decoder_input_tokens"] = batch["decoder_input_tokens"] % stride
        out[TARGET_TASK] = tf.where(batch["decoder_loss_weights"] > 0, target // stride, -1)
        return out

    options = tf.data.Options()
    options.deterministic = True
    return ds.map(untag, num_parallel_calls=tf.data.AUTOTUNE).with_options(options)


class Batches(Iterator[dict[str, np.ndarray]]):
    """This process's share of each global batch from ``start_step`` on, switching curriculum stages at
    their boundaries. ``labels[i]`` names task index i of ``target_task``; ``stage`` is the stage of the
    batch returned last."""

    def __init__(self, name: str, converter: str, feature_lengths: Mapping[str, int], batch_size: int,
                 seed: int, start_step: int = 0, split: str = "train", pack: bool = True, prefetch: int = 2):
        if converter not in CONVERTERS:
            raise ConfigError(f"feature converter {converter!r}; choose one of {sorted(CONVERTERS)}")
        if start_step < 0:
            raise ConfigError(f"start_step must be >= 0, got {start_step}")
        self._stages = stages_of(name)
        self._order = _task_order(name)
        self.labels = task_labels(name)
        n_proc = jax.process_count()
        if batch_size % n_proc:
            raise ConfigError(f"BATCH_SIZE={batch_size} does not divide over {n_proc} processes")
        self._args = dict(converter=converter, lengths=dict(feature_lengths), local_batch=batch_size // n_proc,
                          seed=seed, split=split, pack=pack,
                          shard_info=seqio.ShardInfo(jax.process_index(), n_proc) if n_proc > 1 else None)
        self._prefetch = prefetch
        self.step = start_step  # the step whose batch comes next
        self.stage = -1
        self._iterator: Iterator | None = None
        self._stage_end: int | None = None

    def _stage_index(self, step: int) -> int:
        starts = [s for s, _ in self._stages]
        return max(i for i, s in enumerate(starts) if s <= step)

    def _open(self) -> None:
        i = self._stage_index(self.step)
        start, rates = self._stages[i]
        ds = _stage_dataset(rates, self._order, stage=i, **self._args)
        self._iterator = ds.skip(self.step - start).prefetch(self._prefetch).as_numpy_iterator()
        self._stage_end = self._stages[i + 1][0] if i + 1 < len(self._stages) else None
        self.stage = i

    def __next__(self) -> dict[str, np.ndarray]:
        if self._iterator is None or (self._stage_end is not None and self.step >= self._stage_end):
            self._open()
        batch = next(self._iterator)
        self.step += 1
        return batch


def batches(name: str, converter: str, feature_lengths: Mapping[str, int], batch_size: int, seed: int,
            start_step: int = 0, split: str = "train", pack: bool = True) -> Batches:
    """See ``Batches``."""
    return Batches(name, converter, feature_lengths, batch_size, seed, start_step, split, pack)


def task_token_counts(target_task: np.ndarray, num_tasks: int) -> np.ndarray:
    """Loss-bearing target tokens per task index in one batch."""
    ids = target_task[target_task >= 0]
    return np.bincount(ids.ravel(), minlength=num_tasks)[:num_tasks]
