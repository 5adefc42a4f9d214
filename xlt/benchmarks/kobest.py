"""KoBEST (Kim et al., 2022): five Korean benchmarks — BoolQ, COPA, HellaSwag, SentiNeg, WiC.

Hub ``skt/kobest_v1``, one config per task, splits train / validation / test (SentiNeg also has
``test_originated``), Korean only. Fields and labels as published:

* ``boolq``: ``paragraph``, ``question``, ``label`` (0 False, 1 True);
* ``copa``: ``premise``, ``question`` ("원인" cause / "결과" effect), ``alternative_1``, ``alternative_2``,
  ``label`` (0: alternative_1, 1: alternative_2) — the COPA templates of XCOPA;
* ``hellaswag``: ``context``, ``ending_1`` … ``ending_4``, ``label`` (0-3);
* ``sentineg``: ``sentence``, ``label`` (0 negative, 1 positive);
* ``wic``: ``word``, ``context_1``, ``context_2``, ``label`` (0: different meaning, 1: same meaning).

XNLI, XCOPA and XStoryCloze have no Korean; with PAWS-X and Belebele, these are the Korean side of the
English/Korean study.
"""

from __future__ import annotations

from xlt.benchmarks.registry import Benchmark, Item, label_index, register, text_field, uid_of
from xlt.benchmarks.xcopa import copa_variant
from xlt.instruct.meta import CHOICE


class _KoBEST(Benchmark):
    kind = CHOICE
    hub_name = "skt/kobest_v1"
    splits = ("train", "validation", "test")
    default_split = "test"


@register
class KoBESTBoolQ(_KoBEST):
    name = "kobest_boolq"
    configs = {"ko": "boolq"}
    cluster = "boolean_qa"
    format = "boolq"
    description = "answer a yes/no question about a Korean Wikipedia paragraph"
    fields = ("paragraph", "question", "label")

    def item(self, record, index, lang):
        return Item(uid_of(record, index), {"passage": text_field(record, "paragraph", self.name),
                                            "question": text_field(record, "question", self.name)},
                    answer=label_index(record["label"], {0: 0, 1: 1}, self.name, "label"))


@register
class KoBESTCOPA(_KoBEST):
    name = "kobest_copa"
    configs = {"ko": "copa"}
    cluster = "commonsense"
    format = "copa"
    description = "choose the more plausible cause or effect (Korean COPA)"
    fields = ("premise", "question", "alternative_1", "alternative_2", "label")

    def item(self, record, index, lang):
        return Item(uid_of(record, index), {"premise": text_field(record, "premise", self.name)},
                    options=(text_field(record, "alternative_1", self.name),
                             text_field(record, "alternative_2", self.name)),
                    answer=label_index(record["label"], {0: 0, 1: 1}, self.name, "label"),
                    variant=copa_variant(record["question"], {"원인": "cause", "결과": "effect"}, self.name))


@register
class KoBESTHellaSwag(_KoBEST):
    name = "kobest_hellaswag"
    configs = {"ko": "hellaswag"}
    cluster = "sentence_completion"
    format = "hellaswag"
    description = "choose the most plausible continuation of a Korean context (4 options)"
    fields = ("context", "ending_1", "ending_2", "ending_3", "ending_4", "label")

    def item(self, record, index, lang):
        return Item(uid_of(record, index), {"context": text_field(record, "context", self.name)},
                    options=tuple(text_field(record, f"ending_{k}", self.name) for k in range(1, 5)),
                    answer=label_index(record["label"], {0: 0, 1: 1, 2: 2, 3: 3}, self.name, "label"))


@register
class KoBESTSentiNeg(_KoBEST):
    name = "kobest_sentineg"
    configs = {"ko": "sentineg"}
    cluster = "sentiment"
    format = "sentiment"
    splits = ("train", "validation", "test", "test_originated")
    description = "is a Korean sentence (often with negation) positive or negative"
    fields = ("sentence", "label")

    def item(self, record, index, lang):
        return Item(uid_of(record, index), {"sentence": text_field(record, "sentence", self.name)},
                    answer=label_index(record["label"], {0: 0, 1: 1}, self.name, "label"))


@register
class KoBESTWiC(_KoBEST):
    name = "kobest_wic"
    configs = {"ko": "wic"}
    cluster = "word_sense"
    format = "wic"
    description = "does a word mean the same in two Korean sentences"
    fields = ("word", "context_1", "context_2", "label")

    def item(self, record, index, lang):
        return Item(uid_of(record, index), {"word": text_field(record, "word", self.name),
                                            "sentence1": text_field(record, "context_1", self.name),
                                            "sentence2": text_field(record, "context_2", self.name)},
                    answer=label_index(record["label"], {0: 0, 1: 1}, self.name, "label"))
