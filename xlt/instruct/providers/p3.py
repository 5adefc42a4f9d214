"""P3 (BigScience; Sanh et al., 2022, "Multitask Prompted Training Enables Zero-Shot Task Generalization",
ICLR): the prompted English datasets T0 was trained on, with each dataset mapped to T0's task cluster.

Published layout (hub ``bigscience/P3``, parquet): one folder per *config* = dataset + subset + prompt,
``super_glue_cb_GPT_3_style/{train,validation,test}-00000-of-00001.parquet`` (the original release:
``data/<config>/<split>.tfrecord-00000-of-00001``; a local ``<config>/<split>.jsonl`` works too), records
``{"inputs_pretokenized", "targets_pretokenized", "answer_choices", "inputs", "targets"}`` (``inputs`` /
``targets`` are T5 token ids and are ignored). ``*_score_eval`` configs (one row per answer choice, for rank evaluation) are skipped.

Each config is mapped to its dataset by the longest dataset prefix in ``DATASET_CLUSTERS``; the task is
the dataset (its prompts are the ``template_id``s, all mixed in one seqio Task), and the cluster is the
dataset's cluster in the T0 paper's Figure 2 (training: multiple-choice QA, extractive QA, closed-book QA,
sentiment, topic classification, structure-to-text, summarization, paraphrase identification; held out:
natural language inference, coreference, sentence completion, word sense disambiguation). T0's held-out
clusters are ``DEFAULT_HELD_OUT`` and never enter a training mixture. The datasets T0+ and T0++ add (the
GPT-3 evaluation sets, SuperGLUE) are in the table too, in the clusters the paper's figure draws them
under; BoolQ, MultiRC and ReCoRD (T0++'s SuperGLUE additions) form ``reading_comprehension``. A config whose
dataset is not in the table is an error (a held-out dataset must never slip into training unnoticed):
map it with ``extra_clusters={'<dataset prefix>': '<cluster>'}``.

P3 is English-only and already rendered (promptsource templates): template settings do not apply.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from xlt.data.sources import formats
from xlt.errors import ConfigError, DataError
from xlt.instruct.providers.base import FileProvider, Shard, data_files, local_root, split_of_file

HUB = "bigscience/P3"

# T0 paper (Sanh et al., 2022), Figure 2: dataset -> cluster, by the dataset's P3 config prefix.
DATASET_CLUSTERS: dict[str, str] = {
    # multiple-choice QA
    "commonsense_qa": "multiple_choice_qa", "dream": "multiple_choice_qa", "quail": "multiple_choice_qa",
    "quartz": "multiple_choice_qa", "social_i_qa": "multiple_choice_qa", "wiqa": "multiple_choice_qa",
    "cosmos_qa": "multiple_choice_qa", "qasc": "multiple_choice_qa", "quarel": "multiple_choice_qa",
    "sciq": "multiple_choice_qa", "wiki_hop_original": "multiple_choice_qa",
    "ai2_arc_ARC_Challenge": "multiple_choice_qa", "ai2_arc_ARC_Easy": "multiple_choice_qa",  # T0+
    "openbookqa_main": "multiple_choice_qa", "piqa": "multiple_choice_qa",  # T0+
    "race_high": "multiple_choice_qa", "race_middle": "multiple_choice_qa",  # T0+
    # extractive QA
    "adversarial_qa_dbidaf": "extractive_qa", "adversarial_qa_dbert": "extractive_qa",
    "adversarial_qa_droberta": "extractive_qa", "quoref": "extractive_qa", "ropes": "extractive_qa",
    "duorc_SelfRC": "extractive_qa", "duorc_ParaphraseRC": "extractive_qa",
    "squad_v2": "extractive_qa",  # T0+
    # closed-book QA
    "wiki_qa": "closed_book_qa", "kilt_tasks_hotpotqa": "closed_book_qa",
    "trivia_qa_unfiltered": "closed_book_qa", "web_questions": "closed_book_qa",  # T0+
    # sentiment
    "amazon_polarity": "sentiment", "app_reviews": "sentiment", "imdb": "sentiment",
    "rotten_tomatoes": "sentiment", "yelp_review_full": "sentiment",
    # topic classification
    "ag_news": "topic_classification", "dbpedia_14": "topic_classification", "trec": "topic_classification",
    # structure-to-text
    "common_gen": "structure_to_text", "wiki_bio": "structure_to_text",
    # summarization
    "cnn_dailymail_3.0.0": "summarization", "gigaword": "summarization", "multi_news": "summarization",
    "samsum": "summarization", "xsum": "summarization",
    # paraphrase identification
    "glue_mrpc": "paraphrase_identification", "glue_qqp": "paraphrase_identification",
    "paws_labeled_final": "paraphrase_identification",
    # T0++: SuperGLUE reading comprehension
    "super_glue_boolq": "reading_comprehension", "super_glue_multirc": "reading_comprehension",
    "super_glue_record": "reading_comprehension",
    # held out: natural language inference
    "anli": "natural_language_inference", "super_glue_cb": "natural_language_inference",
    "super_glue_rte": "natural_language_inference",
    # held out: coreference resolution
    "super_glue_wsc.fixed": "coreference", "winogrande_winogrande_xl": "coreference",
    "winogrande_winogrande_debiased": "coreference",
    # held out: sentence completion
    "super_glue_copa": "sentence_completion", "hellaswag": "sentence_completion",
    "story_cloze_2016": "sentence_completion",
    # held out: word sense disambiguation
    "super_glue_wic": "word_sense",
}
DEFAULT_HELD_OUT: tuple[str, ...] = ("natural_language_inference", "coreference", "sentence_completion",
                                     "word_sense")
SCORE_EVAL = "_score_eval"


def task_name(dataset: str) -> str:
    """A seqio-safe task name for a dataset prefix: ``super_glue_wsc.fixed`` -> ``super_glue_wsc_fixed``."""
    return re.sub(r"[^A-Za-z0-9_]", "_", dataset)


def dataset_of(config: str, table: Mapping[str, str]) -> tuple[str, str]:
    """(dataset prefix, prompt name) of a P3 config, by the longest prefix in ``table``; DataError if none."""
    found = [d for d in table if config == d or config.startswith(d + "_")]
    if not found:
        raise DataError(f"P3 config {config!r} belongs to no dataset of the T0 cluster table; map it with "
                        "extra_clusters={'<dataset prefix>': '<cluster>'}")
    dataset = max(found, key=len)
    return dataset, config[len(dataset) + 1:]


class P3Provider(FileProvider):
    name = "p3"
    default_held_out = DEFAULT_HELD_OUT

    def __init__(self, source=None, languages=None, extra_clusters: Mapping[str, str] | None = None):
        super().__init__(source, languages)
        self.table = dict(DATASET_CLUSTERS)
        for prefix, cluster in (extra_clusters or {}).items():
            if not isinstance(prefix, str) or not isinstance(cluster, str) or not prefix or not cluster:
                raise ConfigError(f"extra_clusters must map dataset prefixes to cluster names, got {prefix!r}: "
                                  f"{cluster!r}")
            self.table[prefix] = cluster

    def static_clusters(self) -> dict[str, tuple[str, ...]]:
        out: dict[str, tuple[str, ...]] = {}
        for dataset, cluster in self.table.items():
            out[cluster] = out.get(cluster, ()) + (task_name(dataset),)
        return out

    def shards(self) -> list[Shard]:
        patterns = [f"{d}_*/*.parquet" for d in self.table] + [f"data/{d}_*/*.parquet" for d in self.table]
        root = local_root(self, HUB, patterns)
        if self.only is not None and self.only != ("en",):
            raise DataError(f"P3 is English-only; languages={list(self.only)}")
        out = []
        tfrecords = [p for p in root.rglob("*.tfrecord*") if p.is_file()] if root.is_dir() else []
        for path in sorted(data_files(root) + tfrecords):
            if path.parent == root:
                raise DataError(f"{path}: P3 files live in one folder per config (<config>/<split>.parquet)")
            config = path.parent.name
            if config.endswith(SCORE_EVAL):
                continue
            dataset, prompt = dataset_of(config, self.table)
            split = split_of_file(Path(path.name))
            if split is None:
                raise DataError(f"{path}: a P3 file is named by its split (train/validation/test)")
            out.append(Shard(str(path), split, lambda p=path, t=prompt: _with_prompt(p, t),
                             task=task_name(dataset), cluster=self.table[dataset], lang="en"))
        return out


def _with_prompt(path: Path, prompt: str):
    for record in formats.read_p3(path):
        yield {**record, "template_id": prompt}
