"""Prepare an assessment: read the footprints and the imagery's headers once, lay the
scene's grid over them and cut it into windows.

A scene is assessed window by window: a window is a square cell of ``window_size``
grid pixels holding the footprints whose representative point falls in it, read with
enough imagery around them for their evidence (their ring, the SSIM window, the
building's own alignment). A small scene is a scene of one window; a region is a scene
of many; either way each building's evidence only depends on the pixels around it.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Iterable
from typing import Any, TypeAlias

import geopandas as gpd
import numpy as np
import shapely

from damage.config import Config
from damage.errors import BandMismatchError, ConfigError, DamageWarning, FootprintsOutsideImageryError
from damage.geo.raster import (
    Grid,
    Window,
    analysable,
    block_counts,
    cells_of,
    crowded_parts,
    part_label,
    window_cells,
    window_names,
)
from damage.io.sources import PathSpec, check_order, open_epoch
from damage.io.warp import footprint_grid, lonlat_extent

__all__ = ["Plan", "Placement", "Placer", "make_plan", "on_grid", "PLACED", "UNUSABLE", "OUTSIDE", "window_extent", "grid_units", "check_memory", "physical_memory",
           "CONTEXT_PIXELS", "WINDOW_BYTES_PER_PIXEL"]

#: Footprints a window (a region's chunk) holds at most: a crowded one is cut into parts of this many
#: (damage.geo.raster.split_crowded), so a worker's memory for a window's footprints (their zones, rings,
#: outlines and evidence) stays bounded whatever the density of the city.
MAX_FOOTPRINTS_PER_WINDOW = 20_000
#: Pixels of imagery a window needs around its footprints' rings (SSIM window, alignment, erosion).
CONTEXT_PIXELS = 24
#: Peak bytes a window pixel of three bands costs while it is measured (both epochs, their
#: derived maps, the SSIM of the building alignment): 154-287 measured on towns of 800 and
#: 1,600 px measured in one window (``max_pixels=None``), the per-pixel slope 154.
WINDOW_BYTES_PER_PIXEL = 160


def physical_memory() -> int | None:
    """Bytes of physical memory of this machine, or None where the OS does not say."""
    import os

    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def _size(nbytes: float) -> str:
    return f"{nbytes / 1e9:,.1f} GB" if nbytes >= 1e9 else f"{nbytes / 1e6:,.0f} MB"


def check_memory(shape: tuple[int, int], bands: int, window_size: int) -> None:
    """Refuse, before any pixel is read, a window that would not fit in this machine's memory.

    Raises
    ------
    damage.errors.ConfigError
        Naming the window and grid sizes, the estimate and the memory there is.
    """
    rows, cols = min(window_size, shape[0]), min(window_size, shape[1])
    need = rows * cols * WINDOW_BYTES_PER_PIXEL * max(bands, 3) / 3
    have = physical_memory()
    if have and need > 0.8 * have:
        raise ConfigError(f"max_pixels: one window of {rows:,} x {cols:,} px (the grid is {shape[0]:,} x {shape[1]:,} px, "
                          f"{bands} band(s)) needs about {_size(need)}, more than this machine's "
                          f"{_size(have)}; leave max_pixels at its default or set it lower")


#: Where a footprint is, in :attr:`Placement.reason`: in a window, no usable polygon, off the grid.
PLACED, UNUSABLE, OUTSIDE = 0, 1, 2


@dataclasses.dataclass
class Placement:
    """Where each footprint of a scene goes, in a few bytes a footprint (a region's million in a few MB).

    Attributes
    ----------
    reason : numpy.ndarray
        int8 per footprint: :data:`PLACED`, :data:`UNUSABLE` or :data:`OUTSIDE`.
    chunk : numpy.ndarray
        int32 per footprint: its window's place in ``names``, -1 where it is not placed.
    names : list of str
        The windows holding footprints, sorted (``row03_col07``; ``row03_col07_part1`` where a crowded
        window is cut, :data:`MAX_FOOTPRINTS_PER_WINDOW`).
    blocks : tuple of numpy.ndarray
        Placed footprints per block of the fit's sample lattice (:func:`damage.geo.raster.block_counts`).
    """

    reason: np.ndarray
    chunk: np.ndarray
    names: list[str]
    blocks: tuple[np.ndarray, np.ndarray]

    @property
    def usable(self) -> np.ndarray:
        """Footprints present and on the grid."""
        return self.reason == PLACED

    @property
    def window_of(self) -> np.ndarray:
        """Window id of each footprint (``""`` when not placed)."""
        return np.asarray(self.names + [""], dtype=object)[self.chunk].astype(str)

    def counts(self) -> dict[str, int]:
        """Footprints of each window."""
        n = np.bincount(self.chunk[self.chunk >= 0], minlength=len(self.names))
        return {name: int(k) for name, k in zip(self.names, n)}


class Placer:
    """Places a scene's footprints in windows a batch at a time (:meth:`add`), then names the windows
    (:meth:`finish`): the same placement whether the footprints come at once or a batch at a time.

    Parameters
    ----------
    grid : Grid
    window_size : int
        Side of a window in grid pixels.
    cap : int, optional
        Footprints a window holds at most (a crowded one is cut into parts, in input order); by
        default :data:`MAX_FOOTPRINTS_PER_WINDOW`, None: no bound.
    """

    def __init__(self, grid: Grid, window_size: int, cap: int | None | str = "default") -> None:
        from damage.run.scenefit import FIT_BLOCK

        self.cap = MAX_FOOTPRINTS_PER_WINDOW if cap == "default" else cap
        self.grid, self.size, self.fit_block = grid, window_size, FIT_BLOCK
        self.box = shapely.box(*grid.bounds)
        self._cols = -(-grid.shape[1] // window_size)  # windows a row of the grid holds
        self.reasons: list[np.ndarray] = []
        self.windows: list[np.ndarray] = []
        self.blocks: tuple[np.ndarray, np.ndarray] = (np.empty(0, np.int64), np.empty(0, np.int64))

    def add(self, geoms: np.ndarray, usable: np.ndarray) -> np.ndarray:
        """Place the next footprints: ``geoms`` in the grid's CRS, ``usable`` where they are usable polygons.
        Returns which of them lie on the grid."""
        inside = np.asarray(usable, bool).copy()
        inside[inside] = shapely.intersects(geoms[inside], self.box)
        self.reasons.append(np.where(inside, PLACED, np.where(usable, OUTSIDE, UNUSABLE)).astype(np.int8))
        points = shapely.point_on_surface(geoms[inside])
        r, c = window_cells(points, self.grid, self.size)
        self.windows.append(r * self._cols + c)
        self.blocks = block_counts(*cells_of(points, self.grid, self.fit_block), more=self.blocks)
        return inside

    def finish(self, source: str, epochs: str = "epochs", stacklevel: int = 5) -> Placement:
        """The placement of every footprint added; refused in one line when none lies on the grid, warned when
        most do not (``source`` names the footprints, ``epochs`` what the before and after inputs are).

        Raises
        ------
        damage.errors.FootprintsOutsideImageryError
        """
        reason = np.concatenate(self.reasons) if self.reasons else np.empty(0, np.int8)
        placed, usable = int((reason == PLACED).sum()), int((reason != UNUSABLE).sum())
        extent = lonlat_extent(self.grid.bounds, self.grid.crs)
        if placed == 0:
            what = "imagery" if epochs == "epochs" else epochs
            raise FootprintsOutsideImageryError(f"{source}: no footprint lies where the before and after {what} overlap "
                                                f"({extent})")
        outside = usable - placed
        if outside > 0.5 * usable:
            warnings.warn(f"{source}: {outside:,} of the {usable:,} footprints ({100 * outside / usable:.0f} %) lie outside "
                          f"the imagery both {epochs} cover ({extent}); they are not analysed ('outside imagery')",
                          DamageWarning, stacklevel=stacklevel)
        codes = np.concatenate(self.windows)
        self.windows.clear()
        cells, where = np.unique(codes, return_inverse=True)
        part, cut = crowded_parts(where, int(self.cap)) if self.cap else (np.full(len(codes), -1), {})
        labels: list[str] = []
        start = np.empty(len(cells), np.int64)  # each window's first label (a crowded one has one per part)
        for k, name in enumerate(window_names(*np.divmod(cells, self._cols), self.grid, self.size)):
            start[k] = len(labels)
            n = cut.get(k, 0)
            labels += [part_label(name, p, n) for p in range(n)] if n else [name]
        label = start[where] + np.maximum(part, 0)
        order = np.argsort(np.asarray(labels, dtype=object))
        names = [labels[i] for i in order]
        rank = np.empty(len(labels), np.int32)
        rank[order] = np.arange(len(labels), dtype=np.int32)
        chunk = np.full(len(reason), -1, np.int32)
        chunk[reason == PLACED] = rank[label]
        return Placement(reason, chunk, names, self.blocks)


@dataclasses.dataclass
class Plan:
    """A scene ready to be fitted and measured.

    Attributes
    ----------
    before, after : Epoch or list of Acquisition
        The inputs' headers, opened once: an epoch each for a pair, a stack each for the PWTT.
    footprints : geopandas.GeoDataFrame or None
        As given, in input order (None for a region's footprints read in batches).
    geoms : numpy.ndarray or None
        The footprints in the grid CRS (None where missing or empty; None for a region's).
    placement : Placement
        Each footprint's window.
    grid : Grid
        The scene's grid: the footprints and ``Config.context`` metres around them,
        where both epochs have imagery.
    config : Config
        With the grid's CRS and resolution fixed, so every window is on its lattice.
    window_size : int
    source : str
        How the footprints were given (a path, or "GeoDataFrame").
    input_files : list of str
        Every file the assessment reads.
    """

    before: Any
    after: Any
    footprints: gpd.GeoDataFrame | None
    geoms: np.ndarray | None
    placement: Placement
    grid: Grid
    config: Config
    window_size: int
    source: str
    input_files: list[str]

    @property
    def usable(self) -> np.ndarray:
        """Footprints present and on the grid."""
        return self.placement.usable

    @property
    def window_of(self) -> np.ndarray:
        """Window id of each footprint (``""`` when not usable)."""
        return self.placement.window_of

    @property
    def windows(self) -> list[str]:
        """Window ids holding at least one usable footprint, sorted."""
        return list(self.placement.names)

    def members(self, window: str) -> np.ndarray:
        """Positions of the footprints of ``window``."""
        return np.flatnonzero(self.placement.chunk == self.placement.names.index(window))


def grid_units(grid: Grid, metres: float) -> float:
    """``metres`` in the grid CRS's units (degrees of longitude at the grid's centre on a geographic grid)."""
    return metres / grid.metres


def window_extent(geoms: np.ndarray, grid: Grid, cfg: Config) -> Window:
    """``(row, col, height, width)`` of ``grid`` that a window of these footprints reads.

    Their bounds, their rings and :data:`CONTEXT_PIXELS` around, in whole pixels of
    the grid, clipped to it.
    """
    x0, y0, x1, y1 = shapely.total_bounds(geoms)
    pad = grid_units(grid, cfg.ring_width) + CONTEXT_PIXELS * grid.res
    inv = ~grid.transform
    cols, rows = zip(*(inv * (x, y) for x in (x0 - pad, x1 + pad) for y in (y0 - pad, y1 + pad)))
    c0, r0 = max(math.floor(min(cols)), 0), max(math.floor(min(rows)), 0)
    c1, r1 = min(math.ceil(max(cols)), grid.shape[1]), min(math.ceil(max(rows)), grid.shape[0])
    return Window(r0, c0, max(r1 - r0, 1), max(c1 - c0, 1))


#: A scene's footprints: one frame, or a function giving them a batch at a time.
Footprints: TypeAlias = "gpd.GeoDataFrame | Callable[[], Iterable[gpd.GeoDataFrame]]"


def batches(footprints: Footprints) -> Callable[[], Iterable[gpd.GeoDataFrame]]:
    """A scene's footprints as a function giving them a batch at a time (one batch: the frame itself)."""
    return footprints if callable(footprints) else (lambda: [footprints])


def place(footprints: Footprints, grid: Grid, window_size: int, source: str, epochs: str = "epochs",
          cap: int | None | str = "default") -> tuple[Placement, np.ndarray | None]:
    """Each footprint's window, and the footprints in the grid's CRS (None where unusable) when they came
    as one frame (a region's, read a batch at a time, are never held: None).

    Raises
    ------
    damage.errors.FootprintsOutsideImageryError
        No footprint on the grid (:meth:`Placer.finish`).
    """
    placer = Placer(grid, window_size, cap)
    geoms = None
    for part in batches(footprints)():
        usable = analysable(part.geometry.values)
        geoms = np.asarray(part.geometry.to_crs(grid.crs).values, dtype=object)
        geoms[~usable] = None
        placer.add(geoms, usable)
    return placer.finish(source, epochs), None if callable(footprints) else geoms


def on_grid(geoms: np.ndarray, usable: np.ndarray, grid: Grid, source: str, epochs: str = "epochs") -> np.ndarray:
    """Which usable footprints lie on the grid; refused in one line when none does, warned when most do not.

    ``geoms`` in the grid CRS; ``source`` names the footprints; ``epochs`` says what the before and
    after inputs are ("epochs", "stacks") in the messages.
    """
    placer = Placer(grid, max(max(grid.shape), 1), None)
    inside = placer.add(geoms, usable)
    placer.finish(source, epochs, stacklevel=3)
    return inside


def make_plan(before: PathSpec, after: PathSpec, footprints: Footprints, cfg: Config, window_size: int,
              source: str = "GeoDataFrame") -> Plan:
    """Read the headers, choose the grid and assign every footprint its window.

    ``footprints`` as :func:`damage.io.sources.read_footprints` returned them (read once, by
    the caller), or a function giving them a batch at a time (a region's:
    :class:`damage.io.stream.FootprintStream`; the plan then holds no footprint); ``source`` says
    where they came from.

    Raises
    ------
    damage.errors.DamageError
        Unreadable inputs, epochs of different bands, no overlap, or no footprint on it.
    """
    be = open_epoch(before, "before", cfg.asset, cfg.sign)
    ae = open_epoch(after, "after", cfg.asset, cfg.sign)
    check_order(be, ae)
    if be.count != ae.count:
        raise BandMismatchError(
            f"{be.describe()} has {be.count} band(s) but {ae.describe()} has {ae.count}; epochs must have the same bands"
        )
    parts = batches(footprints)
    try:
        grid = footprint_grid(be, ae, lambda: (p.geometry for p in parts()), crs=cfg.crs, resolution=cfg.resolution,
                              margin=cfg.context)
    except FootprintsOutsideImageryError as exc:
        raise FootprintsOutsideImageryError(f"{source}: {exc}") from None
    on_lattice = cfg.replace(crs=grid.crs.to_string(), resolution=grid.res)  # every window on the grid's lattice
    check_memory(grid.shape, be.count, window_size)
    placement, geoms = place(footprints, grid, window_size, source)
    files = [str(t.path) for t in (*be.tiles, *ae.tiles)]
    whole = None if callable(footprints) else footprints
    return Plan(be, ae, whole, geoms, placement, grid, on_lattice, window_size, source, files)
