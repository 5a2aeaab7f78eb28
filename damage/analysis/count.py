"""The damaged count an analyst can publish: what the grades say, with an interval measured on real events.

Without labels, the estimate is the number of analysed buildings graded damaged (major damage
or worse): on real tiles graded by people, correcting it for the bias seen on other events did
not bring it closer out of event (``benchmarks/count.py``). Its interval is split-conformal
(Vovk et al. 2005; Lei et al. 2018): on tiles of events graded by people, how far the people's
damaged share ``t`` fell from the graded share ``s``, in units of

    w(n) = sqrt(0.25 / n + tau**2)

(the binomial spread of a share of ``n`` buildings at one half, plus an event-level error
``tau``), gives the ``tails`` quantiles ``q_low`` and ``q_high``; a run of ``n`` analysed
buildings graded ``s`` then holds the people's share in ``[s + q_low w(n), s + q_high w(n)]``
(clipped to [0, 1], widened to whole buildings) on the share of tiles the level says, when its
event behaves like one of those. The tails are unequal because the grades' failures are
under-counts (damage the imagery does not show: floods, a tsunami). The calibration ships as
plain data (:data:`CALIBRATION_FILE`, written by ``benchmarks/count.py``), naming the tiles and
events it rests on.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from importlib import resources
from typing import Any

import numpy as np

from damage.analysis.learn import damaged_count
from damage.grading import NOT_ANALYSED

__all__ = ["run_count", "CountCalibration", "CALIBRATION_FILE", "calibration", "share_width", "conformal_quantiles",
           "count_interval", "combine_counts"]

#: The calibration shipped with the package (beside this module).
CALIBRATION_FILE = "count_calibration.json"


@dataclasses.dataclass(frozen=True)
class CountCalibration:
    """How far graded shares fell from people's shares on tiles of real events.

    Attributes
    ----------
    q_low, q_high : float
        Quantiles of ``(t - s) / w(n)`` over the calibration tiles (``q_low`` <= ``q_high``).
    tau : float
        Event-level error in :func:`share_width`.
    level : float
        Share of tiles the interval is meant to hold (``1 - sum(tails)``).
    tails : tuple of float
        Share of tiles left below and above.
    tiles, events : int, tuple of str
        How many tiles, of which events, the quantiles come from.
    source : str
        Where the tiles come from.
    """

    q_low: float
    q_high: float
    tau: float = 0.1
    level: float = 0.9
    tails: tuple[float, float] = (0.02, 0.08)
    tiles: int = 0
    events: tuple[str, ...] = ()
    source: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.q_low) and math.isfinite(self.q_high) and self.q_low <= self.q_high):
            raise ValueError(f"count calibration: need finite q_low <= q_high, got {self.q_low}, {self.q_high}")
        if not self.tau > 0:
            raise ValueError(f"count calibration: tau must be positive, got {self.tau}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CountCalibration:
        return cls(float(d["q_low"]), float(d["q_high"]), float(d["tau"]), float(d["level"]),
                   (float(d["tails"][0]), float(d["tails"][1])), int(d.get("tiles", 0)),
                   tuple(str(e) for e in d.get("events", ())), str(d.get("source", "")))

    def to_dict(self) -> dict[str, Any]:
        return {"q_low": round(self.q_low, 5), "q_high": round(self.q_high, 5), "tau": self.tau, "level": self.level,
                "tails": list(self.tails), "tiles": self.tiles, "events": list(self.events), "source": self.source}

    def rests_on(self) -> str:
        """In plain words: what the interval rests on."""
        return (f"the errors of the grades on {self.tiles} tiles of {len(self.events)} events graded by people "
                f"({self.source}), held on {100 * self.level:.0f} % of such tiles")


def calibration() -> CountCalibration:
    """The calibration shipped with the package (:data:`CALIBRATION_FILE`)."""
    text = resources.files("damage.analysis").joinpath(CALIBRATION_FILE).read_text(encoding="utf-8")
    return CountCalibration.from_dict(json.loads(text)["calibration"])


def share_width(n: np.ndarray | int, tau: float) -> np.ndarray:
    """``sqrt(0.25 / n + tau**2)``: the unit of a share's error for ``n`` analysed buildings."""
    n = np.maximum(np.asarray(n, dtype=float), 1.0)
    return np.sqrt(0.25 / n + tau * tau)


