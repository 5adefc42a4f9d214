"""xlt performance benchmarks; each prints one JSON record and appends a dated section to docs/BENCHMARK_RUNS.md
(the run log; BENCHMARKS.md keeps the summary).

Subcommands (``python tools/bench.py SUBCOMMAND --help`` for the options):

  train     train-step tokens/s, model FLOPs per token, MFU, peak memory and compile time of one gin model
            config (synthetic packed batch), e.g. ``train --gin_file=models/gpt_25m.gin --batch=8 --seq_len=512``
  torch     head-to-head with transformers' GPT2LMHeadModel on CPU torch: same config, batch, length, fp32,
            AdamW with global-norm clipping, same threads; rounds interleaved so both see the same load
  pipeline  input-pipeline tokens/s (the default 12-language temperature mixture, byte vocabulary, packed)
            against the tokens/s the gpt_tiny train step consumes at the same batch and length
  eval      rank-classification scoring of 4 options per prompt (shared prompt vs one forward per option)
            and generation tokens/s with and without the KV cache (xlt.evaluation.scoring, xlt.decoding)
  gpu       the ~1B decoder (gin/models/gpt_1b.gin) at length 2048: bf16, cuDNN attention, scanned layers
            with a remat policy, and the chunked cross-entropy of xlt.losses against the plain one
  attention the attention core alone: xlt's 'xla' (jax.nn.dot_product_attention) and 'blocked' implementations,
            einsum and causal-block diagnostics and torch's SDPA, timed in alternating rounds
  harness   one local 4-choice lm-eval task through lm-eval's hf backend and through xlt (xlt.harness): requests/s,
            the ratio and the largest per-request log-likelihood difference
  suite     the CPU suite (``make bench``): train gpt_tiny and gpt_25m (default and tuned XLA flags), torch
            (both), pipeline, eval and attention, each in its own process

Common options: ``--smoke`` (tiny sizes, seconds, nothing appended unless ``--out`` is given), ``--out PATH``
(markdown file to append to; ``--out=`` appends nothing), ``--json PATH`` (write the records),
``--xla_flags "..."`` (appended to XLA_FLAGS before the backend starts; only when this file is the entry point).

FLOPs per token are ``ModelConfig.flops_per_token``: 6·N_matmul + 12·L·H·d_head·T (PaLM appendix B: the
weights a token multiplies, the LM head once, no embedding lookup; the full T×T attention, not the causal
half). MFU = tokens/s × FLOPs per token / peak. The CPU peak is measured in the same process (best of a few
4096² fp32 jnp.dot); on GPU MFU is given against both the spec bf16 dense peak and a measured bf16 matmul.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import importlib
import json
import math
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from xlt import cli, optimizers, partitioning, step as step_lib  # noqa: E402
from xlt.errors import ConfigError  # noqa: E402
from xlt.models import LAYOUTS, ModelConfig  # noqa: E402
from xlt.models.api import mesh_context, model_api  # noqa: E402

DEFAULT_OUT = ROOT / "docs" / "BENCHMARK_RUNS.md"
# Dense bf16 tensor-core peaks from the vendor data sheets (FLOP/s). H100 SXM and H200 share the H100 die.
SPEC_PEAK_BF16 = (("H100 PCIe", 756e12), ("H100", 989.4e12), ("H200", 989.4e12), ("A100", 312e12))
TARGETS = {"torch_ratio": 1.5, "cpu_mfu_25m": 0.40, "pipeline_ratio": 5.0, "scoring_ratio": 3.0,
           "resume_ratio": 2.0}


# --- Environment description -------------------------------------------------------------------------------


def load1() -> float:
    return os.getloadavg()[0]


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def threads() -> int:
    """Cores this process may run on (what XLA:CPU's and torch's intra-op pools size themselves to)."""
    with contextlib.suppress(AttributeError):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine() -> str:
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    devs = jax.devices()
    kinds = sorted({d.device_kind for d in devs})
    return (f"{platform.platform()}; {cpu_model()}, os.cpu_count()={os.cpu_count()}, affinity {threads()}{mem}; "
            f"jax.devices(): {len(devs)}× {'/'.join(kinds)} ({devs[0].platform})")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("jax", "jaxlib", "flax", "optax", "torch", "transformers", "tensorflow", "seqio"):
        if name in ("torch", "transformers") and name not in sys.modules:
            continue  # only report what this benchmark used
        with contextlib.suppress(ImportError, AttributeError):
            out[name] = importlib.import_module(name).__version__
    return out


def rss_peak_bytes() -> int:
    """Peak resident set of this process (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


# --- Model configs and batches -----------------------------------------------------------------------------


def load_model_config(gin_file: str, bindings: Sequence[str] = ()) -> ModelConfig:
    """The ModelConfig a model gin file (plus ``NAME=VALUE`` bindings) configures."""
    import xlt.train  # noqa: F401  (registers ``train``, which model files bind)
    from xlt.data import mixtures  # noqa: F401  (registers ``language_mixture``)

    cli.load_gin([gin_file], list(bindings))
    return ModelConfig()


def tiny(cfg: ModelConfig, vocab: int | None = None) -> ModelConfig:
    """The same layout, numerics and compilation choices at smoke-test size."""
    return cfg.replace(vocab_size=vocab or min(cfg.vocab_size, 384), d_model=64, num_layers=2, num_heads=4,
                       num_kv_heads=None if cfg.num_kv_heads == cfg.num_heads else 2, head_dim=None, d_ff=256,
                       max_len=min(cfg.max_len, 256), unpadded_vocab_size=None)


def batch_shapes(batch: int, seq_len: int, pack: bool, cfg: ModelConfig | None = None) -> dict[str, tuple[int, ...]]:
    """A language-model run's feature shapes (``ModelAPI.batch_shapes``, converter 'decoder'; a gpt-layout
    stand-in without ``cfg``: the shapes do not depend on the decoder-only model)."""
    api = model_api(cfg or ModelConfig(layout="gpt"))
    return api.batch_shapes("decoder", {"targets": seq_len}, batch, pack)


def synthetic_batch(shapes: Mapping[str, tuple[int, ...]], vocab: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Full rows of random ids; when packed, each row holds segments of random length (positions restart)."""
    rng = np.random.default_rng(seed)
    b, t = shapes["decoder_input_tokens"]
    out = {"decoder_input_tokens": rng.integers(1, vocab, (b, t), dtype=np.int32),
           "decoder_target_tokens": rng.integers(1, vocab, (b, t), dtype=np.int32),
           "decoder_loss_weights": np.ones((b, t), np.int32)}
    if "decoder_segment_ids" in shapes:
        seg, pos = np.zeros((b, t), np.int32), np.zeros((b, t), np.int32)
        for r in range(b):
            start, s = 0, 1
            while start < t:
                n = int(rng.integers(max(t // 8, 1), max(t // 2, 2) + 1))
                seg[r, start:start + n], pos[r, start:start + n] = s, np.arange(min(n, t - start))
                start, s = start + n, s + 1
        out["decoder_segment_ids"], out["decoder_positions"] = seg, pos
    return {k: out[k] for k in shapes}


def adamw() -> Any:
    """The trainer's optimizer (global-norm clipping 1.0 + AdamW, decay on matrices) at a constant rate."""
    schedule = optimizers.learning_rate_schedule(peak=1e-3, schedule="constant", warmup_steps=0)
    return optimizers.make_optimizer(schedule, weight_decay=0.01, b1=0.9, b2=0.95, eps=1e-8, clip_norm=1.0)


# --- Peaks ---------------------------------------------------------------------------------------------------


def matmul_peak(dtype: str, n: int, reps: int) -> dict[str, Any]:
    """Best-of-``reps`` FLOP/s of one n×n·n×n jnp.dot on the default device (2n³ FLOPs)."""
    ka, kb = jax.random.split(jax.random.key(0))
    a = jax.random.normal(ka, (n, n), jnp.dtype(dtype))
    b = jax.random.normal(kb, (n, n), jnp.dtype(dtype))
    f = jax.jit(lambda x, y: jnp.dot(x, y))
    f(a, b).block_until_ready()
    best = math.inf
    for _ in range(reps):
        t0 = time.perf_counter()
        f(a, b).block_until_ready()
        best = min(best, time.perf_counter() - t0)
    return {"flops_per_s": 2.0 * n ** 3 / best, "dtype": dtype, "n": n, "reps": reps, "best_s": best}


def spec_peak() -> tuple[float | None, str | None]:
    kind = jax.devices()[0].device_kind
    for key, value in SPEC_PEAK_BF16:
        if key in kind:
            return value, kind
    return None, kind


# --- Timing and memory -------------------------------------------------------------------------------------


def compile_step(jitted: Any, mesh, *args) -> tuple[Any, float]:
    """AOT-lower and compile; returns (executable, seconds)."""
    t0 = time.perf_counter()
    with mesh_context(mesh):
        compiled = jitted.lower(*args).compile()
    return compiled, time.perf_counter() - t0


def run_steps(compiled: Any, state: Any, batch: Any, n: int,
              cpu_times: list[float] | None = None) -> tuple[Any, list[float]]:
    """``n`` steps, each timed to completion (block_until_ready on state and metrics); the process CPU time
    of each step is appended to ``cpu_times`` when given."""
    times = []
    for _ in range(n):
        t0, c0 = time.perf_counter(), time.process_time()
        state, metrics = compiled(state, batch)
        jax.block_until_ready((state, metrics))
        times.append(time.perf_counter() - t0)
        if cpu_times is not None:
            cpu_times.append(time.process_time() - c0)
        if not all(math.isfinite(float(v)) for v in jax.tree.leaves(metrics)):
            raise FloatingPointError(f"non-finite metrics {jax.tree.map(float, metrics)}")
    return state, times


def memory_record(compiled: Any) -> dict[str, Any]:
    """Peak memory: the device's own counter where it has one (GPU/TPU; cumulative over the process, so it
    includes earlier benchmarks in the same run), else XLA's compile-time estimate for this executable
    (arguments + outputs - aliased + temporaries), else the process's peak RSS. The estimate and the RSS are
    recorded alongside whenever they exist."""
    out: dict[str, Any] = {"rss_peak_bytes": rss_peak_bytes()}
    with contextlib.suppress(Exception):
        m = compiled.memory_analysis()
        if m is not None:
            out["compiled_memory_bytes"] = int(m.argument_size_in_bytes + m.output_size_in_bytes
                                               - m.alias_size_in_bytes + m.temp_size_in_bytes)
            out["temp_bytes"] = int(m.temp_size_in_bytes)
    stats = jax.devices()[0].memory_stats()
    if stats and "peak_bytes_in_use" in stats:
        out.update(peak_memory_bytes=int(stats["peak_bytes_in_use"]),
                   peak_memory_source="device memory_stats peak_bytes_in_use (process-wide)")
    elif "compiled_memory_bytes" in out:
        out.update(peak_memory_bytes=out["compiled_memory_bytes"],
                   peak_memory_source="compiled memory_analysis (argument + output - alias + temp)")
    else:
        out.update(peak_memory_bytes=out["rss_peak_bytes"], peak_memory_source="process peak RSS")
    return out


def xla_flops(compiled: Any) -> float | None:
    with contextlib.suppress(Exception):
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        flops = float(cost.get("flops", -1))
        return flops if flops > 0 else None
    return None


# --- XLA profile: per-op time of a compiled step, grouped into matmul / fusion / copy -----------------------


def hlo_categories(hlo_text: str) -> dict[str, str]:
    """Instruction name -> category from optimized HLO text: 'matmul' for dots, convolutions, oneDNN matmul
    calls and fusions that contain one (XNNPACK/YNNPACK dot fusions included), 'copy/transpose', 'fusion
    (elementwise/reduce)' for the other fusions (YNNPACK also fuses reductions), or the opcode."""
    comp_has_dot: dict[str, bool] = {}
    current = None
    lines = hlo_text.splitlines()
    for line in lines:
        head = re.match(r"^(?:ENTRY )?%?([\w.\-]+) ", line)
        if head and line.rstrip().endswith("{"):
            current = head.group(1)
            comp_has_dot[current] = False
        elif current and re.search(r"= \S+ (dot|convolution)\(", line):
            comp_has_dot[current] = True
    cats = {}
    for line in lines:
        m = re.match(r"^\s+(?:ROOT )?%?([\w.\-]+) = .*? ([a-z][\w\-]*)\(", line)
        if not m:
            continue
        name, opcode = m.group(1), m.group(2)
        called = re.search(r"calls=%?([\w.\-]+)", line)
        if (opcode in ("dot", "convolution") or (called and comp_has_dot.get(called.group(1)))
                or re.search(r"custom_call_target=\"__onednn\$matmul", line)):
            cats[name] = "matmul"
        elif opcode in ("copy", "transpose") or (opcode == "fusion" and name.startswith(("copy", "transpose"))):
            cats[name] = "copy/transpose"
        elif opcode == "fusion":
            cats[name] = "fusion (elementwise/reduce)"
        else:
            cats[name] = opcode
    return cats


def hlo_sources(hlo_text: str) -> dict[str, str]:
    """Instruction name -> the JAX operation it came from (HLO ``op_name`` metadata), with layer indices
    folded (``layers_3`` -> ``layers_N``) so that the same operation of every layer sums together."""
    out = {}
    for m in re.finditer(r'^\s+(?:ROOT )?%?([\w.\-]+) = .*?op_name="([^"]*)"', hlo_text, re.M):
        src = re.sub(r"layers_\d+", "layers_N", m.group(2))
        out[m.group(1)] = re.sub(r"^jit\([^)]*\)/", "", src)
    return out


def profile_xla(compiled: Any, state: Any, batch: Any, steps: int, logdir: Path) -> tuple[Any, dict[str, Any]]:
    """Trace ``steps`` steps with jax.profiler and sum the executor's per-op events of this module."""
    logdir.mkdir(parents=True, exist_ok=True)
    with jax.profiler.trace(str(logdir)):
        state, times = run_steps(compiled, state, batch, steps)
    files = sorted(logdir.rglob("*.xplane.pb"), key=lambda p: p.stat().st_mtime)
    if not files:
        return state, {"error": "no xplane.pb written"}
    data = jax.profiler.ProfileData.from_file(str(files[-1]))
    hlo = compiled.as_text()
    cats = hlo_categories(hlo)
    sources = hlo_sources(hlo)
    per_op: dict[str, float] = {}
    for plane in data.planes:
        for line in plane.lines:
            if "XLA" not in line.name and "Pjrt" not in line.name and "PjRt" not in line.name:
                continue
            for ev in line.events:
                stats = dict(ev.stats)
                if "hlo_op" not in stats:
                    continue
                per_op[ev.name] = per_op.get(ev.name, 0.0) + ev.duration_ns / 1e9
    total = sum(per_op.values())
    step_s = statistics.median(times)
    by_cat: dict[str, float] = {}
    for name, sec in per_op.items():
        cat = cats.get(name, "other")
        by_cat[cat] = by_cat.get(cat, 0.0) + sec
    top = sorted(per_op.items(), key=lambda kv: -kv[1])[:15]
    by_source: dict[tuple[str, str], list[float]] = {}
    for name, sec in per_op.items():
        entry = by_source.setdefault((cats.get(name, "other"), sources.get(name, name)), [0.0, 0])
        entry[0] += sec
        entry[1] += 1
    top_sources = sorted(by_source.items(), key=lambda kv: -kv[1][0])[:15]
    return state, {
        "steps": steps, "step_s_median": step_s, "op_seconds_per_step": total / steps,
        "categories": {k: {"s_per_step": v / steps, "share": v / total if total else 0.0}
                       for k, v in sorted(by_cat.items(), key=lambda kv: -kv[1])},
        "top_ops": [{"op": k, "category": cats.get(k, "other"), "source": sources.get(k, ""),
                     "ms_per_step": 1e3 * v / steps, "share": v / total if total else 0.0} for k, v in top],
        "top_sources": [{"source": src, "category": cat, "ops": n, "ms_per_step": 1e3 * sec / steps,
                         "share": sec / total if total else 0.0} for (cat, src), (sec, n) in top_sources],
        "note": "op time is summed over executor threads; ops can overlap, so shares are of summed op time",
    }


def safe_profile(compiled: Any, state: Any, batch: Any, args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """``profile_xla`` for ``--profile`` steps; a profiler failure is recorded, not raised (the state was
    donated, so a failure mid-trace ends the benchmark's use of it)."""
    logdir = Path(args.profile_dir or "/tmp/xlt_bench_profile")
    try:
        return profile_xla(compiled, state, batch, args.profile, logdir)
    except Exception as e:  # noqa: BLE001 - the profile is an extra; the measured numbers stand
        return None, {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"}


# --- train ---------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class TrainRun:
    record: dict[str, Any]
    compiled: Any
    state: Any
    batch: Any
    mesh: Any


def cpu_or_gpu_peak(smoke: bool, reps: int) -> dict[str, Any]:
    """Measured matmul peak (fp32 on CPU, bf16 on GPU) and, on GPU, the data-sheet peak."""
    on_cpu = jax.default_backend() == "cpu"
    n = 256 if smoke else (4096 if on_cpu else 8192)
    peak = matmul_peak("float32" if on_cpu else "bfloat16", n, reps)
    spec, kind = spec_peak()
    return {"measured": peak, "spec_bf16_flops_per_s": spec, "device_kind": kind}


def measure_train(cfg: ModelConfig, batch: int, seq_len: int, *, steps: int, warmup: int, pack: bool = True,
                  devices: int = 1, seed: int = 0, peak: Mapping[str, Any] | None = None) -> TrainRun:
    """The xlt train step (xlt.step.build with the trainer's AdamW) on one synthetic batch."""
    api = model_api(cfg)
    if "decoder" not in api.converters:
        raise ConfigError(f"the train benchmark covers language-model (decoder-only) layouts, not {api.layout!r}")
    api.check_length(seq_len, f"--seq_len={seq_len}")
    mesh = partitioning.make_mesh((-1, 1, 1), devices=jax.devices()[:devices])
    shapes = batch_shapes(batch, seq_len, pack, cfg)
    fns = step_lib.build(api.model, adamw(), mesh, shapes, seed=seed)
    host = synthetic_batch(shapes, cfg.unpadded_vocab_size or cfg.vocab_size, seed)
    arrays = partitioning.global_batch(host, mesh)
    state = fns.init(jax.random.key(seed))
    compiled, compile_s = compile_step(fns.train.jitted, mesh, state, arrays)
    state, _ = run_steps(compiled, state, arrays, warmup)
    state, times = run_steps(compiled, state, arrays, steps)
    tokens = batch * seq_len
    step_s = statistics.median(times)
    fpt = cfg.flops_per_token(seq_len)
    record: dict[str, Any] = {
        "params": cfg.param_count()["total"], "batch": batch, "seq_len": seq_len, "packed": pack,
        "devices": devices, "dtype": cfg.dtype, "tokens_per_step": tokens, "steps_timed": steps, "warmup": warmup,
        "step_s_median": step_s, "step_s_min": min(times), "step_s_all": times,
        "tokens_per_s": tokens / step_s, "flops_per_token": fpt["total"],
        "flops_per_token_matmul": fpt["matmul"], "flops_per_token_attention": fpt["attention"],
        "compile_s": compile_s,
    }
    record["model_flops_per_s"] = record["tokens_per_s"] * fpt["total"]
    xf = xla_flops(compiled)
    if xf is not None:
        record["xla_cost_flops_per_token"] = xf / tokens
    if peak is not None:
        measured = peak["measured"]["flops_per_s"]
        record["peak_flops_per_s_measured"] = measured
        record["peak_measured_dtype"] = peak["measured"]["dtype"]
        record["mfu"] = record["model_flops_per_s"] / measured
        if peak.get("spec_bf16_flops_per_s"):
            record["mfu_spec"] = record["model_flops_per_s"] / peak["spec_bf16_flops_per_s"]
            record["spec_peak_flops_per_s"] = peak["spec_bf16_flops_per_s"]
    record.update(memory_record(compiled))
    return TrainRun(record, compiled, state, arrays, mesh)


def bench_train(args: argparse.Namespace) -> dict[str, Any]:
    cfg = load_model_config(args.gin_file, args.gin)
    batch, seq_len, steps, warmup = args.batch, args.seq_len, args.steps, args.warmup
    if args.smoke:
        cfg, batch, seq_len, steps, warmup = tiny(cfg), 2, 32, 2, 1
    peak = cpu_or_gpu_peak(args.smoke, args.peak_reps)
    run = measure_train(cfg, batch, seq_len, steps=steps, warmup=warmup, pack=not args.no_pack,
                        devices=args.devices, peak=peak)
    rec = {"benchmark": "train", "model": Path(args.gin_file).stem, **run.record}
    if args.profile:
        _, rec["xla_profile"] = safe_profile(run.compiled, run.state, run.batch, args)
    return rec


# --- torch head-to-head ----------------------------------------------------------------------------------------


def check_gpt2_like(cfg: ModelConfig) -> None:
    want = {k: v for k, v in LAYOUTS["gpt"].items() if k != "norm_eps"}  # the gpt layout's components
    wrong = {k: getattr(cfg, k) for k, v in want.items() if getattr(cfg, k) != v}
    if wrong or cfg.num_kv_heads != cfg.num_heads or cfg.head_dim * cfg.num_heads != cfg.d_model:
        raise ConfigError(f"the torch head-to-head needs a GPT-2-layout config; this one differs in {wrong or 'heads'}")
    if cfg.dtype != "float32" or cfg.param_dtype != "float32":
        raise ConfigError("the torch head-to-head is fp32 on CPU; use a float32 config")


class TorchGPT2:
    """transformers' GPT2LMHeadModel with the xlt config's shapes, trained as xlt trains: logits for every
    position against given targets (no shift), fp32, clip_grad_norm_(1.0), AdamW(0.9, 0.95, 1e-8), weight
    decay 0.01 on matrices only; the fastest CPU choices torch offers for the same math (SDPA attention,
    F.gelu(approximate='tanh'), fused AdamW when available)."""

    def __init__(self, cfg: ModelConfig, batch: int, seq_len: int, num_threads: int, seed: int = 0):
        import torch
        import transformers

        check_gpt2_like(cfg)
        self.torch = torch
        torch.set_num_threads(num_threads)
        torch.manual_seed(seed)
        conf = transformers.GPT2Config(
            vocab_size=cfg.vocab_size, n_positions=cfg.max_len, n_embd=cfg.d_model, n_layer=cfg.num_layers,
            n_head=cfg.num_heads, n_inner=cfg.d_ff, activation_function="gelu_pytorch_tanh", resid_pdrop=0.0,
            embd_pdrop=0.0, attn_pdrop=0.0, layer_norm_epsilon=cfg.norm_eps, tie_word_embeddings=True,
            use_cache=False, bos_token_id=None, eos_token_id=None)
        conf._attn_implementation = "sdpa"  # noqa: SLF001 - the config attribute transformers reads
        self.attn_implementation = getattr(conf, "_attn_implementation", "sdpa")
        self.model = transformers.GPT2LMHeadModel(conf).float().train()
        decay = [p for n, p in self.model.named_parameters() if p.ndim >= 2]
        rest = [p for n, p in self.model.named_parameters() if p.ndim < 2]
        groups = [{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}]
        try:
            self.opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, fused=True)
            self.optimizer = "AdamW(fused=True)"
        except (RuntimeError, TypeError, ValueError):
            self.opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, foreach=True)
            self.optimizer = "AdamW(foreach=True)"
        rng = np.random.default_rng(seed)
        self.x = torch.from_numpy(rng.integers(1, cfg.vocab_size, (batch, seq_len)).astype(np.int64))
        self.y = torch.from_numpy(rng.integers(1, cfg.vocab_size, (batch, seq_len)).astype(np.int64))
        self.vocab = cfg.vocab_size
        self.params = sum(p.numel() for p in self.model.parameters())

    def step(self) -> float:
        torch = self.torch
        self.opt.zero_grad(set_to_none=True)
        logits = self.model(input_ids=self.x).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, self.vocab), self.y.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        return float(loss.detach())

    def timed(self, n: int, cpu_times: list[float] | None = None) -> list[float]:
        times = []
        for _ in range(n):
            t0, c0 = time.perf_counter(), time.process_time()
            loss = self.step()
            times.append(time.perf_counter() - t0)
            if cpu_times is not None:
                cpu_times.append(time.process_time() - c0)
            if not math.isfinite(loss):
                raise FloatingPointError(f"torch loss is {loss}")
        return times

    def profile(self, steps: int) -> list[dict[str, Any]]:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(steps):
                self.step()
        events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
        total = sum(e.self_cpu_time_total for e in events) or 1
        return [{"op": e.key, "self_ms_per_step": e.self_cpu_time_total / 1e3 / steps,
                 "share": e.self_cpu_time_total / total, "calls_per_step": e.count / steps} for e in events[:15]]


def bench_torch(args: argparse.Namespace) -> dict[str, Any]:
    cfg = load_model_config(args.gin_file, args.gin)
    batch, seq_len, steps, warmup, rounds = args.batch, args.seq_len, args.steps, args.warmup, args.rounds
    if args.smoke:
        cfg, batch, seq_len, steps, warmup, rounds = tiny(cfg), 2, 32, 2, 1, 1
    check_gpt2_like(cfg)
    n_threads = args.threads or threads()
    peak = cpu_or_gpu_peak(args.smoke, args.peak_reps)
    # xlt: unpacked rows (GPT2LMHeadModel has no segment ids), everything else as the trainer runs it.
    xr = measure_train(cfg, batch, seq_len, steps=1, warmup=warmup, pack=False, devices=1, peak=peak)
    tm = TorchGPT2(cfg, batch, seq_len, n_threads)
    if tm.params != cfg.param_count()["total"]:
        raise ConfigError(f"parameter counts differ: torch {tm.params:,} vs xlt {cfg.param_count()['total']:,}")
    t0 = time.perf_counter()
    tm.timed(warmup)
    torch_first_s = time.perf_counter() - t0
    xlt_times, torch_times, xlt_cpu, torch_cpu = [], [], [], []
    state = xr.state
    for _ in range(rounds):  # interleaved so that both frameworks see the same machine load
        state, t = run_steps(xr.compiled, state, xr.batch, steps, xlt_cpu)
        xlt_times += t
        torch_times += tm.timed(steps, torch_cpu)
    tokens = batch * seq_len
    fpt = cfg.flops_per_token(seq_len)["total"]
    xlt_tps, torch_tps = tokens / statistics.median(xlt_times), tokens / statistics.median(torch_times)
    measured = peak["measured"]["flops_per_s"]
    rec: dict[str, Any] = {
        "benchmark": "torch", "model": Path(args.gin_file).stem, "params": tm.params, "batch": batch,
        "seq_len": seq_len, "threads": n_threads, "torch_threads": tm.torch.get_num_threads(),
        "torch_attention": tm.attn_implementation, "torch_optimizer": tm.optimizer, "rounds": rounds,
        "steps_per_round": steps, "flops_per_token": fpt,
        "xlt_tokens_per_s": xlt_tps, "torch_tokens_per_s": torch_tps, "ratio": xlt_tps / torch_tps,
        "xlt_step_s_all": xlt_times, "torch_step_s_all": torch_times,
        "xlt_cpu_s_per_step": statistics.median(xlt_cpu), "torch_cpu_s_per_step": statistics.median(torch_cpu),
        "xlt_mfu": xlt_tps * fpt / measured, "torch_mfu": torch_tps * fpt / measured,
        "peak_flops_per_s_measured": measured, "xlt_compile_s": xr.record["compile_s"],
        "torch_first_steps_s": torch_first_s, "target_ratio": TARGETS["torch_ratio"],
    }
    rec["target_met"] = rec["ratio"] >= TARGETS["torch_ratio"]
    if args.profile:
        rec["torch_profile"] = tm.profile(args.profile)
        _, rec["xla_profile"] = safe_profile(xr.compiled, state, xr.batch, args)
    return rec


# --- pipeline --------------------------------------------------------------------------------------------------


def bench_pipeline(args: argparse.Namespace) -> dict[str, Any]:
    import gin

    from xlt.data import mixtures, pipeline, tasks

    batch, seq_len, n_batches, warm = args.batch, args.seq_len, args.batches, args.warm_batches
    bindings = list(args.gin)
    if args.smoke:
        batch, seq_len, n_batches, warm = 2, 64, 5, 1
        bindings.append("LANGUAGES = ['en', 'ko']")
    cfg = load_model_config(args.gin_file, [])
    cli.load_gin([args.gin_file, args.mixture_gin], bindings)
    vocab = tasks.vocabulary()
    tasks.register_tasks(vocab=vocab)
    mixtures.language_mixture()
    name = gin.query_parameter("%MIXTURE_OR_TASK_NAME")
    langs = list(gin.query_parameter("%LANGUAGES"))
    if args.smoke:
        cfg = tiny(cfg)
    lengths = {"targets": seq_len}
    t0 = time.perf_counter()
    it = pipeline.batches(name, "decoder", lengths, batch, seed=0, pack=True)
    first = next(it)
    first_s = time.perf_counter() - t0
    for _ in range(warm):
        next(it)
    loss_tokens = 0
    t0 = time.perf_counter()
    for _ in range(n_batches):
        b = next(it)
        loss_tokens += int((b["decoder_loss_weights"] > 0).sum())
    elapsed = time.perf_counter() - t0
    pipe_tps = n_batches * batch * seq_len / elapsed
    # What the tiny model consumes at the same batch and length on this host (synthetic batch, no input).
    peak = cpu_or_gpu_peak(args.smoke, args.peak_reps)
    steps, step_warmup = (2, 1) if args.smoke else (args.steps, args.warmup)
    run = measure_train(cfg, batch, seq_len, steps=steps, warmup=step_warmup, pack=True, peak=peak)
    step_tps = run.record["tokens_per_s"]
    # End to end: the same step fed by the pipeline (input work and the step share the host's cores).
    e2e_steps = 2 if args.smoke else args.e2e_steps
    state, e2e_times = run.state, []
    for _ in range(e2e_steps):
        t0 = time.perf_counter()
        host = next(it)
        host.pop(pipeline.TARGET_TASK)
        state, metrics = run.compiled(state, partitioning.global_batch(host, run.mesh))
        jax.block_until_ready((state, metrics))
        e2e_times.append(time.perf_counter() - t0)
    rec: dict[str, Any] = {
        "benchmark": "pipeline", "mixture": name, "languages": langs, "vocabulary": type(vocab).__name__,
        "vocab_size": vocab.vocab_size, "batch": batch, "seq_len": seq_len, "packed": True,
        "batches_timed": n_batches, "warm_batches": warm, "first_batch_s": first_s,
        "pipeline_tokens_per_s": pipe_tps, "pipeline_loss_tokens_per_s": loss_tokens / elapsed,
        "packing_efficiency": loss_tokens / (n_batches * batch * seq_len),
        "model": Path(args.gin_file).stem, "step_tokens_per_s": step_tps, "ratio": pipe_tps / step_tps,
        "step_mfu": run.record.get("mfu"), "e2e_tokens_per_s": batch * seq_len / statistics.median(e2e_times),
        "e2e_steps": e2e_steps, "first_batch_keys": sorted(first), "target_ratio": TARGETS["pipeline_ratio"],
    }
    rec["target_met"] = rec["ratio"] >= TARGETS["pipeline_ratio"]
    return rec


# --- eval ------------------------------------------------------------------------------------------------------


# --- resume ----------------------------------------------------------------------------------------------------


def bench_resume(args: argparse.Namespace) -> dict[str, Any]:
    """Time to the first batch when the data resumes at ``--step`` vs at step 0 (the demo mixture: 12 Bible
    languages, temperature 0.3, 16 × 256 packed). Cold: a fresh process each (imports excluded; the token
    index of every task is built, as a restarted job does). Warm: the index already built in this process
    (median of ``--reps``), i.e. the cost of locating and packing the rows themselves."""
    import gin

    from xlt.data import mixtures, pipeline, tasks

    batch, seq_len, far = args.batch, args.seq_len, args.step
    bindings = list(args.gin)
    if args.smoke:
        batch, seq_len = 2, 64
        bindings.append("LANGUAGES = ['en', 'ko']")
    cli.load_gin([args.mixture_gin], bindings)
    tasks.register_tasks(vocab=tasks.vocabulary())
    mixtures.language_mixture()
    name = gin.query_parameter("%MIXTURE_OR_TASK_NAME")

    def first_batch(start: int) -> float:
        t0 = time.perf_counter()
        next(pipeline.batches(name, "decoder", {"targets": seq_len}, batch, seed=0, start_step=start))
        return time.perf_counter() - t0

    if args.one_start is not None:  # a child of the cold measurement: one first batch in this fresh process
        return {"benchmark": "resume_child", "start_step": args.one_start, "first_batch_s": first_batch(args.one_start)}
    cold = {}
    for start in (0, far):
        cmd = [sys.executable, str(Path(__file__).resolve()), "resume", "--out", "", f"--one_start={start}",
               f"--batch={args.batch}", f"--seq_len={args.seq_len}", f"--mixture_gin={args.mixture_gin}"]
        cmd += [f"--gin={g}" for g in args.gin] + (["--smoke"] if args.smoke else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        cold[start] = json.loads(out.strip().splitlines()[-1])["first_batch_s"]
    first_batch(0)  # builds this process's token index
    warm = {start: statistics.median(first_batch(start) for _ in range(args.reps)) for start in (0, far)}
    return {"benchmark": "resume", "mixture": name, "languages": list(gin.query_parameter("%LANGUAGES")),
            "batch": batch, "seq_len": seq_len, "packed": True, "resume_step": far, "reps": args.reps,
            "cold_first_batch_s_step0": cold[0], "cold_first_batch_s_resume": cold[far],
            "cold_ratio": cold[far] / cold[0], "warm_first_batch_s_step0": warm[0],
            "warm_first_batch_s_resume": warm[far], "warm_ratio": warm[far] / warm[0],
            "target_ratio": TARGETS["resume_ratio"], "target_met": cold[far] / cold[0] <= TARGETS["resume_ratio"]}


def _median_time(fn: Callable[[], Any], reps: int) -> tuple[float, list[float], Any]:
    """Median wall time of ``fn()`` over ``reps`` calls after one untimed (compiling) call."""
    out = fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def bench_eval(args: argparse.Namespace) -> dict[str, Any]:
    """Option scoring (xlt.evaluation.scoring) and generation (xlt.decoding) on a randomly initialised model.

    Scoring: ``prompts`` prompts of ``prompt_len`` random tokens with ``options`` options of ``option_len``
    tokens; ``score_options`` (prompt prefilled once, options against its cache) with ``batch_size`` prompts
    per forward vs ``score_options_naive`` (one forward per prompt+option) with ``batch_size × options``
    rows per forward, so both run the same number of option rows per call. Generation: greedy, the same
    prompts and model with ``use_cache`` True and False. Times are medians over ``reps`` calls after a
    compiling call; the outputs of the two variants are compared."""
    from xlt.decoding import generate
    from xlt.evaluation.scoring import score_options, score_options_naive

    cfg = load_model_config(args.gin_file, args.gin)
    n_prompts, n_opts, p_len, o_len = args.prompts, args.options, args.prompt_len, args.option_len
    g_batch, g_prompt, g_tokens, reps, batch_size = (args.gen_batch, args.gen_prompt_len, args.gen_tokens, args.reps,
                                                      args.batch_size)
    if args.smoke:
        cfg, n_prompts, p_len, o_len, g_batch, g_prompt, g_tokens, reps, batch_size = (
            tiny(cfg), 4, 16, 4, 2, 8, 4, 1, 2)
    model = model_api(cfg)
    params = jax.jit(lambda r: nn.meta.unbox(model.init(r)))(jax.random.key(0))
    rng = np.random.default_rng(0)
    hi = cfg.unpadded_vocab_size or cfg.vocab_size
    prompts = [rng.integers(2, hi, p_len).tolist() for _ in range(n_prompts)]
    options = [[rng.integers(2, hi, o_len).tolist() for _ in range(n_opts)] for _ in range(n_prompts)]
    shared_s, shared_all, shared = _median_time(
        lambda: score_options(model, params, prompts, options, batch_size=batch_size), reps)
    naive_s, naive_all, naive = _median_time(
        lambda: score_options_naive(model, params, prompts, options, batch_size=batch_size * n_opts), reps)
    diff = max(float(np.max(np.abs(a.loglik - b.loglik))) for a, b in zip(shared, naive))
    g_prompts = [rng.integers(2, hi, g_prompt).tolist() for _ in range(g_batch)]
    eos = hi - 1  # an id the random model rarely picks first, so rows run to max_new_tokens
    cached_s, cached_all, cached = _median_time(
        lambda: generate(model, params, g_prompts, max_new_tokens=g_tokens, eos_id=eos, use_cache=True), reps)
    full_s, full_all, full = _median_time(
        lambda: generate(model, params, g_prompts, max_new_tokens=g_tokens, eos_id=eos, use_cache=False), reps)
    generated = int(np.sum(cached.lengths))
    option_rows = n_prompts * n_opts
    bound = n_opts * (p_len + o_len) / (p_len + n_opts * o_len)
    rec: dict[str, Any] = {
        "benchmark": "eval", "model": Path(args.gin_file).stem, "params": cfg.param_count()["total"],
        "prompts": n_prompts, "options_per_prompt": n_opts, "prompt_len": p_len, "option_len": o_len,
        "scoring_batch_size": batch_size, "reps": reps,
        "shared_s": shared_s, "naive_s": naive_s, "shared_options_per_s": option_rows / shared_s,
        "naive_options_per_s": option_rows / naive_s, "scoring_ratio": naive_s / shared_s,
        "scoring_token_ratio_bound": bound, "scoring_max_abs_diff": diff,
        "scoring_target_ratio": TARGETS["scoring_ratio"],
        "gen_batch": g_batch, "gen_prompt_len": g_prompt, "gen_max_new_tokens": g_tokens,
        "gen_tokens_generated": generated, "cached_s": cached_s, "uncached_s": full_s,
        "cached_tokens_per_s": generated / cached_s, "uncached_tokens_per_s": int(np.sum(full.lengths)) / full_s,
        "generation_ratio": full_s / cached_s,
        "generation_outputs_match": bool(np.array_equal(cached.tokens, full.tokens)),
        "shared_s_all": shared_all, "naive_s_all": naive_all, "cached_s_all": cached_all, "uncached_s_all": full_all,
    }
    rec["scoring_target_met"] = rec["scoring_ratio"] >= TARGETS["scoring_ratio"]
    return rec


# --- harness: the same lm-eval task through lm-eval's hf backend and through xlt ------------------------------

HARNESS_WORDS = ("the cat dog house river mountain sun moon red green blue small big old new runs sleeps eats sees "
                 "under over near far quickly slowly today tomorrow friend teacher city village water bread").split()


def _harness_setup(root: Path, d_model: int, layers: int, heads: int, docs: int, context_words: int,
                   choice_words: int) -> tuple[Path, Path, Path]:
    """A random GPT-2 (transformers) with a byte-level BPE trained on the generated text, saved and converted
    with xlt.interop.hf.import_hf, and a local 4-choice lm-eval task of ``docs`` documents."""
    import tokenizers
    import torch
    import transformers
    from tokenizers import decoders, models, pre_tokenizers, processors, trainers

    from xlt.interop import hf as hf_interop

    rng = np.random.default_rng(0)

    def words(n: int) -> str:
        return " ".join(rng.choice(HARNESS_WORDS, n))

    rows = [{"question": words(context_words), "choices": [words(choice_words) for _ in range(4)],
             "label": int(rng.integers(4))} for _ in range(docs)]
    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    corpus = [r["question"] + " " + " ".join(r["choices"]) for r in rows]
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=512, special_tokens=["<|endoftext|>"],
                                                         initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                         show_progress=False))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>",
                                                eos_token="<|endoftext|>")
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=len(fast), n_positions=1024, n_embd=d_model, n_layer=layers,
                                  n_head=heads, bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id)
    hf_dir, xlt_dir, task_dir = root / "hf", root / "xlt", root / "tasks"
    transformers.GPT2LMHeadModel(cfg).eval().save_pretrained(hf_dir)
    fast.save_pretrained(hf_dir)
    hf_interop.import_hf(hf_dir, xlt_dir)
    task_dir.mkdir()
    data = task_dir / "bench_mc4.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (task_dir / "bench_mc4.yaml").write_text(
        f"task: bench_mc4\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: {data}\ntest_split: test\n"
        "output_type: multiple_choice\ndoc_to_text: \"{{question}}\"\ndoc_to_choice: \"{{choices}}\"\n"
        "doc_to_target: label\nmetric_list:\n  - metric: acc\n  - metric: acc_norm\n")
    return hf_dir, xlt_dir, task_dir


