"""Georeferenced arrays: the value passed between pipeline steps.

Every array step takes and returns these (or plain arrays plus a :class:`Grid`), never
file names, so the steps run unchanged on in-memory data and inside a worker.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np
import shapely
from affine import Affine
from rasterio.crs import CRS

__all__ = ["Grid", "Window", "Raster", "present", "analysable", "cells", "cells_of", "block_counts", "window_cells", "window_names", "part_label",
           "window_ids", "split_crowded", "crowded_parts", "busiest_blocks", "metres_per_unit",
           "METRES_PER_DEGREE"]

#: Metres per degree of latitude (and of longitude at the equator) on the sphere of the same surface as WGS 84's ellipsoid
#: near the equator: the one constant behind every degree <-> metre conversion of the library.
METRES_PER_DEGREE = 111_320.0


def metres_per_unit(crs: Any, latitude: float = 0.0) -> tuple[float, float]:
    """Metres per CRS unit along x and along y.

    For a projected CRS both are the linear unit's size (1 for metres, 0.3048 for feet);
    for a geographic one, a degree of longitude at ``latitude`` and a degree of latitude
    (spherical Earth, :data:`METRES_PER_DEGREE`). This is the only place of the library that
    knows what a CRS unit is on the ground.
    """
    crs = CRS.from_user_input(crs)
    if crs.is_projected:
        unit = float(crs.linear_units_factor[1])
        return unit, unit
    return METRES_PER_DEGREE * max(float(np.cos(np.radians(latitude))), 0.01), METRES_PER_DEGREE


def present(geoms: np.ndarray) -> np.ndarray:
    """True for geometries that are neither missing nor empty."""
    geoms = np.asarray(geoms, dtype=object)
    return ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))


def analysable(geoms: np.ndarray) -> np.ndarray:
    """True for footprints that can be measured: present (multi)polygons whose every coordinate is finite."""
    geoms = np.asarray(geoms, dtype=object)
    ok = present(geoms) & np.isin(shapely.get_type_id(geoms), (3, 6))
    coords, index = shapely.get_coordinates(geoms, return_index=True)
    ok[np.unique(index[~np.isfinite(coords).all(axis=1)])] = False
    return ok


class Window(NamedTuple):
    """A rectangle of a grid's pixels: ``(row, col, height, width)``, in numpy's axis order.

    A frozen value (it unpacks as the tuple it is); rasterio's ``Window`` is the other way
    round, ``(col_off, row_off, width, height)``, and is used only where files are read.
    """

    row: int
    col: int
    height: int
    width: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """``(rows, cols)`` slices of an array on the whole grid."""
        return slice(self.row, self.row + self.height), slice(self.col, self.col + self.width)

    def of(self, grid: Grid) -> Grid:
        """The sub-grid this window covers (same CRS and pixel lattice)."""
        return Grid(grid.crs, grid.transform @ Affine.translation(self.col, self.row), (self.height, self.width))


@dataclasses.dataclass(frozen=True)
class Grid:
    """A north-up pixel grid: CRS, affine transform and shape ``(height, width)``."""

    crs: CRS
    transform: Affine
    shape: tuple[int, int]

    def windows(self, size: int) -> list[Window]:
        """The grid cut into windows of ``size`` pixels a side (smaller at the right and bottom edges), row by row."""
        rows, cols = self.shape
        return [Window(r, c, min(size, rows - r), min(size, cols - c)) for r in range(0, rows, size)
                for c in range(0, cols, size)]

    @property
    def res(self) -> float:
        """Pixel size in CRS units (grids are square-pixelled)."""
        return float(self.transform.a)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` in CRS units (of all four corners, if the grid is rotated)."""
        h, w = self.shape
        xs, ys = zip(*(self.transform * (c, r) for c in (0, w) for r in (0, h)))
        return (min(xs), min(ys), max(xs), max(ys))

    @property
    def metres(self) -> float:
        """Metres per CRS unit along x, at the grid's centre (see :func:`metres_per_unit`).

        Lengths given in metres (ring width, context, smoothing radii) become CRS units by
        dividing by this; on a geographic grid that is a degree of longitude at its centre.
        """
        return metres_per_unit(self.crs, self._centre_latitude())[0]

    @property
    def unit_area(self) -> float:
        """Square metres per square CRS unit at the grid's centre (``metres_x * metres_y``)."""
        mx, my = metres_per_unit(self.crs, self._centre_latitude())
        return mx * my

    @property
    def pixel_area(self) -> float:
        """Square metres of one pixel at the grid's centre."""
        return abs(self.transform.a * self.transform.e - self.transform.b * self.transform.d) * self.unit_area

    def _centre_latitude(self) -> float:
        if self.crs.is_projected:
            return 0.0
        b = self.bounds
        return (b[1] + b[3]) / 2

    def moved(self, pixel_affine: Affine) -> Grid:
        """The grid whose pixel ``(col, row)`` lies at ``pixel_affine * (col, row)`` of this one."""
        return Grid(self.crs, self.transform @ pixel_affine, self.shape)


@dataclasses.dataclass(frozen=True)
class Raster:
    """Pixels on a grid with their validity.

    Attributes
    ----------
    array : numpy.ndarray
        ``(bands, height, width)`` float32 values.
    valid : numpy.ndarray
        ``(height, width)`` bool, True where every band holds real data.
    grid : Grid
        Where the pixels are.
    """

    array: np.ndarray
    valid: np.ndarray
    grid: Grid

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"Raster.array must be (bands, height, width), got shape {self.array.shape}")
        if self.array.shape[1:] != self.valid.shape or self.valid.shape != tuple(self.grid.shape):
            raise ValueError(
                f"Raster shapes disagree: array {self.array.shape}, valid {self.valid.shape}, grid {self.grid.shape}"
            )

    @property
    def count(self) -> int:
        """Number of bands."""
        return int(self.array.shape[0])

    def replace(self, **changes: Any) -> Raster:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


