"""Evaluation during training (``train.eval_every``): eval records at the right steps in metrics.jsonl and
TensorBoard, the live-parameter values equal to evaluating the saved checkpoint of that step (an xlt built-in
task and an lm-evaluation-harness task), training untouched (the same losses as a run without evaluation),
and bad settings refused in one line before anything is written."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from xlt import cli, train
from xlt.configs import EvalConfig, TrainConfig
from xlt.errors import ConfigError

sys.path.insert(0, str(Path(__file__).resolve().parent / "benchmarks"))
from lm_eval_fixtures import write_tasks  # noqa: E402

BASE = ["--gin_file=models/gpt_tiny.gin", "--gin_file=runs/pretrain.gin", "--gin.BATCH_SIZE=8", "--gin.SEQ_LEN=64",
        "--gin.INPUT_LEN=32", "--gin.learning_rate_schedule.warmup_steps=2", "--gin.MIXTURE_OR_TASK_NAME='bible_en'",
        "--gin.TRAIN_STEPS=4", "--gin.CHECKPOINT_EVERY=2", "--gin.train.log_every=1",
        "--gin.train.keep_checkpoints=5", "--gin.train.async_checkpoints=False", "--gin.train.quiet=True"]
BUILTIN = "verse_ending_choice"


def lines(model_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (model_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow  # two tiny training runs and three evaluations: about a minute and a half on 2 cores
def test_eval_every_logs_live_values_equal_to_the_checkpoint(tmp_path):
    pytest.importorskip("lm_eval")
    from xlt.evaluation import evaluate as ev
    from xlt.evaluation import live

    tasks = write_tasks(tmp_path / "tasks")
    harness_task = "lm_eval:toy_mc_de"
    run_dir = tmp_path / "run"
    evals = ["--gin.train.eval_every=2", f"--gin.train.eval_benchmarks=['{BUILTIN}', '{harness_task}']",
             "--gin.train.eval_languages=['en']", "--gin.train.eval_max_items=3", "--gin.train.eval_batch_size=8",
             f"--gin.train.eval_benchmark_sources={{'{harness_task}': '{tasks}'}}"]
    assert cli.main(train.main, [*BASE, f"--gin.MODEL_DIR='{run_dir}'", *evals]) == 0
    got = lines(run_dir)
    eval_lines = [r for r in got if r.get("event") == "eval"]
    assert [r["step"] for r in eval_lines] == [2, 4]
    for r in eval_lines:
        keys = {k for k in r if k.startswith("eval/")}
        want = {f"eval/{BUILTIN}/en/accuracy", f"eval/{harness_task}/de/acc", f"eval/{harness_task}/de/acc_norm"}
        assert want <= keys, keys
        assert all(0.0 <= r[k] <= 1.0 for k in keys) and r["eval_seconds"] > 0
    assert list((run_dir / "tb").iterdir())

    # The live values are those of the saved checkpoint of the same step (mid-run), evaluated on the same mesh.
    for step_record in eval_lines[:1]:
        checkpoint = run_dir / "checkpoints" / str(step_record["step"])
        report = ev.evaluate(EvalConfig(checkpoint=str(checkpoint), languages=("en",), mesh_shape=(-1, 1, 1),
                                        benchmarks=(BUILTIN, harness_task),
                                        benchmark_sources={harness_task: str(tasks)}, max_items_per_task=3,
                                        batch_size=8, quiet=True))
        saved = live.scalars(report)
        assert saved == {k: v for k, v in step_record.items() if k.startswith("eval/")}

    # Evaluation does not touch training: the same losses, bitwise, as a run without it.
    plain_dir = tmp_path / "plain"
    assert cli.main(train.main, [*BASE, f"--gin.MODEL_DIR='{plain_dir}'"]) == 0
    losses = {r["step"]: r["loss"] for r in got if "loss" in r}
    assert losses == {r["step"]: r["loss"] for r in lines(plain_dir)} and sorted(losses) == [1, 2, 3, 4]


@pytest.mark.parametrize("changes, message", [
    (dict(eval_every=2, eval_benchmarks=("no_such_benchmark",)), "unknown benchmark 'no_such_benchmark'"),
    (dict(eval_every=2), "TrainConfig.eval_benchmarks must be a non-empty list when eval_every is set"),
    (dict(eval_every=2, eval_benchmarks=("lm_eval:xnli_ko",), eval_benchmark_sources={"lm_eval:xnli_ko": "TASKS"}),
     "unknown lm-eval task 'xnli_ko'"),
    (dict(eval_every=2, eval_benchmarks=("xnli",), eval_languages=("ko",)), "benchmark 'xnli' has no language 'ko'"),
    (dict(eval_every=-1), "TrainConfig.eval_every must be an integer >= 0 or None"),
])
def test_bad_eval_settings_are_one_line_errors(tmp_path, changes, message):
    if "eval_benchmark_sources" in changes:  # a local task directory (lm-eval's own index takes long to build)
        tasks = str(write_tasks(tmp_path / "tasks"))
        changes["eval_benchmark_sources"] = {k: tasks for k in changes["eval_benchmark_sources"]}
    with pytest.raises(ConfigError) as err:
        TrainConfig(model_dir=str(tmp_path / "run"), train_steps=2, mixture_or_task_name="bible_en", **changes)
    assert message in str(err.value) and "\n" not in str(err.value), str(err.value)
    if "eval_benchmarks" in changes:
        assert "TrainConfig.eval_benchmarks" in str(err.value)


def test_cli_bad_eval_benchmark_exits_2_and_writes_nothing(tmp_path, capsys):
    run_dir = tmp_path / "run"
    argv = [*BASE, f"--gin.MODEL_DIR='{run_dir}'", "--gin.train.eval_every=2", "--gin.train.eval_benchmarks=['xnlii']"]
    assert cli.main(train.main, argv) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("xlt: error: unknown benchmark 'xnlii'") and "TrainConfig.eval_benchmarks" in err[-1]
    assert not run_dir.exists()
