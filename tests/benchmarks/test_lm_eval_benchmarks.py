"""lm-evaluation-harness tasks as xlt benchmarks (``lm_eval:<task>``), offline on local task files: the
evaluator's records equal the harness's own numbers (``run_harness_tasks``: ``lm_eval --model xlt``), per-document
predictions carry the item and its 0/1 value, a transfer-matrix cell reads them, and bad names are one-line
errors before any model work."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lm_eval")

from experiments import transfer_matrix as tm  # noqa: E402
from xlt import benchmarks, checkpoints  # noqa: E402
from xlt.benchmarks import harness_tasks  # noqa: E402
from xlt.configs import EvalConfig  # noqa: E402
from xlt.errors import ConfigError  # noqa: E402
from xlt.evaluation.evaluate import plan_benchmarks  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lm_eval_fixtures import MC_ROWS, write_tasks  # noqa: E402

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(checkpoint, task directory): a random tiny GPT with the byte vocabulary."""
    import flax
    import jax

    from xlt.models import ModelConfig, build_model

    root = tmp_path_factory.mktemp("lm_eval_bench")
    cfg = ModelConfig(layout="gpt", vocab_size=264, d_model=32, num_layers=1, num_heads=4, d_ff=64, max_len=128)
    batch = {"decoder_input_tokens": np.ones((1, 4), np.int32)}
    params = flax.linen.meta.unbox(jax.jit(lambda r: build_model(cfg).init(r, batch))(jax.random.key(5))["params"])
    ckpt = checkpoints.save_params(root / "gpt", jax.tree.map(np.asarray, params),
                                   {"model": cfg.to_dict(), "vocabulary": "ByteVocabulary:259"})
    return Path(ckpt), write_tasks(root / "tasks")


def test_resolution_language_and_metrics(tiny):
    _, tasks = tiny
    mc = benchmarks.get("lm_eval:toy_mc_de", source=str(tasks))
    assert (mc.task, mc.language, mc.kind, mc.metrics, mc.primary_metric, mc.split) == (
        "toy_mc_de", "de", "choice", ("acc", "acc_norm"), "acc", "test")
    gen = benchmarks.get("lm_eval:toy_gen", source=str(tasks))
    assert gen.language is None and gen.kind == "generation"
    assert gen.metrics == ("exact_match,strict", "exact_match,loose")
    assert gen.language_for(["ko"]) == "ko"
    for name, lang in (("xnli_de", "de"), ("belebele_kor_Hang", "ko"), ("include_base_44_korean", "ko"),
                       ("mgsm_direct_zh", "zh"), ("xcopa_et", None), ("piqa", None), ("arc_easy", None)):
        assert harness_tasks.infer_language(name) == lang, name


@pytest.mark.parametrize("kwargs, message", [
    (dict(benchmarks=("lm_eval:no_such_task",)), "unknown lm-eval task 'no_such_task' in"),
    (dict(benchmarks=("lm_eval:toy_mc",)), "close: toy_mc_de"),
    (dict(benchmarks=("lm_eval:toy_group",)), "group 'toy_group' names several tasks"),
    (dict(benchmarks=("lm_eval:toy_gen",), languages=("de", "fr")), "names no language"),
    (dict(benchmarks=("lm_eval:toy_mc_de",), split="validation"), "harness's split 'test'"),
])
def test_bad_harness_benchmarks_are_one_line_config_errors(tiny, kwargs, message):
    ckpt, tasks = tiny
    sources = {name: str(tasks) for name in kwargs["benchmarks"]}
    with pytest.raises(ConfigError) as err:  # the config, then its plan (checked before the model is loaded)
        plan_benchmarks(EvalConfig(checkpoint=str(ckpt), benchmark_sources=sources, **kwargs))
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)
    with pytest.raises(ConfigError, match="must be a directory of lm-eval task YAML files"):
        EvalConfig(checkpoint=str(ckpt), benchmarks=("lm_eval:toy_mc_de",),
                   benchmark_sources={"lm_eval:toy_mc_de": str(ckpt / "no_such_dir")})


