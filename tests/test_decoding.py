"""KV-cache decoding and generation: cached logits equal the training forward, cached generation equals
the no-cache path and an independent per-row reference loop (variable prompt lengths, EOS, prefix-LM),
sampling is reproducible and respects top-k / top-p, scan_layers and meshes change nothing, the cache
carries logical axes that shard, and bad input fails with one clear error. Tiny fp32 models whose
parameters are drawn with a wide spread, so greedy choices are decisive (no near-ties)."""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from xlt import decoding, partitioning
from xlt.errors import ConfigError, DataError
from xlt.models import ModelConfig, build_model

from random_params import random_params, stack_layers

# max_len = longest prompt + MAX_NEW: gpt's learned positions are used up to the last slot.
BASE = dict(vocab_size=128, d_model=32, num_layers=2, d_ff=64, max_len=19)
LAYOUT_KW = {
    "gpt": dict(layout="gpt"),  # learned positions, tied, layernorm + bias
    "llama": dict(layout="llama", num_heads=8, num_kv_heads=4),  # rope, GQA
    "t5": dict(layout="t5", head_dim=16),  # encoder-decoder, relative bias
}
LAYOUTS = tuple(LAYOUT_KW)
PROMPT_LENS = (3, 11, 6, 1)  # one batch, ragged, with a single-token prompt
MAX_NEW = 8
W = 19  # reference buffer width (= max_len, so learned positions cover it)
CASES = [("gpt", False), ("gpt", True), ("llama", False), ("llama", True), ("t5", False)]  # (layout, prefix_lm)
# The no-cache path (slow to compile) is checked on a subset that still covers every layout.
NO_CACHE_CASES = [("gpt", False), ("llama", True), ("t5", False)]


def make_cfg(layout: str, **overrides) -> ModelConfig:
    return ModelConfig(**{**BASE, **LAYOUT_KW[layout], **overrides})


@functools.cache
def setup(layout: str):
    """(cfg, model, params): parameters drawn on the host; logits O(1), greedy outputs varied."""
    cfg = make_cfg(layout)
    model = build_model(cfg)
    return cfg, model, random_params(cfg, model, seed=LAYOUTS.index(layout))


def prompts(seed: int = 0, lens=PROMPT_LENS) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [rng.integers(2, BASE["vocab_size"], n).tolist() for n in lens]


# --- An independent reference: one unbatched row at a time, the training forward each step ----------------


@functools.cache
def full_forward(layout: str):
    _, model, _ = setup(layout)
    return jax.jit(lambda p, b: model.apply({"params": p}, b))


def reference_greedy(layout: str, prompt: list[int], max_new: int, eos: int | None, prefix_lm: bool) -> list[int]:
    cfg, _, params = setup(layout)
    fwd = full_forward(layout)
    out: list[int] = []
    for _ in range(max_new):
        if cfg.encoder_decoder:
            dec = [0] + out
            b = {"encoder_input_tokens": np.pad(prompt, (0, W - len(prompt)))[None],
                 "decoder_input_tokens": np.pad(dec, (0, W - len(dec)))[None]}
            at = len(dec) - 1
        else:
            seq = prompt + out
            b = {"decoder_input_tokens": np.pad(seq, (0, W - len(seq)))[None]}
            if prefix_lm:
                b["decoder_causal_attention"] = (np.arange(W) < len(prompt)).astype(np.int32)[None]
            at = len(seq) - 1
        tok = int(np.argmax(np.asarray(fwd(params, b))[0, at]))
        out.append(tok)
        if tok == eos:
            break
    return out


def padded(rows: list[list[int]], width: int = MAX_NEW) -> np.ndarray:
    return np.asarray([r + [0] * (width - len(r)) for r in rows], np.int32)


@functools.cache
def free_run(layout: str, prefix_lm: bool) -> list[list[int]]:
    """Reference greedy continuations of every prompt, without stopping."""
    return [reference_greedy(layout, p, MAX_NEW, None, prefix_lm) for p in prompts()]


