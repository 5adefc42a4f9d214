"""One sentencepiece model, two tokenizers: xlt's seqio vocabulary and the Hugging Face tokenizer built from
the same ``.model`` file give identical ids on multilingual text.

The models are trained here, on real Bible verses (English, Russian, Korean; ``xlt.data.sources.bible``, read
at run time), and checked on held-out verses of the same languages plus edge cases (NFKC-normalised
full-width forms, accents, repeated whitespace, characters outside the vocabulary).

* T5 / mT5 style (unigram, ``nmt_nfkc`` normalisation, whitespace collapsed, pad=0 eos=1 unk=2): HF
  ``T5Tokenizer`` (``extra_ids=0``) matches seqio id for id, special-token eos included. Caveat: decoding
  an unknown id prints ``<unk>`` in HF and `` ⁇ `` in sentencepiece/seqio.
* Llama style (BPE, byte fallback, identity normalisation, digits split, unk=0 bos=1 eos=2): HF
  ``LlamaTokenizer`` matches, except on text that starts with whitespace, where HF merges sentencepiece's
  dummy-prefix ``▁`` with the leading space (pinned below, so a change in transformers is noticed).
* Not covered by either HF class: a unigram model with byte fallback and identity normalisation (the
  style tools/train_tokenizer.py writes): ``T5Tokenizer`` hard-codes ``byte_fallback=False`` and a whitespace
  pre-splitter, so bytes become ``<unk>`` and repeated spaces collapse.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pytest

spm = pytest.importorskip("sentencepiece")
transformers = pytest.importorskip("transformers")

from xlt.data.sources import bible  # noqa: E402
from xlt.data.tasks import vocabulary  # noqa: E402

LANGUAGES = ("en", "ru", "ko")
EDGE_CASES = [
    "ｆｕｌｌｗｉｄｔｈ １２３ digits 4567",  # NFKC folds the full-width forms (T5 style)
    "café naïve — «quotes»",
    "mixed 한국어 and русский 😀 emoji",  # the emoji is outside the vocabulary
    "double  spaces\tand a tab, then\na newline",
    "",
]


def _verses(split: str, per_language: int) -> list[str]:
    return [v.text for lang in LANGUAGES for v in bible.verses(lang, split)[:per_language]]


def _train(path: Path, **options) -> Path:
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(_verses("train", 200)), model_writer=model,
                                   vocab_size=1000, character_coverage=0.995, num_threads=1, minloglevel=2,
                                   **options)
    path.write_bytes(model.getvalue())
    return path


@pytest.fixture(scope="module")
def texts() -> list[str]:
    held_out = _verses("validation", 25)
    assert {any("\uac00" <= c <= "\ud7a3" for c in t) for t in held_out} == {True, False}  # Hangul and not
    return held_out + EDGE_CASES


@pytest.fixture(scope="module")
def t5_style(tmp_path_factory) -> tuple:
    root = tmp_path_factory.mktemp("t5_spm")
    path = _train(root / "spm.model", model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                  normalization_rule_name="nmt_nfkc")
    (root / "hf").mkdir()
    shutil.copy(path, root / "hf" / "spiece.model")
    return vocabulary(kind="sentencepiece", path=str(path)), transformers.T5Tokenizer.from_pretrained(
        root / "hf", extra_ids=0)


@pytest.fixture(scope="module")
def llama_style(tmp_path_factory) -> tuple:
    root = tmp_path_factory.mktemp("llama_spm")
    path = _train(root / "spm.model", model_type="bpe", unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
                  normalization_rule_name="identity", byte_fallback=True, split_digits=True,
                  remove_extra_whitespaces=False, allow_whitespace_only_pieces=True)
    (root / "hf").mkdir()
    shutil.copy(path, root / "hf" / "tokenizer.model")
    return vocabulary(kind="sentencepiece", path=str(path)), transformers.LlamaTokenizer.from_pretrained(
        root / "hf", add_bos_token=False, add_eos_token=False)


def _mismatches(vocab, tokenizer, texts: list[str]) -> list[tuple[str, list[int], list[int]]]:
    out = []
    for text in texts:
        ours, theirs = list(vocab.encode(text)), tokenizer(text, add_special_tokens=False)["input_ids"]
        if ours != theirs:
            out.append((text, ours, theirs))
    return out


def test_t5_tokenizer_matches_seqio(t5_style, texts):
    vocab, tokenizer = t5_style
    assert len(tokenizer) == vocab.vocab_size == 1000
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    assert (vocab.pad_id, vocab.eos_id, vocab.unk_id) == (0, 1, 2)
    assert _mismatches(vocab, tokenizer, texts) == []
    unknown = [t for t in texts if vocab.unk_id in vocab.encode(t)]
    assert unknown, "the edge cases should exercise unknown characters"
    for text in texts:  # HF appends eos like seqio's append_eos; decoding agrees except for unk rendering
        ids = list(vocab.encode(text))
        assert tokenizer(text)["input_ids"] == ids + [vocab.eos_id]
        assert tokenizer.decode(ids) == vocab.decode(ids).replace(" ⁇ ", "<unk>")
    assert vocab.decode(vocab.encode("ｆｕｌｌｗｉｄｔｈ")) == "fullwidth"  # NFKC, same on both sides


def test_llama_tokenizer_matches_seqio(llama_style, texts):
    vocab, tokenizer = llama_style
    assert len(tokenizer) == vocab.vocab_size == 1000
    assert (tokenizer.unk_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1, 2)
    assert _mismatches(vocab, tokenizer, texts) == []
    byte_pieces = [i for t in texts for i in vocab.encode(t) if vocab.tokenizer.IsByte(i)]
    assert byte_pieces, "the edge cases should exercise byte fallback"
    for text in texts:  # identity normalisation + byte fallback: both sides give the text back exactly
        ids = list(vocab.encode(text))
        assert vocab.decode(ids) == text == tokenizer.decode(ids)


def test_llama_tokenizer_leading_whitespace_caveat(llama_style):
    """HF merges sentencepiece's dummy prefix with a leading space: one '▁' piece fewer than seqio."""
    vocab, tokenizer = llama_style
    ((text, ours, theirs),) = _mismatches(vocab, tokenizer, [" leading space"])
    assert ours[1:] == theirs and vocab.tokenizer.IdToPiece(ours[0]) == "▁"


