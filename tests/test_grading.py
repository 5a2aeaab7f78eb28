import numpy as np

from damage.grading import SCALES, grade, log_change


def test_grades_follow_the_scale_cut_points():
    scores = np.array([0.0, 0.24, 0.25, 0.6, 0.75, 1.0, np.nan])
    analysed = np.array([True] * 6 + [False])
    assert grade(scores, analysed, "xbd").tolist() == [
        "no-damage", "no-damage", "minor-damage", "major-damage", "destroyed", "destroyed", "not-analysed",
    ]


def test_log_change_is_a_loss_of_similarity():
    assert log_change(np.array([0.0]))[0] == 0.0
    np.testing.assert_allclose(log_change(np.array([0.5])), [np.log(2.0)])
    assert np.isfinite(log_change(np.array([1.0]))[0])  # clipped, never infinite


def test_scales_are_well_formed():
    for scale in SCALES.values():
        assert len(scale.thresholds) == len(scale.levels) - 1
        assert set(scale.damaged) <= set(scale.levels)