def unused_token(rows: list[list[int]]) -> int:
    seen = {t for r in rows for t in r}
    return next(t for t in range(2, BASE["vocab_size"]) if t not in seen)


# --- 1. cached logits == the training forward -----------------------------------------------------------------


def cached_vs_full(layout: str, scan: bool, prefix_lm: bool):
    """Prefill ragged prompts, then feed 2 tokens one at a time; return (cached, full-forward) logits of
    the prompt's last position and every fed one, per row."""
    cfg, model, params = setup(layout)
    if scan:
        cfg = cfg.replace(scan_layers=True)
        model, params = build_model(cfg), stack_layers(params)
    rng = np.random.default_rng(7)
    rows = prompts(1)
    cont = rng.integers(2, cfg.vocab_size, (len(rows), 11)).astype(np.int32)
    lens = np.asarray([len(r) for r in rows], np.int32)
    width = 16
    prompt_tok = np.asarray([r + [0] * (width - len(r)) for r in rows], np.int32)
    valid = np.arange(width)[None] < lens[:, None]
    enc = {}
    # The prompt is the encoder input; the decoder prefills [0, c0..c8] in one chunk, then steps to distances
    # past T5's exactly-bucketed range (8), where causal and bidirectional buckets differ.
    if cfg.encoder_decoder:
        enc = {"encoder_input_tokens": prompt_tok, "encoder_segment_ids": valid.astype(np.int32)}

    @jax.jit
    def run(params):
        if cfg.encoder_decoder:
            encoded = model.apply({"params": params}, enc, method="encode")
            cache = nn.meta.unbox(decoding.init_cache(model, len(rows), 16, width))
            dec = np.concatenate([np.zeros((len(rows), 1), np.int32), cont], axis=1)
            first = {"decoder_input_tokens": dec[:, :10],
                     "decoder_positions": np.broadcast_to(np.arange(10), (4, 10)), **enc}
            logits, cache = decoding.apply_cached(model, params, cache, first, encoded=encoded)
            got = [logits]
            for t in (10, 11):
                step = {"decoder_input_tokens": dec[:, t:t + 1], "decoder_positions": np.full((4, 1), t), **enc}
                logits, cache = decoding.apply_cached(model, params, cache, step)
                got.append(logits)
            full = model.apply({"params": params}, {**enc, "decoder_input_tokens": dec})
            return jnp.concatenate(got, axis=1), full
        cache = nn.meta.unbox(decoding.init_cache(model, len(rows), width + 8))
        prompt = {"decoder_input_tokens": prompt_tok, "decoder_positions": np.where(valid, np.arange(width), 0),
                  "decoder_segment_ids": valid.astype(np.int32)}
        if prefix_lm:
            prompt["decoder_causal_attention"] = valid.astype(np.int32)
        logits, cache = decoding.apply_cached(model, params, cache, prompt)
        got = [jnp.take_along_axis(logits, (lens - 1)[:, None, None], axis=1)]
        for j in range(2):
            step = {"decoder_input_tokens": cont[:, j:j + 1], "decoder_positions": (lens + j)[:, None]}
            logits, cache = decoding.apply_cached(model, params, cache, step)
            got.append(logits)
        # The training forward on each row's prompt + continuation, right-padded.
        seq = np.zeros((len(rows), W), np.int32)
        for r, row in enumerate(rows):
            seq[r, :len(row) + 2] = row + cont[r, :2].tolist()
        batch = {"decoder_input_tokens": seq}
        if prefix_lm:
            batch["decoder_causal_attention"] = (np.arange(W)[None] < lens[:, None]).astype(np.int32)
        full = model.apply({"params": params}, batch)
        idx = (lens - 1)[:, None] + np.arange(3)[None]
        return jnp.concatenate(got, axis=1), jnp.take_along_axis(full, idx[:, :, None], axis=1)

    got, ref = run(params)
    return np.asarray(got), np.asarray(ref)


