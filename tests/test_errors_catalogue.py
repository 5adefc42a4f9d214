"""The catalogue of bad inputs (docs/ERRORS.md): every case run through its entry point and checked for the
contract of ``xlt.cli.main``: exactly one line ``xlt: error: <message>`` on stderr (no traceback), exit status
2, nothing written (the run's output folder never created) and nothing lost (every file of the existing
runs, checkpoints, results and data the cases point at hashes the same before and after).

One list, ``CASES``, is both the test parametrization and the table of docs/ERRORS.md: ``test_doc_is_the_catalogue``
fails when the two differ, and ``python tests/test_errors_catalogue.py`` rewrites the document from the list.

Most cases run in-process (``cli.main(entry.main, argv)``, as the CLI does); those marked ``real`` run as
``python -m <entry>`` in a real process (all at once), which also proves that nothing else reaches stderr:
no warning, no TensorFlow start-up line. One module fixture, ``world``, holds the inputs every case reads:
a trained tiny MODEL_DIR, a params-only checkpoint and broken copies of it, broken vocabulary, benchmark and
instruction files, an existing results folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "ERRORS.md"

# --- The entry points --------------------------------------------------------------------------------------

# name in the table -> (module holding the callable, its attribute, the command a user types, what it writes)
ENTRIES = {
    "train": ("xlt.train", "main", "python -m xlt.train", "MODEL_DIR"),
    "eval": ("xlt.evaluation.evaluate", "main", "python -m xlt.eval", "EVAL_DIR"),
    "describe": ("xlt.models.describe", "main", "python -m xlt.models.describe", None),
    "matrix": ("experiments.transfer_matrix", "main", "python -m experiments.transfer_matrix", "results folder"),
    "ablation": ("experiments.ablation", "main", "python -m experiments.ablation", "results folder"),
    "convert": ("xlt.interop.hf", "run", "python tools/convert_hf.py", "--out"),
    "harness": ("xlt.harness", "main", "python -m xlt.harness", "--output_path"),
}

# The argv each entry point's cases start from (the table shows it as ‹tiny run›, ‹eval›, …); {out} is the
# case's output path, {world} the fixture folder, {run} the trained MODEL_DIR in it.
BASES = {
    "train": ("‹tiny run›", ["--gin_file=models/gpt_tiny.gin", "--gin_file=runs/pretrain.gin", "--gin.BATCH_SIZE=8",
                             "--gin.SEQ_LEN=64", "--gin.TRAIN_STEPS=2", "--gin.MIXTURE_OR_TASK_NAME='bible_en'",
                             "--gin.learning_rate_schedule.warmup_steps=1", "--gin.MODEL_DIR='{out}'"]),
    "eval": ("‹eval›", ["--gin_file=runs/eval.gin", "--gin.CHECKPOINT='{run}'", "--gin.EVAL_DIR='{out}'"]),
    "matrix": ("‹tiny matrix›", ["--gin_file=experiments/transfer_tiny_test.gin",
                                 "--gin.transfer_matrix.results_dir='{out}'"]),
    "ablation": ("‹ablation›", ["--gin_file={world}/ablation.gin", "--gin.ablation.results_dir='{out}'"]),
    "harness": ("‹lm-eval›", ["--model", "xlt", "--tasks", "lambada_openai", "--output_path", "{out}"]),
}


def instruct(data: str = "alpaca") -> tuple[str, ...]:
    """Instruction tuning on a local MultiAlpaca copy ``{world}/<data>``."""
    return "--gin_file=runs/instruct_multialpaca.gin", f"--gin.DATA_DIR='{{world}}/{data}'"


@dataclasses.dataclass(frozen=True)
class Case:
    area: str       # config | data | checkpoint | language | mesh | vocabulary | benchmark | instruction data
    input: str      # what is wrong, in words
    entry: str      # a key of ENTRIES
    args: tuple[str, ...]  # after the entry's base argv (BASES); {out}, {world}, {run} are filled in
    message: str    # the start of the line after "xlt: error: " ({world}, {run} filled in)
    keeps: str | None = None  # the existing thing the case points at, shown as guaranteed unchanged
    into: bool = False  # the case's output is that existing thing (a resumed MODEL_DIR, an export over a checkpoint)
    real: bool = False  # run as a real process (else in-process)
    base: bool = True   # prepend BASES[entry]

    @property
    def id(self) -> str:
        return re.sub(r"[^a-z0-9]+", "_", f"{self.area} {self.input}".lower()).strip("_")[:60]


C = Case
CASES: list[Case] = [
    # ---- config: gin files, bindings, field values, arguments
    C("config", "gin file that does not exist", "train", ("--gin_file=no/such.gin",),
      "gin file not found: no/such.gin (searched ."),
    C("config", "gin file with a syntax error", "describe", ("--gin_file={world}/broken.gin",),
      "bad gin config: Unable to parse value. (broken.gin, line 1)", base=False),
    C("config", "binding of an unknown configurable", "train", ("--gin.NoSuchThing.value=1",),
      "bad gin config: No configurable matching 'NoSuchThing'"),
    C("config", "binding without a value", "train", ("--gin.TRAIN_STEPS",),
      "gin binding '--gin.TRAIN_STEPS' needs the form --gin.NAME=VALUE"),
    C("config", "argument that is not a gin flag", "train", ("--steps=3",), "unknown arguments ['--steps=3']"),
    C("config", "no gin file", "train", ("--gin.TRAIN_STEPS=3", "--gin.MODEL_DIR='{out}'"),
      "no --gin_file given; e.g. --gin_file=", base=False),
    C("config", "field value out of range", "train", ("--gin.TRAIN_STEPS=0",),
      "TrainConfig.train_steps must be > 0, got 0 (TRAIN_STEPS)"),
    C("config", "field value of the wrong type", "train", ("--gin.TRAIN_STEPS='many'",),
      "TrainConfig.train_steps must be > 0, got 'many' (TRAIN_STEPS)"),
    C("config", "unknown model layout", "train", ("--gin.ModelConfig.layout='gpt3'",),
      "unknown model layout 'gpt3'; choose one of"),
    C("config", "model field out of range", "describe", ("--gin_file=models/gpt_tiny.gin",
                                                         "--gin.ModelConfig.num_layers=0"),
      "ModelConfig.num_layers must be > 0, got 0", base=False),
    C("config", "evaluation field out of range", "eval", ("--gin.evaluate.batch_size=0",),
      "EvalConfig.batch_size must be > 0, got 0"),
    C("config", "evaluation without a checkpoint", "eval", ("--gin_file=runs/eval.gin", "--gin.EVAL_DIR='{out}'"),
      "EvalConfig.checkpoint is required (bind evaluate.checkpoint or CHECKPOINT)", base=False),
    C("config", "matrix field value, results folder already there", "matrix",
      ("--gin.transfer_matrix.results_dir='{world}/results'", "--gin.transfer_matrix.seeds=[]"),
      "MatrixConfig.seeds must be a non-empty list, got ()", keeps="results {world}/results/tiny", into=True),
    C("config", "matrix naming a gin file that does not exist", "matrix",
      ("--gin.transfer_matrix.model_gin='models/nope.gin'",), "gin file not found: models/nope.gin"),
    C("config", "ablation with one variant", "ablation", (),
      "AblationConfig.variants must map at least two variant names"),
    C("config", "unknown subcommand", "convert", ("frobnicate",),
      "convert_hf: argument command: invalid choice: 'frobnicate'", base=False),
    C("config", "bad size argument", "convert", ("export", "--xlt_dir={world}/params", "--out={out}",
                                                  "--max_shard_size=5XB"),
      "--max_shard_size='5XB': use a byte count", base=False),
    # ---- data: task names, mixtures, a resumed run's data stream, broken files
    C("data", "unknown task or mixture", "train", ("--gin.MIXTURE_OR_TASK_NAME='bible_xx'",),
      "unknown task or mixture 'bible_xx'; registered:"),
    C("data", "unknown mixture rate", "train", ("--gin_file=mixtures/temperature.gin",
                                                "--gin.language_mixture.rate='nope'"),
      "rate 'nope' is not registered; choose one of"),
    C("data", "curriculum share above 1", "train", ("--gin_file=mixtures/curriculum.gin",
                                                    "--gin.language_mixture.stages=[(0, {{'en': 1.5}})]"),
      "stage at step 0: fixed shares must each be in [0, 1], got 'en': 1.5"),
    C("data", "resuming with another mixture", "train", ("--gin.MODEL_DIR='{run}'", "--gin.TRAIN_STEPS=4",
                                                         "--gin.MIXTURE_OR_TASK_NAME='bible_ko'"),
      "checkpoint {run}/checkpoints/2 was trained with mixture_or_task_name='bible_en', this run has 'bible_ko'",
      keeps="MODEL_DIR {run}", into=True),
    C("data", "resuming with another seed", "train", ("--gin.MODEL_DIR='{run}'", "--gin.TRAIN_STEPS=4",
                                                      "--gin.SEED=7"),
      "checkpoint {run}/checkpoints/2 was trained with seed=0, this run has 7", keeps="MODEL_DIR {run}", into=True),
    C("data", "instruction file with a broken JSON line", "train", (*instruct("alpaca_broken"),
                                                                    "--gin.TRAIN_LANGUAGES=['ko']"),
      "{world}/alpaca_broken/ko.jsonl:2: not valid JSON"),
    C("data", "benchmark file that is not JSON lines", "eval", (
        "--gin.BENCHMARKS=['xnli']", "--gin.EVAL_LANGUAGES=['en']",
        "--gin.BENCHMARK_SOURCES={{'xnli': '{world}/xnli_json'}}"),
      "{world}/xnli_json/en/test.jsonl:1: not a JSON record"),
    # ---- checkpoint: missing, not a checkpoint, another shape, no vocabulary record, corrupt metadata
    C("checkpoint", "evaluating a path that does not exist", "eval", ("--gin.CHECKPOINT='{world}/nope'",),
      "EvalConfig.checkpoint: {world}/nope does not exist (CHECKPOINT)"),
    C("checkpoint", "evaluating a folder that is no checkpoint", "eval", ("--gin.CHECKPOINT='{world}/empty'",),
      "no xlt checkpoint at {world}/empty: expected a params-only checkpoint"),
    C("checkpoint", "resuming a MODEL_DIR of another model shape", "train",
      ("--gin.MODEL_DIR='{run}'", "--gin.TRAIN_STEPS=4", "--gin.ModelConfig.d_model=32"),
      "checkpoint {run}/checkpoints/2 was written for a different model", keeps="MODEL_DIR {run}", into=True,
      real=True),
    C("checkpoint", "INIT_CHECKPOINT of another model shape", "train",
      ("--gin.INIT_CHECKPOINT='{run}'", "--gin.ModelConfig.d_model=32"),
      "checkpoint {run}/checkpoints/2 does not match the model: parameter", keeps="INIT_CHECKPOINT {run}"),
    C("checkpoint", "INIT_CHECKPOINT that does not exist", "train", ("--gin.INIT_CHECKPOINT='{world}/nope'",),
      "checkpoint path does not exist: {world}/nope"),
    C("checkpoint", "checkpoint without a vocabulary record", "eval", ("--gin.CHECKPOINT='{world}/novocab'",),
      "checkpoint {world}/novocab records no vocabulary", keeps="checkpoint {world}/novocab"),
    C("checkpoint", "corrupt meta.json", "eval", ("--gin.CHECKPOINT='{world}/badmeta'",),
      "corrupt checkpoint metadata {world}/badmeta/meta.json:", keeps="checkpoint {world}/badmeta", real=True),
    C("checkpoint", "export over an existing checkpoint", "convert",
      ("export", "--xlt_dir={world}/params", "--out={world}/params"),
      "output {world}/params already exists and is not empty; remove it or pass --overwrite",
      keeps="checkpoint {world}/params", into=True,
      real=True, base=False),
    C("checkpoint", "import from a folder without config.json", "convert",
      ("import", "--hf_dir={world}/empty", "--out={out}"), "config.json not found: {world}/empty/config.json",
      base=False),
    # ---- language codes
    C("language", "unknown code", "eval", ("--gin.EVAL_LANGUAGES=['xx']",),
      "unknown language code 'xx'; valid codes:"),
    C("language", "language name instead of code", "eval", ("--gin.EVAL_LANGUAGES=['english']",),
      "unknown language code 'english' (did you mean 'en'?)"),
    C("language", "unknown code in a mixture", "train", ("--gin_file=mixtures/temperature.gin",
                                                         "--gin.LANGUAGES=['en', 'xx']"),
      "unknown language code 'xx'"),
    C("language", "unknown training language", "train",
      ("--gin_file=runs/instruct.gin", "--gin.TRAIN_LANGUAGES=['xx']"),
      "unknown language code 'xx'"),
    C("language", "unknown test language of a matrix", "matrix", ("--gin.transfer_matrix.test_languages=['en', 'xx']",),
      "unknown language code 'xx'"),
    C("language", "unknown code in an ablation variant", "ablation",
      ("--gin.ablation.variants={{'a': {{}}, 'b': {{'transfer_matrix.test_languages': ['en', 'xx']}}}}",),
      "variant 'b': unknown language code 'xx'"),
    # ---- mesh
    C("mesh", "mesh larger than the devices", "train", ("--gin.MESH_SHAPE=(3,1,1)",),
      "MESH_SHAPE (data=3, fsdp=1, tensor=1) needs 3 devices but 8 are present"),
    C("mesh", "mesh of two axes", "train", ("--gin.MESH_SHAPE=(2,2)",), "TrainConfig.mesh_shape must be 3 sizes"),
    C("mesh", "batch not dividing the batch axes", "train", ("--gin.BATCH_SIZE=4",),
      "BATCH_SIZE=4 does not divide over the batch mesh axes data*fsdp=8"),
    C("mesh", "heads not dividing the tensor axis", "train", ("--gin.ModelConfig.num_heads=3",
                                                               "--gin.MESH_SHAPE=(1,1,8)"),
      "parameter decoder/layers_0/self_attention/out/kernel: dimension 0 of size 3 does not divide over mesh axis "
      "'tensor' of size 8"),
    C("mesh", "lm-eval mesh_shape that is no shape", "harness",
      ("--model_args", "checkpoint={world}/params,mesh_shape=banana"), "mesh_shape must look like 1x2x4", real=True),
    # ---- vocabulary
    C("vocabulary", "sentencepiece file that does not exist", "train",
      ("--gin.vocabulary.kind='sentencepiece'", "--gin.vocabulary.path='{world}/nope.model'"),
      "sentencepiece model not found: {world}/nope.model"),
    C("vocabulary", "sentencepiece file that is no model", "train",
      ("--gin.vocabulary.kind='sentencepiece'", "--gin.vocabulary.path='{world}/garbage.model'"),
      "{world}/garbage.model is not a sentencepiece model:"),
    C("vocabulary", "tokenizer.json that is no JSON", "train",
      ("--gin.vocabulary.kind='tokenizers'", "--gin.vocabulary.path='{world}/garbage.json'"),
      "cannot read Hugging Face tokenizer {world}/garbage.json:"),
    C("vocabulary", "unknown vocabulary kind", "train", ("--gin.vocabulary.kind='wordpiece'",),
      "vocabulary.kind='wordpiece'; choose one of"),
    C("vocabulary", "resuming with another vocabulary", "train",
      ("--gin.MODEL_DIR='{run}'", "--gin.TRAIN_STEPS=4", "--gin.vocabulary.extra_ids=10"),
      "the vocabulary does not match checkpoint {run}/checkpoints/2: it was trained with byte vocabulary (259 ids)",
      keeps="MODEL_DIR {run}", into=True),
    C("vocabulary", "evaluating with another vocabulary", "eval", ("--gin.vocabulary.extra_ids=10",),
      "the vocabulary does not match checkpoint {run}: it was trained with byte vocabulary (259 ids)",
      keeps="checkpoint {run}"),
    C("vocabulary", "vocabulary file changed inside the checkpoint", "convert",
      ("export", "--xlt_dir={world}/vocab_changed", "--out={out}"),
      "vocabulary file {world}/vocab_changed/vocab/tokenizer.json has sha256",
      keeps="checkpoint {world}/vocab_changed", base=False),
    C("vocabulary", "vocabulary file missing from the checkpoint", "convert",
      ("export", "--xlt_dir={world}/vocab_missing", "--out={out}"),
      "vocabulary file {world}/vocab_missing/vocab/tokenizer.json recorded by checkpoint",
      keeps="checkpoint {world}/vocab_missing",
      base=False),
    # ---- benchmarks
    C("benchmark", "unknown benchmark", "eval", ("--gin.BENCHMARKS=['nope']",),
      "unknown benchmark 'nope'; registered:"),
    C("benchmark", "unknown benchmark in a matrix", "matrix",
      ("--gin.transfer_matrix.benchmarks=['nope']", "--gin.transfer_matrix.eval_tasks=None"),
      "unknown benchmark 'nope'"),
    C("benchmark", "language the benchmark lacks", "eval", (
        "--gin.BENCHMARKS=['xcopa']", "--gin.EVAL_LANGUAGES=['en']",
        "--gin.BENCHMARK_SOURCES={{'xcopa': '{world}/xcopa'}}"),
      "benchmark 'xcopa' has no language 'en'; it has"),
    C("benchmark", "split the benchmark lacks", "eval", (
        "--gin.BENCHMARKS=['xnli']", "--gin.EVAL_LANGUAGES=['en']",
        "--gin.BENCHMARK_SOURCES={{'xnli': '{world}/xnli'}}",
        "--gin.evaluate.split='dev'"),
      "benchmark 'xnli' has no split 'dev'"),
    C("benchmark", "local source folder that does not exist", "eval", (
        "--gin.BENCHMARKS=['xnli']", "--gin.EVAL_LANGUAGES=['en']",
        "--gin.BENCHMARK_SOURCES={{'xnli': '{world}/nope'}}"),
      "xnli: source directory '{world}/nope' does not exist"),
    C("benchmark", "local record without a field of the schema", "eval", (
        "--gin.BENCHMARKS=['xnli']", "--gin.EVAL_LANGUAGES=['en']",
        "--gin.BENCHMARK_SOURCES={{'xnli': '{world}/xnli_field'}}"),
      "xnli: {world}/xnli_field:en/test record 0 lacks field(s) hypothesis"),
    C("benchmark", "local label outside the published ids", "eval", (
        "--gin.BENCHMARKS=['xnli']", "--gin.EVAL_LANGUAGES=['en']",
        "--gin.BENCHMARK_SOURCES={{'xnli': '{world}/xnli_label'}}"),
      "xnli: field 'label' = 'neutral'; expected one of 0, 1, 2"),
    # ---- instruction data
    C("instruction data", "unknown provider", "train", (*instruct(), "--gin.TRAIN_LANGUAGES=['ko']",
                                                        "--gin.instruction_data.name='xp4'"),
      "unknown instruction data 'xp4'; registered:"),
    C("instruction data", "unknown provider in a matrix", "matrix",
      ("--gin.transfer_matrix.instruction_data={{'name': 'xp4'}}",), "unknown instruction data 'xp4'"),
    C("instruction data", "file in another set's schema", "train", (
        *instruct("alpaca_schema"), "--gin.TRAIN_LANGUAGES=['ko']"),
      "{world}/alpaca_schema/ko.jsonl:1: missing field 'instruction' (has: inputs, targets)"),
    C("instruction data", "training language the data lacks", "train",
      (*instruct(), "--gin.TRAIN_LANGUAGES=['ko', 'en']"),
      "instruction data 'multialpaca' has no training language 'en'; it has: ko"),
    C("instruction data", "template mode for already-rendered data", "train", (
        *instruct(), "--gin.TRAIN_LANGUAGES=['ko']", "--gin.TEMPLATE_MODE='cross'", "--gin.TEMPLATE_LANG='en'"),
      "instruction data 'multialpaca' is already rendered"),
    C("instruction data", "unknown held-out cluster", "train", ("--gin_file=runs/instruct.gin",
                                                                "--gin.register_instruct_tasks.held_out=('nope',)"),
      "unknown task cluster 'nope'; clusters:"),
    C("instruction data", "data folder that does not exist", "train", (
        *instruct("nope"), "--gin.TRAIN_LANGUAGES=['ko']"),
      "multialpaca: source '{world}/nope' is neither a local file or directory nor a hub name"),
]
AREAS = ("config", "data", "checkpoint", "language", "mesh", "vocabulary", "benchmark", "instruction data")


# --- The fixture world -------------------------------------------------------------------------------------

def _jsonl(path: Path, rows: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows))


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    from xlt import checkpoints, cli, train
    from xlt.data.vocab import VocabularyRecord

    w = tmp_path_factory.mktemp("world")
    run = w / "run"
    assert cli.main(train.main, [a.format(out=run) for a in BASES["train"][1]]) == 0
    params, meta = checkpoints.load_params(run)
    checkpoints.save_params(w / "params", params, meta)
    checkpoints.save_params(w / "novocab", params, meta.replace(vocabulary=None))
    checkpoints.save_params(w / "badmeta", params, meta)
    text = (w / "badmeta" / "meta.json").read_text()
    (w / "badmeta" / "meta.json").write_text(text[: len(text) // 2])  # torn mid-write
    # a checkpoint recording a tokenizer.json: then the file changed, or gone
    tokenizer = '{"version": "1.0"}'
    record = VocabularyRecord(kind="tokenizers", size=meta.vocabulary.size, file="vocab/tokenizer.json",
                              sha256=hashlib.sha256(tokenizer.encode()).hexdigest(),
                              conventions=meta.vocabulary.conventions)
    for name in ("vocab_changed", "vocab_missing"):
        checkpoints.save_params(w / name, params, meta.replace(vocabulary=record),
                                extra_files={"vocab/tokenizer.json": tokenizer})
    (w / "vocab_changed" / "vocab" / "tokenizer.json").write_text('{"version": "2.0"}')
    (w / "vocab_missing" / "vocab" / "tokenizer.json").unlink()
    (w / "empty").mkdir()
    (w / "garbage.model").write_bytes(b"not a sentencepiece model\n")
    (w / "garbage.json").write_text('{"model": {"type": "BPE", ')
    (w / "broken.gin").write_text("train.batch_size = \n = 3 (\n")
    (w / "ablation.gin").write_text("ablation.name = 'tmpl'\n"
                                    "ablation.experiment_gin = ['experiments/transfer_tiny_test.gin']\n"
                                    "ablation.variants = {'only': {'transfer_matrix.template_mode': 'native'}}\n")
    # an earlier matrix's results: a bad re-run must leave them as they are
    _jsonl(w / "results" / "tiny" / "matrix.json", ['{"rows": []}'])
    (w / "results" / "tiny" / "matrix.md").write_text("| row | en |\n")
    # benchmarks: a good local XNLI and XCOPA copy, and broken ones
    nli = {"premise": "The cat sat on the mat.", "hypothesis": "A cat sat.", "label": 0}
    _jsonl(w / "xnli" / "en" / "test.jsonl", [nli])
    _jsonl(w / "xcopa" / "it" / "test.jsonl", [{"premise": "p", "choice1": "a", "choice2": "b", "question": "cause",
                                                 "label": 0}])
    _jsonl(w / "xnli_field" / "en" / "test.jsonl", [{"premise": "p", "label": 0}])
    _jsonl(w / "xnli_label" / "en" / "test.jsonl", [{**nli, "label": "neutral"}])
    _jsonl(w / "xnli_json" / "en" / "test.jsonl", ['{"premise": "p", "hyp'])
    # instruction data in MultiAlpaca's layout, and broken copies
    _jsonl(w / "alpaca" / "ko.jsonl",
           [{"instruction": f"질문 {i}", "input": "", "output": f"답 {i}"} for i in range(4)])
    _jsonl(w / "alpaca_schema" / "ko.jsonl", [{"inputs": "q", "targets": "a"}])  # xP3's fields
    _jsonl(w / "alpaca_broken" / "ko.jsonl", [{"instruction": "q", "input": "", "output": "a"},
                                              '{"instruction": "q", "inp'])
    return w


def _snapshot(*roots: Path) -> dict[str, str]:
    """Every directory and file under ``roots`` with the sha256 of each file's bytes."""
    out = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            out[dirpath] = "dir"
            for name in filenames:
                path = Path(dirpath) / name
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _paths(world: Path, out: Path) -> dict[str, str]:
    return {"world": str(world), "run": str(world / "run"), "out": str(out)}