def bench_harness(args: argparse.Namespace) -> dict[str, Any]:
    """One 4-choice lm-eval task, the same random GPT-2 (transformers, converted to xlt), the same machine:
    lm-eval's own ``hf`` backend (CPU torch, fp32) against ``xlt`` (xlt.harness), both through
    ``lm_eval.simple_evaluate`` at the same ``--batch_size``: the per-request log-likelihoods (max abs
    difference) and the metrics are compared, and that first run (xlt: compiling) is timed. Then the task's
    loglikelihood requests alone are timed ``--reps`` times per backend, alternating; requests/s and the
    ratio are from the medians."""
    import tempfile

    import lm_eval
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from xlt import harness

    d_model, layers, heads, docs, ctx, choice, batch, reps = (args.d_model, args.layers, args.heads, args.docs,
                                                              args.context_words, args.choice_words,
                                                              args.batch_size, args.reps)
    if args.smoke:
        d_model, layers, heads, docs, ctx, choice, batch, reps = 32, 1, 2, 4, 8, 2, 2, 1
    with tempfile.TemporaryDirectory() as tmp:
        hf_dir, xlt_dir, task_dir = _harness_setup(Path(tmp), d_model, layers, heads, docs, ctx, choice)
        manager = TaskManager(include_path=str(task_dir))
        backends = {"hf": HFLM(pretrained=str(hf_dir), device="cpu", dtype="float32", batch_size=batch),
                    "xlt": harness.XltLM(checkpoint=str(xlt_dir), batch_size=batch)}
        outs: dict[str, Any] = {}
        first: dict[str, float] = {}
        for name, lm in backends.items():  # the whole task once: results, and xlt's compilations
            t0 = time.perf_counter()
            outs[name] = lm_eval.simple_evaluate(model=lm, tasks=["bench_mc4"], task_manager=manager,
                                                 log_samples=True, bootstrap_iters=0, random_seed=0,
                                                 numpy_random_seed=0, torch_random_seed=0, fewshot_random_seed=0)
            first[name] = time.perf_counter() - t0
        samples = outs["hf"]["samples"]["bench_mc4"]
        requests = [Instance(request_type="loglikelihood", doc=s["doc"], arguments=tuple(a), idx=k,
                             metadata=("bench_mc4", s["doc_id"], 1))
                    for s in samples for k, a in enumerate(s["arguments"])]
        runs: dict[str, list[float]] = {"hf": [], "xlt": []}
        for _ in range(reps):  # the task's requests alone, backends alternating so both see the same load
            for name, lm in backends.items():
                t0 = time.perf_counter()
                lm.loglikelihood(requests, disable_tqdm=True)
                runs[name].append(time.perf_counter() - t0)
    lls = {name: [r[0][0] for s in out["samples"]["bench_mc4"] for r in s["resps"]] for name, out in outs.items()}
    metrics = {name: {k: v for k, v in out["results"]["bench_mc4"].items() if isinstance(v, float)}
               for name, out in outs.items()}
    warm = {name: statistics.median(t) for name, t in runs.items()}
    n = len(requests)
    rec: dict[str, Any] = {
        "benchmark": "harness", "task": "local 4-choice multiple_choice (bench_mc4)", "docs": docs,
        "requests": n, "context_words": ctx, "choice_words": choice, "batch_size": batch, "reps": reps,
        "model": f"random GPT-2 d_model={d_model} layers={layers} heads={heads}",
        "params": sum(int(np.prod(x.shape)) for x in jax.tree.leaves(backends["xlt"].params)),
        "hf_task_first_s": first["hf"], "xlt_task_first_s": first["xlt"], "hf_s": warm["hf"], "xlt_s": warm["xlt"],
        "hf_requests_per_s": n / warm["hf"], "xlt_requests_per_s": n / warm["xlt"],
        "ratio": warm["hf"] / warm["xlt"], "ratio_first_run": first["hf"] / first["xlt"],
        "max_abs_loglik_diff": float(np.max(np.abs(np.asarray(lls["hf"]) - np.asarray(lls["xlt"])))),
        "metrics_hf": metrics["hf"], "metrics_xlt": metrics["xlt"],
        "metrics_equal": all(abs(metrics["hf"][k] - metrics["xlt"].get(k, math.nan)) < 1e-9 for k in metrics["hf"]),
        "target_ratio": 3.0, "hf_s_all": runs["hf"], "xlt_s_all": runs["xlt"], "torch_threads": _torch_threads(),
    }
    rec["target_met"] = rec["ratio"] >= rec["target_ratio"]
    return rec


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


