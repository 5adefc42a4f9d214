"""Cross-lingual transfer matrix: ``python -m experiments.transfer_matrix --gin_file=experiments/transfer_demo.gin``.

One base model, instruction-tuned once per (train set, seed) and evaluated zero-shot on the held-out clusters
in every test language, next to the untuned base as the baseline row.

The experiment is a ``MatrixConfig`` (gin: ``transfer_matrix.<field>``; ``--help`` lists the fields), validated
whole when it is made. Work, in order (nothing is written before that):

1. base: ``base_checkpoint`` (an existing MODEL_DIR or params checkpoint), or pretraining with ``base_gin_files``
   + ``base_bindings`` into ``results/<name>/base`` (``xlt.train.train`` with the ``TrainConfig`` these gin files
   and bindings make; resumes like any run).
2. rows: for each train set (``'en'``, ``'en+ko'``: ``+`` joins the languages of one mixture) and seed,
   ``xlt.train.train`` with ``runs/instruct.gin`` from the base into ``results/<name>/tuned/<trainset>_s<seed>``
   (a killed run resumes from its own checkpoint).
3. cells: ``xlt.evaluation.evaluate`` with an ``EvalConfig`` (the experiment's vocabulary, a value) of every
   row and of the base in every test language into ``results/<name>/eval/<row>/<lang>``; ``cell.json`` is written atomically last, and a cell that has one is
   skipped on a re-run (so is a row's tuning when all its cells are done).
4. ``results/<name>/matrix.json``, ``matrix.md``, ``matrix_score.png`` and ``matrix_gain.png``.

The cell: the *primary score* is ``accuracy`` (rank classification by summed log-likelihood) averaged over
the held-out choice tasks that exist in every test language (``eval_tasks``; the same tasks in every column),
each task weighing the same. Per task, the values are the per-template accuracies of every seed; the cell's
mean is the mean over tasks of their (seed x template) means, its ``std`` the root mean square over tasks of
the population std over (seed x template) -- the convention of ``xlt.evaluation.report``, which keeps
differences in task difficulty out of the spread. ``seed_std`` (population std over seeds of the per-seed
primary score) is stored too. ``gain`` is the cell mean minus the base row's mean in the same test language.

Template strategy (``template_mode``): ``native`` (templates in the content language, training and test),
``fixed`` (``template_lang`` everywhere, e.g. English templates) or ``cross`` (templates never in the content
language: a train set or a test language gets the first language of ``cross_template_langs`` that is not one
of its content languages).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TextIO

from xlt import cli, configs
from xlt.configs import setting
from xlt.data import languages as language_table
from xlt.errors import ConfigError
from xlt.evaluation import report
from xlt.files import atomic_path, atomic_write_text
from xlt.instruct import meta
from xlt.instruct import templates as tpl

BASE_ROW = "base"
BASE_LABEL = "base (untuned)"
PRIMARY_METRIC = "accuracy"
CELL_FILE = "cell.json"
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
                                                 "that every test language has)")
    max_items_per_task: int | None = setting(16, help="first N items per task, every template (None: all)")
    eval_batch_size: int = setting(16, help="evaluation batch size")
    vocabulary: Any = setting(None, help="the seqio vocabulary of every run and evaluation, a value (gin: "
                              "transfer_matrix.vocabulary = @vocabulary()); None: bytes")
    quiet_children: bool = setting(True, help="no progress lines from the training runs")

    def normalize(self) -> None:
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
        if self.base_checkpoint and not Path(self.base_checkpoint).exists():
            c.fail("base_checkpoint", "an existing checkpoint")
        c.text("base_dir", optional=True)
        if self.base_checkpoint and self.base_dir:
            c.fail("base_dir", "None with base_checkpoint (it is where base_gin_files pretrain the base)")
        if isinstance(self.base_gin_files, str) or not isinstance(self.base_gin_files, tuple):
            c.fail("base_gin_files", "a list of gin files")
        c.wrap("model_gin", lambda: cli.resolve_gin_file(self.model_gin, [str(cli.GIN_DIR)]))
        for f in self.base_gin_files:
            c.wrap("base_gin_files", lambda f=f: cli.resolve_gin_file(f, [str(cli.GIN_DIR)]))
        for name in ("train_steps", "batch_size", "eval_batch_size"):
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
        if not (hasattr(self.vocabulary, "encode") and hasattr(self.vocabulary, "vocab_size")):
            c.fail("vocabulary", "a seqio.Vocabulary or None")
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
        # Every template the run will need, now rather than after an hour of training.
        train_tasks = meta.training_tasks(meta.DEFAULT_HELD_OUT)
        for codes in content.values():
            mode, tlang = c.wrap("template_mode", lambda codes=codes: template_setting(
                self.template_mode, self.template_lang, self.cross_template_langs, codes))
            for code in codes:
                for task in meta.tasks_for(code):
                    if task in train_tasks:
                        c.wrap("template_mode", lambda: tpl.resolve_template_lang(mode, code, task, tlang))
        for code in langs:
            mode, tlang = c.wrap("template_mode", lambda code=code: template_setting(
                self.template_mode, self.template_lang, self.cross_template_langs, (code,)))
            for task in self.eval_tasks:
                c.wrap("template_mode", lambda: tpl.resolve_template_lang(mode, code, task, tlang))

    @property
    def root(self) -> Path:
        return Path(self.results_dir) / self.name

    @property
    def base_path(self) -> Path:
        """The base model's folder: base_checkpoint, base_dir, or results_dir/name/base."""
        if self.base_checkpoint:
            return Path(self.base_checkpoint)
        return Path(self.base_dir) if self.base_dir else self.root / "base"

    def tuned_dir(self, row: str) -> Path:
        return self.root / "tuned" / row

    def eval_dir(self, row: str, lang: str) -> Path:
        return self.root / "eval" / row / lang

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


