"""Evaluation during training (``TrainConfig.eval_every``): the run's live parameters, every N steps, on
``eval_benchmarks`` (xlt's registered benchmarks and built-in tasks, or lm-evaluation-harness tasks
``lm_eval:<task>``) in ``eval_languages``.

No checkpoint round trip: ``Evaluator.from_params`` takes the parameters where they are (sharded on the
training mesh) with the ``CheckpointMeta`` a checkpoint of this step would carry and the run's vocabulary, and
``xlt.evaluation.evaluate.evaluate`` runs exactly as ``python -m xlt.eval`` on that checkpoint would (the
same plan, prompts, batching and metrics; a test checks the values equal those of the saved checkpoint).

Each evaluation is one ``metrics.jsonl`` line ``{"step", "event": "eval", "eval/<benchmark>/<lang>/<metric>":
mean over templates, ..., "eval_seconds"}``, and the same scalars in TensorBoard (MODEL_DIR/tb).
Training is not perturbed: parameters are only read (before the next step donates them), the data
iterator and the step's random keys are not touched, and the harness's seeding of Python / NumPy / torch
global random states is undone (``xlt.benchmarks.harness_tasks``), so a run with evaluation has the very
same losses as one without, and resumes bitwise.

Everything is checked when the run is set up, before MODEL_DIR is written: the config (``TrainConfig``
validation: names, sources, languages, splits, metrics), then every local example file is read once (a file
in the wrong schema is a one-line DataError before the first step). Multi-process runs are refused (the
evaluator feeds one process's batches); evaluate their checkpoints instead.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import jax

from xlt.benchmarks import harness_tasks
from xlt.configs import EvalConfig, TrainConfig
from xlt.errors import ConfigError
from xlt.evaluation import evaluate as evaluate_lib

PREFIX = "eval"


class TrainingEval:
    """The evaluation a run asks for; ``due(step)`` then ``run(...)`` inside the training loop."""

    def __init__(self, config: TrainConfig, vocabulary: Any):
        self.every = int(config.eval_every or 0)
        self.config, self.vocab = config, vocabulary
        self._eval_config: EvalConfig | None = None
        if not self.every:
            return
        if jax.process_count() > 1:
            raise ConfigError("TrainConfig.eval_every: evaluation during training runs in one process; evaluate "
                              "the checkpoints of a multi-process run with python -m xlt.eval")
        pairs = evaluate_lib.benchmark_pairs(config.eval_benchmarks, config.eval_languages,
                                             sources=config.eval_benchmark_sources)
        for lang, bench in pairs:  # read every example source now, not at the first evaluation
            if harness_tasks.is_harness(bench):
                continue
            examples = bench.examples(lang, None, template_mode="native",
                                      fallback_lang=evaluate_lib.fallback_for(bench, None),
                                      max_items=config.eval_max_items)
            if not examples:
                raise ConfigError(f"TrainConfig.eval_benchmarks: {bench.name!r} has no examples in {lang!r}")

    def due(self, step: int) -> bool:
        return bool(self.every) and step % self.every == 0

    def eval_config(self, model_dir: Path) -> EvalConfig:
        """The evaluation as an ``EvalConfig`` of the run's directory (what ``python -m xlt.eval`` would take)."""
        if self._eval_config is None:
            c = self.config
            self._eval_config = EvalConfig(checkpoint=str(model_dir), output_dir=None, languages=c.eval_languages,
                                           benchmarks=c.eval_benchmarks, benchmark_sources=c.eval_benchmark_sources,
                                           max_items_per_task=c.eval_max_items, batch_size=c.eval_batch_size,
                                           quiet=True, vocabulary=self.vocab)
        return self._eval_config

    def run(self, step: int, params: Any, meta: Any, mesh: Any, model_dir: Path) -> dict[str, Any]:
        """Evaluate ``params`` (the state's, after ``step``); returns the metrics.jsonl record."""
        import flax.linen as nn

        config = self.eval_config(model_dir)
        started = time.perf_counter()
        evaluator = evaluate_lib.Evaluator.from_params(nn.meta.unbox(params), meta, self.vocab,
                                                       batch_size=config.batch_size,
                                                       max_input_len=config.max_input_len, mesh=mesh,
                                                       checkpoint=str(model_dir))
        report = evaluate_lib.evaluate(config, evaluator=evaluator, progress=lambda i, n, what: None)
        return {"step": step, "event": "eval", **scalars(report), "eval_seconds": time.perf_counter() - started}


def scalars(report: Any) -> dict[str, float]:
    """``eval/<benchmark>/<lang>/<metric>``: the task's mean over templates per content language (the
    template language is added, ``<lang>-<template lang>``, where it differs: fallback templates)."""
    out: dict[str, float] = {}
    by_key: dict[str, list[float]] = defaultdict(list)
    for (_, task, metric), settings in report.tasks.items():
        for (content, template), stat in settings.items():
            lang = content if template == content else f"{content}-{template}"
            by_key[f"{PREFIX}/{task}/{lang}/{metric}"].append(stat.mean)
    for key, values in by_key.items():
        out[key] = math.fsum(values) / len(values)
    return out


__all__ = ["TrainingEval", "scalars"]
