"""Device meshes and the rules that place logical axes on them.

Modules name the axes of every parameter and key activation with the logical vocabulary
``LOGICAL_AXES`` (``batch, length, embed, mlp, heads, kv_heads, kv, vocab, layers, relpos_buckets``).
The rules map those names to the mesh axes ``data, fsdp, tensor``; nothing else in xlt decides placement.
Following flax's rule semantics, rules are in order of precedence and a logical axis takes the first listed
mesh axis not already used by the same array, so ``embed`` is sharded over ``fsdp`` in parameters but
replicated in activations, whose ``batch`` already took ``fsdp``.

Rules as configuration. ``LOGICAL_AXIS_RULES`` is the one default table. ``axis_rules()`` (gin-configurable)
gives the table a run uses: ``axis_rules.replace`` binds a whole table of its own, ``axis_rules.overrides``
replaces the entries of the logical axes it names in place (keeping their precedence) — MaxText's
``logical_axis_rules`` in the same spirit. Every place that resolves a logical axis (the train step, decoding,
the probe, tools) reads ``axis_rules()``, never the constant. A model's gin file can carry its own
``axis_rules.overrides``, e.g. ``[('mlp', 'fsdp'), ('embed', 'tensor')]`` to put the MLP's hidden axis on
``fsdp``. Tables are validated on use: an unknown logical axis, an unknown mesh axis, or one mesh axis named
twice in a rule is a one-line ConfigError.

Replicated where they do not divide. Grouped-query attention has fewer key/value heads than query heads, and
often fewer than the tensor axis has devices (Llama 3 8B: 8 KV heads; a tensor axis of 16). Their logical axis
``kv_heads`` is therefore in ``REPLICATED_WHEN_RAGGED``: wherever an array's ``kv_heads`` dimension does not
divide over the mesh axes the rules give it, that dimension is replicated instead (decided here, from the
array's shape: ``fit_axes``), so the key/value projections and the KV cache are copied on every tensor shard
and each shard computes its query heads against them. Every other logical axis keeps the strict rule: a
dimension that does not divide is a ConfigError from ``check_divisible`` naming the array, since silently
replicating a large embedding or MLP would hide a memory blow-up. Parameter and cache shardings are fitted by
``logical_sharding(..., shapes=...)``, activation constraints by ``constrain``, and boxes created with
``with_logical_partitioning`` fit themselves when unboxed under a mesh.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import flax.linen as nn
import gin
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from xlt.errors import ConfigError

MESH_AXES = ("data", "fsdp", "tensor")

LOGICAL_AXES = ("batch", "length", "embed", "mlp", "heads", "kv_heads", "kv", "vocab", "layers", "relpos_buckets")

LOGICAL_AXIS_RULES: tuple[tuple[str, Any], ...] = (
    ("batch", ("data", "fsdp")),
    ("length", None),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("kv", None),
    ("vocab", "tensor"),
    ("layers", None),
    ("relpos_buckets", None),
)

REPLICATED_WHEN_RAGGED = frozenset({"kv_heads"})

Rules = tuple[tuple[str, Any], ...]


def validate_rules(rules: Any, what: str = "axis rules") -> Rules:
    """The rules as a tuple of ``(logical_axis, mesh_axes)`` pairs, mesh_axes None, a name or a tuple of
    names; a one-line ConfigError for a malformed entry, an unknown logical or mesh axis, or a mesh axis
    named twice in one rule (gin's lists become tuples)."""
    if isinstance(rules, (str, bytes)) or not isinstance(rules, Sequence):
        raise ConfigError(f"{what} must be a sequence of (logical_axis, mesh_axes) pairs, got {rules!r}")
    out = []
    for entry in rules:
        if isinstance(entry, (str, bytes)) or not isinstance(entry, Sequence) or len(entry) != 2:
            raise ConfigError(f"{what}: rule {entry!r} is not a (logical_axis, mesh_axes) pair")
        logical, mesh_axes = entry
        if logical not in LOGICAL_AXES:
            raise ConfigError(f"{what}: rule {tuple(entry)!r} names unknown logical axis {logical!r}; "
                              f"known: {', '.join(LOGICAL_AXES)}")
        names = () if mesh_axes is None else (mesh_axes,) if isinstance(mesh_axes, str) else mesh_axes
        if not isinstance(names, Sequence) or not all(isinstance(a, str) for a in names):
            raise ConfigError(f"{what}: rule {tuple(entry)!r}: mesh axes must be None, a name or names")
        for a in names:
            if a not in MESH_AXES:
                raise ConfigError(f"{what}: rule {tuple(entry)!r} names unknown mesh axis {a!r}; "
                                  f"mesh axes: {', '.join(MESH_AXES)}")
        twice = sorted({a for a in names if list(names).count(a) > 1})
        if twice:
            raise ConfigError(f"{what}: rule {tuple(entry)!r} uses mesh axis {twice[0]!r} twice")
        out.append((logical, mesh_axes if mesh_axes is None or isinstance(mesh_axes, str) else tuple(names)))
    return tuple(out)


@gin.configurable
def axis_rules(overrides: Sequence[tuple[str, Any]] = (), replace: Sequence[tuple[str, Any]] | None = None) -> Rules:
    """The logical-axis rules of this run: ``LOGICAL_AXIS_RULES``, or ``replace`` when bound, with the entries
    of every logical axis named in ``overrides`` replaced by the override's entries at the position of that
    axis's first entry (its precedence; an axis the table lacks is appended). Several override entries for
    one axis are a fallback chain, as in flax. Validated on every call (cheap; tables are a dozen pairs).

    gin: ``axis_rules.overrides = [('mlp', 'fsdp'), ('embed', 'tensor')]``."""
    base = validate_rules(LOGICAL_AXIS_RULES if replace is None else replace,
                          "axis_rules" if replace is None else "axis_rules.replace")
    extra = validate_rules(overrides, "axis_rules.overrides")
    if not extra:
        return base
    named = {logical for logical, _ in extra}
    out: list[tuple[str, Any]] = []
    placed: set[str] = set()
    for logical, mesh_axes in base:
        if logical not in named:
            out.append((logical, mesh_axes))
        elif logical not in placed:
            out.extend(e for e in extra if e[0] == logical)
            placed.add(logical)
    out.extend(e for e in extra if e[0] not in placed)
    return tuple(out)


def _rules(rules: Any) -> Rules:
    return axis_rules() if rules is None else validate_rules(rules)


def initialize_distributed() -> None:
    """Join a multi-host job when launched on several hosts (Cloud TPU VM, SLURM, or explicit env).

    On a Cloud TPU pod slice ``jax.distributed.initialize()`` discovers its peers itself; elsewhere the
    coordinator comes from JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID.
    Set XLT_DISTRIBUTED=1 to opt in; a single-host run never needs it.
    """
    if os.environ.get("XLT_DISTRIBUTED", "0") != "1" or jax.distributed.is_initialized():
        return
    kwargs = {}
    if "JAX_COORDINATOR_ADDRESS" in os.environ:
        kwargs = dict(coordinator_address=os.environ["JAX_COORDINATOR_ADDRESS"],
                      num_processes=int(os.environ["JAX_NUM_PROCESSES"]),
                      process_id=int(os.environ["JAX_PROCESS_ID"]))
    jax.distributed.initialize(**kwargs)


@gin.configurable
def make_mesh(mesh_shape: Sequence[int] = (-1, 1, 1), devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A (data, fsdp, tensor) mesh over all devices; one entry may be -1 to take what is left.

    Axis types are Auto: shardings come from NamedSharding and flax's logical constraints, and a
    sharded contraction is resolved by the compiler (Explicit axes would reject it).
    """
    devices = list(devices if devices is not None else jax.devices())
    shape = [int(s) for s in mesh_shape]
    if len(shape) != len(MESH_AXES):
        raise ConfigError(f"MESH_SHAPE must have {len(MESH_AXES)} entries {MESH_AXES}, got {tuple(mesh_shape)}")
    if shape.count(-1) > 1 or any(s == 0 or s < -1 for s in shape):
        raise ConfigError(f"MESH_SHAPE {tuple(mesh_shape)}: sizes must be positive, with at most one -1")
    if -1 in shape:
        known = math.prod(s for s in shape if s != -1)
        if len(devices) % known:
            raise ConfigError(f"MESH_SHAPE {tuple(mesh_shape)}: {len(devices)} devices do not divide by {known}")
        shape[shape.index(-1)] = len(devices) // known
    if math.prod(shape) != len(devices):
        sizes = ", ".join(f"{a}={s}" for a, s in zip(MESH_AXES, shape))
        raise ConfigError(f"MESH_SHAPE ({sizes}) needs {math.prod(shape)} devices but {len(devices)} are present")
    return jax.make_mesh(tuple(shape), MESH_AXES, axis_types=(AxisType.Auto,) * len(MESH_AXES), devices=devices)


def logical_to_spec(logical_axes: Sequence[str | None], rules: Any = None) -> PartitionSpec:
    """Mesh axes for logical axis names under ``rules`` (default: this run's ``axis_rules()``)."""
    return nn.logical_to_mesh_axes(tuple(logical_axes), _rules(rules))


def fit_axes(shape: Sequence[int], logical_axes: Sequence[str | None], mesh: Any, rules: Any = None) -> tuple:
    """``logical_axes`` with each ``REPLICATED_WHEN_RAGGED`` name whose dimension does not divide over the mesh
    axes the rules give it replaced by None (replicated). Other names are left as they are, for
    ``check_divisible`` to reject. ``mesh``: a Mesh or AbstractMesh (only axis sizes are read)."""
    axes = tuple(logical_axes)
    if not REPLICATED_WHEN_RAGGED.intersection(a for a in axes if isinstance(a, str)):
        return axes
    if len(shape) != len(axes):
        raise ConfigError(f"logical axes {axes} do not match shape {tuple(shape)}")
    spec = logical_to_spec(axes, rules)
    out = list(axes)
    for i, (name, size, mesh_axes) in enumerate(zip(axes, shape, spec)):
        if name in REPLICATED_WHEN_RAGGED and size % mesh_axis_size(mesh, mesh_axes):
            out[i] = None
    return tuple(out)


def _context_mesh():
    """The mesh of the enclosing ``jax.set_mesh`` (None outside one)."""
    mesh = jax.sharding.get_abstract_mesh()
    return None if mesh is None or mesh.empty else mesh


def constrain(x: jax.Array, logical_axes: Sequence[str | None]) -> jax.Array:
    """Pin an activation's layout by logical names under the context's rules and mesh, ``kv_heads`` fitted to
    ``x``'s shape (a no-op outside a mesh context or without rules)."""
    rules = nn.get_logical_axis_rules()
    mesh = _context_mesh()
    axes = tuple(logical_axes)
    if rules and mesh is not None:
        axes = fit_axes(x.shape, axes, mesh, rules)
    return nn.with_logical_constraint(x, axes)


class FittedPartitioned(nn.LogicallyPartitioned):
    """A logically partitioned box whose constraint on unboxing is ``constrain``'s (ragged ``kv_heads``
    replicated) rather than flax's plain one; its names stay the logical ones, for ``nn.get_partition_spec``."""

    def unbox(self, apply_constraint=True) -> Any:
        if apply_constraint and (_context_mesh() is not None) and nn.get_logical_axis_rules():
            return constrain(self.value, self.names)
        return self.value


def with_logical_partitioning(fn, names: Sequence[str | None]):
    """``nn.with_logical_partitioning`` for parameters and variables whose names may include ``kv_heads``."""
    names = tuple(names)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return FittedPartitioned(fn(*args, **kwargs), names)

    return wrapper


def logical_sharding(tree: Any, mesh: Mesh, rules: Any = None, shapes: Any = None) -> Any:
    """NamedShardings for a tree of logical PartitionSpecs (as ``nn.get_partition_spec`` returns).

    With ``shapes`` (the matching tree of arrays or ShapeDtypeStructs) ragged ``kv_heads`` dimensions are
    replicated (``fit_axes``); without it the names are taken as they are."""
    rules = _rules(rules)
    if shapes is not None:
        is_spec = lambda x: x is None or isinstance(x, PartitionSpec)  # noqa: E731
        tree = jax.tree.map(lambda spec, leaf: spec if spec is None else
                            PartitionSpec(*fit_axes(leaf.shape, spec, mesh, rules)), tree, shapes, is_leaf=is_spec)
    return nn.logical_to_mesh_sharding(tree, mesh, rules)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh, ndim: int = 2) -> NamedSharding:
    return NamedSharding(mesh, logical_to_spec(("batch", "length") + (None,) * (ndim - 2)))


def mesh_axis_size(mesh: Mesh, axes: Any) -> int:
    if axes is None:
        return 1
    axes = (axes,) if isinstance(axes, str) else axes
    return math.prod(mesh.shape[a] for a in axes)


def check_divisible(shapes: Any, shardings: Any, what: str) -> None:
    """Raise a ConfigError naming the array, dimension and mesh axis when a shard would be ragged."""
    flat_shapes = jax.tree_util.tree_flatten_with_path(shapes)[0]
    flat_shard = jax.tree_util.tree_leaves(shardings, is_leaf=lambda x: isinstance(x, NamedSharding))
    for (path, leaf), sharding in zip(flat_shapes, flat_shard):
        for dim, (size, axes) in enumerate(zip(leaf.shape, sharding.spec)):
            n = mesh_axis_size(sharding.mesh, axes)
            if size % n:
                name = jax.tree_util.keystr(path, simple=True, separator="/")
                raise ConfigError(
                    f"{what} {name}: dimension {dim} of size {size} does not divide over mesh axis "
                    f"{axes!r} of size {n} (shape {tuple(leaf.shape)}); change MESH_SHAPE or the model size")


def check_batch(batch_size: int, mesh: Mesh, what: str = "BATCH_SIZE") -> None:
    axes = logical_to_spec(("batch",))[0]
    n = mesh_axis_size(mesh, axes)
    if batch_size % n:
        names = "*".join((axes,) if isinstance(axes, str) else axes or ("none",))
        raise ConfigError(f"{what}={batch_size} does not divide over the batch mesh axes {names}={n}")


def global_batch(local: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Assemble each process's slice of the batch into global arrays sharded on the batch axes."""
    return {k: jax.make_array_from_process_local_data(batch_sharding(mesh, np.ndim(v)), np.asarray(v))
            for k, v in local.items()}
