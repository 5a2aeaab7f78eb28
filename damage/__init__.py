"""damage: find damaged buildings in before/after satellite imagery.

>>> import damage
>>> result = damage.assess("before/", "after/", "footprints.geojson")  # doctest: +SKIP
>>> damage.write(result, "damage.geojson")  # doctest: +SKIP
"""

from __future__ import annotations

__version__ = "0.1.0"

from . import errors  # noqa: E402
from .batch import BatchResult, batch  # noqa: E402
from .config import Config  # noqa: E402
from .evaluate import Evaluation, evaluate  # noqa: E402
from .labels import read_labels  # noqa: E402
from .pipeline import EVIDENCE_COLUMNS, assess  # noqa: E402
from .writers import write  # noqa: E402

__all__ = ["__version__", "assess", "batch", "BatchResult", "write", "evaluate", "Evaluation", "read_labels", "Config", "errors", "EVIDENCE_COLUMNS"]
