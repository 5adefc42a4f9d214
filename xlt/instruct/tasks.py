"""seqio Tasks and Mixtures over instruction data, for tuning and for evaluation.

The data is any provider of ``xlt.instruct.providers`` (``register_instruct_tasks(data=...)``; gin:
``@instruction_data()``): the built-in meta-datasets by default, or MultiAlpaca, xP3, Aya, P3 or generic files.
Everything below holds for all of them, except that already-rendered data has no template settings (its Tasks
are named ``instruct_<provider>_<task>_<lang>`` and stream from its files) and keeps its own held-out clusters
(T0's for P3).

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
from collections.abc import Iterable, Sequence
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
from xlt.instruct.providers import Provider, get_provider
from xlt.instruct.providers.base import check_unit
from xlt.instruct.providers.builtin import MetaProvider

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
    provider: Provider | None = None  # None: the built-in meta-datasets under ``config``
    cluster: str = ""

    @property
    def data(self) -> Provider:
        return self.provider if self.provider is not None else MetaProvider(self.config)


@dataclass(frozen=True)
class Registration:
    """The result of ``register_instruct_tasks``."""

    setting: str
    tasks: dict[tuple[str, str], str]
    train_mixture: str
    train_rates: dict[str, float]
    heldout_mixtures: dict[str, str]
    data: str = "builtin"
    size_unit: str = "examples"


_INFO: dict[str, TaskInfo] = {}


def task_name(task: str, lang: str, setting: Setting | str = "native") -> str:
    """seqio name of one instruction task: ``instruct_<setting>_<task>_<lang>`` (for already-rendered data
    the setting part is the provider's name, and a task named like its provider is not repeated:
    ``instruct_multialpaca_ko``, ``instruct_p3_super_glue_cb_en``)."""
    label = setting.name if isinstance(setting, Setting) else setting
    if task == label:
        return f"{PREFIX}_{label}_{lang}"
    return f"{PREFIX}_{label}_{task}_{lang}"


def task_info(name: str) -> TaskInfo:
    """How a registered instruction Task was configured; ConfigError for a name never registered here."""
    if name not in _INFO:
        raise ConfigError(f"{name!r} is not a registered instruction task; call register_instruct_tasks first")
    return _INFO[name]


def _examples(info: TaskInfo, split: str) -> Iterable[dict[str, Any]]:
    return info.data.examples(info.task, info.lang, split, info.setting,
                              all_templates=info.eval_all_templates and split != "train")


def _columns(row: dict[str, Any]) -> dict[str, str]:
    return {"inputs": row["inputs"], "targets": row["targets"], "lang": row["content_lang"], "task": row["task"],
            "cluster": row["cluster"], "template_lang": row["template_lang"], "template_id": row["template_id"]}


def _dataset(split: str, shuffle_files: bool = False, seed: int | None = None, *, name: str) -> tf.data.Dataset:
    del shuffle_files, seed  # deterministic order; the Task's shuffle buffer shuffles
    info = _INFO[name]
    if not info.data.templated:  # streamed from the provider's files, re-read each epoch
        signature = {key: tf.TensorSpec((), tf.string) for key in _STRING_FEATURES}
        return tf.data.Dataset.from_generator(lambda: (_columns(r) for r in _examples(info, split)),
                                              output_signature=signature)
    rows = [_columns(r) for r in _examples(info, split)]
    return tf.data.Dataset.from_tensor_slices({k: tf.constant([r[k] for r in rows], dtype=tf.string,
                                                              shape=(len(rows),)) for k in _STRING_FEATURES})


def _register_task(info: TaskInfo, vocab: seqio.Vocabulary, splits: Sequence[str], unit: str,
                   train_size: int | None) -> None:
    feature = seqio.Feature(vocab, add_eos=True, dtype=tf.int32)
    source = seqio.FunctionDataSource(functools.partial(_dataset, name=info.name), splits=tuple(splits))
    # seqio repeats before it shuffles: a buffer larger than an epoch would tokenize several epochs up front.
    cap = info.config.max_train if info.data.templated else train_size
    buffer = min(SHUFFLE_BUFFER, cap or SHUFFLE_BUFFER)
    task = seqio.Task(info.name, source=source,
                      preprocessors=[seqio.preprocessors.tokenize, seqio.preprocessors.append_eos],
                      output_features={"inputs": feature, "targets": feature}, shuffle_buffer_size=buffer)
    if info.name in seqio.TaskRegistry.names():
        seqio.TaskRegistry.remove(info.name)
    seqio.TaskRegistry.add_provider(info.name, task)
    _INFO[info.name] = info
    from xlt.data import tasks as data_tasks
    data_tasks.register_task_meta(info.name, info.lang, functools.partial(_size, info, unit, vocab), unit)


def _size(info: TaskInfo, unit: str, vocab: seqio.Vocabulary, split: str) -> int:
    return info.data.size(info.task, info.lang, split, unit, vocab, info.setting)


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
                               held_out: Sequence[str] = meta.DEFAULT_HELD_OUT,
                               default_held_out: Sequence[str] = meta.DEFAULT_HELD_OUT) -> str:
    """``instruct_<setting>_train_<l1>_<l2>``; a held-out set other than the data's default is named in a
    suffix. For already-rendered data the setting part is the provider's name."""
    label = setting.name if isinstance(setting, Setting) else setting
    name = f"{PREFIX}_{label}_train_{'_'.join(train_languages)}"
    held = tuple(sorted(held_out))
    if held == tuple(sorted(default_held_out)):
        return name
    return name + ("_all_clusters" if not held else "_without_" + "_".join(held))


