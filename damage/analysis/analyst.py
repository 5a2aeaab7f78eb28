"""The analyst's side of an assessment: their labels refit the grades, and what to label next.

- :func:`apply_labels`: match the analyst's labels to the assessed footprints (as
  :func:`damage.evaluate` matches), refit the evidence model's offset and slope on them
  (:func:`damage.analysis.learn.refit`), regrade every analysed building with it, and give the
  labelled ones the analyst's grade, marked ``grade_source = "analyst"``.
- :func:`suggest_labels`: the buildings whose labels would help most.

Table code over a result (a GeoDataFrame from :func:`damage.assess`); labels given as a
path are read by :mod:`damage.io.labels`.
"""

from __future__ import annotations

from os import PathLike

import geopandas as gpd
import numpy as np

from damage.analysis.evaluate import match
from damage.analysis.facilities import NAME_COLUMNS
from damage.analysis.learn import SCENE_OFFSET_SD, damaged_count, refit, stratified_estimate, suggest, validation_sample
from damage.errors import ConfigError, InvalidLabelsError
from damage.grading import NOT_ANALYSED, SCALES, EvidenceModel, grade, model_of

__all__ = ["apply_labels", "suggest_labels", "count_damaged", "headline", "result_model", "validation_sample_of", "validate"]


def result_model(result: gpd.GeoDataFrame) -> EvidenceModel:
    """The evidence model a result was graded with (its run record's), else the default."""
    return model_of(result.attrs.get("damage"))


def _projected(gdf: gpd.GeoDataFrame):
    return gdf.crs if gdf.crs.is_projected else gdf.estimate_utm_crs()


def _matched_grades(result: gpd.GeoDataFrame, labels, scale: str, min_iou: float, label_format: str,
                    grade_column: str | None) -> tuple[np.ndarray, int]:
    """The labelled grade of each footprint of ``result`` (None where no scored label matches it), and
    how many labels were given; labels are read (a path) and matched as :func:`damage.evaluate` does."""
    from damage.io.labels import read_labels

    if not isinstance(labels, gpd.GeoDataFrame):
        labels = read_labels(labels, label_format, grade_column, scale)
    if "grade" not in labels or labels.crs is None:
        raise InvalidLabelsError("labels need a 'grade' column and a CRS (see damage.io.labels.read_labels)")
    sc = SCALES[scale]
    crs = _projected(result)
    truth = labels["grade"].to_numpy(dtype=object)
    scored = np.array([g in sc.levels for g in truth], dtype=bool)
    severity = np.array([sc.levels.index(g) if s else -1 for g, s in zip(truth, scored)])
    index = np.full(len(labels), -1, dtype=np.int64)
    by_id = np.zeros(len(labels), dtype=bool)
    if "building_id" in labels and "building_id" in result:
        # labels written from this result (suggest -o, a validation sample) name their building
        position = {str(b): i for i, b in enumerate(result["building_id"].to_numpy(dtype=object))}
        found = np.array([position.get(str(b), -1) if b is not None else -1 for b in labels["building_id"]], dtype=np.int64)
        by_id = found >= 0
        index[by_id] = found[by_id]
    rest = np.flatnonzero(~by_id)
    if rest.size:
        index[rest], _ = match(np.asarray(result.geometry.to_crs(crs).values, dtype=object),
                               np.asarray(labels.geometry.iloc[rest].to_crs(crs).values, dtype=object), severity[rest],
                               min_iou)
    take = scored & (index >= 0)
    out = np.full(len(result), None, dtype=object)
    out[index[take]] = truth[take]
    return out, len(labels)


