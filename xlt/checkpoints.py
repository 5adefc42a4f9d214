"""Checkpoints and their one record, ``CheckpointMeta``: this module alone reads and writes it.

Three kinds of checkpoint carry the same record:

* training checkpoints, ``MODEL_DIR/checkpoints/<step>/{state, meta}`` (``Checkpointer``): orbax saves are
  asynchronous and atomic (a temporary directory renamed into place), so a crash mid-save leaves the previous
  checkpoint intact. The run's vocabulary file sits at ``MODEL_DIR/vocab/<name>``.
* params-only checkpoints, ``DIR/{params, meta.json}`` (``save_params``), written e.g. by
* a Hugging Face import (``xlt.interop.hf.import_hf``), whose tokenizer file is copied to ``DIR/hf/<name>``.

The record holds the model config, every parameter's shape, the vocabulary (``xlt.data.vocab.VocabularyRecord``:
kind, file inside the checkpoint, sha256, size and the token conventions), the data identity and position, the
step, the xlt version and the source (an init checkpoint, an imported Hugging Face directory). A restart with a
different model, data stream or vocabulary is refused rather than silently overwriting or diverging; fine-tuning,
evaluation and probing take the vocabulary from the record (``vocabulary_of``). Records written by older xlt
versions (an unversioned training ``meta``, ``meta.json`` format ``xlt-params`` version 1) are read and converted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import jax
import numpy as np
import orbax.checkpoint as ocp

from xlt import __version__ as XLT_VERSION
from xlt import paths
from xlt.data import vocab as vocab_lib
from xlt.data.vocab import VocabularyRecord
from xlt.errors import CheckpointError
from xlt.files import atomic_copy, atomic_write_bytes, atomic_write_text, read_json_object
from xlt.models.config import ModelConfig

if TYPE_CHECKING:
    import seqio

# Keys of the data position that must match for a resumed run to see the batches it would have seen.
DATA_IDENTITY = ("mixture_or_task_name", "stages", "seed", "batch_size", "feature_lengths")
# The mixture may change on resume when the run asks for it (train.allow_data_change); the rest may not.
CHANGEABLE_DATA = ("mixture_or_task_name", "stages")

FORMAT = "xlt-checkpoint"
FORMAT_VERSION = 2
LEGACY_PARAMS_FORMAT = "xlt-params"  # meta.json of version 1 (before CheckpointMeta)
KINDS = ("train", "params")
T = TypeVar("T")


def param_shapes(params: Any) -> dict[str, list[int]]:
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    return {jax.tree_util.keystr(p, simple=True, separator="/"): list(x.shape) for p, x in flat}


def _model_config(model: Any, where: str) -> ModelConfig:
    """A ModelConfig from its recorded dict (fields this xlt does not know are refused)."""
    if isinstance(model, ModelConfig):
        return model
    if not isinstance(model, Mapping):
        raise CheckpointError(f"checkpoint {where} records no model config (meta['model'])")
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted(set(model) - known)
    if unknown:
        raise CheckpointError(f"checkpoint {where} records ModelConfig fields this xlt does not know: {unknown}")
    try:
        return ModelConfig(**dict(model))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {where} records an invalid model config: {_first_line(e)}") from e


@dataclasses.dataclass(frozen=True)
class CheckpointMeta:
    """The record of one checkpoint (training step, params-only directory or Hugging Face import).

    ``kind`` is ``train`` or ``params``; ``vocabulary`` None only for a checkpoint that records none (an
    import of a directory without tokenizer files, an older checkpoint): fine-tuning, evaluation and
    probing refuse it. ``data`` (training runs) holds the ``DATA_IDENTITY`` keys and the position ``step``;
    ``source`` says where an import came from; ``init_checkpoint`` what a fine-tuning run started from;
    ``state_checksum`` (training checkpoints) the ``state_checksum`` of the saved state, checked on restore.
    ``path`` (where it was read) and ``root`` (the directory the record's files are relative to: the params
    directory, or a training run's MODEL_DIR) are not written."""

    kind: str
    model: ModelConfig
    vocabulary: VocabularyRecord | None
    param_shapes: Mapping[str, list[int]] = dataclasses.field(default_factory=dict)
    param_dtypes: tuple[str, ...] = ()
    data: Mapping[str, Any] | None = None
    step: int | None = None
    init_checkpoint: str | None = None
    source: Mapping[str, Any] | None = None
    state_checksum: Mapping[str, int] | None = None
    xlt_version: str = XLT_VERSION
    path: str | None = dataclasses.field(default=None, compare=False)
    root: str | None = dataclasses.field(default=None, compare=False)

    def replace(self, **changes: Any) -> CheckpointMeta:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The JSON written to disk (``path``/``root`` left out)."""
        return {"format": FORMAT, "version": FORMAT_VERSION, "kind": self.kind, "model": self.model.to_dict(),
                "vocabulary": self.vocabulary.to_dict() if self.vocabulary else None,
                "param_shapes": {k: list(v) for k, v in self.param_shapes.items()},
                "param_dtypes": list(self.param_dtypes), "data": dict(self.data) if self.data is not None else None,
                "step": self.step, "init_checkpoint": self.init_checkpoint,
                "source": dict(self.source) if self.source is not None else None,
                "state_checksum": dict(self.state_checksum) if self.state_checksum is not None else None,
                "xlt_version": self.xlt_version}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, kind: str, path: str | Path | None = None,
                  root: str | Path | None = None, step: int | None = None) -> CheckpointMeta:
        """Read a record of this format or an older one (converted). ``step`` fills in a record without one
        (older training metas took it from the directory name)."""
        where = str(path or "")
        if not isinstance(data, Mapping):
            raise CheckpointError(f"checkpoint metadata {where} is not a JSON object")
        fmt = data.get("format")
        if fmt == FORMAT:
            version = data.get("version")
            if not isinstance(version, int) or version > FORMAT_VERSION:
                raise CheckpointError(f"checkpoint {where} has record version {version!r}; this xlt reads up to "
                                      f"{FORMAT_VERSION}")
            vocabulary = data.get("vocabulary")
            fields = dict(kind=data.get("kind", kind), vocabulary=None if vocabulary is None else
                          VocabularyRecord.from_dict(vocabulary, f"checkpoint {where}"),
                          data=data.get("data"), step=data["step"] if data.get("step") is not None else step,
                          init_checkpoint=data.get("init_checkpoint"), source=data.get("source"),
                          state_checksum=data.get("state_checksum"),
                          xlt_version=str(data.get("xlt_version", "unknown")))
        elif fmt in (None, LEGACY_PARAMS_FORMAT):
            fields = _legacy_fields(data, kind, where, root, step)
        else:
            raise CheckpointError(f"checkpoint {where} is not an xlt checkpoint (format={fmt!r})")
        if fields["kind"] not in KINDS:
            raise CheckpointError(f"checkpoint {where} has kind {fields['kind']!r}, not one of {list(KINDS)}")
        shapes = data.get("param_shapes") or {}
        if not isinstance(shapes, Mapping):
            raise CheckpointError(f"checkpoint {where} records param_shapes that are not an object")
        return cls(model=_model_config(data.get("model"), where), param_shapes=dict(shapes),
                   param_dtypes=tuple(data.get("param_dtypes") or ()), path=None if path is None else str(path),
                   root=None if root is None else str(root), **fields)


def _legacy_fields(data: Mapping[str, Any], kind: str, where: str, root: str | Path | None,
                   step: int | None) -> dict[str, Any]:
    """Fields of a record written before version 2. The vocabulary was kept under three names: a training
    run's ``data.vocabulary`` and a params checkpoint's ``vocabulary`` (``xlt.data.vocab.vocabulary_id``
    strings), or, for a Hugging Face import, only as tokenizer files under ``hf/`` (read now, with the
    conventions ``xlt.interop.hf`` derives from the recorded ``config.json``)."""
    if data.get("format") == LEGACY_PARAMS_FORMAT and data.get("version", 0) > 1:
        raise CheckpointError(f"checkpoint {where} has format version {data['version']}; this xlt reads up to 1")
    run_data = dict(data.get("data") or {})
    vocabulary = vocab_lib.record_from_legacy_id(run_data.pop("vocabulary", None) or data.get("vocabulary"))
    source = data.get("source")
    if vocabulary is None and isinstance(source, Mapping) and root is not None and (paths.path(root) / "hf").is_dir():
        from xlt.interop import hf  # lazy: hf imports this module

        vocabulary = hf.tokenizer_record(paths.path(root) / "hf", source.get("hf_config") or {}, prefix="hf/")
    return dict(kind=kind, vocabulary=vocabulary, data=run_data or None,
                step=data["step"] if data.get("step") is not None else step,
                init_checkpoint=data.get("init_checkpoint"), source=source, xlt_version="unknown")


def as_meta(meta: CheckpointMeta | Mapping[str, Any], kind: str) -> CheckpointMeta:
    """A record from a ``CheckpointMeta`` or its dict (any format ``CheckpointMeta.from_dict`` reads)."""
    if isinstance(meta, CheckpointMeta):
        return meta.replace(kind=kind)
    return CheckpointMeta.from_dict(meta, kind=kind)


class UnreadableCheckpoint(CheckpointError):
    """A training checkpoint whose files cannot be read back whole (truncated, corrupted, half-deleted): a
    resumed run falls back past it (``Checkpointer.restore_latest``). A checkpoint that reads but belongs to
    another model or data stream is a plain ``CheckpointError``: falling back past it would hide the mistake."""


def state_checksum(state: Any) -> dict[str, int]:
    """Per array of ``state``: the sum, modulo 2**32, of its elements' bit patterns (each widened to uint32).

    Saved in the record and compared after a restore, so a checkpoint whose bytes changed on disk (a flipped
    or zeroed block that the storage format still decodes) is caught rather than silently trained on. Integer
    addition modulo 2**32 is exact and order-free, so every mesh and process count computes the same value from
    the same arrays (a float sum would not); any change of a single element changes it. One jitted reduction
    per save and restore, a few scalars to the host."""
    flat = jax.tree_util.tree_flatten_with_path(state)[0]
    names = [jax.tree_util.keystr(p, simple=True, separator="/") for p, _ in flat]
    sums = _checksums([x for _, x in flat])  # scalars: replicated, so each process holds the whole value
    return {name: int(np.asarray(v.addressable_data(0))) for name, v in zip(names, sums)}


@jax.jit
def _checksums(leaves: list[Any]) -> list[Any]:
    import jax.numpy as jnp

    def one(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        if x.dtype == jnp.bool_:
            bits = x.astype(jnp.uint32)
        else:
            width = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32}.get(x.dtype.itemsize)
            bits = (jax.lax.bitcast_convert_type(x, width) if width else x).astype(jnp.uint32)
        return jnp.sum(bits, dtype=jnp.uint32)

    return [one(x) for x in leaves]


class _OrbaxFailureTracebacks(logging.Filter):
    """Drops the tracebacks orbax's background save threads log (once per thread and again when the manager
    waits) when a write fails: the failure itself reaches the caller as the exception ``Checkpointer`` turns
    into one CheckpointError line. Shown again with XLT_LOG_LEVEL=INFO or lower."""

    def filter(self, record: logging.LogRecord) -> bool:
        if logging.getLogger().getEffectiveLevel() <= logging.INFO or record.levelno < logging.ERROR:
            return True
        if record.name == "absl":
            return "/orbax/" not in record.pathname.replace("\\", "/") or not record.exc_info
        if record.name == "asyncio" and record.exc_info:  # "Task exception was never retrieved" of a write
            import traceback
            return "orbax" not in "".join(traceback.format_exception(*record.exc_info))
        return True


def _hide_orbax_failure_tracebacks() -> None:
    for name in ("absl", "asyncio"):
        log = logging.getLogger(name)
        if not any(isinstance(f, _OrbaxFailureTracebacks) for f in log.filters):
            log.addFilter(_OrbaxFailureTracebacks())


class Checkpointer:
    """Training checkpoints of one run: ``MODEL_DIR/checkpoints/<step>/{state, meta}``.

    Failure behaviour (tested in tests/test_faults.py, measured by tools/fault_inject.py, docs/FAULTS.md):

    * killed at any moment: orbax writes ``<step>.orbax-checkpoint-tmp`` and renames it to ``<step>`` only when
      complete, so the newest *listed* step is whole; leftover temporary directories are removed when the next
      Checkpointer opens the directory.
    * a listed checkpoint that does not read back (truncated or corrupted files, a checksum that differs):
      ``restore_latest`` falls back to the previous one with a one-line warning and sets the bad one aside in
      ``<directory>.unreadable/<step>`` (kept for inspection; a later save of that step needs the name).
    * a save that fails (a full disk, no permission; with async saves the error surfaces at the next save or
      at ``wait``/``close``): a one-line CheckpointError, the half-written temporary directory removed; the
      earlier checkpoints are untouched (orbax deletes old ones only after a new one is complete).
    """

    def __init__(self, directory: str | Path, max_to_keep: int = 3, async_save: bool = True):
        self.directory = paths.absolute(directory)  # a local Path or a URL (epath.Path)
        _hide_orbax_failure_tracebacks()
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, enable_async_checkpointing=async_save,
                                                 create=False, cleanup_tmp_directories=True))
        self._in_flight: int | None = None  # the step an async save may still be writing
        self.last_saved: int | None = self.latest_step()  # the newest step written (or found) whole

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    @property
    def newest_step(self) -> int | None:
        """The newest step saved, or being saved in the background, by this run (or restored by it)."""
        return self._in_flight if self._in_flight is not None else self.last_saved

    def save(self, step: int, state: Any, meta: CheckpointMeta | Mapping[str, Any], force: bool = False) -> bool:
        """Save (in the background with async saves); the record carries the state's checksum. A failure of
        this save or of the previous async one is a CheckpointError."""
        self.directory.mkdir(parents=True, exist_ok=True)
        record = as_meta(meta, "train").replace(step=int(step), state_checksum=state_checksum(state)).to_dict()
        with self._failing_save(self._in_flight):  # orbax raises an earlier async failure here
            self._manager.wait_until_finished()
        self._finished()
        with self._failing_save(int(step)):
            self._in_flight = int(step)
            saved = self._manager.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(record)), force=force)
        if not saved:
            self._in_flight = None
        return saved

    def _finished(self) -> None:
        if self._in_flight is not None:
            self.last_saved = self._in_flight
            self._in_flight = None

    @contextlib.contextmanager
    def _failing_save(self, step: int | None):
        try:
            yield
        except CheckpointError:
            raise
        except Exception as e:  # orbax and tensorstore raise many types (OSError, ValueError, RuntimeError)
            if step is None:
                raise
            self._in_flight = None
            self._remove_partial(step)
            kept = f"; step {self.last_saved} is intact" if self.last_saved is not None else ""
            raise CheckpointError(f"cannot save checkpoint {self.directory}/{step}: {_os_reason(e)}{kept}") from e

    def _remove_partial(self, step: int, quiet_seconds: float = 1.0, limit_seconds: float = 15.0) -> None:
        """Free what a failed save wrote. Writes orbax had already started may still land after the error (and
        recreate directories), so remove until nothing reappears for ``quiet_seconds``."""
        if not _is_primary():
            return
        deadline, quiet_since = time.monotonic() + limit_seconds, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < quiet_seconds:
            partial = list(self.directory.glob(f"{step}.orbax-checkpoint-tmp*"))
            for tmp in partial:
                shutil.rmtree(tmp, ignore_errors=True)
            if partial:
                quiet_since = time.monotonic()
            time.sleep(0.05)

    def read_meta(self, step: int) -> CheckpointMeta:
        where = self.directory / str(step)
        try:
            raw = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
            return CheckpointMeta.from_dict(dict(raw), kind="train", path=where, root=self.directory.parent,
                                            step=step)
        except Exception as e:  # orbax raises several types for missing or corrupt items
            raise UnreadableCheckpoint(f"cannot read checkpoint metadata at {where}: {_short(e)}") from e

    def restore(self, step: int, abstract_state: Any, meta: CheckpointMeta | None = None) -> Any:
        """The state saved at ``step``; with its record (``meta``), checked against the saved checksum."""
        where = f"{self.directory}/{step}"
        try:
            restored = self._manager.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state)))["state"]
        except Exception as e:
            raise UnreadableCheckpoint(f"cannot restore checkpoint {where}: {_short(e)}") from e
        if meta is not None and meta.state_checksum is not None:
            got, saved = state_checksum(restored), dict(meta.state_checksum)
            differ = sorted(k for k in set(got) | set(saved) if got.get(k) != saved.get(k))
            if differ:
                raise UnreadableCheckpoint(f"checkpoint {where} does not match its checksum ({differ[0]} and "
                                           f"{len(differ) - 1} more arrays differ)")
        return restored

    def restore_latest(self, abstract_state: Any, accept: Callable[[CheckpointMeta], T]) -> tuple[int, Any, T] | None:
        """Restore the newest checkpoint that reads back whole: ``(step, state, accept(meta))``, or None when
        there is none. ``accept`` checks the record (a mismatch raises, and is not fallen back past). Unreadable
        newer checkpoints are set aside, each with a one-line warning; if none is readable, a CheckpointError."""
        steps = sorted(self._manager.all_steps(), reverse=True)
        bad: list[tuple[int, str]] = []
        for step in steps:
            try:
                meta = self.read_meta(step)
                accepted = accept(meta)
                state = self.restore(step, abstract_state, meta)
            except UnreadableCheckpoint as e:
                bad.append((step, str(e)))
                continue
            for bad_step, why in bad:
                aside = self._set_aside(bad_step)
                logging.warning("%s; resumed from the previous complete checkpoint, step %d (the unreadable one "
                                "is moved to %s)", why, step, aside)
            self.last_saved = step
            return step, state, accepted
        if bad:
            raise CheckpointError(f"no readable checkpoint in {self.directory}: {bad[0][1]} (and {len(bad) - 1} "
                                  "older ones unreadable)")
        return None

    def _set_aside(self, step: int) -> Path | None:
        """Move an unreadable step out of orbax's sight (so the step can be saved again); process 0 only."""
        aside = self.directory.parent / f"{self.directory.name}.unreadable" / str(step)
        if _is_primary():
            aside.parent.mkdir(parents=True, exist_ok=True)
            paths.rmtree(aside)
            paths.move_tree(self.directory / str(step), aside)  # on a bucket: copy each object, then delete
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils
            multihost_utils.sync_global_devices(f"xlt_set_aside_{step}")
        self._manager.reload()
        return aside

    def wait(self) -> None:
        with self._failing_save(self._in_flight):
            self._manager.wait_until_finished()
        self._finished()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._manager.close()


