"""TyDi QA GoldP (Clark et al., 2020): extractive QA on a passage known to hold the answer, 9 languages.

Hub ``google-research-datasets/tydiqa``, config ``secondary_task`` (the gold-passage task): one config for
every language, whose record ids start with the language's English name (``korean-…``, ``english-…``);
splits train / validation (the test set is hidden; validation is the evaluation split), fields ``id``,
``title``, ``context``, ``question``, ``answers`` = {``text``: [...], ``answer_start``: [...]}. Scored by
generation with the official SQuAD-style answer normalisation: exact match and token F1, each the best
over the gold answers (``xlt.evaluation.metrics.squad_exact_match`` / ``squad_f1``).
"""

from __future__ import annotations

from xlt.benchmarks.registry import Benchmark, Item, register, text_field, uid_of
from xlt.errors import DataError
from xlt.instruct.meta import GENERATION

PREFIXES: dict[str, str] = {"arabic": "ar", "bengali": "bn", "english": "en", "finnish": "fi",
                            "indonesian": "id", "korean": "ko", "russian": "ru", "swahili": "sw", "telugu": "te"}
_BY_LANG = {code: prefix for prefix, code in PREFIXES.items()}


@register
class TyDiQAGoldP(Benchmark):
    name = "tydiqa"
    cluster = "extractive_qa"
    kind = GENERATION
    format = "extractive_qa"
    metrics = ("squad_exact_match", "squad_f1")
    description = "answer a question with a span of the gold passage (generation; SQuAD EM/F1)"
    hub_name = "google-research-datasets/tydiqa"
    configs = {code: "secondary_task" for code in _BY_LANG}
    splits = ("train", "validation")
    default_split = "validation"
    fields = ("id", "context", "question", "answers")
    tfds_name = "tydi_qa/goldp"  # SQuAD-like features with the same ids; "validation" holds every language

    def select(self, records, lang):
        prefix = _BY_LANG[lang] + "-"
        for i, record in enumerate(records):
            rid = str(record["id"])
            if rid.split("-", 1)[0] not in PREFIXES:
                raise DataError(f"{self.name}: record {i} id {rid!r} does not start with a TyDi QA language "
                                f"({', '.join(PREFIXES)})")
        return [r for r in records if str(r["id"]).startswith(prefix)]

    def item(self, record, index, lang):
        answers = record["answers"]
        texts = answers.get("text") if isinstance(answers, dict) else None
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise DataError(f"{self.name}: record {record.get('id')!r}: answers must be "
                            f"{{'text': [...], 'answer_start': [...]}} with at least one text, got {answers!r:.80}")
        refs = tuple(dict.fromkeys(texts))  # unique, first occurrence order
        slots = {"context": text_field(record, "context", self.name),
                 "question": text_field(record, "question", self.name),
                 "title": str(record.get("title") or "")}
        return Item(uid_of(record, index, "id"), slots, references=refs)