def apply_labels(result: gpd.GeoDataFrame, labels: gpd.GeoDataFrame | str | PathLike, *, scale: str = "xbd",
                 min_iou: float = 0.25, label_format: str = "auto", grade_column: str | None = None) -> gpd.GeoDataFrame:
    """Refit the grades of an assessment on the analyst's labels of some of its buildings.

    Parameters
    ----------
    result : geopandas.GeoDataFrame
        An output of :func:`damage.assess` or :func:`damage.batch` (evidence columns).
    labels : GeoDataFrame or path
        xBD label JSON, UNOSAT points, any vector file with a grade column (read by
        :func:`damage.io.labels.read_labels`), or a GeoDataFrame with a ``grade`` column.
    scale : str
        The labels' scale.
    min_iou, label_format, grade_column
        As in :func:`damage.evaluate`.

    Returns
    -------
    geopandas.GeoDataFrame
        A copy: ``p_damaged``, ``damage_score`` and ``damage_grade`` from the refitted
        model, the labelled buildings with the analyst's grade and ``grade_source`` set
        to ``"analyst"`` (``"model"`` elsewhere); the run record gains ``labels`` (the
        refit, its leave-one-out accuracy on the labels) and the refitted ``model``.

    Raises
    ------
    InvalidLabelsError
        No label matches an analysed footprint, or labels without a CRS.
    """
    if scale not in SCALES:
        raise ConfigError(f"scale={scale!r} is unknown; choose one of {sorted(SCALES)}")
    sc = SCALES[scale]
    analyst, given = _matched_grades(result, labels, scale, min_iou, label_format, grade_column)
    take_n = int((analyst != None).sum())  # noqa: E711 (elementwise)
    analysed = (result["damage_grade"] != NOT_ANALYSED).to_numpy()
    fitted_on = np.flatnonzero((analyst != None) & analysed)  # noqa: E711 (elementwise)
    if fitted_on.size == 0:
        raise InvalidLabelsError(f"none of the {given} labels matches an analysed footprint of the assessment "
                                 f"(intersection over union >= {min_iou})")
    model = result_model(result)
    evidence = {f: result[f].to_numpy(dtype=float) for f in model.features}
    damaged = np.array([g in sc.damaged for g in analyst[fitted_on]])
    fit = refit(model, {f: v[fitted_on] for f, v in evidence.items()}, damaged)
    p = np.where(analysed, fit.model.probability(evidence), np.nan)
    out = result.copy()
    out.attrs = {k: (dict(v) if isinstance(v, dict) else v) for k, v in result.attrs.items()}
    grades = grade(p, analysed, scale, thresholds=fit.model.cuts)
    labelled = analyst != None  # noqa: E711
    grades = np.where(labelled, analyst, grades)
    out["p_damaged"] = np.round(p, 4)
    out["damage_score"] = np.round(p, 4)
    out["damage_grade"] = grades
    out["grade_source"] = np.where(labelled, "analyst", "model")
    record = dict(out.attrs.get("damage", {}))
    record["model"] = fit.model.to_dict() | {"fitted_on": f"refitted on {fit.labels} labels of this event"}
    record["labels"] = fit.to_dict() | {"matched": take_n, "given": given}
    record["counts"] = {level: int((grades == level).sum()) for level in sc.levels + (NOT_ANALYSED,)}
    record["damaged_count"] = count_damaged(out, scale, fit.offset_sd) | {
        "rests_on": f"{fit.labels} analyst labels ({fit.damaged} damaged) refitting the scene's offset and slope"}
    out.attrs["damage"] = record
    return out