# --- attention: the attention core alone, xlt's implementations against alternatives ----------------------------

XLA_ATTENTION = "xla: jax.nn.dot_product_attention"
BLOCKED_ATTENTION = "blocked: xlt blocked_attention"


def attention_variants(blocks: int, block_len: int) -> dict[str, Callable]:
    """(q, k, v [B, T, N, H], segment ids [B, T]) -> [B, T, N, H]: causal (packed: within segments) attention,
    softmax scale H**-0.5; all compute the same function. The first two are what xlt.models.layers.Attention
    runs with attention_impl 'xla' and 'blocked' (the mask as the decoder builds it, inside the step)."""
    from xlt.models.layers import SegmentMask, blocked_attention

    def dense(segments):
        return SegmentMask(segments, segments, causal=True).dense()  # [B, 1, T, T]

    def dpa(q, k, v, segments):
        return jax.nn.dot_product_attention(q, k, v, mask=dense(segments), implementation="xla")

    def blocked(q, k, v, segments):
        return blocked_attention(q, k, v, SegmentMask(segments, segments, causal=True), block_len=block_len)

    def einsum(q, k, v, segments):  # the same math as plain einsums in xlt's [B, T, N, H] layout
        s = jnp.einsum("btnh,bsnh->bnts", q, k) * q.shape[-1] ** -0.5
        p = jax.nn.softmax(jnp.where(dense(segments), s, jnp.finfo(s.dtype).min), axis=-1)
        return jnp.einsum("bnts,bsnh->btnh", p, v)

    def causal_blocks(q, k, v, segments):  # query block i attends to key blocks <= i, [B, T, N, H] einsums
        t = q.shape[1]
        c = t // blocks
        mask = dense(segments)
        outs = []
        for i in range(blocks):
            qi, ki, vi = q[:, i * c:(i + 1) * c], k[:, :(i + 1) * c], v[:, :(i + 1) * c]
            s = jnp.einsum("btnh,bsnh->bnts", qi, ki) * q.shape[-1] ** -0.5
            s = jnp.where(mask[:, :, i * c:(i + 1) * c, :(i + 1) * c], s, jnp.finfo(s.dtype).min)
            outs.append(jnp.einsum("bnts,bsnh->btnh", jax.nn.softmax(s, axis=-1), vi))
        return jnp.concatenate(outs, axis=1)

    return {XLA_ATTENTION: dpa, f"{BLOCKED_ATTENTION}(block_len={block_len})": blocked, "einsum": einsum,
            f"causal_blocks({blocks})": causal_blocks}


