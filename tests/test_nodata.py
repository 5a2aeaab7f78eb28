"""Which source pixels hold data: declared masks, non-finite values, black fill."""

import numpy as np

from damage.io.nodata import source_valid


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
