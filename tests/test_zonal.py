import numpy as np
import pytest
import shapely
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.crs import CRS

from damage.geo.raster import Grid
from damage.geo.zonal import grouped_quantiles, overlap_layers, span_sums, zonal_stats, zones

GRID = Grid(CRS.from_epsg(32615), Affine(1, 0, 0, 0, -1, 20), (20, 20))


def test_overlapping_footprints_each_get_all_their_pixels():
    a = shapely.box(2, 2, 10, 10)  # 64 pixels
    b = shapely.box(6, 6, 14, 14)  # 64 pixels, 16 shared with a
    c = shapely.box(15, 15, 18, 18)  # 9 pixels, alone
    zs = zones(np.array([a, b, c], dtype=object), GRID)
    counts = zs.count(np.ones(GRID.shape, bool))
    assert counts.tolist() == [64, 64, 9]
    values = np.zeros(GRID.shape)
    values[10:14, 6:10] = 1.0  # rows 10..13 are y 10..6: the shared square of a and b
    mean = zonal_stats(zs, values, np.ones(GRID.shape, bool))["mean"]
    assert mean == pytest.approx([16 / 64, 16 / 64, 0.0])


def test_tiny_footprints_still_get_pixels_and_empty_ones_get_none():
    tiny = shapely.box(3.1, 3.1, 3.4, 3.4)  # covers no pixel centre
    zs = zones(np.array([tiny, shapely.Polygon(), None], dtype=object), GRID)
    counts = zs.count(np.ones(GRID.shape, bool))
    assert counts[0] >= 1 and counts[1] == 0 and counts[2] == 0


def test_footprint_off_the_grid_has_a_true_area_larger_than_its_pixels():
    half_out = shapely.box(-4, 2, 4, 6)  # 32 m2, 16 on the grid
    zs = zones(np.array([half_out], dtype=object), GRID)
    assert zs.area_pixels[0] == pytest.approx(32)
    assert zs.count(np.ones(GRID.shape, bool))[0] == 16


def test_invalid_pixels_do_not_count():
    zs = zones(np.array([shapely.box(0, 0, 10, 10)], dtype=object), GRID)
    valid = np.ones(GRID.shape, bool)
    valid[10:, :5] = False
    values = np.where(valid, 1.0, 100.0)
    assert zonal_stats(zs, values, valid)["mean"][0] == pytest.approx(1.0)
    assert zs.count(valid)[0] == 50


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.floats(-50, 50)), min_size=1, max_size=60), st.floats(0, 1))
def test_grouped_quantiles_match_numpy(pairs, q):
    labels = np.array([p[0] for p in pairs])
    values = np.array([p[1] for p in pairs])
    order = np.argsort(labels, kind="stable")
    for lab, val in ((labels, values), (labels[order], values[order])):  # in any order, or grouped already
        got, median = grouped_quantiles(lab, val, 7, (q, 0.5))
        for k in range(7):
            if (labels == k).any():
                assert got[k] == pytest.approx(np.quantile(values[labels == k], q), abs=1e-9)
                assert median[k] == pytest.approx(np.median(values[labels == k]), abs=1e-9)
            else:
                assert np.isnan(got[k]) and np.isnan(median[k])


def test_overlap_layers_separate_overlaps_but_not_touching():
    geoms = np.array([shapely.box(0, 0, 2, 2), shapely.box(2, 0, 4, 2), shapely.box(1, 1, 3, 3)], dtype=object)
    layer = overlap_layers(geoms)
    assert layer[0] == layer[1]  # touching only
    assert layer[2] != layer[0]


