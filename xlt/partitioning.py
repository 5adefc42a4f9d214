"""Device meshes and the one table that places logical axes on them.

Modules name the axes of every parameter and key activation with the logical vocabulary
``batch, length, embed, mlp, heads, kv, vocab, layers``. ``LOGICAL_AXIS_RULES`` maps those names to
the mesh axes ``data, fsdp, tensor``; nothing else in xlt decides placement. Following flax's rule
semantics, a logical axis takes the first listed mesh axis not already used by the same array, so
``embed`` is sharded over ``fsdp`` in parameters but replicated in activations, whose ``batch``
already took ``fsdp``.
"""

from __future__ import annotations

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

LOGICAL_AXIS_RULES: tuple[tuple[str, Any], ...] = (
    ("batch", ("data", "fsdp")),
    ("length", None),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv", None),
    ("vocab", "tensor"),
    ("layers", None),
    ("relpos_buckets", None),
)


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


def logical_to_spec(logical_axes: Sequence[str | None], rules=LOGICAL_AXIS_RULES) -> PartitionSpec:
    return nn.logical_to_mesh_axes(tuple(logical_axes), rules)


def logical_sharding(tree: Any, mesh: Mesh, rules=LOGICAL_AXIS_RULES) -> Any:
    """NamedShardings for a tree of logical PartitionSpecs (as ``nn.get_partition_spec`` returns)."""
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
    n = mesh_axis_size(mesh, logical_to_spec(("batch",))[0])
    if batch_size % n:
        raise ConfigError(f"{what}={batch_size} does not divide over the batch mesh axes data*fsdp={n}")


def global_batch(local: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Assemble each process's slice of the batch into global arrays sharded on the batch axes."""
    return {k: jax.make_array_from_process_local_data(batch_sharding(mesh, np.ndim(v)), np.asarray(v))
            for k, v in local.items()}
