"""The scene's typical change and the evidence model that turns a building's evidence into ``p_damaged``.

Grading is the same everywhere: a building's evidence (:mod:`damage.optical.evidence`) goes
through one fixed :class:`EvidenceModel` (:data:`MODEL`, fitted once on real imagery
graded by people) to ``p_damaged``, the probability of major damage or worse, and a
damage score that the scale cuts into grades. Nothing is fitted on the buildings of
the scene at hand, so a building's grade does not depend on which other buildings are
assessed with it, nor on how many of them are damaged.

What is measured per scene is its *typical change without damage* (:class:`Calibration`):
over the quarter of its building-sized blocks that changed least in structure (roads,
fields, roofs that stood; :func:`damage.optical.evidence.scene_typical`), the median structural
change ``d = -log(1 - c)`` (``c`` is 1 - SSIM) and the median colour, edge and lightness
changes. Evidence is taken relative to it (``ssim_excess``, ``edge_excess``, ...), so a
pair where everything changes a little (parallax, season, another sensor) does not read
as damage, while a town where most houses fell keeps its roads and fields as reference.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

__all__ = ["Calibration", "log_change", "block_means", "EvidenceModel", "MODEL", "LEARNED_CUTS", "learned_model", "model_of", "DESCRIPTORS",
           "scene_descriptors", "SceneOffset", "OFFSET", "UNEXPLAINED_SD", "scene_model"]


@dataclasses.dataclass(frozen=True)
class Calibration:
    """The scene's typical change without damage, over its steadiest blocks.

    ``reference`` is the structural change on the log scale of :func:`log_change`
    (the zero of ``change_delta``, changed pixels and polygons); ``typical`` holds the
    typical colour difference, edge change and lightness change (see
    :func:`damage.optical.evidence.scene_typical`); ``size`` is how many blocks they come from.
    """

    reference: float
    population: str
    size: int
    typical: dict[str, float] = dataclasses.field(default_factory=dict)

    def delta(self, change: np.ndarray) -> np.ndarray:
        """Log-similarity lost beyond the scene's typical change without damage."""
        return log_change(change) - self.reference

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": round(self.reference, 5),
            "typical": {k: round(float(v), 5) for k, v in self.typical.items()},
            "population": self.population,
            "size": self.size,
        }


def log_change(change: np.ndarray) -> np.ndarray:
    """``-log(1 - c)``: change in [0, 1] as a loss of similarity on a log scale."""
    return -np.log1p(-np.clip(np.asarray(change, dtype=np.float64), 0.0, 0.999))


