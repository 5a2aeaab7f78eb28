"""Each building's own alignment: its structural and colour change at its best whole-pixel move.

For every footprint and its ring, and every displacement ``(dy, dx)`` of the after
image up to ``max_shift`` pixels, the mean over the zone's valid pixels of

* the structural dissimilarity of the luminance (one minus SSIM, as
  :func:`damage.optical.metrics.ssim_maps` computes it: Gaussian local moments, each
  epoch's noise taken out of its variances, clipped to [0, 1]), and
* the mean absolute band difference as a share of each band's robust range;

each zone keeps the smallest over the displacements (:func:`best_alignment`).

The work is done building by building in one compiled loop (numba): for a move, the
Gaussian of the product ``before x moved after`` is computed over the building's
bounding box only (a horizontal pass over its rows, then a vertical pass at its
pixels), and the four zone sums are accumulated without a whole-window map. Local
means and variances of each epoch are computed once per window (scipy).

``search="coarse"`` first measures every other displacement (a lattice of step 2),
then, for each of a building's four quantities, the displacements next to its best
one: the same answer wherever the zone's mean changes smoothly with the move (its
pixels' losses are Gaussian-smoothed, so it nearly always does), for about 40 % of
the displacements of the full search at ``max_shift=4``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from damage.optical.metrics import SceneStats

__all__ = ["SEARCHES", "best_alignment", "gaussian_weights"]

#: How displacements are searched: every one, or coarse-to-fine.
SEARCHES = ("full", "coarse")
#: The quantities each zone keeps the smallest of, in the order of :func:`best_alignment`'s output.
QUANTITIES = ("ssim", "colour", "ring_ssim", "ring_colour")

_TRUNCATE = 3.5  # as damage.optical.metrics._gauss


def gaussian_weights(sigma: float, truncate: float = _TRUNCATE) -> np.ndarray:
    """The normalised 1-d kernel of :func:`scipy.ndimage.gaussian_filter1d` (same radius and weights)."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / float(sigma)) ** 2)
    return w / w.sum()


