"""Learn from the analyst: counts with intervals, refits from a few labels, what to label next.

Array code: the result of an assessment (its ``p_damaged`` and evidence columns) and the
analyst's labels, already matched to its footprints, come in as arrays.

- :func:`damaged_count`: the number of damaged buildings implied by the per-building
  probabilities, with its 95 % interval (a Poisson-binomial: the sum of independent
  Bernoulli draws). It holds when ``p_damaged`` is calibrated for the scene; a label
  refit (below) recalibrates it.
- :func:`refit`: the evidence model refitted on this event's labelled buildings. Only
  its offset and slope move (the combination of evidence stays the default one), each
  pulled toward the default by a Gaussian prior, so five labels shift the model a
  little and fifty a lot, and a handful cannot overfit.
- :func:`suggest`: which buildings to label next: uncertain ones, spread over the area
  and over the range of evidence.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from damage.grading import UNEXPLAINED_SD, EvidenceModel

__all__ = ["SCENE_OFFSET_SD", "damaged_count", "refit", "Refit", "suggest", "validation_sample", "stratified_estimate", "PRIOR_SD"]

#: How far a scene's logit offset strays from the default model's: the standard deviation of the offsets
#: refitted per tile on all labels of the xBD development tiles (:data:`damage.grading.UNEXPLAINED_SD`,
#: 2.89; with the scene offset model on, what it leaves unexplained, its ``residual_sd``).
SCENE_OFFSET_SD = UNEXPLAINED_SD
#: Prior standard deviations of the offset (logit units: the scenes' spread) and of the slope
#: (a factor on the default combination) in :func:`refit`.
PRIOR_SD = {"offset": SCENE_OFFSET_SD, "slope": 0.5}
#: Added to every uncertainty p (1 - p) in :func:`suggest` (how much spread counts against uncertainty).
UNCERTAINTY_FLOOR = 0.1


def damaged_count(p: np.ndarray, level: float = 0.95, offset_sd: float = 0.0) -> dict[str, float]:
    """Expected number of damaged buildings and its central ``level`` interval.

    Each building is damaged with its probability, independently (a Poisson-binomial
    sum); with ``offset_sd`` the probabilities themselves are uncertain by a scene-wide
    offset of their logits, normal with that standard deviation (the model may over- or
    under-call a whole scene), and the interval is that of the mixture.

    Parameters
    ----------
    p : numpy.ndarray
        ``p_damaged`` per building (NaN for not analysed: left out). A label is a
        probability of 0 or 1 (no offset moves it).
    level : float
    offset_sd : float
        Standard deviation of the scene's logit offset: :data:`SCENE_OFFSET_SD` for the
        default model, the refit's posterior one after labels.

    Returns
    -------
    dict
        ``expected``, ``low``, ``high`` (whole buildings), ``buildings`` counted and the
        ``offset_sd`` used.
    """
    p = np.asarray(p, dtype=float)
    p = np.clip(p[np.isfinite(p)], 0.0, 1.0)
    n = p.size
    if n == 0:
        return {"expected": 0.0, "low": 0, "high": 0, "buildings": 0, "offset_sd": offset_sd, "level": level}
    if offset_sd > 0:
        nodes, weights = np.polynomial.hermite_e.hermegauss(21)
        weights = weights / weights.sum()
        sure = (p == 0) | (p == 1)
        logit = np.log(np.clip(p, 1e-12, 1 - 1e-12) / np.clip(1 - p, 1e-12, 1))
        cases = [np.where(sure, p, 1 / (1 + np.exp(-(logit + offset_sd * z)))) for z in nodes]
    else:
        cases, weights = [p], np.ones(1)
    cdf = sum(w * _count_cdf(q) for q, w in zip(cases, weights))
    expected = float(sum(w * q.sum() for q, w in zip(cases, weights)))
    tail = (1.0 - level) / 2.0
    low = int(np.searchsorted(cdf, tail - 1e-12))
    high = min(int(np.searchsorted(cdf, 1.0 - tail - 1e-12)), n)
    return {"expected": round(expected, 2), "low": low, "high": high, "buildings": n, "offset_sd": offset_sd, "level": level}


def _count_cdf(p: np.ndarray) -> np.ndarray:
    """CDF over 0..n of the number of successes of independent Bernoulli(p)."""
    n = p.size
    if n <= 1500:  # exact, by convolution
        dist = np.zeros(n + 1)
        dist[0] = 1.0
        for k, pk in enumerate(p, start=1):
            dist[1 : k + 1] = dist[1 : k + 1] * (1 - pk) + dist[:k] * pk
            dist[0] *= 1 - pk
        return np.cumsum(dist)
    from scipy.stats import norm  # normal approximation, with continuity correction

    mean, sd = float(p.sum()), math.sqrt(float((p * (1 - p)).sum()))
    return norm.cdf((np.arange(n + 1) + 0.5 - mean) / max(sd, 1e-9))


def _normal_quantile(q: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(q)


@dataclasses.dataclass(frozen=True)
class Refit:
    """A model refitted on labels, and how well it predicts labels it was not fitted on.

    Attributes
    ----------
    model : EvidenceModel
    labels : int
        Labelled buildings used (analysed, graded).
    damaged : int
        Of which damaged (major damage or worse).
    offset, slope : float
        The fitted change: ``logit = slope * default_logit + offset``.
    cv : dict
        Leave-one-out figures on the labels: ``accuracy`` at p = 0.5, ``auc`` (when
        both classes are present), ``brier``.
    offset_sd : float
        Posterior standard deviation of the scene's logit offset (for count intervals).
    """

    model: EvidenceModel
    labels: int
    damaged: int
    offset: float
    slope: float
    cv: dict[str, float | None]
    offset_sd: float = SCENE_OFFSET_SD

    def to_dict(self) -> dict:
        return {"labels": self.labels, "damaged": self.damaged, "offset": round(self.offset, 4),
                "slope": round(self.slope, 4), "offset_sd": round(self.offset_sd, 4), "cross_validated": self.cv,
                "prior_sd": dict(PRIOR_SD)}


def _map_fit(s: np.ndarray, y: np.ndarray, prior_sd: dict[str, float]) -> tuple[float, float]:
    """MAP offset and slope of ``logit = slope * s + offset`` (Newton, Gaussian prior at (0, 1))."""
    theta, _ = _map_fit_cov(s, y, prior_sd)
    return float(theta[0]), float(theta[1])


def _map_fit_cov(s: np.ndarray, y: np.ndarray, prior_sd: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """MAP ``(offset, slope)`` and its posterior covariance (Laplace: the inverse Hessian)."""
    theta = np.array([0.0, 1.0])
    prec = np.diag([1.0 / prior_sd["offset"] ** 2, 1.0 / prior_sd["slope"] ** 2])
    prior_mean = np.array([0.0, 1.0])
    x = np.column_stack([np.ones_like(s), s])
    for _ in range(50):
        z = np.clip(x @ theta, -30, 30)
        q = 1.0 / (1.0 + np.exp(-z))
        grad = x.T @ (q - y) + prec @ (theta - prior_mean)
        hess = (x * (q * (1 - q))[:, None]).T @ x + prec
        step = np.linalg.solve(hess, grad)
        theta = theta - step
        if np.abs(step).max() < 1e-9:
            break
    z = np.clip(x @ theta, -30, 30)
    q = 1.0 / (1.0 + np.exp(-z))
    hess = (x * (q * (1 - q))[:, None]).T @ x + prec
    return theta, np.linalg.inv(hess)


def refit(model: EvidenceModel, evidence: dict[str, np.ndarray], damaged: np.ndarray,
          prior_sd: dict[str, float] | None = None) -> Refit:
    """Refit ``model``'s offset and slope on labelled buildings.

    Parameters
    ----------
    model : EvidenceModel
        The model to start from (its evidence combination is kept).
    evidence : dict
        The model's features of the labelled buildings (arrays of one length).
    damaged : numpy.ndarray
        bool per labelled building: major damage or worse.
    prior_sd : dict, optional
        ``offset`` and ``slope`` prior standard deviations (default :data:`PRIOR_SD`).

    Returns
    -------
    Refit
    """
    prior_sd = dict(PRIOR_SD if prior_sd is None else prior_sd)
    s = np.asarray(model.logit(evidence), dtype=float)
    y = np.asarray(damaged, dtype=float)
    ok = np.isfinite(s)
    s, y = s[ok], y[ok]
    theta, cov = _map_fit_cov(s, y, prior_sd)
    offset, slope = float(theta[0]), float(theta[1])
    # the uncertainty of the refitted scene offset, at the buildings' typical logit
    centre = float(np.median(s)) if s.size else 0.0
    offset_sd = math.sqrt(max(float(cov[0, 0] + 2 * centre * cov[0, 1] + centre**2 * cov[1, 1]), 0.0))
    # leave-one-out: each label predicted by a fit on the others
    loo = np.empty(s.size)
    for i in range(s.size):
        keep = np.arange(s.size) != i
        a, b = _map_fit(s[keep], y[keep], prior_sd)
        loo[i] = 1.0 / (1.0 + math.exp(-float(np.clip(b * s[i] + a, -30, 30))))
    cv: dict[str, float | None] = {"accuracy": None, "auc": None, "brier": None}
    if s.size:
        from damage.analysis.evaluate import roc_auc

        cv["accuracy"] = round(float(((loo >= 0.5) == (y > 0.5)).mean()), 4)
        cv["brier"] = round(float(((loo - y) ** 2).mean()), 4)
        if 0 < y.sum() < y.size:
            cv["auc"] = round(float(roc_auc(y > 0.5, loo)), 4)
    new = dataclasses.replace(model, weights=tuple(w * slope for w in model.weights),
                              intercept=model.intercept * slope + offset)
    return Refit(new, int(s.size), int(y.sum()), offset, slope, cv, offset_sd)


def suggest(p: np.ndarray, x: np.ndarray, y: np.ndarray, evidence: np.ndarray, n: int,
            exclude: np.ndarray | None = None, offset_sd: float = SCENE_OFFSET_SD) -> np.ndarray:
    """Which ``n`` buildings to label next.

    Greedy: each pick maximises its uncertainty (``q (1 - q)``, floored so that sure
    buildings can still be picked where nothing else is) times its distance to the
    picks so far in a space of position and evidence, each scaled by its spread, so the
    picks are uncertain and spread over the area and over the kinds of evidence, not
    twenty neighbours. ``q`` is ``p`` with the scene's offset unknown (normal with
    ``offset_sd``, the probit approximation): a building the default model calls sure
    may not be in this scene, and the labels are there to find out.

    Parameters
    ----------
    p : numpy.ndarray
        ``p_damaged`` (NaN: not analysed, never picked).
    x, y : numpy.ndarray
        Positions (a projected CRS).
    evidence : numpy.ndarray
        ``(buildings, k)`` evidence values.
    n : int
    exclude : numpy.ndarray, optional
        bool: buildings already labelled.

    Returns
    -------
    numpy.ndarray
        Indices of the picks, in the order picked.
    """
    p = np.asarray(p, dtype=float)
    ok = np.isfinite(p) & np.isfinite(x) & np.isfinite(y)
    if exclude is not None:
        ok &= ~np.asarray(exclude, bool)
    idx = np.flatnonzero(ok)
    if idx.size == 0 or n <= 0:
        return np.empty(0, np.int64)
    ev = np.nan_to_num(np.asarray(evidence, dtype=float)[idx].reshape(idx.size, -1))
    pos = np.column_stack([x[idx], y[idx]])
    pos = (pos - pos.mean(axis=0)) / max(float(pos.std(axis=0).max()), 1e-9)
    ev = (ev - np.median(ev, axis=0)) / np.maximum(ev.std(axis=0), 1e-9)
    space = np.column_stack([pos, ev / math.sqrt(max(ev.shape[1], 1))])
    logit = np.log(np.clip(p[idx], 1e-9, 1 - 1e-9) / np.clip(1 - p[idx], 1e-9, 1))
    q = 1.0 / (1.0 + np.exp(-logit / math.sqrt(1.0 + math.pi * offset_sd**2 / 8.0)))
    u = q * (1 - q) + UNCERTAINTY_FLOOR
    dist = np.full(idx.size, np.inf)
    picks: list[int] = []
    for _ in range(min(n, idx.size)):
        gain = u * np.where(np.isfinite(dist), dist, 1.0)
        gain[picks] = -1.0
        k = int(np.argmax(gain))
        picks.append(k)
        dist = np.minimum(dist, np.sqrt(((space - space[k]) ** 2).sum(axis=1)))
    return idx[np.asarray(picks, np.int64)]


def validation_sample(strata: np.ndarray, n: int, seed: int = 0, minimum: int = 3) -> np.ndarray:
    """A stratified random sample of about ``n`` buildings for a person to check.

    Each stratum (a model grade, say) gets a share of ``n`` proportional to the square
    root of its size (rare grades such as "destroyed" get more than their share, the
    many intact buildings fewer), at least ``minimum`` and at most all of it.

    Parameters
    ----------
    strata : numpy.ndarray
        Stratum of each building (None for buildings never sampled, e.g. not analysed).
    n : int
    seed : int

    Returns
    -------
    numpy.ndarray
        Indices of the sampled buildings, sorted.
    """
    strata = np.asarray(strata, dtype=object)
    names = sorted({s for s in strata.tolist() if s is not None})
    sizes = np.array([(strata == s).sum() for s in names], dtype=float)
    if not names or n <= 0:
        return np.empty(0, np.int64)
    share = np.sqrt(sizes) / np.sqrt(sizes).sum()
    alloc = np.minimum(np.maximum(np.round(share * n), np.minimum(minimum, sizes)), sizes).astype(int)
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(strata == s), size=k, replace=False) for s, k in zip(names, alloc) if k > 0]
    return np.sort(np.concatenate(picks)) if picks else np.empty(0, np.int64)


def stratified_estimate(strata: np.ndarray, checked: np.ndarray, damaged: np.ndarray, called: set,
                        level: float = 0.95) -> dict:
    """The damaged count, precision and recall of a graded scene from a checked stratified sample.

    Parameters
    ----------
    strata : numpy.ndarray
        Stratum (model grade) of every building in the scene (None: outside the sampling frame).
    checked : numpy.ndarray
        bool: the person checked this building.
    damaged : numpy.ndarray
        bool: the person found it damaged (read where ``checked``).
    called : set
        The strata the model calls damaged.

    Returns
    -------
    dict
        ``damaged`` (estimate, ``low``, ``high``), ``precision`` and ``recall`` of the
        model's damaged calls, and per stratum its size, checked and damaged counts.
        Within a stratum the damaged share is estimated with one added success and
        failure, so a small all-intact sample does not claim certainty.
    """
    strata = np.asarray(strata, dtype=object)
    checked = np.asarray(checked, bool)
    damaged = np.asarray(damaged, bool)
    z = _normal_quantile(0.5 + level / 2)
    total, var, called_total, called_damaged = 0.0, 0.0, 0.0, 0.0
    rows = {}
    for s in sorted({v for v in strata.tolist() if v is not None}):
        in_s = strata == s
        big_n = int(in_s.sum())
        k = int((in_s & checked).sum())
        x = int((in_s & checked & damaged).sum())
        share = x / k if k else float("nan")
        rows[s] = {"buildings": big_n, "checked": k, "damaged": x}
        if k == 0:
            raise ValueError(f"stratum {s!r} has no checked building; check at least one of each")
        smooth = (x + 1) * (k - x + 1) / (k + 2) ** 2
        total += big_n * share
        var += big_n**2 * (1 - k / big_n) * smooth / max(k - 1, 1) if big_n > k else 0.0
        if s in called:
            called_total += big_n
            called_damaged += big_n * share
    sd = math.sqrt(var)
    n_frame = int(sum(r["buildings"] for r in rows.values()))
    return {
        "damaged": {"estimate": round(total, 1), "low": round(max(0.0, total - z * sd), 1),
                    "high": round(min(float(n_frame), total + z * sd), 1)},
        "precision": round(called_damaged / called_total, 4) if called_total else None,
        "recall": round(called_damaged / total, 4) if total else None,
        "strata": rows,
        "level": level,
    }
