"""xlt.checkpoints: one record (CheckpointMeta) for training, params-only and imported checkpoints; the
vocabulary travels with it (file inside the checkpoint, sha256 checked); older records are read and converted;
a checkpoint without a vocabulary, or with another one, is a one-line error."""

from __future__ import annotations

import json
from pathlib import Path

import flax.linen
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
import pytest
import seqio

from xlt import checkpoints, probe
from xlt.checkpoints import CheckpointMeta
from xlt.data import vocab as vocab_lib
from xlt.errors import CheckpointError
from xlt.models import ModelConfig, build_model
from xlt.step import TrainState

CFG = ModelConfig(layout="gpt", vocab_size=300, d_model=16, num_layers=1, num_heads=2, d_ff=32, max_len=64)
WORDS = ["in", "the", "beginning", "god", "created", "heaven", "and", "earth", "light", "was"]


def _one_line(excinfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text, text
    return text


def _params(cfg: ModelConfig = CFG):
    shapes = jax.eval_shape(lambda r: build_model(cfg).init(r, {"decoder_input_tokens": jnp.ones((1, 4), jnp.int32)}),
                            jax.random.key(0))["params"]
    rng = np.random.default_rng(0)
    return jax.tree.map(lambda s: rng.normal(0, 0.1, s.shape).astype(np.float32), flax.linen.meta.unbox(shapes))


def _tokenizer_json(path: Path, words=WORDS) -> Path:
    """A tiny word-level tokenizer.json (pad 0, eos 1, unk 2, then the words)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens(["<pad>", "</s>", "<unk>"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(path))
    return path


def _record(tmp_path: Path) -> vocab_lib.VocabularyRecord:
    tok = _tokenizer_json(tmp_path / "src" / "tokenizer.json")
    vocab = vocab_lib.TokenizersVocabulary(tok, eos_id=1, unk_id=2)
    return vocab_lib.record_of(vocab)


def test_the_record_round_trips(tmp_path):
    record = _record(tmp_path)
    assert (record.kind, record.file, record.size, len(record.sha256)) == ("tokenizers", "vocab/tokenizer.json", 13, 64)
    meta = CheckpointMeta(kind="train", model=CFG, vocabulary=record, param_shapes={"a/b": [2, 3]},
                          data={"mixture_or_task_name": "bible_en", "seed": 1, "batch_size": 4,
                                "feature_lengths": {"targets": 8}, "step": 5}, step=5, init_checkpoint="/x",
                          source={"hf_dir": "/hf"})
    again = CheckpointMeta.from_dict(json.loads(json.dumps(meta.to_dict())), kind="train")
    assert again == meta and again.vocabulary == record and again.model == CFG
    assert again.to_dict()["format"] == checkpoints.FORMAT and again.to_dict()["version"] == checkpoints.FORMAT_VERSION
    newer = {**meta.to_dict(), "version": checkpoints.FORMAT_VERSION + 1}
    with pytest.raises(CheckpointError, match="reads up to") as e:
        CheckpointMeta.from_dict(newer, kind="train")
    _one_line(e)
    broken = {**meta.to_dict(), "vocabulary": {**record.to_dict(), "sha256": None}}
    with pytest.raises(CheckpointError, match="needs its sha256"):
        CheckpointMeta.from_dict(broken, kind="train")


def test_training_and_params_only_checkpoints_give_the_same_record(tmp_path):
    """A training step and a params-only directory: one CheckpointMeta type, the vocabulary file inside each
    (MODEL_DIR/vocab/ for a run, the params directory for save_params), rebuilt with its sha256 checked."""
    src = _tokenizer_json(tmp_path / "src" / "tokenizer.json")
    vocab = vocab_lib.TokenizersVocabulary(src, eos_id=1, unk_id=2)
    record = vocab_lib.record_of(vocab)
    params = _params()
    shapes = checkpoints.param_shapes(params)

    run = tmp_path / "run"
    checkpoints.keep_vocabulary_file(run, vocab, record)
    ckpt = checkpoints.Checkpointer(run / "checkpoints", async_save=False)
    tx = optax.sgd(0.1)
    state = TrainState(step=jnp.asarray(2), params=params, opt_state=tx.init(params))
    meta = checkpoints.training_meta(model=CFG, shapes=shapes, vocabulary=record,
                                     data={"mixture_or_task_name": "t", "seed": 0, "batch_size": 2,
                                           "feature_lengths": {"targets": 8}}, step=2, init_checkpoint=None)
    ckpt.save(2, state, meta, force=True)
    ckpt.close()
    _, trained = checkpoints.load_params(run)

    flat = tmp_path / "flat"
    checkpoints.save_params(flat, params, CheckpointMeta(kind="params", model=CFG, vocabulary=record),
                            extra_files={record.file: src})
    _, saved = checkpoints.load_params(flat)

    assert type(trained) is type(saved) is CheckpointMeta
    assert (trained.kind, saved.kind) == ("train", "params")
    assert trained.to_dict().keys() == saved.to_dict().keys()
    assert trained.vocabulary == saved.vocabulary == record and trained.model == saved.model == CFG
    assert trained.step == 2 and trained.data["step"] == 2 and trained.param_shapes == shapes == saved.param_shapes
    assert trained.root == str(run.absolute()) and saved.root == str(flat.absolute())
    for meta in (trained, saved):
        rebuilt = checkpoints.vocabulary_of(meta)
        assert isinstance(rebuilt, vocab_lib.TokenizersVocabulary) and rebuilt == vocab
        assert list(rebuilt.encode("in the beginning god")) == [3, 4, 5, 6]
    assert checkpoints.read_meta(run) == trained and checkpoints.read_meta(flat) == saved

    with pytest.raises(CheckpointError, match="not given it in extra_files"):
        checkpoints.save_params(tmp_path / "flat2", params, saved)


def test_old_format_metas_are_read(tmp_path):
    """Records written before CheckpointMeta: a params-only meta.json (format xlt-params, version 1) with a
    ``vocabulary`` id, a training meta with ``data.vocabulary`` and a Hugging Face import whose tokenizer sat
    only under hf/ (the three names the vocabulary had)."""
    params = _params()
    shapes = checkpoints.param_shapes(params)

    # 1. params-only, version 1, byte vocabulary id.
    flat = tmp_path / "flat"
    with ocp.Checkpointer(ocp.StandardCheckpointHandler()) as c:
        c.save(flat / "params", args=ocp.args.StandardSave(params))
    legacy = {"format": "xlt-params", "version": 1, "model": CFG.to_dict(), "param_shapes": shapes,
              "param_dtypes": ["float32"], "vocabulary": "ByteVocabulary:259", "vocab": {"size": 259}}
    (flat / "meta.json").write_text(json.dumps(legacy))
    _, meta = checkpoints.load_params(flat)
    assert isinstance(meta, CheckpointMeta) and meta.kind == "params" and meta.model == CFG
    assert meta.vocabulary == vocab_lib.record_of(seqio.ByteVocabulary())
    assert meta.xlt_version == "unknown" and meta.param_dtypes == ("float32",)
    assert isinstance(checkpoints.vocabulary_of(meta), seqio.ByteVocabulary)

    # 2. training meta (no format, step from the directory, vocabulary id under data).
    spm_sha = "0123456789abcdef" + "0" * 48
    old_id = f"sentencepiece:{spm_sha[:16]}:1000:extra_ids=0"
    manager = ocp.CheckpointManager(tmp_path / "run" / "checkpoints")
    manager.save(7, args=ocp.args.Composite(
        state=ocp.args.StandardSave({"params": params, "step": np.int32(7)}),
        meta=ocp.args.JsonSave({"model": CFG.to_dict(), "param_shapes": shapes, "init_checkpoint": None,
                                "data": {"mixture_or_task_name": "bible_en", "seed": 0, "batch_size": 2,
                                         "feature_lengths": {"targets": 8}, "vocabulary": old_id, "step": 7}})))
    manager.wait_until_finished()
    manager.close()
    _, meta = checkpoints.load_params(tmp_path / "run")
    assert meta.kind == "train" and meta.step == 7 and "vocabulary" not in meta.data
    assert (meta.vocabulary.kind, meta.vocabulary.sha256, meta.vocabulary.size, meta.vocabulary.file) == \
        ("sentencepiece", spm_sha[:16], 1000, None)
    same = vocab_lib.VocabularyRecord(kind="sentencepiece", size=1000, sha256=spm_sha, file="vocab/spm.model")
    checkpoints.check_vocabulary(meta, same, "old")  # the 16-digit digest matches the full one
    other = vocab_lib.VocabularyRecord(kind="sentencepiece", size=1000, sha256="f" * 64, file="vocab/spm.model")
    with pytest.raises(CheckpointError, match="vocabulary does not match checkpoint old"):
        checkpoints.check_vocabulary(meta, other, "old")
    with pytest.raises(CheckpointError, match="not its file") as e:
        checkpoints.vocabulary_of(meta)
    _one_line(e)
    again = checkpoints.Checkpointer(tmp_path / "run" / "checkpoints")
    assert again.read_meta(7) == meta
    again.close()

    # 3. Hugging Face import of version 1: the tokenizer only under hf/, conventions from the recorded config.
    imported = tmp_path / "imported"
    with ocp.Checkpointer(ocp.StandardCheckpointHandler()) as c:
        c.save(imported / "params", args=ocp.args.StandardSave(params))
    _tokenizer_json(imported / "hf" / "tokenizer.json")
    (imported / "hf" / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>", "pad_token": "<pad>"}))
    hf_config = {"model_type": "gpt2", "eos_token_id": 1, "bos_token_id": 1}
    (imported / "meta.json").write_text(json.dumps({
        "format": "xlt-params", "version": 1, "model": CFG.to_dict(), "param_shapes": shapes,
        "source": {"hf_config": hf_config, "model_type": "gpt2"}, "vocab": {"size": 300, "padded_size": 300}}))
    _, meta = checkpoints.load_params(imported)
    record = meta.vocabulary
    assert (record.kind, record.file, record.size) == ("tokenizers", "hf/tokenizer.json", 13)
    assert (record.conventions.eos_id, record.conventions.pad_id, record.conventions.add_bos) == (1, 0, False)
    assert record.conventions.decoder_start_id == 1  # the BOS a GPT-2 import scores from
    assert list(checkpoints.vocabulary_of(meta).encode("god created light")) == [6, 7, 11]


def test_missing_vocabulary_is_a_one_line_error(tmp_path):
    params = _params()
    flat = checkpoints.save_params(tmp_path / "novocab", params, CheckpointMeta(kind="params", model=CFG,
                                                                                vocabulary=None))
    _, meta = checkpoints.load_params(flat)
    assert meta.vocabulary is None
    for call in (lambda: checkpoints.vocabulary_of(meta),
                 lambda: checkpoints.check_vocabulary(meta, vocab_lib.record_of(seqio.ByteVocabulary()), "x"),
                 lambda: probe.load(flat)):
        with pytest.raises(CheckpointError, match="records no vocabulary") as e:
            call()
        _one_line(e)
    # An explicit vocabulary serves a checkpoint that records none.
    p = probe.load(flat, vocabulary="byte")
    assert p.encode("ab") == [0, 100, 101]


def test_sha_mismatch_and_other_vocabularies_are_refused(tmp_path):
    src = _tokenizer_json(tmp_path / "src" / "tokenizer.json")
    vocab = vocab_lib.TokenizersVocabulary(src, eos_id=1, unk_id=2)
    record = vocab_lib.record_of(vocab)
    flat = checkpoints.save_params(tmp_path / "ckpt", _params(), CheckpointMeta(kind="params", model=CFG,
                                                                                vocabulary=record),
                                   extra_files={record.file: src})
    assert probe.load(flat).encode("god") == [0, 6]

    # Same ids under another file name: accepted (records compare contents, not names).
    copy = _tokenizer_json(tmp_path / "elsewhere" / "renamed.json")
    checkpoints.check_vocabulary(record, vocab_lib.record_of(vocab_lib.TokenizersVocabulary(copy, eos_id=1)), "c")
    # Other ids: refused, by fine-tuning and by probe with an explicit vocabulary.
    other = _tokenizer_json(tmp_path / "other" / "tokenizer.json", words=WORDS[::-1])
    other_record = vocab_lib.record_of(vocab_lib.TokenizersVocabulary(other, eos_id=1))
    with pytest.raises(CheckpointError, match="vocabulary does not match checkpoint c") as e:
        checkpoints.check_vocabulary(record, other_record, "c")
    _one_line(e)
    with pytest.raises(CheckpointError, match="vocabulary does not match"):
        probe.load(flat, vocabulary=str(other))
    with pytest.raises(CheckpointError, match="vocabulary does not match"):
        checkpoints.check_vocabulary(vocab_lib.record_of(seqio.ByteVocabulary()),
                                     vocab_lib.record_of(seqio.ByteVocabulary(extra_ids=10)), "c")

    # The file inside the checkpoint changed after it was written: refused with one line.
    inside = flat / record.file
    inside.write_text(other.read_text())
    with pytest.raises(CheckpointError, match="changed after the checkpoint was written") as e:
        probe.load(flat)
    _one_line(e)
    inside.unlink()
    with pytest.raises(CheckpointError, match="is missing"):
        checkpoints.vocabulary_of(checkpoints.read_meta(flat))


def test_tokenizers_vocabulary_in_a_seqio_pipeline(tmp_path):
    """The tokenizers kind works where seqio uses TF ops (tokenize, append_eos, decode_tf)."""
    import tensorflow as tf

    vocab = vocab_lib.vocabulary("tokenizers", str(_tokenizer_json(tmp_path / "t" / "tokenizer.json")))
    assert vocab.eos_id is None  # no tokenizer_config.json beside it names one
    (tmp_path / "t" / "tokenizer_config.json").write_text(json.dumps({"eos_token": {"content": "</s>"},
                                                                      "unk_token": "<unk>"}))
    vocab = vocab_lib.vocabulary("tokenizers", str(tmp_path / "t" / "tokenizer.json"))
    assert (vocab.eos_id, vocab.unk_id, vocab.vocab_size) == (1, 2, 13)
    ds = tf.data.Dataset.from_tensor_slices({"targets": ["in the beginning", "god created zebras"]})
    ds = seqio.preprocessors.tokenize(ds, {"targets": seqio.Feature(vocab)})
    ds = seqio.preprocessors.append_eos(ds, {"targets": seqio.Feature(vocab, add_eos=True)})
    rows = [list(ex["targets"]) for ex in ds.as_numpy_iterator()]
    assert rows == [[3, 4, 5, 1], [6, 7, 2, 1]]
    assert vocab.decode([6, 7, 1, 9]) == "god created"  # up to EOS, special tokens dropped
    assert vocab.decode_tf(tf.constant([[6, 7, 1, 9], [3, 4, 0, 0]])).numpy().tolist() == \
        [b"god created", b"in the"]
    assert vocab.encode_tf(tf.constant(["god was", "light"])).to_list() == [[6, 12], [11]]
