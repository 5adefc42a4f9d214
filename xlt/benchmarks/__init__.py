"""Benchmarks behind one protocol: public sets (XNLI, XCOPA, PAWS-X, XWinograd, XStoryCloze, Belebele,
TyDiQA GoldP, MGSM, KoBEST) and the built-in Bible/CLDR tasks.

    from xlt import benchmarks
    xnli = benchmarks.get("xnli", source="/data/xnli")   # or the hub name (default)
    xnli.languages                                        # ('ar', 'bg', 'de', ...)
    xnli.examples("de", "test", template_mode="cross", template_lang="en", max_items=100)

See ``xlt.benchmarks.registry`` for the protocol and the example dict, ``xlt.benchmarks.sources`` for
hub names and local copies, ``xlt.benchmarks.templates`` for templates and modes.
"""

from xlt.benchmarks import catalogue as _catalogue  # noqa: F401  (registers the templates)
from xlt.benchmarks import (xnli, xcopa, pawsx, xwinograd, xstorycloze, belebele, tydiqa,  # noqa: F401, I001
                            mgsm, kobest)
from xlt.benchmarks import builtin  # noqa: F401, E402  (after the public sets, so names() lists them first)
from xlt.benchmarks.registry import (CHOICE_METRICS, Benchmark, Item, for_language, get, metric_functions,
                                     names, register)

__all__ = ["Benchmark", "CHOICE_METRICS", "Item", "for_language", "get", "metric_functions", "names", "register"]
