"""Inputs from disk: epochs of tiles (a file, a folder, a list), stacks with their dates, footprints."""

from __future__ import annotations

import datetime
import warnings

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine

from damage.errors import (
    BandMismatchError,
    DamageWarning,
    EmptyFootprintsError,
    InputNotFoundError,
    MissingCRSError,
)
from damage.io.sources import check_order, open_epoch, open_stack, read_footprints


@pytest.fixture
def tif(tmp_path):
    """Write a small GeoTIFF (``bands`` bands, 20 x 30 px of 0.5 m) with optional tags; returns its path."""

    def write(name: str, bands: int = 3, x0: float = 500_000.0, tags: dict | None = None, folder: str = ""):
        path = tmp_path / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(path, "w", driver="GTiff", count=bands, height=20, width=30, dtype="uint8",
                           crs="EPSG:32615", transform=Affine(0.5, 0, x0, 0, -0.5, 4_100_000.0)) as ds:
            ds.write(np.full((bands, 20, 30), 100, np.uint8))
            if tags:
                ds.update_tags(**tags)
        return path

    return write


def test_an_epoch_is_a_file_a_folder_of_tiles_or_a_list_of_either(tif, tmp_path):
    one = open_epoch(tif("a.tif"), "before")
    assert one.name == "before" and len(one.tiles) == 1 and one.count == 3
    t = one.tiles[0]
    assert (t.width, t.height, t.res, t.crs.to_epsg()) == (30, 20, 0.5, 32615)
    assert t.bounds == (500_000.0, 4_099_990.0, 500_015.0, 4_100_000.0)
    assert one.describe() == str(tmp_path / "a.tif")
    tif("t2.tif", x0=500_015.0, folder="tiles")
    tif("t1.TIF", folder="tiles")  # suffixes in any case
    (tmp_path / "tiles" / "notes.txt").write_text("not a tile")
    folder = open_epoch(tmp_path / "tiles", "after")
    assert [p.name for p in (t.path for t in folder.tiles)] == ["t1.TIF", "t2.tif"]  # sorted, the text file left out
    assert folder.describe() == f"after epoch (2 tiles under {tmp_path / 'tiles'})"
    both = open_epoch([tmp_path / "a.tif", str(tmp_path / "tiles")])
    assert [t.path.name for t in both.tiles] == ["a.tif", "t1.TIF", "t2.tif"]
    assert both.describe().endswith("(3 tiles under several folders)")


def test_missing_and_empty_inputs_are_refused_naming_them(tmp_path):
    with pytest.raises(InputNotFoundError, match="nowhere.tif: no such file"):
        open_epoch(tmp_path / "nowhere.tif")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputNotFoundError, match="empty: directory holds no raster tiles"):
        open_epoch(tmp_path / "empty")
    with pytest.raises(InputNotFoundError, match="empty list"):
        open_epoch([])


def test_tiles_of_one_epoch_with_different_band_counts_are_refused_in_one_line(tif, tmp_path):
    tif("rgb.tif", 3, folder="mixed")
    tif("grey.tif", 1, folder="mixed")
    with pytest.raises(BandMismatchError) as err:
        open_epoch(tmp_path / "mixed", "before")
    message = str(err.value)
    assert "\n" not in message
    assert message == "before epoch: tiles have different band counts (grey.tif: 1, rgb.tif: 3)"
    with pytest.raises(BandMismatchError, match="after epoch: .*a.tif: 2, b.tif: 3"):
        open_epoch([tif("a.tif", 2), tif("b.tif", 3)], "after")
    # an alpha band is not a band of the image (GDAL writes 4 bands of bytes as RGBA)
    assert open_epoch([tif("rgba.tif", 4), tif("rgb2.tif", 3, x0=500_015.0)]).count == 3


def test_dates_come_from_a_tag_or_else_a_date_in_the_name(tif):
    assert open_epoch(tif("x.tif", tags={"ACQUISITION_DATE": "2023-02-06"})).tiles[0].date == datetime.date(2023, 2, 6)
    exif = tif("y.tif", tags={"TIFFTAG_DATETIME": "2023:02:07 10:11:12"})
    assert open_epoch(exif).tiles[0].date == datetime.date(2023, 2, 7)
    assert open_epoch(tif("S2_20230210_T15.tif")).tiles[0].date == datetime.date(2023, 2, 10)
    assert open_epoch(tif("pass_2023-01-31.tif")).tiles[0].date == datetime.date(2023, 1, 31)
    # the tag wins over the name; no date, or digits that are not one, give None
    tagged = tif("S2_20230210_b.tif", tags={"ACQUISITION_DATE": "2022-12-24"})
    assert open_epoch(tagged).tiles[0].date == datetime.date(2022, 12, 24)
    assert open_epoch(tif("plain.tif")).tiles[0].date is None
    assert open_epoch(tif("tile_123456789.tif")).tiles[0].date is None  # nine digits: not a date
    assert open_epoch(tif("id_20230210123.tif")).tiles[0].date is None  # a longer number that begins like one
    assert open_epoch(tif("tile_20231399.tif")).tiles[0].date is None  # month 13


