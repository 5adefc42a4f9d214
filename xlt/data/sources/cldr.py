"""Facts about countries and their names in many languages, from Unicode CLDR, read at run time.

Sources (nothing is copied into the repository):
  * `babel` (BSD; CLDR data under the Unicode licence): names of countries, languages, currencies, months
    and weekdays per locale; currencies in use per country; official languages per country.
  * `pycountry` (LGPL-2.1): the list of ISO 3166-1 alpha-2 country codes. Only these are "countries" here,
    so CLDR's numeric regions ("030"), groupings ("EU", "UN") and private-use codes ("ZZ", "XK") are left out.
  * `language_data` (MIT; ships CLDR's supplementalData.xml): region containment, since babel does not
    ship CLDR's territoryContainment.

Split rule: the same hash as the Bible (`xlt.data.splits.split_of`, namespace "cldr"), with larger held-out
fractions (`FRACTIONS`, 0.8/0.1/0.1: at 1% the 249 countries would leave 2 or 3 for evaluation), on the
code that a fact is about: the country code for territory names and country facts, the language code for language
names, the currency code for currency names. A country's facts in every language land in the same split.
Months and weekdays (12 and 7 items) are not split.

Currencies are pinned to those in use on `CURRENCY_DATE`, so answers do not change with the clock.
"""

from __future__ import annotations

import datetime
import functools
import importlib.resources
import pickle
import re
import xml.etree.ElementTree as ET
from typing import Any

from babel import Locale, localedata
from babel.core import get_global
from babel.languages import get_official_languages
from babel.numbers import get_territory_currencies

from xlt.data import languages
from xlt.data.splits import check_split, split_of
from xlt.errors import DataError

SPLIT_NAMESPACE = "cldr"
FRACTIONS: dict[str, float] = {"train": 0.8, "validation": 0.1, "test": 0.1}
CURRENCY_DATE = datetime.date(2025, 1, 1)
# CLDR has no "tl" locale; Filipino ("fil") is the CLDR locale for Tagalog speakers.
_CLDR_LOCALE = {"tl": "fil"}
_M49 = re.compile(r"\d{3}")
_OUTLYING_OCEANIA = "QO"  # CLDR's only non-numeric macro-region with countries (AQ) directly in it
_WORLD = "001"


def split_of_code(code: str) -> str:
    """Split ('train', 'validation', 'test') of a country, language or currency code."""
    return split_of(SPLIT_NAMESPACE, code, FRACTIONS)


def _in_split(codes: dict[str, str], split: str | None) -> dict[str, str]:
    check_split(split)
    return codes if split is None else {k: v for k, v in codes.items() if split_of_code(k) == split}


@functools.lru_cache(maxsize=None)
def _locale(lang: str) -> Locale:
    languages.validate(lang)
    return Locale.parse(_CLDR_LOCALE.get(lang, lang))


@functools.lru_cache(maxsize=1)
def countries() -> tuple[str, ...]:
    """ISO 3166-1 alpha-2 codes of all countries and territories, sorted."""
    import pycountry

    return tuple(sorted(c.alpha_2 for c in pycountry.countries))


def _country(region: str) -> str:
    if region not in countries():
        raise DataError(f"{region!r} is not an ISO 3166-1 alpha-2 country code (e.g. 'KR', 'DE')")
    return region


# ------------------------------------------------------------------------------------------------- names
@functools.lru_cache(maxsize=None)
def _territory_names(lang: str) -> dict[str, str]:
    names = _locale(lang).territories
    return {code: names[code] for code in countries() if code in names}


def territory_names(lang: str, split: str | None = None) -> dict[str, str]:
    """{country code: name of the country in `lang`} for ISO countries (in `split` if given)."""
    return dict(_in_split(_territory_names(lang), split))


def region_names(lang: str) -> dict[str, str]:
    """{region code: name in `lang`} for the regions of `region_containment` ("030" -> "Eastern Asia")."""
    names = _locale(lang).territories
    return {code: names[code] for code in region_containment() if code in names}


@functools.lru_cache(maxsize=None)
def _language_names(lang: str) -> dict[str, str]:
    names = _locale(lang).languages
    return {code: names[code] for code in sorted(names) if re.fullmatch(r"[a-z]{2}", code)}


def language_names(lang: str, split: str | None = None) -> dict[str, str]:
    """{ISO 639-1 code: name of that language in `lang`} (two-letter codes only, no script/region variants)."""
    return dict(_in_split(_language_names(lang), split))


@functools.lru_cache(maxsize=1)
def current_currencies() -> tuple[str, ...]:
    """ISO 4217 codes of the currencies in use (tender) in at least one country on CURRENCY_DATE."""
    return tuple(sorted({code for region in countries() for code in _currencies_of(region)}))


@functools.lru_cache(maxsize=None)
def _currency_names(lang: str) -> dict[str, str]:
    names = _locale(lang).currencies
    return {code: names[code] for code in current_currencies() if code in names}


