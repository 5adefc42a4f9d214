"""From a registered seqio Task or Mixture to the per-process batches the train step consumes.

The stream is a pure function of (task or mixture, seed, feature lengths, batch size): tf.data runs in
deterministic order, and resuming at step k skips the first k batches of the same stream, so a
resumed run sees exactly the batches of an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import jax
import numpy as np
import seqio
import tensorflow as tf

from xlt.errors import ConfigError

CONVERTERS = {
    "decoder": seqio.DecoderFeatureConverter,
    "prefix_lm": seqio.PrefixLMFeatureConverter,
    "encdec": seqio.EncDecFeatureConverter,
}


def check_registered(name: str) -> None:
    if name not in seqio.TaskRegistry.names() and name not in seqio.MixtureRegistry.names():
        known = sorted(set(seqio.TaskRegistry.names()) | set(seqio.MixtureRegistry.names()))
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


def batches(name: str, converter: str, feature_lengths: Mapping[str, int], batch_size: int, seed: int,
            start_step: int = 0, split: str = "train", pack: bool = True) -> Iterator[dict[str, np.ndarray]]:
    """This process's share of each global batch, as numpy, starting at batch ``start_step``."""
    if converter not in CONVERTERS:
        raise ConfigError(f"feature converter {converter!r}; choose one of {sorted(CONVERTERS)}")
    check_registered(name)
    n_proc = jax.process_count()
    if batch_size % n_proc:
        raise ConfigError(f"BATCH_SIZE={batch_size} does not divide over {n_proc} processes")
    ds = seqio.get_dataset(
        name, task_feature_lengths=dict(feature_lengths), feature_converter=CONVERTERS[converter](pack=pack),
        dataset_split=split, shuffle=True, num_epochs=None, seed=seed, batch_size=batch_size // n_proc,
        shard_info=seqio.ShardInfo(jax.process_index(), n_proc) if n_proc > 1 else None, verbose=False)
    options = tf.data.Options()
    options.deterministic = True
    ds = ds.with_options(options).skip(start_step).prefetch(2)
    return ds.as_numpy_iterator()
