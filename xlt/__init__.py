"""xlt: cross-lingual transfer of instruction tuning, in JAX/Flax.

Importing the package makes TensorFlow quiet and CPU-only. xlt uses TensorFlow for tf.data input pipelines
(seqio) and TensorBoard only; JAX does the computing. Without this, every command starts with TensorFlow's CUDA
probing on stderr ("Could not find cuda drivers", "failed call to cuInit", written before absl logging is
initialised, so ``TF_CPP_MIN_LOG_LEVEL`` cannot filter them), and on a GPU machine TensorFlow would also claim
the GPUs that JAX needs. The first ``import tensorflow`` anywhere in the process (ours or seqio's) therefore
runs with file descriptor 2 pointed at /dev/null and is followed at once by
``tf.config.set_visible_devices([], "GPU")``. CUDA itself is not hidden (no ``CUDA_VISIBLE_DEVICES``): JAX
still sees every GPU. ``TF_CPP_MIN_LOG_LEVEL=0`` in the environment turns this off (TensorFlow's own
messages, e.g. to debug an install, then show as usual).
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import sys

__version__ = "0.1.0"


@contextlib.contextmanager
def _stderr_fd_silenced():
    """Point file descriptor 2 at /dev/null (C++ libraries write there directly), then restore it."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class _QuietTensorflowImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``tensorflow`` once and loads it silenced and with its GPUs hidden (see the module docstring)."""

    _finding = False

    def find_spec(self, name, path, target=None):
        if name != "tensorflow" or self._finding:
            return None
        # Stay on the meta path until TensorFlow is really loaded (exec_module): a probe such as
        # ``importlib.util.find_spec("tensorflow")`` (transformers' availability check) must not use it up.
        # The flag stops the look-up below from asking this finder again.
        self._finding = True
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self._finding = False
        if spec is None or spec.loader is None:
            return spec
        self._inner = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module):
        if self in sys.meta_path:
            sys.meta_path.remove(self)  # one-shot: from here on TensorFlow imports normally
        with _stderr_fd_silenced():
            self._inner.exec_module(module)
            try:
                module.config.set_visible_devices([], "GPU")
            except (RuntimeError, ValueError, AttributeError):  # already initialised or no GPU API: keep going
                pass


def _install_quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0" or "tensorflow" in sys.modules:
        return
    if not any(isinstance(f, _QuietTensorflowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorflowImport())


_install_quiet_tensorflow()
