"""Cross-lingual transfer matrix: ``python -m experiments.transfer_matrix --gin_file=experiments/transfer_demo.gin``.

One base model, instruction-tuned once per (train set, seed) and evaluated zero-shot on the held-out clusters
in every test language, next to the untuned base as the baseline row.

Columns are the test languages (the built-in held-out tasks averaged: the demo) or, with ``benchmarks``,
(benchmark, language) pairs from the benchmark registry (``xlt.benchmarks``; each benchmark in
``benchmark_languages[name]`` or the test languages, read from ``benchmark_sources[name]`` or its hub). Rows
are tuned on the built-in meta-datasets or on registered instruction data (``instruction_data`` for every row,
``row_instruction_data`` per train set: a provider of ``xlt.instruct.providers`` with its source, passed to
``register_instruct_tasks(data=...)``; such rendered data keep their own prompts, so ``template_mode`` then
applies to the evaluation only). ``gin/experiments/polylm.gin`` and ``han24.gin`` state the two studies.
Validation builds every provider and benchmark, checks every language and template and, for local copies,
reads every file's schema: a bad one is a one-line error before any training.

The experiment is a ``MatrixConfig`` (gin: ``transfer_matrix.<field>``; ``--help`` lists the fields), validated
whole when it is made. Work, in order (nothing is written before that):

1. base: ``base_checkpoint`` (an existing MODEL_DIR or params checkpoint), or pretraining with ``base_gin_files``
   + ``base_bindings`` into ``results/<name>/base`` (``xlt.train.train`` with the ``TrainConfig`` these gin files
   and bindings make; resumes like any run).
2. rows: for each train set (``'en'``, ``'en+ko'``: ``+`` joins the languages of one mixture) and seed,
   ``xlt.train.train`` with ``runs/instruct.gin`` from the base into ``results/<name>/tuned/<trainset>_s<seed>``
   (a killed run resumes from its own checkpoint).
3. cells: per row (and the base), one evaluator and one batched pass of ``xlt.evaluation.evaluate`` (an
   ``EvalConfig`` with the experiment's vocabulary, a value) over every pending cell: the held-out tasks and,
   with ``seen_tasks``, the training clusters' tasks in every column, split into
   ``results/<name>/eval/<row>/<lang>`` and ``eval_seen/<row>/<lang>`` (benchmark columns:
   ``.../<row>/<benchmark>/<lang>``, one pass each); ``cell.json`` is written atomically last, and a cell that
   has one is skipped on a re-run (so is a row's tuning when all its cells are done). Before any of it,
   ``train_vocabulary`` (if set) is trained once into ``results/<name>/vocab``, and compiled programs are
   cached in ``results/<name>/.jax_cache``.
4. ``results/<name>/matrix.json``, ``matrix.md``, ``matrix_score.png`` and ``matrix_gain.png`` (and
   ``matrix_seen_*.png``), built by ``experiments.matrix_report`` with per-cell statistics.

The cell of a benchmark column: its primary metric (``accuracy`` for choice benchmarks, ``squad_f1`` for TyDiQA,
the first metric of other generation benchmarks), mean and population std over seeds x templates.

The cell of a built-in column: the *primary score* is ``accuracy`` (rank classification by summed log-likelihood) averaged over
the held-out choice tasks that exist in every test language (``eval_tasks``; the same tasks in every column),
each task weighing the same. Per task, the values are the per-template accuracies of every seed; the cell's
mean is the mean over tasks of their (seed x template) means, its ``std`` the root mean square over tasks of
the population std over (seed x template) -- the convention of ``xlt.evaluation.report``, which keeps
differences in task difficulty out of the spread. ``seed_std`` (population std over seeds of the per-seed
primary score) is stored too. ``gain`` is the cell mean minus the base row's mean in the same test language.
The cell of the seen-cluster matrix (``seen_tasks``): the same with accuracy for choice tasks; with generation
tasks (the demo's), each greedy answer's sentence-level chrF against the item's references (0-1: the answer's
language and form as much as its content), averaged over items. Items come from ``held_out_splits`` /
``seen_splits`` in order until ``max_items_per_task`` (``fill_plan``). Per tuned cell, ``n_items``, ``ci`` (95% paired bootstrap interval of the gain), ``p`` (sign-flip test),
``p_adjusted`` and ``significant`` (Holm over the matrix's tuned cells), and per column its ``chance`` level:
``experiments.matrix_report``, which builds the matrix and writes its files.

Template strategy (``template_mode``): ``native`` (templates in the content language, training and test),
``fixed`` (``template_lang`` everywhere, e.g. English templates) or ``cross`` (templates never in the content
language: a train set or a test language gets the first language of ``cross_template_langs`` that is not one
of its content languages).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TextIO

from experiments.matrix_report import (  # noqa: F401 - the aggregation lives there; re-exported for callers
    _heatmap, _mean, _task_values, build_matrix, cell_stat, matrix_markdown, save_figure, write_outputs)
from xlt import cli, configs, paths
from xlt.configs import setting
from xlt.data import languages as language_table
from xlt.errors import ConfigError
from xlt.files import atomic_write_text
from xlt.instruct import meta
from xlt.instruct import templates as tpl

BASE_ROW = "base"
BASE_LABEL = "base (untuned)"
PRIMARY_METRIC = "accuracy"
SEEN_GENERATION_METRIC = "chrf_item"  # seen generation tasks: each answer's chrF (0-1), averaged over items
CELL_FILE = "cell.json"
HARNESS_PREFIX = "lm_eval:"  # an lm-evaluation-harness task column (xlt.benchmarks.harness_tasks)
PREDICTIONS_FORMAT = 3  # predictions.jsonl with per-item fields (item, correct / chrf): older cells are evaluated again
VOCAB_OPTIONS = ("vocab_size", "languages", "sample_chars", "character_coverage", "model_type", "seed", "alpha")
Hook = Callable[[str, str], None]


def split_train_set(train_set: str) -> tuple[str, ...]:
    """``'en+ko'`` -> ``('en', 'ko')``; ConfigError for an empty part or a repeated language."""
    if not isinstance(train_set, str) or not train_set.strip():
        raise ConfigError(f"train set {train_set!r} must be a language code or codes joined by '+' (e.g. 'en+ko')")
    parts = tuple(p.strip() for p in train_set.split("+"))
    if any(not p for p in parts) or len(set(parts)) != len(parts):
        raise ConfigError(f"train set {train_set!r} has an empty or repeated language")
    for code in parts:
        language_table.validate(code)
    return parts


def template_setting(mode: str, template_lang: str | None, cross_langs: Sequence[str],
                     content: Sequence[str]) -> tuple[str, str | None]:
    """(template_mode, template_lang) for content languages ``content`` under the strategy ``mode``."""
    if mode == "native":
        return "native", None
    if mode == "fixed":
        if template_lang is None:
            raise ConfigError("template_mode 'fixed' needs template_lang (e.g. 'en')")
        return "fixed", template_lang
    if mode == "cross":
        for code in cross_langs:
            if code not in content:
                return "cross", code
        raise ConfigError(f"cross_template_langs {list(cross_langs)} has no language outside {list(content)}")
    raise ConfigError(f"template_mode {mode!r}; choose one of {', '.join(tpl.MODES)}")


def _codes(c: configs.Check, name: str) -> tuple[Any, ...]:
    value = getattr(c.config, name)
    if isinstance(value, str) or not isinstance(value, tuple) or not value:
        c.fail(name, "a non-empty list")
    if len(set(value)) != len(value):
        c.fail(name, "a list without repeated entries")
    return value


def _bindings(c: configs.Check, name: str) -> None:
    value = getattr(c.config, name)
    if isinstance(value, str) or not isinstance(value, tuple) or any(
            not isinstance(b, str) or "=" not in b for b in value):
        c.fail(name, "a list of gin bindings of the form 'NAME = VALUE'")


def _default_eval_tasks(test_languages: Sequence[str]) -> tuple[str, ...]:
    common = None
    for lang in test_languages:
        have = {t for t in meta.tasks_for(lang, meta.DEFAULT_HELD_OUT) if meta.TASKS[t].kind == meta.CHOICE}
        common = have if common is None else common & have
    return tuple(t for t in meta.TASKS if t in (common or set()))


@configs.register_gin
@dataclass(frozen=True, kw_only=True)
class MatrixConfig(configs.RunConfig):
    """The experiment, validated whole when it is made (every field, every template it will need): ``run(config)``;
    gin: ``transfer_matrix.<field>``."""

    gin_name: ClassVar[str] = "transfer_matrix"

    name: str = setting(help="the experiment's folder: results_dir/name")
    results_dir: str = setting("results", help="parent folder of the experiment's folder")
    model_gin: str = setting("models/gpt_tiny.gin", help="model gin file of the tuning runs (the base's model)")
    base_checkpoint: str | None = setting(None, help="an existing base (MODEL_DIR or params checkpoint); exactly one "
                                          "of base_checkpoint and base_gin_files")
    base_dir: str | None = setting(None, help="where base_gin_files pretrain the base (default results_dir/name/base); "
                                   "experiments naming the same base_dir share one base")
    base_gin_files: tuple[str, ...] = setting((), help="gin files of the base's pretraining run")
    base_bindings: tuple[str, ...] = setting((), help="'NAME = VALUE' gin bindings of the base's pretraining run")
    train_sets: tuple[str, ...] = setting(help="one row per train set: a language code, or codes joined by '+' "
                                          "(one mixture)")
    test_languages: tuple[str, ...] = setting(help="one column per test (content) language")
    seeds: tuple[int, ...] = setting((0,), help="tuning seeds of every train set")
    train_steps: int = setting(100, help="tuning steps of each row")
    batch_size: int = setting(8, help="tuning batch size")
    tune_bindings: tuple[str, ...] = setting((), help="'NAME = VALUE' gin bindings of every tuning run "
                                             "(runs/instruct.gin + model_gin)")
    template_mode: str = setting("native", help="native, fixed (template_lang everywhere) or cross (templates never "
                                 "in the content language)")
    template_lang: str | None = setting(None, help="template language of template_mode 'fixed'")
    cross_template_langs: tuple[str, ...] = setting(("en", "fr"), help="template_mode 'cross': the first of these "
                                                    "that is not a content language")
    eval_tasks: tuple[str, ...] | None = setting(None, help="held-out choice tasks averaged in a cell (None: all "
                                                 "that every test language has); only without `benchmarks`")
    seen_tasks: tuple[str, ...] | None = setting(None, help="training-cluster tasks of the seen-cluster matrix, all "
                                                 "choice (accuracy) or all generation (each answer's chrF, "
                                                 "averaged over items) on their seen_splits items, cells "
                                                 "in eval_seen/<row>/<lang>; None: no seen-cluster matrix")
    held_out_splits: tuple[str, ...] = setting(("test",), help="splits the held-out tasks' items come from, in "
                                               "order until max_items_per_task (their clusters never enter "
                                               "tuning, so every split is unseen)")
    seen_splits: tuple[str, ...] = setting(("test",), help="splits the seen tasks' items come from, in order "
                                           "until max_items_per_task: test and/or validation (tuning reads train)")
    max_new_tokens: int = setting(32, help="answer length of generation cells (seen generation tasks, generation "
                                  "benchmarks)")
    all_templates: bool = setting(True, help="every template of every test item (False: one template per item, "
                                  "rotating: every template used, each item scored once)")
    calibrate: bool = setting(True, help="also score content-free prompts for the PMI ranking (the matrix reports "
                              "summed log-likelihood; False halves the scoring work)")
    train_vocabulary: Mapping[str, Any] | None = setting(
        None, help="train a sentencepiece vocabulary for the whole experiment into results_dir/name/vocab (kept "
        "and reused): {'vocab_size': N, 'languages': [...], 'sample_chars': N, 'character_coverage': x, "
        "'model_type': 'unigram'|'bpe'} (options of tools/train_tokenizer.py); None: `vocabulary`")
    compilation_cache: bool = setting(True, help="keep compiled programs in results_dir/name/.jax_cache, so the "
                                      "tuning runs and evaluations of a run (and of a re-run) compile each shape once")
    benchmarks: tuple[str, ...] | None = setting(None, help="columns (benchmark, language) from the benchmark "
                                                 "registry, e.g. ['xnli', 'pawsx'], or lm-evaluation-harness "
                                                 "tasks 'lm_eval:<task>' (one column in the task's language, its "
                                                 "prompt and first metric) (None: one column per test language "
                                                 "averaging the built-in eval_tasks)")
    benchmark_sources: Mapping[str, str] | None = setting(None, help="{benchmark: hub name or local directory; "
                                                          "lm_eval:<task>: a directory of task YAML files}; "
                                                          "unnamed benchmarks read their hub")
    benchmark_languages: Mapping[str, tuple[str, ...]] | None = setting(
        None, help="{benchmark: its column languages}; unnamed benchmarks take test_languages")
    instruction_data: Mapping[str, Any] | None = setting(
        None, help="every row's tuning data: {'name': provider, 'source': hub name or local copy, 'options': {...}} "
        "(xlt.instruct.providers; None: the built-in meta-datasets)")
    row_instruction_data: Mapping[str, Mapping[str, Any]] | None = setting(
        None, help="{train set: instruction data as above} for rows tuned on other data than instruction_data")
    max_items_per_task: int | None = setting(16, help="first N items per task, every template (None: all)")
    eval_batch_size: int = setting(16, help="evaluation batch size")
    vocabulary: Any = setting(None, help="the seqio vocabulary of every run and evaluation, a value (gin: "
                              "transfer_matrix.vocabulary = @vocabulary()); None: bytes")
    quiet_children: bool = setting(True, help="no progress lines from the training runs")

    def normalize(self) -> None:
        if self.train_vocabulary is not None:
            if isinstance(self.train_vocabulary, Mapping):
                object.__setattr__(self, "train_vocabulary", dict(self.train_vocabulary))
            if self.vocabulary is None and (self.vocab_dir / "spm.model").is_file():
                object.__setattr__(self, "vocabulary", self.trained_vocabulary())
            return  # the vocabulary is trained by run() before any model work
        if self.vocabulary is None:
            from xlt.data import tasks as data_tasks  # heavy (seqio): only once a matrix is configured
            object.__setattr__(self, "vocabulary", data_tasks.vocabulary(kind="byte", path=None, extra_ids=0))

    def validate(self) -> None:
        c = configs.Check(self)
        c.directory_name("name")
        c.text("results_dir")
        c.text("model_gin")
        sets = _codes(c, "train_sets")
        langs = _codes(c, "test_languages")
        for code in langs:
            c.wrap("test_languages", lambda code=code: language_table.validate(code))
        content = {ts: c.wrap("train_sets", lambda ts=ts: split_train_set(ts)) for ts in sets}
        seeds = _codes(c, "seeds")
        if any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
            c.fail("seeds", "integers >= 0")
        if bool(self.base_checkpoint) == bool(self.base_gin_files):
            raise ConfigError("give exactly one of MatrixConfig.base_checkpoint and MatrixConfig.base_gin_files "
                              "(transfer_matrix.base_checkpoint / .base_gin_files)")
        c.text("base_checkpoint", optional=True)
        if self.base_checkpoint and not paths.exists(self.base_checkpoint):  # a local path or a URL
            c.fail("base_checkpoint", "an existing checkpoint")
        c.text("base_dir", optional=True)
        if self.base_checkpoint and self.base_dir:
            c.fail("base_dir", "None with base_checkpoint (it is where base_gin_files pretrain the base)")
        if isinstance(self.base_gin_files, str) or not isinstance(self.base_gin_files, tuple):
            c.fail("base_gin_files", "a list of gin files")
        c.wrap("model_gin", lambda: cli.resolve_gin_file(self.model_gin, [str(cli.GIN_DIR)]))
        for f in self.base_gin_files:
            c.wrap("base_gin_files", lambda f=f: cli.resolve_gin_file(f, [str(cli.GIN_DIR)]))
        for name in ("train_steps", "batch_size", "eval_batch_size", "max_new_tokens"):
            c.integer(name, 1)
        c.integer("max_items_per_task", 1, optional=True)
        for name in ("base_bindings", "tune_bindings"):
            _bindings(c, name)
        if isinstance(self.cross_template_langs, str) or not isinstance(self.cross_template_langs, tuple):
            c.fail("cross_template_langs", "a list of language codes")
        for code in self.cross_template_langs:
            c.wrap("cross_template_langs", lambda code=code: language_table.validate(code))
        c.text("template_mode", choices=tpl.MODES)
        if self.template_lang is not None:
            c.wrap("template_lang", lambda: language_table.validate(self.template_lang))
        c.boolean("quiet_children")
        for name in ("all_templates", "calibrate", "compilation_cache"):
            c.boolean(name)
        self._check_train_vocabulary(c, langs)
        if self.vocabulary is not None or self.train_vocabulary is None:
            if not (hasattr(self.vocabulary, "encode") and hasattr(self.vocabulary, "vocab_size")):
                c.fail("vocabulary", "a seqio.Vocabulary or None")
        data = self._check_instruction_data(c, content)
        if self.benchmarks is None:
            self._check_eval_tasks(c, langs)
        else:
            self._check_benchmarks(c, langs)
        self._check_seen_tasks(c, langs)
        self._check_splits(c)
        # Every template the run will need, now rather than after an hour of training (rows tuned on rendered
        # instruction data use the data's own prompts: see instruction_spec).
        train_tasks = meta.training_tasks(meta.DEFAULT_HELD_OUT)
        for ts, codes in content.items():
            if data[ts] is not None:
                continue
            mode, tlang = c.wrap("template_mode", lambda codes=codes: template_setting(
                self.template_mode, self.template_lang, self.cross_template_langs, codes))
            for code in codes:
                for task in meta.tasks_for(code):
                    if task in train_tasks:
                        c.wrap("template_mode", lambda: tpl.resolve_template_lang(mode, code, task, tlang))
        if self.benchmarks is None:
            for code in langs:
                mode, tlang = c.wrap("template_mode", lambda code=code: template_setting(
                    self.template_mode, self.template_lang, self.cross_template_langs, (code,)))
                for task in self.eval_tasks:
                    c.wrap("template_mode", lambda: tpl.resolve_template_lang(mode, code, task, tlang))

    def _check_eval_tasks(self, c: configs.Check, langs: Sequence[str]) -> None:
        if self.eval_tasks is None:
            tasks = _default_eval_tasks(langs)
            if not tasks:
                raise ConfigError(f"MatrixConfig.eval_tasks: no held-out choice task exists in every test language "
                                  f"{list(langs)}")
            object.__setattr__(self, "eval_tasks", tasks)  # resolved once: the same tasks in every column
        for task in _codes(c, "eval_tasks"):
            spec = c.wrap("eval_tasks", lambda task=task: meta.task_spec(task))
            if spec.cluster not in meta.DEFAULT_HELD_OUT or spec.kind != meta.CHOICE:
                raise ConfigError(f"MatrixConfig.eval_tasks: {task!r} is not a held-out choice task "
                                  "(zero-shot accuracy)")
            missing = [code for code in langs if task not in meta.tasks_for(code, meta.DEFAULT_HELD_OUT)]
            if missing:
                raise ConfigError(f"MatrixConfig.eval_tasks: {task!r} has no data in test language(s) {missing}")
        if self.benchmark_sources is not None or self.benchmark_languages is not None:
            c.fail("benchmark_sources" if self.benchmark_sources is not None else "benchmark_languages",
                   "None without benchmarks")

    def _check_seen_tasks(self, c: configs.Check, langs: Sequence[str]) -> None:
        """seen_tasks: tasks of the training clusters, all of one kind (a cell averages one metric), with data
        in every test language."""
        if self.seen_tasks is None:
            return
        train_tasks = meta.training_tasks(meta.DEFAULT_HELD_OUT)
        kinds = set()
        for task in _codes(c, "seen_tasks"):
            spec = c.wrap("seen_tasks", lambda task=task: meta.task_spec(task))
            if task not in train_tasks:
                c.fail("seen_tasks", f"tasks of the training clusters (not {task!r}: its cluster "
                       f"{spec.cluster!r} is held out)")
            kinds.add(spec.kind)
            if len(kinds) > 1:
                c.fail("seen_tasks", "tasks of one kind, all choice or all generation (a cell averages one metric)")
            missing = [code for code in langs if task not in meta.tasks_for(code)]
            if missing:
                c.fail("seen_tasks", f"tasks with data in every test language ({task!r} has none in {missing})")

    def _check_splits(self, c: configs.Check) -> None:
        from xlt.data.splits import SPLITS
        for name, allowed in (("held_out_splits", SPLITS), ("seen_splits", ("validation", "test"))):
            splits = _codes(c, name)
            if not splits or len(set(splits)) != len(splits) or any(s not in allowed for s in splits):
                c.fail(name, f"distinct splits from {list(allowed)}"
                       + (" (tuning reads train: its items are not unseen)" if name == "seen_splits" else ""))
        if self.benchmarks is not None and self.held_out_splits != ("test",):
            c.fail("held_out_splits", "('test',) with benchmark columns (each benchmark has its evaluation split)")

    def splits_of(self, part: str) -> tuple[str, ...]:
        """The splits a part's items come from, in the order they fill max_items_per_task."""
        return tuple(self.seen_splits if part == "seen" else self.held_out_splits)

    def _check_benchmarks(self, c: configs.Check, langs: Sequence[str]) -> None:
        """Names, sources, languages, splits, templates and (for local copies) every file's schema of every
        column, before any training."""
        from xlt import benchmarks as registry
        from xlt.benchmarks import sources as bench_sources
        from xlt.evaluation.evaluate import fallback_for

        names = _codes(c, "benchmarks")
        for name in names:  # harness tasks (lm_eval:<task>) are found through their source, below
            if not name.startswith(HARNESS_PREFIX):
                c.wrap("benchmarks", lambda name=name: registry.get(name))
        if self.eval_tasks is not None:
            c.fail("eval_tasks", "None with benchmarks (a benchmark column is its own task)")
        for field, kind in (("benchmark_sources", str), ("benchmark_languages", tuple)):
            value = getattr(self, field)
            if value is None:
                continue
            if not isinstance(value, Mapping) or any(k not in names for k in value):
                c.fail(field, "a mapping whose keys are names in benchmarks")
            value = {k: configs.as_tuple(v) for k, v in value.items()}
            if any(not isinstance(v, kind) or not v for v in value.values()):
                c.fail(field, "a mapping {benchmark: " + ("hub name or directory}" if kind is str else
                                                          "[language codes]}"))
            object.__setattr__(self, field, value)
        for name in names:
            bench = c.wrap("benchmarks", lambda name=name: registry.get(name, source=self.source_of(name)))
            if bench.builtin and bench.kind != meta.CHOICE:
                c.fail("benchmarks", f"held-out choice tasks or public benchmarks (not {name!r})")
            if name.startswith(HARNESS_PREFIX):  # one column, in the task's language (its name or given)
                given = (self.benchmark_languages or {}).get(name)
                if given is not None and len(given) != 1:
                    c.fail("benchmark_languages", f"one language for harness task {name!r}")
                if given is None and bench.language is None:
                    c.fail("benchmark_languages", f"the language of harness task {name!r} (its name names none)")
            for code in self.languages_of(name):
                c.wrap("test_languages" if name not in (self.benchmark_languages or {}) else "benchmark_languages",
                       lambda code=code: language_table.validate(code))
                mode, tlang = c.wrap("template_mode", lambda code=code: self.column_templates(name, code))
                c.wrap("benchmarks", lambda code=code: bench.check(code, None, template_mode=mode, template_lang=tlang,
                                                                   fallback_lang=fallback_for(bench, None)))
                if not bench.builtin and not name.startswith(HARNESS_PREFIX) and bench_sources.is_local(bench.source):
                    c.wrap("benchmark_sources", lambda code=code: bench.records(code))

    def _check_instruction_data(self, c: configs.Check, content: Mapping[str, tuple[str, ...]]) -> dict[str, Any]:
        """{train set: its instruction-data spec or None}; each provider is built and, for a local copy, read
        (the train languages present, the records in the set's schema)."""
        from xlt.instruct import providers

        for field in ("instruction_data", "row_instruction_data"):
            value = getattr(self, field)
            if value is not None and not isinstance(value, Mapping):
                c.fail(field, "a mapping or None")
        rows = dict(self.row_instruction_data or {})
        unknown = sorted(set(rows) - set(content))
        if unknown:
            c.fail("row_instruction_data", f"a mapping whose keys are train sets (not {unknown})")
        out: dict[str, Any] = {}
        for ts, codes in content.items():
            field = "row_instruction_data" if ts in rows else "instruction_data"
            spec = rows[ts] if ts in rows else self.instruction_data
            if spec is None:
                out[ts] = None
                continue
            if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str) or set(spec) - {
                    "name", "source", "options"} or not isinstance(spec.get("options") or {}, Mapping):
                c.fail(field, "{'name': provider, 'source': hub name or directory, 'options': {...}}")
            spec = {"name": spec["name"], "source": spec.get("source"), "options": dict(spec.get("options") or {})}
            if spec["name"] == "builtin":
                c.fail(field, "a provider of rendered data ('builtin' is the default: leave it None)")
            provider = c.wrap(field, lambda spec=spec, codes=codes: providers.get_provider(
                spec["name"], spec["source"], list(codes), **spec["options"]))
            if spec["source"] is not None and Path(str(spec["source"])).exists():
                for code in codes:
                    c.wrap(field, lambda code=code: provider.check_language(code))
                    c.wrap(field, lambda code=code: [t for t in provider.tasks(code)])
            out[ts] = spec
        return out

    def instruction_spec(self, train_set: str) -> dict[str, Any] | None:
        """The tuning data of a row: {'name', 'source', 'options'}, or None for the built-in meta-datasets."""
        rows = self.row_instruction_data or {}
        spec = rows.get(train_set, self.instruction_data)
        if spec is None:
            return None
        return {"name": spec["name"], "source": spec.get("source"), "options": dict(spec.get("options") or {})}

    def source_of(self, benchmark: str) -> str | None:
        return (self.benchmark_sources or {}).get(benchmark)

    def languages_of(self, benchmark: str) -> tuple[str, ...]:
        if benchmark.startswith(HARNESS_PREFIX) and benchmark not in (self.benchmark_languages or {}):
            from xlt import benchmarks as registry  # a harness task's column: the language its name ends in
            return registry.get(benchmark, source=self.source_of(benchmark)).languages
        return tuple((self.benchmark_languages or {}).get(benchmark, self.test_languages))

    def column_templates(self, benchmark: str | None, lang: str) -> tuple[str, str | None]:
        """(template_mode, template_lang) of a column. For a benchmark column under ``cross``: the first of
        ``cross_template_langs`` that is not ``lang`` and has templates of the benchmark (English XNLI has no
        Korean templates: the next language is used); otherwise ``template_setting``."""
        if benchmark is not None and benchmark.startswith(HARNESS_PREFIX):
            return "native", None  # the harness's own prompt
        if benchmark is None or self.template_mode != "cross":
            return template_setting(self.template_mode, self.template_lang, self.cross_template_langs, (lang,))
        from xlt import benchmarks as registry
        have = registry.get(benchmark, source=self.source_of(benchmark)).template_languages
        for code in self.cross_template_langs:
            if code != lang and code in have:
                return "cross", code
        raise ConfigError(f"cross_template_langs {list(self.cross_template_langs)} has no language other than "
                          f"{lang!r} with {benchmark} templates ({', '.join(have)})")

    def columns(self) -> list[tuple[str, str | None, str]]:
        """(column key, benchmark or None, content language) of every column: the test languages (built-in
        eval_tasks averaged) or, with ``benchmarks``, ``<benchmark>/<language>``."""
        if self.benchmarks is None:
            return [(lang, None, lang) for lang in self.test_languages]
        return [(f"{b}/{lang}", b, lang) for b in self.benchmarks for lang in self.languages_of(b)]

    @property
    def root(self) -> Path:
        """results_dir/name; a URL (gs://…) stays one (``xlt.paths``: an epath.Path, not a collapsed gs:/)."""
        from xlt import paths
        return paths.path(self.results_dir) / self.name

    @property
    def base_path(self) -> Path:
        """The base model's folder: base_checkpoint, base_dir, or results_dir/name/base."""
        from xlt import paths
        if self.base_checkpoint:
            return paths.path(self.base_checkpoint)
        return paths.path(self.base_dir) if self.base_dir else self.root / "base"

    def tuned_dir(self, row: str) -> Path:
        return self.root / "tuned" / row

    def eval_dir(self, row: str, column: str, part: str = "held_out") -> Path:
        """A cell's folder: eval/<row>/<lang> (built-in columns) or eval/<row>/<benchmark>/<lang>; the seen-cluster
        matrix's (``part='seen'``): eval_seen/<row>/<lang>."""
        folders = {"held_out": "eval", "seen": "eval_seen"}
        if part not in folders:
            raise ConfigError(f"matrix part {part!r}; choose one of {', '.join(folders)}")
        return self.root / folders[part] / row / column

    def _check_train_vocabulary(self, c: configs.Check, langs: Sequence[str]) -> None:
        spec = self.train_vocabulary
        if spec is None:
            return
        if not isinstance(spec, Mapping) or set(spec) - set(VOCAB_OPTIONS) or "vocab_size" not in spec:
            c.fail("train_vocabulary", f"a mapping with vocab_size and any of {', '.join(VOCAB_OPTIONS)}")
        if isinstance(spec["vocab_size"], bool) or not isinstance(spec["vocab_size"], int) or spec["vocab_size"] < 300:
            c.fail("train_vocabulary", "a vocab_size >= 300 (256 byte pieces and specials come first)")
        for code in configs.as_tuple(spec.get("languages", langs)):
            c.wrap("train_vocabulary", lambda code=code: language_table.validate(code))

    def vocabulary_args(self) -> list[str]:
        """tools/train_tokenizer.py options of ``train_vocabulary`` (languages default to the test languages)."""
        spec = dict(self.train_vocabulary or {})
        spec["languages"] = ",".join(configs.as_tuple(spec.get("languages", self.test_languages)))
        return [f"--{k}={v}" for k, v in sorted(spec.items())]

    @property
    def vocab_dir(self) -> Path:
        return self.root / "vocab"

    def trained_vocabulary(self) -> Any:
        from xlt.data import tasks as data_tasks
        return data_tasks.vocabulary(kind="sentencepiece", path=str(self.vocab_dir / "spm.model"), extra_ids=0)

    def parts(self) -> tuple[str, ...]:
        """The matrices of the experiment: held_out, and seen with ``seen_tasks``."""
        return ("held_out", "seen") if self.seen_tasks else ("held_out",)

    def seen_kind(self) -> str | None:
        """The kind of the seen tasks (choice or generation); None without a seen-cluster matrix."""
        return meta.task_spec(self.seen_tasks[0]).kind if self.seen_tasks else None

    def scores_answers(self, part: str) -> bool:
        """Whether a part's cells score generated answers, each by its chrF (``SEEN_GENERATION_METRIC``: the
        seen part with generation tasks), rather than ranked options or a benchmark's own metric."""
        return part == "seen" and self.seen_kind() == meta.GENERATION

    def tasks_of(self, part: str = "held_out") -> tuple[str, ...]:
        """The tasks a part's cells average: eval_tasks (held-out; empty with benchmark columns, each its own
        task) or seen_tasks (empty without a seen-cluster matrix)."""
        if part == "held_out":
            return tuple(self.eval_tasks or ())
        if part == "seen":
            return tuple(self.seen_tasks or ())
        raise ConfigError(f"matrix part {part!r}; choose one of held_out, seen")

    def rows(self) -> list[tuple[str, str, int]]:
        """(row directory name, train set, seed) of every tuned model."""
        return [(f"{ts}_s{seed}", ts, seed) for ts in self.train_sets for seed in self.seeds]


