"""damage: find damaged buildings in before/after satellite imagery.

>>> import damage
>>> result = damage.assess("before/", "after/", "footprints.geojson")  # doctest: +SKIP
>>> damage.write(result, "damage.geojson")  # doctest: +SKIP
"""

from __future__ import annotations

from damage import errors  # noqa: E402
from damage._version import __version__
from damage.analysis.evaluate import Evaluation, evaluate  # noqa: E402
from damage.config import Config  # noqa: E402
from damage.io.labels import read_labels  # noqa: E402
from damage.io.writers import write  # noqa: E402
from damage.run.batch import BatchResult, batch  # noqa: E402
from damage.run.pipeline import EVIDENCE_COLUMNS, assess  # noqa: E402

__all__ = ["__version__", "assess", "batch", "BatchResult", "write", "evaluate", "Evaluation", "read_labels", "Config", "errors", "EVIDENCE_COLUMNS"]
