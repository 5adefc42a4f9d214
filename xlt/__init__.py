"""xlt: cross-lingual transfer of instruction tuning, in JAX/Flax."""

__version__ = "0.1.0"
