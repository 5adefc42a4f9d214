"""Rank-classification scoring: the shared-prompt ``score_options`` (prompt KV cache broadcast over its
options; encoder output shared by its options) equals the one-forward-per-pair ``score_options_naive``,
which itself equals a hand computation on unpadded sequences; ragged prompts, option counts and option
lengths; prefix-LM on and off; no recompilation within a bucket; a mesh changes nothing; bad input fails
with one clear error. Tiny fp32 models with O(1) logits, so option scores really differ."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xlt import partitioning
from xlt.errors import ConfigError, DataError
from xlt.evaluation import scoring
from xlt.models import ModelConfig, build_model

from random_params import random_params

BASE = dict(vocab_size=96, d_model=32, num_layers=2, d_ff=64, max_len=24)
LAYOUT_KW = {
    "gpt": dict(layout="gpt"),
    "llama": dict(layout="llama", num_heads=8, num_kv_heads=4),
    "t5": dict(layout="t5", head_dim=16),
}
CASES = [("gpt", False), ("gpt", True), ("llama", False), ("llama", True), ("t5", False)]
PROMPT_LENS = (5, 1, 13, 8, 3, 11, 2)
# Per batch of 3 prompts at most 3-4 options: every batch shares one option-count bucket (4).
OPTION_COUNTS = (1, 4, 2, 3, 1, 4, 3)
REF_W = 24  # hand-computation buffer (= max_len)


@functools.cache
def setup(layout: str):
    """(cfg, model, params) with parameters drawn on the host: logits O(1), blocks outweigh embeddings."""
    cfg = ModelConfig(**BASE, **LAYOUT_KW[layout])
    model = build_model(cfg)
    return cfg, model, random_params(cfg, model, seed=10 + list(LAYOUT_KW).index(layout))


def make_data(seed: int = 0, prompt_lens=PROMPT_LENS, counts=OPTION_COUNTS):
    rng = np.random.default_rng(seed)
    vocab = BASE["vocab_size"]
    prompts = [rng.integers(2, vocab, n).tolist() for n in prompt_lens]
    options = [[rng.integers(2, vocab, rng.integers(1, 7)).tolist() for _ in range(k)] for k in counts]
    if len(options[2]) > 1:
        options[2][0] = list(options[2][1][:1])  # options sharing a first token, and one a prefix of another
    return prompts, options


@functools.cache
def scores(layout: str, prefix_lm: bool, naive: bool):
    _, model, params = setup(layout)
    prompts, options = make_data()
    fn = scoring.score_options_naive if naive else scoring.score_options
    return fn(model, params, prompts, options, prefix_lm=prefix_lm, batch_size=3)


@functools.cache
def full_forward(layout: str):
    _, model, _ = setup(layout)
    return jax.jit(lambda p, b: model.apply({"params": p}, b))


def hand_score(layout: str, prompt: list[int], option: list[int], prefix_lm: bool) -> float:
    """log p(option | prompt) from the training forward on the unpadded pair (padded at the end only)."""
    cfg, _, params = setup(layout)
    if cfg.encoder_decoder:
        dec = [0] + option[:-1]
        b = {"encoder_input_tokens": np.pad(prompt, (0, REF_W - len(prompt)))[None],
             "decoder_input_tokens": np.pad(dec, (0, REF_W - len(dec)))[None]}
        logits = np.asarray(full_forward(layout)(params, b))[0, :len(option)]
    else:
        seq = prompt + option
        b = {"decoder_input_tokens": np.pad(seq, (0, REF_W - len(seq)))[None]}
        if prefix_lm:
            b["decoder_causal_attention"] = (np.arange(REF_W) < len(prompt)).astype(np.int32)[None]
        logits = np.asarray(full_forward(layout)(params, b))[0, len(prompt) - 1:len(seq) - 1]
    logp = jax.nn.log_softmax(jnp.asarray(logits, jnp.float32), axis=-1)
    return float(np.sum(np.asarray(logp)[np.arange(len(option)), option]))


@pytest.mark.parametrize("layout, prefix_lm", CASES)
def test_score_options_matches_naive(layout, prefix_lm):
    prompts, options = make_data()
    shared, naive = scores(layout, prefix_lm, False), scores(layout, prefix_lm, True)
    assert len(shared) == len(naive) == len(prompts)
    for i, (s, n) in enumerate(zip(shared, naive)):
        assert s.loglik.shape == (len(options[i]),) and s.loglik.dtype == np.float32
        np.testing.assert_array_equal(s.num_tokens, [len(o) for o in options[i]])
        np.testing.assert_array_equal(n.num_tokens, s.num_tokens)
        np.testing.assert_allclose(s.loglik, n.loglik, atol=1e-4, rtol=0, err_msg=f"prompt {i}")
    flat = np.concatenate([s.loglik for s in shared])
    assert np.all(flat < 0) and np.std(flat / np.concatenate([s.num_tokens for s in shared])) > 0.3
    # The reference itself: a hand computation on unpadded pairs (a prompt of one token included).
    for i, j in [(0, 0), (1, 2), (2, 0), (2, 1), (5, 3)]:
        np.testing.assert_allclose(naive[i].loglik[j], hand_score(layout, prompts[i], options[i][j], prefix_lm),
                                   atol=1e-4, rtol=0, err_msg=f"prompt {i} option {j}")
    if prefix_lm:  # the flag matters: a bidirectional prompt scores differently
        plain = np.concatenate([s.loglik for s in scores(layout, False, False)])
        assert np.max(np.abs(plain - flat)) > 1e-2


def test_no_recompilation_within_buckets():
    _, model, params = setup("llama")
    scores("llama", False, False)  # compiled for (3 prompts, width 16, 4 options, option width 8)
    before = scoring._score_shared._cache_size()
    prompts, options = make_data(seed=5, prompt_lens=(9, 16, 2, 4), counts=(4, 3, 1, 3))
    out = scoring.score_options(model, params, prompts, options, batch_size=3)
    assert scoring._score_shared._cache_size() == before
    assert [len(s.loglik) for s in out] == [4, 3, 1, 3]


def test_mesh_matches_single_device(devices):
    _, model, params = setup("llama")
    prompts, options = make_data()
    mesh = partitioning.make_mesh((2, 2, 2), devices=devices)
    sharded = scoring.score_options(model, params, prompts, options, batch_size=3, mesh=mesh)  # 3 -> 4 rows
    for s, r in zip(sharded, scores("llama", False, False)):
        np.testing.assert_allclose(s.loglik, r.loglik, atol=1e-4, rtol=0)


def test_option_scores_ranking():
    s = scoring.OptionScores(np.array([-6.0, -4.0, -5.0], np.float32), np.array([6, 2, 10], np.int32))
    assert s.best() == 1
    np.testing.assert_allclose(s.normalized(), [-1.0, -2.0, -0.5])
    assert s.best(length_normalized=True) == 2


def test_bad_input():
    _, gpt, gpt_params = setup("gpt")
    _, t5, t5_params = setup("t5")
    prompts, options = make_data()
    for fn in (scoring.score_options, scoring.score_options_naive):
        with pytest.raises(ConfigError, match="prompt 1 has no options"):
            fn(gpt, gpt_params, prompts[:2], [options[0], []])
        with pytest.raises(ConfigError, match="prompt 0: option 1 is empty"):
            fn(gpt, gpt_params, prompts[:1], [[[5], []]])
        with pytest.raises(ConfigError, match="prompt 1 is empty"):
            fn(gpt, gpt_params, [[5], []], options[:2])
        with pytest.raises(ConfigError, match="2 prompts but 1 option lists"):
            fn(gpt, gpt_params, prompts[:2], options[:1])
        with pytest.raises(ConfigError, match="max_len=24"):
            fn(gpt, gpt_params, [[5] * 20], [[[6] * 4, [7] * 5]])
        with pytest.raises(ConfigError, match="prefix_lm"):
            fn(t5, t5_params, prompts, options, prefix_lm=True)
        with pytest.raises(ConfigError, match="batch_size"):
            fn(gpt, gpt_params, prompts, options, batch_size=0)
        with pytest.raises(DataError, match="vocab_size=96"):
            fn(gpt, gpt_params, prompts[:1], [[[5, 96]]])
