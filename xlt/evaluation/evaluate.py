"""Zero-shot evaluation of a checkpoint on the instruction meta-datasets: ``evaluate(EvalConfig(...))``, or
``python -m xlt.eval`` (``--help`` lists every setting of ``xlt.configs.EvalConfig``).

For every (content language, task of the evaluated clusters, template) it scores the split's examples and
writes one record per metric (``xlt.evaluation.report`` aggregates them into mean ± std over templates):

* choice tasks — rank classification: the log-likelihood of every option given the prompt
  (``xlt.evaluation.scoring.score_options``: the prompt is computed once, all its options are scored
  together). ``accuracy`` ranks by the summed log-likelihood, ``accuracy_norm`` by the per-token one.
* generation tasks — greedy decoding with the KV cache (``xlt.decoding.generate``), then the task's
  metrics (exact match, chrF, ROUGE-L with language-aware tokenization) and ``wrong_language``: the share
  of answers identified as another language than the content language (``xlt.evaluation.langid``).

Prompts are laid out as training saw them (seqio's converters, EOS appended to inputs and targets):
decoder-only — ``[0] + inputs + [EOS]`` attended bidirectionally (prefix-LM), the answer continuing it;
encoder-decoder — ``inputs + [EOS]`` into the encoder, the answer decoded from token 0. Prompts longer
than ``max_input_len`` keep their last tokens (where the question and the options are).

The model config and the vocabulary come from the checkpoint's record (``xlt.checkpoints.vocabulary_of``:
the file inside the checkpoint, its sha256 checked; a checkpoint without a vocabulary is refused);
``EvalConfig.vocabulary``, when given, must have the recorded ids. Outputs in OUTPUT_DIR: ``records.json`` (the raw per-template
records), ``report.json`` and ``report.md`` (aggregated), ``predictions.jsonl`` (every example's
prediction). Every file is written atomically.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xlt import checkpoints, cli, partitioning
from xlt.data import vocab as vocab_lib
from xlt.decoding import EOS_ID, generate
from xlt.configs import EvalConfig
from xlt.errors import ConfigError
from xlt.evaluation import langid, metrics, report as report_lib
from xlt.evaluation.scoring import score_options
from xlt.files import atomic_write_text
from xlt.instruct import meta
from xlt.instruct import tasks as instruct_tasks
from xlt.models.api import model_api

GENERATION_METRICS = {
    "exact_match": lambda preds, refs, lang: metrics.exact_match(preds, refs, lang),
    "chrf": lambda preds, refs, lang: metrics.chrf(preds, refs) / 100.0,  # 0-1 like the others
    "rouge_l": lambda preds, refs, lang: metrics.rouge_l(preds, refs, lang),
}


def _cap_items(examples: list[dict[str, Any]], max_items: int | None) -> list[dict[str, Any]]:
    """Keep every template of the first ``max_items`` items (an item's templates stay together)."""
    if max_items is None:
        return examples
    items: list[str] = []
    kept = []
    for ex in examples:
        item = ex["id"].rsplit("/", 1)[0]
        if item not in items:
            if len(items) >= max_items:
                continue
            items.append(item)
        kept.append(ex)
    return kept


class Evaluator:
    """A model, its parameters and the vocabulary, laid out for scoring and generation."""

    def __init__(self, checkpoint: str, *, batch_size: int = 16, max_input_len: int = 1024,
                 mesh_shape: Sequence[int] | None = None, vocabulary: Any = None):
        self.params, self.meta = checkpoints.load_params(checkpoint)
        self.cfg = checkpoints.model_config_from_meta(self.meta)
        if vocabulary is None:
            self.vocab = checkpoints.vocabulary_of(self.meta)
        else:  # a given vocabulary must be the recorded one (same kind, ids and file)
            checkpoints.check_vocabulary(self.meta, vocab_lib.record_of(vocabulary), str(checkpoint))
            self.vocab = vocabulary
        if self.vocab.vocab_size > self.cfg.vocab_size:
            raise ConfigError(f"the vocabulary has {self.vocab.vocab_size} ids but the model only "
                              f"{self.cfg.vocab_size}")
        self.api = model_api(self.cfg)  # the token layout and the model: xlt.models.api
        self.model = self.api.model
        self.batch_size = batch_size
        self.mesh = partitioning.make_mesh(mesh_shape) if mesh_shape else None
        self.max_input_len = min(max_input_len, self.api.max_length or max_input_len)
        self.prefix_lm = self.api.supports_prefix_lm  # decoder-only: prompts attended as prefix-LM inputs

    def prompt_ids(self, text: str, reserve: int = 0) -> list[int]:
        """The prompt's tokens, its last ones kept to leave ``reserve`` positions for an answer where it
        shares the prompt's sequence (``ModelAPI.prompt_tokens``)."""
        return self.api.prompt_tokens(self.vocab.encode(text), self.max_input_len, reserve)

    def answer_ids(self, text: str) -> list[int]:
        return self.api.target_tokens(self.vocab.encode(text))

    def choice_inputs(self, examples: Sequence[dict[str, Any]]) -> tuple[list[list[int]], list[list[list[int]]]]:
        """Token ids of each example's prompt (truncated to leave room for its longest option) and options."""
        options = [[self.answer_ids(o) for o in ex["options"]] for ex in examples]
        longest = [max(len(o) for o in opts) for opts in options]
        prompts = [self.prompt_ids(ex["inputs"], reserve=n)
                   for ex, n in zip(examples, longest)]
        return prompts, options

    def choose(self, examples: Sequence[dict[str, Any]]) -> tuple[list[int], list[int]]:
        """Predicted option index per example, by summed and by per-token log-likelihood."""
        prompts, options = self.choice_inputs(examples)
        scores = score_options(self.api, self.params, prompts, options, prefix_lm=self.prefix_lm,
                               batch_size=self.batch_size, mesh=self.mesh)
        return [s.best() for s in scores], [s.best(length_normalized=True) for s in scores]

    def answer(self, examples: Sequence[dict[str, Any]], max_new_tokens: int) -> list[str]:
        prompts = [self.prompt_ids(ex["inputs"], reserve=max_new_tokens)
                   for ex in examples]
        out: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            gen = generate(self.api, self.params, prompts[start:start + self.batch_size],
                           max_new_tokens=max_new_tokens, prefix_lm=self.prefix_lm, mesh=self.mesh)
            for row, n in zip(gen.tokens, gen.lengths):
                ids = [int(t) for t in row[:n] if t not in (0, EOS_ID)]
                out.append(self.vocab.decode(ids))
        return out


def _records_for(examples: list[dict[str, Any]], predictions: list[Any], kind: str, spec: meta.TaskSpec,
                 lang: str) -> list[dict[str, Any]]:
    by_template: dict[tuple[str, int], list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        by_template[(ex["template_lang"], ex["template_id"])].append(i)
    records = []
    for (template_lang, template_id), idx in sorted(by_template.items()):
        base = dict(task=spec.name, cluster=spec.cluster, kind=kind, content_lang=lang,
                    template_lang=template_lang, template_id=template_id, n=len(idx))
        if kind == meta.CHOICE:
            gold = [examples[i]["answer"] for i in idx]
            summed, normed = predictions
            values = {"accuracy": metrics.accuracy([summed[i] for i in idx], gold),
                      "accuracy_norm": metrics.accuracy([normed[i] for i in idx], gold)}
        else:
            preds = [predictions[i] for i in idx]
            refs = [examples[i]["references"] for i in idx]
            values = {m: GENERATION_METRICS[m](preds, refs, lang) for m in spec.metrics if m in GENERATION_METRICS}
            values["wrong_language"] = langid.wrong_language_rate(preds, lang)
        records.extend({**base, "metric": m, "value": float(v)} for m, v in values.items())
    return records


def evaluate(config: EvalConfig, *, progress: Any = None) -> report_lib.Report:
    """Evaluate ``config.checkpoint`` zero-shot; returns the aggregated report (and writes it to
    ``config.output_dir``). ``progress(i, n, what)``, if given, is called after each (task, language) instead
    of the progress line.

    ``clusters`` defaults to the held-out clusters (``xlt.instruct.meta.DEFAULT_HELD_OUT``); ``tasks``
    narrows further. ``languages`` are content languages."""
    if not isinstance(config, EvalConfig):
        raise ConfigError(f"evaluate() takes an EvalConfig, got {type(config).__name__}")
    (checkpoint, output_dir, langs, clusters, tasks, split, template_mode, template_lang, fallback_lang,
     max_items_per_task, batch_size, max_new_tokens, max_input_len, mesh_shape, quiet) = (
        config.checkpoint, config.output_dir, config.languages, config.clusters, config.tasks, config.split,
        config.template_mode, config.template_lang, config.fallback_lang, config.max_items_per_task,
        config.batch_size, config.max_new_tokens, config.max_input_len, config.mesh_shape, config.quiet)
    chosen_clusters = clusters if clusters is not None else meta.DEFAULT_HELD_OUT
    # Check every example source before the (slow) model work starts.
    plan: list[tuple[str, str, list[dict[str, Any]]]] = []
    for lang in langs:
        for task in meta.tasks_for(lang, chosen_clusters):
            if tasks is not None and task not in tasks:
                continue
            examples = instruct_tasks.eval_examples(task, lang, split, template_mode=template_mode,
                                                    template_lang=template_lang, fallback_lang=fallback_lang)
            plan.append((lang, task, _cap_items(examples, max_items_per_task)))
    if not plan:
        raise ConfigError(f"no tasks of clusters {list(chosen_clusters)} for languages {list(langs)}")
    evaluator = Evaluator(checkpoint, batch_size=batch_size, max_input_len=max_input_len, mesh_shape=mesh_shape,
                          vocabulary=config.vocabulary)
    records: list[dict[str, Any]] = []
    predictions_log: list[str] = []
    started = time.perf_counter()
    for i, (lang, task, examples) in enumerate(plan):
        spec = meta.task_spec(task)
        if spec.kind == meta.CHOICE:
            preds: Any = evaluator.choose(examples)
            shown = preds[0]
        else:
            preds = evaluator.answer(examples, max_new_tokens)
            shown = preds
        records.extend(_records_for(examples, preds, spec.kind, spec, lang))
        predictions_log.extend(json.dumps({"id": ex["id"], "prediction": p, "gold": ex["targets"]},
                                          ensure_ascii=False) for ex, p in zip(examples, shown))
        if progress is not None:
            progress(i + 1, len(plan), f"{task}/{lang}")
        elif not quiet:
            print(f"[{i + 1}/{len(plan)}] {task} {lang}: {len(examples)} examples "
                  f"({time.perf_counter() - started:.0f}s)", flush=True)
    rep = report_lib.aggregate(records)
    if output_dir:
        out = Path(output_dir)
        atomic_write_text(out / "records.json", json.dumps(records, indent=1, ensure_ascii=False))
        atomic_write_text(out / "predictions.jsonl", "\n".join(predictions_log) + "\n")
        rep.write_json(out / "report.json")
        atomic_write_text(out / "report.md", rep.to_markdown())
    if not quiet:
        print(rep.to_markdown())
    return rep


USAGE = "python -m xlt.eval --gin_file=runs/eval.gin --gin.CHECKPOINT=\"'DIR'\" [--gin.NAME=VALUE ...]"
DESCRIPTION = """Evaluate a checkpoint zero-shot on the held-out clusters of the instruction meta-datasets. Example:
  python -m xlt.eval --gin_file=runs/eval.gin --gin.CHECKPOINT="'runs/tuned_en'" \\
    --gin.EVAL_LANGUAGES="['ko', 'ja']" --gin.EVAL_DIR="'results/tuned_en'"
The vocabulary is gin's vocabulary.kind / .path (runs/eval.gin: byte); it must be the checkpoint's."""


def help_text() -> str:
    from xlt import configs
    return configs.help_text(USAGE, DESCRIPTION, [EvalConfig])


def main(argv: list[str]) -> None:
    cli.load_gin_argv(argv, "--gin_file=runs/eval.gin --gin.CHECKPOINT=\"'runs/demo'\"", require_file=False)
    logging.getLogger("absl").setLevel(logging.ERROR)
    evaluate(EvalConfig.from_gin())


if __name__ == "__main__":
    sys.exit(cli.main(main, usage=help_text))
