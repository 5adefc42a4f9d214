"""The instruction-data provider interface, and the file-backed base that the public sets build on.

A *provider* is one instruction dataset (the built-in meta-datasets, MultiAlpaca, xP3, Aya, P3, a user's
files). It answers, before anything is registered or trained:

* ``name``, ``languages()`` (xlt language codes that have data), ``splits(lang)``;
* ``tasks(lang)``: the provider's tasks with data in ``lang``, each an ``InstructionTask`` with its
  cluster (``clusters()`` maps cluster -> task names; ``default_held_out`` names the clusters a zero-shot
  study keeps out of training);
* ``examples(task, lang, split, setting, all_templates)``: dicts with at least ``inputs``, ``targets``,
  ``content_lang``, ``task``, ``cluster``, ``template_lang`` and ``template_id`` — what one seqio Task
  serves (``xlt.instruct.tasks`` registers one per (task, language));
* ``size(task, lang, split, unit, vocab)``: the split's size in examples, characters (inputs + targets)
  or tokens (with ``vocab``), which the mixture-rate functions of ``xlt.data.mixtures`` take.

``templated`` says whether the provider holds content plus template slots (the built-in meta-datasets:
rendered under native / fixed / cross-lingual templates) or already-rendered prompts (everything public:
xP3, P3, MultiAlpaca, Aya carry their own prompts, so a template setting does not apply to them and
``xlt.instruct.tasks`` refuses anything but the default ``native``).

``FileProvider`` is the base of the rendered providers: a subclass lists *shards* (a file, or a Hugging
Face hub split, with the task / split / language its layout tells) and a reader turning a shard into
records ({"inputs", "targets", "lang"} plus optional "task", "cluster", "template_id"). An index of
example and character counts per (task, language, split) is built by streaming each shard once, lazily,
and cached; examples are streamed again from the shards when a seqio Task asks for them.

Sources: ``resolve_source`` takes a local file or directory (the set's published layout and field
names), a bucket URL holding the same layout (``gs://…``: copied once per process into a temporary local
directory, then read like a local copy) or a hub name (``owner/name``); ``hub_snapshot`` fetches the
matching files of a hub dataset with ``huggingface_hub.snapshot_download`` into the local cache, so a hub
source is then read exactly like a local copy of the same layout (nothing can be downloaded on this machine: tests use local files).
"""

from __future__ import annotations

import abc
import functools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xlt import paths
from xlt.data import languages as language_table
from xlt.errors import ConfigError, DataError

SIZE_UNITS = ("examples", "characters", "tokens")
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class InstructionTask:
    """One task of a provider: a seqio Task per language is registered for it."""

    name: str
    cluster: str


class Provider(abc.ABC):
    """What ``xlt.instruct.tasks`` asks of an instruction dataset (see the module docstring)."""

    name: str = ""
    templated: bool = False
    default_held_out: tuple[str, ...] = ()

    @abc.abstractmethod
    def languages(self) -> tuple[str, ...]:
        """xlt language codes with data, sorted."""

    @abc.abstractmethod
    def splits(self, lang: str) -> tuple[str, ...]:
        """Splits with data for ``lang`` (a subset of train / validation / test)."""

    def task_splits(self, task: str, lang: str) -> tuple[str, ...]:
        """Splits with data for one task in ``lang``; by default every split of the language."""
        return self.splits(lang)

    @abc.abstractmethod
    def tasks(self, lang: str) -> tuple[InstructionTask, ...]:
        """Tasks with data for ``lang``, in a stable order."""

    @abc.abstractmethod
    def clusters(self) -> dict[str, tuple[str, ...]]:
        """{cluster: task names} over every task the provider knows."""

    @abc.abstractmethod
    def examples(self, task: str, lang: str, split: str, setting: Any = None,
                 all_templates: bool = False) -> Iterable[dict[str, Any]]:
        """The example dicts one seqio Task serves (see the module docstring for the keys)."""

    def size(self, task: str, lang: str, split: str = "train", unit: str = "examples", vocab: Any = None,
             setting: Any = None) -> int:
        """Size of one (task, language, split) in ``unit``; the default counts ``examples``."""
        check_unit(unit, vocab)
        total = 0
        for ex in self.examples(task, lang, split, setting):
            total += _measure(ex, unit, vocab)
        return total

    def check_language(self, lang: str, what: str = "language") -> str:
        """``lang`` if the provider has data in it, else a one-line DataError naming the ones it has."""
        language_table.validate(lang)
        have = self.languages()
        if lang not in have:
            raise DataError(f"instruction data {self.name!r} has no {what} {lang!r}; it has: {', '.join(have)}")
        return lang

    def check_clusters(self, clusters: Iterable[str]) -> tuple[str, ...]:
        if isinstance(clusters, str):
            raise ConfigError(f"clusters must be a list of names, got the string {clusters!r}")
        out = tuple(clusters)
        known = self.clusters()
        for cluster in out:
            if cluster not in known:
                raise ConfigError(f"{self.name}: unknown task cluster {cluster!r}; clusters: {', '.join(known)}")
        return out

    def cluster_of(self, task: str) -> str:
        for cluster, names in self.clusters().items():
            if task in names:
                return cluster
        raise ConfigError(f"{self.name}: unknown task {task!r}; tasks: {', '.join(self.task_names())}")

    def task_names(self) -> tuple[str, ...]:
        return tuple(t for names in self.clusters().values() for t in names)


