"""The BLOOM layout (ALiBi, embedding LayerNorm, tanh-GELU, tied head): ALiBi's slopes against transformers',
its bias against the paper's query-relative form, packing / padding / prefix-LM / every attention_impl, the KV
cache (generation and shared-prompt option scoring) against the full forward, probing, the parameter count of
BLOOMZ-560M against transformers' module, and training on real text. Hugging Face logit parity is in
tests/interop/test_hf_interop.py (families "bloom" and "bloom_pow2_scanned")."""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xlt import cli, decoding
from xlt.errors import ConfigError
from xlt.evaluation import scoring
from xlt.models import ModelConfig, build_model
from xlt.models import layers as L

from random_params import random_params, stack_layers

REPO = Path(__file__).resolve().parents[2]
T, B = 32, 2
# 6 heads: the slopes of a head count that is not a power of two (4 from 2**-2k, 2 interleaved from 2**-k).
CFG = ModelConfig(layout="bloom", vocab_size=96, d_model=48, num_layers=2, num_heads=6, d_ff=192)


@functools.cache
def params():
    return random_params(CFG, build_model(CFG), seed=3)


@functools.cache
def forward(**overrides):
    model = build_model(CFG.replace(**overrides))
    return jax.jit(lambda p, b: model.apply({"params": p}, b))


def run(batch, **overrides) -> np.ndarray:
    p = stack_layers(params()) if overrides.get("scan_layers") else params()
    return np.asarray(forward(**overrides)(p, {k: jnp.asarray(v) for k, v in batch.items()}))


def packed(splits, seed=0):
    rng = np.random.default_rng(seed)
    tok = rng.integers(2, CFG.vocab_size, (len(splits), T)).astype(np.int32)
    seg = np.zeros_like(tok)
    pos = np.zeros_like(tok)
    for r, lens in enumerate(splits):
        start = 0
        for s, n in enumerate(lens):
            seg[r, start:start + n] = s + 1
            pos[r, start:start + n] = np.arange(n)
            start += n
    tok[seg == 0] = 0
    return {"decoder_input_tokens": tok, "decoder_segment_ids": seg, "decoder_positions": pos}


# --- ALiBi ------------------------------------------------------------------------------------------------


def test_layout_defaults_and_validation():
    cfg = ModelConfig(layout="bloom")
    assert (cfg.position, cfg.embedding_norm, cfg.norm, cfg.use_bias, cfg.tie_embeddings, cfg.activation,
            cfg.gated_mlp) == ("alibi", True, "layernorm", True, True, "gelu_tanh", False)
    assert not ModelConfig(layout="gpt").embedding_norm
    assert ModelConfig(layout="gpt", position="alibi", embedding_norm=True).position == "alibi"  # any decoder
    with pytest.raises(ConfigError, match="position='alibi' is implemented for decoder-only"):
        ModelConfig(layout="t5", position="alibi")
    with pytest.raises(ConfigError, match="embedding_norm is implemented for decoder-only"):
        ModelConfig(layout="t5", embedding_norm=True)


def test_alibi_slopes_match_transformers():
    torch = pytest.importorskip("torch")
    modeling_bloom = pytest.importorskip("transformers.models.bloom.modeling_bloom")
    for heads in (1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 40, 112):
        want = modeling_bloom._get_alibi_slopes(heads, torch.device("cpu")).numpy()
        # to the ulp: xlt rounds the exact power of the float32 base, torch's float32 pow may be an ulp off
        np.testing.assert_allclose(L.alibi_slopes(heads), want, rtol=2.5e-7, atol=0, err_msg=f"{heads} heads")
    # The paper's geometric sequence for a power of two: 2^(-8/n), 2^(-16/n), ...
    np.testing.assert_allclose(L.alibi_slopes(8), 2.0 ** (-np.arange(1, 9)), rtol=1e-7)


