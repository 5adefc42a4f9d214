"""Print the per-language data tables of docs/DATA.md, measured from the installed packages.

Usage: python tools/data_stats.py > /tmp/stats.md   (then paste into docs/DATA.md)
"""

from __future__ import annotations

from xlt.data import languages
from xlt.data.sources import bible, cldr
from xlt.data.splits import SPLITS


def bible_table() -> str:
    """Verses and characters per language and split for the default Bible versions."""
    head = ["lang", "language", "version", "©"] + [f"verses {s}" for s in SPLITS] + [f"chars {s}" for s in SPLITS]
    rows = ["| " + " | ".join(head + ["dropped"]) + " |", "|" + "---|" * (len(head) + 1)]
    totals = {key: 0 for key in head[4:] + ["dropped"]}
    for lang in bible.LANGUAGES:
        s = bible.stats(lang)
        info = bible.VERSION_INFO[s["version"]]
        cells = [s["verses"][x] for x in SPLITS] + [s["chars"][x] for x in SPLITS] + [s["dropped"]]
        for key, value in zip(totals, cells):
            totals[key] += value
        title = f"`{info.id}` {info.title}"
        first = [lang, languages.name(lang), title, "yes" if info.copyrighted else ""]
        rows.append("| " + " | ".join(first + [f"{c:,}" for c in cells]) + " |")
    rows.append("| all | | | | " + " | ".join(f"{v:,}" for v in totals.values()) + " |")
    return "\n".join(rows)


def cldr_table() -> str:
    """Number of names per language, and per split for country names."""
    head = ["lang", "countries (train/val/test)", "languages", "currencies", "months", "weekdays"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for lang in languages.CODES:
        per_split = "/".join(str(len(cldr.territory_names(lang, s))) for s in SPLITS)
        cells = [
            lang,
            f"{len(cldr.territory_names(lang))} ({per_split})",
            str(len(cldr.language_names(lang))),
            str(len(cldr.currency_names(lang))),
            str(len(cldr.month_names(lang))),
            str(len(cldr.day_names(lang))),
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main() -> None:
    print("### Bible (default version per language)\n")
    print(bible_table())
    print("\n### CLDR names per language\n")
    print(cldr_table())
    facts = cldr.territory_facts()
    with_currency = sum(f["currency"] is not None for f in facts.values())
    print(
        f"\nCountry facts: {len(facts)} ISO countries, {with_currency} with a currency in use on "
        f"{cldr.CURRENCY_DATE}, {len(cldr.current_currencies())} distinct currencies, "
        f"{len(cldr.region_containment())} containing regions."
    )


if __name__ == "__main__":
    main()
