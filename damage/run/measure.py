"""Measure one window of a fitted scene: the change over every footprint in it.

:func:`read_window` is the I/O edge (it warps the window of both epochs with the
scene's registration); :func:`measure` is array code: the scene's normalisation,
change maps, per-footprint statistics and the evidence of each building, all with the
scene's fit, so a building's numbers only depend on the pixels around it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import shapely

from damage.config import Config
from damage.geo.polygons import changed_polygons
from damage.geo.raster import Grid, Raster, Window, present
from damage.geo.zonal import zonal_stats, zones
from damage.io.model import LearnedModel
from damage.io.sources import Epoch
from damage.io.warp import warp_epoch
from damage.optical.evidence import FEATURES, building_evidence, not_analysed_reasons
from damage.optical.learned import damage_map, to_unit
from damage.optical.masks import erode
from damage.optical.metrics import METRIC_RADIUS, combined
from damage.optical.normalize import apply as apply_normalization
from damage.optical.scene import SceneFit, ScenePixels
from damage.run.plan import grid_units

__all__ = ["WindowPixels", "ModelRun", "Measured", "read_window", "cut_window", "measure", "REASONS",
           "MEASURE_COLUMNS", "MODEL_COLUMNS"]

#: Why a footprint is not analysed (``not_analysed_reason``).
REASONS = ("outside imagery", "partial coverage", "cloud or shadow", "no building before", "unusable footprint",
           "chunk failed")
#: A learned model's columns (``Config.model``), after the ``<metric>_mean`` ones.
MODEL_COLUMNS = ("model_mean", "model_p90", "model_logit")
#: Per-footprint measurements, in order (the grade, score and probability come from grading).
MEASURE_COLUMNS = ("not_analysed_reason", "valid_fraction", "change_delta", "change_mean", "change_median",
                   "change_p90", "changed_fraction", *FEATURES)


@dataclasses.dataclass(frozen=True)
class WindowPixels:
    """Both epochs on a window of the grid, registered, with what covers them."""

    before: Raster
    after: Raster
    covered: np.ndarray  # valid in both epochs
    cloudy: np.ndarray  # under cloud or shadow (the scene's mask)
    window: Window  # where these pixels lie on the scene's grid


@dataclasses.dataclass(frozen=True)
class ModelRun:
    """A learned model on one window (``Config.model``).

    Attributes
    ----------
    model : LearnedModel
    core : Window
        The part of the scene's grid whose values are wanted (the footprints and their context);
        the window read is :func:`damage.optical.learned.tile_extent` of it.
    shape : tuple of int
        The scene grid's shape.
    tile : tuple of int
        ``(H, W)`` of the model's tiles; ``overlap`` pixels shared between neighbours.
    """

    model: LearnedModel
    core: Window
    shape: tuple[int, int]
    tile: tuple[int, int]
    overlap: int


@dataclasses.dataclass(frozen=True)
class Measured:
    """The measurements of a window's footprints.

    Attributes
    ----------
    columns : dict
        :data:`MEASURE_COLUMNS` and ``<metric>_mean`` arrays, one value per footprint.
    analysed : numpy.ndarray
        bool per footprint.
    polygons : numpy.ndarray
        Changed areas (grid CRS) when asked for, with ``owner`` (footprint) and ``area_m2``.
    """

    columns: dict[str, np.ndarray]
    analysed: np.ndarray
    polygons: np.ndarray
    owner: np.ndarray
    area_m2: np.ndarray
    #: The window's changed pixels and normalised after epoch (for chips of its buildings).
    changed: np.ndarray | None = None
    after: np.ndarray | None = None


def read_window(be: Epoch, ae: Epoch, grid: Grid, fit: SceneFit, window: Window, cfg: Config) -> WindowPixels:
    """Warp ``window`` (``row, col, height, width`` of ``grid``) of both epochs with the fit's registration."""
    rb = warp_epoch(be, grid, black_fill=cfg.black_fill, check_valid=False, window=window)
    ra = warp_epoch(ae, grid, black_fill=cfg.black_fill, check_valid=False, window=window, move=fit.move)
    cloudy = fit.clouds.window(window) if fit.clouds is not None else np.zeros(rb.valid.shape, bool)
    return WindowPixels(rb, ra, rb.valid & ra.valid, cloudy, Window(*window))


def cut_window(pixels: ScenePixels, fit: SceneFit, window: Window) -> WindowPixels:
    """The window of pixels the fit already warped for the whole scene (no second read)."""
    window = Window(*window)
    h, w = window.height, window.width
    cut = window.slices
    sub = window.of(pixels.before.grid)
    rb = Raster(pixels.before.array[(slice(None), *cut)], pixels.before.valid[cut], sub)
    ra = Raster(pixels.after.array[(slice(None), *cut)], pixels.after.valid[cut], sub)
    cloudy = fit.clouds.window(window) if fit.clouds is not None else np.zeros((h, w), bool)
    return WindowPixels(rb, ra, pixels.covered[cut], cloudy, window)


