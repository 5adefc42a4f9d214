"""Small file helpers: atomic writes and JSON metadata reads, for local paths and URLs (``xlt.paths``).

Atomic writes: a reader (or a resumed run) sees the old file or the new one, never half of one.

* Local paths: the content goes to a temporary file in the target's directory (same filesystem), is flushed
  to disk, and is renamed over the target (``os.replace``, atomic on POSIX).
* URLs (``gs://…``): an object store has no atomic rename (a rename is a copy and a delete), but an object
  upload is atomic: GCS makes an object visible only when its upload completes, and an overwrite replaces
  the whole object at once (readers see the old generation or the new one, strongly consistent after the
  write returns). So the content is written to a local temporary file first, and only a complete file is
  uploaded in one write to the target. A failure before or during the upload leaves the previous object.

On any failure the temporary file is removed and the target is untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from xlt import paths
from xlt.errors import CheckpointError


@contextlib.contextmanager
def atomic_path(path: paths.PathLike) -> Iterator[Path]:
    """Yields a local temporary path (same suffix as ``path``, so writers that infer a format from it work)
    that becomes ``path`` when the block completes (renamed locally, uploaded whole to a URL); it is
    removed if the block raises."""
    target = paths.path(path)
    url = paths.is_url(target)
    if url:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f"xlt-{target.name}.", suffix=f".tmp{Path(target.name).suffix}")
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=f".tmp{target.suffix}")
    os.close(fd)
    try:
        yield Path(tmp)
        if url:
            paths.copy_file(tmp, target)  # one upload: the object appears (or is replaced) whole
        else:
            os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def atomic_write_bytes(path: paths.PathLike, data: bytes) -> Any:
    """Write ``data`` to ``path`` atomically; returns the path (``xlt.paths.path`` of it)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return paths.path(path)


def atomic_write_text(path: paths.PathLike, text: str) -> Any:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path (``xlt.paths.path`` of it)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_copy(source: paths.PathLike, path: paths.PathLike) -> Any:
    """Copy the file ``source`` to ``path`` atomically (either may be a URL)."""
    with atomic_path(path) as tmp:
        paths.copy_file(source, tmp)
    return paths.path(path)


def read_json_object(path: paths.PathLike, what: str) -> dict[str, Any]:
    """A JSON object from ``path``; a missing, unreadable or non-object file is a one-line CheckpointError
    naming ``what`` (these files describe checkpoints: meta.json, HF config.json, weight indexes)."""
    path = paths.path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"corrupt {what} {path}: {str(e).splitlines()[0]}") from e
    if not isinstance(data, dict):
        raise CheckpointError(f"corrupt {what} {path}: not a JSON object")
    return data