def block_means(change: np.ndarray, valid: np.ndarray, block: int = 16) -> np.ndarray:
    """Mean change of the ``block`` x ``block`` blocks of a grid that are fully valid."""
    h, w = (s // block * block for s in change.shape)
    if h == 0 or w == 0:
        return np.empty(0)
    c = change[:h, :w].reshape(h // block, block, w // block, block)
    v = valid[:h, :w].reshape(h // block, block, w // block, block)
    return c.mean(axis=(1, 3))[v.all(axis=(1, 3))]


@dataclasses.dataclass(frozen=True)
class EvidenceModel:
    """A logistic model of the evidence: features -> probability of major damage or worse.

    ``logit p = intercept + sum(weights * (x - centre) / spread)``; a feature that is
    missing (NaN) counts as its centre. ``cuts`` are the probabilities where minor
    damage, major damage and destroyed begin on the xBD scale.

    The defaults (:data:`MODEL`) were fitted once on real imagery graded by people
    (see ``benchmarks/fit_model.py``); nothing is fitted on the scene at hand, so a
    building's score does not depend on what else is assessed with it.
    """

    features: tuple[str, ...]
    centre: tuple[float, ...]
    spread: tuple[float, ...]
    weights: tuple[float, ...]
    intercept: float
    cuts: tuple[float, float, float]
    fitted_on: str = ""

    def __post_init__(self) -> None:
        n = len(self.features)
        if not (len(self.centre) == len(self.spread) == len(self.weights) == n):
            raise ValueError("features, centre, spread and weights must have the same length")
        if not 0.0 < self.cuts[0] < self.cuts[1] < self.cuts[2] < 1.0:
            raise ValueError(f"cuts must increase within (0, 1), got {self.cuts}")

    def logit(self, evidence: dict[str, np.ndarray]) -> np.ndarray:
        """The linear predictor of every building."""
        total: np.ndarray | None = None
        for name, c, s, w in zip(self.features, self.centre, self.spread, self.weights):
            z = np.nan_to_num((np.asarray(evidence[name], dtype=np.float64) - c) / s, nan=0.0)
            total = w * z if total is None else total + w * z
        return np.asarray(self.intercept + (total if total is not None else 0.0))

    def probability(self, evidence: dict[str, np.ndarray]) -> np.ndarray:
        """``p_damaged``: probability of major damage or worse."""
        return 1.0 / (1.0 + np.exp(-np.clip(self.logit(evidence), -30, 30)))

    def shifted(self, offset: float) -> EvidenceModel:
        """The same model with ``offset`` added to every building's logit (a scene's offset)."""
        return dataclasses.replace(self, intercept=round(self.intercept + float(offset), 4))

    def to_dict(self) -> dict:
        return {
            "features": list(self.features),
            "centre": list(self.centre),
            "spread": list(self.spread),
            "weights": list(self.weights),
            "intercept": self.intercept,
            "cuts": list(self.cuts),
            "fitted_on": self.fitted_on,
        }

    @classmethod
    def from_dict(cls, d: dict) -> EvidenceModel:
        return cls(tuple(d["features"]), tuple(d["centre"]), tuple(d["spread"]), tuple(d["weights"]),
                   float(d["intercept"]), tuple(d["cuts"]), str(d.get("fitted_on", "")))


#: The default evidence model: four standardised features with fixed relative weights 2:1:1:-0.5:
#: structure lost beyond the scene's typical change (weighing double), edges gained or lost beyond
#: the scene's typical change, structure lost against the building's own ring, and ``shadow_loss``
#: with a negative weight (a ring that darkens against its roof, as charred ground, debris and water
#: do, counts for damage; chosen leave-one-event-out among the colour, ring and shadow features:
#: pooled AUC 0.833 -> 0.851, without the fire event 0.605 -> 0.643; -1 scored 0.858 / 0.665 but lifts
#: an intact Joplin eye-labelled house, whose ring a new shadow darkened, among the destroyed ones:
#: the labels' leave-one-out AUC fell from 1.0 to 0.95; at -0.5 it stays 1.0). One slope, the intercept and
#: the cuts fitted on the xBD development tiles (``python benchmarks/fit_model.py rows.parquet
#: --prior 2,1,1,-0.5 --features ssim_excess,edge_excess,ssim_contrast,shadow_loss``),
#: each event weighing the same. The
#: major-damage cut is the best binary F1 that calls at most 3 % of intact buildings major+, each
#: event's intact buildings weighing as the event does (so 1,800 intact houses of one earthquake
#: cannot hide the false alarms of a fire); the
#: minor cut makes the four classes' harmonic-mean F1 best. The destroyed cut (0.70; was 0.7418, where
#: the harmonic mean is as good but 8 of 10 plainly flattened Joplin houses read major-damage) makes the
#: mean F1 of major-damage and destroyed best, each event weighing the same, from p_damaged 0.5 up
#: (``python benchmarks/destroyed_cut.py rows.parquet``: destroyed F1 0.406 -> 0.523 in-sample, 0.514
#: leaving each event out). Leave-one-event-out figures are in docs/accuracy.md.
MODEL = EvidenceModel(
    features=("ssim_excess", "edge_excess", "ssim_contrast", "shadow_loss"),
    centre=(0.4078, -0.07429, -0.06818, 0.13912),
    spread=(0.34266, 0.26252, 0.12727, 0.15995),
    weights=(0.624, 0.312, 0.312, -0.156),
    intercept=-1.6985,
    cuts=(0.2476, 0.4324, 0.70),
    fitted_on="xBD dev tiles: 2786 buildings, 9 events; prior weights 2,1,1,-0.5; events weighted equally",
)


#: Where minor damage, major damage and destroyed begin on a learned model's ``p_damaged`` when its side-car
#: gives no cuts: a probability of damage of one half is major damage, as the model's own output says.
LEARNED_CUTS = (0.3, 0.5, 0.8)


def learned_model(cuts: tuple[float, float, float] | None = None) -> EvidenceModel:
    """The evidence model of a run with a learned model (``Config.model``): ``p_damaged`` is the model's mean
    over the footprint (its ``model_logit`` through the logistic, exactly), cut at ``cuts`` (the side-car's, else
    :data:`LEARNED_CUTS`). A label refit moves its offset and slope, which recalibrates the model on the event."""
    return EvidenceModel(("model_logit",), (0.0,), (1.0,), (1.0,), 0.0, tuple(cuts or LEARNED_CUTS),  # type: ignore[arg-type]
                         fitted_on="the user's model: its mean over the footprint")


def model_of(record: dict | None) -> EvidenceModel:
    """The evidence model a run record names (a result's ``attrs["damage"]``), else :data:`MODEL`."""
    rec = (record or {}).get("model")
    if isinstance(rec, dict):
        try:
            return EvidenceModel.from_dict(rec)
        except (KeyError, TypeError, ValueError):
            pass
    return MODEL


#: What a scene's offset may be predicted from (:data:`OFFSET` uses six of them): numbers of the scene fit's record (``SceneFit.to_dict``),
#: each the mean over bands where the record holds one value per band, and the pixel size in metres.
#: None of them depends on which footprints are assessed (only on the imagery around them).
DESCRIPTORS: dict[str, tuple[str, ...]] = {
    "reference": ("calibration", "reference"),  # the steadiest blocks' structural change
    "edge": ("calibration", "typical", "edge"),  # their edge change: a sharper or blurrier sensor
    "delta_e_median": ("calibration", "typical", "delta_e_median"),  # the whole scene's colour change
    "lightness_median": ("calibration", "typical", "lightness_median"),  # and its lightness change
    "normalization_gain": ("normalization", "gain"),  # the after sensor's gain against the before's
    "registration_spread_px": ("registration", "spread_px"),  # how much local misregistration is left
    "noise_before": ("scene_stats", "noise_before"),
    "noise_after": ("scene_stats", "noise_after"),
    "ranges": ("scene_stats", "ranges"),  # the before image's contrast
}


def scene_descriptors(record: dict[str, Any], resolution_m: float) -> dict[str, float]:
    """The numbers a scene's offset is predicted from (:data:`DESCRIPTORS`), NaN where the record has none.

    Parameters
    ----------
    record : dict
        A scene fit's record (``SceneFit.to_dict()``, or a run record holding it).
    resolution_m : float
        The grid's pixel size in metres.
    """
    out: dict[str, float] = {}
    for name, path in DESCRIPTORS.items():
        value: Any = record
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, list):
            value = float(np.mean(value)) if value and all(isinstance(v, (int, float)) for v in value) else None
        out[name] = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else float("nan")
    out["resolution_m"] = float(resolution_m)
    return out


@dataclasses.dataclass(frozen=True)
class SceneOffset:
    """A scene's logit offset from the evidence model, predicted from what its imagery says of it.

    ``offset = intercept + sum(weights * (x - centre) / spread)`` over the scene's
    :func:`scene_descriptors` (a missing one counts as its centre; each is first clipped
    to ``[low, high]``, the range the model was fitted on, so a scene unlike any of them
    is not extrapolated to), clipped to ``±limit``. ``residual_sd`` is the spread of the true offsets (refitted per tile on
    people's labels) about the predicted ones, on events the offset model was not
    fitted on: what stays unknown without labels, and what count intervals rest on.
    """

    descriptors: tuple[str, ...]
    centre: tuple[float, ...]
    spread: tuple[float, ...]
    weights: tuple[float, ...]
    intercept: float
    residual_sd: float
    limit: float = 4.0
    fitted_on: str = ""
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()
    #: The grade cuts chosen with the offsets applied (the evidence model's own when empty).
    cuts: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not (len(self.descriptors) == len(self.centre) == len(self.spread) == len(self.weights)):
            raise ValueError("descriptors, centre, spread and weights must have the same length")
        if not self.residual_sd > 0:
            raise ValueError(f"residual_sd must be positive, got {self.residual_sd}")

    def predict(self, descriptors: dict[str, float]) -> float:
        """The predicted offset of a scene with these descriptors."""
        total = self.intercept
        n = len(self.descriptors)
        low, high = self.low or (-np.inf,) * n, self.high or (np.inf,) * n
        for name, c, s, w, lo, hi in zip(self.descriptors, self.centre, self.spread, self.weights, low, high):
            z = (float(np.clip(float(descriptors.get(name, float("nan"))), lo, hi)) - c) / s
            total += w * (z if np.isfinite(z) else 0.0)
        return float(np.clip(total, -self.limit, self.limit))

    def to_dict(self) -> dict:
        return {"descriptors": list(self.descriptors), "centre": list(self.centre), "spread": list(self.spread),
                "weights": list(self.weights), "intercept": self.intercept, "residual_sd": self.residual_sd,
                "limit": self.limit, "fitted_on": self.fitted_on, "low": list(self.low), "high": list(self.high),
                "cuts": list(self.cuts)}

    @classmethod
    def from_dict(cls, d: dict) -> SceneOffset:
        return cls(tuple(d["descriptors"]), tuple(d["centre"]), tuple(d["spread"]), tuple(d["weights"]),
                   float(d["intercept"]), float(d["residual_sd"]), float(d.get("limit", 4.0)), str(d.get("fitted_on", "")),
                   tuple(d.get("low", ())), tuple(d.get("high", ())), tuple(d.get("cuts", ())))


#: The spread of the scenes' offsets when none is predicted: the sd of the offsets refitted per tile of the
#: xBD dev tiles on all their labels (N(0, 3.5) prior), the evidence model fitted on the other events (2.89
#: with the current model; 3.5 was measured with the previous one).
UNEXPLAINED_SD = 2.89


#: The scene offset model (used with ``Config.scene_offset = true``): a ridge logistic fit (penalty 30) of
#: the scenes' offsets on four descriptors that do not see the damage (the before image's noise and
#: contrast, the pixel size, the after/before gain on pseudo-invariant pixels), over the xBD
#: development tiles, each event weighing the same (``benchmarks/fit_model.py ... --offset``). Out of
#: event it ranks scenes better (pooled AUC 0.851 -> 0.902) but grades them no better (binary F1
#: 0.704 -> 0.663) and explains little of the offsets (``residual_sd`` 2.74 against their spread of
#: 2.89), so it is off by default. Descriptors that do see the damage (the whole scene's change, the
#: after image's noise, the misregistration left) did better out of event (AUC up to 0.937) but made
#: a building's grade move with the share of damage around it. Descriptors are clipped to the range
#: of the tiles (``low``, ``high``); ``cuts`` were chosen with the offsets applied.
OFFSET = SceneOffset(
    descriptors=("noise_before", "ranges", "resolution_m", "normalization_gain"),
    centre=(3.4594, 170.33333, 1.0, 1.07303),
    spread=(1.40891, 20.87714, 0.2566, 0.16733),
    weights=(-0.2996, -0.1501, -0.332, -0.5871),
    intercept=-1.5649,
    residual_sd=2.744,
    limit=4.0,
    fitted_on="xBD dev tiles: 2786 buildings, 39 tiles, 9 events; ridge 30, events weighted equally; "
              "residual_sd: leave-one-event-out",
    low=(0.4614, 92.95137, 0.4478, 0.65987),
    high=(5.10673, 212.33333, 1.0, 1.459),
    cuts=(0.2452, 0.496, 0.7631),
)


def scene_model(fit_record: dict[str, Any], resolution_m: float, model: EvidenceModel = MODEL,
                offset: SceneOffset | None = OFFSET) -> tuple[EvidenceModel, dict[str, Any]]:
    """The evidence model a scene is graded with: ``model`` shifted by the scene's predicted offset.

    Parameters
    ----------
    fit_record : dict
        The scene fit's record (``SceneFit.to_dict()``).
    resolution_m : float
        The grid's pixel size in metres.
    model, offset : the evidence model and the offset model (defaults :data:`MODEL`, :data:`OFFSET`);
        ``offset=None``: no offset (``Config.scene_offset = false``), the count's interval then
        rests on the spread of the offsets themselves (:data:`UNEXPLAINED_SD`).

    Returns
    -------
    model : EvidenceModel
        The shifted model (its intercept holds the offset).
    record : dict
        For the run record: the predicted offset, what stays unknown of it (``residual_sd``),
        the descriptors it was predicted from and the offset model.
    """
    descriptors = scene_descriptors(fit_record, resolution_m)
    if offset is None:
        return model, {"predicted": 0.0, "residual_sd": UNEXPLAINED_SD, "descriptors": {}, "offset_model": None}
    predicted = offset.predict(descriptors)
    shifted = model.shifted(predicted)
    if len(offset.cuts) == 3:
        lo, mid, hi = (float(c) for c in offset.cuts)
        shifted = dataclasses.replace(shifted, cuts=(lo, mid, hi))
    return shifted, {
        "predicted": round(predicted, 4),
        "residual_sd": offset.residual_sd,
        "descriptors": {k: (round(v, 5) if np.isfinite(v) else None) for k, v in descriptors.items()},
        "offset_model": offset.to_dict(),
    }
