"""Readers for public instruction-tuning and pretraining file formats.

These sets cannot be downloaded here, so the readers are tested on small files that the tests write. Each
reader streams one file (JSON lines, or a JSON array; gzip when the name ends in .gz; Apache Parquet when
the name ends in .parquet, the layout of the Hugging Face hub's parquet conversions) and yields plain
dicts: {"inputs", "targets", "lang"} for instruction data, {"text", "lang"} for pretraining text. A record
with a missing, non-string or empty required field raises DataError naming the file and line (or record
number in a JSON array), so a bad shard fails loudly instead of training on holes.

Formats:
  * MultiAlpaca (PolyLM): {"instruction", "input", "output"}; "input" may be empty. Language from the file
    name ("multialpaca_ko.json", "ko.jsonl") or the `lang` argument.
  * xP3 (BigScience): {"inputs", "targets"}; language from the `lang` argument.
  * Aya dataset (Cohere For AI): {"inputs", "targets", "language", "language_code", "annotation_type",
    "user_id"}; language from "language_code" (ISO 639-3, mapped by xlt.data.languages). Records in
    languages xlt does not support are skipped, since one Aya file mixes 65 languages. The Aya collection
    ({"id", "inputs", "targets", "dataset_name", "sub_dataset_name", "task_type", "template_id", "language",
    "script", "split"}) names its ISO 639-3 code "language" (some configs "language_code"): ``read_aya``
    takes either and keeps "dataset_name" / "task_type" / "template_id" when present.
  * P3 (BigScience, T0's training data): {"inputs_pretokenized", "targets_pretokenized", "answer_choices",
    "inputs", "targets"} per prompted config; ``read_p3`` yields the pretokenized (rendered) texts, stripped.
  * Any instruction file: ``read_instruction_file`` with a field mapping (inputs_field, targets_field and
    either lang_field or a fixed lang).
  * Pretraining: mC4-style JSON lines {"text", "timestamp", "url"} (only "text" is required), or plain
    text (.txt) where documents are separated by blank lines.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from xlt.data import languages
from xlt.errors import DataError

_LANG_IN_NAME = re.compile(r"(?:^|[_\-.])([a-z]{2})$")


def _open_binary(path: Path) -> BinaryIO:
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _lines(path: Path) -> Iterator[tuple[int, str, BinaryIO]]:
    """(line number, decoded line, open file) for each line; DataError naming the line if not UTF-8."""
    with _open_binary(path) as f:
        for line_no, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{line_no}: not UTF-8 text ({e.reason})") from None
            yield line_no, line, f


def _stem(path: Path) -> str:
    """File name without .gz and the format suffix: "multialpaca_ko.json.gz" -> "multialpaca_ko"."""
    name = path.name[:-3] if path.name.endswith(".gz") else path.name
    return name.rsplit(".", 1)[0] if "." in name else name


def file_stem(path: str | Path) -> str:
    """File name without .gz and the format suffix: "xp3_paws-x_en.jsonl.gz" -> "xp3_paws-x_en"."""
    return _stem(Path(path))


def _records(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, record) for each JSON object of a JSON-lines file or a JSON array, or each row of a Parquet
    file; `where` is "file:line" ("file: row n" for Parquet)."""
    path = Path(path)
    if path.name.endswith(".parquet"):
        yield from _parquet_records(path)
        return
    seen_content = False
    for line_no, line, f in _lines(path):
        if not line.strip():
            continue
        if not seen_content and line.lstrip().startswith("["):
            yield from _array_records(path, line.encode("utf-8") + f.read(), first_line=line_no)
            return
        seen_content = True
        where = f"{path}:{line_no}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
        yield _as_object(record, where)


