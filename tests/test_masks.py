import numpy as np

from damage.io.nodata import source_valid
from damage.optical.masks import erode


def test_black_fill_touching_the_edge_is_invalid_but_dark_specks_are_not():
    data = np.full((3, 40, 40), 100, dtype=np.uint8)
    data[:, :, :10] = 0  # fill along the left edge
    data[:, 20:22, 20:22] = 0  # a 4-pixel black speck inside the scene
    valid = source_valid(data, None, black_fill=True)
    assert not valid[:, :10].any()
    assert valid[20:22, 20:22].all()
    assert valid[:, 10:].all()


def test_declared_mask_wins_and_black_fill_can_be_switched_off():
    data = np.zeros((3, 10, 10), dtype=np.uint8)
    declared = np.ones((10, 10), bool)
    declared[0] = False
    assert (source_valid(data, declared) == declared).all()
    assert source_valid(data, None, black_fill=False).all()


def test_nan_is_invalid_and_erode_shrinks():
    data = np.ones((2, 10, 10), dtype=np.float32)
    data[1, 5, 5] = np.nan
    valid = source_valid(data, None)
    assert valid.sum() == 99
    assert erode(valid, 1).sum() == 8 * 8 - 9  # the grid edge counts as no data too