@pytest.mark.slow  # two harness runs and an evaluation of a tiny model: about a minute on 2 cores
def test_eval_records_equal_the_harness_and_feed_a_matrix_cell(tiny, tmp_path):
    from xlt import harness
    from xlt.evaluation import evaluate as ev

    ckpt, tasks = tiny
    names = ("lm_eval:toy_mc_de", "lm_eval:toy_gen")
    out = tmp_path / "eval"
    ev.evaluate(EvalConfig(checkpoint=str(ckpt), output_dir=str(out), languages=("de",), benchmarks=names,
                           benchmark_sources={n: str(tasks) for n in names}, batch_size=4, quiet=True))
    records = json.loads((out / "records.json").read_text())
    got = {(r["task"], r["metric"]): r["value"] for r in records}
    assert {(r["task"], r["content_lang"], r["template_lang"], r["template_id"], r["n"]) for r in records} == {
        ("lm_eval:toy_mc_de", "de", "de", "lm_eval", 4), ("lm_eval:toy_gen", "de", "de", "lm_eval", 2)}
    # The same numbers as the harness running the checkpoint itself (lm_eval --model xlt).
    want = harness.run_harness_tasks(ckpt, ["toy_mc_de", "toy_gen"], include_path=tasks, batch_size=4)["results"]
    for task in ("toy_mc_de", "toy_gen"):
        for metric, value in want[task].items():
            if isinstance(value, float) and "stderr" not in metric:
                assert got[(f"lm_eval:{task}", metric)] == pytest.approx(value, abs=1e-12), (task, metric)
    assert {m for t, m in got if t == "lm_eval:toy_gen"} == {"exact_match,strict", "exact_match,loose"}
    # One prediction line per document: its item and the 0/1 value of the primary metric, whose mean is the record.
    lines = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    mc = [p for p in lines if p["id"].startswith("lm_eval:toy_mc_de/")]
    assert [p["item"] for p in mc] == [f"lm_eval:toy_mc_de/de/test/{i}" for i in range(4)]
    assert all(p["metric"] == "acc" and p["value"] in (0.0, 1.0) and set(p["values"]) == {"acc", "acc_norm"}
               for p in mc)
    assert [(p["task"], p["content_lang"], p["correct"], p["n_options"]) for p in mc] == [
        ("lm_eval:toy_mc_de", "de", int(p["value"]), len(r["choices"])) for p, r in zip(mc, MC_ROWS)]
    assert all(p["correct"] == int(p["prediction"] == p["gold"]) for p in mc)
    assert np.mean([p["value"] for p in mc]) == pytest.approx(got[("lm_eval:toy_mc_de", "acc")])
    assert [p["gold"] for p in mc] == [r["label"] for r in MC_ROWS]
    assert "lm_eval:toy_mc_de" in (out / "report.md").read_text()

    # A transfer-matrix column of the harness task: validated, one column in German, its cell read from the records.
    cfg = tm.MatrixConfig(name="m", results_dir=str(tmp_path / "results"), base_checkpoint=str(ckpt),
                          train_sets=("en",), test_languages=("en",), benchmarks=("lm_eval:toy_mc_de",),
                          benchmark_sources={"lm_eval:toy_mc_de": str(tasks)}, max_items_per_task=3)
    assert [key for key, _, _ in cfg.columns()] == ["lm_eval:toy_mc_de/de"]
    assert tm.primary_metric(cfg, "lm_eval:toy_mc_de") == "acc"
    import io
    tm._evaluate_row(cfg, tm.BASE_ROW, ckpt, [("lm_eval:toy_mc_de/de", "held_out")], tm.Progress(1, 0, 0, io.StringIO()),
                     hook=None)
    (values,) = tm._task_values(cfg, tm.BASE_ROW, "lm_eval:toy_mc_de/de").values()
    cell = json.loads((cfg.eval_dir(tm.BASE_ROW, "lm_eval:toy_mc_de/de") / "records.json").read_text())
    assert {r["n"] for r in cell} == {3}  # max_items_per_task is the harness's limit
    assert len(values) == 1 and 0.0 <= values[0] <= 1.0


def test_matrix_validation_of_harness_columns(tiny, tmp_path):
    ckpt, tasks = tiny
    common = dict(name="m", results_dir=str(tmp_path), base_checkpoint=str(ckpt), train_sets=("en",),
                  test_languages=("en",))
    with pytest.raises(ConfigError, match=r"unknown lm-eval task 'toy_nope'.*\(MatrixConfig.benchmarks\)"):
        tm.MatrixConfig(**common, benchmarks=("lm_eval:toy_nope",), benchmark_sources={"lm_eval:toy_nope": str(tasks)})
    with pytest.raises(ConfigError, match="MatrixConfig.benchmark_languages must be the language of harness task"):
        tm.MatrixConfig(**common, benchmarks=("lm_eval:toy_gen",), benchmark_sources={"lm_eval:toy_gen": str(tasks)})
    cfg = tm.MatrixConfig(**common, benchmarks=("lm_eval:toy_gen", "lm_eval:toy_mc_de"),
                          benchmark_sources={"lm_eval:toy_gen": str(tasks), "lm_eval:toy_mc_de": str(tasks)},
                          benchmark_languages={"lm_eval:toy_gen": ("ko",)}, template_mode="cross")
    assert [key for key, _, _ in cfg.columns()] == ["lm_eval:toy_gen/ko", "lm_eval:toy_mc_de/de"]
    assert tm.primary_metric(cfg, "lm_eval:toy_gen") == "exact_match,strict"
    with pytest.raises(ConfigError, match="is in 'de' \\(its name\\), not 'fr'"):
        tm.MatrixConfig(**common, benchmarks=("lm_eval:toy_mc_de",),
                        benchmark_sources={"lm_eval:toy_mc_de": str(tasks)},
                        benchmark_languages={"lm_eval:toy_mc_de": ("fr",)})