def _provider(data: Provider | str | None, config: meta.MetaConfig | None) -> Provider:
    if data is None or data == "builtin":
        return MetaProvider(config)
    if isinstance(data, str):
        return get_provider(data)
    if not isinstance(data, Provider):
        raise ConfigError(f"register_instruct_tasks.data must be a provider or its name, got {data!r}")
    if config is not None and not data.templated:
        raise ConfigError(f"register_instruct_tasks.config (a MetaConfig) applies to the built-in data only, "
                          f"not to {data.name!r}")
    return data


def _check_number(value: Any, what: str, minimum: float = 0) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
        raise ConfigError(f"{what} must be a number >= {minimum}, got {value!r}")


@gin.configurable
def register_instruct_tasks(
    vocab: seqio.Vocabulary | None = None,
    languages: Sequence[str] = ("en", "ko"),
    template_mode: str = "native",
    template_lang: str | None = None,
    fallback_lang: str | None = None,
    held_out: Sequence[str] | None = None,
    train_languages: Sequence[str] = ("en",),
    rate: str = "proportional",
    alpha: float = 0.3,
    task_alpha: float = 1.0,
    tasks: Sequence[str] | None = None,
    config: meta.MetaConfig | None = None,
    eval_all_templates: bool = True,
    mixture_name: str | None = None,
    data: Provider | str | None = None,
    size_unit: str = "examples",
    budget: float | None = None,
    max_epochs: float = 1.0,
    max_task_examples: int | None = None,
) -> Registration:
    """Register the instruction Tasks of ``data`` for ``languages`` and the training mixture for
    ``train_languages``.

    ``data`` is a provider (``xlt.instruct.providers``; gin: ``@instruction_data()``) or its name; None is
    the built-in meta-datasets under ``config``. ``held_out`` defaults to the data's own held-out clusters
    (the meta-datasets' ``meta.DEFAULT_HELD_OUT``, T0's for P3, none for the others). Rates: a language's
    share is ``rate`` (any rate registered in ``xlt.data.mixtures``: proportional, temperature with
    ``alpha``, UniMax with ``budget`` and ``max_epochs``) over the language's training size in
    ``size_unit`` (examples, characters or tokens of the run's vocabulary); within a language each task
    gets a share ∝ min(size, ``max_task_examples``) ** ``task_alpha`` (T0's capped examples-proportional
    mixing; the cap needs ``size_unit='examples'`` and also caps the size a language's share is computed from). Template settings apply to templated data only: for already-rendered data (MultiAlpaca, xP3,
    Aya, P3, files) anything but the default ``native`` is a ConfigError.

    Every (task, language) is checked before anything is registered: an unknown code, provider, cluster or
    task, a language the data lacks, a language without native templates (``template_mode='native'`` and
    no ``fallback_lang``), a cross setting whose template language equals a content language, or a
    training language with no training data raise ConfigError/DataError. Re-registering replaces earlier
    Tasks and Mixtures of the same names.
    """
    from xlt.data import tasks as data_tasks

    langs = _codes(languages, "languages")
    train_langs = _codes(train_languages, "train_languages")
    missing = [code for code in train_langs if code not in langs]
    if missing:
        raise ConfigError(f"train_languages {missing} are not in languages {list(langs)}")
    setting = Setting(template_mode, template_lang, fallback_lang)
    provider = _provider(data, config)
    if not provider.templated and setting != Setting():
        raise ConfigError(f"instruction data {provider.name!r} is already rendered (it carries its own prompts): "
                          f"template_mode={template_mode!r}, template_lang and fallback_lang do not apply to it")
    label = setting.name if provider.templated else provider.name
    held = provider.check_clusters(provider.default_held_out if held_out is None else held_out)
    mixtures.check_rate(rate, "register_instruct_tasks.", alpha=alpha, budget=budget, max_epochs=max_epochs)
    _check_number(task_alpha, "task_alpha")
    vocab = vocab or data_tasks.vocabulary()
    unit = check_unit(size_unit, vocab)
    if max_task_examples is not None:
        _check_number(max_task_examples, "max_task_examples", 1)
        if unit != "examples":
            raise ConfigError(f"max_task_examples caps tasks in examples; it does not apply to size_unit={unit!r}")
    config = provider.config if isinstance(provider, MetaProvider) else (config or meta.DEFAULT_CONFIG)
    if tasks is None:
        wanted = provider.task_names()
    else:
        if isinstance(tasks, str):
            raise ConfigError(f"tasks must be a list of task names, got the string {tasks!r}")
        wanted = tuple(tasks)
        for task in wanted:
            provider.cluster_of(task)
    train_tasks = {t for t in wanted if provider.cluster_of(t) not in held}
    if not train_tasks:
        raise ConfigError(f"held_out={list(held)} leaves no training task among {list(wanted)}")
    for lang in langs:  # a language the data lacks is an error now, not an empty mixture later
        provider.check_language(lang, "training language" if lang in train_langs else "language")

    infos: dict[tuple[str, str], TaskInfo] = {}
    for lang in langs:
        for entry in provider.tasks(lang):
            if entry.name in wanted:
                if provider.templated:
                    setting.template_language(entry.name, lang)  # ConfigError now rather than inside tf.data
                infos[(entry.name, lang)] = TaskInfo(task_name(entry.name, lang, label), entry.name, lang, setting,
                                                     config, eval_all_templates,
                                                     None if provider.templated else provider, entry.cluster)

    sizes: dict[str, dict[str, float]] = {}
    train_sizes: dict[str, int] = {}
    for (task, lang), info in infos.items():
        if "train" not in provider.task_splits(task, lang):
            continue
        if not provider.templated:  # the shuffle buffer of a streamed Task is capped at its size
            train_sizes[info.name] = provider.size(task, lang, "train", "examples", vocab, setting)
        if lang in train_langs and task in train_tasks:
            n = provider.size(task, lang, "train", unit, vocab, setting)
            if max_task_examples is not None:
                n = min(n, max_task_examples)
            if n:
                sizes.setdefault(lang, {})[info.name] = n
    empty = [code for code in train_langs if code not in sizes]
    if empty:
        raise DataError(f"training language(s) {empty} have no training examples in the training tasks of "
                        f"{provider.name!r} (held out: {list(held)})")

    for (task, lang), info in infos.items():
        _register_task(info, vocab, provider.task_splits(task, lang), unit, train_sizes.get(info.name))
    totals = {lang: float(sum(by_task.values())) for lang, by_task in sizes.items()}
    lang_weights = mixtures.rate_weights(rate, totals, "register_instruct_tasks.", alpha=alpha, budget=budget,
                                         max_epochs=max_epochs)
    train_rates: dict[str, float] = {}
    for lang, by_task in sizes.items():
        scaled = {name: n ** task_alpha for name, n in by_task.items()}
        norm = sum(scaled.values())
        for name, x in scaled.items():
            train_rates[name] = lang_weights[lang] * x / norm
    name = mixture_name or default_train_mixture_name(label, train_langs, held, provider.default_held_out)
    _register_mixture(name, train_rates)

    heldout_mixtures = {}
    for lang in langs:
        rates = {info.name: 1.0 for (task, code), info in infos.items()
                 if code == lang and info.cluster in held}
        if rates:
            heldout_mixtures[lang] = f"{PREFIX}_{label}_heldout_{lang}"
            _register_mixture(heldout_mixtures[lang], rates)
    return Registration(label, {key: info.name for key, info in infos.items()}, name, train_rates,
                        heldout_mixtures, provider.name, unit)


def eval_examples(task: str, lang: str, split: str = "test", *, template_mode: str = "native",
                  template_lang: str | None = None, fallback_lang: str | None = None,
                  config: meta.MetaConfig | None = None, all_templates: bool = True) -> list[dict[str, Any]]:
    """Raw example dicts (inputs, targets, options, answer, references, template_id, ...) for evaluation."""
    Setting(template_mode, template_lang, fallback_lang)
    return meta.examples(task, lang, split, mode=template_mode, template_lang=template_lang,
                         fallback_lang=fallback_lang, config=config, all_templates=all_templates)


def registered_examples(name: str, split: str = "test") -> list[dict[str, Any]]:
    """The raw example dicts behind a registered Task, in the order its data source yields them."""
    return list(_examples(task_info(name), split))