def _cell_settings(cfg: MatrixConfig, row: str, lang: str) -> dict[str, Any]:
    """What a cell's result depends on besides the checkpoint's contents; a stored cell with other settings
    (e.g. after changing max_items_per_task) is evaluated again."""
    mode, tlang = template_setting(cfg.template_mode, cfg.template_lang, cfg.cross_template_langs, (lang,))
    if row == BASE_ROW:  # relative to results/<name> when it lives there: the folder may be moved
        checkpoint = (os.path.relpath(cfg.base_path, cfg.root) if cfg.base_path.is_relative_to(cfg.root)
                      else str(cfg.base_path))
    else:
        checkpoint = str(cfg.tuned_dir(row).relative_to(cfg.root))
    return {"checkpoint": checkpoint, "tasks": list(cfg.eval_tasks), "template_mode": mode,
            "template_lang": tlang, "max_items_per_task": cfg.max_items_per_task, "split": "test"}


def _cell_done(cfg: MatrixConfig, row: str, lang: str) -> bool:
    path = cfg.eval_dir(row, lang) / CELL_FILE
    if not path.is_file():
        return False
    try:
        return json.loads(path.read_text()).get("settings") == _cell_settings(cfg, row, lang)
    except (json.JSONDecodeError, AttributeError):
        return False


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


def _ensure_base(cfg: MatrixConfig, progress: Progress) -> None:
    if cfg.base_checkpoint:
        return
    progress.say(f"pretraining the base into {cfg.base_path} (a finished base is reused, an interrupted one resumed)")
    _train(_run_config(cfg, cfg.base_gin_files, cfg.base_bindings, model_dir=str(cfg.base_path)))


def _tune(cfg: MatrixConfig, row: str, train_set: str, seed: int, progress: Progress) -> None:
    codes = split_train_set(train_set)
    mode, tlang = template_setting(cfg.template_mode, cfg.template_lang, cfg.cross_template_langs, codes)
    progress.say(f"tuning {row}: train languages {list(codes)}, templates {mode}{'/' + tlang if tlang else ''}, "
                 f"{cfg.train_steps} steps")
    # The tuning data are configured in runs/instruct.gin through these macros; the run's own settings are values.
    data = [f"TRAIN_LANGUAGES = {list(codes)!r}", f"TEMPLATE_MODE = {mode!r}", f"TEMPLATE_LANG = {tlang!r}"]
    _train(_run_config(cfg, [cfg.model_gin, "runs/instruct.gin"], [*data, *cfg.tune_bindings],
                       model_dir=str(cfg.tuned_dir(row)), init_checkpoint=str(cfg.base_path), seed=seed,
                       train_steps=cfg.train_steps, batch_size=cfg.batch_size))


def _evaluate(cfg: MatrixConfig, row: str, checkpoint: Path, lang: str, progress: Progress) -> None:
    from xlt.configs import EvalConfig
    from xlt.evaluation.evaluate import evaluate  # heavy: only when there is work

    mode, tlang = template_setting(cfg.template_mode, cfg.template_lang, cfg.cross_template_langs, (lang,))
    progress.say(f"evaluating {row} -> {lang} ({len(cfg.eval_tasks)} tasks, templates "
                 f"{mode}{'/' + tlang if tlang else ''})")
    out = cfg.eval_dir(row, lang)
    started = time.perf_counter()
    evaluate(EvalConfig(checkpoint=str(checkpoint), output_dir=str(out), languages=(lang,), tasks=cfg.eval_tasks,
                        split="test", template_mode=mode, template_lang=tlang, max_items_per_task=cfg.max_items_per_task,
                        batch_size=cfg.eval_batch_size, quiet=True, vocabulary=cfg.vocabulary),
             progress=lambda i, n, what: None)
    seconds = time.perf_counter() - started
    atomic_write_text(out / CELL_FILE, json.dumps({"row": row, "lang": lang, "settings": _cell_settings(cfg, row, lang),
                                               "seconds": seconds}, indent=1) + "\n")
    progress.finished(seconds)


