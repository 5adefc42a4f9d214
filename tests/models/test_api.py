"""xlt.models.api: features against seqio's converters, the init batch, the loss against the step's former
computation, attention weights sown by the model against a softmax computed here, unembed against the
model's logits, token layout, scanned stacks."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import seqio
import tensorflow as tf

from xlt import losses, step
from xlt.data import pipeline
from xlt.errors import ConfigError
from xlt.models import ModelConfig, build_model, model_api
from xlt.models.api import DecoderOnlyAPI, EncoderDecoderAPI
from xlt.models.layers import apply_rope

BASE = dict(vocab_size=64, d_model=32, num_layers=2, d_ff=64, max_len=32)
CONFIGS = {
    "gpt": dict(layout="gpt", num_heads=4),
    "llama": dict(layout="llama", num_heads=4, num_kv_heads=2),  # rope, grouped-query attention
    "t5": dict(layout="t5", num_heads=4),  # relative bias, unscaled attention, bidirectional encoder
}
T = 12


def make_cfg(layout: str, **overrides) -> ModelConfig:
    return ModelConfig(**{**BASE, **CONFIGS[layout], **overrides})


def peaked_params(api, seed: int = 0):
    """Init-shaped random parameters with large query kernels, so attention is far from uniform."""
    abstract = nn.meta.unbox(api.abstract_params())
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = jax.tree_util.keystr(path)
        if name.endswith("['scale']"):
            return jnp.ones(leaf.shape, jnp.float32)
        std = 0.5 if "'query'" in name else 0.3 if "embedding" in name else 0.05 if "bias" in name else 0.2
        return jnp.asarray(rng.normal(0.0, std, leaf.shape), jnp.float32)

    return jax.tree_util.tree_map_with_path(draw, abstract)


def padded_tokens(lengths, width=T, seed=0):
    rng = np.random.default_rng(seed)
    tokens = np.zeros((len(lengths), width), np.int32)
    segments = np.zeros_like(tokens)
    for i, n in enumerate(lengths):
        tokens[i, :n] = rng.integers(2, BASE["vocab_size"], n)
        segments[i, :n] = 1
    return jnp.asarray(tokens), jnp.asarray(segments)


# --- Features ------------------------------------------------------------------------------------------------


def seqio_features(converter: str, lengths: dict[str, int], pack: bool) -> dict[str, int]:
    """Feature -> length of what seqio's converter yields for a two-example dataset."""
    examples = {"targets": [[3, 4, 5], [6, 7]]}
    if "inputs" in lengths:
        examples["inputs"] = [[8, 9], [10, 11, 12]]
    ds = tf.data.Dataset.from_generator(
        lambda: ({k: np.asarray(v[i], np.int32) for k, v in examples.items()} for i in range(2)),
        output_signature={k: tf.TensorSpec([None], tf.int32) for k in examples})
    out = {"decoder": seqio.DecoderFeatureConverter, "prefix_lm": seqio.PrefixLMFeatureConverter,
           "encdec": seqio.EncDecFeatureConverter}[converter](pack=pack)(ds, lengths)
    first = next(iter(out.as_numpy_iterator()))
    return {k: v.shape[0] for k, v in first.items()}


@pytest.mark.parametrize("pack", [True, False])
@pytest.mark.parametrize("layout, has_inputs, converter", [
    ("gpt", False, "decoder"), ("llama", True, "prefix_lm"), ("t5", True, "encdec"), ("t5", False, "encdec")])
def test_batch_shapes_are_what_seqio_yields(layout, has_inputs, converter, pack):
    api = model_api(make_cfg(layout))
    assert api.feature_converter(has_inputs) == converter
    lengths = pipeline.task_feature_lengths(converter, 16, 6)
    shapes = api.batch_shapes(converter, lengths, 4, pack)
    if converter == "encdec" and not has_inputs:
        return  # the converter names the features only; the data needs inputs
    assert {k: s[1] for k, s in shapes.items()} == seqio_features(converter, lengths, pack)
    assert all(s[0] == 4 for s in shapes.values())
    inputs = set(api.input_features(converter, pack))
    assert inputs == set(shapes) - {"decoder_target_tokens", "decoder_loss_weights"}


def test_converters_belong_to_their_family():
    gpt, t5 = model_api(make_cfg("gpt")), model_api(make_cfg("t5"))
    assert isinstance(gpt, DecoderOnlyAPI) and isinstance(t5, EncoderDecoderAPI)
    with pytest.raises(ConfigError, match="does not feed a encoder-decoder model"):
        t5.batch_shapes("prefix_lm", {"inputs": 4, "targets": 4}, 2, True)
    with pytest.raises(ConfigError, match="does not feed a decoder-only model"):
        gpt.input_features("encdec", True)
    with pytest.raises(ConfigError, match="prefix_lm applies to decoder-only"):
        t5.check_prefix_lm(True)
    gpt.check_prefix_lm(True)


