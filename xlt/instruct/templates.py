"""Prompt templates for the instruction meta-datasets, keyed by (task, template language).

Design (promptsource/T0 and xP3 in spirit, written for this repository):

* A template is a native prompt with named placeholders, e.g. ``"{country}의 공용어는 무엇인가요?"``. The
  templates in ``_CATALOGUE`` were written directly in each language (en, ko, ja, zh, de, fr, es, ru; three
  or more per task), phrased the way a native speaker would ask, and worded so that they stay grammatical
  for every value a placeholder can take (e.g. German and Russian name languages in a label, "Zielsprache:
  Koreanisch", instead of an inflected phrase that "Hindi" or "Suaheli" would break). Nothing is machine
  translated at run time.
* Each task has a slot contract (``TASK_SLOTS``): the placeholders a template must use and those it may
  use. ``add_template`` checks it, so a template can never leave a placeholder unfilled or ask for a value
  the meta-dataset does not provide.
* Language slots (``src_lang``, ``tgt_lang``, ``lang1``, ``lang2``) receive a language *code*; ``render``
  writes the language's name in the template's language from CLDR (``babel``), so an English instruction
  says "Korean" and a Korean one says "한국어". Content slots are passed through as given.
* Binary tasks (yes/no) carry their answer words on the template (``choices``, in the template's
  language), as promptsource's answer_choices do; other choice tasks list their options through the
  ``{options}`` slot in the template's ``options_style``.

Placeholder formats (``{name:spec}``), so inflection is decided per value, not guessed in the text:
  ``{x:cap}`` capitalises the first letter (French/Spanish/Russian language names are lower case);
  ``{x:은/는}`` appends the Korean particle that fits the value's last syllable (batchim or not; ``으로/로``
  also treats a final ㄹ as a vowel); ``{n:#one=day;other=days}`` writes the number and the noun in the
  CLDR plural category of the template language (Russian needs one/few/many).

Template modes (``resolve_template_lang``): ``native`` (template language = content language; an error
for a language without templates unless ``fallback_lang`` is given), ``fixed`` (one template language for
every content language) and ``cross`` (a template language that must differ from the content language:
English instructions over Korean content, the "cross-lingual template" setting).
"""

from __future__ import annotations

import functools
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from babel import Locale

from xlt.data import languages
from xlt.data.sources import cldr
from xlt.errors import ConfigError, DataError

MODES: tuple[str, ...] = ("native", "fixed", "cross")
OPTION_STYLES: tuple[str, ...] = ("dash", "number", "letter", "inline")
LANG_SLOTS: frozenset[str] = frozenset({"src_lang", "tgt_lang", "lang1", "lang2"})
_PLURAL_ORDER = ("zero", "one", "two", "few", "many", "other")
_CLDR_LOCALE = {"tl": "fil"}  # CLDR has no "tl" locale (as in xlt.data.sources.cldr)


@dataclass(frozen=True)
class Slots:
    """A task's placeholder contract: slots every template must use, slots it may use, yes/no answers."""

    required: frozenset[str]
    optional: frozenset[str] = frozenset()
    binary: bool = False

    @property
    def allowed(self) -> frozenset[str]:
        return self.required | self.optional


def _slots(required: str, optional: str = "", binary: bool = False) -> Slots:
    return Slots(frozenset(required.split()), frozenset(optional.split()), binary)


TASK_SLOTS: dict[str, Slots] = {
    # translation
    "verse_translation": _slots("text tgt_lang", "src_lang"),
    "country_name_translation": _slots("name tgt_lang", "src_lang"),
    # factual_qa
    "country_currency": _slots("country"),
    "country_official_language": _slots("country"),
    "country_continent": _slots("country options"),
    # language_id
    "verse_language_name": _slots("text"),
    "country_name_language": _slots("name options"),
    # paraphrase
    "verse_translation_pair": _slots("text1 text2", "lang1 lang2", binary=True),
    "verse_version_pair": _slots("text1 text2", binary=True),
    "country_name_pair": _slots("name1 name2", "lang1 lang2", binary=True),
    # multiple_choice
    "verse_translation_choice": _slots("text options", "src_lang tgt_lang"),
    "country_name_choice": _slots("name options", "src_lang tgt_lang"),
    # sentence_completion
    "verse_ending_choice": _slots("beginning options"),
    "next_verse_choice": _slots("text options"),
    # calendar
    "month_after": _slots("month n"),
    "weekday_after": _slots("day n"),
}


@dataclass(frozen=True)
class Template:
    """One prompt: its task, language, position in the (task, lang) list, text and answer layout."""

    task: str
    lang: str
    index: int
    text: str
    choices: tuple[str, ...] = ()
    options_style: str = "dash"

    @property
    def id(self) -> str:
        """Stable name, e.g. ``country_currency.ko.1``."""
        return f"{self.task}.{self.lang}.{self.index}"

    @property
    def fields(self) -> frozenset[str]:
        """Placeholder names the text uses."""
        return frozenset(name for name, _ in placeholder_fields(self.text))


def placeholder_fields(text: str, where: str | None = None) -> list[tuple[str, str]]:
    """(name, format spec) of each placeholder of a template text (also ``xlt.benchmarks.templates``'); a
    malformed or non-plain placeholder is a ConfigError naming ``where`` (default: the text's start)."""
    where = where or f"template {text[:40]!r}…"
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as e:
        raise ConfigError(f"{where}: malformed placeholder ({e})") from None
    out = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or conversion:
            raise ConfigError(f"{where}: placeholder {{{name}}} must be a plain name")
        out.append((name, spec or ""))
    return out


# ------------------------------------------------------------------------------------------- formatting
_KO_VOWEL_DIGITS = frozenset("2459")  # 이, 사, 오, 구 end in a vowel; 0 영, 3 삼, 6 육 a consonant
_KO_RIEUL_DIGITS = frozenset("178")  # 일, 칠, 팔 end in ㄹ
_KO_PARTICLES = frozenset({"은/는", "이/가", "을/를", "과/와", "으로/로", "이면/면", "이나/나", "이라고/라고", "아/야"})


def checked_fields(text: str, required: frozenset[str], allowed: frozenset[str], owner: str,
                   where: str) -> list[tuple[str, str]]:
    """``placeholder_fields`` of a template text that uses every ``required`` slot and only ``allowed`` ones
    (``owner``: the task or benchmark format providing them); a ConfigError naming ``where`` otherwise."""
    fields = placeholder_fields(text, where)
    names = {name for name, _ in fields}
    if required - names:
        raise ConfigError(f"{where}: must use {', '.join(sorted(required - names))}")
    if names - allowed:
        raise ConfigError(f"{where}: unknown placeholder(s) {', '.join(sorted(names - allowed))}; "
                          f"{owner} provides {', '.join(sorted(allowed))}")
    return fields


def _korean_final(text: str) -> str:
    """'vowel', 'rieul' (ㄹ) or 'consonant' for the last pronounced character of `text`."""
    for ch in reversed(text):
        if "\uac00" <= ch <= "\ud7a3":
            final = (ord(ch) - 0xAC00) % 28
            return "vowel" if final == 0 else "rieul" if final == 8 else "consonant"
        if ch.isdigit():
            return "vowel" if ch in _KO_VOWEL_DIGITS else "rieul" if ch in _KO_RIEUL_DIGITS else "consonant"
        if ch.isalpha():
            return "rieul" if ch.lower() == "l" else "consonant" if ch.lower() in "mn" else "vowel"
    return "vowel"


