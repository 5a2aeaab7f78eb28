"""Facilities graded from their buildings, with the damage in rings around them, in metres whatever the CRS."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from damage.analysis.facilities import assign, confidence, damaged_count, how_sure, name_column, summarise

X0, Y0 = 550_000.0, 4_180_000.0  # San Francisco, UTM zone 10 (EPSG:32610)
UTM10 = "EPSG:32610"
FEET = "EPSG:2227"  # California zone 3, US survey feet


def house(dx: float, dy: float, side: float = 10.0):
    return shapely.box(X0 + dx, Y0 + dy, X0 + dx + side, Y0 + dy + side)


@pytest.fixture
def facilities():
    """A 100 m square hospital at (X0, Y0) and a school 2 km away with no building of its own."""
    return gpd.GeoDataFrame({"NAME": ["Hospital", "School"], "name": ["St Mary", "Oak Primary"], "kind": ["h", "s"]},
                            geometry=[house(0, 0, 100), house(2000, 2000, 60)], crs=UTM10, index=[7, 9])


@pytest.fixture
def result():
    """Five buildings in the hospital and five around it at known distances (10 m squares)."""
    rows = [  # id, where, grade, p_damaged, changed_fraction
        ("b0", house(10, 10), "destroyed", 0.95, 0.9),
        ("b1", house(40, 40), "major-damage", 0.97, 0.6),
        ("b2", house(70, 10), "no-damage", 0.10, 0.0),
        ("b3", house(10, 70), "not-analysed", np.nan, np.nan),
        ("b9", house(70, 70), "destroyed", 0.91, 0.4),
        ("b4", house(130, 40), "destroyed", 0.99, 0.5),  # 30 m east of the hospital
        ("b5", house(40, 180), "major-damage", 0.80, 0.2),  # 80 m north
        ("b6", house(-40, 40), "no-damage", 0.05, 0.3),  # 30 m west, not damaged
        ("b7", house(-210, 40), "destroyed", 0.90, 0.1),  # 200 m west
        ("b8", house(40, -410), "destroyed", 0.90, 1.0),  # 400 m south: in no ring
    ]
    ids, geoms, grades, p, changed = zip(*rows)
    return gpd.GeoDataFrame({"building_id": ids, "damage_grade": grades, "p_damaged": p, "changed_fraction": changed},
                            geometry=list(geoms), crs=UTM10)


def test_a_footprint_belongs_to_the_smallest_facility_holding_it(result):
    campus = house(0, 0, 100)
    ward = house(30, 30, 30)  # nested in the campus; holds b1
    straddling = shapely.box(X0 + 95, Y0 + 0, X0 + 145, Y0 + 60)  # holds b4, overlaps the campus but none of b0..b3
    fac = gpd.GeoDataFrame(geometry=[campus, ward, straddling], crs=UTM10)
    got = assign(result, fac)
    assert got.tolist() == [0, 1, 0, 0, 0, 2, -1, -1, -1, -1]
    # facilities in another CRS are brought to the footprints'; missing and empty footprints belong to none
    more = pd.concat([result, gpd.GeoDataFrame({"building_id": ["e", "n"]}, geometry=[shapely.Polygon(), None],
                                               crs=UTM10)], ignore_index=True)
    assert assign(more, fac.to_crs("EPSG:4326")).tolist() == [0, 1, 0, 0, 0, 2, -1, -1, -1, -1, -1, -1]
    assert assign(result, fac.iloc[:0]).tolist() == [-1] * 10


def test_a_facility_is_graded_by_its_worst_building_with_counts_per_grade(result, facilities):
    table = summarise(result, facilities, assign(result, facilities))
    assert list(table.index) == [7, 9] and table.crs == facilities.crs
    assert list(table["NAME"]) == ["Hospital", "School"] and table.geometry.equals(facilities.geometry)
    h = table.loc[7]
    assert h["damage_grade"] == "destroyed" and h["buildings"] == 5 and h["analysed"] == 4
    # destroyed is worse than major-damage, whose building is more probably damaged; of the two destroyed, the
    # more probably damaged
    assert h["worst_building"] == "b0" and h["worst_p_damaged"] == 0.95 and h["grade_confidence"] == "sure"
    assert [h[f"n_{g}"] for g in ("no-damage", "minor-damage", "major-damage", "destroyed")] == [1, 0, 1, 2]
    assert h["damaged_share"] == 0.75 and h["damaged_roof_m2"] == 300.0
    s = table.loc[9]
    assert s["damage_grade"] == "not-analysed" and s["buildings"] == 0 and np.isnan(s["damaged_share"])
    assert pd.isna(s["worst_building"]) and s["grade_confidence"] == "unknown"
    assert how_sure(h) == "p_damaged 0.95 at b0: sure" and damaged_count(h) == 3
    assert how_sure(s) == "assessed as one polygon: not analysed" and damaged_count(s) == 0


def test_the_rings_count_the_damaged_buildings_outside_the_facility_within_so_many_metres(result, facilities):
    h = summarise(result, facilities, assign(result, facilities)).loc[7]
    # b4 at 30 m, b5 at 80 m, b7 at 200 m (b6 at 30 m is not damaged, b8 at 400 m too far, b0/b1 are inside)
    assert [h[f"damaged_within_{d}m"] for d in (50, 100, 250)] == [1, 2, 3]
    # the changed roof of every building of the ring: b4 50 + b6 30, then b5 20, then b7 10 square metres
    assert [h[f"changed_m2_within_{d}m"] for d in (50, 100, 250)] == [80.0, 100.0, 110.0]
    other = summarise(result, facilities, assign(result, facilities), rings_m=(25.0, 500.0)).loc[7]
    assert other["damaged_within_25m"] == 0 and other["damaged_within_500m"] == 4
    assert "damaged_within_50m" not in other


@pytest.mark.parametrize("crs", [FEET, "EPSG:4326"])
def test_rings_and_areas_are_in_metres_whatever_the_crs_unit(result, facilities, crs):
    metres = summarise(result, facilities, assign(result, facilities))
    moved_result, moved_fac = result.to_crs(crs), facilities.to_crs(crs)
    other = summarise(moved_result, moved_fac, assign(moved_result, moved_fac))
    assert other.crs == moved_fac.crs
    for column in metres.columns.drop(["geometry"]):
        for a, b in zip(metres[column], other[column]):
            if isinstance(a, float) and np.isfinite(a):
                assert b == pytest.approx(a, rel=2e-3), column  # map scale factors differ by < 0.1 %
            else:
                assert b == a or (a != a and b != b), column


def test_share_and_how_sure_when_buildings_are_not_all_analysed(facilities):
    fp = gpd.GeoDataFrame({"damage_grade": ["not-analysed", "not-analysed"], "p_damaged": [np.nan, np.nan]},
                          geometry=[house(10, 10), house(50, 50)], crs=UTM10)
    h = summarise(fp, facilities, assign(fp, facilities)).loc[7]
    assert h["buildings"] == 2 and h["analysed"] == 0 and h["damage_grade"] == "not-analysed"
    assert how_sure(h) == "none of its 2 building(s) analysed" and np.isnan(h["damaged_share"])
    # without ids, a building is named by its row; an undamaged grade is sure when p_damaged is low
    fp = gpd.GeoDataFrame({"damage_grade": ["no-damage", "minor-damage"], "p_damaged": [0.02, 0.35]},
                          geometry=[house(10, 10), house(50, 50)], crs=UTM10)
    h = summarise(fp, facilities, assign(fp, facilities)).loc[7]
    assert h["worst_building"] == "1" and h["worst_p_damaged"] == 0.35
    assert h["grade_confidence"] == "uncertain"  # minor damage is not damaged: 1 - 0.35 = 0.65 < 0.7
    assert how_sure(h) == "p_damaged 0.35 at 1: uncertain"


def test_confidence_words_follow_the_probability_on_the_grades_side():
    assert [confidence(p, True) for p in (0.95, 0.9, 0.75, 0.7, 0.6)] == ["sure", "sure", "likely", "likely",
                                                                          "uncertain"]
    assert [confidence(p, False) for p in (0.05, 0.1, 0.25, 0.3, 0.4)] == ["sure", "sure", "likely", "likely",
                                                                           "uncertain"]
    assert confidence(float("nan"), True) == "unknown"


def test_the_name_column_is_the_one_asked_for_or_the_first_usual_one(facilities):
    assert name_column(facilities) == "name"  # "name" comes before "NAME"
    assert name_column(facilities.drop(columns="name")) == "NAME"
    assert name_column(facilities, "kind") == "kind"
    assert name_column(facilities, "label") is None  # asked for and absent: none, not a guess
    assert name_column(facilities[["kind", "geometry"]]) is None
    assert name_column(pd.DataFrame({"healthsite_name": [], "facility_name": []})) == "facility_name"


def test_damaged_count_sums_the_damaged_grades_of_the_scale():
    row = pd.Series({"n_no-damage": 5, "n_minor-damage": 4, "n_major-damage": 3, "n_destroyed": 2})
    assert damaged_count(row) == 5
    unosat = pd.Series({"n_Severe Damage": 2, "n_Destroyed": 1, "n_Moderate Damage": 7})
    assert damaged_count(unosat, "unosat") == 3  # the scale's own damaged levels; missing ones count 0
