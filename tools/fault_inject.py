"""Kill -9 a training run at many moments and check that it loses nothing (results: docs/FAULTS.md).

    python tools/fault_inject.py --moments 20 --workdir /tmp/xlt_faults

One unbroken reference run, then chains: a run is started with ``python -m xlt.train``, SIGKILLed at a moment,
restarted, killed again (``--kills_per_chain`` times), then left to finish; its per-step losses in metrics.jsonl
must equal the reference's bitwise, each step logged once, and no temporary checkpoint directory may be left.
Moments are drawn (``--seed``) by three strategies in turn:

* ``training``: once the process has logged a step drawn from those it will run (plus up to 0.2 s);
* ``checkpoint_write``: as soon as orbax's ``<step>.orbax-checkpoint-tmp`` directory exists (plus up to 50 ms)
  for a step drawn from those the process will save, i.e. during an asynchronous checkpoint write;
* ``any``: a uniformly random time after the process starts (so also during imports, compilation, the restore
  and the metrics rewrite).

The phase each kill actually hit is recorded from what was on disk at that instant (a temporary checkpoint
directory: ``checkpoint write``; no new metrics line yet: ``startup/restore``; else ``training``). A moment
``survived`` when its chain finished with the reference's losses; ``lost`` otherwise (a restart that failed, a
missing, duplicated or different loss). The run is the tests' tiny model (batch 8, 64 tokens) on ``--devices``
simulated CPU devices.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STRATEGIES = ("training", "checkpoint_write", "any")


def train_argv(model_dir: Path, steps: int, every: int, keep: int) -> list[str]:
    return [sys.executable, "-m", "xlt.train", "--gin_file=models/gpt_tiny.gin", "--gin_file=runs/pretrain.gin",
            "--gin.BATCH_SIZE=8", "--gin.SEQ_LEN=64", "--gin.INPUT_LEN=32",
            "--gin.learning_rate_schedule.warmup_steps=5", "--gin.MIXTURE_OR_TASK_NAME='bible_en'",
            f"--gin.MODEL_DIR='{model_dir}'", f"--gin.TRAIN_STEPS={steps}", f"--gin.CHECKPOINT_EVERY={every}",
            f"--gin.train.keep_checkpoints={keep}", "--gin.train.log_every=1", "--gin.train.quiet=True",
            "--gin.train.async_checkpoints=True"]


def environment(devices: int) -> dict[str, str]:
    """CPU only, ``devices`` simulated devices (the mesh is (-1, 1, 1): data parallel over all of them)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "JAX_PLATFORMS": "cpu",
           "CUDA_VISIBLE_DEVICES": ""}
    flags = re.sub(r"--xla_force_host_platform_device_count=\d+", "", env.get("XLA_FLAGS", ""))
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
    return env


def metric_rows(model_dir: Path) -> list[dict]:
    path = model_dir / "metrics.jsonl"
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass  # a line being written
    return [r for r in rows if "event" not in r]


def checkpoint_names(model_dir: Path) -> list[str]:
    ckpts = model_dir / "checkpoints"
    try:
        return sorted(os.listdir(ckpts)) if ckpts.is_dir() else []
    except FileNotFoundError:
        return []


def writing(model_dir: Path, since: float = 0.0) -> bool:
    """A temporary checkpoint directory exists (made at or after ``since``, a time.time())."""
    for name in checkpoint_names(model_dir):
        if name.endswith("orbax-checkpoint-tmp"):
            try:
                if (model_dir / "checkpoints" / name).stat().st_mtime >= since:
                    return True
            except FileNotFoundError:
                pass
    return False


def inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


@dataclasses.dataclass
class Moment:
    chain: int
    kill: int
    strategy: str
    phase: str = ""
    seconds_after_start: float = 0.0
    last_logged_step: int | None = None
    complete_checkpoints: list[int] = dataclasses.field(default_factory=list)
    resumed_from: int | None = None  # the step the next process restarted at
    injected: bool = False
    outcome: str = ""
    note: str = ""


