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


def test_the_scene_reference_comes_from_its_steadiest_blocks_whatever_the_share_of_damage():
    from damage.evidence import scene_typical
    from damage.metrics import scene_stats

    rng = np.random.default_rng(0)
    before = rng.uniform(50, 200, (3, 160, 160)).astype(np.float32)
    valid = np.ones((160, 160), bool)
    stats = scene_stats(before, before, valid)
    refs = []
    for share in (0.0, 0.3, 0.6, 0.7):  # share of 16-px blocks whose structure is lost
        loss = np.full((160, 160), 0.2, np.float32)
        hit = rng.permutation(100)[: int(share * 100)]
        for k in hit:
            r, c = divmod(int(k), 10)
            loss[r * 16:(r + 1) * 16, c * 16:(c + 1) * 16] = 0.8
        refs.append(scene_typical(before, before, valid, valid, stats, loss)["structure"])
    np.testing.assert_allclose(refs, log_change(np.array([0.2]))[0], rtol=1e-6)
    # the reference follows the whole scene's steady change (another sensor, season): a pair whose
    # unchanged parts differ more gets a higher reference
    loss = np.full((160, 160), 0.35, np.float32)
    assert scene_typical(before, before, valid, valid, stats, loss)["structure"] > refs[0]