def check_compatible(meta: CheckpointMeta, shapes: Mapping[str, list[int]], data: Mapping[str, Any],
                     vocabulary: VocabularyRecord, where: str, allow_data_change: bool = False) -> dict[str, dict[str, Any]]:
    """Refuse a checkpoint written for another model shape, data stream or vocabulary. With ``allow_data_change``
    a changed mixture (``CHANGEABLE_DATA``) is accepted and returned as ``{key: {"from": saved, "to": now}}``."""
    saved = dict(meta.param_shapes)
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
    check_vocabulary(meta, vocabulary, where)
    saved_data = meta.data or {}
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


def check_vocabulary(saved: CheckpointMeta | VocabularyRecord | None, current: VocabularyRecord, where: str) -> None:
    """Token ids mean nothing under another vocabulary: refuse a checkpoint that records none, or one
    trained with different ids (records compared by kind, size and file digest, not by name). Differing
    conventions (e.g. a Hugging Face import's BOS start, fine-tuned with xlt's start 0) are logged."""
    record = saved.vocabulary if isinstance(saved, CheckpointMeta) else saved
    if record is None:
        raise CheckpointError(f"checkpoint {where} records no vocabulary, so its token ids cannot be checked; "
                              "re-import it with its tokenizer files (or re-save it with a vocabulary record)")
    if not record.same_ids(current):
        raise CheckpointError(f"the vocabulary does not match checkpoint {where}: it was trained with "
                              f"{record.describe()}, this run uses {current.describe()}")
    if record.conventions != current.conventions:
        logging.warning("checkpoint %s used token conventions %s; this run uses %s", where,
                        record.conventions, current.conventions)


