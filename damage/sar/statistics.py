"""Radar (and optical) stacks: speckle filtering and the pixel-wise t-test (PWTT).

Array code only. The statistic follows Ballinger (2024), *Open access battle damage
detection via pixel-wise t-test on Sentinel-1 imagery*: backscatter is Lee-filtered,
taken to a log scale, and for every pixel, band and orbit group the mean of the
images after the event is compared with the mean of the images before by a
two-sample t statistic with the pooled standard deviation; the damage map is the
largest absolute t over bands and orbits, optionally averaged with its focal means
over discs of 50, 100 and 150 m.

Stacks are streamed: :class:`Moments` keeps, per pixel and band, the count, sum and
sum of squares of the log values, one image at a time, so memory does not grow with
the number of images.

Fallbacks where a side has a single image (the t statistic needs a variance):

- one after image, several before: the z-score of the after value against the
  before stack's mean and standard deviation;
- one before image, several after: the same, the other way round;
- one image on each side: the log-ratio, divided by the standard deviation that
  speckle of the given number of looks gives a log-ratio (after Lee filtering, the
  looks are multiplied by the filter's window size: an upper bound of its smoothing).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage
from scipy.special import polygamma

__all__ = ["UNITS", "to_log", "lee_filter", "Moments", "t_statistic", "focal_mean", "pwtt"]

#: How the pixels of an image are expressed: ``power`` (sigma0 / gamma0, linear),
#: ``amplitude`` (its square root), ``db`` (10 log10 of power), or ``optical``
#: (reflectance or digital numbers: no speckle filter, log of the value).
UNITS = ("power", "amplitude", "db", "optical")
_TINY = 1e-6


def to_power(array: np.ndarray, units: str) -> np.ndarray:
    """Linear power from ``units`` (``optical`` values are kept as they are)."""
    a = np.asarray(array, dtype=np.float32)
    if units == "power" or units == "optical":
        return a
    if units == "amplitude":
        return a * a
    if units == "db":
        return (10.0 ** (a / 10.0)).astype(np.float32)
    raise ValueError(f"units {units!r} unknown; choose one of {UNITS}")


def to_log(power: np.ndarray) -> np.ndarray:
    """Natural log of power (of the value, for optical), floored at 1e-6."""
    return np.log(np.maximum(power, _TINY)).astype(np.float32)


def lee_filter(power: np.ndarray, valid: np.ndarray, size: int = 3, looks: float = 5.0) -> np.ndarray:
    """Lee's minimum-mean-square-error speckle filter, band by band, on linear power.

    ``out = mean + b (x - mean)`` with ``b = var_x / var_z`` (clipped to >= 0), where
    the local variance of the scene ``var_x = (var_z - mean^2 / looks) / (1 + 1 / looks)``
    (Lee 1980), as in the published PWTT code. Invalid pixels do not enter the local
    statistics (normalised convolution).

    Parameters
    ----------
    power : numpy.ndarray
        ``(bands, rows, cols)`` linear power.
    valid : numpy.ndarray
        ``(rows, cols)`` bool.
    size : int
        Side of the square window, in pixels (odd); 1 or less leaves the image as it is.
    looks : float
        Equivalent number of looks of the input (Sentinel-1 GRD IW: about 5).
    """
    if size <= 1:
        return power
    w = valid.astype(np.float32)
    n = np.maximum(ndimage.uniform_filter(w, size, mode="nearest"), _TINY)
    eta2 = 1.0 / looks
    out = np.empty_like(power, dtype=np.float32)
    for b in range(power.shape[0]):
        z = np.where(valid, power[b], 0.0).astype(np.float32)
        mean = ndimage.uniform_filter(z, size, mode="nearest") / n
        var = np.maximum(ndimage.uniform_filter(z * z, size, mode="nearest") / n - mean * mean, 0.0)
        var_x = (var - mean * mean * eta2) / (1.0 + eta2)
        weight = np.clip(var_x / np.maximum(var, _TINY), 0.0, 1.0)
        out[b] = mean + weight * (z - mean)
    return np.where(valid[None], out, power)


@dataclasses.dataclass
class Moments:
    """Running per-pixel count, sum and sum of squares of a stack, band by band."""

    n: np.ndarray  # (rows, cols) int32: images valid at the pixel
    s: np.ndarray  # (bands, rows, cols) float64
    q: np.ndarray  # (bands, rows, cols) float64

    @classmethod
    def empty(cls, bands: int, shape: tuple[int, int]) -> Moments:
        return cls(np.zeros(shape, np.int32), np.zeros((bands, *shape)), np.zeros((bands, *shape)))

    def add(self, values: np.ndarray, valid: np.ndarray) -> None:
        """Add one image: ``(bands, rows, cols)`` log values and its ``(rows, cols)`` validity."""
        v = np.where(valid[None], values, 0.0).astype(np.float64)
        self.n += valid
        self.s += v
        self.q += v * v

    @property
    def mean(self) -> np.ndarray:
        return self.s / np.maximum(self.n, 1)

    @property
    def var(self) -> np.ndarray:
        """Sample variance (``n - 1`` in the denominator); 0 where ``n < 2``."""
        n = self.n.astype(np.float64)
        dev = self.q - self.s * self.s / np.maximum(n, 1)
        return np.where(n >= 2, np.maximum(dev, 0.0) / np.maximum(n - 1, 1), 0.0)


def log_ratio_sigma(looks: float) -> float:
    """Standard deviation of the natural-log ratio of two independent images of ``looks`` looks."""
    return float(np.sqrt(2.0 * polygamma(1, looks)))


def t_statistic(pre: Moments, post: Moments, pair_sigma: float = 1.0, min_std: float = 1e-3) -> np.ndarray:
    """Absolute two-sample t per band and pixel, with the single-image fallbacks.

    Parameters
    ----------
    pre, post : Moments
        The before and after stacks (log values).
    pair_sigma : float
        Standard deviation of a log-ratio of one before and one after image (see
        :func:`log_ratio_sigma`), for pixels with a single image on each side.
    min_std : float
        Floor of the standard deviation (a constant stack has none).

    Returns
    -------
    numpy.ndarray
        ``(bands, rows, cols)`` float32; NaN where either side has no valid image.
    """
    n1 = pre.n.astype(np.float64)[None]
    n2 = post.n.astype(np.float64)[None]
    m1, m2 = pre.mean, post.mean
    v1, v2 = pre.var, post.var
    diff = np.abs(m2 - m1)
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = np.sqrt(((n1 - 1) * v1 + (n2 - 1) * v2) / np.maximum(n1 + n2 - 2, 1))
        t = diff / (np.maximum(pooled, min_std) * np.sqrt(1 / np.maximum(n1, 1) + 1 / np.maximum(n2, 1)))
        z_post = diff / np.maximum(np.sqrt(v1), min_std)  # one after image: z against before
        z_pre = diff / np.maximum(np.sqrt(v2), min_std)  # one before image: z against after
        pair = diff / max(pair_sigma, min_std)
    out = np.where((n1 >= 2) & (n2 >= 2), t, np.nan)
    out = np.where((n1 >= 2) & (n2 == 1), z_post, out)
    out = np.where((n1 == 1) & (n2 >= 2), z_pre, out)
    out = np.where((n1 == 1) & (n2 == 1), pair, out)
    return out.astype(np.float32)


def _disc(radius: float) -> np.ndarray:
    r = int(np.ceil(radius))
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    return (yy * yy + xx * xx <= radius * radius + 1e-9).astype(np.float32)


def focal_mean(values: np.ndarray, valid: np.ndarray, radius: float) -> np.ndarray:
    """Mean of the valid ``values`` in a disc of ``radius`` pixels around each pixel."""
    from scipy.signal import fftconvolve

    k = _disc(radius)
    v = np.where(valid, values, 0.0).astype(np.float64)
    num = fftconvolve(v, k, mode="same")
    den = fftconvolve(valid.astype(np.float64), k, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0.5, num / np.maximum(den, 1e-9), np.nan).astype(np.float32)


def pwtt(t_bands: list[np.ndarray], radii_px: tuple[float, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
    """The damage map: the largest |t| over bands and orbit groups, then the spatial average.

    Parameters
    ----------
    t_bands : list of numpy.ndarray
        One ``(bands, rows, cols)`` array of |t| per orbit group.
    radii_px : tuple of float
        Radii of the focal means averaged with the raw map (the published method uses
        50, 100 and 150 m); empty for none.

    Returns
    -------
    damage : numpy.ndarray
        ``(rows, cols)`` float32, NaN where no group has a value.
    valid : numpy.ndarray
        ``(rows, cols)`` bool.
    """
    stack = np.stack([t for group in t_bands for t in group])
    valid = np.isfinite(stack).any(axis=0)
    raw = np.where(valid, np.nanmax(np.where(np.isfinite(stack), stack, -np.inf), axis=0), np.nan).astype(np.float32)
    if not radii_px:
        return raw, valid
    layers = [raw] + [focal_mean(raw, valid, r) for r in radii_px]
    return np.where(valid, np.mean(layers, axis=0), np.nan).astype(np.float32), valid