def headline(record: dict) -> str:
    """One sentence of a run record: how many buildings are damaged, how sure that is, and what it rests on.

    Parameters
    ----------
    record : dict
        A result's run record (``attrs["damage"]``), with its ``damaged_count``.

    Returns
    -------
    str
        Empty when nothing was analysed.
    """
    dc = record.get("damaged_count") or {}
    n = int(dc.get("buildings", 0))
    if not n:
        return ""
    scale = SCALES.get(record.get("config", {}).get("scale", "xbd"), SCALES["xbd"])
    lo, hi = int(dc.get("low", 0)), int(dc.get("high", 0))
    level = 100 * float(dc.get("level", 0.95))
    what = " or ".join(scale.damaged)
    span = f"{level:.0f} % interval {lo} to {hi} ({100 * lo / n:.0f}-{100 * hi / n:.0f} % of them)"
    labels = record.get("labels")
    if labels:
        ex = float(dc.get("expected", 0.0))
        return (f"About {ex:.0f} of the {n} buildings analysed are damaged ({what}), {span}, resting on "
                f"{labels.get('labels', 0)} buildings an analyst graded, which recalibrated the model for this scene.")
    if dc.get("method") == "measured":
        head = f"{int(dc.get('estimate', 0))} of the {n} buildings analysed are graded damaged ({what}); {span}, " \
               f"measured on real events: {dc.get('rests_on', '')}"
    else:
        ex = float(dc.get("expected", 0.0))
        head = f"About {ex:.0f} of the {n} buildings analysed are damaged ({what}), {span}, resting on " \
               f"{dc.get('rests_on', 'the default model')}"
    if (hi - lo) / n > 0.3:
        return head + ". Too wide to publish as a number: grading about ten buildings (damage suggest, then --labels) " \
                      "narrows it."
    return head + "."


def count_damaged(result: gpd.GeoDataFrame, scale: str = "xbd", offset_sd: float | None = None) -> dict[str, float]:
    """:func:`damage.analysis.learn.damaged_count` of a result, the analyst's labels counted as certain.

    ``offset_sd``: the uncertainty of the scene's offset; default: the refit's when the
    result was refitted on labels, else :data:`damage.analysis.learn.SCENE_OFFSET_SD`.
    """
    if offset_sd is None:
        refitted = result.attrs.get("damage", {}).get("labels") or {}
        offset_sd = float(refitted.get("offset_sd", SCENE_OFFSET_SD))
    p = result["p_damaged"].to_numpy(dtype=float).copy()
    if "grade_source" in result:
        by_analyst = (result["grade_source"] == "analyst").to_numpy()
        p[by_analyst] = result["damage_grade"].isin(SCALES[scale].damaged).to_numpy()[by_analyst]
    return damaged_count(p, offset_sd=offset_sd)


def suggest_labels(result: gpd.GeoDataFrame, n: int = 20) -> gpd.GeoDataFrame:
    """The ``n`` analysed buildings whose labels would help most, in the order to label them.

    Uncertain ones, spread over the area and over the evidence (:func:`damage.analysis.learn.suggest`);
    buildings the analyst already graded (``grade_source``) are skipped.

    Returns
    -------
    geopandas.GeoDataFrame
        The picked rows with ``suggest_rank`` (1 first), the model's grade as
        ``model_grade`` and an empty ``grade`` column to fill in.
    """
    if not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be a positive whole number, got {n!r}")
    if "p_damaged" not in result:
        raise InvalidLabelsError("the assessment has no p_damaged column; is it an output of damage.assess?")
    model = result_model(result)
    missing = [f for f in model.features if f not in result]
    if missing:
        raise InvalidLabelsError(f"the assessment has no evidence column(s) {missing}")
    pts = result.geometry.to_crs(_projected(result)).representative_point()
    done = (result["grade_source"] == "analyst").to_numpy() if "grade_source" in result else None
    picks = suggest(result["p_damaged"].to_numpy(dtype=float), pts.x.to_numpy(), pts.y.to_numpy(),
                    result[list(model.features)].to_numpy(dtype=float), n, exclude=done)
    out = result.iloc[picks].copy()
    # the model's grade under another name: a labels reader must only find the analyst's
    out = out.rename(columns={"damage_grade": "model_grade"})
    out["suggest_rank"] = np.arange(1, len(out) + 1)
    out["grade"] = None
    return out


def _frame(result: gpd.GeoDataFrame) -> np.ndarray:
    """The sampling frame's strata: the model's grade of every analysed building it graded."""
    grades = result["damage_grade"].to_numpy(dtype=object)
    keep = grades != NOT_ANALYSED
    if "grade_source" in result:
        keep &= (result["grade_source"] != "analyst").to_numpy()
    return np.where(keep, grades, np.array(None, dtype=object))


