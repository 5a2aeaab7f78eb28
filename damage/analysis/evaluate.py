"""Compare an assessment with reference labels, building by building.

Matching (vectorised, no loop over buildings): a polygon label takes the assessed
footprint it overlaps most, if their intersection over union reaches ``min_iou``; a
point label takes the footprint that contains it (the smallest, if several do). When
several labels take the same footprint, the best overlap (for points: the most severe
grade) keeps it and the others count as ``duplicate``.

Scores, over the matched buildings with a scored label and an analysed footprint:
the confusion matrix over the scale, per-class precision / recall / F1, the
xView2-style harmonic mean of the per-class F1, binary "damaged" (the scale's upper
half: major-damage and destroyed on xBD) precision / recall / F1, and the ROC AUC of
``damage_score`` for that binary truth.
"""

from __future__ import annotations

import dataclasses
from os import PathLike
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from damage.errors import ConfigError, InvalidLabelsError
from damage.geo.raster import present
from damage.grading import NOT_ANALYSED, SCALES, grade, model_of, to_scale

__all__ = ["Evaluation", "evaluate", "match", "confusion_matrix", "class_scores", "binary_scores", "roc_auc"]


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """Agreement between an assessment and reference labels.

    Attributes
    ----------
    levels : tuple of str
        The scale's grades, least damage first; rows and columns of ``confusion``.
    confusion : numpy.ndarray
        ``confusion[i, j]``: buildings labelled ``levels[i]`` graded ``levels[j]``.
    per_class : dict
        ``level -> {"precision", "recall", "f1", "support"}``.
    f1_harmonic : float
        Harmonic mean of the per-class F1 over the levels that occur in the labels
        or the grades (xView2's damage score); 0 if any of them is 0.
    binary : dict
        ``precision``, ``recall``, ``f1`` of "damaged", with ``tp``, ``fp``, ``fn``, ``tn``.
    auc : float
        ROC AUC of ``damage_score`` against the binary truth (NaN if one class is absent).
    counts : dict
        ``labels``, ``scored``, ``unscored``, ``matched``, ``unmatched``, ``duplicate``,
        ``not_analysed``, ``evaluated``.
    """

    levels: tuple[str, ...]
    confusion: np.ndarray
    per_class: dict[str, dict[str, float]]
    f1_harmonic: float
    binary: dict[str, float]
    auc: float
    counts: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "levels": list(self.levels),
            "confusion": self.confusion.tolist(),
            "per_class": self.per_class,
            "f1_harmonic": _round(self.f1_harmonic),
            "binary": {k: _round(v) for k, v in self.binary.items()},
            "auc": _round(self.auc),
            "counts": self.counts,
        }

    def format(self) -> str:
        """A readable report: counts, confusion matrix, per-class and binary scores."""
        c = self.counts
        width = max(len(s) for s in self.levels) + 2
        lines = [
            f"labels {c['labels']} ({c['unscored']} not scored); matched {c['matched']}, unmatched {c['unmatched']}, "
            f"duplicate {c['duplicate']}; not analysed {c['not_analysed']}; evaluated {c['evaluated']}",
            "",
            "confusion (rows: reference, columns: assessed)",
            " " * width + "".join(f"{s:>{width}}" for s in self.levels),
        ]
        for name, row in zip(self.levels, self.confusion):
            lines.append(f"{name:<{width}}" + "".join(f"{v:>{width}d}" for v in row))
        lines += ["", f"{'grade':<{width}}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}"]
        for name in self.levels:
            s = self.per_class[name]
            lines.append(f"{name:<{width}}{s['precision']:>10.3f}{s['recall']:>10.3f}{s['f1']:>10.3f}{s['support']:>10d}")
        b = self.binary
        lines += [
            "",
            f"harmonic mean of per-class F1: {self.f1_harmonic:.3f}",
            f"damaged (binary): precision {b['precision']:.3f}  recall {b['recall']:.3f}  F1 {b['f1']:.3f}  "
            f"(tp {b['tp']}, fp {b['fp']}, fn {b['fn']}, tn {b['tn']})",
            f"ROC AUC of damage_score: {self.auc:.3f}",
        ]
        return "\n".join(lines)


def _round(v: float) -> float | None:
    return None if v is None or not np.isfinite(v) else round(float(v), 4)