def measure(px: WindowPixels, geoms: np.ndarray, fit: SceneFit, cfg: Config, want_polygons: bool = False,
            learned: ModelRun | None = None) -> Measured:
    """Measure the change over ``geoms`` (grid CRS) on one window, with the scene's fit.

    Parameters
    ----------
    px : WindowPixels
    geoms : numpy.ndarray
        The window's footprints (None or empty where not usable).
    fit : SceneFit
    cfg : Config
    want_polygons : bool
        Also vectorise the changed pixels inside the footprints.
    learned : ModelRun, optional
        A learned model: its damage map's mean, 90th percentile and logit of the mean over each
        footprint's valid pixels (``model_mean``, ``model_p90``, ``model_logit``).

    Returns
    -------
    Measured
    """
    grid = px.before.grid
    before = px.before.array
    valid = px.covered & ~px.cloudy
    after = apply_normalization(px.after.array, fit.normalization)
    stats = fit.stats
    change, maps = combined(before, after, valid, cfg.metrics, sigma=cfg.ssim_sigma, tolerance=cfg.shift_tolerance, stats=stats)
    radius = max(METRIC_RADIUS[name] for name, _ in cfg.metrics) + cfg.shift_tolerance
    mvalid = erode(valid, radius)
    zs = zones(geoms, grid)
    valid_count = zs.count(mvalid)
    valid_fraction = np.clip(valid_count / np.maximum(zs.area_pixels, 1e-9), 0.0, 1.0)
    valid_fraction[zs.area_pixels == 0] = 0.0
    zstats = zonal_stats(zs, change, mvalid, ("mean", "median", "p90"))
    metric_means = {name: zonal_stats(zs, m, mvalid)["mean"] for name, m in maps.items()}
    # evidence: each building aligned on its own, with a ring around it, against the scene's typical change
    ok = present(geoms)
    rings = np.full(len(geoms), None, dtype=object)
    width = grid_units(grid, cfg.ring_width)
    rings[ok] = shapely.difference(shapely.buffer(geoms[ok], width), geoms[ok])
    evalid = erode(valid, METRIC_RADIUS["ssim"] + cfg.building_shift)
    calib = fit.calibration
    # was the building there: edges on a band across the outline, as wide as the building's own alignment
    outlines = np.full(len(geoms), None, dtype=object)
    outlines[ok] = shapely.buffer(shapely.boundary(geoms[ok]), (cfg.building_shift + 1) * grid.res)
    ev = building_evidence(before, after, evalid, zs, zones(rings, grid), zones(outlines, grid), stats, calib,
                           max_shift=cfg.building_shift, sigma=cfg.ssim_sigma, outline_valid=px.covered,
                           search=cfg.building_search)
    reason = not_analysed_reasons(zs, px.covered, px.cloudy, valid_fraction, ev, cfg.min_valid_fraction,
                                  cfg.building_check)
    analysed = reason == ""
    # A pixel changed when its loss of similarity beyond the scene's typical change reaches change_threshold.
    changed = (calib.delta(change) >= cfg.change_threshold) & mvalid
    changed_fraction = zs.count(changed) / np.maximum(valid_count, 1)
    nan_unless = lambda a: np.where(analysed, a, np.nan)  # noqa: E731
    columns: dict[str, np.ndarray] = {
        "not_analysed_reason": np.where(analysed, np.array(None, dtype=object), reason).astype(object),
        "valid_fraction": np.round(valid_fraction, 4),
        "change_delta": nan_unless(calib.delta(zstats["mean"])),
        "change_mean": nan_unless(zstats["mean"]),
        "change_median": nan_unless(zstats["median"]),
        "change_p90": nan_unless(zstats["p90"]),
        "changed_fraction": nan_unless(changed_fraction),
    }
    columns.update({name: nan_unless(ev[name]) for name in FEATURES})
    columns.update({f"{name}_mean": nan_unless(v) for name, v in metric_means.items()})
    if learned is not None:
        lows = stats.lows if stats.lows is not None else np.zeros(len(stats.ranges))
        dmap = damage_map(learned.model.damage, to_unit(before, lows, stats.ranges), to_unit(after, lows, stats.ranges),
                          valid, px.window, learned.core, learned.shape, learned.tile, learned.overlap, learned.model.batch)
        mstats = zonal_stats(zs, np.nan_to_num(dmap), valid & np.isfinite(dmap), ("mean", "p90"))
        mean = np.clip(mstats["mean"], 1e-4, 1 - 1e-4)
        columns.update({"model_mean": nan_unless(mstats["mean"]), "model_p90": nan_unless(mstats["p90"]),
                        "model_logit": nan_unless(np.log(mean / (1 - mean)))})
    if want_polygons:
        pgeoms, owner = changed_polygons(changed, zs, grid, cfg.min_polygon_pixels)
        area = np.round(shapely.area(pgeoms) * grid.unit_area, 2)
    else:
        pgeoms, owner, area = np.empty(0, object), np.empty(0, np.int64), np.empty(0)
    return Measured(columns, analysed, np.asarray(pgeoms, dtype=object), np.asarray(owner, np.int64), np.asarray(area, float),
                    changed, after)