def conformal_quantiles(graded: Sequence[int], people: Sequence[int], analysed: Sequence[int], tau: float = 0.1,
                        tails: tuple[float, float] = (0.02, 0.08)) -> tuple[float, float]:
    """``(q_low, q_high)`` of split-conformal prediction on calibration tiles.

    Scores are ``(t - s) / w(n)`` per tile; ``q_high`` is the ``ceil((m + 1)(1 - tails[1]))``-th
    smallest of the ``m`` scores (the finite-sample conformal quantile), ``q_low`` the mirror
    image for the lower tail. With few tiles a tail falls beyond the largest score: it is then
    the largest (the interval cannot promise its level on so few tiles; the caller reports the
    coverage it measured).
    """
    g, d, n = (np.asarray(x, dtype=float) for x in (graded, people, analysed))
    keep = n > 0
    g, d, n = g[keep], d[keep], n[keep]
    if g.size == 0:
        raise ValueError("no calibration tile with an analysed building")
    z = np.sort((d / n - g / n) / share_width(n, tau))
    m = z.size
    hi = z[min(m - 1, max(0, math.ceil((m + 1) * (1 - tails[1])) - 1))]
    lo = z[max(0, min(m - 1, m - math.ceil((m + 1) * (1 - tails[0]))))]
    return float(lo), float(hi)


def count_interval(graded: int, analysed: int, cal: CountCalibration | None = None) -> dict[str, Any]:
    """The damaged count of a scene without labels: the graded count and its measured interval.

    Parameters
    ----------
    graded : int
        Analysed buildings graded damaged (major damage or worse).
    analysed : int
        Buildings analysed.
    cal : CountCalibration, optional
        Default: :func:`calibration`.

    Returns
    -------
    dict
        ``estimate`` (= ``graded``), ``low``, ``high`` (whole buildings), ``buildings``,
        ``level``, ``method`` ("measured"), ``rests_on`` (plain words) and ``calibration``.
    """
    cal = cal or calibration()
    graded, analysed = int(graded), int(analysed)
    if analysed < 0 or not 0 <= graded <= analysed:
        raise ValueError(f"need 0 <= graded <= analysed, got {graded} of {analysed}")
    out: dict[str, Any] = {"estimate": graded, "expected": float(graded), "buildings": analysed, "level": cal.level,
                           "method": "measured", "rests_on": cal.rests_on(), "calibration": cal.to_dict()}
    if analysed == 0:
        return out | {"low": 0, "high": 0}
    s = graded / analysed
    w = float(share_width(analysed, cal.tau))
    low = max(0.0, s + cal.q_low * w)
    high = min(1.0, s + cal.q_high * w)
    # whole buildings, widened outward; never excluding the estimate itself
    lo_n = min(graded, int(math.floor(low * analysed + 1e-9)))
    hi_n = max(graded, int(math.ceil(high * analysed - 1e-9)))
    return out | {"low": lo_n, "high": hi_n}


def combine_counts(counts: Sequence[dict[str, Any]], shared: bool = True) -> dict[str, Any]:
    """The count of several scenes: estimates summed, with how their errors were combined.

    Parameters
    ----------
    counts : sequence of dict
        :func:`count_interval` of each scene.
    shared : bool
        True when the scenes are one event (one sensor pair, one kind of damage): the grades
        err alike in all of them, so the bounds add (the widest, and the honest, choice). False
        for independent events: the half-widths add in quadrature.
    """
    est = sum(int(c["estimate"]) for c in counts)
    n = sum(int(c["buildings"]) for c in counts)
    if shared:
        low, high = sum(int(c["low"]) for c in counts), sum(int(c["high"]) for c in counts)
        how = "the scenes' bounds added: one event, whose grades err alike in every scene"
    else:
        below = math.sqrt(sum((int(c["estimate"]) - int(c["low"])) ** 2 for c in counts))
        above = math.sqrt(sum((int(c["high"]) - int(c["estimate"])) ** 2 for c in counts))
        low, high = max(0, math.floor(est - below)), min(n, math.ceil(est + above))
        how = "the scenes' half-widths added in quadrature: independent events"
    level = min((float(c.get("level", 0.9)) for c in counts), default=0.9)
    return {"estimate": est, "expected": float(est), "low": low, "high": high, "buildings": n, "level": level,
            "method": "measured", "scenes": len(counts), "combined": how,
            "rests_on": counts[0]["rests_on"] if counts else ""}


def run_count(grades: np.ndarray, p_damaged: np.ndarray, damaged: Sequence[str],
              offset: dict[str, Any] | None = None, rests_on: str | None = None) -> dict[str, Any]:
    """The damaged count of a run record.

    By default (``offset`` None): the buildings graded one of ``damaged``, with the interval measured
    on real events (:func:`count_interval`). With the scene offset (``offset``: its record, whose
    grades that calibration was not measured on): the number ``p_damaged`` implies, with the 95 %
    interval of what the offset model leaves unknown of the scene's offset (its residual sd); ``rests_on``
    then says, in plain words, what the probabilities are.
    """
    grades = np.asarray(grades, dtype=object)
    analysed = int((grades != NOT_ANALYSED).sum())
    if offset is None:
        return count_interval(int(np.isin(grades, list(damaged)).sum()), analysed)
    modelled = damaged_count(np.asarray(p_damaged, dtype=float), offset_sd=offset["residual_sd"])
    return modelled | {"method": "modelled", "estimate": round(modelled["expected"]),
                       "rests_on": rests_on or "the scene offset model (no labels): a scene offset of "
                                               f"{offset['residual_sd']:.1f} logits propagated through every building"}