# -- matching -------------------------------------------------------------------------
def match(footprints: np.ndarray, labels: np.ndarray, severity: np.ndarray | None = None, min_iou: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    """The footprint each label matches, one-to-one.

    Parameters
    ----------
    footprints, labels : numpy.ndarray of shapely geometries
        In one projected CRS. Labels may be polygons or points.
    severity : numpy.ndarray, optional
        Per label; breaks ties between labels of equal overlap (higher wins).
    min_iou : float
        Smallest intersection over union for a polygon label to match.

    Returns
    -------
    index : numpy.ndarray
        Footprint index per label, -1 where none.
    duplicate : numpy.ndarray
        True for labels that matched a footprint another label kept.
    """
    n = len(labels)
    severity = np.zeros(n) if severity is None else np.asarray(severity, dtype=float)
    index = np.full(n, -1, dtype=np.int64)
    duplicate = np.zeros(n, dtype=bool)
    usable = present(labels)
    tree = shapely.STRtree(footprints)
    is_point = shapely.get_type_id(labels) == 0
    weights, pairs = [], []
    for kind in (True, False):
        sel = np.flatnonzero(usable & (is_point == kind))
        if sel.size == 0:
            continue
        li, fi = tree.query(labels[sel], predicate="within" if kind else "intersects")
        li = sel[li]
        if kind:  # a point: the smallest containing footprint
            w = 1.0 / (1.0 + shapely.area(footprints[fi]))
        else:
            inter = shapely.area(shapely.intersection(labels[li], footprints[fi]))
            union = shapely.area(labels[li]) + shapely.area(footprints[fi]) - inter
            w = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
            overlapping = w >= min_iou
            li, fi, w = li[overlapping], fi[overlapping], w[overlapping]
        pairs.append((li, fi))
        weights.append(w)
    if not pairs:
        return index, duplicate
    li = np.concatenate([p[0] for p in pairs])
    fi = np.concatenate([p[1] for p in pairs])
    w = np.concatenate(weights)
    order = np.lexsort((fi, -severity[li], -w))  # best overlap first, then most severe
    li, fi = li[order], fi[order]
    _, first = np.unique(li, return_index=True)  # each label's best footprint
    li, fi = li[np.sort(first)], fi[np.sort(first)]
    _, keep = np.unique(fi, return_index=True)  # each footprint's best label
    kept = np.zeros(li.size, dtype=bool)
    kept[keep] = True
    index[li[kept]] = fi[kept]
    duplicate[li[~kept]] = True
    return index, duplicate


def _in_scale(result: gpd.GeoDataFrame, sc) -> np.ndarray:
    """The result's grades on scale ``sc``: as they are, regraded from ``p_damaged`` with the
    result's model when it was graded on another scale, else mapped through the xBD grades."""
    grades = result["damage_grade"].to_numpy(dtype=object)
    if {g for g in grades if g is not None} <= set(sc.levels) | {NOT_ANALYSED}:
        return grades
    analysed = grades != NOT_ANALYSED
    if "p_damaged" in result and result["p_damaged"].notna().any():
        p = result["p_damaged"].to_numpy(dtype=float)
        return grade(p, analysed & np.isfinite(p), sc, thresholds=model_of(result.attrs.get("damage")).cuts)
    mapped = np.array(to_scale(list(grades), sc), dtype=object)
    return np.where(analysed, mapped, NOT_ANALYSED)


# -- scores -------------------------------------------------------------------------------
def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, levels: tuple[str, ...]) -> np.ndarray:
    """Counts of (truth, predicted) pairs over ``levels`` (rows truth, columns predicted)."""
    k = len(levels)
    lookup = {name: i for i, name in enumerate(levels)}
    t = np.array([lookup[v] for v in truth], dtype=np.int64)
    p = np.array([lookup[v] for v in predicted], dtype=np.int64)
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def _prf(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def class_scores(confusion: np.ndarray, levels: tuple[str, ...]) -> tuple[dict[str, dict[str, float]], float]:
    """Per-class precision, recall, F1 and support; and the harmonic mean of F1.

    The harmonic mean runs over the classes that occur in the truth or the
    predictions; it is 0 when any of them has F1 0, NaN when none occurs.
    """
    out: dict[str, dict[str, float]] = {}
    f1s = []
    for i, name in enumerate(levels):
        tp = float(confusion[i, i])
        fp = float(confusion[:, i].sum() - tp)
        fn = float(confusion[i, :].sum() - tp)
        p, r, f = _prf(tp, fp, fn)
        out[name] = {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4), "support": int(confusion[i].sum())}
        if tp + fp + fn > 0:
            f1s.append(f)
    if not f1s:
        return out, float("nan")
    f1s_arr = np.array(f1s)
    harmonic = 0.0 if (f1s_arr == 0).any() else float(len(f1s_arr) / np.sum(1.0 / f1s_arr))
    return out, harmonic