def korean_particle(word: str, spec: str) -> str:
    """``word`` + the particle of ``spec`` ("은/는": after a final consonant, after a vowel) that fits it."""
    if spec not in _KO_PARTICLES:
        raise ConfigError(f"unknown Korean particle {spec!r}; known: {', '.join(sorted(_KO_PARTICLES))}")
    after_consonant, after_vowel = spec.split("/")
    final = _korean_final(word)
    if final == "vowel" or (final == "rieul" and spec == "으로/로"):
        return word + after_vowel
    return word + after_consonant


def _plural_forms(spec: str) -> dict[str, str]:
    forms = {}
    for part in spec.split(";"):
        category, sep, word = part.partition("=")
        if not sep or category not in _PLURAL_ORDER or not word:
            raise ConfigError(f"plural spec {spec!r}: write '#one=day;other=days' (categories {_PLURAL_ORDER})")
        forms[category] = word
    if "other" not in forms:
        raise ConfigError(f"plural spec {spec!r} needs an 'other=' form")
    return forms


@functools.lru_cache(maxsize=None)
def _babel_locale(lang: str) -> Locale:
    return Locale.parse(_CLDR_LOCALE.get(lang, lang))


def plural(n: int, spec: str, lang: str) -> str:
    """``"3 days"``: the number and the form of ``spec`` for its CLDR plural category in ``lang``."""
    forms = _plural_forms(spec)
    category = _babel_locale(lang).plural_form(n)
    return f"{n} {forms.get(category, forms['other'])}"


def _check_spec(spec: str, where: str) -> None:
    if not spec or spec == "cap":
        return
    if spec.startswith("#"):
        _plural_forms(spec[1:])
    elif "/" in spec:
        if spec not in _KO_PARTICLES:
            raise ConfigError(f"{where}: unknown Korean particle {spec!r}")
    else:
        raise ConfigError(f"{where}: unknown format {spec!r}; use cap, #one=..;other=.. or a Korean particle")


class _Formatter(string.Formatter):
    def __init__(self, lang: str):
        super().__init__()
        self.lang = lang

    def format_field(self, value: object, format_spec: str) -> str:
        if not format_spec:
            return str(value)
        if format_spec == "cap":
            text = str(value)
            return text[:1].upper() + text[1:]
        if format_spec.startswith("#"):
            return plural(int(value), format_spec[1:], self.lang)  # type: ignore[call-overload]
        return korean_particle(str(value), format_spec)


def language_name(code: str, in_lang: str) -> str:
    """Name of language ``code`` written in ``in_lang`` (CLDR): ``language_name('ja', 'ko') == '일본어'``."""
    names = cldr.language_names(in_lang)
    if code not in names:
        languages.validate(code)
        raise DataError(f"CLDR has no {in_lang} name for language {code!r}")
    return names[code]


def format_options(options: Sequence[str], style: str, lang: str) -> str:
    """The ``{options}`` slot: one option per line (dash / number / letter) or inline."""
    if style == "inline":
        return ("、" if lang in ("ja", "zh") else ", ").join(options)
    if style == "number":
        return "\n".join(f"{i + 1}. {o}" for i, o in enumerate(options))
    if style == "letter":
        return "\n".join(f"{chr(ord('A') + i)}. {o}" for i, o in enumerate(options))
    return "\n".join(f"- {o}" for o in options)


def render(template: Template, values: Mapping[str, object]) -> str:
    """Fill ``template`` with ``values``: language slots take codes, ``options`` a list of strings."""
    missing = template.fields - set(values)
    if missing:
        raise DataError(f"template {template.id}: no value for {', '.join(sorted(missing))}")
    filled = dict(values)
    for slot in template.fields & LANG_SLOTS:
        filled[slot] = language_name(str(values[slot]), template.lang)
    if "options" in template.fields:
        filled["options"] = format_options(list(values["options"]), template.options_style,  # type: ignore
                                           template.lang)
    return _Formatter(template.lang).format(template.text, **filled)


# ---------------------------------------------------------------------------------------------- registry
_REGISTRY: dict[tuple[str, str], list[Template]] = {}


def add_template(task: str, lang: str, text: str, *, choices: Sequence[str] = (),
                 options_style: str = "dash") -> Template:
    """Check a template against its task's slot contract and append it to (task, lang)."""
    if task not in TASK_SLOTS:
        raise ConfigError(f"unknown task {task!r}; tasks: {', '.join(TASK_SLOTS)}")
    languages.validate(lang)
    slots = TASK_SLOTS[task]
    where = f"template for {task}/{lang} {text[:40]!r}…"
    fields = checked_fields(text, slots.required, slots.allowed, task, where)
    for name, spec in fields:
        _check_spec(spec, where)
    if slots.binary != bool(choices):
        raise ConfigError(f"{where}: {'a yes/no task needs' if slots.binary else 'only yes/no tasks take'} choices")
    if choices and (len(choices) != 2 or len(set(choices)) != 2 or not all(c.strip() for c in choices)):
        raise ConfigError(f"{where}: choices must be two distinct answers (yes first), got {list(choices)}")
    if options_style not in OPTION_STYLES:
        raise ConfigError(f"{where}: options_style {options_style!r}; choose one of {OPTION_STYLES}")
    existing = _REGISTRY.setdefault((task, lang), [])
    if any(t.text == text for t in existing):
        raise ConfigError(f"{where}: duplicate template")
    template = Template(task, lang, len(existing), text, tuple(choices), options_style)
    existing.append(template)
    return template


def templates(task: str, lang: str) -> tuple[Template, ...]:
    """The templates of ``task`` in ``lang``; ConfigError naming the languages that have some."""
    if task not in TASK_SLOTS:
        raise ConfigError(f"unknown task {task!r}; tasks: {', '.join(TASK_SLOTS)}")
    languages.validate(lang)
    found = _REGISTRY.get((task, lang))
    if not found:
        raise ConfigError(f"no {lang} templates for task {task!r}; template languages: "
                          f"{', '.join(template_languages(task))}")
    return tuple(found)


def has_templates(task: str, lang: str) -> bool:
    return bool(_REGISTRY.get((task, lang)))


def template_languages(task: str | None = None) -> tuple[str, ...]:
    """Languages with templates for ``task`` (for every task when None), sorted."""
    if task is None:
        sets = [set(template_languages(t)) for t in TASK_SLOTS]
        return tuple(sorted(set.intersection(*sets)))
    return tuple(sorted(lang for (t, lang), found in _REGISTRY.items() if t == task and found))


def resolve_template_lang(mode: str, content_lang: str, task: str, template_lang: str | None = None,
                          fallback_lang: str | None = None) -> str:
    """The template language for one (task, content language) under a template mode.

    native: the content language; with no templates there, ``fallback_lang`` if given, else ConfigError.
    fixed: ``template_lang`` for every content language. cross: ``template_lang``, which must differ from
    the content language.
    """
    if mode not in MODES:
        raise ConfigError(f"template mode {mode!r}; choose one of {', '.join(MODES)}")
    languages.validate(content_lang)
    if task not in TASK_SLOTS:
        raise ConfigError(f"unknown task {task!r}; tasks: {', '.join(TASK_SLOTS)}")
    if mode == "native":
        if template_lang is not None and template_lang != content_lang:
            raise ConfigError(f"native mode uses the content language's templates; got template_lang="
                              f"{template_lang!r} (use mode 'fixed' or 'cross' to choose one)")
        if has_templates(task, content_lang):
            return content_lang
        if fallback_lang is None:
            raise ConfigError(f"no native {content_lang} templates for task {task!r} (template languages: "
                              f"{', '.join(template_languages(task))}); pass fallback_lang or use mode 'fixed'")
        templates(task, fallback_lang)
        return fallback_lang
    if template_lang is None:
        raise ConfigError(f"template mode {mode!r} needs template_lang (e.g. 'en')")
    if mode == "cross" and template_lang == content_lang:
        raise ConfigError(f"cross mode needs a template language other than the content language "
                          f"{content_lang!r}; use mode 'native' for same-language templates")
    templates(task, template_lang)
    return template_lang