def _gauss(x: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(x, sigma, mode="reflect", truncate=_TRUNCATE)


def _kernel():  # type: ignore[no-untyped-def]
    """The compiled zone-sum loop (imported on first use: numba loads only when evidence is measured)."""
    from damage.optical._compiled import move_sums

    return move_sums


def _neighbours(best: np.ndarray, side: int) -> np.ndarray:
    """``(n, side*side)`` bool: the lattice moves within one step of each row's ``best`` (lattice index)."""
    n = best.size
    out = np.zeros((n, side, side), bool)
    by, bx = np.divmod(best, side)
    for oy in (-1, 0, 1):
        for ox in (-1, 0, 1):
            yy, xx = by + oy, bx + ox
            ok = (yy >= 0) & (yy < side) & (xx >= 0) & (xx < side)
            out[np.flatnonzero(ok), yy[ok], xx[ok]] = True
    return out.reshape(n, side * side)


def best_alignment(lum_before: np.ndarray, lum_after: np.ndarray, before: np.ndarray, after: np.ndarray,
                   lum_stats: SceneStats, ranges: np.ndarray, sigma: float, max_shift: int,
                   labels: np.ndarray, idx: np.ndarray, n: int, search: str = "full") -> dict[str, np.ndarray]:
    """The smallest zone means of structural loss and colour difference over displacements.

    Parameters
    ----------
    lum_before, lum_after : numpy.ndarray
        ``(rows, cols)`` luminance of each epoch (the after one registered and normalised).
    before, after : numpy.ndarray
        ``(bands, rows, cols)`` epochs, for the colour difference.
    lum_stats : SceneStats
        The luminance's range and noise (one band).
    ranges : numpy.ndarray
        Each band's robust range (the colour difference is a share of it).
    sigma : float
        Gaussian window of the structural similarity.
    max_shift : int
        Largest displacement, in whole pixels, in each direction.
    labels, idx : numpy.ndarray
        The zones' valid pixels: label ``i`` is footprint ``i``, ``n + i`` its ring;
        ``idx`` the flat pixel index of each.
    n : int
        Number of footprints.
    search : {"full", "coarse"}
        Every displacement, or coarse-to-fine (see the module's docstring).

    Returns
    -------
    dict
        ``ssim``, ``colour``, ``ring_ssim``, ``ring_colour``: ``(n,)`` float64, NaN where
        the zone has no valid pixel.
    """
    if search not in SEARCHES:
        raise ValueError(f"search must be one of {SEARCHES}, got {search!r}")
    rows, cols = lum_before.shape
    t = max_shift
    x = np.ascontiguousarray(lum_before, dtype=np.float32)
    y = np.pad(np.asarray(lum_after, dtype=np.float32), t, mode="edge")
    mx, my = _gauss(x, sigma), _gauss(y, sigma)
    nb, na = float(lum_stats.noise_before[0]), float(lum_stats.noise_after[0])
    vx = np.maximum(_gauss(x * x, sigma) - mx * mx - nb**2, 0.0)
    vy = np.maximum(_gauss(y * y, sigma) - my * my - na**2, 0.0)
    c1 = float(np.float32((0.01 * lum_stats.ranges[0]) ** 2))
    c2 = float(np.float32((0.03 * lum_stats.ranges[0]) ** 2))
    lumx = (mx * mx + np.float32(c1)).astype(np.float32)
    conx = (vx + np.float32(c2)).astype(np.float32)
    apad = np.pad(np.asarray(after, dtype=np.float32), ((0, 0), (t, t), (t, t)), mode="edge")
    inv_ranges = 1.0 / np.asarray(ranges, dtype=np.float64)

    # the zones' pixels, grouped by building: its footprint's, then its ring's
    ring = labels >= n
    group = 2 * np.where(ring, labels - n, labels) + ring
    order = np.argsort(group, kind="stable")
    prow, pcol = np.divmod(idx[order], cols)
    seg = np.searchsorted(group[order], np.arange(2 * n + 1)).astype(np.int64)
    count_fp = seg[1::2] - seg[0:-1:2]
    count_ring = seg[2::2] - seg[1::2]

    side = 2 * t + 1
    lattice = [(dy, dx) for dy in range(-t, t + 1) for dx in range(-t, t + 1)]
    dys = np.array([m[0] for m in lattice], np.int64)
    dxs = np.array([m[1] for m in lattice], np.int64)
    out = np.zeros((4, n, side * side), np.float64)
    kernel = _kernel()
    args = (x, y, mx, my, vy, lumx, conx, c1, c2, np.ascontiguousarray(before, dtype=np.float32), apad, inv_ranges, t,
            gaussian_weights(sigma), seg, prow.astype(np.int64), pcol.astype(np.int64), dys, dxs)
    if search == "full":
        done = np.ones((n, side * side), bool)
        kernel(*args, done, out)
    else:
        coarse = (dys % 2 == 0) & (dxs % 2 == 0)  # the lattice of step 2 through (0, 0)
        done = np.repeat(coarse[None], n, axis=0)
        kernel(*args, done, out)
        means = _means(out, count_fp, count_ring)
        extra = np.zeros_like(done)
        for q in range(4):
            best = np.argmin(np.where(done, means[q], np.inf), axis=1)
            extra |= _neighbours(best, side)
        extra &= ~done
        kernel(*args, extra, out)
        done |= extra
    means = _means(out, count_fp, count_ring)
    best = {}
    for q, key in enumerate(QUANTITIES):
        v = np.where(done, means[q], np.inf).min(axis=1)
        best[key] = np.where(np.isfinite(v), v, np.nan)
    return best


def _means(out: np.ndarray, count_fp: np.ndarray, count_ring: np.ndarray) -> np.ndarray:
    counts = np.stack([count_fp, count_fp, count_ring, count_ring])[:, :, None].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, out / np.maximum(counts, 1), np.inf)