@pytest.mark.parametrize("layout, prefix_lm, scan", [
    ("gpt", False, False), ("gpt", True, True), ("llama", False, True), ("llama", True, False),
    ("t5", False, False), ("t5", False, True)])
def test_cached_logits_match_full_forward(layout, prefix_lm, scan):
    got, ref = cached_vs_full(layout, scan=scan, prefix_lm=prefix_lm)
    assert got.shape == ref.shape and got.shape[1] >= 3
    assert np.std(ref) > 0.5  # O(1) logits: the comparison is not against noise
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)


# --- 2. greedy generation: cache == no cache == the per-row reference ----------------------------------------


@pytest.mark.parametrize("layout, prefix_lm", CASES)
def test_greedy_matches_reference(layout, prefix_lm):
    cfg, model, params = setup(layout)
    ref = free_run(layout, prefix_lm)
    eos = unused_token(ref)  # never emitted: every row runs to MAX_NEW
    outs = {}
    for use_cache in (True, False) if (layout, prefix_lm) in NO_CACHE_CASES else (True,):
        gen = decoding.generate(model, params, prompts(), max_new_tokens=MAX_NEW, eos_id=eos, prefix_lm=prefix_lm,
                                use_cache=use_cache)
        np.testing.assert_array_equal(gen.tokens, padded(ref), err_msg=f"use_cache={use_cache}")
        np.testing.assert_array_equal(gen.lengths, MAX_NEW)
        outs[use_cache] = gen.tokens
    assert len({tuple(r) for r in outs[True]}) == len(PROMPT_LENS)  # rows differ: prompts matter
    assert np.mean([len(set(r)) for r in outs[True]]) > 2  # and the model does not just repeat itself
    if not cfg.encoder_decoder:  # the prefix-LM flag changes the continuation (so the test can tell)
        assert free_run(layout, True) != free_run(layout, False)


@pytest.mark.parametrize("layout, prefix_lm", NO_CACHE_CASES)
def test_eos_stops_each_row(layout, prefix_lm):
    _, model, params = setup(layout)
    ref = free_run(layout, prefix_lm)
    # An EOS id that some row emits early and others later or never: stopping is per row.
    candidates = []
    for tok in sorted({t for r in ref for t in r[:-1]}):
        stops = [r.index(tok) + 1 if tok in r else MAX_NEW for r in ref]
        candidates.append((len(set(stops)), min(stops) > 1, tok, stops))
    n_distinct, _, eos, stops = max(candidates)
    assert n_distinct >= 2 and min(stops) < MAX_NEW
    expected = [r[:s] for r, s in zip(ref, stops)]
    assert expected == [reference_greedy(layout, p, MAX_NEW, eos, prefix_lm) for p in prompts()]
    for use_cache in (True, False):
        gen = decoding.generate(model, params, prompts(), max_new_tokens=MAX_NEW, eos_id=eos, prefix_lm=prefix_lm,
                                use_cache=use_cache)
        np.testing.assert_array_equal(gen.tokens, padded(expected), err_msg=f"use_cache={use_cache}")
        np.testing.assert_array_equal(gen.lengths, stops)


def test_padded_array_input_and_immediate_eos():
    """Prompts as a padded array + lengths give the same result as lists; a row whose first token is EOS
    is padding after it; a row alone gives what it gives in a batch."""
    _, model, params = setup("llama")
    rows = prompts()
    arr = padded(rows, width=20)
    ref = free_run("llama", False)
    eos = ref[0][0]  # row 0 stops at once
    a = decoding.generate(model, params, rows, max_new_tokens=MAX_NEW, eos_id=eos)
    b = decoding.generate(model, params, arr, lengths=[len(r) for r in rows], max_new_tokens=MAX_NEW, eos_id=eos)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert a.lengths[0] == 1 and a.tokens[0, 0] == eos and not a.tokens[0, 1:].any()
    same = decoding.generate(model, params, [rows[0]] * 4, max_new_tokens=MAX_NEW, eos_id=eos)
    np.testing.assert_array_equal(same.tokens, np.repeat(a.tokens[:1], 4, axis=0))


