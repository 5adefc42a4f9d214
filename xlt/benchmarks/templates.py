"""Prompt templates for public benchmarks, keyed by (format, template language).

A *format* is the shape of a task shared by several benchmarks (``copa`` serves XCOPA and KoBEST-COPA,
``nli`` serves XNLI). Each format has a slot contract (``FORMATS``): the placeholders a template must use,
those it may use, and how the answer is laid out:

* label formats (``labels`` > 0: nli, paraphrase, boolq, sentiment, wic): the template carries its
  verbalizer, ``choices``, one word per dataset label id in id order (XNLI: 0 entailment, 1 neutral,
  2 contradiction -> "Yes", "Maybe", "No"); the options scored are the choices and the gold index is the
  label id;
* option formats (copa, winograd, story, mrc, hellaswag): the options come from the record and are
  shown through the ``{options}`` slot in the template's ``options_style``;
* generation formats (extractive_qa, math): no options; references come from the record.

A template never has a slot for the label or the gold answer, so a prompt cannot depend on which option
is right: ``tests/benchmarks`` renders every template for records that differ only in their label and
checks that the prompts are identical.

``variants`` (COPA): some formats ask a different question per record kind (what was the *cause*, what
happened as a *result*); such a template gives one text per variant and the provider names the variant.

Templates were written directly in each language (en, ko, ja, zh, de, fr, es, ru) for the formats whose
benchmarks have that language; placeholder formats are those of ``xlt.instruct.templates`` (``{x:은/는}``
Korean particles, ``{x:cap}``). The catalogue is in ``xlt.benchmarks.catalogue``.

Template modes as for the built-in tasks (``xlt.instruct.templates.MODES``): ``native`` uses the content
language's templates and, for a language without any, English ones (``fallback_lang``, default "en"),
and the examples say so (``template_lang`` "en", ``template_fallback`` True); ``fixed`` uses
``template_lang`` for every language; ``cross`` uses ``template_lang``, which must differ from the content
language.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from xlt.errors import ConfigError, DataError
from xlt.instruct import templates as instruct_templates

MODES = instruct_templates.MODES
OPTION_STYLES = instruct_templates.OPTION_STYLES
DEFAULT_FALLBACK = "en"
NULL_VALUE = "N/A"  # the content-free input of Zhao et al. (2021), for PMI calibration


@dataclass(frozen=True)
class Format:
    """A format's slot contract: required and optional slots, label count (0: options from data or
    generation), whether it is scored by generation, and the names of its text variants."""

    required: frozenset[str]
    optional: frozenset[str] = frozenset()
    labels: int = 0
    generation: bool = False
    variants: tuple[str, ...] = ()

    @property
    def allowed(self) -> frozenset[str]:
        return self.required | self.optional


def _format(required: str, optional: str = "", labels: int = 0, generation: bool = False,
            variants: tuple[str, ...] = ()) -> Format:
    return Format(frozenset(required.split()), frozenset(optional.split()), labels, generation, variants)


FORMATS: dict[str, Format] = {
    "nli": _format("premise hypothesis", labels=3),
    "paraphrase": _format("sentence1 sentence2", labels=2),
    "boolq": _format("passage question", labels=2),
    "sentiment": _format("sentence", labels=2),
    "wic": _format("word sentence1 sentence2", labels=2),
    "copa": _format("premise options", variants=("cause", "effect")),
    "winograd": _format("sentence options"),
    "story": _format("story options"),
    "mrc": _format("passage question options"),
    "hellaswag": _format("context options"),
    "extractive_qa": _format("context question", "title", generation=True),
    "math": _format("question", generation=True),
}


@dataclass(frozen=True)
class Template:
    """One benchmark prompt: format, language, index, text (or texts per variant), verbalizer, option style."""

    format: str
    lang: str
    index: int
    text: str
    choices: tuple[str, ...] = ()
    options_style: str = "dash"
    variants: tuple[tuple[str, str], ...] = ()

    @property
    def id(self) -> str:
        """Stable name, e.g. ``nli.ko.1``."""
        return f"{self.format}.{self.lang}.{self.index}"

    def text_for(self, variant: str | None) -> str:
        if not self.variants:
            return self.text
        texts = dict(self.variants)
        if variant not in texts:
            raise DataError(f"template {self.id}: no text for variant {variant!r}; it has {', '.join(texts)}")
        return texts[variant]


_REGISTRY: dict[tuple[str, str], list[Template]] = {}


def add_template(fmt: str, lang: str, text: str | Mapping[str, str], *, choices: Sequence[str] = (),
                 options_style: str = "dash") -> Template:
    """Check a template against its format's contract and append it to (format, lang).

    ``text`` is one string, or {variant: text} for a format with variants (every variant given)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown benchmark format {fmt!r}; formats: {', '.join(FORMATS)}")
    spec = FORMATS[fmt]
    if isinstance(text, Mapping):
        variants = tuple((str(k), str(v)) for k, v in text.items())
        if set(dict(variants)) != set(spec.variants):
            raise ConfigError(f"template for {fmt}/{lang}: variants {sorted(dict(variants))} but the format "
                              f"has {list(spec.variants)}")
        texts = [v for _, v in variants]
        main = texts[0]
    else:
        if spec.variants:
            raise ConfigError(f"template for {fmt}/{lang} {text[:40]!r}…: the format needs one text per variant "
                              f"({', '.join(spec.variants)})")
        variants, texts, main = (), [text], text
    for body in texts:
        where = f"template for {fmt}/{lang} {body[:40]!r}…"
        fields = instruct_templates.checked_fields(body, spec.required, spec.allowed, fmt, where)
        for name, fspec in fields:
            if fspec and fspec != "cap" and fspec not in instruct_templates._KO_PARTICLES:
                raise ConfigError(f"{where}: format {fspec!r} of {{{name}}}; use cap or a Korean particle")
    if spec.labels and len(choices) != spec.labels:
        raise ConfigError(f"template for {fmt}/{lang} {main[:40]!r}…: needs {spec.labels} choices "
                          f"(one per label id), got {list(choices)}")
    if not spec.labels and choices:
        raise ConfigError(f"template for {fmt}/{lang} {main[:40]!r}…: only label formats take choices")
    if choices and (len(set(choices)) != len(choices) or not all(c.strip() for c in choices)):
        raise ConfigError(f"template for {fmt}/{lang} {main[:40]!r}…: choices must be distinct, non-empty")
    if options_style not in OPTION_STYLES:
        raise ConfigError(f"template for {fmt}/{lang}: options_style {options_style!r}; choose one of {OPTION_STYLES}")
    existing = _REGISTRY.setdefault((fmt, lang), [])
    if any(t.text == main and t.variants == variants for t in existing):
        raise ConfigError(f"template for {fmt}/{lang} {main[:40]!r}…: duplicate template")
    template = Template(fmt, lang, len(existing), main, tuple(choices), options_style, variants)
    existing.append(template)
    return template