def argv_of(case: Case, paths: dict[str, str]) -> list[str]:
    base = BASES[case.entry][1] if case.base and case.entry in BASES else []
    return [a.format(**paths) for a in (*base, *case.args)]


def _check_line(case: Case, lines: list[str], paths: dict[str, str]) -> None:
    errors = [x for x in lines if x.startswith("xlt: error: ")]
    assert len(errors) == 1 and lines[-1] == errors[0], lines
    assert not any("Traceback" in x for x in lines), lines
    want = "xlt: error: " + case.message.format(**paths)
    assert errors[0].startswith(want), (errors[0], want)
    others = [x for x in lines if x is not errors[0]]
    if case.entry == "harness":  # lm-eval's own progress log (its INFO lines) comes before xlt's error
        assert all(re.match(r"\d{4}-\d\d-\d\d:\d\d:\d\d:\d\d INFO ", x) for x in others), others
    else:
        assert not others, lines


def _check_nothing_written_or_lost(before: dict[str, str], after: dict[str, str], out: Path) -> None:
    assert not out.exists(), f"bad input created {out}"
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"bad input wrote or changed: {changed[:10]}"


# --- The tests -----------------------------------------------------------------------------------------------

def test_catalogue_covers_every_area_and_every_entry_point():
    assert len(CASES) >= 25
    assert {c.area for c in CASES} == set(AREAS)
    assert {c.entry for c in CASES} == set(ENTRIES)
    # the real path of each kind of entry point: a gin trainer, the evaluator, a script, lm-eval's command line
    assert {c.entry for c in CASES if c.real} == {"train", "eval", "convert", "harness"}
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", [c for c in CASES if not c.real], ids=lambda c: c.id)
def test_bad_input_in_process(case, world, tmp_path, monkeypatch, capsys):
    from xlt import cli

    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # a stray relative write would show in the snapshot
    out = tmp_path / "out"
    paths = _paths(world, out)
    argv = argv_of(case, paths)
    module, attr, _, _ = ENTRIES[case.entry]
    entry = getattr(importlib.import_module(module), attr)
    before = _snapshot(world, tmp_path)
    capsys.readouterr()
    code = entry(argv) if case.entry == "harness" else cli.main(entry, argv)
    assert code == cli.EXIT_BAD_INPUT
    _check_line(case, capsys.readouterr().err.strip().splitlines(), paths)
    _check_nothing_written_or_lost(before, _snapshot(world, tmp_path), out)


