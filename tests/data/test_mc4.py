"""The mC4 tasks read TFDS's real c4/multilingual builder; tfds.testing.mock_data stands in for the
download (random text in the builder's own feature spec), so the source, splits and preprocessing run."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from xlt.data import pipeline, tasks
from xlt.errors import ConfigError


def test_mc4_task_batches_through_the_pipeline(monkeypatch):
    import seqio
    # The mock serves examples but no split metadata; seqio asks for sizes only to decide on caching.
    monkeypatch.setattr(seqio.TfdsDataSource, "num_input_examples", lambda self, split: None)
    names = tasks.register_mc4_tasks(languages=("ko", "sw"))
    assert names == ["mc4_ko", "mc4_sw"]
    with tfds.testing.mock_data(num_examples=20, policy=tfds.testing.MockPolicy.USE_CODE):
        task = seqio.get_mixture_or_task("mc4_ko")
        for split in ("train", "validation"):
            ex = next(task.get_dataset({"targets": 32}, split=split, shuffle=False).as_numpy_iterator())
            assert ex["lang"] == b"ko" and ex["targets"][-1] == 1  # EOS appended
        batch = next(pipeline.batches("mc4_sw", "decoder", {"targets": 64}, 4, seed=0))
    assert batch["decoder_target_tokens"].shape == (4, 64)
    assert np.all(batch[pipeline.TARGET_TASK][batch["decoder_loss_weights"] > 0] == 0)
    assert pipeline.task_labels("mc4_sw") == ("sw",)


def test_mc4_unknown_language():
    assert "ko" in tasks.mc4_languages() and len(tasks.mc4_languages()) > 100
    with pytest.raises(ConfigError, match="mC4 has no language 'xx'"):
        tasks.register_mc4_tasks(languages=("xx",))