def currency_names(lang: str, split: str | None = None) -> dict[str, str]:
    """{ISO 4217 code: currency name in `lang`} for currencies in use on CURRENCY_DATE."""
    return dict(_in_split(_currency_names(lang), split))


@functools.lru_cache(maxsize=None)
def _calendar(lang: str) -> Any:
    """The locale's CLDR data freshly unpickled from babel's files, aliases resolved on this copy only.

    babel 2.18 writes a resolved alias back into locale data that is shared through its cache, so after
    one locale's stand-alone month names are read, other locales that inherit the alias return the first
    locale's names (e.g. Korean months come back in Japanese). Reading a private copy avoids that.
    """
    chain = [str(_locale(lang))]
    while chain[-1] != "root":
        name = chain[-1]
        parent = get_global("parent_exceptions").get(name)
        chain.append(parent or ("root" if "_" not in name else name.rsplit("_", 1)[0]))
    data: dict[str, Any] = {}
    for name in reversed(chain):
        with open(localedata.resolve_locale_filename(name), "rb") as f:
            localedata.merge(data, pickle.load(f))
    return localedata.LocaleDataDict(data)


@functools.lru_cache(maxsize=None)
def month_names(lang: str) -> tuple[str, ...]:
    """The 12 month names in `lang` (stand-alone, wide: the form used when a month is named alone)."""
    months = _calendar(lang)["months"]["stand-alone"]["wide"]
    return tuple(months[i] for i in range(1, 13))


@functools.lru_cache(maxsize=None)
def day_names(lang: str) -> tuple[str, ...]:
    """The 7 weekday names in `lang`, Monday first (stand-alone, wide)."""
    days = _calendar(lang)["days"]["stand-alone"]["wide"]
    return tuple(days[i] for i in range(7))


# ------------------------------------------------------------------------------------------------- facts
@functools.lru_cache(maxsize=None)
def _currencies_of(region: str) -> tuple[str, ...]:
    return tuple(get_territory_currencies(region, start_date=CURRENCY_DATE, tender=True))


def territory_currency(region: str) -> str | None:
    """The main currency (ISO 4217) in use in a country on CURRENCY_DATE; None where CLDR lists none (AQ)."""
    found = _currencies_of(_country(region))
    return found[0] if found else None


def official_languages(region: str) -> tuple[str, ...]:
    """Official (or de facto official) languages of a country, most spoken first, as CLDR codes."""
    return tuple(get_official_languages(_country(region), de_facto=True))


def territory_facts(split: str | None = None) -> dict[str, dict[str, Any]]:
    """{country: {"currency", "official_languages", "regions"}} for every ISO country (in `split`)."""
    codes = {code: code for code in countries()}
    return {
        code: {
            "currency": territory_currency(code),
            "official_languages": official_languages(code),
            "regions": containing_regions(code),
        }
        for code in _in_split(codes, split)
    }


@functools.lru_cache(maxsize=1)
def _parents() -> dict[str, str]:
    """{code: the region directly containing it}: CLDR territoryContainment as a tree under the world.

    Only the main M49 hierarchy is kept: groups marked "grouping" or "deprecated" are skipped, and so are
    regions reachable only through them (202 Sub-Saharan Africa, 419 Latin America, 003 North America),
    which overlap the tree; EU, EZ and UN are groupings of countries, not places.
    """
    try:
        path = importlib.resources.files("language_data") / "data" / "supplementalData.xml"
        root = ET.fromstring(path.read_bytes())
    except (FileNotFoundError, ModuleNotFoundError):
        hint = "pip install --no-deps language-data==1.4.0"
        raise DataError(f"region containment needs the language-data package: {hint}") from None
    children: dict[str, list[str]] = {}
    for group in root.iterfind("territoryContainment/group"):
        region = group.get("type", "")
        if not group.get("status") and (_M49.fullmatch(region) or region == _OUTLYING_OCEANIA):
            children.setdefault(region, []).extend(group.get("contains", "").split())
    parents: dict[str, str] = {}
    queue = [_WORLD]
    while queue:
        region = queue.pop(0)
        for code in children.get(region, ()):
            if code not in parents:
                parents[code] = region
                queue.append(code)
    return parents


def containing_regions(region: str) -> tuple[str, ...]:
    """Regions that contain a country, innermost first, without the world: "KR" -> ("030", "142")."""
    out: list[str] = []
    code = _parents().get(_country(region))
    while code is not None and code != _WORLD:
        out.append(code)
        code = _parents().get(code)
    return tuple(out)


@functools.lru_cache(maxsize=1)
def region_containment() -> dict[str, tuple[str, ...]]:
    """{region: the ISO countries in it, at any depth} for CLDR's M49 regions (and QO), sorted.

    "142" (Asia) lists every Asian country; "030" (Eastern Asia) only those of East Asia.
    """
    members: dict[str, set[str]] = {}
    for code in countries():
        for region in containing_regions(code):
            members.setdefault(region, set()).add(code)
    return {region: tuple(sorted(members[region])) for region in sorted(members)}
