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

import contextlib
import dataclasses
import json
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gin
import jax
import numpy as np
from jax.sharding import Mesh

from xlt import checkpoints, cli, partitioning, paths, step as step_lib
from xlt.configs import OptimizerConfig, TrainConfig
from xlt.data import mixtures, pipeline, tasks
from xlt.errors import ConfigError, NonFiniteLoss, OutputError
from xlt.evaluation.live import TrainingEval
from xlt.files import atomic_copy, atomic_write_text
from xlt.instruct import tasks as instruct_tasks
from xlt.models import ModelConfig
from xlt.models.api import model_api

BatchHook = Callable[[int, dict[str, np.ndarray]], dict[str, np.ndarray]]


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
    """metrics.jsonl and TensorBoard, written by process 0 only.

    A restarted run continues from its restored step, so on opening, lines past that step are dropped (they
    are recomputed identically), as is a last line cut short by a kill and a ``data_change`` event at that very
    step (the restart records it again). A write that fails (a full disk) is a one-line OutputError.

    MODEL_DIR may be a URL (``xlt.paths``). Objects in a bucket cannot be appended to, so there the log keeps
    its lines and replaces metrics.jsonl whole (one atomic upload) at each write, and TensorBoard writes its
    event files to a local staging directory that is copied to MODEL_DIR/tb after each flush: every file of
    the run goes through the one filesystem layer checkpoints use (TensorFlow's own GCS client would also
    write there, but it cannot be pointed at the emulator the tests use, and appends by re-uploading too)."""

    def __init__(self, model_dir: Any, resume_step: int):
        self.enabled = jax.process_index() == 0
        self.path = model_dir / "metrics.jsonl"
        self._url = paths.is_url(model_dir)
        self._tb_dir = model_dir / "tb"
        self._lines: list[str] = []
        self._tb = None
        self._staging = None
        if not self.enabled:
            return
        if self.path.exists():
            kept, torn = [], 0
            for line in self.path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except ValueError:  # a line a kill -9 cut short (only the last one can be)
                    torn += bool(line.strip())
                    continue
                if record["step"] < resume_step or (record["step"] == resume_step and
                                                    record.get("event") != "data_change"):
                    kept.append(line)
            if torn:
                logging.warning("%s: dropped %d incomplete line(s) written by an interrupted run", self.path, torn)
            with _writing(self.path):
                atomic_write_text(self.path, "".join(line + "\n" for line in kept))
            self._lines = kept
        import tensorflow as tf
        self._tf = tf
        if self._url:
            import tempfile
            self._staging = Path(tempfile.mkdtemp(prefix="xlt-tb-"))
        self._tb = tf.summary.create_file_writer(str(self._staging or self._tb_dir))

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        line = json.dumps(record)
        with _writing(self.path):
            if self._url:
                self._lines.append(line)
                atomic_write_text(self.path, "".join(x + "\n" for x in self._lines))
            else:
                with self.path.open("a") as f:
                    f.write(line + "\n")
        with self._tb.as_default(step=record["step"]):
            for k, v in record.items():
                if k != "step" and isinstance(v, (int, float)):
                    self._tf.summary.scalar(k, v)
        self._tb.flush()
        self._upload_tb()

    def _upload_tb(self) -> None:
        if self._staging is None:
            return
        for f in self._staging.rglob("*"):
            if f.is_file():
                atomic_copy(f, self._tb_dir / f.relative_to(self._staging).as_posix())

    def close(self):
        if self._tb is not None:
            self._tb.close()
            self._upload_tb()
            if self._staging is not None:
                import shutil
                shutil.rmtree(self._staging, ignore_errors=True)
                self._staging = None


@contextlib.contextmanager
def _writing(path: Path):
    try:
        yield
    except OSError as e:
        raise OutputError(f"cannot write {path}: {e.strerror or e}") from e


