"""Typed run configs: every setting of a training run and of an evaluation, in one place.

* ``TrainConfig`` — a training run (``xlt.train.train(config)``); it holds the ``ModelConfig`` and an
  ``OptimizerConfig``.
* ``EvalConfig`` — a zero-shot evaluation (``xlt.evaluation.evaluate.evaluate(config)``).

The experiments' configs (``experiments.transfer_matrix.MatrixConfig``, ``experiments.ablation.AblationConfig``)
follow the same pattern with the helpers defined here; they live next to their experiment because ``xlt`` does not
import ``experiments``.

The pattern. A config is a frozen, keyword-only dataclass (``RunConfig``): built in Python like any dataclass,
and validated whole, every field, in ``__post_init__`` — an object that exists is a run that can start, and a bad
field is a one-line ``ConfigError`` naming it (``TrainConfig.batch_size must be > 0, got 0``). Checks that need
the world outside the config (is the task registered, do the heads divide over the mesh, does the checkpoint
match) happen where that world is built, before anything is written. Each field documents itself
(``setting(help=...)``); ``help_text`` turns the fields into an entry point's ``--help``.

gin binds a config at the command line under the run's name — ``train.batch_size``, ``evaluate.languages``,
``transfer_matrix.seeds`` (the names the gin files and the README have always used), or through the macros of
``gin/runs/*.gin`` (``BATCH_SIZE``, …, listed in each field's ``macro``). ``Config.from_gin()`` reads those
bindings into a plain instance: the dataclass itself is registered with ``avoid_class_mutation``, so a config
built in Python never picks up gin bindings behind the caller's back.
"""

from __future__ import annotations

import dataclasses
import inspect
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

import gin

from xlt import optimizers  # registers the gin names OptimizerConfig reads (learning_rate_schedule, make_optimizer)
from xlt.errors import ConfigError, XltError
from xlt.models.config import ModelConfig
from xlt.models.api import model_api

C = TypeVar("C", bound="RunConfig")
MESH_AXES = ("data", "fsdp", "tensor")  # xlt.partitioning.MESH_AXES (not imported: that module imports jax)
FEATURE_CONVERTERS = ("auto", "decoder", "prefix_lm", "encdec")


def setting(default: Any = dataclasses.MISSING, *, help: str, macro: str | None = None,  # noqa: A002
            gin_name: str | None = None, default_factory: Any = dataclasses.MISSING) -> Any:
    """A config field with its documentation (``help``), the gin macro that sets it in ``gin/runs/*.gin``
    (``macro``) and, where it is not ``<config's gin name>.<field>``, the gin binding that sets it."""
    metadata = {"help": help, "macro": macro, "gin": gin_name}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


