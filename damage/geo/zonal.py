"""Per-footprint statistics for all footprints at once.

Footprints are turned into pixel *spans* (row, first column, end column) by a
vectorised scanline over all polygon edges at once: a pixel belongs to a footprint
when its centre lies inside it (even-odd rule, so holes are honoured). Every
statistic is then a grouped reduction over the spans' pixels (``numpy.bincount`` and
one sort for quantiles): no Python loop over buildings, no label raster of the whole
grid, and overlapping footprints each get all their pixels.

Footprints that cover fewer than ``min_pixels`` pixel centres (a shed on a coarse
grid) take every pixel they touch instead: their outline is grown by half a pixel
(a square, mitred) before the scanline, which is exact for axis-aligned outlines.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import shapely

from damage.geo.raster import Grid, present

__all__ = ["STATS", "Zones", "zones", "spans", "span_sums", "zonal_stats", "grouped_quantiles", "overlap_layers"]


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


def spans(geoms: np.ndarray, grid: Grid) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pixel spans of polygons on a north-up grid: pixels whose centres are inside.

    Parameters
    ----------
    geoms : numpy.ndarray of shapely geometries
        Polygons or multipolygons in the grid CRS; missing or empty ones get none.
    grid : Grid

    Returns
    -------
    owner, row, start, end : numpy.ndarray
        One entry per span: the index of its geometry, its row, and its columns
        ``start`` (inclusive) to ``end`` (exclusive), clipped to the grid.
    """
    t = grid.transform
    height, width = grid.shape
    geoms = np.asarray(geoms, dtype=object)
    ok = present(geoms)
    empty = np.empty(0, np.int64)
    if not ok.any():
        return empty, empty, empty, empty
    parts, part_owner = shapely.get_parts(geoms[ok], return_index=True)
    part_owner = np.flatnonzero(ok)[part_owner]
    rings, ring_part = shapely.get_rings(parts, return_index=True)
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    # to pixel coordinates: x = column, y = row (both continuous, 0 at the grid's corner)
    px = (coords[:, 0] - t.c) / t.a
    py = (coords[:, 1] - t.f) / t.e
    same = ring_of[:-1] == ring_of[1:]
    x0, y0, x1, y1 = px[:-1][same], py[:-1][same], px[1:][same], py[1:][same]
    owner = part_owner[ring_part[ring_of[:-1][same]]]
    # rows whose centre (r + 0.5) lies in [min y, max y) of each non-horizontal edge
    lo_y, hi_y = np.minimum(y0, y1), np.maximum(y0, y1)
    r_lo = np.maximum(np.ceil(lo_y - 0.5), 0).astype(np.int64)
    r_hi = np.minimum(np.ceil(hi_y - 0.5), height).astype(np.int64)  # exclusive
    n = np.where(y0 != y1, np.maximum(r_hi - r_lo, 0), 0)
    edge = np.repeat(np.arange(n.size), n)
    if edge.size == 0:
        return empty, empty, empty, empty
    row = r_lo[edge] + (np.arange(edge.size) - np.repeat(np.cumsum(n) - n, n))
    yc = row + 0.5
    x = x0[edge] + (yc - y0[edge]) * (x1[edge] - x0[edge]) / (y1[edge] - y0[edge])
    who = owner[edge]
    order = np.lexsort((x, row, who))
    who, row, x = who[order], row[order], x[order]
    # crossings pair up along each (geometry, row): inside between the 1st and 2nd, ...
    start = np.clip(np.ceil(x[0::2] - 0.5), 0, width).astype(np.int64)
    end = np.clip(np.ceil(x[1::2] - 0.5), 0, width).astype(np.int64)
    who, row = who[0::2], row[0::2]
    keep = end > start
    return who[keep], row[keep], start[keep], end[keep]


