"""Model layouts: one config (``ModelConfig``), two module families (decoder-only, encoder-decoder), and one
interface per family (``model_api``, ``xlt.models.api``) that everything outside this package goes through."""

from __future__ import annotations

import flax.linen as nn

from xlt.models.api import ModelAPI, model_api
from xlt.models.config import LAYOUTS, ModelConfig

__all__ = ["LAYOUTS", "ModelAPI", "ModelConfig", "build_model", "model_api"]


def build_model(cfg: ModelConfig) -> nn.Module:
    """The flax module of a config's family (``model_api(cfg).model``)."""
    return model_api(cfg).model