def vocabulary_of(meta: CheckpointMeta) -> seqio.Vocabulary:
    """The vocabulary a checkpoint records, rebuilt from the file inside it (sha256 checked); a checkpoint
    without a vocabulary record is a CheckpointError."""
    where = meta.path or meta.root or "?"
    if meta.vocabulary is None:
        raise CheckpointError(f"checkpoint {where} records no vocabulary; re-import it with its tokenizer files "
                              "(or pass the vocabulary explicitly where the caller allows it)")
    # a bucket checkpoint's file is read through a local copy (vocab.recorded_file), its sha256 checked
    return vocab_lib.vocabulary_from_record(meta.vocabulary, meta.root or where)


def training_meta(*, model: ModelConfig, shapes: Mapping[str, list[int]], vocabulary: VocabularyRecord,
                  data: Mapping[str, Any], step: int, init_checkpoint: str | None) -> CheckpointMeta:
    """The record a training run saves with step ``step`` (``data``: identity plus position)."""
    return CheckpointMeta(kind="train", model=model, vocabulary=vocabulary, param_shapes=dict(shapes),
                          data={**data, "step": step}, step=step,
                          init_checkpoint=str(init_checkpoint) if init_checkpoint else None)


def run_vocabulary(mixture_or_task_name: str) -> tuple[seqio.Vocabulary, VocabularyRecord]:
    """The vocabulary a training run tokenizes with (the registered task's) and its record, its file to be
    kept at ``MODEL_DIR/vocab/<name>`` by ``keep_vocabulary_file``."""
    vocab = vocab_lib.of_task(mixture_or_task_name)
    return vocab, vocab_lib.record_of(vocab)


