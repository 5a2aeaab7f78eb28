"""Per-pixel change metrics: a registry of ``name -> function(before, after, valid)``.

Each function takes ``(bands, rows, cols)`` float32 arrays of the two epochs on one
grid, already registered and normalised, and the ``(rows, cols)`` validity, and
returns a ``(rows, cols)`` float32 map where larger means more change, on a scale
where 0 is no change and about 1 is complete change. Values at invalid pixels are
meaningless. New metrics plug in with :func:`register`.

Every metric takes a ``tolerance`` in whole pixels: the change at a pixel is the
smallest over all displacements of the after image up to ``tolerance`` pixels in
each direction. What is left of misregistration after co-registration, and roofs
that lean differently in off-nadir views (parallax), then do not count as change,
while a roof that became rubble matches no displacement.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterator

import numpy as np
from scipy import ndimage

__all__ = ["METRICS", "register", "ssim", "absdiff", "gradient", "robust_range", "METRIC_RADIUS", "tolerant", "displacements", "shift_edge", "ssim_maps", "ssim_compiled", "Moments", "moments", "gaussian_weights", "SceneStats", "scene_stats", "noise_sigma"]

Metric = Callable[..., np.ndarray]
METRICS: dict[str, Metric] = {}
#: Pixels of context a metric needs on each side (for valid-mask erosion and windows).
METRIC_RADIUS: dict[str, int] = {}
#: Whether a metric takes scene-wide :class:`SceneStats` (``stats=``).
TAKES_STATS: dict[str, bool] = {}


def register(name: str, radius: int = 0) -> Callable[[Metric], Metric]:
    """Decorator: add a metric to :data:`METRICS` under ``name``.

    ``radius`` is the context, in pixels, the metric needs on each side. A function
    without a ``tolerance`` parameter is registered wrapped in :func:`tolerant`.
    """

    def wrap(func: Metric) -> Metric:
        # A metric without a ``tolerance`` parameter gets the generic one.
        params = inspect.signature(func).parameters
        METRICS[name] = func if "tolerance" in params else tolerant(func)
        TAKES_STATS[name] = "stats" in params
        METRIC_RADIUS[name] = radius
        return func

    return wrap


def _percentiles(array: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = array.reshape(array.shape[0], -1)[:, valid.ravel()]
    if flat.shape[1] > 400_000:
        flat = flat[:, :: flat.shape[1] // 400_000]
    return np.percentile(flat, [0.5, 99.5], axis=1) if flat.size else (np.zeros(array.shape[0]), np.ones(array.shape[0]))


def robust_range(array: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-band spread (0.5th to 99.5th percentile) of the valid pixels; at least 1e-6."""
    lo, hi = _percentiles(array, valid)
    return np.maximum(hi - lo, 1e-6)


