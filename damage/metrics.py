"""Per-pixel change metrics: a registry of ``name -> function(before, after, valid)``.

Each function takes ``(bands, rows, cols)`` float32 arrays of the two epochs on one
grid, already registered and normalised, and the ``(rows, cols)`` validity, and
returns a ``(rows, cols)`` float32 map where larger means more change, on a scale
where 0 is no change and about 1 is complete change. Values at invalid pixels are
meaningless. New metrics plug in with :func:`register`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

__all__ = ["METRICS", "register", "ssim", "absdiff", "gradient", "robust_range", "METRIC_RADIUS"]

Metric = Callable[..., np.ndarray]
METRICS: dict[str, Metric] = {}
#: Pixels of context a metric needs on each side (for valid-mask erosion and windows).
METRIC_RADIUS: dict[str, int] = {}


def register(name: str, radius: int = 0) -> Callable[[Metric], Metric]:
    """Decorator: add a metric to :data:`METRICS` under ``name``."""

    def wrap(func: Metric) -> Metric:
        METRICS[name] = func
        METRIC_RADIUS[name] = radius
        return func

    return wrap


def robust_range(array: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-band spread (0.5th to 99.5th percentile) of the valid pixels; at least 1e-6."""
    flat = array.reshape(array.shape[0], -1)[:, valid.ravel()]
    if flat.shape[1] > 400_000:
        flat = flat[:, :: flat.shape[1] // 400_000]
    lo, hi = np.percentile(flat, [0.5, 99.5], axis=1) if flat.size else (np.zeros(array.shape[0]), np.ones(array.shape[0]))
    return np.maximum(hi - lo, 1e-6)


def _gauss(x: np.ndarray, sigma: float) -> np.ndarray:
    return ndimage.gaussian_filter(x, sigma, mode="reflect", truncate=3.5)


@register("ssim", radius=6)
def ssim(before: np.ndarray, after: np.ndarray, valid: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """One minus the structural similarity (SSIM), averaged over bands, clipped to [0, 1].

    SSIM compares local means, contrasts and the correlation of local structure in
    a Gaussian window (Wang et al. 2004). A roof turned to rubble loses its
    structure even when its average colour hardly changes. The constants are
    scaled by each band's robust range, so the metric does not depend on the
    sensor's brightness scale.
    """
    out = np.zeros(before.shape[1:], dtype=np.float32)
    ranges = robust_range(before, valid)
    for band in range(before.shape[0]):
        x = before[band].astype(np.float32)
        y = after[band].astype(np.float32)
        c1 = (0.01 * ranges[band]) ** 2
        c2 = (0.03 * ranges[band]) ** 2
        mx, my = _gauss(x, sigma), _gauss(y, sigma)
        vx = _gauss(x * x, sigma) - mx * mx
        vy = _gauss(y * y, sigma) - my * my
        cxy = _gauss(x * y, sigma) - mx * my
        s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        out += 1.0 - s
    return np.clip(out / before.shape[0], 0.0, 1.0)


@register("absdiff", radius=0)
def absdiff(before: np.ndarray, after: np.ndarray, valid: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """Mean absolute difference over bands, as a share of each band's robust range."""
    ranges = robust_range(before, valid)[:, None, None]
    return np.clip((np.abs(after - before) / ranges).mean(axis=0), 0.0, 1.0).astype(np.float32)


@register("gradient", radius=6)
def gradient(before: np.ndarray, after: np.ndarray, valid: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """Loss of edge structure: one minus the local correlation of gradient vectors.

    Compares the direction and strength of edges (roof outlines, ridges) in a
    Gaussian window; insensitive to brightness and contrast changes.
    """
    lb = before.mean(axis=0)
    la = after.mean(axis=0)
    bx, by = ndimage.sobel(lb, 1), ndimage.sobel(lb, 0)
    ax, ay = ndimage.sobel(la, 1), ndimage.sobel(la, 0)
    eps = (0.03 * float(robust_range(lb[None], valid)[0])) ** 2
    num = _gauss(bx * ax + by * ay, sigma)
    den = np.sqrt(_gauss(bx * bx + by * by, sigma) * _gauss(ax * ax + ay * ay, sigma))
    # eps in both: flat areas with no edges in either epoch show no change.
    return np.clip((1.0 - (num + eps) / (den + eps)) / 2.0, 0.0, 1.0).astype(np.float32)


def combined(before: np.ndarray, after: np.ndarray, valid: np.ndarray, weights: tuple[tuple[str, float], ...], sigma: float = 1.5) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Every weighted metric and their weighted mean.

    Returns
    -------
    change : numpy.ndarray
        ``(rows, cols)`` weighted mean of the metrics.
    maps : dict
        Each metric's own map, by name.
    """
    maps = {name: METRICS[name](before, after, valid, sigma=sigma) for name, _ in weights}
    total = sum(w for _, w in weights)
    change = sum(maps[name] * (w / total) for name, w in weights)
    return np.asarray(change, dtype=np.float32), maps
