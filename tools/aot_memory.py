"""Per-device memory of a run's train step, compiled ahead of time: no parameter is ever allocated.

Usage:
  python tools/aot_memory.py --gin_file=experiments/scale/polylm_13b_h100x8.gin [--devices=N]
      [--topology=v5e:8x8] [--hbm_gib=80] [--json] [--gin.NAME=VALUE ...]

The gin files are the ones ``python -m xlt.train`` takes (MODEL_DIR may stay unset). The tool builds what
``xlt.train.train`` builds before its first step — the ModelConfig, the mesh, the AdamW optimizer with its
schedule and the sharded step of ``xlt.step.build`` — then lowers and compiles that step for abstract
inputs: the train state from ``jax.eval_shape`` and the batch as ``jax.ShapeDtypeStruct``, each with its
NamedSharding. It prints, per device, XLA's ``compiled.memory_analysis()`` (arguments = parameters +
optimizer state + batch, outputs, the donated part of the outputs that reuses argument buffers,
temporaries, generated code; total = arguments + outputs - aliased + temporaries + code), the analytic
bytes of one device's parameter, optimizer-state and batch shards from the shardings, and whether the
total fits ``--hbm_gib`` (default: the config's ``HBM_GIB`` macro). The analytic state + batch equals
XLA's arguments except for inputs the step never reads, which jit drops (T5's position features).

Devices: without ``--topology`` the step is compiled for N simulated CPU devices, N from ``--devices`` or
the product of MESH_SHAPE. XLA reads ``--xla_force_host_platform_device_count`` when its CPU backend starts
(the first device query, not ``import jax``), so the tool sets XLA_FLAGS after parsing gin (which knows the
mesh) and before any device exists, then checks the count it got. ``--topology`` compiles for a described
Cloud TPU slice instead (``jax.experimental.topologies``; needs the TPU backend, libtpu, installed).

Caveat: a CPU compile is a proxy for the GPU or TPU compiler's. Sharded argument and output sizes are
exact (they follow from shapes, dtypes and shardings), but temporaries depend on the backend's fusion,
layout, rematerialisation and collective decisions, and XLA:CPU may carry bf16 work in f32. Leave headroom.

Bad input (unknown gin file or binding, a mesh that does not fit the devices or does not divide a
dimension, an unavailable TPU backend) prints one line ``xlt: error: ...`` and exits with status 2.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import gin  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from xlt import cli, train as train_lib  # noqa: E402
from xlt.errors import ConfigError  # noqa: E402
from xlt.models.api import mesh_context, model_api  # noqa: E402

GIB = 2**30
DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"
CPU_PROXY_NOTE = ("compiled by XLA:CPU for simulated devices: argument/output bytes are exact, temporaries are "
                  "a proxy for the GPU/TPU compiler's (other fusion, layout and remat decisions; bf16 may be "
                  "carried in f32)")


# --- Command line ------------------------------------------------------------------------------------------


def parse_options(rest: Sequence[str]) -> dict[str, Any]:
    """The tool's own flags (everything that is not --gin_file / --gin.X / --gin_search_path)."""
    opts: dict[str, Any] = {"devices": None, "topology": None, "hbm_gib": None, "json": False}
    for arg in rest:
        name, sep, value = arg.partition("=")
        if name == "--json" and not sep:
            opts["json"] = True
        elif name == "--devices" and sep:
            if not value.isdigit() or int(value) < 1:
                raise ConfigError(f"--devices must be a positive integer, got {value!r}")
            opts["devices"] = int(value)
        elif name == "--topology" and sep and value:
            opts["topology"] = value
        elif name == "--hbm_gib" and sep:
            try:
                opts["hbm_gib"] = float(value)
            except ValueError:
                raise ConfigError(f"--hbm_gib must be a number of GiB, got {value!r}") from None
            if not opts["hbm_gib"] > 0:
                raise ConfigError(f"--hbm_gib must be > 0, got {value!r}")
        else:
            raise ConfigError(f"unknown argument {arg!r}; use --gin_file=F, --gin.NAME=VALUE, --devices=N, "
                              "--topology=NAME, --hbm_gib=X, --json")
    if opts["devices"] is not None and opts["topology"] is not None:
        raise ConfigError("--devices and --topology exclude each other: a topology fixes its devices")
    return opts


