"""Zero-shot evaluation of a checkpoint on registered benchmarks: ``evaluate(EvalConfig(...))``, or
``python -m xlt.eval`` (``--help`` lists every setting of ``xlt.configs.EvalConfig``).

What is evaluated: ``EvalConfig.benchmarks`` names benchmarks of the registry (``xlt.benchmarks``: XNLI,
XCOPA, PAWS-X, XWinograd, XStoryCloze, Belebele, TyDiQA, MGSM, KoBEST, and the built-in Bible/CLDR tasks
under their task names), each read from ``benchmark_sources[name]`` (a hub name or a local directory) or
its hub; None (the default) is the built-in tasks of the held-out clusters (``clusters``, ``tasks``), as
before the registry existed. ``lm_eval:<task>`` names an lm-evaluation-harness task, run by the harness
itself on the loaded model with its own prompt and metrics (``xlt.benchmarks.harness_tasks``). Every
(benchmark, language) is checked before the model is loaded. ``Evaluator.from_params`` evaluates parameters
already in memory (evaluation during training: ``xlt.evaluation.live``).

For every (content language, benchmark, template) it scores the split's examples and writes one record
per metric (``xlt.evaluation.report`` aggregates them into mean ± std over templates):

* choice tasks — rank classification: the log-likelihood of every option given the prompt
  (``xlt.evaluation.scoring.score_options``: the prompt is computed once, all its options are scored
  together), ranked four ways (``xlt.evaluation.calibration``): ``accuracy`` by the summed
  log-likelihood, ``accuracy_norm`` per token, ``accuracy_char`` per character and ``accuracy_pmi`` by
  the log-likelihood minus the option's log-likelihood after the content-free prompt (each distinct
  content-free prompt and option set is scored once).
* generation tasks — greedy decoding with the KV cache (``xlt.decoding.generate``), then every metric the
  benchmark names (exact match, chrF, ROUGE-L with language-aware tokenization; SQuAD exact match / F1,
  MGSM's final-number match through ``xlt.benchmarks.metric_functions``; a metric without an
  implementation is a ConfigError before any work, never skipped), ``rouge_l_morpheme`` (ROUGE-L over
  MeCab-ko / Kiwi morphemes) for every Korean generation task with ``korean_rouge='morpheme'``, ``wrong_language`` (the share of answers identified as another language
  than the content language as a whole, ``xlt.evaluation.langid``) and ``line_pass_rate``, the Language
  Confusion Benchmark's line-level pass rate (``xlt.evaluation.confusion``).

Prompts are laid out as training saw them (seqio's converters, EOS appended to inputs and targets):
decoder-only — ``[0] + inputs + [EOS]`` attended bidirectionally (prefix-LM), the answer continuing it;
encoder-decoder — ``inputs + [EOS]`` into the encoder, the answer decoded from token 0. Prompts longer
than ``max_input_len`` keep their last tokens (where the question and the options are).

The model config and the vocabulary come from the checkpoint's record (``xlt.checkpoints.vocabulary_of``:
the file inside the checkpoint, its sha256 checked; a checkpoint without a vocabulary is refused);
``EvalConfig.vocabulary``, when given, must have the recorded ids. Outputs in OUTPUT_DIR: ``records.json`` (the raw per-template
records), ``report.json`` and ``report.md`` (aggregated, followed by a per-benchmark, per-template table:
``template_table``), ``predictions.jsonl`` (every example's prediction, item and, for choice tasks,
whether it is correct: ``prediction_line``). Every file is written atomically.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from xlt import benchmarks as benchmark_registry
from xlt import checkpoints, cli, partitioning
from xlt.benchmarks import harness_tasks
from xlt.benchmarks import templates as btpl
from xlt.data import vocab as vocab_lib
from xlt.decoding import PAD_ID, generate
from xlt.configs import EvalConfig
from xlt.errors import ConfigError
from xlt.evaluation import calibration, confusion, langid, metrics, report as report_lib
from xlt.evaluation.scoring import score_options
from xlt import paths
from xlt.files import atomic_write_text
from xlt.instruct import meta
from xlt.models.api import model_api

GENERATION_METRICS = {
    "exact_match": lambda preds, refs, lang: metrics.exact_match(preds, refs, lang),
    "chrf": lambda preds, refs, lang: metrics.chrf(preds, refs) / 100.0,  # 0-1 like the others
    "rouge_l": lambda preds, refs, lang: metrics.rouge_l(preds, refs, lang),
}


def generation_metrics() -> dict[str, Any]:
    """Every generation metric by name, ``f(predictions, references, lang) -> float``: the built-in tasks'
    and the benchmarks' own (``xlt.benchmarks.metric_functions``)."""
    return {**GENERATION_METRICS, **benchmark_registry.metric_functions()}


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
        params, meta = checkpoints.load_params(checkpoint)
        if vocabulary is None:
            vocab = checkpoints.vocabulary_of(meta)
        else:  # a given vocabulary must be the recorded one (same kind, ids and file)
            checkpoints.check_vocabulary(meta, vocab_lib.record_of(vocabulary), str(checkpoint))
            vocab = vocabulary
        self._setup(params, meta, vocab, batch_size=batch_size, max_input_len=max_input_len,
                    mesh=partitioning.make_mesh(mesh_shape) if mesh_shape else None, checkpoint=str(checkpoint))

    @classmethod
    def from_config(cls, config: EvalConfig) -> Evaluator:
        """The checkpoint an ``EvalConfig`` names, laid out as it asks (batch size, input length, mesh,
        vocabulary)."""
        return cls(config.checkpoint, batch_size=config.batch_size, max_input_len=config.max_input_len,
                   mesh_shape=config.mesh_shape, vocabulary=config.vocabulary)

    @classmethod
    def from_params(cls, params: Any, meta: checkpoints.CheckpointMeta, vocabulary: Any, *, batch_size: int = 16,
                    max_input_len: int = 1024, mesh: Any = None, checkpoint: str | None = None) -> Evaluator:
        """An evaluator on parameters already in memory (a training run's live parameters, possibly sharded
        on its ``mesh``): ``meta`` is the record a checkpoint of them would carry (model config, vocabulary
        conventions), so scoring equals that of the saved checkpoint, without the round trip. ``checkpoint``
        (e.g. the run's MODEL_DIR) is only where a harness benchmark looks for a Hugging Face tokenizer."""
        self = cls.__new__(cls)
        self._setup(params, meta, vocabulary, batch_size=batch_size, max_input_len=max_input_len, mesh=mesh,
                    checkpoint=checkpoint)
        return self

    def _setup(self, params: Any, meta: checkpoints.CheckpointMeta, vocab: Any, *, batch_size: int,
               max_input_len: int, mesh: Any, checkpoint: str | None) -> None:
        self.params, self.meta, self.vocab, self.checkpoint = params, meta, vocab, checkpoint
        self.cfg = checkpoints.model_config_from_meta(self.meta)
        if self.vocab.vocab_size > self.cfg.vocab_size:
            raise ConfigError(f"the vocabulary has {self.vocab.vocab_size} ids but the model only "
                              f"{self.cfg.vocab_size}")
        # The token layout (decoder start token, EOS) with the checkpoint's recorded conventions: xlt.models.api.
        conventions = self.meta.vocabulary.conventions if self.meta.vocabulary is not None else None
        self.api = model_api(self.cfg, start_id=conventions and conventions.decoder_start_id,
                             eos_id=conventions and conventions.eos_id)
        self.model = self.api.model
        self.batch_size = batch_size
        self.mesh = mesh
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

    def score(self, prompts: list[str], options: list[list[str]]) -> list[tuple[Any, Any]]:
        """(summed log-likelihoods, token counts) of every prompt's options, from texts: the ``score``
        function of ``xlt.evaluation.calibration.choose`` (prompts truncated as in ``choice_inputs``)."""
        option_ids = [[self.answer_ids(o) for o in opts] for opts in options]
        prompt_ids = [self.prompt_ids(p, reserve=max(len(o) for o in ids)) for p, ids in zip(prompts, option_ids)]
        scores = score_options(self.api, self.params, prompt_ids, option_ids, prefix_lm=self.prefix_lm,
                               batch_size=self.batch_size, mesh=self.mesh)
        return [(s.loglik, s.num_tokens) for s in scores]

    def rank(self, examples: Sequence[dict[str, Any]], calibrate: bool = True) -> list[dict[str, int]]:
        """Chosen option per example under every ranking of ``calibration.RANKINGS`` (sum, per token, per
        character and, with ``calibrate``, PMI against the examples' content-free ``null_inputs``)."""
        return calibration.choose(examples, self.score, calibrate=calibrate)

    def answer(self, examples: Sequence[dict[str, Any]], max_new_tokens: int) -> list[str]:
        prompts = [self.prompt_ids(ex["inputs"], reserve=max_new_tokens)
                   for ex in examples]
        out: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            gen = generate(self.api, self.params, prompts[start:start + self.batch_size],
                           max_new_tokens=max_new_tokens, eos_id=self.api.eos_id, prefix_lm=self.prefix_lm,
                           mesh=self.mesh)
            for row, n in zip(gen.tokens, gen.lengths):
                ids = [int(t) for t in row[:n] if t not in (PAD_ID, self.api.eos_id)]
                out.append(self.vocab.decode(ids))
        return out


