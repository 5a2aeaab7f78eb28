"""The assessment of a scene: every step, in order, whatever the method.

read the footprints (and facilities) -> plan -> fit the scene once -> measure each window ->
assemble -> facilities, chips, labels, provenance. The steps are the method's
(:mod:`damage.run.methods`: :class:`~damage.run.optical.Optical` for a before/after pair,
:class:`~damage.run.pwtt.Pwtt` for radar stacks). A small scene is a scene of one window; the
region runner (:mod:`damage.batch`) runs the same steps with its windows in other processes.
This module only wires the steps; each step lives in its own module.
"""

from __future__ import annotations

import logging
import os
from os import PathLike
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from damage.analysis.facilities import assign, summarise
from damage.analysis.facilities import name_column as name_column_of
from damage.config import Config
from damage.geo.raster import Grid
from damage.grading import SCALES
from damage.io.sources import PathSpec, is_remote, read_footprints, tiles_of
from damage.io.warp import imagery_area
from damage.report.chips import Chip, Overview, cut_chip, grade_colour
from damage.run.assemble import EVIDENCE_COLUMNS
from damage.run.methods import method
from damage.run.provenance import Clock

log = logging.getLogger(__name__)

__all__ = ["assess", "EVIDENCE_COLUMNS"]


def assess(
    before: PathSpec,
    after: PathSpec,
    footprints: str | PathLike | gpd.GeoDataFrame,
    config: Config | None = None,
    *,
    polygons: bool = False,
    progress: bool = False,
    labels: Any = None,
    facilities: Any = None,
    chips: int = 0,
    chips_for: Any = None,
    name_column: str | None = None,
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
        every building regraded (:func:`damage.analysis.analyst.apply_labels`); the labelled
        ones keep the analyst's grade, with ``grade_source = "analyst"``.
    facilities : path or GeoDataFrame, optional
        Facility polygons (an OpenStreetMap hospital campus, say) with their attributes.
        Footprints inside one belong to it; one with no footprint inside is assessed as
        one polygon. ``result.attrs["damage_facilities"]`` then holds one row per
        facility (:func:`damage.analysis.facilities.summarise`: its grade, its buildings per
        grade, damaged roof area, damage in rings around it) and the result a
        ``facility`` column (the facility's row, -1 for none).
    chips : int
        Keep before/after chips (:class:`damage.report.chips.Chip`, cut from the pixels the
        grades came from) of this many most damaged buildings, and of every named
        building and facility building whatever this number, in
        ``result.attrs["damage_chips"]`` (input position -> chip), with an overview of
        both epochs in ``result.attrs["damage_overview"]``; for :func:`damage.report.html`.
    chips_for : sequence of int, optional
        Input positions of more buildings to keep chips of (buildings to label, say).
    name_column : str, optional
        The column of building names (default: the first of
        :data:`damage.analysis.facilities.NAME_COLUMNS` present).
    **options
        Overrides of single :class:`Config` fields, e.g. ``min_valid_fraction=0.3``
        or ``method="pwtt"`` (stacks and the pixel-wise t-test, see
        :mod:`damage.run.pwtt`; its evidence columns are
        :data:`damage.run.pwtt.PWTT_COLUMNS`).

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
    steps = method(cfg, polygons=polygons, chips=bool(chips) or chips_for is not None, labels=labels is not None)
    # prepare: footprints and headers read once, the grid, the windows
    area, before, after = remote_area(footprints, before, after, steps, cfg)
    fp = read_footprints(footprints, bbox=area)
    n_input = len(fp)
    fac, facility_of = None, None
    if facilities is not None:
        fac = read_footprints(facilities).to_crs(fp.crs)
        facility_of = assign(fp, fac)
        lonely = np.setdiff1d(np.arange(len(fac)), facility_of)  # facilities with no footprint: one polygon each
        if lonely.size:
            fp = pd.concat([fp, gpd.GeoDataFrame(geometry=fac.geometry.values[lonely], crs=fp.crs)], ignore_index=True)
            facility_of = np.r_[facility_of, lonely]
    plan = steps.plan(before, after, fp, cfg, steps.window_size(cfg),
                      "GeoDataFrame" if isinstance(footprints, gpd.GeoDataFrame) else str(footprints))
    plan.input_files += [str(x) for x in (footprints, facilities) if isinstance(x, (str, PathLike))]
    cfg = plan.config
    names = name_column_of(fp, name_column)
    wanted = np.zeros(len(fp), bool)  # buildings whose chips are kept whatever their grade
    if chips and names is not None:
        wanted |= fp[names].notna().to_numpy() & (fp[names].astype(str).str.strip() != "").to_numpy()
    if chips and facility_of is not None:
        wanted |= facility_of >= 0
    if chips_for is not None:
        wanted[np.asarray(list(chips_for), dtype=np.int64)] = True
    gallery = Gallery(chips, wanted, plan.grid, cfg.scale) if chips or chips_for is not None else None
    assert plan.geoms is not None and plan.footprints is not None  # planned from one frame: held
    # fit once per scene, before any window is measured
    fit, pixels = steps.fit(plan, progress)
    # measure and grade each window
    parts, polys = [], []
    jobs = [plan.members(win) for win in plan.windows]
    procs = min(cfg.workers or os.cpu_count() or 1, len(jobs))
    if pixels is None and gallery is None and procs > 1:  # windows read from files: one per process, results in order
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        with ProcessPoolExecutor(max_workers=procs, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(steps.measure, plan.before, plan.after, plan.grid, fit, plan.geoms[idx], idx, cfg,
                                   polygons=polygons) for idx in jobs]
            for future in tqdm(futures, disable=not progress, unit="window", desc="windows", leave=False):
                out = future.result()
                parts.append(out.table)
                polys.append(out.polygons)
    else:
        for idx in tqdm(jobs, disable=not progress or len(jobs) < 2, unit="window", desc="windows", leave=False):
            out = steps.measure(plan.before, plan.after, plan.grid, fit, plan.geoms[idx], idx, cfg, polygons=polygons,
                                pixels=pixels, keep=gallery is not None, progress=progress and len(jobs) == 1)
            parts.append(out.table)
            polys.append(out.polygons)
            if gallery is not None:
                gallery.add(out.pixels, out.measured, out.table, plan.geoms[idx])
    steps.check(parts, plan)
    # assemble
    result = steps.assemble(plan.footprints, parts, np.zeros(len(plan.footprints), bool), cfg, fit,
                            steps.record(plan, fit))
    result.attrs["damage_input_files"] = plan.input_files  # never written over (writers.write)
    if fac is not None and facility_of is not None:
        attrs = result.attrs
        result.attrs["damage_facilities"] = summarise(result, fac, facility_of, cfg.scale)
        result = result.iloc[:n_input].assign(facility=facility_of[:n_input])
        result.attrs = attrs
        result.attrs["damage"]["facilities"] = {"count": len(fac), "assessed_as_one_polygon": int(len(fp) - n_input),
                                                "source": "GeoDataFrame" if isinstance(facilities, gpd.GeoDataFrame)
                                                else str(facilities)}
    if gallery is not None:
        result.attrs["damage_chips"] = gallery.kept()
        result.attrs["damage_overview"] = gallery.overview
    if labels is not None:
        from damage.analysis.analyst import apply_labels

        result = apply_labels(result, labels, scale=cfg.scale)
        result.attrs["damage"]["labels"]["source"] = "GeoDataFrame" if isinstance(labels, gpd.GeoDataFrame) else str(labels)
    others = {"footprints": footprints, "labels": labels, "facilities": facilities}
    result.attrs["damage"]["provenance"] = steps.provenance(plan.before, plan.after, others, clock)
    if polygons:
        result.attrs["damage_polygons"] = changed_areas(polys, plan.footprints.crs)
    return result


class Gallery:
    """The chips an assessment keeps: of the wanted buildings, and of the ``n`` most damaged,
    cut window by window from the pixels their grades came from; and an overview."""

    def __init__(self, n: int, wanted: np.ndarray, grid: Grid, scale: str) -> None:
        self.n, self.wanted, self.grid, self.levels = n, wanted, grid, SCALES[scale].levels
        self.chips: dict[int, tuple[float, Chip]] = {}
        self.overview = Overview.empty(grid.shape)
        self.unit = grid.metres

    def add(self, px, m, table: pd.DataFrame, geoms: np.ndarray) -> None:
        valid = px.covered & ~px.cloudy
        self.overview.add(px.window, px.before.array, m.after, valid)
        p = table["p_damaged"].to_numpy(dtype=float)
        idx = table.index.to_numpy()
        top = np.argsort(-np.nan_to_num(p, nan=-1.0))[: self.n]
        take = set(top[np.isfinite(p[top])].tolist()) | set(np.flatnonzero(self.wanted[idx]).tolist())
        grades = table["damage_grade"].to_numpy(dtype=object)
        for k in sorted(take):
            if geoms[k] is None:
                continue
            chip = cut_chip(px.before.array, m.after, valid, px.before.grid.transform, geoms[k],
                            grade_colour(grades[k], self.levels), self.unit, m.changed)
            if chip is not None:
                self.chips[int(idx[k])] = (float(np.nan_to_num(p[k], nan=-1.0)), chip)

    def kept(self) -> dict[int, Chip]:
        """The wanted buildings' chips and the ``n`` most damaged overall, by input position."""
        ranked = sorted(self.chips, key=lambda i: -self.chips[i][0])
        keep = {i for i in ranked[: self.n]} | {i for i in self.chips if self.wanted[i]}
        return {i: self.chips[i][1] for i in sorted(keep)}


def remote_area(footprints: Any, before: Any, after: Any, steps: Any, cfg: Config,
                aoi: Any = None) -> tuple[tuple[float, float, float, float] | None, Any, Any]:
    """Where footprints given by URL are read (a country's file: only this lon/lat box of it): the area of
    interest's bounds when there is one, else where the imagery of both epochs overlaps; None for local
    footprints, which are read whole (every one of them gets a row). Returns it with the inputs, opened
    when their headers had to be read for it (the plan then does not read them again)."""
    if not (isinstance(footprints, str) and is_remote(footprints)):
        return None, before, after
    if aoi is not None:
        area = aoi if isinstance(aoi, gpd.GeoDataFrame) else read_footprints(aoi)
        return tuple(area.to_crs("EPSG:4326").total_bounds.tolist()), before, after  # type: ignore[return-value]
    b, a = steps.open(before, after, cfg)
    return imagery_area(tiles_of(b), tiles_of(a)), b, a


def changed_areas(parts: list[gpd.GeoDataFrame | None], crs: Any) -> gpd.GeoDataFrame:
    """The windows' changed areas as one GeoDataFrame in the footprints' CRS."""
    got = [p.to_crs(crs) for p in parts if p is not None and len(p)]
    if not got:
        return gpd.GeoDataFrame({"footprint": np.empty(0, np.int64), "damage_grade": np.empty(0, object),
                                 "area_m2": np.empty(0)}, geometry=gpd.GeoSeries([], crs=crs))
    return gpd.GeoDataFrame(pd.concat(got, ignore_index=True), crs=crs)
