"""Damage scales and the calibration of change into scores and grades.

A footprint's evidence is the mean per-pixel change ``c`` over its valid pixels
(metrics lie in [0, 1], 1 being complete change). It is first put on a log scale,
``d = -log(1 - c)`` (the loss of similarity as a ratio, which stretches the
compressed top of the range), and then calibrated against the scene itself, because
its level depends on the sensors, dates and resolution of the pair: the *reference*
is the 25th percentile of ``d`` over the scene's buildings (the centre of "no
damage"), and the *noise* is the spread between its 5th and 25th percentiles scaled
to a normal standard deviation. A footprint's calibrated change ``z`` is how many such
standard deviations it lies above the reference; the damage score is ``z / z_full``
clipped to [0, 1], and the scale cuts the score into grades.

This holds while at least about a third of the analysed buildings in the scene are
undamaged; the calibration is reported with every result so it can be checked.
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
    """The scene's reference level and noise of change, and the z that means destroyed."""

    reference: float
    noise: float
    z_full: float
    population: str
    size: int

    def z(self, change: np.ndarray) -> np.ndarray:
        """Calibrated change: noise standard deviations above the reference."""
        return (log_change(change) - self.reference) / self.noise

    def to_dict(self) -> dict[str, float | int | str]:
        return {
            "reference": round(self.reference, 5),
            "noise": round(self.noise, 5),
            "z_full": self.z_full,
            "population": self.population,
            "size": self.size,
        }


def log_change(change: np.ndarray) -> np.ndarray:
    """``-log(1 - c)``: change in [0, 1] as a loss of similarity on a log scale."""
    return -np.log1p(-np.clip(np.asarray(change, dtype=np.float64), 0.0, 0.999))


def calibrate(footprint_change: np.ndarray, block_change: np.ndarray, z_full: float = 4.0) -> Calibration:
    """Calibrate from the scene's footprints, or from blocks of the scene when too few.

    Parameters
    ----------
    footprint_change : numpy.ndarray
        Mean change of each analysed footprint (NaN for the others).
    block_change : numpy.ndarray
        Mean change of building-sized blocks over the valid scene.
    z_full : float
        Calibrated change that scores 1; with the xBD cut points 0.25/0.5/0.75 the
        grades begin at z = 1, 2 and 3.
    """
    fc = footprint_change[np.isfinite(footprint_change)]
    if fc.size >= MIN_REFERENCE:
        values, population = log_change(fc), "footprints"
    else:
        values, population = log_change(block_change[np.isfinite(block_change)]), "blocks"
    if values.size == 0:
        return Calibration(0.0, 1.0, z_full, "none", 0)
    p5, p25 = np.percentile(values, [5, 25])
    noise = max(float(p25 - p5) / (1.6449 - 0.6745), 1e-3)
    return Calibration(float(p25), noise, z_full, population, int(values.size))


def score(change: np.ndarray, calibration: Calibration) -> np.ndarray:
    """Damage score in [0, 1] from mean change (NaN stays NaN)."""
    z = calibration.z(change)
    return np.clip(z / calibration.z_full, 0.0, 1.0)


def grade(scores: np.ndarray, analysed: np.ndarray, scale: Scale | str = "xbd") -> np.ndarray:
    """Grades of ``scale`` for scores; ``not-analysed`` where ``analysed`` is False."""
    scale = SCALES[scale] if isinstance(scale, str) else scale
    levels = np.array(scale.levels + (NOT_ANALYSED,), dtype=object)
    index = np.searchsorted(np.asarray(scale.thresholds), np.nan_to_num(scores, nan=0.0), side="right")
    index = np.where(analysed & np.isfinite(scores), index, len(scale.levels))
    return levels[index]
