"""Every kind of bad input: a DamageError (also the matching builtin) with a one-line
message naming the file, through the library and through the CLI (exit 1, no output)."""

import re
import warnings

import geopandas as gpd
import numpy as np
import pytest
import shapely
from click.testing import CliRunner

import damage
from damage.cli import main
from damage.errors import (
    BandMismatchError,
    DamageError,
    DamageWarning,
    EmptyFootprintsError,
    FootprintsOutsideImageryError,
    InputNotFoundError,
    InvalidFootprintsError,
    InvalidRasterError,
    MissingCRSError,
    NoOverlapError,
    NoValidDataError,
)


def _cases(tmp_path, pair_factory, write_raster):
    b, a, f, scene = pair_factory()
    cases = {}
    cases["missing path"] = ((tmp_path / "nope.tif", a, f), InputNotFoundError, FileNotFoundError, "nope.tif")
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    cases["empty folder"] = ((empty_dir, a, f), InputNotFoundError, FileNotFoundError, "empty")
    nocrs = write_raster("nocrs.tif", scene.after, crs=None)
    cases["no CRS"] = ((b, nocrs, f), MissingCRSError, ValueError, "nocrs.tif")
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"this is not a tiff" * 10)
    cases["corrupt raster"] = ((b, garbage, f), InvalidRasterError, OSError, "garbage.tif")
    far = write_raster("far.tif", scene.after, transform=scene.transform.translation(10_000, 0) * scene.transform)
    cases["no overlap"] = ((b, far, f), NoOverlapError, ValueError, r"far\.tif \(lon -?[\d.]+ to -?[\d.]+, lat .*\) do not overlap")
    two_band = write_raster("two.tif", scene.after[:2])
    cases["band mismatch"] = ((b, two_band, f), BandMismatchError, ValueError, "two.tif")
    black = write_raster("black.tif", np.zeros_like(scene.after))
    cases["all nodata"] = ((b, black, f), NoValidDataError, ValueError, "black.tif")
    elsewhere = tmp_path / "elsewhere.geojson"
    gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 10, 10)], crs=scene.crs).to_file(elsewhere)
    cases["footprints elsewhere"] = ((b, a, elsewhere), FootprintsOutsideImageryError, ValueError,
                                     r"elsewhere\.geojson: no footprint .*the footprints span lon .*, the imagery's overlap lon ")
    no_rows = tmp_path / "norows.geojson"
    no_rows.write_text('{"type": "FeatureCollection", "features": []}')
    cases["empty footprints"] = ((b, a, no_rows), EmptyFootprintsError, ValueError, "norows.geojson")
    bad_vec = tmp_path / "bad.geojson"
    bad_vec.write_text("{ not json")
    cases["corrupt footprints"] = ((b, a, bad_vec), InvalidFootprintsError, OSError, "bad.geojson")
    cplx = write_raster("complex.tif", (scene.after + 1j * scene.after).astype(np.complex64))
    cases["complex imagery"] = ((b, cplx, f), InvalidRasterError, OSError, "complex.tif: complex-valued")
    absurd = tmp_path / "absurd.geojson"
    absurd.write_text('{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": '
                      '{"type": "Polygon", "coordinates": [[[0, 0], [1e308, 0], [1e308, 1e308], [0, 0]]]}}]}')
    cases["absurd coordinates"] = ((b, a, absurd), InvalidFootprintsError, OSError, "absurd.geojson: every footprint")
    return cases


CASES = [
    "missing path", "empty folder", "no CRS", "corrupt raster", "no overlap", "band mismatch",
    "all nodata", "footprints elsewhere", "empty footprints", "corrupt footprints", "complex imagery",
    "absurd coordinates",
]


def test_footprints_with_absurd_coordinates_are_not_analysed_and_counted(pair_factory, tmp_path):
    b, a, f, _ = pair_factory()
    fp = gpd.read_file(f)
    fp.loc[len(fp)] = {**fp.iloc[0].to_dict(), "geometry": shapely.box(1e300, 1e300, 2e300, 2e300)}
    path = tmp_path / "some_absurd.geojson"
    fp.to_file(path)
    with pytest.warns(DamageWarning, match="1 footprint.s. have coordinates no place on Earth has"):
        result = damage.assess(b, a, path)
    assert result["damage_grade"].iloc[-1] == "not-analysed" and (result["damage_grade"] != "not-analysed").sum() > 5


