"""Hugging Face interop: tiny random transformers models → xlt logits and greedy tokens, and back.

Every family (GPT-2, Llama, T5 v1.1, mT5, original T5, BLOOM) is built in transformers, saved with
``save_pretrained``, imported with the converter's command line, run in xlt and compared in fp32 with
transformers' own logits (a padded batch included), exported back and reloaded with ``from_pretrained``. Also:
sharded safetensors and pytorch_model.bin import, sharded export, bf16, vocabulary padding, the generated
model.gin, params-only/training checkpoints through
``xlt.checkpoints.load_params`` (sharded restore included) and the one-line errors.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from xlt import checkpoints, cli  # noqa: E402
from xlt.errors import CheckpointError, ConfigError  # noqa: E402
from xlt.interop import hf  # noqa: E402
from xlt.models import ModelConfig, build_model  # noqa: E402

try:  # KV-cached generation; the parity test also checks it when present
    from xlt import decoding
except ImportError:  # pragma: no cover
    decoding = None

REPO = Path(__file__).resolve().parents[2]
VOCAB = 101  # deliberately not a multiple of anything
TOL = 1e-4
# Families whose greedy tokens are also checked through xlt.decoding.generate (KV cache): learned positions
# with a padded vocabulary, RoPE with grouped-query attention, an encoder-decoder (padded vocabulary) and ALiBi
# (BLOOM, looped and scanned).
CACHED_GENERATION = ("gpt2", "llama_gqa_untied", "mt5", "bloom", "bloom_pow2_scanned")


def _gpt2():
    cfg = transformers.GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=4,
                                  initializer_range=0.2, bos_token_id=None, eos_token_id=None, pad_token_id=0)
    return transformers.GPT2LMHeadModel(cfg)


def _llama(tied: bool):
    cfg = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, head_dim=8, rms_norm_eps=1e-5,
                                   initializer_range=0.2,
                                   rope_parameters={"rope_type": "default", "rope_theta": 500.0},
                                   tie_word_embeddings=tied, bos_token_id=None, eos_token_id=None, pad_token_id=0)
    return transformers.LlamaForCausalLM(cfg)


def _untie_t5(model):
    """transformers 5 always ties T5's lm_head at init; an untied checkpoint has its own lm_head.weight."""
    model.lm_head.weight = torch.nn.Parameter(torch.randn_like(model.shared.weight) * 0.5)
    return model


def _t5_v11():
    cfg = transformers.T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_decoder_layers=3,
                                num_heads=4, relative_attention_num_buckets=8, relative_attention_max_distance=20,
                                feed_forward_proj="gated-gelu", tie_word_embeddings=False, dropout_rate=0.0,
                                decoder_start_token_id=0)
    return _untie_t5(transformers.T5ForConditionalGeneration(cfg))


def _mt5():
    cfg = transformers.MT5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4,
                                 relative_attention_num_buckets=8, relative_attention_max_distance=20,
                                 dropout_rate=0.0)
    return _untie_t5(transformers.MT5ForConditionalGeneration(cfg))


def _t5_original():  # tied embeddings, decoder output scaled by d_model**-0.5, ReLU MLP
    cfg = transformers.T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4,
                                relative_attention_num_buckets=8, relative_attention_max_distance=20,
                                feed_forward_proj="relu", dropout_rate=0.0, decoder_start_token_id=0)
    return transformers.T5ForConditionalGeneration(cfg)


def _bloom(heads: int = 6):  # 6 heads: ALiBi's slopes for a head count that is not a power of two
    cfg = transformers.BloomConfig(vocab_size=VOCAB, hidden_size=8 * heads, n_layer=2, n_head=heads,
                                   initializer_range=0.2, bos_token_id=None, eos_token_id=None, pad_token_id=0)
    return transformers.BloomForCausalLM(cfg)


# name: (builder, import flags)
FAMILIES = {
    "gpt2": (_gpt2, ["--pad_vocab_to_multiple=64"]),
    "llama_gqa_untied": (lambda: _llama(False), ["--scan_layers"]),
    "llama_tied": (lambda: _llama(True), []),
    "t5_v1_1": (_t5_v11, ["--scan_layers"]),
    "mt5": (_mt5, ["--pad_vocab_to_multiple=128"]),
    "t5_original_tied": (_t5_original, []),
    "bloom": (_bloom, ["--pad_vocab_to_multiple=64"]),
    "bloom_pow2_scanned": (lambda: _bloom(4), ["--scan_layers"]),
}


