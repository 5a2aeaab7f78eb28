"""Epochs from STAC (issue 27, item 1): Maxar-style Items with relative hrefs, by path and over HTTP,
ItemCollections, assets by key or role, dates from the items, radar stacks as items, one-line errors."""

from __future__ import annotations

import contextlib
import datetime
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner
from conftest import SAMPLE, http_server  # noqa: E402
from rasterio.warp import transform_bounds

import damage
from damage.cli import main
from damage.errors import DamageWarning, InvalidRasterError, StacError
from damage.testing import assert_result_equal

pytest.importorskip("pystac")


def _item(tif: Path, item_id: str, when: str | None, **properties) -> dict:
    """A Maxar Open Data style item for ``tif``: the image beside it as ``./<id>-visual.tif``."""
    with rasterio.open(tif) as ds:
        west, south, east, north = transform_bounds(ds.crs, "EPSG:4326", *ds.bounds)
        epsg = ds.crs.to_epsg()
    props = {"datetime": when, "platform": "WV02", "gsd": 0.5, "tile:clouds_percent": 0, "proj:epsg": epsg, **properties}
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Feature", "stac_version": "1.0.0", "stac_extensions": [], "id": item_id, "collection": "joplin-tornado",
            "bbox": [west, south, east, north], "geometry": {"type": "Polygon", "coordinates": [ring]},
            "properties": props, "links": [],
            "assets": {"visual": {"href": f"./{item_id}-visual.tif", "type": "image/tiff; application=geotiff; "
                                  "profile=cloud-optimized", "roles": ["data"]},
                       "data-mask": {"href": f"./{item_id}-data-mask.gpkg", "type": "application/geopackage+sqlite3",
                                     "roles": ["data-mask"]}}}


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    """The sample tiles as Maxar-style items, one per tile, an item's image beside it; and an ItemCollection per epoch."""
    root = tmp_path_factory.mktemp("maxar")
    out: dict[str, list[Path]] = {}
    for epoch, when in (("before", "2011-05-20T17:00:00Z"), ("after", "2011-05-23T17:00:00Z")):
        folder = root / "events" / "joplin" / epoch
        folder.mkdir(parents=True)
        out[epoch] = []
        for k, tif in enumerate(sorted((SAMPLE / epoch).glob("*.tif"))):
            item_id = f"{epoch}{k}"
            shutil.copy(tif, folder / f"{item_id}-visual.tif")
            path = folder / f"{item_id}.json"
            path.write_text(json.dumps(_item(tif, item_id, when)))
            out[epoch].append(path)
        features = [json.loads(p.read_text()) for p in out[epoch]]
        (folder / "collection.json").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return root, out


@pytest.fixture(scope="module")
def local():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamageWarning)
        return damage.assess(str(SAMPLE / "before"), str(SAMPLE / "after"), str(SAMPLE / "footprints.geojson"))


@pytest.fixture
def serve():
    """folder -> the base URL of an HTTP server of it, for the test's duration."""
    with contextlib.ExitStack() as stack:
        yield lambda folder: stack.enter_context(http_server(folder))


def _assess(before, after, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamageWarning)  # the run's own notes; any other warning fails
        return damage.assess(before, after, str(SAMPLE / "footprints.geojson"), **kw)


def _same(local, other):
    assert_result_equal(local, other, columns=["building_id", "damage_grade", "not_analysed_reason"])
    assert_result_equal(local, other, columns=["p_damaged", "ssim_excess", "valid_fraction"], rtol=0)


def test_items_by_path_give_every_building_the_local_answer(catalogue, local):
    root, items = catalogue
    result = _assess([str(p) for p in items["before"]], [str(p) for p in items["after"]])
    _same(local, result)
    prov = result.attrs["damage"]["provenance"]["inputs"]
    assert [f["stac_item"]["id"] for f in prov["before"]] == ["before0", "before1"]
    assert {f["acquired"] for f in prov["after"]} == {"2011-05-23"}  # dated by the items
    assert prov["before"][0]["stac_item"] == {"id": "before0", "collection": "joplin-tornado", "asset": "visual",
                                              "self": str(items["before"][0])}


