"""Fixture copies of the public benchmarks, written in each hub dataset's own schema and layout.

``write_all(root)`` lays out ``root/<benchmark>/<config>/<split>.jsonl`` (Belebele Korean as parquet, the
hub's format) with the hub's config names (``jp``, ``kor_Hang``, ``secondary_task``), split names
(``eval``, ``validation``, ``test_originated``), field names and label encodings (XNLI 0/1/2, Belebele
"1".."4" strings, XWinograd "1"/"2" strings, XStoryCloze 1/2 ints, KoBEST COPA "원인"/"결과").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

XNLI = {
    "en": [
        {"premise": "The cat sat on the warm windowsill all afternoon.",
         "hypothesis": "A cat was sitting somewhere warm.", "label": 0},
        {"premise": "The cat sat on the warm windowsill all afternoon.",
         "hypothesis": "The cat was waiting for its owner.", "label": 1},
        {"premise": "The cat sat on the warm windowsill all afternoon.",
         "hypothesis": "The cat spent the afternoon outside in the snow.", "label": 2},
    ],
    "de": [
        {"premise": "Der Zug fährt um acht Uhr ab.", "hypothesis": "Der Zug fährt am Morgen.", "label": 1},
        {"premise": "Der Zug fährt um acht Uhr ab.", "hypothesis": "Es gibt einen Zug.", "label": 0},
        {"premise": "Der Zug fährt um acht Uhr ab.", "hypothesis": "Heute fährt kein Zug.", "label": 2},
    ],
}
XCOPA = {
    "zh": [
        {"premise": "我的身体在树下投下了影子。", "choice1": "太阳正在升起。", "choice2": "草被割了。",
         "question": "cause", "label": 0, "idx": 1, "changed": False},
        {"premise": "这个女人容忍了她朋友的难相处的行为。", "choice1": "这个女人知道她的朋友正在经历一段困难时期。",
         "choice2": "这个女人觉得她的朋友在利用她的善良。", "question": "cause", "label": 0, "idx": 2, "changed": False},
        {"premise": "我把冰块放进了热茶里。", "choice1": "茶变得更热了。", "choice2": "茶变凉了。",
         "question": "effect", "label": 1, "idx": 3, "changed": True},
    ],
    "et": [
        {"premise": "Mu keha heitis rohule varju.", "choice1": "Päike tõusis.", "choice2": "Muru oli niidetud.",
         "question": "cause", "label": 0, "idx": 1, "changed": False},
    ],
}
PAWSX = {
    "ko": [
        {"id": 1, "sentence1": "1975년 시즌은 미국 프로 미식축구 리그의 56번째 시즌이었다.",
         "sentence2": "미국 프로 미식축구 리그의 56번째 시즌은 1975년 시즌이었다.", "label": 1},
        {"id": 2, "sentence1": "그는 런던에서 태어나 파리에서 자랐다.", "sentence2": "그는 파리에서 태어나 런던에서 자랐다.",
         "label": 0},
    ],
    "en": [
        {"id": 1, "sentence1": "He was born in London and grew up in Paris.",
         "sentence2": "He was born in Paris and grew up in London.", "label": 0},
    ],
}
XWINOGRAD = {
    "jp": [
        {"sentence": "トロフィーがスーツケースに入らなかった。_が大きすぎたからだ。", "option1": "トロフィー",
         "option2": "スーツケース", "answer": "1"},
        {"sentence": "トロフィーがスーツケースに入らなかった。_が小さすぎたからだ。", "option1": "トロフィー",
         "option2": "スーツケース", "answer": "2"},
    ],
    "en": [
        {"sentence": "The trophy doesn't fit into the brown suitcase because the _ is too large.",
         "option1": "trophy", "option2": "suitcase", "answer": "1"},
    ],
}
XSTORYCLOZE = {
    "en": [
        {"story_id": "b929f263-1dcd-4a0b-b267-5d5ff2fe65bb",
         "input_sentence_1": "My friends all love to go to the club to dance.",
         "input_sentence_2": "They think it's a lot of fun and always invite.",
         "input_sentence_3": "I finally decided to tag along last Saturday.",
         "input_sentence_4": "I danced terribly and broke a friend's toe.",
         "sentence_quiz1": "My friends decided to keep inviting me out as I am so much fun.",
         "sentence_quiz2": "The next weekend, I was asked to please stay home.", "answer_right_ending": 2},
    ],
    "zh": [
        {"story_id": "s2", "input_sentence_1": "小明早上起晚了。", "input_sentence_2": "他匆忙出门。",
         "input_sentence_3": "公交车刚刚开走。", "input_sentence_4": "他只好打车去公司。",
         "sentence_quiz1": "他还是迟到了十分钟。", "sentence_quiz2": "他决定以后每天睡到中午。", "answer_right_ending": 1},
    ],
}
BELEBELE = {
    "kor_Hang": [
        {"link": "https://en.wikibooks.org/wiki/Accordion/Right_hand", "question_number": 1,
         "flores_passage": "아코디언을 연주할 때는 손에 힘을 빼야 합니다. 건반을 너무 세게 누르면 손이 빨리 지칩니다.",
         "question": "아코디언을 연주할 때 무엇을 피해야 하나요?", "mc_answer1": "손에 힘을 빼는 것",
         "mc_answer2": "건반을 천천히 누르는 것", "mc_answer3": "건반을 너무 세게 누르는 것",
         "mc_answer4": "음량을 줄이는 것", "correct_answer_num": "3", "dialect": "kor_Hang",
         "ds": "2023-05-03"},
        {"link": "https://en.wikibooks.org/wiki/Accordion/Right_hand", "question_number": 2,
         "flores_passage": "아코디언을 연주할 때는 손에 힘을 빼야 합니다. 건반을 너무 세게 누르면 손이 빨리 지칩니다.",
         "question": "건반을 세게 누르면 어떻게 되나요?", "mc_answer1": "손이 빨리 지친다",
         "mc_answer2": "소리가 작아진다", "mc_answer3": "건반이 부서진다", "mc_answer4": "아무 일도 없다",
         "correct_answer_num": "1", "dialect": "kor_Hang", "ds": "2023-05-03"},
    ],
    "eng_Latn": [
        {"link": "https://en.wikibooks.org/wiki/Accordion/Right_hand", "question_number": 1,
         "flores_passage": "Make sure your hand is as relaxed as possible while playing the accordion.",
         "question": "What should be avoided when playing the accordion?", "mc_answer1": "A relaxed hand",
         "mc_answer2": "Pressing keys slowly", "mc_answer3": "Pressing keys too hard", "mc_answer4": "Low volume",
         "correct_answer_num": "3", "dialect": "eng_Latn", "ds": "2023-05-03"},
    ],
}
TYDIQA = {
    "secondary_task": [
        {"id": "english-3001470000000000000-1", "title": "Mount Everest",
         "context": "Mount Everest is Earth's highest mountain above sea level, located in the Himalayas.",
         "question": "Where is Mount Everest located?",
         "answers": {"text": ["in the Himalayas", "the Himalayas"], "answer_start": [67, 70]}},
        {"id": "korean-5123000000000000000-0", "title": "서울",
         "context": "서울특별시는 대한민국의 수도이며 한강이 도시를 가로질러 흐른다.",
         "question": "대한민국의 수도는 어디인가?",
         "answers": {"text": ["서울특별시", "서울특별시"], "answer_start": [0, 0]}},
        {"id": "finnish-8000000000000000000-0", "title": "Helsinki",
         "context": "Helsinki on Suomen pääkaupunki.", "question": "Mikä on Suomen pääkaupunki?",
         "answers": {"text": ["Helsinki"], "answer_start": [0]}},
    ],
}
MGSM = {
    "en": [
        {"question": "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes "
                     "muffins for her friends every day with four. She sells the remainder at the farmers' market "
                     "daily for $2 per fresh duck egg. How much in dollars does she make every day at the "
                     "farmers' market?", "answer": None, "answer_number": 18, "equation_solution": None},
    ],
    "ja": [
        {"question": "ジャネットのアヒルは1日に16個の卵を産みます。ジャネットは毎朝3個を朝食に食べ、毎日4個を使って友人のために"
                     "マフィンを焼きます。残りを1個2ドルで売ります。毎日いくら稼ぎますか？",
         "answer": None, "answer_number": 18, "equation_solution": None},
    ],
}
KOBEST = {
    "boolq": [{"paragraph": "두아 리파(Dua Lipa, 1995년 8월 22일 ~ )는 잉글랜드의 싱어송라이터, 모델이다.",
               "question": "두아 리파는 영국인인가?", "label": 1}],
    "copa": [{"premise": "물을 오래 끓였다.", "question": "결과", "alternative_1": "물의 양이 늘어났다.",
              "alternative_2": "물의 양이 줄어들었다.", "label": 1},
             {"premise": "사과가 바닥에 떨어졌다.", "question": "원인", "alternative_1": "사과가 익었다.",
              "alternative_2": "사과가 비쌌다.", "label": 0}],
    "hellaswag": [{"context": "두 남자가 링 위에서 권투를 하고 있다.", "ending_1": "한 남자가 주먹을 날린다.",
                   "ending_2": "두 남자가 케이크를 굽는다.", "ending_3": "관중이 수영을 한다.",
                   "ending_4": "링이 하늘로 날아간다.", "label": 0}],
    "sentineg": [{"sentence": "이 영화는 전혀 재미있지 않았다.", "label": 0},
                 {"sentence": "배우들의 연기가 나쁘지 않았다.", "label": 1}],
    "wic": [{"word": "배", "context_1": "배가 고파서 밥을 먹었다.", "context_2": "배를 타고 섬에 갔다.", "label": 0}],
}

LAYOUT: dict[str, tuple[dict[str, list[dict[str, Any]]], str]] = {
    "xnli": (XNLI, "test"), "xcopa": (XCOPA, "test"), "pawsx": (PAWSX, "test"), "xwinograd": (XWINOGRAD, "test"),
    "xstorycloze": (XSTORYCLOZE, "eval"), "belebele": (BELEBELE, "test"), "tydiqa": (TYDIQA, "validation"),
    "mgsm": (MGSM, "test"), "kobest": (KOBEST, "test"),
}
KOBEST_TASKS = ("boolq", "copa", "hellaswag", "sentineg", "wic")


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def write_parquet(path: Path, records: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(records), path)


def write_all(root: Path) -> dict[str, Path]:
    """Write every fixture set; returns {benchmark name: its source directory}."""
    out = {}
    for name, (by_config, split) in LAYOUT.items():
        base = root / name
        for config, records in by_config.items():
            if name == "belebele" and config == "kor_Hang":
                write_parquet(base / config / f"{split}-00000-of-00001.parquet", records)
            else:
                write_jsonl(base / config / f"{split}.jsonl", records)
        out[name] = base
    write_jsonl(root / "kobest" / "sentineg" / "test_originated.jsonl", KOBEST["sentineg"])
    for task in KOBEST_TASKS:
        out[f"kobest_{task}"] = root / "kobest"
    return out