class Zones:
    """The pixels of every footprint on a grid, as spans.

    Attributes
    ----------
    n : int
        Number of footprints.
    grid : Grid
    owner, row, start, end : numpy.ndarray
        The spans (see :func:`spans`).
    area_pixels : numpy.ndarray
        Each footprint's area in pixels (its true area, also the part off the grid);
        at least the number of pixels it was given.
    """

    def __init__(self, n: int, grid: Grid, owner: np.ndarray, row: np.ndarray, start: np.ndarray, end: np.ndarray,
                 area_pixels: np.ndarray) -> None:
        self.n, self.grid = n, grid
        self.owner, self.row, self.start, self.end = owner, row, start, end
        self.area_pixels = area_pixels
        self._pixels: tuple[np.ndarray, np.ndarray] | None = None

    def pixels(self) -> tuple[np.ndarray, np.ndarray]:
        """``(labels, flat indices)`` of every footprint pixel (computed once)."""
        if self._pixels is None:
            length = self.end - self.start
            total = int(length.sum())
            first = np.repeat(self.row * self.grid.shape[1] + self.start - (np.cumsum(length) - length), length)
            self._pixels = (np.repeat(self.owner, length), first + np.arange(total, dtype=np.int64))
        return self._pixels

    def labelled(self, mask: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(labels, flat indices) of footprint pixels where ``mask`` is True."""
        labels, idx = self.pixels()
        keep = mask.ravel()[idx]
        yield labels[keep], idx[keep]

    def count(self, mask: np.ndarray) -> np.ndarray:
        """Pixels of each footprint where ``mask`` is True."""
        return span_sums(self, None, mask)[1]

    @property
    def layers(self) -> list[np.ndarray]:
        """Label images (label ``i + 1`` is footprint ``i``), one per layer of non-overlapping footprints."""
        labels, idx = self.pixels()
        present = np.unique(labels)
        layer = np.zeros(self.n, dtype=np.int32)
        if present.size > 1:
            boxes = shapely.box(*_bounds(self, present).T)
            layer[present] = overlap_layers(np.asarray(boxes, dtype=object))  # boxes of pixels: a safe over-estimate
        out = []
        for k in range(int(layer[present].max()) + 1 if present.size else 0):
            image = np.zeros(self.grid.shape, dtype=np.int32)
            sel = layer[labels] == k
            image.ravel()[idx[sel]] = labels[sel] + 1
            out.append(image)
        return out


def _bounds(zs: Zones, which: np.ndarray) -> np.ndarray:
    """Pixel bounding boxes (shrunk by a hair so touching boxes do not overlap) of footprints."""
    lo_r = np.full(zs.n, np.inf)
    hi_r = np.full(zs.n, -np.inf)
    lo_c = np.full(zs.n, np.inf)
    hi_c = np.full(zs.n, -np.inf)
    np.minimum.at(lo_r, zs.owner, zs.row)
    np.maximum.at(hi_r, zs.owner, zs.row + 1)
    np.minimum.at(lo_c, zs.owner, zs.start)
    np.maximum.at(hi_c, zs.owner, zs.end)
    eps = 1e-6
    return np.column_stack([lo_c[which] + eps, lo_r[which] + eps, hi_c[which] - eps, hi_r[which] - eps])


def zones(geoms: np.ndarray, grid: Grid, min_pixels: int = 4, small: np.ndarray | None = None) -> Zones:
    """The pixels of footprints (already in the grid CRS) on a grid.

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
    usable = present(geoms)
    owner, row, start, end = spans(geoms, grid)
    counts = np.bincount(owner, weights=end - start, minlength=n)
    inside = np.zeros(n, bool)
    inside[usable] = shapely.intersects(geoms[usable], shapely.box(*grid.bounds))
    small = usable & inside & ((counts < min_pixels) if small is None else np.asarray(small, bool))
    if small.any():
        # every touched pixel: the outline grown by half a pixel, then pixel centres
        sidx = np.flatnonzero(small)
        grown = np.full(n, None, dtype=object)
        grown[sidx] = shapely.buffer(geoms[sidx], grid.res / 2, cap_style="square", join_style="mitre")
        keep = ~small[owner]
        so, sr, ss, se = spans(grown, grid)
        owner, row, start, end = (np.concatenate([a[keep], b]) for a, b in ((owner, so), (row, sr), (start, ss), (end, se)))
        counts = np.bincount(owner, weights=end - start, minlength=n)
    area = np.zeros(n)
    area[usable] = shapely.area(geoms[usable]) / grid.res**2
    return Zones(n, grid, owner, row, start, end, np.maximum(np.nan_to_num(area), counts))


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


def grouped_quantiles(labels: np.ndarray, values: np.ndarray, n: int, qs: tuple[float, ...]) -> list[np.ndarray]:
    """The ``qs`` quantiles (linear interpolation) of ``values`` per label ``0..n-1``, NaN for an empty label.

    The values are grouped by label (a stable sort, skipped when the labels already come in
    order, as a footprint's pixels do) and each group is sorted on its own, in one compiled
    loop (:func:`damage.geo._compiled.group_quantiles`), for every quantile at once.
    """
    from damage.geo._compiled import group_quantiles

    labels = np.asarray(labels, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    if labels.size and (labels[1:] < labels[:-1]).any():
        order = np.argsort(labels, kind="stable")
        labels, values = labels[order], values[order]
    count = np.bincount(labels, minlength=n)
    start = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
    out = np.full((len(qs), n), np.nan)
    group_quantiles(values, start, count.astype(np.int64), np.asarray(qs, dtype=np.float64), out)
    return list(out)


def _max(labels: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    out = np.full(n, -np.inf)
    np.maximum.at(out, labels, values)
    return np.where(np.isfinite(out), out, np.nan)


#: The quantile statistics, computed together from one grouping of the pixels (:func:`zonal_stats`).
_QUANTILES = {"median": 0.5, "p90": 0.9}


def _quantile(q: float) -> Stat:
    return lambda labels, values, n: grouped_quantiles(labels, values, n, (q,))[0]


STATS: dict[str, Stat] = {
    "sum": lambda labels, values, n: np.bincount(labels, weights=values, minlength=n),
    "count": lambda labels, values, n: np.bincount(labels, minlength=n).astype(np.float64),
    "max": _max,
    "mean": _mean,
    "std": _std,
    **{name: _quantile(q) for name, q in _QUANTILES.items()},
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
    if set(stats) <= _SPAN_STATS:  # sums over spans: no per-pixel arrays at all
        total, count = span_sums(zs, values, valid)
        with np.errstate(invalid="ignore", divide="ignore"):
            found = {"sum": total, "count": count.astype(np.float64), "mean": np.where(count > 0, total / np.maximum(count, 1), np.nan)}
        return {name: found[name] for name in stats}
    labels_parts, value_parts = [], []
    flat_values = values.ravel()
    for lab, idx in zs.labelled(valid):
        labels_parts.append(lab)
        value_parts.append(flat_values[idx].astype(np.float64))
    labels = np.concatenate(labels_parts) if labels_parts else np.zeros(0, np.int64)
    vals = np.concatenate(value_parts) if value_parts else np.zeros(0)
    quantiles = {name: q for name, q in _QUANTILES.items() if name in stats}
    found = dict(zip(quantiles, grouped_quantiles(labels, vals, zs.n, tuple(quantiles.values())))) if quantiles else {}
    return {name: found[name] if name in found else STATS[name](labels, vals, zs.n) for name in stats}


_SPAN_STATS = {"mean", "sum", "count"}
#: Rows of the grid whose running sums are held at once.
_BAND = 512


def span_sums(zs: Zones, values: np.ndarray | None, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per footprint, the sum of ``values`` and the count of pixels over its valid pixels.

    Running sums along each row, a band of rows at a time, turn every span into two
    look-ups: the work is one pass over the grid plus one step per span, and memory a
    band of rows.
    """
    total = np.zeros(zs.n)
    count = np.zeros(zs.n, dtype=np.int64)
    if zs.row.size == 0:
        return total, count
    order = np.argsort(zs.row, kind="stable")
    rows = zs.row[order]
    height, width = valid.shape
    for b0 in range(int(rows[0]) // _BAND * _BAND, int(rows[-1]) + 1, _BAND):
        lo, hi = np.searchsorted(rows, [b0, b0 + _BAND])
        if lo == hi:
            continue
        sel = order[lo:hi]
        r = zs.row[sel] - b0
        band_valid = valid[b0 : b0 + _BAND]
        cv = np.zeros((band_valid.shape[0], width + 1), dtype=np.int64)
        np.cumsum(band_valid, axis=1, out=cv[:, 1:])
        count += np.bincount(zs.owner[sel], weights=cv[r, zs.end[sel]] - cv[r, zs.start[sel]], minlength=zs.n).astype(np.int64)
        if values is not None:
            cs = np.zeros((band_valid.shape[0], width + 1))
            np.cumsum(np.where(band_valid, values[b0 : b0 + _BAND], 0.0), axis=1, out=cs[:, 1:])
            total += np.bincount(zs.owner[sel], weights=cs[r, zs.end[sel]] - cs[r, zs.start[sel]], minlength=zs.n)
    return total, count
