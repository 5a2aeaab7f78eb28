import numpy as np
import pytest

from damage.optical.normalize import NORMALIZERS, normalize
from damage.scenes.synthetic import make_scene


@pytest.mark.parametrize("method", ["regression", "histogram"])
def test_a_sensor_gain_and_offset_are_removed(method):
    scene = make_scene(size=192, seed=1)
    before = scene.before.astype(np.float32)
    after = before * np.array([1.3, 0.8, 1.1], np.float32)[:, None, None] + np.array([-20, 15, 5], np.float32)[:, None, None]
    valid = np.ones(before.shape[1:], bool)
    out, params = normalize(before, after, valid, method)
    assert params["applied"]
    assert np.abs(out - before).mean() < 1.0


def test_regression_reports_its_fit_and_none_is_identity():
    scene = make_scene(size=128)
    b = scene.before.astype(np.float32)
    out, params = normalize(b, 2 * b, np.ones(b.shape[1:], bool), "regression")
    assert params["gain"] == pytest.approx([0.5, 0.5, 0.5], abs=1e-3)
    same, _ = NORMALIZERS["none"](b, 2 * b, np.ones(b.shape[1:], bool))
    assert (same == 2 * b).all()
