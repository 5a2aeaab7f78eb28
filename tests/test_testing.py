"""damage.testing.assert_result_equal: passes on equal results, names what differs otherwise."""

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

from damage.testing import assert_result_equal


@pytest.fixture
def result():
    return gpd.GeoDataFrame(
        {"damage_grade": ["no-damage", "destroyed", "not-analysed"], "p_damaged": [0.1, 0.9, np.nan],
         "not_analysed_reason": [None, None, "partial coverage"]},
        geometry=[box(0, 0, 1, 1), box(2, 0, 3, 1), box(4, 0, 5, 1)], crs="EPSG:32615")


def test_equal_results_pass(result):
    assert_result_equal(result, result.copy())


@pytest.mark.parametrize("change, words", [
    (lambda r: r.assign(damage_grade=["no-damage", "major-damage", "not-analysed"]), "column 'damage_grade': 1 of 3"),
    (lambda r: r.assign(p_damaged=[0.1, 0.9000001, np.nan]), "column 'p_damaged'"),
    (lambda r: r.assign(p_damaged=[0.1, np.nan, np.nan]), "row 1"),
    (lambda r: r.assign(not_analysed_reason=[None, "cloud or shadow", "partial coverage"]), "not_analysed_reason"),
    (lambda r: r.set_geometry(r.geometry.translate(1e-9)), "geometry: 3 of 3"),
    (lambda r: r.drop(columns="p_damaged"), "only on the left ['p_damaged']"),
    (lambda r: r[["p_damaged", "damage_grade", "not_analysed_reason", "geometry"]], "another order"),
    (lambda r: r.iloc[:2], "3 rows on the left, 2 on the right"),
])
def test_a_difference_is_named(result, change, words):
    with pytest.raises(AssertionError, match=words.replace("[", r"\[").replace("]", r"\]")):
        assert_result_equal(result, change(result.copy()))


def test_tolerance_and_a_subset_of_columns(result):
    other = result.assign(p_damaged=[0.1, 0.9000001, np.nan], damage_grade=["x", "y", "z"])
    assert_result_equal(result, other, columns=["p_damaged"], rtol=1e-6)
    with pytest.raises(AssertionError, match="not in both"):
        assert_result_equal(result, other, columns=["nope"])
