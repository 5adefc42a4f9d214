"""``python -m xlt.benchmarks``: the registered benchmarks with their hub names, languages, splits, metrics
and template languages, as a Markdown table."""

from __future__ import annotations

import sys

from xlt import benchmarks


def catalogue_markdown(include_builtin: bool = False) -> str:
    rows = ["| benchmark | kind | hub dataset | languages | splits (eval) | metrics | native templates |",
            "|---|---|---|---|---|---|---|"]
    for name in benchmarks.names(include_builtin):
        b = benchmarks.get(name)
        rows.append(f"| `{name}` | {b.kind} | `{b.hub_name}` | {', '.join(b.languages)} | "
                    f"{', '.join(b.splits)} ({b.default_split}) | {', '.join(b.metrics)} | "
                    f"{', '.join(b.template_languages)} |")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    print(catalogue_markdown(include_builtin="--builtin" in argv))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
