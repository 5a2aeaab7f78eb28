"""Building identifiers a reader can use: the input's own, or one derived from the footprint's shape.

A derived id is ``b`` and eight hexadecimal digits of the SHA-1 of the footprint's outline in
longitude and latitude rounded to 1e-7 degrees (about a centimetre): the same building gets the
same id whatever the file's order, its CRS, a ``--where`` or ``--aoi`` selection or the run (a
batch, a rerun, a label file written from the result). Identical outlines are told apart by
``-2``, ``-3`` in input order; a footprint without a usable shape gets ``row<i>``.
"""

from __future__ import annotations

import hashlib
import logging

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from damage.errors import ConfigError

__all__ = ["ID_COLUMN", "ID_CANDIDATES", "id_column_of", "derived_ids", "building_ids", "join_footprints"]

log = logging.getLogger(__name__)

#: The output column holding each building's id.
ID_COLUMN = "building_id"
#: Input columns taken as the id, in this order, when their values are unique and present.
ID_CANDIDATES = ("building_id", "id", "osm_id", "@id", "uid", "fid", "ID", "OBJECTID")


def id_column_of(frame: pd.DataFrame, wanted: str | None = None) -> str | None:
    """The input column that identifies buildings: ``wanted``, else the first usable candidate.

    A candidate is usable when every value is present and no two are equal. ``wanted`` is
    returned as asked (the caller checks that it exists; see :func:`building_ids`).
    """
    if wanted:
        return wanted
    for name in ID_CANDIDATES:
        if name in frame.columns and name != getattr(frame, "_geometry_column_name", None):
            values = frame[name]
            if values.notna().all() and values.astype(str).str.strip().ne("").all() and values.is_unique:
                return name
    return None


def derived_ids(geoms_lonlat: np.ndarray) -> np.ndarray:
    """Ids from outlines given in longitude/latitude (see the module's docstring)."""
    return _number_repeats(_outline_ids(np.asarray(geoms_lonlat, dtype=object)))


def _outline_ids(geoms: np.ndarray, first: int = 0) -> np.ndarray:
    """Each outline's ``b`` + SHA-1 id, or ``row<i>`` (``i`` counted from ``first``) where it has no usable shape."""
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    ok[ok] = np.isfinite(shapely.bounds(geoms[ok])).all(axis=1)
    out = np.array([f"row{first + i}" for i in range(len(geoms))], dtype=object)
    if ok.any():
        rounded = shapely.set_precision(geoms[ok], 1e-7, mode="pointwise")
        wkb = shapely.to_wkb(shapely.normalize(rounded), output_dimension=2, byte_order=1)
        out[ok] = ["b" + hashlib.sha1(w).hexdigest()[:8] for w in wkb]
    return out


def _number_repeats(ids: np.ndarray) -> np.ndarray:
    """Repeats of an id told apart by ``-2``, ``-3``, ... in order."""
    seen: dict[str, int] = {}
    for i, value in enumerate(ids):
        k = seen.get(value, 0) + 1
        seen[value] = k
        if k > 1:
            ids[i] = f"{value}-{k}"
    return ids


#: Footprints whose outlines are reprojected and hashed at a time (a region's million never copied at once).
ID_BATCH = 50_000


def building_ids(footprints: pd.DataFrame, wanted: str | None = None) -> tuple[np.ndarray, str]:
    """Each footprint's id as text, and where it came from (a column's name, or ``"derived"``).

    Parameters
    ----------
    footprints : geopandas.GeoDataFrame
    wanted : str, optional
        The column to take (``Config.id_column``, ``--id-column``); it must exist and hold
        unique, present values.

    Raises
    ------
    damage.errors.ConfigError
        When ``wanted`` is missing, has empty values or repeats one.
    """
    column = id_column_of(footprints, wanted)
    if column is not None:
        if column not in footprints.columns:
            raise ConfigError(f"id_column={column!r}: the footprints have no such column (they have "
                              f"{', '.join(map(str, footprints.columns[:12]))})")
        values = footprints[column]
        text = values.astype(str).str.strip()
        if values.isna().any() or text.eq("").any():
            raise ConfigError(f"id_column={column!r}: {int(values.isna().sum() + text.eq('').sum())} footprints have no id")
        if not values.is_unique:
            dup = values[values.duplicated()].iloc[0]
            raise ConfigError(f"id_column={column!r}: the id {dup!r} is given to more than one footprint")
        return np.asarray([_text(v) for v in values], dtype=object), column
    geoms = footprints.geometry
    ids = np.empty(len(geoms), dtype=object)
    for start in range(0, len(geoms), ID_BATCH):
        part = geoms.iloc[start : start + ID_BATCH]
        if part.crs is not None and not part.crs.equals("EPSG:4326"):
            part = part.to_crs("EPSG:4326")  # read_footprints refused CRSs without a way there
        ids[start : start + ID_BATCH] = _outline_ids(np.asarray(part.values, dtype=object), first=start)
    return _number_repeats(ids), "derived"


def _text(value: object) -> str:
    """An id as text: whole numbers without a decimal point (an OSM id read as float stays 123, not 123.0)."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def join_footprints(footprints: gpd.GeoDataFrame, table: pd.DataFrame,
                    id_column: str | None = None) -> tuple[gpd.GeoDataFrame, str]:
    """The footprints (input order) with an assessment's columns beside them and ``building_id`` first.

    ``table`` holds one row per footprint, in the same order; a footprint column it also has is
    replaced (with a warning). The input's own ``building_id`` column stays as it is; any other id
    (:func:`damage.geo.ids.building_ids`) goes first, as text. Returns the result and where the
    ids came from.
    """
    clash = [c for c in table.columns if c in footprints.columns]
    if clash:
        log.warning("footprint columns %s are replaced by the assessment's", clash)
    base = footprints.drop(columns=clash) if clash else footprints
    ids, id_source = building_ids(footprints, id_column)
    table = table.set_axis(base.index)
    parts = [base, table]
    if id_source != ID_COLUMN:
        base = base.drop(columns=[ID_COLUMN]) if ID_COLUMN in base.columns else base
        parts = [pd.DataFrame({ID_COLUMN: ids}, index=base.index), base, table]
    return gpd.GeoDataFrame(pd.concat(parts, axis=1), geometry=base.geometry.name, crs=footprints.crs), id_source