def check_unit(unit: str, vocab: Any = None) -> str:
    if unit not in SIZE_UNITS:
        raise ConfigError(f"size unit {unit!r}; choose one of {', '.join(SIZE_UNITS)}")
    if unit == "tokens" and vocab is None:
        raise ConfigError("size unit 'tokens' needs the run's vocabulary")
    return unit


def _measure(example: dict[str, Any], unit: str, vocab: Any) -> int:
    if unit == "examples":
        return 1
    if unit == "characters":
        return len(example["inputs"]) + len(example["targets"])
    return len(vocab.encode(example["inputs"])) + len(vocab.encode(example["targets"]))


# ------------------------------------------------------------------------------------------------ sources
@dataclass(frozen=True)
class Source:
    """Where a provider's data lives: a local path or a Hugging Face hub name."""

    kind: str  # "local", "url" or "hub"
    location: str

    @property
    def path(self) -> Path:
        """The local file or directory to read: the source itself, or for a URL a local copy of it."""
        return _downloaded(self.location) if self.kind == "url" else Path(self.location)


@functools.lru_cache(maxsize=None)
def _downloaded(url: str) -> Path:
    """A bucket source (``gs://…``) copied once per process into a temporary directory, keeping its layout, so
    every provider reads it with the code that reads a local copy (as a hub source is read from its snapshot)."""
    return paths.local_tree(url)


def resolve_source(source: str | Path | None, default_hub: str, what: str) -> Source:
    """A local file/directory if ``source`` exists, else a hub name (``owner/name``); the provider's hub
    name when ``source`` is None. A path-like source that does not exist is a one-line DataError."""
    if source is None:
        return Source("hub", default_hub)
    text = str(source)
    if paths.is_url(text):
        if not paths.exists(text):
            raise DataError(f"{what}: source {text!r} does not exist")
        return Source("url", text)
    if Path(text).exists():
        return Source("local", text)
    parts = text.split("/")
    if len(parts) == 2 and all(parts) and not text.startswith((".", "~")) and "\\" not in text:
        return Source("hub", text)
    raise DataError(f"{what}: source {text!r} is neither a local file or directory nor a hub name (owner/name)")


def hub_snapshot(name: str, patterns: Sequence[str]) -> Path:
    """Download (or find in the Hugging Face cache) the files of hub dataset ``name`` that match
    ``patterns`` and return the local directory: the published layout, read by the same code as a local
    copy. A one-line DataError when the hub cannot be reached or nothing matches."""
    try:
        from huggingface_hub import snapshot_download
        root = Path(snapshot_download(repo_id=name, repo_type="dataset", allow_patterns=list(patterns)))
    except Exception as e:  # noqa: BLE001  (offline, unknown repo, auth: all end the run here)
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise DataError(f"cannot fetch hub dataset {name!r} ({', '.join(patterns)}): {type(e).__name__}: "
                        f"{first[:160]}; pass a local copy as the source") from None
    if not data_files(root):
        raise DataError(f"hub dataset {name!r} has no files matching {list(patterns)}")
    return root


def data_files(root: Path, suffixes: Sequence[str] = (".jsonl", ".json", ".parquet", ".jsonl.gz", ".json.gz")
               ) -> list[Path]:
    """Data files under ``root`` (recursively), sorted; ``root`` itself if it is a file."""
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and p.name.endswith(tuple(suffixes)))


def split_of_file(path: Path, default: str | None = None) -> str | None:
    """The split a file name states, hub-style: ``train.jsonl``, ``test-00000-of-00001.parquet``,
    ``validation/0000.parquet``, ``xp3_..._train_...jsonl``; ``default`` when none is stated."""
    for part in (path.name, path.parent.name):
        stem = part.split(".")[0]
        for split in SPLITS:
            if stem == split or stem.startswith(split + "-") or stem.startswith(split + "_"):
                return split
    name = path.name.split(".")[0]
    found = [s for s in SPLITS if f"_{s}_" in f"_{name}_"]
    if len(found) == 1:
        return found[0]
    if "_dev_" in f"_{name}_":
        return "validation"
    return default


# ----------------------------------------------------------------------------------------- file provider
@dataclass(frozen=True)
class Shard:
    """One unit of reading: a local file or a hub split, with what its place in the layout says."""

    where: str
    split: str
    read: Callable[[], Iterator[dict[str, Any]]]
    task: str | None = None
    cluster: str | None = None
    lang: str | None = None  # None: the records carry their language (several languages in one shard)


@dataclass
class _Counts:
    examples: int = 0
    characters: int = 0


