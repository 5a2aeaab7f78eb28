"""Sub-pixel co-registration of the after epoch onto the before epoch.

The residual shift is estimated by phase correlation (scikit-image) in blocks spread
over the scene; the consensus of the blocks (a robust median) ignores blocks where the
content changed. When the blocks' shifts vary across the scene (a slight rotation or
scale difference between the epochs), an affine displacement field is fitted to the
agreeing blocks and kept if it explains them clearly better than one translation.
The after epoch is then warped once onto the grid moved by that displacement, so its
pixels are resampled only once.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
from affine import Affine
from scipy import ndimage
from skimage.registration import phase_cross_correlation

__all__ = ["Shift", "estimate_shift", "block_shifts", "consensus", "luminance"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Shift:
    """A translation of after against before, in grid pixels.

    ``dy``/``dx`` are how far the after image content sits down/right of the before
    content; the after epoch is corrected by sampling it on the grid moved by
    ``(dy, dx)``. ``blocks`` is how many blocks agreed, ``spread`` the robust spread
    (pixels) of their estimates: a large spread means the shift is uncertain.
    """

    dy: float
    dx: float
    blocks: int
    spread: float
    applied: bool
    #: Change of (dy, dx) per pixel of (row, col) away from ``centre``:
    #: ``((ddy/drow, ddy/dcol), (ddx/drow, ddx/dcol))``; zero for a pure translation.
    gradient: tuple[tuple[float, float], tuple[float, float]] = ((0.0, 0.0), (0.0, 0.0))
    #: ``(row, col)`` where the displacement is ``(dy, dx)``.
    centre: tuple[float, float] = (0.0, 0.0)

    @property
    def is_affine(self) -> bool:
        """Whether the displacement varies across the scene (a rotation or scale, not just a shift)."""
        return self.gradient != ((0.0, 0.0), (0.0, 0.0))

    @property
    def magnitude(self) -> float:
        """Largest displacement, in pixels, over a scene twice the centre's distance from the origin."""
        (a, b), (c, d) = self.gradient
        rc, cc = self.centre
        corners = [(rr, c2) for rr in (-rc, rc) for c2 in (-cc, cc)]
        return float(max(np.hypot(self.dy + a * r + b * q, self.dx + c * r + d * q) for r, q in corners))

    @property
    def rotation_deg(self) -> float:
        """Rotation of the after content against before implied by the gradient, in degrees."""
        (_, b), (c, _) = self.gradient
        return float(np.degrees(np.arctan2(b - c, 2.0 + self.gradient[0][0] + self.gradient[1][1])))

    def pixel_affine(self) -> Affine:
        """Maps grid (col, row) to where the same content sits in the after epoch (col, row)."""
        (a, b), (c, d) = self.gradient
        rc, cc = self.centre
        # col' = col + dx + c (row - rc) + d (col - cc); row' = row + dy + a (row - rc) + b (col - cc)
        return Affine(1.0 + d, c, self.dx - c * rc - d * cc, b, 1.0 + a, self.dy - a * rc - b * cc)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "dy_px": round(self.dy, 3),
            "dx_px": round(self.dx, 3),
            "blocks": self.blocks,
            "spread_px": round(self.spread, 3),
            "applied": self.applied,
        }
        if self.is_affine:
            out["rotation_deg"] = round(self.rotation_deg, 4)
            out["gradient"] = [[round(v, 7) for v in row] for row in self.gradient]
            out["centre_px"] = [round(v, 1) for v in self.centre]
        return out


NO_SHIFT = Shift(0.0, 0.0, 0, 0.0, False)


def luminance(array: np.ndarray) -> np.ndarray:
    """Mean over bands, as float32 ``(rows, cols)``."""
    return array.mean(axis=0, dtype=np.float32)


def _block_shift(b: np.ndarray, a: np.ndarray, upsample: int) -> tuple[float, float, float]:
    """Shift of block ``a`` against ``b``: cross-correlation, then one refinement.

    The refinement moves ``a`` back by the first estimate (cubic spline) and adds the
    residual estimate, which removes the bias of the upsampled peak (about 0.05 px).
    """
    total = np.zeros(2)
    error = 0.0
    for _ in range(2):
        moved = a if not total.any() else ndimage.shift(a, -total, order=3, mode="nearest")
        # phase_cross_correlation returns the shift that registers `moved` onto `b`;
        # the content of `a` sits at minus that.
        shift, error, _ = phase_cross_correlation(b - b.mean(), moved - moved.mean(), upsample_factor=upsample, normalization=None)
        total -= shift
    return float(total[0]), float(total[1]), float(error)


def estimate_shift(
    before: np.ndarray,
    after: np.ndarray,
    valid: np.ndarray,
    block: int = 128,
    max_shift: float = 16.0,
    upsample: int = 20,
    min_valid: float = 0.95,
) -> Shift:
    """Estimate the translation of ``after`` against ``before``.

    Parameters
    ----------
    before, after : numpy.ndarray
        ``(rows, cols)`` single-band images on one grid (for example :func:`luminance`).
    valid : numpy.ndarray
        ``(rows, cols)`` bool, where both images hold data.
    block : int
        Side of the square blocks, in pixels; scenes with fewer than 16 blocks use
        blocks overlapping by half.
    max_shift : float
        Block estimates larger than this are discarded.
    upsample : int
        Sub-pixel precision is ``1 / upsample`` pixel.
    min_valid : float
        Blocks with a smaller valid share are skipped.

    Returns
    -------
    Shift
        ``applied`` is False (and the shift zero) when fewer than 3 blocks agree.
    """
    rows, cols = before.shape
    est = block_shifts(before, after, valid, block, max_shift, upsample, min_valid)
    return consensus(est, (rows, cols))