def test_alibi_bias_is_the_papers_relative_bias_per_query():
    """slope * key position (HF's form, [b, heads, 1, k]) and -slope * (query - key) (the paper's, [b, heads,
    q, k]) give the same attention: they differ by a constant per query row."""
    rng = np.random.default_rng(0)
    heads, d = CFG.num_heads, 8
    q, k, v = (jnp.asarray(rng.normal(size=(B, T, heads, d)), jnp.float32) for _ in range(3))
    seg = jnp.asarray(packed(((12, 20), (32,)))["decoder_segment_ids"])
    pos = jnp.asarray(packed(((12, 20), (32,)))["decoder_positions"])
    mask = L.SegmentMask(seg, seg, causal=True)
    hf_form = L.alibi_bias(CFG, pos)
    assert hf_form.shape == (B, heads, 1, T) and hf_form.dtype == jnp.float32
    slopes = jnp.asarray(L.alibi_slopes(heads))[None, :, None, None]
    paper = -slopes * (pos[:, None, :, None] - pos[:, None, None, :]).astype(jnp.float32)
    want = jax.nn.dot_product_attention(q, k, v, bias=paper, mask=mask.dense(), implementation="xla")
    for impl in ("xla", "blocked"):
        if impl == "xla":
            got = jax.nn.dot_product_attention(q, k, v, bias=hf_form, mask=mask.dense(), implementation="xla")
        else:
            got = L.blocked_attention(q, k, v, mask, hf_form, block_len=8)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=2e-6, rtol=0, err_msg=impl)
    assert L.alibi_bias(ModelConfig(layout="gpt"), pos) is None


@pytest.mark.parametrize("prefix_lm", [False, True])
def test_packed_equals_unpacked_for_every_attention_impl(prefix_lm):
    """Positions restart per segment: each packed segment's logits equal the segment run alone (from position
    0, padded), with attention_impl 'xla' and 'blocked' (blocks of 8, scanned) alike; a prefix-LM prefix of 5."""
    splits = ((12, 20), (20, 9))
    batch = packed(splits)
    if prefix_lm:
        batch["decoder_causal_attention"] = ((batch["decoder_positions"] < 5) & (batch["decoder_segment_ids"] > 0)
                                             ).astype(np.int32)
    impls = [dict(attention_impl="xla"), dict(attention_impl="blocked", attention_block_len=8, scan_layers=True)]
    outs = [run(batch, **kw) for kw in impls]
    np.testing.assert_allclose(outs[1], outs[0], atol=1e-5, rtol=0)
    for r, lens in enumerate(splits):
        start = 0
        for s, n in enumerate(lens):
            alone = {"decoder_input_tokens": np.zeros((1, T), np.int32)}
            alone["decoder_input_tokens"][0, :n] = batch["decoder_input_tokens"][r, start:start + n]
            if prefix_lm:
                alone["decoder_causal_attention"] = (np.arange(T) < 5).astype(np.int32)[None]
            got = run(alone, attention_impl="xla")[0, :n]
            np.testing.assert_allclose(outs[0][r, start:start + n], got, atol=1e-5, rtol=0, err_msg=f"{r}/{s}")
            start += n
    # ALiBi is not a no-op: the same parameters without it give other logits.
    assert np.max(np.abs(run(batch, position="none") - outs[0])) > 1e-2


def test_cudnn_falls_back_to_xla():
    """The cuDNN kernel takes no [b, heads, 1, keys] bias: attention_impl='cudnn' runs jax's XLA path for ALiBi
    (on this CPU, where the cuDNN path itself would fail: 'cuDNN is not detected')."""
    batch = packed(((12, 20), (32,)))
    np.testing.assert_array_equal(run(batch, attention_impl="cudnn"), run(batch, attention_impl="xla"))


# --- The KV cache: generation and shared-prompt scoring -----------------------------------------------------


@pytest.mark.parametrize("prefix_lm", [False, True])
def test_cached_generation_matches_the_full_forward(prefix_lm):
    """Greedy tokens through the KV cache (prefill at decoder_positions, ALiBi from the cache's slot positions)
    equal the uncached full forward, for ragged prompts, looped and scanned."""
    rng = np.random.default_rng(5)
    prompts = [rng.integers(2, CFG.vocab_size, n).tolist() for n in (5, 1, 11)]
    ref = decoding.generate(build_model(CFG), params(), prompts, max_new_tokens=8, prefix_lm=prefix_lm,
                            use_cache=False)
    assert len({tuple(r) for r in ref.tokens}) == len(prompts)  # varied outputs: agreement is not by accident
    for cfg, p in ((CFG, params()), (CFG.replace(scan_layers=True), stack_layers(params()))):
        got = decoding.generate(build_model(cfg), p, prompts, max_new_tokens=8, prefix_lm=prefix_lm)
        np.testing.assert_array_equal(got.tokens, ref.tokens)
        np.testing.assert_array_equal(got.lengths, ref.lengths)


