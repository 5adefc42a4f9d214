"""Small file helpers: atomic writes and JSON metadata reads.

Atomic writes: a reader (or a resumed run) sees the old file or the new one, never half of one. The content goes to a temporary file in the target's directory (same filesystem), is flushed to disk,
and is renamed over the target; on any failure the temporary file is removed and the target is untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from xlt.errors import CheckpointError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yields a temporary path next to ``path`` (same suffix, so writers that infer a format from it
    work) and renames it to ``path`` when the block completes; removes it if the block raises."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=f".tmp{target.suffix}")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def read_json_object(path: str | os.PathLike[str], what: str) -> dict[str, Any]:
    """A JSON object from ``path``; a missing, unreadable or non-object file is a one-line CheckpointError
    naming ``what`` (these files describe checkpoints: meta.json, HF config.json, weight indexes)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"corrupt {what} {path}: {str(e).splitlines()[0]}") from e
    if not isinstance(data, dict):
        raise CheckpointError(f"corrupt {what} {path}: not a JSON object")
    return data
