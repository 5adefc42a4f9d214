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
from xlt.files import read_json_object

# Keys of the data position that must match for a resumed run to see the batches it would have seen.
DATA_IDENTITY = ("mixture_or_task_name", "stages", "seed", "batch_size", "feature_lengths")
# The mixture may change on resume when the run asks for it (train.allow_data_change); the rest may not.
CHANGEABLE_DATA = ("mixture_or_task_name", "stages")


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
                     where: str, allow_data_change: bool = False) -> dict[str, dict[str, Any]]:
    """Refuse a checkpoint written for another model shape or another data stream. With
    ``allow_data_change`` a changed mixture (``CHANGEABLE_DATA``) is accepted and returned as
    ``{key: {"from": saved, "to": now}}``."""
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
    check_vocabulary(saved_data.get("vocabulary"), data.get("vocabulary"), where)
    changed = {}
    for key in DATA_IDENTITY:
        if key in saved_data and key in data and saved_data[key] != data[key]:
            if allow_data_change and key in CHANGEABLE_DATA:
                changed[key] = {"from": saved_data[key], "to": data[key]}
                continue
            hint = " (to change the mixture on purpose, set train.allow_data_change=True)" \
                if key in CHANGEABLE_DATA else ""
            raise CheckpointError(f"checkpoint {where} was trained with {key}={saved_data[key]!r}, this run has "
                                  f"{data[key]!r}; resuming would not reproduce the data stream{hint}")
    logging.info("checkpoint %s matches the model%s", where, " (data changed on purpose)" if changed else
                 " and data stream")
    return changed


def check_vocabulary(saved: str | None, current: str | None, where: str) -> None:
    """Token ids mean nothing under another vocabulary: refuse a checkpoint trained with a different one."""
    if saved and current and saved != current:
        raise CheckpointError(f"the vocabulary does not match checkpoint {where}: it was trained with {saved!r}, "
                              f"this run uses {current!r}")


# --- Params-only checkpoints ------------------------------------------------------------------------------
#
# Layout of a params-only checkpoint directory (written by ``save_params``, e.g. by a Hugging Face import):
#   DIR/params/     orbax (StandardSave) tree of the model parameters, nothing else
#   DIR/meta.json   {"format": "xlt-params", "version": 1, "model": ModelConfig dict, "param_shapes": {...},
#                    "param_dtypes": [...], ...caller's fields (e.g. "source")}
#   DIR/...         optional extra files (model.gin, hf/ tokenizer files) written before the rename
# ``load_params`` reads this layout or a training run's TrainState checkpoints (params only).

PARAMS_FORMAT = "xlt-params"
PARAMS_FORMAT_VERSION = 1
PARAMS_ITEM = "params"
META_FILE = "meta.json"


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _is_primary() -> bool:
    return jax.process_index() == 0


def _sync(name: str) -> None:
    if jax.process_count() > 1:
        ocp.multihost.sync_global_processes(name)


def _plain_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The caller's meta with a ModelConfig turned into its dict; it must name the model."""
    out = dict(meta)
    model = out.get("model")
    if model is None:
        raise CheckpointError("save_params needs meta['model'] (the ModelConfig or its dict)")
    if hasattr(model, "to_dict"):
        out["model"] = model.to_dict()
    return out


def save_params(directory: str | Path, params: Any, meta: Mapping[str, Any], *,
                extra_files: Mapping[str, str | bytes | Path] | None = None, overwrite: bool = False) -> Path:
    """Write a params-only checkpoint atomically: everything goes to a sibling temporary directory that is
    renamed into place only when complete, so a failure never leaves a half-written ``directory``.

    ``params`` is a tree of numpy or (possibly sharded) jax arrays; ``meta`` must hold ``model`` (a
    ModelConfig or its dict) and may add any JSON fields. ``extra_files`` maps relative names to text,
    bytes or a file to copy. An existing non-empty ``directory`` is refused unless ``overwrite``.
    """
    import json
    import shutil

    directory = Path(directory).absolute()
    meta = _plain_meta(meta)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())) and not overwrite:
        raise CheckpointError(f"output {directory} already exists and is not empty; remove it or pass overwrite")
    tmp = directory.parent / f".{directory.name}.xlt-tmp"
    dtypes = sorted({str(x.dtype) for x in jax.tree.leaves(params)})
    record = {"format": PARAMS_FORMAT, "version": PARAMS_FORMAT_VERSION, **meta,
              "param_shapes": param_shapes(params), "param_dtypes": dtypes}
    try:
        if _is_primary():
            if tmp.exists():
                shutil.rmtree(tmp)  # left by an earlier crashed save
            tmp.mkdir(parents=True)
        _sync("xlt_save_params_tmp")
        with ocp.Checkpointer(ocp.StandardCheckpointHandler()) as ckptr:
            ckptr.save(tmp / PARAMS_ITEM, args=ocp.args.StandardSave(params))
        if _is_primary():
            (tmp / META_FILE).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
            for name, content in (extra_files or {}).items():
                target = tmp / name
                target.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(content, Path):
                    shutil.copyfile(content, target)
                elif isinstance(content, bytes):
                    target.write_bytes(content)
                else:
                    target.write_text(content)
            old = None
            if directory.exists():
                if directory.is_dir() and not any(directory.iterdir()):
                    directory.rmdir()
                else:
                    old = directory.parent / f".{directory.name}.xlt-old"
                    if old.exists():
                        shutil.rmtree(old)
                    directory.rename(old)
            directory.parent.mkdir(parents=True, exist_ok=True)
            tmp.rename(directory)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        _sync("xlt_save_params_done")
    except CheckpointError:
        raise
    except Exception as e:
        if _is_primary():
            shutil.rmtree(tmp, ignore_errors=True)
        raise CheckpointError(f"cannot write params checkpoint {directory}: {_first_line(e)}") from e
    finally:
        if _is_primary() and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return directory


