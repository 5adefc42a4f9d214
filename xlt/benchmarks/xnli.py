"""XNLI (Conneau et al., 2018): natural language inference in 15 languages, 3 labels.

Hub ``facebook/xnli``, one config per language (ISO codes, plus ``all_languages``, not used), splits
train / validation / test, fields ``premise``, ``hypothesis``, ``label`` with 0 entailment, 1 neutral,
2 contradiction (also in TFDS as ``xnli``: ``source="tfds"``). Scored by rank classification over each template's three verbalizer words, in label-id
order (e.g. "Yes" / "Maybe" / "No").
"""

from __future__ import annotations

from xlt.benchmarks.registry import Benchmark, Item, label_index, register, text_field, uid_of
from xlt.instruct.meta import CHOICE

LABELS = ("entailment", "neutral", "contradiction")


@register
class XNLI(Benchmark):
    name = "xnli"
    cluster = "nli"
    kind = CHOICE
    format = "nli"
    description = "does the premise entail, contradict or leave open the hypothesis (3 labels)"
    hub_name = "facebook/xnli"
    configs = {c: c for c in ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur",
                              "vi", "zh")}
    splits = ("train", "validation", "test")
    default_split = "test"
    fields = ("premise", "hypothesis", "label")
    tfds_name = "xnli"  # one record per pair with every language (splits validation, test)

    def from_tfds(self, record, lang):
        """TFDS's ``xnli`` keeps all 15 languages in one record: premise {lang: text}, hypothesis
        {language: [...], translation: [...]}; the label ids are the hub's."""
        premise, hypothesis = record.get("premise"), record.get("hypothesis")
        if not isinstance(premise, dict) or not isinstance(hypothesis, dict) or lang not in premise:
            return record  # not TFDS's layout: let the schema check name what is missing
        by_lang = dict(zip(hypothesis.get("language", []), hypothesis.get("translation", [])))
        return {"premise": premise[lang], "hypothesis": by_lang.get(lang), "label": record.get("label")}

    def item(self, record, index, lang):
        return Item(uid_of(record, index, "id"),
                    {"premise": text_field(record, "premise", self.name),
                     "hypothesis": text_field(record, "hypothesis", self.name)},
                    answer=label_index(record["label"], {0: 0, 1: 1, 2: 2}, self.name, "label"))
