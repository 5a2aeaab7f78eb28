import json

import geopandas as gpd
import numpy as np
import pytest
import shapely

import damage
from damage.errors import OutputError


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    from damage.scenes.synthetic import make_scene, write_pair

    b, a, f = write_pair(make_scene(damaged=(2,)), tmp_path_factory.mktemp("w"))
    fp = gpd.read_file(f)
    # One clockwise polygon with a hole, to check orientation is fixed on output.
    ring = shapely.box(500_010, 4_099_900, 500_040, 4_099_930)
    hole = shapely.box(500_020, 4_099_910, 500_025, 4_099_915)
    fp.loc[0, "geometry"] = shapely.orient_polygons(shapely.Polygon(ring.exterior.coords, [hole.exterior.coords]), exterior_cw=True)
    return damage.assess(b, a, fp, polygons=True)


def _signed_area(coords):
    x, y = np.asarray(coords).T
    return 0.5 * np.sum(x[:-1] * y[1:] - x[1:] * y[:-1])


def test_geojson_is_rfc7946(result, tmp_path):
    path = damage.write(result, tmp_path / "out.geojson")
    doc = json.loads(path.read_text())
    assert doc["type"] == "FeatureCollection" and "crs" not in doc
    assert doc["damage"]["version"] == damage.__version__
    assert doc["damage"]["config"]["scale"] == "xbd"
    assert len(doc["features"]) == len(result)
    for feat in doc["features"]:
        rings = feat["geometry"]["coordinates"]
        assert _signed_area(rings[0]) > 0  # exterior counter-clockwise
        for hole in rings[1:]:
            assert _signed_area(hole) < 0
        lon, lat = rings[0][0]
        assert -180 <= lon <= 180 and -90 <= lat <= 90
        assert all(len(repr(v).split(".")[-1]) <= 7 for v in rings[0][0])
    assert len(doc["features"][0]["geometry"]["coordinates"]) == 2  # the hole survived
    props = doc["features"][2]["properties"]
    assert props["damage_grade"] == "destroyed" and props["building_id"] == 2


def test_not_analysed_scores_are_null_in_geojson(result, tmp_path):
    sub = result.copy()
    sub.loc[0, "damage_score"] = np.nan
    doc = json.loads(damage.write(sub, tmp_path / "n.geojson").read_text())
    assert doc["features"][0]["properties"]["damage_score"] is None


@pytest.mark.parametrize("ext", [".gpkg", ".parquet"])
def test_other_formats_roundtrip_with_the_run_record(result, tmp_path, ext):
    path = damage.write(result, tmp_path / f"out{ext}")
    back = gpd.read_parquet(path) if ext == ".parquet" else gpd.read_file(path)
    assert back["damage_grade"].tolist() == result["damage_grade"].tolist()
    if ext == ".parquet":
        assert back.attrs["damage"]["version"] == damage.__version__
    else:
        import pyogrio

        meta = pyogrio.read_info(path)["layer_metadata"]
        assert json.loads(meta["damage"])["config"]["scale"] == "xbd"


def test_polygons_write_too(result, tmp_path):
    doc = json.loads(damage.write(result.attrs["damage_polygons"], tmp_path / "p.geojson").read_text())
    assert doc["features"] and all(f["properties"]["footprint"] == 2 for f in doc["features"])


def test_a_failed_write_leaves_nothing_and_keeps_the_old_file(result, tmp_path, monkeypatch):
    target = tmp_path / "keep.geojson"
    target.write_text("old")

    def boom(gdf, path):
        path.write_text("half")
        raise RuntimeError("disk on fire")

    monkeypatch.setitem(damage.io.writers.WRITERS, ".geojson", boom)
    with pytest.raises(RuntimeError):
        damage.write(result, target)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.geojson"]


def test_unknown_format_and_missing_folder(result, tmp_path):
    with pytest.raises(OutputError, match="unknown output format"):
        damage.write(result, tmp_path / "out.shp")
    with pytest.raises(OutputError, match="does not exist"):
        damage.write(result, tmp_path / "nope" / "out.geojson")


