"""PAWS-X (Yang et al., 2019): paraphrase identification with high lexical overlap, 7 languages.

Hub ``google-research-datasets/paws-x``, configs de, en, es, fr, ja, ko, zh, splits train / validation /
test, fields ``id``, ``sentence1``, ``sentence2``, ``label`` (0: not a paraphrase, 1: paraphrase). Each
template's verbalizer lists the "no" word first (label id order).
"""

from __future__ import annotations

from xlt.benchmarks.registry import Benchmark, Item, label_index, register, text_field, uid_of
from xlt.instruct.meta import CHOICE


@register
class PAWSX(Benchmark):
    name = "pawsx"
    cluster = "paraphrase"
    kind = CHOICE
    format = "paraphrase"
    description = "are two sentences with the same words paraphrases (yes/no)"
    hub_name = "google-research-datasets/paws-x"
    configs = {c: c for c in ("de", "en", "es", "fr", "ja", "ko", "zh")}
    splits = ("train", "validation", "test")
    default_split = "test"
    fields = ("sentence1", "sentence2", "label")
    tfds_name = "paws_x_wiki/{lang}"  # same fields; labels different_meaning (0), paraphrase (1)

    def item(self, record, index, lang):
        return Item(uid_of(record, index, "id"),
                    {"sentence1": text_field(record, "sentence1", self.name),
                     "sentence2": text_field(record, "sentence2", self.name)},
                    answer=label_index(record["label"], {0: 0, 1: 1}, self.name, "label"))
