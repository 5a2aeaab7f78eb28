"""Fit a scene once: registration, radiometry, metric scaling, clouds and calibration.

Everything an assessment estimates from the scene as a whole is fitted here, once, on
the scene's grid and footprints, before any window is measured; every window of the
scene, whatever its size and wherever it is measured (this process, a worker, a Dask
cluster), then uses the same fit, so a building's grade does not depend on how the
scene is cut nor on what else is assessed with it.

- A scene of at most :data:`FIT_SIDE` pixels a side is fitted on all of it.
- A larger one is fitted on the blocks of :data:`FIT_BLOCK` pixels holding the most
  footprints (at most :data:`FIT_BLOCKS`), and its clouds are found on an overview of
  the whole scene, :data:`FIT_SIDE` pixels a side at most.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning

from damage.config import Config
from damage.errors import NoOverlapError
from damage.geo.raster import Grid, Raster, block_counts, busiest_blocks, cells
from damage.io.sources import Epoch
from damage.io.warp import warp_epoch
from damage.optical.masks import clouds
from damage.optical.register import block_shifts, consensus, estimate_shift, luminance
from damage.optical.scene import CloudMask, SceneFit, ScenePixels, moving, radiometry

__all__ = ["fit_scene", "cloud_min_pixels", "FIT_SIDE", "FIT_BLOCK", "FIT_BLOCKS"]

#: A scene at most this many pixels a side is fitted whole; larger ones on sample blocks and an overview.
FIT_SIDE = 2048
#: Side, in grid pixels, of the sample blocks of a larger scene, and how many at most. Eight blocks
#: (2.1 M pixels, 128 registration estimates) fit a 6,000 px generated town as sixteen do: the same
#: AUC (0.9815), 99.3 % of grades equal, the rest one step apart; in 4.5 s less (benchmarks/scale.py).
FIT_BLOCK, FIT_BLOCKS = 512, 8
#: Threads that read the sample blocks and the overview of a larger scene side by side.
FIT_THREADS = 2


def cloud_min_pixels(cfg: Config, grid: Grid) -> int:
    """Config.min_cloud_area (m2) in pixels of ``grid`` (at least 16)."""
    return max(int(cfg.min_cloud_area / grid.pixel_area), 16)


def fit_scene(be: Epoch, ae: Epoch, grid: Grid, geoms: np.ndarray | tuple[np.ndarray, np.ndarray], cfg: Config,
              step: Callable[[str], None] | None = None) -> tuple[SceneFit, ScenePixels | None]:
    """Fit the scene on ``grid`` around the footprints ``geoms`` (grid CRS, all present), or around the
    footprints counted in blocks of :data:`FIT_BLOCK` pixels (:func:`damage.geo.raster.block_counts`: a
    region's, counted a batch at a time).

    ``step`` is told, in a few words, what the fit is doing as it goes (a progress display).

    Returns
    -------
    fit : SceneFit
    pixels : ScenePixels or None
        The registered epochs on the whole grid when the scene was fitted whole (its
        windows are cut from them instead of being read again), else None.

    Raises
    ------
    NoOverlapError
        The epochs hold no valid pixel in common where the fit looks.
    """
    say = step or (lambda what: None)
    # what the radiometric fit takes from the configuration (damage.optical.scene.radiometry)
    options = {"method": cfg.normalize, "ssim_sigma": cfg.ssim_sigma, "shift_tolerance": cfg.shift_tolerance,
               "metrics": cfg.metrics}
    if max(grid.shape) <= FIT_SIDE:
        return _fit_whole(be, ae, grid, cfg, options, say)
    return _fit_sampled(be, ae, grid, geoms, cfg, options, say), None


def _fit_whole(be: Epoch, ae: Epoch, grid: Grid, cfg: Config, options: dict[str, Any],
               say: Callable[[str], None]) -> tuple[SceneFit, ScenePixels]:
    say(f"reading both epochs ({grid.shape[0]} x {grid.shape[1]} px)")
    rb = warp_epoch(be, grid, black_fill=cfg.black_fill)
    ra = warp_epoch(ae, grid, black_fill=cfg.black_fill)
    covered = rb.valid & ra.valid
    if not covered.any():
        raise NoOverlapError(f"{be.describe()} and {ae.describe()} hold no valid pixel in common")
    shift = None
    if cfg.register:
        say("co-registering")
        shift = estimate_shift(luminance(rb.array), luminance(ra.array), covered, max_shift=cfg.max_shift)
    move = moving(shift)
    if move is not None:
        say("reading the after epoch again, registered")
        ra = warp_epoch(ae, grid, black_fill=cfg.black_fill, check_valid=False, move=move)
        covered = rb.valid & ra.valid
    valid = covered
    cloud = None
    if cfg.cloud_mask:  # before the radiometric fit, which clouds would bias
        say("masking clouds")
        cloudy, info = clouds(rb.array, ra.array, covered, min_pixels=cloud_min_pixels(cfg, grid))
        cloud = CloudMask(1, cloudy, info)
        valid = covered & ~cloudy
    say("normalising and calibrating")
    norm_params, stats, calib = radiometry(rb.array, ra.array, valid, **options)
    return SceneFit(shift, norm_params, stats, calib, cloud, "whole scene"), ScenePixels(rb, ra, covered)


def _overview(grid: Grid) -> tuple[Grid, int]:
    """An overview of the grid, at most FIT_SIDE pixels a side, and its factor."""
    f = math.ceil(max(grid.shape) / FIT_SIDE)
    return Grid(grid.crs, grid.transform @ Affine.scale(f), (math.ceil(grid.shape[0] / f), math.ceil(grid.shape[1] / f))), f


def _overview_clouds(rb: Raster, ra: Raster, f: int, grid: Grid, cfg: Config) -> CloudMask:
    """Clouds on both epochs' overviews (factor ``f``) of the whole grid."""
    covered = rb.valid & ra.valid
    mask, info = clouds(rb.array, ra.array, covered, min_pixels=max(cloud_min_pixels(cfg, grid) // (f * f), 16),
                        margin=max(1, math.ceil(6 / f)))
    return CloudMask(f, mask, info)


@contextlib.contextmanager
def _quiet_memory_datasets() -> Iterator[None]:
    """While threads warp: rasterio hides the NotGeoreferencedWarning of its in-memory datasets with
    ``warnings.catch_warnings``, which is not thread-safe (one thread's exit restores the filters
    another thread's block relies on). Ignored here, before the threads start, every filter list
    they save and restore ignores it too; the caller's filters are back when the block ends."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


def _fit_sampled(be: Epoch, ae: Epoch, grid: Grid, geoms: np.ndarray | tuple[np.ndarray, np.ndarray], cfg: Config,
                 options: dict[str, Any], say: Callable[[str], None]) -> SceneFit:
    """Registration, radiometry, metric scaling and calibration on sample blocks; clouds on an overview."""
    counted = geoms if isinstance(geoms, tuple) else block_counts(*cells(geoms, grid, FIT_BLOCK))
    blocks = busiest_blocks(counted, grid, FIT_BLOCK, int(np.clip(grid.shape[0] * grid.shape[1] / 4 / FIT_BLOCK**2, 4,
                                                                 FIT_BLOCKS)))

    def read_block(win: tuple[int, int, int, int]) -> tuple[Raster, Raster, np.ndarray | None]:
        rb = warp_epoch(be, grid, black_fill=cfg.black_fill, check_valid=False, window=win)
        ra = warp_epoch(ae, grid, black_fill=cfg.black_fill, check_valid=False, window=win)
        est = None
        if cfg.register:
            est = block_shifts(luminance(rb.array), luminance(ra.array), rb.valid & ra.valid, max_shift=cfg.max_shift)
            est = est + np.array([0.0, 0.0, win[0], win[1]])
        return rb, ra, est

    # Both epochs' overviews and the sample blocks are read side by side in threads (each read a task):
    # GDAL's warps, numpy and the registration's FFTs release the GIL, and each read opens its own dataset.
    say(("masking clouds on an overview and " if cfg.cloud_mask else "") + f"reading {len(blocks)} sample blocks"
        + (" and co-registering them" if cfg.register else ""))
    with _quiet_memory_datasets(), ThreadPoolExecutor(max_workers=FIT_THREADS) as pool:
        small, f = _overview(grid)
        overviews = [pool.submit(warp_epoch, e, small, black_fill=cfg.black_fill, check_valid=False)
                     for e in (be, ae)] if cfg.cloud_mask else []
        jobs = [pool.submit(read_block, win) for win in blocks]
        # the clouds found here while the threads go on reading blocks
        cloud = _overview_clouds(overviews[0].result(), overviews[1].result(), f, grid, cfg) if overviews else None
        del overviews
        read = [job.result() for job in jobs]
    estimates = [est for _, _, est in read if est is not None]
    befores = [rb for rb, _, _ in read]
    afters = [ra for _, ra, _ in read]
    del read
    shift = consensus(np.concatenate(estimates), grid.shape) if estimates else None
    move = moving(shift)
    if move is not None:  # the after blocks again, registered (in threads; the unregistered ones let go first)
        say("reading the after epoch's sample blocks again, registered")
        afters.clear()

        def registered(win: tuple[int, int, int, int]) -> Raster:
            return warp_epoch(ae, grid, black_fill=cfg.black_fill, check_valid=False, window=win, move=move)

        with _quiet_memory_datasets(), ThreadPoolExecutor(max_workers=FIT_THREADS) as pool:
            afters = list(pool.map(registered, blocks))
    # Radiometry and metric scaling on the sample blocks side by side, after registration.
    b_parts, a_parts, v_parts = [], [], []
    for rb, ra, win in zip(befores, afters, blocks):
        valid = rb.valid & ra.valid
        if cloud is not None:
            valid &= ~cloud.window(win)
        pad = ((0, 0), (0, FIT_BLOCK - win[2]), (0, FIT_BLOCK - win[3]))
        b_parts.append(np.pad(rb.array, pad))
        a_parts.append(np.pad(ra.array, pad))
        v_parts.append(np.pad(valid, pad[1:]))
    del befores, afters
    b_all, a_all, v_all = (np.concatenate(p, axis=-1) for p in (b_parts, a_parts, v_parts))
    if not v_all.any():
        raise NoOverlapError(f"{be.describe()} and {ae.describe()} hold no valid pixel in common where the footprints are")
    say("normalising and calibrating")
    norm_params, stats, calib = radiometry(b_all, a_all, v_all, zero_invalid=True, **options)
    return SceneFit(shift, norm_params, stats, calib, cloud, "sample blocks")