# ------------------------------------------------------------------------------------------------ running
class Progress:
    """One line per step of work: which cell, how many are done and left, elapsed time, and an ETA from the
    measured cost of the tuning runs and eval cells of this invocation (shown once both were seen)."""

    def __init__(self, total: int, done: int, tunes_left: int, out: TextIO):
        self.total, self.done, self.tunes_left, self.out = total, done, tunes_left, out
        self.started = time.perf_counter()
        self.eval_seconds: list[float] = []
        self.tune_seconds: list[float] = []

    def say(self, text: str) -> None:
        elapsed = time.perf_counter() - self.started
        left = self.total - self.done
        eta = ""
        if left and self.eval_seconds and (self.tune_seconds or not self.tunes_left):
            tune = _mean(self.tune_seconds) * self.tunes_left if self.tunes_left else 0.0
            eta = f" | eta {cli.format_duration(_mean(self.eval_seconds) * left + tune)}"
        print(f"[{self.done}/{self.total} cells done, {left} left | elapsed {cli.format_duration(elapsed)}{eta}] {text}",
              file=self.out, flush=True)

    def tuned(self, seconds: float) -> None:
        self.tunes_left -= 1
        self.tune_seconds.append(seconds)

    def finished(self, seconds: float) -> None:
        self.done += 1
        self.eval_seconds.append(seconds)