# --- 3. sampling ----------------------------------------------------------------------------------------------


def teacher_forced_logits(layout: str, prompt: list[int], generated: np.ndarray) -> np.ndarray:
    """Training-forward logits that produced each generated token (decoder-only)."""
    cfg, _, params = setup(layout)
    seq = prompt + generated.tolist()
    b = {"decoder_input_tokens": np.pad(seq, (0, W - len(seq)))[None]}
    logits = np.asarray(full_forward(layout)(params, b))[0]
    return logits[len(prompt) - 1:len(prompt) - 1 + len(generated)]


def test_sampling_reproducible_and_top_k():
    layout = "llama"
    _, model, params = setup(layout)
    rows = prompts()
    kw = dict(max_new_tokens=MAX_NEW, eos_id=0, temperature=4.0, top_k=3)
    a = decoding.generate(model, params, rows, rng=jax.random.key(3), **kw)
    b = decoding.generate(model, params, rows, rng=jax.random.key(3), **kw)
    c = decoding.generate(model, params, rows, rng=jax.random.key(4), **kw)
    nc = decoding.generate(model, params, rows, rng=jax.random.key(3), use_cache=False, **kw)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.tokens, nc.tokens)  # the same draws with or without the cache
    assert not np.array_equal(a.tokens, c.tokens)
    ranks = []
    for r, prompt in enumerate(rows):
        order = np.argsort(-teacher_forced_logits(layout, prompt, a.tokens[r]), axis=-1)
        ranks += [int(np.nonzero(order[i] == t)[0][0]) for i, t in enumerate(a.tokens[r])]
    assert max(ranks) < 3, f"a token outside the top 3: ranks {ranks}"
    assert sum(k > 0 for k in ranks) >= 4  # and it does sample: not just the argmax
    # A tiny nucleus keeps only the most likely token: greedy.
    nucleus = decoding.generate(model, params, rows, top_p=1e-6, rng=jax.random.key(5),
                                max_new_tokens=MAX_NEW, eos_id=0, temperature=1.0)
    greedy = decoding.generate(model, params, rows, max_new_tokens=MAX_NEW, eos_id=0)
    np.testing.assert_array_equal(nucleus.tokens, greedy.tokens)


def test_sample_logits_distribution():
    probs = np.array([0.4, 0.25, 0.15, 0.1, 0.06, 0.04])
    logits = jnp.asarray(np.log(np.broadcast_to(probs, (20000, 6))), jnp.float32)
    rng = jax.random.key(0)

    @functools.partial(jax.jit, static_argnames=("top_k", "nucleus"))
    def draw(logits, top_p, temperature, top_k=0, nucleus=False):
        return decoding.sample_logits(logits, rng, greedy=False, temperature=temperature, top_k=top_k,
                                      top_p=top_p if nucleus else None)

    def freq(top_k=0, top_p=None, temperature=1.0):
        draws = np.asarray(draw(logits, jnp.float32(top_p or 1.0), jnp.float32(temperature), top_k=top_k,
                                nucleus=top_p is not None))
        return np.bincount(draws, minlength=6) / len(draws)

    def renorm(keep):
        p = np.where(keep, probs, 0.0)
        return p / p.sum()

    np.testing.assert_allclose(freq(), probs, atol=0.015)
    f = freq(top_k=3)
    assert f[3:].sum() == 0
    np.testing.assert_allclose(f, renorm(np.arange(6) < 3), atol=0.015)
    f = freq(top_p=0.7)  # 0.4 + 0.25 < 0.7: the third token is still needed to reach it
    np.testing.assert_allclose(f, renorm(np.arange(6) < 3), atol=0.015)
    f = freq(top_p=0.6)  # 0.4 + 0.25 >= 0.6: two tokens suffice
    np.testing.assert_allclose(f, renorm(np.arange(6) < 2), atol=0.015)
    hot = freq(temperature=0.5)  # p^2, renormalised
    np.testing.assert_allclose(hot, probs ** 2 / np.sum(probs ** 2), atol=0.015)
    np.testing.assert_array_equal(np.asarray(decoding.sample_logits(logits[:3], None, greedy=True)), 0)
    # Row r draws from fold_in(rng, r): the first rows do not depend on how many rows follow.
    np.testing.assert_array_equal(np.asarray(draw(logits[:10], 1.0, 1.0)), np.asarray(draw(logits, 1.0, 1.0))[:10])


