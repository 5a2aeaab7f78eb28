"""Per-footprint statistics for all footprints at once.

Footprints are burned into label images (one rasterisation per layer of
non-overlapping footprints, so overlapping footprints each get all their pixels),
then every statistic is a grouped reduction over the labels (``numpy.bincount`` and
one sort for quantiles): no Python loop over buildings.

A pixel belongs to a footprint when its centre lies inside it; footprints that
cover fewer than ``min_pixels`` pixel centres (a shed on a coarse grid) take every
pixel they touch instead, so no footprint is left without pixels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import shapely
from rasterio.features import rasterize

from .raster import Grid

__all__ = ["STATS", "Zones", "zones", "zonal_stats", "grouped_quantile", "overlap_layers"]


def overlap_layers(geoms: np.ndarray) -> np.ndarray:
    """Assign each geometry a layer so that no two geometries of a layer overlap.

    Footprints that overlap nothing (nearly all) are layer 0; the rest are coloured
    greedily. Touching without overlapping is not overlap.
    """
    layer = np.zeros(len(geoms), dtype=np.int32)
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="overlaps")
    left2, right2 = tree.query(geoms, predicate="contains")
    left = np.concatenate([left, left2, right2])
    right = np.concatenate([right, right2, left2])
    keep = left != right
    left, right = left[keep], right[keep]
    if left.size == 0:
        return layer
    neighbours: dict[int, set[int]] = {}
    for a, b in zip(left.tolist(), right.tolist()):  # only overlapping pairs
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    for node in sorted(neighbours):
        used = {int(layer[n]) for n in neighbours[node] if n < node}
        colour = 0
        while colour in used:
            colour += 1
        layer[node] = colour
    return layer


class Zones:
    """Label images of footprints on a grid.

    Attributes
    ----------
    n : int
        Number of footprints.
    layers : list of numpy.ndarray
        ``(rows, cols)`` int32 label images; label ``i + 1`` is footprint ``i``, 0 is
        background.
    area_pixels : numpy.ndarray
        Each footprint's area in pixels (its true area, also the part off the grid);
        at least the number of pixels burned for it.
    """

    def __init__(self, n: int, layers: list[np.ndarray], area_pixels: np.ndarray) -> None:
        self.n = n
        self.layers = layers
        self.area_pixels = area_pixels

    def labelled(self, mask: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """For each layer: (labels, flat indices) of labelled pixels where ``mask`` is True."""
        for labels in self.layers:
            flat = labels.ravel()
            idx = np.flatnonzero((flat > 0) & mask.ravel())
            yield flat[idx] - 1, idx

    def count(self, mask: np.ndarray) -> np.ndarray:
        """Pixels of each footprint where ``mask`` is True."""
        out = np.zeros(self.n, dtype=np.int64)
        for lab, _ in self.labelled(mask):
            out += np.bincount(lab, minlength=self.n)
        return out


def zones(geoms: np.ndarray, grid: Grid, min_pixels: int = 4, small: np.ndarray | None = None) -> Zones:
    """Burn footprints (already in the grid CRS) into label images.

    Parameters
    ----------
    geoms : numpy.ndarray of shapely geometries
        Footprints in the grid CRS; empty or missing ones get no pixels.
    grid : Grid
    min_pixels : int
        Footprints with fewer pixel centres inside take all pixels they touch.
    small : numpy.ndarray of bool, optional
        Which footprints take all pixels they touch, decided by the caller (a
        windowed run decides once for the whole grid, so that every window agrees).
    """
    geoms = np.asarray(geoms, dtype=object)
    n = len(geoms)
    usable = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    idx = np.flatnonzero(usable)
    layer = np.full(n, -1, dtype=np.int32)
    layer[idx] = overlap_layers(geoms[idx])
    layers = _burn(geoms, layer, grid, all_touched=False)
    counts = np.zeros(n, dtype=np.int64)
    for labels in layers:
        counts += np.bincount(labels.ravel(), minlength=n + 1)[1:]
    # Small footprints: every touched pixel, in layers of their own.
    bbox = grid.bounds
    inside = shapely.intersects(geoms, shapely.box(*bbox))
    small = usable & inside & (counts < min_pixels) if small is None else usable & inside & np.asarray(small, bool)
    if small.any():
        small_layer = np.full(n, -1, dtype=np.int32)
        sidx = np.flatnonzero(small)
        grown = shapely.buffer(geoms[sidx], grid.res, join_style="mitre")
        small_layer[sidx] = overlap_layers(grown)
        for labels in layers:  # remove their centre pixels; they come back all-touched
            labels[np.isin(labels, sidx + 1)] = 0
        layers += _burn(geoms, small_layer, grid, all_touched=True)
        counts = np.zeros(n, dtype=np.int64)
        for labels in layers:
            counts += np.bincount(labels.ravel(), minlength=n + 1)[1:]
    area = np.where(usable, shapely.area(np.where(usable, geoms, None)) / (grid.res**2), 0.0)
    area = np.nan_to_num(area)
    area_pixels = np.maximum(area, counts)
    return Zones(n, layers, area_pixels)


def _burn(geoms: np.ndarray, layer: np.ndarray, grid: Grid, all_touched: bool) -> list[np.ndarray]:
    out = []
    for k in range(int(layer.max()) + 1 if (layer >= 0).any() else 0):
        members = np.flatnonzero(layer == k)
        if members.size == 0:
            continue
        shapes = zip(geoms[members], (members + 1).tolist())
        out.append(
            rasterize(shapes, out_shape=grid.shape, transform=grid.transform, fill=0, all_touched=all_touched, dtype="int32")
        )
    return out


# -- grouped reductions --------------------------------------------------------------
Stat = Callable[[np.ndarray, np.ndarray, int], np.ndarray]


def _mean(labels: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    count = np.bincount(labels, minlength=n)
    total = np.bincount(labels, weights=values, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _std(labels: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    mean = _mean(labels, values, n)
    dev = values - np.nan_to_num(mean)[labels]
    return np.sqrt(_mean(labels, dev * dev, n))


def grouped_quantile(labels: np.ndarray, values: np.ndarray, n: int, q: float) -> np.ndarray:
    """The ``q`` quantile (linear interpolation) of ``values`` per label ``0..n-1``."""
    order = np.lexsort((values, labels))
    lab, val = labels[order], values[order]
    count = np.bincount(lab, minlength=n)
    start = np.concatenate([[0], np.cumsum(count)[:-1]])
    pos = start + q * np.maximum(count - 1, 0)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, start + np.maximum(count - 1, 0))
    frac = pos - lo
    out = np.full(n, np.nan)
    has = count > 0
    out[has] = val[lo[has]] * (1 - frac[has]) + val[hi[has]] * frac[has]
    return out


def _max(labels: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, -np.inf)
    np.maximum.at(out, labels, values)
    return np.where(np.isfinite(out), out, np.nan)


STATS: dict[str, Stat] = {
    "sum": lambda labels, values, n: np.bincount(labels, weights=values, minlength=n),
    "count": lambda labels, values, n: np.bincount(labels, minlength=n).astype(np.float64),
    "max": _max,
    "mean": _mean,
    "std": _std,
    "median": lambda labels, values, n: grouped_quantile(labels, values, n, 0.5),
    "p90": lambda labels, values, n: grouped_quantile(labels, values, n, 0.9),
}


def zonal_stats(zs: Zones, values: np.ndarray, valid: np.ndarray, stats: tuple[str, ...] = ("mean",)) -> dict[str, np.ndarray]:
    """Statistics of ``values`` over the valid pixels of every footprint.

    Parameters
    ----------
    zs : Zones
    values : numpy.ndarray
        ``(rows, cols)`` per-pixel values.
    valid : numpy.ndarray
        ``(rows, cols)`` bool; only these pixels count.
    stats : tuple of str
        Names from :data:`STATS`.

    Returns
    -------
    dict
        ``name -> (n,)`` float64 array, NaN for footprints without valid pixels.
    """
    labels_parts, value_parts = [], []
    flat_values = values.ravel()
    for lab, idx in zs.labelled(valid):
        labels_parts.append(lab)
        value_parts.append(flat_values[idx].astype(np.float64))
    labels = np.concatenate(labels_parts) if labels_parts else np.zeros(0, np.int64)
    vals = np.concatenate(value_parts) if value_parts else np.zeros(0)
    return {name: STATS[name](labels, vals, zs.n) for name in stats}