# --- Imported tokenizers: the record, the ids and the scoring conventions ---------------------------------------
#
# A tiny random model saved by transformers next to a tokenizer built here (on Bible verses read at run time),
# imported with xlt.interop.hf.import_hf: the checkpoint carries the tokenizer file and its conventions, xlt's
# ids equal the Hugging Face tokenizer's on held-out text in every demo language, and ``probe.score`` of a text
# equals the log-likelihood transformers gives for the same ids (from the recorded start token: Llama's BOS).

torch = pytest.importorskip("torch")

from xlt import checkpoints, probe  # noqa: E402
from xlt.errors import CheckpointError  # noqa: E402
from xlt.data import vocab as vocab_lib  # noqa: E402
from xlt.interop import hf  # noqa: E402

DEMO_LANGUAGES = ("en", "ko", "ja", "zh", "de", "fr")
SCORE_TOL = dict(rtol=1e-5, atol=1e-4)  # summed fp32 log-likelihoods of whole verses (hundreds of nats)


def _demo_verses(split: str, per_language: int) -> list[str]:
    return [v.text for lang in DEMO_LANGUAGES for v in bible.verses(lang, split)[:per_language]]


@pytest.fixture(scope="module")
def demo_texts() -> list[str]:
    texts = _demo_verses("validation", 4)
    scripts = {"ko": ("\uac00", "\ud7a3"), "ja": ("\u3040", "\u30ff"), "zh": ("\u4e00", "\u9fff")}
    for lang, (lo, hi) in scripts.items():  # the scripts really are there
        assert any(lo <= c <= hi for t in texts for c in t), lang
    return texts + ["double  spaces\tand a tab", "mixed 한국어 und Deutsch 😀"]


def _byte_level_bpe(specials: list[str], bos_template: str | None):
    """A byte-level BPE (GPT-2 / BLOOM / Llama-3 style) on train verses of the demo languages; special tokens
    after the learned ones (as in Llama 3); with ``bos_template`` a post-processor that puts it before a text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=500, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(_demo_verses("train", 120), trainer)
    tok.add_special_tokens(specials)
    steps = [processors.ByteLevel(trim_offsets=False)]
    if bos_template:
        steps.append(processors.TemplateProcessing(single=f"{bos_template} $A", pair=f"{bos_template} $A $B",
                                                   special_tokens=[(bos_template, tok.token_to_id(bos_template))]))
    tok.post_processor = processors.Sequence(steps)
    return tok


def _save_fast(tok, directory: Path, **specials: str) -> Path:
    """Wrap as transformers' fast tokenizer and save_pretrained (tokenizer.json + tokenizer_config.json)."""
    directory.mkdir(parents=True, exist_ok=True)
    raw = directory.parent / f"{directory.name}_raw.json"
    tok.save(str(raw))
    transformers.PreTrainedTokenizerFast(tokenizer_file=str(raw), **specials).save_pretrained(directory)
    return directory


