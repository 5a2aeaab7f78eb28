"""Assess again what a result file records, to cut its evidence (chips, overview) for a report.

A result file holds grades, not pixels. ``damage report`` and ``damage chips`` read the
inputs its run record names (checked against the SHA-256 recorded for each) and run the
same assessment again with the same configuration, labels and facilities; one path and
no randomness make it give the same grades, which is checked too.
"""

from __future__ import annotations

import warnings
from os import PathLike
from pathlib import Path

import geopandas as gpd
import numpy as np

from damage.config import Config
from damage.errors import DamageWarning, InvalidLabelsError, OutputError
from damage.io.sources import read_result
from damage.run.provenance import sha256_of

__all__ = ["reassess"]


def reassess(result: str | PathLike | gpd.GeoDataFrame, chips: int = 12, chips_for=None,
             footprints: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
    """The assessment a result records, run again with its evidence kept (``chips``).

    ``footprints``: the footprints it assessed, when they are not the file its record
    names (a region run with ``where`` or ``aoi`` assessed a selection of them).

    Raises
    ------
    InvalidLabelsError
        The result carries no run record with its inputs (not written by this library).
    OutputError
        An input is missing or changed since (its SHA-256 differs), or the grades came
        out different.
    """
    from damage.run.pipeline import assess

    res = read_result(result) if not isinstance(result, gpd.GeoDataFrame) else result
    name = "the result" if isinstance(result, gpd.GeoDataFrame) else str(result)
    record = res.attrs.get("damage", {})
    prov = record.get("provenance", {}).get("inputs")
    if not prov or "config" not in record:
        raise InvalidLabelsError(f"{name}: has no run record naming its inputs; assess again with --report")
    for epoch in ("before", "after", "other"):
        for f in prov.get(epoch, []):
            if f.get("sha256") is None:  # remote: checked below by grading it again
                continue
            p = Path(f["path"])
            if not p.exists():
                raise OutputError(f"{p}: an input of {name} is gone; cannot cut its evidence")
            if sha256_of(p) != f["sha256"]:
                raise OutputError(f"{p}: changed since {name} was assessed (SHA-256 differs)")
    before = [f["path"] for f in prov["before"]]
    after = [f["path"] for f in prov["after"]]
    role = {f.get("role"): f["path"] for f in prov.get("other", [])}
    if footprints is None:
        footprints = role.get("footprints")
    if footprints is None:
        raise InvalidLabelsError(f"{name}: its footprints were given in memory; pass them to damage.assess(chips=...)")
    if (record.get("labels") or {}).get("source") == "GeoDataFrame" or \
            (record.get("facilities") or {}).get("source") == "GeoDataFrame":
        raise InvalidLabelsError(f"{name}: its labels or facilities were given in memory; pass them to damage.assess")
    labels, facilities = role.get("labels"), role.get("facilities")
    cfg = Config.from_dict(record["config"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamageWarning)  # said when the result was made
        again = assess(before, after, footprints, cfg, labels=labels, facilities=facilities, chips=chips,
                       chips_for=chips_for)
    if len(again) != len(res) or not np.array_equal(again["damage_grade"].to_numpy(), res["damage_grade"].to_numpy()):
        raise OutputError(f"{name}: assessing its inputs again gives other grades; was it edited?")
    return again