def robust_low(array: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-band 0.5th percentile of the valid pixels."""
    return np.asarray(_percentiles(array, valid)[0], dtype=np.float64)


#: The Laplacian-difference kernel of Immerkaer (1996): flat and linear ramps give 0.
_NOISE_KERNEL = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def noise_sigma(array: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-band standard deviation of pixel noise, from the median response to a Laplacian difference.

    The median (not the mean) of the absolute response ignores edges; for Gaussian
    noise of standard deviation s, the response has standard deviation 6 s.
    """
    core = ndimage.binary_erosion(valid, iterations=1, border_value=0)
    out = np.zeros(array.shape[0], dtype=np.float64)
    for band in range(array.shape[0]):
        r = ndimage.convolve(array[band].astype(np.float32), _NOISE_KERNEL, mode="reflect")[core]
        if r.size > 400_000:
            r = r[:: r.size // 400_000]
        out[band] = 1.4826 * float(np.median(np.abs(r))) / 6.0 if r.size else 0.0
    return out


@dataclasses.dataclass(frozen=True)
class SceneStats:
    """Scene-wide statistics the metrics scale by: fitted once, so windows of one scene agree.

    Attributes
    ----------
    ranges : numpy.ndarray
        Per-band robust range of the before epoch (:func:`robust_range`).
    luminance_range : float
        Robust range of the before epoch's band mean.
    noise_before, noise_after : numpy.ndarray
        Per-band pixel noise (:func:`noise_sigma`) of each epoch.
    lows : numpy.ndarray
        Per-band 0.5th percentile of the before epoch (where :func:`robust_range` starts).
    """

    ranges: np.ndarray
    luminance_range: float
    noise_before: np.ndarray
    noise_after: np.ndarray
    lows: np.ndarray | None = None

    def to_dict(self) -> dict[str, list[float] | float | None]:
        return {
            "ranges": [round(float(v), 4) for v in self.ranges],
            "noise_before": [round(float(v), 4) for v in self.noise_before],
            "noise_after": [round(float(v), 4) for v in self.noise_after],
            "lows": [round(float(v), 4) for v in self.lows] if self.lows is not None else None,
        }


def scene_stats(before: np.ndarray, after: np.ndarray, valid: np.ndarray) -> SceneStats:
    """The :class:`SceneStats` of a pair on one grid."""
    return SceneStats(
        robust_range(before, valid),
        float(robust_range(before.mean(axis=0)[None], valid)[0]),
        noise_sigma(before, valid),
        noise_sigma(after, valid),
        robust_low(before, valid),
    )


#: Gaussian windows are cut at this many standard deviations (as scipy.ndimage's ``truncate``).
TRUNCATE = 3.5


def gaussian_weights(sigma: float, truncate: float = TRUNCATE) -> np.ndarray:
    """The normalised 1-d kernel of :func:`scipy.ndimage.gaussian_filter1d` (same radius and weights)."""
    radius = int(truncate * float(sigma) + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / float(sigma)) ** 2)
    return w / w.sum()


def _gauss(x: np.ndarray, sigma: float) -> np.ndarray:
    """:func:`scipy.ndimage.gaussian_filter` (``reflect`` edges); a 2-d float32 image through the
    compiled :func:`damage.optical._compiled.gauss2d`, which gives the same values 1.5x faster."""
    if x.ndim == 2 and x.dtype == np.float32 and min(x.shape) > 0:
        from damage.optical._compiled import gauss2d

        out = np.empty_like(x)
        gauss2d(np.ascontiguousarray(x), gaussian_weights(sigma), out)
        return out
    return ndimage.gaussian_filter(x, sigma, mode="reflect", truncate=TRUNCATE)


def displacements(tolerance: int) -> list[tuple[int, int]]:
    """Every integer ``(dy, dx)`` with both components within ``tolerance``, ``(0, 0)`` first."""
    t = range(-tolerance, tolerance + 1)
    return sorted(((dy, dx) for dy in t for dx in t), key=lambda d: (d != (0, 0), abs(d[0]) + abs(d[1]), d))


def shift_edge(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``a`` moved by whole pixels over its last two axes; edges repeat the border pixels."""
    if dy == 0 and dx == 0:
        return a
    t = max(abs(dy), abs(dx))
    pad = [(0, 0)] * (a.ndim - 2) + [(t, t), (t, t)]
    p = np.pad(a, pad, mode="edge")
    h, w = a.shape[-2:]
    return p[..., t - dy : t - dy + h, t - dx : t - dx + w]


def tolerant(metric: Metric) -> Metric:
    """Give a metric a ``tolerance``: the smallest change over displacements of ``after``."""

    @functools.wraps(metric)
    def wrapped(before, after, valid, sigma=1.5, tolerance=0, **kw):
        out = None
        for dy, dx in displacements(tolerance):
            m = metric(before, shift_edge(after, dy, dx), valid, sigma=sigma, **kw)
            out = m if out is None else np.minimum(out, m)
        return out

    return wrapped


@dataclasses.dataclass(frozen=True)
class Moments:
    """What SSIM needs of one band of each epoch, computed once for every displacement.

    ``y``, ``my`` and ``vy`` are the after band and its local mean and variance, padded by
    ``t`` pixels (edges repeated), so a displacement is a view; ``lumx`` is ``mx**2 + c1``
    and ``conx`` the before band's variance ``+ c2``. Variances are without each epoch's
    sensor noise: an intact roof seen through noise is as similar as one seen without.
    """

    x: np.ndarray
    y: np.ndarray
    mx: np.ndarray
    my: np.ndarray
    vy: np.ndarray
    lumx: np.ndarray
    conx: np.ndarray
    c1: np.float32
    c2: np.float32


def moments(before: np.ndarray, after: np.ndarray, sigma: float, t: int, noise_before: float, noise_after: float,
            value_range: float, rows_padded: bool = False) -> Moments:
    """The :class:`Moments` of one band (``(rows, cols)`` each), the after one padded by ``t``
    (``rows_padded``: ``after`` already holds ``t`` more rows above and below; only its columns are padded)."""
    x = np.ascontiguousarray(before, dtype=np.float32)
    y = np.pad(np.asarray(after, dtype=np.float32), ((0, 0) if rows_padded else (t, t), (t, t)), mode="edge")
    mx, my = _gauss(x, sigma), _gauss(y, sigma)
    vx = np.maximum(_gauss(x * x, sigma) - mx * mx - float(noise_before) ** 2, 0.0)
    vy = np.maximum(_gauss(y * y, sigma) - my * my - float(noise_after) ** 2, 0.0)
    c1 = np.float32((0.01 * value_range) ** 2)
    c2 = np.float32((0.03 * value_range) ** 2)
    return Moments(x, y, mx, my, vy, mx * mx + c1, vx + c2, c1, c2)


def ssim_maps(
    before: np.ndarray,
    after: np.ndarray,
    sigma: float,
    moves: list[tuple[int, int]],
    stats: SceneStats,
) -> Iterator[np.ndarray]:
    """One minus SSIM (band mean, clipped to [0, 1]) for each displacement of ``after`` in ``moves``, in order.

    Each band's local means and (noise-free) variances are computed once; a
    displacement only moves the after image's (views into arrays padded once) and
    recomputes the covariance: one Gaussian filter per band and displacement.
    """
    bands, rows, cols = before.shape
    t = max((max(abs(dy), abs(dx)) for dy, dx in moves), default=0)
    prepared = [moments(before[b], after[b], sigma, t, stats.noise_before[b], stats.noise_after[b], stats.ranges[b])
                for b in range(bands)]
    for dy, dx in moves:
        view = (slice(t - dy, t - dy + rows), slice(t - dx, t - dx + cols))
        total = np.zeros((rows, cols), dtype=np.float32)
        for m in prepared:
            ys, mys, vys = m.y[view], m.my[view], m.vy[view]
            cov = _gauss(m.x * ys, sigma) - m.mx * mys
            total += 1.0 - (2.0 * m.mx * mys + m.c1) * (2.0 * cov + m.c2) / ((m.lumx + mys * mys) * (m.conx + vys))
        yield np.clip(total / bands, 0.0, 1.0)


@register("ssim", radius=6)
def ssim(
    before: np.ndarray,
    after: np.ndarray,
    valid: np.ndarray,
    sigma: float = 1.5,
    tolerance: int = 0,
    stats: SceneStats | None = None,
) -> np.ndarray:
    """One minus the structural similarity (SSIM), averaged over bands, clipped to [0, 1].

    SSIM compares local means, contrasts and the correlation of local structure in
    a Gaussian window (Wang et al. 2004). A roof turned to rubble loses its
    structure even when its average colour hardly changes. The constants are
    scaled by each band's robust range, so the metric does not depend on the
    sensor's brightness scale.

    Each epoch's pixel noise (:func:`noise_sigma`) is taken out of its local
    variances, so noise alone does not lower the similarity. With a ``tolerance``,
    each pixel takes the smallest value over displacements (:func:`ssim_maps`).
    """
    stats = stats or scene_stats(before, after, valid)
    return ssim_compiled(before, after, sigma, displacements(tolerance), stats)


#: Rows of a change map computed at a time (with their halo): the memory of :func:`ssim_compiled`
#: is that of a strip, whatever the size of the window or scene.
SSIM_STRIP = 256


def ssim_compiled(before: np.ndarray, after: np.ndarray, sigma: float, moves: list[tuple[int, int]],
                  stats: SceneStats, strip: int | None = None) -> np.ndarray:
    """The per-pixel smallest of :func:`ssim_maps` over ``moves``, in one compiled pass per move (numba).

    The local means and noise-free variances of each epoch are computed here as in
    :func:`ssim_maps`; the covariance of each move, the formula and the smallest over
    moves are fused, without a whole-window map per move. The map is made ``strip`` rows
    at a time (:data:`SSIM_STRIP`), each from its rows and enough rows around them (a
    Gaussian radius, and the moves' rows of the after image) that every value is the one of
    the whole image (tested to the bit).
    """
    bands, rows, cols = before.shape
    t = max((max(abs(dy), abs(dx)) for dy, dx in moves), default=0)
    weights = gaussian_weights(sigma)
    halo = len(weights) // 2  # the covariance's window; the moves' rows come with ``after`` (``around``)
    step = strip or SSIM_STRIP
    out = np.empty((rows, cols), np.float32)
    for r0 in range(0, rows, step):
        r1 = min(r0 + step, rows)
        a0, a1 = max(r0 - halo, 0), min(r1 + halo, rows)
        # the after rows of this strip and t more above and below, as the whole image padded by t has them
        around = np.clip(np.arange(a0 - t, a1 + t), 0, rows - 1)
        part = _ssim_strip(before[:, a0:a1], after[:, around], sigma, weights, t, moves, stats)
        out[r0:r1] = part[r0 - a0 : r1 - a0]
    return out


def _ssim_strip(before: np.ndarray, after: np.ndarray, sigma: float, weights: np.ndarray, t: int,
                moves: list[tuple[int, int]], stats: SceneStats) -> np.ndarray:
    """:func:`ssim_compiled` of a strip (``after`` with ``t`` rows more above and below)."""
    from damage.optical._compiled import ssim_min

    bands, rows, cols = before.shape
    names = ("x", "y", "mx", "my", "vy", "lumx", "conx")
    stacked: dict[str, np.ndarray] = {}
    k1, k2 = np.empty(bands, np.float32), np.empty(bands, np.float32)
    for b in range(bands):  # each band's moments into the stacks as they are made (never two copies of all)
        k = moments(before[b], after[b], sigma, t, stats.noise_before[b], stats.noise_after[b], stats.ranges[b],
                    rows_padded=True)
        for name in names:
            band = getattr(k, name)
            stacked.setdefault(name, np.empty((bands, *band.shape), band.dtype))[b] = band
        k1[b], k2[b] = k.c1, k.c2
        del k
    x, y, mx, my, vy, lumx, conx = (stacked.pop(name) for name in names)
    out = np.empty((rows, cols), np.float32)
    dys = np.array([m[0] for m in moves], np.int64)
    dxs = np.array([m[1] for m in moves], np.int64)
    ssim_min(x, y, mx, my, vy, lumx, conx, k1, k2, t, weights, dys, dxs, out, 32)
    return out


@register("absdiff", radius=0)
def absdiff(before: np.ndarray, after: np.ndarray, valid: np.ndarray, sigma: float = 1.5, stats: SceneStats | None = None) -> np.ndarray:
    """Mean absolute difference over bands, as a share of each band's robust range."""
    ranges = (stats.ranges if stats is not None else robust_range(before, valid))[:, None, None]
    return np.clip((np.abs(after - before) / ranges).mean(axis=0), 0.0, 1.0).astype(np.float32)


@register("gradient", radius=6)
def gradient(before: np.ndarray, after: np.ndarray, valid: np.ndarray, sigma: float = 1.5, stats: SceneStats | None = None) -> np.ndarray:
    """Loss of edge structure: one minus the local correlation of gradient vectors.

    Compares the direction and strength of edges (roof outlines, ridges) in a
    Gaussian window; insensitive to brightness and contrast changes.
    """
    lb = before.mean(axis=0)
    la = after.mean(axis=0)
    bx, by = ndimage.sobel(lb, 1), ndimage.sobel(lb, 0)
    ax, ay = ndimage.sobel(la, 1), ndimage.sobel(la, 0)
    eps = (0.03 * (stats.luminance_range if stats is not None else float(robust_range(lb[None], valid)[0]))) ** 2
    num = _gauss(bx * ax + by * ay, sigma)
    den = np.sqrt(_gauss(bx * bx + by * by, sigma) * _gauss(ax * ax + ay * ay, sigma))
    # eps in both: flat areas with no edges in either epoch show no change.
    return np.clip((1.0 - (num + eps) / (den + eps)) / 2.0, 0.0, 1.0).astype(np.float32)


def combined(
    before: np.ndarray,
    after: np.ndarray,
    valid: np.ndarray,
    weights: tuple[tuple[str, float], ...],
    sigma: float = 1.5,
    tolerance: int = 0,
    stats: SceneStats | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Every weighted metric (each with the same ``tolerance`` and scene ``stats``) and their weighted mean.

    Returns
    -------
    change : numpy.ndarray
        ``(rows, cols)`` weighted mean of the metrics.
    maps : dict
        Each metric's own map, by name.
    """
    stats = stats or scene_stats(before, after, valid)
    maps = {
        name: METRICS[name](before, after, valid, sigma=sigma, tolerance=tolerance, **({"stats": stats} if TAKES_STATS[name] else {}))
        for name, _ in weights
    }
    total = sum(w for _, w in weights)
    change = sum(maps[name] * (w / total) for name, w in weights)
    return np.asarray(change, dtype=np.float32), maps
