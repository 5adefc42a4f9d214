"""Train a sentencepiece vocabulary on a language-balanced sample of the Bible's train split.

Usage:
  python tools/train_tokenizer.py --out=runs/tokenizers/unigram16k_t03 --languages=en,ko,ja,zh,de,fr \\
      --vocab_size=16000 --model_type=unigram --rate=temperature --alpha=0.3 --sample_chars=12000000 --seed=0

Sampling: per-language sizes are the train split's characters (``xlt.data.mixtures.bible_sizes``), turned
into weights by the same rate function a mixture uses (``proportional``, ``temperature(alpha)`` or
``unimax(budget, max_epochs)``; budget defaults to ``--sample_chars``), or ``--rate=fixed --weights=en:0.7,...``
(checked and normalised by ``mixtures.check_weights``, e.g. a curriculum stage's weights). Language ``l`` gets
``weight_l * sample_chars`` characters of whole verses, drawn without replacement in a seeded random order
(``random.Random(f"{seed}:{l}")``); a language whose quota exceeds its corpus is repeated (a new order per
pass), which is what upsampling in a mixture means. The last verse is kept only if that brings the count
closer to the quota, so each sampled share is within half a verse of its weight.

Model: ids are what ``seqio.SentencePieceVocabulary`` assumes (pad=0, eos=1, unk=2, no bos), byte fallback
(256 ``<0xNN>`` pieces, so nothing is ever unknown), digits split, and identity normalisation without
whitespace collapsing, so ``decode(encode(text)) == text`` for any text. Output (written to a temporary
folder, then renamed): ``spm.model``, ``spm.vocab`` (piece<TAB>score, sentencepiece's format),
``manifest.json`` and ``train.log`` (sentencepiece's log). The trainer sees the sample through an iterator
and returns the model in memory, so no path ends up inside the model; for a fixed seed and thread count
the model bytes are identical from run to run (``manifest.json`` records the sha256 of sample and model).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from xlt.cli import main as cli_main
from xlt.data import languages, mixtures
from xlt.errors import ConfigError, DataError

RATES = ("proportional", "temperature", "unimax", "fixed")
MODEL_TYPES = ("unigram", "bpe")
NORMALIZATIONS = ("identity", "nmt_nfkc", "nfkc")
SPECIAL_IDS = {"pad": 0, "eos": 1, "unk": 2, "bos": -1}  # seqio.SentencePieceVocabulary's layout
BYTE_PIECES = 256
MIN_VOCAB = len([i for i in SPECIAL_IDS.values() if i >= 0]) + BYTE_PIECES + 1
MODEL_FILE, VOCAB_FILE, MANIFEST_FILE, LOG_FILE = "spm.model", "spm.vocab", "manifest.json", "train.log"


class OneLineParser(argparse.ArgumentParser):
    """argparse that raises a one-line ConfigError instead of printing usage and exiting."""

    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(f"{self.prog}: {message}")


def parse_languages(value: str) -> list[str]:
    """'en,ko, ja' -> ['en', 'ko', 'ja']; unknown codes and duplicates are errors."""
    codes = [c.strip() for c in value.split(",") if c.strip()]
    if not codes:
        raise DataError("--languages is empty; give comma-separated codes such as en,ko,ja")
    for code in codes:
        languages.validate(code)
    dupes = sorted({c for c in codes if codes.count(c) > 1})
    if dupes:
        raise DataError(f"--languages lists {', '.join(dupes)} more than once")
    return codes


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="train_tokenizer.py", description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output folder (must not exist unless --overwrite)")
    p.add_argument("--languages", required=True, help="comma-separated language codes (Bible languages)")
    p.add_argument("--vocab_size", type=int, default=16000)
    p.add_argument("--model_type", choices=MODEL_TYPES, default="unigram")
    p.add_argument("--rate", choices=RATES, default="temperature")
    p.add_argument("--alpha", type=float, default=None, help="temperature exponent (default 0.3)")
    p.add_argument("--budget", type=float, default=None, help="unimax budget in characters (default --sample_chars)")
    p.add_argument("--max_epochs", type=float, default=None, help="unimax cap in epochs per language (default 1)")
    p.add_argument("--weights", default=None, help="--rate=fixed: lang:weight,... for every language (normalised)")
    p.add_argument("--sample_chars", type=int, default=12_000_000, help="characters of training text to draw")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--character_coverage", type=float, default=0.9995,
                   help="share of sample characters that must be single pieces (rest: byte fallback)")
    p.add_argument("--normalization", choices=NORMALIZATIONS, default="identity",
                   help="sentencepiece normalisation rule; only identity keeps decode(encode(x)) == x")
    p.add_argument("--max_sentencepiece_length", type=int, default=16)
    p.add_argument("--num_threads", type=int, default=2, help="trainer threads (recorded: part of the recipe)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    return p


def parse_weights(value: str, langs: Sequence[str]) -> dict[str, float]:
    """'en:0.7,ko:0.3' -> {'en': 0.7, 'ko': 0.3}, normalised by mixtures.check_weights; keys must be `langs`."""
    raw: dict[str, object] = {}
    for item in (x.strip() for x in value.split(",") if x.strip()):
        lang, sep, weight = item.partition(":")
        if not sep:
            raise ConfigError(f"--weights item {item!r} needs the form lang:weight")
        raw[languages.validate(lang.strip())] = weight.strip()
    if set(raw) != set(langs):
        missing, extra = sorted(set(langs) - set(raw)), sorted(set(raw) - set(langs))
        raise ConfigError(f"--weights must give one weight per --languages code (missing: {', '.join(missing) or '-'};"
                          f" not in --languages: {', '.join(extra) or '-'})")
    return {lang: w for lang, w in mixtures.check_weights(raw).items()}


def rate_weights(sizes: Mapping[str, float], rate: str, alpha: float | None = None, budget: float | None = None,
                 max_epochs: float | None = None, sample_chars: int = 0,
                 weights: str | None = None) -> tuple[dict[str, float], dict[str, object]]:
    """(weights, parameters) of one rate function of xlt.data.mixtures; parameters of other rates are errors."""
    given = {"alpha": alpha, "budget": budget, "max_epochs": max_epochs, "weights": weights}
    allowed = {"proportional": (), "temperature": ("alpha",), "unimax": ("budget", "max_epochs"),
               "fixed": ("weights",)}[rate]
    stray = [name for name, value in given.items() if value is not None and name not in allowed]
    if stray:
        raise ConfigError(f"--{stray[0]} does not apply to --rate={rate}")
    if rate == "proportional":
        return mixtures.proportional(sizes), {}
    if rate == "fixed":
        if weights is None:
            raise ConfigError("--rate=fixed needs --weights=lang:weight,...")
        fixed = parse_weights(weights, list(sizes))
        return fixed, {"weights": fixed}
    if rate == "temperature":
        a = 0.3 if alpha is None else alpha
        return mixtures.temperature(sizes, a), {"alpha": a}
    b = float(sample_chars) if budget is None else budget
    e = 1.0 if max_epochs is None else max_epochs
    return mixtures.unimax(sizes, b, e), {"budget": b, "max_epochs": e}


def sample_language(texts: Sequence[str], target_chars: float, seed: int, lang: str) -> list[str]:
    """Whole verses in a seeded random order (repeating passes) until the count is nearest `target_chars`."""
    if not texts:
        raise DataError(f"language {lang!r} has no training text to sample")
    rng = random.Random(f"{seed}:{lang}")
    out: list[str] = []
    chars = 0
    while True:
        order = list(range(len(texts)))
        rng.shuffle(order)
        for i in order:
            length = len(texts[i])
            if chars >= target_chars or (out and chars + length - target_chars > target_chars - chars):
                return out
            out.append(texts[i])
            chars += length


def draw_sample(langs: Sequence[str], weights: Mapping[str, float], sample_chars: int,
                seed: int) -> tuple[list[str], dict[str, dict[str, float]]]:
    """The shuffled training lines and per-language counts (chars, lines, share, epochs)."""
    from xlt.data.sources import bible

    lines: list[str] = []
    stats: dict[str, dict[str, float]] = {}
    for lang in langs:
        texts = [v.text for v in bible.verses(lang, "train")]
        picked = sample_language(texts, weights[lang] * sample_chars, seed, lang)
        chars = sum(len(t) for t in picked)
        stats[lang] = {"weight": weights[lang], "target_chars": weights[lang] * sample_chars, "chars": chars,
                       "lines": len(picked), "epochs": chars / sum(len(t) for t in texts)}
        lines.extend(picked)
    total = sum(s["chars"] for s in stats.values())
    for s in stats.values():
        s["share"] = s["chars"] / total
    random.Random(f"{seed}:mix").shuffle(lines)
    return lines, stats


@contextlib.contextmanager
def _stderr_to(path: Path) -> Iterator[None]:
    """Send file descriptor 2 (where sentencepiece's C++ code logs) to `path` for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def train_model(lines: Sequence[str], args: argparse.Namespace, log_path: Path) -> bytes:
    """Serialized sentencepiece ModelProto trained on `lines` with the seqio-compatible recipe."""
    import sentencepiece as spm

    spm.set_random_generator_seed(args.seed)
    buf = io.BytesIO()
    options = dict(
        model_type=args.model_type, vocab_size=args.vocab_size, character_coverage=args.character_coverage,
        byte_fallback=True, split_digits=True, pad_id=SPECIAL_IDS["pad"], eos_id=SPECIAL_IDS["eos"],
        unk_id=SPECIAL_IDS["unk"], bos_id=SPECIAL_IDS["bos"], normalization_rule_name=args.normalization,
        remove_extra_whitespaces=False, input_sentence_size=0, shuffle_input_sentence=False,
        max_sentence_length=1 << 16, max_sentencepiece_length=args.max_sentencepiece_length,
        num_threads=args.num_threads,
    )
    try:
        with _stderr_to(log_path):
            spm.SentencePieceTrainer.train(sentence_iterator=iter(lines), model_writer=buf, **options)
    except RuntimeError as e:
        raise DataError(_trainer_message(str(e), args)) from None
    return buf.getvalue()


def _trainer_message(raw: str, args: argparse.Namespace) -> str:
    """One line for a sentencepiece trainer failure, with the flag to change."""
    text = " ".join(raw.split())
    if "Vocabulary size is smaller than required_chars" in text:
        counts = text.split("required_chars.")[1].split(".")[0].strip()  # "500 vs 730"
        return (f"--vocab_size={args.vocab_size} is too small: the sample needs {counts.split('vs')[-1].strip()} "
                f"pieces for characters, specials and bytes at --character_coverage={args.character_coverage}; "
                "raise --vocab_size or lower --character_coverage (>= 0.98)")
    if "Vocabulary size too high" in text:
        return (f"--vocab_size={args.vocab_size} is too large for a sample of {args.sample_chars} characters; "
                "raise --sample_chars or lower --vocab_size")
    if "character_coverage" in text:
        return f"--character_coverage={args.character_coverage} must be in [0.98, 1] for sentencepiece"
    return f"sentencepiece training failed: {text[:300]}"


def vocab_lines(model: bytes) -> str:
    """spm.vocab text as sentencepiece writes it: 'piece<TAB>score' per id, score in C++'s default format."""
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model)
    return "".join(f"{p.piece}\t{p.score:g}\n" for p in proto.pieces)