def binary_scores(truth: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Precision, recall, F1 (and the four counts) of boolean predictions."""
    truth, predicted = np.asarray(truth, bool), np.asarray(predicted, bool)
    tp = int((truth & predicted).sum())
    fp = int((~truth & predicted).sum())
    fn = int((truth & ~predicted).sum())
    tn = int((~truth & ~predicted).sum())
    p, r, f = _prf(tp, fp, fn)
    return {"precision": p, "recall": r, "f1": f, "tp": tp, "fp": fp, "fn": fn, "tn": tn}


def roc_auc(truth: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U; ties count one half). NaN if a class is absent."""
    truth = np.asarray(truth, bool)
    score = np.asarray(score, float)
    keep = np.isfinite(score)
    truth, score = truth[keep], score[keep]
    npos, nneg = int(truth.sum()), int((~truth).sum())
    if npos == 0 or nneg == 0:
        return float("nan")
    from scipy.stats import rankdata  # imported when used: scipy.stats is 0.4 s of import

    ranks = rankdata(score)
    return float((ranks[truth].sum() - npos * (npos + 1) / 2) / (npos * nneg))


# -- the whole comparison -----------------------------------------------------------------------
def evaluate(
    result: gpd.GeoDataFrame | str | PathLike,
    labels: gpd.GeoDataFrame | str | PathLike,
    *,
    scale: str = "xbd",
    min_iou: float = 0.25,
    label_format: str = "auto",
    grade_column: str | None = None,
) -> Evaluation:
    """Score an assessment against reference labels.

    Parameters
    ----------
    result : GeoDataFrame or path
        The output of :func:`damage.assess` (or a file it wrote): ``damage_grade``,
        ``damage_score`` and the footprints.
    labels : GeoDataFrame or path
        A path is read with :func:`damage.io.labels.read_labels` (xBD JSON, UNOSAT points,
        any vector file with a grade column); a GeoDataFrame needs a ``grade`` column
        (None for labels not scored).
    scale : str
        Damage scale of both.
    min_iou : float
        Smallest intersection over union for a polygon label to match a footprint.
    label_format, grade_column
        Passed to :func:`damage.io.labels.read_labels` for a path.

    Returns
    -------
    Evaluation

    Examples
    --------
    >>> ev = damage.evaluate("damage.geojson", "joplin_post_disaster.json")  # doctest: +SKIP
    >>> print(ev.format())  # doctest: +SKIP
    """
    from damage.io.labels import read_labels
    from damage.io.sources import read_result

    # -- validate
    if scale not in SCALES:
        raise ConfigError(f"scale={scale!r} is unknown; choose one of {sorted(SCALES)}")
    if not (isinstance(min_iou, (int, float)) and 0.0 < float(min_iou) <= 1.0):
        raise ConfigError(f"min_iou must be in (0, 1], got {min_iou!r}")
    if not isinstance(result, gpd.GeoDataFrame):
        result = read_result(result)
    if not isinstance(labels, gpd.GeoDataFrame):
        labels = read_labels(labels, label_format, grade_column, scale)
    missing = [c for c in ("damage_grade", "damage_score") if c not in result]
    if missing:
        raise InvalidLabelsError(f"the assessment has no column(s) {missing}; is it an output of damage.assess?")
    if not pd.api.types.is_numeric_dtype(result["damage_score"]):
        raise InvalidLabelsError("the assessment's damage_score is not numeric; is it an output of damage.assess?")
    if "grade" not in labels:
        raise InvalidLabelsError("labels need a 'grade' column (see damage.io.labels.read_labels)")
    if result.crs is None or labels.crs is None:
        raise InvalidLabelsError("the assessment and the labels both need a CRS")
    sc = SCALES[scale]
    # -- compute: match in a local projected CRS, then score
    crs = result.estimate_utm_crs() if not result.crs.is_projected else result.crs
    fgeoms = np.asarray(result.geometry.to_crs(crs).values, dtype=object)
    lgeoms = np.asarray(labels.geometry.to_crs(crs).values, dtype=object)
    truth = labels["grade"].to_numpy(dtype=object)
    scored = labels["grade"].isin(sc.levels).to_numpy()
    severity = np.array([sc.levels.index(g) if s else -1 for g, s in zip(truth, scored)])
    index, duplicate = match(fgeoms, lgeoms, severity, min_iou)
    matched = index >= 0
    if len(labels) and not matched.any():
        raise InvalidLabelsError(f"none of the {len(labels)} labels matches a footprint of the assessment "
                                 f"(intersection over union >= {min_iou}); do they cover the same buildings?")
    grades = _in_scale(result, sc)
    scores = result["damage_score"].to_numpy(dtype=float)
    pred = np.where(matched, grades[np.maximum(index, 0)], None)
    analysed = matched & (pred != NOT_ANALYSED) & np.array([p in sc.levels for p in pred])
    use = scored & analysed
    t, p = truth[use], pred[use]
    conf = confusion_matrix(t, p, sc.levels)
    per_class, harmonic = class_scores(conf, sc.levels)
    damaged = set(sc.damaged)
    t_bin = np.array([g in damaged for g in t], dtype=bool)
    p_bin = np.array([g in damaged for g in p], dtype=bool)
    # -- assemble
    counts = {
        "labels": len(labels),
        "scored": int(scored.sum()),
        "unscored": int((~scored).sum()),
        "matched": int(matched.sum()),
        "unmatched": int((~matched & ~duplicate).sum()),
        "duplicate": int(duplicate.sum()),
        "not_analysed": int((scored & matched & ~analysed).sum()),
        "evaluated": int(use.sum()),
    }
    return Evaluation(
        levels=sc.levels,
        confusion=conf,
        per_class=per_class,
        f1_harmonic=harmonic,
        binary=binary_scores(t_bin, p_bin),
        auc=roc_auc(t_bin, scores[index[use]]),
        counts=counts,
    )
