"""The Aya dataset and the Aya collection (Cohere For AI; Singh et al., 2024).

Aya dataset (hub ``CohereForAI/aya_dataset``): human-written prompts and completions in 65 languages,
``data/train-00000-of-00001.parquet`` and ``data/test-00000-of-00001.parquet``, records ``{"inputs",
"targets", "language", "language_code", "annotation_type", "user_id"}``; the language is the ISO 639-3
``language_code`` (mapped to xlt's codes; records in languages xlt lacks are skipped). One task,
``aya_dataset``, cluster ``human_annotated``.

Aya collection (hub ``CohereForAI/aya_collection``): one folder per config (``templated_xlel_wd``,
``translated_dolly``, ``aya_dataset``, ...), each ``<split>-0000k-of-0000n.parquet``, records ``{"id",
"inputs", "targets", "dataset_name", "sub_dataset_name", "task_type", "template_id", "language", "script",
"split"}`` with the ISO 639-3 code in ``language``. Each config is a task; its cluster is the config's kind,
``templated`` / ``translated`` / ``aya`` (the name's first part). From the hub, name the configs to fetch
(``configs=``): the full collection is 513M examples.

Both are already prompts (templated or human-written): template settings do not apply. Local copies keep
the hub layout; a single file works too (split from its name, train by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from xlt.data.sources import formats
from xlt.errors import ConfigError, DataError
from xlt.instruct.providers.base import FileProvider, Shard, data_files, local_root, resolve_source, split_of_file


def _read(path: Path):
    return formats.read_aya(path)


class AyaDatasetProvider(FileProvider):
    name = "aya"
    hub = "CohereForAI/aya_dataset"
    default_task = "aya_dataset"
    default_cluster = "human_annotated"

    def shards(self) -> list[Shard]:
        root = local_root(self, self.hub, ["data/*.parquet", "*.parquet"])
        return [Shard(str(p), split_of_file(p, "train"), lambda p=p: _read(p), task=self.default_task,
                      cluster=self.default_cluster) for p in data_files(root)]


def collection_cluster(config: str) -> str:
    """``templated_xlel_wd`` -> ``templated``; ``translated_dolly`` -> ``translated``; ``aya_dataset`` -> ``aya``."""
    return config.split("_", 1)[0]


class AyaCollectionProvider(FileProvider):
    name = "aya_collection"
    hub = "CohereForAI/aya_collection"

    def __init__(self, source=None, languages: Sequence[str] | None = None, configs: Sequence[str] | None = None):
        super().__init__(source, languages)
        if isinstance(configs, str):
            raise ConfigError(f"aya_collection configs must be a list of names, got the string {configs!r}")
        self.configs = None if configs is None else tuple(configs)

    def shards(self) -> list[Shard]:
        if resolve_source(self.source, self.hub, self.name).kind == "hub" and not self.configs:
            raise ConfigError("aya_collection from the hub needs configs= (e.g. ['translated_dolly']): "
                              "the whole collection is 513M examples")
        root = local_root(self, self.hub, [f"{c}/*.parquet" for c in self.configs or ()])
        folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        if self.configs is not None:
            missing = [c for c in self.configs if not (root / c).is_dir()]
            if missing:
                raise DataError(f"aya_collection: no config folder {missing} in {root}; it has "
                                f"{', '.join(f.name for f in folders) or 'none'}")
            folders = [root / c for c in self.configs]
        out = []
        for folder in folders:
            for path in data_files(folder):
                out.append(Shard(str(path), split_of_file(path, "train"), lambda p=path: _read(p),
                                 task=folder.name, cluster=collection_cluster(folder.name)))
        return out
