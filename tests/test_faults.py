"""Faults a long run meets, each injected for real: kill -9 (also during an asynchronous checkpoint write), a
truncated or corrupted latest checkpoint, a full disk during a save, a NaN loss. After each, a restart gives the
per-step losses of an unbroken run, bitwise. More kill moments: tools/fault_inject.py (docs/FAULTS.md)."""

from __future__ import annotations

import contextlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from xlt import checkpoints, cli, train
from xlt.errors import OutputError

REPO = Path(__file__).resolve().parent.parent

# The tiny GPT on 8 simulated devices; batch 8, 64 tokens: a step takes tens of milliseconds, a save ~2 MB.
BASE = ["--gin_file=models/gpt_tiny.gin", "--gin_file=runs/pretrain.gin", "--gin.BATCH_SIZE=8", "--gin.SEQ_LEN=64",
        "--gin.INPUT_LEN=32", "--gin.learning_rate_schedule.warmup_steps=5", "--gin.MIXTURE_OR_TASK_NAME='bible_en'",
        "--gin.train.log_every=1", "--gin.train.quiet=True"]


def argv(model_dir: Path, **bindings) -> list[str]:
    return [*BASE, f"--gin.MODEL_DIR='{model_dir}'"] + [f"--gin.{k}={v}" for k, v in bindings.items()]


def run(model_dir: Path, hook=None, **bindings) -> int:
    """The CLI in-process (one-line errors, exit 2), with an optional ``batch_hook``."""
    def main(args):
        files, gin_bindings, search = cli.gin_argv(args, "")
        train.train(train.config_from_gin(files, gin_bindings, search), batch_hook=hook)
    return cli.main(main, argv(model_dir, **bindings))


def records(model_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (model_dir / "metrics.jsonl").read_text().splitlines()]


def losses(model_dir: Path) -> dict[int, float]:
    rows = [r for r in records(model_dir) if "event" not in r]
    assert len({r["step"] for r in rows}) == len(rows), "a step logged twice"
    return {r["step"]: r["loss"] for r in rows}


def steps_on_disk(model_dir: Path) -> list[int]:
    return sorted(int(p.name) for p in (model_dir / "checkpoints").iterdir() if p.name.isdigit())


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("xlt: error: "), err
    assert not any("Traceback" in line for line in err)
    return err[-1]


# ------------------------------------------------------------------------------------------------ kill -9
def _kill(proc: subprocess.Popen, model_dir: Path, when, deadline: float) -> dict:
    """SIGKILL ``proc`` when ``when(model_dir)`` first holds; returns what was on disk at that moment."""
    while not when(model_dir):
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before the kill: {proc.communicate()[1][-2000:]}")
        assert time.time() < deadline, "the moment never came"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    ckpts = model_dir / "checkpoints"
    return {"tmp": sorted(p.name for p in ckpts.iterdir() if "tmp" in p.name) if ckpts.is_dir() else []}


def _logged_steps(model_dir: Path) -> int:
    path = model_dir / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def _writing_checkpoint(model_dir: Path, since: float) -> bool:
    """orbax's temporary directory of a save begun at or after ``since`` (not one an earlier kill left)."""
    ckpts = model_dir / "checkpoints"
    try:
        return any(p.name.endswith("orbax-checkpoint-tmp") and p.stat().st_mtime >= since for p in ckpts.iterdir())
    except FileNotFoundError:
        return False


