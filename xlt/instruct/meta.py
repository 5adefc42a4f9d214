"""Meta-datasets for instruction tuning: task clusters built from the packaged Bible and CLDR, per language.

A *task* (``TASKS``) turns source units (a verse key, a country code, a calendar item) into *items*: the
content of one example with its gold answer, independent of any prompt. ``examples`` then renders items
with the templates of ``xlt.instruct.templates`` under a template mode (native / fixed / cross), so the
native and cross-lingual-template versions of a dataset hold exactly the same items. Tasks are grouped
in clusters as in T0 (Sanh et al., 2022) and KORANI, and whole clusters are held out for zero-shot
evaluation.

Clusters (every task lists its kind and metric names in ``TASKS``):

  translation          verse_translation (pivot -> L), country_name_translation (pivot -> L)
  factual_qa           country_currency, country_official_language (CLDR facts), country_continent (choice)
  language_id          verse_language_name (verse in one of 22 languages -> its name in L),
                       country_name_language (choice: which language is this country name written in)
  paraphrase           verse_translation_pair, country_name_pair (yes/no across L and the pivot),
                       verse_version_pair (yes/no: two Bible versions of one language; en, fr, es, de, it, tl)
  multiple_choice      verse_translation_choice, country_name_choice
  sentence_completion  verse_ending_choice (the verse's missing second half), next_verse_choice
  calendar             month_after, weekday_after (CLDR month/weekday names, offsets 1-11 and 1-13)

Conventions:

* ``content_lang`` L is the language of the example's content and of its answer (xP3's convention: a
  cross-lingual template changes the instruction only). Tasks that need a second language take the
  *pivot* (``MetaConfig.pivot``, English; ``pivot_alt``, French, for English content), so an English-only
  training mixture contains no Korean text and vice versa. Language identification necessarily shows
  text in many languages; it is held out by default.
* Splits come from the data layer: a verse's split is its chapter's (``bible.split_of_key``), a country's
  is ``cldr.split_of_code``, a calendar item "month/3+2" is hashed like a CLDR code (namespace
  ``instruct-calendar``). Every unit an item touches (gold and distractors) is in the item's split, and
  each example lists them in ``units``, so no test verse or country ever appears in training data.
* Determinism: candidates are ordered by sha256(seed, task, unit key), which does not depend on the
  language, so capped subsets of different languages hold the same verses/countries where the data allows
  (parallel evaluation sets). Per-item randomness (distractors, pair order) comes from an RNG seeded by
  sha256(seed, task, lang, split, key). Nothing uses Python's salted ``hash``.
* Choice tasks: negatives are same-language distractors from the same split (nearby verses of the same
  chapter, countries of the same continent first); the gold appears exactly once; answer positions are
  balanced by giving each block of N consecutive items a random permutation of the N positions (yes/no
  tasks alternate positive and negative the same way). With one template per item, templates rotate per
  block, so no template is tied to an answer position.
* Size caps: ``MetaConfig.max_train`` (default 10,000 items per task and language) and ``max_eval``
  (default none); the first k items under a cap are the same whatever the cap (prefix property).

Default held-out clusters (``DEFAULT_HELD_OUT``), chosen the way T0 chose its held-out tasks: skills whose
format is not seen in training and that test transfer rather than memorisation. ``paraphrase`` (a pairwise
meaning judgement, T0's NLI/paraphrase analogue), ``sentence_completion`` (T0 held out COPA/HellaSwag/
StoryCloze) and ``language_id`` (the one cluster that mixes many languages into every example, so holding it
out keeps a monolingual training mixture monolingual). Training clusters are translation, factual_qa,
multiple_choice and calendar: generation and choice formats both stay in training.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from xlt.data import languages
from xlt.data.sources import bible, cldr
from xlt.data.splits import SPLITS, split_of
from xlt.errors import ConfigError, DataError
from xlt.instruct import templates as tpl

CHOICE = "choice"
GENERATION = "generation"
CALENDAR_NAMESPACE = "instruct-calendar"
CONTINENTS: tuple[str, ...] = ("002", "009", "019", "142", "150")  # Africa, Oceania, Americas, Asia, Europe


@dataclass(frozen=True)
class TaskSpec:
    """One task: its cluster, answer kind, metric names, data source and a one-line description."""

    name: str
    cluster: str
    kind: str
    metrics: tuple[str, ...]
    source: str
    description: str


_SPECS: tuple[TaskSpec, ...] = (
    TaskSpec("verse_translation", "translation", GENERATION, ("chrf", "exact_match"), "bible",
             "translate a verse from the pivot language into the content language"),
    TaskSpec("country_name_translation", "translation", GENERATION, ("exact_match", "chrf"), "cldr",
             "translate a country name from the pivot language into the content language"),
    TaskSpec("country_currency", "factual_qa", GENERATION, ("exact_match", "chrf"), "cldr",
             "name the currency in use in a country (CLDR, pinned to 2025-01-01)"),
    TaskSpec("country_official_language", "factual_qa", GENERATION, ("exact_match", "chrf"), "cldr",
             "name an official language of a country (every official language is a reference)"),
    TaskSpec("country_continent", "factual_qa", CHOICE, ("accuracy",), "cldr",
             "choose the continent a country lies in"),
    TaskSpec("verse_language_name", "language_id", GENERATION, ("exact_match",), "bible",
             "name the language a verse is written in (verses from every Bible language)"),
    TaskSpec("country_name_language", "language_id", CHOICE, ("accuracy",), "cldr",
             "choose the language a country's name is written in"),
    TaskSpec("verse_translation_pair", "paraphrase", CHOICE, ("accuracy",), "bible",
             "yes/no: is the pivot verse a translation of the content-language verse (negatives: nearby verses)"),
    TaskSpec("verse_version_pair", "paraphrase", CHOICE, ("accuracy",), "bible",
             "yes/no: are two Bible versions' sentences the same verse (languages with several versions)"),
    TaskSpec("country_name_pair", "paraphrase", CHOICE, ("accuracy",), "cldr",
             "yes/no: do two names in two languages denote the same country"),
    TaskSpec("verse_translation_choice", "multiple_choice", CHOICE, ("accuracy",), "bible",
             "choose the content-language translation of a pivot verse (distractors from the same chapter)"),
    TaskSpec("country_name_choice", "multiple_choice", CHOICE, ("accuracy",), "cldr",
             "choose the content-language name of a country named in the pivot language"),
    TaskSpec("verse_ending_choice", "sentence_completion", CHOICE, ("accuracy",), "bible",
             "choose the missing second half of a verse"),
    TaskSpec("next_verse_choice", "sentence_completion", CHOICE, ("accuracy",), "bible",
             "choose the verse that follows a verse"),
    TaskSpec("month_after", "calendar", GENERATION, ("exact_match",), "calendar",
             "name the month n months after a month"),
    TaskSpec("weekday_after", "calendar", GENERATION, ("exact_match",), "calendar",
             "name the weekday n days after a weekday"),
)
TASKS: dict[str, TaskSpec] = {spec.name: spec for spec in _SPECS}
CLUSTERS: dict[str, tuple[str, ...]] = {}
for _spec in _SPECS:
    CLUSTERS.setdefault(_spec.cluster, ())
    CLUSTERS[_spec.cluster] += (_spec.name,)
DEFAULT_HELD_OUT: tuple[str, ...] = ("paraphrase", "sentence_completion", "language_id")


def task_spec(task: str) -> TaskSpec:
    """The spec of ``task``; ConfigError listing the tasks for an unknown name."""
    if task not in TASKS:
        raise ConfigError(f"unknown instruction task {task!r}; tasks: {', '.join(TASKS)}")
    return TASKS[task]


def check_clusters(clusters: Iterable[str]) -> tuple[str, ...]:
    """Validate cluster names (ConfigError for an unknown one); returns them as a tuple."""
    if isinstance(clusters, str):
        raise ConfigError(f"clusters must be a list of names, got the string {clusters!r}")
    out = tuple(clusters)
    for cluster in out:
        if cluster not in CLUSTERS:
            raise ConfigError(f"unknown task cluster {cluster!r}; clusters: {', '.join(CLUSTERS)}")
    return out


def training_tasks(held_out: Iterable[str] = DEFAULT_HELD_OUT) -> tuple[str, ...]:
    """Tasks of the clusters that are not held out (zero-shot setting: held-out clusters never train)."""
    held = set(check_clusters(held_out))
    return tuple(t for t, spec in TASKS.items() if spec.cluster not in held)


# ------------------------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class MetaConfig:
    """What an experiment sweeps besides the template mode: seed, options per question, pivot, caps."""

    seed: int = 0
    num_options: int = 4
    pivot: str = "en"
    pivot_alt: str = "fr"
    langid_languages: tuple[str, ...] = bible.LANGUAGES
    max_train: int | None = 10_000
    max_eval: int | None = None

    def __post_init__(self):
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ConfigError(f"seed must be an int, got {self.seed!r}")
        if isinstance(self.num_options, bool) or not isinstance(self.num_options, int) \
                or not 2 <= self.num_options <= 10:
            raise ConfigError(f"num_options must be an int in [2, 10], got {self.num_options!r}")
        for name in ("pivot", "pivot_alt"):
            code = getattr(self, name)
            if code not in bible.LANGUAGES:
                languages.validate(code)
                raise ConfigError(f"{name}={code!r} has no Bible text; choose one of {', '.join(bible.LANGUAGES)}")
        if self.pivot == self.pivot_alt:
            raise ConfigError(f"pivot and pivot_alt must differ, both are {self.pivot!r}")
        pool = tuple(self.langid_languages)
        object.__setattr__(self, "langid_languages", pool)
        if len(pool) < 2 or len(set(pool)) != len(pool):
            raise ConfigError(f"langid_languages needs >= 2 distinct languages, got {list(pool)}")
        for code in pool:
            if code not in bible.LANGUAGES:
                languages.validate(code)
                raise ConfigError(f"langid language {code!r} has no Bible text")
        for name in ("max_train", "max_eval"):
            cap = getattr(self, name)
            if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
                raise ConfigError(f"{name} must be a positive int or None, got {cap!r}")

    def cap(self, split: str) -> int | None:
        return self.max_train if split == "train" else self.max_eval

    def pivot_for(self, lang: str) -> str:
        """The other language of translation/pair tasks for content language ``lang``."""
        return self.pivot_alt if lang == self.pivot else self.pivot


DEFAULT_CONFIG = MetaConfig()


# ------------------------------------------------------------------------------------------------- items
@dataclass(frozen=True)
class Item:
    """One example's content before templating: slot values (language slots hold codes) and gold.

    Generation: ``target`` and ``references`` (all acceptable answers). Choice: ``options`` and
    ``answer``. Yes/no: ``label`` (True = the template's first choice); options come from the template.
    """

    uid: str
    units: tuple[str, ...]
    slots: Mapping[str, Any]
    target: str = ""
    references: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    answer: int = -1
    label: bool | None = None


def _digest(*parts: object) -> bytes:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()


def _rank(*parts: object) -> int:
    return int.from_bytes(_digest(*parts)[:8], "big")


def _rng(*parts: object) -> random.Random:
    return random.Random(_rank(*parts))


def _verse_table(lang: str, split: str, version: str | None = None) -> dict[str, str]:
    """{key: text} of one version in one split (one cached dict per version, whatever the call's form)."""
    return _verse_table_cached(lang, split, bible.resolve_version(lang, version))


@functools.lru_cache(maxsize=None)
def _verse_table_cached(lang: str, split: str, version: str) -> dict[str, str]:
    return {v.key: v.text for v in bible.verses(lang, split, version)}


@functools.lru_cache(maxsize=None)
def _verse_keys_of(lang: str, split: str) -> tuple[str, ...]:
    return tuple(_verse_table(lang, split))


@functools.lru_cache(maxsize=None)
def _chapters(lang: str, split: str) -> dict[str, tuple[str, ...]]:
    """{"BB.CCC": keys of that chapter in key order} for one language's default version."""
    out: dict[str, list[str]] = {}
    for key in _verse_table(lang, split):
        out.setdefault(key[:6], []).append(key)
    return {chapter: tuple(keys) for chapter, keys in out.items()}


@functools.lru_cache(maxsize=None)
def _names(lang: str) -> dict[str, str]:
    return cldr.territory_names(lang)


@functools.lru_cache(maxsize=None)
def _language_names(lang: str) -> dict[str, str]:
    return cldr.language_names(lang)


@functools.lru_cache(maxsize=1)
def _facts() -> dict[str, dict[str, Any]]:
    return cldr.territory_facts(None)


@functools.lru_cache(maxsize=None)
def _countries(split: str) -> tuple[str, ...]:
    return tuple(sorted(code for code in cldr.countries() if cldr.split_of_code(code) == split))


def _continent(code: str) -> str | None:
    regions = _facts()[code]["regions"]
    return regions[-1] if regions and regions[-1] in CONTINENTS else None


def _calendar_split(key: str) -> str:
    return split_of(CALENDAR_NAMESPACE, key, cldr.FRACTIONS)


def unit_split(unit: str) -> str:
    """Split of a unit named in an example's ``units`` ("bible:01.001.001", "cldr:KR", "calendar:month/3+2")."""
    source, _, key = unit.partition(":")
    if source == "bible":
        return bible.split_of_key(key)
    if source == "cldr":
        return cldr.split_of_code(key)
    if source == "calendar":
        return _calendar_split(key)
    raise DataError(f"unknown unit {unit!r}")


class _Ctx:
    """What a builder needs for one (task, lang, split, config): data accessors and seeded randomness."""

    def __init__(self, task: str, lang: str, split: str, config: MetaConfig):
        self.task, self.lang, self.split, self.config = task, lang, split, config
        self.pivot = config.pivot_for(lang)
        self.n = config.num_options

    def rng(self, key: str) -> random.Random:
        return _rng(self.config.seed, self.task, self.lang, self.split, key)

    def verses(self, lang: str | None = None, version: str | None = None) -> dict[str, str]:
        return _verse_table(lang or self.lang, self.split, version)

    def parallel_keys(self) -> list[str]:
        mine, other = self.verses(), self.verses(self.pivot)
        return [k for k in mine if k in other]


def _arrange(gold: str, distractors: Sequence[str], position: int, rng: random.Random) -> tuple[tuple[str, ...], int]:
    """Options with ``gold`` at ``position`` among the shuffled distractors."""
    others = list(distractors)
    rng.shuffle(others)
    others.insert(position, gold)
    return tuple(others), position


def _pick(rng: random.Random, pool: Sequence[str], k: int, accept: Callable[[str], bool],
          tries: int = 200) -> list[str]:
    """Up to ``k`` distinct elements of ``pool`` that ``accept``: random probes, then a scan if needed."""
    out: list[str] = []
    if not pool:
        return out
    for _ in range(tries):
        if len(out) == k:
            return out
        x = pool[rng.randrange(len(pool))]
        if x not in out and accept(x):
            out.append(x)
    if len(out) < k:
        start = rng.randrange(len(pool))
        for i in range(len(pool)):
            x = pool[(start + i) % len(pool)]
            if len(out) == k:
                break
            if x not in out and accept(x):
                out.append(x)
    return out


def _neighbours(key: str, chapter: Sequence[str], rng: random.Random, k: int) -> list[str]:
    """Up to k other keys of the same chapter, nearest first (ties broken at random)."""
    if key not in chapter:
        return []
    i = chapter.index(key)
    others = [(abs(j - i), rng.random(), c) for j, c in enumerate(chapter) if c != key]
    return [c for _, _, c in sorted(others)[:k]]


def _distinct_texts(rng: random.Random, gold: str, texts: Mapping[str, str], preferred: Sequence[str],
                    pool: Sequence[str], k: int, exclude: set[str], keep: Callable[[str], bool] | None = None
                    ) -> tuple[list[str], list[str]] | None:
    """k keys (preferred first, then random from pool) whose texts differ from gold and each other."""
    keys: list[str] = []
    seen = {gold}

    def accept(key: str) -> bool:
        return (key not in exclude and key in texts and texts[key] not in seen
                and (keep is None or keep(key)))

    for key in preferred:
        if len(keys) == k:
            break
        if accept(key):
            keys.append(key)
            seen.add(texts[key])
    while len(keys) < k:
        found = _pick(rng, pool, 1, lambda x: accept(x) and x not in keys)
        if not found:
            return None
        keys.append(found[0])
        seen.add(texts[found[0]])
    return keys, [texts[key] for key in keys]


# --- translation ---------------------------------------------------------------------------------------
def _verse_translation(ctx: _Ctx, key: str, rng: random.Random, position: int) -> Item | None:
    src, tgt = ctx.verses(ctx.pivot)[key], ctx.verses()[key]
    return Item(key, (f"bible:{key}",), {"text": src, "src_lang": ctx.pivot, "tgt_lang": ctx.lang},
                target=tgt, references=(tgt,))


def _named_countries(ctx: _Ctx) -> list[str]:
    mine, other = _names(ctx.lang), _names(ctx.pivot)
    return [c for c in _countries(ctx.split) if c in mine and c in other]


def _country_name_translation(ctx: _Ctx, code: str, rng: random.Random, position: int) -> Item | None:
    src, tgt = _names(ctx.pivot)[code], _names(ctx.lang)[code]
    return Item(code, (f"cldr:{code}",), {"name": src, "src_lang": ctx.pivot, "tgt_lang": ctx.lang},
                target=tgt, references=(tgt,))


# --- factual QA ----------------------------------------------------------------------------------------
def _country_currency(ctx: _Ctx, code: str, rng: random.Random, position: int) -> Item | None:
    currency = _facts()[code]["currency"]
    names = cldr.currency_names(ctx.lang)
    country = _names(ctx.lang).get(code)
    if not currency or currency not in names or not country:
        return None
    return Item(code, (f"cldr:{code}",), {"country": country}, target=names[currency],
                references=(names[currency],))


def _country_official_language(ctx: _Ctx, code: str, rng: random.Random, position: int) -> Item | None:
    country = _names(ctx.lang).get(code)
    names = _language_names(ctx.lang)
    official = [names[c.split("_")[0]] for c in _facts()[code]["official_languages"] if c.split("_")[0] in names]
    official = list(dict.fromkeys(official))
    if not country or not official:
        return None
    return Item(code, (f"cldr:{code}",), {"country": country}, target=official[0], references=tuple(official))


def _country_continent(ctx: _Ctx, code: str, rng: random.Random, position: int) -> Item | None:
    country, continent = _names(ctx.lang).get(code), _continent(code)
    regions = cldr.region_names(ctx.lang)
    if not country or continent is None or any(c not in regions for c in CONTINENTS):
        return None
    others = [regions[c] for c in CONTINENTS if c != continent]
    options, answer = _arrange(regions[continent], rng.sample(others, _positions(ctx) - 1), position, rng)
    return Item(code, (f"cldr:{code}",), {"country": country, "options": options}, options=options, answer=answer)


# --- language identification ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _union_keys(pool: tuple[str, ...], split: str) -> tuple[str, ...]:
    keys: set[str] = set()
    for lang in pool:
        keys.update(_verse_table(lang, split))
    return tuple(sorted(keys))


def _pool_language(ctx: _Ctx, key: str) -> str:
    pool = ctx.config.langid_languages
    return pool[_rank(ctx.config.seed, ctx.task, "language", key) % len(pool)]


def _verse_language_name(ctx: _Ctx, key: str, rng: random.Random, position: int) -> Item | None:
    lang = _pool_language(ctx, key)
    text = ctx.verses(lang).get(key)
    name = _language_names(ctx.lang).get(lang)
    if text is None or name is None:
        return None
    return Item(f"{key}/{lang}", (f"bible:{key}",), {"text": text}, target=name, references=(name,))


def _country_name_language(ctx: _Ctx, code: str, rng: random.Random, position: int) -> Item | None:
    lang = _pool_language(ctx, code)
    shown = _names(lang).get(code)
    names = _language_names(ctx.lang)
    if shown is None or lang not in names:
        return None
    pool = [y for y in ctx.config.langid_languages
            if y != lang and y in names and _names(y).get(code) not in (None, shown)]
    if len(pool) < _positions(ctx) - 1:
        return None
    wrong = [names[y] for y in rng.sample(pool, _positions(ctx) - 1)]
    options, answer = _arrange(names[lang], wrong, position, rng)
    return Item(f"{code}/{lang}", (f"cldr:{code}",), {"name": shown, "options": options},
                options=options, answer=answer)


# --- paraphrase (yes/no) -------------------------------------------------------------------------------
def _maybe_swap(rng: random.Random, first: tuple[str, str], second: tuple[str, str]) -> dict[str, str]:
    """Slots text1/lang1, text2/lang2 from two (text, lang) pairs in random order."""
    if rng.random() < 0.5:
        first, second = second, first
    return {"text1": first[0], "lang1": first[1], "text2": second[0], "lang2": second[1]}


def _negative_verse(ctx: _Ctx, key: str, table: Mapping[str, str], rng: random.Random) -> str | None:
    """A different verse from ``table``: a near neighbour in the same chapter, else any in the split."""
    chapter = _chapters(ctx.lang, ctx.split).get(key[:6], ())
    near = [k for k in _neighbours(key, chapter, rng, 3) if k in table and table[k] != table.get(key)]
    if near:
        return near[0]
    keys = _verse_keys_of(ctx.lang, ctx.split) if table is ctx.verses() else tuple(table)
    found = _pick(rng, keys, 1, lambda k: k != key and table[k] != table.get(key))
    return found[0] if found else None


def _verse_translation_pair(ctx: _Ctx, key: str, rng: random.Random, position: int) -> Item | None:
    mine, other = ctx.verses(), ctx.verses(ctx.pivot)
    partner = key if position == 0 else _negative_verse(ctx, key, other, rng)
    if partner is None:
        return None
    slots = _maybe_swap(rng, (mine[key], ctx.lang), (other[partner], ctx.pivot))
    units = tuple(dict.fromkeys((f"bible:{key}", f"bible:{partner}")))
    return Item(f"{key}/{partner}", units, slots, label=position == 0)


def _other_versions(lang: str) -> list[str]:
    default = bible.resolve_version(lang)
    return sorted(v.id for v in bible.VERSION_INFO.values() if v.lang == lang and v.id != default)


def _verse_version_pair(ctx: _Ctx, key: str, rng: random.Random, position: int) -> Item | None:
    versions = _other_versions(ctx.lang)
    version = versions[_rank(ctx.config.seed, ctx.task, "version", key) % len(versions)]
    mine, other = ctx.verses(), ctx.verses(version=version)
    if key not in other or other[key] == mine[key]:
        return None
    partner = key if position == 0 else _negative_verse(ctx, key, other, rng)
    if partner is None or (position == 1 and other[partner] == mine[key]):
        return None
    slots = _maybe_swap(rng, (mine[key], ctx.lang), (other[partner], ctx.lang))
    del slots["lang1"], slots["lang2"]
    units = tuple(dict.fromkeys((f"bible:{key}", f"bible:{partner}")))
    return Item(f"{key}/{version}:{partner}", units, slots, label=position == 0)


def _pair_countries(ctx: _Ctx) -> list[str]:
    mine, other = _names(ctx.lang), _names(ctx.pivot)
    return [c for c in _named_countries(ctx) if mine[c] != other[c]]


def _same_continent_first(ctx: _Ctx, code: str, pool: Sequence[str], rng: random.Random) -> list[str]:
    continent = _continent(code)
    near = [c for c in pool if c != code and _continent(c) == continent]
    far = [c for c in pool if c != code and _continent(c) != continent]
    rng.shuffle(near)
    rng.shuffle(far)
    return near + far


def _country_name_pair(ctx: _Ctx, code: str, rng: random.Random, position: int) -> Item | None:
    mine, other = _names(ctx.lang), _names(ctx.pivot)
    if position == 0:
        partner = code
    else:
        candidates = [c for c in _same_continent_first(ctx, code, _named_countries(ctx), rng)
                      if other[c] != mine[code]]
        if not candidates:
            return None
        partner = candidates[0]
    slots = _maybe_swap(rng, (mine[code], ctx.lang), (other[partner], ctx.pivot))
    slots = {k.replace("text", "name"): v for k, v in slots.items()}
    units = tuple(dict.fromkeys((f"cldr:{code}", f"cldr:{partner}")))
    return Item(f"{code}/{partner}", units, slots, label=position == 0)


# --- multiple choice -----------------------------------------------------------------------------------
def _verse_translation_choice(ctx: _Ctx, key: str, rng: random.Random, position: int) -> Item | None:
    mine = ctx.verses()
    chapter = _chapters(ctx.lang, ctx.split).get(key[:6], ())
    found = _distinct_texts(rng, mine[key], mine, _neighbours(key, chapter, rng, 2 * ctx.n),
                            _verse_keys_of(ctx.lang, ctx.split), _positions(ctx) - 1, {key})
    if found is None:
        return None
    keys, wrong = found
    options, answer = _arrange(mine[key], wrong, position, rng)
    units = (f"bible:{key}",) + tuple(f"bible:{k}" for k in keys)
    return Item(key, units, {"text": ctx.verses(ctx.pivot)[key], "src_lang": ctx.pivot, "tgt_lang": ctx.lang,
                             "options": options}, options=options, answer=answer)


def _country_name_choice(ctx: _Ctx, code: str, rng: random.Random, position: int) -> Item | None:
    mine = _names(ctx.lang)
    pool = [c for c in _countries(ctx.split) if c in mine]
    found = _distinct_texts(rng, mine[code], mine, _same_continent_first(ctx, code, pool, rng), pool,
                            _positions(ctx) - 1, {code})
    if found is None:
        return None
    keys, wrong = found
    options, answer = _arrange(mine[code], wrong, position, rng)
    units = (f"cldr:{code}",) + tuple(f"cldr:{k}" for k in keys)
    return Item(code, units, {"name": _names(ctx.pivot)[code], "src_lang": ctx.pivot, "tgt_lang": ctx.lang,
                              "options": options}, options=options, answer=answer)


# --- sentence completion -------------------------------------------------------------------------------
_CLAUSE_END = re.compile(r"[,;:，、；：]")
_MIN_WORDS = 8
_MIN_CHARS = 16


def split_verse(text: str, lang: str) -> tuple[str, str] | None:
    """(beginning, ending) of a verse cut near its middle, at a clause break if one is close, else at a
    word (or, for zh/ja/th, character) boundary; None for a verse too short to cut."""
    mid = len(text) // 2
    window = max(4, len(text) // 5)
    clause = [m.end() for m in _CLAUSE_END.finditer(text) if abs(m.end() - mid) <= window and m.end() < len(text)]
    if languages.uses_word_spaces(lang):
        if len(text.split()) < _MIN_WORDS:
            return None
        spaces = [i for i, ch in enumerate(text) if ch == " "]
        cuts = [c for c in clause if c < len(text) and text[c:c + 1] == " "] or spaces
        cut = min(cuts, key=lambda i: (abs(i - mid), i))
        beginning, ending = text[:cut].strip(), text[cut:].strip()
    else:
        if len(text) < _MIN_CHARS:
            return None
        cut = min(clause, key=lambda i: (abs(i - mid), i)) if clause else mid
        beginning, ending = text[:cut], text[cut:]
    if not beginning or not ending:
        return None
    return beginning, ending


@functools.lru_cache(maxsize=None)
def _endings(lang: str, split: str) -> dict[str, tuple[str, str]]:
    out = {}
    for key, text in _verse_table(lang, split).items():
        cut = split_verse(text, lang)
        if cut:
            out[key] = cut
    return out


@functools.lru_cache(maxsize=None)
def _ending_texts(lang: str, split: str) -> tuple[dict[str, str], tuple[str, ...]]:
    endings = {k: v[1] for k, v in _endings(lang, split).items()}
    return endings, tuple(endings)


def _verse_ending_choice(ctx: _Ctx, key: str, rng: random.Random, position: int) -> Item | None:
    beginning, ending = _endings(ctx.lang, ctx.split)[key]
    endings, pool = _ending_texts(ctx.lang, ctx.split)
    found = _distinct_texts(rng, ending, endings, (), pool, _positions(ctx) - 1, {key})
    if found is None:
        return None
    keys, wrong = found
    options, answer = _arrange(ending, wrong, position, rng)
    units = (f"bible:{key}",) + tuple(f"bible:{k}" for k in keys)
    return Item(key, units, {"beginning": beginning, "options": options}, options=options, answer=answer)


def _next_key(key: str) -> str:
    book, chapter, verse = (int(x) for x in key.split("."))
    return bible.verse_key(book, chapter, verse + 1)


def _next_verse_choice(ctx: _Ctx, key: str, rng: random.Random, position: int) -> Item | None:
    mine = ctx.verses()
    gold_key = _next_key(key)
    found = _distinct_texts(rng, mine[gold_key], mine, (), _verse_keys_of(ctx.lang, ctx.split), _positions(ctx) - 1,
                            {key, gold_key}, keep=lambda k: k[:6] != key[:6] and mine[k] != mine[key])
    if found is None:
        return None
    keys, wrong = found
    options, answer = _arrange(mine[gold_key], wrong, position, rng)
    units = (f"bible:{key}", f"bible:{gold_key}") + tuple(f"bible:{k}" for k in keys)
    return Item(key, units, {"text": mine[key], "options": options}, options=options, answer=answer)


# --- calendar ------------------------------------------------------------------------------------------
def _calendar_keys(kind: str, size: int, offsets: int, split: str) -> list[str]:
    keys = [f"{kind}/{i + 1}+{n}" for i in range(size) for n in range(1, offsets + 1)]
    return [k for k in keys if _calendar_split(k) == split]


def _calendar_item(ctx: _Ctx, key: str, names: Sequence[str], slot: str) -> Item:
    start, n = (int(x) for x in key.split("/")[1].split("+"))
    gold = names[(start - 1 + n) % len(names)]
    return Item(key, (f"calendar:{key}",), {slot: names[start - 1], "n": n}, target=gold, references=(gold,))


def _month_after(ctx: _Ctx, key: str, rng: random.Random, position: int) -> Item | None:
    return _calendar_item(ctx, key, cldr.month_names(ctx.lang), "month")


def _weekday_after(ctx: _Ctx, key: str, rng: random.Random, position: int) -> Item | None:
    return _calendar_item(ctx, key, cldr.day_names(ctx.lang), "day")


# --- table of builders ---------------------------------------------------------------------------------
_Candidates = Callable[[_Ctx], list[str]]
_Build = Callable[[_Ctx, str, random.Random, int], "Item | None"]


def _verse_keys(ctx: _Ctx) -> list[str]:
    return list(ctx.verses())


def _next_verse_keys(ctx: _Ctx) -> list[str]:
    mine = ctx.verses()
    return [k for k in mine if _next_key(k) in mine]


_BUILDERS: dict[str, tuple[_Candidates, _Build]] = {
    "verse_translation": (lambda ctx: ctx.parallel_keys(), _verse_translation),
    "country_name_translation": (_named_countries, _country_name_translation),
    "country_currency": (lambda ctx: list(_countries(ctx.split)), _country_currency),
    "country_official_language": (lambda ctx: list(_countries(ctx.split)), _country_official_language),
    "country_continent": (lambda ctx: list(_countries(ctx.split)), _country_continent),
    "verse_language_name": (lambda ctx: list(_union_keys(ctx.config.langid_languages, ctx.split)),
                            _verse_language_name),
    "country_name_language": (lambda ctx: list(_countries(ctx.split)), _country_name_language),
    "verse_translation_pair": (lambda ctx: ctx.parallel_keys(), _verse_translation_pair),
    "verse_version_pair": (_verse_keys, _verse_version_pair),
    "country_name_pair": (_pair_countries, _country_name_pair),
    "verse_translation_choice": (lambda ctx: ctx.parallel_keys(), _verse_translation_choice),
    "country_name_choice": (_named_countries, _country_name_choice),
    "verse_ending_choice": (lambda ctx: list(_endings(ctx.lang, ctx.split)), _verse_ending_choice),
    "next_verse_choice": (_next_verse_keys, _next_verse_choice),
    "month_after": (lambda ctx: _calendar_keys("month", 12, 11, ctx.split), _month_after),
    "weekday_after": (lambda ctx: _calendar_keys("weekday", 7, 13, ctx.split), _weekday_after),
}


def _positions(ctx: _Ctx) -> int:
    """Answer positions a task balances over: 1 (generation), 2 (yes/no) or the number of options."""
    if TASKS[ctx.task].kind == GENERATION:
        return 1
    if tpl.TASK_SLOTS[ctx.task].binary:
        return 2
    if ctx.task == "country_continent":
        return min(ctx.n, len(CONTINENTS))
    if ctx.task == "country_name_language":
        return min(ctx.n, len(ctx.config.langid_languages))
    return ctx.n


def unavailable_reason(task: str, lang: str, config: MetaConfig = DEFAULT_CONFIG) -> str | None:
    """Why ``task`` has no data for content language ``lang`` (None when it has)."""
    spec = task_spec(task)
    languages.validate(lang)
    if task == "verse_language_name":
        return None
    if spec.source == "bible" and lang not in bible.LANGUAGES:
        return f"{task} needs Bible text and there is none for {lang!r}"
    if task == "verse_version_pair" and not _other_versions(lang):
        return f"{task} needs two Bible versions of {lang!r}; it has one ({bible.resolve_version(lang)})"
    return None


def tasks_for(lang: str, clusters: Iterable[str] | None = None, config: MetaConfig = DEFAULT_CONFIG
              ) -> tuple[str, ...]:
    """Tasks with data for content language ``lang`` (in ``clusters`` if given), in catalogue order."""
    wanted = set(check_clusters(clusters)) if clusters is not None else set(CLUSTERS)
    return tuple(t for t, spec in TASKS.items()
                 if spec.cluster in wanted and unavailable_reason(t, lang, config) is None)


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return split


@functools.lru_cache(maxsize=256)
def _items(task: str, lang: str, split: str, config: MetaConfig) -> tuple[Item, ...]:
    ctx = _Ctx(task, lang, split, config)
    candidates_fn, build = _BUILDERS[task]
    candidates = sorted(candidates_fn(ctx), key=lambda key: (_rank(config.seed, task, key), key))
    cap = config.cap(split)
    n_pos = _positions(ctx)
    out: list[Item] = []
    block: list[int] = []
    for key in candidates:
        if cap is not None and len(out) >= cap:
            break
        if not block:
            block = _rng(config.seed, task, lang, split, "positions", len(out)).sample(range(n_pos), n_pos)
        item = build(ctx, key, ctx.rng(key), block[0])
        if item is not None:
            out.append(item)
            block.pop(0)
    return tuple(out)


def items(task: str, lang: str, split: str = "train", config: MetaConfig | None = None) -> tuple[Item, ...]:
    """The items (content + gold, no prompt) of one task, content language and split; cached."""
    task_spec(task)
    languages.validate(lang)
    config = config or DEFAULT_CONFIG
    reason = unavailable_reason(task, lang, config)
    if reason:
        raise DataError(reason)
    return _items(task, lang, _check_split(split), config)


# ---------------------------------------------------------------------------------------------- examples
def _example(spec: TaskSpec, item: Item, template: tpl.Template, lang: str, split: str) -> dict[str, Any]:
    values = dict(item.slots)
    if tpl.TASK_SLOTS[spec.name].binary:
        options, answer = list(template.choices), 0 if item.label else 1
        target, references = options[answer], [options[answer]]
    elif spec.kind == CHOICE:
        options, answer = list(item.options), item.answer
        target, references = options[answer], [options[answer]]
    else:
        options, answer, target, references = [], -1, item.target, list(item.references or (item.target,))
    return {
        "id": f"{spec.name}/{lang}/{split}/{item.uid}/{template.id}",
        "task": spec.name,
        "cluster": spec.cluster,
        "kind": spec.kind,
        "split": split,
        "content_lang": lang,
        "template_lang": template.lang,
        "template_id": template.id,
        "inputs": tpl.render(template, values),
        "targets": target,
        "options": options,
        "answer": answer,
        "references": references,
        "units": list(item.units),
    }


def examples(task: str, lang: str, split: str = "train", *, mode: str = "native", template_lang: str | None = None,
             fallback_lang: str | None = None, config: MetaConfig | None = None,
             all_templates: bool = False) -> list[dict[str, Any]]:
    """Rendered examples of one task for content language ``lang`` in ``split``.

    Each dict has task, cluster, kind, split, content_lang, template_lang, template_id, inputs (the
    prompt), targets (gold text), options ([] for generation), answer (index, -1 for generation),
    references (acceptable answers), units (source units read) and id. One template per item (rotating),
    or every template per item with ``all_templates`` (for per-template evaluation, as in T0).
    """
    spec = task_spec(task)
    config = config or DEFAULT_CONFIG
    found = items(task, lang, split, config)
    template_language = tpl.resolve_template_lang(mode, lang, task, template_lang, fallback_lang)
    prompts = tpl.templates(task, template_language)
    n_pos = _positions(_Ctx(task, lang, split, config))
    out = []
    for i, item in enumerate(found):
        chosen = prompts if all_templates else (prompts[(i // n_pos) % len(prompts)],)
        out.extend(_example(spec, item, template, lang, split) for template in chosen)
    return out


def meta_dataset(lang: str, split: str = "train", *, clusters: Iterable[str] | None = None, mode: str = "native",
                 template_lang: str | None = None, fallback_lang: str | None = None,
                 config: MetaConfig | None = None, all_templates: bool = False) -> dict[str, list[dict[str, Any]]]:
    """{task: examples} for every task with data for ``lang`` (in ``clusters`` if given)."""
    config = config or DEFAULT_CONFIG
    return {task: examples(task, lang, split, mode=mode, template_lang=template_lang, fallback_lang=fallback_lang,
                           config=config, all_templates=all_templates)
            for task in tasks_for(lang, clusters, config)}


def counts(langs: Sequence[str], config: MetaConfig | None = None) -> dict[str, dict[str, dict[str, int]]]:
    """{task: {lang: {split: number of items}}} (0 where a task has no data for a language)."""
    config = config or DEFAULT_CONFIG
    out: dict[str, dict[str, dict[str, int]]] = {}
    for task in TASKS:
        for lang in langs:
            ok = unavailable_reason(task, lang, config) is None
            out.setdefault(task, {})[lang] = {s: len(items(task, lang, s, config)) if ok else 0 for s in SPLITS}
    return out


def catalogue_markdown(langs: Sequence[str], config: MetaConfig | None = None,
                       held_out: Iterable[str] = DEFAULT_HELD_OUT) -> str:
    """The cluster/task table of docs/INSTRUCT.md with measured item counts (train/validation/test)."""
    config = config or DEFAULT_CONFIG
    table = counts(langs, config)
    held = set(check_clusters(held_out))
    head = "| cluster | task | kind | metrics | " + " | ".join(f"{lang} train/val/test" for lang in langs) + " |"
    rows = [head, "|" + "---|" * (4 + len(langs))]
    for task, spec in TASKS.items():
        cluster = f"{spec.cluster} (held out)" if spec.cluster in held else spec.cluster
        cells = [" / ".join(f"{table[task][lang][s]:,}" if table[task][lang][s] else "–" for s in SPLITS)
                 for lang in langs]
        rows.append(f"| {cluster} | `{task}` | {spec.kind} | {', '.join(spec.metrics)} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Print the instruction task catalogue with item counts.")
    parser.add_argument("langs", nargs="*", default=["en", "ko"])
    parser.add_argument("--max_train", type=int, default=DEFAULT_CONFIG.max_train)
    args = parser.parse_args(argv)
    print(catalogue_markdown(args.langs, MetaConfig(max_train=args.max_train)))


if __name__ == "__main__":
    main()
