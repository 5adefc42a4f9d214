"""The transfer-matrix experiment end to end on a tiny base: a 2x2 matrix, skip on re-run, resume, bad config."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from experiments import matrix_report as mr
from experiments import transfer_matrix as tm
from xlt import cli
from xlt.errors import ConfigError, DataError

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
                # statistics from the real predictions.jsonl: 2 tasks x 2 items, paired with the base's
                assert cell["n_items"] == 4 and cell["ci"][0] <= cell["gain"] <= cell["ci"][1]
                assert 0.0 < cell["p"] <= cell["p_adjusted"] <= 1.0 and isinstance(cell["significant"], bool)
    assert saved["statistics"]["n_tests"] == 4 and 0.25 <= saved["chance"]["ko"] <= 0.5
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
    assert "evaluating ko_s0 -> en, ko, en (seen), ko (seen)" in log and "0 left" in log  # one pass per row
    # The seen-cluster matrix: the same rows over the training cluster's task, from eval_seen/<row>/<lang>.
    # A generation task: each answer's chrF is the per-item value, the cell its mean over items; no chance level.
    seen = saved["seen"]
    assert seen["eval_tasks"] == ["month_after"] and [r["row"] for r in seen["rows"]] == [tm.BASE_LABEL, "en", "ko"]
    assert all(r["cells"][lang]["n_tasks"] == 1 for r in seen["rows"] for lang in ("en", "ko"))
    assert seen["primary_metrics"] == {"en": tm.SEEN_GENERATION_METRIC, "ko": tm.SEEN_GENERATION_METRIC}
    assert seen["chance"] == {"en": None, "ko": None} and seen["statistics"]["n_tests"] == 4
    lines = [json.loads(x) for x in (root / "eval_seen" / "ko_s0" / "en" / "predictions.jsonl").read_text().splitlines()]
    assert {x["task"] for x in lines} == {"month_after"} and {x["content_lang"] for x in lines} == {"en"}
    items = {x["item"] for x in lines}  # every template of 2 items: test first, validation only to fill
    assert len(items) == 2 and {i.split("/")[2] for i in items} == {"test"} and len(lines) > len(items)
    from xlt.evaluation import metrics
    assert all(x["chrf"] == pytest.approx(metrics.sentence_chrf([x["prediction"]], [[x["gold"]]])[0] / 100)
               for x in lines)
    assert seen["rows"][2]["cells"]["en"]["mean"] == pytest.approx(sum(x["chrf"] for x in lines) / len(lines))


@pytest.mark.slow  # shares the module's tiny matrix: minutes of pretraining, tuning and evaluation
def test_rerun_skips_finished_cells(finished):
    results, matrix, _ = finished
    stamps = {p: p.stat().st_mtime_ns for p in (results / "tiny" / "eval").rglob(tm.CELL_FILE)}
    assert len(stamps) == 6 and len(list((results / "tiny" / "eval_seen").rglob(tm.CELL_FILE))) == 6
    again, log = run_matrix(config_argv(results), hook=lambda row, lang: pytest.fail(f"re-ran {row}/{lang}"))
    assert log.count("skip ") == 12 and "] evaluating " not in log and "] tuning " not in log
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
    assert log.count("skip ") == 10  # 3 rows x 2 languages x 2 matrices, less the 2 cells that ran
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


# ------------------------------------------------------------------------------------ aggregation and statistics
# Fast: cells written by the test (records.json and predictions.jsonl as xlt.evaluation.evaluate writes them),
# then the matrix built from them (experiments.matrix_report).
SYN_TASKS = {"held_out": ("country_name_pair", "verse_ending_choice"), "seen": ("country_continent",)}
SYN_OPTIONS = {"country_name_pair": 2, "verse_ending_choice": 4, "country_continent": 4}
SYN_TEMPLATES, SYN_ITEMS = 3, 80


def write_cell(cfg, row: str, lang: str, part: str, correct: np.ndarray, task: str | None = None) -> None:
    """One cell's files from 0/1 values ``correct[task_index, item, template]``."""
    out = cfg.eval_dir(row, lang, part=part)
    out.mkdir(parents=True, exist_ok=True)
    records, lines = [], []
    for k, name in enumerate(SYN_TASKS[part]):
        for j in range(SYN_TEMPLATES):
            tid = f"{name}.{lang}.{j}"
            values = correct[k, :, j]
            records.append({"task": name, "cluster": "c", "kind": "choice", "content_lang": lang,
                            "template_lang": lang, "template_id": tid, "n": len(values), "metric": "accuracy",
                            "value": float(values.mean())})
            for i, v in enumerate(values):
                item = f"{name}/{lang}/test/u{i}"
                lines.append(json.dumps({"id": f"{item}/{tid}", "item": item, "task": name, "content_lang": lang,
                                         "template_id": tid, "prediction": 0, "gold": "x",
                                         "n_options": SYN_OPTIONS[name], "correct": int(v)}))
    (out / "records.json").write_text(json.dumps(records))
    (out / "predictions.jsonl").write_text("\n".join(lines) + "\n")


