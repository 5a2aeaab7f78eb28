"""Building identifiers a reader can use: the input's own, or one derived from the footprint's shape.

A derived id is ``b`` and eight hexadecimal digits of the SHA-1 of the footprint's outline in
longitude and latitude rounded to 1e-7 degrees (about a centimetre): the same building gets the
same id whatever the file's order, its CRS, a ``--where`` or ``--aoi`` selection or the run (a
batch, a rerun, a label file written from the result). Identical outlines are told apart by
``-2``, ``-3`` in input order; a footprint without a usable shape gets ``row<i>``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable, Iterable

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from damage.errors import ConfigError

__all__ = ["ID_COLUMN", "ID_CANDIDATES", "id_column_of", "derived_ids", "outline_ids", "building_ids", "join_footprints",
           "RegionIds", "region_ids"]

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
    return _number_repeats(outline_ids(np.asarray(geoms_lonlat, dtype=object)))


def outline_ids(geoms: np.ndarray, first: int = 0) -> np.ndarray:
    """Each outline's ``b`` + SHA-1 id (``geoms`` in longitude/latitude), or ``row<i>`` (``i`` counted from ``first``)
    where it has no usable shape; repeats are not numbered (:func:`derived_ids` numbers them)."""
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
            raise ConfigError(f"id_column={column!r}: the id {_plain(dup)!r} is given to more than one footprint")
        return np.asarray([_text(v) for v in values], dtype=object), column
    geoms = footprints.geometry
    ids = np.empty(len(geoms), dtype=object)
    for start in range(0, len(geoms), ID_BATCH):
        part = geoms.iloc[start : start + ID_BATCH]
        if part.crs is not None and not part.crs.equals("EPSG:4326"):
            part = part.to_crs("EPSG:4326")  # read_footprints refused CRSs without a way there
        ids[start : start + ID_BATCH] = outline_ids(np.asarray(part.values, dtype=object), first=start)
    return _number_repeats(ids), "derived"


def _plain(value: object) -> object:
    """A numpy scalar as the Python value it holds (shown as ``13.0``, not ``np.float64(13.0)``)."""
    return value.item() if isinstance(value, np.generic) else value


def _text(value: object) -> str:
    """An id as text: whole numbers without a decimal point (an OSM id read as float stays 123, not 123.0)."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


