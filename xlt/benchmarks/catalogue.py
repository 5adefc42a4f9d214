"""The benchmark templates, written directly in each language (see ``xlt.benchmarks.templates``).

Three or more templates per (format, language) for en, ko, ja, zh, de, fr, es, ru wherever a benchmark of
the format has that language, and English for every format (the fallback and the fixed/cross-lingual
template language). Label formats list their verbalizer in label-id order; no template names the gold.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Mapping

from xlt.benchmarks.templates import add_template


@dataclass(frozen=True)
class _T:
    text: str | Mapping[str, str]
    choices: tuple[str, ...] = ()
    style: str = "dash"


def L(text: str, *choices: str) -> _T:
    """A label-format template and its verbalizer (label id order)."""
    return _T(text, choices)


def O(text: str, style: str = "dash") -> _T:  # noqa: E743
    """An option-format template (options from the record, laid out in ``style``)."""
    return _T(text, (), style)


def V(cause: str, effect: str, style: str = "dash") -> _T:
    """A COPA template: one text asking for the cause, one for the effect."""
    return _T({"cause": cause, "effect": effect}, (), style)


def G(text: str) -> _T:
    """A generation template."""
    return _T(text)


CATALOGUE: dict[str, dict[str, tuple[_T, ...]]] = {
    # ---------------------------------------------------------------- NLI: 0 entailment, 1 neutral, 2 contradiction
    "nli": {
        "en": (L("{premise}\nQuestion: Does this imply that \"{hypothesis}\"? Yes, maybe, or no?", "Yes", "Maybe", "No"),
               L("Premise: {premise}\nHypothesis: {hypothesis}\nIs the hypothesis true, false, or neither, given the "
                 "premise?", "True", "Neither", "False"),
               L("Suppose \"{premise}\" Can we infer that \"{hypothesis}\"? Answer always, sometimes, or never.",
                 "Always", "Sometimes", "Never")),
        "de": (L("{premise}\nFrage: Folgt daraus, dass „{hypothesis}“? Ja, vielleicht oder nein?", "Ja", "Vielleicht",
                 "Nein"),
               L("Prämisse: {premise}\nHypothese: {hypothesis}\nIst die Hypothese angesichts der Prämisse wahr, falsch "
                 "oder keines von beiden?", "Wahr", "Keines von beiden", "Falsch"),
               L("Angenommen: „{premise}“ Lässt sich daraus schließen, dass „{hypothesis}“? Antworte mit immer, "
                 "manchmal oder nie.", "Immer", "Manchmal", "Nie")),
        "fr": (L("{premise}\nQuestion : cela implique-t-il que « {hypothesis} » ? Oui, peut-être ou non ?", "Oui",
                 "Peut-être", "Non"),
               L("Prémisse : {premise}\nHypothèse : {hypothesis}\nÉtant donné la prémisse, l'hypothèse est-elle vraie, "
                 "fausse ou ni l'un ni l'autre ?", "Vraie", "Ni l'un ni l'autre", "Fausse"),
               L("Supposons que « {premise} » Peut-on en déduire que « {hypothesis} » ? Répondez par toujours, "
                 "parfois ou jamais.", "Toujours", "Parfois", "Jamais")),
        "es": (L("{premise}\nPregunta: ¿implica esto que «{hypothesis}»? ¿Sí, quizás o no?", "Sí", "Quizás", "No"),
               L("Premisa: {premise}\nHipótesis: {hypothesis}\nDada la premisa, ¿la hipótesis es verdadera, falsa o "
                 "ninguna de las dos?", "Verdadera", "Ninguna de las dos", "Falsa"),
               L("Supongamos que «{premise}». ¿Podemos deducir que «{hypothesis}»? Responde siempre, a veces o "
                 "nunca.", "Siempre", "A veces", "Nunca")),
        "ru": (L("{premise}\nВопрос: следует ли из этого, что «{hypothesis}»? Да, возможно или нет?", "Да",
                 "Возможно", "Нет"),
               L("Посылка: {premise}\nГипотеза: {hypothesis}\nЕсли посылка верна, гипотеза истинна, ложна или ни то "
                 "ни другое?", "Истинна", "Ни то ни другое", "Ложна"),
               L("Допустим, «{premise}». Можно ли заключить, что «{hypothesis}»? Ответьте: всегда, иногда или "
                 "никогда.", "Всегда", "Иногда", "Никогда")),
        "zh": (L("{premise}\n问题：这是否意味着“{hypothesis}”？请回答是、也许或否。", "是", "也许", "否"),
               L("前提：{premise}\n假设：{hypothesis}\n根据前提，假设是正确、错误，还是无法判断？", "正确", "无法判断", "错误"),
               L("假设“{premise}”。能否推断出“{hypothesis}”？请回答总是、有时或从不。", "总是", "有时", "从不")),
    },
    # ------------------------------------------------------------------- paraphrase: 0 no, 1 yes
    "paraphrase": {
        "en": (L("Sentence 1: {sentence1}\nSentence 2: {sentence2}\nDo these two sentences mean the same thing? "
                 "Yes or no?", "No", "Yes"),
               L("\"{sentence1}\"\n\"{sentence2}\"\nIs the second sentence a paraphrase of the first? Answer true or "
                 "false.", "False", "True"),
               L("Are the following two sentences paraphrases of each other?\n{sentence1}\n{sentence2}\nAnswer:",
                 "no", "yes")),
        "de": (L("Satz 1: {sentence1}\nSatz 2: {sentence2}\nBedeuten diese beiden Sätze dasselbe? Ja oder nein?",
                 "Nein", "Ja"),
               L("„{sentence1}“\n„{sentence2}“\nIst der zweite Satz eine Umschreibung des ersten? Antworte mit wahr "
                 "oder falsch.", "Falsch", "Wahr"),
               L("Sind die folgenden beiden Sätze Paraphrasen voneinander?\n{sentence1}\n{sentence2}\nAntwort:",
                 "nein", "ja")),
        "es": (L("Oración 1: {sentence1}\nOración 2: {sentence2}\n¿Significan lo mismo estas dos oraciones? ¿Sí o "
                 "no?", "No", "Sí"),
               L("«{sentence1}»\n«{sentence2}»\n¿Es la segunda oración una paráfrasis de la primera? Responde "
                 "verdadero o falso.", "Falso", "Verdadero"),
               L("¿Son las dos oraciones siguientes paráfrasis la una de la otra?\n{sentence1}\n{sentence2}\n"
                 "Respuesta:", "no", "sí")),
        "fr": (L("Phrase 1 : {sentence1}\nPhrase 2 : {sentence2}\nCes deux phrases veulent-elles dire la même "
                 "chose ? Oui ou non ?", "Non", "Oui"),
               L("« {sentence1} »\n« {sentence2} »\nLa deuxième phrase est-elle une paraphrase de la première ? "
                 "Répondez par vrai ou faux.", "Faux", "Vrai"),
               L("Les deux phrases suivantes sont-elles des paraphrases l'une de l'autre ?\n{sentence1}\n{sentence2}\n"
                 "Réponse :", "non", "oui")),
        "ja": (L("文1：{sentence1}\n文2：{sentence2}\nこの二つの文は同じ意味ですか？「はい」か「いいえ」で答えてください。",
                 "いいえ", "はい"),
               L("「{sentence1}」\n「{sentence2}」\n二つ目の文は一つ目の文の言い換えですか？正しいか誤りかで答えてください。",
                 "誤り", "正しい"),
               L("次の二つの文は互いに言い換えになっていますか？\n{sentence1}\n{sentence2}\n答え：", "なっていない", "なっている")),
        "ko": (L("문장 1: {sentence1}\n문장 2: {sentence2}\n두 문장의 의미가 같나요? 예 또는 아니요로 답하세요.",
                 "아니요", "예"),
               L("\"{sentence1}\"\n\"{sentence2}\"\n두 번째 문장은 첫 번째 문장을 바꿔 말한 것인가요? 맞음 또는 틀림으로 "
                 "답하세요.", "틀림", "맞음"),
               L("다음 두 문장은 서로 같은 뜻을 다르게 표현한 것인가요?\n{sentence1}\n{sentence2}\n답:", "아니요", "네")),
        "zh": (L("句子1：{sentence1}\n句子2：{sentence2}\n这两个句子的意思相同吗？请回答是或否。", "否", "是"),
               L("“{sentence1}”\n“{sentence2}”\n第二句是第一句的改写吗？请回答正确或错误。", "错误", "正确"),
               L("下面两个句子是否互为释义？\n{sentence1}\n{sentence2}\n答案：", "不是", "是")),
    },
    # ----------------------------------------------------------------------- boolq: 0 no, 1 yes
    "boolq": {
        "en": (L("{passage}\nQuestion: {question}\nAnswer yes or no.", "No", "Yes"),
               L("Passage: {passage}\nAfter reading this passage, is the answer to \"{question}\" true or false?",
                 "False", "True"),
               L("Read the text and answer the question.\n\n{passage}\n\n{question}", "no", "yes")),
        "ko": (L("{passage}\n질문: {question}\n예 또는 아니요로 답하세요.", "아니요", "예"),
               L("지문: {passage}\n이 지문을 읽고 판단할 때, \"{question}\"에 대한 답은 참인가요, 거짓인가요?", "거짓", "참"),
               L("다음 글을 읽고 질문에 답하세요.\n\n{passage}\n\n{question}", "아니요", "네")),
    },
    # ------------------------------------------------------------------- sentiment: 0 negative, 1 positive
    "sentiment": {
        "en": (L("{sentence}\nIs the sentiment of this sentence negative or positive?", "Negative", "Positive"),
               L("Review: {sentence}\nDid the writer like it? Yes or no?", "No", "Yes"),
               L("Sentence: {sentence}\nSentiment (bad or good):", "bad", "good")),
        "ko": (L("{sentence}\n이 문장의 감정은 부정인가요, 긍정인가요?", "부정", "긍정"),
               L("리뷰: {sentence}\n글쓴이는 만족했나요? 예 또는 아니요로 답하세요.", "아니요", "예"),
               L("문장: {sentence}\n감성(나쁨 또는 좋음):", "나쁨", "좋음")),
    },
    # ------------------------------------------------------------------------- wic: 0 no, 1 yes
    "wic": {
        "en": (L("Sentence 1: {sentence1}\nSentence 2: {sentence2}\nIs the word \"{word}\" used with the same "
                 "meaning in both sentences? Yes or no?", "No", "Yes"),
               L("\"{word}\" appears in these two sentences:\n1. {sentence1}\n2. {sentence2}\nDoes it mean the same "
                 "thing in both? Answer same or different.", "Different", "Same"),
               L("{sentence1}\n{sentence2}\nQuestion: does \"{word}\" have the same sense in the two sentences above? "
                 "True or false?", "False", "True")),
        "ko": (L("문장 1: {sentence1}\n문장 2: {sentence2}\n두 문장에서 '{word}'의 의미가 같나요? 예 또는 아니요로 답하세요.",
                 "아니요", "예"),
               L("단어 '{word}'의 뜻을 다음 두 문장에서 비교하세요.\n1. {sentence1}\n2. {sentence2}\n두 문장에서 뜻이 같은가요, "
                 "다른가요?", "다름", "같음"),
               L("{sentence1}\n{sentence2}\n질문: 위 두 문장에 쓰인 단어 '{word}'의 뜻은 서로 같은가요? 참 또는 거짓으로 "
                 "답하세요.", "거짓", "참")),
    },
    # ----------------------------------------------------------------- COPA: options from the record
    "copa": {
        "en": (V("{premise}\nWhat was the cause of this?\n{options}",
                 "{premise}\nWhat happened as a result?\n{options}"),
               V("Premise: {premise}\nWhich of the following is the more likely cause?\n{options}",
                 "Premise: {premise}\nWhich of the following is the more likely effect?\n{options}", "letter"),
               V("Pick the more plausible alternative.\n\"{premise}\" This happened because...\n{options}",
                 "Pick the more plausible alternative.\n\"{premise}\" As a consequence...\n{options}", "number")),
        "ko": (V("{premise}\n이 일이 일어난 원인은 무엇일까요?\n{options}",
                 "{premise}\n그 결과로 어떤 일이 일어났을까요?\n{options}"),
               V("전제: {premise}\n다음 중 더 그럴듯한 원인은 무엇인가요?\n{options}",
                 "전제: {premise}\n다음 중 더 그럴듯한 결과는 무엇인가요?\n{options}", "letter"),
               V("더 타당한 것을 고르세요.\n\"{premise}\" 왜냐하면...\n{options}",
                 "더 타당한 것을 고르세요.\n\"{premise}\" 그래서...\n{options}", "number")),
        "zh": (V("{premise}\n这件事的原因是什么？\n{options}",
                 "{premise}\n结果发生了什么？\n{options}"),
               V("前提：{premise}\n下列哪一项更可能是原因？\n{options}",
                 "前提：{premise}\n下列哪一项更可能是结果？\n{options}", "letter"),
               V("请选出更合理的一项。\n“{premise}”这是因为……\n{options}",
                 "请选出更合理的一项。\n“{premise}”因此……\n{options}", "number")),
    },
    # -------------------------------------------------------------- Winograd: options fill the blank "_"
    "winograd": {
        "en": (O("{sentence}\nIn the sentence above, who or what does \"_\" refer to?\n{options}"),
               O("Fill in the blank: {sentence}\nChoose the right option:\n{options}", "letter"),
               O("Sentence: {sentence}\nWhich option best replaces the underscore?\n{options}", "number")),
        "fr": (O("{sentence}\nDans la phrase ci-dessus, à qui ou à quoi renvoie « _ » ?\n{options}"),
               O("Complétez le blanc : {sentence}\nChoisissez la bonne option :\n{options}", "letter"),
               O("Phrase : {sentence}\nQuelle option remplace le mieux le tiret bas ?\n{options}", "number")),
        "ja": (O("{sentence}\n上の文の「_」は誰または何を指していますか？\n{options}"),
               O("空欄を埋めてください：{sentence}\n正しい選択肢を選んでください。\n{options}", "letter"),
               O("文：{sentence}\n下線の部分に最もよく当てはまるのはどれですか？\n{options}", "number")),
        "ru": (O("{sentence}\nК кому или к чему относится «_» в этом предложении?\n{options}"),
               O("Заполните пропуск: {sentence}\nВыберите правильный вариант:\n{options}", "letter"),
               O("Предложение: {sentence}\nКакой вариант лучше всего подходит вместо знака подчёркивания?\n{options}",
                 "number")),
        "zh": (O("{sentence}\n上句中的“_”指的是谁或什么？\n{options}"),
               O("填空：{sentence}\n请选出正确的选项。\n{options}", "letter"),
               O("句子：{sentence}\n哪个选项最适合替换下划线？\n{options}", "number")),
    },
    # ---------------------------------------------------------------- story: choose the ending
    "story": {
        "en": (O("{story}\nWhat is the most likely ending of this story?\n{options}"),
               O("Story: {story}\nChoose the sentence that best continues the story:\n{options}", "letter"),
               O("Read the beginning of a story and pick its ending.\n\n{story}\n\n{options}", "number")),
        "es": (O("{story}\n¿Cuál es el final más probable de esta historia?\n{options}"),
               O("Historia: {story}\nElige la oración que mejor continúa la historia:\n{options}", "letter"),
               O("Lee el comienzo de una historia y elige su final.\n\n{story}\n\n{options}", "number")),
        "ru": (O("{story}\nКакая концовка этой истории наиболее вероятна?\n{options}"),
               O("История: {story}\nВыберите предложение, которое лучше всего продолжает историю:\n{options}",
                 "letter"),
               O("Прочитайте начало истории и выберите её окончание.\n\n{story}\n\n{options}", "number")),
        "zh": (O("{story}\n这个故事最可能的结尾是什么？\n{options}"),
               O("故事：{story}\n请选出最能接续这个故事的句子：\n{options}", "letter"),
               O("阅读故事的开头，选出它的结尾。\n\n{story}\n\n{options}", "number")),
    },
    # ------------------------------------------------------------- reading comprehension (Belebele)
    "mrc": {
        "en": (O("{passage}\n\nQuestion: {question}\n{options}", "letter"),
               O("Read the passage and answer the question.\nPassage: {passage}\nQuestion: {question}\nOptions:\n"
                 "{options}", "number"),
               O("{passage}\nAnswer according to the text above.\n{question}\n{options}")),
        "ko": (O("{passage}\n\n질문: {question}\n{options}", "letter"),
               O("지문을 읽고 질문에 답하세요.\n지문: {passage}\n질문: {question}\n선택지:\n{options}", "number"),
               O("{passage}\n위 글에 따르면, {question}\n{options}")),
        "ja": (O("{passage}\n\n質問：{question}\n{options}", "letter"),
               O("文章を読んで質問に答えてください。\n文章：{passage}\n質問：{question}\n選択肢：\n{options}", "number"),
               O("{passage}\n上の文章によると、{question}\n{options}")),
        "zh": (O("{passage}\n\n问题：{question}\n{options}", "letter"),
               O("阅读短文并回答问题。\n短文：{passage}\n问题：{question}\n选项：\n{options}", "number"),
               O("{passage}\n根据上文，{question}\n{options}")),
        "de": (O("{passage}\n\nFrage: {question}\n{options}", "letter"),
               O("Lies den Text und beantworte die Frage.\nText: {passage}\nFrage: {question}\nAntwortmöglichkeiten:\n"
                 "{options}", "number"),
               O("{passage}\nLaut dem obigen Text: {question}\n{options}")),
        "fr": (O("{passage}\n\nQuestion : {question}\n{options}", "letter"),
               O("Lisez le texte et répondez à la question.\nTexte : {passage}\nQuestion : {question}\nChoix :\n"
                 "{options}", "number"),
               O("{passage}\nD'après le texte ci-dessus : {question}\n{options}")),
        "es": (O("{passage}\n\nPregunta: {question}\n{options}", "letter"),
               O("Lee el texto y responde a la pregunta.\nTexto: {passage}\nPregunta: {question}\nOpciones:\n{options}",
                 "number"),
               O("{passage}\nSegún el texto anterior: {question}\n{options}")),
        "ru": (O("{passage}\n\nВопрос: {question}\n{options}", "letter"),
               O("Прочитайте текст и ответьте на вопрос.\nТекст: {passage}\nВопрос: {question}\nВарианты:\n{options}",
                 "number"),
               O("{passage}\nСогласно тексту выше: {question}\n{options}")),
    },
    # -------------------------------------------------------------------- HellaSwag-style completion
    "hellaswag": {
        "en": (O("{context}\nWhat comes next?\n{options}"),
               O("Context: {context}\nChoose the most plausible continuation:\n{options}", "letter"),
               O("Complete the description with the most natural ending.\n\n{context}\n\n{options}", "number")),
        "ko": (O("{context}\n다음에 이어질 내용은 무엇일까요?\n{options}"),
               O("문맥: {context}\n가장 그럴듯하게 이어지는 것을 고르세요.\n{options}", "letter"),
               O("가장 자연스러운 끝맺음으로 글을 완성하세요.\n\n{context}\n\n{options}", "number")),
    },
    # --------------------------------------------------------------------- extractive QA (generation)
    "extractive_qa": {
        "en": (G("{context}\n\nQuestion: {question}\nAnswer with a short span from the passage."),
               G("Title: {title}\nPassage: {context}\nQ: {question}\nA:"),
               G("Answer the question using words copied from the text.\nText: {context}\nQuestion: {question}\n"
                 "Answer:")),
        "ko": (G("{context}\n\n질문: {question}\n지문에서 짧은 구절을 찾아 답하세요."),
               G("제목: {title}\n지문: {context}\n질문: {question}\n답:"),
               G("글에 있는 표현을 그대로 써서 질문에 답하세요.\n글: {context}\n질문: {question}\n답:")),
        "ru": (G("{context}\n\nВопрос: {question}\nОтветьте коротким фрагментом из текста."),
               G("Заголовок: {title}\nТекст: {context}\nВ: {question}\nО:"),
               G("Ответьте на вопрос словами из текста.\nТекст: {context}\nВопрос: {question}\nОтвет:")),
    },
    # ------------------------------------------------------------------------------ math (generation)
    "math": {
        "en": (G("Question: {question}\nAnswer:"),
               G("Solve this math word problem and give the final number.\n{question}"),
               G("{question}\nLet's think step by step.")),
        "de": (G("Frage: {question}\nAntwort:"),
               G("Löse diese Textaufgabe und gib die Zahl an, die herauskommt.\n{question}"),
               G("{question}\nDenken wir Schritt für Schritt nach.")),
        "es": (G("Pregunta: {question}\nRespuesta:"),
               G("Resuelve este problema y da el número final.\n{question}"),
               G("{question}\nPensemos paso a paso.")),
        "fr": (G("Question : {question}\nRéponse :"),
               G("Résolvez ce problème et donnez le nombre final.\n{question}"),
               G("{question}\nRéfléchissons étape par étape.")),
        "ja": (G("問題：{question}\n答え："),
               G("次の文章題を解き、最終的な数を答えてください。\n{question}"),
               G("{question}\n段階的に考えてみましょう。")),
        "ru": (G("Вопрос: {question}\nОтвет:"),
               G("Решите задачу и назовите итоговое число.\n{question}"),
               G("{question}\nДавайте рассуждать шаг за шагом.")),
        "zh": (G("问题：{question}\n答案："),
               G("解这道应用题，并给出最终的数字。\n{question}"),
               G("{question}\n让我们一步一步地思考。")),
    },
}


def load() -> None:
    for fmt, by_lang in CATALOGUE.items():
        for lang, entries in by_lang.items():
            for entry in entries:
                add_template(fmt, lang, entry.text, choices=entry.choices, options_style=entry.style)


load()