def train_arguments() -> dict[str, Any]:
    """The ``TrainConfig`` fields gin binds (``train.*``) over their defaults (MODEL_DIR may stay unset; the model
    and optimizer, unless bound, come from their own gin bindings in ``build_step_setup``)."""
    import dataclasses

    from xlt.configs import TrainConfig
    args = {f.name: f.default if f.default is not dataclasses.MISSING else
            (None if f.default_factory is not dataclasses.MISSING else gin.REQUIRED)
            for f in dataclasses.fields(TrainConfig)}
    args.update(gin.get_bindings("train"))
    missing = [n for n in ("train_steps", "mixture_or_task_name") if args[n] is gin.REQUIRED]
    if missing:
        raise ConfigError(f"train.{missing[0]} is not bound; include runs/pretrain.gin or runs/instruct.gin")
    return args


def hbm_from_config() -> float | None:
    """The config's ``HBM_GIB`` macro (per-device memory of its hardware target), if it sets one."""
    try:
        value = gin.query_parameter("%HBM_GIB")
    except ValueError:
        return None
    if not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"HBM_GIB must be a positive number of GiB, got {value!r}")
    return float(value)


# --- Devices -----------------------------------------------------------------------------------------------


def simulated_cpu_devices(count: int) -> list[jax.Device]:
    """``count`` CPU devices: XLA_FLAGS is set before the CPU backend starts, then the count is checked."""
    kept = [f for f in os.environ.get("XLA_FLAGS", "").split() if not f.startswith(DEVICE_COUNT_FLAG + "=")]
    os.environ["XLA_FLAGS"] = " ".join(kept + [f"{DEVICE_COUNT_FLAG}={count}"])
    jax.config.update("jax_platforms", "cpu")  # no GPU/TPU backend starts (nor preallocates) on a device host
    devices = jax.devices("cpu")
    if len(devices) != count:
        raise ConfigError(f"asked XLA for {count} CPU devices but got {len(devices)}: the backend had already "
                          "started; run the tool as its own process")
    return devices


def topology_devices(name: str) -> list[jax.Device]:
    """Compile-only devices of a described Cloud TPU slice (e.g. ``v5e:8x8``)."""
    from jax.experimental import topologies

    try:
        return list(topologies.get_topology_desc(name, "tpu").devices)
    except Exception as e:  # noqa: BLE001 - the TPU backend raises RuntimeError or XlaRuntimeError variants
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"--topology={name}: the TPU backend cannot describe it ({first})") from e


def choose_devices(opts: Mapping[str, Any], mesh_shape: Sequence[int]) -> list[jax.Device]:
    if opts["topology"]:
        return topology_devices(opts["topology"])
    count = opts["devices"]
    if count is None:
        if any(int(s) < 1 for s in mesh_shape):
            raise ConfigError(f"MESH_SHAPE {tuple(mesh_shape)} has a -1 (or non-positive) entry; pass --devices=N "
                              "or spell out every axis")
        count = math.prod(int(s) for s in mesh_shape)
    return simulated_cpu_devices(count)


# --- Build and compile -------------------------------------------------------------------------------------


def shard_bytes(tree: Any) -> int:
    """Bytes one device holds of a tree of sharded ShapeDtypeStructs (shards are even: divisibility is
    checked by xlt.step.build)."""
    return sum(math.prod(x.sharding.shard_shape(x.shape)) * x.dtype.itemsize for x in jax.tree.leaves(tree))


