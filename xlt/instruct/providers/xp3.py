"""xP3 and xP3mt (BigScience; Muennighoff et al., 2023): the multitask mixture BLOOMZ and mT0 were tuned on.

Published layout (hub ``bigscience/xP3``, ``bigscience/xP3mt``): one folder per language code
(``en/``, ``fr/``, ``zh/``, ...; also ``code/``), holding one JSON-lines file per (dataset, prompt) —
``xp3_<dataset>_<subset>_<split>_<prompt>.jsonl`` — and ``merged_<lang>.jsonl``, the concatenation of that
folder's files. Records are ``{"inputs", "targets"}``: prompts already rendered (xP3 in English, xP3mt with
prompts machine-translated into the data's language), so template settings do not apply.

Tasks: each per-prompt file is a task named by its file stem (``xp3_`` dropped, ``-`` and ``.`` made
``_``); a folder with only ``merged_<lang>.jsonl`` is the single task ``xp3`` (reading both would count every
example twice). All of xP3 is training data (its held-out evaluation sets live in xP3all): every file is the
train split, cluster ``xp3``. Folders whose names are not xlt language codes (``code``, ``ak``, ...) are skipped.
"""

from __future__ import annotations

import re

from xlt.data import languages as language_table
from xlt.data.sources import formats
from xlt.instruct.providers.base import FileProvider, Shard, data_files, local_root


def task_from_file(stem: str) -> str:
    """``xp3_paws-x_en_train_task_description.jsonl`` -> ``paws_x_en_train_task_description``."""
    name = stem.removeprefix("xp3_")
    return re.sub(r"[^A-Za-z0-9_]", "_", name).lower()


class XP3Provider(FileProvider):
    name = "xp3"
    hub = "bigscience/xP3"
    default_task = "xp3"
    default_cluster = "xp3"

    def shards(self) -> list[Shard]:
        wanted = self.only or language_table.CODES
        root = local_root(self, self.hub, [f"{lang}/*.jsonl" for lang in wanted])
        out = []
        folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        for folder in folders:
            if folder.name not in language_table.LANGUAGES:
                continue
            files = data_files(folder, (".jsonl", ".jsonl.gz"))
            parts = [f for f in files if not f.name.startswith("merged_")]
            for path in parts or files:
                task = task_from_file(formats.file_stem(path)) if parts else self.default_task
                out.append(Shard(str(path), "train", lambda p=path, l=folder.name: formats.read_xp3(p, l),
                                 task=task, cluster=self.default_cluster, lang=folder.name))
        return out


class XP3MTProvider(XP3Provider):
    name = "xp3mt"
    hub = "bigscience/xP3mt"