def _step_dirs(checkpoints_dir: Path) -> list[int]:
    """Finished steps (numeric directories holding a ``state`` item; orbax temporaries are skipped)."""
    if not checkpoints_dir.is_dir():
        return []
    return sorted(int(p.name) for p in checkpoints_dir.iterdir()
                  if p.name.isdigit() and (p / "state").is_dir())


def resolve_params_path(path: str | Path) -> tuple[str, Path]:
    """Classify ``path``: ("params", DIR) for a params-only checkpoint, ("state", STEP_DIR) for a training
    checkpoint (MODEL_DIR → its latest step, MODEL_DIR/checkpoints → latest, or a step directory)."""
    path = Path(path).absolute()
    if not path.exists():
        raise CheckpointError(f"checkpoint path does not exist: {path}")
    if not path.is_dir():
        raise CheckpointError(f"checkpoint path is not a directory: {path}")
    if (path / META_FILE).is_file() or (path / PARAMS_ITEM).is_dir():
        return "params", path
    if (path / "state").is_dir():
        return "state", path
    for candidate in (path / "checkpoints", path):
        steps = _step_dirs(candidate)
        if steps:
            return "state", candidate / str(steps[-1])
    if (path / "checkpoints").is_dir():
        raise CheckpointError(f"{path} has no finished checkpoint under checkpoints/ (no <step>/state directory)")
    raise CheckpointError(f"no xlt checkpoint at {path}: expected a params-only checkpoint (meta.json + params/), "
                          "a MODEL_DIR with checkpoints/<step>/, or a checkpoints/<step> directory")


def _read_json_meta(kind: str, where: Path) -> dict[str, Any]:
    if kind == "params":
        file = where / META_FILE
        if not file.is_file():
            raise CheckpointError(f"params checkpoint {where} has no {META_FILE} (incomplete or not an xlt checkpoint)")
        meta = read_json_object(file, "checkpoint metadata")
        if meta.get("format") != PARAMS_FORMAT:
            raise CheckpointError(f"{file} is not an xlt params checkpoint (format={meta.get('format')!r})")
        if meta.get("version", 0) > PARAMS_FORMAT_VERSION:
            raise CheckpointError(f"{file} has format version {meta['version']}; this xlt reads up to "
                                  f"{PARAMS_FORMAT_VERSION}")
        return meta
    if not (where / "meta").is_dir():
        return {"step": int(where.name) if where.name.isdigit() else None}
    try:
        with ocp.Checkpointer(ocp.JsonCheckpointHandler()) as ckptr:
            meta = dict(ckptr.restore(where / "meta"))
    except Exception as e:
        raise CheckpointError(f"cannot read checkpoint metadata at {where}/meta: {_first_line(e)}") from e
    meta.setdefault("step", int(where.name) if where.name.isdigit() else None)
    return meta


def _saved_param_metadata(kind: str, where: Path) -> Any:
    """The saved tree of parameter metadata (shape, dtype per leaf), read without loading any array."""
    item = where / (PARAMS_ITEM if kind == "params" else "state")
    if not item.is_dir():
        raise CheckpointError(f"checkpoint {where} has no {item.name}/ item (incomplete or corrupt)")
    try:
        with ocp.Checkpointer(ocp.PyTreeCheckpointHandler()) as ckptr:
            md = ckptr.metadata(item)
    except Exception as e:
        raise CheckpointError(f"cannot read checkpoint {item}: {_first_line(e)}") from e
    tree = getattr(md, "item_metadata", md)
    tree = getattr(tree, "tree", tree)
    if kind == "state":
        if not isinstance(tree, Mapping) or "params" not in tree:
            raise CheckpointError(f"checkpoint {item} holds no 'params' (not an xlt TrainState)")
        tree = tree["params"]
    return tree


