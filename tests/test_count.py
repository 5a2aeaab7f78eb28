"""The damaged count: the graded count, with an interval measured on tiles graded by people."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from damage.analysis.count import (
    CountCalibration,
    calibration,
    combine_counts,
    conformal_quantiles,
    count_interval,
    share_width,
)

CAL = CountCalibration(q_low=-1.0, q_high=2.0, tau=0.1, level=0.9, tails=(0.02, 0.08), tiles=20, events=("a", "b"),
                       source="made up")


def test_the_bounds_are_the_share_plus_the_quantiles_times_the_width():
    # 30 of 100: share 0.3, width sqrt(0.25/100 + 0.01) = 0.1118
    w = math.sqrt(0.0025 + 0.01)
    c = count_interval(30, 100, CAL)
    assert c["estimate"] == 30 and c["buildings"] == 100 and c["method"] == "measured" and c["level"] == 0.9
    assert c["low"] == math.floor((0.3 - w) * 100) == 18
    assert c["high"] == math.ceil((0.3 + 2 * w) * 100) == 53
    assert "20 tiles of 2 events graded by people (made up)" in c["rests_on"]


def test_known_errors_give_the_conformal_quantiles():
    """Tiles whose people's share is the graded share plus known multiples of the width."""
    n = np.full(19, 400)
    w = float(share_width(400, 0.1))
    z = np.linspace(-0.9, 2.7, 19)  # the scores, known
    graded = np.full(19, 200)
    people = np.round(200 + z * w * 400).astype(int)
    lo, hi = conformal_quantiles(graded, people, n, 0.1, (0.05, 0.05))
    scores = np.sort((people - graded) / 400 / w)
    # m = 19: the ceil(20 * 0.95) = 19th smallest above, its mirror the 1st below
    assert hi == pytest.approx(scores[18]) and lo == pytest.approx(scores[0])
    lo, hi = conformal_quantiles(graded, people, n, 0.1, (0.25, 0.25))
    assert hi == pytest.approx(scores[14]) and lo == pytest.approx(scores[4])  # ceil(20 * .75) = 15th; mirror: 5th


def test_nothing_analysed_and_everything_damaged():
    empty = count_interval(0, 0, CAL)
    assert (empty["estimate"], empty["low"], empty["high"]) == (0, 0, 0)
    full = count_interval(50, 50, CAL)
    assert full["high"] == 50 and full["estimate"] == 50 and full["low"] < 50
    none = count_interval(0, 50, CAL)
    assert none["low"] == 0 and none["high"] > 0  # damage the grades missed is possible
    with pytest.raises(ValueError):
        count_interval(5, 4, CAL)


def test_the_interval_always_holds_the_estimate_and_narrows_with_more_buildings():
    for g, n in [(0, 1), (1, 1), (3, 7), (500, 1000)]:
        c = count_interval(g, n, CAL)
        assert c["low"] <= g <= c["high"] <= n
    small, large = count_interval(5, 10, CAL), count_interval(500, 1000, CAL)
    assert (small["high"] - small["low"]) / 10 > (large["high"] - large["low"]) / 1000


def test_the_shipped_calibration_is_plain_data_naming_its_tiles():
    from importlib import resources

    doc = json.loads(resources.files("damage.analysis").joinpath("count_calibration.json").read_text())
    cal = calibration()
    assert cal.tiles == len(doc["tiles"]) >= 30 and len(cal.events) == len({t["event"] for t in doc["tiles"]})
    assert cal.q_low < 0 < cal.q_high and cal.level == pytest.approx(1 - sum(cal.tails))
    # the shipped quantiles are what the tiles it names give
    tiles = doc["tiles"]
    lo, hi = conformal_quantiles([t["graded"] for t in tiles], [t["people"] for t in tiles], [t["analysed"] for t in tiles],
                                 cal.tau, cal.tails)
    assert (lo, hi) == pytest.approx((cal.q_low, cal.q_high), abs=1e-4)


def test_scenes_of_one_event_add_their_bounds_and_independent_ones_in_quadrature():
    a, b = count_interval(30, 100, CAL), count_interval(10, 100, CAL)
    one = combine_counts([a, b], shared=True)
    assert one["estimate"] == 40 and one["low"] == a["low"] + b["low"] and one["high"] == a["high"] + b["high"]
    ind = combine_counts([a, b], shared=False)
    assert ind["estimate"] == 40 and one["low"] <= ind["low"] <= 40 <= ind["high"] <= one["high"]
    assert ind["high"] == math.ceil(40 + math.hypot(a["high"] - 30, b["high"] - 10))
    assert "independent" in ind["combined"] and "one event" in one["combined"]


def test_labels_replace_the_measured_interval_with_the_refits(pair_factory):
    """With an analyst's labels the count rests on them, and says so."""
    import warnings

    import damage
    from damage.analysis.analyst import apply_labels, headline
    from damage.errors import DamageWarning

    b, a, f, scene = pair_factory()
    truth = scene.footprints["damaged"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamageWarning)
        result = damage.assess(b, a, f)
    assert result.attrs["damage"]["damaged_count"]["method"] == "measured"
    labels = result[["geometry"]].copy()
    labels["grade"] = ["destroyed" if t else "no-damage" for t in truth]
    refitted = apply_labels(result, labels.iloc[:12])
    dc = refitted.attrs["damage"]["damaged_count"]
    assert dc.get("method") != "measured" and "analyst graded" in headline(refitted.attrs["damage"])
