"""The scales responders use: grading, reading labels and scoring in each."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from click.testing import CliRunner

import damage
from damage.cli import main
from damage.grading import MODEL, SCALES, grade, to_scale
from damage.io.labels import from_unosat, read_labels


@pytest.mark.parametrize("scale", sorted(SCALES))
def test_every_scale_grades_probabilities_in_order_and_calls_major_damage_damaged(scale):
    sc = SCALES[scale]
    cuts = sc.model_cuts(MODEL.cuts)
    assert list(cuts) == sorted(cuts) and len(cuts) == len(sc.levels) - 1
    p = np.linspace(0.001, 0.999, 400)
    g = grade(p, np.ones(p.size, bool), scale, thresholds=MODEL.cuts)
    rank = np.array([sc.levels.index(v) for v in g])
    assert (np.diff(rank) >= 0).all() and set(g) == set(sc.levels)
    # "damaged" on every scale is major damage or worse on the model's own cut
    damaged = np.isin(g, sc.damaged)
    assert damaged[p >= MODEL.cuts[1] + 1e-9].all() and not damaged[p < MODEL.cuts[1] - 1e-9].any()


def test_xbd_grades_map_onto_each_scale():
    xbd = ["no-damage", "minor-damage", "major-damage", "destroyed", None]
    assert to_scale(xbd, "unosat") == ["No Visible Damage", "Moderate Damage", "Severe Damage", "Destroyed", None]
    assert to_scale(xbd, "ems") == ["No visible damage", "Possibly damaged", "Damaged", "Destroyed", None]
    assert to_scale(xbd, "binary") == ["not damaged", "not damaged", "damaged", "damaged", None]


def test_unosat_points_read_in_unosat_names_and_any_case():
    pts = gpd.GeoDataFrame({"Main_Damage_Site_Class": [1, 2, 3, 4, 6]},
                           geometry=[shapely.Point(i, 0) for i in range(5)], crs="EPSG:32615")
    got = from_unosat(pts, scale="unosat")["grade"].tolist()
    assert got == ["Destroyed", "Severe Damage", "Moderate Damage", "Possible Damage", "No Visible Damage"]
    assert from_unosat(pts, scale="binary")["grade"].tolist() == ["damaged", "damaged", "not damaged", "not damaged",
                                                                  "not damaged"]


def test_assess_grades_on_a_scale_and_evaluate_scores_on_another(pair_factory, tmp_path):
    b, a, f, _ = pair_factory(damaged=(5,), seed=2)
    ems = damage.assess(b, a, f, scale="ems")
    assert ems.loc[5, "damage_grade"] == "Destroyed" and set(ems.drop(index=5)["damage_grade"]) == {"No visible damage"}
    assert set(ems.attrs["damage"]["counts"]) == set(SCALES["ems"].levels) | {"not-analysed"}
    # labels on the UNOSAT scale (a vector file of names, in any case), the result on EMS: regraded from p_damaged
    fp = gpd.read_file(f)
    labels = fp[["geometry"]].assign(grade=np.where(fp.index == 5, "destroyed", "no visible damage"))
    path = tmp_path / "labels.geojson"
    labels.to_file(path)
    ev = damage.evaluate(ems, read_labels(path, scale="unosat"), scale="unosat")
    assert ev.binary["f1"] == 1.0 and ev.levels == SCALES["unosat"].levels
    res = CliRunner().invoke(main, ["assess", str(b), str(a), str(f), "-o", str(tmp_path / "o.geojson"),
                                    "--scale", "binary"])
    assert res.exit_code == 0, res.output
    assert set(gpd.read_file(tmp_path / "o.geojson")["damage_grade"]) == {"damaged", "not damaged"}
    res = CliRunner().invoke(main, ["evaluate", str(tmp_path / "o.geojson"), str(path), "--scale", "unosat", "-q"])
    assert res.exit_code == 0, res.output


def _logit(p):
    return float(np.log(p / (1 - p)))


#: Each scale's cuts on p_damaged, as positions among the model's xBD cuts (minor, major, destroyed) = (1, 2, 3);
#: "minor - 1 logit" is UNOSAT's Possible Damage, one logit unit below the minor-damage cut.
CUT_TABLE = {
    "xbd": ("minor", "major", "destroyed"),
    "unosat": ("minor - 1 logit", "minor", "major", "destroyed"),
    "ems": ("minor", "major", "destroyed"),
    "binary": ("major",),
}


@pytest.mark.parametrize("cuts", [(0.2476, 0.4324, 0.7418), (0.1, 0.5, 0.9), (0.3, 0.35, 0.6)])
@pytest.mark.parametrize("name", sorted(CUT_TABLE))
def test_each_scale_cuts_where_its_table_says(name, cuts):
    at = {"minor": cuts[0], "major": cuts[1], "destroyed": cuts[2]}
    expected = [1 / (1 + np.exp(-(_logit(at["minor"]) - 1.0))) if c == "minor - 1 logit" else at[c] for c in CUT_TABLE[name]]
    assert SCALES[name].model_cuts(cuts) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert set(CUT_TABLE) == set(SCALES)


def test_an_analysed_building_without_a_score_is_not_graded():
    """A NaN score is no evidence: not-analysed, never the lowest grade, on every scale."""
    for name, scale in SCALES.items():
        out = grade(np.array([np.nan, 0.99, np.inf, 0.0]), np.array([True, True, True, True]), name)
        assert out[0] == "not-analysed" and out[2] == "not-analysed", name
        assert out[1] == scale.levels[-1] and out[3] == scale.levels[0], name