def _parquet_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Rows of a Parquet file as dicts, read one record batch at a time."""
    import pyarrow.parquet as pq  # a dependency of `datasets`; only needed for .parquet files

    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        table = pq.ParquetFile(path)
    except Exception as e:  # noqa: BLE001  (pyarrow raises ArrowInvalid and OSError kinds)
        raise DataError(f"{path}: not a readable Parquet file ({type(e).__name__})") from None
    row = 0
    for batch in table.iter_batches(batch_size=4096):
        for record in batch.to_pylist():
            row += 1
            yield f"{path}: row {row}", record


def _array_records(path: Path, data: bytes, first_line: int) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        array = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start} of the array)") from None
    except json.JSONDecodeError as e:
        where = f"{path}:{first_line + e.lineno - 1}"
        raise DataError(f"{where}: not a valid JSON array ({e.msg} at column {e.colno})") from None
    for i, record in enumerate(array, 1):
        yield _as_object(record, f"{path}: record {i}")


def _as_object(record: Any, where: str) -> tuple[str, dict[str, Any]]:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    return where, record


def _field(record: dict[str, Any], key: str, where: str, *, required: bool = True) -> str:
    """A string field; DataError if it is missing or not a string, or empty when required."""
    if key not in record or record[key] is None:
        if required:
            raise DataError(f"{where}: missing field {key!r} (has: {', '.join(sorted(record)) or 'none'})")
        return ""
    value = record[key]
    if not isinstance(value, str):
        raise DataError(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise DataError(f"{where}: field {key!r} is empty")
    return value


def lang_from_filename(path: str | Path) -> str:
    """Language code at the end of a file name: "multialpaca_ko.json" -> "ko"; DataError if none."""
    match = _LANG_IN_NAME.search(_stem(Path(path)))
    if not match:
        raise DataError(f"{path}: cannot tell the language from the file name; pass lang=")
    try:
        return languages.validate(match.group(1))
    except DataError as e:
        raise DataError(f"{path}: {e}") from None


def read_multialpaca(path: str | Path, lang: str | None = None) -> Iterator[dict[str, str]]:
    """MultiAlpaca records as {"inputs": instruction [+ blank line + input], "targets": output, "lang"}."""
    lang = languages.validate(lang) if lang is not None else lang_from_filename(path)
    for where, record in _records(path):
        instruction = _field(record, "instruction", where).strip()
        extra = _field(record, "input", where, required=False).strip()
        output = _field(record, "output", where)
        inputs = f"{instruction}\n\n{extra}" if extra else instruction
        yield {"inputs": inputs, "targets": output, "lang": lang}


def read_xp3(path: str | Path, lang: str) -> Iterator[dict[str, str]]:
    """xP3 records as {"inputs", "targets", "lang"}; xP3 files carry no language field, so pass `lang`."""
    lang = languages.validate(lang)
    for where, record in _records(path):
        yield {"inputs": _field(record, "inputs", where), "targets": _field(record, "targets", where), "lang": lang}


def read_aya(path: str | Path, langs: Iterable[str] | None = None) -> Iterator[dict[str, str]]:
    """Aya dataset / collection records in supported languages (only `langs` if given) as {"inputs",
    "targets", "lang"}, plus "dataset_name", "task_type" and "template_id" (as text) where the record has them.

    The language is the ISO 639-3 "language_code" (Aya dataset) or "language" (Aya collection)."""
    wanted = {languages.validate(code) for code in langs} if langs is not None else None
    for where, record in _records(path):
        inputs, targets = _field(record, "inputs", where), _field(record, "targets", where)
        key = "language_code" if "language_code" in record or "language" not in record else "language"
        lang = languages.from_iso639_3(_field(record, key, where))
        if lang is None or (wanted is not None and lang not in wanted):
            continue
        out = {"inputs": inputs, "targets": targets, "lang": lang}
        for extra in ("dataset_name", "task_type", "template_id"):
            if record.get(extra) is not None:
                out[extra] = str(record[extra])
        yield out


def _tfrecord_examples(path: Path, keys: tuple[str, ...]) -> Iterator[tuple[str, dict[str, Any]]]:
    """String features ``keys`` of each tf.train.Example in a TFRecord file (P3's original layout)."""
    import tensorflow as tf  # only for TFRecord files

    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        for i, raw in enumerate(tf.data.TFRecordDataset(str(path)).as_numpy_iterator(), 1):
            features = tf.train.Example.FromString(raw).features.feature
            yield f"{path}: record {i}", {k: features[k].bytes_list.value[0].decode("utf-8")
                                           for k in keys if k in features and features[k].bytes_list.value}
    except tf.errors.OpError as e:
        raise DataError(f"{path}: not a readable TFRecord file ({type(e).__name__})") from None


def read_p3(path: str | Path) -> Iterator[dict[str, str]]:
    """P3 records as {"inputs", "targets", "lang": "en"}: the rendered ``inputs_pretokenized`` and
    ``targets_pretokenized`` (T5-tokenized ``inputs``/``targets`` ids are ignored), whitespace-stripped.
    Reads the hub's Parquet / JSON files and P3's original ``<split>.tfrecord-0000k-of-0000n`` files."""
    path = Path(path)
    keys = ("inputs_pretokenized", "targets_pretokenized")
    records = _tfrecord_examples(path, keys) if ".tfrecord" in path.name else _records(path)
    for where, record in records:
        inputs = _field(record, "inputs_pretokenized", where).strip()
        targets = _field(record, "targets_pretokenized", where).strip()
        if not targets:
            raise DataError(f"{where}: field 'targets_pretokenized' is empty")
        yield {"inputs": inputs, "targets": targets, "lang": "en"}


def read_instruction_file(path: str | Path, inputs_field: str = "inputs", targets_field: str = "targets",
                          lang_field: str | None = None, lang: str | None = None,
                          lang_codes: str = "iso639_1") -> Iterator[dict[str, str]]:
    """Any instruction file (JSON lines, JSON array or Parquet) as {"inputs", "targets", "lang"}.

    The language is a fixed ``lang`` or each record's ``lang_field`` (exactly one of the two), read as
    ISO 639-1 codes (``lang_codes='iso639_1'``: a code xlt does not know is an error) or ISO 639-3
    (``'iso639_3'``: records in languages xlt does not support are skipped, as for Aya)."""
    if (lang is None) == (lang_field is None):
        raise DataError(f"{path}: give exactly one of lang= (a fixed language) and lang_field=")
    if lang_codes not in ("iso639_1", "iso639_3"):
        raise DataError(f"lang_codes={lang_codes!r}; choose 'iso639_1' or 'iso639_3'")
    fixed = languages.validate(lang) if lang is not None else None
    for where, record in _records(path):
        inputs, targets = _field(record, inputs_field, where), _field(record, targets_field, where)
        code = fixed
        if code is None:
            raw = _field(record, lang_field, where)
            if lang_codes == "iso639_3":
                code = languages.from_iso639_3(raw)
                if code is None:
                    continue
            else:
                try:
                    code = languages.validate(raw)
                except DataError as e:
                    raise DataError(f"{where}: {e}") from None
        yield {"inputs": inputs, "targets": targets, "lang": code}


def read_pretraining(path: str | Path, lang: str) -> Iterator[dict[str, str]]:
    """Documents as {"text", "lang"}: mC4-style JSON lines ("text" required) or blank-line separated .txt."""
    lang = languages.validate(lang)
    path = Path(path)
    if path.name.removesuffix(".gz").endswith(".txt"):
        yield from ({"text": doc, "lang": lang} for doc in _paragraph_docs(path))
        return
    for where, record in _records(path):
        yield {"text": _field(record, "text", where), "lang": lang}


def _paragraph_docs(path: Path) -> Iterator[str]:
    """Documents of a plain-text file: runs of non-blank lines, joined with newlines."""
    block: list[str] = []
    for _, line, _ in _lines(path):
        if line.strip():
            block.append(line.rstrip("\r\n"))
        elif block:
            yield "\n".join(block)
            block = []
    if block:
        yield "\n".join(block)
