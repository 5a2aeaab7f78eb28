"""The assessment of a before/after pair: every step, in order.

prepare (:mod:`damage.plan`) -> fit the scene once (:mod:`damage.scenefit`) -> measure
each window (:mod:`damage.measure`) -> grade (:mod:`damage.grading`) -> assemble
(:mod:`damage.assemble`). A small scene is a scene of one window; the region runner
(:mod:`damage.batch`) runs the same steps with its windows in other processes.
This module only wires the steps; each step lives in its own module.
"""

from __future__ import annotations

import logging
from os import PathLike
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .analyst import apply_labels
from .assemble import EVIDENCE_COLUMNS, assemble, graded_table
from .config import Config
from .errors import ConfigError
from .measure import cut_window, measure, read_window
from .plan import Plan, make_plan, window_extent
from .provenance import Clock, provenance
from .pwtt import assess_stack
from .raster import Grid
from .scenefit import SceneFit, ScenePixels, fit_scene
from .sources import Epoch, PathSpec

log = logging.getLogger(__name__)

__all__ = ["assess", "assess_window", "EVIDENCE_COLUMNS", "window_size"]


def assess(
    before: PathSpec,
    after: PathSpec,
    footprints: str | PathLike | gpd.GeoDataFrame,
    config: Config | None = None,
    *,
    polygons: bool = False,
    progress: bool = False,
    labels: Any = None,
    **options: Any,
) -> gpd.GeoDataFrame:
    """Grade the damage to every building footprint between two epochs.

    Parameters
    ----------
    before, after : path or sequence of paths
        Each a GeoTIFF (or any raster GDAL reads), a directory of tiles, or a list of
        either. The epochs may differ in CRS, pixel size and tiling. With
        ``method="pwtt"``, each is a stack: every file (or directory element) is one
        image, dated from its tags or name; files of the same date and orbit are
        tiles of one image.
    footprints : path or GeoDataFrame
        Building polygons: any vector file OGR reads, GeoParquet, or a GeoDataFrame.
    config : Config, optional
        All parameters; defaults to ``Config()``.
    polygons : bool
        Also vectorise the changed areas inside footprints; they are returned in
        ``result.attrs["damage_polygons"]`` (a GeoDataFrame with the ``footprint``
        index of each polygon) and written by :func:`damage.write` on request.
    progress : bool
        Show a progress bar over the steps.
    labels : path or GeoDataFrame, optional
        The analyst's grades of some of these buildings (xBD JSON, UNOSAT points, any
        vector file with a grade column): the evidence model is refitted on them and
        every building regraded (:func:`damage.analyst.apply_labels`); the labelled
        ones keep the analyst's grade, with ``grade_source = "analyst"``.
    **options
        Overrides of single :class:`Config` fields, e.g. ``min_valid_fraction=0.3``
        or ``method="pwtt"`` (stacks and the pixel-wise t-test, see
        :mod:`damage.pwtt`; its evidence columns are
        :data:`damage.pwtt.PWTT_COLUMNS`).

    Returns
    -------
    geopandas.GeoDataFrame
        One row per input footprint, in input order, with every input attribute and
        the unchanged geometry, plus the :data:`EVIDENCE_COLUMNS` and one
        ``<metric>_mean`` column per metric. ``result.attrs["damage"]`` holds the run
        record (configuration, version, grid, registration, normalisation,
        calibration) that :func:`damage.write` stores in every output.

    Raises
    ------
    damage.errors.DamageError
        On bad input; the message names the file and the problem.

    Examples
    --------
    >>> import damage
    >>> result = damage.assess("sample_tiles/before", "sample_tiles/after",
    ...                        "sample_tiles/footprints.geojson")  # doctest: +SKIP
    >>> result["damage_grade"].value_counts()  # doctest: +SKIP
    """
    clock = Clock()
    cfg = (config or Config()).replace(**options)
    if cfg.method == "pwtt":
        if polygons:
            raise ConfigError("damage polygons are not available with method='pwtt' (its pixels are ~10 m)")
        return assess_stack(before, after, footprints, cfg, progress=progress)
    # prepare: footprints and headers read once, the grid, the windows
    plan = make_plan(before, after, footprints, cfg, window_size(cfg))
    cfg = plan.config
    # fit once per scene, before any window is measured
    fit, pixels = fit_scene(plan.before, plan.after, plan.grid, plan.geoms[plan.usable], cfg)
    # measure and grade each window
    parts, polys = [], []
    for win in tqdm(plan.windows, disable=not progress, unit="window", desc="windows", leave=False):
        idx = plan.members(win)
        table, poly = assess_window(plan.before, plan.after, plan.grid, fit, plan.geoms[idx], idx, cfg, polygons, pixels)
        parts.append(table)
        polys.append(poly)
    # assemble
    result = assemble(plan.footprints, parts, np.zeros(len(plan.footprints), bool), cfg, fit, run_inputs(plan))
    result.attrs["damage_input_files"] = plan.input_files  # never written over (writers.write)
    if labels is not None:
        result = apply_labels(result, labels, scale=cfg.scale)
    others = [str(x) for x in (footprints, labels) if x is not None and not isinstance(x, gpd.GeoDataFrame)]
    result.attrs["damage"]["provenance"] = provenance([str(t.path) for t in plan.before.tiles],
                                                      [str(t.path) for t in plan.after.tiles], others, clock)
    if polygons:
        result.attrs["damage_polygons"] = changed_areas(polys, plan.footprints.crs)
    return result


