"""tools/bench.py: every subcommand in --smoke mode (tiny shapes, in-process), the FLOPs formula against a
hand count, and the markdown section it appends. No timing assertions: only that each record has its
fields with finite positive values."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import bench  # noqa: E402

from xlt.models import ModelConfig  # noqa: E402

COMMON = ["--smoke", "--peak_reps=1"]


def positive(rec: dict, *keys: str) -> None:
    for key in keys:
        value = rec[key]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (key, value)


def check_section(md: Path, rec: dict, heading: str) -> None:
    text = md.read_text()
    assert text.startswith("# Benchmarks")
    assert heading in text and rec["command"] in text and rec["date"] in text
    assert "1-minute load average" in text and "jax 0." in text


def hand_flops_per_token(d: int, layers: int, d_ff: int, vocab: int, seq_len: int) -> float:
    """GPT-2 layout, heads × head_dim = d: 6 × (weights a token multiplies, LM head once) + 12·L·d·T."""
    attention_weights = 4 * d * d + 4 * d  # q, k, v, out kernels and biases
    mlp_weights = 2 * d * d_ff + d_ff + d  # wi, wo and biases
    norms = 2 * 2 * d  # two LayerNorms, scale and bias
    n_matmul = layers * (attention_weights + mlp_weights + norms) + vocab * d
    return 6.0 * n_matmul + 12.0 * layers * d * seq_len


def test_flops_formula_matches_hand_count():
    cfg = ModelConfig(layout="gpt", vocab_size=10, d_model=8, num_layers=2, num_heads=2, d_ff=16, max_len=8)
    # By hand: per layer 4·64+32 + 2·128+16+8 + 32 = 600; ×2 = 1200; + head 80 -> 6·1280 = 7680;
    # attention 12·2·8·4 = 768.
    assert hand_flops_per_token(8, 2, 16, 10, 4) == 7680 + 768
    assert cfg.flops_per_token(4)["total"] == 7680 + 768
    assert cfg.flops_per_token(4)["attention"] == 768


def test_train_smoke(tmp_path):
    md = tmp_path / "bench.md"
    (rec,) = bench.run(["train", *COMMON, f"--out={md}", "--profile=1", f"--profile_dir={tmp_path / 'prof'}"])
    positive(rec, "tokens_per_s", "step_s_median", "flops_per_token", "model_flops_per_s", "mfu",
             "peak_flops_per_s_measured", "peak_memory_bytes", "rss_peak_bytes", "compile_s", "params")
    assert rec["peak_memory_source"]
    cfg = bench.tiny(bench.load_model_config("models/gpt_25m.gin"))
    assert rec["flops_per_token"] == hand_flops_per_token(cfg.d_model, cfg.num_layers, cfg.d_ff, cfg.vocab_size,
                                                          rec["seq_len"])
    assert rec["tokens_per_s"] == pytest.approx(rec["tokens_per_step"] / rec["step_s_median"])
    assert rec["mfu"] == pytest.approx(rec["model_flops_per_s"] / rec["peak_flops_per_s_measured"])
    prof = rec["xla_profile"]
    assert "matmul" in prof["categories"] and prof["top_ops"]
    check_section(md, rec, "### train · gpt_25m")
    assert "XLA profile" in md.read_text()


def test_torch_smoke(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    md = tmp_path / "bench.md"
    (rec,) = bench.run(["torch", *COMMON, f"--out={md}"])
    positive(rec, "xlt_tokens_per_s", "torch_tokens_per_s", "ratio", "xlt_mfu", "torch_mfu", "threads")
    assert rec["ratio"] == pytest.approx(rec["xlt_tokens_per_s"] / rec["torch_tokens_per_s"])
    assert rec["torch_threads"] == rec["threads"]
    check_section(md, rec, "### torch head-to-head")


def test_pipeline_smoke(tmp_path):
    md = tmp_path / "bench.md"
    (rec,) = bench.run(["pipeline", *COMMON, f"--out={md}"])
    positive(rec, "pipeline_tokens_per_s", "pipeline_loss_tokens_per_s", "step_tokens_per_s", "ratio",
             "e2e_tokens_per_s", "first_batch_s")
    assert 0 < rec["packing_efficiency"] <= 1
    assert rec["vocabulary"] == "ByteVocabulary" and rec["languages"] == ["en", "ko"]
    check_section(md, rec, "### pipeline · bible_temperature")


def test_eval_smoke(tmp_path):
    pytest.importorskip("xlt.evaluation.scoring")
    pytest.importorskip("xlt.decoding")
    md = tmp_path / "bench.md"
    (rec,) = bench.run(["eval", *COMMON, f"--out={md}"])
    positive(rec, "shared_s", "naive_s", "scoring_ratio", "cached_tokens_per_s", "uncached_tokens_per_s",
             "generation_ratio", "gen_tokens_generated")
    assert rec["scoring_max_abs_diff"] < 1e-3  # the two scorers agree
    assert rec["generation_outputs_match"]
    check_section(md, rec, "### eval")


def test_gpu_smoke_runs_on_cpu():
    """Smoke mode without --out appends nothing to BENCHMARKS.md. The chunked loss only: the plain one is
    measure_train, which test_train_smoke runs."""
    before = bench.DEFAULT_OUT.read_text() if bench.DEFAULT_OUT.exists() else None
    (rec,) = bench.run(["gpu", *COMMON, "--loss=chunked"])
    assert rec["dtype"] == "bfloat16" and rec["scan_layers"] and rec["remat_policy"] != "none"
    assert rec["attention_impl"] == "auto -> xla"  # cuDNN only on a GPU
    assert list(rec["losses"]) == ["chunked"] and rec["best_loss"] == "chunked"
    assert "error" not in rec["losses"]["chunked"], rec["losses"]["chunked"]
    positive(rec["losses"]["chunked"], "tokens_per_s", "mfu", "peak_memory_bytes", "compile_s")
    positive(rec, "tokens_per_s", "mfu", "flops_per_token", "peak_flops_per_s_measured")
    assert (bench.DEFAULT_OUT.read_text() if bench.DEFAULT_OUT.exists() else None) == before


def test_attention_smoke(tmp_path):
    md = tmp_path / "bench.md"
    (rec,) = bench.run(["attention", *COMMON, f"--out={md}"])
    assert len(rec["variants"]) >= 3
    for name, r in rec["variants"].items():
        positive(r, "fwd_ms", "fwd_bwd_ms")
        assert r["max_abs_diff"] < 1e-4, name  # every variant computes the same attention
    check_section(md, rec, "### attention core")


def test_suite_dry_run():
    records = bench.run(["suite", "--dry_run", "--smoke"])
    commands = [r["command"] for r in records]
    assert [c.split()[2] for c in commands] == ["train", "train", "train", "torch", "torch", "pipeline", "eval",
                                                "attention"]
    assert sum("--xla_flags=" in c for c in commands) == 2
    assert all("--smoke" in c for c in commands)
