"""The methods of assessment, in one registry: every method is the same steps on the same plan.

open the inputs' headers -> plan (grid, footprints on it, their windows) -> fit the scene once ->
measure each window (or a region's chunk) -> assemble every footprint once, in input order ->
provenance. :func:`damage.assess` (:mod:`damage.run.pipeline`) and :func:`damage.batch`
(:mod:`damage.run.batch`) run these steps and never ask which method they run; a method is one
entry of :data:`METHODS`, imported when a run asks for it.

- ``optical`` (:class:`damage.run.optical.Optical`): one image per epoch; co-registration,
  radiometric normalisation, change measures and the evidence model.
- ``pwtt`` (:class:`damage.run.pwtt.Pwtt`): stacks of radar images; the pixel-wise t-test.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import geopandas as gpd
import numpy as np
import pandas as pd

from damage.config import Config
from damage.errors import ConfigError
from damage.geo.raster import Grid
from damage.run.plan import Plan
from damage.run.provenance import Clock

__all__ = ["Method", "WindowResult", "METHODS", "method", "FEATURES"]

#: What a run may ask for beyond the grades, and what each needs of its method.
FEATURES = ("polygons", "chips", "labels")


class WindowResult(NamedTuple):
    """What measuring one window (or chunk) of footprints gives.

    Attributes
    ----------
    table : pandas.DataFrame
        The method's columns for these footprints, indexed by input position.
    polygons : geopandas.GeoDataFrame or None
        The changed areas, when asked for and the method has them.
    pixels, measured : Any
        The window's pixels and measurements (for chips), when asked for and the method has them.
    """

    table: pd.DataFrame
    polygons: gpd.GeoDataFrame | None = None
    pixels: Any = None
    measured: Any = None


class Method(Protocol):
    """The steps of one method of assessment (see the module's docstring).

    ``before`` and ``after`` are what :meth:`open` gave (epochs, stacks); ``geoms`` are
    footprints in the grid's CRS, all present, and ``positions`` their places in the input.
    """

    #: The name ``Config.method`` gives.
    name: str
    #: Which of :data:`FEATURES` the method gives.
    supports: frozenset[str]

    def window_size(self, cfg: Config) -> int:
        """Side, in grid pixels, of the windows (chunks of footprints) of a single run."""

    def open(self, before: Any, after: Any, cfg: Config) -> tuple[Any, Any]:
        """The inputs' headers, validated (no pixel is read)."""

    def plan(self, before: Any, after: Any, footprints: gpd.GeoDataFrame, cfg: Config, window_size: int,
             source: str) -> Plan:
        """The grid, the footprints on it and each one's window (:class:`damage.run.plan.Plan`)."""

    def fit(self, plan: Plan, progress: bool = False) -> tuple[Any, Any]:
        """What is estimated once per scene, and the scene's pixels when the fit read them whole (else None)."""

    def write_fit(self, fit: Any, path: Path) -> None:
        """Store the fit as data (JSON; never code) for a region's chunks and its resumption."""

    def read_fit(self, path: Path) -> Any:
        """A fit :meth:`write_fit` stored, validated (:class:`damage.errors.CorruptRunError` otherwise)."""

    def measure(self, before: Any, after: Any, grid: Grid, fit: Any, geoms: np.ndarray, positions: np.ndarray,
                cfg: Config, *, polygons: bool = False, pixels: Any = None, keep: bool = False,
                progress: bool = False) -> WindowResult:
        """The footprints' columns, each exactly as the whole scene's run computes it."""

    def check(self, tables: list[pd.DataFrame], plan: Plan) -> None:
        """Refuse a single run whose windows found nothing to measure (one-line DamageError)."""

    def assemble(self, footprints: gpd.GeoDataFrame, parts: list[pd.DataFrame], failed: np.ndarray, cfg: Config,
                 fit: Any, record: dict[str, Any], **part: Any) -> gpd.GeoDataFrame:
        """Every footprint once, in input order, with the run record in ``attrs["damage"]``; ``part``: ``first``,
        ``ids`` and ``columns`` for a region's part (:func:`damage.run.assemble.assemble`)."""

    def summarise(self, table: pd.DataFrame, cfg: Config, fit: Any, record: dict[str, Any]) -> dict[str, Any]:
        """The run record's counts over every footprint of a scene (``table``: their grades, probabilities and
        reasons), for a region assembled a part at a time."""

    def record(self, plan: Plan, fit: Any) -> dict[str, Any]:
        """The run record's inputs and grid (and what else the method says of its run)."""

    def provenance(self, before: Any, after: Any, others: dict[str, Any], clock: Clock) -> dict[str, Any]:
        """The files read, with their checksums, versions and time."""


#: ``Config.method`` -> ``"module:class"`` of its steps (imported when a run asks for it).
METHODS: dict[str, str] = {
    "optical": "damage.run.optical:Optical",
    "pwtt": "damage.run.pwtt:Pwtt",
}


def method(cfg: Config, **asked: bool) -> Method:
    """The steps of ``cfg.method``; ``asked`` (``polygons=True``, ...) are refused in one line when the method
    does not give them."""
    if cfg.method not in METHODS:
        raise ConfigError(f"method={cfg.method!r} is unknown; choose one of {sorted(METHODS)}")
    module, name = METHODS[cfg.method].split(":")
    steps: Method = getattr(importlib.import_module(module), name)()
    missing = [f for f in FEATURES if asked.get(f) and f not in steps.supports]
    if missing:
        raise ConfigError(f"{' and '.join(missing)} are not available with method={cfg.method!r}")
    return steps