def run(cfg: MatrixConfig, *, hook: Hook | None = None, out: TextIO = sys.stdout) -> dict[str, Any]:
    """Run (or resume) every missing cell, then write the matrix files; returns the matrix as a dict.

    ``hook(row, lang)`` is called before each cell that runs (tests interrupt a run through it)."""
    langs = cfg.test_languages
    plan: list[tuple[str, str | None, int | None]] = [(BASE_ROW, None, None)] + [(r, ts, s) for r, ts, s in cfg.rows()]
    total = len(plan) * len(langs)
    done = sum(_cell_done(cfg, row, lang) for row, _, _ in plan for lang in langs)
    tunes = sum(any(not _cell_done(cfg, row, lang) for lang in langs) for row, ts, _ in plan if ts is not None)
    progress = Progress(total, done, tunes, out)
    progress.say(f"transfer matrix {cfg.name!r}: {len(plan)} rows x {len(langs)} test languages -> {cfg.root}")
    if done < total:
        _ensure_base(cfg, progress)
    for row, train_set, seed in plan:
        pending = [lang for lang in langs if not _cell_done(cfg, row, lang)]
        for lang in langs:
            if lang not in pending:
                progress.say(f"skip {row} -> {lang} (done: {cfg.eval_dir(row, lang) / CELL_FILE})")
        if not pending:
            continue
        if train_set is not None:
            started = time.perf_counter()
            _tune(cfg, row, train_set, seed, progress)
            progress.tuned(time.perf_counter() - started)
        checkpoint = cfg.base_path if train_set is None else cfg.tuned_dir(row)
        for lang in langs:
            if lang in pending:
                if hook is not None:
                    hook(row, lang)
                _evaluate(cfg, row, checkpoint, lang, progress)
    matrix = build_matrix(cfg)
    write_outputs(cfg, matrix)
    progress.say(f"wrote {cfg.root / 'matrix.json'}, matrix.md, matrix_score.png, matrix_gain.png")
    print(matrix_markdown(matrix), file=out, flush=True)
    return matrix


# --------------------------------------------------------------------------------------------- aggregation
def _task_values(cfg: MatrixConfig, row: str, lang: str) -> dict[str, list[float]]:
    path = cfg.eval_dir(row, lang) / "records.json"
    values: dict[str, list[float]] = {t: [] for t in cfg.eval_tasks}
    for r in json.loads(path.read_text()):
        if r["metric"] == PRIMARY_METRIC and r["task"] in values and r["content_lang"] == lang:
            values[r["task"]].append(float(r["value"]))
    empty = [t for t, v in values.items() if not v]
    if empty:
        raise ConfigError(f"{path} has no {PRIMARY_METRIC} for task(s) {empty}; delete {path.parent} and re-run")
    return values


def _mean(xs: Sequence[float]) -> float:
    return math.fsum(xs) / len(xs)


def cell_stat(per_seed: Sequence[dict[str, list[float]]]) -> dict[str, Any]:
    """Cell statistics from one {task: per-template accuracies} dict per seed (see the module docstring): the
    report's macro average over tasks (``xlt.evaluation.report.pool``), each task's values pooled over seeds."""
    tasks = list(per_seed[0])
    pooled = {t: [v for seed in per_seed for v in seed[t]] for t in tasks}
    cell = report.pool([report.template_stat(pooled[t]) for t in tasks])
    seed_scores = [report.pool([report.template_stat(seed[t]) for t in tasks]).mean for seed in per_seed]
    return {"mean": cell.mean, "std": cell.std, "seed_std": report.template_stat(seed_scores).std,
            "seed_scores": seed_scores, "n_seeds": len(per_seed), "n_tasks": len(tasks),
            "n_values": sum(len(v) for v in pooled.values())}


