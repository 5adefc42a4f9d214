"""lm-evaluation-harness tasks as xlt benchmarks: ``lm_eval:<task>`` in ``EvalConfig.benchmarks``,
``MatrixConfig.benchmarks`` and ``TrainConfig.eval_benchmarks``.

A harness task keeps the harness's own prompt, split and metrics (the numbers compare with published ones),
so it is not rendered through xlt's templates: ``HarnessBenchmark`` answers the registry's questions (name,
language, kind, metrics, checks) from the task's YAML config without reading any data, and ``evaluate``
runs the harness itself (``lm_eval.simple_evaluate`` through ``xlt.harness.run_harness_tasks``) on the model
already loaded by the evaluator, wrapped in ``xlt.harness.XltLM`` exactly as ``lm_eval --model xlt`` wraps a
checkpoint: the same tokenizer lookup, context length and request handling, hence the same numbers.

* Source: ``benchmark_sources['lm_eval:<task>']`` is a directory of task YAML files (lm-eval's
  ``--include_path``: local tasks, offline; a ``gs://`` directory is downloaded once per process, and the
  URL is what results record); without one the task is looked up among lm-eval's built-in
  tasks (their data come from the Hugging Face hub when run). Groups, tags and Python-class tasks are
  refused in one line (name the group's tasks: ``lm_eval:xnli_de``, ...).
* Language: the task name's last part (``xnli_de`` -> de, ``belebele_kor_Hang`` -> ko, ``..._korean`` ->
  ko); a name without one takes the language it is evaluated in (``EvalConfig.languages`` with one entry,
  ``MatrixConfig.benchmark_languages``).
* Records: one per harness metric (``acc``, ``acc_norm``, ``exact_match,strict-match`` keeps a filter other
  than ``none``), value = the harness's aggregate, ``template_id`` ``lm_eval`` (the harness's one prompt),
  ``template_lang`` = ``content_lang``. The primary metric is the task's first metric (first filter).
* Predictions: one line per document with ``id`` (``<name>/<lang>/<split>/<doc_id>/lm_eval``), ``item``
  (the id without the template), ``task``, ``content_lang``, ``template_id``, ``metric`` / ``value`` (the
  document's value of the primary metric), ``values`` (every per-document metric), ``prediction``, ``gold``
  and, for multiple-choice tasks whose primary metric is 0/1 (``acc``), ``n_options`` and ``correct``, as
  xlt's own choice lines.
* ``max_items_per_task`` is the harness's ``limit`` (its first N documents); template modes do not apply.
"""

from __future__ import annotations

import difflib
import functools
import json
import logging
import math
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xlt import paths
from xlt.errors import ConfigError
from xlt.instruct.meta import CHOICE, GENERATION

log = logging.getLogger(__name__)

PREFIX = "lm_eval:"
TEMPLATE_ID = "lm_eval"  # the harness's one prompt per task
CLUSTER = "lm_eval"
# lm-eval's default metrics of a task without a metric_list (lm_eval.api.task.ConfigurableTask).
DEFAULT_METRICS = {"multiple_choice": ("acc", "acc_norm"), "loglikelihood": ("perplexity", "acc"),
                   "loglikelihood_rolling": ("word_perplexity", "byte_perplexity", "bits_per_byte"),
                   "generate_until": ("exact_match",)}
KINDS = {"multiple_choice": CHOICE, "generate_until": GENERATION, "loglikelihood": "loglikelihood",
         "loglikelihood_rolling": "loglikelihood_rolling"}


def is_harness_name(name: Any) -> bool:
    return isinstance(name, str) and name.startswith(PREFIX)


def is_harness(bench: Any) -> bool:
    return isinstance(bench, HarnessBenchmark)


def infer_language(task: str) -> str | None:
    """The xlt language code a task name ends in: ``xnli_de``, ``belebele_kor_Hang`` (ISO 639-3 + script),
    ``include_base_44_korean`` (English name); None when the last part names no language."""
    from xlt.data import languages

    parts = task.split("_")
    if len(parts) >= 3 and len(parts[-1]) == 4 and parts[-1].istitle():  # a script suffix (kor_Hang)
        parts = parts[:-1]
    if len(parts) < 2:
        return None
    last = parts[-1].lower()
    if last in languages.LANGUAGES:
        return last
    found = languages.from_iso639_3(last)
    if found:
        return found
    return next((code for code, lang in languages.LANGUAGES.items() if lang.name.lower() == last), None)


@functools.lru_cache(maxsize=8)
def task_manager(include_path: str | None = None) -> Any:
    """lm-eval's task index: the tasks of one include directory only (fast: lm-eval's own ~15,000 YAML
    files are not indexed), or lm-eval's built-in tasks (indexed once per process: seconds)."""
    try:
        from lm_eval.tasks import TaskManager
    except ImportError as e:
        raise ConfigError("lm_eval: benchmarks need lm-evaluation-harness: pip install -e '.[harness]'") from e
    logging.getLogger("lm_eval").setLevel(logging.ERROR)  # its per-task notes would repeat at every evaluation
    if include_path is None:
        return TaskManager()
    return TaskManager(include_path=[include_path], include_defaults=False)


