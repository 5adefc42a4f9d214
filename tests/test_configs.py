"""Typed run configs (xlt.configs, the experiments' configs): every field validated with an error naming it, gin
binding, --help of every entry point, and a TrainConfig built in Python training exactly as the command line."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import ablation as ab
from experiments import transfer_matrix as tm
from xlt import cli, configs, optimizers, train
from xlt.configs import EvalConfig, OptimizerConfig, TrainConfig
from xlt.errors import ConfigError
from xlt.models import ModelConfig

REPO = Path(__file__).resolve().parent.parent


def valid(cls, tmp_path: Path) -> dict:
    """The smallest valid keyword arguments of each config."""
    if cls is TrainConfig:
        return dict(model_dir=str(tmp_path / "run"), train_steps=2, mixture_or_task_name="bible_en")
    if cls is EvalConfig:
        return dict(checkpoint=str(tmp_path))
    if cls is OptimizerConfig:
        return {}
    if cls is tm.MatrixConfig:
        return dict(name="m", base_checkpoint=str(tmp_path), train_sets=("en",), test_languages=("en", "ko"),
                    eval_tasks=("country_name_pair",))
    if cls is ab.AblationConfig:
        return dict(name="a", experiment_gin=("experiments/transfer_tiny_test.gin",),
                    variants={"x": {"transfer_matrix.seeds": [0]}, "y": {"transfer_matrix.seeds": [1]}})
    raise AssertionError(cls)


# One bad value per field: the test below fails when a field is added without a case here.
BAD = {
    TrainConfig: dict(model_dir="", train_steps=0, mixture_or_task_name=" ", batch_size=0, seq_len=-1, input_len=0,
                      seed=-1, mesh_shape=(1, 2), checkpoint_every=0, keep_checkpoints=0, log_every=0,
                      model={"layout": "gpt"}, optimizer=None, feature_converter="lm", pack="yes",
                      grad_accum_steps=3, z_loss=-1.0, async_checkpoints=None, quiet=1, init_checkpoint="",
                      allow_data_change="yes", nonfinite="halt"),
    OptimizerConfig: dict(peak=0.0, schedule="linear", warmup_steps=-1, final_fraction=1.5, weight_decay=-0.1,
                          b1=1.0, b2=-0.5, eps=0.0, clip_norm=0.0),
    EvalConfig: dict(checkpoint="", output_dir="", languages=(), clusters=("no_such_cluster",),
                     tasks=("no_such_task",), split="dev", template_mode="mixed", template_lang="xx",
                     fallback_lang="xx", max_items_per_task=0, batch_size=0, max_new_tokens=0, max_input_len=1,
                     mesh_shape=(0, 1, 1), quiet="no", vocabulary="bytes", benchmarks=("no_such_benchmark",),
                     benchmark_sources={"xnli": ""}, korean_rouge="word", all_templates="no", calibrate=1),
    tm.MatrixConfig: dict(name="a/b", results_dir="", model_gin="models/no_such.gin", base_checkpoint="/no/such/dir",
                          base_dir="elsewhere", base_gin_files=("no_such.gin",), base_bindings=("no equals sign",),
                          train_sets=("en+en",), test_languages=("xx",), seeds=(-1,), train_steps=0, batch_size=0,
                          tune_bindings="SEED = 1", template_mode="mixed", template_lang="xx",
                          cross_template_langs=("xx",), eval_tasks=("month_after",), seen_tasks=("verse_language_name",),
                          max_items_per_task=0, held_out_splits=("dev",), seen_splits=("train",), max_new_tokens=0,
                          eval_batch_size=0, vocabulary="bytes", quiet_children="no", all_templates=None,
                          calibrate="yes", compilation_cache=0, train_vocabulary={"vocab_size": 100},
                          benchmarks=("no_such_benchmark",), benchmark_sources={"xnli": "/data/xnli"},
                          benchmark_languages={"xnli": ("en",)}, instruction_data={"name": "no_such_data"},
                          row_instruction_data={"fr": {"name": "multialpaca"}}),
    ab.AblationConfig: dict(name="", experiment_gin=(), variants={"only": {}}, results_dir="", description=3),
}
BAD[TrainConfig].update(eval_every=-1, eval_benchmarks=("no_such_benchmark",), eval_languages=("xx",),  # eval_every
                        eval_benchmark_sources={"xnli": ""}, eval_max_items=0, eval_batch_size=0)
CLASSES = list(BAD)


def fields(cls) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if not f.metadata.get("internal")]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_field_has_a_bad_value_case(cls):
    assert sorted(BAD[cls]) == sorted(fields(cls))


@pytest.mark.parametrize("cls, field", [(c, f) for c in CLASSES for f in BAD[c]],
                         ids=lambda x: getattr(x, "__name__", x))
def test_each_bad_field_is_a_one_line_error_naming_it(tmp_path, cls, field):
    kwargs = valid(cls, tmp_path)
    if cls is tm.MatrixConfig and field == "base_gin_files":  # a base pretrained by the matrix
        kwargs.update(base_checkpoint=None, base_gin_files=("models/gpt_tiny.gin", "runs/pretrain.gin"))
    cls(**kwargs)  # the valid arguments are valid
    with pytest.raises(ConfigError) as err:
        cls(**{**kwargs, field: BAD[cls][field]})
    message = str(err.value)
    assert "\n" not in message
    assert f"{cls.__name__}.{field}" in message, message


def test_example_message():
    with pytest.raises(ConfigError, match=r"^TrainConfig.batch_size must be > 0, got 0 \(BATCH_SIZE\)$"):
        TrainConfig(model_dir="x", train_steps=1, mixture_or_task_name="bible_en", batch_size=0)


def test_optimizer_defaults_are_the_optimizer_functions_defaults():
    defaults = {**configs.signature_defaults(optimizers.learning_rate_schedule),
                **configs.signature_defaults(optimizers.make_optimizer)}
    for f in dataclasses.fields(OptimizerConfig):
        assert f.default == defaults[f.name], f.name


def test_gin_binds_configs_but_python_construction_ignores_gin(tmp_path):
    cli.load_gin(["models/gpt_tiny.gin", "runs/pretrain.gin"],
                 [f"MODEL_DIR = '{tmp_path}'", "train.log_every = 7", "BATCH_SIZE = 4",
                  "learning_rate_schedule.warmup_steps = 3", "make_optimizer.clip_norm = None"])
    from_gin = TrainConfig.from_gin()
    assert (from_gin.log_every, from_gin.batch_size, from_gin.model_dir) == (7, 4, str(tmp_path))
    assert from_gin.model.d_model == 64 and from_gin.model.max_len == 512  # gin/models/gpt_tiny.gin
    assert from_gin.optimizer == OptimizerConfig(peak=3e-3, warmup_steps=3, clip_norm=None)
    assert "ModelConfig.d_model = 64" in from_gin.gin_text
    plain = TrainConfig(model_dir="x", train_steps=1, mixture_or_task_name="bible_en")
    assert plain.log_every == 10 and plain.batch_size == 8  # the dataclass's defaults, not gin's bindings
    assert type(from_gin) is TrainConfig and type(plain) is TrainConfig
    with pytest.raises(ConfigError, match=r"TrainConfig.train_steps must be > 0"):
        from_gin.replace(train_steps=0)  # a copy is validated again


def test_required_field_missing_names_its_binding():
    cli.load_gin(["runs/eval.gin"], [])
    with pytest.raises(ConfigError, match=r"EvalConfig.checkpoint is required \(bind evaluate.checkpoint or CHECKPOINT\)"):
        EvalConfig.from_gin()


def test_matrix_and_ablation_configs_from_gin(tmp_path):
    cli.load_gin(["experiments/transfer_tiny_test.gin"], [f"transfer_matrix.results_dir = '{tmp_path}'"])
    cfg = tm.MatrixConfig.from_gin()
    assert cfg.train_sets == ("en", "ko") and cfg.seeds == (0,) and cfg.vocabulary.vocab_size > 256
    assert cfg.base_path == tmp_path / "tiny" / "base"
    from xlt.data import tasks
    assert json.loads(json.dumps(cfg.to_dict()))["vocabulary"] == tasks.vocabulary_id(cfg.vocabulary)
    cli.load_gin(["experiments/ablation_templates.gin"], [])
    spec = ab.AblationConfig.from_gin()
    assert list(spec.variants) == ["native", "fixed_en", "cross"]
    assert "transfer_matrix.template_lang = 'en'" in spec.variants["fixed_en"]


ENTRY_POINTS = {
    "xlt.train": [TrainConfig, OptimizerConfig, ModelConfig],
    "xlt.eval": [EvalConfig],
    "experiments.transfer_matrix": [tm.MatrixConfig],
    "experiments.ablation": [ab.AblationConfig],
    "xlt.models.describe": [ModelConfig],
}


def _check_help(module: str, out: str) -> None:
    assert out.startswith(f"usage: python -m {module}"), out[:200]
    for cls in ENTRY_POINTS[module]:
        for f in dataclasses.fields(cls):
            if f.metadata.get("internal"):
                continue
            line = next((x for x in out.splitlines() if x.split() and x.split()[0] == configs.gin_binding(cls, f)), None)
            assert line is not None, (module, f.name)
            if f.default is not dataclasses.MISSING:
                assert f"= {f.default!r}" in line, (module, line)
            else:
                assert "= REQUIRED" in line or "(…)" in line, (module, line)
    if module == "xlt.train":
        assert "gin macros" in out and "-> train.batch_size" in out
        for macro in ("MODEL_DIR", "TRAIN_STEPS", "BATCH_SIZE", "SEQ_LEN", "INPUT_LEN", "SEED", "MESH_SHAPE",
                      "CHECKPOINT_EVERY", "MIXTURE_OR_TASK_NAME"):
            assert f"  {macro} " in out, macro


@pytest.mark.parametrize("module", sorted(ENTRY_POINTS))
def test_help_lists_every_field_in_process(module, capsys):
    import importlib
    entry = importlib.import_module("xlt.evaluation.evaluate" if module == "xlt.eval" else module)
    assert cli.main(entry.main, ["--gin_file=whatever.gin", "--help"], usage=entry.help_text) == 0
    _check_help(module, capsys.readouterr().out)


@pytest.mark.slow
def test_help_of_every_entry_point_lists_its_fields_and_no_accelerator_noise():
    """Each ``python -m <entry> --help`` exits 0 with its usage, the macros and every field with its default; the
    commands run in parallel, in real processes, with the environment a user has (no test-only TF settings)."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES")}
    procs = {m: subprocess.Popen([sys.executable, "-m", m, "--help"], cwd=REPO, env=env, text=True,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE) for m in ENTRY_POINTS}
    for module, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, (module, err)
        _check_help(module, out)
        for noise in ("cuInit", "cuda", "absl::InitializeLog", "oneDNN"):
            assert noise not in err, (module, err)


