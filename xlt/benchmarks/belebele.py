"""Belebele (Bandarkar et al., 2024): multiple-choice reading comprehension on FLORES passages, 122 variants.

Hub ``facebook/belebele``: configs are FLORES-200 codes (``kor_Hang``, ``eng_Latn``, ``zho_Hans``...),
each with one split ``test`` of 900 questions; fields ``flores_passage``, ``question``, ``mc_answer1`` …
``mc_answer4`` and ``correct_answer_num``, the 1-based number of the right answer as a string ("1" … "4").
``configs`` maps xlt's language codes to the FLORES variant Belebele uses for them (Standard Arabic
``arb_Arab``, Simplified Chinese ``zho_Hans``, Swahili ``swh_Latn``, Western Persian ``pes_Arab``); add a
line to reach any other of the 122.
"""

from __future__ import annotations

from xlt.benchmarks.registry import Benchmark, Item, label_index, register, text_field, uid_of
from xlt.instruct.meta import CHOICE

FLORES: dict[str, str] = {
    "ar": "arb_Arab", "bn": "ben_Beng", "de": "deu_Latn", "en": "eng_Latn", "es": "spa_Latn", "fa": "pes_Arab",
    "fr": "fra_Latn", "hi": "hin_Deva", "id": "ind_Latn", "it": "ita_Latn", "ja": "jpn_Jpan", "ko": "kor_Hang",
    "pl": "pol_Latn", "pt": "por_Latn", "ro": "ron_Latn", "ru": "rus_Cyrl", "sw": "swh_Latn", "th": "tha_Thai",
    "tl": "tgl_Latn", "tr": "tur_Latn", "uk": "ukr_Cyrl", "vi": "vie_Latn", "zh": "zho_Hans",
}  # fmt: skip


@register
class Belebele(Benchmark):
    name = "belebele"
    cluster = "reading_comprehension"
    kind = CHOICE
    format = "mrc"
    description = "answer a question about a FLORES passage (4 options)"
    hub_name = "facebook/belebele"
    configs = FLORES
    splits = ("test",)
    default_split = "test"
    fields = ("flores_passage", "question", "mc_answer1", "mc_answer2", "mc_answer3", "mc_answer4",
              "correct_answer_num")

    def item(self, record, index, lang):
        uid = f"{record['link']}#{record['question_number']}" if record.get("link") and \
            record.get("question_number") is not None else uid_of(record, index)
        return Item(uid.replace("/", "_"),
                    {"passage": text_field(record, "flores_passage", self.name),
                     "question": text_field(record, "question", self.name)},
                    options=tuple(text_field(record, f"mc_answer{k}", self.name) for k in range(1, 5)),
                    answer=label_index(record["correct_answer_num"],
                                       {"1": 0, "2": 1, "3": 2, "4": 3, 1: 0, 2: 1, 3: 2, 4: 3}, self.name,
                                       "correct_answer_num"))
