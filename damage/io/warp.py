"""The common grid of a before/after pair, and warping an epoch onto it.

The two epochs may have different CRSs, pixel sizes and tilings; both are resampled
onto one north-up grid that covers their overlap around the footprints.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import numpy as np
from affine import Affine
from pyproj import CRS as ProjCRS
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.warp import calculate_default_transform, reproject, transform_bounds
from rasterio.windows import Window as RioWindow

from damage.errors import (
    ConfigError,
    FootprintsOutsideImageryError,
    InputTooLargeError,
    NoOverlapError,
    NoValidDataError,
)
from damage.geo.raster import Grid, Raster, Window, analysable, metres_per_unit
from damage.io.nodata import source_valid
from damage.io.sources import Epoch, Tile, has_overviews, read_tile

log = logging.getLogger(__name__)

__all__ = ["choose_crs", "epoch_bounds", "imagery_area", "native_resolution", "common_grid", "footprint_grid", "warp_epoch"]

Bounds = tuple[float, float, float, float]


def choose_crs(before: Epoch, after: Epoch, lonlat_centre: tuple[float, float]) -> CRS:
    """The before epoch's CRS if projected, else the after's, else the local UTM zone."""
    for epoch in (before, after):
        crs = epoch.tiles[0].crs
        if crs.is_projected:
            return crs
    lon, lat = lonlat_centre
    zone = int(math.floor((lon + 180) / 6) % 60) + 1
    return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)


def _tile_bounds(tile: Tile, crs: CRS) -> Bounds:
    return transform_bounds(tile.crs, crs, *tile.bounds, densify_pts=21)


def epoch_bounds(epoch: Epoch, crs: CRS) -> Bounds:
    """Bounding box of all tiles of an epoch in ``crs``."""
    boxes = np.array([_tile_bounds(t, crs) for t in epoch.tiles])
    return (boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max())


def lonlat_extent(bounds: Bounds, crs: CRS) -> str:
    """``"lon -94.52 to -94.49, lat 37.05 to 37.08"`` of bounds given in ``crs`` (for messages)."""
    try:
        w, s, e, n = transform_bounds(crs, CRS.from_epsg(4326), *bounds, densify_pts=21)
    except Exception:  # noqa: BLE001 - a message must not fail: fall back to the CRS's own units
        return f"{bounds[0]:.6g} to {bounds[2]:.6g}, {bounds[1]:.6g} to {bounds[3]:.6g} in {crs.to_string()}"
    return f"lon {w:.5f} to {e:.5f}, lat {s:.5f} to {n:.5f}"


def imagery_area(before: list[Tile], after: list[Tile]) -> Bounds:
    """The lon/lat box where both epochs' tiles overlap (the footprints worth reading).

    Raises
    ------
    NoOverlapError
        The epochs do not overlap.
    """
    def box(tiles: list[Tile]) -> Bounds:
        parts = [transform_bounds(t.crs, CRS.from_epsg(4326), *t.bounds, densify_pts=21) for t in tiles]
        return (min(p[0] for p in parts), min(p[1] for p in parts), max(p[2] for p in parts), max(p[3] for p in parts))

    both = _intersect(box(before), box(after))
    if both is None:
        raise NoOverlapError(f"the before and after imagery do not overlap ({before[0].path} and {after[0].path})")
    return both


def native_resolution(epoch: Epoch, crs: CRS) -> float:
    """Median pixel size of an epoch's tiles once expressed in ``crs`` units."""
    sizes = []
    for tile in epoch.tiles:
        transform, _, _ = calculate_default_transform(tile.crs, crs, tile.width, tile.height, *tile.bounds)
        sizes.append(abs(transform.a))
    return float(np.median(sizes))


def _intersect(a: Bounds, b: Bounds) -> Bounds | None:
    out = (max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3]))
    return out if out[0] < out[2] and out[1] < out[3] else None


#: How many times finer than the finest imagery a requested grid resolution may be.
MAX_UPSAMPLING = 4


