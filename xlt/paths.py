"""Paths that may be URLs: the one place xlt decides how a path string becomes something to open.

``MODEL_DIR``, a checkpoint to evaluate or probe, an evaluation's ``output_dir``, data files and a study's
results directory may be local paths or URLs such as ``gs://bucket/run``. URLs go through ``etils.epath``,
the filesystem layer orbax already uses for its own files (orbax writes array data through tensorstore, which
reads ``gs://`` natively), so a checkpoint and the files xlt keeps next to it take the same road. epath picks
its backend per call: ``tf.io.gfile`` when TensorFlow is installed (xlt's case), ``fsspec`` (``gcsfs`` for
``gs://``) when ``EPATH_USE_TF=false``; the bucket tests use the latter against a local GCS emulator
(``tests/test_bucket_paths.py``, docs/SCALE.md "Bucket paths").

Local paths stay ``pathlib.Path`` (so existing callers and tests see the types they always did); a URL is an
``epath.Path``, which has the same methods xlt uses (``/``, ``name``, ``parent``, ``exists``, ``is_dir``,
``is_file``, ``iterdir``, ``mkdir``, ``open``, ``read_text``, ``write_text``, ``unlink``). What differs between
the two, deleting a tree and copying a file across filesystems, is a function here.

Readers that only open local files (seqio and tokenizers vocabularies, safetensors, lm-eval's task index,
transformers) get a local copy of an object or of a URL "directory" (``local_copy``, ``local_tree``; once per
process with ``downloaded``), made in a per-process scratch directory removed when the process exits.

Object stores are not POSIX filesystems: there is no append and no atomic rename (a "rename" is a copy and
a delete, a directory rename is one per object). An object upload, though, is atomic: a reader sees the old
object or the new one. ``xlt.files`` builds its atomic writes on that.
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any, Union

from xlt.errors import ConfigError

PathLike = Union[str, "os.PathLike[str]"]

# The schemes etils.epath resolves (gpath._URI_SCHEMES); anything else with "://" is refused by name.
SCHEMES = ("gs", "s3", "az", "hf")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def scheme(path: PathLike) -> str | None:
    """The URL scheme of ``path`` (``'gs'``), or None for a local path."""
    m = _URL.match(os.fspath(path) if not isinstance(path, str) else path)
    return m.group(1).lower() if m else None


def is_url(path: PathLike) -> bool:
    return scheme(path) is not None


def path(p: PathLike) -> Any:
    """``p`` as a path object: ``pathlib.Path`` for a local path, ``epath.Path`` for a URL (an unsupported
    scheme is a ConfigError naming the supported ones). ``str()`` of either gives back the original form."""
    if isinstance(p, Path):
        return p
    s = scheme(p)
    if s is None:
        return Path(p)
    if s not in SCHEMES:
        raise ConfigError(f"unsupported URL scheme {s}:// in {p}; xlt reads local paths and "
                          f"{', '.join(f'{x}://' for x in SCHEMES)} (through etils.epath)")
    from etils import epath

    return epath.Path(os.fspath(p))


def absolute(p: PathLike) -> Any:
    """``path(p)``, made absolute when local (URLs are absolute already)."""
    q = path(p)
    return q.absolute() if isinstance(q, Path) else q


def exists(p: PathLike) -> bool:
    return path(p).exists()


def open_file(p: PathLike, mode: str = "r", encoding: str | None = "utf-8") -> IO[Any]:
    """Open a local file or an object. Text modes are UTF-8 (epath's own text mode is too); URLs support
    ``r``/``w`` (and ``rb``/``wb``), not append."""
    q = path(p)
    if isinstance(q, Path):
        return open(q, mode, encoding=None if "b" in mode else encoding)
    if "a" in mode or "+" in mode:
        raise ConfigError(f"cannot open {p} in mode {mode!r}: objects in a bucket cannot be appended to")
    return q.open(mode)


def rmtree(p: PathLike, missing_ok: bool = True) -> None:
    """Delete a directory tree (every object under a URL prefix)."""
    q = path(p)
    if not q.exists():
        if missing_ok:
            return
        raise FileNotFoundError(str(q))
    if isinstance(q, Path):
        shutil.rmtree(q)
    else:
        q.rmtree()


def copy_file(source: PathLike, target: PathLike) -> None:
    """Copy one file between any two of local paths and URLs (streamed; ``target`` replaced). Not atomic by
    itself: ``xlt.files.atomic_copy`` is."""
    with open_file(source, "rb") as src, open_file(target, "wb") as dst:
        shutil.copyfileobj(src, dst, length=16 << 20)


@functools.lru_cache(maxsize=None)
def _scratch_root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="xlt-url-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root


def scratch_dir() -> Path:
    """A new empty local directory for copies of objects, removed when the process exits (the copies are read
    for as long as the process runs: seqio opens a sentencepiece file lazily)."""
    return Path(tempfile.mkdtemp(dir=_scratch_root()))


def local_copy(p: PathLike, directory: PathLike | None = None) -> Path:
    """A local file with the content of ``p``: ``p`` itself when local, else a copy in ``directory`` (a new
    scratch directory by default) under the same name. For readers that only open local files (seqio's
    sentencepiece vocabulary opens its file through tf.io.gfile, tokenizers through the OS)."""
    q = path(p)
    if isinstance(q, Path):
        return q
    where = Path(directory) if directory is not None else scratch_dir()
    where.mkdir(parents=True, exist_ok=True)
    local = where / q.name
    copy_file(q, local)
    return local


def files_under(p: PathLike) -> list[tuple[str, Any]]:
    """Every file under the directory ``p``, recursively, as sorted ``(relative posix path, path)`` pairs (one
    pair ``(name, p)`` when ``p`` is a file). On an object store a "directory" is a name prefix: it is listed
    level by level with ``iterdir`` (epath refuses a recursive ``**`` glob on a bucket), so the same walk
    serves local copies and buckets."""
    q = path(p)
    if q.is_file():
        return [(q.name, q)]
    out, todo = [], [q]
    while todo:
        for f in todo.pop().iterdir():
            if f.is_dir():
                todo.append(f)
            elif f.is_file():
                out.append((f.relative_to(q).as_posix(), f))
    return sorted(out, key=lambda x: x[0])


def copy_tree(source: PathLike, target: PathLike) -> None:
    """Copy every file under ``source`` to the same relative place under ``target`` (any mix of local paths and
    URLs; ``target`` is created)."""
    dst = path(target)
    for rel, f in files_under(source):
        out = dst / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        copy_file(f, out)


def move_tree(source: PathLike, target: PathLike) -> None:
    """Move the directory ``source`` to ``target`` (which must not exist): a rename locally; on an object store,
    where a directory rename is one copy per object anyway, every object is copied and then the source deleted
    (not atomic: an interruption leaves both, never neither)."""
    src, dst = path(source), path(target)
    if isinstance(src, Path) and isinstance(dst, Path):
        src.rename(dst)
        return
    copy_tree(src, dst)
    rmtree(src)


def local_tree(p: PathLike, directory: PathLike | None = None) -> Path:
    """A local directory (or file) with the content of ``p``: ``p`` itself when local, else a copy of every file
    under the URL in ``directory`` (a new scratch directory by default), keeping the relative layout. For
    readers that walk a local copy (instruction-data providers): a bucket copy is downloaded once and read as
    a local one."""
    q = path(p)
    if isinstance(q, Path):
        return q
    where = Path(directory) if directory is not None else scratch_dir()
    if q.is_file():
        return local_copy(q, where)
    local = where / q.name
    copy_tree(q, local)
    return local


@functools.lru_cache(maxsize=None)
def downloaded(url: str) -> Path:
    """``local_tree(url)`` once per process: a bucket directory or file that a reader walks as a local one (an
    lm-eval task directory, a vocabulary and the tokenizer files beside it) is downloaded the first time it is
    asked for. An object changed later is seen by a new process, as a job started after the change would."""
    return local_tree(url)
