"""Fit a scene once: registration, radiometry, metric scaling, clouds and calibration.

Everything an assessment estimates from the scene as a whole is fitted here, once, on
the scene's grid and footprints, before any window is measured; every window of the
scene, whatever its size and wherever it is measured (this process, a worker, a Dask
cluster), then uses the same fit, so a building's grade does not depend on how the
scene is cut nor on what else is assessed with it.

- A scene of at most :data:`FIT_SIDE` pixels a side is fitted on all of it.
- A larger one is fitted on the blocks of :data:`FIT_BLOCK` pixels holding the most
  footprints (at most :data:`FIT_BLOCKS`), and its clouds are found on an overview of
  the whole scene, :data:`FIT_SIDE` pixels a side at most.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from affine import Affine

from damage.config import Config
from damage.errors import NoOverlapError
from damage.geo.raster import Grid, Raster, Window
from damage.grading import Calibration
from damage.io.sources import Epoch
from damage.io.warp import warp_epoch
from damage.optical.evidence import Derived, scene_typical
from damage.optical.masks import clouds, erode
from damage.optical.metrics import METRIC_RADIUS, METRICS, SceneStats, combined, scene_stats
from damage.optical.normalize import normalize
from damage.optical.normalize import record as norm_record
from damage.optical.register import Shift, block_shifts, consensus, estimate_shift, luminance
from damage.run.plan import cells

__all__ = ["SceneFit", "CloudMask", "ScenePixels", "fit_scene", "scene_calibration", "cloud_min_pixels",
           "FIT_SIDE", "FIT_BLOCK", "FIT_BLOCKS"]

#: A scene at most this many pixels a side is fitted whole; larger ones on sample blocks and an overview.
FIT_SIDE = 2048
#: Side, in grid pixels, of the sample blocks of a larger scene, and how many at most.
FIT_BLOCK, FIT_BLOCKS = 512, 16
#: Side, in pixels, of the blocks that calibrate a scene.
BLOCK = 16


@dataclasses.dataclass(frozen=True)
class CloudMask:
    """Clouds and their shadows over the whole scene, on the grid or an overview of it.

    Attributes
    ----------
    factor : int
        Grid pixels per mask pixel along each axis (1: the grid itself).
    mask : numpy.ndarray
        ``(ceil(rows / factor), ceil(cols / factor))`` bool.
    info : dict
        Share of the scene under cloud and under shadow.
    """

    factor: int
    mask: np.ndarray
    info: dict[str, float]

    def window(self, window: Window) -> np.ndarray:
        """The mask on ``(row, col, height, width)`` of the grid."""
        r0, c0, h, w = window
        if not self.mask.any():
            return np.zeros((h, w), bool)
        f = self.factor
        rows = np.minimum((r0 + np.arange(h)) // f, self.mask.shape[0] - 1)
        cols = np.minimum((c0 + np.arange(w)) // f, self.mask.shape[1] - 1)
        return self.mask[np.ix_(rows, cols)]


@dataclasses.dataclass(frozen=True)
class SceneFit:
    """What an assessment estimates from the whole scene before it measures change."""

    shift: Shift | None
    normalization: dict[str, Any]
    stats: SceneStats
    calibration: Calibration
    clouds: CloudMask | None
    #: Where the fit was made: "whole scene" or "sample blocks".
    fitted_on: str = "whole scene"

    @property
    def move(self) -> Affine | None:
        """The after epoch's pixel affine on the grid (None when nothing is moved)."""
        return moving(self.shift)

    def to_dict(self) -> dict[str, Any]:
        """The run record's part of the fit."""
        return {
            "registration": self.shift.to_dict() if self.shift is not None else {"applied": False},
            "normalization": norm_record(self.normalization),
            "scene_stats": self.stats.to_dict(),
            "clouds": {"applied": True, "overview_factor": self.clouds.factor, **self.clouds.info}
            if self.clouds is not None else {"applied": False},
            "calibration": self.calibration.to_dict(),
            "fitted_on": self.fitted_on,
        }


@dataclasses.dataclass(frozen=True)
class ScenePixels:
    """Both epochs warped on the whole grid, registered, as the fit saw them (reused by windows)."""

    before: Raster
    after: Raster
    covered: np.ndarray


def moving(shift: Shift | None) -> Affine | None:
    """The pixel affine that removes ``shift`` (None when there is nothing to move)."""
    if shift is None or not (shift.applied and (shift.magnitude >= 0.05 or shift.is_affine)):
        return None
    return shift.pixel_affine()


def cloud_min_pixels(cfg: Config, grid: Grid) -> int:
    """Config.min_cloud_area (m2) in pixels of ``grid`` (at least 16)."""
    return max(int(cfg.min_cloud_area / grid.pixel_area), 16)