def describe_param_mismatch(saved: Mapping[str, list[int]], wanted: Mapping[str, list[int]]) -> str | None:
    """One line on the first difference between two {path: shape} maps (None when they agree)."""
    missing = sorted(set(wanted) - set(saved))
    extra = sorted(set(saved) - set(wanted))
    differ = sorted(k for k in set(saved) & set(wanted) if list(saved[k]) != list(wanted[k]))
    if differ:
        k = differ[0]
        return f"parameter {k} is {tuple(saved[k])} in the checkpoint but {tuple(wanted[k])} in the model"
    if missing or extra:
        hint = ""
        layered = [k for k in missing + extra if "/layers/" in k or "/layers_" in k]
        if layered and any("/layers/" in k for k in missing + extra) and any("/layers_" in k for k in missing + extra):
            hint = " (one side has scanned layers, the other looped: match ModelConfig.scan_layers)"
        if missing:
            return f"parameter {missing[0]} is missing from the checkpoint ({len(missing)} missing){hint}"
        return f"the checkpoint has parameter {extra[0]} that the model lacks ({len(extra)} extra){hint}"
    return None


def load_params(path: str | Path, abstract_params: Any = None) -> tuple[Any, dict[str, Any]]:
    """Restore only the model parameters from ``path``; returns ``(params, meta)``.

    ``path`` is a params-only checkpoint (``save_params``), a training MODEL_DIR (its latest step), its
    ``checkpoints/`` directory, or one ``checkpoints/<step>`` directory; the optimizer state of a training
    checkpoint is never read. Without ``abstract_params`` the arrays come back as host numpy arrays in their
    saved dtype. With ``abstract_params`` (a tree of ``jax.ShapeDtypeStruct``, possibly carrying shardings,
    e.g. ``StepFns.abstract_state.params``; flax-boxed trees are unboxed) shapes are checked first, arrays are
    cast to its dtypes and restored directly into its shardings (leaves without a sharding become numpy).
    ``meta`` is the checkpoint's record (``model``, ``param_shapes``, ...; ``step`` for training runs).
    """
    import flax.linen as nn
    import numpy as np

    kind, where = resolve_params_path(path)
    meta = _read_json_meta(kind, where)
    saved_tree = _saved_param_metadata(kind, where)
    saved_shapes = param_shapes(saved_tree)
    if abstract_params is None:
        target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype), saved_tree)
    else:
        target = nn.meta.unbox(abstract_params)
        problem = describe_param_mismatch(saved_shapes, param_shapes(target))
        if problem:
            raise CheckpointError(f"checkpoint {where} does not match the model: {problem}")

    def restore_args(leaf):
        sharding = getattr(leaf, "sharding", None)
        if sharding is None:
            return ocp.RestoreArgs(restore_type=np.ndarray, dtype=leaf.dtype)
        return ocp.ArrayRestoreArgs(sharding=sharding, global_shape=tuple(leaf.shape), dtype=leaf.dtype)

    args = jax.tree.map(restore_args, target)
    item = {"params": target} if kind == "state" else target
    item_args = {"params": args} if kind == "state" else args
    try:
        with ocp.Checkpointer(ocp.PyTreeCheckpointHandler()) as ckptr:
            restored = ckptr.restore(where / ("state" if kind == "state" else PARAMS_ITEM),
                                     args=ocp.args.PyTreeRestore(item=item, restore_args=item_args,
                                                                 partial_restore=kind == "state"))
    except Exception as e:
        raise CheckpointError(f"cannot restore parameters from {where}: {_first_line(e)}") from e
    params = restored["params"] if kind == "state" else restored
    meta.setdefault("param_shapes", saved_shapes)
    meta["path"] = str(where)
    return params, meta


def model_config_from_meta(meta: Mapping[str, Any]):
    """The ModelConfig recorded in a checkpoint's meta (fields this xlt does not know are refused)."""
    import dataclasses

    from xlt.models.config import ModelConfig

    model = meta.get("model")
    if not isinstance(model, Mapping):
        raise CheckpointError(f"checkpoint {meta.get('path', '')} records no model config (meta['model'])")
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(model) - known)
    if unknown:
        raise CheckpointError(f"checkpoint {meta.get('path', '')} records ModelConfig fields this xlt does not know: "
                              f"{unknown}")
    return ModelConfig(**dict(model))