def kill_once(cmd: list[str], model_dir: Path, moment: Moment, rng: random.Random, env: dict[str, str],
              typical_seconds: float, steps: int, every: int) -> tuple[Moment, str]:
    """Start ``cmd``, SIGKILL it at ``moment.strategy``'s moment; returns the moment and the process's stderr."""
    metrics = model_dir / "metrics.jsonl"
    old_inode = inode(metrics)
    restored = max((int(n) for n in checkpoint_names(model_dir) if n.isdigit()), default=0)  # where it resumes
    started, started_wall = time.monotonic(), time.time()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def restarted() -> bool:  # this process has rewritten (or created) metrics.jsonl
        now = inode(metrics)
        return now is not None and now != old_inode

    done = False
    if moment.strategy == "any":
        deadline = started + rng.uniform(0, typical_seconds)
        condition = lambda: time.monotonic() >= deadline  # noqa: E731
    elif moment.strategy == "training":  # a step drawn from those this process will run
        target = rng.randint(restored + 1, max(restored + 1, steps - 1))

        def condition():
            rows = metric_rows(model_dir) if restarted() else []
            return bool(rows) and rows[-1]["step"] >= target
    else:  # the write of a checkpoint drawn from those this process will save
        saves = sorted({*range(every, steps, every), steps} - set(range(restored + 1)))
        tmp = model_dir / "checkpoints" / f"{rng.choice(saves)}.orbax-checkpoint-tmp"

        def condition():
            try:
                return restarted() and tmp.stat().st_mtime >= started_wall
            except FileNotFoundError:
                return False
    while not condition():
        if proc.poll() is not None:
            done = True
            break
        time.sleep(0.002)
    if not done:
        if moment.strategy == "training":
            time.sleep(rng.uniform(0, 0.2))
        elif moment.strategy == "checkpoint_write":
            time.sleep(rng.uniform(0, 0.05))
        on_disk = checkpoint_names(model_dir)
        writing_now = writing(model_dir, started_wall)
        rows = metric_rows(model_dir)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            moment.injected = True
            moment.seconds_after_start = round(time.monotonic() - started, 2)
            moment.complete_checkpoints = sorted(int(n) for n in on_disk if n.isdigit())
            moment.last_logged_step = rows[-1]["step"] if rows and restarted() else None
            moment.phase = phase(moment.last_logged_step, writing_now)
    _, err = proc.communicate()
    if not moment.injected:
        moment.note = f"process ended first (exit {proc.returncode})"
    return moment, err


def phase(last_logged_step: int | None, writing_now: bool) -> str:
    """What a kill hit. Before the process has rewritten metrics.jsonl it has not trained (a temporary
    directory then is one an earlier kill left); after, a temporary directory of its own is a save."""
    if last_logged_step is None:
        return "startup/restore"
    return "checkpoint write" if writing_now else "training"


def resumed_step(stderr: str, killed: bool, had_checkpoints: bool) -> int | None:
    """The step the process restarted at: from its "resumed from" line; 0 when there was nothing to resume;
    None (unknown) when it was killed before it got that far."""
    found = re.findall(r"resumed from \S+/(\d+)", stderr)
    if found:
        return int(found[-1])
    return None if killed and had_checkpoints else 0


def run_chain(chain: int, kills: int, workdir: Path, reference: dict[int, float], args, rng: random.Random,
              env: dict[str, str], typical_seconds: float, strategy_at) -> list[Moment]:
    model_dir = workdir / f"chain_{chain}"
    shutil.rmtree(model_dir, ignore_errors=True)
    cmd = train_argv(model_dir, args.steps, args.checkpoint_every, args.keep)
    moments: list[Moment] = []
    problem = ""
    for k in range(kills):
        moment, err = kill_once(cmd, model_dir, Moment(chain, k + 1, strategy_at()), rng, env, typical_seconds,
                                args.steps, args.checkpoint_every)
        if moments:
            moments[-1].resumed_from = resumed_step(err, moment.injected, bool(moments[-1].complete_checkpoints))
        moments.append(moment)
        if not moment.injected:
            problem = problem or ("" if "exit 0" in moment.note else f"run failed: {err.strip()[-300:]}")
            break
        print(f"chain {chain} kill {k + 1}: {moment.strategy:16s} -> {moment.phase:16s} at "
              f"{moment.seconds_after_start:6.2f} s, logged {moment.last_logged_step}, complete checkpoints "
              f"{moment.complete_checkpoints}", flush=True)
    final = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    if moments and moments[-1].injected:
        moments[-1].resumed_from = resumed_step(final.stderr, False, bool(moments[-1].complete_checkpoints))
    if final.returncode != 0:
        problem = problem or f"final run exit {final.returncode}: {final.stderr.strip()[-300:]}"
    rows = metric_rows(model_dir)
    got = {r["step"]: r["loss"] for r in rows}
    if not problem and len(got) != len(rows):
        problem = "a step was logged twice"
    if not problem and got != reference:
        differ = sorted(s for s in set(got) | set(reference) if got.get(s) != reference.get(s))
        problem = f"losses differ at steps {differ[:5]}"
    if not problem and writing(model_dir):
        problem = "a temporary checkpoint directory was left"
    for m in moments:
        if m.injected:
            m.outcome = "lost" if problem else "survived"
            m.note = m.note or problem
    return moments