def primary_metric(cfg: MatrixConfig, benchmark: str | None, part: str = "held_out") -> str:
    """The metric a cell reports: accuracy (summed log-likelihood) for choice columns; for seen generation
    tasks each answer's chrF averaged over items (``SEEN_GENERATION_METRIC``, from predictions.jsonl); for a
    generation benchmark its F1 when it has one (TyDiQA: squad_f1), else its first metric (MGSM: number_match)."""
    if cfg.scores_answers(part):
        return SEEN_GENERATION_METRIC
    if benchmark is None:
        return PRIMARY_METRIC
    from xlt import benchmarks as registry
    bench = registry.get(benchmark, source=cfg.source_of(benchmark))
    if benchmark.startswith(HARNESS_PREFIX):
        return bench.primary_metric  # the harness task's first metric (acc for multiple choice)
    if bench.kind == meta.CHOICE:
        return PRIMARY_METRIC
    return "squad_f1" if "squad_f1" in bench.metrics else bench.metrics[0]


def _column(cfg: MatrixConfig, column: str) -> tuple[str | None, str]:
    for key, bench, lang in cfg.columns():
        if key == column:
            return bench, lang
    raise ConfigError(f"no column {column!r} in {[k for k, _, _ in cfg.columns()]}")


def _cell_settings(cfg: MatrixConfig, row: str, column: str, part: str = "held_out") -> dict[str, Any]:
    """What a cell's result depends on besides the checkpoint's contents; a stored cell with other settings
    (e.g. after changing max_items_per_task) is evaluated again."""
    bench, lang = _column(cfg, column)
    mode, tlang = cfg.column_templates(bench, lang)
    if row == BASE_ROW:  # relative to results/<name> when it lives there: the folder may be moved
        checkpoint = (os.path.relpath(cfg.base_path, cfg.root) if cfg.base_path.is_relative_to(cfg.root)
                      else str(cfg.base_path))
    else:
        checkpoint = str(cfg.tuned_dir(row).relative_to(cfg.root))
    settings = {"checkpoint": checkpoint, "tasks": list(cfg.tasks_of(part) or (bench,)), "template_mode": mode,
                "template_lang": tlang, "max_items_per_task": cfg.max_items_per_task,
                "split": list(cfg.splits_of(part)) if bench is None else None,
                "all_templates": cfg.all_templates, "calibrate": cfg.calibrate, "predictions": PREDICTIONS_FORMAT}
    if cfg.scores_answers(part):
        settings["max_new_tokens"] = cfg.max_new_tokens
    if bench is not None:
        settings.update(source=cfg.source_of(bench))
    return settings


