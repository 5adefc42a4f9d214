"""Index-based batches: rows equal what seqio's feature converters make from the same examples, any split
of the global batch over processes gives the same rows, a far resume costs what step 0 costs, every
epoch sees every packed row once, mixture blocks hold exact counts, and a deliberate data restart is a
pure function of the step too."""

import time

import numpy as np
import pytest
import seqio
import tensorflow as tf

from xlt.data import mixtures as mx
from xlt.data import pipeline, tasks
from xlt.errors import ConfigError

LANGS = ("en", "ko", "zh", "sw")
SEQIO_CONVERTERS = {"decoder": seqio.DecoderFeatureConverter, "prefix_lm": seqio.PrefixLMFeatureConverter,
                    "encdec": seqio.EncDecFeatureConverter}


@pytest.fixture(scope="module", autouse=True)
def registered():
    tasks.register_tasks(languages=LANGS)
    mx.language_mixture(name="xlt_test_index", languages=LANGS, stages=[(0, {"en": 0.7}), (5, {"en": 0.2})])


def assert_same(a, b, what=""):
    assert a.keys() == b.keys(), what
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=f"{what} {k}")


@pytest.mark.parametrize("pack", [True, False])
@pytest.mark.parametrize("converter,task,lengths", [
    ("decoder", "bible_sw", {"targets": 96}),
    ("prefix_lm", "bible_en_prefix", {"inputs": 64, "targets": 128}),
    ("encdec", "bible_en_prefix", {"inputs": 128, "targets": 128}),
])
def test_rows_equal_seqio_feature_converter(converter, task, lengths, pack):
    """The layout's rows, fed in its order to seqio's own converter, come out identical."""
    index = pipeline._token_index(task, "train", lengths)
    layout = pipeline._Layout(index, task, converter, lengths, pack, seed=5)
    window = sum(lengths.values()) if converter == "prefix_lm" else max(lengths.values())
    n = 3 * window if pack else 40  # whole packing windows, so seqio's windows line up with the layout's
    order = layout.order[:n]
    keys = tuple(lengths)

    def examples():
        for i in order:
            yield {k: index.get(k, int(i)).astype(np.int32) for k in keys}

    ds = tf.data.Dataset.from_generator(
        examples, output_signature={k: tf.TensorSpec([None], tf.int32) for k in keys})
    expected = list(SEQIO_CONVERTERS[converter](pack=pack)(ds, lengths).as_numpy_iterator())
    assert layout.starts[len(expected)] == n
    if pack:
        assert len(expected) < n, "some rows hold several examples"
    for r, want in enumerate(expected):
        got = pipeline._row_features(index, layout.examples(r), converter, lengths, pack)
        assert_same(got, want, f"row {r}")


def test_any_split_over_processes_gives_the_same_global_batch():
    lengths = {"targets": 64}
    whole = pipeline.batches("xlt_test_index", "decoder", lengths, 8, seed=1, rows=(0, 8))
    halves = [pipeline.batches("xlt_test_index", "decoder", lengths, 8, seed=1, rows=(a, a + 4)) for a in (0, 4)]
    quarters = [pipeline.batches("xlt_test_index", "decoder", lengths, 8, seed=1, rows=(a, a + 2))
                for a in (0, 2, 4, 6)]
    for step in range(7):  # across the stage boundary at 5
        full = next(whole)
        for parts in (halves, quarters):
            joined = [next(p) for p in parts]
            assert_same(full, {k: np.concatenate([j[k] for j in joined]) for k in full}, f"step {step}")
    with pytest.raises(ConfigError, match="rows"):
        pipeline.batches("xlt_test_index", "decoder", lengths, 8, seed=1, rows=(4, 9))


def test_resume_far_away_is_exact_and_costs_what_step_zero_costs():
    lengths = {"targets": 64}
    far = 10_000_000
    reference = pipeline.batches("xlt_test_index", "decoder", lengths, 8, seed=2)
    next(reference)  # builds the token indexes of this process once
    timings = {}
    for start in (0, far):
        t0 = time.perf_counter()
        first = next(pipeline.batches("xlt_test_index", "decoder", lengths, 8, seed=2, start_step=start))
        timings[start] = time.perf_counter() - t0
        it = pipeline.batches("xlt_test_index", "decoder", lengths, 8, seed=2, rows=(0, 8))
        assert_same(first, {k: np.stack([it.row(start, r)[1][k] if k != pipeline.TARGET_TASK else
                                         np.where(it.row(start, r)[1]["decoder_loss_weights"] > 0,
                                                  it.row(start, r)[0], -1) for r in range(8)])
                            for k in first}, f"start {start}")
    assert timings[far] < 3 * timings[0] + 0.5, timings
    resumed = pipeline.batches("xlt_test_index", "decoder", lengths, 8, seed=2, start_step=far - 2)
    walked = [next(resumed) for _ in range(3)]
    direct = next(pipeline.batches("xlt_test_index", "decoder", lengths, 8, seed=2, start_step=far))
    assert_same(walked[-1], direct, "step far")


