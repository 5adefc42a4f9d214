"""The training loop: ``xlt.train.train(config)`` with a ``xlt.configs.TrainConfig``, or from the command line
``python -m xlt.train --gin_file=... --gin.NAME=VALUE`` (``--help`` lists every setting).

Order of work, so that bad input fails before anything is written: the config (validated field by field when
it is made; from the command line: parse gin → register the data → ``TrainConfig.from_gin``) → build the mesh,
model and sharded step (divisibility checked) → read any checkpoint in MODEL_DIR and refuse it if it belongs to
another model or data stream → only then create MODEL_DIR and train.

Artifacts: MODEL_DIR/config.json (the TrainConfig), config.gin (the gin config it was read from, if any),
metrics.jsonl (one JSON object per logged step, and with ``eval_every`` one ``"event": "eval"`` line per evaluation
of the live parameters: ``xlt.evaluation.live``), TensorBoard events under MODEL_DIR/tb, and
MODEL_DIR/checkpoints/<step>.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gin
import jax
import numpy as np
from jax.sharding import Mesh

from xlt import checkpoints, cli, partitioning, step as step_lib
from xlt.configs import OptimizerConfig, TrainConfig
from xlt.data import mixtures, pipeline, tasks
from xlt.errors import ConfigError
from xlt.evaluation.live import TrainingEval
from xlt.files import atomic_write_text
from xlt.instruct import tasks as instruct_tasks
from xlt.models import ModelConfig
from xlt.models.api import model_api


class Preemption:
    """SIGTERM asks the loop to save and exit at the next step boundary (all hosts agree on which)."""

    def __init__(self):
        self.requested = False
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        else:
            self._previous = None

    def _handle(self, signum, frame):
        del signum, frame
        self.requested = True

    def reached(self, step: int) -> bool:
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils
            return multihost_utils.reached_preemption_sync_point(step)
        return self.requested

    def restore(self):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


class MetricsLog:
    """metrics.jsonl and TensorBoard, written by process 0 only."""

    def __init__(self, model_dir: Path, resume_step: int):
        self.enabled = jax.process_index() == 0
        self.path = model_dir / "metrics.jsonl"
        self._tb = None
        if not self.enabled:
            return
        if self.path.exists():  # drop lines past the restored step: they will be recomputed identically
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= resume_step]
            atomic_write_text(self.path, "".join(line + "\n" for line in kept))
        import tensorflow as tf
        self._tf = tf
        self._tb = tf.summary.create_file_writer(str(model_dir / "tb"))

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        with self._tb.as_default(step=record["step"]):
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):
                    self._tf.summary.scalar(k, v)
        self._tb.flush()

    def close(self):
        if self._tb is not None:
            self._tb.close()


def choose_converter(cfg: ModelConfig, name: str, converter: str) -> str:
    """The feature converter of a run: the one named, or (``'auto'``) the model family's for the task's
    features (``ModelAPI.feature_converter``); checked against the family."""
    api = model_api(cfg)
    if converter == "auto":
        converter = api.feature_converter(has_inputs="inputs" in pipeline.output_features(name))
    api.check_converter(converter)
    return converter


def language_shares(labels: Sequence[str], tokens: np.ndarray) -> dict[str, float]:
    """Realised share of loss-bearing target tokens per language (or task) in a logging window, as
    ``lang_share/<label>``; summed over this process's batches (all processes see the same mixture)."""
    if len(labels) < 2:
        return {}
    total = max(int(tokens.sum()), 1)
    shares: dict[str, float] = {}
    for label, n in zip(labels, tokens):
        shares[f"lang_share/{label}"] = shares.get(f"lang_share/{label}", 0.0) + int(n) / total
    return shares


@dataclasses.dataclass(frozen=True)
class StepSetup:
    """What a run builds before its first step: the model, the batch layout, the mesh and the sharded step."""

    cfg: ModelConfig
    converter: str
    lengths: dict[str, int]
    shapes: dict[str, tuple[int, ...]]
    mesh: Mesh
    fns: step_lib.StepFns