@pytest.fixture
def synthetic(tmp_path):
    """A 2x2 matrix (rows en, ko; 2 seeds) with a seen part: row en gains +0.45 in its own language (in both
    parts); every other tuned cell is drawn like the base (no effect)."""
    (tmp_path / "base").mkdir()
    cfg = tm.MatrixConfig(name="syn", results_dir=str(tmp_path), base_checkpoint=str(tmp_path / "base"),
                          train_sets=("en", "ko"), test_languages=("en", "ko"), seeds=(0, 1),
                          eval_tasks=SYN_TASKS["held_out"], seen_tasks=SYN_TASKS["seen"])
    rng = np.random.default_rng(2026)
    for part, tasks in SYN_TASKS.items():
        for lang in cfg.test_languages:
            p = rng.uniform(0.2, 0.5, (len(tasks), SYN_ITEMS, 1))  # item difficulty, shared by every row

            def draw(shift=0.0):
                return (rng.random((len(tasks), SYN_ITEMS, SYN_TEMPLATES)) < p + shift).astype(int)

            write_cell(cfg, tm.BASE_ROW, lang, part, draw())
            for ts in cfg.train_sets:
                for seed in cfg.seeds:
                    write_cell(cfg, f"{ts}_s{seed}", lang, part, draw(0.45 if ts == lang == "en" else 0.0))
    return cfg


def test_matrix_statistics_from_cell_folders(synthetic):
    cfg = synthetic
    matrix = tm.build_matrix(cfg)
    assert matrix["part"] == "held_out" and matrix["eval_tasks"] == list(SYN_TASKS["held_out"])
    stats = matrix["statistics"]
    assert stats["correction"] == "holm" and stats["alpha"] == 0.05 and stats["n_tests"] == 4
    assert stats["n_resamples"] == 2000 and stats["seed"] == 0
    assert matrix["chance"] == {"en": pytest.approx(0.375), "ko": pytest.approx(0.375)}  # mean of 1/2 and 1/4
    base, en, ko = matrix["rows"]
    assert base["cells"]["en"]["n_items"] == 2 * SYN_ITEMS and "p" not in base["cells"]["en"]
    for row in (en, ko):
        for lang, c in row["cells"].items():
            assert c["n_items"] == 2 * SYN_ITEMS
            assert c["ci"][0] <= c["gain"] <= c["ci"][1]
            assert 0.0 < c["p"] <= c["p_adjusted"] <= 1.0
            # the clearly positive cell is significant, the cells without an effect are not
            assert c["significant"] is (row["row"] == lang == "en"), (row["row"], lang, c)
    assert en["cells"]["en"]["gain"] > 0.3 and en["cells"]["en"]["ci"][0] > 0.2
    # The seen part: its own tasks and folder, its own family.
    seen = matrix["seen"]
    assert seen["part"] == "seen" and seen["eval_tasks"] == ["country_continent"]
    assert seen["statistics"]["n_tests"] == 4 and seen["chance"]["ko"] == pytest.approx(0.25)
    assert [(r, c) for r, c, _ in mr.significant_cells(seen)] == [("en", "en")]
    # Deterministic: the same files give the same numbers.
    assert tm.build_matrix(cfg) == matrix
    bh = tm.build_matrix(cfg, correction="bh", include_seen=False)
    assert bh["statistics"]["correction"] == "bh" and "seen" not in bh
    assert bh["rows"][1]["cells"]["en"]["p"] == matrix["rows"][1]["cells"]["en"]["p"]


def test_matrix_outputs_mark_significant_cells(synthetic):
    cfg = synthetic
    matrix = tm.build_matrix(cfg)
    tm.write_outputs(cfg, matrix)
    for name in ("matrix.json", "matrix.md", "matrix_score.png", "matrix_gain.png", "matrix_seen_score.png",
                 "matrix_seen_gain.png"):
        assert (cfg.root / name).stat().st_size > 0, name
    saved = json.loads((cfg.root / "matrix.json").read_text())
    assert saved["rows"][1]["cells"]["en"]["significant"] is True and "seen" in saved
    md = (cfg.root / "matrix.md").read_text()
    assert md.count("### ") == 2 and "Seen clusters" in md and "Held-out clusters" in md
    assert md.count("| *chance* | 0.375 | 0.375 |") == 1 and "| *chance* | 0.250 | 0.250 |" in md
    assert md.count(mr.MARK) == 2 + 2 * 1  # one marked cell per table, plus the legend line of each table
    assert "Holm correction over the 4 tuned cells" in md
    assert md.count("Significant cells: en → en (+") == 2
    en_line = next(line for line in md.splitlines() if line.startswith("| en |"))
    assert f"** {mr.MARK}) [" in en_line.split("|")[2] and mr.MARK not in en_line.split("|")[3]


