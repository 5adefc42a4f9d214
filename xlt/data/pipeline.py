"""From a registered task, mixture or curriculum to the rows of each global batch that this process feeds.

The batch at step k is a pure function of (task/mixture/curriculum, seed, feature lengths, converter,
packing, global batch size, k), computed by random access: no stream is replayed, so resuming at step
100,000 costs what starting at step 0 costs, and the global batch does not depend on how many processes
read it (each process materialises only its own rows). The layers, bottom up:

* **Token index** (``_TokenIndex``): every example of a task's split, preprocessed and tokenized by the
  task itself (seqio, in source order, trimmed to the feature lengths), held as flat token arrays with
  offsets. Built once per process and task, at first use; it is what makes random access possible.
* **Packing layout** (``_Layout``): the task's examples in one fixed order (a permutation keyed by
  (seed, task)), cut into windows of ``max(length)`` examples and packed greedily inside each window:
  exactly seqio's ``trim_and_pack`` rule, so a row here equals the row seqio's feature converter makes
  from the same examples (``tests/data/test_resume_index.py`` checks this). A row is a contiguous run of
  that order, so the layout is one array of row boundaries. Without packing, a row is one example.
* **Epochs** over a task's R packed rows: the task's j-th row in a stage is layout row
  ``perm_e(j mod R)`` with ``e = j // R`` and ``perm_e`` a permutation keyed by (seed, stage, task, e):
  every epoch sees every row once, in a fresh order (levanter shuffles packed sequences the same way).
* **Mixture** (``_Blocks``): a stage's rows, counted ``g = (k - start) * batch + r`` for row r of step k,
  fall in blocks of S rows. Each block holds a fixed count of rows per task (S × rate, remainders to the
  largest fractions) in an order permuted per block by (seed, stage, block). Row g's task and its index j
  within that task (``block * count + rank in the block``) therefore take O(S) to compute, whatever g is;
  realised shares equal the rates to within one row per task per block.
* **Curriculum**: stage s owns steps [start_s, start_{s+1}); its counters start at 0 there. A plain
  seqio Task or Mixture is a curriculum with one stage. ``restart_step`` restarts the stage in force at
  that step with fresh keys: the trainer uses it when a run is resumed with a deliberately changed
  mixture (``train.allow_data_change``), so the changed data is again a pure function of the step.

Why index-based sampling rather than checkpointing a tf.data iterator or using Grain: the iterator state
of a shuffled, interleaved, packed tf.data stream is per process (it would tie a checkpoint to one process
count and hold shuffle buffers), and Grain needs random-access record files that seqio tasks do not give.
Random access over a token index keeps seqio tasks as they are and costs one tokenization pass per task
and process at start (measured with ``tools/bench.py resume``; docs/SCALE.md).

Language accounting. Each row comes from one task, so ``target_task`` (the task index at every
loss-bearing target position, -1 elsewhere) is known exactly; the trainer turns it into the realised
per-language token share of each logging window.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
from collections.abc import Iterator, Mapping, Sequence

import jax
import numpy as np
import seqio
import tensorflow as tf

from xlt.data import mixtures
from xlt.errors import ConfigError, DataError

CONVERTERS = ("decoder", "prefix_lm", "encdec")
TARGET_TASK = "target_task"  # host-side feature: task index per target position (-1: no loss)
BLOCK_ROWS = 4096  # mixture block size S (raised for rates below 1/S)
_MAX_BLOCK_ROWS = 1 << 22


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


def stage_table(name: str) -> list[list]:
    """``stages_of`` as JSON values (``[[start_step, {task: rate}], ...]``): the mixture part of a run's data
    identity, so a checkpoint notices changed weights even under an unchanged name."""
    return [[start, dict(rates)] for start, rates in stages_of(name)]


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


def _rng(*parts: object) -> np.random.Generator:
    """A counter-based generator (Philox) keyed by a hash of ``parts``: the same parts, the same draws, in
    any process and whatever was drawn before."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return np.random.Generator(np.random.Philox(key=int.from_bytes(digest[:16], "little")))