def scene_calibration(maps: dict[str, np.ndarray], before: np.ndarray, after: np.ndarray, valid: np.ndarray,
                      mvalid: np.ndarray, cfg: Config, stats: SceneStats, derived_maps: Derived | None = None) -> Calibration:
    """The scene's typical change without damage, over its steadiest building-sized blocks.

    See :func:`damage.optical.evidence.scene_typical`: the reference of ``change_delta`` and
    ``ssim_excess`` and the typical colour, edge and lightness changes; buildings and
    ground alike, whichever footprints are assessed. ``maps`` are metric maps already
    computed, ``derived_maps`` the gradients and CIELAB if already computed.
    """
    loss = maps.get("ssim")
    if loss is None:
        loss = METRICS["ssim"](before, after, valid, sigma=cfg.ssim_sigma, tolerance=cfg.shift_tolerance, stats=stats)
    typical = scene_typical(before, after, valid, mvalid, stats, loss, BLOCK, tolerance=cfg.shift_tolerance,
                            maps=derived_maps)
    blocks = int(typical.pop("blocks"))
    return Calibration(typical.pop("structure"), "steadiest blocks" if blocks else "none", blocks, typical)


def _metric_radius(cfg: Config) -> int:
    return max(METRIC_RADIUS[name] for name, _ in cfg.metrics) + cfg.shift_tolerance


def fit_scene(be: Epoch, ae: Epoch, grid: Grid, geoms: np.ndarray, cfg: Config,
              step: Callable[[str], None] | None = None) -> tuple[SceneFit, ScenePixels | None]:
    """Fit the scene on ``grid`` around the footprints ``geoms`` (grid CRS, all present).

    ``step`` is told, in a few words, what the fit is doing as it goes (a progress display).

    Returns
    -------
    fit : SceneFit
    pixels : ScenePixels or None
        The registered epochs on the whole grid when the scene was fitted whole (its
        windows are cut from them instead of being read again), else None.

    Raises
    ------
    NoOverlapError
        The epochs hold no valid pixel in common where the fit looks.
    """
    say = step or (lambda what: None)
    if max(grid.shape) <= FIT_SIDE:
        return _fit_whole(be, ae, grid, cfg, say)
    return _fit_sampled(be, ae, grid, geoms, cfg, say), None


def _fit_whole(be: Epoch, ae: Epoch, grid: Grid, cfg: Config, say: Callable[[str], None]) -> tuple[SceneFit, ScenePixels]:
    say(f"reading both epochs ({grid.shape[0]} x {grid.shape[1]} px)")
    rb = warp_epoch(be, grid, black_fill=cfg.black_fill)
    ra = warp_epoch(ae, grid, black_fill=cfg.black_fill)
    covered = rb.valid & ra.valid
    if not covered.any():
        raise NoOverlapError(f"{be.describe()} and {ae.describe()} hold no valid pixel in common")
    shift = None
    if cfg.register:
        say("co-registering")
        shift = estimate_shift(luminance(rb.array), luminance(ra.array), covered, max_shift=cfg.max_shift)
    move = moving(shift)
    if move is not None:
        say("reading the after epoch again, registered")
        ra = warp_epoch(ae, grid, black_fill=cfg.black_fill, check_valid=False, move=move)
        covered = rb.valid & ra.valid
    valid = covered
    cloud = None
    if cfg.cloud_mask:  # before the radiometric fit, which clouds would bias
        say("masking clouds")
        cloudy, info = clouds(rb.array, ra.array, covered, min_pixels=cloud_min_pixels(cfg, grid))
        cloud = CloudMask(1, cloudy, info)
        valid = covered & ~cloudy
    say("normalising and calibrating")
    norm_params, stats, calib = _radiometry(rb.array, ra.array, valid, cfg)
    return SceneFit(shift, norm_params, stats, calib, cloud, "whole scene"), ScenePixels(rb, ra, covered)


def _radiometry(before: np.ndarray, after: np.ndarray, valid: np.ndarray, cfg: Config,
                zero_invalid: bool = False) -> tuple[dict[str, Any], SceneStats, Calibration]:
    """Normalisation, scene statistics and the scene's typical change, fitted on registered pixels.

    ``zero_invalid``: set the invalid normalised after pixels to 0 first (sample blocks
    side by side, whose padding must not enter the structural similarity).
    """
    after_norm, norm_params = normalize(before, after, valid, cfg.normalize)
    stats = scene_stats(before, after_norm, valid)
    if zero_invalid:
        after_norm = np.where(valid[None], after_norm, 0.0)
    _, maps = combined(before, after_norm, valid, (("ssim", 1.0),), sigma=cfg.ssim_sigma,
                       tolerance=cfg.shift_tolerance, stats=stats)
    calib = scene_calibration(maps, before, after_norm, valid, erode(valid, _metric_radius(cfg)), cfg, stats)
    return norm_params, stats, calib


