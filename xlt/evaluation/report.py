"""Aggregation of evaluation scores into per-task, per-cluster and per-language tables (JSON and Markdown).

Input: one record per task x language setting x template x metric, with the fields
`task, cluster, kind, content_lang, template_lang, template_id, metric, value, n` (`n`: examples scored).
A language setting is the pair (content_lang, template_lang): Korean examples with Korean templates and
Korean examples with English templates are different columns ("ko" and "ko/en").

Levels, each per metric and per language setting:
  * task: mean and standard deviation of `value` over the task's templates; n_templates, n_examples (the
    sum of `n` over templates).
  * cluster: the mean of its tasks' means (every task weighs the same, as held-out cluster results of T0 and
    BLOOMZ are reported) and, as its spread, the root mean square of the tasks' template standard
    deviations, sqrt(mean of task variances): the typical sensitivity to the template within the cluster.
    The standard deviation of all (task, template) values would mix in how much the tasks differ in
    difficulty, which is not template variation.
  * language ("all" row): the same over every task with that metric, whatever its cluster.
Metrics are never averaged together (accuracy and ROUGE-L of one cluster stay separate rows).

Standard deviation is the population one (ddof = 0): the templates are the whole fixed set that was run,
the value is defined (0) for a task with a single template, and it does not blow up for two templates.
With k templates it is sqrt((k - 1) / k) times the sample std, i.e. it understates the spread of the
distribution that the templates were drawn from when k is small.

Validation: records must have exactly these fields, valid language codes, a finite number as value and a
positive integer n; a (task, content_lang, template_lang, template_id, metric) seen twice, a task in two
clusters or of two kinds, or no records at all raise ConfigError.

`Report.write_json` writes through a temporary file in the target directory and renames it, so a reader
never sees half a file; `Report.to_markdown` gives one table per metric, rows cluster/task, columns language
settings, cells "mean ± std"; cells averaging fewer tasks than their row has are marked "[k/K]".
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from xlt.data import languages
from xlt.errors import ConfigError, DataError
from xlt.files import atomic_write_text

STD_NOTE = (
    "task: mean and population std (ddof=0) over templates; cluster and language: mean of task means and "
    "sqrt(mean of task variances)"
)
Setting = tuple[str, str]  # (content_lang, template_lang)


@dataclass(frozen=True)
class Record:
    """One score: a metric of one task, language setting and template."""

    task: str
    cluster: str
    kind: str
    content_lang: str
    template_lang: str
    template_id: str
    metric: str
    value: float
    n: int

    @classmethod
    def from_mapping(cls, row: Mapping[str, Any], position: int = 0) -> Record:
        """Validated record from a dict; `position` only labels error messages."""
        where = f"record {position}"
        if not isinstance(row, Mapping):
            raise ConfigError(f"{where} must be a mapping with fields {', '.join(FIELDS)}, got {type(row).__name__}")
        missing = [f for f in FIELDS if f not in row]
        unknown = sorted(str(k) for k in row if k not in FIELDS)
        if missing or unknown:
            problems = [f"missing fields {missing}"] * bool(missing) + [f"unknown fields {unknown}"] * bool(unknown)
            raise ConfigError(f"{where} has {' and '.join(problems)}; record fields: {', '.join(FIELDS)}")
        for name in ("task", "cluster", "kind", "metric"):
            if not isinstance(row[name], str) or not row[name].strip():
                raise ConfigError(f"{where}: {name} must be a non-empty string, got {row[name]!r}")
        for name in ("content_lang", "template_lang"):
            try:
                languages.validate(row[name])
            except DataError as err:
                raise ConfigError(f"{where}: {name}: {err}") from None
        template_id = row["template_id"]
        if isinstance(template_id, bool) or not isinstance(template_id, (str, int)) or str(template_id) == "":
            raise ConfigError(f"{where}: template_id must be a non-empty string or an integer, got {template_id!r}")
        value = row["value"]
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ConfigError(f"{where}: value must be a finite number, got {value!r}")
        n = row["n"]
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ConfigError(f"{where}: n must be a positive integer (examples scored), got {n!r}")
        return cls(
            row["task"], row["cluster"], row["kind"], row["content_lang"], row["template_lang"], str(template_id),
            row["metric"], float(value), int(n),
        )  # fmt: skip

    @property
    def setting(self) -> Setting:
        return (self.content_lang, self.template_lang)


FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Record))


@dataclass(frozen=True)
class Stat:
    """Mean and spread of one cell, with how many tasks, templates and examples went into it."""

    mean: float
    std: float
    n_tasks: int
    n_templates: int
    n_examples: int


def setting_label(setting: Setting) -> str:
    """Column name: "ko" for Korean content with Korean templates, "ko/en" for English templates."""
    content, template = setting
    return content if content == template else f"{content}/{template}"


def _setting_order(setting: Setting) -> tuple[str, bool, str]:
    return (setting[0], setting[0] != setting[1], setting[1])


def template_stat(values: list[float], examples: int = 0) -> Stat:
    """Mean and population std of one task's per-template values."""
    mean = math.fsum(values) / len(values)
    var = math.fsum((v - mean) ** 2 for v in values) / len(values)
    return Stat(mean, math.sqrt(var), 1, len(values), examples)