class NonFiniteWatch:
    """Finds the steps whose loss or gradient norm is NaN or infinite (``TrainConfig.nonfinite``) without a host
    sync per step: each step's two scalars stay on the device until ``settle`` fetches them all, which the loop
    calls before it logs, before every save (so no checkpoint holds a non-finite state) and every ``LIMIT``
    steps."""

    LIMIT = 64

    def __init__(self):
        self.pending: list[tuple[int, Any, Any]] = []

    def add(self, step: int, metrics: dict[str, Any]) -> None:
        self.pending.append((step, metrics["loss"], metrics["grad_norm"]))

    def settle(self) -> list[tuple[int, float, float]]:
        """``(step, loss, grad_norm)`` of each non-finite step since the last call, in order."""
        if not self.pending:
            return []
        values = jax.device_get([(loss, norm) for _, loss, norm in self.pending])
        bad = [(s, float(loss), float(norm)) for (s, _, _), (loss, norm) in zip(self.pending, values)
               if not (math.isfinite(float(loss)) and math.isfinite(float(norm)))]
        self.pending.clear()
        return bad


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
                     optimizer: OptimizerConfig | None = None, skip_nonfinite: bool = False) -> StepSetup:
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
                         schedule=schedule, skip_nonfinite=skip_nonfinite)
    return StepSetup(cfg, converter, lengths, shapes, mesh, fns)


