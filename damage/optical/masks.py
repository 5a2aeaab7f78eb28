"""Masks of the imagery's content: clouds and their shadows, and the erosion of a valid mask.

Array code only. What the file itself declares invalid (nodata, alpha, black fill) is
:mod:`damage.io.nodata`, applied as the pixels are read.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["erode", "clouds"]

def erode(valid: np.ndarray, radius: int) -> np.ndarray:
    """Shrink a validity mask by ``radius`` pixels (a square structuring element).

    Pixels next to no-data are removed because windowed metrics there mix in
    fill values.
    """
    if radius <= 0:
        return valid
    # Outside the grid counts as no data: a grid edge is either the edge of the imagery
    # or at least a margin away from every footprint.
    # ``radius`` erosions by a 3 x 3 square are one by a (2 radius + 1) square: a separable running
    # minimum (two passes, whatever the radius) instead of ``radius`` passes of a 3 x 3 erosion
    square = 2 * int(radius) + 1
    return ndimage.minimum_filter(np.asarray(valid, dtype=np.uint8), size=square, mode="constant", cval=0).astype(bool)


def _local(x: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Local mean and standard deviation in a Gaussian window."""
    m = ndimage.gaussian_filter(x, sigma)
    v = ndimage.gaussian_filter(x * x, sigma) - m * m
    return m, np.sqrt(np.maximum(v, 0.0))


def _large(mask: np.ndarray, min_pixels: int, score: np.ndarray | None = None, min_score: float = -np.inf) -> np.ndarray:
    """Connected parts of ``mask`` of at least ``min_pixels`` pixels (and mean ``score`` above ``min_score``)."""
    labels, n = ndimage.label(mask)
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = sizes >= min_pixels
    if score is not None:
        total = np.bincount(labels.ravel(), weights=score.ravel(), minlength=n + 1)
        keep &= total / np.maximum(sizes, 1) > min_score
    keep[0] = False
    return keep[labels]


def _rank(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Each pixel's brightness rank (0-1) among the valid pixels, from 1001 quantiles of a sample."""
    vals = x[valid]
    if vals.size > 400_000:
        vals = vals[:: vals.size // 400_000]
    q = np.quantile(vals, np.linspace(0, 1, 1001))
    q, first = np.unique(q, return_index=True)
    return np.interp(x, q, np.linspace(0, 1, 1001)[first]).astype(np.float32)


def _cast_shadow(cloud: np.ndarray, lift: np.ndarray, valid: np.ndarray, min_pixels: int) -> np.ndarray:
    """The shadow of ``cloud``: the cloud's outline moved to where the scene darkened most.

    The offset between clouds and their shadows (sun and cloud height) is where the
    moved cloud mask covers the strongest mean darkening (``-lift``); the shadow
    is the moved outline where the scene did darken, in parts of at least ``min_pixels``.
    """
    from scipy.signal import fftconvolve

    ground = valid & ~cloud
    dark = np.clip(-lift, 0.0, None) * ground
    kernel = cloud[::-1, ::-1].astype(np.float32)
    corr = fftconvolve(dark, kernel, mode="full")
    overlap = fftconvolve(ground.astype(np.float32), kernel, mode="full")
    # mean darkening under the moved clouds, where at least 30 % of them lands on clear ground
    mean_dark = np.where(overlap >= 0.3 * cloud.sum(), corr / np.maximum(overlap, 1.0), -1.0)
    rows, cols = cloud.shape
    peak = np.unravel_index(int(np.argmax(mean_dark)), corr.shape)
    dy, dx = peak[0] - (rows - 1), peak[1] - (cols - 1)
    moved = ndimage.shift(cloud, (dy, dx), order=0, mode="constant", cval=False) & ~cloud
    if not moved.any() or dark[moved].mean() < 0.2:
        return np.zeros_like(cloud)
    return _large(ndimage.binary_opening(moved & (lift < -0.1) & valid, iterations=2), min_pixels)


def clouds(
    before: np.ndarray,
    after: np.ndarray,
    valid: np.ndarray,
    min_pixels: int = 4_000,
    margin: int = 6,
) -> tuple[np.ndarray, dict[str, float]]:
    """Opaque clouds, and the shadows they cast, in either epoch.

    Works on the epochs as read (clouds would bias a radiometric fit, so this runs
    first). A pixel of one epoch is cloud where it is in the bright part of its own
    scene (above the median by half the way to the 99th percentile), almost without
    texture or colour, in a connected area of at least ``min_pixels`` that on average
    ranks far brighter in its scene (by 0.2) than the same place does in the other
    epoch. Where an epoch has clouds, their outline moved to where the scene darkened
    most (the offset that correlates best) and that did darken there is their shadow
    (a quarter of ``min_pixels`` suffices: clouds hide part of their shadows). Both grow by ``margin`` pixels (soft cloud edges). Rubble is textured and
    new roofs are small, so neither is cloud.

    Parameters
    ----------
    before, after : numpy.ndarray
        ``(bands, rows, cols)`` on one grid.
    valid : numpy.ndarray
        ``(rows, cols)`` bool.
    min_pixels : int
        Smallest cloud or shadow, in pixels.
    margin : int
        Pixels added around every cloud and shadow.

    Returns
    -------
    mask : numpy.ndarray
        ``(rows, cols)`` bool, True under cloud or cloud shadow in either epoch.
    info : dict
        Share of the valid scene under cloud and under shadow.
    """
    cloud = np.zeros(valid.shape, bool)
    shadow = np.zeros(valid.shape, bool)
    if valid.sum() < min_pixels:
        return cloud, {"cloud_share": 0.0, "shadow_share": 0.0}
    lum = []
    for e in (before, after):
        x = e.mean(axis=0, dtype=np.float32)
        lum.append(np.where(valid, x, float(np.median(x[valid]))))
    rank: list[np.ndarray] = []  # brightness ranks, only computed once a candidate is found

    def ranks() -> list[np.ndarray]:
        if not rank:
            rank.extend(ndimage.gaussian_filter(_rank(x, valid), 4.0) for x in lum)
        return rank

    for k, e in enumerate((before, after)):
        other = 1 - k
        lo, med, p99 = np.percentile(lum[k][valid], [0.5, 50, 99])
        bright = lum[k] > med + 0.5 * (p99 - med)  # cheap first test: most scenes stop here
        if bright.sum() < min_pixels // 2:  # (halved: smoothing below can grow a region's rim)
            continue
        mean_k, std_k = _local(lum[k], 2.0)
        bright = mean_k > med + 0.5 * (p99 - med)
        flat = std_k < 0.04 * max(p99 - lo, 1e-6)
        grey = ndimage.gaussian_filter((e.max(axis=0) - e.min(axis=0)).astype(np.float32), 2.0) < 0.12 * np.maximum(mean_k, 1e-6)
        candidate = ndimage.binary_fill_holes(ndimage.binary_opening(bright & flat & grey & valid, iterations=2))
        if candidate.sum() < min_pixels:
            continue
        lift = ranks()[k] - ranks()[other]
        c = _large(candidate, min_pixels, lift, 0.2)  # and, on the whole, far brighter than the other epoch
        if not c.any():
            continue
        cloud |= c
        shadow |= _cast_shadow(c, lift, valid, min_pixels // 4)
    out = cloud | shadow
    if out.any() and margin > 0:
        out = ndimage.binary_dilation(out, iterations=margin)
    n = max(int(valid.sum()), 1)
    info = {"cloud_share": round(float((cloud & valid).sum() / n), 4), "shadow_share": round(float((shadow & valid).sum() / n), 4)}
    return out & valid, info