def _llama(vocab: int, bos: int, eos: int):
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, head_dim=8, initializer_range=0.1,
                                   bos_token_id=bos, eos_token_id=eos)
    return transformers.LlamaForCausalLM(cfg).eval()


def _gpt2(vocab: int, bos: int):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=vocab, n_positions=256, n_embd=32, n_layer=2, n_head=4,
                                  initializer_range=0.1, bos_token_id=bos, eos_token_id=bos)
    return transformers.GPT2LMHeadModel(cfg).eval()


def _hf_loglik(model, ids: list[int]) -> float:
    """transformers' log-likelihood of ids[1:] given the ids before them (float64 sum)."""
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double()
    logp = torch.log_softmax(logits, -1)
    return float(sum(logp[i, ids[i + 1]] for i in range(len(ids) - 1)))


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> dict[str, tuple]:
    """name -> (HF model, HF tokenizer, xlt checkpoint directory) for three tokenizer styles."""
    root = tmp_path_factory.mktemp("imported")
    out = {}

    # Llama-3 style: byte-level BPE in tokenizer.json, BOS added by the post-processor.
    tok = _byte_level_bpe(["<|begin_of_text|>", "<|end_of_text|>"], "<|begin_of_text|>")
    d = _save_fast(tok, root / "llama3", bos_token="<|begin_of_text|>", eos_token="<|end_of_text|>")
    model = _llama(tok.get_vocab_size(), tok.token_to_id("<|begin_of_text|>"), tok.token_to_id("<|end_of_text|>"))
    model.save_pretrained(d)
    out["llama3"] = model, transformers.AutoTokenizer.from_pretrained(d), hf.import_hf(d, root / "llama3_xlt")

    # GPT-2 style: byte-level BPE, <|endoftext|> is BOS, EOS and UNK, nothing added around a text.
    tok = _byte_level_bpe(["<|endoftext|>"], None)
    d = _save_fast(tok, root / "gpt2", bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                   unk_token="<|endoftext|>")
    model = _gpt2(tok.get_vocab_size(), tok.token_to_id("<|endoftext|>"))
    model.save_pretrained(d)
    out["gpt2"] = model, transformers.AutoTokenizer.from_pretrained(d), hf.import_hf(d, root / "gpt2_xlt")

    # Llama-2 style: a sentencepiece tokenizer.model (BPE, byte fallback), BOS added per tokenizer_config.json.
    d = root / "llama2"
    d.mkdir()
    spm_bytes = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(_demo_verses("train", 120)), model_writer=spm_bytes,
                                   vocab_size=2000, character_coverage=0.995, num_threads=1, minloglevel=2,
                                   model_type="bpe", unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
                                   normalization_rule_name="identity", byte_fallback=True, split_digits=True,
                                   remove_extra_whitespaces=False, allow_whitespace_only_pieces=True)
    (d / "tokenizer.model").write_bytes(spm_bytes.getvalue())
    (d / "tokenizer_config.json").write_text(
        '{"add_bos_token": true, "add_eos_token": false, "bos_token": "<s>", "eos_token": "</s>", '
        '"unk_token": "<unk>", "tokenizer_class": "LlamaTokenizer"}')
    model = _llama(2000, 1, 2)
    model.save_pretrained(d)
    out["llama2_spm"] = model, transformers.LlamaTokenizer.from_pretrained(d), hf.import_hf(d, root / "llama2_xlt")
    return out


