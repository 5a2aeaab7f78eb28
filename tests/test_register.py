import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from damage.register import estimate_shift
from damage.synthetic import make_scene

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