def _generation_values(preds: list[str], refs: list[list[str]], metric_names: Sequence[str], lang: str,
                       korean_rouge: str) -> dict[str, float]:
    functions = generation_metrics()
    values = {m: functions[m](preds, refs, lang) for m in metric_names}
    if lang == "ko" and korean_rouge == "morpheme":  # every Korean generation task, whatever it names
        values["rouge_l_morpheme"] = metrics.rouge_l_korean(preds, refs, unit="morpheme")
    values["wrong_language"] = langid.wrong_language_rate(preds, lang)
    values["line_pass_rate"] = confusion.language_confusion(preds, lang, whole_answer=False)["line_pass_rate"]
    return values


def _records_for(examples: list[dict[str, Any]], predictions: list[Any], kind: str, spec: Any,
                 lang: str, korean_rouge: str = "character") -> list[dict[str, Any]]:
    """One record per (template, metric). Choice ``predictions``: one {ranking: option} dict per example
    (``Evaluator.rank``); generation: the answers."""
    by_template: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        by_template[(ex["template_lang"], ex["template_id"])].append(i)
    records = []
    for (template_lang, template_id), idx in sorted(by_template.items()):
        base = dict(task=spec.name, cluster=spec.cluster, kind=kind, content_lang=lang,
                    template_lang=template_lang, template_id=template_id, n=len(idx))
        if kind == meta.CHOICE:
            gold = [examples[i]["answer"] for i in idx]
            values = {calibration.METRIC_OF_RANKING[r]: metrics.accuracy([predictions[i][r] for i in idx], gold)
                      for r in calibration.RANKINGS if r in predictions[idx[0]]}
        else:
            preds = [predictions[i] for i in idx]
            refs = [examples[i]["references"] for i in idx]
            values = _generation_values(preds, refs, _generation_metric_names(spec), lang, korean_rouge)
        records.extend({**base, "metric": m, "value": float(v)} for m, v in values.items())
    return records