def _save(model, directory: Path, **kwargs) -> Path:
    model.eval()
    model.save_pretrained(directory, **kwargs)
    return directory


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("hf")
    return {name: (_save(build(), root / name), flags) for name, (build, flags) in FAMILIES.items()}


def _load_hf(directory: Path, encdec: bool):
    cls = transformers.AutoModelForSeq2SeqLM if encdec else transformers.AutoModelForCausalLM
    return cls.from_pretrained(directory, dtype=torch.float32).eval()


def _batch(encdec: bool, seed: int = 0):
    """Random tokens, row 1 padded: decoder-only rows right-padded, T5 encoder (and decoder) rows padded."""
    rng = np.random.default_rng(seed)
    dec = rng.integers(1, VOCAB, (2, 10))
    dec_mask = np.ones_like(dec)
    dec_mask[1, 6:] = 0
    dec[1, 6:] = 0
    if not encdec:
        return {"dec": dec, "dec_mask": dec_mask}
    enc = rng.integers(1, VOCAB, (2, 12))
    enc[1, 7:] = 0
    return {"dec": dec, "dec_mask": dec_mask, "enc": enc}


def _hf_logits(model, b) -> np.ndarray:
    with torch.no_grad():
        if "enc" in b:
            out = model(input_ids=torch.tensor(b["enc"]), attention_mask=torch.tensor(b["enc"] != 0).long(),
                        decoder_input_ids=torch.tensor(b["dec"]), decoder_attention_mask=torch.tensor(b["dec_mask"]))
        else:
            out = model(input_ids=torch.tensor(b["dec"]), attention_mask=torch.tensor(b["dec_mask"]))
    return out.logits.float().numpy()


def _xlt_forward(cfg: ModelConfig, params):
    """A jitted full forward; every call in a test uses one input shape, so it compiles once."""
    model = build_model(cfg)
    forward = jax.jit(lambda p, b: model.apply({"params": p}, b))

    def run(dec: np.ndarray, dec_mask: np.ndarray, enc: np.ndarray | None = None) -> np.ndarray:
        batch = {"decoder_input_tokens": jnp.asarray(dec, jnp.int32),
                 "decoder_segment_ids": jnp.asarray(dec_mask, jnp.int32)}
        if enc is not None:
            batch["encoder_input_tokens"] = jnp.asarray(enc, jnp.int32)
        return np.asarray(forward(params, batch), np.float32)
    return run


def _max_diff(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)[mask.astype(bool)]))


def _hf_greedy(model, prompt: np.ndarray, steps: int) -> np.ndarray:
    config = model.config
    # transformers' encoder-decoder cache assumes as many decoder as encoder layers; decode uncached otherwise.
    use_cache = not config.is_encoder_decoder or config.num_decoder_layers == config.num_layers
    with torch.no_grad():
        out = model.generate(torch.tensor(prompt), attention_mask=torch.tensor(prompt != 0).long(),
                             max_new_tokens=steps, do_sample=False, num_beams=1, use_cache=use_cache)
    out = out.numpy()
    return out if config.is_encoder_decoder else out[:, prompt.shape[1]:]


def _xlt_greedy(cfg: ModelConfig, forward, prompt: np.ndarray, length: int) -> np.ndarray:
    """Argmax over the full forward at a fixed shape [batch, length]: causal attention makes the not yet
    written positions irrelevant to the logits read at step t. T5 starts the decoder from id 0, as HF does;
    a decoder-only prompt fills the first positions."""
    tokens = np.zeros((prompt.shape[0], length), np.int32)
    start = 1 if cfg.encoder_decoder else prompt.shape[1]
    if not cfg.encoder_decoder:
        tokens[:, :start] = prompt
    for t in range(start, length):
        logits = forward(tokens, np.ones_like(tokens), prompt if cfg.encoder_decoder else None)
        tokens[:, t] = np.argmax(logits[:, t - 1], axis=-1)
    return tokens if cfg.encoder_decoder else tokens[:, start:]


