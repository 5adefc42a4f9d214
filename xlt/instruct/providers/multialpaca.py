"""MultiAlpaca (PolyLM; Wei et al., 2023): 132.7K self-instructed instructions in 11 languages.

Published layout (hub ``DAMO-NLP-MT/multialpaca``): one JSON-lines file per language at the top,
``ar.jsonl de.jsonl es.jsonl fr.jsonl id.jsonl ja.jsonl ko.jsonl pt.jsonl ru.jsonl th.jsonl vi.jsonl``,
records ``{"instruction", "input", "output"}`` (``input`` may be empty). The language comes from the file
name, so ``multialpaca_ko.json`` works too (``xlt.data.sources.formats.read_multialpaca``). There is one
split (train) and no task structure: each language is one task, ``multialpaca``, in the cluster
``instructions``. The records are already prompts: template settings do not apply.
"""

from __future__ import annotations

from xlt.data.sources import formats
from xlt.errors import DataError
from xlt.instruct.providers.base import FileProvider, Shard, data_files, local_root

HUB = "DAMO-NLP-MT/multialpaca"
LANGUAGES = ("ar", "de", "es", "fr", "id", "ja", "ko", "pt", "ru", "th", "vi")


class MultiAlpacaProvider(FileProvider):
    name = "multialpaca"
    default_task = "multialpaca"
    default_cluster = "instructions"

    def shards(self) -> list[Shard]:
        wanted = self.only or LANGUAGES
        root = local_root(self, HUB, [f"{lang}.jsonl" for lang in wanted])
        out = []
        for path in data_files(root):
            try:
                lang = formats.lang_from_filename(path)
            except DataError:
                raise DataError(f"{path}: a MultiAlpaca file is named by its language (ko.jsonl or "
                                "multialpaca_ko.json)") from None
            out.append(Shard(str(path), "train", lambda p=path, l=lang: formats.read_multialpaca(p, l),
                             lang=lang))
        return out