@functools.lru_cache(maxsize=256)
def _task_config(task: str, include_path: str | None) -> dict[str, Any]:
    """The task's merged YAML config (includes resolved, functions not imported)."""
    from lm_eval.tasks._index import Kind
    from lm_eval.tasks._yaml_loader import load_yaml

    manager = task_manager(include_path)
    entry = manager.task_index.get(task)
    where = f"in {include_path}" if include_path else "among lm-eval's tasks"
    if entry is None:
        close = difflib.get_close_matches(task, manager.all_subtasks, n=4)
        raise ConfigError(f"unknown lm-eval task {task!r} {where}" + (f"; close: {', '.join(close)}" if close else ""))
    if entry.kind in (Kind.GROUP, Kind.TAG):
        raise ConfigError(f"lm-eval {entry.kind.name.lower()} {task!r} names several tasks; give its tasks one by one "
                          f"(lm_eval:<task>)")
    if entry.kind != Kind.TASK or entry.yaml_path is None:
        raise ConfigError(f"lm-eval task {task!r} is not a YAML task (xlt reads its output type and metrics from "
                          "the YAML config)")
    try:
        cfg = dict(load_yaml(entry.yaml_path, resolve_func=False, recursive=True))
    except Exception as e:  # noqa: BLE001 - a broken YAML file of the user's, one line
        raise ConfigError(f"lm-eval task {task!r}: cannot read {entry.yaml_path}: {str(e).splitlines()[0]}") from e
    return cfg