def window_size(cfg: Config) -> int:
    """Side, in grid pixels, of the windows a scene is measured in (memory; never the result)."""
    return max(256, int(cfg.max_pixels**0.5)) if cfg.max_pixels is not None else 1 << 30


def run_inputs(plan: Plan) -> dict[str, Any]:
    """The run record's inputs and grid."""
    g = plan.grid
    return {
        "inputs": {"before": plan.before.describe(), "after": plan.after.describe(), "footprints": plan.source},
        "grid": {"crs": g.crs.to_string(), "resolution": g.res, "shape": list(g.shape), "bounds": list(g.bounds),
                 "transform": list(g.transform)[:6], "windows": len(plan.windows), "window_size": plan.window_size},
    }


def assess_window(before: Epoch, after: Epoch, grid: Grid, fit: SceneFit, geoms: np.ndarray, positions: np.ndarray,
                  cfg: Config, want_polygons: bool = False,
                  pixels: ScenePixels | None = None) -> tuple[pd.DataFrame, gpd.GeoDataFrame | None]:
    """Measure and grade the footprints of one window of a fitted scene.

    The window read is the footprints' extent with the context their evidence needs
    (:func:`damage.plan.window_extent`); with ``pixels`` (the scene as the fit warped
    it) it is cut from them instead of read again. ``geoms`` are in the grid's CRS,
    ``positions`` their places in the input.

    Returns
    -------
    table : pandas.DataFrame
        The evidence columns, indexed by the footprints' input positions.
    polygons : geopandas.GeoDataFrame or None
        The changed areas (grid CRS) with the input position of their footprint.
    """
    idx = np.asarray(positions, np.int64)
    extent = window_extent(geoms, grid, cfg)
    px = cut_window(pixels, fit, extent) if pixels is not None else read_window(before, after, grid, fit, extent, cfg)
    m = measure(px, geoms, fit, cfg, want_polygons)
    table = graded_table(m, idx, cfg)
    poly = None
    if want_polygons:
        grades = table["damage_grade"].to_numpy()
        poly = gpd.GeoDataFrame({"footprint": idx[m.owner], "damage_grade": grades[m.owner] if m.owner.size else
                                 np.empty(0, dtype=object), "area_m2": m.area_m2},
                                geometry=gpd.GeoSeries(m.polygons, crs=grid.crs))
    return table, poly


def changed_areas(parts: list[gpd.GeoDataFrame | None], crs: Any) -> gpd.GeoDataFrame:
    """The windows' changed areas as one GeoDataFrame in the footprints' CRS."""
    got = [p.to_crs(crs) for p in parts if p is not None and len(p)]
    if not got:
        return gpd.GeoDataFrame({"footprint": np.empty(0, np.int64), "damage_grade": np.empty(0, object),
                                 "area_m2": np.empty(0)}, geometry=gpd.GeoSeries([], crs=crs))
    return gpd.GeoDataFrame(pd.concat(got, ignore_index=True), crs=crs)
