"""Where a benchmark's records come from: a Hugging Face hub name or a local copy laid out like the hub.

A *source* is either

* a local directory laid out as ``<config>/<split>.jsonl`` (or ``<config>/<split>.json`` holding JSON
  lines, ``<config>/<split>.parquet``, or the hub's own shard names ``<config>/<split>-00000-of-00001.parquet``),
  or a folder of shards ``<config>/<split>/0000.parquet`` (the hub's parquet conversion),
  where ``<config>`` is the hub's config name for the language (``kor_Hang`` for Belebele, ``jp`` for
  XWinograd, ``secondary_task`` for TyDiQA GoldP) and every record keeps the hub's field names, so an
  offline copy of a hub dataset (``datasets.load_dataset(...).to_json(...)`` or the hub's parquet files)
  is read as it is; or
* a hub name (``facebook/xnli``): read with ``datasets.load_dataset(name, config, split=split)`` (for a set
  that only has a loading script, which ``datasets`` no longer runs, from the hub's parquet conversion,
  revision ``refs/convert/parquet``). Hub access needs the network; without it the error names the benchmark and says how to point it at a local copy.

* ``"tfds"`` or ``"tfds:<data_dir>"``: TensorFlow Datasets, for the sets TFDS has (``xnli``,
  ``paws_x_wiki/<lang>``, ``tydi_qa/goldp``), prepared beforehand (``download=False``: nothing is fetched
  at evaluation time). The benchmark maps TFDS's records to the hub's field names (``from_tfds``), so the
  rest of the pipeline is the same.

A string that names an existing directory, or that looks like a path (starts with ``/``, ``.`` or ``~``),
is a local source; a URL (``gs://bucket/xnli``, any scheme ``xlt.paths`` reads) is a copy in a bucket with
the same layout, listed and read through ``xlt.paths`` (parquet objects are read whole into memory);
anything else is a hub name. Records are returned as plain dicts; the benchmark checks their schema
(``check_fields``), so a file in the wrong schema fails with one line naming the file, the record and the
missing field.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from xlt import paths
from xlt.errors import DataError

LOCAL_SUFFIXES: tuple[str, ...] = (".jsonl", ".json", ".parquet")
PARQUET_REVISION = "refs/convert/parquet"  # the hub's parquet conversion of a script-based dataset


TFDS_PREFIX = "tfds"


def is_tfds(source: str) -> bool:
    return source == TFDS_PREFIX or source.startswith(TFDS_PREFIX + ":")


def is_local(source: str) -> bool:
    """True when ``source`` is a local directory (existing, or written like a path)."""
    return Path(source).expanduser().is_dir() or source.startswith(("/", ".", "~"))


def _root(root: str | Path) -> Any:
    """A source directory as a path: ``pathlib.Path`` (``~`` expanded) or, for a URL, ``epath.Path``."""
    return paths.path(root) if paths.is_url(root) else Path(root).expanduser()


def local_files(root: str | Path, config: str, split: str) -> list[Any]:
    """The files of one (config, split) in a local copy or a bucket copy (``gs://…``: the same layout, listed
    through ``xlt.paths``), in name order (shards concatenate)."""
    folder = _root(root) / config
    found: list[Path] = []
    for suffix in LOCAL_SUFFIXES:
        exact = folder / f"{split}{suffix}"
        if exact.is_file():
            found.append(exact)
        found.extend(sorted(p for p in folder.glob(f"{split}-*{suffix}") if p.is_file()))
        found.extend(sorted(p for p in (folder / split).glob(f"*{suffix}") if p.is_file()))
    return found


def _read_json_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    with paths.open_file(path, "r") as f:
        text = f.read()
    stripped = text.lstrip()
    if stripped.startswith("["):  # a JSON array of records
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
        return [_record(r, path, i + 1) for i, r in enumerate(data)]
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(_record(json.loads(line), path, lineno))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{lineno}: not a JSON record ({e.msg})") from None
    return out


def _record(obj: Any, path: Path, where: int) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise DataError(f"{path}:{where}: a record must be a JSON object, got {type(obj).__name__}")
    return obj


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    try:
        if paths.is_url(path):  # parquet needs random access: read the object whole, then parse in memory
            import pyarrow as pa

            return pq.read_table(pa.BufferReader(path.read_bytes())).to_pylist()
        return pq.read_table(path).to_pylist()
    except Exception as e:  # pyarrow raises several types for a corrupt file
        raise DataError(f"{path}: cannot read parquet ({type(e).__name__}: {e})") from None


def read_local(root: str | Path, config: str, split: str, benchmark: str) -> list[dict[str, Any]]:
    """Every record of ``<root>/<config>/<split>.*``; DataError naming what is there when nothing matches."""
    base = _root(root)
    if not base.is_dir():
        raise DataError(f"{benchmark}: source directory {str(root)!r} does not exist")
    files = local_files(base, config, split)
    if not files:
        folder = base / config
        there = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else sorted(
            p.name for p in base.iterdir())
        where = folder if folder.is_dir() else base
        raise DataError(f"{benchmark}: no {config}/{split}.jsonl or .parquet under {str(base)!r} "
                        f"({where.name}/ holds: {', '.join(there[:12]) or 'nothing'})")
    records: list[dict[str, Any]] = []
    for path in files:
        records.extend(_read_parquet(path) if path.suffix == ".parquet" else _read_json_lines(path))
    return records


def read_hub(name: str, config: str | None, split: str, benchmark: str) -> list[dict[str, Any]]:
    """Records of a hub dataset through ``datasets.load_dataset``; DataError when it cannot be reached."""
    try:
        import datasets
    except ImportError:
        raise DataError(f"{benchmark}: reading hub dataset {name!r} needs the `datasets` package "
                        "(pip install datasets), or give a local directory as the source") from None
    try:
        try:
            ds = datasets.load_dataset(name, config, split=split)
        except RuntimeError as e:
            if "scripts are no longer supported" not in str(e):
                raise
            # A set published with a loading script (datasets >= 4 runs none): the hub's own parquet
            # conversion of it keeps the config and split names.
            ds = datasets.load_dataset(name, config, split=split, revision=PARQUET_REVISION)
    except Exception as e:  # network errors, missing configs and splits all end here
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{benchmark}: cannot load hub dataset {name!r} config {config!r} split {split!r} "
                        f"({first[:200]}); download it once and pass the directory "
                        f"(<config>/<split>.jsonl) as the source") from None
    return [dict(r) for r in ds]


def _plain(value: Any) -> Any:
    """A TFDS numpy record as plain Python: bytes -> str, numpy scalars and arrays -> numbers and lists."""
    import numpy as np

    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()] if value.dtype != object else [_plain(v) for v in value]
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_tfds(source: str, name: str, split: str, benchmark: str) -> list[dict[str, Any]]:
    """Records of a prepared TFDS dataset (``source`` "tfds" or "tfds:<data_dir>"), as plain Python."""
    import tensorflow_datasets as tfds

    data_dir = source.partition(":")[2] or None
    try:
        ds = tfds.load(name, split=split, data_dir=data_dir, download=False)
        return [_plain(r) for r in tfds.as_numpy(ds)]
    except Exception as e:  # not prepared, unknown name or split
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"{benchmark}: cannot read TFDS dataset {name!r} split {split!r} "
                        f"(data_dir={data_dir!r}): {first[:200]}") from None


@functools.lru_cache(maxsize=64)
def _cached(source: str, config: str, split: str, benchmark: str) -> tuple[dict[str, Any], ...]:
    if is_tfds(source):
        return tuple(read_tfds(source, config, split, benchmark))
    if paths.is_url(source) or is_local(source):
        return tuple(read_local(source, config, split, benchmark))
    return tuple(read_hub(source, config, split, benchmark))


def read(source: str, config: str, split: str, benchmark: str) -> list[dict[str, Any]]:
    """Records of one (config, split) from a local directory, a hub name or TFDS (``config`` is then the
    TFDS name), cached per process.

    Local files are re-read when the cache is cleared (``clear_cache``); tests that rewrite fixtures
    in place call it."""
    return [dict(r) for r in _cached(str(source), config, split, benchmark)]


def clear_cache() -> None:
    _cached.cache_clear()


def check_fields(records: Sequence[dict[str, Any]], fields: Iterable[str], benchmark: str, where: str) -> None:
    """DataError naming the first record that lacks one of ``fields`` (the hub's field names)."""
    wanted = tuple(fields)
    for i, record in enumerate(records):
        missing = [f for f in wanted if f not in record]
        if missing:
            raise DataError(f"{benchmark}: {where} record {i} lacks field(s) {', '.join(missing)} "
                            f"(it has {', '.join(sorted(record)) or 'none'}); expected the hub schema "
                            f"{', '.join(wanted)}")