def validation_sample_of(result: gpd.GeoDataFrame, n: int = 100, seed: int = 0) -> gpd.GeoDataFrame:
    """A stratified random sample of the graded buildings for a person to check, blind to the model.

    Strata are the model's grades (:func:`damage.analysis.learn.validation_sample`: rare grades
    get more than their share), but the rows carry only ``building_id``, the building's name
    (:data:`damage.analysis.facilities.NAME_COLUMNS`), ``check_order``, an empty ``grade`` column
    and the outline: no grade, probability or evidence of the model, which would anchor the
    checker's judgement. :func:`validate` finds each
    row's stratum again from ``result`` by its ``building_id``. ``attrs["damage_validation"]``
    holds how many were drawn from each stratum.
    """
    if not isinstance(n, int) or n < 1:
        raise ConfigError(f"sample must be a positive whole number, got {n!r}")
    strata = _frame(result)
    picks = validation_sample(strata, n, seed)
    keep = [c for c in ("building_id", *NAME_COLUMNS) if c in result.columns] + [result.geometry.name]
    out = result.iloc[picks][keep].copy()
    # the checker sees the buildings in random order, not grouped by the model's grade
    order = np.random.default_rng(seed + 1).permutation(len(out))
    out = out.iloc[order]
    out["check_order"] = np.arange(1, len(out) + 1)
    out["grade"] = None
    drawn = strata[picks]
    out.attrs = {"damage_validation": {"strata": {str(s): int((drawn == s).sum()) for s in dict.fromkeys(drawn)},
                                       "seed": seed}}
    return out


def validate(result: gpd.GeoDataFrame, checked: gpd.GeoDataFrame | str | PathLike, *, scale: str = "xbd",
             min_iou: float = 0.25, label_format: str = "auto", grade_column: str | None = None) -> dict:
    """Precision, recall and the corrected damaged count, from a checked stratified sample.

    Parameters
    ----------
    result : geopandas.GeoDataFrame
        The assessment the sample was drawn from (:func:`validation_sample_of`).
    checked : GeoDataFrame or path
        The sample with the person's grades (any labels :func:`damage.io.labels.read_labels`
        reads); matched to the result's footprints as :func:`damage.evaluate` matches.

    Returns
    -------
    dict
        :func:`damage.analysis.learn.stratified_estimate`: the damaged count with its 95 %
        interval, precision and recall of the model's damaged calls, per stratum counts.
    """
    sc = SCALES[scale]
    person, _ = _matched_grades(result, checked, scale, min_iou, label_format, grade_column)
    strata = _frame(result)
    is_checked = (person != None) & (strata != None)  # noqa: E711 (elementwise)
    damaged = np.array([g in sc.damaged for g in person])
    if not is_checked.any():
        raise InvalidLabelsError("no checked building matches a graded footprint of the assessment")
    try:
        report = stratified_estimate(strata, is_checked, damaged, set(sc.damaged))
    except ValueError as exc:
        raise InvalidLabelsError(f"the checked sample: {exc}") from None
    # the analyst's own labels are known, not estimated: added to the corrected count as they are
    grades = result["damage_grade"].to_numpy(dtype=object)
    by_analyst = (result["grade_source"] == "analyst").to_numpy() if "grade_source" in result else np.zeros(len(result), bool)
    known = int(np.isin(grades[by_analyst], sc.damaged).sum())
    d = report["damaged"]
    report["damaged"] = {"estimate": round(d["estimate"] + known, 1), "low": round(d["low"] + known, 1),
                         "high": round(d["high"] + known, 1), "estimated": d, "labelled_damaged": known}
    n_frame = int(sum(r["buildings"] for r in report["strata"].values()))
    not_analysed = int((grades == NOT_ANALYSED).sum())
    report["scope"] = (f"{n_frame} buildings the model graded (estimated from {int(is_checked.sum())} checked) and "
                       f"{int(by_analyst.sum())} an analyst graded (counted as labelled, {known} damaged); "
                       f"{not_analysed} not analysed are outside it")
    return report