# ------------------------------------------------------------------------------------------------ validation
class Check:
    """Field checks of one config; each failure is ``ConfigError('<Config>.<field> must be …, got …')``."""

    def __init__(self, config: Any):
        self.config = config
        self.owner = type(config).__name__

    def fail(self, name: str, requirement: str) -> None:
        value = getattr(self.config, name)
        field = {f.name: f for f in dataclasses.fields(self.config)}[name]
        macro = field.metadata.get("macro")
        raise ConfigError(f"{self.owner}.{name} must be {requirement}, got {value!r}" + (f" ({macro})" if macro else ""))

    def wrap(self, name: str, check: Callable[[], Any]) -> Any:
        """Run a domain check (language code, task name, …) and name the field after its error."""
        try:
            return check()
        except XltError as e:
            raise ConfigError(f"{str(e).splitlines()[0]} ({self.owner}.{name})") from e

    def integer(self, name: str, minimum: int | None = None, *, optional: bool = False) -> None:
        value = getattr(self.config, name)
        if optional and value is None:
            return
        if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
            need = "> 0" if minimum == 1 else "an integer" + (f" >= {minimum}" if minimum is not None else "")
            self.fail(name, need + (" or None" if optional else ""))

    def number(self, name: str, minimum: float | None = None, maximum: float | None = None, *,
               exclusive_min: bool = False, exclusive_max: bool = False, optional: bool = False) -> None:
        value = getattr(self.config, name)
        if optional and value is None:
            return
        ok = not isinstance(value, bool) and isinstance(value, (int, float))
        if ok and minimum is not None:
            ok = value > minimum if exclusive_min else value >= minimum
        if ok and maximum is not None:
            ok = value < maximum if exclusive_max else value <= maximum
        if not ok:
            parts = []
            if minimum is not None:
                parts.append(f"{'>' if exclusive_min else '>='} {minimum}")
            if maximum is not None:
                parts.append(f"{'<' if exclusive_max else '<='} {maximum}")
            self.fail(name, "a number" + (" " + " and ".join(parts) if parts else "") + (" or None" if optional else ""))

    def boolean(self, name: str) -> None:
        if not isinstance(getattr(self.config, name), bool):
            self.fail(name, "True or False")

    def text(self, name: str, *, optional: bool = False, choices: Sequence[str] | None = None) -> None:
        value = getattr(self.config, name)
        if optional and value is None:
            return
        if choices is not None and value not in choices:
            self.fail(name, "one of " + ", ".join(map(repr, choices)) + (" or None" if optional else ""))
        if not isinstance(value, str) or not value.strip():
            self.fail(name, "a non-empty string" + (" or None" if optional else ""))

    def directory_name(self, name: str) -> None:
        value = getattr(self.config, name)
        if not isinstance(value, str) or not value.strip() or "/" in value or value.startswith("."):
            self.fail(name, "a plain directory name")

    def mesh_shape(self, name: str, *, optional: bool = False) -> None:
        value = getattr(self.config, name)
        if optional and value is None:
            return
        ok = (isinstance(value, tuple) and len(value) == len(MESH_AXES)
              and all(isinstance(s, int) and not isinstance(s, bool) and (s >= 1 or s == -1) for s in value)
              and value.count(-1) <= 1)
        if not ok:
            self.fail(name, f"{len(MESH_AXES)} sizes {MESH_AXES}, each >= 1 or one of them -1"
                      + (" (or None)" if optional else ""))

    def instance(self, name: str, kind: type | tuple[type, ...], what: str, *, optional: bool = False) -> None:
        value = getattr(self.config, name)
        if not (optional and value is None) and not isinstance(value, kind):
            self.fail(name, what + (" or None" if optional else ""))


def as_tuple(value: Any) -> Any:
    """gin gives lists; a frozen config keeps tuples (hashable, and unchanged by accident). Strings stay."""
    return tuple(value) if isinstance(value, list) else value


# ------------------------------------------------------------------------------------------------ the pattern
class RunConfig:
    """Mixin of the frozen, keyword-only run-config dataclasses (see the module docstring).

    A subclass sets ``gin_name``, declares its fields with ``setting``, implements ``validate`` (and, when it
    normalises values, ``normalize``), and is registered with ``register_gin``."""

    gin_name: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, as_tuple(getattr(self, f.name)))
        self.normalize()
        self.validate()

    def normalize(self) -> None:
        """Fill derived defaults before validation (frozen: use ``object.__setattr__``)."""

    def validate(self) -> None:
        raise NotImplementedError

    def replace(self: C, **changes: Any) -> C:
        """A copy with ``changes``, validated again."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def gin_values(cls) -> dict[str, Any]:
        """The gin bindings of ``gin_name`` (macros resolved, ``@configurable()`` references evaluated)."""
        try:
            values = dict(gin.get_bindings(cls.gin_name))
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"bad gin config for {cls.gin_name}: {str(e).splitlines()[0]}") from e
        return {k: v for k, v in values.items() if v is not gin.REQUIRED}

    @classmethod
    def build(cls: type[C], values: Mapping[str, Any]) -> C:
        """An instance from ``values``; a missing required field is a ConfigError naming its binding."""
        missing = [f for f in dataclasses.fields(cls) if f.name not in values
                   and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            f = missing[0]
            how = f"bind {gin_binding(cls, f)}" + (f" or {f.metadata['macro']}" if f.metadata.get("macro") else "")
            raise ConfigError(f"{cls.__name__}.{f.name} is required ({how})")
        return cls(**values)

    @classmethod
    def from_gin(cls: type[C], **overrides: Any) -> C:
        """The config from the parsed gin bindings, with ``overrides`` (Python values) on top."""
        return cls.build({**cls.gin_values(), **overrides})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: nested configs as dicts, tuples as lists, a vocabulary as its id."""
        return {f.name: to_json(getattr(self, f.name)) for f in dataclasses.fields(self)
                if not f.metadata.get("internal")}


