"""Readers for public instruction-tuning and pretraining file formats.

These sets cannot be downloaded here, so the readers are tested on small files that the tests write. Each
reader streams one file (JSON lines, or a JSON array; gzip when the name ends in .gz) and yields plain
dicts: {"inputs", "targets", "lang"} for instruction data, {"text", "lang"} for pretraining text. A record
with a missing, non-string or empty required field raises DataError naming the file and line (or record
number in a JSON array), so a bad shard fails loudly instead of training on holes.

Formats:
  * MultiAlpaca (PolyLM): {"instruction", "input", "output"}; "input" may be empty. Language from the file
    name ("multialpaca_ko.json", "ko.jsonl") or the `lang` argument.
  * xP3 (BigScience): {"inputs", "targets"}; language from the `lang` argument.
  * Aya dataset (Cohere For AI): {"inputs", "targets", "language", "language_code", "annotation_type",
    "user_id"}; language from "language_code" (ISO 639-3, mapped by xlt.data.languages). Records in
    languages xlt does not support are skipped, since one Aya file mixes 65 languages.
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


def _records(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, record) for each JSON object of a JSON-lines file or a JSON array; `where` is "file:line"."""
    path = Path(path)
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
    """Aya dataset records in supported languages (only `langs` if given) as {"inputs", "targets", "lang"}."""
    wanted = {languages.validate(code) for code in langs} if langs is not None else None
    for where, record in _records(path):
        inputs, targets = _field(record, "inputs", where), _field(record, "targets", where)
        lang = languages.from_iso639_3(_field(record, "language_code", where))
        if lang is None or (wanted is not None and lang not in wanted):
            continue
        yield {"inputs": inputs, "targets": targets, "lang": lang}


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