def test_item_collections_and_items_over_http_give_the_local_answer(catalogue, local, serve):
    root, items = catalogue
    url = serve(root)
    result = _assess(f"{url}/events/joplin/before/collection.json",
                     [f"{url}/events/joplin/after/after0.json", f"{url}/events/joplin/after/after1.json"])
    _same(local, result)
    after = result.attrs["damage"]["provenance"]["inputs"]["after"]
    assert after[0]["path"] == f"{url}/events/joplin/after/after0-visual.tif" and after[0]["sha256"] is None


def test_the_cli_takes_items_and_an_asset(catalogue, local, tmp_path):
    root, items = catalogue
    out = tmp_path / "d.geojson"
    res = CliRunner().invoke(main, ["assess", str(root / "events/joplin/before/collection.json"),
                                    str(root / "events/joplin/after/collection.json"), str(SAMPLE / "footprints.geojson"),
                                    "-o", str(out), "--asset", "visual", "-q"])
    assert res.exit_code == 0, res.output
    assert json.loads(out.read_text())["damage"]["counts"] == local.attrs["damage"]["counts"]
    bad = CliRunner().invoke(main, ["assess", str(root / "events/joplin/before/collection.json"),
                                    str(root / "events/joplin/after/collection.json"), str(SAMPLE / "footprints.geojson"),
                                    "-o", str(tmp_path / "e.geojson"), "--asset", "pan_analytic"])
    assert bad.exit_code == 1 and "has no asset 'pan_analytic'" in bad.output and "Traceback" not in bad.output


def test_swapped_items_are_caught_by_their_dates(catalogue):
    root, items = catalogue
    with pytest.warns(DamageWarning, match="swapped"):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"(?!.*swapped)", category=DamageWarning)
            damage.assess([str(p) for p in items["after"]], [str(p) for p in items["before"]],
                          str(SAMPLE / "footprints.geojson"))


def test_an_asset_is_chosen_by_role_and_a_header_that_disagrees_is_warned(catalogue, tmp_path):
    from damage.io.sources import open_epoch

    root, items = catalogue
    doc = json.loads(items["before"][0].read_text())
    doc["assets"]["visual"]["roles"] = ["data", "overview"]
    doc["assets"]["image"] = doc["assets"].pop("visual")
    doc["properties"]["proj:epsg"] = 4326
    path = items["before"][0].parent / "odd.json"
    path.write_text(json.dumps(doc))
    with pytest.warns(DamageWarning, match="says EPSG:4326 but .* the image's own header is used"):
        epoch = open_epoch(str(path), "before", asset="overview")
    assert epoch.tiles[0].item.key == "image" and epoch.tiles[0].date == datetime.date(2011, 5, 20)


@pytest.mark.parametrize("change,error,words", [
    (lambda d: d["properties"].update(datetime=None), StacError, "has no datetime"),
    (lambda d: d.pop("stac_version"), StacError, "not a STAC item"),
    (lambda d: d["assets"]["visual"].update(href="./gone.tif"), InvalidRasterError, "asset 'visual' of STAC item"),
    (lambda d: d["assets"].pop("visual"), StacError, "no 'visual' asset nor a GeoTIFF asset with role 'data'"),
])
def test_a_bad_item_is_one_line_naming_it(catalogue, change, error, words):
    from damage.io.sources import open_epoch

    root, items = catalogue
    doc = json.loads(items["before"][0].read_text())
    change(doc)
    path = items["before"][0].parent / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(error, match=words) as err:
        open_epoch(str(path), "before")
    assert "bad.json" in str(err.value) and "\n" not in str(err.value)


def test_an_unreachable_catalogue_is_one_line(tmp_path):
    from damage.io.sources import open_epoch

    with pytest.raises(StacError, match="cannot read it as JSON"):
        open_epoch("http://127.0.0.1:9/nothing/item.json", "before")
    (tmp_path / "empty.json").write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    with pytest.raises(StacError, match="no items"):
        open_epoch(str(tmp_path / "empty.json"), "before")


