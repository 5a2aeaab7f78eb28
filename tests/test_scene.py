"""A scene's fit as values: the cloud mask on windows, the registration move, the radiometry, the record."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from damage.geo.raster import Window
from damage.grading import Calibration, log_change
from damage.optical.normalize import apply
from damage.optical.register import NO_SHIFT, Shift
from damage.optical.scene import CloudMask, SceneFit, moving, radiometry
from damage.scenes.synthetic import make_scene

OPTIONS = {"ssim_sigma": 1.5, "shift_tolerance": 1, "metrics": (("ssim", 1.0),)}


def test_a_cloud_mask_on_an_overview_gives_each_grid_pixel_its_overview_pixel():
    mask = np.zeros((3, 4), bool)  # a 10 x 15 grid seen 4 times coarser: ceil(10 / 4) x ceil(15 / 4)
    mask[1, 2] = True  # grid rows 4..7, columns 8..11
    mask[2, 3] = True  # grid rows 8..9, columns 12..14 (the overview's ragged last pixel)
    clouds = CloudMask(4, mask, {"cloud_share": 0.1})
    whole = clouds.window(Window(0, 0, 10, 15))
    expected = np.zeros((10, 15), bool)
    expected[4:8, 8:12] = True
    expected[8:10, 12:15] = True
    assert whole.shape == (10, 15) and np.array_equal(whole, expected)
    # any window of the grid is the same part of it
    for win in (Window(3, 7, 4, 6), Window(6, 10, 4, 5), Window(0, 0, 1, 1), Window(9, 14, 1, 1)):
        assert np.array_equal(clouds.window(win), expected[win.slices])
    # pixels past the overview's last one (a window running off the grid) take the last one
    assert clouds.window(Window(9, 13, 5, 6)).all()  # grid rows 9..13, columns 13..18: overview row 2, column 3
    # on the grid itself (factor 1) the window is the mask's own pixels
    full = CloudMask(1, expected, {})
    assert np.array_equal(full.window(Window(2, 5, 7, 9)), expected[2:9, 5:14])


def test_a_mask_without_clouds_gives_zeros_of_the_window_shape():
    clear = CloudMask(8, np.zeros((2, 2), bool), {"cloud_share": 0.0})
    out = clear.window(Window(100, 200, 30, 40))  # far past the mask: no lookup at all
    assert out.shape == (30, 40) and out.dtype == bool and not out.any()


def test_nothing_moves_for_no_shift_a_negligible_one_or_one_not_applied():
    assert moving(None) is None and moving(NO_SHIFT) is None
    assert moving(Shift(0.03, -0.03, 9, 0.1, True)) is None  # 0.042 px: negligible
    assert moving(Shift(3.0, 2.0, 9, 0.1, False)) is None  # measured, not applied (too uncertain)
    assert moving(Shift(0.0, 0.06, 9, 0.1, True)) == Affine(1, 0, 0.06, 0, 1, 0)
    assert moving(Shift(1.5, -2.25, 9, 0.1, True)) == Affine(1, 0, -2.25, 0, 1, 1.5)
    # a rotation or scale moves the after epoch even where its shift at the centre is small
    turned = Shift(0.0, 0.0, 9, 0.1, True, gradient=((0.0, 0.001), (-0.001, 0.0)), centre=(10.0, 10.0))
    assert turned.magnitude < 0.05 and moving(turned) == turned.pixel_affine() != Affine.identity()


@pytest.fixture(scope="module")
def pair():
    """A synthetic scene's before (float32) and an after made from it by ``1.3 * before + 12``, all valid."""
    scene = make_scene(size=128, buildings=9, seed=4)
    before = scene.before.astype(np.float32)
    return before, (1.3 * before + 12.0).astype(np.float32), np.ones(before.shape[1:], bool)


def test_radiometry_recovers_a_linear_sensor_change_and_the_normalised_after_is_the_before(pair):
    before, after, valid = pair
    params, stats, calib = radiometry(before, after, valid, method="regression", **OPTIONS)
    assert params["method"] == "regression" and params["applied"]
    np.testing.assert_allclose(params["gain"], 1 / 1.3, atol=2e-4)
    np.testing.assert_allclose(params["offset"], -12.0 / 1.3, atol=0.02)
    normalised = apply(after, params)
    assert np.abs(normalised - before).max() < 0.1
    # statistics of the before epoch and of the normalised after (the same noise, as it is the same image)
    assert stats.ranges.shape == (3,) and (stats.ranges > 0).all()
    np.testing.assert_allclose(stats.noise_after, stats.noise_before, rtol=0.01)
    # nothing changed in structure: the typical change is none, measured on blocks of the scene
    assert isinstance(calib, Calibration) and calib.population == "steadiest blocks" and calib.size > 0
    assert calib.reference == pytest.approx(0.0, abs=1e-3)


def test_without_normalisation_the_scene_reads_the_sensor_change_as_change(pair):
    before, after, valid = pair
    params, stats, calib = radiometry(before, after, valid, method="none", **OPTIONS)
    assert params == {"method": "none", "applied": False}
    np.testing.assert_allclose(stats.noise_after, 1.3 * stats.noise_before, rtol=0.05)  # after not normalised
    _, _, fitted = radiometry(before, after, valid, method="regression", **OPTIONS)
    assert calib.reference > fitted.reference + 1e-3  # more typical change than after normalisation
    hist, _, _ = radiometry(before, after, valid, method="histogram", **OPTIONS)
    assert hist["method"] == "histogram" and np.abs(apply(after, hist) - before).mean() < 1.0


def test_radiometry_on_too_few_valid_pixels_is_not_applied(pair):
    before, after, _ = pair
    valid = np.zeros(before.shape[1:], bool)
    valid[:5, :5] = True
    params, _, _ = radiometry(before, after, valid, method="regression", **OPTIONS)
    assert params["applied"] is False and "fewer than 100 valid pixels" in params["reason"]


def test_the_scene_fit_record_holds_every_part_of_the_fit(pair):
    before, after, valid = pair
    params, stats, calib = radiometry(before, after, valid, method="histogram", **OPTIONS)
    clouds = CloudMask(4, np.zeros((32, 32), bool), {"cloud_share": 0.0, "shadow_share": 0.0})
    shift = Shift(0.5, -0.25, 12, 0.2, True)
    fit = SceneFit(shift, params, stats, calib, clouds)
    record = fit.to_dict()
    assert set(record) == {"registration", "normalization", "scene_stats", "clouds", "calibration", "fitted_on"}
    assert record["registration"] == shift.to_dict() and record["registration"]["dx_px"] == -0.25
    assert "tables" not in record["normalization"] and record["normalization"]["method"] == "histogram"
    assert record["clouds"] == {"applied": True, "overview_factor": 4, "cloud_share": 0.0, "shadow_share": 0.0}
    assert record["scene_stats"] == stats.to_dict() and record["calibration"] == calib.to_dict()
    assert record["fitted_on"] == "whole scene" and fit.move == Affine(1, 0, -0.25, 0, 1, 0.5)
    bare = SceneFit(None, {"method": "none", "applied": False}, stats, calib, None, "sample blocks").to_dict()
    assert bare["registration"] == {"applied": False} and bare["clouds"] == {"applied": False}
    assert bare["fitted_on"] == "sample blocks"
    assert SceneFit(None, params, stats, calib, None).move is None
    assert calib.reference == pytest.approx(float(log_change(np.array([0.0]))[0]), abs=0.05)