EXPECTED = {  # kind, file in the checkpoint, add_bos, add_eos, decoder start = the tokenizer's BOS
    "llama3": ("tokenizers", "hf/tokenizer.json", True, False),
    "gpt2": ("tokenizers", "hf/tokenizer.json", False, False),  # scored from <|endoftext|>, as lm-eval does
    "llama2_spm": ("sentencepiece", "hf/tokenizer.model", True, False),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_import_records_the_tokenizer_and_ids_match(imported, demo_texts, name):
    model, tokenizer, out = imported[name]
    meta = checkpoints.read_meta(out)
    record = meta.vocabulary
    kind, file, add_bos, add_eos = EXPECTED[name]
    assert (record.kind, record.file, record.conventions.add_bos, record.conventions.add_eos) == \
        (kind, file, add_bos, add_eos)
    assert (out / file).is_file() and vocab_lib.sha256_of(out / file) == record.sha256  # copied, digest recorded
    assert record.size == len(tokenizer)
    c = record.conventions
    assert (c.bos_id, c.eos_id) == (tokenizer.bos_token_id, tokenizer.eos_token_id)
    assert c.decoder_start_id == tokenizer.bos_token_id == model.config.bos_token_id
    vocab = checkpoints.vocabulary_of(meta)
    for text in demo_texts:
        ours = list(vocab.encode(text))
        assert ours == tokenizer(text, add_special_tokens=False)["input_ids"], text
        # The conventions say what transformers adds around a text.
        assert tokenizer(text)["input_ids"] == [c.bos_id] * c.add_bos + ours + [c.eos_id] * c.add_eos
        if name != "llama2_spm":  # (sentencepiece's decode of byte-fallback pieces differs in HF's Llama class)
            assert vocab.decode(ours) == tokenizer.decode(ours, skip_special_tokens=True)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_probe_score_equals_transformers_loglik(imported, demo_texts, name):
    """probe.score('', text) = transformers' log-likelihood of the text from the recorded start token: for
    Llama the BOS its tokenizer adds (the same ids transformers scores), for GPT-2 <|endoftext|>."""
    model, tokenizer, out = imported[name]
    p = probe.load(out)  # no vocabulary= needed: the checkpoint records it
    texts = [t for t in demo_texts if len(tokenizer(t)["input_ids"]) < 200]
    ours = p.score([""] * len(texts), texts)
    start = p.start_id
    theirs = []
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        theirs.append(_hf_loglik(model, ids if ids[:1] == [start] else [start] + ids))
    np.testing.assert_allclose(ours, theirs, **SCORE_TOL)
    # The start token matters: scoring from PAD id 0 (what the probe did before) gives other numbers.
    params, _ = checkpoints.load_params(out)
    from_zero = probe.Probe(p.cfg, params, p.vocab, start_id=0).score([""] * len(texts), texts)
    assert np.max(np.abs(from_zero - np.asarray(theirs))) > 0.1


def test_mt5_import_records_sentencepiece_and_scores_like_transformers(tmp_path, demo_texts):
    """An encoder-decoder: spiece.model as the sentencepiece kind, EOS appended to a text, decoding from
    decoder_start_token_id; probe.score(prompt, continuation) = transformers' log-likelihood of the labels."""
    d = tmp_path / "mt5"
    d.mkdir()
    spm_bytes = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(_demo_verses("train", 120)), model_writer=spm_bytes,
                                   vocab_size=2000, character_coverage=0.995, num_threads=1, minloglevel=2,
                                   model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
                                   normalization_rule_name="nmt_nfkc")
    (d / "spiece.model").write_bytes(spm_bytes.getvalue())
    (d / "tokenizer_config.json").write_text('{"extra_ids": 0, "eos_token": "</s>", "unk_token": "<unk>", '
                                             '"pad_token": "<pad>"}')
    torch.manual_seed(0)
    cfg = transformers.MT5Config(vocab_size=2000, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4,
                                 relative_attention_num_buckets=8, relative_attention_max_distance=20,
                                 dropout_rate=0.0, initializer_factor=3.0, decoder_start_token_id=0)
    model = transformers.MT5ForConditionalGeneration(cfg).eval()
    model.save_pretrained(d)
    tokenizer = transformers.T5Tokenizer.from_pretrained(d, extra_ids=0)
    out = hf.import_hf(d, tmp_path / "mt5_xlt")
    record = checkpoints.read_meta(out).vocabulary
    c = record.conventions
    assert (record.kind, record.file, record.size) == ("sentencepiece", "hf/spiece.model", len(tokenizer))
    assert (c.add_bos, c.add_eos, c.eos_id, c.pad_id, c.decoder_start_id) == (False, True, 1, 0, 0)
    p = probe.load(out)
    for text in demo_texts:
        assert list(p.vocab.encode(text)) == tokenizer(text, add_special_tokens=False)["input_ids"], text
    prompts, conts = demo_texts[:6], demo_texts[6:12]
    ours = p.score(prompts, conts)
    theirs = []
    for prompt, cont in zip(prompts, conts):
        labels = torch.tensor([tokenizer(cont, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([tokenizer(prompt)["input_ids"]]), labels=labels).logits[0]
        logp = torch.log_softmax(logits.double(), -1)
        theirs.append(float(logp.gather(-1, labels[0][:, None]).sum()))
    np.testing.assert_allclose(ours, theirs, **SCORE_TOL)


def test_a_tokenizer_larger_than_the_model_is_refused(imported, tmp_path):
    _, tokenizer, _ = imported["llama3"]
    d = tmp_path / "small"
    tokenizer.save_pretrained(d)
    _llama(100, 0, 1).save_pretrained(d)
    with pytest.raises(CheckpointError, match=r"has \d+ ids but the model only 100"):
        hf.import_hf(d, tmp_path / "out")
    assert not (tmp_path / "out").exists()
