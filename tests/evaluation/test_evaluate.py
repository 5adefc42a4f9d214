"""The zero-shot evaluator end to end on tiny trained checkpoints (decoder-only and encoder-decoder):
outputs, agreement of its rank classification with an independent per-option forward, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from xlt import checkpoints, cli, train
from xlt.configs import EvalConfig
from xlt.data import tasks as data_tasks
from xlt.data import vocab as vocab_lib
from xlt.evaluation import evaluate as ev
from xlt.evaluation.scoring import score_options_naive
from xlt.models import build_model

# Every test here needs the `trained` fixture (two tiny models trained in-process: about a minute, more under load).
pytestmark = pytest.mark.slow

MODELS = {"gpt": ("models/gpt_tiny.gin", "bible_en_prefix"), "t5": ("models/t5_tiny.gin", "bible_en_prefix")}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = {}
    for layout, (gin_file, task) in MODELS.items():
        d = tmp_path_factory.mktemp(layout)
        argv = [f"--gin_file={gin_file}", "--gin_file=runs/pretrain.gin", "--gin.BATCH_SIZE=8", "--gin.SEQ_LEN=64",
                "--gin.TRAIN_STEPS=3", f"--gin.MODEL_DIR='{d}'", f"--gin.MIXTURE_OR_TASK_NAME='{task}'",
                "--gin.learning_rate_schedule.warmup_steps=1"]
        assert cli.main(train.main, argv) == 0
        out[layout] = d
    return out


def evaluate(checkpoint, **kwargs):
    return ev.evaluate(EvalConfig(checkpoint=str(checkpoint), quiet=True, vocabulary=data_tasks.vocabulary(kind="byte"),
                                  **kwargs))


@pytest.mark.parametrize("layout", sorted(MODELS))
def test_evaluate_writes_report_and_matches_naive_scoring(trained, tmp_path, layout):
    out = tmp_path / "eval"
    rep = evaluate(trained[layout], output_dir=str(out), languages=("en", "ko"),
                   tasks=("verse_ending_choice", "verse_language_name"), max_items_per_task=2,
                   max_new_tokens=4, batch_size=4)
    for name in ("records.json", "report.json", "report.md", "predictions.jsonl"):
        assert (out / name).is_file()
    records = json.loads((out / "records.json").read_text())
    metrics = {r["metric"] for r in records}
    assert {"accuracy", "accuracy_norm", "exact_match", "wrong_language"} <= metrics
    assert all(0.0 <= r["value"] <= 1.0 for r in records)
    # every template of every item: 2 items x 3 templates per (task, language)
    assert {(r["task"], r["content_lang"], r["template_id"]) for r in records if r["metric"] in
            ("accuracy", "exact_match")} == {(t, lang, i) for t in ("verse_ending_choice", "verse_language_name")
                                             for lang in ("en", "ko") for i in (f"{t}.{lang}.0", f"{t}.{lang}.1",
                                                                                f"{t}.{lang}.2")}
    assert "verse_ending_choice" in rep.to_markdown()

    # Independent reference: one full forward per (prompt, option) gives the same choices.
    evaluator = ev.Evaluator(str(trained[layout]), batch_size=4)
    from xlt.instruct import tasks as instruct_tasks
    examples = ev._cap_items(instruct_tasks.eval_examples("verse_ending_choice", "ko", "test"), 2)
    summed, normed = evaluator.choose(examples)
    prompts, options = evaluator.choice_inputs(examples)
    naive = score_options_naive(evaluator.model, evaluator.params, prompts, options, prefix_lm=evaluator.prefix_lm)
    assert summed == [int(np.argmax(s.loglik)) for s in naive]
    assert normed == [int(np.argmax(s.loglik / s.num_tokens)) for s in naive]
    predictions = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    ko_endings = [p for p in predictions if p["id"].startswith("verse_ending_choice/ko/")]
    assert [p["prediction"] for p in ko_endings] == summed
    # Per item: the paired bootstrap's inputs (xlt.evaluation.significance); `correct` averages to accuracy.
    assert [p["item"] for p in ko_endings] == [ex["id"].rsplit("/", 1)[0] for ex in examples]
    assert all(p["n_options"] == len(ex["options"]) for p, ex in zip(ko_endings, examples))
    for r in records:
        if r["metric"] == "accuracy":
            mine = [p["correct"] for p in predictions if p["task"] == r["task"] and p["template_id"] == r["template_id"]
                    and p["content_lang"] == r["content_lang"]]
            assert len(mine) == r["n"] and sum(mine) / len(mine) == pytest.approx(r["value"])
    assert all("correct" not in p for p in predictions if p["task"] == "verse_language_name")


def test_bad_input(trained, tmp_path):
    with pytest.raises(Exception, match="xx"):
        evaluate(trained["gpt"], languages=("xx",))
    with pytest.raises(Exception, match="cluster"):
        evaluate(trained["gpt"], languages=("en",), clusters=("no_such_cluster",))
    with pytest.raises(Exception, match="does not exist|cannot|not found|no checkpoint"):
        evaluate(tmp_path / "missing", languages=("en",))
    params, meta = checkpoints.load_params(trained["gpt"])  # the vocabulary comes from the record: none, refused
    bare = checkpoints.save_params(tmp_path / "bare", params, meta.replace(vocabulary=None))
    with pytest.raises(Exception, match="records no vocabulary"):
        ev.Evaluator(str(bare))
    with pytest.raises(Exception, match="vocabulary does not match"):
        ev.Evaluator(str(trained["gpt"]), vocabulary=data_tasks.vocabulary(kind="byte", extra_ids=10))
    assert not (tmp_path / "eval").exists()


def test_cli_one_line_error(trained, capsys):
    code = cli.main(ev.main, ["--gin_file=runs/eval.gin", f"--gin.CHECKPOINT='{trained['gpt']}'",
                              "--gin.EVAL_LANGUAGES=['en', 'xx']"])
    assert code == cli.EXIT_BAD_INPUT
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("xlt: error: ")


def test_model_and_vocabulary_come_from_the_checkpoint(trained):
    params, meta = checkpoints.load_params(trained["t5"])
    cfg = checkpoints.model_config_from_meta(meta)
    assert cfg.encoder_decoder and build_model(cfg) is not None
    assert meta.vocabulary.same_ids(vocab_lib.record_of(data_tasks.vocabulary()))
    assert ev.Evaluator(str(trained["t5"])).vocab == checkpoints.vocabulary_of(meta)


@pytest.fixture(scope="module")
def bench_dirs(tmp_path_factory):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_fixtures
    return bench_fixtures.write_all(tmp_path_factory.mktemp("benchmarks"))


def test_registry_benchmarks_every_metric_and_pmi(trained, tmp_path, bench_dirs):
    from xlt.benchmarks import sources as bench_sources
    from xlt.evaluation import calibration, confusion, metrics
    bench_sources.clear_cache()
    out = tmp_path / "eval"
    names = ("xnli", "pawsx", "tydiqa")
    evaluate(trained["gpt"], output_dir=str(out), languages=("en",), benchmarks=names,
             benchmark_sources={n: str(bench_dirs[n]) for n in names}, max_items_per_task=2, max_new_tokens=6,
             batch_size=4, korean_rouge="morpheme")
    records = json.loads((out / "records.json").read_text())
    by_task = {}
    for r in records:
        by_task.setdefault(r["task"], set()).add(r["metric"])
    assert by_task["xnli"] == by_task["pawsx"] == {"accuracy", "accuracy_norm", "accuracy_char", "accuracy_pmi"}
    assert by_task["tydiqa"] == {"squad_exact_match", "squad_f1", "wrong_language", "line_pass_rate"}
    report = (out / "report.md").read_text()
    assert "## Per benchmark and template" in report and "### xnli" in report and "### tydiqa" in report

    # accuracy_pmi recomputed by hand: option log-likelihoods minus those after the content-free prompt.
    from xlt import benchmarks
    examples = benchmarks.get("xnli", source=str(bench_dirs["xnli"])).examples("en", max_items=2)
    evaluator = ev.Evaluator(str(trained["gpt"]), batch_size=4)
    full = evaluator.score([e["inputs"] for e in examples], [e["options"] for e in examples])
    null = evaluator.score([e["null_inputs"] for e in examples], [e["options"] for e in examples])
    picks = [int(np.argmax(np.asarray(f[0]) - np.asarray(n[0]))) for f, n in zip(full, null)]
    assert [r["pmi"] for r in evaluator.rank(examples)] == picks
    template = examples[0]["template_id"]
    idx = [i for i, e in enumerate(examples) if e["template_id"] == template]
    expected = metrics.accuracy([picks[i] for i in idx], [examples[i]["answer"] for i in idx])
    got = next(r["value"] for r in records if r["task"] == "xnli" and r["template_id"] == template
               and r["metric"] == "accuracy_pmi")
    assert got == pytest.approx(expected)

    # Korean generation: rouge_l_morpheme beside rouge_l with the morpheme option; both confusion rates.
    pred, ref = ["서울은 한국의 수도이다"], [["서울은 대한민국의 수도입니다"]]
    values = ev._generation_values(pred, ref, ("rouge_l",), "ko", "morpheme")
    assert set(values) == {"rouge_l", "rouge_l_morpheme", "wrong_language", "line_pass_rate"}
    assert values["rouge_l_morpheme"] == metrics.rouge_l_korean(pred, ref, unit="morpheme")
    assert "rouge_l_morpheme" in ev._generation_values(pred, ref, ("squad_f1",), "ko", "morpheme")
    assert "rouge_l_morpheme" not in ev._generation_values(pred, ref, ("squad_f1",), "ko", "character")
    assert "rouge_l_morpheme" not in ev._generation_values(pred, ref, ("squad_f1",), "en", "morpheme")
    assert values["line_pass_rate"] == confusion.line_pass_rate(["서울은 한국의 수도이다"], "ko")
    assert calibration.METRIC_OF_RANKING["pmi"] == "accuracy_pmi"


def test_registry_benchmark_errors_before_loading(trained, bench_dirs):
    with pytest.raises(Exception, match="has no language 'ko'"):
        evaluate(trained["gpt"], languages=("ko",), benchmarks=("xnli",))
    with pytest.raises(Exception, match="unknown benchmark"):
        evaluate(trained["gpt"], languages=("en",), benchmarks=("xnlii",))
    with pytest.raises(Exception, match="benchmark_sources"):
        evaluate(trained["gpt"], languages=("en",), benchmarks=("xnli",), benchmark_sources={"pawsx": "/x"})