def _cell_done(cfg: MatrixConfig, row: str, column: str, part: str = "held_out") -> bool:
    """Whether the cell of ``row``, column ``column`` (a column key) and ``part`` has a result with today's
    settings."""
    path = cfg.eval_dir(row, column, part=part) / CELL_FILE
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("settings") == _cell_settings(cfg, row, column, part)
    except (json.JSONDecodeError, AttributeError):
        return False


def _cells(cfg: MatrixConfig) -> list[tuple[str, str]]:
    """(column key, part) of every cell of a row: the held-out matrix's, then the seen-cluster matrix's."""
    return [(key, part) for part in cfg.parts() for key, _, _ in cfg.columns()]


def _run_config(cfg: MatrixConfig, files: Sequence[str], bindings: Sequence[str], **overrides: Any) -> Any:
    """A training run of the experiment as a ``TrainConfig``: its gin files and bindings, the experiment's
    vocabulary, and ``overrides`` (the run's directory, seed, steps, …) as values on top."""
    from xlt import train as train_lib  # heavy (jax, tensorflow): only when there is work
    if cfg.quiet_children:
        overrides["quiet"] = True
    return train_lib.config_from_gin(files, bindings, vocabulary=cfg.vocabulary, **overrides)


def _train(run_config: Any) -> None:
    from xlt import train as train_lib
    train_lib.train(run_config)