def _same_until_eos(hf_tokens: np.ndarray, xlt_tokens: np.ndarray, eos: int | None) -> None:
    """HF stops a row at eos and pads the rest; compare each row up to and including its first eos."""
    for row_hf, row_xlt in zip(hf_tokens, xlt_tokens):
        n = len(row_hf)
        if eos is not None and eos in row_hf.tolist():
            n = row_hf.tolist().index(eos, 1 if len(row_hf) and row_hf[0] == 0 else 0) + 1
        np.testing.assert_array_equal(row_hf[:n], row_xlt[:n])


def _convert(argv: list[str]) -> Path:
    return hf.run(argv)


@pytest.mark.parametrize("name", list(FAMILIES))
def test_import_parity_export_roundtrip_and_greedy(hf_models, tmp_path, name):
    hf_dir, flags = hf_models[name]
    reference = _load_hf(hf_dir, encdec=name.startswith(("t5", "mt5")))
    encdec = reference.config.is_encoder_decoder
    out = _convert(["import", f"--hf_dir={hf_dir}", f"--out={tmp_path / 'xlt'}", *flags])
    params, meta = checkpoints.load_params(out)
    cfg = checkpoints.model_config_from_meta(meta)
    assert cfg.scan_layers == ("--scan_layers" in flags)
    assert cfg.encoder_decoder == encdec and (cfg.unpadded_vocab_size or cfg.vocab_size) == VOCAB

    b = _batch(encdec)
    forward = _xlt_forward(cfg, params)
    want = _hf_logits(reference, b)
    got = forward(b["dec"], b["dec_mask"], b.get("enc"))
    assert got.shape[-1] == cfg.vocab_size
    if cfg.vocab_size > VOCAB:  # padding rows are masked out, never argmax
        assert np.all(got[..., VOCAB:] < -1e30)
    mask = np.broadcast_to(b["dec_mask"][..., None], want.shape)
    diff = _max_diff(got[..., :VOCAB], want, mask)
    print(f"max |xlt - HF| logit difference, fp32, {name}: {diff:.2e}")  # shown with -s
    assert diff < TOL, f"{name}: max |xlt - HF| logit difference {diff}"

    exported = _convert(["export", f"--xlt_dir={out}", f"--out={tmp_path / 'hf_again'}"])
    config = json.loads((exported / "config.json").read_text())
    assert config["vocab_size"] == VOCAB and config["model_type"] == reference.config.model_type
    again = _load_hf(exported, encdec)
    want_sd, got_sd = reference.state_dict(), again.state_dict()
    assert set(want_sd) == set(got_sd)
    for key in want_sd:
        torch.testing.assert_close(got_sd[key], want_sd[key], rtol=0, atol=0, msg=key)
    np.testing.assert_array_equal(_hf_logits(again, b), want)

    # Greedy tokens: T5 from the padded encoder batch, decoder-only from 5-token prompts; same shape as above.
    length = b["dec"].shape[1]
    prompt = b["enc"] if encdec else np.random.default_rng(1).integers(1, VOCAB, (2, 5))
    hf_tokens = _hf_greedy(reference, prompt, length - (1 if encdec else prompt.shape[1]))
    xlt_tokens = _xlt_greedy(cfg, forward, prompt, length)
    _same_until_eos(hf_tokens, xlt_tokens, reference.generation_config.eos_token_id)
    if decoding is not None and name in CACHED_GENERATION:  # xlt's KV cache, stopping at seqio's EOS (1)
        rows = [r[r != 0] for r in prompt] if encdec else list(prompt)
        gen = decoding.generate(build_model(cfg), params, rows, max_new_tokens=hf_tokens.shape[1] - encdec)
        for row_hf, row_xlt, n in zip(hf_tokens[:, int(encdec):], gen.tokens, gen.lengths):
            np.testing.assert_array_equal(row_xlt[:n], row_hf[:n])


