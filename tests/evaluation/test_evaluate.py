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