def test_every_epoch_sees_every_packed_row_once():
    lengths = {"targets": 512}
    name = "bible_sw"
    index = pipeline._token_index(name, "train", lengths)
    layout = pipeline._Layout(index, name, "decoder", lengths, True, seed=4)
    expected = sorted(pipeline._row_features(index, layout.examples(r), "decoder", lengths, True)
                      ["decoder_target_tokens"].tobytes() for r in range(layout.rows))
    it = pipeline.batches(name, "decoder", lengths, 1000, seed=4, rows=(0, 1000))
    seen = []
    while len(seen) < 2 * layout.rows:
        seen.extend(row.tobytes() for row in next(it)["decoder_target_tokens"])
    first, second = seen[:layout.rows], seen[layout.rows:2 * layout.rows]
    assert sorted(first) == expected and sorted(second) == expected
    assert first != second, "each epoch in a fresh order"


def test_mixture_blocks_hold_exact_counts():
    weights = mx.temperature(mx.bible_sizes(LANGS), alpha=0.3)
    blocks = pipeline._Blocks([weights[lang] for lang in LANGS], ("test",))
    assert blocks.counts.sum() == blocks.size
    assert np.all(np.abs(blocks.counts - blocks.size * np.array([weights[lang] for lang in LANGS])) < 1)
    for b in (0, 7):
        located = [blocks.locate(b * blocks.size + s) for s in range(blocks.size)]
        tasks_in_block = np.bincount([t for t, _ in located], minlength=len(LANGS))
        np.testing.assert_array_equal(tasks_in_block, blocks.counts)
        for t in range(len(LANGS)):  # block b holds rows [b*count, (b+1)*count) of each task, each once
            ranks = sorted(j for u, j in located if u == t)
            assert ranks == list(range(b * blocks.counts[t], (b + 1) * blocks.counts[t]))
    tiny = pipeline._Blocks([1.0, 1e-5], ("tiny",))
    assert tiny.counts[1] >= 1, "a rate below 1/S enlarges the block"


def test_restart_step_is_a_pure_function_of_the_step():
    lengths = {"targets": 64}
    plain = pipeline.batches("xlt_test_index", "decoder", lengths, 4, seed=3, start_step=7)
    restarted = pipeline.batches("xlt_test_index", "decoder", lengths, 4, seed=3, start_step=7, restart_step=7)
    assert not np.array_equal(next(plain)["decoder_target_tokens"], next(restarted)["decoder_target_tokens"])
    again = pipeline.batches("xlt_test_index", "decoder", lengths, 4, seed=3, start_step=7, restart_step=7)
    later = [next(again) for _ in range(3)]
    resumed = pipeline.batches("xlt_test_index", "decoder", lengths, 4, seed=3, start_step=9, restart_step=7)
    assert_same(next(resumed), later[2])
    with pytest.raises(ConfigError, match="before the data restart"):
        pipeline.batches("xlt_test_index", "decoder", lengths, 4, seed=3, start_step=3, restart_step=7)


def test_a_task_without_the_converter_feature_is_refused():
    with pytest.raises(ConfigError, match="no feature 'inputs'"):
        next(pipeline.batches("bible_en", "encdec", {"inputs": 16, "targets": 16}, 2, seed=0))


@pytest.mark.slow
def test_deliberate_data_change_on_resume(tmp_path, capsys):
    """New mixture weights on resume: refused (one line naming the flag, nothing written) unless
    train.allow_data_change=True; then recorded in metrics.jsonl, and the changed run itself resumes
    exactly (its restart step travels in the checkpoint)."""
    import json
    import shutil

    from xlt import cli, train

    def run(*extra):
        argv = ["--gin_file=models/gpt_tiny.gin", "--gin_file=runs/pretrain.gin",
                "--gin_file=mixtures/temperature.gin", "--gin.LANGUAGES=['en', 'ko']", "--gin.BATCH_SIZE=8",
                "--gin.SEQ_LEN=64", f"--gin.MODEL_DIR='{tmp_path}'",
                "--gin.CHECKPOINT_EVERY=2", "--gin.train.log_every=1", "--gin.train.async_checkpoints=False",
                "--gin.learning_rate_schedule.warmup_steps=2", *extra]
        return cli.main(train.main, argv)

    def records():
        return [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]

    assert run("--gin.TRAIN_STEPS=4") == 0
    before = (tmp_path / "metrics.jsonl").read_text()
    new_weights = ("--gin.TRAIN_STEPS=8", "--gin.language_mixture.alpha=1.0")
    assert run(*new_weights) == cli.EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stages=" in err[0] and "train.allow_data_change=True" in err[0], err
    assert (tmp_path / "metrics.jsonl").read_text() == before
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == ["2", "4"]

    assert run(*new_weights, "--gin.train.allow_data_change=True") == 0
    changed = [r for r in records() if r.get("event") == "data_change"]
    assert len(changed) == 1 and changed[0]["step"] == 4
    old, new = changed[0]["stages"]["from"][0][1], changed[0]["stages"]["to"][0][1]
    assert old != new and abs(sum(new.values()) - 1) < 1e-9
    losses = {r["step"]: r["loss"] for r in records() if "loss" in r}
    assert sorted(losses) == list(range(1, 9))

    shutil.rmtree(tmp_path / "checkpoints" / "8")  # died after saving step 6: resume the changed run
    assert run(*new_weights) == 0, "the latest checkpoint already has the new mixture: no flag needed"
    again = {r["step"]: r["loss"] for r in records() if "loss" in r}
    assert again == losses
