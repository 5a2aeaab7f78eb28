"""Grading: damage scales (:mod:`.scales`) and the evidence model with the scene's offset (:mod:`.model`)."""

from damage.grading.model import (
    DESCRIPTORS,
    LEARNED_CUTS,
    MODEL,
    OFFSET,
    UNEXPLAINED_SD,
    Calibration,
    EvidenceModel,
    SceneOffset,
    block_means,
    learned_model,
    log_change,
    model_of,
    scene_descriptors,
    scene_model,
)
from damage.grading.scales import NOT_ANALYSED, SCALES, Scale, grade, to_scale

__all__ = ["Scale", "SCALES", "NOT_ANALYSED", "to_scale", "grade", "Calibration", "log_change", "block_means",
           "EvidenceModel", "MODEL", "model_of", "DESCRIPTORS", "scene_descriptors", "SceneOffset", "OFFSET",
           "UNEXPLAINED_SD", "scene_model", "LEARNED_CUTS", "learned_model"]