def check_ids(model: bytes) -> dict[str, int]:
    """The trained model's special ids; DataError if they are not seqio's (pad 0, eos 1, unk 2, no bos)."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor()
    sp.LoadFromSerializedProto(model)
    got = {"pad": sp.pad_id(), "eos": sp.eos_id(), "unk": sp.unk_id(), "bos": sp.bos_id()}
    if got != SPECIAL_IDS:
        raise DataError(f"trained model has special ids {got}, seqio needs {SPECIAL_IDS}")
    got["pieces"] = sp.get_piece_size()
    got["byte_pieces"] = sum(sp.is_byte(i) for i in range(sp.get_piece_size()))
    return got


@contextlib.contextmanager
def staged_output(out: Path, overwrite: bool) -> Iterator[Path]:
    """A fresh temporary folder next to `out`, renamed to `out` when the block succeeds, removed otherwise.

    Parent folders created here are removed again on failure, so bad input leaves nothing behind.
    """
    if out.exists() and not overwrite:
        raise DataError(f"{out} already exists; pass --overwrite to replace it")
    if out.exists() and not out.is_dir():
        raise DataError(f"{out} exists and is not a folder")
    created = []
    parent = out.parent
    while not parent.exists():
        created.append(parent)
        parent = parent.parent
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes 0700; the renamed folder should look like any other
    try:
        yield tmp
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in created:  # innermost first
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run(argv: list[str]) -> Path:
    """Train and write one vocabulary; returns the output folder."""
    import sentencepiece as spm

    from xlt.data.sources import bible

    args = build_parser().parse_args(argv)
    langs = parse_languages(args.languages)
    for lang in langs:
        if lang not in bible.LANGUAGES:
            raise DataError(f"no Bible text for language {lang!r}; Bible languages: {', '.join(bible.LANGUAGES)}")
    if args.vocab_size < MIN_VOCAB:
        raise DataError(f"--vocab_size={args.vocab_size} is too small: {MIN_VOCAB - 1} ids go to pad/eos/unk and "
                        f"{BYTE_PIECES} byte pieces; use at least a few hundred more")
    if args.sample_chars <= 0:
        raise DataError(f"--sample_chars must be > 0, got {args.sample_chars}")
    if not 0.98 <= args.character_coverage <= 1.0:
        raise DataError(f"--character_coverage={args.character_coverage} must be in [0.98, 1] for sentencepiece")
    if args.num_threads < 1:
        raise DataError(f"--num_threads must be >= 1, got {args.num_threads}")
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise DataError(f"{out} already exists; pass --overwrite to replace it")

    sizes = mixtures.bible_sizes(langs, "train")
    weights, params = rate_weights(sizes, args.rate, args.alpha, args.budget, args.max_epochs, args.sample_chars,
                                   args.weights)
    lines, stats = draw_sample(langs, weights, args.sample_chars, args.seed)
    sample_hash = hashlib.sha256()
    for line in lines:
        sample_hash.update(line.encode("utf-8") + b"\n")

    with staged_output(out, args.overwrite) as tmp:
        start = time.perf_counter()
        model = train_model(lines, args, tmp / LOG_FILE)
        seconds = time.perf_counter() - start
        ids = check_ids(model)
        (tmp / MODEL_FILE).write_bytes(model)
        (tmp / VOCAB_FILE).write_text(vocab_lines(model), encoding="utf-8")
        manifest = {
            "languages": langs,
            "source": "bible train split (xlt.data.sources.bible, default versions)",
            "versions": {lang: bible.VERSIONS[lang] for lang in langs},
            "rate": {"name": args.rate, **params},
            "sizes_chars": sizes,
            "sample_chars": args.sample_chars,
            "per_language": stats,
            "sampled_chars": sum(s["chars"] for s in stats.values()),
            "sampled_lines": len(lines),
            "sample_sha256": sample_hash.hexdigest(),
            "vocab_size": args.vocab_size,
            "model_type": args.model_type,
            "seed": args.seed,
            "character_coverage": args.character_coverage,
            "normalization": args.normalization,
            "max_sentencepiece_length": args.max_sentencepiece_length,
            "num_threads": args.num_threads,
            "byte_fallback": True,
            "split_digits": True,
            "special_ids": {k: (None if v < 0 else v) for k, v in SPECIAL_IDS.items()},
            "pieces": ids["pieces"],
            "byte_pieces": ids["byte_pieces"],
            "sentencepiece_version": spm.__version__,
            "model_sha256": sha256(model),
            "train_seconds": round(seconds, 2),
            "argv": argv,
        }
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out}/{MODEL_FILE} ({ids['pieces']} pieces, {args.model_type}, {args.rate}) "
          f"from {manifest['sampled_chars']:,} characters in {seconds:.1f} s")
    return out


if __name__ == "__main__":
    sys.exit(cli_main(run))