def compilation_cache(cfg: MatrixConfig) -> None:
    """Compiled programs go to results_dir/name/.jax_cache: every tuning run after the first, every evaluation
    after the first of its shapes, and a re-run of the experiment load them instead of compiling."""
    if not cfg.compilation_cache:
        return
    import jax
    jax.config.update("jax_compilation_cache_dir", str(paths.absolute(cfg.root / ".jax_cache")))  # a URL stays one
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def _ensure_vocabulary(cfg: MatrixConfig, progress: Progress) -> None:
    """Train ``train_vocabulary`` into results_dir/name/vocab unless a vocabulary of the same options is there
    (tools/train_tokenizer.py writes a temporary folder and renames it, so a killed run leaves none)."""
    if cfg.train_vocabulary is None:
        return
    import subprocess
    args = cfg.vocabulary_args()
    stamp = cfg.vocab_dir / "options.json"
    if (cfg.vocab_dir / "spm.model").is_file() and stamp.is_file() and json.loads(stamp.read_text()) == args:
        progress.say(f"vocabulary: {cfg.vocab_dir / 'spm.model'} (kept from an earlier run)")
    else:
        progress.say(f"training the vocabulary into {cfg.vocab_dir} ({' '.join(args)})")
        tool = Path(__file__).resolve().parent.parent / "tools" / "train_tokenizer.py"
        done = subprocess.run([sys.executable, str(tool), f"--out={cfg.vocab_dir}", "--overwrite", *args],
                              capture_output=True, text=True)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise ConfigError(f"training the vocabulary failed: {lines[-1] if lines else done.returncode}")
        atomic_write_text(stamp, json.dumps(args) + "\n")
    object.__setattr__(cfg, "vocabulary", cfg.trained_vocabulary())


