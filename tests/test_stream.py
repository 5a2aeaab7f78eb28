"""Footprints read a batch at a time give the rows, repairs and refusals of the whole file read at once."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from damage.errors import DamageWarning, EmptyFootprintsError, InputNotFoundError
from damage.io.sources import read_footprints
from damage.io.stream import FootprintStream

BOW_TIE = shapely.Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])  # invalid, repaired into two triangles


def _houses(n: int = 11) -> gpd.GeoDataFrame:
    geoms = [shapely.box(500000 + 20 * i, 4180000, 500010 + 20 * i, 4180010) for i in range(n)]
    geoms[2] = shapely.affinity.translate(BOW_TIE, 500000, 4180000)
    geoms[7] = None
    geoms[9] = shapely.Point(500000, 4180000)
    return gpd.GeoDataFrame({"name": [f"h{i}" for i in range(n)], "levels": np.arange(n) % 4}, geometry=geoms,
                            crs="EPSG:32615")


def _caught(read):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = read()
    return out, sorted(str(w.message) for w in caught if issubclass(w.category, DamageWarning))


@pytest.mark.parametrize("suffix", [".parquet", ".gpkg", ".geojson", None])
def test_batches_are_the_whole_files_rows_repairs_and_warnings(tmp_path, suffix):
    frame = _houses()
    if suffix is None:
        source = frame
    else:
        source = tmp_path / f"houses{suffix}"
        frame.to_parquet(source, row_group_size=4) if suffix == ".parquet" else frame.to_file(source)
    whole, said = _caught(lambda: read_footprints(source))
    stream = FootprintStream(source, rows=3)
    parts, told = _caught(lambda: list(stream))
    assert told == said and len(said) == 2  # one warning of each kind, with the whole file's counts
    assert [len(p) for p in parts] == [3, 3, 3, 2]
    joined = pd.concat(parts, ignore_index=True)
    assert joined.crs == whole.crs and list(joined.columns) == list(whole.columns)
    assert shapely.equals_exact(joined.geometry.values, whole.geometry.values, 0).sum() == whole.geometry.notna().sum()
    assert joined["name"].tolist() == whole["name"].tolist() and joined["levels"].tolist() == whole["levels"].tolist()
    again, quiet = _caught(lambda: list(stream))  # a second pass: the same rows, judged once
    assert quiet == [] and pd.concat(again, ignore_index=True)["name"].tolist() == joined["name"].tolist()


def test_a_file_of_which_no_footprint_can_be_used_is_refused_as_the_whole_is(tmp_path):
    useless = gpd.GeoDataFrame({"n": range(7)}, geometry=[shapely.Point(i, i) for i in range(7)], crs="EPSG:32615")
    path = tmp_path / "points.gpkg"
    useless.to_file(path)
    with pytest.raises(EmptyFootprintsError) as whole:
        read_footprints(path)
    with pytest.raises(EmptyFootprintsError) as parts:
        list(FootprintStream(path, rows=2))
    assert str(parts.value) == str(whole.value)
    with pytest.raises(InputNotFoundError, match="no such file"):
        FootprintStream(tmp_path / "nowhere.parquet")


def test_an_attribute_named_geometry_is_kept_as_the_whole_file_keeps_it(tmp_path):
    import json

    features = [{"type": "Feature", "properties": {"geometry": f"g{i}", "n": i},
                 "geometry": {"type": "Polygon", "coordinates": [[[i, 0], [i + 0.5, 0], [i + 0.5, 0.5], [i, 0.5], [i, 0]]]}}
                for i in range(5)]
    path = tmp_path / "odd.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    whole, said = _caught(lambda: read_footprints(path))
    parts, told = _caught(lambda: list(FootprintStream(path, rows=2)))
    joined = pd.concat(parts, ignore_index=True)
    assert told == said and list(joined.columns) == list(whole.columns) and "geometry_" in whole.columns
    assert joined["geometry_"].tolist() == whole["geometry_"].tolist() == [f"g{i}" for i in range(5)]