def _generation_metric_names(spec: Any) -> tuple[str, ...]:
    """The metrics a generation benchmark names; one without an implementation is a ConfigError."""
    known = generation_metrics()
    missing = [m for m in spec.metrics if m not in known]
    if missing:
        raise ConfigError(f"benchmark {spec.name!r} names metric(s) {missing} that the evaluator does not "
                          f"implement; known: {', '.join(sorted(known))}")
    return tuple(spec.metrics)


def fallback_for(bench: Any, fallback_lang: str | None) -> str | None:
    """The template language standing in where ``bench`` has no native template: the config's, else none
    for the built-in tasks (as before the registry) and English for public benchmarks (their examples are
    then marked ``template_fallback``)."""
    if fallback_lang is not None or bench.builtin:
        return fallback_lang
    return btpl.DEFAULT_FALLBACK


def plan_benchmarks(config: EvalConfig) -> list[tuple[str, Any]]:
    """(content language, bound benchmark) pairs the config asks for: ``benchmark_pairs`` with its settings."""
    return benchmark_pairs(config.benchmarks, config.languages, sources=config.benchmark_sources,
                           clusters=config.clusters, tasks=config.tasks, split=config.split,
                           template_mode=config.template_mode, template_lang=config.template_lang,
                           fallback_lang=config.fallback_lang)


