"""Ablations over the transfer matrix: ``python -m experiments.ablation --gin_file=experiments/ablation_templates.gin``.

An ablation is one transfer-matrix experiment (``experiment_gin``) run once per *variant*, a named set of gin
bindings applied on top of it (a base-model mixture, a template strategy, ...). Variant ``v`` of ablation ``a``
writes the usual matrix files to ``results/a/v/`` (``experiments.transfer_matrix``: resumable cell by cell), then
the ablation writes the side-by-side comparison to ``results/a/``:

* ``summary.json`` / ``summary.md``: per variant and train set, the score averaged over test languages and its
  gain over that variant's own untuned base, split into the *in-language* cells (test language among the train
  languages) and the *cross-lingual* cells (the others) -- the transfer gap the study is about; plus the full
  per-test-language gains side by side.
* ``summary_gain.png``: the variants' gain heatmaps next to each other on one colour scale.

Every variant's configuration is read and validated before the first one runs.
"""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TextIO

from experiments import transfer_matrix as tm
from xlt import cli, configs
from xlt.configs import setting
from xlt.errors import ConfigError, XltError
from xlt.files import atomic_write_text


@configs.register_gin
@dataclass(frozen=True, kw_only=True)
class AblationConfig(configs.RunConfig):
    """The ablation: ``run(config, variant_configs(config))``; gin: ``ablation.<field>``."""

    gin_name: ClassVar[str] = "ablation"

    name: str = setting(help="the ablation's folder: results_dir/name")
    experiment_gin: tuple[str, ...] = setting(help="gin files of one transfer matrix (experiments.transfer_matrix)")
    variants: Mapping[str, tuple[str, ...]] = setting(
        help="{variant: {'configurable.parameter': value}} in order, e.g. {'fixed_en': "
        "{'transfer_matrix.template_mode': 'fixed', 'transfer_matrix.template_lang': 'en'}}; values are gin "
        "literals of the ablation's file (its macros can be shared); kept as 'NAME = VALUE' bindings")
    results_dir: str = setting("results", help="parent folder of the ablation's folder")
    description: str = setting("", help="a sentence for summary.md")

    def normalize(self) -> None:
        if not isinstance(self.variants, Mapping):
            return
        out = {}
        for variant, bindings in self.variants.items():
            if isinstance(bindings, Mapping) and all(isinstance(k, str) and "." in k for k in bindings):
                bindings = tuple(f"{k} = {_literal(v)}" for k, v in bindings.items())
            out[variant] = bindings
        object.__setattr__(self, "variants", out)

    def validate(self) -> None:
        c = configs.Check(self)
        c.directory_name("name")
        if isinstance(self.experiment_gin, str) or not isinstance(self.experiment_gin, tuple) or not self.experiment_gin:
            c.fail("experiment_gin", "a non-empty list of gin files")
        if not isinstance(self.variants, Mapping) or len(self.variants) < 2:
            raise ConfigError("AblationConfig.variants must map at least two variant names to lists of gin bindings")
        for variant, bindings in self.variants.items():
            if not isinstance(variant, str) or not variant or "/" in variant or variant.startswith("."):
                raise ConfigError(f"AblationConfig.variants: variant name {variant!r} must be a plain directory name")
            if not isinstance(bindings, tuple) or any(not isinstance(b, str) or "=" not in b for b in bindings):
                raise ConfigError(f"AblationConfig.variants: variant {variant!r}: give a dict of "
                                  "{'configurable.parameter': value}")
        c.text("results_dir")
        if not isinstance(self.description, str):
            c.fail("description", "a string")


