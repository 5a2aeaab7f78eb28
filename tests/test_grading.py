import numpy as np
import pytest

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
    from damage.optical.evidence import scene_typical
    from damage.optical.metrics import scene_stats

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


# -- the scene's offset ------------------------------------------------------------------------
def test_scene_offset_predicts_from_standardised_clipped_descriptors():
    from damage.grading import SceneOffset

    m = SceneOffset(("a", "b"), (1.0, 10.0), (0.5, 2.0), (1.0, -0.5), 0.25, residual_sd=2.0, limit=3.0,
                    low=(0.0, 0.0), high=(2.0, 20.0))
    assert m.predict({"a": 1.0, "b": 10.0}) == pytest.approx(0.25)  # at the centre: the intercept
    assert m.predict({"a": 1.5, "b": 14.0}) == pytest.approx(0.25 + 1.0 * 1.0 - 0.5 * 2.0)
    assert m.predict({"a": float("nan")}) == pytest.approx(0.25)  # missing counts as the centre
    assert m.predict({"a": 50.0, "b": 10.0}) == pytest.approx(0.25 + 2.0)  # clipped to a <= 2: z = 2, not 98
    assert m.predict({"a": 2.0, "b": -1e9}) == pytest.approx(min(0.25 + 2.0 + 2.5, 3.0))  # b >= 0, then the limit
    assert SceneOffset.from_dict(m.to_dict()) == m
    with pytest.raises(ValueError):
        SceneOffset(("a",), (1.0,), (1.0,), (1.0,), 0.0, residual_sd=0.0)


def test_scene_descriptors_read_the_fit_record_and_shift_the_model():
    from damage.grading import MODEL, OFFSET, scene_descriptors, scene_model

    record = {"calibration": {"reference": 0.6, "typical": {"edge": -0.2, "delta_e_median": 8.0, "lightness_median": 1.0}},
              "normalization": {"gain": [1.0, 1.2, 1.4]}, "registration": {"applied": False},
              "scene_stats": {"noise_before": [2.0, 4.0], "noise_after": [1.0], "ranges": [150.0, 170.0]}}
    d = scene_descriptors(record, 0.5)
    assert d["reference"] == 0.6 and d["normalization_gain"] == pytest.approx(1.2) and d["noise_before"] == 3.0
    assert np.isnan(d["registration_spread_px"]) and d["resolution_m"] == 0.5 and d["ranges"] == 160.0
    model, rec = scene_model(record, 0.5)
    assert rec["predicted"] == pytest.approx(OFFSET.predict(d), abs=1e-4) and rec["predicted"] != 0.0
    assert model.intercept == pytest.approx(MODEL.intercept + OFFSET.predict(d), abs=1e-4)
    assert model.weights == MODEL.weights and model.cuts == OFFSET.cuts != MODEL.cuts  # its own cuts
    assert rec["residual_sd"] == OFFSET.residual_sd and rec["descriptors"]["registration_spread_px"] is None
    # how much the scene changed does not move its offset (it would rise with the share of damage) ...
    busier = dict(record, calibration={"reference": 0.7, "typical": {"edge": 0.2, "delta_e_median": 15.0,
                                                                     "lightness_median": 2.5}})
    assert OFFSET.predict(scene_descriptors(busier, 0.5)) == OFFSET.predict(d)
    # ... its sensors do: a noisier before image makes the same evidence weigh less
    noisier = dict(record, scene_stats=dict(record["scene_stats"], noise_before=[4.5, 4.5]))
    assert OFFSET.predict(scene_descriptors(noisier, 0.5)) < OFFSET.predict(d)


def test_the_headline_says_how_many_how_sure_and_on_what():
    from damage.analysis.analyst import headline
    from damage.analysis.count import CountCalibration, count_interval

    cal = CountCalibration(-1.0, 2.0, 0.1, 0.9, (0.02, 0.08), 39, ("a", "b", "c"), "some tiles")
    rec = {"config": {"scale": "xbd"}, "damaged_count": count_interval(40, 95, cal)}
    line = headline(rec)
    assert line.startswith("40 of the 95 buildings analysed are graded damaged (major-damage or destroyed); 90 % interval")
    assert "measured on real events: the errors of the grades on 39 tiles of 3 events graded by people (some tiles)" in line
    assert "Too wide" in line  # 40 of 95: +-0.2 or so of the share
    big = headline(dict(rec, damaged_count=count_interval(2, 3000, cal)))
    assert "Too wide" not in big and big.startswith("2 of the 3000")
    modelled = {"expected": 46.3, "low": 1, "high": 93, "buildings": 95, "offset_sd": 2.49, "level": 0.95,
                "rests_on": "the scene offset model (no labels)"}
    line = headline(dict(rec, damaged_count=modelled))
    assert line.startswith("About 46 of the 95") and "95 % interval 1 to 93" in line and "scene offset model" in line
    labelled = headline(dict(rec, damaged_count=modelled, labels={"labels": 18, "damaged": 10}))
    assert "18 buildings an analyst graded" in labelled and "measured" not in labelled
    assert headline({"damaged_count": {"buildings": 0}}) == ""
    assert "Severe Damage or Destroyed" in headline(dict(rec, config={"scale": "unosat"}))


def test_the_scene_offset_is_off_by_default_and_shifts_every_logit_when_on(tmp_path):
    import warnings

    import damage
    from damage.analysis.analyst import headline
    from damage.grading import OFFSET
    from damage.scenes.synthetic import write_pair
    from damage.scenes.town import make_town

    b, a, f = write_pair(make_town(size=256, seed=3), tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", damage.errors.DamageWarning)
        off, on = damage.assess(b, a, f), damage.assess(b, a, f, scene_offset=True)
    shift = on.attrs["damage"]["scene_offset"]["predicted"]
    assert shift != 0.0 and off.attrs["damage"]["scene_offset"]["predicted"] == 0.0
    ok = on["p_damaged"].notna().to_numpy()
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    np.testing.assert_allclose(logit(on["p_damaged"].to_numpy()[ok]) - logit(off["p_damaged"].to_numpy()[ok]), shift, atol=0.01)
    assert off.attrs["damage"]["model"]["intercept"] == MODEL_INTERCEPT()
    assert tuple(on.attrs["damage"]["model"]["cuts"]) == OFFSET.cuts  # the cuts chosen with the offsets
    assert off.attrs["damage"]["damaged_count"]["method"] == "measured"  # the grades counted, the interval measured
    assert on.attrs["damage"]["damaged_count"]["offset_sd"] == OFFSET.residual_sd  # not measured with the offset: modelled
    assert "measured on real events" in headline(off.attrs["damage"]) and "scene offset model" in headline(on.attrs["damage"])


def MODEL_INTERCEPT():
    from damage.grading import MODEL

    return MODEL.intercept