def keep_vocabulary_file(model_dir: str | Path, vocab: seqio.Vocabulary, record: VocabularyRecord) -> None:
    """Copy a run's vocabulary file into MODEL_DIR at ``record.file`` (process 0; atomic, also to a URL;
    skipped when the same file is already there), so the run's checkpoints carry their vocabulary."""
    source = vocab_lib.source_file(vocab)
    if source is None or record.file is None or not _is_primary():
        return
    target = paths.path(model_dir) / record.file
    if target.is_file() and _sha256(target) == record.sha256:
        return
    try:
        atomic_copy(source, target)
    except Exception as e:
        raise CheckpointError(f"cannot copy the vocabulary {source} to {target}: {_first_line(e)}") from e


def _sha256(path: Any) -> str:
    """sha256 of a local file or an object (vocab.sha256_of reads through tf.io.gfile; this through
    ``xlt.paths``, the layer MODEL_DIR is written with)."""
    import hashlib

    digest = hashlib.sha256()
    with paths.open_file(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --- Params-only checkpoints ------------------------------------------------------------------------------
#
# Layout of a params-only checkpoint directory (written by ``save_params``, e.g. by a Hugging Face import):
#   DIR/params/     orbax (StandardSave) tree of the model parameters, nothing else
#   DIR/meta.json   the CheckpointMeta (``CheckpointMeta.to_dict``; kind "params")
#   DIR/...         extra files written before the rename (model.gin, the vocabulary file, hf/ tokenizer files)
# ``load_params`` reads this layout or a training run's TrainState checkpoints (params only).

PARAMS_ITEM = "params"
COMMIT_MARKER = "commit_success.txt"  # orbax's marker of a finished step on GCS (no atomic rename there)
META_FILE = "meta.json"


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _os_reason(e: BaseException) -> str:
    """What the operating system said, if the error (or one it was raised from) carries it: ``No space left on
    device (ENOSPC)``; tensorstore reports it inside a long message as ``[os_error_code='28']``. Otherwise the
    error's first line, shortened."""
    seen: BaseException | None = e
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            return f"{os.strerror(seen.errno)} ({errno.errorcode.get(seen.errno, seen.errno)})"
        code = re.search(r"os_error_code='?(\d+)", str(seen))
        if code:
            number = int(code.group(1))
            return f"{os.strerror(number)} ({errno.errorcode.get(number, number)})"
        seen = seen.__cause__ or seen.__context__
    return _short(e)


def _short(e: BaseException, limit: int = 300) -> str:
    """The first line of an error, cut to ``limit`` characters (tensorstore's lines are long)."""
    line = _first_line(e)
    return line if len(line) <= limit else line[:limit] + "..."


def _is_primary() -> bool:
    return jax.process_index() == 0


def _sync(name: str) -> None:
    if jax.process_count() > 1:
        ocp.multihost.sync_global_processes(name)


def save_params(directory: str | Path, params: Any, meta: CheckpointMeta | Mapping[str, Any], *,
                extra_files: Mapping[str, str | bytes | Path] | None = None, overwrite: bool = False) -> Path:
    """Write a params-only checkpoint atomically: everything goes to a sibling temporary directory that is
    renamed into place only when complete, so a failure never leaves a half-written ``directory``.

    ``params`` is a tree of numpy or (possibly sharded) jax arrays; ``meta`` is the record (or its dict in
    any format ``CheckpointMeta.from_dict`` reads); its parameter shapes and dtypes are taken from
    ``params``. ``extra_files`` maps relative names to text, bytes or a file to copy; the vocabulary file the
    record names must be among them. An existing non-empty ``directory`` is refused unless ``overwrite``.

    ``directory`` may be a URL (``xlt.paths``). A bucket has no atomic directory rename, so there the files
    are written in place with ``meta.json`` last: it is the commit marker (``read_meta``/``load_params``
    refuse a directory without it as incomplete), and an overwrite deletes it first.
    """
    directory = paths.absolute(directory)
    meta = as_meta(meta, "params")
    vocab_file = meta.vocabulary.file if meta.vocabulary else None
    if vocab_file and vocab_file not in (extra_files or {}):
        raise CheckpointError(f"the record names vocabulary file {vocab_file!r} but save_params was not given it "
                              "in extra_files")
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())) and not overwrite:
        raise CheckpointError(f"output {directory} already exists and is not empty; remove it or pass overwrite")
    tmp = directory.parent / f".{directory.name}.xlt-tmp"
    dtypes = sorted({str(x.dtype) for x in jax.tree.leaves(params)})
    record = meta.replace(param_shapes=param_shapes(params), param_dtypes=tuple(dtypes)).to_dict()
    if paths.is_url(directory):
        return _save_params_in_place(directory, params, record, extra_files)
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
            _write_extra_files(tmp, extra_files)
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