class _TokenIndex:
    """Every example of one task split as the task yields it unshuffled (preprocessed, tokenized, trimmed to
    ``lengths``): per feature, flat tokens (uint16 when every id fits, else int32) and offsets, example i
    being ``tokens[off[i]:off[i+1]]``."""

    def __init__(self, task: seqio.Task, split: str, lengths: Mapping[str, int]):
        keys = tuple(lengths)
        missing = [k for k in keys if k not in task.output_features]
        if missing:
            raise ConfigError(f"task {task.name!r} has no feature {missing[0]!r} (it has "
                              f"{sorted(task.output_features)}); choose the feature converter that fits it")
        ds = task.get_dataset(sequence_length=dict(lengths), split=split, use_cached=False, shuffle=False,
                              num_epochs=1, trim_output_features=True)
        ds = ds.map(lambda ex: {k: tf.cast(ex[k], tf.int32) for k in keys}).ragged_batch(8192)
        flat: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        sizes: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        for batch in ds:
            for k in keys:
                flat[k].append(batch[k].flat_values.numpy())
                sizes[k].append(batch[k].row_lengths().numpy())
        self.tokens = {k: np.concatenate(flat[k]) if flat[k] else np.zeros(0, np.int32) for k in keys}
        for k, v in self.tokens.items():  # ids below 2**16 (byte, most sentencepiece models): half the memory
            if v.size and 0 <= v.min() and v.max() < 2**16:
                self.tokens[k] = v.astype(np.uint16)
        self.lengths = {k: np.concatenate(sizes[k]) if sizes[k] else np.zeros(0, np.int64) for k in keys}
        self.offsets = {k: np.concatenate([[0], np.cumsum(self.lengths[k])]) for k in keys}
        self.size = len(self.lengths[keys[0]])
        if self.size == 0:
            raise DataError(f"task {task.name!r} has no examples in split {split!r}")

    def get(self, key: str, i: int) -> np.ndarray:
        return self.tokens[key][self.offsets[key][i]:self.offsets[key][i + 1]]


_INDEXES: dict[tuple, tuple[seqio.Task, _TokenIndex]] = {}


def _token_index(task_name: str, split: str, lengths: Mapping[str, int]) -> _TokenIndex:
    """One index per (task object, split, lengths) and process; a re-registered task gets a new one."""
    task = seqio.get_mixture_or_task(task_name)
    key = (task_name, split, tuple(sorted(lengths.items())))
    cached = _INDEXES.get(key)
    if cached is None or cached[0] is not task:
        cached = _INDEXES[key] = (task, _TokenIndex(task, split, lengths))
    return cached[1]


def _pack_boundaries(sizes: Sequence[np.ndarray], caps: Sequence[int], window: int) -> np.ndarray:
    """Row boundaries of seqio's greedy packing over examples in order: within each window of ``window``
    examples, an example joins the current row if every feature still fits, else it starts a new row; a
    window's last row is closed at the window's end (``seqio.utils.trim_and_pack_dataset``)."""
    columns = [s.tolist() for s in sizes]
    n = len(columns[0])
    starts = [0]
    used = [0] * len(columns)
    for i in range(n):
        if i and (i % window == 0 or any(u + c[i] > cap for u, c, cap in zip(used, columns, caps))):
            starts.append(i)
            used = [0] * len(columns)
        for f, c in enumerate(columns):
            used[f] += c[i]
    starts.append(n)
    return np.asarray(starts, np.int64)


