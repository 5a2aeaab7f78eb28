"""Damage scales and the calibration of change into scores and grades.

A footprint's evidence is the mean per-pixel change ``c`` over its valid pixels
(metrics lie in [0, 1], 1 being complete change). It is put on a log scale,
``d = -log(1 - c)``: ``1 - c`` is a similarity, and ``d`` its loss as a log ratio.

The level of ``d`` for an intact roof depends on the pair (sensors, dates, view
angles, resolution), so it is calibrated against the scene itself: the *reference*
is the 15th percentile of ``d`` over the scene's analysed buildings (or, with fewer
than 30 of them, over building-sized blocks of the scene). A footprint's calibrated
change is ``delta = d - reference``: how many nepers less similar its two epochs are
than those of the scene's intact buildings. ``delta`` of 0.2, 0.4 and 0.6 (similarity
down by 18 %, 33 % and 45 %) begin minor damage, major damage and destroyed on the
xBD scale; the damage score is ``delta / delta_full`` clipped to [0, 1], with
``delta_full = 0.8``.

The reference is right while at least about 15 % of the analysed buildings in the
scene are intact; it is reported with every result, so it can be checked.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["Scale", "SCALES", "Calibration", "calibrate", "log_change", "score", "grade", "NOT_ANALYSED"]

NOT_ANALYSED = "not-analysed"
#: Fewer reference footprints than this and the calibration uses blocks of the scene.
MIN_REFERENCE = 30


@dataclasses.dataclass(frozen=True)
class Scale:
    """An ordered damage scale: ``levels[i]`` applies from ``thresholds[i-1]`` on.

    Parameters
    ----------
    name : str
    levels : tuple of str
        From least to most damage.
    thresholds : tuple of float
        ``len(levels) - 1`` increasing damage-score cut points in (0, 1).
    """

    name: str
    levels: tuple[str, ...]
    thresholds: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.thresholds) != len(self.levels) - 1 or list(self.thresholds) != sorted(self.thresholds):
            raise ValueError(f"scale {self.name}: need {len(self.levels) - 1} increasing thresholds")

    @property
    def damaged(self) -> tuple[str, ...]:
        """Levels that count as damaged in a binary sense (the upper half)."""
        return self.levels[len(self.levels) // 2 :]


SCALES: dict[str, Scale] = {
    # xBD / xView2 Joint Damage Scale (Gupta et al. 2019).
    "xbd": Scale("xbd", ("no-damage", "minor-damage", "major-damage", "destroyed"), (0.25, 0.5, 0.75)),
}


@dataclasses.dataclass(frozen=True)
class Calibration:
    """The scene's reference level of (log) change, and the calibrated change that scores 1."""

    reference: float
    delta_full: float
    population: str
    size: int

    def delta(self, change: np.ndarray) -> np.ndarray:
        """Calibrated change: log-similarity lost beyond the scene's intact reference."""
        return log_change(change) - self.reference

    def to_dict(self) -> dict[str, float | int | str]:
        return {
            "reference": round(self.reference, 5),
            "delta_full": self.delta_full,
            "population": self.population,
            "size": self.size,
        }


def log_change(change: np.ndarray) -> np.ndarray:
    """``-log(1 - c)``: change in [0, 1] as a loss of similarity on a log scale."""
    return -np.log1p(-np.clip(np.asarray(change, dtype=np.float64), 0.0, 0.999))


def calibrate(
    footprint_change: np.ndarray, block_change: np.ndarray, quantile: float = 0.15, delta_full: float = 0.8
) -> Calibration:
    """Calibrate from the scene's footprints, or from blocks of the scene when too few.

    Parameters
    ----------
    footprint_change : numpy.ndarray
        Mean change of each analysed footprint (NaN for the others).
    block_change : numpy.ndarray
        Mean change of building-sized blocks over the valid scene.
    quantile : float
        Which quantile of the population is the intact reference.
    delta_full : float
        Calibrated change that scores 1; with the xBD cut points 0.25/0.5/0.75 the
        grades begin at delta = 0.2, 0.4 and 0.6.
    """
    fc = footprint_change[np.isfinite(footprint_change)]
    if fc.size >= MIN_REFERENCE:
        values, population = log_change(fc), "footprints"
    else:
        values, population = log_change(block_change[np.isfinite(block_change)]), "blocks"
    if values.size == 0:
        return Calibration(0.0, delta_full, "none", 0)
    return Calibration(float(np.quantile(values, quantile)), delta_full, population, int(values.size))


def score(change: np.ndarray, calibration: Calibration) -> np.ndarray:
    """Damage score in [0, 1] from mean change (NaN stays NaN)."""
    return np.clip(calibration.delta(change) / calibration.delta_full, 0.0, 1.0)


def grade(scores: np.ndarray, analysed: np.ndarray, scale: Scale | str = "xbd") -> np.ndarray:
    """Grades of ``scale`` for scores; ``not-analysed`` where ``analysed`` is False."""
    scale = SCALES[scale] if isinstance(scale, str) else scale
    levels = np.array(scale.levels + (NOT_ANALYSED,), dtype=object)
    index = np.searchsorted(np.asarray(scale.thresholds), np.nan_to_num(scores, nan=0.0), side="right")
    index = np.where(analysed & np.isfinite(scores), index, len(scale.levels))
    return levels[index]