def build_step_setup(*, train_steps: int, batch_size: int, seq_len: int, input_len: int | None,
                     mixture_or_task_name: str, seed: int, mesh_shape: Sequence[int], model: ModelConfig | None,
                     feature_converter: str, pack: bool, grad_accum_steps: int, z_loss: float,
                     devices: Sequence[jax.Device] | None = None,
                     optimizer: OptimizerConfig | None = None) -> StepSetup:
    """Validate a run's shapes and build its sharded step (``TrainConfig``'s fields of the same names; ``devices``
    default to all; ``optimizer`` to the gin-bound one). ``tools/aot_memory.py`` compiles this step ahead of time
    for other device counts."""
    if train_steps <= 0:
        raise ConfigError(f"TRAIN_STEPS must be > 0, got {train_steps}")
    if batch_size <= 0 or seq_len <= 0:
        raise ConfigError("BATCH_SIZE and SEQ_LEN must be > 0")
    cfg = model or ModelConfig()
    api = model_api(cfg)
    pipeline.check_registered(mixture_or_task_name)
    converter = choose_converter(cfg, mixture_or_task_name, feature_converter)
    lengths = pipeline.task_feature_lengths(converter, seq_len, input_len)
    shapes = api.batch_shapes(converter, lengths, batch_size, pack)
    api.check_length(seq_len, f"SEQ_LEN={seq_len}")
    mesh = partitioning.make_mesh(mesh_shape, devices=devices)
    schedule, optimizer_fn = (optimizer or OptimizerConfig.from_gin()).make(train_steps)
    fns = step_lib.build(api.model, optimizer_fn, mesh, shapes,
                         grad_accum_steps=grad_accum_steps, z_loss=z_loss, seed=seed, dropout=cfg.dropout_rate > 0,
                         schedule=schedule)
    return StepSetup(cfg, converter, lengths, shapes, mesh, fns)


