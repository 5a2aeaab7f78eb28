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
from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from damage.config import Config
from damage.errors import BandMismatchError, ConfigError, DamageWarning, FootprintsOutsideImageryError
from damage.geo.raster import Grid, Window, analysable, split_crowded, window_ids
from damage.io.sources import PathSpec, check_order, open_epoch
from damage.io.warp import footprint_grid, lonlat_extent

__all__ = ["Plan", "make_plan", "on_grid", "window_extent", "grid_units", "check_memory", "physical_memory",
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


@dataclasses.dataclass
class Plan:
    """A scene ready to be fitted and measured.

    Attributes
    ----------
    before, after : Epoch or list of Acquisition
        The inputs' headers, opened once: an epoch each for a pair, a stack each for the PWTT.
    footprints : geopandas.GeoDataFrame
        As given, in input order.
    geoms : numpy.ndarray
        The footprints in the grid CRS (None where missing or empty).
    usable : numpy.ndarray
        Footprints present and on the grid.
    grid : Grid
        The scene's grid: the footprints and ``Config.context`` metres around them,
        where both epochs have imagery.
    config : Config
        With the grid's CRS and resolution fixed, so every window is on its lattice.
    window_size : int
    window_of : numpy.ndarray
        Window id of each footprint (``""`` when not usable).
    source : str
        How the footprints were given (a path, or "GeoDataFrame").
    input_files : list of str
        Every file the assessment reads.
    """

    before: Any
    after: Any
    footprints: gpd.GeoDataFrame
    geoms: np.ndarray
    usable: np.ndarray
    grid: Grid
    config: Config
    window_size: int
    window_of: np.ndarray
    source: str
    input_files: list[str]

    @property
    def windows(self) -> list[str]:
        """Window ids holding at least one usable footprint, sorted."""
        return sorted(set(self.window_of[self.usable].tolist()))

    def members(self, window: str) -> np.ndarray:
        """Positions of the footprints of ``window``."""
        return np.flatnonzero(self.window_of == window)


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


def on_grid(geoms: np.ndarray, usable: np.ndarray, grid: Grid, source: str, epochs: str = "epochs") -> np.ndarray:
    """Which usable footprints lie on the grid; refused in one line when none does, warned when most do not.

    ``geoms`` in the grid CRS; ``source`` names the footprints; ``epochs`` says what the before and
    after inputs are ("epochs", "stacks") in the messages.
    """
    inside = usable.copy()
    inside[usable] = shapely.intersects(geoms[usable], shapely.box(*grid.bounds))
    extent = lonlat_extent(grid.bounds, grid.crs)
    if not inside.any():
        what = "imagery" if epochs == "epochs" else epochs
        raise FootprintsOutsideImageryError(f"{source}: no footprint lies where the before and after {what} overlap "
                                            f"({extent})")
    outside, placed = int((usable & ~inside).sum()), int(usable.sum())
    if outside > 0.5 * placed:
        warnings.warn(f"{source}: {outside:,} of the {placed:,} footprints ({100 * outside / placed:.0f} %) lie outside "
                      f"the imagery both {epochs} cover ({extent}); they are not analysed ('outside imagery')",
                      DamageWarning, stacklevel=4)
    return inside


def make_plan(before: PathSpec, after: PathSpec, footprints: gpd.GeoDataFrame, cfg: Config, window_size: int,
              source: str = "GeoDataFrame") -> Plan:
    """Read the headers, choose the grid and assign every footprint its window.

    ``footprints`` as :func:`damage.io.sources.read_footprints` returned them (read once, by
    the caller); ``source`` says where they came from.

    Raises
    ------
    damage.errors.DamageError
        Unreadable inputs, epochs of different bands, no overlap, or no footprint on it.
    """
    fp = footprints
    be = open_epoch(before, "before", cfg.asset, cfg.sign)
    ae = open_epoch(after, "after", cfg.asset, cfg.sign)
    check_order(be, ae)
    if be.count != ae.count:
        raise BandMismatchError(
            f"{be.describe()} has {be.count} band(s) but {ae.describe()} has {ae.count}; epochs must have the same bands"
        )
    usable = analysable(fp.geometry.values)
    try:
        grid = footprint_grid(be, ae, fp.geometry, crs=cfg.crs, resolution=cfg.resolution, margin=cfg.context)
    except FootprintsOutsideImageryError as exc:
        raise FootprintsOutsideImageryError(f"{source}: {exc}") from None
    on_lattice = cfg.replace(crs=grid.crs.to_string(), resolution=grid.res)  # every window on the grid's lattice
    check_memory(grid.shape, be.count, window_size)
    geoms = np.asarray(fp.geometry.to_crs(grid.crs).values, dtype=object)
    geoms[~usable] = None
    usable = on_grid(geoms, usable, grid, source)
    window_of = np.full(len(fp), "", dtype=object)
    window_of[usable] = split_crowded(window_ids(geoms[usable], grid, window_size), MAX_FOOTPRINTS_PER_WINDOW)
    files = [str(t.path) for t in (*be.tiles, *ae.tiles)]
    return Plan(be, ae, fp, geoms, usable, grid, on_lattice, window_size, window_of.astype(str), source, files)