def build_step(args: Mapping[str, Any], devices: Sequence[jax.Device]) -> dict[str, Any]:
    """The model, mesh, optimizer and sharded step as ``xlt.train.train`` builds them before step 1, with the
    abstract batch the step is compiled for."""
    wanted = set(inspect.signature(train_lib.build_step_setup).parameters) - {"devices"}
    setup = train_lib.build_step_setup(**{k: v for k, v in args.items() if k in wanted}, devices=devices)
    fns = setup.fns
    batch = {k: jax.ShapeDtypeStruct(s, jnp.int32, sharding=fns.batch_shardings[k]) for k, s in setup.shapes.items()}
    return {"cfg": setup.cfg, "mesh": setup.mesh, "converter": setup.converter, "lengths": setup.lengths,
            "fns": fns, "batch": batch}


def compile_step(built: Mapping[str, Any]) -> tuple[Any, float, float]:
    """(compiled step, lower seconds, compile seconds), under the mesh and logical rules the step runs in."""
    fns = built["fns"]
    with mesh_context(built["mesh"]):
        t0 = time.perf_counter()
        lowered = fns.train.jitted.lower(fns.abstract_state, built["batch"])
        t1 = time.perf_counter()
        compiled = lowered.compile()
        t2 = time.perf_counter()
    return compiled, t1 - t0, t2 - t1


def memory_record(compiled: Any) -> dict[str, int]:
    """XLA's per-device buffer assignment of the compiled (SPMD-partitioned) step."""
    m = compiled.memory_analysis()
    if m is None:
        raise ConfigError("this backend's compiler reports no memory analysis")
    rec = {"argument_bytes": int(m.argument_size_in_bytes), "output_bytes": int(m.output_size_in_bytes),
           "alias_bytes": int(m.alias_size_in_bytes), "temp_bytes": int(m.temp_size_in_bytes),
           "generated_code_bytes": int(m.generated_code_size_in_bytes)}
    rec["total_bytes"] = (rec["argument_bytes"] + rec["output_bytes"] - rec["alias_bytes"] + rec["temp_bytes"]
                          + rec["generated_code_bytes"])
    return rec


def measure(files: Sequence[str], opts: Mapping[str, Any]) -> dict[str, Any]:
    """Everything the tool reports, as one JSON-ready record."""
    args = train_arguments()
    hbm_gib = opts["hbm_gib"] if opts["hbm_gib"] is not None else hbm_from_config()
    devices = choose_devices(opts, args["mesh_shape"])
    train_lib.register_data()
    built = build_step(args, devices)
    compiled, lower_s, compile_s = compile_step(built)
    memory = memory_record(compiled)
    fns, cfg, mesh = built["fns"], built["cfg"], built["mesh"]
    batch_size, accum = args["batch_size"], args["grad_accum_steps"]
    analytic = {"params_bytes": shard_bytes(fns.abstract_state.params),
                "opt_state_bytes": shard_bytes(fns.abstract_state.opt_state),
                "state_bytes": shard_bytes(fns.abstract_state),  # params + optimizer state + step counter
                "batch_bytes": shard_bytes(built["batch"])}
    fits = None if hbm_gib is None else memory["total_bytes"] <= hbm_gib * GIB
    platform = devices[0].platform
    return {
        "gin_files": list(files), "platform": platform, "device_kind": devices[0].device_kind,
        "devices": len(devices), "topology": opts["topology"],
        "mesh": dict(mesh.shape), "layout": model_api(cfg).layout, "parameters": cfg.param_count()["total"],
        "dtype": cfg.dtype, "param_dtype": cfg.param_dtype, "remat_policy": cfg.remat_policy,
        "scan_layers": cfg.scan_layers, "converter": built["converter"], "feature_lengths": built["lengths"],
        "batch_size": batch_size, "grad_accum_steps": accum, "microbatch": batch_size // accum,
        "lower_seconds": round(lower_s, 2), "compile_seconds": round(compile_s, 2),
        "memory_per_device": memory, "analytic_per_device": analytic,
        "hbm_gib": hbm_gib, "fits": fits,
        "note": CPU_PROXY_NOTE if platform == "cpu" else f"compiled by the {platform} compiler for a described "
                                                           "topology (no device executed it)",
    }