# --------------------------------------------------------------------------------------------- catalogue
@dataclass(frozen=True)
class _T:
    text: str
    choices: tuple[str, ...] = ()
    style: str = "dash"


def _y(text: str, yes: str, no: str) -> _T:
    return _T(text, (yes, no))


_CATALOGUE: dict[str, dict[str, tuple[_T | str, ...]]] = {
    "verse_translation": {
        "en": ("Translate the following {src_lang} verse into {tgt_lang}.\n\n{text}",
               "{text}\n\nHow would you say this in {tgt_lang}?",
               "{src_lang}: {text}\n{tgt_lang}:"),
        "ko": ("다음 {src_lang} 구절을 {tgt_lang:으로/로} 번역하세요.\n\n{text}",
               "{text}\n\n위 글을 {tgt_lang:으로/로} 옮겨 주세요.",
               "{src_lang}: {text}\n{tgt_lang}:"),
        "ja": ("次の{src_lang}の節を{tgt_lang}に翻訳してください。\n\n{text}",
               "{text}\n\nこれを{tgt_lang}で言うとどうなりますか？",
               "{src_lang}：{text}\n{tgt_lang}："),
        "zh": ("请把下面这段{src_lang}经文翻译成{tgt_lang}。\n\n{text}",
               "{text}\n\n这段话用{tgt_lang}怎么说？",
               "{src_lang}：{text}\n{tgt_lang}："),
        "de": ("Übersetze den folgenden Vers. Ausgangssprache: {src_lang}, Zielsprache: {tgt_lang}.\n\n{text}",
               "{text}\n\nWie lautet dieser Vers auf {tgt_lang}?",
               "{src_lang}: {text}\n{tgt_lang}:"),
        "fr": ("Traduisez le verset suivant en {tgt_lang}.\n\n{text}",
               "{text}\n\nComment dit-on cela en {tgt_lang} ?",
               "{src_lang:cap} : {text}\n{tgt_lang:cap} :"),
        "es": ("Traduce el siguiente versículo del {src_lang} al {tgt_lang}.\n\n{text}",
               "{text}\n\n¿Cómo se dice esto en {tgt_lang}?",
               "{src_lang:cap}: {text}\n{tgt_lang:cap}:"),
        "ru": ("Переведите следующий стих. Исходный язык: {src_lang}. Язык перевода: {tgt_lang}.\n\n{text}",
               "{text}\n\nПереведите этот стих (язык перевода — {tgt_lang}).",
               "{src_lang:cap}: {text}\n{tgt_lang:cap}:"),
    },
    "country_name_translation": {
        "en": ("What is the {tgt_lang} name of the country called \"{name}\" in {src_lang}?",
               "Translate this country name into {tgt_lang}: {name}",
               "{src_lang}: {name}\n{tgt_lang}:"),
        "ko": ("다음 나라 이름을 {tgt_lang:으로/로} 번역하세요: {name}",
               "{src_lang} 국가명: {name}\n{tgt_lang} 국가명:",
               "{src_lang} 이름이 '{name}'인 나라를 {tgt_lang:으로/로} 뭐라고 부르나요?"),
        "ja": ("次の国名を{tgt_lang}に訳してください：{name}",
               "{src_lang}で「{name}」と呼ばれる国は、{tgt_lang}では何と言いますか？",
               "{src_lang}の国名：{name}\n{tgt_lang}の国名："),
        "zh": ("把这个国家名称翻译成{tgt_lang}：{name}",
               "{src_lang}里叫“{name}”的国家，用{tgt_lang}怎么说？",
               "{src_lang}国名：{name}\n{tgt_lang}国名："),
        "de": ("Wie heißt das Land „{name}“ ({src_lang}) auf {tgt_lang}?",
               "Gib den Namen dieses Landes auf {tgt_lang} an: {name}",
               "Ländername ({src_lang}): {name}\nLändername ({tgt_lang}):"),
        "fr": ("Comment s'appelle le pays « {name} » en {tgt_lang} ?",
               "Traduisez ce nom de pays en {tgt_lang} : {name}",
               "Nom du pays ({src_lang}) : {name}\nNom du pays ({tgt_lang}) :"),
        "es": ("¿Cómo se llama en {tgt_lang} el país que en {src_lang} se llama «{name}»?",
               "Traduce este nombre de país al {tgt_lang}: {name}",
               "Nombre del país ({src_lang}): {name}\nNombre del país ({tgt_lang}):"),
        "ru": ("Переведите название страны.\nИсходный язык: {src_lang}\nЯзык перевода: {tgt_lang}\n"
               "Название: {name}\nПеревод:",
               "Название страны ({src_lang}): {name}\nНазвание страны ({tgt_lang}):",
               "Как называется страна «{name}», если язык ответа — {tgt_lang}?"),
    },
    "country_currency": {
        "en": ("What is the official currency of {country}?",
               "Which currency is used in {country}?",
               "Country: {country}\nCurrency:"),
        "ko": ("{country}의 공식 통화는 무엇인가요?",
               "{country}에서는 어떤 화폐를 사용하나요?",
               "국가: {country}\n통화:"),
        "ja": ("{country}の公式通貨は何ですか？",
               "{country}ではどの通貨が使われていますか？",
               "国：{country}\n通貨："),
        "zh": ("{country}的法定货币是什么？",
               "{country}使用的是哪种货币？",
               "国家：{country}\n货币："),
        "de": ("Welche Währung ist im Land {country} offizielles Zahlungsmittel?",
               "Land: {country}. Mit welcher Währung bezahlt man dort?",
               "Land: {country}\nWährung:"),
        "fr": ("Quelle est la monnaie officielle du pays suivant : {country} ?",
               "Pays : {country}\nQuelle monnaie y utilise-t-on ?",
               "Pays : {country}\nMonnaie :"),
        "es": ("¿Cuál es la moneda oficial de {country}?",
               "¿Qué moneda se usa en {country}?",
               "País: {country}\nMoneda:"),
        "ru": ("Какая валюта является официальной в стране {country}?",
               "Страна: {country}. Какой валютой там расплачиваются?",
               "Страна: {country}\nВалюта:"),
    },
    "country_official_language": {
        "en": ("What is the official language of {country}?",
               "Which language is officially used in {country}?",
               "Country: {country}\nOfficial language:"),
        "ko": ("{country}의 공용어는 무엇인가요?",
               "{country}에서 공식적으로 쓰이는 언어는 무엇인가요?",
               "국가: {country}\n공용어:"),
        "ja": ("{country}の公用語は何ですか？",
               "{country}で公式に使われている言語は何語ですか？",
               "国：{country}\n公用語："),
        "zh": ("{country}的官方语言是什么？",
               "{country}官方使用哪种语言？",
               "国家：{country}\n官方语言："),
        "de": ("Was ist die Amtssprache des Landes {country}?",
               "Land: {country}. Welche Sprache ist dort Amtssprache?",
               "Land: {country}\nAmtssprache:"),
        "fr": ("Quelle est la langue officielle du pays suivant : {country} ?",
               "Pays : {country}\nQuelle langue y parle-t-on officiellement ?",
               "Pays : {country}\nLangue officielle :"),
        "es": ("¿Cuál es el idioma oficial de {country}?",
               "¿Qué idioma se habla oficialmente en {country}?",
               "País: {country}\nIdioma oficial:"),
        "ru": ("Какой язык является официальным в стране {country}?",
               "Страна: {country}. На каком языке там официально говорят?",
               "Страна: {country}\nОфициальный язык:"),
    },
    "country_continent": {
        "en": ("On which continent is {country}?\nOptions:\n{options}",
               _T("{country} is located in which part of the world? Choose one: {options}", style="inline"),
               _T("Country: {country}\nPick its continent from the list below.\n{options}\nContinent:",
                  style="number")),
        "ko": ("{country:은/는} 어느 대륙에 있나요?\n선택지:\n{options}",
               _T("{country:이/가} 속한 대륙을 고르세요: {options}", style="inline"),
               _T("국가: {country}\n아래 목록에서 이 나라가 있는 대륙을 고르세요.\n{options}\n대륙:", style="number")),
        "ja": ("{country}はどの大陸にありますか？\n選択肢：\n{options}",
               _T("{country}が属する大陸を次から選んでください：{options}", style="inline"),
               _T("国：{country}\n次の中からこの国がある大陸を選んでください。\n{options}\n大陸：", style="number")),
        "zh": ("{country}位于哪个大洲？\n选项：\n{options}",
               _T("从以下选项中选出{country}所在的大洲：{options}", style="inline"),
               _T("国家：{country}\n请从下列选项中选出该国所在的大洲。\n{options}\n大洲：", style="number")),
        "de": ("Auf welchem Kontinent liegt das Land {country}?\nAntwortmöglichkeiten:\n{options}",
               _T("Land: {country}. Zu welchem Erdteil gehört es? Wähle aus: {options}", style="inline"),
               _T("Land: {country}\nWähle den passenden Kontinent aus der Liste.\n{options}\nKontinent:",
                  style="number")),
        "fr": ("Sur quel continent se trouve le pays suivant : {country} ?\nChoix :\n{options}",
               _T("Pays : {country}. À quel continent appartient-il ? Choisissez parmi : {options}",
                  style="inline"),
               _T("Pays : {country}\nChoisissez son continent dans la liste ci-dessous.\n{options}\nContinent :",
                  style="number")),
        "es": ("¿En qué continente está {country}?\nOpciones:\n{options}",
               _T("Elige el continente al que pertenece {country}: {options}", style="inline"),
               _T("País: {country}\nElige su continente de la siguiente lista.\n{options}\nContinente:",
                  style="number")),
        "ru": ("На каком континенте находится страна {country}?\nВарианты ответа:\n{options}",
               _T("Страна: {country}. К какой части света она относится? Выберите: {options}", style="inline"),
               _T("Страна: {country}\nВыберите из списка континент, на котором она находится.\n{options}\n"
                  "Континент:", style="number")),
    },
    "verse_language_name": {
        "en": ("What language is the following text written in?\n\n{text}",
               "{text}\n\nIdentify the language of this passage.",
               "Text: {text}\nLanguage:"),
        "ko": ("다음 글은 어느 언어로 쓰였나요?\n\n{text}",
               "{text}\n\n이 문장이 어떤 언어인지 알려 주세요.",
               "텍스트: {text}\n언어:"),
        "ja": ("次の文章は何語で書かれていますか？\n\n{text}",
               "{text}\n\nこの文の言語を答えてください。",
               "テキスト：{text}\n言語："),
        "zh": ("下面这段文字是用什么语言写的？\n\n{text}",
               "{text}\n\n请指出这段话所用的语言。",
               "文本：{text}\n语言："),
        "de": ("In welcher Sprache ist der folgende Text geschrieben?\n\n{text}",
               "{text}\n\nBestimme die Sprache dieses Abschnitts.",
               "Text: {text}\nSprache:"),
        "fr": ("Dans quelle langue le texte suivant est-il écrit ?\n\n{text}",
               "{text}\n\nIndiquez la langue de ce passage.",
               "Texte : {text}\nLangue :"),
        "es": ("¿En qué idioma está escrito el siguiente texto?\n\n{text}",
               "{text}\n\nIndica el idioma de este fragmento.",
               "Texto: {text}\nIdioma:"),
        "ru": ("На каком языке написан следующий текст?\n\n{text}",
               "{text}\n\nОпределите язык этого отрывка.",
               "Текст: {text}\nЯзык:"),
    },
    "country_name_language": {
        "en": ("The country name \"{name}\" is written in which language?\n{options}",
               _T("Country name: {name}\nWhich language does this spelling belong to? Choose from: {options}",
                  style="inline"),
               _T("Say which language the following country name is written in.\nName: {name}\nOptions:\n"
                  "{options}", style="letter")),
        "ko": ("다음 국가명은 어느 언어로 적혀 있나요? {name}\n{options}",
               _T("국가 이름: {name}\n이 표기는 어느 언어인가요? 다음 중에서 고르세요: {options}", style="inline"),
               _T("아래 나라 이름이 어떤 언어의 표기인지 고르세요.\n이름: {name}\n선택지:\n{options}", style="letter")),
        "ja": ("国名「{name}」は何語で書かれていますか？\n{options}",
               _T("国名：{name}\nこの表記はどの言語のものですか？次から選んでください：{options}", style="inline"),
               _T("次の国名がどの言語の表記かを選んでください。\n国名：{name}\n選択肢：\n{options}", style="letter")),
        "zh": ("国名“{name}”是用哪种语言写的？\n{options}",
               _T("国家名称：{name}\n这个写法属于哪种语言？请从中选择：{options}", style="inline"),
               _T("请判断下面的国名是哪种语言的写法。\n国名：{name}\n选项：\n{options}", style="letter")),
        "de": ("In welcher Sprache ist der Ländername „{name}“ geschrieben?\n{options}",
               _T("Ländername: {name}\nZu welcher Sprache gehört diese Schreibweise? Wähle aus: {options}",
                  style="inline"),
               _T("Bestimme, in welcher Sprache der folgende Ländername geschrieben ist.\nName: {name}\n"
                  "Auswahl:\n{options}", style="letter")),
        "fr": ("Dans quelle langue le nom de pays « {name} » est-il écrit ?\n{options}",
               _T("Nom de pays : {name}\nÀ quelle langue appartient cette graphie ? Choisissez parmi : {options}",
                  style="inline"),
               _T("Indiquez dans quelle langue est écrit le nom de pays suivant.\nNom : {name}\nChoix :\n"
                  "{options}", style="letter")),
        "es": ("¿En qué idioma está escrito el nombre de país «{name}»?\n{options}",
               _T("Nombre de país: {name}\n¿A qué idioma pertenece esta forma? Elige entre: {options}",
                  style="inline"),
               _T("Indica en qué idioma está escrito el siguiente nombre de país.\nNombre: {name}\nOpciones:\n"
                  "{options}", style="letter")),
        "ru": ("На каком языке написано название страны «{name}»?\n{options}",
               _T("Название страны: {name}\nК какому языку относится это написание? Выберите: {options}",
                  style="inline"),
               _T("Определите, на каком языке записано следующее название страны.\nНазвание: {name}\n"
                  "Варианты:\n{options}", style="letter")),
    },
    "verse_translation_pair": {
        "en": (_y("Sentence 1 ({lang1}): {text1}\nSentence 2 ({lang2}): {text2}\n"
                  "Is sentence 2 a translation of sentence 1? Yes or No?", "Yes", "No"),
               _y("Do these two verses say the same thing in different languages?\n\n{text1}\n\n{text2}\n\n"
                  "Answer yes or no.", "yes", "no"),
               _y("\"{text1}\"\n\"{text2}\"\nTrue or false: the second verse translates the first.",
                  "True", "False")),
        "ko": (_y("문장 1 ({lang1}): {text1}\n문장 2 ({lang2}): {text2}\n문장 2는 문장 1의 번역인가요? "
                  "예 또는 아니요로 답하세요.", "예", "아니요"),
               _y("다음 두 구절은 서로 다른 언어로 같은 내용을 말하고 있나요?\n\n{text1}\n\n{text2}\n\n"
                  "네/아니요로 답하세요.", "네", "아니요"),
               _y("첫째 구절: {text1}\n둘째 구절: {text2}\n둘째 구절이 첫째 구절을 번역한 것이면 '맞음', "
                  "아니면 '틀림'이라고 답하세요.", "맞음", "틀림")),
        "ja": (_y("文1（{lang1}）：{text1}\n文2（{lang2}）：{text2}\n文2は文1の翻訳ですか？"
                  "「はい」か「いいえ」で答えてください。", "はい", "いいえ"),
               _y("次の二つの節は、違う言語で同じ内容を述べていますか？\n\n{text1}\n\n{text2}\n\n答え（はい／いいえ）：",
                  "はい", "いいえ"),
               _y("一つ目：{text1}\n二つ目：{text2}\n二つ目は一つ目の訳文である。正しいか誤りかで答えてください。",
                  "正しい", "誤り")),
        "zh": (_y("句子1（{lang1}）：{text1}\n句子2（{lang2}）：{text2}\n句子2是句子1的翻译吗？请回答“是”或“否”。",
                  "是", "否"),
               _y("下面两节经文是否用不同的语言表达了相同的意思？\n\n{text1}\n\n{text2}\n\n请回答是或不是。",
                  "是", "不是"),
               _y("第一段：{text1}\n第二段：{text2}\n判断：第二段是第一段的译文。回答“正确”或“错误”。",
                  "正确", "错误")),
        "de": (_y("Satz 1 ({lang1}): {text1}\nSatz 2 ({lang2}): {text2}\n"
                  "Ist Satz 2 eine Übersetzung von Satz 1? Ja oder Nein?", "Ja", "Nein"),
               _y("Sagen diese beiden Verse in verschiedenen Sprachen dasselbe aus?\n\n{text1}\n\n{text2}\n\n"
                  "Antworte mit ja oder nein.", "ja", "nein"),
               _y("„{text1}“\n„{text2}“\nStimmt es, dass der zweite Vers den ersten übersetzt? Richtig oder falsch?",
                  "Richtig", "Falsch")),
        "fr": (_y("Phrase 1 ({lang1}) : {text1}\nPhrase 2 ({lang2}) : {text2}\n"
                  "La phrase 2 est-elle une traduction de la phrase 1 ? Oui ou non ?", "Oui", "Non"),
               _y("Ces deux versets disent-ils la même chose dans deux langues différentes ?\n\n{text1}\n\n"
                  "{text2}\n\nRépondez par oui ou par non.", "oui", "non"),
               _y("« {text1} »\n« {text2} »\nVrai ou faux : le second verset est la traduction du premier.",
                  "Vrai", "Faux")),
        "es": (_y("Oración 1 ({lang1}): {text1}\nOración 2 ({lang2}): {text2}\n"
                  "¿Es la oración 2 una traducción de la oración 1? ¿Sí o no?", "Sí", "No"),
               _y("¿Dicen estos dos versículos lo mismo en idiomas distintos?\n\n{text1}\n\n{text2}\n\n"
                  "Responde sí o no.", "sí", "no"),
               _y("«{text1}»\n«{text2}»\nVerdadero o falso: el segundo versículo es la traducción del primero.",
                  "Verdadero", "Falso")),
        "ru": (_y("Предложение 1 ({lang1}): {text1}\nПредложение 2 ({lang2}): {text2}\n"
                  "Является ли предложение 2 переводом предложения 1? Да или нет?", "Да", "Нет"),
               _y("Говорят ли эти два стиха одно и то же на разных языках?\n\n{text1}\n\n{text2}\n\n"
                  "Ответьте «да» или «нет».", "да", "нет"),
               _y("«{text1}»\n«{text2}»\nВерно ли, что второй стих — перевод первого? Ответ: верно или неверно.",
                  "верно", "неверно")),
    },
    "verse_version_pair": {
        "en": (_y("Version A: {text1}\nVersion B: {text2}\nAre these two renderings of the same Bible verse? "
                  "Yes or No?", "Yes", "No"),
               _y("Here are two sentences from different Bible translations.\n1. {text1}\n2. {text2}\n"
                  "Do they express the same verse? Answer yes or no.", "yes", "no"),
               _y("\"{text1}\" and \"{text2}\" are paraphrases of each other. True or false?", "True", "False")),
        "ko": (_y("번역본 A: {text1}\n번역본 B: {text2}\n두 문장은 같은 성경 구절을 옮긴 것인가요? "
                  "예 또는 아니요로 답하세요.", "예", "아니요"),
               _y("서로 다른 성경 번역본에서 가져온 두 문장입니다.\n1. {text1}\n2. {text2}\n"
                  "두 문장의 뜻이 같나요? 네/아니요로 답하세요.", "네", "아니요"),
               _y("첫째 문장: {text1}\n둘째 문장: {text2}\n두 문장이 같은 내용을 다르게 표현한 것이면 '맞음', "
                  "아니면 '틀림'이라고 답하세요.", "맞음", "틀림")),
        "ja": (_y("訳A：{text1}\n訳B：{text2}\nこの二つは同じ聖書の節の訳ですか？「はい」か「いいえ」で答えてください。",
                  "はい", "いいえ"),
               _y("異なる聖書翻訳から取った二つの文です。\n1. {text1}\n2. {text2}\n同じ意味ですか？（はい／いいえ）",
                  "はい", "いいえ"),
               _y("一つ目：{text1}\n二つ目：{text2}\nこの二つの文は言い換えの関係にある。正しいか誤りかで答えてください。",
                  "正しい", "誤り")),
        "zh": (_y("译本A：{text1}\n译本B：{text2}\n这两句是同一节经文的不同译法吗？请回答“是”或“否”。", "是", "否"),
               _y("下面两句话出自不同的圣经译本。\n1. {text1}\n2. {text2}\n它们的意思相同吗？请回答是或不是。",
                  "是", "不是"),
               _y("第一句：{text1}\n第二句：{text2}\n判断：这两句话是同义改写。回答“正确”或“错误”。", "正确", "错误")),
        "de": (_y("Fassung A: {text1}\nFassung B: {text2}\nGeben beide Fassungen denselben Bibelvers wieder? "
                  "Ja oder Nein?", "Ja", "Nein"),
               _y("Zwei Sätze aus verschiedenen Bibelübersetzungen:\n1. {text1}\n2. {text2}\n"
                  "Bedeuten sie dasselbe? Antworte mit ja oder nein.", "ja", "nein"),
               _y("„{text1}“ und „{text2}“ sind Umformulierungen desselben Verses. Richtig oder falsch?",
                  "Richtig", "Falsch")),
        "fr": (_y("Version A : {text1}\nVersion B : {text2}\nCes deux versions rendent-elles le même verset "
                  "biblique ? Oui ou non ?", "Oui", "Non"),
               _y("Voici deux phrases tirées de traductions différentes de la Bible.\n1. {text1}\n2. {text2}\n"
                  "Ont-elles le même sens ? Répondez par oui ou par non.", "oui", "non"),
               _y("« {text1} » et « {text2} » sont deux formulations du même verset. Vrai ou faux ?",
                  "Vrai", "Faux")),
        "es": (_y("Versión A: {text1}\nVersión B: {text2}\n¿Traducen ambas versiones el mismo versículo bíblico? "
                  "¿Sí o no?", "Sí", "No"),
               _y("Estas son dos frases de traducciones distintas de la Biblia.\n1. {text1}\n2. {text2}\n"
                  "¿Significan lo mismo? Responde sí o no.", "sí", "no"),
               _y("«{text1}» y «{text2}» son dos formas de decir el mismo versículo. ¿Verdadero o falso?",
                  "Verdadero", "Falso")),
        "ru": (_y("Вариант А: {text1}\nВариант Б: {text2}\nПередают ли оба варианта один и тот же библейский "
                  "стих? Да или нет?", "Да", "Нет"),
               _y("Вот два предложения из разных переводов Библии.\n1. {text1}\n2. {text2}\n"
                  "Совпадают ли они по смыслу? Ответьте «да» или «нет».", "да", "нет"),
               _y("«{text1}» и «{text2}» — это пересказ одного и того же стиха. Верно или неверно?",
                  "верно", "неверно")),
    },
    "country_name_pair": {
        "en": (_y("Do \"{name1}\" ({lang1}) and \"{name2}\" ({lang2}) name the same country? Yes or No?",
                  "Yes", "No"),
               _y("Name 1: {name1}\nName 2: {name2}\nAre these the same country in two languages? "
                  "Answer yes or no.", "yes", "no"),
               _y("True or false: \"{name2}\" is the {lang2} name of {name1}.", "True", "False")),
        "ko": (_y("국가명 1 ({lang1}): {name1}\n국가명 2 ({lang2}): {name2}\n두 이름은 같은 나라를 가리키나요? "
                  "예 또는 아니요로 답하세요.", "예", "아니요"),
               _y("다음 두 이름이 같은 나라를 서로 다른 언어로 적은 것인가요?\n- {name1}\n- {name2}\n"
                  "네/아니요로 답하세요.", "네", "아니요"),
               _y("{lang1} 이름: {name1}\n{lang2} 이름: {name2}\n둘째 이름이 첫째 나라의 {lang2} 이름이면 '맞음', "
                  "아니면 '틀림'이라고 답하세요.", "맞음", "틀림")),
        "ja": (_y("「{name1}」（{lang1}）と「{name2}」（{lang2}）は同じ国を指していますか？"
                  "「はい」か「いいえ」で答えてください。", "はい", "いいえ"),
               _y("国名1：{name1}\n国名2：{name2}\nこの二つは同じ国の別の言語での呼び名ですか？（はい／いいえ）",
                  "はい", "いいえ"),
               _y("「{name2}」は「{name1}」の{lang2}での名前である。正しいか誤りかで答えてください。", "正しい", "誤り")),
        "zh": (_y("“{name1}”（{lang1}）和“{name2}”（{lang2}）指的是同一个国家吗？请回答“是”或“否”。", "是", "否"),
               _y("国名1：{name1}\n国名2：{name2}\n这两个名称是同一个国家在不同语言中的叫法吗？请回答是或不是。",
                  "是", "不是"),
               _y("判断：“{name2}”是“{name1}”的{lang2}名称。回答“正确”或“错误”。", "正确", "错误")),
        "de": (_y("Bezeichnen „{name1}“ ({lang1}) und „{name2}“ ({lang2}) dasselbe Land? Ja oder Nein?",
                  "Ja", "Nein"),
               _y("Name 1: {name1}\nName 2: {name2}\nIst das dasselbe Land in zwei Sprachen? "
                  "Antworte mit ja oder nein.", "ja", "nein"),
               _y("Richtig oder falsch: „{name2}“ ist der Name von „{name1}“ auf {lang2}.", "Richtig", "Falsch")),
        "fr": (_y("« {name1} » ({lang1}) et « {name2} » ({lang2}) désignent-ils le même pays ? Oui ou non ?",
                  "Oui", "Non"),
               _y("Nom 1 : {name1}\nNom 2 : {name2}\nS'agit-il du même pays dans deux langues ? "
                  "Répondez par oui ou par non.", "oui", "non"),
               _y("Vrai ou faux : « {name2} » est le nom en {lang2} de « {name1} ».", "Vrai", "Faux")),
        "es": (_y("¿«{name1}» ({lang1}) y «{name2}» ({lang2}) designan el mismo país? ¿Sí o no?", "Sí", "No"),
               _y("Nombre 1: {name1}\nNombre 2: {name2}\n¿Es el mismo país en dos idiomas? Responde sí o no.",
                  "sí", "no"),
               _y("Verdadero o falso: «{name2}» es el nombre en {lang2} de «{name1}».", "Verdadero", "Falso")),
        "ru": (_y("Обозначают ли «{name1}» ({lang1}) и «{name2}» ({lang2}) одну и ту же страну? Да или нет?",
                  "Да", "Нет"),
               _y("Название 1: {name1}\nНазвание 2: {name2}\nЭто одна и та же страна на двух языках? "
                  "Ответьте «да» или «нет».", "да", "нет"),
               _y("Верно ли, что «{name2}» — это название страны «{name1}» на другом языке ({lang2})? "
                  "Ответ: верно или неверно.", "верно", "неверно")),
    },
    "verse_translation_choice": {
        "en": ("Which of the following is the {tgt_lang} translation of this verse?\n\n{text}\n\nOptions:\n"
               "{options}",
               _T("{src_lang} verse: {text}\nChoose its correct {tgt_lang} translation:\n{options}", style="letter"),
               _T("Pick the sentence that means the same as the one below.\n\n{text}\n\n{options}",
                  style="number")),
        "ko": ("다음 구절의 {tgt_lang} 번역으로 알맞은 것은 무엇인가요?\n\n{text}\n\n선택지:\n{options}",
               _T("{src_lang} 구절: {text}\n올바른 {tgt_lang} 번역을 고르세요.\n{options}", style="letter"),
               _T("아래 문장과 뜻이 같은 것을 고르세요.\n\n{text}\n\n{options}", style="number")),
        "ja": ("次の節の{tgt_lang}訳として正しいものはどれですか？\n\n{text}\n\n選択肢：\n{options}",
               _T("{src_lang}の節：{text}\n正しい{tgt_lang}訳を選んでください。\n{options}", style="letter"),
               _T("次の文と同じ意味の文を選んでください。\n\n{text}\n\n{options}", style="number")),
        "zh": ("下面这节经文的{tgt_lang}译文是哪一个？\n\n{text}\n\n选项：\n{options}",
               _T("{src_lang}经文：{text}\n请选出正确的{tgt_lang}翻译。\n{options}", style="letter"),
               _T("请选出与下面这句话意思相同的句子。\n\n{text}\n\n{options}", style="number")),
        "de": ("Welche der folgenden Möglichkeiten ist die Übersetzung dieses Verses (Zielsprache: {tgt_lang})?"
               "\n\n{text}\n\nAuswahl:\n{options}",
               _T("Vers ({src_lang}): {text}\nWähle die richtige Übersetzung ({tgt_lang}):\n{options}",
                  style="letter"),
               _T("Welcher Satz bedeutet dasselbe wie der folgende?\n\n{text}\n\n{options}", style="number")),
        "fr": ("Laquelle des phrases suivantes est la traduction en {tgt_lang} de ce verset ?\n\n{text}\n\n"
               "Choix :\n{options}",
               _T("Verset ({src_lang}) : {text}\nChoisissez sa traduction correcte en {tgt_lang} :\n{options}",
                  style="letter"),
               _T("Quelle phrase a le même sens que celle-ci ?\n\n{text}\n\n{options}", style="number")),
        "es": ("¿Cuál de las siguientes opciones es la traducción al {tgt_lang} de este versículo?\n\n{text}\n\n"
               "Opciones:\n{options}",
               _T("Versículo en {src_lang}: {text}\nElige su traducción correcta al {tgt_lang}:\n{options}",
                  style="letter"),
               _T("¿Qué frase significa lo mismo que la siguiente?\n\n{text}\n\n{options}", style="number")),
        "ru": ("Какой из следующих вариантов — правильный перевод этого стиха (язык перевода: {tgt_lang})?\n\n"
               "{text}\n\nВарианты:\n{options}",
               _T("Стих ({src_lang}): {text}\nВыберите правильный перевод ({tgt_lang}):\n{options}",
                  style="letter"),
               _T("Какое предложение означает то же самое, что и это?\n\n{text}\n\n{options}", style="number")),
    },
    "country_name_choice": {
        "en": ("Which of these is the {tgt_lang} name of the country \"{name}\"?\n{options}",
               _T("{src_lang} name: {name}\nSelect the same country's name in {tgt_lang}:\n{options}",
                  style="letter"),
               _T("Country: {name}\nWhich option refers to the same country?\n{options}", style="number")),
        "ko": ("나라 이름 '{name}'의 {tgt_lang} 표기는 무엇인가요?\n{options}",
               _T("{src_lang} 국가명: {name}\n같은 나라의 {tgt_lang} 이름을 고르세요.\n{options}", style="letter"),
               _T("국가: {name}\n같은 나라를 가리키는 것을 고르세요.\n{options}", style="number")),
        "ja": ("国名「{name}」の{tgt_lang}での表記はどれですか？\n{options}",
               _T("{src_lang}の国名：{name}\n同じ国の{tgt_lang}での名前を選んでください。\n{options}", style="letter"),
               _T("国：{name}\n同じ国を指すものを選んでください。\n{options}", style="number")),
        "zh": ("国家名称“{name}”的{tgt_lang}写法是哪一个？\n{options}",
               _T("{src_lang}国名：{name}\n请选出同一国家的{tgt_lang}名称。\n{options}", style="letter"),
               _T("国家：{name}\n哪个选项指的是同一个国家？\n{options}", style="number")),
        "de": ("Wie lautet der Name des Landes „{name}“ auf {tgt_lang}?\n{options}",
               _T("Ländername ({src_lang}): {name}\nWähle den Namen desselben Landes auf {tgt_lang}:\n{options}",
                  style="letter"),
               _T("Land: {name}\nWelche Option bezeichnet dasselbe Land?\n{options}", style="number")),
        "fr": ("Quel est le nom en {tgt_lang} du pays « {name} » ?\n{options}",
               _T("Nom du pays ({src_lang}) : {name}\nChoisissez le nom du même pays en {tgt_lang} :\n{options}",
                  style="letter"),
               _T("Pays : {name}\nQuelle option désigne le même pays ?\n{options}", style="number")),
        "es": ("¿Cuál es el nombre en {tgt_lang} del país «{name}»?\n{options}",
               _T("Nombre del país en {src_lang}: {name}\nElige el nombre del mismo país en {tgt_lang}:\n"
                  "{options}", style="letter"),
               _T("País: {name}\n¿Qué opción se refiere al mismo país?\n{options}", style="number")),
        "ru": ("Как называется страна «{name}» на другом языке ({tgt_lang})? Выберите вариант.\n{options}",
               _T("Название страны ({src_lang}): {name}\nВыберите название той же страны ({tgt_lang}):\n{options}",
                  style="letter"),
               _T("Страна: {name}\nКакой вариант обозначает ту же страну?\n{options}", style="number")),
    },
    "verse_ending_choice": {
        "en": ("How does this verse continue?\n\n{beginning} ...\n\n{options}",
               _T("Complete the sentence: {beginning}\nChoose the right ending:\n{options}", style="letter"),
               _T("Beginning: {beginning}\nWhich of the following is the missing end of this verse?\n{options}",
                  style="number")),
        "ko": ("이 구절은 어떻게 이어질까요?\n\n{beginning} ...\n\n{options}",
               _T("문장을 완성하세요: {beginning}\n알맞은 뒷부분을 고르세요.\n{options}", style="letter"),
               _T("앞부분: {beginning}\n다음 중 이 구절의 빠진 뒷부분은 무엇인가요?\n{options}", style="number")),
        "ja": ("この節の続きはどれですか？\n\n{beginning}……\n\n{options}",
               _T("文を完成させてください：{beginning}\n正しい続きを選んでください。\n{options}", style="letter"),
               _T("前半：{beginning}\n次のうち、この節の欠けている後半はどれですか？\n{options}", style="number")),
        "zh": ("这节经文接下来是什么？\n\n{beginning}……\n\n{options}",
               _T("补全句子：{beginning}\n请选出正确的后半句。\n{options}", style="letter"),
               _T("前半句：{beginning}\n下列哪一项是这节经文缺少的后半部分？\n{options}", style="number")),
        "de": ("Wie geht dieser Vers weiter?\n\n{beginning} …\n\n{options}",
               _T("Vervollständige den Satz: {beginning}\nWähle das richtige Ende:\n{options}", style="letter"),
               _T("Anfang: {beginning}\nWelche der folgenden Möglichkeiten ist das fehlende Ende dieses Verses?\n"
                  "{options}", style="number")),
        "fr": ("Comment ce verset se poursuit-il ?\n\n{beginning}…\n\n{options}",
               _T("Complétez la phrase : {beginning}\nChoisissez la bonne fin :\n{options}", style="letter"),
               _T("Début : {beginning}\nLaquelle de ces propositions est la fin manquante de ce verset ?\n"
                  "{options}", style="number")),
        "es": ("¿Cómo continúa este versículo?\n\n{beginning}...\n\n{options}",
               _T("Completa la frase: {beginning}\nElige el final correcto:\n{options}", style="letter"),
               _T("Comienzo: {beginning}\n¿Cuál de las siguientes opciones es el final que falta en este "
                  "versículo?\n{options}", style="number")),
        "ru": ("Как продолжается этот стих?\n\n{beginning}…\n\n{options}",
               _T("Закончите предложение: {beginning}\nВыберите правильное окончание:\n{options}", style="letter"),
               _T("Начало: {beginning}\nКакой из вариантов — недостающее окончание этого стиха?\n{options}",
                  style="number")),
    },
    "next_verse_choice": {
        "en": ("Which verse comes right after this one?\n\n{text}\n\n{options}",
               _T("{text}\n\nWhat is the next verse?\n{options}", style="letter"),
               _T("Verse: {text}\nChoose the verse that follows it in the text:\n{options}", style="number")),
        "ko": ("다음 구절 바로 뒤에 오는 구절은 무엇인가요?\n\n{text}\n\n{options}",
               _T("{text}\n\n이어지는 구절을 고르세요.\n{options}", style="letter"),
               _T("구절: {text}\n본문에서 이 구절 다음에 나오는 것을 고르세요.\n{options}", style="number")),
        "ja": ("この節のすぐ後に続く節はどれですか？\n\n{text}\n\n{options}",
               _T("{text}\n\n次の節を選んでください。\n{options}", style="letter"),
               _T("節：{text}\n本文でこの節の次に来るものを選んでください。\n{options}", style="number")),
        "zh": ("紧接在这节经文之后的是哪一节？\n\n{text}\n\n{options}",
               _T("{text}\n\n下一节是什么？\n{options}", style="letter"),
               _T("经文：{text}\n请选出原文中紧随其后的一节。\n{options}", style="number")),
        "de": ("Welcher Vers folgt unmittelbar auf diesen?\n\n{text}\n\n{options}",
               _T("{text}\n\nWie lautet der nächste Vers?\n{options}", style="letter"),
               _T("Vers: {text}\nWähle den Vers, der im Text darauf folgt:\n{options}", style="number")),
        "fr": ("Quel verset vient juste après celui-ci ?\n\n{text}\n\n{options}",
               _T("{text}\n\nQuel est le verset suivant ?\n{options}", style="letter"),
               _T("Verset : {text}\nChoisissez le verset qui le suit dans le texte :\n{options}", style="number")),
        "es": ("¿Qué versículo viene justo después de este?\n\n{text}\n\n{options}",
               _T("{text}\n\n¿Cuál es el versículo siguiente?\n{options}", style="letter"),
               _T("Versículo: {text}\nElige el versículo que le sigue en el texto:\n{options}", style="number")),
        "ru": ("Какой стих идёт сразу после этого?\n\n{text}\n\n{options}",
               _T("{text}\n\nКакой стих следующий?\n{options}", style="letter"),
               _T("Стих: {text}\nВыберите стих, который идёт за ним в тексте:\n{options}", style="number")),
    },
    "month_after": {
        "en": ("What month is it {n:#one=month;other=months} after {month}?",
               "If it is {month} now, what month will it be in {n:#one=month;other=months}?",
               "Start: {month}\nAdd {n:#one=month;other=months}.\nResult:"),
        "ko": ("{month}에서 {n}개월 뒤는 몇 월인가요?",
               "지금이 {month:이면/면} {n}개월 후에는 몇 월이 되나요?",
               "시작: {month}\n{n}개월을 더하면?\n결과:"),
        "ja": ("{month}の{n}か月後は何月ですか？",
               "今が{month}だとすると、{n}か月後は何月になりますか？",
               "開始：{month}\n{n}か月を足す\n結果："),
        "zh": ("{month}之后{n}个月是几月？",
               "如果现在是{month}，再过{n}个月是几月？",
               "起始：{month}\n加上{n}个月\n结果："),
        "de": ("Welcher Monat ist {n:#one=Monat;other=Monate} nach {month}?",
               "Wenn jetzt {month} ist, welcher Monat ist dann in {n:#one=Monat;other=Monaten}?",
               "Start: {month}\nPlus {n:#one=Monat;other=Monate}\nErgebnis:"),
        "fr": ("Quel mois arrive {n:#one=mois;other=mois} après {month} ?",
               "Si nous sommes en {month}, en quel mois serons-nous dans {n:#one=mois;other=mois} ?",
               "Départ : {month}\nAjoutez {n:#one=mois;other=mois}.\nRésultat :"),
        "es": ("¿Qué mes es {n:#one=mes;other=meses} después de {month}?",
               "Si ahora es {month}, ¿qué mes será dentro de {n:#one=mes;other=meses}?",
               "Inicio: {month}\nSuma {n:#one=mes;other=meses}.\nResultado:"),
        "ru": ("Сейчас {month}. Какой месяц будет через {n:#one=месяц;few=месяца;many=месяцев;other=месяца}?",
               "Месяц: {month}. Назовите месяц, который наступит через "
               "{n:#one=месяц;few=месяца;many=месяцев;other=месяца}.",
               "Начало: {month}\nПрибавьте {n:#one=месяц;few=месяца;many=месяцев;other=месяца}.\nРезультат:"),
    },
    "weekday_after": {
        "en": ("What day of the week is {n:#one=day;other=days} after {day}?",
               "Today is {day}. What day will it be in {n:#one=day;other=days}?",
               "Start: {day}\nAdd {n:#one=day;other=days}.\nResult:"),
        "ko": ("{day}에서 {n}일 뒤는 무슨 요일인가요?",
               "오늘이 {day:이면/면} {n}일 후는 무슨 요일일까요?",
               "시작: {day}\n{n}일을 더하면?\n결과:"),
        "ja": ("{day}の{n}日後は何曜日ですか？",
               "今日が{day}なら、{n}日後は何曜日ですか？",
               "開始：{day}\n{n}日を足す\n結果："),
        "zh": ("{day}之后{n}天是星期几？",
               "如果今天是{day}，{n}天后是星期几？",
               "起始：{day}\n加上{n}天\n结果："),
        "de": ("Welcher Wochentag ist {n:#one=Tag;other=Tage} nach {day}?",
               "Heute ist {day}. Welcher Tag ist in {n:#one=Tag;other=Tagen}?",
               "Start: {day}\nPlus {n:#one=Tag;other=Tage}\nErgebnis:"),
        "fr": ("Quel jour de la semaine tombe {n:#one=jour;other=jours} après {day} ?",
               "Nous sommes {day}. Quel jour serons-nous dans {n:#one=jour;other=jours} ?",
               "Départ : {day}\nAjoutez {n:#one=jour;other=jours}.\nRésultat :"),
        "es": ("¿Qué día de la semana es {n:#one=día;other=días} después del {day}?",
               "Hoy es {day}. ¿Qué día será dentro de {n:#one=día;other=días}?",
               "Inicio: {day}\nSuma {n:#one=día;other=días}.\nResultado:"),
        "ru": ("Сегодня {day}. Какой день недели будет через {n:#one=день;few=дня;many=дней;other=дня}?",
               "День недели: {day}. Назовите день, который наступит через {n:#one=день;few=дня;many=дней;other=дня}.",
               "Начало: {day}\nПрибавьте {n:#one=день;few=дня;many=дней;other=дня}.\nРезультат:"),
    },
}


def _load_catalogue() -> None:
    for task, by_lang in _CATALOGUE.items():
        for lang, entries in by_lang.items():
            for entry in entries:
                spec = _T(entry) if isinstance(entry, str) else entry
                add_template(task, lang, spec.text, choices=spec.choices, options_style=spec.style)


_load_catalogue()
