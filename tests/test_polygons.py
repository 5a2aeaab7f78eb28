"""Changed areas inside footprints, as polygons tagged with their footprint."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from affine import Affine
from rasterio.crs import CRS

from damage.geo.polygons import changed_polygons
from damage.geo.raster import Grid
from damage.geo.zonal import zones

GRID = Grid(CRS.from_epsg(32615), Affine(0.5, 0, 0, 0, -0.5, 20), (40, 40))  # 20 x 20 m at 0.5 m


def test_change_inside_footprints_becomes_their_polygons_specks_and_ground_do_not():
    a = shapely.box(1, 1, 9, 9)  # rows 22..37, cols 2..17
    b = shapely.box(11, 11, 19, 19)  # rows 2..17, cols 22..37
    zs = zones(np.array([a, b], dtype=object), GRID)
    changed = np.zeros(GRID.shape, bool)
    changed[24:30, 4:10] = True  # 6 x 6 px inside a: 9 m2
    changed[5, 25] = True  # one pixel inside b: a speck
    changed[0:4, 0:4] = True  # ground, outside every footprint
    geoms, owner = changed_polygons(changed, zs, GRID, min_pixels=8)
    assert owner.tolist() == [0]
    assert shapely.area(geoms[0]) == pytest.approx(36 * 0.25)
    assert geoms[0].within(a)


def test_overlapping_footprints_each_get_the_change_they_share():
    a, b = shapely.box(1, 1, 9, 9), shapely.box(5, 1, 13, 9)
    zs = zones(np.array([a, b], dtype=object), GRID)
    changed = np.zeros(GRID.shape, bool)
    changed[26:32, 12:16] = True  # x 6..8 m: inside both
    geoms, owner = changed_polygons(changed, zs, GRID, min_pixels=8)
    assert sorted(owner.tolist()) == [0, 1]
    assert shapely.area(geoms).tolist() == pytest.approx([24 * 0.25, 24 * 0.25])


def test_a_changed_blob_mostly_on_the_ground_leaves_no_sliver_in_the_footprint():
    a = shapely.box(1, 1, 9, 9)  # cols 2..17
    zs = zones(np.array([a], dtype=object), GRID)
    changed = np.zeros(GRID.shape, bool)
    changed[24:27, 16:22] = True  # 18 px, 6 of them inside the footprint: smaller than min_pixels there
    geoms, owner = changed_polygons(changed, zs, GRID, min_pixels=8)
    assert owner.size == 0
    geoms, owner = changed_polygons(changed, zs, GRID, min_pixels=4)
    assert owner.tolist() == [0] and shapely.area(geoms[0]) == pytest.approx(6 * 0.25)
