"""The trainer end to end: real text, every layout, exact resume, SIGTERM, and bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xlt import cli, train

REPO = Path(__file__).resolve().parent.parent

# Small and fast: batch 8 fills the 8 simulated devices on the default (-1, 1, 1) mesh.
BASE = ["--gin_file=runs/pretrain.gin", "--gin.BATCH_SIZE=8", "--gin.SEQ_LEN=64", "--gin.INPUT_LEN=32",
        "--gin.learning_rate_schedule.warmup_steps=5"]
MODELS = {"gpt": ("models/gpt_tiny.gin", "bible_en"), "llama": ("models/llama_tiny.gin", "bible_ko_prefix"),
          "t5": ("models/t5_tiny.gin", "bible_ja_prefix")}


def run(argv: list[str]) -> int:
    return cli.main(train.main, argv)


def args(model_dir: Path, layout: str = "gpt", **bindings) -> list[str]:
    gin_file, task = MODELS[layout]
    out = [f"--gin_file={gin_file}", *BASE, f"--gin.MODEL_DIR='{model_dir}'", f"--gin.MIXTURE_OR_TASK_NAME='{task}'"]
    return out + [f"--gin.{k}={v}" for k, v in bindings.items()]


def losses(model_dir: Path) -> dict[int, float]:
    lines = (model_dir / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r["loss"] for r in map(json.loads, lines)}


@pytest.mark.slow  # training runs of 30 s or more on the 2-core machine
@pytest.mark.parametrize("layout", sorted(MODELS))
def test_loss_falls_on_real_text(tmp_path, layout):
    assert run(args(tmp_path, layout, TRAIN_STEPS=60, **{"train.log_every": 10})) == 0
    got = losses(tmp_path)
    assert sorted(got) == [10, 20, 30, 40, 50, 60]
    # Byte-level cross-entropy starts near ln(384) ≈ 5.95 (uniform); a working model halves it within 60
    # steps and keeps improving after the first logged step.
    assert got[60] < 0.5 * 5.95, got
    assert min(got[k] for k in (30, 40, 50, 60)) < 0.8 * got[10], got
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    for key in ("step", "loss", "learning_rate", "tokens_per_second"):
        assert all(key in r for r in records)
    assert all(r["tokens_per_second"] > 0 for r in records)
    assert "ModelConfig.layout" in (tmp_path / "config.gin").read_text()
    assert (tmp_path / "checkpoints" / "60").is_dir()
    assert list((tmp_path / "tb").iterdir()), "TensorBoard events missing"


@pytest.mark.slow  # training runs of 30 s or more on the 2-core machine
def test_resume_is_bitwise_exact(tmp_path):
    """Interrupt (drop the later checkpoints), restart, and get the very same per-step losses."""
    common = dict(TRAIN_STEPS=12, CHECKPOINT_EVERY=4, **{"train.log_every": 1, "train.keep_checkpoints": 5,
                                                         "train.async_checkpoints": False})
    assert run(args(tmp_path, **common)) == 0
    uninterrupted = losses(tmp_path)
    assert sorted(uninterrupted) == list(range(1, 13))
    ckpts = tmp_path / "checkpoints"
    assert sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit()) == [4, 8, 12]
    for step in ("8", "12"):  # as if the job died after saving step 4
        import shutil
        shutil.rmtree(ckpts / step)
    assert run(args(tmp_path, **common)) == 0
    resumed = losses(tmp_path)
    assert sorted(resumed) == list(range(1, 13))  # lines past step 4 were replaced, not duplicated
    assert resumed == uninterrupted  # bitwise: same floats, step by step


@pytest.mark.slow  # training runs of 30 s or more on the 2-core machine
def test_sigterm_saves_and_resumes_exactly(tmp_path):
    """The real CLI under SIGTERM: exits 0 with a checkpoint, and the resumed run matches an unbroken one."""
    steps = 120
    common = ["--gin.train.log_every=1", f"--gin.TRAIN_STEPS={steps}", "--gin.CHECKPOINT_EVERY=1000"]
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "xlt.train", *args(killed), *common]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (killed / "metrics.jsonl").exists() or not (killed / "metrics.jsonl").read_text().strip():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "training never logged a step"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    assert "preempted: saved step" in err
    saved = [int(p.name) for p in (killed / "checkpoints").iterdir() if p.name.isdigit()]
    assert len(saved) == 1 and 0 < saved[0] < steps, saved
    # Resume in-process to the end; compare with an uninterrupted run.
    assert run(args(killed, TRAIN_STEPS=steps, CHECKPOINT_EVERY=1000, **{"train.log_every": 1})) == 0
    whole = tmp_path / "whole"
    assert run(args(whole, TRAIN_STEPS=steps, CHECKPOINT_EVERY=1000, **{"train.log_every": 1})) == 0
    assert losses(killed) == losses(whole)


@pytest.mark.slow  # training runs of 30 s or more on the 2-core machine
def test_grad_accumulation_matches_full_batch(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    # fsdp=4, tensor=2: parameters really sharded; microbatches of 4 still fill the batch axes.
    common = dict(TRAIN_STEPS=3, MESH_SHAPE="(1,4,2)", **{"train.log_every": 1})
    assert run(args(a, **common)) == 0
    assert run(args(b, **common, **{"train.grad_accum_steps": 2})) == 0
    for (sa, la), (sb, lb) in zip(sorted(losses(a).items()), sorted(losses(b).items())):
        assert sa == sb and la == pytest.approx(lb, rel=1e-5, abs=1e-6)


@pytest.mark.slow  # training runs of 30 s or more on the 2-core machine
@pytest.mark.parametrize("layout", ["gpt", "t5"])
def test_chunked_loss_run_matches_plain(tmp_path, layout):
    """ModelConfig.loss_chunk_len bound in gin: the trainer logs the losses of the unchunked run (the step's
    loss comes from the hidden states, chunk by chunk, on a sharded mesh; 24 does not divide SEQ_LEN 64)."""
    a, b = tmp_path / "plain", tmp_path / "chunked"
    common = dict(TRAIN_STEPS=3, MESH_SHAPE="(2,2,2)", **{"train.log_every": 1})
    assert run(args(a, layout, **common)) == 0
    assert run(args(b, layout, **common, **{"ModelConfig.loss_chunk_len": 24})) == 0
    assert "ModelConfig.loss_chunk_len = 24" in (b / "config.gin").read_text()
    plain, chunked = losses(a), losses(b)
    assert sorted(plain) == sorted(chunked) == [1, 2, 3]
    for step in plain:
        assert chunked[step] == pytest.approx(plain[step], rel=1e-5, abs=1e-6), (step, plain, chunked)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "no error printed"
    assert err[-1].startswith("xlt: error: ")
    assert not any("Traceback" in line for line in err)
    return err[-1]


@pytest.mark.parametrize("extra, expect", [
    (["--gin_file=no/such/file.gin"], "gin file not found: no/such/file.gin"),
    (["--gin.NoSuchThing.value=1"], "NoSuchThing"),
    (["--gin.MESH_SHAPE=(3,1,1)"], "needs 3 devices but 8 are present"),
    (["--gin.MIXTURE_OR_TASK_NAME='bible_xx'"], "unknown task or mixture 'bible_xx'"),
    (["--gin.TRAIN_STEPS=0"], "TrainConfig.train_steps must be > 0, got 0 (TRAIN_STEPS)"),
    (["--gin.BATCH_SIZE=4"], "BATCH_SIZE=4 does not divide"),
    (["--gin.ModelConfig.layout='gpt3'"], "unknown model layout 'gpt3'"),
    (["--gin.ModelConfig.num_heads=3"], "does not divide over mesh axis"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, extra, expect):
    model_dir = tmp_path / "run"
    argv = args(model_dir, TRAIN_STEPS=5) + extra
    if extra[0].startswith("--gin.ModelConfig.num_heads"):
        argv += ["--gin.MESH_SHAPE=(1,1,8)"]  # 3 heads do not divide over tensor=8
    assert run(argv) == cli.EXIT_BAD_INPUT
    assert expect in _one_line_error(capsys)
    assert not model_dir.exists(), "bad input must not create MODEL_DIR"


def test_checkpoint_of_another_model_is_refused(tmp_path, capsys):
    assert run(args(tmp_path, TRAIN_STEPS=2)) == 0
    before = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    metrics_before = (tmp_path / "metrics.jsonl").read_text()
    assert run(args(tmp_path, TRAIN_STEPS=4, **{"ModelConfig.d_model": 32})) == cli.EXIT_BAD_INPUT
    assert "different model" in _one_line_error(capsys)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == before
    assert (tmp_path / "metrics.jsonl").read_text() == metrics_before


def test_checkpoint_of_another_data_stream_is_refused(tmp_path, capsys):
    assert run(args(tmp_path, TRAIN_STEPS=2)) == 0
    assert run(args(tmp_path, TRAIN_STEPS=4, SEED=7)) == cli.EXIT_BAD_INPUT
    assert "seed=0" in _one_line_error(capsys)


def test_cli_bad_input_exit_code_in_a_real_process(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "xlt.train", *args(tmp_path / "x", TRAIN_STEPS=-1)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == "xlt: error: TrainConfig.train_steps must be > 0, got -1 (TRAIN_STEPS)"
    assert "Traceback" not in proc.stderr


@pytest.mark.slow  # training runs of 30 s or more on the 2-core machine
def test_curriculum_run_logs_shares_and_resumes_exactly_across_the_boundary(tmp_path):
    """mixtures/curriculum.gin (on 3 of its languages, for speed): the stage switches after step 4 (the
    record of step k describes batch k-1), per-language token shares are logged, and a run resumed from
    step 3 (before the boundary) reproduces the unbroken run."""
    mix = ["--gin_file=mixtures/curriculum.gin", "--gin.CURRICULUM_SWITCH=4", "--gin.MIXTURE_OR_TASK_NAME='bible_curriculum'",
           "--gin.LANGUAGES=['en', 'ko', 'zh']"]
    common = dict(TRAIN_STEPS=8, CHECKPOINT_EVERY=3, **{"train.log_every": 1, "train.keep_checkpoints": 5,
                                                        "train.async_checkpoints": False})
    assert run(args(tmp_path, **common) + mix) == 0
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["data_stage"] for r in records] == [0, 0, 0, 0, 1, 1, 1, 1]
    shares = [{k: v for k, v in r.items() if k.startswith("lang_share/")} for r in records]
    assert all(len(s) == 3 and abs(sum(s.values()) - 1) < 1e-9 for s in shares)
    uninterrupted = losses(tmp_path)
    import shutil
    for step in ("6", "8"):  # as if the job died after saving step 3
        shutil.rmtree(tmp_path / "checkpoints" / step)
    assert run(args(tmp_path, **common) + mix) == 0
    assert losses(tmp_path) == uninterrupted
    again = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [{k: v for k, v in r.items() if k.startswith("lang_share/")} for r in again] == shares


def test_checkpoint_with_another_vocabulary_is_refused(tmp_path, capsys):
    assert run(args(tmp_path, TRAIN_STEPS=2)) == 0
    assert run(args(tmp_path, TRAIN_STEPS=4, **{"vocabulary.extra_ids": 10})) == cli.EXIT_BAD_INPUT
    assert "vocabulary does not match" in _one_line_error(capsys)


def test_fine_tuning_starts_from_init_checkpoint(tmp_path, capsys):
    """INIT_CHECKPOINT loads the parameters (bitwise: with a 1e-30 learning rate they come out unchanged)
    with a fresh optimizer at step 0; a checkpoint of another shape is refused before MODEL_DIR exists."""
    from xlt import checkpoints
    import numpy as np
    base, tuned, fresh = tmp_path / "base", tmp_path / "tuned", tmp_path / "fresh"
    assert run(args(base, TRAIN_STEPS=6, **{"train.log_every": 1})) == 0
    frozen = {"learning_rate_schedule.peak": 1e-30,  # updates vanish below fp32 resolution
              "train.log_every": 1, "TRAIN_STEPS": 1,
              "MIXTURE_OR_TASK_NAME": "'bible_ko'"}
    assert run(args(tuned, **frozen) + [f"--gin.INIT_CHECKPOINT='{base}'"]) == 0
    assert run(args(fresh, **frozen)) == 0
    a, _ = checkpoints.load_params(base)
    b, meta = checkpoints.load_params(tuned)
    import jax
    assert all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))
    assert not all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(
        checkpoints.load_params(fresh)[0]))), "a run without INIT_CHECKPOINT starts elsewhere"
    bad = tmp_path / "bad"
    assert run(args(bad, **frozen, **{"ModelConfig.d_model": 32}) + [f"--gin.INIT_CHECKPOINT='{base}'"]) == \
        cli.EXIT_BAD_INPUT
    assert "does not match the model" in _one_line_error(capsys)
    assert not bad.exists()


def test_gin_includes_resolve_with_a_runs_directory_in_cwd(tmp_path, monkeypatch):
    """A ``runs/`` directory of MODEL_DIRs in the working directory must not shadow gin/runs/*.gin."""
    import importlib
    (tmp_path / "runs" / "old_run").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    cli.load_gin(["runs/demo_pretrain.gin"], ["MODEL_DIR='x'"])