def markdown(moments: list[Moment], command: str, when: str, reference_seconds: float) -> str:
    injected = [m for m in moments if m.injected]
    lines = [f"Command: `{command}`  ", f"Date: {when}; reference run {reference_seconds:.0f} s.", "",
             "| kill moment (strategy) | injected | survived | lost |", "|---|---:|---:|---:|"]
    for strategy in STRATEGIES:
        group = [m for m in injected if m.strategy == strategy]
        lines.append(f"| {strategy} | {len(group)} | {sum(m.outcome == 'survived' for m in group)} | "
                     f"{sum(m.outcome == 'lost' for m in group)} |")
    lines.append(f"| **all** | **{len(injected)}** | **{sum(m.outcome == 'survived' for m in injected)}** | "
                 f"**{sum(m.outcome == 'lost' for m in injected)}** |")
    lines += ["", "| phase hit | injected | survived | lost |", "|---|---:|---:|---:|"]
    for phase in ("startup/restore", "training", "checkpoint write"):
        group = [m for m in injected if m.phase == phase]
        lines.append(f"| {phase} | {len(group)} | {sum(m.outcome == 'survived' for m in group)} | "
                     f"{sum(m.outcome == 'lost' for m in group)} |")
    lines += ["", "| chain.kill | strategy | phase hit | s after start | last logged step | complete checkpoints "
              "| restarted at | outcome |", "|---|---|---|---:|---:|---|---:|---|"]
    for m in injected:
        lines.append(f"| {m.chain}.{m.kill} | {m.strategy} | {m.phase} | {m.seconds_after_start} | "
                     f"{m.last_logged_step if m.last_logged_step is not None else '-'} | "
                     f"{m.complete_checkpoints or '-'} | {'?' if m.resumed_from is None else m.resumed_from} | "
                     f"{m.outcome}"
                     f"{' (' + m.note + ')' if m.note else ''} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--moments", type=int, default=20, help="kills to inject in all")
    parser.add_argument("--kills_per_chain", type=int, default=4, help="kills before a chain is left to finish")
    parser.add_argument("--workdir", default="/tmp/xlt_fault_inject")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=24, help="TRAIN_STEPS of every run")
    parser.add_argument("--checkpoint_every", type=int, default=4)
    parser.add_argument("--keep", type=int, default=2, help="train.keep_checkpoints (old ones are deleted)")
    parser.add_argument("--devices", type=int, default=8, help="simulated CPU devices (must divide the batch, 8)")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    env, rng = environment(args.devices), random.Random(args.seed)
    command = "python tools/fault_inject.py " + " ".join(argv if argv is not None else sys.argv[1:])
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    reference_dir = workdir / "reference"
    shutil.rmtree(reference_dir, ignore_errors=True)
    t0 = time.monotonic()
    done = subprocess.run(train_argv(reference_dir, args.steps, args.checkpoint_every, args.keep), cwd=REPO,
                          env=env, capture_output=True, text=True)
    reference_seconds = time.monotonic() - t0
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
        return 1
    reference = {r["step"]: r["loss"] for r in metric_rows(reference_dir)}
    print(f"reference: {len(reference)} steps in {reference_seconds:.0f} s", flush=True)

    turn = iter(range(10 ** 6))
    strategy_at = lambda: STRATEGIES[next(turn) % len(STRATEGIES)]  # noqa: E731
    moments: list[Moment] = []
    chain = 0
    while sum(m.injected for m in moments) < args.moments:
        chain += 1
        kills = min(args.kills_per_chain, args.moments - sum(m.injected for m in moments))
        moments += run_chain(chain, kills, workdir, reference, args, rng, env, reference_seconds, strategy_at)
        (workdir / "results.json").write_text(json.dumps([dataclasses.asdict(m) for m in moments], indent=1))
    report = markdown(moments, command, when, reference_seconds)
    (workdir / "results.md").write_text(report)
    print(report)
    return 0 if all(m.outcome == "survived" for m in moments if m.injected) else 1


if __name__ == "__main__":
    sys.exit(main())