class _Layout:
    """A task's rows: its examples in one order keyed by (seed, task), cut into packed rows (or one example
    per row without packing); row r holds examples ``order[starts[r]:starts[r+1]]``."""

    def __init__(self, index: _TokenIndex, task_name: str, converter: str, lengths: Mapping[str, int],
                 pack: bool, seed: int):
        self.index = index
        self.order = _rng(seed, "order", task_name).permutation(index.size)
        if not pack:
            self.starts = np.arange(index.size + 1)
        elif converter == "prefix_lm":  # inputs and targets share one packed sequence
            size = index.lengths["inputs"][self.order] + np.maximum(index.lengths["targets"][self.order], 1)
            total = lengths["inputs"] + lengths["targets"]
            self.starts = _pack_boundaries([size], [total], total)
        else:
            keys = tuple(lengths)
            self.starts = _pack_boundaries([index.lengths[k][self.order] for k in keys],
                                           [lengths[k] for k in keys], max(lengths.values()))
        self.rows = len(self.starts) - 1

    def examples(self, row: int) -> np.ndarray:
        return self.order[self.starts[row]:self.starts[row + 1]]


def _concat(seqs: Sequence[np.ndarray], length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sequences laid end to end and zero-padded to ``length``, with segment ids (1, 2, ...; 0 = padding)
    and positions within each segment."""
    tokens, segments, positions = (np.zeros(length, np.int32) for _ in range(3))
    at = 0
    for s, seq in enumerate(seqs, start=1):
        n = len(seq)
        tokens[at:at + n] = seq
        segments[at:at + n] = s
        positions[at:at + n] = np.arange(n)
        at += n
    return tokens, segments, positions


def _autoregressive(targets: np.ndarray, segments: np.ndarray | None) -> np.ndarray:
    """seqio's decoder inputs: targets shifted right, 0 at the first position of every segment."""
    inputs = np.zeros_like(targets)
    inputs[1:] = targets[:-1]
    if segments is not None:
        previous = np.zeros_like(segments)
        previous[1:] = segments[:-1]
        inputs[segments != previous] = 0
    return inputs


def _row_features(index: _TokenIndex, examples: np.ndarray, converter: str, lengths: Mapping[str, int],
                  pack: bool) -> dict[str, np.ndarray]:
    """One row's model features, as seqio's feature converter (``converter``, ``pack``) makes them."""
    out: dict[str, np.ndarray] = {}
    if converter == "encdec":
        enc, enc_seg, enc_pos = _concat([index.get("inputs", i) for i in examples], lengths["inputs"])
        targets, seg, pos = _concat([index.get("targets", i) for i in examples], lengths["targets"])
        out["encoder_input_tokens"] = enc
        if pack:
            out.update(encoder_segment_ids=enc_seg, encoder_positions=enc_pos)
    elif converter == "prefix_lm":
        pieces, widths = [], []
        for i in examples:
            inputs, target = index.get("inputs", i), index.get("targets", i)
            pieces.append(np.concatenate([inputs, target if len(target) else np.zeros(1, np.int32)]))
            widths.append(len(inputs))
        total = lengths["inputs"] + lengths["targets"]
        targets, seg, pos = _concat(pieces, total)
        width = np.zeros(total, np.int32)
        width[seg > 0] = np.asarray(widths, np.int32)[seg[seg > 0] - 1]
        if not pack:
            pos = np.arange(total, dtype=np.int32)
        nonpad = targets != 0
        out["decoder_causal_attention"] = ((pos < width + 1) & (seg > 0)).astype(np.int32)
        loss = (pos < width) ^ nonpad
    else:
        targets, seg, pos = _concat([index.get("targets", i) for i in examples], lengths["targets"])
    out["decoder_target_tokens"] = targets
    out["decoder_input_tokens"] = _autoregressive(targets, seg if pack else None)
    out["decoder_loss_weights"] = (loss if converter == "prefix_lm" else targets != 0).astype(np.int32)
    if pack:
        out.update(decoder_segment_ids=seg, decoder_positions=pos)
    return out


class _Blocks:
    """A stage's mixture: rows in blocks of ``size``, each block holding ``counts[t]`` rows of task t in an
    order permuted per block. ``locate(g)`` gives global row g's task and its index among that task's rows."""

    def __init__(self, rates: Sequence[float], key: tuple):
        weights = np.asarray(rates, np.float64)
        weights = weights / weights.sum()
        positive = weights[weights > 0]
        size = BLOCK_ROWS
        while size < _MAX_BLOCK_ROWS and positive.min() * size < 1:
            size *= 2
        exact = weights * size
        counts = np.floor(exact).astype(np.int64)
        by_remainder = sorted(range(len(weights)), key=lambda t: (-(exact[t] - counts[t]), t))
        for t in by_remainder[:size - int(counts.sum())]:
            counts[t] += 1
        self.size, self.counts, self._key = size, counts, key
        self._labels = np.repeat(np.arange(len(weights)), counts)
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _block(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        if b not in self._cache:
            labels = self._labels[_rng(*self._key, "block", b).permutation(self.size)]
            rank = np.empty(self.size, np.int64)
            order = np.argsort(labels, kind="stable")
            first = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
            rank[order] = np.arange(self.size) - first[labels[order]]
            if len(self._cache) > 2:
                self._cache.clear()
            self._cache[b] = (labels, rank)
        return self._cache[b]

    def locate(self, g: int) -> tuple[int, int]:
        b, slot = divmod(g, self.size)
        labels, rank = self._block(b)
        t = int(labels[slot])
        return t, b * int(self.counts[t]) + int(rank[slot])


def process_rows(mesh: jax.sharding.Mesh, batch_size: int) -> tuple[int, int]:
    """The global batch rows [start, stop) that this process's devices hold under the batch sharding: the
    rows its pipeline materialises (``partitioning.global_batch`` assembles them)."""
    from xlt import partitioning
    held = partitioning.batch_sharding(mesh, 2).addressable_devices_indices_map((batch_size, 1))
    spans = sorted({(s[0].start or 0, batch_size if s[0].stop is None else s[0].stop) for s in held.values()})
    start, stop = spans[0]
    for a, b in spans[1:]:
        if a > stop:
            raise ConfigError(f"this process holds batch rows {spans}, not one contiguous range; "
                              "order the mesh devices by process")
        stop = max(stop, b)
    return start, stop


class Batches(Iterator[dict[str, np.ndarray]]):
    """Rows ``rows`` (default: this process's share, ``[p*B/P, (p+1)*B/P)``) of each global batch from
    ``start_step`` on. ``labels[i]`` names task index i of ``target_task``; ``stage`` is the curriculum
    stage of the batch returned last. ``restart_step``: see the module docstring."""

    def __init__(self, name: str, converter: str, feature_lengths: Mapping[str, int], batch_size: int,
                 seed: int, start_step: int = 0, split: str = "train", pack: bool = True,
                 rows: tuple[int, int] | None = None, restart_step: int | None = None):
        if converter not in CONVERTERS:
            raise ConfigError(f"feature converter {converter!r}; choose one of {sorted(CONVERTERS)}")
        if start_step < 0:
            raise ConfigError(f"start_step must be >= 0, got {start_step}")
        if rows is None:
            n_proc, p = jax.process_count(), jax.process_index()
            if batch_size % n_proc:
                raise ConfigError(f"BATCH_SIZE={batch_size} does not divide over {n_proc} processes")
            rows = (p * batch_size // n_proc, (p + 1) * batch_size // n_proc)
        if not 0 <= rows[0] < rows[1] <= batch_size:
            raise ConfigError(f"rows {rows} are not a range of the batch's {batch_size} rows")
        self._order = _task_order(name)
        self.labels = task_labels(name)
        self._stages = [(start, rates, ("stage", i)) for i, (start, rates) in enumerate(stages_of(name))]
        if restart_step is not None:
            if start_step < restart_step:
                raise ConfigError(f"start_step {start_step} is before the data restart at step {restart_step}")
            i = self._stage_index(restart_step)
            self._stages[i] = (restart_step, self._stages[i][1], ("restart", restart_step, i))
        self._name, self._converter, self._split, self._pack = name, converter, split, pack
        self._lengths, self._batch, self._seed, self.rows = dict(feature_lengths), batch_size, seed, rows
        self.step = start_step  # the step whose batch comes next
        self.stage = -1
        self._layouts: dict[int, _Layout] = {}
        self._epochs: dict[tuple, np.ndarray] = {}
        self._blocks: dict[int, _Blocks] = {}

    def _stage_index(self, step: int) -> int:
        return max(i for i, (start, _, _) in enumerate(self._stages) if start <= step)

    def _layout(self, t: int) -> _Layout:
        if t not in self._layouts:
            task = self._order[t]
            index = _token_index(task, self._split, self._lengths)
            self._layouts[t] = _Layout(index, task, self._converter, self._lengths, self._pack, self._seed)
        return self._layouts[t]

    def _stage_blocks(self, i: int) -> _Blocks:
        if i not in self._blocks:
            rates = self._stages[i][1]
            # Tokenize the stage's tasks side by side (tf.data runs outside the GIL); rows then come from memory.
            todo = [t for t, task in enumerate(self._order) if rates.get(task, 0) > 0 and t not in self._layouts]
            with concurrent.futures.ThreadPoolExecutor(min(8, max(len(todo), 1))) as pool:
                list(pool.map(self._layout, todo))
            self._blocks[i] = _Blocks([float(rates.get(t, 0.0)) for t in self._order],
                                      (self._seed, self._name, *self._stages[i][2]))
        return self._blocks[i]

    def _epoch(self, i: int, t: int, e: int, rows: int) -> np.ndarray:
        key = (i, t, e)
        if key not in self._epochs:
            if len(self._epochs) > 4 * len(self._order):
                self._epochs.clear()
            self._epochs[key] = _rng(self._seed, self._name, *self._stages[i][2], self._order[t], "epoch",
                                     e).permutation(rows)
        return self._epochs[key]

    def row(self, step: int, r: int) -> tuple[int, dict[str, np.ndarray]]:
        """Global row r of the batch at ``step``: (task index, model features)."""
        i = self._stage_index(step)
        t, j = self._stage_blocks(i).locate((step - self._stages[i][0]) * self._batch + r)
        layout = self._layout(t)
        e, k = divmod(j, layout.rows)
        examples = layout.examples(int(self._epoch(i, t, e, layout.rows)[k]))
        return t, _row_features(layout.index, examples, self._converter, self._lengths, self._pack)

    def __next__(self) -> dict[str, np.ndarray]:
        rows = [self.row(self.step, r) for r in range(*self.rows)]
        batch = {k: np.stack([f[k] for _, f in rows]) for k in rows[0][1]}
        tasks = np.asarray([t for t, _ in rows], np.int32)[:, None]
        batch[TARGET_TASK] = np.where(batch["decoder_loss_weights"] > 0, tasks, -1).astype(np.int32)
        self.stage = self._stage_index(self.step)
        self.step += 1
        return batch


def batches(name: str, converter: str, feature_lengths: Mapping[str, int], batch_size: int, seed: int,
            start_step: int = 0, split: str = "train", pack: bool = True, rows: tuple[int, int] | None = None,
            restart_step: int | None = None) -> Batches:
    """See ``Batches``."""
    return Batches(name, converter, feature_lengths, batch_size, seed, start_step, split, pack, rows, restart_step)


def task_token_counts(target_task: np.ndarray, num_tasks: int) -> np.ndarray:
    """Loss-bearing target tokens per task index in one batch."""
    ids = target_task[target_task >= 0]
    return np.bincount(ids.ravel(), minlength=num_tasks)[:num_tasks]