# --- 4. scan_layers and meshes --------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["llama", "t5"])  # gpt's scanned cache: test_cached_logits_match_full_forward
def test_scan_layers_same_tokens(layout):
    cfg, model, params = setup(layout)
    scan_model = build_model(cfg.replace(scan_layers=True, remat_policy="full"))
    eos = unused_token(free_run(layout, False))
    gen = decoding.generate(scan_model, stack_layers(params), prompts(), max_new_tokens=MAX_NEW, eos_id=eos)
    np.testing.assert_array_equal(gen.tokens, padded(free_run(layout, False)))


@pytest.mark.parametrize("layout, mesh_shape", [("llama", (2, 2, 2)), ("t5", (8, 1, 1))],
                         ids=lambda x: "x".join(map(str, x)) if isinstance(x, tuple) else x)
def test_mesh_matches_single_device(layout, mesh_shape, devices):
    _, model, params = setup(layout)
    mesh = partitioning.make_mesh(mesh_shape, devices=devices)
    eos = unused_token(free_run(layout, False))
    gen = decoding.generate(model, params, prompts(), max_new_tokens=MAX_NEW, eos_id=eos, mesh=mesh)
    np.testing.assert_array_equal(gen.tokens, padded(free_run(layout, False)))  # 4 rows, padded to 8 on (8,1,1)


# --- 5. the cache's representation ----------------------------------------------------------------------------


@pytest.mark.parametrize("scan", [False, True])
@pytest.mark.parametrize("layout", ["llama", "t5"])
def test_cache_logical_axes_and_sharding(layout, scan, devices):
    cfg = make_cfg(layout, scan_layers=scan)
    model = build_model(cfg)
    enc_len = 16 if cfg.encoder_decoder else None
    specs = decoding.cache_specs(model, 4, 24, enc_len)
    shapes = nn.meta.unbox(jax.eval_shape(lambda: decoding.init_cache(model, 4, 24, enc_len)))
    flat = jax.tree_util.tree_flatten_with_path(specs, is_leaf=lambda x: isinstance(x, P))[0]
    kv_axes = (("layers",) if scan else ()) + ("batch", "length", "kv_heads", "kv")
    n_kv = 0
    for (path, spec), leaf in zip(flat, jax.tree.leaves(shapes)):
        name = jax.tree_util.keystr(path)
        if name.endswith("slot_positions']"):
            assert tuple(spec) == ("batch", "length") and leaf.shape == (4, 24) and leaf.dtype == jnp.int32
            continue
        n_kv += 1
        assert tuple(spec) == kv_axes, name
        length = 16 if "cross_attention" in name else 24
        assert leaf.shape[-4:] == (4, length, cfg.num_kv_heads, cfg.head_dim), name
        assert leaf.shape[:-4] == ((cfg.num_layers,) if scan else ()), name
    assert n_kv == 2 * (1 if scan else cfg.num_layers) * (2 if cfg.encoder_decoder else 1)

    # Created under a mesh, the arrays land where the logical rules put them.
    mesh = partitioning.make_mesh((2, 2, 2), devices=devices)
    with decoding.mesh_context(mesh):
        cache = jax.jit(lambda: nn.meta.unbox(decoding.init_cache(model, 4, 24, enc_len)))()
    leaves = jax.tree_util.tree_flatten_with_path(cache)[0]
    for path, arr in leaves:
        name = jax.tree_util.keystr(path)
        lead = (None,) if scan and not name.endswith("slot_positions']") else ()
        want = P(*lead, ("data", "fsdp"), None) if name.endswith("slot_positions']") else \
            P(*lead, ("data", "fsdp"), None, "tensor", None)
        assert arr.sharding.is_equivalent_to(NamedSharding(mesh, want), arr.ndim), (name, arr.sharding)
        assert np.all(np.asarray(arr) == (-1 if name.endswith("slot_positions']") else 0)), name  # empty


