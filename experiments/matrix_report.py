"""The transfer matrix from its cells' folders: scores, gains, their statistics, and the files a run leaves
(``matrix.json``, ``matrix.md``, the heatmaps). ``experiments.transfer_matrix`` runs the cells and calls
``build_matrix`` and ``write_outputs``; it re-exports them.

A matrix has one or two *parts*, each a table with the untuned base as its first row:

* ``held_out``: the held-out clusters' choice tasks (``eval_tasks``) or benchmark columns, cells in
  ``eval/<row>/<column>``: zero-shot transfer of instruction tuning to unseen tasks.
* ``seen`` (when ``MatrixConfig.seen_tasks`` is set): the training clusters' tasks (all choice: accuracy; or
  all generation: each answer's chrF, averaged over items) on items tuning never read (``seen_splits``: test,
  validation), cells in ``eval_seen/<row>/<language>``: whether tuning taught the tasks it trained on (the
  positive control: a tuned row's own-language cell should be above the base) and how that carries over
  to the other languages. ``matrix.json`` keeps the held-out part at its top level (as before the seen
  part existed) and the seen part under ``"seen"``.

The cell (mean, std, seed_std, gain) is described in ``experiments.transfer_matrix``'s docstring and in
``matrix.json``'s ``cell``. Statistics per tuned cell (``statistics`` in each part), from the cells'
``predictions.jsonl`` (one line per example: its item, template and 0/1 ``correct`` for choice tasks, the
answer's ``chrf`` for generation tasks):

* ``n_items``: items compared (each scored under every template, by every seed and by the base);
* ``ci``: the 95% interval of the gain from a paired, two-level bootstrap over items stratified by task
  (seeds and templates resampled inside each item), ``p``: a paired sign-flip permutation test of the
  gain (``xlt.evaluation.significance`` says why these and how);
* ``p_adjusted`` and ``significant``: the correction for testing every tuned cell of the part at once
  (``correction``: Holm, the default, or Benjamini-Hochberg ``bh``; ``alpha`` 0.05). Each part is its own
  family: the held-out and the seen matrix answer different questions.

Every column also gets its ``chance`` level: the mean over its tasks of the mean of 1 / (number of options)
over their examples (None for generation tasks). Generation benchmark columns have no per-item values: their
statistics are None.
So are cells whose ``predictions.jsonl`` predates the per-item fields (delete the cell folder and re-run).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xlt.errors import ConfigError, DataError
from xlt.evaluation import report
from xlt.evaluation import significance as sig
from xlt.files import atomic_path, atomic_write_text

if TYPE_CHECKING:
    from experiments.transfer_matrix import MatrixConfig

PARTS = ("held_out", "seen")
CORRECTION = "holm"
ALPHA = 0.05
STAT_SEED = 0
MARK = "★"
PART_TITLES = {"held_out": "held-out clusters (zero-shot)",
               "seen": "seen clusters (the tuning tasks' items that tuning never read)"}


def _tm(cfg: MatrixConfig) -> Any:
    """The module that defined ``cfg``'s class: experiments.transfer_matrix, or ``__main__`` when it runs as
    ``python -m experiments.transfer_matrix`` (importing it again by name would execute it a second time and
    register its gin configurables twice). transfer_matrix imports this module at its top, so no import here."""
    return sys.modules[type(cfg).__module__]


def part_columns(cfg: MatrixConfig, part: str) -> list[tuple[str, str | None, str]]:
    """(column key, benchmark or None, content language) of a part's columns: the held-out part's are
    ``cfg.columns()``; the seen part has one column per test language (its built-in tasks averaged)."""
    if part == "held_out":
        return cfg.columns()
    if part == "seen":
        return [(lang, None, lang) for lang in cfg.test_languages]
    raise ConfigError(f"matrix part {part!r}; choose one of {', '.join(PARTS)}")


def _column_of(cfg: MatrixConfig, column: str, part: str) -> tuple[str | None, str]:
    for key, bench, lang in part_columns(cfg, part):
        if key == column:
            return bench, lang
    raise ConfigError(f"no column {column!r} in the {part} part: {[k for k, _, _ in part_columns(cfg, part)]}")


def _tasks(cfg: MatrixConfig, bench: str | None, part: str) -> tuple[str, ...]:
    return tuple(cfg.tasks_of(part) or (bench,))


def _task_values(cfg: MatrixConfig, row: str, column: str, part: str = "held_out") -> dict[str, list[float]]:
    """{task: its per-template values of the column's primary metric} of one cell. With one rotating template
    per item (``all_templates=False``) the templates hold different items in unequal numbers, so a task has one
    value, its item mean (the templates' values weighted by their item counts), and the cell's std is then the
    spread over seeds only."""
    bench, lang = _column_of(cfg, column, part)
    if cfg.scores_answers(part):  # a per-answer value: the predictions are its only source
        return _line_task_values(cfg, row, column, part)
    metric = _tm(cfg).primary_metric(cfg, bench, part)
    path = cfg.eval_dir(row, column, part=part) / "records.json"
    if not path.is_file():
        raise ConfigError(f"cell {row} -> {column} ({part}) has no {path}; run the experiment to finish it")
    found: dict[str, list[tuple[float, int]]] = {t: [] for t in _tasks(cfg, bench, part)}
    for r in json.loads(path.read_text()):
        if r["metric"] == metric and r["task"] in found and r["content_lang"] == lang:
            found[r["task"]].append((float(r["value"]), int(r.get("n", 1))))
    empty = [t for t, v in found.items() if not v]
    if empty:
        raise ConfigError(f"{path} has no {metric} for task(s) {empty}; delete {path.parent} and re-run")
    if getattr(cfg, "all_templates", True):
        return {t: [v for v, _ in vs] for t, vs in found.items()}
    return {t: [math.fsum(v * n for v, n in vs) / sum(n for _, n in vs)] for t, vs in found.items()}


def _line_task_values(cfg: MatrixConfig, row: str, column: str, part: str) -> dict[str, list[float]]:
    """``_task_values`` of a seen generation cell: per task, the mean over its items of each answer's chrF
    (one value per template with ``all_templates``, else one per task)."""
    got = _item_values(cfg, row, column, part)
    path = cfg.eval_dir(row, column, part=part) / "predictions.jsonl"
    if got is None:
        raise ConfigError(f"cell {row} -> {column} ({part}) has no per-answer chrF in {path}; delete {path.parent} "
                          "and re-run")
    by_task: dict[str, dict[str, list[float]]] = {}
    for (task, _), per_template in got[0].items():
        for template, value in per_template.items():
            by_task.setdefault(task, {}).setdefault(template, []).append(value)
    if getattr(cfg, "all_templates", True):
        return {t: [_mean(v) for v in per.values()] for t, per in by_task.items()}
    return {t: [_mean([x for v in per.values() for x in v])] for t, per in by_task.items()}


def _item_values(cfg: MatrixConfig, row: str, column: str, part: str
                 ) -> tuple[dict[tuple[str, str], dict[str, float]], dict[str, list[int]]] | None:
    """({(task, item): {template: value}}, {task: every example's number of options}) of one cell from its
    predictions.jsonl: the value is 0/1 ``correct`` (choice) or the answer's ``chrf`` (seen generation tasks,
    which have no options: their lists stay empty); None without per-item data (a generation benchmark
    column, or a file written before ``evaluate`` logged items)."""
    bench, lang = _column_of(cfg, column, part)
    path = cfg.eval_dir(row, column, part=part) / "predictions.jsonl"
    if not path.is_file():
        return None
    # The per-item value of the cell's own metric: a generation benchmark's F1 has none in the lines, so its
    # column gets no statistics rather than a test of another metric.
    key = "chrf" if cfg.scores_answers(part) else "correct"
    tasks = set(_tasks(cfg, bench, part))
    values: dict[tuple[str, str], dict[str, float]] = {}
    options: dict[str, list[int]] = {}
    for n, text in enumerate(path.read_text().splitlines(), 1):
        if not text.strip():
            continue
        line = json.loads(text)
        if line.get("task") not in tasks or line.get("content_lang", lang) != lang:
            continue
        if key not in line or "item" not in line:
            return None
        per_template = values.setdefault((line["task"], line["item"]), {})
        if line["template_id"] in per_template:
            raise DataError(f"{path}:{n}: item {line['item']!r} has template {line['template_id']!r} twice")
        per_template[line["template_id"]] = float(line[key])
        options.setdefault(line["task"], [])
        if "n_options" in line:
            options[line["task"]].append(int(line["n_options"]))
    if set(options) != tasks:
        return None
    return values, options


def chance_level(options: Mapping[str, Sequence[int]]) -> float | None:
    """The column's chance accuracy: mean over tasks (each weighs the same, as in the cell) of the mean
    over the task's examples of 1 / number of options; None for generation tasks (no options)."""
    if not all(options.values()):
        return None
    return math.fsum(math.fsum(1.0 / k for k in ks) / len(ks) for ks in options.values()) / len(options)


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


def _paired(cfg: MatrixConfig, row_dirs: Sequence[tuple[Any, str]], base: Mapping[tuple[str, str], Mapping[str, float]],
            column: str, part: str) -> sig.PairedCell | None:
    tuned: dict[tuple[str, str], dict[tuple[Any, str], float]] = {}
    for seed, row in row_dirs:
        got = _item_values(cfg, row, column, part)
        if got is None:
            return None
        for key, per_template in got[0].items():
            slot = tuned.setdefault(key, {})
            slot.update({(seed, t): v for t, v in per_template.items()})
    return sig.PairedCell.from_items(tuned, base)


def build_matrix(cfg: MatrixConfig, part: str = "held_out", *, correction: str = CORRECTION, alpha: float = ALPHA,
                 n_resamples: int = sig.DEFAULT_RESAMPLES, n_permutations: int = sig.DEFAULT_PERMUTATIONS,
                 seed: int = STAT_SEED, include_seen: bool = True) -> dict[str, Any]:
    """The matrix of one part from its cells' records.json and predictions.jsonl files (every cell must be
    done). The held-out part also carries the seen part under ``"seen"`` when the config has seen tasks
    (``include_seen``)."""
    tm = _tm(cfg)
    if correction not in sig.CORRECTIONS:
        raise ConfigError(f"correction {correction!r}; choose one of {', '.join(sig.CORRECTIONS)}")
    columns = [key for key, _, _ in part_columns(cfg, part)]
    tasks = tuple(cfg.tasks_of(part))
    if part == "seen" and not tasks:
        raise ConfigError("the seen part needs MatrixConfig.seen_tasks")
    base_items = {col: _item_values(cfg, tm.BASE_ROW, col, part) for col in columns}
    base = {}
    for col in columns:
        base[col] = cell_stat([_task_values(cfg, tm.BASE_ROW, col, part)])
        base[col]["n_items"] = len(base_items[col][0]) if base_items[col] else None
    rows = [{"row": tm.BASE_LABEL, "train_languages": [], "seeds": [], "cells": base}]
    tests: dict[tuple[str, str], sig.CellTest | None] = {}
    for ts in cfg.train_sets:
        cells = {}
        row_dirs = [(s, f"{ts}_s{s}") for s in cfg.seeds]
        for col in columns:
            stat = cell_stat([_task_values(cfg, row, col, part) for _, row in row_dirs])
            gain = stat["mean"] - base[col]["mean"]
            paired = None if base_items[col] is None else _paired(cfg, row_dirs, base_items[col][0], col, part)
            test = None
            if paired is not None:
                test = sig.paired_test(paired, n_resamples=n_resamples, n_permutations=n_permutations, seed=seed,
                                       key=f"{part}/{ts}/{col}")
                if abs(test.gain - gain) > 1e-9:
                    where = cfg.eval_dir(tm.BASE_ROW, col, part=part).parent.parent
                    raise DataError(f"cell {ts} -> {col} ({part}): predictions.jsonl gives a gain of {test.gain:.6f}, "
                                    f"records.json {gain:.6f}; the files are out of step: delete the row's and the "
                                    f"base's {col} folders under {where} and re-run")
            tests[(ts, col)] = test
            cells[col] = {**stat, "gain": gain, "n_items": test.n_items if test else None,
                          "ci": list(test.ci) if test else None, "p": test.p if test else None}
        spec = cfg.instruction_spec(ts)
        rows.append({"row": ts, "train_languages": list(tm.split_train_set(ts)), "seeds": list(cfg.seeds),
                     "instruction_data": spec["name"] if spec else "builtin", "cells": cells})
    decided = sig.correct(tests, correction, alpha)
    for r in rows[1:]:
        for col, c in r["cells"].items():
            got = decided[(r["row"], col)]
            c["p_adjusted"], c["significant"] = got if got is not None else (None, None)
    for r in rows:
        r["average"] = _mean([c["mean"] for c in r["cells"].values()])
    chance = {col: chance_level(base_items[col][1]) if base_items[col] else None for col in columns}
    n_tests = sum(t is not None for t in tests.values())
    statistics = {
        "interval": f"{sig.DEFAULT_CONFIDENCE:.0%} percentile interval of a paired bootstrap over items, stratified "
                    "by task (each task keeps its items' count and weight), seeds and templates resampled inside "
                    "each item (two levels; conservative: ~1.4x as wide as items alone on 0/1 data)",
        "test": "two-sided paired sign-flip permutation test of the gain on the per-item differences, tuned minus base",
        "correction": correction, "alpha": alpha, "family": f"the {n_tests} tuned cells of this part with per-item "
        "data", "n_tests": n_tests, "n_resamples": n_resamples, "n_permutations": n_permutations, "seed": seed,
        "confidence": sig.DEFAULT_CONFIDENCE, "module": "xlt.evaluation.significance"}
    if cfg.scores_answers(part):
        cell = ("mean over the seen tasks of each answer's chrF (0-1, sacrebleu's sentence chrF against the item's "
                "references), averaged over items; each task's value is its mean over seeds x items. std: root "
                "mean square over tasks of the population std over seeds; seed_std: population std over seeds of "
                "the per-seed score; gain: mean minus the base (untuned) row in the same test language")
    elif cfg.benchmarks is None or part == "seen":
        cell = ("mean over the part's tasks of accuracy (rank classification, summed log-likelihood); each task's "
                "value is its mean over seeds x templates. std: root mean square over tasks of the population "
                "std over seeds x templates; seed_std: population std over seeds of the per-seed score; "
                "gain: mean minus the base (untuned) row in the same test language")
    else:
        cell = ("the benchmark's primary metric (choice: accuracy by summed log-likelihood; generation: F1 or its "
                "first metric) in the column's language, mean over seeds x templates; std: population std over "
                "seeds x templates; seed_std: population std over seeds; gain: mean minus the base (untuned) row "
                "in the same column")
    matrix = {"name": cfg.name, "part": part, "primary_metric": tm.PRIMARY_METRIC,
              "primary_metrics": {key: tm.primary_metric(cfg, bench, part) for key, bench, _ in part_columns(cfg, part)},
              "cell": cell, "columns": columns, "benchmarks": list(cfg.benchmarks or ()) if part == "held_out" else [],
              "eval_tasks": list(tasks), "test_languages": list(cfg.test_languages),
              "template_mode": cfg.template_mode, "template_lang": cfg.template_lang,
              "max_items_per_task": cfg.max_items_per_task, "train_steps": cfg.train_steps,
              "chance": chance, "statistics": statistics}
    if part == "held_out":
        matrix["config"] = cfg.to_dict()
    matrix["rows"] = rows
    if part == "held_out" and include_seen and cfg.tasks_of("seen"):
        matrix["seen"] = build_matrix(cfg, "seen", correction=correction, alpha=alpha, n_resamples=n_resamples,
                                      n_permutations=n_permutations, seed=seed)
    return matrix


# ----------------------------------------------------------------------------------------------- markdown
def _signed(x: float, digits: int) -> str:
    return f"{x:+.{digits}f}"


def significant_cells(part: Mapping[str, Any]) -> list[tuple[str, str, float]]:
    """(train set, column, gain) of every significant cell of a part."""
    return [(r["row"], col, c["gain"]) for r in part["rows"] for col, c in r["cells"].items() if c.get("significant")]


def _table(part: Mapping[str, Any], digits: int) -> list[str]:
    langs = part["columns"]
    stats = part.get("statistics") or {}
    chance = part.get("chance") or {}
    lines = ["| train \\ test | " + " | ".join(langs) + " | avg |",
             "| --- | " + " | ".join("---:" for _ in langs) + " | ---: |"]
    if any(v is not None for v in chance.values()):
        shown = [f"{chance[lang]:.{digits}f}" if chance.get(lang) is not None else "–" for lang in langs]
        lines.append("| *chance* | " + " | ".join(shown) + " | |")
    for r in part["rows"]:
        cells = []
        for lang in langs:
            c = r["cells"][lang]
            text = f"{c['mean']:.{digits}f} ± {c['std']:.{digits}f}"
            if "gain" in c:
                gain = _signed(c["gain"], digits)
                if c.get("significant"):
                    gain = f"**{gain}** {MARK}"
                text += f" ({gain})"
                if c.get("ci") is not None:
                    text += f" [{_signed(c['ci'][0], digits)}, {_signed(c['ci'][1], digits)}]"
            cells.append(text)
        lines.append(f"| {r['row']} | " + " | ".join(cells) + f" | {r['average']:.{digits}f} |")
    lines.append("")
    if stats:
        name = {"holm": "Holm", "bh": "Benjamini-Hochberg"}.get(stats["correction"], stats["correction"])
        lines.append(f"{MARK} and bold: gain significant at α = {stats['alpha']} after the {name} correction over "
                     f"the {stats['n_tests']} tuned cells of this table ({stats['test']}; {stats['n_permutations']} "
                     f"sign flips). [low, high]: {stats['interval']}; {stats['n_resamples']} resamples, seed "
                     f"{stats['seed']}." + (" *chance*: mean over tasks of 1 / number of options."
                                           if any(v is not None for v in chance.values()) else ""))
        found = significant_cells(part)
        lines.append("Significant cells: " + (", ".join(f"{row} → {col} ({_signed(g, digits)})"
                                                       for row, col, g in found) if found else "none") + ".")
    return lines


def matrix_markdown(matrix: dict[str, Any], digits: int = 3) -> str:
    """Both parts' tables (the seen part when present), with chance levels, intervals and significance marks."""
    lines = [f"## Transfer matrix `{matrix['name']}` (templates: {matrix['template_mode']})", "",
             f"Cell: {matrix['cell']}. Shown: mean ± std (gain over base) [95% interval of the gain]. At most "
             f"{matrix['max_items_per_task']} items per task.", ""]
    parts = [matrix] + ([matrix["seen"]] if "seen" in matrix else [])
    for part in parts:
        title = PART_TITLES.get(part.get("part", "held_out"), part.get("part", ""))
        lines += [f"### {title[0].upper()}{title[1:]}: "
                  f"{', '.join(part['eval_tasks'] or part.get('benchmarks', []))}", ""]
        if part is not matrix and part.get("cell") != matrix["cell"]:  # e.g. seen generation tasks: chrF
            lines += [f"Cell: {part['cell']}.", ""]
        lines += _table(part, digits)
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


# ---------------------------------------------------------------------------------------------- heatmaps
def _heatmap(matrix: dict[str, Any], key: str, path: Path) -> None:
    """Scores (``mean``) or gains (``gain``, tuned rows) of one part; in the gain map, cells that are not
    significant are muted (washed out and hatched, the value still written) and significant ones starred."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Rectangle

    langs = matrix.get("columns", matrix["test_languages"])
    rows = [r for r in matrix["rows"] if key == "mean" or "gain" in next(iter(r["cells"].values()))]
    data = np.array([[r["cells"][lang][key] for lang in langs] for r in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(max(5.5, 1.5 + 0.9 * len(langs)), 1.6 + 0.5 * len(rows)))
    if key == "gain":
        bound = max(float(np.abs(data).max()), 0.01)
        im = ax.imshow(data, cmap="RdBu", vmin=-bound, vmax=bound)
    else:
        bound = 0.0
        im = ax.imshow(data, cmap="viridis")
    ax.set_xticks(range(len(langs)), langs, rotation=45 if matrix.get("benchmarks") else 0, ha="right"
                  if matrix.get("benchmarks") else "center")
    ax.set_yticks(range(len(rows)), [r["row"] for r in rows])
    ax.set_xlabel("test language" if not matrix.get("benchmarks") else "benchmark / language")
    ax.set_ylabel("train set")
    for i in range(len(rows)):
        for j in range(len(langs)):
            if key == "gain":
                significant = bool(rows[i]["cells"][langs[j]].get("significant"))
                text = f"{data[i, j]:+.2f}" + (MARK if significant else "")
                if not significant:
                    ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="white", alpha=0.75, hatch="///",
                                           edgecolor="0.7", linewidth=0))
                dark = significant and abs(data[i, j]) > 0.6 * bound
            else:
                text, dark = f"{data[i, j]:.2f}", True
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")
    part = PART_TITLES.get(matrix.get("part", "held_out"), "")
    if key == "gain":
        stats = matrix.get("statistics") or {}
        title = f"{matrix['name']}, {part}: gain over base"
        if stats:
            title += f"\n{MARK} significant ({stats['correction']}, α={stats['alpha']}); hatched: not"
    else:
        title = f"{matrix['name']}, {part}: {matrix['primary_metric']}"
    ax.set_title(title, fontsize=8)
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
    """matrix.json (the held-out part at the top, the seen part under "seen"), matrix.md (both tables),
    matrix_score.png / matrix_gain.png and, with a seen part, matrix_seen_score.png / matrix_seen_gain.png."""
    cfg.root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cfg.root / "matrix.json", json.dumps(matrix, indent=1, ensure_ascii=False) + "\n")
    atomic_write_text(cfg.root / "matrix.md", matrix_markdown(matrix))
    _heatmap(matrix, "mean", cfg.root / "matrix_score.png")
    _heatmap(matrix, "gain", cfg.root / "matrix_gain.png")
    if "seen" in matrix:
        _heatmap(matrix["seen"], "mean", cfg.root / "matrix_seen_score.png")
        _heatmap(matrix["seen"], "gain", cfg.root / "matrix_seen_gain.png")


# ------------------------------------------------------------------------------------------- replication
def replication(first: Mapping[str, Any], second: Mapping[str, Any]) -> dict[str, Any]:
    """Whether a second run of the same experiment (other seeds) reproduces the first: for every cell that is
    significant in either run (each part separately), its gain and adjusted p in both and whether the signs
    agree. Both matrices must have the same parts, rows and columns."""
    cells: list[dict[str, Any]] = []
    for part, a, b in (("held_out", first, second), ("seen", first.get("seen"), second.get("seen"))):
        if (a is None) != (b is None):
            raise ConfigError(f"the two matrices do not have the same parts ({part} in only one)")
        if a is None:
            continue
        shape = [(r["row"], sorted(r["cells"])) for r in a["rows"]]
        if shape != [(r["row"], sorted(r["cells"])) for r in b["rows"]]:
            raise ConfigError(f"the two matrices' {part} parts have different rows or columns")
        for ra, rb in zip(a["rows"][1:], b["rows"][1:]):
            for col in a["columns"]:
                ca, cb = ra["cells"][col], rb["cells"][col]
                if not (ca.get("significant") or cb.get("significant")):
                    continue
                cells.append({"part": part, "row": ra["row"], "column": col,
                              "gain": [ca["gain"], cb["gain"]], "p_adjusted": [ca["p_adjusted"], cb["p_adjusted"]],
                              "significant": [bool(ca["significant"]), bool(cb["significant"])],
                              "same_sign": (ca["gain"] > 0) == (cb["gain"] > 0) and ca["gain"] != 0 != cb["gain"]})
    both = [c for c in cells if all(c["significant"])]
    return {"cells": cells, "significant": [sum(c["significant"][i] for c in cells) for i in (0, 1)],
            "significant_in_both": len(both), "same_sign": sum(c["same_sign"] for c in cells),
            "first_significant_same_sign": sum(c["same_sign"] for c in cells if c["significant"][0])}


def replication_markdown(rep: Mapping[str, Any], digits: int = 3) -> str:
    lines = ["| part | train → test | gain, run 1 | gain, run 2 | adj. p, run 1 | adj. p, run 2 | same sign |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    for c in rep["cells"]:
        g = [f"{_signed(x, digits)}{' ' + MARK if s else ''}" for x, s in zip(c["gain"], c["significant"])]
        lines.append(f"| {c['part']} | {c['row']} → {c['column']} | {g[0]} | {g[1]} | {c['p_adjusted'][0]:.4f} | "
                     f"{c['p_adjusted'][1]:.4f} | {'yes' if c['same_sign'] else '**no**'} |")
    n1, n2 = rep["significant"]
    lines += ["", f"Significant: {n1} cells in run 1, {n2} in run 2, {rep['significant_in_both']} in both; of run 1's, "
              f"{rep['first_significant_same_sign']} have the same sign in run 2."]
    return "\n".join(lines) + "\n"