@pytest.mark.slow  # four real processes in parallel: about a minute on 2 cores
def test_bad_input_in_real_processes(world, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}  # as a user runs it
    env["PYTHONPATH"] = str(REPO)
    real = [c for c in CASES if c.real]
    runs = []
    for i, case in enumerate(real):
        out = tmp_path / f"out{i}"
        paths = _paths(world, out)
        module = ENTRIES[case.entry][0]
        cmd = [sys.executable, str(REPO / "tools" / "convert_hf.py")] if case.entry == "convert" else \
            [sys.executable, "-m", "xlt.eval" if case.entry == "eval" else module]
        runs.append((case, out, paths, cmd + argv_of(case, paths)))
    before = _snapshot(world, tmp_path)
    procs = [subprocess.Popen(cmd, cwd=tmp_path, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for *_, cmd in runs]
    results = [p.communicate(timeout=600) for p in procs]
    for (case, out, paths, _), proc, (_, err) in zip(runs, procs, results):
        assert proc.returncode == 2, (case.id, err[-2000:])
        _check_line(case, err.strip().splitlines(), paths)
        assert not out.exists(), case.id
    _check_nothing_written_or_lost(before, _snapshot(world, tmp_path), tmp_path / "never")


# --- The document ----------------------------------------------------------------------------------------------

INTRO = """# Bad inputs

Every xlt entry point answers bad input (a config, data, checkpoint, language code, mesh, vocabulary,
benchmark or instruction-data mistake) the same way: **one line** `xlt: error: …` on stderr, no traceback,
**exit status 2**, and it does so **before writing anything**: the run's output folder is not created, and an
existing MODEL_DIR, checkpoint, results folder or data file it points at is left byte for byte as it was. The
errors are `xlt.errors.ConfigError`, `DataError` and `CheckpointError`; `xlt.cli.main` turns them into the line.

The table below is the catalogue of known bad inputs. It is generated from the list `CASES` in
`tests/test_errors_catalogue.py` (`python tests/test_errors_catalogue.py` rewrites this file; a test fails when
the two differ), and each row is a test case that checks all four promises: the line starts with the message
shown, the status is 2, the output path (`{out}`) does not exist afterwards, and every file under the
fixture folder (`{world}`: a trained tiny MODEL_DIR `{run}`, a params-only checkpoint, an existing results
folder, local benchmark and instruction files) and the working directory hashes the same before and after.
Rows marked *process* run as a real `python -m …` process (their stderr must hold nothing but the line);
the others call the entry point in-process, as the CLI does.

The base command lines abbreviated in the table:

| shorthand | arguments |
|---|---|
{bases}

`python -m xlt.harness` is lm-eval's command line: lm-eval prints its own `INFO` progress lines before xlt's
error line (still one `xlt: error:` line, the last, and status 2).

A new error path gets a row: add a `Case` to `CASES` (area, input, entry point, arguments, the message's
start, what it must leave unchanged), regenerate this file, and run
`python -m pytest tests/test_errors_catalogue.py` (the real-process rows are marked `slow`).

## Catalogue

| # | area | bad input | command | message starts with | guaranteed |
|---|---|---|---|---|---|
{rows}
"""


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


SHOWN = {"world": "{world}", "run": "{run}", "out": "{out}"}  # placeholders kept as they are in the table


def render() -> str:
    bases = "\n".join(f"| {short} | `{_cell(' '.join(a.format(**SHOWN) for a in argv))}` |"
                      for short, argv in BASES.values())
    rows = []
    for i, c in enumerate(CASES, 1):
        _, _, command, writes = ENTRIES[c.entry]
        base = f"{BASES[c.entry][0]} " if c.base and c.entry in BASES else ""
        shown = base + " ".join(f"`{_cell(a.format(**SHOWN))}`" for a in c.args)
        guaranteed = [] if c.into else [f"{writes} not created" if writes else "writes nothing"]
        if c.keeps:
            guaranteed.append(f"the existing {c.keeps} unchanged")
        if c.real:
            guaranteed.append("*process*")
        rows.append(f"| {i} | {c.area} | {c.input} | `{command}` {shown.strip()} | `{_cell(c.message)}` | "
                    f"{'; '.join(guaranteed)} |")
    return INTRO.replace("{bases}", bases).replace("{rows}", "\n".join(rows))


def test_doc_is_the_catalogue():
    assert DOC.read_text(encoding="utf-8") == render(), \
        "docs/ERRORS.md differs from CASES: run `python tests/test_errors_catalogue.py` to regenerate it"


if __name__ == "__main__":
    DOC.write_text(render(), encoding="utf-8")
    print(f"wrote {DOC} ({len(CASES)} cases)")