def benchmark_pairs(benchmarks: Sequence[str] | None, languages: Sequence[str], *,
                    sources: Mapping[str, str] | None = None, clusters: Sequence[str] | None = None,
                    tasks: Sequence[str] | None = None, split: str | None = None, template_mode: str = "native",
                    template_lang: str | None = None, fallback_lang: str | None = None) -> list[tuple[str, Any]]:
    """(content language, bound benchmark) pairs, checked (name, source, language, split, template setting,
    metrics) without reading any data: the built-in held-out tasks when ``benchmarks`` is None, else every
    named benchmark in every language (one it lacks is a ConfigError). A harness task (``lm_eval:<task>``)
    is one pair, in its own language (``HarnessBenchmark.language_for``). ``TrainConfig`` checks its
    ``eval_benchmarks`` with it too."""
    sources = dict(sources or {})
    pairs: list[tuple[str, Any]] = []
    if benchmarks is None:
        chosen = clusters if clusters is not None else meta.DEFAULT_HELD_OUT
        for lang in languages:
            for task in meta.tasks_for(lang, chosen):
                if tasks is None or task in tasks:
                    pairs.append((lang, benchmark_registry.get(task)))
        if not pairs:
            raise ConfigError(f"no tasks of clusters {list(chosen)} for languages {list(languages)}")
    else:
        bound = [benchmark_registry.get(name, source=sources.get(name)) for name in benchmarks]
        for lang in languages:
            pairs.extend((lang, b) for b in bound if not harness_tasks.is_harness(b))
        pairs.extend((b.language_for(languages), b) for b in bound if harness_tasks.is_harness(b))
    for lang, b in pairs:
        b.check(lang, split, template_mode=template_mode, template_lang=template_lang,
                fallback_lang=fallback_for(b, fallback_lang))
        if b.kind == meta.GENERATION and not harness_tasks.is_harness(b):
            _generation_metric_names(b)
    return pairs


def plan_examples(config: EvalConfig) -> list[tuple[str, Any, list[dict[str, Any]]]]:
    """(content language, benchmark, its rendered examples) of everything ``config`` asks for, every source
    read and checked before any model work (a harness task has none: lm-evaluation-harness renders its own)."""
    plan: list[tuple[str, Any, list[dict[str, Any]]]] = []
    for lang, bench in plan_benchmarks(config):
        if harness_tasks.is_harness(bench):  # run by lm-evaluation-harness itself (run_plan): no xlt examples
            plan.append((lang, bench, []))
            continue
        examples = bench.examples(lang, config.split, template_mode=config.template_mode,
                                  template_lang=config.template_lang,
                                  fallback_lang=fallback_for(bench, config.fallback_lang),
                                  max_items=config.max_items_per_task, all_templates=config.all_templates)
        if not examples:
            raise ConfigError(f"benchmark {bench.name!r} has no examples in {lang!r} (split {config.split!r})")
        plan.append((lang, bench, examples))
    return plan


