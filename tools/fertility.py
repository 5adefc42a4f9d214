"""Compare vocabularies by fertility on held-out, verse-aligned Bible text: tokens per character and per word,
byte-fallback and unknown rates, and each language's token count relative to English on the same verses.

Usage:
  python tools/fertility.py --vocab=byte --vocab=runs/tokenizers/unigram16k_t03 \\
      --vocab=prop=runs/tokenizers/unigram16k_prop/spm.model --languages=en,ko,ja,zh --split=validation \\
      --out=runs/tokenizers/fertility

``--vocab`` (repeatable, order kept): ``byte`` (seqio.ByteVocabulary), a folder holding ``spm.model``, or a
``.model`` file; ``NAME=...`` sets the label (default: the folder name, or the file's stem). Every vocabulary is
built by ``xlt.data.tasks.vocabulary`` and text is encoded with seqio's ``Vocabulary.encode``, so the counts
are the ids training sees (no eos).

Text: the verses of ``--split`` that are non-empty in every requested language (``bible.parallel``), so all
languages and vocabularies are measured on the same content and ``vs en`` (tokens / English tokens for the
same verses, Petrov et al. 2023's "tokenization premium") is a fair parity measure.

Units: characters are Unicode code points (Python ``len``). Words are whitespace-separated tokens for
languages written with spaces (Korean: eojeol, space-delimited phrases); for zh and ja (and th), which are
written without spaces, tokens per word is n/a and only tokens per character and ``vs en`` are reported.
Byte-fallback rate is the share of tokens that are ``<0xNN>`` byte pieces (n/a for the byte vocabulary, where
every token is a byte); unknown rate is the share of tokens equal to the vocabulary's unk id.

Output (written to a temporary folder, then renamed): ``fertility.md`` (one table, a column group per
vocabulary, then a parity summary), ``fertility.png`` (grouped bars) and ``fertility.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling train_tokenizer module
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # seqio imports TensorFlow; keep its start-up chatter quiet

from train_tokenizer import (  # noqa: E402
    MANIFEST_FILE, MODEL_FILE, OneLineParser, parse_languages, sha256, staged_output,
)

from xlt.cli import main as cli_main  # noqa: E402
from xlt.data import languages  # noqa: E402
from xlt.errors import DataError  # noqa: E402

REFERENCE = "en"


@dataclass
class VocabSpec:
    """One vocabulary to compare: its label, kind ('byte' or 'sentencepiece') and model path."""

    label: str
    kind: str
    path: Path | None = None


def parse_vocab(value: str) -> VocabSpec:
    """'byte', 'DIR', 'FILE.model' or 'NAME=<one of those>'."""
    label, sep, target = value.partition("=")
    if not sep:
        label, target = "", value
    target = target.strip()
    if not target:
        raise DataError(f"--vocab={value!r} names no vocabulary; use byte, a folder with {MODEL_FILE} or a .model")
    if target == "byte":
        return VocabSpec(label or "byte", "byte")
    path = Path(target)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise DataError(f"sentencepiece model not found: {path}")
    default = path.parent.name if path.name == MODEL_FILE else path.stem
    return VocabSpec(label or default, "sentencepiece", path)


def load_vocab(spec: VocabSpec):
    """The seqio vocabulary training would build for `spec` (xlt.data.tasks.vocabulary), model loaded."""
    from xlt.data import tasks

    from google.protobuf.message import DecodeError

    vocab = tasks.vocabulary(spec.kind, str(spec.path) if spec.path else None)
    if spec.kind == "sentencepiece":
        try:
            vocab.load_model()
        except (DecodeError, RuntimeError, OSError) as e:
            first = " ".join(str(e).split())[:200]
            raise DataError(f"{spec.path} is not a sentencepiece model: {first}") from None
    return vocab


def count(vocab, texts: Sequence[str], lang: str) -> dict[str, float | int | None]:
    """Token, byte-piece and unk counts of `texts` under `vocab`, with the per-unit rates."""
    import seqio

    is_spm = isinstance(vocab, seqio.SentencePieceVocabulary)
    tokens = byte_tokens = unk_tokens = 0
    for text in texts:
        ids = vocab.encode(text)
        tokens += len(ids)
        unk_tokens += sum(1 for i in ids if i == vocab.unk_id)
        if is_spm:
            byte_tokens += sum(1 for i in ids if vocab.tokenizer.IsByte(i))
    chars = sum(len(t) for t in texts)
    nbytes = sum(len(t.encode("utf-8")) for t in texts)
    words = sum(len(t.split()) for t in texts) if languages.uses_word_spaces(lang) else None
    if not chars or not tokens:
        raise DataError(f"language {lang!r} has no text to measure")
    return {
        "chars": chars, "bytes": nbytes, "words": words, "tokens": tokens,
        "byte_tokens": byte_tokens if is_spm else None, "unk_tokens": unk_tokens,
        "tokens_per_char": tokens / chars, "tokens_per_byte": tokens / nbytes,
        "tokens_per_word": tokens / words if words else None,
        "byte_fallback_rate": byte_tokens / tokens if is_spm else None, "unk_rate": unk_tokens / tokens,
    }


def measure(specs: Sequence[VocabSpec], langs: Sequence[str], split: str) -> dict:
    """All counts, parity summaries and vocabulary descriptions, as written to fertility.json."""
    from xlt.data.sources import bible

    for lang in langs:
        if lang not in bible.LANGUAGES:
            raise DataError(f"no Bible text for language {lang!r}; Bible languages: {', '.join(bible.LANGUAGES)}")
    rows = bible.parallel(langs, split)
    if not rows:
        raise DataError(f"no {split} verses are non-empty in all of {', '.join(langs)}")
    texts = {lang: [row[lang] for _, row in rows] for lang in langs}
    results: dict[str, dict[str, dict]] = {}
    described = []
    for spec in specs:
        vocab = load_vocab(spec)
        per_lang = {lang: count(vocab, texts[lang], lang) for lang in langs}
        if REFERENCE in per_lang:
            for stats in per_lang.values():
                stats["vs_en"] = stats["tokens"] / per_lang[REFERENCE]["tokens"]
        results[spec.label] = per_lang
        described.append(describe(spec, vocab))
    return {"split": split, "languages": list(langs), "verses": len(rows), "reference": REFERENCE,
            "vocabularies": described, "results": results,
            "parity": {label: parity(per_lang) for label, per_lang in results.items()}}


def describe(spec: VocabSpec, vocab) -> dict:
    """Label, kind, path, size, and for a trained model its sha256 and manifest summary."""
    out: dict[str, object] = {"label": spec.label, "kind": spec.kind, "vocab_size": vocab.vocab_size}
    if spec.path is not None:
        out["path"] = str(spec.path)
        out["model_sha256"] = sha256(spec.path.read_bytes())
        manifest = spec.path.parent / MANIFEST_FILE
        if manifest.is_file():
            m = json.loads(manifest.read_text(encoding="utf-8"))
            out["manifest"] = {k: m.get(k) for k in ("languages", "rate", "model_type", "vocab_size", "sample_chars",
                                                     "seed", "character_coverage", "train_seconds")}
    return out


def parity(per_lang: Mapping[str, Mapping]) -> dict:
    """Max/min tokens per character (and vs en) across languages, with the languages that reach them."""
    def spread(key: str) -> dict | None:
        values = {lang: s[key] for lang, s in per_lang.items() if s.get(key) is not None}
        if not values:
            return None
        hi, lo = max(values, key=values.get), min(values, key=values.get)
        return {"max": values[hi], "max_lang": hi, "min": values[lo], "min_lang": lo,
                "ratio": values[hi] / values[lo], "mean": sum(values.values()) / len(values)}

    return {"tokens_per_char": spread("tokens_per_char"), "vs_en": spread("vs_en"),
            "total_tokens": sum(s["tokens"] for s in per_lang.values())}


def _fmt(value: float | None, digits: int = 3, percent: bool = False) -> str:
    if value is None:
        return "n/a"
    return f"{100 * value:.{digits}f}" if percent else f"{value:.{digits}f}"


def markdown(report: Mapping) -> str:
    """fertility.md: the side-by-side table (one row per language) and the parity summary."""
    labels = list(report["results"])
    has_ref = report["reference"] in report["languages"]
    group = ["tok/char", "tok/word", "byte-fb %", "unk %"] + (["vs en"] if has_ref else [])
    head = ["lang", "chars"] + [f"{label} {col}" for label in labels for col in group]
    lines = [
        f"Fertility on the Bible {report['split']} split: {report['verses']} verses present in all "
        f"{len(report['languages'])} languages (the same content in every row).",
        "",
        "| " + " | ".join(head) + " |",
        "|---|" + "---:|" * (len(head) - 1),
    ]
    for lang in report["languages"]:
        first = report["results"][labels[0]][lang]
        cells = [lang, f"{first['chars']:,}"]
        for label in labels:
            s = report["results"][label][lang]
            cells += [_fmt(s["tokens_per_char"]), _fmt(s["tokens_per_word"], 2),
                      _fmt(s["byte_fallback_rate"], 2, percent=True), _fmt(s["unk_rate"], 2, percent=True)]
            if has_ref:
                cells.append(_fmt(s["vs_en"], 2))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Parity across languages (max / min; ratio = max ÷ min):", "",
              "| vocabulary | tokens | tok/char max | tok/char min | tok/char ratio"
              + (" | vs en max | vs en min |" if has_ref else " |"),
              "|---|---:|---:|---:|---:" + ("|---:|---:|" if has_ref else "|")]
    for label in labels:
        p = report["parity"][label]
        t = p["tokens_per_char"]
        cells = [label, f"{p['total_tokens']:,}", f"{t['max']:.3f} ({t['max_lang']})",
                 f"{t['min']:.3f} ({t['min_lang']})", f"{t['ratio']:.2f}"]
        if has_ref:
            v = p["vs_en"]
            cells += [f"{v['max']:.2f} ({v['max_lang']})", f"{v['min']:.2f} ({v['min_lang']})"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "tok/word is n/a for languages written without spaces (zh, ja); byte-fb is n/a for the byte",
              "vocabulary (every token is a byte). vs en = tokens for the same verses ÷ English tokens."]
    return "\n".join(lines) + "\n"


def plot(report: Mapping, path: Path) -> None:
    """Grouped bars per language: tokens per character and (with en) tokens relative to English."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = list(report["results"])
    langs = report["languages"]
    keys = [("tokens_per_char", "tokens per character")]
    if report["reference"] in langs:
        keys.append(("vs_en", "tokens relative to English (same verses)"))
    width_in = min(18.0, max(8.0, len(langs) * (0.3 + 0.15 * len(labels))))
    fig, axes = plt.subplots(len(keys), 1, figsize=(width_in, 3.6 * len(keys)), squeeze=False)
    x = np.arange(len(langs))
    width = 0.8 / len(labels)
    for ax, (key, title) in zip(axes[:, 0], keys):
        for i, label in enumerate(labels):
            values = [report["results"][label][lang][key] for lang in langs]
            ax.bar(x - 0.4 + width * (i + 0.5), values, width, label=label)
        ax.set_xticks(x, langs)
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
        if key == "vs_en":
            ax.axhline(1.0, color="black", linewidth=0.8)
    axes[0, 0].legend(fontsize="small", ncol=len(labels))
    fig.suptitle(f"Fertility on Bible {report['split']} ({report['verses']} parallel verses)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="fertility.py", description=__doc__.splitlines()[0])
    p.add_argument("--vocab", action="append", required=True,
                   help="byte, a folder with spm.model, or a .model file; NAME=... sets the label; repeatable")
    p.add_argument("--languages", default=None, help="comma-separated codes (default: all 22 Bible languages)")
    p.add_argument("--split", default="validation", choices=("train", "validation", "test"))
    p.add_argument("--out", required=True, help="output folder (must not exist unless --overwrite)")
    p.add_argument("--overwrite", action="store_true")
    return p


def run(argv: list[str]) -> Path:
    from xlt.data.sources import bible

    args = build_parser().parse_args(argv)
    specs = [parse_vocab(v) for v in args.vocab]
    seen: set[str] = set()
    for spec in specs:
        if spec.label in seen:
            raise DataError(f"two vocabularies are labelled {spec.label!r}; name them with --vocab=NAME=PATH")
        seen.add(spec.label)
    langs = parse_languages(args.languages) if args.languages is not None else list(bible.LANGUAGES)
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise DataError(f"{out} already exists; pass --overwrite to replace it")
    report = measure(specs, langs, args.split)
    with staged_output(out, args.overwrite) as tmp:
        (tmp / "fertility.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (tmp / "fertility.md").write_text(markdown(report), encoding="utf-8")
        plot(report, tmp / "fertility.png")
    print(f"wrote {out}/fertility.md, fertility.png, fertility.json "
          f"({len(specs)} vocabularies, {len(langs)} languages)")
    return out


if __name__ == "__main__":
    sys.exit(cli_main(run))
