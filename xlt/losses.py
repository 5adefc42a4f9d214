"""Token cross-entropy, plain and chunked over the sequence for large vocabularies.

Both return what ``xlt.step.loss_fn`` returns (it calls one or the other, by ``ModelConfig.loss_chunk_len``):
sums over weighted target tokens, not normalised, ``(cross_entropy + z_loss, {"cross_entropy", "z_loss",
"correct"})``.

``cross_entropy(logits, ...)`` takes the [batch, length, vocab] logits. With PolyLM's 256k vocabulary
those logits (and their fp32 copy and gradient) are the largest activations of a training step: at
batch 8 × 2048 tokens, one fp32 copy is 16 GiB.

``chunked_cross_entropy(hidden, kernel, ...)`` takes the final hidden states [batch, length, d_model]
and the LM-head kernel instead, and never builds more than one chunk of logits: ``chunk_len`` positions
of every row, [batch, chunk_len, vocab] in fp32. Chunks run in a ``lax.scan`` along the length axis,
so a batch sharded over the data axes stays sharded. The gradients are computed in the same pass
(a custom VJP: softmax - one-hot is known once the chunk's log-partition is), so the cost is the
three [tokens × d_model × vocab] matmuls of the plain loss's forward and backward, not the four of
a rematerialised scan; memory is one chunk of logits plus the gradients of ``hidden`` and ``kernel``
(the latter accumulated in fp32). The metrics outputs (cross_entropy, z_loss, correct) are not
differentiable: only the first output carries a gradient.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from xlt.errors import ConfigError

Array = jax.Array
KERNEL_LAYOUTS = ("vd", "dv")  # tied embedding table [vocab, d_model]; untied lm_head kernel [d_model, vocab]


def token_weights(targets: Array, weights: Array | None) -> Array:
    """The fp32 loss weight of each target token: ``weights`` if given, else 1 where ``targets > 0``."""
    return (targets > 0).astype(jnp.float32) if weights is None else weights.astype(jnp.float32)


def mask_vocab(logits: Array, unpadded_vocab_size: int | None) -> Array:
    """Logits of vocabulary padding rows (ids >= ``unpadded_vocab_size``) set to the dtype's minimum, so they
    never win an argmax or take probability mass; a no-op when ``unpadded_vocab_size`` is None or the full
    vocabulary."""
    if unpadded_vocab_size is None or unpadded_vocab_size >= logits.shape[-1]:
        return logits
    valid = jnp.arange(logits.shape[-1]) < unpadded_vocab_size
    return jnp.where(valid, logits, jnp.finfo(logits.dtype).min)


def cross_entropy(logits: Array, targets: Array, weights: Array | None = None, *, z_loss: float = 0.0,
                  unpadded_vocab_size: int | None = None) -> tuple[Array, dict[str, Array]]:
    """Plain loss from [..., vocab] logits (computed in fp32); ``weights`` default to ``targets > 0``."""
    logits = mask_vocab(logits.astype(jnp.float32), unpadded_vocab_size)
    w = token_weights(targets, weights)
    log_z = jax.nn.logsumexp(logits, axis=-1)
    target_logit = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    ce = (log_z - target_logit) * w
    zl = z_loss * jnp.square(log_z) * w
    correct = (jnp.argmax(logits, axis=-1) == targets) * w
    return jnp.sum(ce) + jnp.sum(zl), {"cross_entropy": jnp.sum(ce), "z_loss": jnp.sum(zl),
                                       "correct": jnp.sum(correct)}


def _logits_spec(layout: str) -> tuple[str, str, str]:
    """einsum specs (logits, d_hidden, d_kernel) for a chunk x [b, c, d] and the kernel."""
    if layout == "vd":
        return "bcd,vd->bcv", "bcv,vd->bcd", "bcv,bcd->vd"
    return "bcd,dv->bcv", "bcv,dv->bcd", "bcd,bcv->dv"


def _chunk_pass(x: Array, kernel: Array, t: Array, w: Array, *, z_loss: float, layout: str,
                unpadded_vocab_size: int | None):
    """Loss sums and gradients (for a unit cotangent) of chunks x [n, b, c, d], t and w [n, b, c]."""
    spec_logits, spec_dx, spec_dk = _logits_spec(layout)
    vocab = kernel.shape[0] if layout == "vd" else kernel.shape[1]

    def body(dk, xs):
        xc, tc, wc = xs
        logits = jnp.einsum(spec_logits, xc, kernel, preferred_element_type=jnp.float32)
        logits = mask_vocab(logits, unpadded_vocab_size)
        log_z = jax.nn.logsumexp(logits, axis=-1)
        target_logit = jnp.take_along_axis(logits, tc[..., None], axis=-1)[..., 0]
        ce = jnp.sum((log_z - target_logit) * wc)
        zl = jnp.sum(z_loss * jnp.square(log_z) * wc)
        correct = jnp.sum((jnp.argmax(logits, axis=-1) == tc) * wc)
        # d/dlogits of w·(log_z - logit_t + z·log_z²) = w·((1 + 2z·log_z)·softmax - onehot_t)
        probs = jnp.exp(logits - log_z[..., None])
        onehot = jnp.arange(vocab)[None, None, :] == tc[..., None]
        dlogits = probs * (wc * (1.0 + 2.0 * z_loss * log_z))[..., None] - jnp.where(onehot, wc[..., None], 0.0)
        dlogits = dlogits.astype(x.dtype)
        dx = jnp.einsum(spec_dx, dlogits, kernel, preferred_element_type=jnp.float32).astype(x.dtype)
        dk = dk + jnp.einsum(spec_dk, *((dlogits, xc) if layout == "vd" else (xc, dlogits)),
                             preferred_element_type=jnp.float32)
        return dk, (dx, ce, zl, correct)

    dk, (dx, ce, zl, correct) = jax.lax.scan(body, jnp.zeros(kernel.shape, jnp.float32), (x, t, w))
    sums = (jnp.sum(ce) + jnp.sum(zl), jnp.sum(ce), jnp.sum(zl), jnp.sum(correct))
    return sums, dx, dk.astype(kernel.dtype)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def _chunked(x, kernel, t, w, z_loss, layout, unpadded_vocab_size):
    sums, _, _ = _chunk_pass(x, kernel, t, w, z_loss=z_loss, layout=layout,
                             unpadded_vocab_size=unpadded_vocab_size)
    return sums


def _chunked_fwd(x, kernel, t, w, z_loss, layout, unpadded_vocab_size):
    sums, dx, dk = _chunk_pass(x, kernel, t, w, z_loss=z_loss, layout=layout,
                               unpadded_vocab_size=unpadded_vocab_size)
    return sums, (dx, dk)


def _chunked_bwd(z_loss, layout, unpadded_vocab_size, residuals, cotangents):
    del z_loss, layout, unpadded_vocab_size
    dx, dk = residuals
    g = cotangents[0]  # only the loss is differentiable; the metric sums are not
    return (dx * g.astype(dx.dtype), dk * g.astype(dk.dtype), None, None)


_chunked.defvjp(_chunked_fwd, _chunked_bwd)


def chunked_cross_entropy(hidden: Array, kernel: Array, targets: Array, weights: Array | None = None, *,
                          chunk_len: int = 256, kernel_layout: str = "vd", z_loss: float = 0.0,
                          unpadded_vocab_size: int | None = None) -> tuple[Array, dict[str, Array]]:
    """The loss of ``cross_entropy(hidden · kernel, ...)``, ``chunk_len`` positions at a time.

    hidden: [batch, length, d_model] (its dtype is the matmul dtype, e.g. bfloat16; logits are fp32).
    kernel: the LM head, [vocab, d_model] (``kernel_layout='vd'``, a tied embedding table) or
    [d_model, vocab] (``'dv'``, an untied ``lm_head`` kernel), cast to the compute dtype by the caller.
    A length that is not a multiple of ``chunk_len`` is padded with zero-weight positions.
    """
    if kernel_layout not in KERNEL_LAYOUTS:
        raise ConfigError(f"kernel_layout={kernel_layout!r}; choose one of {list(KERNEL_LAYOUTS)}")
    if hidden.ndim != 3 or targets.shape != hidden.shape[:2]:
        raise ConfigError(f"hidden must be [batch, length, d_model] and targets [batch, length]; got "
                          f"{hidden.shape} and {targets.shape}")
    d_axis = 1 if kernel_layout == "vd" else 0
    if kernel.ndim != 2 or kernel.shape[d_axis] != hidden.shape[-1]:
        raise ConfigError(f"kernel {kernel.shape} does not match d_model={hidden.shape[-1]} "
                          f"(kernel_layout={kernel_layout!r})")
    if chunk_len <= 0:
        raise ConfigError(f"chunk_len must be > 0, got {chunk_len}")
    b, length, d = hidden.shape
    w = token_weights(targets, weights)
    chunk_len = min(chunk_len, length)
    pad = -length % chunk_len
    if pad:
        hidden = jnp.pad(hidden, ((0, 0), (0, pad), (0, 0)))
        targets = jnp.pad(targets, ((0, 0), (0, pad)))
        w = jnp.pad(w, ((0, 0), (0, pad)))
    n = (length + pad) // chunk_len

    def split(a: Array) -> Array:  # [b, n·c, ...] -> [n, b, c, ...]
        return jnp.moveaxis(a.reshape((b, n, chunk_len) + a.shape[2:]), 1, 0)

    x = split(hidden)
    total, ce, zl, correct = _chunked(x, kernel, split(targets.astype(jnp.int32)), split(w), float(z_loss),
                                      kernel_layout, unpadded_vocab_size)
    metrics = {"cross_entropy": jax.lax.stop_gradient(ce), "z_loss": jax.lax.stop_gradient(zl),
               "correct": jax.lax.stop_gradient(correct)}
    return total, metrics
