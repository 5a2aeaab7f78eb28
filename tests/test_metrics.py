import numpy as np
import pytest

from damage.optical.metrics import METRICS, combined, register
from damage.scenes.synthetic import make_scene


@pytest.fixture(scope="module")
def scene():
    s = make_scene(size=128, buildings=4, damaged=(0,), noise=0.0)
    return s.before.astype(np.float32), s.after.astype(np.float32)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_identical_epochs_show_no_change(scene, name):
    before, _ = scene
    m = METRICS[name](before, before.copy(), np.ones(before.shape[1:], bool))
    assert m.shape == before.shape[1:] and m.dtype == np.float32
    assert float(m.max()) < 1e-3


@pytest.mark.parametrize("name", sorted(METRICS))
def test_rubble_changes_more_than_the_untouched_ground(scene, name):
    before, after = scene
    m = METRICS[name](before, after, np.ones(before.shape[1:], bool))
    changed = np.abs(after - before).max(axis=0) > 0
    assert 0 <= m.min() and m.max() <= 1
    assert m[changed].mean() > 5 * m[~changed].mean() + 0.05


def test_after_normalisation_a_brightness_and_contrast_change_is_no_change(scene):
    from damage.optical.normalize import normalize

    before, _ = scene
    valid = np.ones(before.shape[1:], bool)
    raw = METRICS["ssim"](before, before * 1.5 + 20, valid)
    after, _ = normalize(before, before * 1.5 + 20, valid, "regression")
    fixed = METRICS["ssim"](before, after, valid)
    assert float(np.median(raw)) > 0.1  # SSIM alone sees the luminance change ...
    assert float(fixed.max()) < 1e-3  # ... normalisation removes it


def test_registry_accepts_new_metrics_and_combines_by_weight(scene):
    before, after = scene

    @register("ones_for_test")
    def ones(b, a, v, sigma=1.5):
        return np.ones(b.shape[1:], np.float32)

    try:
        change, maps = combined(before, after, np.ones(before.shape[1:], bool), (("ones_for_test", 1.0), ("absdiff", 1.0)))
        assert np.allclose(change, 0.5 * (1 + maps["absdiff"]))
    finally:
        METRICS.pop("ones_for_test")


@pytest.mark.parametrize("shape,tolerance", [((3, 61, 47), 1), ((1, 20, 33), 2), ((4, 40, 40), 0)])
def test_the_compiled_ssim_is_the_smallest_of_its_maps(shape, tolerance):
    from scipy import ndimage

    from damage.optical.metrics import displacements, scene_stats, ssim_compiled, ssim_maps

    rng = np.random.default_rng(sum(shape))
    before = ndimage.gaussian_filter(rng.normal(100, 30, shape), (0, 1.2, 1.2)).astype(np.float32)
    after = (np.roll(before, (1, -1), axis=(1, 2)) + rng.normal(0, 3, shape)).astype(np.float32)
    after[:, 5:15, 5:20] = rng.normal(120, 40, (shape[0], 10, 15))
    stats = scene_stats(before, after, np.ones(shape[1:], bool))
    moves = displacements(tolerance)
    want = np.min(list(ssim_maps(before, after, 1.5, moves, stats)), axis=0)
    got = ssim_compiled(before, after, 1.5, moves, stats)
    np.testing.assert_allclose(got, want, atol=2e-3)  # float32 rounding of products near 1e4
    assert np.abs(got - want).mean() < 1e-4
    # made a strip of rows at a time, with its halo: the same map to the bit, whatever the strip
    for strip in (1, 4, 9, 16):
        np.testing.assert_array_equal(ssim_compiled(before, after, 1.5, moves, stats, strip=strip), got)


@pytest.mark.parametrize("shape,sigma", [((64, 81), 1.5), ((5, 7), 1.5), ((40, 33), 0.8), ((3, 200), 2.5)])
def test_the_compiled_gaussian_is_scipys_to_the_bit(shape, sigma):
    from scipy import ndimage

    from damage.optical.metrics import _gauss

    x = np.random.default_rng(shape[0]).normal(100, 30, shape).astype(np.float32)
    want = ndimage.gaussian_filter(x, sigma, mode="reflect", truncate=3.5)
    np.testing.assert_array_equal(_gauss(x, sigma), want)
