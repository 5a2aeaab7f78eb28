"""Radiometric normalisation of the after epoch to the before epoch.

Different sensors, dates and atmospheres change brightness, contrast and colour; a
colour cast is not damage. Each normaliser maps the after bands onto the before
bands' radiometry and returns the fitted parameters as evidence. A registry maps
names to functions ``f(before, after, valid) -> (after_normalised, params)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["NORMALIZERS", "normalize", "apply", "record", "regression", "histogram", "identity"]

Normalizer = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, dict[str, Any]]]

MAX_SAMPLES = 400_000


def _sample(valid: np.ndarray, seed: int = 0) -> np.ndarray:
    """Flat indices of at most MAX_SAMPLES valid pixels, deterministic."""
    idx = np.flatnonzero(valid)
    if idx.size > MAX_SAMPLES:
        idx = np.sort(np.random.default_rng(seed).choice(idx, MAX_SAMPLES, replace=False))
    return idx


def _ranks(x: np.ndarray) -> np.ndarray:
    r = np.empty(x.size, dtype=np.float64)
    r[np.argsort(x, kind="stable")] = np.arange(x.size)
    return r / max(x.size - 1, 1)


def regression(before: np.ndarray, after: np.ndarray, valid: np.ndarray, rank_tolerance: float = 0.05) -> tuple[np.ndarray, dict[str, Any]]:
    """Per-band linear regression fitted on pseudo-invariant pixels.

    A pixel is pseudo-invariant when its brightness rank in the scene is nearly the
    same in both epochs (any monotone radiometric change keeps ranks; damage, new
    construction and vegetation change do not). Gain and offset per band are fitted
    by least squares on those pixels, after onto before.
    """
    idx = _sample(valid)
    if idx.size < 100:
        return after.copy(), {"method": "regression", "applied": False, "reason": "fewer than 100 valid pixels"}
    lb = before.reshape(before.shape[0], -1)[:, idx].mean(axis=0)
    la = after.reshape(after.shape[0], -1)[:, idx].mean(axis=0)
    invariant = np.abs(_ranks(lb) - _ranks(la)) < rank_tolerance
    if invariant.sum() < 100:
        invariant[:] = True
    out = np.empty_like(after)
    gains, offsets = [], []
    for band in range(after.shape[0]):
        y = before[band].ravel()[idx][invariant]
        x = after[band].ravel()[idx][invariant]
        var = x.var()
        gain = float(np.cov(x, y, bias=True)[0, 1] / var) if var > 1e-12 else 1.0
        offset = float(y.mean() - gain * x.mean())
        out[band] = after[band] * gain + offset
        gains.append(round(gain, 4))
        offsets.append(round(offset, 4))
    params = {
        "method": "regression",
        "applied": True,
        "gain": gains,
        "offset": offsets,
        "invariant_share": round(float(invariant.mean()), 4),
    }
    return out, params


def histogram(before: np.ndarray, after: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Per-band histogram matching of after to before over the valid pixels."""
    idx = _sample(valid)
    if idx.size < 100:
        return after.copy(), {"method": "histogram", "applied": False, "reason": "fewer than 100 valid pixels"}
    q = np.linspace(0, 1, 1025)
    tables = []
    for band in range(after.shape[0]):
        qa = np.quantile(after[band].ravel()[idx], q)
        qb = np.quantile(before[band].ravel()[idx], q)
        qa, unique = np.unique(qa, return_index=True)
        tables.append((qa, qb[unique]))
    params = {"method": "histogram", "applied": True, "tables": tables}
    return apply(after, params), params


def identity(before: np.ndarray, after: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """No normalisation."""
    return after, {"method": "none", "applied": False}


NORMALIZERS: dict[str, Normalizer] = {"regression": regression, "histogram": histogram, "none": identity}


def apply(after: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """Apply fitted parameters (from any normaliser) to after pixels, e.g. of another window."""
    if not params.get("applied"):
        return after
    if params["method"] == "regression":
        gain = np.asarray(params["gain"], np.float32)[:, None, None]
        offset = np.asarray(params["offset"], np.float32)[:, None, None]
        return (after * gain + offset).astype(after.dtype)
    if params["method"] == "histogram":
        out = np.empty_like(after)
        for band, (qa, qb) in enumerate(params["tables"]):
            out[band] = np.interp(after[band], qa, qb).astype(after.dtype)
        return out
    raise ValueError(f"cannot apply normalisation {params['method']!r}")


def record(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters as written into outputs (histogram tables left out)."""
    return {k: v for k, v in params.items() if k != "tables"}


def normalize(before: np.ndarray, after: np.ndarray, valid: np.ndarray, method: str = "regression") -> tuple[np.ndarray, dict[str, Any]]:
    """Normalise ``after`` (``(bands, rows, cols)``) to ``before`` with a registered method."""
    return NORMALIZERS[method](before, after, valid)
