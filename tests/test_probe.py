"""xlt.probe: hidden states, attention weights and scores against direct computations; mesh = one device;
and the probing notebook executed end to end on a tiny checkpoint made here."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import flax.linen
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from xlt import checkpoints, probe
from xlt.errors import CheckpointError, ConfigError
from xlt.models import ModelConfig, build_model, model_api

REPO = Path(__file__).resolve().parent.parent
NOTEBOOK = REPO / "experiments" / "probe_checkpoint.ipynb"
TEXTS = ["In the beginning", "태초에 하나님이 천지를", "Im Anfang"]  # different lengths: padding is exercised

CONFIGS = {
    "gpt": ModelConfig(layout="gpt", vocab_size=264, d_model=32, num_layers=2, num_heads=4, d_ff=64, max_len=128),
    # Scanned layers (unstacked by the probe), rotary positions and grouped-query attention.
    "llama": ModelConfig(layout="llama", vocab_size=264, d_model=32, num_layers=2, num_heads=4, num_kv_heads=2,
                         d_ff=64, scan_layers=True),
    "t5": ModelConfig(layout="t5", vocab_size=264, d_model=32, num_layers=2, num_heads=4, d_ff=64),
}


def _make_checkpoint(root: Path, layout: str) -> Path:
    """Random parameters (numpy, from the model's abstract init: fast) saved as a params-only checkpoint.
    Query kernels are larger than the rest so attention is peaked: wrong positions or masks would show."""
    cfg = CONFIGS[layout]
    shapes = model_api(cfg).abstract_params()
    rng = np.random.default_rng(7)

    def init(path, leaf):
        name = jax.tree_util.keystr(path)
        if name.endswith("['scale']"):
            return np.ones(leaf.shape, np.float32)
        std = 0.4 if "'query'" in name else 0.5 if "embedding" in name else 0.02 if "bias" in name else 0.15
        return rng.normal(0.0, std, leaf.shape).astype(np.float32)

    params = jax.tree_util.tree_map_with_path(init, flax.linen.meta.unbox(shapes))
    return checkpoints.save_params(root / layout, params, {"model": cfg.to_dict(), "vocabulary": "ByteVocabulary:259"})


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("probe_ckpts")
    return {layout: _make_checkpoint(root, layout) for layout in CONFIGS}


@pytest.fixture(scope="module")
def probes(ckpts):
    return {layout: probe.load(path) for layout, path in ckpts.items()}


@pytest.mark.parametrize("layout", ["gpt", "llama"])
def test_probe_last_hidden_state_reproduces_logits(ckpts, probes, layout):
    p = probes[layout]
    hs = p.hidden_states(TEXTS)
    assert sorted(hs["states"]) == [0, 1, 2]
    n, t = hs["tokens"].shape
    assert hs["states"][2].shape == (n, t, 32) and hs["mean"][2].shape == (n, 32)
    assert hs["mask"].sum(1).tolist() == [len(s.encode()) for s in TEXTS]  # the start token is not pooled
    # Against the original (scanned, for llama) model and parameters, not the probe's own forward.
    raw, meta = checkpoints.load_params(ckpts[layout])
    cfg = checkpoints.model_config_from_meta(meta)
    valid = hs["lengths"][:, None] > np.arange(t)[None, :]
    logits = jax.jit(build_model(cfg).apply)({"params": raw}, {"decoder_input_tokens": jnp.asarray(hs["tokens"]),
                                                               "decoder_segment_ids": jnp.asarray(valid, jnp.int32)})
    lens = p.unembed(hs["states"][2])
    np.testing.assert_allclose(lens[valid], np.asarray(logits)[valid], atol=2e-4, rtol=1e-4)
    # The mean is over the text's tokens only.
    m = hs["mask"][..., None]
    np.testing.assert_allclose(hs["mean"][1], (hs["states"][1] * m).sum(1) / m.sum(1), rtol=1e-6)
    # Layer 0 is the embedding output: token (+ learned position) embeddings of the fed ids.
    emb = np.asarray(raw["token_embedder"]["embedding"])[hs["tokens"]]
    if cfg.position == "learned":
        emb = emb + np.asarray(raw["position_embedder"]["embedding"])[:t][None]
    np.testing.assert_allclose(hs["states"][0], emb, atol=1e-6)


@pytest.mark.parametrize("layout", ["gpt", "llama", "t5"])
def test_probe_attention_weights_reproduce_layer_output(probes, layout):
    p = probes[layout]
    causal = not p.cfg.encoder_decoder
    for layer in (1, 2):
        w = p.attention(TEXTS, layer)
        inter, batch = p.intermediates(TEXTS, attention_layer=layer)
        seg = batch["segments"].astype(bool)
        n, t = seg.shape
        assert w.shape == (n, p.cfg.num_heads, t, t)
        rows = w.sum(-1)  # [n, heads, T]
        np.testing.assert_allclose(rows[np.broadcast_to(seg[:, None], rows.shape)], 1.0, atol=1e-5)
        assert np.all(rows[np.broadcast_to(~seg[:, None], rows.shape)] == 0)
        assert np.all(w[np.broadcast_to(~seg[:, None, None, :], w.shape)] < 1e-30)  # padding keys get nothing
        upper = np.triu(np.ones((t, t), bool), 1)[None, None]
        if causal:
            assert np.all(w[np.broadcast_to(upper, w.shape)] < 1e-30)
        else:  # the encoder is bidirectional
            assert w[np.broadcast_to(upper & seg[:, None, None, :] & seg[:, None, :, None], w.shape)].max() > 1e-3
        assert w.max() > 0.5  # sharpened queries: not uniform
        stack = inter["encoder"]["stack"] if p.cfg.encoder_decoder else inter["decoder"]
        attn = stack[f"layers_{layer - 1}"]["self_attention"]
        v = np.repeat(attn["value"]["__call__"][0], p.cfg.num_heads // p.cfg.num_kv_heads, axis=2)
        ctx = np.einsum("bhqk,bkhd->bqhd", w, v)
        params = (p.params["encoder"]["stack"] if p.cfg.encoder_decoder else p.params["decoder"])
        out_p = params[f"layers_{layer - 1}"]["self_attention"]["out"]
        out = np.tensordot(ctx, np.asarray(out_p["kernel"]), axes=2)
        if "bias" in out_p:
            out = out + np.asarray(out_p["bias"])
        np.testing.assert_allclose(out[seg], attn["__call__"][0][seg], atol=2e-5, rtol=1e-4)
    if p.cfg.encoder_decoder:  # hidden states are the encoder's: ids + EOS fed, EOS not pooled
        hs = p.hidden_states(TEXTS, layers=[0, 2])
        assert hs["mask"].sum(1).tolist() == [len(s.encode()) for s in TEXTS]
        assert (hs["lengths"] == hs["mask"].sum(1) + 1).all() and np.isfinite(hs["mean"][2]).all()
        np.testing.assert_allclose(hs["states"][2], stack["layers_1"]["__call__"][0], atol=1e-6)


@pytest.mark.parametrize("layout", ["gpt", "t5"])
def test_probe_score_equals_log_softmax(probes, layout):
    p = probes[layout]
    prompts, conts = ["In the", "태초에"], [" beginning", " 하나님이"]
    got = p.score(prompts, conts)
    for prompt, cont, score in zip(prompts, conts, got):
        c = list(p.vocab.encode(cont))
        if p.cfg.encoder_decoder:
            batch = {"encoder_input_tokens": jnp.asarray([list(p.vocab.encode(prompt)) + [1]]),
                     "decoder_input_tokens": jnp.asarray([[0] + c[:-1]])}
            logp = np.asarray(jax.nn.log_softmax(jax.jit(p.model.apply)({"params": p.params}, batch)[0], -1))
            want = sum(float(logp[i, tok]) for i, tok in enumerate(c))
        else:
            row = [0] + list(p.vocab.encode(prompt)) + c
            logits = jax.jit(p.model.apply)({"params": p.params}, {"decoder_input_tokens": jnp.asarray([row])})[0]
            logp = np.asarray(jax.nn.log_softmax(logits, -1))
            start = len(row) - len(c)
            want = sum(float(logp[i - 1, row[i]]) for i in range(start, len(row)))
        assert math.isclose(float(score), want, rel_tol=1e-4, abs_tol=1e-3), (score, want)


def test_probe_mesh_matches_single_device(ckpts, probes, devices):
    single = probes["llama"]
    sharded = probe.load(ckpts["llama"], mesh_shape=(2, 1, 1), batch_size=4)
    assert len(sharded.mesh.devices.flat) == 2
    a, b = single.hidden_states(TEXTS, layers=[0, 2]), sharded.hidden_states(TEXTS, layers=[0, 2])
    for i in (0, 2):
        np.testing.assert_allclose(a["states"][i], b["states"][i], atol=1e-5)
        np.testing.assert_allclose(a["mean"][i], b["mean"][i], atol=1e-5)
    np.testing.assert_allclose(single.attention(TEXTS, 2), sharded.attention(TEXTS, 2), atol=1e-5)
    np.testing.assert_allclose(single.score(TEXTS, ["x", "y", "z"]), sharded.score(TEXTS, ["x", "y", "z"]),
                               rtol=1e-5, atol=1e-4)
    assert single.generate(TEXTS, max_new_tokens=6) == sharded.generate(TEXTS, max_new_tokens=6)


def test_probe_bad_input_is_one_line_error(tmp_path, probes):
    p = probes["gpt"]
    with pytest.raises(CheckpointError, match="does not exist"):
        probe.load(tmp_path / "missing")
    with pytest.raises(ConfigError, match="layer must be"):
        p.attention(TEXTS, 0)
    with pytest.raises(ConfigError, match="layer must be"):
        p.hidden_states(TEXTS, layers=[3])
    with pytest.raises(ConfigError, match="continuations"):
        p.score(["a", "b"], ["c"])
    with pytest.raises(ConfigError, match="empty"):
        p.score(["a"], [""])
    with pytest.raises(ConfigError, match="list of strings"):
        p.hidden_states("not a list")
    with pytest.raises(ConfigError, match="max_len"):
        p.hidden_states(["x" * 200])
    assert p.hidden_states(["x" * 200], layers=[1], max_tokens=20)["mask"].sum() == 20


def test_probe_notebook_executes(ckpts, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1 and "CHECKPOINT" in params[0].source and "N_VERSES" in params[0].source
    out = tmp_path / "out"
    env = {"PROBE_CHECKPOINT": str(ckpts["gpt"]), "PROBE_LANGS": "en,de,ko", "PROBE_N_VERSES": "10",
           "PROBE_OUT_DIR": str(out), "PROBE_MAX_NEW_TOKENS": "4", "PROBE_MAX_TOKENS": "48"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        nbclient.NotebookClient(nb, timeout=240, kernel_name="python3",
                                resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    for name in ("similarity.png", "lang_id_probe.png", "results.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    res = json.loads((out / "results.json").read_text())
    assert res["langs"] == ["en", "de", "ko"] and res["n_verses"] == 10 and res["layers"] == [0, 1, 2]
    assert set(res["generations"]) == {"en", "de", "ko"}
    assert set(res["similarity"]) == {"en-de", "en-ko", "de-ko"}
    for s in res["similarity"].values():
        for kind in ("translation", "random"):
            assert len(s[kind]) == 3 and all(math.isfinite(x) and -1.001 <= x <= 1.001 for x in s[kind])
    assert len(res["lang_id_accuracy"]) == 3 and all(0 <= a <= 1 for a in res["lang_id_accuracy"])
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