def cells(geoms: np.ndarray, grid: Grid, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(row, col)`` of the cell of ``size`` grid pixels holding each footprint's representative point."""
    return cells_of(shapely.point_on_surface(geoms), grid, size)


def cells_of(points: np.ndarray, grid: Grid, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(row, col)`` of the cell of ``size`` grid pixels holding each point (grid CRS)."""
    cols, rows = ~grid.transform * (shapely.get_x(points), shapely.get_y(points))
    return np.floor(np.asarray(rows) / size).astype(np.int64), np.floor(np.asarray(cols) / size).astype(np.int64)


#: Cell keys of :func:`block_counts`: ``row * BLOCK_KEY + col``.
BLOCK_KEY = 1_000_003


def block_counts(rows: np.ndarray, cols: np.ndarray,
                 more: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Footprints per cell: ``(keys, counts)``, keys sorted, of the cells ``(rows, cols)`` of :func:`cells`, added
    to ``more`` (the counts of footprints read before: a region's are counted a batch at a time)."""
    keys, counts = np.unique(np.asarray(rows, np.int64) * BLOCK_KEY + np.asarray(cols, np.int64), return_counts=True)
    if more is not None and len(more[0]):
        keys, where = np.unique(np.concatenate([more[0], keys]), return_inverse=True)
        counts = np.bincount(where, weights=np.concatenate([more[1], counts]), minlength=len(keys)).astype(np.int64)
    return keys, counts


def busiest_blocks(counted: tuple[np.ndarray, np.ndarray], grid: Grid, size: int, most: int) -> list[Window]:
    """The ``most`` blocks of ``size`` grid pixels (the lattice of :func:`cells`) holding the most footprints,
    most first (ties by position), clipped to the grid; ``counted`` is :func:`block_counts` on that lattice."""
    names, counts = counted
    order = sorted(range(len(names)), key=lambda i: (-counts[i], names[i]))[:most]
    blocks = []
    for i in order:
        r, c = divmod(int(names[i]), BLOCK_KEY)
        r0, c0 = r * size, c * size
        h, w = min(size, grid.shape[0] - r0), min(size, grid.shape[1] - c0)
        if h > 0 and w > 0 and r0 >= 0 and c0 >= 0:
            blocks.append(Window(r0, c0, h, w))
    return blocks


def window_cells(points: np.ndarray, grid: Grid, size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(row, col)`` of the window of ``size`` pixels holding each point (grid CRS), or of the nearest window of
    the grid when the point is off it."""
    r, c = cells_of(points, grid, size)
    rows, cols = -(-grid.shape[0] // size), -(-grid.shape[1] // size)
    return np.clip(r, 0, max(rows - 1, 0)), np.clip(c, 0, max(cols - 1, 0))


def window_names(rows: np.ndarray, cols: np.ndarray, grid: Grid, size: int) -> list[str]:
    """``"row<r>_col<c>"`` of windows of ``size`` pixels, counted from the grid's top left, 0-padded alike."""
    digits = max(2, len(str(max(-(-grid.shape[0] // size), -(-grid.shape[1] // size)) - 1)))
    return [f"row{a:0{digits}d}_col{b:0{digits}d}" for a, b in zip(np.asarray(rows).tolist(), np.asarray(cols).tolist())]


def part_label(window: str, part: int, parts: int) -> str:
    """The name of part ``part`` of ``parts`` of a crowded window (``row03_col07_part1``)."""
    return f"{window}_part{part:0{len(str(parts - 1))}d}"


def window_ids(geoms: np.ndarray, grid: Grid, size: int) -> np.ndarray:
    """Window id (:func:`window_names`) of each footprint: the window holding its representative point
    (:func:`window_cells`)."""
    return np.array(window_names(*window_cells(shapely.point_on_surface(geoms), grid, size), grid, size),
                    dtype=object).astype(str)


def split_crowded(ids: np.ndarray, cap: int) -> np.ndarray:
    """Window ids with a window of more than ``cap`` footprints cut into parts of at most ``cap``, in input order
    (``row03_col07`` -> ``row03_col07_part0``, ``..._part1``, ...): a part reads only its footprints' extent, so its
    memory is bounded, and every building's numbers stay those of the whole window."""
    ids = np.asarray(ids).astype(object)
    part, parts = crowded_parts(ids, cap)
    crowded = part >= 0
    if crowded.any():
        ids[crowded] = [part_label(name, p, parts[name]) for name, p in zip(ids[crowded], part[crowded])]
    return ids.astype(str)


def crowded_parts(ids: np.ndarray, cap: int) -> tuple[np.ndarray, dict[Any, int]]:
    """Each footprint's part of its window (``-1`` where the window holds at most ``cap``), counted in input
    order, and the number of parts of each window cut."""
    names, where, counts = np.unique(ids, return_inverse=True, return_counts=True)
    part = np.full(len(ids), -1, np.int64)
    cut: dict[Any, int] = {}
    for k in np.flatnonzero(counts > cap):
        members = np.flatnonzero(where == k)
        part[members] = np.arange(members.size) // cap
        cut[names[k]] = int(-(-members.size // cap))
    return part, cut
