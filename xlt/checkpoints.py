"""Orbax checkpoints of the train state plus a JSON record of the model and the data position.

Layout: MODEL_DIR/checkpoints/<step>/{state, meta}. Saves are asynchronous and atomic (orbax writes a
temporary directory and renames it), so a crash mid-save leaves the previous checkpoint intact. The
``meta`` item holds the model config, every parameter's shape and the data position; a restart with a
different model or data stream is refused rather than silently overwriting or diverging.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp

from xlt.errors import CheckpointError

# Keys of the data position that must match for a resumed run to see the batches it would have seen.
DATA_IDENTITY = ("mixture_or_task_name", "seed", "batch_size", "feature_lengths", "vocabulary")


def param_shapes(params: Any) -> dict[str, list[int]]:
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    return {jax.tree_util.keystr(p, simple=True, separator="/"): list(x.shape) for p, x in flat}


class Checkpointer:
    def __init__(self, directory: str | Path, max_to_keep: int = 3, async_save: bool = True):
        self.directory = Path(directory).absolute()
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, enable_async_checkpointing=async_save,
                                                 create=False))

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, state: Any, meta: Mapping[str, Any], force: bool = False) -> bool:
        self.directory.mkdir(parents=True, exist_ok=True)
        return self._manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(dict(meta))), force=force)

    def read_meta(self, step: int) -> dict[str, Any]:
        try:
            return dict(self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"])
        except Exception as e:  # orbax raises several types for missing or corrupt items
            raise CheckpointError(f"cannot read checkpoint metadata at {self.directory}/{step}: {e}") from e

    def restore(self, step: int, abstract_state: Any) -> Any:
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state)))
        except Exception as e:
            raise CheckpointError(f"cannot restore checkpoint {self.directory}/{step}: {e}") from e
        return restored["state"]

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()


def check_compatible(meta: Mapping[str, Any], shapes: Mapping[str, list[int]], data: Mapping[str, Any],
                     where: str) -> None:
    """Refuse a checkpoint written for another model shape or another data stream."""
    saved = meta.get("param_shapes", {})
    if saved != dict(shapes):
        missing = sorted(set(shapes) - set(saved))
        extra = sorted(set(saved) - set(shapes))
        differ = sorted(k for k in set(saved) & set(shapes) if saved[k] != shapes[k])
        if differ:
            k = differ[0]
            detail = f"{k} is {tuple(saved[k])} there but {tuple(shapes[k])} in this model"
        else:
            detail = f"parameters {(missing or extra)[:2]} are {'missing there' if missing else 'extra there'}"
        raise CheckpointError(f"checkpoint {where} was written for a different model ({detail}); "
                              "use another MODEL_DIR or the matching model config")
    saved_data = meta.get("data", {})
    for key in DATA_IDENTITY:
        if key in saved_data and key in data and saved_data[key] != data[key]:
            raise CheckpointError(f"checkpoint {where} was trained with {key}={saved_data[key]!r}, this run has "
                                  f"{data[key]!r}; resuming would not reproduce the data stream")
    logging.info("checkpoint %s matches the model and data stream", where)
