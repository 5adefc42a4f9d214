"""The one rule that assigns a parallel unit (a Bible chapter, a country, a currency) to a split.

A unit's split is a pure function of its key: the first 8 bytes of sha256("<namespace>/<key>") read as a
big-endian integer and divided by 2**64 give u in [0, 1); with fractions (train, validation, test) =
(0.98, 0.01, 0.01), u < 0.98 is train, u < 0.99 validation, the rest test. A source with few units
(CLDR's 249 countries) passes larger held-out fractions. Every language's copy of a unit therefore lands
in the same split, the split never changes between runs or machines, and adding languages or versions
moves nothing.
"""

from __future__ import annotations

import hashlib

from xlt.errors import DataError

SPLITS: tuple[str, ...] = ("train", "validation", "test")
FRACTIONS: dict[str, float] = {"train": 0.98, "validation": 0.01, "test": 0.01}


def unit_fraction(namespace: str, key: str) -> float:
    """Stable pseudo-random number in [0, 1) for one unit key."""
    digest = hashlib.sha256(f"{namespace}/{key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_of(namespace: str, key: str, fractions: dict[str, float] = FRACTIONS) -> str:
    """Name of the split ('train', 'validation' or 'test') that the unit `key` belongs to."""
    u = unit_fraction(namespace, key)
    edge = 0.0
    for name in SPLITS:
        edge += fractions[name]
        if u < edge:
            return name
    return SPLITS[-1]


def check_split(split: str | None) -> str | None:
    """Return `split` if it names a split (None means all of them); raise DataError otherwise."""
    if split is not None and split not in SPLITS:
        raise DataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)} (or None for all)")
    return split
