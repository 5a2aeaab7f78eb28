"""Assemble a scene's windows into one result: every footprint once, in input order, with
the run record.

Array and table code only: the windows' measurements come in as tables keyed by the
footprint's position in the input.
"""

from __future__ import annotations

import logging
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from damage._version import __version__
from damage.analysis.count import count_interval
from damage.analysis.learn import damaged_count
from damage.config import Config
from damage.geo.ids import ID_COLUMN, building_ids
from damage.geo.raster import analysable
from damage.grading import NOT_ANALYSED, OFFSET, SCALES, EvidenceModel, grade, scene_model
from damage.run.measure import MEASURE_COLUMNS, REASONS, Measured
from damage.run.scenefit import SceneFit

log = logging.getLogger(__name__)

__all__ = ["graded_table", "assemble", "join_footprints", "EVIDENCE_COLUMNS"]

#: Columns added to the footprints, in order (then one ``<metric>_mean`` per metric).
EVIDENCE_COLUMNS = ("damage_grade", "damage_score", "p_damaged", *MEASURE_COLUMNS)


def graded_table(m: Measured, positions: np.ndarray, cfg: Config, model: EvidenceModel) -> pd.DataFrame:
    """A window's footprints graded by the scene's ``model``: the evidence columns, indexed by input position."""
    p_damaged = np.where(m.analysed, model.probability(m.columns), np.nan)
    grades = grade(p_damaged, m.analysed, cfg.scale, thresholds=model.cuts)
    cols = {"damage_grade": grades, "damage_score": np.round(p_damaged, 4), "p_damaged": np.round(p_damaged, 4), **m.columns}
    return pd.DataFrame(cols, index=pd.Index(np.asarray(positions, np.int64), name="position"))


def _missing(positions: np.ndarray, reason: str, template: pd.DataFrame | None) -> pd.DataFrame:
    cols: dict[str, Any] = {"damage_grade": NOT_ANALYSED, "damage_score": np.nan, "p_damaged": np.nan,
                            "not_analysed_reason": reason, "valid_fraction": 0.0}
    out = pd.DataFrame(cols, index=pd.Index(np.asarray(positions, np.int64), name="position"))
    if template is not None:
        out = out.reindex(columns=template.columns)
        out["damage_grade"], out["not_analysed_reason"], out["valid_fraction"] = NOT_ANALYSED, reason, 0.0
    return out


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


def _damaged_count(result: gpd.GeoDataFrame, cfg: Config, offset: dict[str, Any]) -> dict[str, Any]:
    """The damaged count of the run record.

    By default: the buildings graded damaged, with the interval measured on real events
    (:func:`damage.analysis.count.count_interval`). With the scene offset, whose grades that
    calibration was not measured on: the number ``p_damaged`` implies, with the 95 % interval of
    what the offset model leaves unknown of the scene's offset (its residual sd).
    """
    grades = result["damage_grade"].to_numpy(dtype=object)
    analysed = int((grades != NOT_ANALYSED).sum())
    if not cfg.scene_offset:
        return count_interval(int(np.isin(grades, SCALES[cfg.scale].damaged).sum()), analysed)
    modelled = damaged_count(result["p_damaged"].to_numpy(dtype=float), offset_sd=offset["residual_sd"])
    return modelled | {"method": "modelled", "estimate": round(modelled["expected"]),
                       "rests_on": "the scene offset model (no labels): a scene offset of "
                                   f"{offset['residual_sd']:.1f} logits propagated through every building"}


def assemble(footprints: gpd.GeoDataFrame, parts: list[pd.DataFrame], failed: np.ndarray, cfg: Config, fit: SceneFit,
             record: dict[str, Any]) -> gpd.GeoDataFrame:
    """The footprints with their grades and evidence, and the run record in ``attrs["damage"]``.

    Parameters
    ----------
    footprints : geopandas.GeoDataFrame
        As given (input order).
    parts : list of pandas.DataFrame
        :func:`graded_table` of each window.
    failed : numpy.ndarray
        bool per footprint: its window failed ("chunk failed"); the footprints in no
        part and not failed are "unusable footprint" (empty, not a polygon, coordinates
        not finite) or else "outside imagery".
    cfg, fit : the run's configuration and the scene's fit
    record : dict
        More of the run record (inputs, grid, region).
    """
    template = parts[0] if parts else None
    table = pd.concat(parts) if parts else pd.DataFrame(index=pd.Index([], dtype=np.int64, name="position"))
    n = len(footprints)
    rest = np.setdiff1d(np.arange(n), table.index.to_numpy())
    extra = []
    if rest.size:
        lost = failed[rest]
        if lost.any():
            extra.append(_missing(rest[lost], "chunk failed", template))
        unusable = ~analysable(footprints.geometry.values)[rest]
        if (~lost & unusable).any():
            extra.append(_missing(rest[~lost & unusable], "unusable footprint", template))
        if (~lost & ~unusable).any():
            extra.append(_missing(rest[~lost & ~unusable], "outside imagery", template))
    table = pd.concat([table, *extra]) if extra else table
    table = table.reindex(np.arange(n))
    order = [c for c in EVIDENCE_COLUMNS if c in table] + [c for c in table.columns if c not in EVIDENCE_COLUMNS]
    table = table[order]
    for c in ("damage_grade", "not_analysed_reason"):
        table[c] = table[c].astype(object).where(table[c].notna(), None)
    result, id_source = join_footprints(footprints, table, cfg.id_column)
    grades = result["damage_grade"].to_numpy()
    reasons = result["not_analysed_reason"].to_numpy()
    model, offset = scene_model(fit.to_dict(), record["grid"]["resolution_m"], offset=OFFSET if cfg.scene_offset else None)
    result.attrs["damage"] = {
        "version": __version__,
        "config": cfg.to_dict(),
        "ids": {"column": ID_COLUMN, "source": id_source},
        **record,
        **fit.to_dict(),
        "model": model.to_dict(),
        "scene_offset": offset,
        "not_analysed": {r: int((reasons == r).sum()) for r in REASONS},
        "counts": {level: int((grades == level).sum()) for level in SCALES[cfg.scale].levels + (NOT_ANALYSED,)},
        "damaged_count": _damaged_count(result, cfg, offset),
    }
    return result
