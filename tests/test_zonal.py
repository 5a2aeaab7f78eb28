import numpy as np
import pytest
import shapely
from affine import Affine
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.crs import CRS

from damage.raster import Grid
from damage.zonal import grouped_quantile, overlap_layers, zonal_stats, zones

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
def test_grouped_quantile_matches_numpy(pairs, q):
    labels = np.array([p[0] for p in pairs])
    values = np.array([p[1] for p in pairs])
    got = grouped_quantile(labels, values, 7, q)
    for k in range(7):
        if (labels == k).any():
            assert got[k] == pytest.approx(np.quantile(values[labels == k], q), abs=1e-9)
        else:
            assert np.isnan(got[k])


def test_overlap_layers_separate_overlaps_but_not_touching():
    geoms = np.array([shapely.box(0, 0, 2, 2), shapely.box(2, 0, 4, 2), shapely.box(1, 1, 3, 3)], dtype=object)
    layer = overlap_layers(geoms)
    assert layer[0] == layer[1]  # touching only
    assert layer[2] != layer[0]