def test_matrix_statistics_need_matching_per_item_data(synthetic):
    cfg = synthetic
    # A cell whose predictions.jsonl predates the per-item fields: no statistics there, the others still tested.
    path = cfg.eval_dir("ko_s1", "ko") / "predictions.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    path.write_text("\n".join(json.dumps({k: x[k] for k in ("id", "prediction", "gold")}) for x in lines) + "\n")
    matrix = tm.build_matrix(cfg, include_seen=False)
    cell = matrix["rows"][2]["cells"]["ko"]
    assert cell["p"] is None and cell["ci"] is None and cell["significant"] is None and cell["gain"] is not None
    assert matrix["statistics"]["n_tests"] == 3
    assert "(+" in tm.matrix_markdown(matrix)
    # predictions.jsonl out of step with records.json: refused, not silently tested.
    path = cfg.eval_dir("en_s0", "en") / "predictions.jsonl"
    lines = [json.loads(x) for x in path.read_text().splitlines()]
    lines[0]["correct"] = 1 - lines[0]["correct"]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    with pytest.raises(DataError, match="out of step"):
        tm.build_matrix(cfg, include_seen=False)


def test_matrix_parts_and_folders(tmp_path):
    (tmp_path / "base").mkdir()
    cfg = tm.MatrixConfig(name="m", results_dir=str(tmp_path), base_checkpoint=str(tmp_path / "base"),
                          train_sets=("en",), test_languages=("en",), eval_tasks=("country_name_pair",))
    assert cfg.eval_dir("en_s0", "en") == tmp_path / "m" / "eval" / "en_s0" / "en"
    assert cfg.eval_dir("en_s0", "en", part="seen") == tmp_path / "m" / "eval_seen" / "en_s0" / "en"
    assert cfg.tasks_of("held_out") == ("country_name_pair",) and cfg.tasks_of("seen") == ()
    with pytest.raises(ConfigError, match="part"):
        cfg.eval_dir("en_s0", "en", part="other")
    with pytest.raises(ConfigError, match="seen_tasks"):
        tm.MatrixConfig(name="m", results_dir=str(tmp_path), base_checkpoint=str(tmp_path / "base"),
                        train_sets=("en",), test_languages=("en",), seen_tasks=("country_name_pair",))


def test_seen_tasks_and_splits_are_checked(tmp_path):
    (tmp_path / "base").mkdir()
    common = dict(name="m", results_dir=str(tmp_path), base_checkpoint=str(tmp_path / "base"), train_sets=("en",),
                  test_languages=("en", "ko"), eval_tasks=("country_name_pair",))
    cfg = tm.MatrixConfig(**common, seen_tasks=("month_after", "country_currency"), seen_splits=("test", "validation"),
                          held_out_splits=("test", "validation", "train"))
    assert cfg.seen_kind() == "generation" and cfg.splits_of("seen") == ("test", "validation")
    assert tm.primary_metric(cfg, None, "seen") == tm.SEEN_GENERATION_METRIC and tm.primary_metric(cfg, None) == "accuracy"
    for override, message in [({"seen_tasks": ("month_after", "country_continent")}, "one kind"),
                              ({"seen_tasks": ("month_after",), "seen_splits": ("train",)}, "tuning reads train"),
                              ({"held_out_splits": ("test", "test")}, "held_out_splits"),
                              ({"held_out_splits": ("dev",)}, "held_out_splits")]:
        with pytest.raises(ConfigError, match=message):
            tm.MatrixConfig(**common, **override)


def test_fill_plan_takes_whole_items_split_after_split(tmp_path):
    """held_out_splits / seen_splits: each (language, task) is filled from the first split, then the next, up to
    max_items_per_task, every template of an item kept together; items stay distinct across splits."""
    from xlt.configs import EvalConfig
    from xlt.evaluation import evaluate as ev
    common = dict(checkpoint=str(tmp_path), languages=("en", "ko"), tasks=("month_after",), clusters=("calendar",),
                  max_items_per_task=20, all_templates=True)
    plans = [ev.plan_examples(EvalConfig(**common, split=split)) for split in ("test", "validation")]
    merged = tm.fill_plan(plans, 20)
    assert [(lang, bench.name) for lang, bench, _ in merged] == [("en", "month_after"), ("ko", "month_after")]
    for lang, _, examples in merged:
        items = list(dict.fromkeys(ev.item_of(ex) for ex in examples))
        assert len(items) == 20 and [i.split("/")[2] for i in items] == ["test"] * 15 + ["validation"] * 5
        per_item = {i: sum(ev.item_of(ex) == i for ex in examples) for i in items}
        assert len(set(per_item.values())) == 1 and min(per_item.values()) > 1  # every template of each item
    everything = tm.fill_plan(plans, None)
    assert all(len({ev.item_of(ex) for ex in examples}) == 15 + 12 for _, _, examples in everything)