def test_radar_stacks_as_items_are_grouped_by_their_orbits_and_dated_by_them(tmp_path):
    """Sentinel-1 RTC-style items (a vv asset, sat:relative_orbit): the same answer as the files."""
    from damage.io.sources import _date_of
    from damage.scenes.sarsim import make_sar_stack, write_stack

    s = make_sar_stack(size=80, seed=5, n_before=3, n_after=2)
    b, a, f = write_stack(s, tmp_path / "files")
    folder = tmp_path / "items"
    folder.mkdir()
    specs: dict[str, list[str]] = {"before": [], "after": []}
    dates: list[str] = []
    for epoch, files in (("before", b), ("after", a)):
        for k, tif in enumerate(files):
            with rasterio.open(tif) as ds:
                tags = ds.tags()
            item_id = f"S1A_{epoch}_{k}"  # no date in the name: the item dates it
            shutil.copy(tif, folder / f"{item_id}.tif")
            doc = _item(tif, item_id, None)
            date = _date_of(Path(tif), tags) + datetime.timedelta(days=1)  # the item's, not the file's
            doc["properties"] = {"datetime": f"{date}T05:00:00Z", "sat:relative_orbit": 12, "sat:orbit_state": "ascending"}
            dates.append(str(date))
            doc["assets"] = {"vv": {"href": f"./{item_id}.tif", "type": "image/tiff; application=geotiff", "roles": ["data"]}}
            (folder / f"{item_id}.json").write_text(json.dumps(doc))
            specs[epoch].append(str(folder / f"{item_id}.json"))
    files = damage.assess(b, a, f, method="pwtt")
    items = damage.assess(specs["before"], specs["after"], f, method="pwtt", asset="vv")
    assert_result_equal(files, items, columns=["damage_grade"])
    np.testing.assert_allclose(items["t_mean"], files["t_mean"], rtol=1e-9, equal_nan=True)
    with http_server(folder) as url:  # the same items served over HTTP, as a catalogue publishes them
        served = damage.assess([f"{url}/{Path(p).name}" for p in specs["before"]],
                               [f"{url}/{Path(p).name}" for p in specs["after"]], f, method="pwtt", asset="vv")
    np.testing.assert_allclose(served["t_mean"], files["t_mean"], rtol=1e-9, equal_nan=True)
    assert items.attrs["damage"]["statistic"]["orbit_groups"] == ["all"]
    record = items.attrs["damage"]["inputs"]
    assert [x["orbit"] for x in record["before"] + record["after"]] == ["12"] * 5
    assert [x["date"] for x in record["before"] + record["after"]] == dates


# -- damage search (issue 27, item 2): a small STAC API on 127.0.0.1 ------------------------------------------
@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """A STAC API holding the sample tiles as items, a cloudier duplicate, an item off the dates, one far away."""
    root = tmp_path_factory.mktemp("api")
    items = root / "items"
    items.mkdir()
    specs = [("before", "2011-05-20T17:00:00Z", 0), ("after", "2011-05-23T17:00:00Z", 0)]
    for epoch, when, cloud in specs:
        for k, tif in enumerate(sorted((SAMPLE / epoch).glob("*.tif"))):
            item_id = f"{epoch}{k}"
            shutil.copy(tif, items / f"{item_id}-visual.tif")
            doc = _item(tif, item_id, when, **{"tile:clouds_percent": cloud})
            (items / f"{item_id}.json").write_text(json.dumps(doc))
            if epoch == "before":  # the same tile, cloudier and nearer the event; and one a year earlier
                cloudy = _item(tif, f"cloudy{k}", "2011-05-21T17:00:00Z", **{"tile:clouds_percent": 40})
                cloudy["assets"]["visual"]["href"] = f"./{item_id}-visual.tif"
                (items / f"cloudy{k}.json").write_text(json.dumps(cloudy))
                old = _item(tif, f"old{k}", "2010-05-20T17:00:00Z")
                (items / f"old{k}.json").write_text(json.dumps(old))
    far = json.loads((items / "after0.json").read_text())
    far["id"], far["geometry"], far["bbox"] = "far", {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]}, [0, 0, 1, 1]
    (items / "far.json").write_text(json.dumps(far))
    with http_server(root, "stacserver.py") as url:
        yield url


def _search(api, out, *more):
    return CliRunner().invoke(main, ["search", "--stac", api, "--aoi", str(SAMPLE / "footprints.geojson"),
                                     "--before", "2011-05-01/2011-05-21", "--after", "2011-05-22/2011-06-01",
                                     "-o", str(out), *more])