def _ensure_base(cfg: MatrixConfig, progress: Progress) -> None:
    if cfg.base_checkpoint:
        return
    progress.say(f"pretraining the base into {cfg.base_path} (a finished base is reused, an interrupted one resumed)")
    _train(_run_config(cfg, cfg.base_gin_files, cfg.base_bindings, model_dir=str(cfg.base_path)))


def _tune(cfg: MatrixConfig, row: str, train_set: str, seed: int, progress: Progress) -> None:
    codes = split_train_set(train_set)
    spec = cfg.instruction_spec(train_set)
    if spec is None:
        mode, tlang = template_setting(cfg.template_mode, cfg.template_lang, cfg.cross_template_langs, codes)
    else:  # rendered data: its own prompts (register_instruct_tasks refuses any other template mode)
        mode, tlang = "native", None
    what = "built-in meta-datasets" if spec is None else f"{spec['name']} ({spec['source'] or 'hub'})"
    progress.say(f"tuning {row} on {what}: train languages {list(codes)}, templates "
                 f"{mode}{'/' + tlang if tlang else ''}, {cfg.train_steps} steps")
    # The tuning data are configured in runs/instruct.gin through these macros; the run's own settings are values.
    data = [f"TRAIN_LANGUAGES = {list(codes)!r}", f"TEMPLATE_MODE = {mode!r}", f"TEMPLATE_LANG = {tlang!r}"]
    if spec is not None:  # register_instruct_tasks(data=instruction_data(...)): xlt.instruct.providers
        data += ["register_instruct_tasks.data = @instruction_data()",
                 f"instruction_data.name = {spec['name']!r}", f"instruction_data.source = {spec['source']!r}",
                 f"instruction_data.languages = {list(codes)!r}", f"instruction_data.options = {spec['options']!r}"]
    _train(_run_config(cfg, [cfg.model_gin, "runs/instruct.gin"], [*data, *cfg.tune_bindings],
                       model_dir=str(cfg.tuned_dir(row)), init_checkpoint=str(cfg.base_path), seed=seed,
                       train_steps=cfg.train_steps, batch_size=cfg.batch_size))