@settings(max_examples=40, deadline=None)
@given(
    cx=st.floats(-3, 23), cy=st.floats(-3, 23), w=st.floats(0.5, 12), h=st.floats(0.5, 12),
    angle=st.floats(0, 90), hole=st.booleans(), wing=st.booleans(),
)
def test_spans_burn_the_same_pixels_as_gdal(cx, cy, w, h, angle, hole, wing):
    """Pixel centres inside, as rasterio.features.rasterize (all_touched=False) burns them."""
    from rasterio.features import rasterize

    from damage.geo.zonal import spans

    poly = shapely.box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
    if wing:
        poly = shapely.union(poly, shapely.box(cx, cy, cx + w, cy + h / 3))
    if hole and w > 3 and h > 3:
        poly = shapely.difference(poly, shapely.box(cx - w / 5, cy - h / 5, cx + w / 5, cy + h / 5))
    poly = shapely.affinity.rotate(poly, angle, origin=(cx, cy))
    grid = Grid(CRS.from_epsg(32615), Affine(1, 0, 0, 0, -1, 20), (20, 20))
    expected = rasterize([(poly, 1)], out_shape=grid.shape, transform=grid.transform, all_touched=False) > 0
    owner, row, start, end = spans(np.array([poly], dtype=object), grid)
    got = np.zeros(grid.shape, bool)
    for r, a, b in zip(row, start, end):
        got[r, a:b] = True
    # a pixel centre exactly on an edge may go either way: compare the others
    rows, cols = np.mgrid[0:20, 0:20]
    centres = shapely.points(cols.ravel() + 0.5, 20 - rows.ravel() - 0.5)
    clear = (shapely.distance(centres, poly.boundary) > 1e-9).reshape(grid.shape)
    assert (got != expected)[clear].sum() == 0


def test_small_footprints_take_every_touched_pixel():
    from rasterio.features import rasterize

    sheds = [shapely.box(3.2, 3.2, 4.7, 4.4), shapely.box(10.1, 10.1, 10.3, 11.9)]
    zs = zones(np.array(sheds, dtype=object), GRID)
    for i, shed in enumerate(sheds):
        touched = rasterize([(shed, 1)], out_shape=GRID.shape, transform=GRID.transform, all_touched=True) > 0
        mine = np.zeros(GRID.shape, bool)
        lab, idx = zs.pixels()
        mine.ravel()[idx[lab == i]] = True
        assert (mine == touched).all()


def test_areas_are_in_pixels_of_the_grid_at_half_a_unit():
    """At res 0.5 a 10 x 10 box is 400 pixels (its area over the square of the resolution)."""
    fine = Grid(CRS.from_epsg(32615), Affine(0.5, 0, 0, 0, -0.5, 20), (40, 40))
    zs = zones(np.array([shapely.box(2, 2, 12, 12)], dtype=object), fine)
    assert zs.area_pixels[0] == pytest.approx(400.0)
    assert zs.count(np.ones(fine.shape, bool))[0] == 400
    half_out = zones(np.array([shapely.box(-4, 2, 4, 6)], dtype=object), fine)  # 32 m2, half of it on the grid
    assert half_out.area_pixels[0] == pytest.approx(128.0)
    assert half_out.count(np.ones(fine.shape, bool))[0] == 64


def test_a_footprint_of_exactly_min_pixels_keeps_its_own_pixels():
    """Four pixel centres inside and min_pixels=4: its own 4 pixels, not the 9 it touches; 3 is small."""
    box = shapely.box(0.4, 0.4, 2.4, 2.4)  # centres 0.5 and 1.5 on each axis inside; touches pixels 0..2
    counts = zones(np.array([box], dtype=object), GRID, min_pixels=4).count(np.ones(GRID.shape, bool))
    assert counts[0] == 4
    counts = zones(np.array([box], dtype=object), GRID, min_pixels=5).count(np.ones(GRID.shape, bool))
    assert counts[0] == 9


@pytest.mark.parametrize("top, bottom", [(500, 530), (0, 600), (511, 512), (1023, 1030)])
def test_sums_are_exact_across_the_bands_of_rows(top, bottom):
    """Grids taller than a band of running sums (512 rows): no row at a band's edge is lost."""
    tall = Grid(CRS.from_epsg(32615), Affine(1, 0, 0, 0, -1, 1100), (1100, 30))
    box = shapely.box(5, 1100 - bottom, 15, 1100 - top)  # rows top..bottom-1, 10 columns
    zs = zones(np.array([box], dtype=object), tall)
    values = np.arange(1100 * 30, dtype=float).reshape(1100, 30)
    valid = np.ones(tall.shape, bool)
    total, count = span_sums(zs, values, valid)
    assert count[0] == 10 * (bottom - top)
    assert total[0] == pytest.approx(values[top:bottom, 5:15].sum())