def templates(fmt: str, lang: str) -> tuple[Template, ...]:
    """The templates of ``fmt`` in ``lang``; ConfigError naming the languages that have some."""
    found = _REGISTRY.get((fmt, lang))
    if not found:
        raise ConfigError(f"no {lang} templates for benchmark format {fmt!r}; template languages: "
                          f"{', '.join(template_languages(fmt))}")
    return tuple(found)


def template_languages(fmt: str) -> tuple[str, ...]:
    return tuple(sorted(lang for (f, lang), found in _REGISTRY.items() if f == fmt and found))


def resolve(mode: str, content_lang: str, fmt: str, template_lang: str | None = None,
            fallback_lang: str | None = DEFAULT_FALLBACK) -> tuple[str, bool]:
    """(template language, whether it is a fallback) for one content language under a template mode."""
    if mode not in MODES:
        raise ConfigError(f"template mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "native":
        if template_lang is not None and template_lang != content_lang:
            raise ConfigError(f"native mode uses the content language's templates; got template_lang="
                              f"{template_lang!r} (use mode 'fixed' or 'cross' to choose one)")
        if _REGISTRY.get((fmt, content_lang)):
            return content_lang, False
        if fallback_lang is None:
            raise ConfigError(f"no native {content_lang} templates for {fmt!r} (template languages: "
                              f"{', '.join(template_languages(fmt))}); pass fallback_lang or use mode 'fixed'")
        templates(fmt, fallback_lang)
        return fallback_lang, True
    if template_lang is None:
        raise ConfigError(f"template mode {mode!r} needs template_lang")
    if mode == "cross" and template_lang == content_lang:
        raise ConfigError(f"cross mode needs a template language other than the content language {content_lang!r}")
    templates(fmt, template_lang)
    return template_lang, False


class _Formatter(string.Formatter):
    def format_field(self, value: object, format_spec: str) -> str:
        if not format_spec:
            return str(value)
        if format_spec == "cap":
            text = str(value)
            return text[:1].upper() + text[1:]
        return instruct_templates.korean_particle(str(value), format_spec)


def render(template: Template, values: Mapping[str, object], variant: str | None = None) -> str:
    """Fill ``template``: ``options`` takes a list of strings (laid out in the template's style)."""
    text = template.text_for(variant)
    names = {name for name, _ in instruct_templates.placeholder_fields(text, template.id)}
    missing = names - set(values)
    if missing:
        raise DataError(f"template {template.id}: no value for {', '.join(sorted(missing))}")
    filled = {k: v for k, v in values.items() if k in names}
    if "options" in names:
        filled["options"] = instruct_templates.format_options(list(values["options"]),  # type: ignore[arg-type]
                                                              template.options_style, template.lang)
    return _Formatter().format(text, **filled)


def render_null(template: Template, values: Mapping[str, object], variant: str | None = None) -> str:
    """The content-free prompt for PMI calibration: every content slot replaced by ``NULL_VALUE``; the
    options (which are what is being scored) and the template's own words stay."""
    nulls = {k: (v if k == "options" else NULL_VALUE) for k, v in values.items()}
    return render(template, nulls, variant)