def _write_cell(cfg: MatrixConfig, row: str, column: str, part: str, records: Sequence[dict[str, Any]],
                lines: Sequence[dict[str, Any]], seconds: float) -> None:
    from xlt.evaluation.evaluate import write_results

    out = cfg.eval_dir(row, column, part=part)
    write_results(out, records, lines)
    atomic_write_text(out / CELL_FILE, json.dumps({"row": row, "lang": column, "part": part,
                                                   "settings": _cell_settings(cfg, row, column, part),
                                                   "seconds": seconds}, indent=1) + "\n")


def _evaluate_row(cfg: MatrixConfig, row: str, checkpoint: Path, pending: Sequence[tuple[str, str]],
                  progress: Progress, hook: Hook | None) -> None:
    """Evaluate the pending cells of one row. Built-in columns: one evaluator and one batched pass per template
    setting (all of them under native or fixed templates): every task of both matrices in every pending
    language, ranked together, then split into the cells' folders. Benchmark columns: one pass per cell."""
    from xlt.configs import EvalConfig
    from xlt.evaluation import evaluate as ev  # heavy: only when there is work

    for column, part in pending:
        if hook is not None:
            hook(row, column)
    groups: dict[tuple[Any, ...], list[tuple[str, str]]] = {}
    for column, part in pending:
        bench, lang = _column(cfg, column)
        mode, tlang = cfg.column_templates(bench, lang)
        groups.setdefault((bench, mode, tlang) if bench is None else (column, part), []).append((column, part))
    evaluator = None
    for key, cells in groups.items():
        started = time.perf_counter()
        bench, lang = _column(cfg, cells[0][0])
        mode, tlang = cfg.column_templates(bench, lang)
        langs = tuple(dict.fromkeys(_column(cfg, c)[1] for c, _ in cells))
        common = dict(checkpoint=str(checkpoint), languages=langs, template_mode=mode, template_lang=tlang,
                      max_items_per_task=cfg.max_items_per_task, all_templates=cfg.all_templates,
                      calibrate=cfg.calibrate, batch_size=cfg.eval_batch_size, max_new_tokens=cfg.max_new_tokens,
                      quiet=True, vocabulary=cfg.vocabulary)
        if bench is None:  # one plan per (part, split), each task's items filled split by split up to the cap
            parts = tuple(dict.fromkeys(part for _, part in cells))
            configs_by_split = [EvalConfig(**common, tasks=cfg.tasks_of(part), split=split, clusters=tuple(
                dict.fromkeys(meta.task_spec(t).cluster for t in cfg.tasks_of(part))))
                for part in parts for split in cfg.splits_of(part)]
            config = configs_by_split[0]
            plan = fill_plan([ev.plan_examples(c) for c in configs_by_split], cfg.max_items_per_task)
            tasks = tuple(dict.fromkeys(t for part in parts for t in cfg.tasks_of(part)))
            what = f"{len(tasks)} tasks x {len(langs)} languages"
        else:
            source = cfg.source_of(bench)
            config = EvalConfig(**common, benchmarks=(bench,), benchmark_sources={bench: source} if source else None)
            plan = ev.plan_examples(config)
            what = f"benchmark {bench}"
        progress.say(f"evaluating {row} -> {', '.join(c if p == 'held_out' else f'{c} (seen)' for c, p in cells)} "
                     f"({what}, templates {mode}{'/' + tlang if tlang else ''})")
        if evaluator is None:
            evaluator = ev.Evaluator.from_config(config)  # one per row: every group shares its checkpoint
        records, lines = ev.run_plan(config, evaluator, plan, progress=lambda i, n, what: None)
        seconds = (time.perf_counter() - started) / len(cells)
        for column, part in cells:
            lang = _column(cfg, column)[1]
            tasks = set(cfg.tasks_of(part) or (bench,))
            _write_cell(cfg, row, column, part, [r for r in records if r["content_lang"] == lang and r["task"] in tasks],
                        [x for x in lines if x["content_lang"] == lang and x["task"] in tasks], seconds)
            progress.finished(seconds)