def test_sharded_safetensors_and_torch_bin_import(hf_models, tmp_path):
    hf_dir, _ = hf_models["llama_gqa_untied"]
    model = _load_hf(hf_dir, encdec=False)
    sharded = _save(model, tmp_path / "sharded", max_shard_size="20KB")
    assert (sharded / "model.safetensors.index.json").is_file()
    assert len(list(sharded.glob("model-*.safetensors"))) > 2
    binary = tmp_path / "bin"
    binary.mkdir()
    shutil.copy(hf_dir / "config.json", binary / "config.json")
    torch.save(model.state_dict(), binary / "pytorch_model.bin")
    _, base, _ = hf.convert_from_hf(hf_dir)
    for directory in (sharded, binary):
        _, params, info = hf.convert_from_hf(directory)
        assert info["weights"] in ("model.safetensors.index.json", "pytorch_model.bin")
        jax.tree.map(np.testing.assert_array_equal, params, base)


def test_bf16_import_and_sharded_export(hf_models, tmp_path):
    hf_dir, _ = hf_models["t5_v1_1"]
    reference = _load_hf(hf_dir, encdec=True)
    out = hf.import_hf(hf_dir, tmp_path / "xlt", dtype="bfloat16")
    params, meta = checkpoints.load_params(out)
    assert meta.param_dtypes == ("bfloat16",)
    assert {str(x.dtype) for x in jax.tree.leaves(params)} == {"bfloat16"}
    exported = hf.export_hf(out, tmp_path / "hf", max_shard_bytes=8_000)
    assert (exported / "model.safetensors.index.json").is_file()
    again = transformers.AutoModelForSeq2SeqLM.from_pretrained(exported).eval()
    assert again.dtype == torch.bfloat16
    ref_sd = reference.state_dict()
    for key, value in again.state_dict().items():  # bf16 rounding of the fp32 weights, nothing else
        torch.testing.assert_close(value, ref_sd[key].to(torch.bfloat16), rtol=0, atol=0, msg=key)


def test_model_gin_rebuilds_the_config(hf_models, tmp_path):
    import gin

    import xlt.train  # noqa: F401 - registers `train`, which the model gin files bind

    hf_dir, _ = hf_models["gpt2"]
    out = hf.import_hf(hf_dir, tmp_path / "xlt", pad_vocab_to_multiple=64, scan_layers=True)
    text = (out / "model.gin").read_text()
    assert "ModelConfig.unpadded_vocab_size = 101" in text and "ModelConfig.vocab_size = 128" in text
    _, meta = checkpoints.load_params(out)
    cli.load_gin([str(out / "model.gin")], [])
    try:
        assert ModelConfig() == checkpoints.model_config_from_meta(meta)
    finally:
        gin.clear_config()
    assert (meta.model.unpadded_vocab_size, meta.model.vocab_size) == (101, 128)  # the true and the padded size


# --- load_params: training checkpoints, sharded restore, corrupt input ------------------------------------------


def test_load_params_from_a_training_run_and_sharded(hf_models, tmp_path, devices):
    import optax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from xlt.step import TrainState

    hf_dir, _ = hf_models["llama_gqa_untied"]
    cfg, params, _ = hf.convert_from_hf(hf_dir, scan_layers=True)
    tx = optax.adamw(1e-3)
    ckpt = checkpoints.Checkpointer(tmp_path / "run" / "checkpoints", async_save=False)
    for step, scale in ((1, 1.0), (3, 2.0)):
        p = jax.tree.map(lambda x: jnp.asarray(x) * scale, params)
        state = TrainState(step=jnp.asarray(step), params=p, opt_state=tx.init(p))
        ckpt.save(step, state, {"model": cfg.to_dict(), "param_shapes": checkpoints.param_shapes(p)}, force=True)
    ckpt.close()

    latest, meta = checkpoints.load_params(tmp_path / "run")
    assert meta.step == 3 and checkpoints.model_config_from_meta(meta) == cfg
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, 2.0 * b), latest, params)
    first, meta = checkpoints.load_params(tmp_path / "run" / "checkpoints" / "1")
    assert meta.step == 1
    jax.tree.map(np.testing.assert_array_equal, first, params)

    mesh = jax.sharding.Mesh(np.array(devices).reshape(2, 4), ("data", "model"))

    def sharded(x):
        spec = P(None, "model") if x.ndim >= 2 and x.shape[1] % 4 == 0 else P()
        return jax.ShapeDtypeStruct(x.shape, jnp.float32, sharding=NamedSharding(mesh, spec))

    restored, _ = checkpoints.load_params(tmp_path / "run", jax.tree.map(sharded, params))
    emb = restored["token_embedder"]["embedding"]
    assert isinstance(emb, jax.Array) and emb.sharding.spec == P(None, "model") and len(emb.addressable_shards) == 8
    np.testing.assert_array_equal(np.asarray(emb), 2.0 * params["token_embedder"]["embedding"])

    looped = hf.abstract_params(cfg.replace(scan_layers=False))
    with pytest.raises(CheckpointError, match="scanned layers, the other looped"):
        checkpoints.load_params(tmp_path / "run", hf._unflatten(looped))
    wrong = jax.tree.map(lambda x: x, hf._unflatten(hf.abstract_params(cfg)))
    wrong["final_norm"]["scale"] = jax.ShapeDtypeStruct((31,), jnp.float32)
    with pytest.raises(CheckpointError, match=r"final_norm/scale is \(32,\) in the checkpoint but \(31,\)"):
        checkpoints.load_params(tmp_path / "run", wrong)


