"""Grid, Window: the values passed between steps."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from damage.geo.raster import Grid, Window

GRID = Grid(CRS.from_epsg(32615), Affine(0.5, 0, 1000.0, 0, -0.5, 2000.0), (700, 530))


@pytest.mark.parametrize("size", [256, 100, 1024, 7])
def test_windows_tile_the_grid_once(size):
    cover = np.zeros(GRID.shape, int)
    for win in GRID.windows(size):
        assert 0 < win.height <= size and 0 < win.width <= size
        cover[win.slices] += 1
    assert (cover == 1).all()


def test_a_window_is_its_subgrid_in_numpy_order():
    win = Window(10, 20, 30, 40)
    row, col, h, w = win  # unpacks as (row, col, height, width)
    assert (row, col, h, w) == (10, 20, 30, 40)
    sub = win.of(GRID)
    assert sub.shape == (30, 40) and sub.crs == GRID.crs
    assert sub.transform * (0, 0) == GRID.transform * (20, 10)  # col 20, row 10 of the grid
    values = np.arange(700 * 530).reshape(GRID.shape)
    assert values[win.slices][0, 0] == values[10, 20] and values[win.slices].shape == (30, 40)
    with pytest.raises(AttributeError):
        win.row = 3  # frozen
