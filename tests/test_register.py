import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from damage.optical.register import estimate_shift
from damage.scenes.synthetic import make_scene

SCENE = make_scene(size=384, seed=3).before.mean(axis=0).astype(np.float32)


@settings(max_examples=12, deadline=None)
@given(dy=st.floats(-4, 4), dx=st.floats(-4, 4))
def test_a_pure_shift_is_recovered_to_a_tenth_of_a_pixel(dy, dx):
    after = ndimage.shift(SCENE, (dy, dx), order=3, mode="nearest")
    shift = estimate_shift(SCENE, after, np.ones(SCENE.shape, bool))
    assert shift.applied
    assert shift.dy == pytest.approx(dy, abs=0.1)
    assert shift.dx == pytest.approx(dx, abs=0.1)


def test_changed_blocks_do_not_drag_the_consensus():
    after = ndimage.shift(SCENE, (1.25, -0.5), order=3, mode="nearest")
    rng = np.random.default_rng(0)
    after[:128, :128] = rng.uniform(0, 255, (128, 128))  # one block of pure change
    shift = estimate_shift(SCENE, after, np.ones(SCENE.shape, bool))
    assert (shift.dy, shift.dx) == pytest.approx((1.25, -0.5), abs=0.1)


def test_too_little_valid_data_applies_no_shift():
    valid = np.zeros(SCENE.shape, bool)
    assert not estimate_shift(SCENE, SCENE, valid).applied


def test_a_slight_rotation_is_fitted_as_an_affine_field():
    big = make_scene(size=640, buildings=36, seed=5).before.mean(axis=0).astype(np.float32)
    h, w = big.shape
    t = np.radians(0.5)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    shift = np.array([2.0, -1.0])
    # the after content at (r, c) is the before content at rot @ ((r, c) - centre - shift) + centre
    after = ndimage.affine_transform(big, rot, offset=centre - rot @ (centre + shift), order=3, mode="nearest")
    est = estimate_shift(big, after, np.ones(big.shape, bool))
    assert est.applied and est.gradient != ((0.0, 0.0), (0.0, 0.0))
    assert (est.dy, est.dx) == pytest.approx(tuple(shift), abs=0.15)
    assert abs(est.rotation_deg) == pytest.approx(0.5, abs=0.1)
    # the fitted field maps every grid pixel onto its content in the after image
    rr, cc = np.mgrid[0:h:64, 0:w:64]
    fwd = est.pixel_affine()
    true_r = (np.linalg.inv(rot) @ (np.stack([rr.ravel(), cc.ravel()]) - centre[:, None]) + centre[:, None] + shift[:, None])
    got_c, got_r = fwd * (cc.ravel().astype(float), rr.ravel().astype(float))
    assert np.abs(got_r - true_r[0]).max() < 0.3 and np.abs(got_c - true_r[1]).max() < 0.3
