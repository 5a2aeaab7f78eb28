"""Each building's own alignment (compiled) against the definition, written with whole-window numpy maps."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine
from rasterio.crs import CRS
from scipy import ndimage

from damage.geo.raster import Grid
from damage.geo.zonal import zones
from damage.optical.alignment import best_alignment
from damage.optical.metrics import SceneStats, displacements, gaussian_weights, ssim_maps

RES = 0.5


def _pair(seed: int, size: int = 96, shift: tuple[int, int] = (1, -2)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = ndimage.gaussian_filter(rng.normal(100, 30, (size + 8, size + 8)), 1.2)
    img = np.stack([base, base * 0.9 + 5, base * 1.1 - 3]).astype(np.float32)
    img[:, 30:50, 20:44] += 60  # a roof
    before = img[:, 4:-4, 4:-4].copy()
    after = np.roll(img, shift, axis=(1, 2))[:, 4:-4, 4:-4].copy()
    after[:, 60:80, 60:85] = rng.normal(120, 40, (3, 20, 25))  # rubble
    return before, after + rng.normal(0, 2, after.shape).astype(np.float32)


def _zones(size: int):
    grid = Grid(CRS.from_epsg(32615), Affine(RES, 0, 0, 0, -RES, size * RES), (size, size))
    boxes = [(30, 20, 50, 44), (60, 60, 80, 85), (0, 0, 12, 14),  # in the corner: the filter's reflected edge
             (35, 30, 70, 70), (84, 80, 96, 96)]  # overlapping the first two; at the far corner

    def geom(r0, c0, r1, c1):
        return shapely.box(c0 * RES, (size - r1) * RES, c1 * RES, (size - r0) * RES)

    fp = np.array([geom(*b) for b in boxes], dtype=object)
    rings = shapely.difference(shapely.buffer(fp, 3.0), fp)
    return zones(fp, grid), zones(rings, grid)


def _reference(before, after, stats, lum_stats, valid, fz, rz, max_shift, sigma):
    """The definition: each move's whole-window SSIM loss and colour difference, zone means, smallest."""
    lum_b, lum_a = before.mean(axis=0, keepdims=True), after.mean(axis=0, keepdims=True)
    moves = displacements(max_shift)
    t = max_shift
    padded = np.pad(after, ((0, 0), (t, t), (t, t)), mode="edge")
    ranges = np.asarray(stats.ranges, np.float32)[:, None, None]
    rows, cols = before.shape[1:]
    out = {k: np.full(fz.n, np.inf) for k in ("ssim", "colour", "ring_ssim", "ring_colour")}

    def means(zs, values):
        lab, ix = zs.pixels()
        keep = valid.ravel()[ix]
        total = np.bincount(lab[keep], weights=values.ravel()[ix[keep]].astype(np.float64), minlength=zs.n)
        count = np.bincount(lab[keep], minlength=zs.n)
        return np.where(count > 0, total / np.maximum(count, 1), np.inf)

    for (dy, dx), loss in zip(moves, ssim_maps(lum_b, lum_a, sigma, moves, lum_stats)):
        moved = padded[:, t - dy : t - dy + rows, t - dx : t - dx + cols]
        diff = (np.abs(moved - before) / ranges).mean(axis=0)
        for key, zs, values in (("ssim", fz, loss), ("colour", fz, diff), ("ring_ssim", rz, loss), ("ring_colour", rz, diff)):
            np.fmin(out[key], means(zs, values), out=out[key])
    return {k: np.where(np.isfinite(v), v, np.nan) for k, v in out.items()}


def _inputs(seed, max_shift=2, sigma=1.5, size=96, shift=(1, -2)):
    before, after = _pair(seed, size, shift)
    stats = SceneStats(np.array([90.0, 85.0, 95.0]), 90.0, np.array([1.0, 1.0, 1.0]), np.array([2.0, 2.0, 2.0]),
                       np.array([10.0, 10.0, 10.0]))
    lum_stats = SceneStats(np.array([90.0]), 90.0, np.array([0.6]), np.array([1.2]))
    valid = np.ones((size, size), bool)
    valid[40:44, :] = False  # a gap through the first footprint
    fz, rz = _zones(size)
    n = fz.n
    fl, fi = fz.pixels()
    rl, ri = rz.pixels()
    labels, idx = np.concatenate([fl, rl + n]), np.concatenate([fi, ri])
    keep = valid.ravel()[idx]
    return before, after, stats, lum_stats, valid, fz, rz, labels[keep], idx[keep], n


