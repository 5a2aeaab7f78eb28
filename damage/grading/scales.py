"""Damage scales: their levels, where each cuts the evidence model's probability, and grading.

A scale (:class:`Scale`) is a registry entry of :data:`SCALES`: xBD (the default), UNOSAT's
classes, Copernicus EMS and binary. :func:`grade` cuts scores into a scale's levels;
:func:`to_scale` reads xBD grade names as another scale's levels.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["Scale", "SCALES", "NOT_ANALYSED", "to_scale", "grade"]

NOT_ANALYSED = "not-analysed"


@dataclasses.dataclass(frozen=True)
class Scale:
    """An ordered damage scale: ``levels[i]`` applies from ``thresholds[i-1]`` on.

    Parameters
    ----------
    name : str
    levels : tuple of str
        From least to most damage.
    thresholds : tuple of float
        ``len(levels) - 1`` increasing damage-score cut points in (0, 1) (used by scores
        that are not a probability, such as the PWTT's).
    damaged_levels : tuple of str
        The levels that count as damaged (major damage or worse); default the upper half.
    xbd : dict
        Each level's nearest xBD grade (to compare with labels of the xBD scale).
    from_model : tuple of float
        Where each cut lies on the evidence model's probability, as a position among the
        model's xBD cuts (minor, major, destroyed) = (1, 2, 3); a fraction lies between
        two on the logit scale and 0.5 is one logit unit below the minor cut.
    source : str
        Where the levels are defined.
    """

    name: str
    levels: tuple[str, ...]
    thresholds: tuple[float, ...]
    damaged_levels: tuple[str, ...] = ()
    xbd: dict[str, str] = dataclasses.field(default_factory=dict)
    from_model: tuple[float, ...] = (1.0, 2.0, 3.0)
    source: str = ""

    def __post_init__(self) -> None:
        if len(self.thresholds) != len(self.levels) - 1 or list(self.thresholds) != sorted(self.thresholds):
            raise ValueError(f"scale {self.name}: need {len(self.levels) - 1} increasing thresholds")
        if len(self.from_model) != len(self.levels) - 1:
            raise ValueError(f"scale {self.name}: need {len(self.levels) - 1} model cut positions")

    @property
    def damaged(self) -> tuple[str, ...]:
        """Levels that count as damaged in a binary sense (major damage or worse)."""
        return self.damaged_levels or self.levels[len(self.levels) // 2 :]

    def model_cuts(self, cuts: tuple[float, ...]) -> tuple[float, ...]:
        """This scale's cuts on ``p_damaged``, from the evidence model's xBD cuts."""
        logits = np.log(np.asarray(cuts, dtype=float) / (1 - np.asarray(cuts, dtype=float)))
        out = []
        for pos in self.from_model:
            if pos >= 1:
                i = min(int(pos), 3) - 1
                frac = pos - int(pos)
                z = logits[i] + frac * (logits[min(i + 1, 2)] - logits[i])
            else:
                z = logits[0] - (1 - pos) * 2.0
            out.append(float(1 / (1 + np.exp(-z))))
        return tuple(out)


_XBD_LEVELS = ("no-damage", "minor-damage", "major-damage", "destroyed")
#: The damage scales a run grades in (``Config.scale``, ``--scale``) and labels are read in.
SCALES: dict[str, Scale] = {
    # xBD / xView2 Joint Damage Scale (Gupta et al. 2019, "xBD: A Dataset for Assessing
    # Building Damage from Satellite Imagery", table 1).
    "xbd": Scale("xbd", _XBD_LEVELS, (0.25, 0.5, 0.75), ("major-damage", "destroyed"),
                 {v: v for v in _XBD_LEVELS}, (1.0, 2.0, 3.0),
                 "xBD Joint Damage Scale (Gupta et al. 2019)"),
    # UNITAR-UNOSAT damage assessment classes (the codes of its damage points, see
    # damage.io.labels.UNOSAT_CODES). "Possible damage" is UNOSAT's low-confidence class: here it
    # begins one logit unit below the model's minor-damage cut; moderate, severe and destroyed
    # begin at the model's minor, major and destroyed cuts.
    "unosat": Scale("unosat", ("No Visible Damage", "Possible Damage", "Moderate Damage", "Severe Damage", "Destroyed"),
                    (0.2, 0.4, 0.6, 0.8), ("Severe Damage", "Destroyed"),
                    {"No Visible Damage": "no-damage", "Possible Damage": "minor-damage",
                     "Moderate Damage": "minor-damage", "Severe Damage": "major-damage", "Destroyed": "destroyed"},
                    (0.5, 1.0, 2.0, 3.0), "UNITAR-UNOSAT damage assessment classes"),
    # Copernicus Emergency Management Service grading maps: "Possibly damaged", "Damaged",
    # "Destroyed" (EMS damage grading; cf. EMS-98 grades 1-2, 3-4 and 5), here from the model's
    # minor, major and destroyed cuts.
    "ems": Scale("ems", ("No visible damage", "Possibly damaged", "Damaged", "Destroyed"), (0.25, 0.5, 0.75),
                 ("Damaged", "Destroyed"),
                 {"No visible damage": "no-damage", "Possibly damaged": "minor-damage", "Damaged": "major-damage",
                  "Destroyed": "destroyed"}, (1.0, 2.0, 3.0), "Copernicus EMS grading (EMS-98 based)"),
    # Damaged or not: major damage or worse, from the model's major-damage cut.
    "binary": Scale("binary", ("not damaged", "damaged"), (0.5,), ("damaged",),
                    {"not damaged": "no-damage", "damaged": "major-damage"}, (2.0,), "major damage or worse"),
}


def to_scale(xbd_grades, scale: Scale | str):
    """xBD grade names as the levels of ``scale`` (None stays None).

    Each goes to the most severe level whose nearest xBD grade is no more severe
    (minor damage is "Moderate Damage" on UNOSAT's scale, "not damaged" on the binary one).
    """
    sc = SCALES[scale] if isinstance(scale, str) else scale
    rank = {v: i for i, v in enumerate(_XBD_LEVELS)}
    out: list[str | None] = []
    for g in xbd_grades:
        if g is None or g not in rank:
            out.append(None)
            continue
        fits = [lv for lv in sc.levels if rank[sc.xbd.get(lv, "no-damage")] <= rank[g]]
        out.append(fits[-1] if fits else sc.levels[0])
    return out


def grade(scores: np.ndarray, analysed: np.ndarray, scale: Scale | str = "xbd",
          thresholds: tuple[float, ...] | None = None) -> np.ndarray:
    """Grades of ``scale`` for scores; ``not-analysed`` where ``analysed`` is False.

    ``thresholds`` are the evidence model's xBD cuts on ``p_damaged``; the scale places
    its own cuts among them (:meth:`Scale.model_cuts`). Without them the scale's own
    cut points apply to ``scores``.
    """
    if isinstance(scale, str):
        if scale not in SCALES:
            from damage.errors import ConfigError

            raise ConfigError(f"scale={scale!r} is unknown; choose one of {sorted(SCALES)}")
        scale = SCALES[scale]
    levels = np.array(scale.levels + (NOT_ANALYSED,), dtype=object)
    cuts = np.asarray(scale.thresholds if thresholds is None else scale.model_cuts(tuple(thresholds)))
    if cuts.size != len(scale.levels) - 1:
        raise ValueError(f"scale {scale.name} needs {len(scale.levels) - 1} cut points, got {cuts.size}")
    index = np.searchsorted(cuts, np.nan_to_num(scores, nan=0.0), side="right")
    index = np.where(analysed & np.isfinite(scores), index, len(scale.levels))
    return levels[index]
