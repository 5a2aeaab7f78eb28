"""A learned model's damage map on a window: tiles on the grid's lattice, blended.

Array code: the model comes in as a function (``N x bands x H x W`` before and after ->
``N x H x W`` damage), never as a file. Tiles start at multiples of ``tile - overlap`` grid
pixels from the grid's origin, whatever the window, and each pixel's value is the weighted
mean of the tiles that hold it (weights ramp up over the overlap from each tile's edge). So a
pixel's value depends on the grid alone, never on where a window starts: a window that reads
:func:`tile_extent` around its footprints gives them the values a whole-scene run gives.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from damage.geo.raster import Window

__all__ = ["tile_extent", "damage_map", "to_unit"]


def _starts(lo: int, hi: int, tile: int, step: int, size: int) -> range:
    """Lattice tile starts (multiples of ``step``) whose tile ``[k step, k step + tile)`` meets ``[lo, hi)`` on an axis of ``size``."""
    first = max(0, -(-(lo - tile + 1) // step))
    last = min((hi - 1) // step, (size - 1) // step)
    return range(first * step, last * step + 1, step)


def tile_extent(core: Window, tile: tuple[int, int], overlap: int, shape: tuple[int, int]) -> Window:
    """The window to read so that every lattice tile holding a pixel of ``core`` is whole (clipped to the grid ``shape``)."""
    (th, tw), (rows, cols) = tile, shape
    r = _starts(core.row, core.row + core.height, th, th - overlap, rows)
    c = _starts(core.col, core.col + core.width, tw, tw - overlap, cols)
    r0, c0 = r[0], c[0]
    r1, c1 = min(r[-1] + th, rows), min(c[-1] + tw, cols)
    return Window(r0, c0, r1 - r0, c1 - c0)


def _ramp(n: int, overlap: int) -> np.ndarray:
    """Blending weights along a tile's side: rising over ``overlap`` pixels from each edge, never zero."""
    i = np.arange(n, dtype=np.float64)
    if overlap <= 0:
        return np.ones(n)
    return np.clip(np.minimum(i + 0.5, n - i - 0.5) / overlap, 1e-3, 1.0)


def to_unit(array: np.ndarray, lows: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """Each band mapped to [0, 1] by the scene's robust range (``lows`` to ``lows + ranges``), as float32."""
    lo = np.asarray(lows, np.float64).reshape(-1, 1, 1)
    span = np.maximum(np.asarray(ranges, np.float64).reshape(-1, 1, 1), 1e-9)
    return np.clip((array - lo) / span, 0.0, 1.0).astype(np.float32)


def damage_map(run: Callable[[np.ndarray, np.ndarray], np.ndarray], before: np.ndarray, after: np.ndarray,
               valid: np.ndarray, window: Window, core: Window, shape: tuple[int, int], tile: tuple[int, int],
               overlap: int, batch: int | None = None) -> np.ndarray:
    """The model's damage probability on ``window`` of the grid (NaN outside ``core``).

    Parameters
    ----------
    run : callable
        ``(before, after) -> damage``: ``N x bands x H x W`` float32 in [0, 1] -> ``N x H x W``.
    before, after : numpy.ndarray
        ``bands x h x w`` in [0, 1] (:func:`to_unit`), the pixels of ``window`` (read with
        :func:`tile_extent` of ``core``); invalid pixels are given to the model as 0.
    valid : numpy.ndarray
        ``h x w`` bool.
    window, core : Window
        Where the arrays lie on the grid, and the part whose values are wanted.
    shape : tuple of int
        The grid's shape (tiles past its edge are padded with 0).
    tile : tuple of int
        ``(H, W)`` of a tile; ``overlap`` pixels are shared by neighbouring tiles.
    batch : int, optional
        Tiles per call (the model's static N; default 4).
    """
    th, tw = tile
    if not (0 <= overlap < min(th, tw)):
        raise ValueError(f"overlap must be >= 0 and smaller than the tile {tile}, got {overlap}")
    b = np.where(valid[None], before, 0.0).astype(np.float32)
    a = np.where(valid[None], after, 0.0).astype(np.float32)
    weights = np.outer(_ramp(th, overlap), _ramp(tw, overlap))
    total = np.zeros(valid.shape, np.float64)
    norm = np.zeros(valid.shape, np.float64)
    starts = [(r, c) for r in _starts(core.row, core.row + core.height, th, th - overlap, shape[0])
              for c in _starts(core.col, core.col + core.width, tw, tw - overlap, shape[1])]
    per_call = batch or 4
    for k in range(0, len(starts), per_call):
        group = starts[k:k + per_call]
        tb = np.zeros((len(group), b.shape[0], th, tw), np.float32)
        ta = np.zeros_like(tb)
        for j, (r, c) in enumerate(group):  # the tile's pixels inside the grid, from the window read around it
            r0, c0 = r - window.row, c - window.col
            h, w = min(th, shape[0] - r), min(tw, shape[1] - c)
            tb[j, :, :h, :w] = b[:, r0:r0 + h, c0:c0 + w]
            ta[j, :, :h, :w] = a[:, r0:r0 + h, c0:c0 + w]
        out = run(tb, ta)
        for j, (r, c) in enumerate(group):
            r0, c0 = r - window.row, c - window.col
            h, w = min(th, shape[0] - r), min(tw, shape[1] - c)
            total[r0:r0 + h, c0:c0 + w] += weights[:h, :w] * out[j, :h, :w]
            norm[r0:r0 + h, c0:c0 + w] += weights[:h, :w]
    result = np.full(valid.shape, np.nan)
    cr, cc = core.row - window.row, core.col - window.col
    inner = (slice(cr, cr + core.height), slice(cc, cc + core.width))
    result[inner] = total[inner] / np.maximum(norm[inner], 1e-12)
    return result