# --- Report ------------------------------------------------------------------------------------------------


def gib(n: float) -> str:
    return f"{n / GIB:8.2f} GiB"


def format_report(rec: Mapping[str, Any]) -> str:
    mem, ana = rec["memory_per_device"], rec["analytic_per_device"]
    mesh = ", ".join(f"{k}={v}" for k, v in rec["mesh"].items())
    lengths = ", ".join(f"{k}={v}" for k, v in rec["feature_lengths"].items())
    where = f"topology {rec['topology']}" if rec["topology"] else "simulated"
    if rec["fits"] is None:
        verdict = "fits: unknown (no --hbm_gib and no HBM_GIB in the config)"
    else:
        room = rec["hbm_gib"] * GIB - mem["total_bytes"]
        verdict = (f"fits {rec['hbm_gib']:g} GiB per device: {'yes' if rec['fits'] else 'NO'} "
                   f"({'headroom' if room >= 0 else 'over by'} {abs(room) / GIB:.2f} GiB)")
    lines = [
        f"config      {' '.join(rec['gin_files'])}",
        f"model       {rec['layout']}, {rec['parameters']:,} parameters, {rec['dtype']} compute / "
        f"{rec['param_dtype']} params, remat {rec['remat_policy']}, scan_layers={rec['scan_layers']}",
        f"devices     {rec['devices']} x {rec['device_kind']} ({rec['platform']}, {where}); mesh {mesh}",
        f"batch       {rec['batch_size']} sequences ({rec['converter']}: {lengths}), grad_accum_steps "
        f"{rec['grad_accum_steps']} -> microbatch {rec['microbatch']}",
        f"compile     lower {rec['lower_seconds']:.1f} s, compile {rec['compile_seconds']:.1f} s",
        "per device  compiled.memory_analysis()",
        f"  arguments       {gib(mem['argument_bytes'])}  {mem['argument_bytes']:>16,} B  params + optimizer state + batch",
        f"  outputs         {gib(mem['output_bytes'])}  {mem['output_bytes']:>16,} B",
        f"  aliased         {gib(mem['alias_bytes'])}  {mem['alias_bytes']:>16,} B  outputs in donated argument buffers",
        f"  temporaries     {gib(mem['temp_bytes'])}  {mem['temp_bytes']:>16,} B",
        f"  generated code  {gib(mem['generated_code_bytes'])}  {mem['generated_code_bytes']:>16,} B",
        f"  total           {gib(mem['total_bytes'])}  {mem['total_bytes']:>16,} B  arguments + outputs - aliased + temporaries + code",
        "per device  analytic, from the shardings",
        f"  parameters      {gib(ana['params_bytes'])}  {ana['params_bytes']:>16,} B",
        f"  optimizer state {gib(ana['opt_state_bytes'])}  {ana['opt_state_bytes']:>16,} B",
        f"  batch           {gib(ana['batch_bytes'])}  {ana['batch_bytes']:>16,} B",
        f"  state + batch   {gib(ana['state_bytes'] + ana['batch_bytes'])}  "
        f"{ana['state_bytes'] + ana['batch_bytes']:>16,} B  (= arguments, less any input the step never reads)",
        verdict,
        f"note: {rec['note']}",
    ]
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    files, bindings, search, rest = cli.parse_gin_args(argv)
    opts = parse_options(rest)
    if not files:
        raise ConfigError("no --gin_file given; e.g. --gin_file=experiments/scale/polylm_1.7b_h100x8.gin")
    cli.load_gin(files, bindings, search)
    rec = measure(files, opts)
    print(json.dumps(rec) if opts["json"] else format_report(rec), flush=True)


if __name__ == "__main__":
    sys.exit(cli.main(main))
