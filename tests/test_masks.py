import numpy as np
import pytest

from damage.io.nodata import source_valid
from damage.optical.masks import erode


def test_nan_is_invalid_and_erode_shrinks():
    data = np.ones((2, 10, 10), dtype=np.float32)
    data[1, 5, 5] = np.nan
    valid = source_valid(data, None)
    assert valid.sum() == 99
    assert erode(valid, 1).sum() == 8 * 8 - 9  # the grid edge counts as no data too


def _ground(seed=0, size=200):
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    g = ndimage.gaussian_filter(rng.normal(100, 30, (size, size)), 1.0)
    return np.stack([g, g * 1.05, g * 0.9]).astype(np.float32)


def test_an_opaque_cloud_and_its_shadow_are_masked_and_a_clear_pair_is_not():
    from damage.optical.masks import clouds

    before = _ground(0)
    after = before + np.random.default_rng(1).normal(0, 3, before.shape).astype(np.float32)
    valid = np.ones(before.shape[1:], bool)
    mask, info = clouds(before, after, valid, min_pixels=400)
    assert not mask.any() and info["cloud_share"] == 0.0
    cloudy = after.copy()
    cloudy[:, 40:90, 40:90] = 250.0  # a flat white cloud, 50 x 50 px
    cloudy[:, 120:170, 60:110] *= 0.35  # its shadow, darker ground, offset
    mask, info = clouds(before, cloudy, valid, min_pixels=400)
    assert mask[45:85, 45:85].all()  # the cloud, margin included around it
    assert mask[125:165, 65:105].mean() > 0.9  # its shadow
    assert not mask[:, 150:].any() and not mask[:30, :].any()  # the clear parts stay clear
    assert info["cloud_share"] > 0 and info["shadow_share"] > 0 and mask.mean() < 0.25


@pytest.mark.parametrize("radius", [1, 2, 5, 10])
def test_erode_is_radius_erosions_by_a_3_by_3_square_with_no_data_outside(radius):
    from scipy import ndimage

    from damage.optical.masks import erode

    rng = np.random.default_rng(radius)
    valid = ndimage.binary_opening(rng.random((90, 70)) > 0.08, iterations=1)
    want = ndimage.binary_erosion(valid, structure=np.ones((3, 3), bool), iterations=radius, border_value=0)
    np.testing.assert_array_equal(erode(valid, radius), want)
    assert erode(valid, 0) is valid