def common_grid(
    before: Epoch | Sequence[Epoch],
    after: Epoch | Sequence[Epoch],
    footprint_bounds: Callable[[CRS], Bounds],
    crs: CRS | str | None = None,
    resolution: float | None = None,
    margin: int = 16,
) -> Grid:
    """The grid both epochs are resampled onto.

    It covers the overlap of the two epochs, cut to the footprints' extent plus
    ``margin`` pixels, with pixel edges on multiples of the resolution.

    Parameters
    ----------
    before, after : Epoch or sequence of Epoch
        One epoch each, or the images of two stacks (the grid covers the overlap of all).
    footprint_bounds : callable
        Returns the footprints' bounds in a given CRS.
    crs : CRS or str, optional
        Grid CRS; by default :func:`choose_crs`.
    resolution : float, optional
        Pixel size; by default the coarser of the two epochs' native pixel sizes.
    margin : int
        Pixels added around the footprints (windowed metrics need context).

    Raises
    ------
    NoOverlapError
        The epochs' extents do not intersect.
    FootprintsOutsideImageryError
        No footprint lies in the overlap.
    """
    befores = [before] if isinstance(before, Epoch) else list(before)
    afters = [after] if isinstance(after, Epoch) else list(after)
    before = befores[0]
    if crs is None:
        w, s, e, n = footprint_bounds(CRS.from_epsg(4326))
        crs = choose_crs(before, afters[0], ((w + e) / 2, (s + n) / 2))
    grid_crs: CRS = CRS.from_user_input(crs)
    crs = grid_crs
    if ProjCRS.from_user_input(grid_crs.to_wkt()).is_geographic:
        log.warning("grid CRS %s is geographic: pixels are not square on the ground", crs)
    overlap: Bounds = epoch_bounds(before, grid_crs)
    for epoch in befores[1:] + afters:
        common = _intersect(overlap, epoch_bounds(epoch, grid_crs))
        if common is None:
            raise NoOverlapError(f"{before.describe()} ({lonlat_extent(epoch_bounds(before, grid_crs), grid_crs)}) and "
                                 f"{epoch.describe()} ({lonlat_extent(epoch_bounds(epoch, grid_crs), grid_crs)}) do not overlap")
        overlap = common
    # Anchor the grid on the before epoch's own pixel lattice when it is already in the
    # grid CRS at about the grid's pixel size: the before pixels are then not resampled.
    first = before.tiles[0]
    on_lattice = first.crs == crs and abs(first.transform.a + first.transform.e) < 1e-9 * first.res
    finest = min(native_resolution(e, crs) for e in befores + afters)
    if resolution is not None and resolution < finest / MAX_UPSAMPLING:
        raise ConfigError(f"resolution {resolution:g} is {finest / resolution:.0f} times finer than the finest imagery "
                          f"({finest:.4g} in {grid_crs.to_string()} units); at most {MAX_UPSAMPLING} times finer is allowed")
    if resolution is None:
        resolution = max(native_resolution(e, crs) for e in befores + afters)
        if on_lattice and abs(resolution - first.res) <= 0.1 * first.res:
            resolution = first.res
        else:
            resolution = float(f"{resolution:.4g}")
    anchor_x, anchor_y = (first.transform.c, first.transform.f) if on_lattice and resolution == first.res else (0.0, 0.0)
    fb = footprint_bounds(crs)
    pad = margin * resolution
    area = _intersect(overlap, (fb[0] - pad, fb[1] - pad, fb[2] + pad, fb[3] + pad))
    if area is None:
        raise FootprintsOutsideImageryError(f"no footprint lies where the before and after imagery overlap: the footprints "
                                            f"span {lonlat_extent(fb, crs)}, the imagery's overlap "
                                            f"{lonlat_extent(overlap, crs)}")
    col0 = math.floor((area[0] - anchor_x) / resolution)
    col1 = math.ceil((area[2] - anchor_x) / resolution)
    row0 = math.floor((anchor_y - area[3]) / resolution)
    row1 = math.ceil((anchor_y - area[1]) / resolution)
    transform = Affine(resolution, 0.0, anchor_x + col0 * resolution, 0.0, -resolution, anchor_y - row0 * resolution)
    return Grid(crs, transform, (row1 - row0, col1 - col0))