def pool(stats: list[Stat]) -> Stat:
    """Macro average of task cells: mean of means, sqrt of the mean variance, summed counts (also the cell of
    ``experiments.transfer_matrix``, where a task's values are its templates of every seed)."""
    return Stat(
        math.fsum(s.mean for s in stats) / len(stats),
        math.sqrt(math.fsum(s.std**2 for s in stats) / len(stats)),
        sum(s.n_tasks for s in stats),
        sum(s.n_templates for s in stats),
        sum(s.n_examples for s in stats),
    )


class Report:
    """Aggregated results; build with `aggregate(records)`.

    tasks:     {(cluster, task, metric): {setting: Stat}}
    clusters:  {(cluster, metric): {setting: Stat}}
    languages: {metric: {setting: Stat}}
    """

    def __init__(self, records: Iterable[Mapping[str, Any] | Record]) -> None:
        if isinstance(records, (str, bytes, Mapping)) or not isinstance(records, Iterable):
            raise ConfigError(f"records must be a list of records, got {type(records).__name__}")
        rows = [Record.from_mapping(asdict(r) if isinstance(r, Record) else r, i) for i, r in enumerate(records)]
        if not rows:
            raise ConfigError("no records to report")
        self.records: tuple[Record, ...] = tuple(rows)
        self.kinds: dict[str, str] = {}
        self.task_cluster: dict[str, str] = {}
        seen: set[tuple[str, str, str, str, str]] = set()
        cells: dict[tuple[str, str, str], dict[Setting, list[Record]]] = defaultdict(lambda: defaultdict(list))
        for r in rows:
            key = (r.task, r.content_lang, r.template_lang, r.template_id, r.metric)
            if key in seen:
                raise ConfigError(f"duplicate record for task {r.task!r}, {setting_label(r.setting)}, "
                                  f"template {r.template_id!r}, metric {r.metric!r}")  # fmt: skip
            seen.add(key)
            for table, value, what in ((self.task_cluster, r.cluster, "cluster"), (self.kinds, r.kind, "kind")):
                if table.setdefault(r.task, value) != value:
                    raise ConfigError(f"task {r.task!r} has two {what}s: {table[r.task]!r} and {value!r}")
            cells[(r.cluster, r.task, r.metric)][r.setting].append(r)
        self.settings: tuple[Setting, ...] = tuple(sorted({r.setting for r in rows}, key=_setting_order))
        self.tasks: dict[tuple[str, str, str], dict[Setting, Stat]] = {
            key: {s: template_stat([r.value for r in rs], sum(r.n for r in rs)) for s, rs in by_setting.items()}
            for key, by_setting in sorted(cells.items())
        }
        self.clusters = self._pool_by(lambda cluster, task, metric: (cluster, metric))
        self.languages = self._pool_by(lambda cluster, task, metric: metric)

    def _pool_by(self, group: Any) -> dict[Any, dict[Setting, Stat]]:
        grouped: dict[Any, dict[Setting, list[Stat]]] = defaultdict(lambda: defaultdict(list))
        for key, by_setting in self.tasks.items():
            for setting, stat in by_setting.items():
                grouped[group(*key)][setting].append(stat)
        return {k: {s: pool(stats) for s, stats in v.items()} for k, v in sorted(grouped.items())}

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(self.languages)

    # ------------------------------------------------------------------------------------------ output
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready rows per level (flat lists, one row per cell, easy to load into a data frame)."""

        def row(head: dict[str, str], setting: Setting, stat: Stat) -> dict[str, Any]:
            return {**head, "content_lang": setting[0], "template_lang": setting[1], **asdict(stat)}

        return {
            "std": STD_NOTE,
            "n_records": len(self.records),
            "tasks": [
                row({"cluster": c, "task": t, "kind": self.kinds[t], "metric": m}, s, stat)
                for (c, t, m), cells in self.tasks.items()
                for s, stat in sorted(cells.items(), key=lambda item: _setting_order(item[0]))
            ],
            "clusters": [
                row({"cluster": c, "metric": m}, s, stat)
                for (c, m), cells in self.clusters.items()
                for s, stat in sorted(cells.items(), key=lambda item: _setting_order(item[0]))
            ],
            "languages": [
                row({"metric": m}, s, stat)
                for m, cells in self.languages.items()
                for s, stat in sorted(cells.items(), key=lambda item: _setting_order(item[0]))
            ],
        }

    def write_json(self, path: str | os.PathLike[str]) -> Path:
        """Write `to_dict()` to `path` atomically (temporary file in the same directory, then rename)."""
        from xlt import paths
        target = paths.path(path)  # a local path or a URL
        if target.is_dir():
            raise ConfigError(f"report path {target} is a directory; give a file name such as {target / 'report.json'}")
        target.parent.mkdir(parents=True, exist_ok=True)
        return atomic_write_text(target, json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False)
                                 + "\n")

    def to_markdown(self, digits: int = 3) -> str:
        """One table per metric: rows "all", then each cluster and its tasks; columns language settings."""
        if isinstance(digits, bool) or not isinstance(digits, int) or not 0 <= digits <= 10:
            raise ConfigError(f"digits must be an integer from 0 to 10, got {digits!r}")
        lines = [
            "Cells: mean ± std over templates (population std). Cluster and **all** rows: mean of the task means "
            "± root mean square of the task stds; [k/K]: only k of the row's K tasks have this column. "
            "Column x/y: content in x, templates in y.",
        ]
        for metric in self.metrics:
            settings = [s for s in self.settings if s in self.languages[metric]]
            lines += ["", f"### {metric}", "",
                      "| cluster | task | " + " | ".join(setting_label(s) for s in settings) + " |",
                      "| --- | --- | " + " | ".join("---:" for _ in settings) + " |"]  # fmt: skip
            tasks_of = [(c, t) for (c, t, m) in self.tasks if m == metric]
            rows: list[tuple[str, str, int, dict[Setting, Stat]]] = [
                ("**all**", "", len(tasks_of), self.languages[metric])
            ]
            for (cluster, m), cells in self.clusters.items():
                if m == metric:
                    names = [t for c, t in tasks_of if c == cluster]
                    rows.append((f"**{_escape(cluster)}**", "**all**", len(names), cells))
                    rows += [(_escape(cluster), _escape(t), 1, self.tasks[(cluster, t, metric)]) for t in names]
            for first, second, n_tasks, cells in rows:
                shown = [_cell(cells.get(s), n_tasks, digits) for s in settings]
                lines.append(f"| {first} | {second} | " + " | ".join(shown) + " |")
        return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _cell(stat: Stat | None, n_tasks: int, digits: int) -> str:
    if stat is None:
        return "–"
    text = f"{stat.mean:.{digits}f} ± {stat.std:.{digits}f}"
    return text if stat.n_tasks == n_tasks else f"{text} [{stat.n_tasks}/{n_tasks}]"


def aggregate(records: Iterable[Mapping[str, Any] | Record]) -> Report:
    """Validate records and aggregate them per task, cluster and language (see the module docstring)."""
    return Report(records)
