"""XWinograd (Tikhonov & Ryabinin, 2021; Muennighoff et al., 2022): Winograd schemas in 6 languages.

Hub ``Muennighoff/xwinograd``, configs en, fr, jp (Japanese: the config is ``jp``, not the ISO ``ja``),
pt, ru, zh, one split ``test``, fields ``sentence`` (with ``_`` where the answer goes), ``option1``,
``option2``, ``answer`` (the string "1" or "2"). Templates show the sentence with its blank and ask which
option fills it; the options are scored as answers.
"""

from __future__ import annotations

from xlt.benchmarks.registry import Benchmark, Item, label_index, register, text_field, uid_of
from xlt.instruct.meta import CHOICE


@register
class XWinograd(Benchmark):
    name = "xwinograd"
    cluster = "coreference"
    kind = CHOICE
    format = "winograd"
    description = "which of two candidates fills the blank of a Winograd schema"
    hub_name = "Muennighoff/xwinograd"
    configs = {"en": "en", "fr": "fr", "ja": "jp", "pt": "pt", "ru": "ru", "zh": "zh"}
    splits = ("test",)
    default_split = "test"
    fields = ("sentence", "option1", "option2", "answer")

    def item(self, record, index, lang):
        return Item(uid_of(record, index), {"sentence": text_field(record, "sentence", self.name)},
                    options=(text_field(record, "option1", self.name), text_field(record, "option2", self.name)),
                    answer=label_index(record["answer"], {"1": 0, "2": 1, 1: 0, 2: 1}, self.name, "answer"))
