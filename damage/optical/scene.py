"""A scene's fit, as values, and the array steps that make its radiometric part.

What an assessment estimates once from the whole scene (:class:`SceneFit`: registration,
normalisation, statistics, calibration, clouds) and the fit of the radiometry on registered
pixels (:func:`radiometry`). Array code: arrays in, values out; no Config, no files. The reading
of the pixels the fit looks at is :mod:`damage.run.scenefit`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
from affine import Affine

from damage.geo.raster import Raster, Window
from damage.grading import Calibration
from damage.optical.evidence import Derived, scene_typical
from damage.optical.masks import erode
from damage.optical.metrics import METRIC_RADIUS, METRICS, SceneStats, combined, scene_stats
from damage.optical.normalize import normalize
from damage.optical.normalize import record as norm_record
from damage.optical.register import Shift

__all__ = ["SceneFit", "ScenePixels", "CloudMask", "moving", "radiometry", "scene_calibration", "metric_radius", "BLOCK"]

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




def scene_calibration(maps: dict[str, np.ndarray], before: np.ndarray, after: np.ndarray, valid: np.ndarray,
                      mvalid: np.ndarray, stats: SceneStats, *, ssim_sigma: float, shift_tolerance: int,
                      derived_maps: Derived | None = None) -> Calibration:
    """The scene's typical change without damage, over its steadiest building-sized blocks.

    See :func:`damage.optical.evidence.scene_typical`: the reference of ``change_delta`` and
    ``ssim_excess`` and the typical colour, edge and lightness changes; buildings and
    ground alike, whichever footprints are assessed. ``maps`` are metric maps already
    computed, ``derived_maps`` the gradients and CIELAB if already computed.
    """
    loss = maps.get("ssim")
    if loss is None:
        loss = METRICS["ssim"](before, after, valid, sigma=ssim_sigma, tolerance=shift_tolerance, stats=stats)
    typical = scene_typical(before, after, valid, mvalid, stats, loss, BLOCK, tolerance=shift_tolerance,
                            maps=derived_maps)
    blocks = int(typical.pop("blocks"))
    return Calibration(typical.pop("structure"), "steadiest blocks" if blocks else "none", blocks, typical)




def metric_radius(metrics: tuple[tuple[str, float], ...], shift_tolerance: int) -> int:
    """Pixels a change map needs on each side of a valid pixel (the widest metric's window and the tolerated shift)."""
    return max(METRIC_RADIUS[name] for name, _ in metrics) + shift_tolerance




def radiometry(before: np.ndarray, after: np.ndarray, valid: np.ndarray, *, method: str, ssim_sigma: float,
               shift_tolerance: int, metrics: tuple[tuple[str, float], ...],
               zero_invalid: bool = False) -> tuple[dict[str, Any], SceneStats, Calibration]:
    """Normalisation, scene statistics and the scene's typical change, fitted on registered pixels.

    ``method`` normalises (:func:`damage.optical.normalize.normalize`); ``metrics`` are the run's
    change measures (their widest window sets how far from the invalid pixels the calibration looks). ``zero_invalid``: set the invalid normalised after
    pixels to 0 first (sample blocks side by side, whose padding must not enter the structural
    similarity).
    """
    after_norm, norm_params = normalize(before, after, valid, method)
    stats = scene_stats(before, after_norm, valid)
    if zero_invalid:
        after_norm = np.where(valid[None], after_norm, 0.0)
    _, maps = combined(before, after_norm, valid, (("ssim", 1.0),), sigma=ssim_sigma, tolerance=shift_tolerance,
                       stats=stats)
    calib = scene_calibration(maps, before, after_norm, valid, erode(valid, metric_radius(metrics, shift_tolerance)), stats, ssim_sigma=ssim_sigma,
                              shift_tolerance=shift_tolerance)
    return norm_params, stats, calib