def test_search_finds_the_clearest_items_that_cover_the_area_and_assess_takes_them(api, local, tmp_path):
    pytest.importorskip("pystac_client")
    res = _search(api, tmp_path / "found")
    assert res.exit_code == 0, res.output
    before = json.loads((tmp_path / "found" / "before.json").read_text())
    assert sorted(f["id"] for f in before["features"]) == ["before0", "before1"]  # clear ones first; cloudy not needed
    assert "- cloudy0" in res.output and "adds nothing" in res.output and "old0" not in res.output
    assert "far" not in (tmp_path / "found" / "after.json").read_text()
    hrefs = [f["assets"]["visual"]["href"] for f in before["features"]]
    assert all(h.startswith(api + "/items/") for h in hrefs)  # absolute: the collection may live anywhere
    result = _assess(str(tmp_path / "found" / "before.json"), str(tmp_path / "found" / "after.json"))
    _same(local, result)


def test_search_all_keeps_every_image_of_a_range(api, tmp_path):
    pytest.importorskip("pystac_client")
    res = _search(api, tmp_path / "all", "--all")
    assert res.exit_code == 0, res.output
    before = json.loads((tmp_path / "all" / "before.json").read_text())
    assert sorted(f["id"] for f in before["features"]) == ["before0", "before1", "cloudy0", "cloudy1"]


def test_search_failures_are_one_line(api, tmp_path, serve):
    pytest.importorskip("pystac_client")
    empty = CliRunner().invoke(main, ["search", "--stac", api, "--bbox", "10,10,11,11", "--before", "2011-05-01/2011-05-21",
                                      "--after", "2011-05-22/2011-06-01", "-o", str(tmp_path / "e")])
    assert empty.exit_code == 1 and "no items over the area" in empty.output and "Traceback" not in empty.output
    plain = serve(tmp_path)  # a web server that is not a STAC API
    res = _search(plain, tmp_path / "p")
    assert res.exit_code == 1 and "not a STAC API" in res.output and "Traceback" not in res.output
    bad = _search(api, tmp_path / "b", "--collection", "nope")
    assert bad.exit_code == 1 and "no items" in bad.output
    dates = CliRunner().invoke(main, ["search", "--stac", api, "--bbox", "10,10,11,11", "--before", "2011-05-21",
                                      "--after", "2011-05-22/2011-06-01", "-o", str(tmp_path / "d")])
    assert dates.exit_code == 1 and "START/END" in dates.output


def test_signed_assets_are_read_with_a_token_for_their_collection(tmp_path, local, monkeypatch):
    """Planetary Computer style: the images answer only signed URLs; --sign fetches the collection's token once."""
    from damage.errors import InvalidRasterError
    from damage.io import stac

    root = tmp_path / "pc"
    (root / "private").mkdir(parents=True)
    (root / "items").mkdir()
    for epoch, when in (("before", "2011-05-20T17:00:00Z"), ("after", "2011-05-23T17:00:00Z")):
        features = []
        for k, tif in enumerate(sorted((SAMPLE / epoch).glob("*.tif"))):
            item_id = f"{epoch}{k}"
            shutil.copy(tif, root / "private" / f"{item_id}.tif")
            doc = _item(tif, item_id, when)
            doc["assets"] = {"visual": {"href": f"../private/{item_id}.tif", "type": "image/tiff", "roles": ["data"]}}
            features.append(doc)
        (root / "items" / f"{epoch}.json").write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    with http_server(root, "stacserver.py") as url:
        monkeypatch.setattr(stac, "PC_TOKEN_URL", url + "/api/sas/v1/token/{collection}")
        monkeypatch.setattr(stac, "_TOKENS", {})
        with pytest.raises(InvalidRasterError, match="not a readable raster"):
            _assess(f"{url}/items/before.json", f"{url}/items/after.json")
        signed = _assess(f"{url}/items/before.json", f"{url}/items/after.json", sign="planetary-computer")
        _same(local, signed)
        assert list(stac._TOKENS) == ["joplin-tornado"]  # one token for the collection, kept
        path = signed.attrs["damage"]["provenance"]["inputs"]["before"][0]["path"]
        assert path == f"{url}/private/before0.tif"  # the token is never written into the record
        monkeypatch.setattr(stac, "PC_TOKEN_URL", url + "/nothing/{collection}")
        monkeypatch.setattr(stac, "_TOKENS", {})
        with pytest.raises(StacError, match="no token for collection 'joplin-tornado'"):
            _assess(f"{url}/items/before.json", f"{url}/items/after.json", sign="planetary-computer")
