"""The registry of instruction-data providers, and the gin entry point that builds one.

``register_provider(name, factory)`` adds a provider kind; ``get_provider(name, source=..., ...)``
builds one (a one-line ConfigError for an unknown name, listing the registered ones). Built in:

  builtin         the meta-datasets of ``xlt.instruct.meta`` (templated; takes ``config``)
  multialpaca     MultiAlpaca (PolyLM), hub DAMO-NLP-MT/multialpaca
  xp3, xp3mt      xP3 / xP3mt (BLOOMZ, mT0), hub bigscience/xP3, bigscience/xP3mt
  aya             the Aya dataset, hub CohereForAI/aya_dataset
  aya_collection  the Aya collection, hub CohereForAI/aya_collection (``configs=``)
  p3              P3 (T0), hub bigscience/P3, with T0's task clusters
  files           any JSON-lines / JSON / Parquet files with a field mapping

In gin: ``register_instruct_tasks.data = @instruction_data()`` with ``instruction_data.name``,
``instruction_data.source`` (a local copy, or None for the hub) and ``instruction_data.options`` (the
provider's keyword arguments, e.g. ``{'lang': 'ko', 'inputs_field': 'prompt'}``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gin

from xlt.errors import ConfigError
from xlt.instruct.providers.aya import AyaCollectionProvider, AyaDatasetProvider
from xlt.instruct.providers.base import Provider
from xlt.instruct.providers.builtin import MetaProvider
from xlt.instruct.providers.files import FilesProvider
from xlt.instruct.providers.multialpaca import MultiAlpacaProvider
from xlt.instruct.providers.p3 import P3Provider
from xlt.instruct.providers.xp3 import XP3MTProvider, XP3Provider

Factory = Callable[..., Provider]
_PROVIDERS: dict[str, Factory] = {}


def register_provider(name: str, factory: Factory) -> None:
    """Add (or replace) a provider kind: ``factory(source=..., languages=..., **options) -> Provider``."""
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a provider's name must be a non-empty string, got {name!r}")
    _PROVIDERS[name] = factory


def provider_names() -> tuple[str, ...]:
    return tuple(sorted(_PROVIDERS))


def get_provider(name: str, source: Any = None, languages: Sequence[str] | None = None, **options) -> Provider:
    """Build provider ``name`` over ``source``; ConfigError for an unknown name or option."""
    if name not in _PROVIDERS:
        raise ConfigError(f"unknown instruction data {name!r}; registered: {', '.join(provider_names())}")
    if name == "builtin":
        if source is not None or languages is not None:
            raise ConfigError("instruction data 'builtin' takes no source or languages (it is packaged)")
        return _PROVIDERS[name](**options)
    try:
        return _PROVIDERS[name](source=source, languages=languages, **options)
    except TypeError as e:
        raise ConfigError(f"instruction data {name!r}: bad options {sorted(options)} ({e})") from None


@gin.configurable
def instruction_data(name: str = "builtin", source: str | None = None, languages: Sequence[str] | None = None,
                     options: Mapping[str, Any] | None = None) -> Provider:
    """A provider from gin (see the module docstring); ``languages`` restricts what is read."""
    return get_provider(name, source, languages, **dict(options or {}))


register_provider("builtin", MetaProvider)
register_provider("multialpaca", MultiAlpacaProvider)
register_provider("xp3", XP3Provider)
register_provider("xp3mt", XP3MTProvider)
register_provider("aya", AyaDatasetProvider)
register_provider("aya_collection", AyaCollectionProvider)
register_provider("p3", P3Provider)
register_provider("files", FilesProvider)