def test_learned_position_length_check():
    gpt, llama = model_api(make_cfg("gpt")), model_api(make_cfg("llama"))
    assert gpt.max_length == BASE["max_len"] and llama.max_length is None
    gpt.check_length(BASE["max_len"], "x")
    with pytest.raises(ConfigError, match=f"SEQ_LEN=33 exceeds the learned position table .*max_len={BASE['max_len']}"):
        gpt.check_length(33, "SEQ_LEN=33")
    with pytest.raises(ConfigError, match="max_len"):
        gpt.check_continuation_length(30, 3, "prompt + option")
    llama.check_length(10_000, "x")


@pytest.mark.parametrize("layout", ["gpt", "t5"])
def test_init_batch_gives_the_parameters_of_a_full_batch(layout):
    """The one init batch (one token) gives bitwise the parameters an init on a full packed batch gives."""
    api = model_api(make_cfg(layout))
    converter = api.feature_converter(True)
    shapes = api.batch_shapes(converter, pipeline.task_feature_lengths(converter, 16, 6), 1, True)
    full = {k: jnp.ones(shapes[k], jnp.int32) for k in api.input_features(converter, True)}
    a = jax.jit(lambda r: nn.meta.unbox(api.init(r)))(jax.random.key(3))
    b = jax.jit(lambda r: nn.meta.unbox(build_model(api.cfg).init(r, full)["params"]))(jax.random.key(3))
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert jax.tree.structure(nn.meta.unbox(api.abstract_params())) == jax.tree.structure(a)


# --- Loss ------------------------------------------------------------------------------------------------------


def loss_batch(api, seed=0):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(2, BASE["vocab_size"], (2, T)).astype(np.int32)
    targets = np.roll(tokens, -1, axis=1)
    targets[:, -2:] = 0
    batch = {"decoder_input_tokens": tokens, "decoder_target_tokens": targets,
             "decoder_loss_weights": (targets > 0).astype(np.float32)}
    if "encoder_input_tokens" in api.input_features(api.converters[0], False):
        batch["encoder_input_tokens"] = rng.integers(2, BASE["vocab_size"], (2, T - 3)).astype(np.int32)
    return {k: jnp.asarray(v) for k, v in batch.items()}


@pytest.mark.parametrize("layout", ["gpt", "t5"])
@pytest.mark.parametrize("chunk", [None, 5])
def test_loss_equals_the_former_step_loss(layout, chunk):
    """ModelAPI.loss (and step.loss_fn, now its wrapper) against the step's former computation, written out."""
    cfg = make_cfg(layout, loss_chunk_len=chunk)
    api = model_api(cfg)
    params = peaked_params(api)
    batch = loss_batch(api)
    model = build_model(cfg)
    targets, weights = batch["decoder_target_tokens"], batch["decoder_loss_weights"]
    if chunk:
        hidden, kernel = model.apply({"params": params}, batch, output="hidden")
        want = losses.chunked_cross_entropy(hidden, kernel, targets, weights, chunk_len=chunk,
                                            kernel_layout="vd" if cfg.tie_embeddings else "dv", z_loss=1e-3)
    else:
        want = losses.cross_entropy(model.apply({"params": params}, batch), targets, weights, z_loss=1e-3)
    got = api.loss(params, batch, z_loss=1e-3)
    wrapped = step.loss_fn(model, params, batch, z_loss=1e-3)
    for g in (got, wrapped):
        np.testing.assert_allclose(g[0], want[0], rtol=1e-6)
        for k in want[1]:
            np.testing.assert_allclose(g[1][k], want[1][k], rtol=1e-6)
    assert float(got[1]["correct"]) >= 0 and float(got[0]) > 0


# --- Captured attention weights -----------------------------------------------------------------------------