def _write_extra_files(root: Any, extra_files: Mapping[str, str | bytes | Path] | None) -> None:
    for name, content in (extra_files or {}).items():
        target = root / name
        if isinstance(content, Path):
            atomic_copy(content, target)
        elif isinstance(content, bytes):
            atomic_write_bytes(target, content)
        else:
            atomic_write_text(target, content)


def _save_params_in_place(directory: Any, params: Any, record: dict[str, Any],
                          extra_files: Mapping[str, str | bytes | Path] | None) -> Any:
    """``save_params`` to a URL: params, then the extra files, then ``meta.json`` (the commit marker)."""
    try:
        if _is_primary() and directory.exists():
            (directory / META_FILE).unlink(missing_ok=True)  # incomplete from here until the new one lands
            paths.rmtree(directory)
        _sync("xlt_save_params_clear")
        with ocp.Checkpointer(ocp.StandardCheckpointHandler()) as ckptr:
            ckptr.save(directory / PARAMS_ITEM, args=ocp.args.StandardSave(params))
        if _is_primary():
            _write_extra_files(directory, extra_files)
            atomic_write_text(directory / META_FILE, json.dumps(record, indent=1, sort_keys=True) + "\n")
        _sync("xlt_save_params_done")
    except Exception as e:
        raise CheckpointError(f"cannot write params checkpoint {directory}: {_first_line(e)}") from e
    return directory