def _overview_clouds(be: Epoch, ae: Epoch, grid: Grid, cfg: Config) -> CloudMask:
    """Clouds on an overview of the whole grid, at most FIT_SIDE pixels a side."""
    f = math.ceil(max(grid.shape) / FIT_SIDE)
    small = Grid(grid.crs, grid.transform @ Affine.scale(f), (math.ceil(grid.shape[0] / f), math.ceil(grid.shape[1] / f)))
    rb = warp_epoch(be, small, black_fill=cfg.black_fill, check_valid=False)
    ra = warp_epoch(ae, small, black_fill=cfg.black_fill, check_valid=False)
    covered = rb.valid & ra.valid
    mask, info = clouds(rb.array, ra.array, covered, min_pixels=max(cloud_min_pixels(cfg, grid) // (f * f), 16),
                        margin=max(1, math.ceil(6 / f)))
    return CloudMask(f, mask, info)


def _sample_blocks(geoms: np.ndarray, grid: Grid) -> list[Window]:
    """The FIT_BLOCK blocks holding the most footprints (at most FIT_BLOCKS, and a quarter of the grid)."""
    rows, cols = cells(geoms, grid, FIT_BLOCK)
    keys = rows * 1_000_003 + cols
    names, counts = np.unique(keys, return_counts=True)
    most = int(np.clip(grid.shape[0] * grid.shape[1] / 4 / FIT_BLOCK**2, 4, FIT_BLOCKS))
    order = sorted(range(len(names)), key=lambda i: (-counts[i], names[i]))[:most]
    blocks = []
    for i in order:
        r, c = divmod(int(names[i]), 1_000_003)
        r0, c0 = r * FIT_BLOCK, c * FIT_BLOCK
        h, w = min(FIT_BLOCK, grid.shape[0] - r0), min(FIT_BLOCK, grid.shape[1] - c0)
        if h > 0 and w > 0 and r0 >= 0 and c0 >= 0:
            blocks.append(Window(r0, c0, h, w))
    return blocks


def _fit_sampled(be: Epoch, ae: Epoch, grid: Grid, geoms: np.ndarray, cfg: Config, say: Callable[[str], None]) -> SceneFit:
    """Registration, radiometry, metric scaling and calibration on sample blocks; clouds on an overview."""
    if cfg.cloud_mask:
        say("masking clouds on an overview")
    cloud = _overview_clouds(be, ae, grid, cfg) if cfg.cloud_mask else None
    blocks = _sample_blocks(geoms, grid)
    rasters, estimates = [], []
    for k, win in enumerate(blocks, start=1):
        say(f"reading and co-registering sample block {k} of {len(blocks)}")
        rb = warp_epoch(be, grid, black_fill=cfg.black_fill, check_valid=False, window=win)
        ra = warp_epoch(ae, grid, black_fill=cfg.black_fill, check_valid=False, window=win)
        rasters.append((rb, ra))
        if cfg.register:
            est = block_shifts(luminance(rb.array), luminance(ra.array), rb.valid & ra.valid, max_shift=cfg.max_shift)
            estimates.append(est + np.array([0.0, 0.0, win[0], win[1]]))
    shift = consensus(np.concatenate(estimates), grid.shape) if estimates else None
    move = moving(shift)
    # Radiometry and metric scaling on the sample blocks side by side, after registration.
    b_parts, a_parts, v_parts = [], [], []
    for (rb, ra), win in zip(rasters, blocks):
        if move is not None:
            ra = warp_epoch(ae, grid, black_fill=cfg.black_fill, check_valid=False, window=win, move=move)
        valid = rb.valid & ra.valid
        if cloud is not None:
            valid &= ~cloud.window(win)
        pad = ((0, 0), (0, FIT_BLOCK - win[2]), (0, FIT_BLOCK - win[3]))
        b_parts.append(np.pad(rb.array, pad))
        a_parts.append(np.pad(ra.array, pad))
        v_parts.append(np.pad(valid, pad[1:]))
    b_all, a_all, v_all = (np.concatenate(p, axis=-1) for p in (b_parts, a_parts, v_parts))
    if not v_all.any():
        raise NoOverlapError(f"{be.describe()} and {ae.describe()} hold no valid pixel in common where the footprints are")
    say("normalising and calibrating")
    norm_params, stats, calib = _radiometry(b_all, a_all, v_all, cfg, zero_invalid=True)
    return SceneFit(shift, norm_params, stats, calib, cloud, "sample blocks")
