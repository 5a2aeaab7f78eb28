"""The evidence model: a logistic model of standardised features, its cuts, and a scene's offset on it."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from damage.grading import (
    LEARNED_CUTS,
    MODEL,
    OFFSET,
    UNEXPLAINED_SD,
    Calibration,
    EvidenceModel,
    SceneOffset,
    block_means,
    learned_model,
    log_change,
    model_of,
    scene_model,
)

TOY = EvidenceModel(("a", "b"), (1.0, 0.0), (2.0, 0.5), (1.5, -1.0), -0.5, (0.2, 0.5, 0.8), "toy")


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=float)))


def at_centre(model: EvidenceModel, **changes) -> dict[str, np.ndarray]:
    evidence = {f: np.array([c]) for f, c in zip(model.features, model.centre)}
    evidence.update({k: np.asarray(v, dtype=float) for k, v in changes.items()})
    return evidence


def test_the_logit_is_the_intercept_plus_weighted_standardised_features():
    evidence = {"a": np.array([1.0, 5.0, np.nan]), "b": np.array([0.0, 0.25, 1.0])}
    # (5 - 1) / 2 * 1.5 = 3; (0.25 - 0) / 0.5 * -1 = -0.5; a missing a counts as its centre
    np.testing.assert_allclose(TOY.logit(evidence), [-0.5, -0.5 + 3.0 - 0.5, -0.5 - 2.0])
    np.testing.assert_allclose(TOY.probability(evidence), sigmoid([-0.5, 2.0, -2.5]))
    # far out, the probability saturates but stays a probability
    far = TOY.probability({"a": np.array([1e6, -1e6]), "b": np.array([0.0, 0.0])})
    assert 0.0 < far[1] < 1e-12 and 1 - 1e-12 < far[0] <= 1.0


@pytest.mark.parametrize("name", MODEL.features)
def test_the_default_model_is_monotone_in_each_feature_along_its_weight(name):
    i = MODEL.features.index(name)
    xs = MODEL.centre[i] + MODEL.spread[i] * np.linspace(-3, 3, 13)
    p = MODEL.probability(at_centre(MODEL, **{name: xs}))
    step = np.diff(p)
    assert (step > 0).all() if MODEL.weights[i] > 0 else (step < 0).all()
    # at every feature's centre, the intercept alone
    assert p[6] == pytest.approx(sigmoid(MODEL.intercept))


def test_lost_structure_weighs_for_damage_and_a_darkened_ring_too():
    # the signs the documentation gives: structure and edges lost beyond the scene's typical change count
    # for damage, and so does a ring that darkens against its roof (shadow_loss below its centre)
    w = dict(zip(MODEL.features, MODEL.weights))
    assert w["ssim_excess"] > 0 and w["edge_excess"] > 0 and w["ssim_contrast"] > 0 and w["shadow_loss"] < 0
    assert w["ssim_excess"] == pytest.approx(2 * w["edge_excess"]) == pytest.approx(-4 * w["shadow_loss"])


def test_cuts_increase_within_zero_and_one_and_the_model_refuses_others():
    for cuts in (MODEL.cuts, OFFSET.cuts, LEARNED_CUTS, TOY.cuts):
        assert len(cuts) == 3 and 0.0 < cuts[0] < cuts[1] < cuts[2] < 1.0
    for bad in ((0.5, 0.4, 0.8), (0.2, 0.5, 0.5), (0.0, 0.5, 0.8), (0.2, 0.5, 1.0)):
        with pytest.raises(ValueError, match="cuts must increase"):
            dataclasses.replace(TOY, cuts=bad)
    with pytest.raises(ValueError, match="same length"):
        dataclasses.replace(TOY, weights=(1.0,))


def test_a_model_survives_its_record_and_a_run_record_names_it():
    back = EvidenceModel.from_dict(json.loads(json.dumps(TOY.to_dict())))
    assert back == TOY and EvidenceModel.from_dict(MODEL.to_dict()) == MODEL
    assert set(TOY.to_dict()) == {"features", "centre", "spread", "weights", "intercept", "cuts", "fitted_on"}
    assert model_of({"model": TOY.to_dict()}) == TOY
    # no record, none of a model, or a broken one: the default model
    assert model_of(None) is MODEL and model_of({}) is MODEL
    assert model_of({"model": {"features": ["a"]}}) is MODEL  # KeyError
    assert model_of({"model": dict(TOY.to_dict(), cuts=[0.9, 0.5, 0.1])}) is MODEL  # ValueError
    assert model_of({"model": "MODEL"}) is MODEL


def test_shifting_a_model_adds_the_offset_to_every_logit():
    evidence = {"a": np.array([0.0, 3.0, 9.0]), "b": np.array([0.1, -0.4, 2.0])}
    moved = TOY.shifted(1.25)
    np.testing.assert_allclose(moved.logit(evidence) - TOY.logit(evidence), 1.25)
    assert moved.weights == TOY.weights and moved.cuts == TOY.cuts and TOY.intercept == -0.5  # a new model


def test_a_learned_model_passes_its_logit_through_exactly():
    m = learned_model()
    z = np.array([-3.0, 0.0, 0.7, 4.0])
    np.testing.assert_allclose(m.probability({"model_logit": z}), sigmoid(z))
    assert m.cuts == LEARNED_CUTS and learned_model((0.1, 0.4, 0.9)).cuts == (0.1, 0.4, 0.9)


FIT = {"calibration": {"reference": 0.5, "typical": {"edge": 0.1}}, "normalization": {"gain": [1.1, 1.3]},
       "registration": {"applied": True, "spread_px": 0.4},
       "scene_stats": {"noise_before": [3.0, 5.0], "noise_after": [2.0], "ranges": [100.0, 140.0]}}


def test_the_scene_model_reads_the_fit_record_and_shifts_the_model_by_the_predicted_offset():
    offset = SceneOffset(("noise_before", "resolution_m", "normalization_gain"), (3.0, 1.0, 1.0), (1.0, 0.5, 0.1),
                         (0.5, -1.0, 2.0), 0.1, residual_sd=1.5, limit=3.0)
    model, rec = scene_model(FIT, 0.5, TOY, offset)
    # noise_before mean 4 -> z 1; resolution 0.5 -> z -1; gain mean 1.2 -> z 2: 0.1 + 0.5 + 1.0 + 4.0, clipped to 3
    assert rec["predicted"] == 3.0 and model.intercept == pytest.approx(TOY.intercept + 3.0)
    assert model.cuts == TOY.cuts  # an offset model without cuts of its own keeps the model's
    assert rec["residual_sd"] == 1.5 and rec["offset_model"] == offset.to_dict()
    assert rec["descriptors"]["noise_before"] == 4.0 and rec["descriptors"]["resolution_m"] == 0.5
    assert rec["descriptors"]["normalization_gain"] == pytest.approx(1.2)
    assert rec["descriptors"]["registration_spread_px"] == 0.4 and rec["descriptors"]["lightness_median"] is None
    model, rec = scene_model(FIT, 1.0, TOY, dataclasses.replace(offset, limit=10.0, cuts=(0.1, 0.3, 0.6)))
    assert rec["predicted"] == pytest.approx(0.1 + 0.5 + 0.0 + 4.0) and model.cuts == (0.1, 0.3, 0.6)
    assert model.weights == TOY.weights and model.features == TOY.features


def test_without_an_offset_model_the_scene_is_graded_with_the_model_itself():
    model, rec = scene_model(FIT, 0.5, TOY, None)
    assert model is TOY
    assert rec == {"predicted": 0.0, "residual_sd": UNEXPLAINED_SD, "descriptors": {}, "offset_model": None}
    # the default offset model is clipped to its limit and holds cuts of its own
    model, rec = scene_model(FIT, 0.5)
    assert abs(rec["predicted"]) <= OFFSET.limit and model.cuts == OFFSET.cuts
    assert model.intercept == pytest.approx(MODEL.intercept + rec["predicted"], abs=1e-4)


def test_the_calibration_measures_change_from_the_scene_reference():
    cal = Calibration(reference=float(log_change(np.array([0.2]))[0]), population="steadiest blocks", size=12,
                      typical={"edge": 0.123456789})
    np.testing.assert_allclose(cal.delta(np.array([0.2, 0.6])), [0.0, np.log(0.8 / 0.4)], atol=1e-12)
    assert cal.to_dict() == {"reference": 0.22314, "typical": {"edge": 0.12346}, "population": "steadiest blocks",
                             "size": 12}


def test_block_means_keep_only_the_fully_valid_blocks():
    change = np.zeros((40, 50))
    change[:16, 16:32] = 0.5
    change[16:32, :16] = 0.25
    valid = np.ones((40, 50), bool)
    valid[20, 40] = False  # spoils the block at (1, 2)
    # 2 x 3 whole blocks of 16 (the ragged edge left out), one of them not fully valid
    np.testing.assert_allclose(block_means(change, valid, 16), [0.0, 0.5, 0.0, 0.25, 0.0])
    assert block_means(change[:10], valid[:10], 16).size == 0