def train(config: TrainConfig) -> list[dict[str, Any]]:
    """Train (or resume) the run ``config`` describes; returns the logged metric records of this invocation.

    The data, ``config.mixture_or_task_name``, must be registered (``register_data`` does it from gin); the
    vocabulary recorded with the checkpoints is the one its tasks were registered with."""
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"train() takes a TrainConfig, got {type(config).__name__}")
    (model_dir, train_steps, batch_size, seq_len, input_len, mixture_or_task_name, seed, mesh_shape,
     checkpoint_every, keep_checkpoints, log_every, model, feature_converter, pack, grad_accum_steps, z_loss,
     async_checkpoints, quiet, init_checkpoint) = (
        config.model_dir, config.train_steps, config.batch_size, config.seq_len, config.input_len,
        config.mixture_or_task_name, config.seed, config.mesh_shape, config.checkpoint_every,
        config.keep_checkpoints, config.log_every, config.model, config.feature_converter, config.pack,
        config.grad_accum_steps, config.z_loss, config.async_checkpoints, config.quiet, config.init_checkpoint)
    allow_data_change = config.allow_data_change
    partitioning.initialize_distributed()
    setup = build_step_setup(train_steps=train_steps, batch_size=batch_size, seq_len=seq_len, input_len=input_len,
                             mixture_or_task_name=mixture_or_task_name, seed=seed, mesh_shape=mesh_shape,
                             model=model, feature_converter=feature_converter, pack=pack,
                             grad_accum_steps=grad_accum_steps, z_loss=z_loss, optimizer=config.optimizer)
    cfg, converter, lengths, shapes, fns = setup.cfg, setup.converter, setup.lengths, setup.shapes, setup.fns

    model_dir_path = Path(model_dir).absolute()
    ckpt = checkpoints.Checkpointer(model_dir_path / "checkpoints", keep_checkpoints, async_checkpoints)
    shapes_now = checkpoints.param_shapes(fns.abstract_state.params)
    data_identity = {"mixture_or_task_name": mixture_or_task_name, "stages": pipeline.stage_table(mixture_or_task_name),
                     "seed": seed, "batch_size": batch_size, "feature_lengths": lengths}
    vocab, vocab_record = checkpoints.run_vocabulary(mixture_or_task_name)
    live_eval = TrainingEval(config, vocab)  # eval_every: checked (and its data read) before MODEL_DIR is written
    start = ckpt.latest_step()
    restart_step, data_change = None, {}
    if start is not None:
        where = f"{model_dir_path}/checkpoints/{start}"
        saved_meta = ckpt.read_meta(start)
        data_change = checkpoints.check_compatible(saved_meta, shapes_now, data_identity, vocab_record, where,
                                                   allow_data_change)
        restart_step = start if data_change else (saved_meta.data or {}).get("restart_step")
        state = ckpt.restore(start, fns.abstract_state)
        logging.warning("resumed from %s", where)
    elif init_checkpoint:  # fine-tuning: parameters from a checkpoint, fresh optimizer, step 0
        start = 0
        params, init_meta = checkpoints.load_params(init_checkpoint, fns.abstract_state.params)
        checkpoints.check_vocabulary(init_meta, vocab_record, init_checkpoint)
        state = fns.init_from(params)
        logging.warning("initialised parameters from %s", init_checkpoint)
    else:
        start = 0
        state = fns.init(jax.random.key(seed))
    if start >= train_steps:
        if not quiet:
            print(f"{model_dir_path}: already trained to step {start} >= TRAIN_STEPS={train_steps}; nothing to do")
        ckpt.close()
        return []

    model_dir_path.mkdir(parents=True, exist_ok=True)
    checkpoints.keep_vocabulary_file(model_dir_path, vocab, vocab_record)
    if jax.process_index() == 0:
        atomic_write_text(model_dir_path / "config.json", json.dumps(config.to_dict(), indent=1) + "\n")
        if config.gin_text:
            atomic_write_text(model_dir_path / "config.gin", config.gin_text)
    log = MetricsLog(model_dir_path, start)
    if data_change:
        log.write({"step": start, "event": "data_change", **data_change})
        logging.warning("data changed on purpose at step %d: %s", start, sorted(data_change))
    batches = pipeline.batches(mixture_or_task_name, converter, lengths, batch_size, seed, start_step=start,
                               pack=pack, rows=pipeline.process_rows(setup.mesh, batch_size),
                               restart_step=restart_step)
    tokens_per_step = batch_size * sum(v[1] for k, v in shapes.items() if k.endswith("target_tokens"))
    labels = batches.labels
    window_tokens = np.zeros(len(labels), np.int64)
    preemption = Preemption()
    records: list[dict[str, Any]] = []

    def meta(at: int) -> checkpoints.CheckpointMeta:
        return checkpoints.training_meta(model=cfg, shapes=shapes_now, vocabulary=vocab_record,
                                         data={**data_identity, "restart_step": restart_step}, step=at,
                                         init_checkpoint=init_checkpoint)

    window_start, window_steps, first_step_seconds = time.perf_counter(), 0, None
    step = start
    try:
        while step < train_steps:
            host_batch = next(batches)
            window_tokens += pipeline.task_token_counts(host_batch.pop(pipeline.TARGET_TASK), len(labels))
            state, metrics = fns.train(state, partitioning.global_batch(host_batch, setup.mesh))
            step += 1
            window_steps += 1
            if first_step_seconds is None:  # compilation happens here; keep it out of throughput
                jax.block_until_ready(metrics)
                first_step_seconds = time.perf_counter() - window_start
                window_start, window_steps = time.perf_counter(), 0
            if step % log_every == 0 or step == train_steps:
                values = step_lib.to_host(metrics)
                elapsed = time.perf_counter() - window_start
                rate = window_steps / elapsed if window_steps and elapsed > 0 else float("nan")
                record = {"step": step, **values, "steps_per_second": rate,
                          "tokens_per_second": rate * tokens_per_step, "first_step_seconds": first_step_seconds,
                          **language_shares(labels, window_tokens), "data_stage": batches.stage}
                window_tokens[:] = 0
                if not math.isfinite(values["loss"]):
                    raise FloatingPointError(f"loss is {values['loss']} at step {step}")
                log.write(record)
                records.append(record)
                if not quiet and jax.process_index() == 0:
                    eta = (train_steps - step) / rate if rate == rate and rate > 0 else float("nan")
                    print(f"step {step}/{train_steps} | loss {values['loss']:.4f} | lr {values['learning_rate']:.2e}"
                          f" | {record['tokens_per_second']:,.0f} tok/s | eta "
                          f"{cli.format_duration(eta) if eta == eta else '?'}", flush=True)
                window_start, window_steps = time.perf_counter(), 0
            if live_eval.due(step):  # the live parameters, before the next step donates them
                eval_started = time.perf_counter()
                record = live_eval.run(step, state.params, meta(step), setup.mesh, model_dir_path)
                window_start += time.perf_counter() - eval_started  # kept out of the training throughput
                log.write(record)
                records.append(record)
                if not quiet and jax.process_index() == 0:
                    shown = ", ".join(f"{k[len('eval/'):]} {v:.3f}" for k, v in record.items() if k.startswith("eval/"))
                    print(f"step {step}/{train_steps} | eval ({record['eval_seconds']:.0f}s): {shown}", flush=True)
            if step % checkpoint_every == 0 and step < train_steps:
                ckpt.save(step, state, meta(step))
            if preemption.reached(step) and step < train_steps:
                ckpt.save(step, state, meta(step), force=True)
                ckpt.wait()
                print(f"preempted: saved step {step} to {model_dir_path}/checkpoints; exiting", file=sys.stderr)
                return records
        ckpt.save(step, state, meta(step), force=True)
    finally:
        ckpt.close()
        log.close()
        preemption.restore()
    return records


