"""AdamW with a warmup + (cosine | rsqrt | constant) schedule and global-norm clipping, gin-configured."""

from __future__ import annotations

import gin
import jax
import jax.numpy as jnp
import optax

from xlt.errors import ConfigError

SCHEDULES = ("cosine", "rsqrt", "constant")


@gin.configurable
def learning_rate_schedule(peak: float = 1e-3, schedule: str = "cosine", warmup_steps: int = 100,
                           total_steps: int = 1000, final_fraction: float = 0.1) -> optax.Schedule:
    """Linear warmup to ``peak``, then cosine decay to ``final_fraction * peak`` at ``total_steps``,
    rsqrt decay (peak · sqrt(warmup / step), as T5), or constant."""
    if schedule not in SCHEDULES:
        raise ConfigError(f"learning_rate_schedule.schedule={schedule!r}; choose one of {list(SCHEDULES)}")
    if peak <= 0 or warmup_steps < 0:
        raise ConfigError(f"learning rate peak must be > 0 and warmup_steps >= 0, got {peak}, {warmup_steps}")
    warmup = max(warmup_steps, 1)

    def fn(step):
        step = jnp.asarray(step, jnp.float32)
        ramp = peak * jnp.minimum(1.0, (step + 1) / warmup)
        if schedule == "constant":
            return ramp
        if schedule == "rsqrt":
            return jnp.where(step < warmup, ramp, peak * jnp.sqrt(warmup / jnp.maximum(step, 1.0)))
        frac = jnp.clip((step - warmup) / max(total_steps - warmup, 1), 0.0, 1.0)
        cosine = final_fraction + (1 - final_fraction) * 0.5 * (1 + jnp.cos(jnp.pi * frac))
        return jnp.where(step < warmup, ramp, peak * cosine)

    return fn


def decay_mask(params):
    """Weight decay on matrices only: not on norm scales, biases or the relative-position table."""
    return jax.tree_util.tree_map_with_path(
        lambda path, p: p.ndim >= 2 and "rel_embedding" not in jax.tree_util.keystr(path), params)


@gin.configurable
def make_optimizer(schedule: optax.Schedule, weight_decay: float = 0.01, b1: float = 0.9, b2: float = 0.95,
                   eps: float = 1e-8, clip_norm: float | None = 1.0) -> optax.GradientTransformation:
    chain = [optax.clip_by_global_norm(clip_norm)] if clip_norm else []
    chain.append(optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=decay_mask))
    return optax.chain(*chain)