def footprint_grid(
    before: Epoch | Sequence[Epoch],
    after: Epoch | Sequence[Epoch],
    geometry,
    crs: CRS | str | None = None,
    resolution: float | None = None,
    margin: float = 0.0,
) -> Grid:
    """:func:`common_grid` around a GeoSeries of footprints (missing and empty ones ignored).

    ``geometry`` is a GeoSeries, or a function returning its parts one GeoSeries at a time (a
    region's footprints read in batches: each call is one pass over them); either gives the same
    grid. ``margin`` metres of context are added on every side (clipped to the imagery).
    """
    parts = geometry if callable(geometry) else (lambda: [geometry])

    def bounds(c: CRS) -> Bounds:
        lo, hi = np.full(2, np.inf), np.full(2, -np.inf)
        for part in parts():
            kept = part[analysable(part.values)]
            b = kept.to_crs(c).bounds.to_numpy()
            b = b[np.isfinite(b).all(axis=1)]  # a footprint with no place in ``c`` (far outside its area of use)
            if len(b):
                lo, hi = np.minimum(lo, b[:, :2].min(axis=0)), np.maximum(hi, b[:, 2:].max(axis=0))
        if not np.isfinite(lo).all():
            raise FootprintsOutsideImageryError(f"no footprint can be placed in {c.to_string()} (coordinates far outside "
                                                "its area of use)")
        x0, y0, x1, y1 = float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])
        mx, my = metres_per_unit(c, (y0 + y1) / 2)  # degrees at the footprints' latitude on a geographic CRS
        dx, dy = margin / mx, margin / my
        return (x0 - dx, y0 - dy, x1 + dx, y1 + dy)

    return common_grid(before, after, bounds, crs=crs, resolution=resolution)


def _pixel_window(transform: Affine, shape: tuple[int, int], bounds: Bounds, pad: int) -> RioWindow | None:
    """Whole pixels of a raster that cover ``bounds``, padded by ``pad``, clipped to the raster."""
    # The corners of ``bounds`` in pixel coordinates (any affine, rotated grids too).
    inverse = ~transform
    cols, rows = zip(*(inverse * (x, y) for x in (bounds[0], bounds[2]) for y in (bounds[1], bounds[3])))
    c0 = max(math.floor(min(cols) + 1e-6) - pad, 0)
    r0 = max(math.floor(min(rows) + 1e-6) - pad, 0)
    c1 = min(math.ceil(max(cols) - 1e-6) + pad, shape[1])
    r1 = min(math.ceil(max(rows) - 1e-6) + pad, shape[0])
    return RioWindow(c0, r0, c1 - c0, r1 - r0) if c1 > c0 and r1 > r0 else None


def _grid_window(grid: Grid, bounds: Bounds) -> RioWindow | None:
    """The part of the grid, in whole pixels, that ``bounds`` covers."""
    inter = _intersect(grid.bounds, bounds)
    return None if inter is None else _pixel_window(grid.transform, grid.shape, inter, 0)


def _source_window(tile: Tile, bounds: Bounds, pad: int = 2) -> RioWindow | None:
    """The part of a tile, padded for the resampling kernel, that covers ``bounds``."""
    inter = _intersect(tile.bounds, bounds)
    return None if inter is None else _pixel_window(tile.transform, (tile.height, tile.width), inter, pad)


#: Side, in pixels, of the blocks of the global pixel lattice that resampling works in.
WARP_BLOCK = 256