def test_load_params_errors(hf_models, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoints.load_params(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no xlt checkpoint"):
        checkpoints.load_params(tmp_path / "empty")
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    with pytest.raises(CheckpointError, match="no finished checkpoint"):
        checkpoints.load_params(tmp_path / "run")
    out = hf.import_hf(hf_models["llama_tied"][0], tmp_path / "xlt")
    (out / "meta.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt .*meta.json"):
        checkpoints.load_params(out)
    out = hf.import_hf(hf_models["llama_tied"][0], tmp_path / "xlt2")
    for f in (out / "params").rglob("*"):
        if f.is_file() and f.name != "_METADATA":
            f.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="xlt2"):
        checkpoints.load_params(out)
    with pytest.raises(CheckpointError, match="already exists and is not empty"):
        hf.import_hf(hf_models["llama_tied"][0], out)


# --- Bad Hugging Face input: one line, nothing written -------------------------------------------------------


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _rewrite_tensors(directory: Path, edit) -> None:
    from safetensors.torch import load_file, save_file

    tensors = load_file(directory / "model.safetensors")
    edit(tensors)
    save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})


def _import_fails(hf_dir: Path, out: Path, error, match: str) -> None:
    with pytest.raises(error, match=match):
        hf.import_hf(hf_dir, out)
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*")), "import left files behind"