def train(config: TrainConfig, *, batch_hook: BatchHook | None = None) -> list[dict[str, Any]]:
    """Train (or resume) the run ``config`` describes; returns the logged metric records of this invocation.

    The data, ``config.mixture_or_task_name``, must be registered (``register_data`` does it from gin); the
    vocabulary recorded with the checkpoints is the one its tasks were registered with. ``batch_hook(step,
    batch)`` (fault drills and tests: tests/test_faults.py poisons one batch to get a NaN loss) sees this
    process's host batch of each 1-based ``step`` before it is trained on and returns the batch to use."""
    if not isinstance(config, TrainConfig):
        raise ConfigError(f"train() takes a TrainConfig, got {type(config).__name__}")
    (model_dir, train_steps, batch_size, seq_len, input_len, mixture_or_task_name, seed, mesh_shape,
     checkpoint_every, keep_checkpoints, log_every, model, feature_converter, pack, grad_accum_steps, z_loss,
     async_checkpoints, quiet, init_checkpoint) = (
        config.model_dir, config.train_steps, config.batch_size, config.seq_len, config.input_len,
        config.mixture_or_task_name, config.seed, config.mesh_shape, config.checkpoint_every,
        config.keep_checkpoints, config.log_every, config.model, config.feature_converter, config.pack,
        config.grad_accum_steps, config.z_loss, config.async_checkpoints, config.quiet, config.init_checkpoint)
    allow_data_change, nonfinite = config.allow_data_change, config.nonfinite
    partitioning.initialize_distributed()
    setup = build_step_setup(train_steps=train_steps, batch_size=batch_size, seq_len=seq_len, input_len=input_len,
                             mixture_or_task_name=mixture_or_task_name, seed=seed, mesh_shape=mesh_shape,
                             model=model, feature_converter=feature_converter, pack=pack,
                             grad_accum_steps=grad_accum_steps, z_loss=z_loss, optimizer=config.optimizer,
                             skip_nonfinite=nonfinite == "skip")
    cfg, converter, lengths, shapes, fns = setup.cfg, setup.converter, setup.lengths, setup.shapes, setup.fns

    model_dir_path = paths.absolute(model_dir)  # a local Path or a URL (xlt.paths)
    ckpt = checkpoints.Checkpointer(model_dir_path / "checkpoints", keep_checkpoints, async_checkpoints)
    shapes_now = checkpoints.param_shapes(fns.abstract_state.params)
    data_identity = {"mixture_or_task_name": mixture_or_task_name, "stages": pipeline.stage_table(mixture_or_task_name),
                     "seed": seed, "batch_size": batch_size, "feature_lengths": lengths}
    vocab, vocab_record = checkpoints.run_vocabulary(mixture_or_task_name)
    live_eval = TrainingEval(config, vocab)  # eval_every: checked (and its data read) before MODEL_DIR is written
    restart_step, data_change = None, {}
    where = f"{model_dir_path}/checkpoints"
    found = ckpt.restore_latest(fns.abstract_state, lambda saved_meta: (saved_meta, checkpoints.check_compatible(
        saved_meta, shapes_now, data_identity, vocab_record, f"{where}/{saved_meta.step}", allow_data_change)))
    if found is not None:
        start, state, (saved_meta, data_change) = found
        restart_step = start if data_change else (saved_meta.data or {}).get("restart_step")
        logging.warning("resumed from %s/%d", where, start)
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

    watch = NonFiniteWatch()

    def settle() -> None:
        """Act on the non-finite steps since the last call: stop at the first, or log each one skipped."""
        for bad_step, loss, norm in watch.settle():
            if nonfinite == "stop":
                kept = ("no checkpoint was saved" if ckpt.newest_step is None else
                        f"the last good checkpoint, step {ckpt.newest_step}, is kept")
                raise NonFiniteLoss(f"loss is {loss} (gradient norm {norm}) at step {bad_step}; stopped without "
                                    f"saving it ({kept}); lower the learning rate, or set train.nonfinite='skip' "
                                    "to skip such batches")
            log.write({"step": bad_step, "event": "nonfinite_skipped", "loss": str(loss), "grad_norm": str(norm)})
            logging.warning("step %d: loss %s, gradient norm %s: batch skipped (train.nonfinite='skip')",
                            bad_step, loss, norm)

    window_start, window_steps, first_step_seconds = time.perf_counter(), 0, None
    step = start
    try:
        while step < train_steps:
            host_batch = next(batches)
            window_tokens += pipeline.task_token_counts(host_batch.pop(pipeline.TARGET_TASK), len(labels))
            if batch_hook is not None:
                host_batch = batch_hook(step + 1, host_batch)
            state, metrics = fns.train(state, partitioning.global_batch(host_batch, setup.mesh))
            step += 1
            window_steps += 1
            watch.add(step, metrics)
            if first_step_seconds is None:  # compilation happens here; keep it out of throughput
                jax.block_until_ready(metrics)
                first_step_seconds = time.perf_counter() - window_start
                window_start, window_steps = time.perf_counter(), 0
            if step % log_every == 0 or step == train_steps:
                settle()
                values = step_lib.to_host(metrics)
                elapsed = time.perf_counter() - window_start
                rate = window_steps / elapsed if window_steps and elapsed > 0 else float("nan")
                record = {"step": step, **{k: v if math.isfinite(v) else None for k, v in values.items()},
                          "steps_per_second": rate, "tokens_per_second": rate * tokens_per_step,
                          "first_step_seconds": first_step_seconds, **language_shares(labels, window_tokens),
                          "data_stage": batches.stage}
                window_tokens[:] = 0
                log.write(record)
                records.append(record)
                if not quiet and jax.process_index() == 0:
                    eta = (train_steps - step) / rate if rate == rate and rate > 0 else float("nan")
                    print(f"step {step}/{train_steps} | loss {values['loss']:.4f} | lr {values['learning_rate']:.2e}"
                          f" | {record['tokens_per_second']:,.0f} tok/s | eta "
                          f"{cli.format_duration(eta) if eta == eta else '?'}", flush=True)
                window_start, window_steps = time.perf_counter(), 0
            elif len(watch.pending) >= watch.LIMIT:
                settle()
            if live_eval.due(step):  # the live parameters, before the next step donates them
                settle()
                eval_started = time.perf_counter()
                record = live_eval.run(step, state.params, meta(step), setup.mesh, model_dir_path)
                window_start += time.perf_counter() - eval_started  # kept out of the training throughput
                log.write(record)
                records.append(record)
                if not quiet and jax.process_index() == 0:
                    shown = ", ".join(f"{k[len('eval/'):]} {v:.3f}" for k, v in record.items() if k.startswith("eval/"))
                    print(f"step {step}/{train_steps} | eval ({record['eval_seconds']:.0f}s): {shown}", flush=True)
            if step % checkpoint_every == 0 and step < train_steps:
                settle()
                ckpt.save(step, state, meta(step))
            if preemption.reached(step) and step < train_steps:
                settle()
                ckpt.save(step, state, meta(step), force=True)
                ckpt.wait()
                print(f"preempted: saved step {step} to {model_dir_path}/checkpoints; exiting", file=sys.stderr)
                return records
        settle()
        ckpt.save(step, state, meta(step), force=True)
    finally:
        try:
            ckpt.close()  # waits for an async save: its failure (a full disk) is raised here
        finally:
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