@dataclasses.dataclass(frozen=True)
class RegionIds:
    """The ids of a region's footprints, decided over all of them and given a part at a time: the ids
    :func:`building_ids` gives the whole frame.

    Attributes
    ----------
    source : str
        The column the ids come from, or ``"derived"``.
    repeats : dict
        Input position -> its number (2, 3, ...) among equal derived ids.
    """

    source: str
    repeats: dict[int, int]

    def of(self, footprints: pd.DataFrame, outlines: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """The ids of some footprints: ``outlines`` their :func:`outline_ids`, ``positions`` their input positions."""
        if self.source != "derived":
            return np.asarray([_text(v) for v in footprints[self.source]], dtype=object)
        ids = np.asarray(outlines, dtype=object).copy()
        for i, at in enumerate(np.asarray(positions).tolist()):
            k = self.repeats.get(at)
            if k:
                ids[i] = f"{ids[i]}-{k}"
        return ids


def _outline_key(ids: np.ndarray) -> np.ndarray:
    """An outline id as a whole number, one to one: ``b<hex>`` its value, ``row<i>`` ``-1 - i``."""
    text = pd.Series(ids, dtype=object).astype(str)
    hashed = text.str.startswith("b").to_numpy()
    out = np.empty(len(text), np.int64)
    out[hashed] = [int(v[1:], 16) for v in text[hashed]]
    out[~hashed] = [-1 - int(v[3:]) for v in text[~hashed]]
    return out


def region_ids(parts: Callable[[], Iterable[pd.DataFrame]], columns: list[str], wanted: str | None = None,
               geometry: str = "geometry", outline: str = "outline") -> RegionIds:
    """Decide the ids of footprints read a part at a time, as :func:`building_ids` decides them for the whole frame.

    ``parts()`` gives, in input order, frames of the id columns there are (``wanted``, else the
    :data:`ID_CANDIDATES` among ``columns``) and ``outline`` (their :func:`outline_ids`); ``columns`` are
    every attribute column. Memory: eight bytes a footprint and a column.

    Raises
    ------
    damage.errors.ConfigError
        As :func:`building_ids`.
    """
    if wanted and wanted not in columns:
        raise ConfigError(f"id_column={wanted!r}: the footprints have no such column (they have "
                          f"{', '.join(map(str, columns[:12]))})")
    candidates = [wanted] if wanted else [c for c in ID_CANDIDATES if c in columns and c != geometry]
    empty = dict.fromkeys(candidates, 0)
    hashes: dict[str, list[np.ndarray]] = {c: [] for c in candidates}
    keys = []
    for part in parts():
        for c in candidates:
            values = part[c]
            empty[c] += int(values.isna().sum() + values.astype(str).str.strip().eq("").sum())
            hashes[c].append(_hashed(values))
        if not wanted:
            keys.append(_outline_key(part[outline].to_numpy()))
    for c in candidates:
        repeated = _repeated_value(parts, c, np.concatenate(hashes[c]) if hashes[c] else np.empty(0, np.uint64))
        if wanted:
            if empty[c]:
                raise ConfigError(f"id_column={c!r}: {empty[c]} footprints have no id")
            if repeated is not None:
                raise ConfigError(f"id_column={c!r}: the id {_plain(repeated)!r} is given to more than one footprint")
            return RegionIds(c, {})
        if not empty[c] and repeated is None:
            return RegionIds(c, {})
    key = np.concatenate(keys) if keys else np.empty(0, np.int64)
    order = np.argsort(key, kind="stable")  # equal ids in input order
    ranks = np.zeros(len(key), np.int64)
    if len(key):
        new = np.r_[True, key[order][1:] != key[order][:-1]]
        start = np.maximum.accumulate(np.where(new, np.arange(len(key)), 0))
        ranks[order] = np.arange(len(key)) - start
    again = np.flatnonzero(ranks > 0)
    return RegionIds("derived", dict(zip(again.tolist(), (ranks[again] + 1).tolist())))


def _hashed(values: pd.Series) -> np.ndarray:
    """A 64-bit hash of each value (equal values, equal hashes; unequal ones rarely equal: checked after)."""
    return pd.util.hash_pandas_object(values, index=False).to_numpy()


def _repeated_value(parts: Callable[[], Iterable[pd.DataFrame]], column: str, hashed: np.ndarray) -> object | None:
    """The first value (in input order) of ``column`` that a footprint before had, or None: equal hashes are
    checked on the values themselves (a second pass, over those rows only)."""
    values, counts = np.unique(hashed, return_counts=True)
    suspects = values[counts > 1]
    if not suspects.size:
        return None
    held = []
    for part in parts():
        h = _hashed(part[column])
        held.append(part[column][np.isin(h, suspects)])
    found = pd.concat(held, ignore_index=True)
    dup = found[found.duplicated()]
    return dup.iloc[0] if len(dup) else None


def join_footprints(footprints: gpd.GeoDataFrame, table: pd.DataFrame, id_column: str | None = None,
                    ids: tuple[np.ndarray, str] | None = None) -> tuple[gpd.GeoDataFrame, str]:
    """The footprints (input order) with an assessment's columns beside them and ``building_id`` first.

    ``table`` holds one row per footprint, in the same order; a footprint column it also has is
    replaced (with a warning). ``ids``: the footprints' ids and their source, when decided over more
    footprints than these (a region's part, :class:`RegionIds`). The input's own ``building_id`` column stays as it is; any other id
    (:func:`damage.geo.ids.building_ids`) goes first, as text. Returns the result and where the
    ids came from.
    """
    clash = [c for c in table.columns if c in footprints.columns]
    if clash:
        log.warning("footprint columns %s are replaced by the assessment's", clash)
    base = footprints.drop(columns=clash) if clash else footprints
    values, id_source = ids if ids is not None else building_ids(footprints, id_column)
    table = table.set_axis(base.index)
    parts = [base, table]
    if id_source != ID_COLUMN:
        base = base.drop(columns=[ID_COLUMN]) if ID_COLUMN in base.columns else base
        parts = [pd.DataFrame({ID_COLUMN: values}, index=base.index), base, table]
    return gpd.GeoDataFrame(pd.concat(parts, axis=1), geometry=base.geometry.name, crs=footprints.crs), id_source
