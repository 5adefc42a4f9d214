"""Tests of xlt.evaluation.report on hand-made records with known means and standard deviations."""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path

import numpy as np
import pytest

from xlt.errors import ConfigError
from xlt.evaluation import report


def rec(
    task: str, lang: str, template: int | str | None, value: float, *, metric: str = "accuracy", cluster: str = "nli",
    kind: str = "choice", template_lang: str | None = None, n: int = 100,
) -> dict:  # fmt: skip
    return {
        "task": task, "cluster": cluster, "kind": kind, "content_lang": lang, "template_lang": template_lang or lang,
        "template_id": template, "metric": metric, "value": value, "n": n,
    }  # fmt: skip


def hand_made() -> list[dict]:
    return [
        # nli/xnli: en 0.2 0.4 0.6 -> mean 0.4, std sqrt(0.08 / 3); ko one template -> std 0.
        rec("xnli", "en", 0, 0.2), rec("xnli", "en", 1, 0.4), rec("xnli", "en", 2, 0.6),
        rec("xnli", "ko", 0, 0.5, n=50),
        # nli/kobest_nli: en 0.5 0.7 -> mean 0.6, std 0.1; ko 0.3 0.5 -> mean 0.4, std 0.1.
        rec("kobest", "en", "a", 0.5), rec("kobest", "en", "b", 0.7),
        rec("kobest", "ko", "a", 0.3), rec("kobest", "ko", "b", 0.5),
        # ko content with English templates: only xnli.
        rec("xnli", "ko", 0, 0.45, template_lang="en"), rec("xnli", "ko", 1, 0.55, template_lang="en"),
        # another cluster and metric
        rec("copa", "en", 0, 0.9, cluster="commonsense"), rec("copa", "en", 1, 0.7, cluster="commonsense"),
        rec("xlsum", "ko", 0, 0.25, metric="rouge_l", cluster="summ", kind="generation"),
    ]  # fmt: skip


def test_task_means_and_population_stds() -> None:
    r = report.aggregate(hand_made())
    xnli_en = r.tasks[("nli", "xnli", "accuracy")][("en", "en")]
    assert xnli_en.mean == pytest.approx(0.4) and xnli_en.std == pytest.approx(math.sqrt(0.08 / 3))
    assert (xnli_en.n_tasks, xnli_en.n_templates, xnli_en.n_examples) == (1, 3, 300)
    single = r.tasks[("nli", "xnli", "accuracy")][("ko", "ko")]
    assert (single.mean, single.std, single.n_templates, single.n_examples) == (0.5, 0.0, 1, 50)
    cross = r.tasks[("nli", "xnli", "accuracy")][("ko", "en")]
    assert cross.mean == pytest.approx(0.5) and cross.std == pytest.approx(0.05)
    assert r.settings == (("en", "en"), ("ko", "ko"), ("ko", "en"))


def test_cluster_and_language_pooling() -> None:
    r = report.aggregate(hand_made())
    nli_en = r.clusters[("nli", "accuracy")][("en", "en")]
    # mean of task means (0.4, 0.6); spread sqrt(mean of variances (0.08/3, 0.01)).
    assert nli_en.mean == pytest.approx(0.5) and nli_en.std == pytest.approx(math.sqrt((0.08 / 3 + 0.01) / 2))
    assert (nli_en.n_tasks, nli_en.n_templates, nli_en.n_examples) == (2, 5, 500)
    nli_ko = r.clusters[("nli", "accuracy")][("ko", "ko")]
    assert nli_ko.mean == pytest.approx(0.45) and nli_ko.std == pytest.approx(math.sqrt(0.01 / 2))
    all_en = r.languages["accuracy"][("en", "en")]  # xnli 0.4, kobest 0.6, copa 0.8
    assert all_en.mean == pytest.approx(0.6) and all_en.n_tasks == 3
    assert all_en.std == pytest.approx(math.sqrt((0.08 / 3 + 0.01 + 0.01) / 3))
    assert set(r.languages) == {"accuracy", "rouge_l"} and r.languages["rouge_l"][("ko", "ko")].mean == 0.25
    assert ("en", "en") not in r.languages["rouge_l"]


def test_random_records_match_numpy() -> None:
    rng = random.Random(0)
    rows = [rec(f"t{t}", lang, k, rng.random(), cluster=f"c{t % 3}")
            for t in range(9) for lang in ("en", "ko", "ja") for k in range(rng.randrange(1, 6))]  # fmt: skip
    r = report.aggregate(rows)
    for (cluster, task, metric), cells in r.tasks.items():
        for (lang, _), stat in cells.items():
            values = [x["value"] for x in rows if x["task"] == task and x["content_lang"] == lang]
            assert stat.mean == pytest.approx(np.mean(values), abs=1e-12)
            assert stat.std == pytest.approx(np.std(values, ddof=0), abs=1e-12)
    for (cluster, _), cells in r.clusters.items():
        for (lang, _), stat in cells.items():
            tasks = {x["task"] for x in rows if x["cluster"] == cluster}
            per_task = [[x["value"] for x in rows if x["task"] == t and x["content_lang"] == lang] for t in tasks]
            assert stat.mean == pytest.approx(np.mean([np.mean(v) for v in per_task]), abs=1e-12)
            assert stat.std == pytest.approx(np.sqrt(np.mean([np.var(v) for v in per_task])), abs=1e-12)