@pytest.mark.parametrize("seed,max_shift,sigma", [(0, 2, 1.5), (1, 3, 1.0), (2, 0, 1.5)])
def test_full_search_is_the_definition(seed, max_shift, sigma):
    before, after, stats, lum_stats, valid, fz, rz, labels, idx, n = _inputs(seed)
    got = best_alignment(before.mean(axis=0), after.mean(axis=0), before, after, lum_stats, stats.ranges, sigma,
                         max_shift, labels, idx, n, search="full")
    want = _reference(before, after, stats, lum_stats, valid, fz, rz, max_shift, sigma)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-4, atol=2e-5, err_msg=key)
        assert np.isfinite(got[key]).all()


@pytest.mark.parametrize("shift", [(1, -2), (-1, 2), (3, 1)])
def test_coarse_search_never_beats_the_full_one_and_finds_a_smooth_minimum(shift):
    before, after, stats, lum_stats, valid, fz, rz, labels, idx, n = _inputs(3, shift=shift)
    args = (before.mean(axis=0), after.mean(axis=0), before, after, lum_stats, stats.ranges, 1.5, 4, labels, idx, n)
    full, coarse = best_alignment(*args, search="full"), best_alignment(*args, search="coarse")
    for key in full:
        assert (coarse[key] >= full[key] - 1e-6).all(), key
    # the roof moved by an odd number of pixels: a move the coarse lattice lacks, found by the refinement
    np.testing.assert_allclose(coarse["ssim"][0], full["ssim"][0], atol=1e-6)
    np.testing.assert_allclose(coarse["colour"][0], full["colour"][0], atol=1e-6)


def test_a_zone_without_valid_pixels_is_nan():
    before, after, stats, lum_stats, valid, fz, rz, labels, idx, n = _inputs(4)
    keep = ~((labels == 1) | (labels == n + 1))
    got = best_alignment(before.mean(axis=0), after.mean(axis=0), before, after, lum_stats, stats.ranges, 1.5, 2,
                         labels[keep], idx[keep], n)
    assert np.isnan(got["ssim"][1]) and np.isnan(got["ring_colour"][1])
    assert np.isfinite(got["ssim"][0])


def test_gaussian_weights_are_scipys():
    x = np.zeros(41)
    x[20] = 1.0
    for sigma in (0.8, 1.5, 2.3):
        w = gaussian_weights(sigma)
        got = ndimage.gaussian_filter1d(x, sigma, mode="reflect", truncate=3.5)
        r = len(w) // 2
        np.testing.assert_allclose(got[20 - r : 21 + r], w[::-1], atol=1e-12)
        assert np.allclose(got[: 20 - r], 0) and np.allclose(got[21 + r :], 0)


def test_unknown_search_is_refused():
    before, after, stats, lum_stats, valid, fz, rz, labels, idx, n = _inputs(0)
    with pytest.raises(ValueError, match="search"):
        best_alignment(before.mean(axis=0), after.mean(axis=0), before, after, lum_stats, stats.ranges, 1.5, 2,
                       labels, idx, n, search="fast")


def test_the_refinement_takes_every_lattice_move_next_to_the_best():
    from damage.optical.alignment import _neighbours

    got = _neighbours(np.array([12, 0, 24]), 5).reshape(3, 5, 5)
    centre = np.zeros((5, 5), bool)
    centre[1:4, 1:4] = True
    np.testing.assert_array_equal(got[0], centre)  # (0, 0) of a 5 x 5 lattice
    corner = np.zeros((5, 5), bool)
    corner[:2, :2] = True
    np.testing.assert_array_equal(got[1], corner)  # clipped at the lattice's edge
    np.testing.assert_array_equal(got[2], corner[::-1, ::-1])