def test_temporary_files_of_killed_writers_are_removed_and_live_ones_kept(tmp_path):
    import subprocess
    import sys

    import geopandas as gpd
    import shapely

    import damage

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is now free: a writer that was killed
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        out = tmp_path / "out.geojson"
        orphan = tmp_path / f".out.{dead.pid}.abc123.tmp.geojson"
        busy = tmp_path / f".out.{alive.pid}.def456.tmp.geojson"
        other = tmp_path / f".other.{dead.pid}.abc123.tmp.geojson"
        for f in (orphan, busy, other):
            f.write_text("half a file")
        frame = gpd.GeoDataFrame({"a": [1]}, geometry=[shapely.Point(0, 0)], crs="EPSG:4326")
        damage.write(frame, out)
        assert out.exists() and not orphan.exists()
        assert busy.exists() and other.exists()  # another live writer's, another file's
    finally:
        alive.kill()
        alive.wait()


def test_sigkill_during_assess_leaves_the_old_output_whole(pair_factory, tmp_path):
    import json
    import signal
    import subprocess
    import sys
    import time

    b, a, f, _ = pair_factory(size=384, damaged=(1, 2))
    out = tmp_path / "out.geojson"
    cmd = [sys.executable, "-m", "damage", "assess", str(b), str(a), str(f), "-o", str(out), "--overwrite", "-qq"]
    subprocess.run(cmd, check=True)
    old = out.read_bytes()
    for delay in (0.5, 1.0, 1.5, 2.0, 2.5):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        doc = json.loads(out.read_text())  # whole: the old file or a complete new one
        assert len(doc["features"]) == len(json.loads(old)["features"])
    subprocess.run(cmd, check=True)
    assert not list(tmp_path.glob(".out.*.tmp.*"))  # what the kills left is gone


def test_exports_for_field_teams_open_and_keep_every_building(result, tmp_path):
    import csv
    import zipfile

    for ext in ("kml", "kmz", "fgb", "csv"):
        damage.write(result, tmp_path / f"out.{ext}")
    kml = gpd.read_file(tmp_path / "out.kml")
    assert len(kml) == len(result)
    assert set(kml["description"].str.split("[,:]", regex=True).str[0]) == set(result["damage_grade"])
    with zipfile.ZipFile(tmp_path / "out.kmz") as zf:
        assert zf.namelist() == ["doc.kml"] and b"<Placemark" in zf.read("doc.kml")
    fgb = gpd.read_file(tmp_path / "out.fgb")
    assert len(fgb) == len(result) and fgb.crs.equals(result.crs)
    with open(tmp_path / "out.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(result) and rows[0]["damage_grade"] == result["damage_grade"].iloc[0]
    centre = result.to_crs(result.estimate_utm_crs()).geometry.centroid.to_crs(4326)
    assert float(rows[3]["lon"]) == pytest.approx(centre.x.iloc[3], abs=1e-6)
    assert float(rows[3]["lat"]) == pytest.approx(centre.y.iloc[3], abs=1e-6)


def test_geojson_coordinates_have_at_most_seven_decimals(result, tmp_path):
    import re

    text = damage.write(result, tmp_path / "o.geojson").read_text()
    coords = text[text.index('"features"'):]
    geometry_numbers = re.findall(r'"coordinates":\[[^"]*', coords)
    assert geometry_numbers
    decimals = [len(n.split(".")[1]) for part in geometry_numbers for n in re.findall(r"-?\d+\.\d+", part)]
    assert max(decimals) <= 7


def test_geojson_is_written_in_batches_with_the_same_bytes(result, tmp_path, monkeypatch):
    from damage.io import writers

    whole = damage.write(result, tmp_path / "whole.geojson").read_bytes()
    monkeypatch.setattr(writers, "GEOJSON_BATCH", 3)  # seams between batches every three features
    batched = damage.write(result, tmp_path / "batched.geojson").read_bytes()
    assert batched == whole
    assert len(json.loads(batched)["features"]) == len(result)
    assert writers.to_geojson_text(result.iloc[:0]).endswith('"features":[\n\n]}\n')