@dataclass
class _Index:
    """What one pass over the shards found: counts per (task, lang, split) and each task's cluster."""

    counts: dict[tuple[str, str, str], _Counts] = field(default_factory=dict)
    clusters: dict[str, str] = field(default_factory=dict)


class FileProvider(Provider):
    """A rendered provider over shards (subclasses implement ``shards``); see the module docstring."""

    templated = False
    default_task: str = ""
    default_cluster: str = ""

    def __init__(self, source: str | Path | None = None, languages: Sequence[str] | None = None):
        self.source = source
        self.only = None if languages is None else tuple(language_table.validate(c) for c in languages)

    @abc.abstractmethod
    def shards(self) -> list[Shard]:
        """Every shard of the source (may read directory listings, not data)."""

    def static_clusters(self) -> dict[str, tuple[str, ...]]:
        """Clusters known without reading data (P3's table); default: none beyond those found."""
        return {}

    @functools.cached_property
    def _shards(self) -> list[Shard]:
        found = [s for s in self.shards() if s.lang is None or self.only is None or s.lang in self.only]
        if not found:
            raise DataError(f"instruction data {self.name!r}: no data files found in {self.source!r} "
                            f"(expected the published layout; see docs/INSTRUCT.md)")
        return found

    def _records(self, shard: Shard) -> Iterator[dict[str, Any]]:
        for record in shard.read():
            lang = shard.lang or record.get("lang")
            if lang is None:
                raise DataError(f"{shard.where}: a record carries no language")
            if self.only is not None and lang not in self.only:
                continue
            task = shard.task or record.get("task") or self.default_task
            cluster = shard.cluster or record.get("cluster") or self.default_cluster
            yield {"inputs": record["inputs"], "targets": record["targets"], "content_lang": lang,
                   "task": task, "cluster": cluster, "template_lang": "",
                   "template_id": str(record.get("template_id", "")), "split": shard.split}

    @functools.cached_property
    def _index(self) -> _Index:
        index = _Index()
        for shard in self._shards:
            for ex in self._records(shard):
                key = (ex["task"], ex["content_lang"], shard.split)
                counts = index.counts.setdefault(key, _Counts())
                counts.examples += 1
                counts.characters += len(ex["inputs"]) + len(ex["targets"])
                previous = index.clusters.setdefault(ex["task"], ex["cluster"])
                if previous != ex["cluster"]:
                    raise DataError(f"{shard.where}: task {ex['task']!r} is in cluster {ex['cluster']!r} here "
                                    f"and {previous!r} elsewhere")
        if not index.counts:
            raise DataError(f"instruction data {self.name!r}: the files in {self.source!r} hold no examples"
                            + (f" in {list(self.only)}" if self.only else ""))
        return index

    def languages(self) -> tuple[str, ...]:
        return tuple(sorted({lang for _, lang, _ in self._index.counts}))

    def splits(self, lang: str) -> tuple[str, ...]:
        have = {split for _, code, split in self._index.counts if code == lang}
        return tuple(s for s in SPLITS if s in have)

    def task_splits(self, task: str, lang: str) -> tuple[str, ...]:
        return tuple(s for s in SPLITS if (task, lang, s) in self._index.counts)

    def tasks(self, lang: str) -> tuple[InstructionTask, ...]:
        names = sorted({task for task, code, _ in self._index.counts if code == lang})
        return tuple(InstructionTask(t, self._index.clusters[t]) for t in names)

    def clusters(self) -> dict[str, tuple[str, ...]]:
        out: dict[str, list[str]] = {c: list(ts) for c, ts in self.static_clusters().items()}
        for task, cluster in sorted(self._index.clusters.items()):
            if task not in out.setdefault(cluster, []):
                out[cluster].append(task)
        return {c: tuple(ts) for c, ts in out.items()}

    def examples(self, task: str, lang: str, split: str, setting: Any = None,
                 all_templates: bool = False) -> Iterator[dict[str, Any]]:
        del setting, all_templates  # rendered data: one prompt per record, as published
        for shard in self._shards:
            if shard.split != split or (shard.lang is not None and shard.lang != lang) \
                    or (shard.task is not None and shard.task != task):
                continue
            for ex in self._records(shard):
                if ex["content_lang"] == lang and ex["task"] == task:
                    yield ex

    def size(self, task: str, lang: str, split: str = "train", unit: str = "examples", vocab: Any = None,
             setting: Any = None) -> int:
        check_unit(unit, vocab)
        if unit == "tokens":
            return super().size(task, lang, split, unit, vocab, setting)
        counts = self._index.counts.get((task, lang, split))
        return 0 if counts is None else getattr(counts, unit)


def local_root(provider: FileProvider, default_hub: str, patterns: Sequence[str]) -> Path:
    """The directory (or file) a file provider reads: its local source, or a hub snapshot of ``patterns``."""
    source = resolve_source(provider.source, default_hub, provider.name)
    if source.kind in ("local", "url"):
        return source.path
    try:
        return hub_snapshot(source.location, patterns)
    except DataError as e:
        if provider.source is None:
            raise
        raise DataError(f"{provider.name}: {provider.source!r} is no local path, and as a hub name: {e}") from None
