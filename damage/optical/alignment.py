"""Each building's own alignment: its structural and colour change at its best whole-pixel move.

For every footprint and its ring, and every displacement ``(dy, dx)`` of the after
image up to ``max_shift`` pixels, the mean over the zone's valid pixels of

* the structural dissimilarity of the luminance (one minus SSIM, as
  :func:`damage.optical.metrics.ssim_maps` computes it: Gaussian local moments, each
  epoch's noise taken out of its variances, clipped to [0, 1]), and
* the mean absolute band difference as a share of each band's robust range;

each zone keeps the smallest over the displacements (:func:`best_alignment`).

The work is done in one compiled loop (numba, :func:`damage.optical._compiled.zone_sums`)
over strips of :data:`STRIP` rows: for a move, the Gaussian of the product ``before x moved
after`` is made on the union of the boxes of the buildings that need the move (a horizontal
pass over its rows, then a vertical one), then the SSIM formula and the colour difference,
and each zone's sums are taken from them; no map is made where no building needs it, and
none twice where the boxes of a dense city overlap. Local means and variances of each epoch
are computed once per window.

``search="coarse"`` (the default) first measures every other displacement (a lattice of
step 2, on the box of footprint and ring), then, for each of a building's four
quantities, the displacements next to its best one (on the footprint's box alone for
the footprint's two): the same answer wherever the zone's mean changes smoothly with
the move (its pixels' losses are Gaussian-smoothed, so it nearly always does), for
about half the work of the full search at ``max_shift=4``.
"""

from __future__ import annotations

import numpy as np

from damage.optical.metrics import SceneStats, gaussian_weights, moments

__all__ = ["SEARCHES", "best_alignment"]

#: Rows of the window done at a time by the compiled loop (a move's maps are made for a strip at a time:
#: 16 to 96 rows took the same time on a dense window of 1,156 buildings).
STRIP = 64
#: How displacements are searched: every one, or coarse-to-fine.
SEARCHES = ("full", "coarse")
#: The quantities each zone keeps the smallest of, in the order of :func:`best_alignment`'s output.
QUANTITIES = ("ssim", "colour", "ring_ssim", "ring_colour")

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
                   labels: np.ndarray, idx: np.ndarray, n: int, search: str = "coarse") -> dict[str, np.ndarray]:
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
    from damage.optical._compiled import group_pixels, zone_sums

    if search not in SEARCHES:
        raise ValueError(f"search must be one of {SEARCHES}, got {search!r}")
    rows, cols = lum_before.shape
    t = max_shift
    m = moments(lum_before, lum_after, sigma, t, lum_stats.noise_before[0], lum_stats.noise_after[0], lum_stats.ranges[0])
    apad = np.pad(np.asarray(after, dtype=np.float32), ((0, 0), (t, t), (t, t)), mode="edge")
    inv_ranges = 1.0 / np.asarray(ranges, dtype=np.float64)
    maps = (m.x, m.y, m.mx, m.my, m.vy, m.lumx, m.conx, float(m.c1), float(m.c2),
            np.ascontiguousarray(before, dtype=np.float32), apad, inv_ranges, t,
            gaussian_weights(sigma))

    # the zones' pixels by building: its footprint's, then its ring's, each in the order they come (row order)
    seg, prow, pcol = group_pixels(np.asarray(labels, np.int64), np.asarray(idx, np.int64), n, cols)
    count_fp = seg[1::2] - seg[0:-1:2]
    count_ring = seg[2::2] - seg[1::2]

    side = 2 * t + 1
    lattice = [(dy, dx) for dy in range(-t, t + 1) for dx in range(-t, t + 1)]
    dys = np.array([m[0] for m in lattice], np.int64)
    dxs = np.array([m[1] for m in lattice], np.int64)
    out = np.zeros((4, n, side * side), np.float64)
    if search == "full":
        every = np.ones((n, side * side), bool)
        zone_sums(*maps, seg, prow, pcol, dys, dxs, every, every, out, STRIP)
        done_fp = done_ring = every
    else:
        coarse = (dys % 2 == 0) & (dxs % 2 == 0)  # the lattice of step 2 through (0, 0)
        done_fp = np.repeat(coarse[None], n, axis=0)
        done_ring = done_fp.copy()
        zone_sums(*maps, seg, prow, pcol, dys, dxs, done_fp, done_ring, out, STRIP)
        # then each quantity's neighbours of its best, on each building's box
        means = _means(out, count_fp, count_ring, before.shape[0])
        extra_fp, extra_ring = np.zeros_like(done_fp), np.zeros_like(done_ring)
        for q, extra, done in ((0, extra_fp, done_fp), (1, extra_fp, done_fp), (2, extra_ring, done_ring),
                               (3, extra_ring, done_ring)):
            found = np.where(done, means[q], np.inf)
            best = np.argmin(found, axis=1)
            extra |= _neighbours(best, side) & np.isfinite(found.min(axis=1))[:, None]  # none for an empty zone
        extra_ring &= ~done_ring
        extra_fp &= ~done_fp
        zone_sums(*maps, seg, prow, pcol, dys, dxs, extra_fp, extra_ring, out, STRIP)
        done_fp = done_fp | extra_fp | extra_ring  # a ring's box holds the footprint: its sums came too
        done_ring = done_ring | extra_ring
    means = _means(out, count_fp, count_ring, before.shape[0])
    best = {}
    for q, key in enumerate(QUANTITIES):
        done = done_fp if q < 2 else done_ring
        v = np.where(done, means[q], np.inf).min(axis=1)
        best[key] = np.where(np.isfinite(v), v, np.nan)
    return best


def _means(out: np.ndarray, count_fp: np.ndarray, count_ring: np.ndarray, bands: int) -> np.ndarray:
    """Zone means of the sums (the colour difference, summed over ``bands``, as a band mean), inf for an empty zone."""
    counts = np.stack([count_fp, count_fp, count_ring, count_ring])[:, :, None].astype(np.float64)
    per_band = np.array([1.0, bands, 1.0, bands])[:, None, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, out / per_band / np.maximum(counts, 1), np.inf)
