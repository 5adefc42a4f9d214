"""Test setup: 8 simulated CPU devices (set before jax is imported) and quiet TensorFlow."""

import os

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import jax  # noqa: E402
import pytest  # noqa: E402

import tensorflow as tf  # noqa: E402

tf.config.set_visible_devices([], "GPU")


@pytest.fixture(scope="session")
def devices():
    devs = jax.devices()
    assert len(devs) == 8, "tests expect 8 simulated devices (XLA_FLAGS set in conftest)"
    return devs


@pytest.fixture(autouse=True)
def _fresh_gin_config():
    """Gin bindings made by one test (CLI entry points parse gin in-process) must not leak into the next:
    e.g. a benchmark's ``ModelConfig.scan_layers = True`` would change every later ``ModelConfig()``."""
    import gin
    gin.clear_config()
    yield
    gin.clear_config()