def fill_plan(plans: Sequence[Sequence[tuple[str, Any, list[dict[str, Any]]]]], max_items: int | None
              ) -> list[tuple[str, Any, list[dict[str, Any]]]]:
    """One evaluation plan from plans of the same tasks in different splits (``xlt.evaluation.evaluate.
    plan_examples``, in the order given): each (language, task) takes whole items (every template of an item)
    split after split until ``max_items`` (None: all of them)."""
    from xlt.evaluation.evaluate import item_of
    merged: dict[tuple[str, str], tuple[str, Any, list[dict[str, Any]]]] = {}
    counts: dict[tuple[str, str], set[str]] = {}
    for plan in plans:
        for lang, bench, examples in plan:
            key = (lang, bench.name)
            slot = merged.setdefault(key, (lang, bench, []))
            items = counts.setdefault(key, set())
            for ex in examples:
                item = item_of(ex)
                if item not in items:
                    if max_items is not None and len(items) >= max_items:
                        continue
                    items.add(item)
                slot[2].append(ex)
    return list(merged.values())


def run(cfg: MatrixConfig, *, hook: Hook | None = None, out: TextIO = sys.stdout) -> dict[str, Any]:
    """Run (or resume) every missing cell, then write the matrix files; returns the matrix as a dict.

    ``hook(row, column)`` is called for each pending cell of a row before that row's evaluation pass (tests
    interrupt a run through it)."""
    cells = _cells(cfg)
    plan: list[tuple[str, str | None, int | None]] = [(BASE_ROW, None, None)] + [(r, ts, s) for r, ts, s in cfg.rows()]
    total = len(plan) * len(cells)
    done = sum(_cell_done(cfg, row, col, part) for row, _, _ in plan for col, part in cells)
    tunes = sum(any(not _cell_done(cfg, row, col, part) for col, part in cells)
                for row, ts, _ in plan if ts is not None)
    progress = Progress(total, done, tunes, out)
    progress.say(f"transfer matrix {cfg.name!r}: {len(plan)} rows x {len(cfg.columns())} "
                 f"{'test languages' if cfg.benchmarks is None else 'benchmark columns'}"
                 f"{' (held-out and seen clusters)' if 'seen' in cfg.parts() else ''} -> {cfg.root}")
    if done < total:
        compilation_cache(cfg)
        _ensure_vocabulary(cfg, progress)
        _ensure_base(cfg, progress)
    for row, train_set, seed in plan:
        pending = [(col, part) for col, part in cells if not _cell_done(cfg, row, col, part)]
        for col, part in cells:
            if (col, part) not in pending:
                progress.say(f"skip {row} -> {col} (done: {cfg.eval_dir(row, col, part=part) / CELL_FILE})")
        if not pending:
            continue
        if train_set is not None:
            started = time.perf_counter()
            _tune(cfg, row, train_set, seed, progress)
            progress.tuned(time.perf_counter() - started)
        checkpoint = cfg.base_path if train_set is None else cfg.tuned_dir(row)
        _evaluate_row(cfg, row, checkpoint, pending, progress, hook)
    matrix = build_matrix(cfg)
    write_outputs(cfg, matrix)
    progress.say(f"wrote {cfg.root / 'matrix.json'}, matrix.md, matrix_score.png, matrix_gain.png")
    print(matrix_markdown(matrix), file=out, flush=True)
    return matrix


USAGE = "python -m experiments.transfer_matrix --gin_file=experiments/transfer_demo.gin [--gin.NAME=VALUE ...]"


def help_text() -> str:
    intro = __doc__.split("\n\n", 1)[1].split("\n\nThe cell of a benchmark column:")[0]
    return configs.help_text(USAGE, intro, [MatrixConfig])


def main(argv: list[str], *, hook: Hook | None = None) -> None:
    from xlt.data import tasks  # noqa: F401 - registers `vocabulary`: transfer_matrix.vocabulary = @vocabulary()
    cli.load_gin_argv(argv, "--gin_file=experiments/transfer_demo.gin")
    logging.getLogger("absl").setLevel(logging.ERROR)  # seqio's per-task cache advice, once per tuning run
    cfg = MatrixConfig.from_gin()  # the experiment, read whole from gin; its runs are values made from it
    run(cfg, hook=hook)


if __name__ == "__main__":
    sys.exit(cli.main(main, usage=help_text))
