"""Footprints by URL, read for the area only (issue 27, item 4): GeoParquet by its bbox covering's row-group
statistics, FlatGeobuf by its spatial index, both over HTTP range requests; assess reads a remote dataset
only where the imagery is."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from conftest import SAMPLE, http_server  # noqa: E402
from osmpbf import write_pbf  # noqa: E402

import damage
from damage.errors import DamageWarning
from damage.io import byarea
from damage.io.byarea import read_by_area
from damage.testing import assert_result_equal


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    """40,000 small buildings in EPSG:32615 on a 200 x 200 lattice, sorted in rows: GeoParquet with a bbox
    covering and row groups of 1,000, and FlatGeobuf with its spatial index."""
    folder = tmp_path_factory.mktemp("city")
    x0, y0 = 362_000.0, 4_101_000.0  # UTM 15N, near Joplin
    xs, ys = np.meshgrid(np.arange(200) * 20.0, np.arange(200) * 20.0)
    geoms = shapely.box(x0 + xs.ravel(), y0 + ys.ravel(), x0 + xs.ravel() + 12, y0 + ys.ravel() + 10)
    gdf = gpd.GeoDataFrame({"osm_id": np.arange(geoms.size), "building": "yes"}, geometry=geoms, crs="EPSG:32615")
    gdf.to_parquet(folder / "city.parquet", write_covering_bbox=True, row_group_size=1000)
    gdf.to_file(folder / "city.fgb", driver="FlatGeobuf", SPATIAL_INDEX="YES")
    w, s, e, n = gdf.to_crs("EPSG:4326").total_bounds
    box = (w + 0.1 * (e - w), s + 0.1 * (n - s), w + 0.3 * (e - w), s + 0.2 * (n - s))  # lon/lat: a part of it
    return folder, gdf, box


@pytest.fixture(scope="module")
def server(city):
    with http_server(city[0]) as url:
        yield url


def _expected(gdf, box):
    area = gpd.GeoSeries([shapely.box(*box)], crs="EPSG:4326").to_crs(gdf.crs).total_bounds
    keep = shapely.intersects(gdf.geometry.values, shapely.box(*area))
    return gdf[keep].reset_index(drop=True)


@pytest.mark.parametrize("name", ["city.parquet", "city.fgb"])
def test_a_url_read_by_area_equals_the_local_file_cut_to_it(city, server, name):
    folder, gdf, box = city
    expected = _expected(gdf, box)
    assert 0 < len(expected) < len(gdf) / 4
    for source in (str(folder / name), f"{server}/{name}"):
        got = read_by_area(source, box)
        assert got.crs == gdf.crs
        assert sorted(got["osm_id"]) == sorted(expected["osm_id"]), source
        got = got.sort_values("osm_id").reset_index(drop=True)
        assert shapely.equals(got.geometry.values, expected.geometry.values).all()
        assert "bbox" not in got.columns  # the covering column is the reader's, not an attribute


def test_a_geoparquet_url_is_read_by_its_footer_and_the_areas_row_groups_only(city, server, monkeypatch):
    folder, gdf, box = city
    opened = []
    real = byarea.HttpFile

    class Counting(real):
        def __init__(self, url):
            super().__init__(url)
            opened.append(self)

    monkeypatch.setattr(byarea, "HttpFile", Counting)
    got = read_by_area(f"{server}/city.parquet", box)
    size = (folder / "city.parquet").stat().st_size
    assert len(got) == len(_expected(gdf, box))
    assert opened and opened[0].fetched < size / 3, (opened[0].fetched, size)  # ~a tenth of the row groups


def test_assess_reads_a_remote_dataset_only_where_the_imagery_is(tmp_path):
    fp = gpd.read_file(SAMPLE / "footprints.geojson")
    far = fp.iloc[:3].assign(geometry=fp.geometry.iloc[:3].translate(0.5, 0.5))  # half a degree away
    both = gpd.GeoDataFrame(pd.concat([fp, far], ignore_index=True), crs=fp.crs)
    both.to_parquet(tmp_path / "region.parquet", write_covering_bbox=True, row_group_size=16)
    with http_server(tmp_path) as base, warnings.catch_warnings():
        warnings.simplefilter("ignore", DamageWarning)  # the run's own notes; any other warning fails
        remote = damage.assess(str(SAMPLE / "before"), str(SAMPLE / "after"), f"{base}/region.parquet")
        local = damage.assess(str(SAMPLE / "before"), str(SAMPLE / "after"), str(SAMPLE / "footprints.geojson"))
    assert len(remote) <= len(fp) and len(remote) >= (local["damage_grade"] != "not-analysed").sum()
    on = local["building_id"].isin(remote["building_id"])
    assert_result_equal(local[on].reset_index(drop=True), remote.reset_index(drop=True),
                        columns=["building_id", "damage_grade", "p_damaged"])


def _osm(path, fp):
    """An OpenStreetMap extract (.osm.pbf, written by tests/osmpbf.py) of these footprints as closed ways
    tagged building=yes; the first one a hospital."""
    nodes, ways, node = [], [], 1
    for k, geom in enumerate(fp.to_crs("EPSG:4326").geometry):
        ids = []
        for x, y in list(geom.exterior.coords)[:-1]:
            nodes.append((node, x, y))
            ids.append(node)
            node += 1
        tags = {"building": "yes", **({"amenity": "hospital", "name": "St. Test"} if k == 0 else {})}
        ways.append((100 + k, ids + [ids[0]], tags))
    return write_pbf(path, nodes, ways)


def test_an_openstreetmap_extract_gives_its_buildings_and_where_picks_the_hospital(tmp_path):
    from click.testing import CliRunner

    from damage.cli import main
    from damage.io.sources import read_footprints

    fp = gpd.read_file(SAMPLE / "footprints.geojson").iloc[2:8]  # the first one analysed in the sample
    osm = _osm(tmp_path / "extract.osm.pbf", fp)
    read = read_footprints(osm)
    assert len(read) == 6 and read["amenity"].tolist().count("hospital") == 1 and read.crs == "EPSG:4326"
    w, s, e, n = fp.to_crs("EPSG:4326").iloc[[0]].total_bounds
    box = (w - 1e-6, s - 1e-6, e + 1e-6, n + 1e-6)
    assert read_by_area(str(osm), box)["name"].tolist() == ["St. Test"]
    with http_server(tmp_path) as url:  # by URL too
        assert read_by_area(f"{url}/extract.osm.pbf", box)["name"].tolist() == ["St. Test"]
    res = CliRunner().invoke(main, ["batch", str(SAMPLE / "before"), str(SAMPLE / "after"), str(osm), "-o",
                                    str(tmp_path / "run"), "--where", "amenity == 'hospital'", "-q"])
    assert res.exit_code == 0, res.output
    one = gpd.read_parquet(tmp_path / "run" / "damage.parquet")
    assert one["name"].tolist() == ["St. Test"] and one["damage_grade"].iloc[0] != "not-analysed"
