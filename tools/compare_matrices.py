"""Does a second run reproduce the first? ``python tools/compare_matrices.py RUN1/matrix.json RUN2/matrix.json``

Two ``matrix.json`` files of the same experiment (``experiments.transfer_matrix``) run with other seeds: every
cell significant in either run, its gain and Holm-adjusted p in both, and whether the signs agree
(``experiments.matrix_report.replication``). Markdown on stdout; a missing or foreign file is one
``xlt: error:`` line and exit status 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from experiments import matrix_report as mr  # noqa: E402
from xlt import cli  # noqa: E402
from xlt.errors import ConfigError, DataError  # noqa: E402


def _load(path: str) -> dict:
    try:
        matrix = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"no matrix file {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is not a matrix.json: {e}") from None
    if not isinstance(matrix, dict) or "rows" not in matrix or "columns" not in matrix:
        raise DataError(f"{path} is not a matrix.json (no rows and columns)")
    return matrix


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise ConfigError("give two matrix.json files: RUN1/matrix.json RUN2/matrix.json")
    print(mr.replication_markdown(mr.replication(_load(argv[0]), _load(argv[1]))), end="")


if __name__ == "__main__":
    sys.exit(cli.main(main, usage=__doc__))
