"""Facilities, not only buildings: a hospital campus graded from its buildings, with the
damage in rings around it (strikes next to a hospital show up there).

Table code over an assessment: the facilities (polygons with their attributes) are
matched to the assessed footprints; a facility with no footprint inside is assessed as
one polygon (the pipeline adds it to the footprints it measures).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from damage.geo.raster import metres_per_unit
from damage.grading import NOT_ANALYSED, SCALES

__all__ = ["assign", "summarise", "NAME_COLUMNS", "name_column", "RINGS_M", "confidence", "how_sure", "damaged_count"]

#: Columns searched, in order, for a building's or facility's name.
NAME_COLUMNS = ("name", "name:en", "name_en", "NAME", "Name", "facility_name", "healthsite_name")
#: Distances (metres) of the rings around a facility.
RINGS_M = (50.0, 100.0, 250.0)


def name_column(frame: pd.DataFrame, wanted: str | None = None) -> str | None:
    """The column holding names: ``wanted`` if given (and present), else the first of :data:`NAME_COLUMNS`."""
    if wanted:
        return wanted if wanted in frame.columns else None
    return next((c for c in NAME_COLUMNS if c in frame.columns), None)


def confidence(p_damaged: float, damaged: bool) -> str:
    """How sure a grade is, in words, from the probability that the building is damaged.

    ``sure`` when that probability is at least 0.9 for a damaged grade (at most 0.1 for an
    undamaged one), ``likely`` at 0.7 (0.3), else ``uncertain``; ``unknown`` without one.
    """
    if not np.isfinite(p_damaged):
        return "unknown"
    q = p_damaged if damaged else 1.0 - p_damaged
    return "sure" if q >= 0.9 else "likely" if q >= 0.7 else "uncertain"


def how_sure(facility: pd.Series) -> str:
    """A facility's grade in words: on which building and how sure, or why it has none."""
    buildings, analysed = int(facility.get("buildings", 0)), int(facility.get("analysed", 0))
    if analysed == 0:
        return f"none of its {buildings} building(s) analysed" if buildings else "assessed as one polygon: not analysed"
    p, sure, worst = facility.get("worst_p_damaged", np.nan), str(facility.get("grade_confidence", "unknown")), \
        facility.get("worst_building")
    return f"p_damaged {p:.2f} at {worst}: {sure}" if p == p and worst else sure


def damaged_count(facility: pd.Series, scale: str = "xbd") -> int:
    """How many of a facility's buildings are graded damaged (major damage or worse)."""
    return sum(int(facility.get(f"n_{lv}", 0)) for lv in SCALES[scale].damaged)


def _local(gdf: gpd.GeoDataFrame):
    """A projected CRS for the frame (its own if projected) and the metres of its unit along x and y."""
    crs = gdf.crs if gdf.crs.is_projected else gdf.estimate_utm_crs()
    return crs, metres_per_unit(crs)


def assign(footprints: gpd.GeoDataFrame, facilities: gpd.GeoDataFrame) -> np.ndarray:
    """The facility (row position) each footprint belongs to, -1 for none.

    A footprint belongs to the facility whose polygon holds its representative point
    (the smallest, where facilities nest).
    """
    out = np.full(len(footprints), -1, np.int64)
    if len(facilities) == 0 or len(footprints) == 0:
        return out
    fac = facilities.to_crs(footprints.crs)
    geoms = np.asarray(footprints.geometry.values, dtype=object)
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    pts = shapely.point_on_surface(geoms[ok])
    fgeoms = np.asarray(fac.geometry.values, dtype=object)
    tree = shapely.STRtree(fgeoms)
    pi, fi = tree.query(pts, predicate="within")
    if pi.size:
        area = shapely.area(fgeoms[fi])
        order = np.lexsort((area, pi))  # per point, the smallest facility first
        pi, fi = pi[order], fi[order]
        first = np.r_[True, pi[1:] != pi[:-1]]
        out[np.flatnonzero(ok)[pi[first]]] = fi[first]
    return out


