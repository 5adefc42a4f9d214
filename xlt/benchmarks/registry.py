"""The benchmark protocol and registry: one interface for public benchmarks and the built-in held-out tasks.

A benchmark (a subclass of ``Benchmark``, registered with ``@register``) states

* ``name``, ``cluster`` (the skill, as the built-in clusters), ``kind`` (``choice`` or ``generation``, the
  constants of ``xlt.instruct.meta``), ``metrics`` (names the evaluator reports) and ``description``;
* ``hub_name`` (the Hugging Face dataset it reads by default), ``configs`` ({language: the hub's config
  name}), ``splits`` (as published) and ``default_split`` (the one a zero-shot evaluation uses);
* ``fields``: the hub fields every record must have (a file in another schema is a one-line DataError);
* ``format``: its template format (``xlt.benchmarks.templates.FORMATS``);
* ``item(record, index, lang)``: the content of one example before templating (``Item``).

``get(name, source=None)`` returns a benchmark bound to a source (its hub name by default, or a local
directory laid out as ``<config>/<split>.jsonl``: ``xlt.benchmarks.sources``). Its ``examples(lang, split,
template_mode=..., template_lang=..., max_items=...)`` returns example dicts with the same keys as the
built-in tasks' (``xlt.instruct.meta.examples``: id, task, cluster, kind, split, content_lang,
template_lang, template_id, inputs, targets, options, answer, references, units), so the evaluator scores
them the same way, plus ``benchmark``, ``metrics``, ``template_fallback`` (English templates standing in
for a language without native ones) and, for choice benchmarks, ``null_inputs``: the content-free prompt
for PMI calibration (``xlt.evaluation.calibration``). An object returned by ``get`` has the attributes of
``xlt.instruct.meta.TaskSpec`` (name, cluster, kind, metrics, description), so code written for a task
spec takes it as it is.

Errors are one line: an unknown benchmark (ConfigError listing the registered ones), a language the
benchmark lacks (ConfigError listing its languages), an unknown split, a source that cannot be read or a
record in another schema (DataError naming the benchmark, file and field).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from xlt.benchmarks import sources
from xlt.benchmarks import templates as btpl
from xlt.errors import ConfigError, DataError
from xlt.instruct.meta import CHOICE, GENERATION

CHOICE_METRICS: tuple[str, ...] = ("accuracy", "accuracy_norm", "accuracy_char", "accuracy_pmi")


@dataclass(frozen=True)
class Item:
    """One example's content before templating.

    ``slots``: values of the format's placeholders. Option formats: ``options`` (from the record) and
    ``answer`` (gold index). Label formats: ``answer`` is the label id (options come from the template's
    verbalizer). Generation: ``references`` (every acceptable answer). ``variant``: the template text to
    use for formats with variants (COPA's cause/effect).
    """

    uid: str
    slots: Mapping[str, Any]
    options: tuple[str, ...] = ()
    answer: int = -1
    references: tuple[str, ...] = ()
    variant: str | None = None


class Benchmark:
    """Base class of every benchmark provider (see the module docstring for what a subclass sets)."""

    name: ClassVar[str] = ""
    cluster: ClassVar[str] = ""
    kind: ClassVar[str] = CHOICE
    format: ClassVar[str] = ""
    metrics: ClassVar[tuple[str, ...]] = CHOICE_METRICS
    description: ClassVar[str] = ""
    hub_name: ClassVar[str] = ""
    configs: ClassVar[Mapping[str, str]] = {}
    splits: ClassVar[tuple[str, ...]] = ("test",)
    default_split: ClassVar[str] = "test"
    fields: ClassVar[tuple[str, ...]] = ()
    builtin: ClassVar[bool] = False
    tfds_name: ClassVar[str | None] = None  # "{lang}" is filled in; None: TFDS does not have the set

    def __init__(self, source: str | None = None):
        if source is not None and (not isinstance(source, str) or not source.strip()):
            raise ConfigError(f"{self.name}: source must be a hub name or a directory, got {source!r}")
        self.source = source or self.hub_name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, source={self.source!r})"

    # ------------------------------------------------------------------------------------ metadata
    @property
    def languages(self) -> tuple[str, ...]:
        """Content languages the benchmark has, sorted."""
        return tuple(sorted(self.configs))

    def check_language(self, lang: str) -> str:
        if lang not in self.configs:
            raise ConfigError(f"benchmark {self.name!r} has no language {lang!r}; it has "
                              f"{', '.join(self.languages)}")
        return lang

    def config_for(self, lang: str) -> str:
        """The hub config holding ``lang`` (``kor_Hang`` for Belebele Korean)."""
        return self.configs[self.check_language(lang)]

    def check_split(self, split: str | None) -> str:
        split = self.default_split if split is None else split
        if split not in self.splits:
            raise ConfigError(f"benchmark {self.name!r} has no split {split!r}; splits: {', '.join(self.splits)}")
        return split

    @property
    def template_languages(self) -> tuple[str, ...]:
        return btpl.template_languages(self.format)

    def templates(self, lang: str) -> tuple[btpl.Template, ...]:
        return btpl.templates(self.format, lang)

    # ------------------------------------------------------------------------------------- records
    def select(self, records: list[dict[str, Any]], lang: str) -> list[dict[str, Any]]:
        """Records of ``lang`` among a config's records (all of them, unless a config mixes languages)."""
        return records

    def records(self, lang: str, split: str | None = None) -> list[dict[str, Any]]:
        """The raw records (hub field names) of one language and split, schema-checked."""
        config = self.config_for(lang)
        split = self.check_split(split)
        if sources.is_tfds(self.source):
            if self.tfds_name is None:
                raise ConfigError(f"benchmark {self.name!r} is not in TensorFlow Datasets; use its hub name "
                                  f"{self.hub_name!r} or a local directory")
            name = self.tfds_name.format(lang=lang)
            found = [self.from_tfds(r, lang) for r in sources.read(self.source, name, split, self.name)]
            where = f"tfds:{name}/{split}"
        else:
            found = sources.read(self.source, config, split, self.name)
            where = f"{self.source}:{config}/{split}"
        sources.check_fields(found, self.fields, self.name, where)
        return self.select(found, lang)

    def from_tfds(self, record: dict[str, Any], lang: str) -> dict[str, Any]:
        """A TFDS record in the hub's field names (the same names unless a benchmark says otherwise)."""
        return record

    def item(self, record: Mapping[str, Any], index: int, lang: str) -> Item:
        raise NotImplementedError

    def items(self, lang: str, split: str | None = None, max_items: int | None = None) -> list[Item]:
        """Items of one language and split, in file order (the first ``max_items`` when given)."""
        if max_items is not None and (isinstance(max_items, bool) or not isinstance(max_items, int)
                                      or max_items < 1):
            raise ConfigError(f"max_items must be a positive int or None, got {max_items!r}")
        split = self.check_split(split)
        found = self.records(lang, split)
        if max_items is not None:
            found = found[:max_items]
        where = f"{self.source}:{self.config_for(lang)}/{split}"
        out = []
        for i, record in enumerate(found):
            try:
                out.append(self.item(record, i, lang))
            except (KeyError, TypeError, ValueError) as e:
                raise DataError(f"{self.name}: {where} record {i}: unexpected value ({type(e).__name__}: {e})") from None
        return out

    def check(self, lang: str, split: str | None = None, *, template_mode: str = "native",
              template_lang: str | None = None, fallback_lang: str | None = btpl.DEFAULT_FALLBACK) -> tuple[str, str]:
        """Validate a request without reading any data (for configs checked whole before a run starts):
        the language, split and template setting; returns (split, template language)."""
        self.check_language(lang)
        split = self.check_split(split)
        return split, self.resolve_template_lang(template_mode, lang, template_lang, fallback_lang)

    def resolve_template_lang(self, mode: str, lang: str, template_lang: str | None,
                              fallback_lang: str | None) -> str:
        return btpl.resolve(mode, lang, self.format, template_lang, fallback_lang)[0]

    # ------------------------------------------------------------------------------------ examples
    def examples(self, lang: str, split: str | None = None, *, template_mode: str = "native",
                 template_lang: str | None = None, fallback_lang: str | None = btpl.DEFAULT_FALLBACK,
                 max_items: int | None = None, all_templates: bool = True) -> list[dict[str, Any]]:
        """Rendered examples of one content language: every template per item (``all_templates``, as the
        evaluator reports per template) or one template per item, rotating."""
        self.check_language(lang)
        split = self.check_split(split)
        t_lang, fallback = btpl.resolve(template_mode, lang, self.format, template_lang, fallback_lang)
        prompts = btpl.templates(self.format, t_lang)
        out = []
        for i, item in enumerate(self.items(lang, split, max_items)):
            chosen = prompts if all_templates else (prompts[i % len(prompts)],)
            out.extend(self._example(item, t, lang, split, fallback) for t in chosen)
        return out

    def _example(self, item: Item, template: btpl.Template, lang: str, split: str,
                 fallback: bool) -> dict[str, Any]:
        spec = btpl.FORMATS[self.format]
        values = dict(item.slots)
        if spec.generation:
            options: list[str] = []
            answer = -1
            references = list(item.references)
            target = references[0]
        else:
            options = list(template.choices) if spec.labels else list(item.options)
            if spec.labels == 0:
                values["options"] = options
            answer = item.answer
            if not 0 <= answer < len(options):
                raise DataError(f"{self.name}: item {item.uid}: gold index {answer} outside {len(options)} options")
            target, references = options[answer], [options[answer]]
        example = {
            "id": f"{self.name}/{lang}/{split}/{item.uid}/{template.id}",
            "task": self.name,
            "benchmark": self.name,
            "cluster": self.cluster,
            "kind": self.kind,
            "split": split,
            "content_lang": lang,
            "template_lang": template.lang,
            "template_id": template.id,
            "template_fallback": fallback,
            "inputs": btpl.render(template, values, item.variant),
            "targets": target,
            "options": options,
            "answer": answer,
            "references": references,
            "metrics": list(self.metrics),
            "units": [f"{self.name}:{self.config_for(lang)}/{split}/{item.uid}"],
        }
        if self.kind == CHOICE:
            example["null_inputs"] = btpl.render_null(template, values, item.variant)
        return example


# ------------------------------------------------------------------------------------------- registry
_REGISTRY: dict[str, type[Benchmark]] = {}
B = TypeVar("B", bound=type[Benchmark])


def register(cls: B) -> B:
    """Class decorator: add a benchmark to the registry (its ``name`` must be new and its format known)."""
    if not cls.name or cls.name in _REGISTRY:
        raise ConfigError(f"benchmark name {cls.name!r} is empty or already registered")
    if cls.kind not in (CHOICE, GENERATION):
        raise ConfigError(f"benchmark {cls.name!r}: kind {cls.kind!r}")
    if not cls.builtin:
        if cls.format not in btpl.FORMATS:
            raise ConfigError(f"benchmark {cls.name!r}: unknown format {cls.format!r}")
        if btpl.FORMATS[cls.format].generation != (cls.kind == GENERATION):
            raise ConfigError(f"benchmark {cls.name!r}: kind {cls.kind!r} does not fit format {cls.format!r}")
        if cls.default_split not in cls.splits:
            raise ConfigError(f"benchmark {cls.name!r}: default split {cls.default_split!r} not in {cls.splits}")
    _REGISTRY[cls.name] = cls
    return cls


def names(include_builtin: bool = True) -> tuple[str, ...]:
    """Registered benchmark names, in registration order."""
    return tuple(n for n, cls in _REGISTRY.items() if include_builtin or not cls.builtin)


def get(name: str, source: str | None = None) -> Benchmark:
    """The benchmark ``name`` reading from ``source`` (a hub name or local directory; its hub by default).
    ``lm_eval:<task>`` is an lm-evaluation-harness task (``xlt.benchmarks.harness_tasks``; ``source``: a
    directory of task YAML files)."""
    if isinstance(name, str) and name.startswith("lm_eval:"):
        from xlt.benchmarks import harness_tasks  # lm-eval only when a harness task is named

        return harness_tasks.get(name, source)  # type: ignore[return-value]
    if name not in _REGISTRY:
        raise ConfigError(f"unknown benchmark {name!r}; registered: {', '.join(_REGISTRY)} "
                          "(or lm_eval:<harness task>)")
    return _REGISTRY[name](source)


def for_language(lang: str, include_builtin: bool = False) -> tuple[str, ...]:
    """Names of the benchmarks that have content language ``lang``."""
    return tuple(n for n in names(include_builtin) if lang in get(n).configs)


# ----------------------------------------------------------------------------------- shared helpers
def label_index(value: Any, mapping: Mapping[Any, int], benchmark: str, name: str) -> int:
    """A record's label as an option index through ``mapping`` (e.g. Belebele {"1": 0, ..., "4": 3});
    DataError naming the field and the accepted values for anything else."""
    key = value
    if isinstance(value, float) and value.is_integer():
        key = int(value)
    if key in mapping and not isinstance(key, bool):
        return mapping[key]
    raise DataError(f"{benchmark}: field {name!r} = {value!r}; expected one of "
                    f"{', '.join(repr(k) for k in mapping)}")


def text_field(record: Mapping[str, Any], name: str, benchmark: str) -> str:
    value = record[name]
    if not isinstance(value, str):
        raise DataError(f"{benchmark}: field {name!r} must be a string, got {type(value).__name__}")
    return value


def uid_of(record: Mapping[str, Any], index: int, *keys: str) -> str:
    """The record's own id field when it has one (first of ``keys``), else its position."""
    for key in keys:
        if record.get(key) not in (None, ""):
            return str(record[key]).replace("/", "_")
    return str(index)


def all_benchmarks() -> Iterable[type[Benchmark]]:
    return tuple(_REGISTRY.values())


def metric_functions() -> Mapping[str, Callable[[Sequence[str], Sequence[Any], str], float]]:
    """Generation metrics of the benchmarks by name, each ``f(predictions, references, lang) -> float``
    (the signature of ``xlt.evaluation.evaluate.GENERATION_METRICS``)."""
    from xlt.evaluation import metrics

    return {
        "squad_exact_match": lambda preds, refs, lang: metrics.squad_exact_match(preds, refs),
        "squad_f1": lambda preds, refs, lang: metrics.squad_f1(preds, refs),
        "number_match": lambda preds, refs, lang: metrics.number_match(preds, refs),
    }
