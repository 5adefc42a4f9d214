"""XStoryCloze (Lin et al., 2022): choose the right ending of a four-sentence story, 11 languages.

Hub ``juletxara/xstory_cloze``, configs en, ru, zh, es, ar, hi, id, te, sw, eu, my, splits ``train`` (360)
and ``eval`` (1,511), fields ``story_id``, ``input_sentence_1`` … ``input_sentence_4``, ``sentence_quiz1``,
``sentence_quiz2``, ``answer_right_ending`` (1 or 2). The four sentences are joined with a space (no
space for zh, where sentences are not separated by one).
"""

from __future__ import annotations

from xlt.benchmarks.registry import Benchmark, Item, label_index, register, text_field, uid_of
from xlt.instruct.meta import CHOICE

_NO_SPACE = frozenset({"zh", "ja", "th", "my"})


@register
class XStoryCloze(Benchmark):
    name = "xstorycloze"
    cluster = "sentence_completion"
    kind = CHOICE
    format = "story"
    description = "choose the ending of a four-sentence story (2 options)"
    hub_name = "juletxara/xstory_cloze"
    configs = {c: c for c in ("ar", "en", "es", "eu", "hi", "id", "my", "ru", "sw", "te", "zh")}
    splits = ("train", "eval")
    default_split = "eval"
    fields = ("input_sentence_1", "input_sentence_2", "input_sentence_3", "input_sentence_4",
              "sentence_quiz1", "sentence_quiz2", "answer_right_ending")

    def item(self, record, index, lang):
        sep = "" if lang in _NO_SPACE else " "
        story = sep.join(text_field(record, f"input_sentence_{k}", self.name).strip() for k in range(1, 5))
        return Item(uid_of(record, index, "story_id"), {"story": story},
                    options=(text_field(record, "sentence_quiz1", self.name),
                             text_field(record, "sentence_quiz2", self.name)),
                    answer=label_index(record["answer_right_ending"], {1: 0, 2: 1, "1": 0, "2": 1}, self.name,
                                       "answer_right_ending"))
