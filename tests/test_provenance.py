"""Every output says where it comes from: inputs with sizes, hashes and dates, versions, time."""

from __future__ import annotations

import hashlib
import warnings

import rasterio

import damage
from damage.errors import DamageWarning
from damage.io.sources import read_result
from damage.scenes.synthetic import make_scene, write_pair


def test_the_run_record_holds_each_input_with_its_hash_and_date_and_survives_every_format(tmp_path):
    b, a, f = write_pair(make_scene(damaged=(5,), seed=2), tmp_path)
    with rasterio.open(a, "r+") as ds:
        ds.update_tags(TIFFTAG_DATETIME="2023:02:07 08:15:00")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamageWarning)  # the run's own notes; any other warning fails
        result = damage.assess(b, a, f)
    prov = result.attrs["damage"]["provenance"]
    after = prov["inputs"]["after"][0]
    assert after["sha256"] == hashlib.sha256(a.read_bytes()).hexdigest() and after["bytes"] == a.stat().st_size
    assert after["acquired"] == "2023-02-07" and prov["inputs"]["before"][0]["acquired"] is None
    assert prov["inputs"]["other"][0] == {**prov["inputs"]["other"][0], "role": "footprints", "path": str(f.resolve())}
    assert prov["versions"]["damage"] == damage.__version__ and "rasterio" in prov["versions"] and prov["seconds"] > 0
    for ext in ("geojson", "gpkg", "parquet"):
        back = read_result(damage.write(result, tmp_path / f"out.{ext}")).attrs["damage"]["provenance"]
        assert back["inputs"]["after"][0]["sha256"] == after["sha256"], ext


def test_a_region_run_records_provenance_too(tmp_path):
    b, a, f = write_pair(make_scene(damaged=(5,), seed=2), tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamageWarning)  # the run's own notes; any other warning fails
        out = damage.batch(b, a, f, tmp_path / "run", chunk_size=64)
    prov = read_result(tmp_path / "run" / "damage.geojson").attrs["damage"]["provenance"]
    assert prov["inputs"]["before"][0]["sha256"] == hashlib.sha256(b.read_bytes()).hexdigest()
    assert out.result.attrs["damage"]["provenance"]["started"] == prov["started"]
