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