@pytest.mark.slow
def test_train_config_built_in_python_trains_as_the_command_line(tmp_path):
    cli_dir, py_dir = tmp_path / "cli", tmp_path / "python"
    argv = ["--gin_file=models/gpt_tiny.gin", "--gin_file=runs/pretrain.gin", f"--gin.MODEL_DIR='{cli_dir}'",
            "--gin.BATCH_SIZE=8", "--gin.SEQ_LEN=64", "--gin.TRAIN_STEPS=3", "--gin.train.log_every=1",
            "--gin.learning_rate_schedule.warmup_steps=5"]
    assert cli.main(train.main, argv) == 0
    import gin
    from xlt.data import tasks
    gin.clear_config()
    train.register_data(vocab=tasks.vocabulary(kind="byte"))
    config = TrainConfig(
        model_dir=str(py_dir), train_steps=3, mixture_or_task_name="bible_en", batch_size=8, seq_len=64,
        checkpoint_every=500, log_every=1,
        model=ModelConfig(layout="gpt", vocab_size=384, d_model=64, num_layers=2, num_heads=4, d_ff=256, max_len=512),
        optimizer=OptimizerConfig(peak=3e-3, warmup_steps=5, weight_decay=0.01, clip_norm=1.0))
    records = train.train(config)
    assert [r["step"] for r in records] == [1, 2, 3]

    def losses(d: Path) -> list[float]:
        return [json.loads(x)["loss"] for x in (d / "metrics.jsonl").read_text().splitlines()]

    assert losses(py_dir) == losses(cli_dir)  # bitwise
    saved = {d: json.loads((d / "config.json").read_text()) for d in (cli_dir, py_dir)}
    assert {**saved[py_dir], "model_dir": None} == {**saved[cli_dir], "model_dir": None}
    assert (cli_dir / "config.gin").is_file() and not (py_dir / "config.gin").exists()