def test_record_objects_are_accepted_and_revalidated() -> None:
    first = report.Record.from_mapping(rec("xnli", "en", 3, 1))
    assert first.template_id == "3" and first.value == 1.0 and isinstance(first.value, float)
    assert report.aggregate([first]).tasks[("nli", "xnli", "accuracy")][("en", "en")].mean == 1.0
    broken = report.Record("xnli", "nli", "choice", "xx", "en", "0", "accuracy", 0.5, 10)
    with pytest.raises(ConfigError, match="content_lang"):
        report.aggregate([broken])


def test_write_json_is_atomic_and_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    r = report.aggregate(hand_made())
    path = r.write_json(tmp_path / "out" / "report.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data == json.loads(json.dumps(r.to_dict())) and data["n_records"] == 13
    row = next(x for x in data["tasks"] if x["task"] == "xnli" and x["content_lang"] == "en")
    assert row["mean"] == pytest.approx(0.4) and row["kind"] == "choice" and row["n_templates"] == 3
    assert {x["metric"] for x in data["languages"]} == {"accuracy", "rouge_l"}
    assert os.listdir(path.parent) == ["report.json"]

    def failing_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(report.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        report.aggregate(hand_made()[:3]).write_json(path)
    assert json.loads(path.read_text(encoding="utf-8")) == data  # old file intact, temporary file removed
    assert os.listdir(path.parent) == ["report.json"]
    with pytest.raises(ConfigError, match="is a directory"):
        r.write_json(tmp_path)


def test_markdown_tables() -> None:
    text = report.aggregate(hand_made() + [rec("a|b", "en", 0, 0.2, cluster="misc")]).to_markdown(digits=2)
    lines = text.splitlines()
    header = lines.index("### accuracy")
    assert lines[header + 2] == "| cluster | task | en | ko | ko/en |"
    assert "| nli | xnli | 0.40 ± 0.16 | 0.50 ± 0.00 | 0.50 ± 0.05 |" in lines
    assert "| nli | kobest | 0.60 ± 0.10 | 0.40 ± 0.10 | – |" in lines
    assert "| **nli** | **all** | 0.50 ± 0.14 | 0.45 ± 0.07 | 0.50 ± 0.05 [1/2] |" in lines
    assert "| misc | a\\|b | 0.20 ± 0.00 | – | – |" in lines
    assert lines[header + 4] == "| **all** |  | 0.50 ± 0.11 | 0.45 ± 0.07 [2/4] | 0.50 ± 0.05 [1/4] |"
    summ = lines[lines.index("### rouge_l") + 2 :]
    assert summ[0] == "| cluster | task | ko |" and "| summ | xlsum | 0.25 ± 0.00 |" in summ


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "no records"),
        ([{**rec("t", "en", 0, 0.5), "vale": 1}], r"unknown fields \['vale'\]"),
        ([{k: v for k, v in rec("t", "en", 0, 0.5).items() if k != "n"}], r"missing fields \['n'\]"),
        ([rec("t", "kr", 0, 0.5)], "unknown language code 'kr'"),
        ([rec("t", "en", 0, float("nan"))], "finite number"),
        ([rec("t", "en", 0, True)], "finite number"),
        ([rec("t", "en", 0, 0.5, n=0)], "positive integer"),
        ([rec("t", "en", 0, 0.5, metric="")], "metric must be a non-empty string"),
        ([rec("t", "en", None, 0.5)], "template_id"),
        ([rec("t", "en", 0, 0.5), rec("t", "en", 0, 0.6)], "duplicate record for task 't', en, template '0'"),
        ([rec("t", "en", 0, 0.5), rec("t", "ko", 0, 0.6, cluster="qa")], "task 't' has two clusters"),
        ([rec("t", "en", 0, 0.5), rec("t", "ko", 0, 0.6, kind="generation")], "task 't' has two kinds"),
        (["not a record"], "record 0 must be a mapping"),
    ],
)
def test_bad_records_raise_config_error(rows: list, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        report.aggregate(rows)
    assert "\n" not in str(err.value)


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="records must be a list"):
        report.aggregate(rec("t", "en", 0, 0.5))
    with pytest.raises(ConfigError, match="digits"):
        report.aggregate(hand_made()).to_markdown(digits=-1)
