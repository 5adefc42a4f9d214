"""seqio Tasks and Mixtures over the instruction meta-datasets, for tuning and for evaluation.

``register_instruct_tasks`` (gin-configurable) registers one seqio Task per (task, content language,
template setting), named ``instruct_<setting>_<task>_<lang>`` (``instruct_native_country_currency_ko``,
``instruct_cross_en_verse_translation_ko``). The setting is ``native``, ``native_or_<fallback>``,
``fixed_<lang>`` or ``cross_<lang>``, so several template settings can be registered side by side. Each Task
is registered with its metadata (``xlt.data.tasks.register_task_meta``): its content language, which
``xlt.data.pipeline`` reports per-language token shares by, and its size in examples (items per split).

Features: ``inputs`` (the rendered prompt) and ``targets`` (the gold text; for choice tasks the gold
option) are tokenized with the given vocabulary, EOS appended to both. ``lang`` (content language),
``task``, ``cluster``, ``template_lang`` and ``template_id`` are passed through as strings: a Task keeps
them; a Mixture keeps them when asked (``mixture.get_dataset(..., passthrough_features=["lang", ...])``,
as with the pretraining mixtures of ``xlt.data.mixtures``). The train split uses one template per item;
validation and test use every template per item (``eval_all_templates``), as T0 evaluates each prompt.

Loss on the response only. Nothing here masks the prompt: the feature converter does. seqio's
``PrefixLMFeatureConverter`` (decoder-only, ``xlt.data.pipeline`` name ``prefix_lm``) concatenates inputs
and targets and sets ``decoder_loss_weights`` to 0 on the inputs (``loss_on_targets_only=True`` by default)
and 1 on the targets; ``EncDecFeatureConverter`` (T5, ``encdec``) feeds the inputs to the encoder and
weights only target tokens. ``tests/instruct/test_instruct_tasks.py`` checks both on converted batches.
(The plain ``decoder`` converter would train on ``targets`` alone and drop the prompt: use ``prefix_lm``.)

Training mixture ``instruct_<setting>_train_<langs>``: the tasks of the clusters that are not held out
(zero-shot: held-out clusters never enter it), for the languages of ``train_languages`` — ``('en',)`` for
English-only tuning, ``('en', 'ko')`` for bilingual, one gin binding. Rates are two-level: a language's
share comes from a rate registered in ``xlt.data.mixtures`` (e.g. ``proportional`` or ``temperature``)
over the language's number of training items, and within a language each task gets a share ∝ items **
task_alpha (1.0: examples-proportional with the cap of ``MetaConfig.max_train``, as T0 mixes). Held-out
clusters get one evaluation mixture per language, ``instruct_<setting>_heldout_<lang>``.

``eval_examples`` returns the raw example dicts (options, answer index, references, template id) that a
rank-classification or generation evaluator needs, for any (task, language, split, template mode);
``registered_examples`` returns exactly what a registered Task serves.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gin
import seqio
import tensorflow as tf

from xlt.data import languages as language_table
from xlt.data import mixtures
from xlt.errors import ConfigError, DataError
from xlt.instruct import meta
from xlt.instruct import templates as tpl

PREFIX = "instruct"
SHUFFLE_BUFFER = 10_000
PASSTHROUGH: tuple[str, ...] = ("lang", "task", "cluster", "template_lang", "template_id")
_STRING_FEATURES = ("inputs", "targets") + PASSTHROUGH


@dataclass(frozen=True)
class Setting:
    """A template setting: mode plus its template or fallback language."""

    mode: str = "native"
    template_lang: str | None = None
    fallback_lang: str | None = None

    def __post_init__(self):
        if self.mode not in tpl.MODES:
            raise ConfigError(f"template_mode {self.mode!r}; choose one of {', '.join(tpl.MODES)}")
        for name in ("template_lang", "fallback_lang"):
            code = getattr(self, name)
            if code is not None:
                language_table.validate(code)
        if self.mode == "native" and self.template_lang is not None:
            raise ConfigError("template_mode 'native' takes no template_lang; use 'fixed' or 'cross'")
        if self.mode != "native" and self.template_lang is None:
            raise ConfigError(f"template_mode {self.mode!r} needs template_lang (e.g. 'en')")
        if self.mode != "native" and self.fallback_lang is not None:
            raise ConfigError(f"fallback_lang only applies to template_mode 'native', not {self.mode!r}")

    @property
    def name(self) -> str:
        if self.mode == "native":
            return f"native_or_{self.fallback_lang}" if self.fallback_lang else "native"
        return f"{self.mode}_{self.template_lang}"

    def template_language(self, task: str, lang: str) -> str:
        return tpl.resolve_template_lang(self.mode, lang, task, self.template_lang, self.fallback_lang)


@dataclass(frozen=True)
class TaskInfo:
    """What one registered seqio Task serves."""

    name: str
    task: str
    lang: str
    setting: Setting
    config: meta.MetaConfig
    eval_all_templates: bool


@dataclass(frozen=True)
class Registration:
    """The result of ``register_instruct_tasks``."""

    setting: str
    tasks: dict[tuple[str, str], str]
    train_mixture: str
    train_rates: dict[str, float]
    heldout_mixtures: dict[str, str]


_INFO: dict[str, TaskInfo] = {}


def task_name(task: str, lang: str, setting: Setting | str = "native") -> str:
    """seqio name of one instruction task: ``instruct_<setting>_<task>_<lang>``."""
    label = setting.name if isinstance(setting, Setting) else setting
    return f"{PREFIX}_{label}_{task}_{lang}"


def task_info(name: str) -> TaskInfo:
    """How a registered instruction Task was configured; ConfigError for a name never registered here."""
    if name not in _INFO:
        raise ConfigError(f"{name!r} is not a registered instruction task; call register_instruct_tasks first")
    return _INFO[name]


def _examples(info: TaskInfo, split: str) -> list[dict[str, Any]]:
    return meta.examples(info.task, info.lang, split, mode=info.setting.mode,
                         template_lang=info.setting.template_lang, fallback_lang=info.setting.fallback_lang,
                         config=info.config, all_templates=info.eval_all_templates and split != "train")


def _dataset(split: str, shuffle_files: bool = False, seed: int | None = None, *, name: str) -> tf.data.Dataset:
    del shuffle_files, seed  # built in memory, deterministic; the Task's shuffle buffer shuffles
    rows = _examples(_INFO[name], split)
    columns = {
        "inputs": [r["inputs"] for r in rows],
        "targets": [r["targets"] for r in rows],
        "lang": [r["content_lang"] for r in rows],
        "task": [r["task"] for r in rows],
        "cluster": [r["cluster"] for r in rows],
        "template_lang": [r["template_lang"] for r in rows],
        "template_id": [r["template_id"] for r in rows],
    }
    return tf.data.Dataset.from_tensor_slices({k: tf.constant(v, dtype=tf.string, shape=(len(rows),))
                                               for k, v in columns.items()})


def _register_task(info: TaskInfo, vocab: seqio.Vocabulary) -> None:
    feature = seqio.Feature(vocab, add_eos=True, dtype=tf.int32)
    source = seqio.FunctionDataSource(functools.partial(_dataset, name=info.name),
                                      splits=("train", "validation", "test"))
    # seqio repeats before it shuffles: a buffer larger than an epoch would tokenize several epochs up front.
    buffer = min(SHUFFLE_BUFFER, info.config.max_train or SHUFFLE_BUFFER)
    task = seqio.Task(info.name, source=source,
                      preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos],
                      output_features={"inputs": feature, "targets": feature}, shuffle_buffer_size=buffer)
    if info.name in seqio.TaskRegistry.names():
        seqio.TaskRegistry.remove(info.name)
    seqio.TaskRegistry.add_provider(info.name, task)
    _INFO[info.name] = info
    from xlt.data import tasks as data_tasks
    data_tasks.register_task_meta(info.name, info.lang, functools.partial(_num_items, info), "examples")


def _num_items(info: TaskInfo, split: str) -> int:
    return len(meta.items(info.task, info.lang, split, info.config))


def _register_mixture(name: str, rates: dict[str, float]) -> None:
    if name in seqio.MixtureRegistry.names():
        seqio.MixtureRegistry.remove(name)
    seqio.MixtureRegistry.add(name, sorted(rates.items()))


@gin.configurable
def instruct_config(seed: int = 0, num_options: int = 4, pivot: str = "en", pivot_alt: str = "fr",
                    langid_languages: Sequence[str] | None = None, max_train: int | None = 10_000,
                    max_eval: int | None = None) -> meta.MetaConfig:
    """A ``meta.MetaConfig`` from gin: ``register_instruct_tasks.config = @instruct_config()``."""
    pool = meta.DEFAULT_CONFIG.langid_languages if langid_languages is None else tuple(langid_languages)
    return meta.MetaConfig(seed, num_options, pivot, pivot_alt, pool, max_train, max_eval)


def _codes(value: Sequence[str], what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        raise ConfigError(f"{what} must be a list of language codes, got the string {value!r}")
    codes = tuple(value)
    if not codes:
        raise ConfigError(f"{what} is empty")
    for code in codes:
        if not isinstance(code, str) or not code.strip():
            raise DataError(f"{what} has an empty language code: {list(codes)}")
        language_table.validate(code)
    if len(set(codes)) != len(codes):
        raise ConfigError(f"{what} repeats a language: {list(codes)}")
    return codes


def default_train_mixture_name(setting: Setting | str, train_languages: Sequence[str],
                               held_out: Sequence[str] = meta.DEFAULT_HELD_OUT) -> str:
    """``instruct_<setting>_train_<l1>_<l2>``; a non-default held-out set is named in a suffix."""
    label = setting.name if isinstance(setting, Setting) else setting
    name = f"{PREFIX}_{label}_train_{'_'.join(train_languages)}"
    held = tuple(sorted(held_out))
    if held == tuple(sorted(meta.DEFAULT_HELD_OUT)):
        return name
    return name + ("_all_clusters" if not held else "_without_" + "_".join(held))


@gin.configurable
def register_instruct_tasks(
    vocab: seqio.Vocabulary | None = None,
    languages: Sequence[str] = ("en", "ko"),
    template_mode: str = "native",
    template_lang: str | None = None,
    fallback_lang: str | None = None,
    held_out: Sequence[str] = meta.DEFAULT_HELD_OUT,
    train_languages: Sequence[str] = ("en",),
    rate: str = "proportional",
    alpha: float = 0.3,
    task_alpha: float = 1.0,
    tasks: Sequence[str] | None = None,
    config: meta.MetaConfig | None = None,
    eval_all_templates: bool = True,
    mixture_name: str | None = None,
) -> Registration:
    """Register the instruction Tasks for ``languages`` and the training mixture for ``train_languages``.

    Every (task, language) is checked before anything is registered: an unknown code, cluster or task,
    a language without native templates (``template_mode='native'`` and no ``fallback_lang``), a cross
    setting whose template language equals a content language, or a training language with no training
    data raise ConfigError/DataError. Re-registering replaces earlier Tasks and Mixtures of the same names.
    """
    from xlt.data import tasks as data_tasks

    langs = _codes(languages, "languages")
    train_langs = _codes(train_languages, "train_languages")
    missing = [code for code in train_langs if code not in langs]
    if missing:
        raise ConfigError(f"train_languages {missing} are not in languages {list(langs)}")
    held = meta.check_clusters(held_out)
    mixtures.check_rate(rate, alpha=alpha)
    if isinstance(task_alpha, bool) or not isinstance(task_alpha, (int, float)) or task_alpha < 0:
        raise ConfigError(f"task_alpha must be a number >= 0, got {task_alpha!r}")
    wanted = tuple(meta.TASKS) if tasks is None else tuple(meta.task_spec(t).name for t in tasks)
    setting = Setting(template_mode, template_lang, fallback_lang)
    config = config or meta.DEFAULT_CONFIG
    vocab = vocab or data_tasks.vocabulary()
    train_tasks = set(meta.training_tasks(held))
    if not train_tasks & set(wanted):
        raise ConfigError(f"held_out={list(held)} leaves no training task among {list(wanted)}")

    infos: dict[tuple[str, str], TaskInfo] = {}
    for lang in langs:
        for task in meta.tasks_for(lang, config=config):
            if task in wanted:
                setting.template_language(task, lang)  # ConfigError now rather than inside tf.data
                infos[(task, lang)] = TaskInfo(task_name(task, lang, setting), task, lang, setting, config,
                                               eval_all_templates)

    sizes: dict[str, dict[str, int]] = {}
    for (task, lang), info in infos.items():
        if lang in train_langs and task in train_tasks:
            n = len(meta.items(task, lang, "train", config))
            if n:
                sizes.setdefault(lang, {})[info.name] = n
    empty = [code for code in train_langs if code not in sizes]
    if empty:
        raise DataError(f"training language(s) {empty} have no training examples in tasks {sorted(train_tasks)}")

    for info in infos.values():
        _register_task(info, vocab)
    totals = {lang: float(sum(by_task.values())) for lang, by_task in sizes.items()}
    lang_weights = mixtures.rate_weights(rate, totals, alpha=alpha)
    train_rates: dict[str, float] = {}
    for lang, by_task in sizes.items():
        scaled = {name: n ** task_alpha for name, n in by_task.items()}
        norm = sum(scaled.values())
        for name, x in scaled.items():
            train_rates[name] = lang_weights[lang] * x / norm
    name = mixture_name or default_train_mixture_name(setting, train_langs, held)
    _register_mixture(name, train_rates)

    heldout_mixtures = {}
    for lang in langs:
        rates = {info.name: 1.0 for (task, code), info in infos.items()
                 if code == lang and meta.TASKS[task].cluster in held}
        if rates:
            heldout_mixtures[lang] = f"{PREFIX}_{setting.name}_heldout_{lang}"
            _register_mixture(heldout_mixtures[lang], rates)
    return Registration(setting.name, {key: info.name for key, info in infos.items()}, name, train_rates,
                        heldout_mixtures)


def eval_examples(task: str, lang: str, split: str = "test", *, template_mode: str = "native",
                  template_lang: str | None = None, fallback_lang: str | None = None,
                  config: meta.MetaConfig | None = None, all_templates: bool = True) -> list[dict[str, Any]]:
    """Raw example dicts (inputs, targets, options, answer, references, template_id, ...) for evaluation."""
    Setting(template_mode, template_lang, fallback_lang)
    return meta.examples(task, lang, split, mode=template_mode, template_lang=template_lang,
                         fallback_lang=fallback_lang, config=config, all_templates=all_templates)


def registered_examples(name: str, split: str = "test") -> list[dict[str, Any]]:
    """The raw example dicts behind a registered Task, in the order its data source yields them."""
    return _examples(task_info(name), split)
