"""Reference damage labels from disk, as one table of graded geometries.

Three kinds of source, all returned as a GeoDataFrame with a ``grade`` column on the
xBD scale (None for labels that are not scored) and a ``label_id``:

- xBD / xView2 label JSON (``features.lng_lat``: WKT polygons with ``subtype`` and
  ``uid``); ``un-classified`` and missing subtypes are kept but not scored.
- UNOSAT-style damage points: a numeric class column, coded as in
  :data:`UNOSAT_CODES`.
- Any vector file (or GeoParquet) with a grade column holding xBD names.

An I/O module, like :mod:`damage.io.sources`: the evaluation itself
(:mod:`damage.evaluate`) never opens files.
"""

from __future__ import annotations

import json
from os import PathLike
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from damage.errors import InputNotFoundError, InvalidLabelsError
from damage.grading import SCALES, to_scale
from damage.io.sources import read_vector

__all__ = ["read_labels", "from_xbd", "from_unosat", "from_vector", "UNOSAT_CODES", "UNOSAT_COLUMNS", "LABEL_FORMATS"]

#: UNOSAT damage classes, as xBD grades: 1 Destroyed, 2 Severe, 3 Moderate, 4 Possible,
#: 5/6 no visible damage. "Possible" damage is not confirmed: it counts as minor, so it
#: is never "damaged" in the binary sense.
UNOSAT_CODES: dict[int, str] = {
    1: "destroyed",
    2: "major-damage",
    3: "minor-damage",
    4: "minor-damage",
    5: "no-damage",
    6: "no-damage",
}
#: UNOSAT's own names of its class codes (the levels of the "unosat" scale).
UNOSAT_NAMES: dict[int, str] = {1: "Destroyed", 2: "Severe Damage", 3: "Moderate Damage", 4: "Possible Damage",
                                5: "No Visible Damage", 6: "No Visible Damage"}
#: Column names UNOSAT products have used for the class code, tried in order.
UNOSAT_COLUMNS = ("Main_Damage_Site_Class", "Main_Dam_1", "Damage_Cl", "Dmg_Cls", "damage_class", "class")
#: Grade names other label sets use for the xBD levels.
_ALIASES = {"un-classified": None, "unclassified": None, "no damage": "no-damage", "minor damage": "minor-damage",
            "major damage": "major-damage", "none": "no-damage"}


def read_labels(
    path: str | PathLike, format: str = "auto", grade_column: str | None = None, scale: str = "xbd"
) -> gpd.GeoDataFrame:
    """Read reference labels.

    Parameters
    ----------
    path : path
        An xBD label JSON, or a vector file OGR reads, or GeoParquet.
    format : {"auto", "xbd", "unosat", "vector"}
        ``auto`` takes ``xbd`` for a JSON whose ``features`` hold ``lng_lat``,
        ``unosat`` for points with a class-code column, else ``vector``.
    grade_column : str, optional
        Column holding the grade (``vector``: grade names, default ``damage_grade``
        then ``grade`` then ``subtype``) or the UNOSAT class code.
    scale : str
        Damage scale the grades must belong to.

    Returns
    -------
    geopandas.GeoDataFrame
        ``label_id``, ``grade`` (None when not scored) and geometry, in the file's CRS.

    Raises
    ------
    InputNotFoundError, InvalidLabelsError
    """
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"{path}: no such file")
    if format not in LABEL_FORMATS:
        raise InvalidLabelsError(f"{path}: label format {format!r} is unknown; choose one of {sorted(LABEL_FORMATS)}")
    if format in ("auto", "xbd") and path.suffix.lower() == ".json":
        doc = _load_json(path)
        if isinstance(doc.get("features"), dict) and "lng_lat" in doc["features"]:  # xBD: validated label by label
            return from_xbd(doc, str(path), scale)
        if format == "xbd":
            raise InvalidLabelsError(f"{path}: not an xBD label file (no features.lng_lat)")
    elif format == "xbd":
        raise InvalidLabelsError(f"{path}: an xBD label file is JSON")
    gdf = read_vector(path, InvalidLabelsError)
    if gdf.crs is None:
        raise InvalidLabelsError(f"{path}: labels have no CRS")
    if format == "unosat" or (format == "auto" and _looks_unosat(gdf, grade_column)):
        return from_unosat(gdf, str(path), grade_column, scale)
    return from_vector(gdf, str(path), grade_column, scale)


LABEL_FORMATS = ("auto", "xbd", "unosat", "vector")


def _load_json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidLabelsError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise InvalidLabelsError(f"{path}: not a label document (top level is not an object)")
    return doc