def to_json(value: Any) -> Any:
    if isinstance(value, ModelConfig):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return value.to_dict() if hasattr(value, "to_dict") else dataclasses.asdict(value)
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "vocab_size") and hasattr(value, "encode"):
        from xlt.data import tasks  # heavy (seqio, TensorFlow): only for a config that holds a vocabulary
        return tasks.vocabulary_id(value)
    return repr(value)


def register_gin(cls: type[C]) -> type[C]:
    """Make ``cls``'s fields bindable as ``<gin_name>.<field>`` without changing ``cls`` itself."""
    gin.external_configurable(cls, name=cls.gin_name, module="xlt.configs")
    return cls


def gin_binding(cls: type, f: dataclasses.Field) -> str:
    return f.metadata.get("gin") or f"{getattr(cls, 'gin_name', '') or cls.__name__}.{f.name}"


# ------------------------------------------------------------------------------------------------ --help
def _default_text(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return repr(f.default)
    if f.default_factory is not dataclasses.MISSING:
        made = f.default_factory()
        return f"{type(made).__name__}(…)" if dataclasses.is_dataclass(made) else repr(made)
    return "REQUIRED"


def fields_text(cls: type, title: str | None = None) -> str:
    """One line per field of the dataclass ``cls``: gin binding, type, default, help (generated, not written)."""
    fields = [f for f in dataclasses.fields(cls) if not f.metadata.get("internal")]
    rows = [(gin_binding(cls, f), str(f.type), _default_text(f), f.metadata.get("help") or "",
             f.metadata.get("macro")) for f in fields]
    width = max(len(r[0]) for r in rows)
    lines = [title or f"{cls.__name__} fields (gin binding, type, default):"]
    for binding, kind, default, text, macro in rows:
        lines.append(f"  {binding:<{width}}  {kind} = {default}" + (f"  [{macro}]" if macro else ""))
        if text:
            lines += textwrap.wrap(text, 110, initial_indent=" " * (width + 6), subsequent_indent=" " * (width + 6))
    return "\n".join(lines)


def macros_text(classes: Iterable[type]) -> str:
    pairs = [(f.metadata["macro"], gin_binding(cls, f)) for cls in classes for f in dataclasses.fields(cls)
             if f.metadata.get("macro")]
    if not pairs:
        return ""
    width = max(len(m) for m, _ in pairs)
    return "\n".join(["gin macros (set in gin/runs/*.gin; bind one with --gin.NAME=VALUE):"]
                     + [f"  {m:<{width}}  -> {b}" for m, b in pairs])


def help_text(usage: str, description: str, classes: Sequence[type], extra: str = "") -> str:
    """An entry point's ``--help``: usage, what it does, the gin macros and every field with its default."""
    parts = [f"usage: {usage}", "", description.strip(), "",
             "Gin files are found as given or under gin/; --gin.NAME=VALUE binds a macro or a configurable's\n"
             "parameter (values are gin literals: strings in quotes, e.g. --gin.MODEL_DIR=\"'/tmp/run'\")."]
    if extra:
        parts += ["", extra.strip()]
    macros = macros_text(classes)
    if macros:
        parts += ["", macros]
    for cls in classes:
        parts += ["", fields_text(cls)]
    return "\n".join(parts) + "\n"


# ------------------------------------------------------------------------------------------------ optimizer
@dataclasses.dataclass(frozen=True, kw_only=True)
class OptimizerConfig(RunConfig):
    """AdamW with warmup and a decay schedule (``xlt.optimizers``); gin binds it through the optimizer's own
    functions, ``learning_rate_schedule.*`` and ``make_optimizer.*``. The schedule's length is the run's
    ``TrainConfig.train_steps``."""

    gin_name: ClassVar[str] = "learning_rate_schedule"

    peak: float = setting(1e-3, help="peak learning rate", gin_name="learning_rate_schedule.peak")
    schedule: str = setting("cosine", help="decay after warmup: cosine, rsqrt or constant",
                            gin_name="learning_rate_schedule.schedule")
    warmup_steps: int = setting(100, help="linear warmup steps", gin_name="learning_rate_schedule.warmup_steps")
    final_fraction: float = setting(0.1, help="cosine decays to final_fraction * peak",
                                    gin_name="learning_rate_schedule.final_fraction")
    weight_decay: float = setting(0.01, help="AdamW weight decay (matrices only)",
                                  gin_name="make_optimizer.weight_decay")
    b1: float = setting(0.9, help="Adam beta1", gin_name="make_optimizer.b1")
    b2: float = setting(0.95, help="Adam beta2", gin_name="make_optimizer.b2")
    eps: float = setting(1e-8, help="Adam epsilon", gin_name="make_optimizer.eps")
    clip_norm: float | None = setting(1.0, help="global gradient-norm clipping (None: off)",
                                      gin_name="make_optimizer.clip_norm")

    SCHEDULE_FIELDS: ClassVar[tuple[str, ...]] = ("peak", "schedule", "warmup_steps", "final_fraction")

    def validate(self) -> None:
        c = Check(self)
        c.number("peak", 0, exclusive_min=True)
        c.text("schedule", choices=optimizers.SCHEDULES)
        c.integer("warmup_steps", 0)
        c.number("final_fraction", 0, 1)
        c.number("weight_decay", 0)
        c.number("b1", 0, 1, exclusive_max=True)
        c.number("b2", 0, 1, exclusive_max=True)
        c.number("eps", 0, exclusive_min=True)
        c.number("clip_norm", 0, exclusive_min=True, optional=True)

    @classmethod
    def gin_values(cls) -> dict[str, Any]:
        try:
            schedule = gin.get_bindings("learning_rate_schedule")
            optimizer = gin.get_bindings("make_optimizer")
        except (ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"bad gin config for the optimizer: {str(e).splitlines()[0]}") from e
        values = {k: v for k, v in schedule.items() if k in cls.SCHEDULE_FIELDS}  # total_steps: train_steps
        values.update({k: v for k, v in optimizer.items() if k != "schedule"})
        return values

    def make(self, total_steps: int) -> tuple[Any, Any]:
        """(learning-rate schedule, optax optimizer) for a run of ``total_steps``. Every argument is passed,
        so gin bindings of the optimizer functions play no part here."""
        schedule = optimizers.learning_rate_schedule(peak=self.peak, schedule=self.schedule,
                                                     warmup_steps=self.warmup_steps, total_steps=total_steps,
                                                     final_fraction=self.final_fraction)
        return schedule, optimizers.make_optimizer(schedule, weight_decay=self.weight_decay, b1=self.b1,
                                                   b2=self.b2, eps=self.eps, clip_norm=self.clip_norm)


# ------------------------------------------------------------------------------------------------ training
NONFINITE_MODES = ("stop", "skip")


@register_gin
@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainConfig(RunConfig):
    """A training (or fine-tuning) run: ``xlt.train.train(config)``; gin: ``train.<field>``.

    The data are a registered seqio task, mixture or curriculum (``mixture_or_task_name``); the vocabulary is
    the one its tasks were registered with (``python -m xlt.train`` registers them from gin: ``register_data``)."""

    gin_name: ClassVar[str] = "train"

    model_dir: str = setting(help="where checkpoints, metrics.jsonl, config.gin and TensorBoard events go; an "
                             "existing run there is resumed", macro="MODEL_DIR")
    train_steps: int = setting(help="total optimizer steps (a resumed run continues to this step)",
                               macro="TRAIN_STEPS")
    mixture_or_task_name: str = setting(help="registered seqio task, mixture or curriculum to train on",
                                        macro="MIXTURE_OR_TASK_NAME")
    batch_size: int = setting(8, help="global batch (sequences per step, all processes together)",
                              macro="BATCH_SIZE")
    seq_len: int = setting(128, help="tokens per sequence (decoder; targets of an encoder-decoder)", macro="SEQ_LEN")
    input_len: int | None = setting(None, help="encoder / prefix length (None: seq_len // 2)", macro="INPUT_LEN")
    seed: int = setting(0, help="parameter init, dropout and data order", macro="SEED")
    mesh_shape: tuple[int, ...] = setting((-1, 1, 1), help="device mesh (data, fsdp, tensor); -1 takes the rest",
                                          macro="MESH_SHAPE")
    checkpoint_every: int = setting(1000, help="save a checkpoint every N steps (and at the end)",
                                    macro="CHECKPOINT_EVERY")
    keep_checkpoints: int = setting(3, help="checkpoints kept in MODEL_DIR/checkpoints")
    log_every: int = setting(10, help="log metrics every N steps")
    model: ModelConfig = setting(default_factory=ModelConfig,
                                 help="the model (gin: ModelConfig.<field>; model files in gin/models/)")
    optimizer: OptimizerConfig = setting(default_factory=OptimizerConfig,
                                         help="AdamW and its schedule (gin: learning_rate_schedule.*, "
                                         "make_optimizer.*)")
    feature_converter: str = setting("auto", help="seqio feature converter; auto: from the model and the task")
    pack: bool = setting(True, help="pack several examples into each sequence")
    grad_accum_steps: int = setting(1, help="microbatches per step (must divide batch_size)")
    z_loss: float = setting(0.0, help="z-loss coefficient (log-partition regulariser)")
    async_checkpoints: bool = setting(True, help="write checkpoints in the background")
    quiet: bool = setting(False, help="no progress lines on stdout")
    init_checkpoint: str | None = setting(None, help="fine-tune from this checkpoint's parameters (a training "
                                          "MODEL_DIR or a params-only / imported one)", macro="INIT_CHECKPOINT")
    allow_data_change: bool = setting(False, help="resume although the mixture (name, weights, stages) differs from "
                                      "the checkpoint's: the stage in force restarts there, metrics.jsonl records it")
    nonfinite: str = setting("stop", help="a NaN or infinite loss or gradient: 'stop' (one-line error naming the "
                             "step; no checkpoint holds it) or 'skip' (that batch's update is dropped, the step "
                             "still counts; metrics.jsonl records a nonfinite_skipped event)")
    eval_every: int | None = setting(None, help="evaluate the live parameters every N steps on eval_benchmarks "
                                     "(logged to metrics.jsonl and TensorBoard as eval/<benchmark>/<lang>/<metric>); "
                                     "None or 0: never")
    eval_benchmarks: tuple[str, ...] = setting((), help="benchmarks evaluated during training: registry names "
                                               "(built-in tasks such as verse_ending_choice, xnli, ...) or "
                                               "lm-evaluation-harness tasks lm_eval:<task>")
    eval_languages: tuple[str, ...] = setting(("en",), help="content languages of eval_benchmarks (a harness "
                                              "task: its own language)")
    eval_benchmark_sources: Mapping[str, str] | None = setting(None, help="{benchmark: hub name, local directory, "
                                                               "or (lm_eval:<task>) a directory of task YAML files}")
    eval_max_items: int | None = setting(32, help="first N items per benchmark and language in each evaluation "
                                         "(None: all)")
    eval_batch_size: int = setting(16, help="prompts per scoring / generation batch during evaluation")
    gin_text: str = dataclasses.field(default="", compare=False, repr=False,
                                      metadata={"internal": True, "help": "the gin config it was read from"})

    def validate(self) -> None:
        c = Check(self)
        c.text("model_dir")
        c.integer("train_steps", 1)
        c.text("mixture_or_task_name")
        c.integer("batch_size", 1)
        c.integer("seq_len", 1)
        c.integer("input_len", 1, optional=True)
        if (self.input_len is not None and self.input_len >= self.seq_len and isinstance(self.model, ModelConfig)
                and model_api(self.model).feature_converter(has_inputs=True) == "prefix_lm"):
            c.fail("input_len", f"< seq_len={self.seq_len} for a decoder-only model (prompt and answer share it)")
        c.integer("seed", 0)
        c.mesh_shape("mesh_shape")
        c.integer("checkpoint_every", 1)
        c.integer("keep_checkpoints", 1)
        c.integer("log_every", 1)
        c.instance("model", ModelConfig, "a ModelConfig")
        c.instance("optimizer", OptimizerConfig, "an OptimizerConfig")
        c.text("feature_converter", choices=FEATURE_CONVERTERS)
        c.boolean("pack")
        c.integer("grad_accum_steps", 1)
        if self.batch_size % self.grad_accum_steps:
            c.fail("grad_accum_steps", f"a divisor of batch_size={self.batch_size}")
        c.number("z_loss", 0)
        c.boolean("async_checkpoints")
        c.boolean("quiet")
        c.text("init_checkpoint", optional=True)
        c.boolean("allow_data_change")
        c.text("nonfinite", choices=NONFINITE_MODES)
        self._check_eval(c)

    def _check_eval(self, c: Check) -> None:
        """Evaluation during training: every benchmark, source and language checked now (no data read), so a
        bad one is a one-line error before any training."""
        c.integer("eval_every", 0, optional=True)
        if isinstance(self.eval_benchmarks, str) or not isinstance(self.eval_benchmarks, tuple):
            c.fail("eval_benchmarks", "a list of benchmark names")
        if len(set(self.eval_benchmarks)) != len(self.eval_benchmarks):
            c.fail("eval_benchmarks", "a list without repeated names")
        if self.eval_every and not self.eval_benchmarks:
            c.fail("eval_benchmarks", "a non-empty list when eval_every is set")
        _check_languages(c, "eval_languages")
        sources = self.eval_benchmark_sources
        if sources is not None:
            if not isinstance(sources, Mapping) or any(not isinstance(v, str) or not v.strip()
                                                       for v in sources.values()):
                c.fail("eval_benchmark_sources", "a mapping {benchmark: hub name or directory} or None")
            unused = sorted(set(sources) - set(self.eval_benchmarks))
            if unused:
                c.fail("eval_benchmark_sources", f"sources of benchmarks in `eval_benchmarks` only (not {unused})")
            object.__setattr__(self, "eval_benchmark_sources", dict(sources))
        c.integer("eval_max_items", 1, optional=True)
        c.integer("eval_batch_size", 1)
        if self.eval_benchmarks:
            from xlt.evaluation.evaluate import benchmark_pairs  # heavy (jax): only when evaluation is asked

            c.wrap("eval_benchmarks", lambda: benchmark_pairs(self.eval_benchmarks, self.eval_languages,
                                                              sources=sources))

    @classmethod
    def from_gin(cls, **overrides: Any) -> TrainConfig:
        """``train.*`` bindings; the model from ``ModelConfig.*`` and the optimizer from its functions' bindings
        unless bound or given; ``gin_text`` records the whole gin config (written to MODEL_DIR/config.gin)."""
        values = cls.gin_values()
        if "model" not in values and "model" not in overrides:
            values["model"] = ModelConfig()  # gin-configurable: takes the ModelConfig.* bindings
        if "optimizer" not in values and "optimizer" not in overrides:
            values["optimizer"] = OptimizerConfig.from_gin()
        values["gin_text"] = gin.config_str()
        return cls.build({**values, **overrides})


# ------------------------------------------------------------------------------------------------ evaluation
def _check_languages(c: Check, name: str) -> None:
    from xlt.data import languages as language_table
    value = getattr(c.config, name)
    if isinstance(value, str) or not isinstance(value, tuple) or not value:
        c.fail(name, "a non-empty list of language codes")
    for code in value:
        c.wrap(name, lambda code=code: language_table.validate(code))


def _check_language(c: Check, name: str) -> None:
    from xlt.data import languages as language_table
    value = getattr(c.config, name)
    if value is not None:
        c.wrap(name, lambda: language_table.validate(value))


@register_gin
@dataclasses.dataclass(frozen=True, kw_only=True)
class EvalConfig(RunConfig):
    """A zero-shot evaluation of a checkpoint on registered benchmarks (default: the built-in held-out tasks):
    ``xlt.evaluation.evaluate.evaluate(config)``; gin: ``evaluate.<field>``."""

    gin_name: ClassVar[str] = "evaluate"

    checkpoint: str = setting(help="a training MODEL_DIR or a params-only checkpoint; the model config comes "
                              "from it", macro="CHECKPOINT")
    output_dir: str | None = setting(None, help="records.json, report.json, report.md and predictions.jsonl go "
                                     "here (None: print only)", macro="EVAL_DIR")
    languages: tuple[str, ...] = setting(("en",), help="content languages", macro="EVAL_LANGUAGES")
    benchmarks: tuple[str, ...] | None = setting(None, help="benchmarks of the registry (xlt.benchmarks: xnli, "
                                                 "pawsx, kobest_copa, ...), each in every language, or "
                                                 "lm-evaluation-harness tasks lm_eval:<task> (its prompt and "
                                                 "metrics, in its own language) (None: the built-in tasks of "
                                                 "`clusters`)", macro="BENCHMARKS")
    benchmark_sources: Mapping[str, str] | None = setting(None, help="{benchmark: hub name or local directory "
                                                          "<config>/<split>.jsonl; lm_eval:<task>: a directory of "
                                                          "task YAML files}; unnamed ones read their hub",
                                                          macro="BENCHMARK_SOURCES")
    clusters: tuple[str, ...] | None = setting(None, help="built-in task clusters (None: the held-out clusters)")
    tasks: tuple[str, ...] | None = setting(None, help="only these tasks of the clusters (None: all)")
    split: str | None = setting(None, help="the split (None: each benchmark's own evaluation split; built-in: "
                                "test)")
    korean_rouge: str = setting("character", help="Korean generation: 'character' (the tasks' own metrics) or "
                                "'morpheme' (also rouge_l_morpheme: ROUGE-L over MeCab-ko / Kiwi morphemes)",
                                macro="KOREAN_ROUGE")
    template_mode: str = setting("native", help="native, fixed or cross templates", macro="TEMPLATE_MODE")
    template_lang: str | None = setting(None, help="template language for fixed / cross", macro="TEMPLATE_LANG")
    fallback_lang: str | None = setting(None, help="template language where a task has no native template")
    max_items_per_task: int | None = setting(None, help="first N items per task, all their templates (None: all)")
    all_templates: bool = setting(True, help="every template of every item (per-template results, as T0 reports); "
                                  "False: one template per item, rotating (every template used, each item once)")
    calibrate: bool = setting(True, help="also rank choices by PMI against content-free prompts (scores each "
                              "distinct option set a second time); False: sum, per-token and per-character only")
    batch_size: int = setting(16, help="prompts per scoring / generation batch")
    max_new_tokens: int = setting(32, help="generation length for generation tasks")
    max_input_len: int = setting(1024, help="prompts keep their last N tokens (capped by a learned position table)")
    mesh_shape: tuple[int, ...] | None = setting(None, help="device mesh (data, fsdp, tensor); None: one device")
    quiet: bool = setting(False, help="no progress lines and no report on stdout")
    vocabulary: Any = setting(None, help="the seqio vocabulary, a value (python -m xlt.eval: the gin-configured "
                              "`vocabulary`); None: the default byte vocabulary")

    def validate(self) -> None:
        from xlt.data.splits import SPLITS
        from xlt.instruct import meta
        from xlt.instruct import templates as tpl
        c = Check(self)
        c.text("checkpoint")
        from xlt import paths
        if not paths.exists(self.checkpoint):  # a local path or a URL
            raise ConfigError(f"EvalConfig.checkpoint: {self.checkpoint} does not exist" + " (CHECKPOINT)")
        c.text("output_dir", optional=True)
        _check_languages(c, "languages")
        if self.clusters is not None:
            c.wrap("clusters", lambda: meta.check_clusters(self.clusters))
        if self.tasks is not None:
            if isinstance(self.tasks, str) or not isinstance(self.tasks, tuple):
                c.fail("tasks", "a list of task names or None")
            for task in self.tasks:
                c.wrap("tasks", lambda task=task: meta.task_spec(task))
        self._check_benchmarks(c)
        c.text("split", optional=True)
        if self.benchmarks is None and self.split is not None:
            c.text("split", choices=SPLITS)
        c.text("korean_rouge", choices=("character", "morpheme"))
        c.text("template_mode", choices=tpl.MODES)
        _check_language(c, "template_lang")
        _check_language(c, "fallback_lang")
        c.integer("max_items_per_task", 1, optional=True)
        c.boolean("all_templates")
        c.boolean("calibrate")
        c.integer("batch_size", 1)
        c.integer("max_new_tokens", 1)
        c.integer("max_input_len", 2)
        c.mesh_shape("mesh_shape", optional=True)
        c.boolean("quiet")
        if self.vocabulary is not None and not (hasattr(self.vocabulary, "encode")
                                                and hasattr(self.vocabulary, "vocab_size")):
            c.fail("vocabulary", "a seqio.Vocabulary or None")

    def _check_benchmarks(self, c: Check) -> None:
        from xlt import benchmarks
        if self.benchmarks is not None:
            if isinstance(self.benchmarks, str) or not isinstance(self.benchmarks, tuple) or not self.benchmarks:
                c.fail("benchmarks", "a non-empty list of benchmark names or None")
            if len(set(self.benchmarks)) != len(self.benchmarks):
                c.fail("benchmarks", "a list without repeated names")
            given = self.benchmark_sources if isinstance(self.benchmark_sources, Mapping) else {}
            for name in self.benchmarks:  # a harness task of a local directory is found through its source
                c.wrap("benchmarks", lambda name=name: benchmarks.get(name, source=given.get(name) or None))
            if self.clusters is not None or self.tasks is not None:
                c.fail("benchmarks", "None when clusters or tasks are given (they select built-in tasks)")
        sources = self.benchmark_sources
        if sources is not None:
            if not isinstance(sources, Mapping) or any(not isinstance(v, str) or not v.strip()
                                                       for v in sources.values()):
                c.fail("benchmark_sources", "a mapping {benchmark: hub name or directory} or None")
            unused = sorted(set(sources) - set(self.benchmarks or ()))
            if unused:
                c.fail("benchmark_sources", f"sources of benchmarks in `benchmarks` only (not {unused})")
            for name, source in sources.items():
                c.wrap("benchmark_sources", lambda name=name, source=source: benchmarks.get(name, source=source))
            object.__setattr__(self, "benchmark_sources", dict(sources))

    @classmethod
    def from_gin(cls, **overrides: Any) -> EvalConfig:
        """``evaluate.*`` bindings; the vocabulary, unless bound or given, is the gin-configured ``vocabulary``."""
        values = cls.gin_values()
        if values.get("vocabulary") is None and "vocabulary" not in overrides:
            from xlt.data import tasks  # heavy (seqio): only when reading a config from gin
            values["vocabulary"] = tasks.vocabulary()
        return cls.build({**values, **overrides})


def signature_defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    """Parameter defaults of ``fn`` (the tests compare OptimizerConfig's with ``xlt.optimizers``')."""
    return {n: p.default for n, p in inspect.signature(fn).parameters.items() if p.default is not p.empty}
