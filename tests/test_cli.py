import json

from click.testing import CliRunner

import damage
from damage.cli import main


def test_assess_writes_geojson_polygons_and_a_summary(pair_factory, tmp_path):
    import geopandas as gpd

    b, a, f, _ = pair_factory(damaged=(2, 9))
    fp = gpd.read_file(f)
    fp["name"] = [f"Clinic {i}" if i in (2, 3) else None for i in fp["building_id"]]
    named = tmp_path / "named.gpkg"
    fp.to_file(named)
    out, polys = tmp_path / "out.geojson", tmp_path / "polys.geojson"
    res = CliRunner().invoke(main, ["assess", str(b), str(a), str(named), "-o", str(out), "--polygons", str(polys), "-q"])
    assert res.exit_code == 0, res.output
    assert "destroyed" in res.output and "Clinic 2" in res.output and "Clinic 3" not in res.output
    doc = json.loads(out.read_text())
    grades = {f["properties"]["building_id"]: f["properties"]["damage_grade"] for f in doc["features"]}
    assert grades[2] == grades[9] == "destroyed"
    assert {f["properties"]["footprint"] for f in json.loads(polys.read_text())["features"]} == {2, 9}


def test_options_and_config_file_reach_the_library(pair_factory, tmp_path):
    b, a, f, _ = pair_factory()
    cfg = tmp_path / "c.toml"
    cfg.write_text("min_valid_fraction = 0.8\n")
    out = tmp_path / "o.parquet"
    args = ["assess", str(b), str(a), str(f), "-o", str(out), "--config", str(cfg), "--no-register", "--metric", "ssim=2", "--metric", "absdiff", "-qq"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0 and res.output == ""
    import geopandas as gpd

    record = gpd.read_parquet(out).attrs["damage"]
    assert record["config"]["min_valid_fraction"] == 0.8
    assert record["config"]["register"] is False
    assert record["config"]["metrics"] == {"ssim": 2.0, "absdiff": 1.0}


def test_bad_option_value_is_a_usage_error(pair_factory, tmp_path):
    b, a, f, _ = pair_factory()
    res = CliRunner().invoke(main, ["assess", str(b), str(a), str(f), "-o", str(tmp_path / "x.geojson"), "--metric", "nope"])
    assert res.exit_code == 1 and "nope" in res.output


def test_version():
    res = CliRunner().invoke(main, ["--version"])
    assert damage.__version__ in res.output


def _one_error_line(res) -> str:
    lines = [line for line in (res.stderr if hasattr(res, "stderr") else res.output).splitlines() if line.strip()]
    assert res.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error:"), res.output
    return lines[0]


def test_outputs_never_overwrite_an_input_nor_each_other(pair_factory, tmp_path):
    b, a, f, _ = pair_factory()
    before_bytes = f.read_bytes()
    res = CliRunner().invoke(main, ["assess", str(b), str(a), str(f), "-o", str(f), "-q"])
    assert "is an input" in _one_error_line(res)
    assert f.read_bytes() == before_bytes
    out = tmp_path / "o.geojson"
    res = CliRunner().invoke(main, ["assess", str(b), str(a), str(f), "-o", str(out), "--polygons", str(out), "-q"])
    assert "same file" in _one_error_line(res) and not out.exists()
    res = CliRunner().invoke(main, ["assess", str(b), str(a), str(f), "-o", str(out), "--polygons",
                                    str(tmp_path / "nodir" / "p.geojson"), "-q"])
    assert "does not exist" in _one_error_line(res) and not out.exists()  # refused before -o was written


def test_the_library_never_writes_over_an_input(pair_factory, tmp_path):
    import shutil

    import pytest

    from damage.errors import OutputError

    b, a, f, _ = pair_factory()
    copy = tmp_path / "fp.geojson"
    shutil.copy(f, copy)
    result = damage.assess(b, a, copy)
    with pytest.raises(OutputError, match="is an input"):
        damage.write(result, copy)
    assert copy.read_bytes() == f.read_bytes()


def test_float_imagery_with_nan_nodata_is_analysed(pair_factory, tmp_path):
    import numpy as np
    import rasterio

    b, a, f, _ = pair_factory(damaged=(2,), after_crs="EPSG:4326")  # resampled: NaN meets the kernel
    paths = []
    for src in (b, a):
        with rasterio.open(src) as ds:
            data, profile = ds.read().astype(np.float32), ds.profile
        data[:, -40:, :] = np.nan  # a strip of no data, declared as NaN
        profile.update(dtype="float32", nodata=None)  # NaN, not declared: the reader must find it
        dst = tmp_path / f"float_{src.name}"
        with rasterio.open(dst, "w", **profile) as ds:
            ds.write(data)
        paths.append(dst)
    result = damage.assess(*paths, f)
    analysed = result["damage_grade"] != "not-analysed"
    assert analysed.mean() > 0.7 and np.isfinite(result.loc[analysed, "damage_score"]).all()
    assert result.loc[result["building_id"] == 2, "damage_grade"].item() in ("major-damage", "destroyed")


def test_no_progress_bar_clutter_when_output_goes_to_a_file(pair_factory, tmp_path):
    import subprocess
    import sys

    b, a, f, _ = pair_factory()
    log = tmp_path / "run.log"
    with open(log, "w") as fh:  # not a terminal: stderr and stdout go to a log file
        subprocess.run([sys.executable, "-m", "damage", "assess", str(b), str(a), str(f), "-o",
                        str(tmp_path / "o.geojson")], stdout=fh, stderr=fh, check=True)
    text = log.read_text()
    assert "\r" not in text and "%|" not in text and "buildings assessed" in text


def test_outputs_are_not_overwritten_without_asking_and_dash_is_standard_output(tmp_path):
    import json

    from click.testing import CliRunner
    from conftest import SAMPLE as s

    from damage.cli import main
    out = tmp_path / "o.geojson"
    out.write_text("keep")
    args = ["assess", f"{s}/before", f"{s}/after", f"{s}/footprints.geojson"]
    res = CliRunner().invoke(main, [*args, "-o", str(out)])
    assert res.exit_code == 1 and "exists; pass --overwrite" in res.output and out.read_text() == "keep"
    res = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "o.shp")])
    assert res.exit_code == 1 and "unknown output format" in res.output
    res = CliRunner().invoke(main, [*args, "-o", "-"])
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    assert doc["type"] == "FeatureCollection" and len(doc["features"]) > 100 and "provenance" in doc["damage"]
    res = CliRunner().invoke(main, [*args, "-o", str(out), "--overwrite", "-q"])
    assert res.exit_code == 0 and out.read_text() != "keep"