def from_xbd(doc: dict, label: str = "labels", scale: str = "xbd") -> gpd.GeoDataFrame:
    """Labels from a parsed xBD label document (lon/lat polygons)."""
    feats = doc["features"]["lng_lat"]
    if not isinstance(feats, list):
        raise InvalidLabelsError(f"{label}: features.lng_lat is not a list of labels")
    buildings, props = [], []
    for i, f in enumerate(feats):
        if not isinstance(f, dict):
            raise InvalidLabelsError(f"{label}: label {i} is not an object")
        p = f.get("properties") or {}
        if not isinstance(p, dict):
            raise InvalidLabelsError(f"{label}: label {i} has properties that are not an object")
        if p.get("feature_type", "building") == "building":
            if not isinstance(f.get("wkt"), str):
                raise InvalidLabelsError(f"{label}: label {i} has no WKT polygon (wkt is {type(f.get('wkt')).__name__})")
            buildings.append(f["wkt"])
            props.append(p)
    if not buildings:
        raise InvalidLabelsError(f"{label}: holds no building labels")
    try:
        geoms = shapely.from_wkt(buildings)
    except shapely.errors.GEOSException as exc:
        raise InvalidLabelsError(f"{label}: a label has no valid WKT polygon ({exc})") from None
    grades = to_scale(_grades([p.get("subtype") for p in props], label, "xbd"), scale)
    ids = [str(p.get("uid", i)) for i, p in enumerate(props)]
    return gpd.GeoDataFrame({"label_id": ids, "grade": grades}, geometry=geoms, crs="EPSG:4326")


def _looks_unosat(gdf: gpd.GeoDataFrame, column: str | None) -> bool:
    points = bool(len(gdf)) and bool((shapely.get_type_id(gdf.geometry.values) == 0).all())
    has_code = column is not None and column in gdf and pd.api.types.is_numeric_dtype(gdf[column])
    return points and (has_code or (column is None and any(c in gdf for c in UNOSAT_COLUMNS)))


def from_unosat(gdf: gpd.GeoDataFrame, label: str = "labels", column: str | None = None,
                scale: str = "xbd") -> gpd.GeoDataFrame:
    """Labels from UNOSAT-style points with a numeric class code (see :data:`UNOSAT_CODES`),
    as grades of ``scale`` (UNOSAT's own class names for ``"unosat"``)."""
    column = column or next((c for c in UNOSAT_COLUMNS if c in gdf), None)
    if column is None or column not in gdf:
        raise InvalidLabelsError(f"{label}: no damage class column; tried {list(UNOSAT_COLUMNS)} (name it with grade_column)")
    codes = pd.to_numeric(gdf[column], errors="coerce")
    bad = codes.notna() & ~codes.isin(list(UNOSAT_CODES))
    if bad.any():
        raise InvalidLabelsError(
            f"{label}: column {column!r} holds class code(s) {sorted(set(codes[bad].tolist()))[:5]}; "
            f"known codes are {sorted(UNOSAT_CODES)}"
        )
    if scale == "unosat":
        grades = [UNOSAT_NAMES[int(c)] if pd.notna(c) else None for c in codes]
    else:
        grades = to_scale([UNOSAT_CODES[int(c)] if pd.notna(c) else None for c in codes], scale)
    return gpd.GeoDataFrame({"label_id": np.arange(len(gdf)).astype(str), "grade": grades},
                            geometry=gdf.geometry.values, crs=gdf.crs)


def from_vector(gdf: gpd.GeoDataFrame, label: str = "labels", column: str | None = None, scale: str = "xbd") -> gpd.GeoDataFrame:
    """Labels from any geometries with a column of grade names of ``scale``."""
    candidates = (column,) if column else ("damage_grade", "grade", "subtype")
    column = next((c for c in candidates if c in gdf), None)
    if column is None:
        raise InvalidLabelsError(f"{label}: no grade column; tried {list(candidates)}")
    ids = gdf["label_id"].astype(str).tolist() if "label_id" in gdf else np.arange(len(gdf)).astype(str)
    out = gpd.GeoDataFrame({"label_id": ids, "grade": _grades(gdf[column].tolist(), label, scale)},
                           geometry=gdf.geometry.values, crs=gdf.crs)
    if "building_id" in gdf:  # a file written from a result (suggest -o, a validation sample): matched by id
        out.insert(1, "building_id", [None if pd.isna(v) else str(v) for v in gdf["building_id"]])
    return out


def _grades(values: list, label: str, scale: str) -> list[str | None]:
    """Grade names of ``scale`` (matched whatever their case), None where unscored."""
    levels = SCALES[scale].levels
    by_key = {lv.lower(): lv for lv in levels}
    out: list[str | None] = []
    for v in values:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            out.append(None)
            continue
        key: str | None = str(v).strip().lower()
        key = _ALIASES.get(key, key) if scale == "xbd" and key is not None else key
        if key is not None and key not in by_key and key not in ("not-analysed", "un-classified", "unclassified"):
            raise InvalidLabelsError(f"{label}: grade {v!r} is not on the {scale} scale {list(levels)}")
        out.append(by_key.get(key) if key is not None else None)
    return out