@pytest.mark.parametrize("case", CASES)
def test_library_raises_one_line_errors(case, tmp_path, pair_factory, write_raster):
    args, error, builtin, words = _cases(tmp_path, pair_factory, write_raster)[case]
    with pytest.raises(error) as info:
        damage.assess(*args)
    assert isinstance(info.value, DamageError) and isinstance(info.value, builtin)
    message = str(info.value)
    assert re.search(words, message) and "\n" not in message


@pytest.mark.parametrize("case", CASES)
def test_cli_prints_one_line_exits_nonzero_and_writes_nothing(case, tmp_path, pair_factory, write_raster):
    args, _, _, words = _cases(tmp_path, pair_factory, write_raster)[case]
    out = tmp_path / "out.geojson"
    res = CliRunner().invoke(main, ["assess", *map(str, args), "-o", str(out), "-q"])
    assert res.exit_code == 1, res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and re.search(words, lines[0])
    assert not out.exists()


def test_invalid_geometries_are_repaired_with_a_warning_that_counts_them(pair_factory, tmp_path):
    b, a, f, _ = pair_factory(damaged=(0,))
    fp = gpd.read_file(f)
    x0, y0, x1, y1 = fp.geometry.iloc[0].bounds
    fp.loc[0, "geometry"] = shapely.Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1)])  # bow-tie
    fp.loc[1, "geometry"] = shapely.Polygon()
    with pytest.warns(DamageWarning) as record:
        result = damage.assess(b, a, fp)
    messages = " ".join(str(w.message) for w in record)
    assert "repaired 1 invalid footprint" in messages and "1 footprint(s) are empty" in messages
    assert result.loc[0, "damage_grade"] in ("major-damage", "destroyed")
    assert result.loc[1, "damage_grade"] == "not-analysed"
    assert len(result) == len(fp)


def test_a_resolution_far_finer_than_the_imagery_is_refused_at_once(pair_factory, tmp_path):
    from damage.errors import ConfigError

    b, a, f, _ = pair_factory()
    with pytest.raises(ConfigError, match="times finer"):
        damage.assess(b, a, f, resolution=0.001)
    res = CliRunner().invoke(main, ["assess", str(b), str(a), str(f), "-o", str(tmp_path / "o.geojson"),
                                    "--resolution", "0.001"])
    assert res.exit_code == 1 and "times finer" in res.output and not (tmp_path / "o.geojson").exists()
    assert damage.assess(b, a, f, resolution=0.25)["damage_grade"].notna().all()  # 2x finer is fine



def test_footprints_in_a_local_crs_are_refused_in_one_line(pair_factory, tmp_path):
    b, a, f, _ = pair_factory()
    local = gpd.read_file(f).set_crs('ENGCRS["site grid",EDATUM[""],CS[Cartesian,2],AXIS["x",east,ORDER[1],LENGTHUNIT'
                                     '["metre",1]],AXIS["y",north,ORDER[2],LENGTHUNIT["metre",1]]]', allow_override=True)
    with pytest.raises(MissingCRSError, match="'site grid', a CRS that cannot be transformed"):
        damage.assess(b, a, local)


@pytest.mark.parametrize("suffix", [".gpkg", ".fgb", ".kml"])
def test_columns_that_differ_only_in_case_are_refused_for_geopackage(pair_factory, tmp_path, suffix):
    from damage.errors import OutputError

    b, a, f, _ = pair_factory()
    result = damage.assess(b, a, f).assign(Damage_Grade="x")
    with pytest.raises(OutputError, match="'damage_grade' and 'Damage_Grade' differ only in case"):
        damage.write(result, tmp_path / f"out{suffix}")
    assert not list(tmp_path.glob(f"*{suffix}")) and damage.write(result, tmp_path / "out.geojson").exists()


def test_a_warning_when_most_footprints_lie_outside_the_imagery(pair_factory, tmp_path):
    b, a, f, _ = pair_factory()
    fp = gpd.read_file(f)
    far = fp.iloc[[0] * (2 * len(fp))].copy()
    far["geometry"] = [shapely.affinity.translate(fp.geometry.iloc[0], 3000 + 30 * i, 0) for i in range(len(far))]
    import pandas as pd

    path = tmp_path / "mostly_elsewhere.geojson"
    gpd.GeoDataFrame(pd.concat([fp, far], ignore_index=True), crs=fp.crs).to_file(path)
    with pytest.warns(DamageWarning, match=rf"mostly_elsewhere\.geojson: {2 * len(fp)} of the {3 * len(fp)} footprints "
                                          r"\(67 %\) lie outside the imagery both epochs cover \(lon "):
        result = damage.assess(b, a, path)
    assert (result["not_analysed_reason"] == "outside imagery").sum() == 2 * len(fp)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DamageWarning)
        damage.assess(b, a, f)  # none outside: no warning