def run_plan(config: EvalConfig, evaluator: Evaluator, plan: Sequence[tuple[str, Any, list[dict[str, Any]]]], *,
             progress: Any = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(records, prediction lines) of a plan. The choice examples of every (benchmark, language) are ranked in
    one batched pass (prompts sorted by length across tasks, so batches are full and pad little); generation
    benchmarks are answered one after the other; harness tasks are run by lm-evaluation-harness."""
    choice = [ex for _, bench, examples in plan if bench.kind == meta.CHOICE for ex in examples]
    ranked = iter(evaluator.rank(choice, calibrate=config.calibrate) if choice else [])
    records: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    started = time.perf_counter()
    for i, (lang, bench, examples) in enumerate(plan):
        if harness_tasks.is_harness(bench):  # the harness's prompt, metrics and per-document results
            harness_records, harness_lines = bench.evaluate(evaluator, lang, limit=config.max_items_per_task)
            records.extend(harness_records)
            lines.extend(json.loads(line) for line in harness_lines)
        elif bench.kind == meta.CHOICE:
            preds: Any = [next(ranked) for _ in examples]
            records.extend(_records_for(examples, preds, bench.kind, bench, lang, config.korean_rouge))
            lines.extend(prediction_line(ex, p["sum"], bench.kind) for ex, p in zip(examples, preds))
        else:
            preds = evaluator.answer(examples, config.max_new_tokens)
            records.extend(_records_for(examples, preds, bench.kind, bench, lang, config.korean_rouge))
            lines.extend(prediction_line(ex, p, bench.kind) for ex, p in zip(examples, preds))
        if progress is not None:
            progress(i + 1, len(plan), f"{bench.name}/{lang}")
        elif not config.quiet:
            print(f"[{i + 1}/{len(plan)}] {bench.name} {lang}: {len(examples)} examples "
                  f"({time.perf_counter() - started:.0f}s)", flush=True)
    return records, lines


def write_results(out: Any, records: Sequence[dict[str, Any]], lines: Sequence[dict[str, Any]]) -> report_lib.Report:
    """records.json, predictions.jsonl, report.json and report.md of an evaluation in ``out`` (a local directory
    or a URL: ``xlt.paths``); its report."""
    out = paths.path(out)
    rep = report_lib.aggregate(records)
    atomic_write_text(out / "records.json", json.dumps(list(records), indent=1, ensure_ascii=False))
    atomic_write_text(out / "predictions.jsonl",
                      "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))
    rep.write_json(out / "report.json")
    atomic_write_text(out / "report.md", rep.to_markdown() + "\n" + template_table(records))
    return rep


def evaluate(config: EvalConfig, *, progress: Any = None, evaluator: Evaluator | None = None) -> report_lib.Report:
    """Evaluate ``config.checkpoint`` zero-shot; returns the aggregated report (and writes it to
    ``config.output_dir``). ``progress(i, n, what)``, if given, is called after each (benchmark, language)
    instead of the progress line. ``evaluator``: the model to evaluate when it is already in memory
    (``Evaluator.from_params``: evaluation during training); by default the checkpoint is loaded.

    ``benchmarks`` None: ``clusters`` defaults to the held-out clusters (``xlt.instruct.meta.DEFAULT_HELD_OUT``);
    ``tasks`` narrows further. ``languages`` are content languages."""
    if not isinstance(config, EvalConfig):
        raise ConfigError(f"evaluate() takes an EvalConfig, got {type(config).__name__}")
    plan = plan_examples(config)  # every benchmark checked and every source read before the (slow) model work
    if evaluator is None:
        evaluator = Evaluator.from_config(config)
    records, lines = run_plan(config, evaluator, plan, progress=progress)
    if config.output_dir:
        rep = write_results(config.output_dir, records, lines)
    else:
        rep = report_lib.aggregate(records)
    if not config.quiet:
        print(rep.to_markdown() + "\n" + template_table(records))
    return rep


def item_of(example: dict[str, Any]) -> str:
    """The item an example renders: its id without the template (``<task>/<lang>/<split>/<item uid>``), the
    same for every template of the item, so a tuned row and the base pair on it."""
    suffix = f"/{example['template_id']}"
    if not example["id"].endswith(suffix):
        raise ConfigError(f"example id {example['id']!r} does not end with its template id {example['template_id']!r}")
    return example["id"][:-len(suffix)]


def prediction_line(example: dict[str, Any], prediction: Any, kind: str) -> dict[str, Any]:
    """One line of ``predictions.jsonl``: the example's id, item (``item_of``), task, content language,
    template, the prediction and gold; for choice tasks also ``n_options`` and ``correct`` (1 when the
    summed log-likelihood ranks the gold option first: the ``accuracy`` metric), for generation tasks with
    references ``chrf`` (the answer's sentence-level chrF, 0-1): the per-item values the transfer matrix's
    paired bootstrap needs (``xlt.evaluation.significance``)."""
    line = {"id": example["id"], "item": item_of(example), "task": example["task"],
            "content_lang": example["content_lang"], "template_id": example["template_id"],
            "prediction": prediction, "gold": example["targets"]}
    if kind == meta.CHOICE:
        line.update(n_options=len(example["options"]), correct=int(prediction == example["answer"]))
    elif example.get("references"):  # the answer's own chrF (0-1): a generation task's per-item value
        line["chrf"] = metrics.sentence_chrf([str(prediction)], [example["references"]])[0] / 100.0
    return line


def template_table(records: Sequence[dict[str, Any]], digits: int = 3) -> str:
    """Markdown: per benchmark, one row per (language setting, template) and one column per metric, the
    raw per-template values (``report.md``'s aggregated tables average them)."""
    by_task: dict[str, dict[tuple[str, str, str], dict[str, float]]] = defaultdict(lambda: defaultdict(dict))
    counts: dict[tuple[str, str, str, str], int] = {}
    for r in records:
        key = (r["content_lang"], r["template_lang"], str(r["template_id"]))
        by_task[r["task"]][key][r["metric"]] = r["value"]
        counts[(r["task"], *key)] = r["n"]
    lines = ["## Per benchmark and template", ""]
    for task in sorted(by_task):
        rows = by_task[task]
        names = list(dict.fromkeys(m for values in rows.values() for m in values))
        lines += [f"### {task}", "", "| lang | template | n | " + " | ".join(names) + " |",
                  "| --- | --- | ---: | " + " | ".join("---:" for _ in names) + " |"]
        for (content, tlang, tid) in sorted(rows):
            values = rows[(content, tlang, tid)]
            setting = content if content == tlang else f"{content}/{tlang}"
            cells = [f"{values[m]:.{digits}f}" if m in values else "" for m in names]
            lines.append(f"| {setting} | {tid} | {counts[(task, content, tlang, tid)]} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


USAGE = "python -m xlt.eval --gin_file=runs/eval.gin --gin.CHECKPOINT=\"'DIR'\" [--gin.NAME=VALUE ...]"
DESCRIPTION = """Evaluate a checkpoint zero-shot on registered benchmarks (default: the held-out clusters of the
instruction meta-datasets). Examples:
  python -m xlt.eval --gin_file=runs/eval.gin --gin.CHECKPOINT="'runs/tuned_en'" \\
    --gin.EVAL_LANGUAGES="['ko', 'ja']" --gin.EVAL_DIR="'results/tuned_en'"
  python -m xlt.eval --gin_file=runs/eval.gin --gin.CHECKPOINT="'runs/tuned_en'" \\
    --gin.BENCHMARKS="['xnli', 'pawsx']" --gin.EVAL_LANGUAGES="['de', 'fr']" \\
    --gin.BENCHMARK_SOURCES="{'xnli': '/data/xnli'}"     # a local copy; others from the hub
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
