"""Building ids: the input's own, or derived from the outline, the same in every run."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from damage.errors import ConfigError
from damage.geo.ids import building_ids, derived_ids


@pytest.fixture
def houses():
    geoms = [shapely.box(500000 + 20 * i, 4180000, 500010 + 20 * i, 4180010) for i in range(5)]
    return gpd.GeoDataFrame({"name": list("abcde"), "osm_id": [11.0, 12.0, 13.0, 14.0, 15.0]}, geometry=geoms,
                            crs="EPSG:32615")


def test_derived_ids_do_not_depend_on_order_crs_or_selection(houses):
    plain = houses.drop(columns="osm_id")
    ids, source = building_ids(plain)
    assert source == "derived" and len(set(ids)) == 5 and all(i.startswith("b") and len(i) == 9 for i in ids)
    shuffled, _ = building_ids(plain.iloc[[3, 0, 4]])
    assert list(shuffled) == [ids[3], ids[0], ids[4]]
    in_degrees, _ = building_ids(plain.to_crs("EPSG:4326"))
    in_feet, _ = building_ids(plain.to_crs("EPSG:2227"))
    assert list(in_degrees) == list(ids) == list(in_feet)
    # a vertex order or starting point of its own does not change it (outlines are normalised)
    turned = plain.copy()
    turned.geometry = [shapely.Polygon(list(g.exterior.coords)[::-1]) for g in plain.geometry]
    assert list(building_ids(turned)[0]) == list(ids)
    moved = plain.copy()
    moved.geometry = moved.geometry.translate(1.0, 0.0)  # another building
    assert not set(building_ids(moved)[0]) & set(ids)


def test_twins_and_unusable_outlines_get_ids_of_their_own():
    box = shapely.box(0.1, 0.1, 0.2, 0.2)
    ids = derived_ids(np.array([box, box, None, shapely.Polygon(), box], dtype=object))
    assert ids[1] == ids[0] + "-2" and ids[4] == ids[0] + "-3"
    assert (ids[2], ids[3]) == ("row2", "row3")


def test_an_id_column_is_found_or_named(houses):
    ids, source = building_ids(houses)
    assert source == "osm_id" and list(ids) == ["11", "12", "13", "14", "15"]  # whole numbers as read, not 11.0
    ids, source = building_ids(houses, "name")
    assert source == "name" and list(ids) == list("abcde")
    with pytest.raises(ConfigError, match="no such column"):
        building_ids(houses, "nope")
    twice = houses.assign(name=list("abcda"))
    with pytest.raises(ConfigError, match="'a' is given to more than one footprint"):
        building_ids(twice, "name")
    # a candidate that repeats is passed over, not trusted
    assert building_ids(houses.assign(osm_id=[1, 1, 2, 3, 4]))[1] == "derived"
