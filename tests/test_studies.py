"""The two studies of gin/experiments end to end on fixture files in each data set's published schema:
``polylm.gin`` (MultiAlpaca tuning; XNLI / XCOPA / PAWS-X / XWinograd / TyDiQA columns) and ``han24.gin``
(mT5-layout model tuned on English P3 vs Korean instruction data; KoBEST / PAWS-X / Belebele and English
columns). Only the data sources, a tiny model, tiny step counts and the fixtures' languages are bound here;
everything else is the study's gin file. Bad sources and languages fail in one line before any training."""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from pathlib import Path

import pytest

from experiments import transfer_matrix as tm
from xlt import cli
from xlt.benchmarks import sources as bench_sources
from xlt.evaluation.evaluate import template_table

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS / "benchmarks"))
import bench_fixtures  # noqa: E402  (tests/benchmarks: the benchmark fixture writers)


def _instruct_fixtures():
    """tests/instruct/test_providers.py's writers (MultiAlpaca, P3, Aya), loaded under a private name."""
    spec = importlib.util.spec_from_file_location("_instruct_fixture_writers", TESTS / "instruct" / "test_providers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


WRITERS = _instruct_fixtures()
TINY_MODEL = ["ModelConfig.d_model = 32", "ModelConfig.d_ff = 64", "ModelConfig.num_heads = 2"]


@pytest.fixture(autouse=True)
def _fresh_source_cache():
    bench_sources.clear_cache()
    yield
    bench_sources.clear_cache()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    dirs = bench_fixtures.write_all(root / "benchmarks")
    dirs["multialpaca"] = WRITERS.write_multialpaca(root / "multialpaca")
    dirs["p3"] = WRITERS.write_p3(root / "P3")
    dirs["aya"] = WRITERS.write_aya(root / "aya")
    return dirs


def _sources(data: dict[str, Path], names: list[str]) -> str:
    return repr({n: str(data[n]) for n in names})


def polylm_argv(results: Path, data: dict[str, Path], model: str = "models/gpt_tiny.gin",
                pretrain_task: str = "bible_en", **extra: str) -> list[str]:
    langs = {"xnli": ["en", "de"], "xcopa": ["zh"], "pawsx": ["en", "ko"], "xwinograd": ["en", "ja"],
             "tydiqa": ["en", "ko"]}
    bindings = {
        "MULTIALPACA_DIR": repr(str(data["multialpaca"])),
        "BENCHMARK_SOURCES": _sources(data, list(langs)),
        "transfer_matrix.train_sets": "['ko+ja+de']",      # the fixture's MultiAlpaca languages
        "transfer_matrix.benchmark_languages": repr(langs),  # the fixtures' languages
        **extra,
    }
    return _argv("experiments/polylm.gin", results, bindings, model, pretrain_task)


def han24_argv(results: Path, data: dict[str, Path], **extra: str) -> list[str]:
    names = ["kobest_boolq", "kobest_copa", "kobest_hellaswag", "kobest_sentineg", "kobest_wic", "pawsx",
             "belebele", "xnli", "xwinograd", "xstorycloze"]
    bindings = {"P3_DIR": repr(str(data["p3"])), "KOREAN_DIR": repr(str(data["aya"])),
                "BENCHMARK_SOURCES": _sources(data, names), **extra}
    return _argv("experiments/han24.gin", results, bindings, "models/t5_tiny.gin", "bible_en_prefix")


def _argv(gin_file: str, results: Path, bindings: dict[str, str], model: str, pretrain_task: str) -> list[str]:
    base = {
        "BASE_CHECKPOINT": "None", "VOCAB_KIND": "'byte'", "TRAIN_STEPS": "2",
        "transfer_matrix.results_dir": repr(str(results)),
        "transfer_matrix.model_gin": repr(model),
        "transfer_matrix.base_gin_files": repr([model, "runs/pretrain.gin"]),
        "transfer_matrix.base_bindings": repr(["TRAIN_STEPS = 2", "BATCH_SIZE = 8", "SEQ_LEN = 64",
                                               f"MIXTURE_OR_TASK_NAME = '{pretrain_task}'", *TINY_MODEL]),
        "transfer_matrix.tune_bindings": repr(["SEQ_LEN = 192", "INPUT_LEN = 128", "learning_rate_schedule.peak = 1e-2",
                                               "learning_rate_schedule.warmup_steps = 1", *TINY_MODEL]),
        "transfer_matrix.batch_size": "8",
        "transfer_matrix.max_items_per_task": "2",
        "transfer_matrix.eval_batch_size": "8",
        **bindings,
    }
    return [f"--gin_file={gin_file}", *(f"--gin.{k}={v}" for k, v in base.items())]


def config_of(argv: list[str]) -> tm.MatrixConfig:
    from xlt.data import tasks  # noqa: F401 - registers `vocabulary`
    files, bindings, search, _ = cli.parse_gin_args(argv)
    cli.load_gin(files, bindings, search)
    return tm.MatrixConfig.from_gin()


def template_tables(cfg: tm.MatrixConfig) -> str:
    """Every row's per-benchmark, per-template table (from the cells' records), one section per row."""
    parts = []
    for row in [tm.BASE_ROW] + [r for r, _, _ in cfg.rows()]:
        records = []
        for column, _, _ in cfg.columns():
            records += json.loads((cfg.eval_dir(row, column) / "records.json").read_text())
        parts.append(f"# {cfg.name}: row {row}\n\n" + template_table(records))
    return "\n".join(parts)


def run_study(argv: list[str]) -> tuple[tm.MatrixConfig, dict]:
    cfg = config_of(argv)
    matrix = tm.run(cfg, out=io.StringIO())
    table = template_tables(cfg)
    (cfg.root / "templates.md").write_text(table, encoding="utf-8")
    print(tm.matrix_markdown(matrix))
    print(table)
    return cfg, matrix


def check_matrix(cfg: tm.MatrixConfig, matrix: dict, rows: list[str]) -> None:
    assert [r["row"] for r in matrix["rows"]] == [tm.BASE_LABEL, *rows]
    columns = [key for key, _, _ in cfg.columns()]
    assert matrix["columns"] == columns
    for r in matrix["rows"]:
        assert sorted(r["cells"]) == sorted(columns)
        for cell in r["cells"].values():
            assert 0.0 <= cell["mean"] <= 1.0 and cell["std"] >= 0.0 and cell["n_values"] >= 3
    for (row, _, _) in cfg.rows():
        assert (cfg.tuned_dir(row) / "checkpoints").is_dir()
    for name in ("matrix.json", "matrix.md", "matrix_score.png", "matrix_gain.png"):
        assert (cfg.root / name).is_file()


@pytest.mark.slow  # a tiny base pretrained, one tuning run, 2 x 9 evaluation cells: about a minute or more
def test_polylm_study_runs_on_fixtures(tmp_path, data):
    cfg, matrix = run_study(polylm_argv(tmp_path, data))
    assert cfg.instruction_spec("ko+ja+de")["name"] == "multialpaca"
    check_matrix(cfg, matrix, ["ko+ja+de"])
    assert matrix["primary_metrics"]["tydiqa/ko"] == "squad_f1"
    # A generation benchmark's per-item lines carry chrF, not its F1: no statistics on another metric.
    assert matrix["rows"][1]["cells"]["tydiqa/ko"]["p"] is None and matrix["rows"][1]["cells"]["xnli/de"]["p"] is not None
    assert matrix["primary_metrics"]["xnli/de"] == "accuracy"
    # A choice column reports the four rankings, a generation column the benchmark's metrics and both
    # language-confusion rates; every template of every item (2 items x all templates).
    xnli = json.loads((cfg.eval_dir("ko+ja+de_s0", "xnli/de") / "records.json").read_text())
    assert {r["metric"] for r in xnli} == {"accuracy", "accuracy_norm", "accuracy_char", "accuracy_pmi"}
    assert len({r["template_id"] for r in xnli}) >= 3 and all(r["n"] == 2 for r in xnli)
    tydiqa = json.loads((cfg.eval_dir(tm.BASE_ROW, "tydiqa/ko") / "records.json").read_text())
    assert {"squad_exact_match", "squad_f1", "wrong_language", "line_pass_rate"} <= {r["metric"] for r in tydiqa}
    report = (cfg.eval_dir(tm.BASE_ROW, "xcopa/zh") / "report.md").read_text()
    assert "## Per benchmark and template" in report and "### xcopa" in report
    # The tuning run read the MultiAlpaca fixture through register_instruct_tasks(data=...): its recorded gin
    # config names the provider and source, and its metrics the share of each MultiAlpaca language.
    tuned = cfg.tuned_dir("ko+ja+de_s0")
    gin_text = (tuned / "config.gin").read_text()
    assert "register_instruct_tasks.data = @instruction_data()" in gin_text
    assert "instruction_data.name = 'multialpaca'" in gin_text and str(data["multialpaca"]) in gin_text
    last = json.loads((tuned / "metrics.jsonl").read_text().splitlines()[-1])
    assert {k for k in last if k.startswith("lang_share/")} == {"lang_share/ko", "lang_share/ja", "lang_share/de"}

    # python -m xlt.eval takes registry benchmarks too: --gin.BENCHMARKS / BENCHMARK_SOURCES.
    from xlt.evaluation import evaluate as ev
    out = tmp_path / "cli_eval"
    argv = ["--gin_file=runs/eval.gin", f"--gin.CHECKPOINT='{tuned}'", "--gin.BENCHMARKS=['xnli', 'pawsx']",
            "--gin.EVAL_LANGUAGES=['en']", f"--gin.BENCHMARK_SOURCES={_sources(data, ['xnli', 'pawsx'])}",
            f"--gin.EVAL_DIR='{out}'", "--gin.evaluate.max_items_per_task=1", "--gin.evaluate.quiet=True"]
    assert cli.main(ev.main, argv) == 0
    records = json.loads((out / "records.json").read_text())
    assert {(r["task"], r["content_lang"]) for r in records} == {("xnli", "en"), ("pawsx", "en")}


@pytest.mark.slow  # a tiny T5 base, two tuning runs (P3, Korean Aya), 3 x 12 evaluation cells: minutes
def test_han24_study_runs_on_fixtures(tmp_path, data):
    cfg, matrix = run_study(han24_argv(tmp_path, data))
    check_matrix(cfg, matrix, ["en", "ko"])
    assert [r["instruction_data"] for r in matrix["rows"][1:]] == ["p3", "aya"]
    assert {"kobest_copa/ko", "pawsx/ko", "belebele/ko", "xnli/en", "pawsx/en"} <= set(matrix["columns"])


def test_both_studies_validate_with_cross_lingual_templates(tmp_path, data):
    cfg = config_of(han24_argv(tmp_path, data, TEMPLATE_MODE="'cross'", NAME="'han24_cross'"))
    assert cfg.template_mode == "cross"
    assert tm.template_setting(cfg.template_mode, None, cfg.cross_template_langs, ("ko",)) == ("cross", "en")
    config_of(polylm_argv(tmp_path, data))
    assert not list(tmp_path.iterdir())  # validation writes nothing


def _one_line_error(argv: list[str], capsys) -> str:
    assert cli.main(tm.main, argv) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("xlt: error:"), err
    return err[0]


@pytest.mark.parametrize("case, message", [
    ("unknown benchmark", "unknown benchmark 'xnlii'"),
    ("language the benchmark lacks", "has no language 'ko'"),
    ("benchmark file in the wrong schema", "premise"),
    ("instruction file in the wrong schema", "instruction"),
    ("language the instruction data lacks", "fr"),
])
def test_bad_sources_fail_in_one_line_before_training(tmp_path, data, capsys, case, message):
    results = tmp_path / "results"
    extra: dict[str, str] = {}
    if case == "unknown benchmark":
        extra["transfer_matrix.benchmarks"] = "['xnlii']"
        extra["transfer_matrix.benchmark_languages"] = "None"
        extra["BENCHMARK_SOURCES"] = "None"
    elif case == "language the benchmark lacks":
        extra["transfer_matrix.benchmark_languages"] = "{'xnli': ['ko']}"
        extra["transfer_matrix.benchmarks"] = "['xnli']"
        extra["BENCHMARK_SOURCES"] = "None"
    elif case == "benchmark file in the wrong schema":
        bad = tmp_path / "xnli"
        bench_fixtures.write_jsonl(bad / "en" / "test.jsonl", [{"sentence1": "a", "sentence2": "b", "label": 0}])
        extra["transfer_matrix.benchmarks"] = "['xnli']"
        extra["transfer_matrix.benchmark_languages"] = "{'xnli': ['en']}"
        extra["BENCHMARK_SOURCES"] = repr({"xnli": str(bad)})
    elif case == "instruction file in the wrong schema":
        bad = tmp_path / "alpaca"
        bench_fixtures.write_jsonl(bad / "ko.jsonl", [{"prompt": "a", "response": "b"}])
        extra["MULTIALPACA_DIR"] = repr(str(bad))
        extra["transfer_matrix.train_sets"] = "['ko']"
    else:
        extra["transfer_matrix.train_sets"] = "['ko+fr']"
    line = _one_line_error(polylm_argv(results, data, **extra), capsys)
    assert message in line, line
    assert not results.exists()