# --- 6. errors ---------------------------------------------------------------------------------------------------


def test_bad_input():
    _, gpt, gpt_params = setup("gpt")
    _, t5, t5_params = setup("t5")
    ok = prompts()
    with pytest.raises(ConfigError, match="prompt 1 is empty"):
        decoding.generate(gpt, gpt_params, [[5, 6], []], max_new_tokens=4)
    with pytest.raises(ConfigError, match="no prompts"):
        decoding.generate(gpt, gpt_params, [], max_new_tokens=4)
    with pytest.raises(ConfigError, match="max_len=19"):  # 11 + 8 fits exactly (test_greedy_matches_reference)
        decoding.generate(gpt, gpt_params, ok, max_new_tokens=MAX_NEW + 1)
    with pytest.raises(ConfigError, match="max_new_tokens"):
        decoding.generate(gpt, gpt_params, ok, max_new_tokens=0)
    with pytest.raises(ConfigError, match="rng"):
        decoding.generate(gpt, gpt_params, ok, max_new_tokens=4, temperature=1.0)
    with pytest.raises(ConfigError, match="top_p"):
        decoding.generate(gpt, gpt_params, ok, max_new_tokens=4, temperature=1.0, top_p=0.0, rng=jax.random.key(0))
    with pytest.raises(ConfigError, match="top_k"):
        decoding.generate(gpt, gpt_params, ok, max_new_tokens=4, top_k=1000)
    with pytest.raises(ConfigError, match="temperature"):
        decoding.generate(gpt, gpt_params, ok, max_new_tokens=4, temperature=-1.0)
    with pytest.raises(ConfigError, match="prefix_lm"):
        decoding.generate(t5, t5_params, ok, max_new_tokens=4, prefix_lm=True)
    with pytest.raises(ConfigError, match="lengths"):
        decoding.generate(gpt, gpt_params, padded(ok, 12), max_new_tokens=4)
    with pytest.raises(ConfigError, match="exceeds the padded width"):
        decoding.generate(gpt, gpt_params, padded(ok, 12), lengths=[3, 13, 1, 1], max_new_tokens=4)
    with pytest.raises(DataError, match="vocab_size=128"):
        decoding.generate(gpt, gpt_params, [[5, 128]], max_new_tokens=4)
    with pytest.raises(ConfigError, match="eos_id"):
        decoding.generate(gpt, gpt_params, ok, max_new_tokens=4, eos_id=500)
    # 4 query heads over a tensor axis of 8 (KV heads that do not divide are replicated instead: kv_heads)
    with pytest.raises(ConfigError, match="does not divide"):
        decoding.generate(*setup("gpt")[1:], ok, max_new_tokens=4,
                          mesh=partitioning.make_mesh((1, 1, 8), devices=jax.devices()))
    # Model level: cached calls need positions, a known mode and (for "shared") a filled cache.
    batch = {"decoder_input_tokens": jnp.ones((2, 3), jnp.int32)}
    with pytest.raises(ConfigError, match="decoder_positions"):
        gpt.apply({"params": gpt_params}, batch, cache_mode="extend", mutable=["cache"])
    batch["decoder_positions"] = jnp.zeros((2, 3), jnp.int32)
    with pytest.raises(ConfigError, match="cache_mode='shared' needs a cache"):
        gpt.apply({"params": gpt_params}, batch, cache_mode="shared")
    with pytest.raises(ConfigError, match="cache_mode='bogus'"):
        gpt.apply({"params": gpt_params}, batch, cache_mode="bogus", mutable=["cache"])
