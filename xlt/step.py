"""Train state, loss and the sharded, jitted train step.

The model is used only through its interface (``xlt.models.api``): its parameters (``init``, with logical axis
names) and its loss, ``xlt.losses``' cross-entropy from the model's logits, or chunked from its final hidden
states when ``ModelConfig.loss_chunk_len`` is set (see ``loss_fn``).

The step is ``jax.jit`` with explicit in/out NamedShardings derived from the parameters' logical axis
names and the one rules table; the state is donated. Gradient accumulation splits the global batch
into microbatches scanned in sequence; the loss is normalised by the token weight of the whole batch,
so accumulation changes memory, not the result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh

from xlt import losses, partitioning
from xlt.errors import ConfigError
from xlt.models.api import mesh_context, model_api

Batch = Mapping[str, jax.Array]


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    opt_state: Any


def loss_fn(model: nn.Module, params, batch: Batch, dropout_rng=None, z_loss: float = 0.0):
    """Sums over weighted target tokens: (cross-entropy + z-loss, metrics sums), not normalised: the model
    interface's loss (``xlt.models.api.ModelAPI.loss``: plain, or chunked with ``ModelConfig.loss_chunk_len``)."""
    return model_api(model).loss(params, batch, dropout_rng, z_loss)


@dataclasses.dataclass(frozen=True)
class StepFns:
    """Compiled entry points for one (model, optimizer, mesh, batch shape)."""

    init: Callable[[jax.Array], TrainState]
    init_from: Callable[[Any], TrainState]  # given (sharded) params: step 0 and a fresh optimizer state
    train: Callable[[TrainState, Batch], tuple[TrainState, dict]]
    state_shardings: Any
    abstract_state: Any
    batch_shardings: Any


def build(model: nn.Module, tx: optax.GradientTransformation, mesh: Mesh,
          batch_shapes: Mapping[str, tuple[int, ...]], *, grad_accum_steps: int = 1, z_loss: float = 0.0,
          seed: int = 0, dropout: bool = False, schedule: optax.Schedule | None = None,
          skip_nonfinite: bool = False) -> StepFns:
    """Shardings from logical axes, checked for divisibility before anything compiles. With ``skip_nonfinite``
    a step whose loss or gradient norm is NaN or infinite keeps the parameters and optimizer state it started
    from (the step counter still advances: the batch was consumed); without it the step is unchanged."""
    batch_size = next(iter(batch_shapes.values()))[0]
    partitioning.check_batch(batch_size, mesh)
    if grad_accum_steps < 1 or batch_size % grad_accum_steps:
        raise ConfigError(f"BATCH_SIZE={batch_size} does not split into grad_accum_steps={grad_accum_steps}")
    micro = batch_size // grad_accum_steps
    partitioning.check_batch(micro, mesh, what=f"microbatch (BATCH_SIZE/grad_accum_steps)")
    api = model_api(model)

    def boxed_init(rng):
        params = api.init(rng)
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

    with mesh_context(mesh):
        boxed = jax.eval_shape(boxed_init, jax.random.key(seed))
    specs = nn.get_partition_spec(boxed)
    abstract = nn.meta.unbox(boxed)
    state_shardings = partitioning.logical_sharding(specs, mesh, shapes=abstract)
    partitioning.check_divisible(abstract.params, state_shardings.params, "parameter")
    batch_shardings = {k: partitioning.batch_sharding(mesh, len(s)) for k, s in batch_shapes.items()}

    def init(rng):
        return nn.meta.unbox(boxed_init(rng))

    def init_from(params):  # fine-tuning: given parameters, a fresh optimizer state
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

    def train(state: TrainState, batch: Batch):
        weights = losses.token_weights(batch["decoder_target_tokens"], batch.get("decoder_loss_weights"))
        total_weight = jnp.maximum(jnp.sum(weights), 1.0)
        dropout_rng = jax.random.fold_in(jax.random.key(seed + 1), state.step) if dropout else None

        def micro_grads(i, mb):
            rng = None if dropout_rng is None else jax.random.fold_in(dropout_rng, i)
            (loss, metrics), grads = jax.value_and_grad(
                lambda p: api.loss(p, mb, rng, z_loss), has_aux=True)(state.params)
            return jax.tree.map(lambda g: g / total_weight, grads), loss, metrics

        if grad_accum_steps == 1:
            grads, loss, metrics = micro_grads(0, batch)
        else:
            mbs = jax.tree.map(lambda x: x.reshape((grad_accum_steps, micro) + x.shape[1:]), batch)

            def body(carry, xs):
                i, mb = xs
                g, l, m = micro_grads(i, mb)
                return jax.tree.map(jnp.add, carry, (g, l, m)), None

            zeros = jax.tree.map(jnp.zeros_like, jax.eval_shape(lambda: micro_grads(0, jax.tree.map(
                lambda x: x[0], mbs))))
            (grads, loss, metrics), _ = jax.lax.scan(body, zeros, (jnp.arange(grad_accum_steps), mbs))
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        grad_norm = optax.global_norm(grads)
        if skip_nonfinite:
            finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
            params, opt_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old),
                                             (params, opt_state), (state.params, state.opt_state))
        out = {"loss": loss / total_weight, "cross_entropy": metrics["cross_entropy"] / total_weight,
               "z_loss": metrics["z_loss"] / total_weight, "accuracy": metrics["correct"] / total_weight,
               "tokens": total_weight, "grad_norm": grad_norm}
        if schedule is not None:
            out["learning_rate"] = schedule(state.step)
        return TrainState(step=state.step + 1, params=params, opt_state=opt_state), out

    metric_sharding = partitioning.replicated(mesh)
    jit_init = jax.jit(init, out_shardings=state_shardings)
    jit_init_from = jax.jit(init_from, in_shardings=(state_shardings.params,), out_shardings=state_shardings)
    jit_train = jax.jit(train, in_shardings=(state_shardings, batch_shardings),
                        out_shardings=(state_shardings, metric_sharding), donate_argnums=(0,))

    def with_context(fn):
        def wrapped(*args):
            with mesh_context(mesh):
                return fn(*args)
        wrapped.jitted = fn
        return wrapped

    abstract_sharded = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                                    abstract, state_shardings)
    return StepFns(init=with_context(jit_init), init_from=with_context(jit_init_from), train=with_context(jit_train), state_shardings=state_shardings,
                   abstract_state=abstract_sharded, batch_shardings=batch_shardings)


def to_host(metrics: Mapping[str, jax.Array]) -> dict[str, float]:
    return {k: float(np.asarray(v)) for k, v in metrics.items()}