def _alternating(fns: Mapping[str, Callable[[], Any]], reps: int) -> dict[str, dict[str, list[float]]]:
    """Wall and process CPU seconds of each callable, ``reps`` rounds in which every callable runs once in
    turn (so all see the same machine load), after one untimed call of each."""
    for fn in fns.values():
        fn()
    out = {name: {"wall": [], "cpu": []} for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            w, c = time.perf_counter(), time.process_time()
            fn()
            out[name]["wall"].append(time.perf_counter() - w)
            out[name]["cpu"].append(time.process_time() - c)
    return out


def bench_attention(args: argparse.Namespace) -> dict[str, Any]:
    """Forward and forward+backward of one layer's attention core at the gpt_25m shape (B, T, 8 heads of 64),
    fp32, causal: xlt's 'xla' path (jax.nn.dot_product_attention) and its 'blocked' path
    (xlt.models.layers.blocked_attention), two einsum diagnostics, and (unpacked only) torch's
    scaled_dot_product_attention(is_causal=True) with the same threads. The variants are timed in alternating
    rounds (every variant once per round), medians over ``--reps`` rounds; ``--packed`` uses the segment ids
    of the train benchmark's synthetic packed rows."""
    b, t, heads, hd, reps, blocks = args.batch, args.seq_len, args.heads, args.head_dim, args.reps, args.blocks
    block_len = args.block_len
    if args.smoke:
        b, t, heads, hd, reps, blocks, block_len = 1, 64, 2, 16, 1, 2, 24
    if t % blocks:
        raise ConfigError(f"--seq_len={t} must be a multiple of --blocks={blocks}")
    kq, kk, kv = jax.random.split(jax.random.key(0), 3)
    q, k, v = (jax.random.normal(key, (b, t, heads, hd), jnp.float32) for key in (kq, kk, kv))
    if args.packed:
        segments = jnp.asarray(synthetic_batch(batch_shapes(b, t, True), 256)["decoder_segment_ids"])
    else:
        segments = jnp.ones((b, t), jnp.int32)
    results: dict[str, Any] = {}
    reference = None
    timed: dict[str, Callable[[], Any]] = {}
    for name, fn in attention_variants(blocks, block_len).items():
        fwd = jax.jit(fn)
        grad = jax.jit(jax.grad(lambda q, k, v, s, fn=fn: jnp.sum(jnp.square(fn(q, k, v, s))), argnums=(0, 1, 2)))
        out = fwd(q, k, v, segments)
        reference = out if reference is None else reference
        results[name] = {"max_abs_diff": float(jnp.max(jnp.abs(out - reference)))}
        timed[f"{name}|fwd"] = lambda fwd=fwd: jax.block_until_ready(fwd(q, k, v, segments))
        timed[f"{name}|fwd_bwd"] = lambda grad=grad: jax.block_until_ready(grad(q, k, v, segments))
    torch = None
    if not args.packed:
        try:
            import torch
        except ImportError:
            torch = None
    if torch is not None:
        torch.set_num_threads(args.threads or threads())
        tq, tk, tv = (torch.from_numpy(np.asarray(a).transpose(0, 2, 1, 3).copy()).requires_grad_()
                      for a in (q, k, v))
        sdpa = torch.nn.functional.scaled_dot_product_attention

        def t_fwd():
            with torch.no_grad():
                return sdpa(tq, tk, tv, is_causal=True)

        def t_bwd():
            sdpa(tq, tk, tv, is_causal=True).square().sum().backward()

        got = t_fwd().numpy().transpose(0, 2, 1, 3)
        name = "torch sdpa(is_causal)"
        results[name] = {"max_abs_diff": float(np.max(np.abs(got - np.asarray(reference))))}
        timed[f"{name}|fwd"], timed[f"{name}|fwd_bwd"] = t_fwd, t_bwd
    samples = _alternating(timed, reps)
    for key, sample in samples.items():
        name, what = key.split("|")
        results[name].update({f"{what}_ms": 1e3 * statistics.median(sample["wall"]),
                              f"{what}_cpu_ms": 1e3 * statistics.median(sample["cpu"]),
                              f"{what}_ms_all": [1e3 * x for x in sample["wall"]]})
    rec = {"benchmark": "attention", "batch": b, "seq_len": t, "heads": heads, "head_dim": hd, "reps": reps,
           "packed": bool(args.packed), "block_len": block_len, "threads": args.threads or threads(),
           "variants": results}
    names = list(results)
    xla, blocked = results[names[0]], results[names[1]]
    rec["blocked_speedup_fwd_bwd"] = xla["fwd_bwd_ms"] / blocked["fwd_bwd_ms"]
    rec["blocked_speedup_fwd_bwd_cpu"] = xla["fwd_bwd_cpu_ms"] / blocked["fwd_bwd_cpu_ms"]
    return rec


# --- gpu: the ~1B decoder with a chunked cross-entropy ---------------------------------------------------------


def measure_gpu_loss(cfg: ModelConfig, loss: str, batch: int, seq_len: int, *, steps: int, warmup: int,
                     chunk_len: int, peak: Mapping[str, Any]) -> dict[str, Any]:
    """One loss variant of xlt.step.build's train step: 'plain' (the model's logits, xlt.losses.cross_entropy)
    or 'chunked' (``ModelConfig.loss_chunk_len=chunk_len``: the model's hidden states and LM-head kernel,
    xlt.losses.chunked_cross_entropy). A failure (e.g. out of memory) is recorded, not raised."""
    try:
        variant = cfg.replace(loss_chunk_len=chunk_len if loss == "chunked" else None)
        rec = measure_train(variant, batch, seq_len, steps=steps, warmup=warmup, pack=True, peak=peak).record
        return {**rec, "chunk_len": variant.loss_chunk_len}
    except Exception as e:  # noqa: BLE001 - an OOM on one variant must not hide the other's numbers
        if isinstance(e, (ConfigError, FloatingPointError)):
            raise
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"}


def bench_gpu(args: argparse.Namespace) -> dict[str, Any]:
    from xlt.models.layers import resolve_attention_impl

    cfg = load_model_config(args.gin_file, args.gin)
    batch, seq_len, steps, warmup = args.batch, args.seq_len, args.steps, args.warmup
    chunk_len = args.chunk_len or cfg.loss_chunk_len or 256
    if args.smoke:
        cfg, batch, seq_len, steps, warmup, chunk_len = tiny(cfg, vocab=1024), 2, 64, 2, 1, 16
    elif jax.default_backend() != "gpu":
        print("warning: the gpu benchmark is running without a GPU", file=sys.stderr)
    peak = cpu_or_gpu_peak(args.smoke, args.peak_reps)
    variants = ["chunked", "plain"] if args.loss == "both" else [args.loss]
    results = {v: measure_gpu_loss(cfg, v, batch, seq_len, steps=steps, warmup=warmup, chunk_len=chunk_len,
                                   peak=peak) for v in variants}
    rec: dict[str, Any] = {
        "benchmark": "gpu", "model": Path(args.gin_file).stem, "params": cfg.param_count()["total"],
        "vocab_size": cfg.vocab_size, "dtype": cfg.dtype, "param_dtype": cfg.param_dtype,
        "scan_layers": cfg.scan_layers, "remat_policy": cfg.remat_policy,
        "attention_impl": f"{cfg.attention_impl} -> {resolve_attention_impl(cfg.attention_impl, cfg.dtype)}",
        "batch": batch, "seq_len": seq_len, "flops_per_token": cfg.flops_per_token(seq_len)["total"],
        "peak_flops_per_s_measured": peak["measured"]["flops_per_s"], "peak_measured_dtype": peak["measured"]["dtype"],
        "spec_peak_flops_per_s": peak["spec_bf16_flops_per_s"], "device_kind": peak["device_kind"],
        "losses": results,
    }
    ok = {k: v for k, v in results.items() if "tokens_per_s" in v}
    if ok:
        best = max(ok, key=lambda k: ok[k]["tokens_per_s"])
        rec.update(best_loss=best, tokens_per_s=ok[best]["tokens_per_s"], mfu=ok[best]["mfu"],
                   mfu_spec=ok[best].get("mfu_spec"))
    return rec


# --- suite -----------------------------------------------------------------------------------------------------

# XLA:CPU's YNNPACK dot fusions off (dots go to Eigen): the tuned CPU setting, see BENCHMARKS.md.
TUNED_CPU_FLAGS = "--xla_cpu_experimental_ynn_fusion_type="
SUITE: tuple[tuple[list[str], str], ...] = (  # (arguments, extra XLA flags)
    (["train", "--gin_file=models/gpt_tiny.gin", "--batch=16", "--seq_len=512"], ""),
    (["train", "--gin_file=models/gpt_25m.gin", "--batch=8", "--seq_len=512", "--profile=2"], ""),
    (["train", "--gin_file=models/gpt_25m.gin", "--batch=8", "--seq_len=512"], TUNED_CPU_FLAGS),
    (["torch", "--gin_file=models/gpt_25m.gin", "--batch=8", "--seq_len=512", "--profile=1"], ""),
    (["torch", "--gin_file=models/gpt_25m.gin", "--batch=8", "--seq_len=512"], TUNED_CPU_FLAGS),
    (["pipeline", "--batch=16", "--seq_len=512"], ""),
    (["eval", "--gin_file=models/gpt_25m.gin"], ""),
    (["attention", "--batch=8", "--seq_len=512"], ""),
)


def bench_suite(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each benchmark of the CPU suite in its own process (no thread pool or allocator carries over)."""
    records = []
    for argv, flags in SUITE:
        extra = [f"--out={args.out}"] if args.out is not None else []
        flags = " ".join(f for f in (args.xla_flags, flags) if f)
        if flags:
            extra.append(f"--xla_flags={flags}")
        if args.smoke:
            extra.append("--smoke")
        cmd = [sys.executable, str(Path(__file__).resolve()), *argv, *extra]
        print("+ python tools/bench.py", shlex.join(cmd[2:]), flush=True)
        if args.dry_run:
            records.append({"benchmark": "suite", "command": "python tools/bench.py " + shlex.join(cmd[2:])})
            continue
        done = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        print(done.stdout, end="", flush=True)
        records.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return records


# --- BENCHMARKS.md sections -----------------------------------------------------------------------------------


def fmt(x: Any) -> str:
    if isinstance(x, bool) or x is None:
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if x == 0 or not math.isfinite(x):
            return str(x)
        if abs(x) >= 1e4:
            return f"{x:,.0f}"
        return f"{x:.4g}"
    return str(x)


def gib(n: float | None) -> str:
    return "—" if n is None else f"{n / 2**30:.2f} GiB"


def pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}%"


def summary_rows(rec: Mapping[str, Any]) -> list[tuple[str, str]]:
    kind = rec["benchmark"]
    rows: list[tuple[str, str]] = []
    if kind == "train":
        rows += [("model", f"{rec['model']} ({rec['params']:,} params, {rec['dtype']})"),
                 ("batch × seq_len", f"{rec['batch']} × {rec['seq_len']} "
                                     f"({'packed' if rec['packed'] else 'unpacked'})"),
                 ("tokens/s (median step)", fmt(rec["tokens_per_s"])),
                 ("step time median / min", f"{rec['step_s_median']:.4f} s / {rec['step_s_min']:.4f} s "
                                            f"({rec['steps_timed']} timed after {rec['warmup']} warmup)"),
                 ("model FLOPs/token (6N + 12·L·H·d_head·T)",
                  f"{fmt(rec['flops_per_token'])} (matmul {fmt(rec['flops_per_token_matmul'])}, attention "
                  f"{fmt(rec['flops_per_token_attention'])})"),
                 ("XLA cost-analysis FLOPs/token", fmt(rec.get("xla_cost_flops_per_token"))),
                 ("achieved model FLOP/s", fmt(rec["model_flops_per_s"])),
                 (f"measured peak ({rec.get('peak_measured_dtype')} matmul)",
                  fmt(rec.get("peak_flops_per_s_measured"))),
                 ("MFU vs measured peak", pct(rec.get("mfu")))]
        if rec.get("mfu_spec") is not None:
            rows.append(("MFU vs spec peak", pct(rec["mfu_spec"])))
        rows += [("peak memory", f"{gib(rec['peak_memory_bytes'])} ({rec['peak_memory_source']}); process peak RSS "
                                 f"{gib(rec['rss_peak_bytes'])}"),
                 ("compile time", f"{rec['compile_s']:.2f} s")]
    elif kind == "torch":
        rows += [("model", f"{rec['model']} ({rec['params']:,} params, fp32)"),
                 ("batch × seq_len", f"{rec['batch']} × {rec['seq_len']} (unpacked, both)"),
                 ("threads", f"torch {rec['torch_threads']}, XLA:CPU pool {rec['threads']}"),
                 ("torch setup", f"GPT2LMHeadModel, attention {rec['torch_attention']}, {rec['torch_optimizer']}, "
                                 "clip_grad_norm_ 1.0"),
                 ("xlt tokens/s", fmt(rec["xlt_tokens_per_s"])), ("torch tokens/s", fmt(rec["torch_tokens_per_s"])),
                 ("ratio xlt / torch", f"{rec['ratio']:.2f}× (target ≥ {rec['target_ratio']}×: "
                                       f"{'met' if rec['target_met'] else 'NOT met'})"),
                 ("MFU xlt / torch (measured fp32 peak " + fmt(rec["peak_flops_per_s_measured"]) + ")",
                  f"{pct(rec['xlt_mfu'])} / {pct(rec['torch_mfu'])}"),
                 ("process CPU seconds per step xlt / torch", f"{rec['xlt_cpu_s_per_step']:.2f} / "
                                                              f"{rec['torch_cpu_s_per_step']:.2f}"),
                 ("timing", f"{rec['rounds']} interleaved rounds × {rec['steps_per_round']} steps each, medians")]
    elif kind == "pipeline":
        rows += [("mixture", f"{rec['mixture']} ({len(rec['languages'])} languages), {rec['vocabulary']} "
                             f"({rec['vocab_size']} ids), packed"),
                 ("batch × seq_len", f"{rec['batch']} × {rec['seq_len']}"),
                 ("pipeline tokens/s (warm)", f"{fmt(rec['pipeline_tokens_per_s'])} over {rec['batches_timed']} "
                                              f"batches (first batch {rec['first_batch_s']:.1f} s)"),
                 ("loss-bearing tokens/s", f"{fmt(rec['pipeline_loss_tokens_per_s'])} "
                                           f"(packing efficiency {pct(rec['packing_efficiency'])})"),
                 (f"{rec['model']} train step tokens/s", fmt(rec["step_tokens_per_s"])),
                 ("ratio pipeline / step", f"{rec['ratio']:.1f}× (target ≥ {rec['target_ratio']}×: "
                                           f"{'met' if rec['target_met'] else 'NOT met'})"),
                 ("end-to-end tokens/s (step fed by the pipeline)", fmt(rec["e2e_tokens_per_s"]))]
    elif kind == "gpu":
        rows += [("model", f"{rec['model']} ({rec['params']:,} params, vocab {rec['vocab_size']:,}), {rec['dtype']} "
                           f"compute / {rec['param_dtype']} params, scan={rec['scan_layers']}, remat "
                           f"{rec['remat_policy']}, attention {rec['attention_impl']}"),
                 ("device", str(rec["device_kind"])), ("batch × seq_len", f"{rec['batch']} × {rec['seq_len']}"),
                 ("measured peak", f"{fmt(rec['peak_flops_per_s_measured'])} ({rec['peak_measured_dtype']})"),
                 ("spec peak", fmt(rec["spec_peak_flops_per_s"]))]
        for name, r in rec["losses"].items():
            if "error" in r:
                rows.append((f"{name} cross-entropy", r["error"]))
                continue
            rows.append((f"{name} cross-entropy", f"{fmt(r['tokens_per_s'])} tokens/s, MFU {pct(r.get('mfu'))} "
                                                  f"measured / {pct(r.get('mfu_spec'))} spec, peak memory "
                                                  f"{gib(r['peak_memory_bytes'])} ({r['peak_memory_source']}; XLA "
                                                  f"estimate {gib(r.get('compiled_memory_bytes'))}), compile "
                                                  f"{r['compile_s']:.1f} s"))
    elif kind == "attention":
        rows.append(("shape", f"q, k, v [{rec['batch']}, {rec['seq_len']}, {rec['heads']}, {rec['head_dim']}] fp32, "
                              f"causal{', packed' if rec.get('packed') else ''}, {rec['threads']} threads, median "
                              f"of {rec['reps']} alternating rounds"))
        for name, r in rec["variants"].items():
            rows.append((name, f"fwd {r['fwd_ms']:.1f} ms, fwd+bwd {r['fwd_bwd_ms']:.1f} ms (CPU time "
                               f"{r['fwd_bwd_cpu_ms']:.1f} ms), max |Δ| {r['max_abs_diff']:.1e}"))
        if "blocked_speedup_fwd_bwd" in rec:
            rows.append(("blocked vs xla, fwd+bwd", f"{rec['blocked_speedup_fwd_bwd']:.2f}× wall, "
                                                    f"{rec['blocked_speedup_fwd_bwd_cpu']:.2f}× CPU time"))
    elif kind == "resume":
        rows += [("mixture", f"{rec['mixture']} ({len(rec['languages'])} languages), {rec['batch']} × "
                             f"{rec['seq_len']} packed"),
                 ("first batch, fresh process: step 0 / resume", f"{rec['cold_first_batch_s_step0']:.2f} s / "
                                                                 f"{rec['cold_first_batch_s_resume']:.2f} s "
                                                                 f"(step {rec['resume_step']:,})"),
                 ("resume / step 0", f"{rec['cold_ratio']:.2f}× (target ≤ {rec['target_ratio']}×: "
                                     f"{'met' if rec['target_met'] else 'NOT met'})"),
                 ("first batch, token index built: step 0 / resume",
                  f"{rec['warm_first_batch_s_step0']:.3f} s / {rec['warm_first_batch_s_resume']:.3f} s "
                  f"({rec['warm_ratio']:.2f}×, median of {rec['reps']})")]
    elif kind == "eval":
        rows += [("model", f"{rec['model']} ({rec['params']:,} params, random init)"),
                 ("scoring workload", f"{rec['prompts']} prompts × {rec['options_per_prompt']} options, prompt "
                                      f"{rec['prompt_len']} tokens, option {rec['option_len']} tokens, "
                                      f"{rec['scoring_batch_size']} prompts per forward"),
                 ("score_options (shared prompt)", f"{rec['shared_s']:.3f} s, {fmt(rec['shared_options_per_s'])} "
                                                   "options/s"),
                 ("score_options_naive", f"{rec['naive_s']:.3f} s, {fmt(rec['naive_options_per_s'])} options/s"),
                 ("scoring speed-up", f"{rec['scoring_ratio']:.2f}× (target ≥ {rec['scoring_target_ratio']}×: "
                                      f"{'met' if rec['scoring_target_met'] else 'NOT met'}; linear token-count ratio "
                                      f"{rec['scoring_token_ratio_bound']:.2f}×)"),
                 ("max |Δ log-likelihood| shared vs naive", f"{rec['scoring_max_abs_diff']:.2e}"),
                 ("generation workload", f"{rec['gen_batch']} prompts of {rec['gen_prompt_len']} tokens, greedy, "
                                         f"{rec['gen_tokens_generated']} tokens generated (max "
                                         f"{rec['gen_max_new_tokens']} per row)"),
                 ("generation tokens/s with / without KV cache", f"{fmt(rec['cached_tokens_per_s'])} / "
                                                                 f"{fmt(rec['uncached_tokens_per_s'])} "
                                                                 f"({rec['generation_ratio']:.1f}×)"),
                 ("cached and uncached outputs identical", str(rec["generation_outputs_match"])),
                 ("timing", f"median of {rec['reps']} calls after a compiling call")]
    elif kind == "harness":
        rows += [("task / model", f"{rec['task']}, {rec['requests']} requests; {rec['model']} "
                                  f"({rec['params']:,} params), batch_size {rec['batch_size']}"),
                 ("hf backend requests/s", fmt(rec["hf_requests_per_s"])),
                 ("xlt requests/s", fmt(rec["xlt_requests_per_s"])),
                 ("xlt / hf", f"{rec['ratio']:.2f}× (target ≥ {rec['target_ratio']}×: "
                              f"{'met' if rec['target_met'] else 'NOT met'}; first runs {rec['ratio_first_run']:.2f}×)"),
                 ("max per-request log-likelihood difference", f"{rec['max_abs_loglik_diff']:.2e}"),
                 ("metrics equal", str(rec["metrics_equal"])),
                 ("timing", f"median of {rec['reps']} loglikelihood calls per backend, alternating, after a "
                            "first simple_evaluate run (xlt: compiling)")]
    return rows


def profile_rows(rec: Mapping[str, Any]) -> list[str]:
    lines = []
    prof = rec.get("xla_profile")
    if prof and "categories" in prof:
        lines += ["", f"XLA profile ({prof['steps']} steps, jax.profiler; op time summed over executor threads):", "",
                  "| category | s/step | share |", "|---|---|---|"]
        lines += [f"| {k} | {v['s_per_step']:.3f} | {pct(v['share'])} |" for k, v in prof["categories"].items()]
        lines += ["", "| top JAX operations (XLA op time, layers summed) | category | ops | ms/step | share |",
                  "|---|---|---|---|---|"]
        lines += [f"| `{o['source'][-100:]}` | {o['category']} | {o['ops']} | {o['ms_per_step']:.1f} | "
                  f"{pct(o['share'])} |" for o in prof.get("top_sources", [])[:12]]
    tprof = rec.get("torch_profile")
    if tprof:
        lines += ["", "torch.profiler (self CPU time):", "", "| op | ms/step | share | calls/step |",
                  "|---|---|---|---|"]
        lines += [f"| `{o['op']}` | {o['self_ms_per_step']:.1f} | {pct(o['share'])} | {o['calls_per_step']:.0f} |"
                  for o in tprof[:10]]
    return lines


def section(rec: Mapping[str, Any]) -> str:
    title = {"train": f"train · {rec.get('model')} · batch {rec.get('batch')} × {rec.get('seq_len')}",
             "torch": f"torch head-to-head · {rec.get('model')} · batch {rec.get('batch')} × {rec.get('seq_len')}",
             "pipeline": f"pipeline · {rec.get('mixture')} · batch {rec.get('batch')} × {rec.get('seq_len')}",
             "resume": f"resume · {rec.get('mixture')} · step {rec.get('resume_step')} vs 0",
             "eval": "eval · option scoring and cached generation",
             "attention": f"attention core · batch {rec.get('batch')} × {rec.get('seq_len')}",
             "gpu": f"gpu · {rec.get('model')} · batch {rec.get('batch')} × {rec.get('seq_len')}",
             "harness": f"harness · lm-eval hf backend vs xlt · {rec.get('model')}"}[rec["benchmark"]]
    versions_text = ", ".join(f"{k} {v}" for k, v in rec["versions"].items())
    lines = [f"### {title} — {rec['date']}", "", f"`{rec['command']}`", "",
             f"- machine: {rec['machine']}", f"- versions: {versions_text}",
             f"- 1-minute load average before / after: {rec['load_before']:.2f} / {rec['load_after']:.2f}"]
    if rec.get("xla_flags_env") or rec.get("xla_flags"):
        lines.append(f"- XLA_FLAGS: `{rec.get('xla_flags_env', '')}`"
                     + (f" (from --xla_flags: `{rec['xla_flags']}`)" if rec.get("xla_flags") else ""))
    lines += ["", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in summary_rows(rec)]
    lines += profile_rows(rec)
    raw = {k: v for k, v in rec.items() if k not in ("xla_profile", "torch_profile")}
    lines += ["", "<details><summary>raw record</summary>", "", "```json", json.dumps(raw, indent=1, default=str),
              "```", "", "</details>", "", ""]
    return "\n".join(lines)


def append_section(path: Path, rec: Mapping[str, Any]) -> None:
    if not path.exists():
        path.write_text("# Benchmarks\n\n")
    with path.open("a") as f:
        f.write(section(rec))


# --- command line -----------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tools/bench.py", description=__doc__.split("\n\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--smoke", action="store_true", help="tiny sizes; append nothing unless --out is given")
    common.add_argument("--out", default=None, help="markdown file to append to (default docs/BENCHMARK_RUNS.md; '' none)")
    common.add_argument("--json", default=None, help="also write the record(s) as JSON to this path")
    common.add_argument("--xla_flags", default="", help="extra XLA_FLAGS for this process")
    common.add_argument("--peak_reps", type=int, default=5, help="repetitions of the peak matmul (best is kept)")
    common.add_argument("--gin", action="append", default=[], help="extra gin binding NAME=VALUE (repeatable)")
    timing = argparse.ArgumentParser(add_help=False)
    timing.add_argument("--steps", type=int, default=5, help="timed steps (the median is reported)")
    timing.add_argument("--warmup", type=int, default=2, help="untimed steps after compilation")
    timing.add_argument("--profile", type=int, default=0, help="also profile this many steps")
    timing.add_argument("--profile_dir", default=None)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", parents=[common, timing], help="train-step tokens/s, MFU, memory, compile time")
    t.add_argument("--gin_file", default="models/gpt_25m.gin")
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--seq_len", type=int, default=512)
    t.add_argument("--no_pack", action="store_true", help="unpacked rows (no segment ids)")
    t.add_argument("--devices", type=int, default=1, help="devices in the data-parallel mesh")

    h = sub.add_parser("torch", parents=[common, timing], help="xlt vs transformers GPT2LMHeadModel on CPU torch")
    h.add_argument("--gin_file", default="models/gpt_25m.gin")
    h.add_argument("--batch", type=int, default=8)
    h.add_argument("--seq_len", type=int, default=512)
    h.add_argument("--rounds", type=int, default=3, help="interleaved xlt/torch rounds of --steps each")
    h.add_argument("--threads", type=int, default=0, help="torch threads (default: the cores of this process)")

    q = sub.add_parser("pipeline", parents=[common, timing], help="input pipeline tokens/s vs the tiny model's step")
    q.add_argument("--gin_file", default="models/gpt_tiny.gin")
    q.add_argument("--mixture_gin", default="mixtures/temperature.gin")
    q.add_argument("--batch", type=int, default=16)
    q.add_argument("--seq_len", type=int, default=512)
    q.add_argument("--batches", type=int, default=200, help="timed batches")
    q.add_argument("--warm_batches", type=int, default=5, help="batches after the first, before timing")
    q.add_argument("--e2e_steps", type=int, default=10, help="steps fed by the pipeline (end to end)")

    r = sub.add_parser("resume", parents=[common], help="time to the first batch resuming at --step vs step 0")
    r.add_argument("--mixture_gin", default="mixtures/temperature.gin")
    r.add_argument("--batch", type=int, default=16)
    r.add_argument("--seq_len", type=int, default=256)
    r.add_argument("--step", type=int, default=100_000, help="the step resumed at")
    r.add_argument("--reps", type=int, default=5, help="warm first batches timed (median)")
    r.add_argument("--one_start", type=int, default=None, help=argparse.SUPPRESS)

    e = sub.add_parser("eval", parents=[common], help="option scoring and cached generation")
    e.add_argument("--gin_file", default="models/gpt_25m.gin")
    e.add_argument("--prompts", type=int, default=16, help="prompts scored")
    e.add_argument("--options", type=int, default=4, help="options per prompt")
    e.add_argument("--prompt_len", type=int, default=256)
    e.add_argument("--option_len", type=int, default=8)
    e.add_argument("--batch_size", type=int, default=8, help="prompts per scoring forward")
    e.add_argument("--gen_batch", type=int, default=8)
    e.add_argument("--gen_prompt_len", type=int, default=64)
    e.add_argument("--gen_tokens", type=int, default=64)
    e.add_argument("--reps", type=int, default=3, help="timed calls (median) after a compiling one")

    a = sub.add_parser("attention", parents=[common], help="the attention core: xlt's call vs alternatives")
    a.add_argument("--batch", type=int, default=8)
    a.add_argument("--seq_len", type=int, default=512)
    a.add_argument("--heads", type=int, default=8)
    a.add_argument("--head_dim", type=int, default=64)
    a.add_argument("--blocks", type=int, default=4, help="query blocks of the causal_blocks diagnostic variant")
    a.add_argument("--block_len", type=int, default=ModelConfig.attention_block_len,
                   help="query positions per block of xlt's blocked attention")
    a.add_argument("--packed", action="store_true", help="segment ids of packed rows (no torch variant)")
    a.add_argument("--reps", type=int, default=5)
    a.add_argument("--threads", type=int, default=0, help="torch threads (default: the cores of this process)")

    g = sub.add_parser("gpu", parents=[common, timing], help="~1B decoder, bf16, cuDNN attention, chunked CE")
    g.add_argument("--gin_file", default="models/gpt_1b.gin")
    g.add_argument("--batch", type=int, default=8)
    g.add_argument("--seq_len", type=int, default=2048)
    g.add_argument("--loss", choices=("chunked", "plain", "both"), default="both")
    g.add_argument("--chunk_len", type=int, default=0,
                   help="positions per cross-entropy chunk (default: the config's loss_chunk_len, else 256)")

    k = sub.add_parser("harness", parents=[common], help="one 4-choice lm-eval task: hf backend vs xlt")
    k.add_argument("--d_model", type=int, default=256)
    k.add_argument("--layers", type=int, default=4)
    k.add_argument("--heads", type=int, default=4)
    k.add_argument("--docs", type=int, default=64, help="documents (4 requests each)")
    k.add_argument("--context_words", type=int, default=60)
    k.add_argument("--choice_words", type=int, default=3)
    k.add_argument("--batch_size", type=int, default=16, help="lm-eval --batch_size for both backends")
    k.add_argument("--reps", type=int, default=2, help="timed runs after the first")

    s = sub.add_parser("suite", parents=[common], help="the CPU suite, each benchmark in its own process")
    s.add_argument("--dry_run", action="store_true", help="print the commands only")
    return p


BENCHMARKS: dict[str, Callable[[argparse.Namespace], Any]] = {
    "train": bench_train, "torch": bench_torch, "pipeline": bench_pipeline, "eval": bench_eval, "gpu": bench_gpu,
    "resume": bench_resume, "harness": bench_harness,
    "attention": bench_attention, "suite": bench_suite,
}


def apply_xla_flags(flags: str) -> bool:
    """Append to XLA_FLAGS; True when no backend has started yet (so the flags take effect)."""
    if not flags:
        return True
    try:
        from jax._src import xla_bridge  # private: whether a backend exists already

        started = bool(getattr(xla_bridge, "_backends", {}))
    except ImportError:
        started = False
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + flags).strip()
    if started:
        print("warning: --xla_flags given after the XLA backend started; they have no effect", file=sys.stderr)
    return not started


def run(argv: Sequence[str]) -> list[dict[str, Any]]:
    """Run one subcommand; returns its record(s) (the suite returns one per benchmark)."""
    args = parser().parse_args(list(argv))
    applied = apply_xla_flags(args.xla_flags)
    if args.command == "suite":
        return bench_suite(args)
    load_before = load1()
    try:
        rec = BENCHMARKS[args.command](args)
    finally:  # the gin bindings parsed for this benchmark must not outlive it (in-process callers, tests)
        import gin

        gin.clear_config()
    rec.update(command="python tools/bench.py " + shlex.join(argv),
               date=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), machine=machine(),
               versions=versions(), load_before=load_before, load_after=load1(), smoke=args.smoke,
               xla_flags_env=os.environ.get("XLA_FLAGS", ""))
    if args.xla_flags:
        rec["xla_flags"] = args.xla_flags if applied else f"{args.xla_flags} (NOT applied: backend already started)"
    out = args.out if args.out is not None else ("" if args.smoke else str(DEFAULT_OUT))
    if out:
        append_section(Path(out), rec)
    if args.json:
        Path(args.json).write_text(json.dumps(rec, indent=1, default=str))
    return [rec]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    records = run(argv)
    if argv and argv[0] != "suite":  # the suite's processes printed their own records
        for rec in records:
            print(json.dumps(rec, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(cli.main(lambda a: main(a)))