def test_import_errors_name_the_problem_and_write_nothing(hf_models, tmp_path, capsys):
    out = tmp_path / "out"
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"architectures": ["BertForMaskedLM"], "model_type": "bert"}))
    _import_fails(bert, out, ConfigError, "unsupported Hugging Face architecture 'BertForMaskedLM'")
    code = cli.main(hf.run, ["import", f"--hf_dir={bert}", f"--out={out}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("xlt: error: unsupported Hugging Face")

    llama = hf_models["llama_gqa_untied"][0]
    bad_shape = _copy(llama, tmp_path / "bad_shape")
    config = json.loads((bad_shape / "config.json").read_text())
    config["intermediate_size"] = 40
    (bad_shape / "config.json").write_text(json.dumps(config))
    _import_fails(bad_shape, out, CheckpointError,
                  r"tensor 'model\.layers\.0\.mlp\.gate_proj\.weight' has shape \(48, 32\) but config\.json "
                  r"implies \(40, 32\)")

    missing = _copy(llama, tmp_path / "missing")
    _rewrite_tensors(missing, lambda t: t.pop("model.layers.1.self_attn.k_proj.weight"))
    _import_fails(missing, out, CheckpointError, r"tensor 'model\.layers\.1\.self_attn\.k_proj\.weight' is missing")

    extra = _copy(llama, tmp_path / "extra")
    _rewrite_tensors(extra, lambda t: t.update({"model.layers.0.self_attn.q_proj.bias": torch.zeros(32)}))
    _import_fails(extra, out, CheckpointError, r"unexpected tensor 'model\.layers\.0\.self_attn\.q_proj\.bias'")

    unsupported = _copy(llama, tmp_path / "scaled_rope")
    config = json.loads((unsupported / "config.json").read_text())
    config["rope_parameters"] = {"rope_type": "llama3", "rope_theta": 500.0, "factor": 8.0}
    (unsupported / "config.json").write_text(json.dumps(config))
    _import_fails(unsupported, out, ConfigError, "rope_type='llama3' is not supported")

    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    shutil.copy(llama / "config.json", no_weights / "config.json")
    _import_fails(no_weights, out, CheckpointError, "no weights in")
    _import_fails(tmp_path / "absent", out, CheckpointError, "directory not found")

    corrupt = _copy(llama, tmp_path / "corrupt")
    (corrupt / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}")
    _import_fails(corrupt, out, CheckpointError, "cannot read weights file")


def test_export_refuses_a_model_hf_cannot_express(tmp_path):
    cfg = ModelConfig(layout="gpt", vocab_size=64, d_model=16, num_layers=1, num_heads=2, d_ff=32, max_len=16,
                      position="rope")
    checkpoints.save_params(tmp_path / "xlt", hf._unflatten({k: np.zeros(v.shape, np.float32) for k, v in
                                                             hf.abstract_params(cfg).items()}), {"model": cfg})
    with pytest.raises(ConfigError, match="ModelConfig.position='rope'"):
        hf.export_hf(tmp_path / "xlt", tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_bloom_config_and_export_limits(hf_models, tmp_path):
    """BLOOM's architecture fixes what xlt leaves open: a 4 * d_model MLP, the residual before the norm."""
    bloom = hf_models["bloom"][0]
    post_norm = _copy(bloom, tmp_path / "post_norm")
    config = json.loads((post_norm / "config.json").read_text())
    config["apply_residual_connection_post_layernorm"] = True
    (post_norm / "config.json").write_text(json.dumps(config))
    _import_fails(post_norm, tmp_path / "out", ConfigError, "apply_residual_connection_post_layernorm=true")

    # bigscience's own BLOOM checkpoints name the base model's tensors without the ``transformer.`` prefix.
    bare = _copy(bloom, tmp_path / "bare")
    _rewrite_tensors(bare, lambda t: t.update({k.removeprefix("transformer."): t.pop(k) for k in list(t)}))
    _, want, _ = hf.convert_from_hf(bloom)
    _, got, _ = hf.convert_from_hf(bare)
    jax.tree.map(np.testing.assert_array_equal, got, want)

    cfg = ModelConfig(layout="bloom", vocab_size=64, d_model=16, num_layers=1, num_heads=2, d_ff=48)
    checkpoints.save_params(tmp_path / "xlt", hf._unflatten({k: np.zeros(v.shape, np.float32) for k, v in
                                                             hf.abstract_params(cfg).items()}), {"model": cfg})
    with pytest.raises(ConfigError, match=r"bloom: d_ff=48 \(BloomForCausalLM's MLP is 4\*d_model=64\)"):
        hf.export_hf(tmp_path / "xlt", tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
    assert hf.export_family(cfg).architecture == "BloomForCausalLM"


def test_interop_branches_on_no_layout():
    """Per-family knowledge is declared in xlt.models.hf_families; the generic converter never tests the layout."""
    text = (REPO / "xlt" / "interop" / "hf.py").read_text()
    for needle in ("encoder_decoder", ".layout"):
        assert needle not in text, needle


def test_convert_script_runs_as_a_command(hf_models, tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, str(REPO / "tools" / "convert_hf.py"), "import",
                           f"--hf_dir={hf_models['gpt2'][0]}", f"--out={tmp_path / 'xlt'}", "--dtype=bfloat16"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "wrote xlt checkpoint" in done.stdout and (tmp_path / "xlt" / "model.gin").is_file()


def test_interop_config_fields_are_validated():
    with pytest.raises(ConfigError, match=r"unpadded_vocab_size=200 must be in \[1, vocab_size=128\]"):
        ModelConfig(vocab_size=128, unpadded_vocab_size=200)
    with pytest.raises(ConfigError, match="scale_decoder_output is for encoder-decoder"):
        ModelConfig(layout="gpt", scale_decoder_output=True)
    assert hf.parse_size("5GB") == 5 * 1024 ** 3 and hf.parse_size("20KB") == 20 * 1024
    with pytest.raises(ConfigError, match="max_shard_size"):
        hf.parse_size("lots")
