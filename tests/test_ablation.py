"""Ablations over the transfer matrix: two template strategies on one shared tiny base, the side-by-side summary,
and bad configs failing before anything is written."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from experiments import ablation as ab
from experiments import transfer_matrix as tm
from xlt import cli


def write_ablation(tmp_path: Path, variants: str) -> Path:
    path = tmp_path / "ablation.gin"
    path.write_text(f"""
ablation.name = 'tmpl'
ablation.results_dir = '{tmp_path / "results"}'
ablation.experiment_gin = ['experiments/transfer_tiny_test.gin']
ablation.variants = {variants}
""")
    return path


def shared_base(tmp_path: Path) -> str:
    return repr(str(tmp_path / "shared_base"))


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("ablation")
    base = shared_base(tmp_path)
    gin_file = write_ablation(tmp_path, f"""{{
    'native': {{'transfer_matrix.base_dir': {base}, 'transfer_matrix.train_sets': ['en']}},
    'fixed_en': {{'transfer_matrix.base_dir': {base}, 'transfer_matrix.train_sets': ['en'],
                  'transfer_matrix.template_mode': 'fixed', 'transfer_matrix.template_lang': 'en'}},
}}""")
    search = cli.load_gin_argv([f"--gin_file={gin_file}"], "")
    spec = ab.AblationConfig.from_gin()
    configs = ab.variant_configs(spec, search)
    out = io.StringIO()
    summary = ab.run(spec, configs, out=out)
    return tmp_path, summary, out.getvalue()


@pytest.mark.slow  # two tiny matrices on a shared base: minutes
def test_ablation_writes_each_matrix_and_the_summary(finished):
    tmp_path, summary, log = finished
    root = tmp_path / "results" / "tmpl"
    for variant in ("native", "fixed_en"):
        for name in ("matrix.json", "matrix.md", "matrix_score.png", "matrix_gain.png"):
            assert (root / variant / name).is_file(), (variant, name)
    for name in ("summary.json", "summary.md", "summary_gain.png"):
        assert (root / name).stat().st_size > 0, name
    # One base for both variants: pretrained once, by the first.
    assert log.count("pretraining the base") == 2 and (tmp_path / "shared_base" / "checkpoints" / "4").is_dir()
    assert not (root / "native" / "base").exists() and not (root / "fixed_en" / "base").exists()
    matrices = {v: json.loads((root / v / "matrix.json").read_text()) for v in ("native", "fixed_en")}
    # English content with English templates is the same evaluation in both variants: equal base cells.
    assert (matrices["native"]["rows"][0]["cells"]["en"]["mean"]
            == matrices["fixed_en"]["rows"][0]["cells"]["en"]["mean"])
    assert json.loads((root / "summary.json").read_text()) == json.loads(json.dumps(summary))
    text = (root / "summary.md").read_text()
    assert "| fixed_en | en |" in text and "| native | base (untuned) |" in text


@pytest.mark.slow  # two tiny matrices on a shared base: minutes
def test_summary_splits_in_language_and_cross_lingual_gains(finished):
    tmp_path, summary, _ = finished
    root = tmp_path / "results" / "tmpl"
    for variant in ("native", "fixed_en"):
        matrix = json.loads((root / variant / "matrix.json").read_text())
        row = next(r for r in summary["rows"] if r["variant"] == variant and r["train_set"] == "en")
        cells = matrix["rows"][1]["cells"]
        assert row["gain_in_language"] == pytest.approx(cells["en"]["gain"])
        assert row["gain_cross_lingual"] == pytest.approx(cells["ko"]["gain"])
        assert row["gain"] == pytest.approx((cells["en"]["gain"] + cells["ko"]["gain"]) / 2)
        base = next(r for r in summary["rows"] if r["variant"] == variant and r["train_set"] == tm.BASE_LABEL)
        assert "gain" not in base and base["average"] == pytest.approx(matrix["rows"][0]["average"])


def _matrix(rows: dict[str, dict[str, float]], langs=("en", "ko", "ja")) -> dict:
    out = [{"row": tm.BASE_LABEL, "train_languages": [], "average": 0.5,
            "cells": {lang: {"mean": 0.5, "seed_std": 0.0} for lang in langs}}]
    for name, gains in rows.items():
        cells = {lang: {"mean": 0.5 + g, "gain": g, "seed_std": 0.01} for lang, g in gains.items()}
        out.append({"row": name, "train_languages": tm.split_train_set(name), "cells": cells,
                    "average": 0.5 + sum(gains.values()) / len(gains)})
    return {"test_languages": list(langs), "eval_tasks": ["t"], "primary_metric": "accuracy", "rows": out}


def test_summarize_uses_every_train_language_of_a_combined_row():
    matrices = {"a": _matrix({"en+ko": {"en": 0.2, "ko": 0.1, "ja": -0.05}}),
                "b": _matrix({"en+ko": {"en": 0.0, "ko": 0.0, "ja": 0.3}})}
    rows = {r["variant"]: r for r in ab.summarize("x", matrices)["rows"] if r["train_set"] == "en+ko"}
    assert rows["a"]["gain_in_language"] == pytest.approx(0.15)
    assert rows["a"]["gain_cross_lingual"] == pytest.approx(-0.05)
    assert rows["b"]["gain_cross_lingual"] == pytest.approx(0.3)
    with pytest.raises(Exception, match="other rows or test languages"):
        ab.summarize("x", {"a": matrices["a"], "c": _matrix({"en": {"en": 0.1, "ko": 0.0, "ja": 0.0}})})


@pytest.mark.parametrize("variants, message", [
    ("{'only': {'transfer_matrix.template_mode': 'native'}}", "at least two variant names"),
    ("{'a': {}, 'b/c': {}}", "plain directory name"),
    ("{'a': {}, 'b': ['transfer_matrix.seeds = [1]']}", "give a dict"),
    ("{'a': {}, 'b': {'transfer_matrix.test_languages': ['en', 'xx']}}", "variant 'b': unknown language code 'xx'"),
])
def test_bad_ablation_fails_before_writing(tmp_path, capsys, variants, message):
    gin_file = write_ablation(tmp_path, variants)
    assert cli.main(ab.main, [f"--gin_file={gin_file}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("xlt: error:") and message in err[0], err
    assert not (tmp_path / "results").exists()
