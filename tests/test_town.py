"""The realistic town generator, and the detector's invariants under its nuisances."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import damage
from damage.grading import MODEL
from damage.optical.masks import clouds
from damage.scenes.synthetic import Scene, write_pair
from damage.scenes.town import GRADES, Nuisances, make_town


def _assess(scene: Scene, folder, **write_kw):
    b, a, f = write_pair(scene, folder, **write_kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", damage.errors.DamageWarning)
        return damage.assess(b, a, f)


def test_town_is_deterministic_and_has_every_grade():
    a, b = make_town(size=256, seed=3), make_town(size=256, seed=3)
    np.testing.assert_array_equal(a.after, b.after)
    assert set(a.footprints["true_grade"]) == set(GRADES)
    assert (a.footprints["damaged"] == a.footprints["true_grade"].isin(["major-damage", "destroyed"])).all()
    assert not np.array_equal(make_town(size=256, seed=4).before, a.before)


def test_identical_pair_gives_no_damage(tmp_path):
    s = make_town(size=320, seed=2, damage_share=0.0)
    same = Scene(s.before, s.before.copy(), s.transform, s.crs, s.footprints)
    result = _assess(same, tmp_path)
    assert (result["damage_grade"] == "no-damage").all()
    assert np.nanmax(result["p_damaged"]) < MODEL.cuts[0] and np.ptp(result["damage_score"]) < 1e-3  # the same for all


def test_a_pure_shift_of_an_undamaged_town_gives_no_damage(tmp_path):
    s = make_town(size=384, seed=5, damage_share=0.0, nuisances=Nuisances(shift=(2.6, -1.3)))
    result = _assess(s, tmp_path)
    reg = result.attrs["damage"]["registration"]
    assert (reg["dy_px"], reg["dx_px"]) == pytest.approx((2.6, -1.3), abs=0.2)
    assert not result["damage_grade"].isin(["major-damage", "destroyed"]).any()


def test_buildings_under_cloud_are_not_analysed(tmp_path):
    s = make_town(size=384, seed=7, nuisances=Nuisances(clouds=0.25))
    result = _assess(s, tmp_path)
    assert result.attrs["damage"]["clouds"]["cloud_share"] > 0.05
    covered = s.footprints["cloud_fraction"].to_numpy() >= 1.0
    assert covered.sum() >= 3
    assert (result.loc[covered, "damage_grade"] == "not-analysed").mean() >= 0.8
    # never destroyed under a cloud that was found
    assert not ((result["damage_grade"] == "destroyed") & covered & ~s.footprints["damaged"]).any()


def test_no_clouds_found_in_a_clear_pair_with_season_and_sun_change():
    s = make_town(size=384, seed=8, nuisances=Nuisances(season=1.0, sun=40.0, new_buildings=8))
    mask, info = clouds(s.before.astype(np.float32), s.after.astype(np.float32), np.ones(s.before.shape[1:], bool))
    assert not mask.any() and info == {"cloud_share": 0.0, "shadow_share": 0.0}


def test_cloud_shadows_are_found_with_their_clouds(tmp_path):
    s = make_town(size=384, seed=3, nuisances=Nuisances(clouds=0.25))
    info = _assess(s, tmp_path).attrs["damage"]["clouds"]
    # this town's clouds cast shadows on clear ground: both are found, the shadow where it fell
    assert info["cloud_share"] > 0.03 and info["shadow_share"] > 0.02, info
