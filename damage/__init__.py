"""damage: find damaged buildings in before/after satellite imagery.

>>> import damage
>>> result = damage.assess("before/", "after/", "footprints.geojson")  # doctest: +SKIP
>>> damage.write(result, "damage.geojson")  # doctest: +SKIP

The names below are loaded when first used (PEP 562), so ``import damage`` costs
little and ``damage.evaluate`` does not bring in the pipeline, nor ``damage.assess``
the evaluation's statistics.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from damage import errors
from damage._version import __version__

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from damage.analysis.evaluate import Evaluation, evaluate
    from damage.config import Config
    from damage.io.labels import read_labels
    from damage.io.writers import write
    from damage.run.batch import BatchResult, batch
    from damage.run.pipeline import EVIDENCE_COLUMNS, assess

#: public name -> the module that defines it
_LAZY = {
    "assess": "damage.run.pipeline",
    "EVIDENCE_COLUMNS": "damage.run.pipeline",
    "batch": "damage.run.batch",
    "BatchResult": "damage.run.batch",
    "write": "damage.io.writers",
    "evaluate": "damage.analysis.evaluate",
    "Evaluation": "damage.analysis.evaluate",
    "read_labels": "damage.io.labels",
    "Config": "damage.config",
}

__all__ = ["__version__", "assess", "batch", "BatchResult", "write", "evaluate", "Evaluation", "read_labels", "Config",
           "errors", "EVIDENCE_COLUMNS"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'damage' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