@pytest.mark.slow  # three CLI processes, killed, and two in-process runs: about a minute on 2 cores
def test_kill_9_at_three_moments_then_resume_is_bitwise_exact(tmp_path):
    """SIGKILL three times (mid-training, during an async checkpoint write, mid-training again), restart each
    time; the finished run logs the very losses of an unbroken one, each step once."""
    steps = dict(TRAIN_STEPS=16, CHECKPOINT_EVERY=3, **{"train.keep_checkpoints": 2})
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert run(whole, **steps) == 0
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    rng = random.Random(15)
    at = [rng.randint(2, 6), None, None]
    launched = [0.0]
    moments = [lambda d: _logged_steps(d) >= at[0],  # somewhere in the first steps
               lambda d: _writing_checkpoint(d, launched[0]),  # a save of this process is being written
               lambda d: _logged_steps(d) >= at[2]]
    seen = []
    for i, when in enumerate(moments):
        if i == 2:
            at[2] = _logged_steps(killed) + rng.randint(1, 4)  # a few steps into the restarted run
        launched[0] = time.time()
        proc = subprocess.Popen([sys.executable, "-m", "xlt.train", *argv(killed, **steps)], cwd=REPO, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            seen.append(_kill(proc, killed, when, time.time() + 300))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert seen[1]["tmp"], "the second kill must land during a checkpoint write"
    assert run(killed, **steps) == 0
    assert losses(killed) == losses(whole)  # bitwise: the same floats, step by step
    assert sorted(losses(killed)) == list(range(1, 17))
    assert not [p for p in (killed / "checkpoints").iterdir() if "tmp" in p.name], "temporary directories left"


# --------------------------------------------------------------------------------- unreadable checkpoints
def _truncate_largest_state_file(step_dir: Path) -> None:
    biggest = max((p for p in (step_dir / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    biggest.write_bytes(biggest.read_bytes()[: biggest.stat().st_size // 2])


def _flip_bytes_in_state(step_dir: Path) -> None:
    """Zero 64 bytes in the middle of every data file: sizes unchanged, so only the content can tell."""
    for p in (step_dir / "state").rglob("*"):
        if p.is_file() and "/d/" in str(p) and p.stat().st_size > 256:
            data = bytearray(p.read_bytes())
            mid = len(data) // 2
            data[mid:mid + 64] = bytes(64)
            p.write_bytes(bytes(data))


def _truncate_meta(step_dir: Path) -> None:
    meta = step_dir / "meta" / "metadata"
    meta.write_text(meta.read_text()[:40])


@pytest.mark.slow  # four short in-process runs
def test_unreadable_latest_checkpoint_falls_back_to_the_previous(tmp_path, caplog):
    """Truncated state, content changed in place, truncated record: each time the restart warns in one line,
    resumes from the previous complete checkpoint and reproduces the unbroken losses."""
    common = dict(TRAIN_STEPS=6, CHECKPOINT_EVERY=2, **{"train.keep_checkpoints": 5, "train.async_checkpoints": False})
    assert run(tmp_path, **common) == 0
    whole = losses(tmp_path)
    assert steps_on_disk(tmp_path) == [2, 4, 6]
    for damage in (_truncate_largest_state_file, _flip_bytes_in_state, _truncate_meta):
        damage(tmp_path / "checkpoints" / "6")
        caplog.clear()
        assert run(tmp_path, **common) == 0, damage.__name__
        warnings = [r.getMessage() for r in caplog.records if "previous complete checkpoint" in r.getMessage()]
        assert len(warnings) == 1 and "\n" not in warnings[0], warnings
        assert "checkpoints/6" in warnings[0] and "step 4" in warnings[0], warnings[0]
        assert losses(tmp_path) == whole, damage.__name__
        assert steps_on_disk(tmp_path) == [2, 4, 6]  # step 6 written again
        assert (tmp_path / "checkpoints.unreadable" / "6").is_dir()  # the bad one set aside, not deleted


def test_no_readable_checkpoint_is_a_one_line_error(tmp_path, capsys):
    common = dict(TRAIN_STEPS=2, CHECKPOINT_EVERY=1, **{"train.keep_checkpoints": 5, "train.async_checkpoints": False})
    assert run(tmp_path, **common) == 0
    for step in ("1", "2"):
        _truncate_meta(tmp_path / "checkpoints" / step)
    before = (tmp_path / "metrics.jsonl").read_text()
    assert run(tmp_path, **{**common, "TRAIN_STEPS": 3}) == cli.EXIT_BAD_INPUT
    assert "no readable checkpoint in" in one_line_error(capsys)
    assert (tmp_path / "metrics.jsonl").read_text() == before
    assert steps_on_disk(tmp_path) == [1, 2]


def test_state_checksum_ignores_the_mesh_and_sees_one_changed_element(devices):
    from jax.sharding import NamedSharding, PartitionSpec as P
    x = np.arange(64, dtype=np.float32).reshape(8, 8) / 7
    state = {"a": x, "b": np.int32(3), "c": x.astype(jax.numpy.bfloat16)}
    mesh = jax.sharding.Mesh(np.array(devices).reshape(4, 2), ("x", "y"))
    sharded = {**state, "a": jax.device_put(x, NamedSharding(mesh, P("x", "y")))}
    assert checkpoints.state_checksum(state) == checkpoints.state_checksum(sharded)
    y = x.copy()
    y[3, 5] = np.nextafter(y[3, 5], np.float32(9))  # one bit
    changed = checkpoints.state_checksum({**state, "a": y})
    assert changed["a"] != checkpoints.state_checksum(state)["a"] and changed["b"] == 3


# ------------------------------------------------------------------------------------------------ full disk
@contextlib.contextmanager
def _small_filesystem(where: Path, size_mb: int):
    """A real tmpfs of ``size_mb`` at ``where`` (needs the right to mount: root or CAP_SYS_ADMIN)."""
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip()[:80]}); the RLIMIT_FSIZE case still runs")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _when_saved(path: Path) -> None:
    """Wait for an async save to finish (orbax renames its temporary directory to ``path`` last)."""
    deadline = time.time() + 120
    while not path.is_dir():
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def _fill_disk_at(step: int, directory: Path, leave: int, saved: Path):
    """A batch hook that, before ``step`` (once ``saved`` is written), fills ``directory``'s filesystem up to
    ``leave`` free bytes."""
    def hook(at, batch):
        if at == step:
            _when_saved(saved)
            free = shutil.disk_usage(directory).free
            with open(directory / "ballast", "wb") as f:
                f.write(b"\0" * max(free - leave, 0))
        return batch
    return hook


def _file_size_limit_at(step: int, limit: int, undo: list, saved: Path):
    """A batch hook that, before ``step`` (once ``saved`` is written), caps the size of any file this process
    writes (RLIMIT_FSIZE: a write past it fails with EFBIG; Python ignores SIGXFSZ)."""
    def hook(at, batch):
        if at == step:
            _when_saved(saved)
            soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
            undo.append((soft, hard))
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        return batch
    return hook


@pytest.mark.slow  # three in-process runs each
@pytest.mark.parametrize("how", ["tmpfs", "rlimit_fsize"])
def test_full_disk_during_a_save_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, capsys, how):
    """Step 4's checkpoint fits; before step 5 the disk fills (a 24 MB tmpfs with 64 KB left) or files are
    capped at 64 KB: the async save of step 8 fails. One line, exit 2, no half-written directory, and step 4
    restores and reproduces the losses the failed run logged."""
    common = dict(TRAIN_STEPS=8, CHECKPOINT_EVERY=4, **{"train.keep_checkpoints": 5})
    undo: list = []
    with contextlib.ExitStack() as stack:
        if how == "tmpfs":
            model_dir = stack.enter_context(_small_filesystem(tmp_path / "small", 24)) / "run"
            model_dir.mkdir()
            hook = _fill_disk_at(5, model_dir.parent, 64 << 10, model_dir / "checkpoints" / "4")
        else:
            model_dir = tmp_path / "run"
            hook = _file_size_limit_at(5, 64 << 10, undo, model_dir / "checkpoints" / "4")
        try:
            assert run(model_dir, hook, **common) == cli.EXIT_BAD_INPUT
        finally:
            for limits in undo:
                resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        line = one_line_error(capsys)
        assert f"cannot save checkpoint {model_dir}/checkpoints/8" in line and "step 4 is intact" in line, line
        assert any(s in line for s in ("No space left", "too large", "EFBIG", "ENOSPC")), line
        assert [p.name for p in (model_dir / "checkpoints").iterdir()] == ["4"], "half-written save left behind"
        logged = losses(model_dir)
        assert sorted(logged) == list(range(1, 9))  # every step ran; only the save failed
        (model_dir.parent / "ballast").unlink(missing_ok=True)
        assert run(model_dir, **common) == 0  # resumes from step 4
        assert losses(model_dir) == logged


def test_a_failing_metrics_write_is_one_line(tmp_path):
    log = train.MetricsLog(tmp_path, 0)
    (tmp_path / "metrics.jsonl").mkdir()  # appending to a directory fails like a full disk: an OSError
    with pytest.raises(OutputError, match="cannot write .*metrics.jsonl"):
        log.write({"step": 1, "loss": 1.0})
    log.close()


# ------------------------------------------------------------------------------------------------ metrics
def test_metrics_log_drops_lines_past_the_restored_step_and_a_torn_one(tmp_path, caplog):
    lines = [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.5}, {"step": 2, "event": "data_change"},
             {"step": 2, "event": "nonfinite_skipped", "loss": "nan"}, {"step": 3, "loss": 2.0}]
    text = "".join(json.dumps(x) + "\n" for x in lines) + '{"step": 4, "lo'  # cut by a kill
    (tmp_path / "metrics.jsonl").write_text(text)
    train.MetricsLog(tmp_path, 2).close()
    assert records(tmp_path) == [lines[0], lines[1], lines[3]]  # the restart re-records its data_change
    assert any("incomplete line" in r.getMessage() for r in caplog.records)


# ------------------------------------------------------------------------------------------------ NaN / inf
def _nan_at(step: int):
    """A batch hook: at ``step`` every loss weight is NaN (float weights; the loss is their weighted sum)."""
    def hook(at, batch):
        if at == step:
            batch = {**batch, "decoder_loss_weights": np.full(batch["decoder_loss_weights"].shape, np.nan,
                                                              np.float32)}
        return batch
    return hook


def test_nonfinite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    common = dict(TRAIN_STEPS=8, CHECKPOINT_EVERY=2, **{"train.keep_checkpoints": 5})
    assert run(tmp_path, _nan_at(5), **common) == cli.EXIT_BAD_INPUT
    line = one_line_error(capsys)
    assert "loss is nan" in line and "at step 5;" in line and "step 4, is kept" in line, line
    assert steps_on_disk(tmp_path) == [2, 4]  # nothing at or after the bad step
    params, _ = checkpoints.load_params(tmp_path)
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(params))
    assert sorted(losses(tmp_path)) == [1, 2, 3, 4]  # the bad step is not logged as a result


def test_nonfinite_skip_drops_that_update_and_logs_it(tmp_path):
    common = dict(TRAIN_STEPS=4, CHECKPOINT_EVERY=1, **{"train.keep_checkpoints": 5, "train.nonfinite": "'skip'",
                                                        "train.async_checkpoints": False})
    assert run(tmp_path, _nan_at(3), **common) == 0
    rows = records(tmp_path)
    assert [r for r in rows if r.get("event")] == [{"step": 3, "event": "nonfinite_skipped", "loss": "nan",
                                                    "grad_norm": "nan"}]
    got = losses(tmp_path)
    assert got[3] is None and all(np.isfinite(got[s]) for s in (1, 2, 4)), got
    p2, p3 = (checkpoints.load_params(tmp_path / "checkpoints" / s)[0] for s in ("2", "3"))
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(p2), jax.tree.leaves(p3)))  # no update
    assert steps_on_disk(tmp_path) == [1, 2, 3, 4]


def test_restore_refuses_a_state_that_differs_from_its_checksum(tmp_path):
    """tensorstore already rejects damaged chunks it can decode-check (the test above); the record's checksum
    also catches bytes that decode fine but changed: here the record is the one that differs."""
    from xlt.models import ModelConfig
    state = {"w": jax.numpy.arange(32, dtype=jax.numpy.float32).reshape(4, 8), "n": jax.numpy.int32(7)}
    ckpt = checkpoints.Checkpointer(tmp_path, 3, async_save=False)
    ckpt.save(1, state, checkpoints.CheckpointMeta(kind="train", model=ModelConfig(), vocabulary=None))
    ckpt.wait()
    meta = ckpt.read_meta(1)
    assert meta.state_checksum == checkpoints.state_checksum(state)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
    assert np.array_equal(ckpt.restore(1, abstract, meta)["w"], state["w"])
    other = meta.replace(state_checksum={**meta.state_checksum, "w": (meta.state_checksum["w"] + 1) % 2 ** 32})
    with pytest.raises(checkpoints.UnreadableCheckpoint, match="does not match its checksum"):
        ckpt.restore(1, abstract, other)
    ckpt.close()
