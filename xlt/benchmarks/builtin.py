"""The built-in Bible/CLDR tasks (``xlt.instruct.meta``) through the benchmark protocol.

Every task of ``meta.TASKS`` is registered under its own name (``verse_translation_pair``,
``next_verse_choice`` ...) with ``builtin = True`` and ``held_out`` telling whether its cluster is held out
by default. ``examples`` calls ``meta.examples`` (nothing about the built-in tasks changes: same items,
templates, ids and keys) and adds the keys the protocol promises: ``benchmark``, ``metrics``,
``template_fallback`` and, for choice tasks, ``null_inputs`` (the template rendered with every content slot
replaced by "N/A"; language-name slots and options kept). Its "configs" are the languages the task has data
for; splits are the data layer's train / validation / test.
"""

from __future__ import annotations

from typing import Any

from xlt.benchmarks import templates as btpl
from xlt.benchmarks.registry import CHOICE_METRICS, Benchmark, register
from xlt.data import languages as language_table
from xlt.data.splits import SPLITS
from xlt.errors import ConfigError
from xlt.instruct import meta
from xlt.instruct import templates as tpl


class BuiltinTask(Benchmark):
    """Adapter over one built-in task (subclassed per task by ``_register_builtins``)."""

    builtin = True
    hub_name = "xlt:builtin"
    splits = SPLITS
    default_split = "test"
    task = ""
    held_out = False

    def __init__(self, source: str | None = None):
        if source is not None:
            raise ConfigError(f"{self.name} is built from the packaged Bible/CLDR and takes no source, got {source!r}")
        super().__init__(None)

    @property
    def configs(self):  # type: ignore[override]
        return {code: code for code in language_table.CODES if meta.unavailable_reason(self.task, code) is None}

    @property
    def template_languages(self) -> tuple[str, ...]:
        return tpl.template_languages(self.task)

    def templates(self, lang: str):  # type: ignore[override]
        return tpl.templates(self.task, lang)

    def resolve_template_lang(self, mode, lang, template_lang, fallback_lang):
        return tpl.resolve_template_lang(mode, lang, self.task, template_lang, fallback_lang)

    def records(self, lang, split=None):
        raise NotImplementedError(f"{self.name} is built from the packaged Bible/CLDR; use examples()")

    def examples(self, lang: str, split: str | None = None, *, template_mode: str = "native",
                 template_lang: str | None = None, fallback_lang: str | None = btpl.DEFAULT_FALLBACK,
                 max_items: int | None = None, all_templates: bool = True) -> list[dict[str, Any]]:
        self.check_language(lang)
        split = self.check_split(split)
        if max_items is not None and (isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1):
            raise ConfigError(f"max_items must be a positive int or None, got {max_items!r}")
        found = meta.examples(self.task, lang, split, mode=template_mode, template_lang=template_lang,
                              fallback_lang=fallback_lang, all_templates=all_templates)
        items = {item.uid: item for item in meta.items(self.task, lang, split)}
        by_id = {}
        prefix = f"{self.task}/{lang}/{split}/"
        out, kept = [], []
        for ex in found:
            uid = ex["id"][len(prefix):-len(ex["template_id"]) - 1]  # an item uid may hold "/"
            if uid not in kept:
                if max_items is not None and len(kept) >= max_items:
                    continue
                kept.append(uid)
            template = by_id.get(ex["template_id"])
            if template is None:
                template = next(t for t in tpl.templates(self.task, ex["template_lang"])
                                if t.id == ex["template_id"])
                by_id[ex["template_id"]] = template
            extra: dict[str, Any] = {
                "benchmark": self.name,
                "metrics": list(self.metrics),
                "template_fallback": template_mode == "native" and ex["template_lang"] != lang,
            }
            if self.kind == meta.CHOICE:
                slots = items[uid].slots
                nulls = {k: (v if k == "options" or k in tpl.LANG_SLOTS else btpl.NULL_VALUE)
                         for k, v in slots.items()}
                extra["null_inputs"] = tpl.render(template, nulls)
            out.append({**ex, **extra})
        return out


def _register_builtins() -> None:
    for spec in meta.TASKS.values():
        attrs = {
            "name": spec.name, "task": spec.name, "cluster": spec.cluster, "kind": spec.kind,
            "description": spec.description, "held_out": spec.cluster in meta.DEFAULT_HELD_OUT,
            "metrics": CHOICE_METRICS if spec.kind == meta.CHOICE else spec.metrics,
        }
        register(type(f"Builtin_{spec.name}", (BuiltinTask,), attrs))


_register_builtins()