def reference_weights(cfg, q, k, segments, bias, causal):
    """softmax(q·k / sqrt(d) + bias) over the keys a query may see, computed here in float64."""
    q, k = np.asarray(q, np.float64), np.asarray(k, np.float64)
    b, t = segments.shape
    if cfg.position == "rope":
        pos = jnp.broadcast_to(jnp.arange(t), (b, t))
        q = np.asarray(apply_rope(jnp.asarray(q, jnp.float32), pos, cfg.rope_theta), np.float64)
        k = np.asarray(apply_rope(jnp.asarray(k, jnp.float32), pos, cfg.rope_theta), np.float64)
    k = np.repeat(k, cfg.num_heads // cfg.num_kv_heads, axis=2)  # query head h reads kv head h // group
    scale = 1.0 / np.sqrt(cfg.head_dim) if cfg.scale_attention else 1.0
    logits = np.einsum("bqhd,bkhd->bhqk", q, k) * scale
    if bias is not None:
        logits = logits + np.asarray(bias, np.float64)
    seg = np.asarray(segments)
    allowed = seg[:, :, None] == seg[:, None, :]
    if causal:
        allowed = allowed & np.tril(np.ones((t, t), bool))[None]
    logits = np.where(allowed[:, None], logits, -np.inf)
    w = np.exp(logits - logits.max(-1, keepdims=True))
    return w / w.sum(-1, keepdims=True)


def capture_all(api, params, tokens, segments, layers):
    return jax.jit(lambda p, t, s: api.capture(p, t, s, attention_layers=layers,
                                               intermediates=lambda m, name: name == "__call__"))(
        params, tokens, segments)


@pytest.mark.parametrize("layout", ["gpt", "llama", "t5"])
def test_sown_attention_weights_equal_a_reference_softmax(layout):
    """Causal decoder (gpt), grouped-query with rope (llama), padded bidirectional encoder with relative bias
    (t5): the weights the model sows equal a softmax computed here from its query/key projections, for the
    'xla' and 'blocked' (several causal blocks) implementations alike; capturing leaves the logits as they were."""
    lengths = [T, 7, 3]
    tokens, segments = padded_tokens(lengths)
    results = {}
    for impl in ("xla", "blocked"):
        cfg = make_cfg(layout, attention_impl=impl, attention_block_len=4)
        api = model_api(cfg)
        params = peaked_params(api)
        out = capture_all(api, params, tokens, segments, (1, 2))
        path, n = api.probed_stack
        inter = out["intermediates"]
        for part in path:
            inter = inter[part]
        bias = None
        if cfg.position == "relative":
            bias = out["intermediates"][path[0]]["relpos"]["__call__"][0]
        for layer in (1, 2):
            attn = inter[f"layers_{layer - 1}"]["self_attention"]
            q, k = attn["query"]["__call__"][0], attn["key"]["__call__"][0]
            want = reference_weights(cfg, q, k, segments, bias, causal=api.supports_prefix_lm)
            got = np.asarray(out["attention"][layer])
            assert got.shape == (3, cfg.num_heads, T, T)
            np.testing.assert_allclose(got, want, atol=2e-6)  # padding queries attend among the padding
            assert np.all(got[np.broadcast_to(~np.asarray(segments, bool)[:, None, None, :], got.shape)
                              & np.broadcast_to(np.asarray(segments, bool)[:, None, :, None], got.shape)] == 0)
            assert got.max() > 0.5  # peaked, not uniform: wrong masks or positions would show
            results[(impl, layer)] = got
        # Capture mode computes each layer's output from the weights it sows: the same states as without it.
        plain = jax.jit(lambda p: api.capture(p, tokens, segments))(params)
        np.testing.assert_allclose(out["hidden"][-1], plain["hidden"][-1], atol=2e-5, rtol=1e-5)
        np.testing.assert_allclose(out["hidden"][-1], inter["layers_1"]["__call__"][0], atol=1e-6)
        if out["logits"] is not None:
            np.testing.assert_allclose(out["logits"], plain["logits"], atol=2e-5, rtol=1e-5)
    for layer in (1, 2):
        np.testing.assert_allclose(results[("xla", layer)], results[("blocked", layer)], atol=1e-6)


def test_capture_of_a_scanned_stack_equals_the_looped_one():
    """Sown states and weights stack over layers under scan_layers, like the parameters; unscan restores the
    looped parameters."""
    cfg = make_cfg("llama")
    looped = model_api(cfg)
    scanned = model_api(cfg.replace(scan_layers=True))
    params = peaked_params(scanned)
    tokens, segments = padded_tokens([T, 5])
    a = jax.jit(lambda p: scanned.capture(p, tokens, segments, attention_layers=(1, 2)))(params)
    b = jax.jit(lambda p: looped.capture(p, tokens, segments, attention_layers=(1, 2)))(scanned.unscan(params))
    assert len(a["hidden"]) == len(b["hidden"]) == cfg.num_layers + 1
    for x, y in zip(a["hidden"], b["hidden"]):
        np.testing.assert_allclose(x, y, atol=1e-5)
    for layer in (1, 2):
        np.testing.assert_allclose(a["attention"][layer], b["attention"][layer], atol=1e-6)
    np.testing.assert_allclose(a["logits"], b["logits"], atol=1e-5)
    assert [p for p, _ in model_api(make_cfg("t5")).stacks] == [("encoder", "stack"), ("decoder", "stack")]


# --- Unembed --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout, overrides", [("gpt", {}), ("llama", {}), ("gpt", {"unpadded_vocab_size": 50})])
def test_unembed_of_the_last_hidden_state_is_the_logits(layout, overrides):
    """Tied head with LayerNorm bias (gpt), untied head with RMSNorm (llama), a padded vocabulary (masked)."""
    api = model_api(make_cfg(layout, **overrides))
    params = peaked_params(api)
    tokens, segments = padded_tokens([T, 6])
    out = jax.jit(lambda p: api.capture(p, tokens, segments))(params)
    lens = api.unembed(params, out["hidden"][-1])
    np.testing.assert_allclose(lens, out["logits"], atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(api.unembed(params, out["hidden"][-1][1, 2]), out["logits"][1, 2], atol=1e-5)
    if "unpadded_vocab_size" in overrides:
        assert np.all(np.asarray(lens)[..., 50:] == np.finfo(np.float32).min)
    with pytest.raises(ConfigError, match="decoder-only"):
        model_api(make_cfg("t5")).unembed(params, out["hidden"][-1])


# --- Token layout ---------------------------------------------------------------------------------------------------


def test_token_layout_and_conventions():
    gpt = model_api(make_cfg("gpt"), start_id=5, eos_id=7)
    t5 = model_api(make_cfg("t5"), start_id=5, eos_id=7)
    assert model_api(make_cfg("gpt")).text_tokens([10]) == ([0, 10], slice(1, 2))  # seqio's defaults
    assert gpt.text_tokens([10, 11]) == ([5, 10, 11], slice(1, 3))
    assert gpt.text_tokens([10, 11, 12], max_tokens=2) == ([5, 10, 11], slice(1, 3))
    assert t5.text_tokens([10, 11]) == ([10, 11, 7], slice(0, 2))
    assert t5.text_tokens([10, 11, 12], max_tokens=2) == ([10, 11], slice(0, 2))
    assert gpt.prompt_tokens([10, 11]) == [5, 10, 11, 7] and t5.prompt_tokens([10, 11]) == [10, 11, 7]
    assert gpt.prompt_tokens([10, 11, 12], max_input_len=5, reserve=2) == [11, 12, 7]  # the last tokens kept
    assert t5.prompt_tokens([10, 11, 12], max_input_len=3, reserve=2) == [11, 12, 7]  # options decode apart
    with pytest.raises(ConfigError, match="max_input_len=4 leaves no room"):
        gpt.prompt_tokens([10], max_input_len=4, reserve=3)
    assert gpt.target_tokens([3]) == t5.target_tokens([3]) == [3, 7]
    assert model_api(gpt) is gpt and model_api(gpt, eos_id=1).eos_id == 1
    with pytest.raises(ConfigError, match="eos_id=64 is outside"):
        model_api(make_cfg("gpt"), eos_id=64)
    with pytest.raises(ConfigError, match="expected an xlt model"):
        model_api(object())


def test_encoder_decoder_decodes_from_the_start_id():
    """decode_start's first logits (cached and uncached) are the model's logits after the start id."""
    cfg = make_cfg("t5")
    api = model_api(cfg, start_id=5)
    params = peaked_params(api)
    tokens, segments = padded_tokens([6, 4], width=8)
    lengths = jnp.asarray([6, 4])
    want = jax.jit(api.logits)(params, {"encoder_input_tokens": tokens, "encoder_segment_ids": segments,
                                        "decoder_input_tokens": jnp.full((2, 1), 5, jnp.int32)})[:, 0]

    @jax.jit
    def first_logits(params):
        cached = api.decode_start(params, tokens, lengths, 3, prefix_lm=False, use_cache=True)[0]
        _, buf, step_full = api.decode_start(params, tokens, lengths, 3, prefix_lm=False, use_cache=False)
        uncached = step_full(buf, jnp.zeros((2,), jnp.int32), jnp.int32(0))[0]
        from_zero = model_api(cfg).decode_start(params, tokens, lengths, 3, prefix_lm=False, use_cache=True)[0]
        return cached, uncached, from_zero

    cached, uncached, from_zero = first_logits(params)
    np.testing.assert_allclose(cached, want, atol=1e-5)
    np.testing.assert_allclose(uncached, want, atol=1e-5)
    assert not np.allclose(from_zero, want)