def _step_dirs(checkpoints_dir: Any) -> list[int]:
    """Finished steps (numeric directories holding a ``state`` item; orbax temporaries are skipped). On GCS
    orbax writes a step in place and marks it finished with ``commit_success.txt`` (no atomic rename there),
    so a ``gs://`` step directory counts only with that marker."""
    if not checkpoints_dir.is_dir():
        return []
    gcs = paths.scheme(checkpoints_dir) == "gs"
    return sorted(int(p.name) for p in checkpoints_dir.iterdir()
                  if p.name.isdigit() and (p / "state").is_dir() and (not gcs or (p / COMMIT_MARKER).exists()))


def resolve_params_path(path: str | Path) -> tuple[str, Any]:
    """Classify ``path``: ("params", DIR) for a params-only checkpoint, ("state", STEP_DIR) for a training
    checkpoint (MODEL_DIR → its latest step, MODEL_DIR/checkpoints → latest, or a step directory). ``path``
    may be a URL (``xlt.paths``); DIR is then an ``epath.Path``."""
    path = paths.absolute(path)
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


def _files_root(kind: str, where: Any) -> Any:
    """The directory a record's files are relative to: the params directory, or the MODEL_DIR above
    ``MODEL_DIR/checkpoints/<step>``."""
    return where if kind == "params" else where.parent.parent