DATA_SOURCES = ("bible", "mc4", "instruct")


@gin.configurable(denylist=["vocab"])
def register_data(sources: Sequence[str] = ("bible",), vocab: Any = None):
    """Register the seqio tasks of ``sources`` with ``vocab`` (default: the gin-configured ``vocabulary``; each
    registrar takes its own gin bindings: ``register_tasks``, ``register_mc4_tasks``,
    ``register_instruct_tasks``), then the run's language mixture if one is configured. Returns the vocabulary."""
    unknown = sorted(set(sources) - set(DATA_SOURCES))
    if unknown:
        raise ConfigError(f"register_data.sources has unknown {unknown}; choose from {list(DATA_SOURCES)}")
    vocab = vocab if vocab is not None else tasks.vocabulary()
    if "bible" in sources:
        tasks.register_tasks(vocab=vocab)
    if "mc4" in sources:
        tasks.register_mc4_tasks(vocab=vocab)
    if "instruct" in sources:
        instruct_tasks.register_instruct_tasks(vocab=vocab)
    mixtures.language_mixture()
    return vocab


def config_from_gin(files: Sequence[str], bindings: Sequence[str] = (), search: Sequence[str] = (str(cli.GIN_DIR),),
                    *, vocabulary: Any = None, **overrides: Any) -> TrainConfig:
    """Parse gin ``files`` and ``bindings`` (replacing any earlier gin config), register the run's data (with
    ``vocabulary`` if given) and read its TrainConfig, ``overrides`` on top. Experiments make their runs this way:
    their settings stay gin files and bindings, the run itself is a value."""
    cli.load_gin(files, bindings, search)
    register_data(vocab=vocabulary)
    return TrainConfig.from_gin(**overrides)


USAGE = "python -m xlt.train --gin_file=FILE [--gin_file=FILE ...] [--gin.NAME=VALUE ...]"
DESCRIPTION = """Train (or resume) a model. Example:
  python -m xlt.train --gin_file=models/gpt_tiny.gin --gin_file=runs/pretrain.gin \\
    --gin.MODEL_DIR="'/tmp/xlt_ko'" --gin.MIXTURE_OR_TASK_NAME="'bible_ko'" --gin.TRAIN_STEPS=200
Data: register_data.sources (bible, mc4, instruct), vocabulary.kind / .path, language_mixture.* (gin/mixtures/)."""


def help_text() -> str:
    from xlt import configs
    return configs.help_text(USAGE, DESCRIPTION, [TrainConfig, OptimizerConfig, ModelConfig])


def main(argv: list[str]) -> None:
    files, bindings, search = cli.gin_argv(argv, "--gin_file=runs/demo_pretrain.gin")
    train(config_from_gin(files, bindings, search))


if __name__ == "__main__":
    sys.exit(cli.main(main, usage=help_text))
