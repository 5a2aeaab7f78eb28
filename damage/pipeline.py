"""The assessment of a before/after pair: every step, in order.

sources -> grid -> masks -> register -> normalize -> metrics -> zonal -> grading.
This module only wires the steps; each step lives in its own module.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from os import PathLike
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from affine import Affine
from tqdm.auto import tqdm

from . import __version__
from .config import Config
from .errors import BandMismatchError, ConfigError, FootprintsOutsideImageryError, NoOverlapError
from .evidence import FEATURES, Derived, building_evidence, derived, scene_typical
from .grading import MODEL, NOT_ANALYSED, SCALES, Calibration, grade
from .grid import footprint_grid, warp_epoch
from .masks import clouds, erode
from .metrics import METRIC_RADIUS, METRICS, SceneStats, combined, scene_stats
from .normalize import apply as apply_normalization
from .normalize import normalize
from .normalize import record as norm_record
from .polygons import changed_polygons
from .raster import Grid, Raster, present
from .register import Shift, estimate_shift, luminance
from .sources import PathSpec, open_epoch, read_footprints
from .timeseries import assess_stack
from .zonal import zonal_stats, zones

log = logging.getLogger(__name__)

__all__ = ["assess", "EVIDENCE_COLUMNS", "SceneFit"]

#: Columns added to the footprints, in order.
EVIDENCE_COLUMNS = (
    "damage_grade",
    "damage_score",
    "p_damaged",
    "not_analysed_reason",
    "valid_fraction",
    "change_delta",
    "change_mean",
    "change_median",
    "change_p90",
    "changed_fraction",
    *FEATURES,
)
#: Pixels of imagery a fitted window needs around its footprints' rings (SSIM window, alignment, erosion).
_CONTEXT_PIXELS = 24
#: Why a footprint is not analysed (``not_analysed_reason``).
REASONS = ("outside imagery", "partial coverage", "cloud or shadow", "chunk failed")
#: Side, in pixels, of the blocks that calibrate a scene with few footprints.
BLOCK = 16


class _Steps:
    """A progress bar over the pipeline's steps (silent unless asked for)."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.bar = tqdm(total=total, disable=not enabled, unit="step", leave=False)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.bar.set_description(name)
        log.debug("step: %s", name)
        yield
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def assess(
    before: PathSpec,
    after: PathSpec,
    footprints: str | PathLike | gpd.GeoDataFrame,
    config: Config | None = None,
    *,
    polygons: bool = False,
    progress: bool = False,
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
    **options
        Overrides of single :class:`Config` fields, e.g. ``min_valid_fraction=0.3``
        or ``method="pwtt"`` (stacks and the pixel-wise t-test, see
        :mod:`damage.timeseries`; its evidence columns are
        :data:`damage.timeseries.PWTT_COLUMNS`).

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
    cfg = (config or Config()).replace(**options)
    if cfg.method == "pwtt":
        if polygons:
            raise ConfigError("damage polygons are not available with method='pwtt' (its pixels are ~10 m)")
        return assess_stack(before, after, footprints, cfg, progress=progress)
    label = _describe(footprints)
    fp = read_footprints(footprints)  # once: both paths below take the GeoDataFrame
    if cfg.max_pixels is not None:
        shape = _grid_shape(before, after, fp, cfg)
        if shape[0] * shape[1] > cfg.max_pixels:
            from .batch import assess_chunked  # batch builds on this module

            chunk = max(256, int(cfg.max_pixels**0.5) // 2)
            log.info("grid of %d x %d pixels: assessing in chunks of %d px", *shape, chunk)
            result = assess_chunked(before, after, fp, cfg, chunk, polygons, progress)
            result.attrs["damage"]["inputs"]["footprints"] = label
            result.attrs["damage_input_files"] = _input_files(open_epoch(before, "before"), open_epoch(after, "after"), footprints)
            return result
    steps = _Steps(progress, 8)
    try:
        result = _assess(before, after, fp, cfg, polygons, steps)
        result.attrs["damage"]["inputs"]["footprints"] = label
        if not isinstance(footprints, gpd.GeoDataFrame):
            result.attrs["damage_input_files"].append(str(footprints))
        return result
    finally:
        steps.close()


@dataclasses.dataclass(frozen=True)
class SceneFit:
    """What an assessment estimates from the whole scene before it measures change.

    Passing one to the pipeline (as :mod:`damage.batch` does for every chunk of a
    region) makes every part of a region use the same registration, radiometry,
    metric scaling and calibration, so results do not depend on how it is cut.
    """

    shift: Shift | None
    normalization: dict[str, Any]
    stats: SceneStats
    #: None: each scene calibrates itself (used while fitting a region).
    calibration: Calibration | None
    #: Transform of the grid the shift's pixel coordinates refer to (windows of it are recentred).
    origin: Affine | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "registration": self.shift.to_dict() if self.shift is not None else {"applied": False},
            "normalization": norm_record(self.normalization),
            "scene_stats": self.stats.to_dict(),
            "calibration": self.calibration.to_dict() if self.calibration is not None else None,
        }


def _assess(
    before, after, footprints, cfg: Config, want_polygons: bool, steps: _Steps, fit: SceneFit | None = None
) -> gpd.GeoDataFrame:
    # -- validate and read headers ---------------------------------------------------
    with steps.step("reading inputs"):
        fp = read_footprints(footprints)
        be = open_epoch(before, "before")
        ae = open_epoch(after, "after")
        if be.count != ae.count:
            raise BandMismatchError(
                f"{be.describe()} has {be.count} band(s) but {ae.describe()} has {ae.count}; epochs must have the same bands"
            )
        usable = present(fp.geometry.values)
        # the scene's context to fit on; a window of a fitted region only needs the evidence's own
        margin = cfg.context if fit is None else cfg.ring_width + _CONTEXT_PIXELS * (cfg.resolution or 1.0)
        grid = footprint_grid(be, ae, fp.geometry, crs=cfg.crs, resolution=cfg.resolution, margin=margin)
        geoms = np.asarray(fp.geometry.to_crs(grid.crs).values, dtype=object)
        geoms[~usable] = None
        if not shapely.intersects(geoms[usable], shapely.box(*grid.bounds)).any():
            raise FootprintsOutsideImageryError("no footprint lies where the before and after imagery overlap")
    # -- onto one grid, co-registered ----------------------------------------------------------
    with steps.step("warping epochs"):
        shift = fit.shift if fit is not None else None
        if shift is not None and fit.origin is not None:  # a window of the fitted grid
            col, row = ~fit.origin * (grid.transform.c, grid.transform.f)
            shift = shift.recentred(round(row, 6), round(col, 6))
        rb = warp_epoch(be, grid, black_fill=cfg.black_fill)
        # with a fitted shift the after epoch is warped once, straight onto the moved grid
        ra = _warp_after(ae, grid, shift, cfg) if shift is not None else warp_epoch(ae, grid, black_fill=cfg.black_fill)
        valid = rb.valid & ra.valid
        covered = valid
        if not valid.any():
            raise NoOverlapError(f"{be.describe()} and {ae.describe()} hold no valid pixel in common")
    with steps.step("co-registering"):
        if cfg.register and fit is None:
            shift = estimate_shift(luminance(rb.array), luminance(ra.array), valid, max_shift=cfg.max_shift)
            ra = _warp_after(ae, grid, shift, cfg, unmoved=ra)
            valid = covered = rb.valid & ra.valid
    # -- radiometry and change ---------------------------------------------------------------
    with steps.step("normalising"):
        cloud_info: dict[str, Any] = {"applied": False}
        cloudy = np.zeros(grid.shape, bool)
        if cfg.cloud_mask:  # before the radiometric fit, which clouds would bias
            cloudy, cloud_info = clouds(rb.array, ra.array, valid, min_pixels=cloud_min_pixels(cfg, grid))
            cloud_info = {"applied": True, **cloud_info}
            valid = valid & ~cloudy
        if fit is not None:
            after_norm, norm_params = apply_normalization(ra.array, fit.normalization), fit.normalization
        else:
            after_norm, norm_params = normalize(rb.array, ra.array, valid, cfg.normalize)
    with steps.step("measuring change"):
        sstats = fit.stats if fit is not None else scene_stats(rb.array, after_norm, valid)
        change, maps = combined(
            rb.array, after_norm, valid, cfg.metrics, sigma=cfg.ssim_sigma, tolerance=cfg.shift_tolerance, stats=sstats
        )
        radius = max(METRIC_RADIUS[name] for name, _ in cfg.metrics) + cfg.shift_tolerance
        mvalid = erode(valid, radius)
    # -- per footprint ----------------------------------------------------------------------
    with steps.step("aggregating per footprint"):
        zs = zones(geoms, grid)
        valid_count = zs.count(mvalid)
        valid_fraction = np.clip(valid_count / np.maximum(zs.area_pixels, 1e-9), 0.0, 1.0)
        valid_fraction[zs.area_pixels == 0] = 0.0
        stats = zonal_stats(zs, change, mvalid, ("mean", "median", "p90"))
        metric_means = {name: zonal_stats(zs, m, mvalid)["mean"] for name, m in maps.items()}
        # evidence: each building aligned on its own, with a ring around it, against the scene's typical change
        dmaps = derived(rb.array, after_norm, sstats)  # gradients and CIELAB, once for both steps
        if fit is not None and fit.calibration is not None:
            calib = fit.calibration
        else:
            calib = scene_calibration(maps, rb.array, after_norm, valid, mvalid, cfg, sstats, dmaps)
        evalid = erode(valid, METRIC_RADIUS["ssim"] + cfg.building_shift)
        rings = np.full(len(geoms), None, dtype=object)
        ring_width = _grid_units(grid, cfg.ring_width)
        rings[usable] = shapely.difference(shapely.buffer(geoms[usable], ring_width), geoms[usable])
        ev = building_evidence(rb.array, after_norm, evalid, zs, zones(rings, grid), sstats, calib,
                               max_shift=cfg.building_shift, sigma=cfg.ssim_sigma, maps=dmaps)
        reason = _reasons(zs, covered, cloudy, valid_fraction, ev, cfg)
        analysed = reason == ""
    # -- grading -------------------------------------------------------------------------------
    with steps.step("grading"):
        p_damaged = np.where(analysed, MODEL.probability(ev), np.nan)
        scores = p_damaged  # the damage score of the optical method is the probability itself
        grades = grade(scores, analysed, cfg.scale, thresholds=MODEL.cuts)
        # A pixel changed when its loss of similarity beyond the scene's typical change
        # reaches change_threshold.
        changed = (calib.delta(change) >= cfg.change_threshold) & mvalid
        changed_fraction = zs.count(changed) / np.maximum(valid_count, 1)
    # -- assemble ------------------------------------------------------------------------------
    with steps.step("assembling"):
        nan_unless = lambda a: np.where(analysed, a, np.nan)  # noqa: E731
        evidence = {
            "damage_grade": grades,
            "damage_score": np.round(scores, 4),
            "p_damaged": np.round(p_damaged, 4),
            "not_analysed_reason": np.where(analysed, None, reason).astype(object),
            "valid_fraction": np.round(valid_fraction, 4),
            "change_delta": nan_unless(calib.delta(stats["mean"])),
            "change_mean": nan_unless(stats["mean"]),
            "change_median": nan_unless(stats["median"]),
            "change_p90": nan_unless(stats["p90"]),
            "changed_fraction": nan_unless(changed_fraction),
        }
        evidence.update({name: nan_unless(ev[name]) for name in FEATURES})
        evidence.update({f"{name}_mean": nan_unless(v) for name, v in metric_means.items()})
        clash = [c for c in evidence if c in fp.columns]
        base = fp.drop(columns=clash) if clash else fp
        if clash:
            log.warning("footprint columns %s are replaced by the assessment's", clash)
        extra = pd.DataFrame(evidence, index=base.index)
        geom_name = base.geometry.name
        result = gpd.GeoDataFrame(pd.concat([base, extra], axis=1), geometry=geom_name, crs=fp.crs)
        record: dict[str, Any] = {
            "version": __version__,
            "config": cfg.to_dict(),
            "inputs": {"before": be.describe(), "after": ae.describe(), "footprints": _describe(footprints)},
            "grid": {"crs": grid.crs.to_string(), "resolution": grid.res, "shape": list(grid.shape), "bounds": list(grid.bounds)},
            "registration": shift.to_dict() if shift is not None else {"applied": False},
            "normalization": norm_record(norm_params),
            "scene_stats": sstats.to_dict(),
            "fitted_on": "region sample" if fit is not None else "this scene",
            "clouds": cloud_info,
            "calibration": calib.to_dict(),
            "model": MODEL.to_dict(),
            "not_analysed": {r: int((reason == r).sum()) for r in REASONS},
            "counts": {level: int((grades == level).sum()) for level in SCALES[cfg.scale].levels + (NOT_ANALYSED,)},
        }
        result.attrs["damage"] = record
        result.attrs["damage_input_files"] = _input_files(be, ae, footprints)  # never written over (writers.write)
        if want_polygons:
            pgeoms, owner = changed_polygons(changed, zs, grid, cfg.min_polygon_pixels)
            result.attrs["damage_polygons"] = gpd.GeoDataFrame(
                {
                    "footprint": owner,
                    "damage_grade": grades[owner] if owner.size else np.empty(0, dtype=object),
                    "area_m2": np.round(shapely.area(pgeoms) * _unit_m2(grid.crs), 2),
                },
                geometry=gpd.GeoSeries(pgeoms, crs=grid.crs),
            ).to_crs(fp.crs)
    return result


def _warp_after(ae, grid: Grid, shift: Shift, cfg: Config, unmoved: Raster | None = None) -> Raster:
    """The after epoch on ``grid`` with ``shift`` removed (``unmoved`` when there is none to remove)."""
    if not (shift.applied and (shift.magnitude >= 0.05 or shift.is_affine)):
        return unmoved if unmoved is not None else warp_epoch(ae, grid, black_fill=cfg.black_fill)
    moved = warp_epoch(ae, grid.moved(shift.pixel_affine()), black_fill=cfg.black_fill, check_valid=False)
    return Raster(moved.array, moved.valid, grid)


def scene_calibration(maps: dict[str, np.ndarray], before: np.ndarray, after: np.ndarray, valid: np.ndarray,
                      mvalid: np.ndarray, cfg: Config, stats: SceneStats, derived_maps: Derived | None = None) -> Calibration:
    """The scene's typical change without damage, over its steadiest building-sized blocks.

    See :func:`damage.evidence.scene_typical`: the reference of ``change_delta`` and
    ``ssim_excess`` and the typical colour, edge and lightness changes; buildings and
    ground alike, whichever footprints are assessed; fitted once per scene. ``maps``
    are metric maps already computed, ``derived_maps`` the gradients and CIELAB if already computed.
    """
    loss = maps.get("ssim")
    if loss is None:
        loss = METRICS["ssim"](before, after, valid, sigma=cfg.ssim_sigma, tolerance=cfg.shift_tolerance, stats=stats)
    typical = scene_typical(before, after, valid, mvalid, stats, loss, BLOCK, tolerance=cfg.shift_tolerance,
                            maps=derived_maps)
    blocks = int(typical.pop("blocks"))
    return Calibration(typical.pop("structure"), "steadiest blocks" if blocks else "none", blocks, typical)


def _reasons(zs, covered: np.ndarray, cloudy: np.ndarray, valid_fraction: np.ndarray, ev: dict[str, np.ndarray],
             cfg: Config) -> np.ndarray:
    """Why each footprint is not analysed (one of :data:`REASONS`), or "" when it is.

    Too little valid imagery is "outside imagery" where the footprint has no pixel
    with data in both epochs, "cloud or shadow" where clouds or their shadows cover
    more of it than ``min_valid_fraction`` allows, and "partial coverage" otherwise
    (the edge of the imagery or of its nodata).
    """
    area = np.maximum(zs.area_pixels, 1e-9)
    on_image = zs.count(covered) / area
    clouded = zs.count(cloudy & covered) / area
    reason = np.full(zs.n, "", dtype=object)
    short = (valid_fraction < cfg.min_valid_fraction) | ~np.isfinite(ev["ssim_loss"]) | ~np.isfinite(ev["colour_change"])
    reason[short] = "partial coverage"
    reason[short & (clouded > 1.0 - cfg.min_valid_fraction)] = "cloud or shadow"
    reason[short & (on_image == 0)] = "outside imagery"
    return reason


def _grid_units(grid: Grid, metres: float) -> float:
    """``metres`` in the grid CRS's units (degrees approximately, at the grid's centre)."""
    if grid.crs.is_projected:
        return metres / float(grid.crs.linear_units_factor[1])
    lat = (grid.bounds[1] + grid.bounds[3]) / 2
    return metres / (111_320.0 * max(np.cos(np.radians(lat)), 0.01))


def _grid_shape(before, after, fp: gpd.GeoDataFrame, cfg: Config) -> tuple[int, int]:
    """Shape of the common grid an assessment would use (headers only)."""
    be, ae = open_epoch(before, "before"), open_epoch(after, "after")
    return footprint_grid(be, ae, fp.geometry, crs=cfg.crs, resolution=cfg.resolution, margin=cfg.context).shape


def cloud_min_pixels(cfg: Config, grid: Grid) -> int:
    """Config.min_cloud_area (m2) in pixels of ``grid`` (at least 16)."""
    return max(int(cfg.min_cloud_area / (grid.res**2 * _unit_m2(grid.crs))), 16)


def _unit_m2(crs) -> float:
    factor = crs.linear_units_factor[1] if crs.is_projected else 1.0
    return float(factor) ** 2


def _input_files(be, ae, footprints: Any) -> list[str]:
    """Every file an assessment read: tiles of both epochs and the footprints file."""
    files = [str(t.path) for t in (*be.tiles, *ae.tiles)]
    if not isinstance(footprints, gpd.GeoDataFrame):
        files.append(str(footprints))
    return files


def _describe(source: Any) -> str:
    return "GeoDataFrame" if isinstance(source, gpd.GeoDataFrame) else str(source)