def read_meta(path: str | Path) -> CheckpointMeta:
    """The record of the checkpoint at ``path`` (any form ``load_params`` takes), without reading parameters."""
    return _read_meta(*resolve_params_path(path))


def _read_meta(kind: str, where: Any) -> CheckpointMeta:
    root = _files_root(kind, where)
    step = int(where.name) if kind == "state" and where.name.isdigit() else None
    if kind == "params":
        file = where / META_FILE
        if not file.is_file():
            raise CheckpointError(f"params checkpoint {where} has no {META_FILE} (incomplete or not an xlt checkpoint)")
        raw = read_json_object(file, "checkpoint metadata")
        return CheckpointMeta.from_dict(raw, kind="params", path=where, root=root)
    if not (where / "meta").is_dir():
        raise CheckpointError(f"training checkpoint {where} has no meta item (incomplete or not an xlt checkpoint)")
    try:
        with ocp.Checkpointer(ocp.JsonCheckpointHandler()) as ckptr:
            raw = dict(ckptr.restore(where / "meta"))
    except Exception as e:
        raise CheckpointError(f"cannot read checkpoint metadata at {where}/meta: {_first_line(e)}") from e
    return CheckpointMeta.from_dict(raw, kind="train", path=where, root=root, step=step)


def _saved_param_metadata(kind: str, where: Any) -> Any:
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


