"""The transfer-matrix experiment end to end on a tiny base: a 2x2 matrix, skip on re-run, resume, bad config."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest

from experiments import transfer_matrix as tm
from xlt import cli

CONFIG = "experiments/transfer_tiny_test.gin"


def config_argv(results: Path, **overrides: str) -> list[str]:
    bindings = {"results_dir": f"'{results}'", **overrides}
    return [f"--gin_file={CONFIG}", *(f"--gin.transfer_matrix.{k}={v}" for k, v in bindings.items())]


def run_matrix(argv: list[str], hook=None) -> tuple[dict, str]:
    files, bindings, search, _ = cli.parse_gin_args(argv)
    cli.load_gin(files, bindings, search)
    cfg = tm.MatrixConfig.from_gin()
    out = io.StringIO()
    matrix = tm.run(cfg, hook=hook, out=out)
    return matrix, out.getvalue()


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    results = tmp_path_factory.mktemp("matrix")
    matrix, log = run_matrix(config_argv(results))
    return results, matrix, log


@pytest.mark.slow  # shares the module's tiny matrix: minutes of pretraining, tuning and evaluation
def test_matrix_runs_end_to_end(finished):
    results, matrix, log = finished
    root = results / "tiny"
    for name in ("matrix.json", "matrix.md", "matrix_score.png", "matrix_gain.png"):
        assert (root / name).is_file() and (root / name).stat().st_size > 0, name
    saved = json.loads((root / "matrix.json").read_text())
    assert [r["row"] for r in saved["rows"]] == [tm.BASE_LABEL, "en", "ko"]
    assert saved["test_languages"] == ["en", "ko"]
    for r in saved["rows"]:
        for lang in ("en", "ko"):
            cell = r["cells"][lang]
            assert 0.0 <= cell["mean"] <= 1.0 and cell["std"] >= 0.0
            assert cell["n_tasks"] == 2
            if r["row"] != tm.BASE_LABEL:
                base = saved["rows"][0]["cells"][lang]["mean"]
                assert cell["gain"] == pytest.approx(cell["mean"] - base)
    # The cell is recomputable from the raw per-template records.
    records = json.loads((root / "eval" / "en_s0" / "ko" / "records.json").read_text())
    per_task = {}
    for r in records:
        if r["metric"] == "accuracy":
            per_task.setdefault(r["task"], []).append(r["value"])
    expected = sum(sum(v) / len(v) for v in per_task.values()) / len(per_task)
    assert saved["rows"][1]["cells"]["ko"]["mean"] == pytest.approx(expected)
    assert (root / "tuned" / "en_s0" / "checkpoints" / "3").is_dir()
    assert "base (untuned)" in (root / "matrix.md").read_text()
    assert "evaluating ko_s0 -> ko" in log and "0 left" in log


@pytest.mark.slow  # shares the module's tiny matrix: minutes of pretraining, tuning and evaluation
def test_rerun_skips_finished_cells(finished):
    results, matrix, _ = finished
    stamps = {p: p.stat().st_mtime_ns for p in (results / "tiny" / "eval").rglob(tm.CELL_FILE)}
    assert len(stamps) == 6
    again, log = run_matrix(config_argv(results), hook=lambda row, lang: pytest.fail(f"re-ran {row}/{lang}"))
    assert log.count("skip ") == 6 and "evaluating" not in log and "tuning" not in log
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert again["rows"] == matrix["rows"]


@pytest.mark.slow  # shares the module's tiny matrix: minutes of pretraining, tuning and evaluation
def test_interrupted_run_resumes(finished, tmp_path):
    results, matrix, _ = finished
    shutil.copytree(results / "tiny", tmp_path / "tiny")
    shutil.rmtree(tmp_path / "tiny" / "eval" / "ko_s0")  # as if killed before row ko was evaluated
    shutil.rmtree(tmp_path / "tiny" / "eval" / "en_s0" / "ko")
    (tmp_path / "tiny" / "matrix.json").unlink()

    def crash(row: str, lang: str) -> None:
        if row == "ko_s0":
            raise KeyboardInterrupt("simulated kill")

    with pytest.raises(KeyboardInterrupt):
        run_matrix(config_argv(tmp_path), hook=crash)
    assert (tmp_path / "tiny" / "eval" / "en_s0" / "ko" / tm.CELL_FILE).is_file()
    assert not (tmp_path / "tiny" / "matrix.json").exists()
    ran = []
    resumed, log = run_matrix(config_argv(tmp_path), hook=lambda row, lang: ran.append((row, lang)))
    assert ran == [("ko_s0", "en"), ("ko_s0", "ko")]
    assert log.count("skip ") == 4
    assert (tmp_path / "tiny" / "matrix.json").is_file()
    # Same checkpoints, same items: the resumed cells reproduce the first run's.
    assert resumed["rows"] == matrix["rows"]


@pytest.mark.parametrize("override, message", [
    ({"test_languages": "['en', 'xx']"}, "unknown language code 'xx'"),
    ({"train_sets": "[]"}, "train_sets must be a non-empty list"),
    ({"train_sets": "['en+']"}, "empty or repeated language"),
    ({"seeds": "[]"}, "seeds must be a non-empty list"),
    ({"eval_tasks": "['month_after']"}, "not a held-out choice task"),
    ({"template_mode": "'fixed'"}, "needs template_lang"),
    ({"benchmarks": "['no_such_benchmark']", "eval_tasks": "None"}, "unknown benchmark 'no_such_benchmark'"),
    ({"benchmarks": "['xcopa']", "eval_tasks": "None"}, "benchmark 'xcopa' has no language 'en'"),
    ({"benchmarks": "['pawsx']"}, "eval_tasks must be None with benchmarks"),
    ({"benchmarks": "['pawsx']", "eval_tasks": "None", "benchmark_sources": "{'pawsx': '/no/such/dir'}"},
     "pawsx"),
    ({"instruction_data": "{'name': 'no_such_data'}"}, "unknown instruction data 'no_such_data'"),
    ({"row_instruction_data": "{'fr': {'name': 'multialpaca'}}"}, "keys are train sets"),
])
def test_matrix_bad_config_fails_before_writing(tmp_path, capsys, override, message):
    assert cli.main(tm.main, config_argv(tmp_path, **override)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("xlt: error:") and message in err[0], err
    assert not (tmp_path / "tiny").exists()


@pytest.mark.slow  # shares the module's tiny matrix: minutes of pretraining, tuning and evaluation
def test_cells_with_other_eval_settings_are_not_reused(finished):
    results, _, _ = finished
    same = config_argv(results)
    fewer = config_argv(results, max_items_per_task="1")
    for argv, expected in ((same, True), (fewer, False)):
        files, bindings, search, _ = cli.parse_gin_args(argv)
        cli.load_gin(files, bindings, search)
        cfg = tm.MatrixConfig.from_gin()
        assert all(tm._cell_done(cfg, row, lang) is expected
                   for row in (tm.BASE_ROW, "en_s0", "ko_s0") for lang in ("en", "ko"))
