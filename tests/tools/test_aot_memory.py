"""tools/aot_memory.py (ahead-of-time per-device memory of a train step) and tools/tpu_launch.sh.

The tool sets XLA_FLAGS for its own simulated devices, so its compiling runs (the tiny GPT over 8 devices on
three meshes) and one bad-input run go through a subprocess each; they are started together at module setup,
so the file costs about as long as the slowest rather than their sum. The other bad-input cases stop before
anything compiles and call the tool's entry point in-process, on the 8 devices conftest.py already made.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from xlt import cli

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

import aot_memory  # noqa: E402

TOOL = ROOT / "tools" / "aot_memory.py"
LAUNCH = ROOT / "tools" / "tpu_launch.sh"
TINY = ["--gin_file=models/gpt_tiny.gin", "--gin_file=runs/pretrain.gin", "--gin.BATCH_SIZE=8", "--gin.SEQ_LEN=32"]
RUNS = {
    "mesh_222": [*TINY, "--gin.MESH_SHAPE=(2,2,2)", "--hbm_gib=1"],
    "data8": [*TINY, "--gin.MESH_SHAPE=(8,1,1)", "--json"],
    "fsdp8": [*TINY, "--gin.MESH_SHAPE=(1,8,1)", "--json"],
    "bad_gin": ["--gin_file=models/no_such_model.gin"],
}


@pytest.fixture(scope="module")
def runs() -> dict[str, subprocess.CompletedProcess]:
    procs = {name: subprocess.Popen([sys.executable, str(TOOL), *args], cwd=ROOT, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for name, args in RUNS.items()}
    done = {}
    try:
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=600)
            done[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    return done


def record(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("xlt: error:")]


def test_tiny_mesh_222_prints_per_device_bytes(runs):
    result = runs["mesh_222"]
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "8 x cpu" in out and "mesh data=2, fsdp=2, tensor=2" in out
    for label in ("arguments", "outputs", "temporaries", "generated code", "total", "parameters",
                  "optimizer state"):
        line = next(line for line in out.splitlines() if line.strip().startswith(label))
        assert " B" in line
    assert "fits 1 GiB per device: yes" in out
    assert "proxy" in out  # the CPU-compiler caveat is printed with the numbers


def test_fsdp_axis_shrinks_per_device_arguments(runs):
    data8, fsdp8 = record(runs["data8"]), record(runs["fsdp8"])
    for rec in (data8, fsdp8):
        assert rec["devices"] == 8 and rec["platform"] == "cpu"
        mem, ana = rec["memory_per_device"], rec["analytic_per_device"]
        # XLA's per-device argument buffers are exactly the shards the NamedShardings imply.
        assert mem["argument_bytes"] == ana["state_bytes"] + ana["batch_bytes"]
        assert mem["temp_bytes"] > 0 and mem["total_bytes"] > mem["argument_bytes"] - mem["alias_bytes"]
    # Pure data parallelism replicates the fp32 parameters; fsdp=8 splits every sharded matrix in 8.
    assert data8["analytic_per_device"]["params_bytes"] == 4 * data8["parameters"]
    assert fsdp8["analytic_per_device"]["params_bytes"] * 6 < data8["analytic_per_device"]["params_bytes"]
    assert fsdp8["memory_per_device"]["argument_bytes"] * 6 < data8["memory_per_device"]["argument_bytes"]
    # The batch is split over data and fsdp alike.
    assert fsdp8["analytic_per_device"]["batch_bytes"] == data8["analytic_per_device"]["batch_bytes"]


def test_bad_gin_file_exits_2_with_one_line(runs):
    result = runs["bad_gin"]
    assert result.returncode == 2, result.stderr[-2000:]
    lines = error_lines(result)
    assert len(lines) == 1 and "gin file not found: models/no_such_model.gin" in lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr and result.stdout == ""


@pytest.mark.parametrize("args, message", [
    ([*TINY, "--gin.MESH_SHAPE=(2,2,1)", "--devices=8"], "needs 4 devices but 8 are present"),
    ([*TINY, "--gin.MESH_SHAPE=(1,1,8)"], "does not divide over mesh axis 'tensor'"),  # 4 heads
    ([*TINY, "--gin.MESH_SHAPE=(-1,1,1)"], "pass --devices=N"),
    ([*TINY, "--devices=0"], "--devices must be a positive integer"),
    ([*TINY, "--hbm"], "unknown argument '--hbm'"),
    ([*TINY, "--topology=v5e:2x2", "--devices=8"], "exclude each other"),
])
def test_bad_input_exits_2_with_one_line(args, message, capsys, monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=8")  # the tool rewrites it
    assert cli.main(aot_memory.main, args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("xlt: error:") and message in err[0], err


def test_topology_without_tpu_backend_is_one_line(capsys):
    if importlib.util.find_spec("libtpu") is not None:
        pytest.skip("libtpu is installed: the topology can be described here")
    assert cli.main(aot_memory.main, [*TINY, "--topology=v5e:2x2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--topology=v5e:2x2" in err[0] and "TPU backend" in err[0], err


def test_tpu_launch_dry_run_prints_gcloud_commands():
    result = subprocess.run(
        ["bash", str(LAUNCH), "my-tpu", "us-central2-b", "--project", "proj", "--sync", "--dry-run", "--",
         ".venv/bin/python", "-m", "xlt.train", "--gin_file=experiments/scale/polylm_13b_v4-128.gin",
         "--gin.MODEL_DIR='gs://bucket/run 1'"],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    ssh = [line for line in lines if line.startswith("gcloud compute tpus tpu-vm ssh my-tpu")]
    scp = [line for line in lines if line.startswith("gcloud compute tpus tpu-vm scp")]
    assert len(ssh) == 2 and len(scp) == 1  # unpack the synced checkout, then run
    assert all("--worker=all" in line and "--zone us-central2-b" in line and "--project proj" in line
               for line in ssh + scp)
    # The printed commands are valid shell: the remote command string, then each of its words, come back.
    remote = shell_words(ssh[-1].split(" --command ", 1)[1])
    assert len(remote) == 1 and remote[0].startswith("cd xlt && XLT_DISTRIBUTED=1 .venv/bin/python -m xlt.train ")
    assert shell_words(remote[0].split("XLT_DISTRIBUTED=1 ", 1)[1]) == [
        ".venv/bin/python", "-m", "xlt.train", "--gin_file=experiments/scale/polylm_13b_v4-128.gin",
        "--gin.MODEL_DIR='gs://bucket/run 1'"]


def shell_words(text: str) -> list[str]:
    """The words bash makes of ``text`` (one per line of printf's output)."""
    return subprocess.run(["bash", "-c", f"printf '%s\\n' {text}"], capture_output=True, text=True,
                          check=True).stdout.splitlines()


@pytest.mark.parametrize("args", [
    [],
    ["my-tpu"],
    ["my-tpu", "zone"],
    ["my-tpu", "zone", "--"],
    ["my-tpu", "zone", "--bogus", "--", "python"],
    ["my-tpu", "zone", "--project"],
    ["--dry-run", "zone", "--", "python"],
])
def test_tpu_launch_bad_arguments_exit_2(args):
    result = subprocess.run(["bash", str(LAUNCH), *args], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: tools/tpu_launch.sh") and "tpu_launch: error:" in result.stderr
    assert result.stdout == ""
