"""Assemble a scene's windows into one result: every footprint once, in input order, with
the run record.

Array and table code only: the windows' measurements come in as tables keyed by the
footprint's position in the input.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from damage._version import __version__
from damage.analysis.count import run_count
from damage.analysis.learn import SCENE_OFFSET_SD
from damage.config import Config
from damage.geo.ids import ID_COLUMN, join_footprints
from damage.geo.raster import analysable
from damage.grading import NOT_ANALYSED, OFFSET, SCALES, EvidenceModel, grade, learned_model, scene_model
from damage.io.model import load_model
from damage.optical.scene import SceneFit
from damage.run.measure import MEASURE_COLUMNS, REASONS, Measured

log = logging.getLogger(__name__)

__all__ = ["graded_table", "grading_model", "assemble", "summarise", "EVIDENCE_COLUMNS"]

#: Columns added to the footprints, in order (then one ``<metric>_mean`` per metric).
EVIDENCE_COLUMNS = ("damage_grade", "damage_score", "p_damaged", *MEASURE_COLUMNS)


def graded_table(m: Measured, positions: np.ndarray, cfg: Config, model: EvidenceModel) -> pd.DataFrame:
    """A window's footprints graded by the scene's ``model``: the evidence columns, indexed by input position."""
    p_damaged = np.where(m.analysed, model.probability(m.columns), np.nan)
    grades = grade(p_damaged, m.analysed, cfg.scale, thresholds=model.cuts)
    cols = {"damage_grade": grades, "damage_score": np.round(p_damaged, 4), "p_damaged": np.round(p_damaged, 4), **m.columns}
    return pd.DataFrame(cols, index=pd.Index(np.asarray(positions, np.int64), name="position"))


def assemble(footprints: gpd.GeoDataFrame, parts: list[pd.DataFrame], failed: np.ndarray, cfg: Config, fit: SceneFit,
             record: dict[str, Any], *, first: int = 0, ids: tuple[np.ndarray, str] | None = None,
             columns: list[str] | None = None) -> gpd.GeoDataFrame:
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
    first : int
        Input position of the first footprint (a region's part: positions ``first`` onwards).
    ids : tuple, optional
        The footprints' ids and their source, decided over the whole region
        (:class:`damage.geo.ids.RegionIds`); else decided over these footprints.
    columns : list of str, optional
        The evidence columns the windows give (a region's part whose footprints are in none of
        them still has every column).
    """
    n = len(footprints)
    base_columns = ["damage_grade", "damage_score", "p_damaged", "not_analysed_reason", "valid_fraction"]
    table = pd.concat(parts) if parts else pd.DataFrame(columns=columns or base_columns,
                                                        index=pd.Index([], dtype=np.int64))
    positions = np.arange(first, first + n)
    rest = np.flatnonzero(~np.isin(positions, table.index.to_numpy()))
    order = [c for c in EVIDENCE_COLUMNS if c in table] + [c for c in table.columns if c not in EVIDENCE_COLUMNS]
    # one table of every footprint, in input order and in the columns' order, made once (a region's footprints
    # off the imagery can be most of a million: no copy of it per step)
    table = table.reindex(index=positions, columns=order)
    if rest.size:  # in no window: its chunk failed, it is no polygon, or it lies off the imagery
        why = np.where(failed[rest], "chunk failed",
                       np.where(analysable(footprints.geometry.values)[rest], "outside imagery", "unusable footprint"))
        for column, value in (("damage_grade", NOT_ANALYSED), ("not_analysed_reason", why), ("valid_fraction", 0.0)):
            kind = float if column == "valid_fraction" else object
            values = table[column].to_numpy(dtype=kind, copy=True) if column in table else np.full(n, np.nan, dtype=kind)
            values[rest] = value
            table[column] = values
    for c in ("damage_grade", "not_analysed_reason"):  # text or None (pandas would infer a string dtype)
        table[c] = table[c].astype(object).where(table[c].notna(), None)
    for c in table.columns:  # the numbers of a part in no window are numbers too (NaN), not objects
        if c not in ("damage_grade", "not_analysed_reason") and table[c].dtype == object:
            table[c] = table[c].astype(float)
    result, id_source = join_footprints(footprints, table, cfg.id_column, ids)
    model, offset = grading_model(fit, record["grid"]["resolution_m"], cfg)
    result.attrs["damage"] = {
        "version": __version__,
        "config": cfg.to_dict(),
        "ids": {"column": ID_COLUMN, "source": id_source},
        **record,
        **fit.to_dict(),
        "model": model.to_dict(),
        "scene_offset": offset,
        **summarise(result, cfg, fit, record),
    }
    if cfg.model is not None:
        learned = load_model(cfg.model)
        result.attrs["damage"]["learned_model"] = learned.record(*learned.layout(cfg.model_tile, cfg.model_overlap))
    return result


def summarise(table: pd.DataFrame, cfg: Config, fit: SceneFit, record: dict[str, Any]) -> dict[str, Any]:
    """The run record's counts over a scene's footprints (``table``: their ``damage_grade``, ``p_damaged`` and
    ``not_analysed_reason``): not analysed by reason, buildings per grade, the damaged count with its interval."""
    grades = table["damage_grade"].to_numpy()
    reasons = table["not_analysed_reason"].to_numpy()
    _, offset = grading_model(fit, record["grid"]["resolution_m"], cfg)
    return {
        "not_analysed": {r: int((reasons == r).sum()) for r in REASONS},
        "counts": {level: int((grades == level).sum()) for level in SCALES[cfg.scale].levels + (NOT_ANALYSED,)},
        "damaged_count": _count(table, cfg, offset),
    }


def _count(result: pd.DataFrame, cfg: Config, offset: dict[str, Any] | None) -> dict[str, Any]:
    """The run record's damaged count (:func:`damage.analysis.count.run_count`). Its interval was measured on the
    evidence model's grades; a learned model's errors were not, so its count is modelled with a scene offset as
    uncertain as the evidence model's before any measurement."""
    grades, p = result["damage_grade"].to_numpy(dtype=object), result["p_damaged"].to_numpy(dtype=float)
    damaged = SCALES[cfg.scale].damaged
    if cfg.model is not None:
        return run_count(grades, p, damaged, {"residual_sd": SCENE_OFFSET_SD},
                         rests_on=f"the learned model's probabilities ({Path(cfg.model).name}), with a scene offset of "
                                  f"{SCENE_OFFSET_SD:.1f} logits: its errors on real events were not measured")
    return run_count(grades, p, damaged, offset if cfg.scene_offset else None)


def grading_model(fit: SceneFit, resolution_m: float, cfg: Config) -> tuple[EvidenceModel, dict[str, Any] | None]:
    """The model that grades a scene and the record of its scene offset (None when not used): the evidence model
    (with the scene offset when ``cfg.scene_offset``), or a learned model's (:func:`damage.grading.learned_model`,
    with its side-car's cuts)."""
    if cfg.model is not None:
        return learned_model(load_model(cfg.model).cuts), None
    return scene_model(fit.to_dict(), resolution_m, offset=OFFSET if cfg.scene_offset else None)