def load_params(path: str | Path, abstract_params: Any = None) -> tuple[Any, CheckpointMeta]:
    """Restore only the model parameters from ``path``; returns ``(params, meta)``.

    ``path`` is a params-only checkpoint (``save_params``), a training MODEL_DIR (its latest step), its
    ``checkpoints/`` directory, or one ``checkpoints/<step>`` directory; the optimizer state of a training
    checkpoint is never read. Without ``abstract_params`` the arrays come back as host numpy arrays in their
    saved dtype. With ``abstract_params`` (a tree of ``jax.ShapeDtypeStruct``, possibly carrying shardings,
    e.g. ``StepFns.abstract_state.params``; flax-boxed trees are unboxed) shapes are checked first, arrays are
    cast to its dtypes and restored directly into its shardings (leaves without a sharding become numpy).
    ``meta`` is the checkpoint's ``CheckpointMeta`` (``path`` set to the directory read).
    """
    import flax.linen as nn
    import numpy as np

    kind, where = resolve_params_path(path)
    meta = _read_meta(kind, where)
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
    if not meta.param_shapes:
        meta = meta.replace(param_shapes=saved_shapes)
    return params, meta


def model_config_from_meta(meta: CheckpointMeta) -> ModelConfig:
    """The ModelConfig recorded in a checkpoint (kept for callers; ``meta.model`` is the same)."""
    return meta.model
