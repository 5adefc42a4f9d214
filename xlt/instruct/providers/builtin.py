"""The built-in meta-datasets (``xlt.instruct.meta``) as a provider: the one *templated* provider.

Items are content plus template slots; ``examples`` renders them under the run's template setting
(native / fixed / cross-lingual), one template per item for training and every template per item for
evaluation, exactly as ``meta.examples`` does. Sizes in examples are item counts (``meta.items``), which
``xlt.instruct.tasks`` has always mixed by; characters and tokens are measured on the rendered examples.
"""

from __future__ import annotations

from typing import Any

from xlt.data import languages as language_table
from xlt.instruct import meta
from xlt.instruct.providers.base import InstructionTask, Provider, check_unit


class MetaProvider(Provider):
    """``xlt.instruct.meta`` under a ``MetaConfig`` (seed, options, pivot, caps)."""

    name = "builtin"
    templated = True
    default_held_out = meta.DEFAULT_HELD_OUT

    def __init__(self, config: meta.MetaConfig | None = None):
        self.config = config or meta.DEFAULT_CONFIG

    def languages(self) -> tuple[str, ...]:
        return tuple(code for code in language_table.CODES if meta.tasks_for(code, config=self.config))

    def splits(self, lang: str) -> tuple[str, ...]:
        return ("train", "validation", "test")

    def tasks(self, lang: str) -> tuple[InstructionTask, ...]:
        return tuple(InstructionTask(t, meta.TASKS[t].cluster) for t in meta.tasks_for(lang, config=self.config))

    def clusters(self) -> dict[str, tuple[str, ...]]:
        return dict(meta.CLUSTERS)

    def check_clusters(self, clusters) -> tuple[str, ...]:
        return meta.check_clusters(clusters)

    def cluster_of(self, task: str) -> str:
        return meta.task_spec(task).cluster

    def examples(self, task: str, lang: str, split: str, setting: Any = None,
                 all_templates: bool = False) -> list[dict[str, Any]]:
        mode = getattr(setting, "mode", "native")
        return meta.examples(task, lang, split, mode=mode, template_lang=getattr(setting, "template_lang", None),
                             fallback_lang=getattr(setting, "fallback_lang", None), config=self.config,
                             all_templates=all_templates)

    def size(self, task: str, lang: str, split: str = "train", unit: str = "examples", vocab: Any = None,
             setting: Any = None) -> int:
        check_unit(unit, vocab)
        if unit == "examples":
            return len(meta.items(task, lang, split, self.config))
        return super().size(task, lang, split, unit, vocab, setting)