def test_trained_vocabulary_is_made_once_and_reused(tmp_path):
    """transfer_matrix.train_vocabulary: tools/train_tokenizer.py trains a sentencepiece model into
    results/<name>/vocab before any model work; a second run with the same options keeps it."""
    def config():
        return tm.MatrixConfig(name="v", results_dir=str(tmp_path), base_checkpoint=str(tmp_path), train_sets=("en",),
                               test_languages=("en",), eval_tasks=("country_name_pair",),
                               train_vocabulary={"vocab_size": 400, "sample_chars": 30000, "character_coverage": 0.98})

    cfg = config()
    assert cfg.vocabulary is None and cfg.vocabulary_args()[0].startswith("--character_coverage=")
    out = io.StringIO()
    progress = tm.Progress(1, 0, 0, out)
    tm._ensure_vocabulary(cfg, progress)
    model = tmp_path / "v" / "vocab" / "spm.model"
    assert model.is_file() and cfg.vocabulary.vocab_size == 400 and "training the vocabulary" in out.getvalue()
    text = "In the beginning God created the heaven and the earth."
    assert cfg.vocabulary.decode(cfg.vocabulary.encode(text)) == text
    stamp = model.stat().st_mtime_ns
    again = config()
    assert again.vocabulary is not None  # found at validation: the same file
    tm._ensure_vocabulary(again, tm.Progress(1, 0, 0, out))
    assert model.stat().st_mtime_ns == stamp and "kept from an earlier run" in out.getvalue()


def test_replication_of_significant_cells(synthetic, tmp_path):
    """tools/compare_matrices.py: every cell significant in either run, with both gains and whether the signs
    agree; matrices of different shapes are refused."""
    import copy
    import subprocess
    import sys
    first = tm.build_matrix(synthetic)
    second = copy.deepcopy(first)
    rep = mr.replication(first, second)
    assert rep["significant"] == [2, 2] and rep["significant_in_both"] == 2 and rep["same_sign"] == 2
    assert {(c["part"], c["row"], c["column"]) for c in rep["cells"]} == {("held_out", "en", "en"), ("seen", "en", "en")}
    cell = second["seen"]["rows"][1]["cells"]["en"]
    cell.update(gain=-cell["gain"], significant=False)
    rep = mr.replication(first, second)
    assert rep["significant"] == [2, 1] and rep["first_significant_same_sign"] == 1
    assert "| seen | en → en |" in mr.replication_markdown(rep) and "**no**" in mr.replication_markdown(rep)
    del second["seen"]
    with pytest.raises(ConfigError, match="same parts"):
        mr.replication(first, second)
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(first))
    b.write_text("{}")
    tool = Path(__file__).resolve().parent.parent / "tools" / "compare_matrices.py"
    done = subprocess.run([sys.executable, str(tool), str(a), str(a)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "of run 1's, 2 have the same sign in run 2" in done.stdout, done.stderr
    done = subprocess.run([sys.executable, str(tool), str(a), str(b)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith("xlt: error:"), done.stderr


@pytest.mark.parametrize("name", ["transfer_demo", "transfer_tiny_test", "ablation_base_model", "ablation_demo_recipe",
                                  "ablation_mixture", "ablation_templates"])
def test_shipped_experiment_configs_validate(name, tmp_path):
    """The experiments that need no outside checkpoint (the demo, its ablations) are valid as shipped: every
    field, task, split and template checked, before anyone spends minutes on them."""
    from experiments import ablation as ab
    text = (cli.GIN_DIR / "experiments" / f"{name}.gin").read_text()
    bindings = [] if name.startswith("ablation") else [f"transfer_matrix.results_dir = '{tmp_path}'"]
    cli.load_gin([f"experiments/{name}.gin"], bindings)
    if "ablation.name" in text:
        configs = ab.variant_configs(ab.AblationConfig.from_gin())
        assert len(configs) >= 2
    else:
        configs = {name: tm.MatrixConfig.from_gin()}
    if name == "transfer_demo":
        cfg = configs[name]
        assert cfg.seen_kind() == "generation" and cfg.max_items_per_task >= 100
        assert cfg.splits_of("held_out") == ("test", "validation", "train")
