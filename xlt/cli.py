"""t5x-style command lines: ``--gin_file=F`` (repeatable), ``--gin.NAME=VALUE``, one-line errors, ``--help``.

Gin files are looked up as given, then under the repository's ``gin/`` folder and any
``--gin_search_path``. Every xlt entry point runs through ``main`` so that bad input — an unknown
file or binding, a bad mesh, a mismatched checkpoint — prints one line and exits with status 2, and
``--help`` prints the entry point's usage, gin macros and config fields (``xlt.configs.help_text``).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import gin

from xlt.errors import ConfigError, XltError

GIN_DIR = Path(__file__).resolve().parent.parent / "gin"
EXIT_BAD_INPUT = 2


def parse_gin_args(argv: Sequence[str]) -> tuple[list[str], list[str], list[str], list[str]]:
    """Split argv into (gin files, gin bindings, search path, other arguments)."""
    files, bindings, rest = [], [], []
    search = [str(GIN_DIR)]
    for arg in argv:
        if arg.startswith("--gin_file="):
            files.append(arg.split("=", 1)[1])
        elif arg.startswith("--gin_search_path="):
            search.append(arg.split("=", 1)[1])
        elif arg.startswith("--gin."):
            name, sep, value = arg[len("--gin."):].partition("=")
            if not sep:
                raise ConfigError(f"gin binding {arg!r} needs the form --gin.NAME=VALUE")
            bindings.append(f"{name} = {value}")
        else:
            rest.append(arg)
    return files, bindings, search, rest


def resolve_gin_file(name: str, search: Sequence[str]) -> str:
    for base in ["", *search]:
        path = Path(base) / name if base else Path(name)
        if path.is_file():
            return str(path)
    raise ConfigError(f"gin file not found: {name} (searched ., {', '.join(search)})")


class _QuietIncludeLookups(logging.Filter):
    """gin logs 'Path not found' for each search-path prefix it tries before the one that exists."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Path not found")


def _tolerant_file_readers() -> None:
    """gin looks an include up as a Python package path too (``runs/pretrain.gin`` → package ``runs``); a
    plain directory of that name in the working directory (e.g. ``runs/`` of MODEL_DIRs) is a namespace
    package without a file, and gin's check then raises instead of moving on to the search path. Make
    that check answer "not here"."""
    readers = gin.config._FILE_READERS  # noqa: SLF001 - gin has no public API to amend a reader
    for i, (reader, exists) in enumerate(readers):
        if getattr(exists, "_xlt_tolerant", False):
            continue

        def tolerant(path, _exists=exists):
            try:
                return _exists(path)
            except (ValueError, TypeError, ImportError):
                return False

        tolerant._xlt_tolerant = True
        readers[i] = (reader, tolerant)


def load_gin(files: Sequence[str], bindings: Sequence[str], search: Sequence[str] = (str(GIN_DIR),)) -> None:
    """Parse gin files and bindings, turning gin's errors into one-line ConfigErrors."""
    _tolerant_file_readers()
    gin.clear_config()  # one run's bindings never leak into the next (tests call entry points in-process)
    for path in search:
        if path not in gin.config._LOCATION_PREFIXES:  # noqa: SLF001 - gin has no public membership test
            gin.add_config_file_search_path(path)
    resolved = [resolve_gin_file(f, search) for f in files]
    logging.getLogger().addFilter(_QuietIncludeLookups())
    try:
        gin.parse_config_files_and_bindings(resolved, bindings, finalize_config=False)
    except (ValueError, KeyError, NameError, TypeError, IOError, SyntaxError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"bad gin config: {first}") from e


def gin_argv(argv: Sequence[str], example: str, *, require_file: bool = True) -> tuple[list[str], list[str], list[str]]:
    """An entry point's argv: ``--gin_file`` / ``--gin.NAME=VALUE`` / ``--gin_search_path`` only; anything
    else, or no gin file (no file and no binding with ``require_file=False``), is a ConfigError naming
    ``example``, a command line that would work. Returns (files, bindings, search path), not yet parsed."""
    files, bindings, search, rest = parse_gin_args(argv)
    if rest:
        raise ConfigError(f"unknown arguments {rest}; use --gin_file=F and --gin.NAME=VALUE (--help lists the settings)")
    if not files and (require_file or not bindings):
        raise ConfigError(f"no --gin_file given; e.g. {example}")
    return files, bindings, search


def load_gin_argv(argv: Sequence[str], example: str, *, require_file: bool = True) -> list[str]:
    """``gin_argv``, then parse it into gin. Returns the gin search path."""
    files, bindings, search = gin_argv(argv, example, require_file=require_file)
    load_gin(files, bindings, search)
    return search


def format_duration(seconds: float) -> str:
    """``h:mm:ss`` for progress lines (elapsed time, ETA)."""
    s = int(max(seconds, 0))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


HELP_FLAGS = ("-h", "--help", "-help")


def main(run: Callable[[list[str]], object], argv: Sequence[str] | None = None, *,
         usage: str | Callable[[], str] | None = None) -> int:
    """Run an entry point; XltError and gin errors become ``xlt: error: <one line>`` and exit 2. With ``-h`` /
    ``--help`` anywhere in argv, print ``usage`` (a text or a function making it) and exit 0 instead."""
    logging.basicConfig(level=os.environ.get("XLT_LOG_LEVEL", "WARNING"), format="%(levelname)s %(message)s")
    args = list(sys.argv[1:] if argv is None else argv)
    if usage is not None and any(a in HELP_FLAGS for a in args):
        print(usage() if callable(usage) else usage, end="")
        return 0
    try:
        run(args)
    except XltError as e:
        print(f"xlt: error: {str(e).splitlines()[0]}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0