def _resample(tile: Tile, count: int, grid: Grid, move: Affine, window: Window, black_fill: bool,
              resampling: Resampling) -> tuple[np.ndarray, np.ndarray]:
    """Resample a tile onto a window of the grid, in whole blocks of the global lattice.

    GDAL approximates coordinate transforms along each warped window, so a pixel's
    value would depend on the window it is warped in. Warping always the same
    blocks (WARP_BLOCK pixels, numbered from the CRS origin on the grid's lattice)
    and cutting the window out of them makes every pixel's value the same whatever
    grid or chunk of a region asks for it. ``move`` (a pixel affine) places the
    blocks where the grid's pixels lie in this epoch (registration); ``window`` is
    ``(row, col, height, width)`` in pixels of ``grid``.
    """
    r0, c0, h, w = window
    t = grid.transform
    col_origin = math.floor(t.c / t.a + 0.5)  # lattice index of the grid's first column
    row_origin = math.floor(t.f / t.e + 0.5)
    dst = np.zeros((count, h, w), dtype=np.float32)
    dst_valid = np.zeros((h, w), dtype=np.float32)
    rb0, rb1 = (row_origin + r0) // WARP_BLOCK, (row_origin + r0 + h - 1) // WARP_BLOCK
    cb0, cb1 = (col_origin + c0) // WARP_BLOCK, (col_origin + c0 + w - 1) // WARP_BLOCK
    blocks = []
    placed = t @ move
    for rb in range(rb0, rb1 + 1):
        for cb in range(cb0, cb1 + 1):
            br, bc = rb * WARP_BLOCK - row_origin, cb * WARP_BLOCK - col_origin  # block origin, grid pixels
            block = Grid(grid.crs, placed @ Affine.translation(bc, br), (WARP_BLOCK, WARP_BLOCK))
            swin = _source_window(tile, transform_bounds(grid.crs, tile.crs, *block.bounds, densify_pts=21))
            if swin is not None:
                blocks.append((br, bc, block, swin))
    if not blocks:
        return dst, dst_valid
    # one read of the tile for a row of blocks (each block then takes its own window of it):
    # few reads, and never the whole of a large tile in memory at once
    rows: dict[int, list] = {}
    for b in blocks:
        rows.setdefault(b[0], []).append(b)
    f = _decimation(tile, grid)
    for row in rows.values():
        # (a source far finer than the grid is read averaged f x f, on the lattice of multiples of f)
        c_lo = min(int(b[3].col_off) for b in row) // f * f
        r_lo = min(int(b[3].row_off) for b in row) // f * f
        c_hi = min(-(-max(int(b[3].col_off + b[3].width) for b in row) // f) * f, tile.width)
        r_hi = min(-(-max(int(b[3].row_off + b[3].height) for b in row) // f) * f, tile.height)
        if f == 1 and (r_hi - r_lo) * (c_hi - c_lo) > READ_LIMIT:
            raise InputTooLargeError(
                f"{tile.path}: one row of the grid's blocks needs {(r_hi - r_lo) * (c_hi - c_lo):,} of its pixels "
                f"(its pixels are {_ratio(tile, grid):,.0f} times finer than the grid's) and it has no overviews; "
                f"add overviews (gdaladdo) or give a coarser copy (gdalwarp -tr)")
        whole, whole_declared, whole_transform = read_tile(tile, RioWindow(c_lo, r_lo, c_hi - c_lo, r_hi - r_lo), f)
        for br, bc, block, swin in row:
            r, c = (int(swin.row_off) - r_lo) // f, (int(swin.col_off) - c_lo) // f
            h_cut = -(-(int(swin.row_off + swin.height) - r_lo) // f) - r
            w_cut = -(-(int(swin.col_off + swin.width) - c_lo) // f) - c
            cut = (slice(r, r + h_cut), slice(c, c + w_cut))
            data = whole[(slice(None), *cut)]
            declared = None if whole_declared is None else whole_declared[cut]
            src_transform = whole_transform @ Affine.translation(c, r)
            src_valid = source_valid(data, declared, black_fill).astype(np.float32)
            # the validity rides along as one more band: one warp, the same kernel for both
            both = np.concatenate([data.astype(np.float32), src_valid[None]])
            warped = np.zeros((count + 1, WARP_BLOCK, WARP_BLOCK), dtype=np.float32)
            reproject(both, warped, src_transform=src_transform, src_crs=tile.crs, dst_transform=block.transform,
                      dst_crs=grid.crs, resampling=resampling, src_nodata=None, dst_nodata=None, init_dest_nodata=False)
            bd, bv = warped[:count], warped[count]
            # the part of the block inside the window
            ir0, ir1 = max(br, r0), min(br + WARP_BLOCK, r0 + h)
            ic0, ic1 = max(bc, c0), min(bc + WARP_BLOCK, c0 + w)
            dst[:, ir0 - r0 : ir1 - r0, ic0 - c0 : ic1 - c0] = bd[:, ir0 - br : ir1 - br, ic0 - bc : ic1 - bc]
            dst_valid[ir0 - r0 : ir1 - r0, ic0 - c0 : ic1 - c0] = bv[ir0 - br : ir1 - br, ic0 - bc : ic1 - bc]
    return dst, dst_valid


#: Pixels of a tile read at once for a row of warp blocks, at most (a far finer source is read from its overviews).
READ_LIMIT = 1 << 27


def _ratio(tile: Tile, grid: Grid) -> float:
    """Tile pixels per grid pixel, across the whole grid (so the same for every window of it)."""
    x0, y0, x1, y1 = transform_bounds(grid.crs, tile.crs, *grid.bounds, densify_pts=21)
    h, w = grid.shape
    return min((x1 - x0) / w, (y1 - y0) / h) / max(tile.res, 1e-300)


def _decimation(tile: Tile, grid: Grid) -> int:
    """1, or the averaging factor for a tile with overviews whose pixels are at least 4 times finer than the grid's
    (keeping at least two tile pixels per grid pixel)."""
    ratio = _ratio(tile, grid)
    if ratio < 4 or not has_overviews(tile):
        return 1
    return int(ratio // 2)


def _lattice_offset(tile: Tile, grid: Grid) -> tuple[int, int] | None:
    """``(row, col)`` of grid pixel (0, 0) in the tile when both share one pixel lattice, else None."""
    t, g = tile.transform, grid.transform
    if tile.crs != grid.crs or t.b or t.d or g.b or g.d:
        return None
    if abs(t.a - g.a) > 1e-9 * abs(g.a) or abs(t.e - g.e) > 1e-9 * abs(g.e):
        return None
    col, row = (g.c - t.c) / t.a, (g.f - t.f) / t.e
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    return int(round(row)), int(round(col))


def warp_epoch(
    epoch: Epoch,
    grid: Grid,
    black_fill: bool = True,
    resampling: Resampling = Resampling.bilinear,
    check_valid: bool = True,
    window: Window | tuple[int, int, int, int] | None = None,
    move: Affine | None = None,
) -> Raster:
    """Resample every tile of an epoch onto ``grid`` and mosaic them (first valid wins).

    Only the part of each tile that covers the grid is read; a tile on the grid's own
    pixel lattice is copied, not resampled. A pixel is valid where the resampling
    kernel saw valid source pixels only. A pixel's value does not depend on the
    window it is warped in.

    Parameters
    ----------
    window : tuple, optional
        ``(row, col, height, width)``: only this part of ``grid``; the raster returned
        is on that part.
    move : affine.Affine, optional
        Where the grid's pixels lie in this epoch: pixel ``(col, row)`` of the grid
        takes the epoch's value at pixel ``move * (col, row)`` (a registration shift).

    Raises
    ------
    NoValidDataError
        ``check_valid`` and no pixel of the grid is valid.
    """
    move = Affine.identity() if move is None else move
    wr, wc, height, width = (0, 0, *grid.shape) if window is None else window
    target = Grid(grid.crs, grid.transform @ move @ Affine.translation(wc, wr), (height, width))
    out = np.zeros((epoch.count, height, width), dtype=np.float32)
    valid = np.zeros((height, width), dtype=bool)
    for tile in epoch.tiles:
        gwin = _grid_window(target, _tile_bounds(tile, grid.crs))
        if gwin is None:
            continue
        r0, c0, h, w = int(gwin.row_off), int(gwin.col_off), int(gwin.height), int(gwin.width)
        offset = _lattice_offset(tile, target)
        if offset is not None:  # the tile's own pixels: read them, nothing to resample
            tr0, tc0 = r0 + offset[0], c0 + offset[1]
            rr0, cc0 = max(tr0, 0), max(tc0, 0)
            rr1, cc1 = min(tr0 + h, tile.height), min(tc0 + w, tile.width)
            if rr1 <= rr0 or cc1 <= cc0:
                continue
            data, declared, _ = read_tile(tile, RioWindow(cc0, rr0, cc1 - cc0, rr1 - rr0))
            dst = np.zeros((epoch.count, h, w), dtype=np.float32)
            dst_valid = np.zeros((h, w), dtype=np.float32)
            inner = (slice(rr0 - tr0, rr1 - tr0), slice(cc0 - tc0, cc1 - tc0))
            dst[(slice(None), *inner)] = data
            dst_valid[inner] = source_valid(data, declared, black_fill)
        else:
            dst, dst_valid = _resample(tile, epoch.count, grid, move, Window(wr + r0, wc + c0, h, w), black_fill, resampling)
        # a NaN or infinity the resampling let through (float imagery) is no data, not a value
        take = (dst_valid > 0.999) & ~valid[r0 : r0 + h, c0 : c0 + w] & np.isfinite(dst).all(axis=0)
        if take.all():  # the tile covers this part whole (the usual case): one copy, no masked gather
            out[:, r0 : r0 + h, c0 : c0 + w] = dst
        else:
            out[:, r0 : r0 + h, c0 : c0 + w][:, take] = dst[:, take]
        valid[r0 : r0 + h, c0 : c0 + w] |= take
    if check_valid and not valid.any():
        raise NoValidDataError(f"{epoch.describe()}: no valid pixel where the footprints are (all nodata or black fill)")
    return Raster(out, valid, Grid(grid.crs, grid.transform @ Affine.translation(wc, wr), (height, width)))
