"""Framework-free evaluation: surface metrics, alignment and HTO planning, statistics.

The statistics are importable from here for notebooks (`from evaluation import
analyse_ratings, icc_table`); they load lazily so that importing a light
submodule (e.g. `evaluation.surface`) does not pay for statsmodels.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY_MODULES = {
    "analyse_ratings": "evaluation.analysis",
    "read_ratings_csv": "evaluation.analysis",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY_MODULES.get(name)
    if module_name is None:
        stats = importlib.import_module("evaluation.stats")
        if name in stats.__all__:
            return getattr(stats, name)
        raise AttributeError(f"module 'evaluation' has no attribute {name!r}")
    return getattr(importlib.import_module(module_name), name)


def __dir__() -> list[str]:
    stats = importlib.import_module("evaluation.stats")
    return sorted([*globals(), *_LAZY_MODULES, *stats.__all__])