def _literal(value: Any) -> str:
    """A gin literal for a value parsed from gin (gin's lists and tuples come back as Python ones)."""
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_literal(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    if value is None or isinstance(value, (str, int, float, bool)):
        return repr(value)
    raise ConfigError(f"ablation variant value {value!r}: use strings, numbers, booleans, None, lists or tuples")


def variant_configs(spec: AblationConfig, search: Sequence[str] = (str(cli.GIN_DIR),)) -> dict[str, tm.MatrixConfig]:
    """Each variant's validated MatrixConfig (results in results_dir/<ablation>/<variant>): the experiment's gin
    files with the variant's bindings, read into a value."""
    out = {}
    for variant, bindings in spec.variants.items():
        try:
            cli.load_gin(spec.experiment_gin, bindings, search)
            out[variant] = tm.MatrixConfig.from_gin(name=variant, results_dir=str(Path(spec.results_dir) / spec.name))
        except XltError as e:  # a bad language code is a DataError; in a variant it is a configuration error
            raise ConfigError(f"variant {variant!r}: {str(e).splitlines()[0]}") from e
    return out


# ------------------------------------------------------------------------------------------------- summary
def _split_cells(row: Mapping[str, Any], test_languages: Sequence[str]) -> tuple[list[str], list[str]]:
    own = set(row["train_languages"])
    return [lang for lang in test_languages if lang in own], [lang for lang in test_languages if lang not in own]


def _avg(row: Mapping[str, Any], langs: Sequence[str], key: str) -> float | None:
    return math.fsum(row["cells"][lang][key] for lang in langs) / len(langs) if langs else None


def summarize(name: str, matrices: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The side-by-side summary of the variants' matrices (``transfer_matrix.build_matrix`` dicts)."""
    first = next(iter(matrices.values()))
    langs = first["test_languages"]
    for variant, m in matrices.items():
        if m["test_languages"] != langs or [r["row"] for r in m["rows"]] != [r["row"] for r in first["rows"]]:
            raise ConfigError(f"variant {variant!r} has other rows or test languages than the first variant; "
                              "an ablation compares the same cells")
    rows = []
    for variant, m in matrices.items():
        for r in m["rows"]:
            tuned = r["row"] != tm.BASE_LABEL
            own, cross = _split_cells(r, langs)
            entry = {"variant": variant, "train_set": r["row"], "average": r["average"],
                     "seed_std_average": _avg(r, langs, "seed_std")}
            if tuned:
                entry.update({"gain": _avg(r, langs, "gain"), "gain_in_language": _avg(r, own, "gain"),
                              "gain_cross_lingual": _avg(r, cross, "gain"),
                              "gains": {lang: r["cells"][lang]["gain"] for lang in langs}})
            rows.append(entry)
    return {"name": name, "variants": list(matrices), "test_languages": langs,
            "eval_tasks": first["eval_tasks"], "primary_metric": first["primary_metric"],
            "definitions": {
                "average": "mean over test languages of the cell score (see the variant's matrix.json)",
                "seed_std_average": "mean over test languages of the std over seeds of the cell score",
                "gain": "mean over test languages of (cell score - the variant's untuned base in that language)",
                "gain_in_language": "gain averaged over test languages that are among the train set's languages",
                "gain_cross_lingual": "gain averaged over the other test languages (zero-shot transfer)"},
            "rows": rows}


def _fmt(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "–"
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def summary_markdown(summary: Mapping[str, Any], description: str = "") -> str:
    langs = summary["test_languages"]
    lines = [f"## Ablation `{summary['name']}`: {', '.join(summary['variants'])}", ""]
    if description:
        lines += [description, ""]
    lines += [f"Primary metric: {summary['primary_metric']} on {', '.join(summary['eval_tasks'])}. "
              "Gains are over each variant's own untuned base; in-language = test language among the train "
              "languages, cross-lingual = the others; seed std = mean over test languages of the std over seeds.",
              "", "| variant | train set | avg score | seed std | avg gain | in-language gain | cross-lingual gain |",
              "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in summary["rows"]:
        lines.append(f"| {r['variant']} | {r['train_set']} | {_fmt(r['average'])} | {_fmt(r['seed_std_average'])} "
                     f"| {_fmt(r.get('gain'), True)} | {_fmt(r.get('gain_in_language'), True)} "
                     f"| {_fmt(r.get('gain_cross_lingual'), True)} |")
    lines += ["", "Gain over base per test language:", "",
              "| variant | train set | " + " | ".join(langs) + " |",
              "| --- | --- | " + " | ".join("---:" for _ in langs) + " |"]
    for r in summary["rows"]:
        if "gains" in r:
            lines.append(f"| {r['variant']} | {r['train_set']} | "
                         + " | ".join(_fmt(r["gains"][lang], True) for lang in langs) + " |")
    return "\n".join(lines) + "\n"


def _side_by_side(summary: Mapping[str, Any], matrices: Mapping[str, Mapping[str, Any]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    langs = summary["test_languages"]
    grids = {v: np.array([[r["cells"][lang]["gain"] for lang in langs] for r in m["rows"] if r["row"] != tm.BASE_LABEL])
             for v, m in matrices.items()}
    labels = [r["row"] for r in next(iter(matrices.values()))["rows"] if r["row"] != tm.BASE_LABEL]
    bound = max(max(float(np.abs(g).max()) for g in grids.values()), 0.01)
    width = max(3.5, 1.0 + 0.8 * len(langs))
    fig, axes = plt.subplots(1, len(grids), figsize=(width * len(grids) + 1.0, 1.6 + 0.5 * len(labels)),
                             squeeze=False)
    for ax, (variant, grid) in zip(axes[0], grids.items()):
        im = ax.imshow(grid, cmap="RdBu", vmin=-bound, vmax=bound)
        ax.set_xticks(range(len(langs)), langs)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_title(variant)
        ax.set_xlabel("test language")
        for i in range(grid.shape[0]):
            for j in range(grid.shape[1]):
                ax.text(j, i, f"{grid[i, j]:+.2f}", ha="center", va="center", fontsize=7,
                        color="white" if abs(grid[i, j]) > 0.6 * bound else "black")
    axes[0][0].set_ylabel("train set")
    fig.suptitle(f"{summary['name']}: {summary['primary_metric']} gain over each variant's base")
    fig.colorbar(im, ax=axes[0].tolist())
    tm.save_figure(fig, path)


def write_summary(root: Path, summary: Mapping[str, Any], matrices: Mapping[str, Mapping[str, Any]],
                  description: str = "") -> None:
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(root / "summary.json", json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    atomic_write_text(root / "summary.md", summary_markdown(summary, description))
    _side_by_side(summary, matrices, root / "summary_gain.png")


def run(spec: AblationConfig, matrix_configs: Mapping[str, tm.MatrixConfig], out: TextIO = sys.stdout,
        hook: tm.Hook | None = None) -> dict[str, Any]:
    """Run (or resume) every variant's matrix, then write the summary; returns it."""
    matrices = {}
    for i, (variant, cfg) in enumerate(matrix_configs.items(), 1):
        print(f"=== ablation {spec.name!r}: variant {i}/{len(matrix_configs)} {variant!r} -> {cfg.root}", file=out,
              flush=True)
        matrices[variant] = tm.run(cfg, hook=hook, out=out)
    summary = summarize(spec.name, matrices)
    root = Path(spec.results_dir) / spec.name
    write_summary(root, summary, matrices, spec.description)
    print(f"wrote {root / 'summary.json'}, summary.md, summary_gain.png", file=out, flush=True)
    print(summary_markdown(summary, spec.description), file=out, flush=True)
    return summary


USAGE = "python -m experiments.ablation --gin_file=experiments/ablation_templates.gin [--gin.NAME=VALUE ...]"


def help_text() -> str:
    return configs.help_text(USAGE, __doc__.split("\n\n", 1)[1], [AblationConfig])


def main(argv: list[str], *, hook: tm.Hook | None = None) -> None:
    from xlt.data import tasks  # noqa: F401 - registers `vocabulary`: transfer_matrix.vocabulary = @vocabulary()
    search = cli.load_gin_argv(argv, "--gin_file=experiments/ablation_templates.gin")
    spec = AblationConfig.from_gin()
    matrix_configs = variant_configs(spec, search)  # every variant validated before any runs
    logging.getLogger("absl").setLevel(logging.ERROR)  # seqio's per-task cache advice, once per tuning run
    run(spec, matrix_configs, hook=hook)


if __name__ == "__main__":
    sys.exit(cli.main(main, usage=help_text))
