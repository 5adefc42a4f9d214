"""XCOPA (Ponti et al., 2020): choice of plausible alternatives (cause or effect) in 11 languages.

Hub ``cambridgeltl/xcopa``, one config per language (et, ht, id, it, qu, sw, ta, th, tr, vi, zh; the
``translation-*`` configs are machine translations into English and are not used), splits validation /
test, fields ``premise``, ``choice1``, ``choice2``, ``question`` ("cause" or "effect"), ``label`` (0: choice1,
1: choice2). XCOPA has no English and no Korean: English COPA is SuperGLUE's, Korean COPA is KoBEST's
(``xlt.benchmarks.kobest``), which use the same templates.
"""

from __future__ import annotations

from xlt.benchmarks.registry import Benchmark, Item, label_index, register, text_field, uid_of
from xlt.errors import DataError
from xlt.instruct.meta import CHOICE


def copa_variant(question: object, mapping: dict[str, str], benchmark: str) -> str:
    if question not in mapping:
        raise DataError(f"{benchmark}: field 'question' = {question!r}; expected one of "
                        f"{', '.join(repr(k) for k in mapping)}")
    return mapping[question]  # type: ignore[index]


@register
class XCOPA(Benchmark):
    name = "xcopa"
    cluster = "commonsense"
    kind = CHOICE
    format = "copa"
    description = "choose the more plausible cause or effect of a premise (2 options)"
    hub_name = "cambridgeltl/xcopa"
    configs = {c: c for c in ("et", "ht", "id", "it", "qu", "sw", "ta", "th", "tr", "vi", "zh")}
    splits = ("validation", "test")
    default_split = "test"
    fields = ("premise", "choice1", "choice2", "question", "label")

    def item(self, record, index, lang):
        return Item(uid_of(record, index, "idx"), {"premise": text_field(record, "premise", self.name)},
                    options=(text_field(record, "choice1", self.name), text_field(record, "choice2", self.name)),
                    answer=label_index(record["label"], {0: 0, 1: 1}, self.name, "label"),
                    variant=copa_variant(record["question"], {"cause": "cause", "effect": "effect"}, self.name))
