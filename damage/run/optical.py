"""The optical method: one image per epoch, its steps for :mod:`damage.run.methods`.

plan (:func:`damage.run.plan.make_plan`) -> fit the scene once (:func:`damage.run.scenefit.fit_scene`:
registration, radiometry, clouds, calibration; stored by :mod:`damage.run.fitstore`) -> per window:
read and warp both epochs with the fit (:func:`damage.run.measure.read_window`), measure
(:func:`damage.run.measure.measure`), grade with the scene's model
(:func:`damage.run.assemble.graded_table`) -> assemble (:func:`damage.run.assemble.assemble`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from damage.config import Config
from damage.geo.raster import Grid
from damage.io.model import load_model
from damage.io.sources import Epoch, open_epoch
from damage.optical.learned import tile_extent
from damage.optical.scene import SceneFit, ScenePixels
from damage.run.assemble import assemble, graded_table, grading_model, summarise
from damage.run.fitstore import read_fit, write_fit
from damage.run.measure import ModelRun, cut_window, measure, read_window
from damage.run.methods import WindowResult
from damage.run.plan import Plan, make_plan, window_extent
from damage.run.provenance import Clock, provenance
from damage.run.scenefit import fit_scene

__all__ = ["Optical", "assess_window", "fit_with_progress", "run_inputs", "window_size"]


def window_size(cfg: Config) -> int:
    """Side, in grid pixels, of the windows a scene is measured in (memory; never the result)."""
    return max(256, int(cfg.max_pixels**0.5)) if cfg.max_pixels is not None else 1 << 30


def fit_with_progress(before: Epoch, after: Epoch, grid: Grid, geoms: np.ndarray | tuple[np.ndarray, np.ndarray], cfg: Config,
                      progress: bool) -> tuple[SceneFit, ScenePixels | None]:
    """:func:`damage.run.scenefit.fit_scene`, saying what it does on a progress line (the fit takes seconds to minutes)."""
    with tqdm(total=None, disable=not progress, desc="fitting the scene", bar_format="{desc} [{elapsed}]", leave=False) as bar:
        return fit_scene(before, after, grid, geoms, cfg, step=lambda what: bar.set_description_str(f"fitting the scene: {what}"))


def run_inputs(plan: Plan) -> dict[str, Any]:
    """The run record's inputs and grid."""
    g = plan.grid
    return {
        "inputs": {"before": plan.before.describe(), "after": plan.after.describe(), "footprints": plan.source},
        "grid": {"crs": g.crs.to_string(), "resolution": g.res, "resolution_m": round(g.res * g.metres, 6),
                 "shape": list(g.shape), "bounds": list(g.bounds),
                 "transform": list(g.transform)[:6], "windows": len(plan.windows), "window_size": plan.window_size},
    }


def assess_window(before: Epoch, after: Epoch, grid: Grid, fit: SceneFit, geoms: np.ndarray, positions: np.ndarray,
                  cfg: Config, want_polygons: bool = False, pixels: ScenePixels | None = None,
                  keep: bool = False) -> WindowResult:
    """Measure and grade the footprints of one window of a fitted scene.

    The window read is the footprints' extent with the context their evidence needs
    (:func:`damage.run.plan.window_extent`); with ``pixels`` (the scene as the fit warped
    it) it is cut from them instead of read again. ``geoms`` are in the grid's CRS,
    ``positions`` their places in the input.

    Returns
    -------
    WindowResult
        The evidence columns indexed by input position; the changed areas (grid CRS, with the
        input position of their footprint) when ``want_polygons``; the window's pixels and
        measurements (for chips) when ``keep``.
    """
    idx = np.asarray(positions, np.int64)
    extent = window_extent(geoms, grid, cfg)
    learned = None
    if cfg.model is not None:  # whole tiles of the grid's lattice around the footprints (damage.optical.learned)
        model = load_model(cfg.model, bands=before.count)
        tile, overlap = model.layout(cfg.model_tile, cfg.model_overlap)
        learned = ModelRun(model, extent, grid.shape, tile, overlap)
        extent = tile_extent(extent, tile, overlap, grid.shape)
    px = cut_window(pixels, fit, extent) if pixels is not None else read_window(before, after, grid, fit, extent, cfg)
    m = measure(px, geoms, fit, cfg, want_polygons, learned)
    table = graded_table(m, idx, cfg, grading_model(fit, grid.res * grid.metres, cfg)[0])
    poly = None
    if want_polygons:
        grades = table["damage_grade"].to_numpy()
        poly = gpd.GeoDataFrame({"footprint": idx[m.owner], "damage_grade": grades[m.owner] if m.owner.size else
                                 np.empty(0, dtype=object), "area_m2": m.area_m2},
                                geometry=gpd.GeoSeries(m.polygons, crs=grid.crs))
    return WindowResult(table, poly, px, m) if keep else WindowResult(table, poly)


class Optical:
    """The optical method's steps (:class:`damage.run.methods.Method`)."""

    name = "optical"
    supports = frozenset({"polygons", "chips", "labels"})

    def window_size(self, cfg: Config) -> int:
        return window_size(cfg)

    def open(self, before: Any, after: Any, cfg: Config) -> tuple[Epoch, Epoch]:
        return open_epoch(before, "before", cfg.asset, cfg.sign), open_epoch(after, "after", cfg.asset, cfg.sign)

    def plan(self, before: Any, after: Any, footprints: gpd.GeoDataFrame, cfg: Config, window_size: int,
             source: str) -> Plan:
        plan = make_plan(before, after, footprints, cfg, window_size, source)
        if cfg.model is not None:  # a model that breaks the contract is refused before any pixel is read
            load_model(cfg.model, bands=plan.before.count)
        return plan

    def fit(self, plan: Plan, progress: bool = False) -> tuple[SceneFit, ScenePixels | None]:
        return fit_with_progress(plan.before, plan.after, plan.grid, plan.placement.blocks, plan.config, progress)

    def write_fit(self, fit: SceneFit, path: Path) -> None:
        write_fit(fit, path)

    def read_fit(self, path: Path) -> SceneFit:
        return read_fit(path)

    def measure(self, before: Epoch, after: Epoch, grid: Grid, fit: SceneFit, geoms: np.ndarray, positions: np.ndarray,
                cfg: Config, *, polygons: bool = False, pixels: ScenePixels | None = None, keep: bool = False,
                progress: bool = False) -> WindowResult:
        return assess_window(before, after, grid, fit, geoms, positions, cfg, polygons, pixels, keep)

    def check(self, tables: list[pd.DataFrame], plan: Plan) -> None:
        """Nothing to add: the fit already refused epochs with no valid pixel in common."""

    def assemble(self, footprints: gpd.GeoDataFrame, parts: list[pd.DataFrame], failed: np.ndarray, cfg: Config,
                 fit: SceneFit, record: dict[str, Any], **part: Any) -> gpd.GeoDataFrame:
        return assemble(footprints, parts, failed, cfg, fit, record, **part)

    def summarise(self, table: pd.DataFrame, cfg: Config, fit: SceneFit, record: dict[str, Any]) -> dict[str, Any]:
        return summarise(table, cfg, fit, record)

    def record(self, plan: Plan, fit: SceneFit) -> dict[str, Any]:
        return run_inputs(plan)

    def provenance(self, before: Epoch, after: Epoch, others: dict[str, Any], clock: Clock) -> dict[str, Any]:
        return provenance(before, after, others, clock)