def block_shifts(
    before: np.ndarray,
    after: np.ndarray,
    valid: np.ndarray,
    block: int = 128,
    max_shift: float = 16.0,
    upsample: int = 20,
    min_valid: float = 0.95,
) -> np.ndarray:
    """Shift estimates of the scene's blocks: ``(k, 4)`` rows of ``dy, dx, row, col`` (block centres).

    Arguments as for :func:`estimate_shift`.
    """
    rows, cols = before.shape
    if min(rows, cols) < block:
        block = max(64, min(rows, cols) // 2 * 2)
    if min(rows, cols) < block:
        return np.empty((0, 4))
    estimates = []
    # Overlapping blocks (half a block apart) when the scene holds few whole blocks.
    step = block if (rows // block) * (cols // block) >= 16 else block // 2
    for r in range(0, rows - block + 1, step):
        for c in range(0, cols - block + 1, step):
            v = valid[r : r + block, c : c + block]
            if v.mean() < min_valid:
                continue
            b = before[r : r + block, c : c + block]
            a = after[r : r + block, c : c + block]
            if b[v].std() < 1e-3 or a[v].std() < 1e-3:
                continue
            b = np.where(v, b, b[v].mean())
            a = np.where(v, a, a[v].mean())
            dy, dx, error = _block_shift(b, a, upsample)
            if np.hypot(dy, dx) <= max_shift:
                estimates.append((dy, dx, r + block / 2, c + block / 2))
    return np.array(estimates).reshape(-1, 4)


def consensus(est: np.ndarray, shape: tuple[int, int]) -> Shift:
    """The shift the block estimates agree on (translation, or an affine field if clearly better).

    Parameters
    ----------
    est : numpy.ndarray
        ``(k, 4)`` rows of ``dy, dx, row, col`` from :func:`block_shifts`, in the pixel
        coordinates of a grid of ``shape``.
    shape : (int, int)
        The grid's ``(rows, cols)``.
    """
    rows, cols = shape
    if len(est) < 3:
        log.info("registration: only %d usable blocks; no shift applied", len(est))
        return dataclasses.replace(NO_SHIFT, blocks=len(est))
    dy, dx = np.median(est[:, 0]), np.median(est[:, 1])
    dist = np.hypot(est[:, 0] - dy, est[:, 1] - dx)
    spread = float(1.4826 * np.median(dist))
    agree = dist <= max(3 * spread, 0.5)
    dy, dx = float(np.median(est[agree, 0])), float(np.median(est[agree, 1]))
    centre = ((rows - 1) / 2, (cols - 1) / 2)
    affine = _fit_affine(est[agree], centre, (rows, cols), spread)
    if affine is not None:
        dy, dx, gradient, agreeing, spread = affine
        log.info("registration: affine, centre shift dy=%.2f dx=%.2f px from %d/%d blocks (spread %.2f px)",
                 dy, dx, agreeing, len(est), spread)
        return Shift(dy, dx, agreeing, spread, True, gradient, centre)
    log.info("registration: shift dy=%.2f dx=%.2f px from %d/%d blocks (spread %.2f px)", dy, dx, agree.sum(), len(est), spread)
    return Shift(dy, dx, int(agree.sum()), spread, True, centre=centre)


#: An affine field is kept when it has this many blocks and shrinks their spread by
#: this factor and by at least MIN_GAIN pixels.
MIN_AFFINE_BLOCKS, AFFINE_GAIN, MIN_GAIN = 6, 0.7, 0.1


def _fit_affine(est: np.ndarray, centre: tuple[float, float], shape: tuple[int, int], spread: float):
    """Least-squares affine displacement over agreeing blocks, trimmed once; None if not clearly better."""
    if len(est) < MIN_AFFINE_BLOCKS:
        return None
    r, c = est[:, 2] - centre[0], est[:, 3] - centre[1]
    if np.ptp(r) < shape[0] / 3 or np.ptp(c) < shape[1] / 3:
        return None  # the blocks do not span the scene: a gradient would be extrapolated
    design = np.column_stack([np.ones_like(r), r, c])
    keep = np.ones(len(est), bool)
    for _ in range(2):
        coef_y = np.linalg.lstsq(design[keep], est[keep, 0], rcond=None)[0]
        coef_x = np.linalg.lstsq(design[keep], est[keep, 1], rcond=None)[0]
        resid = np.hypot(est[:, 0] - design @ coef_y, est[:, 1] - design @ coef_x)
        new_spread = float(1.4826 * np.median(resid[keep]))
        keep = resid <= max(3 * new_spread, 0.25)
        if keep.sum() < MIN_AFFINE_BLOCKS:
            return None
    if not (new_spread < AFFINE_GAIN * spread and spread - new_spread >= MIN_GAIN):
        return None
    gradient = ((float(coef_y[1]), float(coef_y[2])), (float(coef_x[1]), float(coef_x[2])))
    return float(coef_y[0]), float(coef_x[0]), gradient, int(keep.sum()), new_spread
