"""Generic instruction files: JSON lines, a JSON array or Parquet, with a field mapping.

``FilesProvider(source, inputs_field='inputs', targets_field='targets', lang_field=None, lang=None)``
reads one file or every data file under a directory (``xlt.data.sources.formats.read_instruction_file``;
a ``gs://…`` source is read through a local copy).
The language is a fixed ``lang`` or each record's ``lang_field`` (ISO 639-1, or ISO 639-3 with
``lang_codes='iso639_3'``). Each file is a task named by its stem (or all files one task, ``task=``), in
the cluster ``cluster`` (default ``instructions``); the split comes from the file name (``train.jsonl``,
``test-00000-of-00001.parquet``; train when it names none). The records are taken as rendered prompts:
template settings do not apply.
"""

from __future__ import annotations

import re

from xlt.data.sources import formats
from xlt.errors import ConfigError, DataError
from xlt.instruct.providers.base import SPLITS, FileProvider, Shard, data_files, resolve_source, split_of_file


class FilesProvider(FileProvider):
    name = "files"

    def __init__(self, source=None, languages=None, inputs_field: str = "inputs", targets_field: str = "targets",
                 lang_field: str | None = None, lang: str | None = None, lang_codes: str = "iso639_1",
                 task: str | None = None, cluster: str = "instructions", name: str | None = None):
        super().__init__(source, languages)
        if source is None:
            raise ConfigError("instruction data 'files' needs a source (a file or a directory)")
        if (lang is None) == (lang_field is None):
            raise ConfigError("instruction data 'files' needs exactly one of lang= (a fixed language) and "
                              "lang_field= (a field naming each record's language)")
        self.fields = dict(inputs_field=inputs_field, targets_field=targets_field, lang_field=lang_field,
                           lang=lang, lang_codes=lang_codes)
        self.task, self.default_cluster = task, cluster
        if name:
            self.name = name

    def shards(self) -> list[Shard]:
        src = resolve_source(self.source, "", self.name)
        if src.kind == "hub":
            raise DataError(f"instruction data {self.name!r}: {self.source!r} is not a local file or directory "
                            "(or a bucket URL)")
        root = src.path  # a bucket URL: its local copy
        out = []
        for path in data_files(root):
            stem = formats.file_stem(path)
            if stem.split("-")[0] in SPLITS:  # train.jsonl, test-00000-of-00001.parquet: a split, not a task
                stem = path.parent.name if path.parent != root else self.name
            task = self.task or re.sub(r"[^A-Za-z0-9_]", "_", stem).lower()
            out.append(Shard(str(path), split_of_file(path, "train") or "train",
                             lambda p=path: formats.read_instruction_file(p, **self.fields), task=task,
                             cluster=self.default_cluster, lang=self.fields["lang"]))
        return out
