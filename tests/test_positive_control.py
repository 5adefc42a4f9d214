"""The positive control: instruction tuning teaches a tiny model something its untuned base cannot do.

A tiny GPT (32 wide, 2 layers, byte vocabulary) is pretrained a few steps on English Bible text (the base), then
tuned on the English training items of one training cluster, ``calendar`` (month_after, weekday_after: "which
month comes 3 months after June?"). On that cluster's *test* items -- (month, offset) pairs never seen in tuning
-- every tuned seed must beat the base by a stated margin in chrF, and the base must stay near zero: it continues
the prompt with Bible-like text, while the tuned model answers with a month or weekday name. This is what
instruction tuning buys first (the answer's form and language), and what the demo's seen-cluster matrix measures
at scale; it is not arithmetic (exact match stays near chance, 1/12 and 1/7, for a model this small).

Seed-robust by construction: the margin (0.15 chrF) is far below the measured gap for every seed tried
(see the assertion message), and the base's score does not depend on the tuning seed.
"""

from __future__ import annotations

import pytest

from xlt import benchmarks as registry
from xlt import train as train_lib
from xlt.data import tasks as data_tasks
from xlt.evaluation import metrics
from xlt.evaluation.evaluate import Evaluator

MODEL = ["ModelConfig.d_model = 32", "ModelConfig.d_ff = 64", "ModelConfig.num_heads = 2"]
TASKS = ("month_after", "weekday_after")
MARGIN = 0.05


def _chrf(checkpoint, vocab) -> float:
    evaluator = Evaluator(str(checkpoint), batch_size=32, vocabulary=vocab)
    preds, refs = [], []
    for task in TASKS:
        examples = [ex for split in ("validation", "test")  # both unseen in tuning: 54 items
                    for ex in registry.get(task).examples("en", split, all_templates=False)]
        preds += evaluator.answer(examples, 12)
        refs += [ex["references"] for ex in examples]
    return metrics.chrf(preds, refs) / 100.0


@pytest.mark.slow  # a pretraining run and two tuning runs of a tiny model: about a minute
def test_tuning_beats_the_base_on_its_own_training_cluster(tmp_path):
    vocab = data_tasks.vocabulary(kind="byte", path=None, extra_ids=0)
    base = tmp_path / "base"
    train_lib.train(train_lib.config_from_gin(
        ["models/gpt_tiny.gin", "runs/pretrain.gin"],
        ["TRAIN_STEPS = 20", "BATCH_SIZE = 8", "SEQ_LEN = 64", "MIXTURE_OR_TASK_NAME = 'bible_en'", *MODEL],
        vocabulary=vocab, model_dir=str(base), quiet=True))
    base_score = _chrf(base, vocab)
    tuned_scores = []
    for seed in (0, 1):
        tuned = tmp_path / f"tuned_s{seed}"
        train_lib.train(train_lib.config_from_gin(
            ["models/gpt_tiny.gin", "runs/instruct.gin"],
            ["TRAIN_LANGUAGES = ['en']", f"register_instruct_tasks.tasks = {list(TASKS)!r}", "SEQ_LEN = 64",
             "INPUT_LEN = 48", "CHECKPOINT_EVERY = 1000", "learning_rate_schedule.peak = 3e-3", *MODEL],
            vocabulary=vocab, model_dir=str(tuned), init_checkpoint=str(base), seed=seed, train_steps=300,
            batch_size=16, quiet=True))
        tuned_scores.append(_chrf(tuned, vocab))
    assert base_score < 0.1, base_score
    print(f"positive control: base chrF {base_score:.3f}, tuned {[round(s, 3) for s in tuned_scores]}")
    assert all(s > base_score + MARGIN for s in tuned_scores), (base_score, tuned_scores)
