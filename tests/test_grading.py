import numpy as np
import pytest

from damage.grading import SCALES, calibrate, grade, log_change, score


def test_grades_follow_the_scale_cut_points():
    scores = np.array([0.0, 0.24, 0.25, 0.6, 0.75, 1.0, np.nan])
    analysed = np.array([True] * 6 + [False])
    assert grade(scores, analysed, "xbd").tolist() == [
        "no-damage", "no-damage", "minor-damage", "major-damage", "destroyed", "destroyed", "not-analysed",
    ]


def test_calibration_is_relative_to_the_scene_reference():
    rng = np.random.default_rng(0)
    intact = rng.uniform(0.5, 0.6, 80)
    for offset in (0.0, 0.2):  # a pair whose intact level is higher grades the same
        c = 1 - (1 - intact) * np.exp(-offset)
        cal = calibrate(c, np.empty(0))
        s = score(c, cal)
        assert (s < 0.25).mean() > 0.8
        destroyed = 1 - (1 - 0.55) * np.exp(-offset - 0.8)
        assert score(np.array([destroyed]), cal)[0] == pytest.approx(1.0, abs=0.15)


def test_few_footprints_calibrate_on_blocks():
    cal = calibrate(np.array([0.9, 0.95]), np.full(100, 0.1))
    assert cal.population == "blocks"
    assert cal.reference == pytest.approx(log_change(np.array([0.1]))[0])


def test_scales_are_well_formed():
    for scale in SCALES.values():
        assert len(scale.thresholds) == len(scale.levels) - 1
        assert set(scale.damaged) <= set(scale.levels)