class HarnessBenchmark:
    """One lm-eval task behind the attributes of a registry benchmark (see the module docstring)."""

    builtin = False
    harness = True
    cluster = CLUSTER
    format = TEMPLATE_ID
    default_split = None

    def __init__(self, name: str, source: str | None = None):
        if not is_harness_name(name) or not name[len(PREFIX):].strip():
            raise ConfigError(f"a harness benchmark is named {PREFIX}<task>, got {name!r}")
        include = None  # the local directory lm-eval indexes: the source, or a bucket source's local copy
        if source is not None:
            if not isinstance(source, str) or not source.strip() or not paths.path(source).is_dir():
                raise ConfigError(f"{name}: source must be a directory of lm-eval task YAML files, got {source!r}")
            if paths.is_url(source):  # lm-eval reads local YAML files: the directory is downloaded once per process
                include = str(paths.downloaded(source))
            else:
                source = include = str(Path(source).resolve())
        self.name, self.task, self.source, self._include = name, name[len(PREFIX):], source, include
        cfg = _task_config(self.task, include)
        self.output_type = str(cfg.get("output_type") or "")
        if self.output_type not in KINDS:
            raise ConfigError(f"lm-eval task {self.task!r}: output_type {self.output_type!r} is not one of "
                              f"{', '.join(KINDS)}")
        self.kind = KINDS[self.output_type]
        names = [str(m.get("metric")) if isinstance(m, dict) else str(m) for m in cfg.get("metric_list") or []]
        names = names or list(DEFAULT_METRICS[self.output_type])
        filters = [str(f.get("name")) for f in cfg.get("filter_list") or [] if isinstance(f, dict)] or ["none"]
        self.metrics = tuple(m if f == "none" else f"{m},{f}" for f in filters for m in names)
        self.primary_metric = self.metrics[0]
        self.split = str(cfg.get("test_split") or cfg.get("validation_split") or "test")
        self.splits = (self.split,)
        self.language = infer_language(self.task)
        self.configs = {self.language: self.task} if self.language else {}
        self.description = f"lm-evaluation-harness task {self.task} (its own prompt and metrics)"

    def __repr__(self) -> str:
        return f"HarnessBenchmark(name={self.name!r}, source={self.source!r})"

    @property
    def languages(self) -> tuple[str, ...]:
        return (self.language,) if self.language else ()

    @property
    def template_languages(self) -> tuple[str, ...]:
        return self.languages

    def language_for(self, languages: Sequence[str]) -> str:
        """The one language it is evaluated in: its name's, else the only one of ``languages``."""
        if self.language is not None:
            return self.language
        if len(languages) != 1:
            raise ConfigError(f"{self.name}: its name names no language; evaluate it with exactly one language "
                              f"(got {list(languages)})")
        return languages[0]

    def check_language(self, lang: str) -> str:
        from xlt.data import languages

        languages.validate(lang)
        if self.language is not None and lang != self.language:
            raise ConfigError(f"{self.name} is in {self.language!r} (its name), not {lang!r}")
        return lang

    def check_split(self, split: str | None) -> str:
        if split is not None and split != self.split:
            raise ConfigError(f"{self.name} is evaluated on the harness's split {self.split!r}, not {split!r}")
        return self.split

    def check(self, lang: str, split: str | None = None, **template_settings: Any) -> tuple[str, str]:
        """As ``Benchmark.check``: the language and split (template settings do not apply: the harness prompt)."""
        del template_settings
        return self.check_split(split), self.check_language(lang)

    def examples(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        raise ConfigError(f"{self.name} is run by lm-evaluation-harness; it has no xlt examples")

    # ----------------------------------------------------------------------------------------- running
    def evaluate(self, evaluator: Any, lang: str, *,
                 limit: int | None = None) -> tuple[list[dict[str, Any]], list[str]]:
        """Run the task on ``evaluator``'s model (``xlt.evaluation.evaluate.Evaluator``); returns (records,
        prediction lines). Python's, NumPy's and torch's global random states are restored afterwards
        (``simple_evaluate`` seeds them), so a training run's state is untouched."""
        from xlt import harness

        lm = harness.lm_from_evaluator(evaluator)
        with _kept_random_state():
            out = harness.run_harness_tasks(lm, [self.task], limit=limit, log_samples=True,
                                            task_manager=task_manager(self._include))
        raw = out["raw"]
        results = out["results"].get(self.task, {})
        n = int((raw.get("n-samples", {}).get(self.task) or {}).get("effective") or 0)
        samples = raw.get("samples", {}).get(self.task, [])
        n = n or len({s["doc_id"] for s in samples})
        base = dict(task=self.name, cluster=CLUSTER, kind=self.kind, content_lang=lang, template_lang=lang,
                    template_id=TEMPLATE_ID, n=n)
        records = []
        for metric, value in results.items():
            if metric in ("name", "sample_len", "alias") or "_stderr" in metric:
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(float(value)):
                log.warning("%s: metric %s = %r is not a finite number; not recorded", self.name, metric, value)
                continue
            records.append({**base, "metric": metric, "value": float(value)})
        return records, self._prediction_lines(samples, lang)

    def _prediction_lines(self, samples: list[dict[str, Any]], lang: str) -> list[str]:
        docs: dict[int, dict[str, Any]] = {}
        for s in samples:  # one sample per (document, filter)
            doc = docs.setdefault(int(s["doc_id"]), {"values": {}, "sample": s})
            filt = s.get("filter", "none")
            for m in s.get("metrics", []):
                v = s.get(m)
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    doc["values"][m if filt == "none" else f"{m},{filt}"] = float(v)
        lines = []
        for doc_id in sorted(docs):
            s, values = docs[doc_id]["sample"], docs[doc_id]["values"]
            uid = f"{self.name}/{lang}/{self.split}/{doc_id}/{TEMPLATE_ID}"
            value = values.get(self.primary_metric)
            line = {"id": uid, "item": uid.rsplit("/", 1)[0], "task": self.name, "content_lang": lang,
                    "template_id": TEMPLATE_ID, "prediction": _prediction(self.output_type, s.get("filtered_resps")),
                    "gold": s.get("target"), "metric": self.primary_metric, "value": value, "values": values}
            if self.kind == CHOICE and value in (0.0, 1.0):  # as xlt's choice lines: the paired bootstrap's input
                line.update(n_options=len(s.get("arguments") or ()), correct=int(value))
            lines.append(json.dumps(line, ensure_ascii=False, default=_plain))
        return lines


def _prediction(output_type: str, resps: Any) -> Any:
    """What the model answered: the chosen option (highest log-likelihood), the generation, or the scores."""
    if output_type == "multiple_choice" and resps:
        lls = [float(r[0]) if isinstance(r, (list, tuple)) else float(r) for r in resps]
        return max(range(len(lls)), key=lambda i: lls[i])
    if isinstance(resps, (list, tuple)) and len(resps) == 1:
        return resps[0]
    return resps


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


class _kept_random_state:
    """Save and restore the global random states lm-eval seeds (Python, NumPy, torch if imported)."""

    def __enter__(self):
        import sys

        import numpy as np

        self._py, self._np = random.getstate(), np.random.get_state()
        torch = sys.modules.get("torch")
        self._torch = (torch, torch.get_rng_state()) if torch is not None else None
        return self

    def __exit__(self, *exc):
        import numpy as np

        random.setstate(self._py)
        np.random.set_state(self._np)
        if self._torch is not None:
            self._torch[0].set_rng_state(self._torch[1])
        return False


def get(name: str, source: str | None = None) -> HarnessBenchmark:
    """The harness benchmark ``lm_eval:<task>`` (``source``: a directory of task YAML files)."""
    return HarnessBenchmark(name, source)


__all__ = ["PREFIX", "HarnessBenchmark", "get", "infer_language", "is_harness", "is_harness_name", "task_manager"]