def build_matrix(cfg: MatrixConfig) -> dict[str, Any]:
    """The matrix from the cells' records.json files (every cell must be done)."""
    rows = []
    base = {lang: cell_stat([_task_values(cfg, BASE_ROW, lang)]) for lang in cfg.test_languages}
    rows.append({"row": BASE_LABEL, "train_languages": [], "seeds": [], "cells": base})
    for ts in cfg.train_sets:
        cells = {}
        for lang in cfg.test_languages:
            stat = cell_stat([_task_values(cfg, f"{ts}_s{seed}", lang) for seed in cfg.seeds])
            cells[lang] = {**stat, "gain": stat["mean"] - base[lang]["mean"]}
        rows.append({"row": ts, "train_languages": list(split_train_set(ts)), "seeds": list(cfg.seeds),
                     "cells": cells})
    for r in rows:
        r["average"] = _mean([c["mean"] for c in r["cells"].values()])
    return {"name": cfg.name, "primary_metric": PRIMARY_METRIC,
            "cell": ("mean over eval_tasks of accuracy (rank classification, summed log-likelihood); each task's "
                     "value is its mean over seeds x templates. std: root mean square over tasks of the population "
                     "std over seeds x templates; seed_std: population std over seeds of the per-seed score; "
                     "gain: mean minus the base (untuned) row in the same test language"),
            "eval_tasks": list(cfg.eval_tasks), "test_languages": list(cfg.test_languages),
            "template_mode": cfg.template_mode, "template_lang": cfg.template_lang,
            "max_items_per_task": cfg.max_items_per_task, "train_steps": cfg.train_steps,
            "config": cfg.to_dict(), "rows": rows}


def matrix_markdown(matrix: dict[str, Any], digits: int = 3) -> str:
    langs = matrix["test_languages"]
    lines = [f"## Transfer matrix `{matrix['name']}` (templates: {matrix['template_mode']})", "",
             f"Cell: {matrix['cell']}. Shown: mean ± std (gain over base). Tasks: {', '.join(matrix['eval_tasks'])}; "
             f"at most {matrix['max_items_per_task']} items per task.", "",
             "| train \\ test | " + " | ".join(langs) + " | avg |",
             "| --- | " + " | ".join("---:" for _ in langs) + " | ---: |"]
    for r in matrix["rows"]:
        cells = []
        for lang in langs:
            c = r["cells"][lang]
            text = f"{c['mean']:.{digits}f} ± {c['std']:.{digits}f}"
            if "gain" in c:
                text += f" ({c['gain']:+.{digits}f})"
            cells.append(text)
        lines.append(f"| {r['row']} | " + " | ".join(cells) + f" | {r['average']:.{digits}f} |")
    return "\n".join(lines) + "\n"


def _heatmap(matrix: dict[str, Any], key: str, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    langs = matrix["test_languages"]
    rows = [r for r in matrix["rows"] if key == "mean" or r["row"] != BASE_LABEL]
    data = np.array([[r["cells"][lang][key] for lang in langs] for r in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.5 + 0.9 * len(langs)), 1.4 + 0.5 * len(rows)))
    if key == "gain":
        bound = max(float(np.abs(data).max()), 0.01)
        im = ax.imshow(data, cmap="RdBu", vmin=-bound, vmax=bound)
    else:
        bound = 0.0
        im = ax.imshow(data, cmap="viridis")
    ax.set_xticks(range(len(langs)), langs)
    ax.set_yticks(range(len(rows)), [r["row"] for r in rows])
    ax.set_xlabel("test language")
    ax.set_ylabel("train set")
    for i in range(len(rows)):
        for j in range(len(langs)):
            text = f"{data[i, j]:+.2f}" if key == "gain" else f"{data[i, j]:.2f}"
            dark = abs(data[i, j]) > 0.6 * bound if key == "gain" else True
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")
    ax.set_title(f"{matrix['name']}: {'gain over base' if key == 'gain' else matrix['primary_metric']}")
    fig.colorbar(im, ax=ax)
    fig.tight_layout()
    save_figure(fig, path)


def save_figure(fig: Any, path: Path) -> None:
    """Save a matplotlib figure to ``path`` atomically and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def write_outputs(cfg: MatrixConfig, matrix: dict[str, Any]) -> None:
    cfg.root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cfg.root / "matrix.json", json.dumps(matrix, indent=1, ensure_ascii=False) + "\n")
    atomic_write_text(cfg.root / "matrix.md", matrix_markdown(matrix))
    _heatmap(matrix, "mean", cfg.root / "matrix_score.png")
    _heatmap(matrix, "gain", cfg.root / "matrix_gain.png")


USAGE = "python -m experiments.transfer_matrix --gin_file=experiments/transfer_demo.gin [--gin.NAME=VALUE ...]"


def help_text() -> str:
    return configs.help_text(USAGE, __doc__.split("\n\n", 1)[1].split("\n\nThe cell:")[0], [MatrixConfig])


def main(argv: list[str], *, hook: Hook | None = None) -> None:
    from xlt.data import tasks  # noqa: F401 - registers `vocabulary`: transfer_matrix.vocabulary = @vocabulary()
    cli.load_gin_argv(argv, "--gin_file=experiments/transfer_demo.gin")
    logging.getLogger("absl").setLevel(logging.ERROR)  # seqio's per-task cache advice, once per tuning run
    cfg = MatrixConfig.from_gin()  # the experiment, read whole from gin; its runs are values made from it
    run(cfg, hook=hook)


if __name__ == "__main__":
    sys.exit(cli.main(main, usage=help_text))