def test_a_stack_groups_files_by_date_and_orbit_in_date_order(tif, tmp_path):
    tif("west_20230210.tif", folder="s")
    tif("east_20230210.tif", x0=500_015.0, folder="s")  # the same date: two tiles of one acquisition
    tif("img_2023-01-15_orbit042.tif", folder="s")
    tif("undated.tif", folder="s")
    tif("tagged.tif", folder="s", tags={"ACQUISITION_DATE": "2023-01-20", "RELATIVE_ORBIT": "7", "UNITS": "dB"})
    stack = open_stack(tmp_path / "s", "before")
    assert [a.date for a in stack] == [datetime.date(2023, 1, 15), datetime.date(2023, 1, 20),
                                       datetime.date(2023, 2, 10), None]
    assert [a.orbit for a in stack] == ["42", "7", None, None]
    assert [len(a.epoch.tiles) for a in stack] == [1, 1, 2, 1]
    assert {t.path.name for t in stack[2].epoch.tiles} == {"west_20230210.tif", "east_20230210.tif"}
    assert stack[1].units == "db" and stack[0].units is None
    assert stack[3].epoch.tiles[0].path.name == "undated.tif" and stack[3].describe().endswith("(no date)")
    assert all(a.epoch.name == "before" for a in stack)


def test_check_order_warns_when_the_after_epoch_is_dated_before_the_before_epoch(tif):
    early = open_epoch(tif("a_20230201.tif"), "after")
    late = open_epoch(tif("b_20230210.tif"), "before")
    with pytest.warns(DamageWarning, match=r"a_20230201.tif is dated 2023-02-01, earlier than .*b_20230210.tif "
                                           r"\(2023-02-10\): are before and after swapped"):
        check_order(late, early)
    undated = open_epoch(tif("c.tif"))
    same_day = open_epoch(tif("d_20230210.tif"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none of these warns
        check_order(early, late)
        check_order(late, same_day)  # the same day is not out of order
        check_order(late, undated)  # nothing to compare
        check_order(undated, early)


@pytest.fixture
def mixed_footprints():
    geoms = [shapely.box(500_000, 4_100_000, 500_010, 4_100_010), shapely.Point(500_020, 4_100_000),
             shapely.Polygon(), None, shapely.LineString([(0, 0), (1, 1)]),
             shapely.MultiPolygon([shapely.box(500_030, 4_100_000, 500_035, 4_100_005)])]
    return gpd.GeoDataFrame({"name": list("abcdef")}, geometry=geoms, crs="EPSG:32615", index=[10, 11, 12, 13, 14, 15])


def test_footprints_that_are_not_polygons_are_kept_as_rows_and_counted_in_one_warning(mixed_footprints):
    with pytest.warns(DamageWarning, match=r"^footprints: 4 footprint\(s\) are empty, null or not polygons "
                                           r"and are not analysed$") as caught:
        out = read_footprints(mixed_footprints)
    assert len([w for w in caught if issubclass(w.category, DamageWarning)]) == 1
    assert list(out["name"]) == list("abcdef") and list(out.index) == list(range(6))  # input order, fresh index
    assert out.geometry.iloc[0].equals(mixed_footprints.geometry.iloc[0]) and out.crs == mixed_footprints.crs
    assert mixed_footprints.index[0] == 10  # the input is not changed


def test_footprints_from_a_file_and_what_cannot_be_read(mixed_footprints, tmp_path):
    good = mixed_footprints.iloc[[0, 5]]
    good.to_file(tmp_path / "fp.geojson", driver="GeoJSON")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # all polygons: nothing to say
        out = read_footprints(tmp_path / "fp.geojson")
    assert list(out["name"]) == ["a", "f"] and out.crs.to_epsg() == 32615
    with pytest.raises(InputNotFoundError, match="missing.gpkg: no such file"):
        read_footprints(tmp_path / "missing.gpkg")
    with pytest.raises(EmptyFootprintsError, match="all 3 are empty, null or not polygons"):
        read_footprints(mixed_footprints.iloc[1:4])
    with pytest.raises(MissingCRSError):
        read_footprints(good.set_crs(None, allow_override=True))


def test_an_invalid_footprint_is_repaired_with_a_warning():
    bowtie = shapely.Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])
    gdf = gpd.GeoDataFrame(geometry=[bowtie, shapely.box(20, 0, 30, 10)], crs="EPSG:32615")
    with pytest.warns(DamageWarning, match="repaired 1 invalid footprint"):
        out = read_footprints(gdf)
    fixed = out.geometry.iloc[0]
    assert fixed.is_valid and fixed.area == pytest.approx(50.0)  # its two triangles
