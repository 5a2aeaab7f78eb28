"""Building ids: the input's own, or derived from the outline, the same in every run; the join puts them first."""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from damage.errors import ConfigError
from damage.geo.ids import building_ids, derived_ids, join_footprints


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


# -- join_footprints ---------------------------------------------------------------------------------------
def _table(n: int) -> pd.DataFrame:
    return pd.DataFrame({"damage_grade": ["destroyed", "no-damage", "minor-damage", "no-damage", "major-damage"][:n],
                         "valid_fraction": np.linspace(0.5, 1.0, n)}, index=pd.Index(np.arange(n), name="position"))


def test_join_puts_a_found_or_derived_id_first_as_text(houses):
    out, source = join_footprints(houses, _table(5))
    assert source == "osm_id"
    assert list(out.columns) == ["building_id", "name", "osm_id", "geometry", "damage_grade", "valid_fraction"]
    assert out["building_id"].tolist() == ["11", "12", "13", "14", "15"] and out["osm_id"].tolist()[0] == 11.0
    assert isinstance(out, gpd.GeoDataFrame) and out.geometry.name == "geometry" and out.crs == houses.crs
    derived, source = join_footprints(houses.drop(columns="osm_id"), _table(5))
    assert source == "derived" and list(derived.columns)[:2] == ["building_id", "name"]
    assert derived["building_id"].tolist() == list(building_ids(houses.drop(columns="osm_id"))[0])


def test_join_keeps_the_inputs_own_building_id_where_it_is(houses):
    own = houses.assign(building_id=[105, 104, 103, 102, 101])
    out, source = join_footprints(own, _table(5))
    assert source == "building_id"
    assert list(out.columns) == ["name", "osm_id", "geometry", "building_id", "damage_grade", "valid_fraction"]
    assert out["building_id"].tolist() == [105, 104, 103, 102, 101]
    # another id asked for replaces it, first and as text
    named, source = join_footprints(own, _table(5), "name")
    assert source == "name" and list(named.columns).count("building_id") == 1
    assert list(named.columns)[:2] == ["building_id", "name"] and named["building_id"].tolist() == list("abcde")


def test_join_replaces_a_footprint_column_the_assessment_also_has(houses, caplog):
    old = houses.assign(damage_grade=["old"] * 5, note=list("vwxyz"))
    with caplog.at_level(logging.WARNING, logger="damage.geo.ids"):
        out, _ = join_footprints(old, _table(5))
    assert "footprint columns ['damage_grade'] are replaced" in caplog.text
    assert list(out.columns).count("damage_grade") == 1
    assert out["damage_grade"].tolist() == _table(5)["damage_grade"].tolist()
    assert out["note"].tolist() == list("vwxyz")  # the others stay
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="damage.geo.ids"):
        join_footprints(houses, _table(5))
    assert "replaced" not in caplog.text


def test_join_pairs_rows_by_order_not_by_index_label(houses):
    odd = houses.set_axis([50, 40, 30, 20, 10])
    out, _ = join_footprints(odd, _table(5))
    assert out.index.tolist() == [50, 40, 30, 20, 10]
    assert out["damage_grade"].tolist() == _table(5)["damage_grade"].tolist()
    assert out["name"].tolist() == list("abcde") and out.geometry.geom_equals(odd.geometry).all()


def test_derived_ids_are_the_same_hashed_in_batches(houses, monkeypatch):
    from damage.geo import ids as ids_module

    houses = houses.drop(columns="osm_id")  # no id column: ids from the outlines
    whole, _ = building_ids(houses)
    monkeypatch.setattr(ids_module, "ID_BATCH", 3)
    twin = pd.concat([houses, houses.iloc[:2]], ignore_index=True)  # repeats across batches: -2 in input order
    batched, source = building_ids(twin)
    assert source == "derived" and batched[: len(houses)].tolist() == whole.tolist()
    assert batched[len(houses):].tolist() == [f"{whole[0]}-2", f"{whole[1]}-2"]
    broken = twin.copy()
    broken.loc[4, "geometry"] = None  # no shape, in the second batch: its row in the whole input
    assert building_ids(broken)[0][4] == "row4"


# -- a region's ids, decided over parts ---------------------------------------------------------------------
def _in_parts(frame: gpd.GeoDataFrame, seams: list[int]):
    """``frame`` cut at ``seams`` as the batch runner reads it: parts with their outlines' ids and positions."""
    from damage.geo.ids import outline_ids

    lonlat = frame.geometry.to_crs("EPSG:4326")
    outlines = outline_ids(np.asarray(lonlat.values, dtype=object))
    bounds = [0, *seams, len(frame)]
    parts = [frame.iloc[a:b].assign(outline=outlines[a:b], position=np.arange(a, b)) for a, b in zip(bounds, bounds[1:])]
    return lambda: iter(parts)


def _region(frame: gpd.GeoDataFrame, seams: list[int], wanted: str | None = None) -> tuple[list, str]:
    from damage.geo.ids import region_ids

    parts = _in_parts(frame, seams)
    decided = region_ids(parts, list(frame.columns), wanted, frame.geometry.name, "outline")
    ids = [i for p in parts() for i in decided.of(p, p["outline"].to_numpy(), p["position"].to_numpy())]
    return ids, decided.source


def test_a_regions_ids_decided_over_its_parts_are_those_of_the_whole(houses):
    plain = houses.drop(columns="osm_id")
    many = pd.concat([plain, plain.iloc[[1, 1, 3]], plain.iloc[:2]], ignore_index=True)  # repeats across every seam
    many.loc[6, "geometry"] = None  # no shape: row6
    whole, source = building_ids(many)
    for seams in ([], [1], [2, 5, 7], list(range(1, len(many)))):
        assert _region(many, seams) == (whole.tolist(), source), seams
    assert source == "derived" and "row6" in whole and any(i.endswith("-3") for i in whole)
    # an id column is taken when it is unique over every part, and not when a later part repeats a value
    assert _region(houses, [2]) == (building_ids(houses)[0].tolist(), "osm_id")
    repeated = pd.concat([houses, houses.iloc[[0]]], ignore_index=True)
    assert building_ids(repeated)[1] == "derived" and _region(repeated, [3])[1] == "derived"
    assert _region(repeated, [3])[0] == building_ids(repeated)[0].tolist()


def test_a_regions_wanted_id_column_is_refused_as_the_wholes_is(houses):
    twice = pd.concat([houses, houses.iloc[[2]]], ignore_index=True)
    holes = houses.assign(osm_id=[11.0, None, 13.0, 14.0, 15.0])
    for frame, wanted in ((twice, "osm_id"), (holes, "osm_id"), (houses, "ref")):
        with pytest.raises(ConfigError) as whole:
            building_ids(frame, wanted)
        with pytest.raises(ConfigError) as parts:
            _region(frame, [1, 4], wanted)
        assert str(parts.value) == str(whole.value)


def test_equal_hashes_of_unequal_ids_are_told_apart_by_the_values(houses, monkeypatch):
    from damage.geo import ids as ids_module

    monkeypatch.setattr(ids_module, "_hashed", lambda values: np.zeros(len(values), np.uint64))  # every hash equal
    assert _region(houses, [2]) == (building_ids(houses)[0].tolist(), "osm_id")
    with pytest.raises(ConfigError, match="the id 13.0 is given to more than one footprint"):
        _region(pd.concat([houses, houses.iloc[[2]]], ignore_index=True), [3], "osm_id")