@pytest.mark.parametrize("prefix_lm", [False, True])
def test_option_scoring_matches_naive(prefix_lm):
    """The prompt's KV cache shared by its options ("shared" cache mode) == one full forward per option."""
    rng = np.random.default_rng(2)
    prompts = [rng.integers(2, CFG.vocab_size, n).tolist() for n in (6, 1, 13)]
    options = [[rng.integers(2, CFG.vocab_size, rng.integers(1, 6)).tolist() for _ in range(k)] for k in (3, 2, 4)]
    model = build_model(CFG)
    shared = scoring.score_options(model, params(), prompts, options, prefix_lm=prefix_lm, batch_size=2)
    naive = scoring.score_options_naive(model, params(), prompts, options, prefix_lm=prefix_lm, batch_size=3)
    for s, n in zip(shared, naive):
        np.testing.assert_allclose(s.loglik, n.loglik, atol=1e-4, rtol=1e-5)
    assert np.ptp(np.concatenate([s.loglik for s in shared])) > 1.0  # the options really differ


# --- Probing ------------------------------------------------------------------------------------------------


def test_probe_hidden_states():
    """The probe's last residual state, unembedded (final norm, tied head), is the model's own logits."""
    seqio = pytest.importorskip("seqio")
    from xlt import probe

    cfg = CFG.replace(vocab_size=264)
    p = random_params(cfg, build_model(cfg), seed=4)
    pr = probe.Probe(cfg, p, seqio.ByteVocabulary())
    texts = ["In the beginning", "Im Anfang schuf Gott"]
    out = pr.hidden_states(texts)
    assert sorted(out["states"]) == list(range(cfg.num_layers + 1))
    inter, batch = pr.intermediates(texts)
    logits = pr.unembed(out["states"][cfg.num_layers])
    mask = batch["segments"].astype(bool)
    np.testing.assert_allclose(logits[mask], batch["logits"][mask], atol=1e-4, rtol=1e-4)
    for i in range(1, cfg.num_layers + 1):
        assert np.all(np.isfinite(out["mean"][i])) and out["mean"][i].shape == (2, cfg.d_model)


# --- Size and training --------------------------------------------------------------------------------------


def _gin_config(name: str) -> ModelConfig:
    import gin

    import xlt.train  # noqa: F401 - registers `train`, which the model gin files bind

    cli.load_gin([str(REPO / "gin" / "models" / name)], [])
    try:
        return ModelConfig()
    finally:
        gin.clear_config()


@pytest.mark.parametrize("name", ["bloom_tiny.gin", "bloomz_560m.gin"])
def test_param_count_matches_the_model_and_transformers(name):
    """ModelConfig.param_count() == the initialised xlt model == transformers' BloomForCausalLM (on the meta
    device, so BLOOMZ-560M's real shape costs nothing)."""
    cfg = _gin_config(name)
    assert cfg.layout == "bloom"
    abstract = jax.eval_shape(lambda r: build_model(cfg).init(r, {"decoder_input_tokens": jnp.ones((1, 1), jnp.int32)}),
                              jax.random.key(0))["params"]
    counts = cfg.param_count()
    assert counts["total"] == sum(math.prod(x.shape) for x in jax.tree.leaves(nn.meta.unbox(abstract)))
    assert counts["embedding_norm"] == 2 * cfg.d_model and counts["positions"] == counts["lm_head"] == 0
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    hf_cfg = transformers.BloomConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, n_layer=cfg.num_layers,
                                      n_head=cfg.num_heads)
    with torch.device("meta"):
        hf_model = transformers.BloomForCausalLM(hf_cfg)
    assert counts["total"] == sum(p.numel() for p in hf_model.parameters())  # the tied head counted once
    flops = cfg.flops_per_token(2048)
    assert flops["matmul"] == 6.0 * (counts["decoder_layers"] + counts["embedding"])


@pytest.mark.slow
def test_loss_falls_on_real_text(tmp_path):
    """bloom_tiny trains through the ordinary trainer on Bible text: the loss falls within 30 steps."""
    from xlt import train

    argv = ["--gin_file=models/bloom_tiny.gin", "--gin_file=runs/pretrain.gin", "--gin.BATCH_SIZE=8",
            "--gin.SEQ_LEN=64", "--gin.INPUT_LEN=32", "--gin.learning_rate_schedule.warmup_steps=5",
            f"--gin.MODEL_DIR='{tmp_path}'", "--gin.MIXTURE_OR_TASK_NAME='bible_en'", "--gin.TRAIN_STEPS=30",
            "--gin.train.log_every=10"]
    assert cli.main(train.main, argv) == 0
    got = {r["step"]: r["loss"] for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())}
    assert sorted(got) == [10, 20, 30]
    # Byte-level cross-entropy starts near ln(384) ≈ 5.95; a working model is well below it and still falling.
    assert got[30] < 0.75 * math.log(384) and got[30] < got[10], got
    assert "ModelConfig.layout = 'bloom'" in (tmp_path / "config.gin").read_text()