def summarise(result: gpd.GeoDataFrame, facilities: gpd.GeoDataFrame, facility_of: np.ndarray, scale: str = "xbd",
              rings_m: tuple[float, ...] = RINGS_M) -> gpd.GeoDataFrame:
    """One row per facility: its grade, its buildings per grade, damaged roof area, damage around it.

    Parameters
    ----------
    result : geopandas.GeoDataFrame
        Every assessed footprint (the facilities assessed as one polygon included), with
        ``damage_grade``, ``changed_fraction``.
    facilities : geopandas.GeoDataFrame
        The facilities with their attributes.
    facility_of : numpy.ndarray
        :func:`assign` of ``result``.
    scale : str
    rings_m : tuple of float
        Ring distances in metres.

    Returns
    -------
    geopandas.GeoDataFrame
        The facilities' attributes and polygons, plus ``damage_grade`` (the worst of its
        buildings), ``buildings``, ``analysed``, ``worst_building`` (the id of the building that
        sets the grade), its ``worst_p_damaged`` and ``grade_confidence`` (:func:`confidence`),
        ``n_<level>`` per grade,
        ``damaged_share``, ``damaged_roof_m2``, and per ring ``damaged_within_<d>m``
        (buildings graded damaged outside the facility within d metres of it) and
        ``changed_m2_within_<d>m`` (their changed roof area, from ``changed_fraction``).
    """
    sc = SCALES[scale]
    crs, (mx, my) = _local(result)
    res = result.to_crs(crs)
    fac = facilities.to_crs(crs)
    grades = res["damage_grade"].to_numpy(dtype=object)
    area = shapely.area(np.asarray(res.geometry.values, dtype=object)) * (mx * my)  # m2 in any projected unit
    damaged = np.isin(grades, sc.damaged)
    changed = np.nan_to_num(res["changed_fraction"].to_numpy(dtype=float)) * area if "changed_fraction" in res else \
        np.zeros(len(res))
    rank = {lv: i for i, lv in enumerate(sc.levels)}
    p = res["p_damaged"].to_numpy(dtype=float) if "p_damaged" in res else np.full(len(res), np.nan)
    ids = res["building_id"].to_numpy(dtype=object) if "building_id" in res else np.arange(len(res)).astype(str)
    rows = []
    geoms = np.asarray(res.geometry.values, dtype=object)
    tree = shapely.STRtree(geoms)
    for k, poly in enumerate(fac.geometry.values):
        mine = facility_of == k
        g = grades[mine]
        analysed = [v for v in g if v in rank]
        worst_grade = max(analysed, key=rank.__getitem__) if analysed else NOT_ANALYSED
        row = {
            "damage_grade": worst_grade,
            "buildings": int(mine.sum()),
            "analysed": len(analysed),
        }
        # the building that sets the grade (the most probably damaged of the worst grade) and how sure it is
        members = np.flatnonzero(mine & (grades == worst_grade))
        if members.size:
            w = members[np.argmax(np.nan_to_num(p[members], nan=-1.0))]
            row["worst_building"] = None if ids[w] is None else str(ids[w])
            row["worst_p_damaged"] = round(float(p[w]), 4) if np.isfinite(p[w]) else np.nan
            row["grade_confidence"] = confidence(float(p[w]), worst_grade in sc.damaged)
        else:
            row["worst_building"], row["worst_p_damaged"], row["grade_confidence"] = None, np.nan, "unknown"
        for lv in sc.levels:
            row[f"n_{lv}"] = int((g == lv).sum())
        row["damaged_share"] = round(float(damaged[mine].sum() / len(analysed)), 4) if analysed else np.nan
        row["damaged_roof_m2"] = round(float(area[mine & damaged].sum()), 1)
        for d in rings_m:
            near = tree.query(shapely.buffer(poly, d / mx), predicate="intersects")  # d metres in CRS units
            near = near[~mine[near]]
            row[f"damaged_within_{int(d)}m"] = int(damaged[near].sum())
            row[f"changed_m2_within_{int(d)}m"] = round(float(changed[near].sum()), 1)
        rows.append(row)
    table = pd.DataFrame(rows, index=facilities.index)
    clash = [c for c in table.columns if c in facilities.columns]
    base = facilities.drop(columns=clash)
    return gpd.GeoDataFrame(pd.concat([base, table], axis=1), geometry=facilities.geometry.name, crs=facilities.crs)
