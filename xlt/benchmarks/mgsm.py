"""MGSM (Shi et al., 2022): 250 grade-school math problems of GSM8K translated into 10 languages (+ English).

Hub ``juletxara/mgsm``, configs bn, de, en, es, fr, ja, ru, sw, te, th, zh, splits ``train`` (8 worked
exemplars) and ``test`` (250), fields ``question``, ``answer`` (the worked solution in train, empty in
test), ``answer_number`` (the final number) and ``equation_solution``. Scored by generation: exact match
of the last number in the model's answer with ``answer_number`` (``xlt.evaluation.metrics.number_match``).
"""

from __future__ import annotations

from xlt.benchmarks.registry import Benchmark, Item, register, text_field, uid_of
from xlt.errors import DataError
from xlt.instruct.meta import GENERATION


def format_number(value: object) -> str:
    """``answer_number`` as text: 18 -> "18", 18.0 -> "18", 2.5 -> "2.5"."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise DataError(f"mgsm: answer_number must be a number, got {value!r}")
    try:
        number = float(value)
    except ValueError:
        raise DataError(f"mgsm: answer_number must be a number, got {value!r}") from None
    return str(int(number)) if number.is_integer() else repr(number)


@register
class MGSM(Benchmark):
    name = "mgsm"
    cluster = "math"
    kind = GENERATION
    format = "math"
    metrics = ("number_match",)
    description = "solve a grade-school math word problem (generation; the final number must match)"
    hub_name = "juletxara/mgsm"
    configs = {c: c for c in ("bn", "de", "en", "es", "fr", "ja", "ru", "sw", "te", "th", "zh")}
    splits = ("train", "test")
    default_split = "test"
    fields = ("question", "answer_number")

    def item(self, record, index, lang):
        return Item(uid_of(record, index), {"question": text_field(record, "question", self.name)},
                    references=(format_number(record["answer_number"]),))