@pytest.mark.parametrize("search", ["full", "coarse"])
def test_a_building_s_numbers_do_not_depend_on_its_window_strip_or_neighbours(search, monkeypatch):
    """Maps are made once per pixel on the union of the boxes that need a move, strip by strip: a
    building's sums must be the same to the bit alone or among others, in any strip height, in a
    window cut elsewhere (the batch's chunks against one assess)."""
    import damage.optical.alignment as alignment

    before, after, stats, lum_stats, valid, fz, rz, labels, idx, n = _inputs(5)

    def run(b, a, lab, ix, strip=alignment.STRIP):
        monkeypatch.setattr(alignment, "STRIP", strip)
        return best_alignment(b.mean(axis=0), a.mean(axis=0), b, a, lum_stats, stats.ranges, 1.5, 3, lab, ix, n,
                              search=search)

    together = run(before, after, labels, idx)
    for strip in (5, 16, 200):
        other = run(before, after, labels, idx, strip)
        for key in together:
            np.testing.assert_array_equal(other[key], together[key], err_msg=f"{key}, strip {strip}")
    owner = np.where(labels >= n, labels - n, labels)
    for i in range(n):
        alone = run(before, after, labels[owner == i], idx[owner == i])
        for key in together:
            assert np.isnan(alone[key][np.arange(n) != i]).all()
            np.testing.assert_array_equal(alone[key][i], together[key][i], err_msg=f"{key}, building {i}")
    # the window cut 9 rows and 7 columns in: buildings 0, 1 and 3 lie far enough inside both
    size = before.shape[1]
    rows, cols = np.divmod(idx, size)
    inside = (rows >= 9) & (cols >= 7) & np.isin(owner, [0, 1, 3])
    cut = run(before[:, 9:, 7:].copy(), after[:, 9:, 7:].copy(), labels[inside],
              (rows[inside] - 9) * (size - 7) + cols[inside] - 7)
    for key in together:
        np.testing.assert_array_equal(cut[key][[0, 1, 3]], together[key][[0, 1, 3]], err_msg=f"{key}, cut window")


def test_pixels_are_grouped_by_building_in_order_with_exact_rows():
    """group_pixels: footprint then ring of each building, each in the order its pixels come; rows from a
    float product corrected where it rounds across a row (flat indices right at and around multiples of
    the width, up to 2**40)."""
    from damage.optical._compiled import group_pixels

    n = 3
    labels = np.array([4, 0, 3, 0, 5, 1, 4, 0], np.int64)  # rings of buildings 1, 0, 2; footprints 0, 1
    idx = np.arange(8, dtype=np.int64) * 11
    seg, prow, pcol = group_pixels(labels, idx, n, 5)
    np.testing.assert_array_equal(seg, [0, 3, 4, 5, 7, 7, 8])
    np.testing.assert_array_equal(prow * 5 + pcol, idx[[1, 3, 7, 2, 5, 0, 6, 4]])
    for cols in (1, 3, 1056, 99_991, 2**20 + 7):
        k = np.unique(np.r_[np.arange(1, 2000), np.geomspace(2000, 2**40 // cols, 3000).astype(np.int64)])
        flat = np.sort(np.concatenate([k * cols - 1, k * cols, k * cols + 1, k * cols + cols - 1]))
        _, rows, col = group_pixels(np.zeros(flat.size, np.int64), flat, 1, cols)
        np.testing.assert_array_equal(rows, flat // cols, err_msg=str(cols))
        np.testing.assert_array_equal(col, flat % cols, err_msg=str(cols))


def test_zones_listed_bottom_row_first_give_the_same_answer():
    """The compiled loop reads each zone strip by strip: pixels that do not come in row order are put in it."""
    before, after, stats, lum_stats, valid, fz, rz, labels, idx, n = _inputs(0)
    args = (before.mean(axis=0), after.mean(axis=0), before, after, lum_stats, stats.ranges, 1.5, 2)
    reverse = np.lexsort((-idx, labels))  # the same zones, each listed bottom row first
    want = best_alignment(*args, labels, idx, n, search="full")
    got = best_alignment(*args, labels[reverse], idx[reverse], n, search="full")
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=key)
