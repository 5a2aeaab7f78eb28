"""Synthetic before/after scenes with known truth, for tests, benchmarks and users.

A scene is a textured ground with roads, trees and rectangular buildings with
two-plane roofs and shadows. Damage replaces a building's roof with rubble (blocks
of random colour and size) that spills a little beyond the footprint. Array code
only: :func:`write_pair` is the one function that writes files.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from affine import Affine
from scipy import ndimage

__all__ = ["Scene", "make_scene", "write_pair"]


@dataclasses.dataclass(frozen=True)
class Scene:
    """A synthetic pair on one grid.

    Attributes
    ----------
    before, after : numpy.ndarray
        ``(3, size, size)`` uint8 RGB.
    transform : Affine
    crs : str
    footprints : geopandas.GeoDataFrame
        One polygon per building, with ``building_id`` and the true ``damaged`` flag.
    """

    before: np.ndarray
    after: np.ndarray
    transform: Affine
    crs: str
    footprints: gpd.GeoDataFrame


def _texture(rng: np.random.Generator, shape: tuple[int, int], sigma: float, amp: float) -> np.ndarray:
    return ndimage.gaussian_filter(rng.normal(0, 1, shape), sigma) * amp / max(1e-6, 1 / (2 * np.sqrt(np.pi) * sigma))


def make_scene(
    size: int = 256,
    buildings: int = 16,
    damaged: tuple[int, ...] = (),
    seed: int = 0,
    shift: tuple[float, float] = (0.0, 0.0),
    gain: float = 1.0,
    offset: float = 0.0,
    noise: float = 2.0,
    res: float = 0.5,
    origin: tuple[float, float] = (500_000.0, 4_100_000.0),
    crs: str = "EPSG:32615",
) -> Scene:
    """Make a before/after pair with known damage.

    Parameters
    ----------
    size : int
        Side of the square scene in pixels.
    buildings : int
        Buildings on a regular lattice (rounded down to a square number).
    damaged : tuple of int
        Indices of the buildings turned to rubble in the after image.
    seed : int
        Seed of every random choice: the same arguments give the same scene.
    shift : (float, float)
        ``(dy, dx)`` pixels by which the after image content is moved.
    gain, offset : float
        Radiometric difference of the after sensor: ``after = gain * before + offset``.
    noise : float
        Standard deviation of independent sensor noise in each epoch (digital numbers).
    res : float
        Pixel size in CRS units.
    origin : (float, float)
        Upper-left corner in CRS units.
    crs : str
    """
    rng = np.random.default_rng(seed)
    h = w = size
    yy, xx = np.mgrid[0:h, 0:w]
    ground = np.stack([95 + _texture(rng, (h, w), 2, 12), 120 + _texture(rng, (h, w), 2, 14), 70 + _texture(rng, (h, w), 2, 10)])
    # Roads every ~quarter of the scene.
    for k in range(1, 4):
        r = int(k * h / 4)
        ground[:, r - 3 : r + 3, :] = np.array([120, 118, 115])[:, None, None]
    # Trees: dark green blobs.
    trees = _texture(rng, (h, w), 4, 1) > 0.9
    ground[:, trees] = np.array([40, 70, 35])[:, None]
    scene = ground.copy()
    n_side = max(1, int(np.sqrt(buildings)))
    cell = w / n_side
    polys, ids = [], []
    roofs = []
    for i in range(n_side * n_side):
        cy, cx = (i // n_side + 0.5) * cell, (i % n_side + 0.5) * cell
        bh, bw = rng.uniform(0.3, 0.5) * cell, rng.uniform(0.3, 0.55) * cell
        r0, r1 = int(cy - bh / 2), int(cy + bh / 2)
        c0, c1 = int(cx - bw / 2), int(cx + bw / 2)
        colour = rng.uniform(90, 200, 3)
        # Shadow to the south-east, then the roof: two planes split by a ridge.
        scene[:, r0 + 3 : r1 + 3, c0 + 3 : c1 + 3] *= 0.45
        roof = np.empty((3, r1 - r0, c1 - c0))
        roof[:] = colour[:, None, None]
        half = (r1 - r0) // 2
        roof[:, :half] *= 0.8
        roof[:, half - 1 : half + 1] = colour[:, None, None] * 1.15
        roof += _texture(rng, (r1 - r0, c1 - c0), 1, 3)
        scene[:, r0:r1, c0:c1] = roof
        roofs.append((r0, r1, c0, c1))
        x0, y0 = origin[0] + c0 * res, origin[1] - r0 * res
        polys.append(shapely.box(x0, y0 - (r1 - r0) * res, x0 + (c1 - c0) * res, y0))
        ids.append(i)
    after = scene.copy()
    for i in damaged:
        r0, r1, c0, c1 = roofs[i]
        m = 3  # rubble spills a little beyond the walls
        rr0, rr1, cc0, cc1 = max(r0 - m, 0), min(r1 + m, h), max(c0 - m, 0), min(c1 + m, w)
        blocks = rng.uniform(40, 220, (3, (rr1 - rr0) // 2 + 1, (cc1 - cc0) // 2 + 1))
        rubble = np.repeat(np.repeat(blocks, 2, axis=1), 2, axis=2)[:, : rr1 - rr0, : cc1 - cc0]
        after[:, rr0:rr1, cc0:cc1] = rubble
    if shift != (0.0, 0.0):
        after = ndimage.shift(after, (0, shift[0], shift[1]), order=3, mode="nearest")
    before = scene + rng.normal(0, noise, scene.shape)
    after = gain * (after + rng.normal(0, noise, scene.shape)) + offset
    transform = Affine(res, 0, origin[0], 0, -res, origin[1])
    fp = gpd.GeoDataFrame(
        {"building_id": ids, "damaged": [i in set(damaged) for i in ids]}, geometry=polys, crs=crs
    )
    return Scene(np.clip(before, 1, 255).astype(np.uint8), np.clip(after, 1, 255).astype(np.uint8), transform, crs, fp)


def write_pair(
    scene: Scene, folder: str | Path, after_crs: str | None = None, after_res: float | None = None
) -> tuple[Path, Path, Path]:
    """Write a scene as ``before.tif``, ``after.tif`` and ``footprints.geojson``.

    ``after_crs`` reprojects the after image into another CRS (e.g. ``EPSG:4326``) and
    ``after_res`` resamples it to another pixel size (in the units of ``after_crs``, or
    of the scene's CRS without it), as real pairs from different providers are.
    Returns the three paths.
    """
    import rasterio
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _, h, w = scene.before.shape
    profile = {"driver": "GTiff", "count": 3, "dtype": "uint8", "height": h, "width": w, "crs": scene.crs, "transform": scene.transform}
    paths = folder / "before.tif", folder / "after.tif", folder / "footprints.geojson"
    with rasterio.open(paths[0], "w", **profile) as ds:
        ds.write(scene.before)
    after, a_profile = scene.after, profile
    if after_crs is not None or after_res is not None:
        after_crs = after_crs or scene.crs
        left, top = scene.transform.c, scene.transform.f
        bounds = (left, top + scene.transform.e * h, left + scene.transform.a * w, top)
        dt, dw, dh = calculate_default_transform(scene.crs, after_crs, w, h, *bounds, resolution=after_res)
        out = np.zeros((3, dh, dw), dtype=np.uint8)
        # Resampling.average when coarsening, as a sensor integrates over its pixel.
        coarser = after_res is not None and abs(dt.a) * abs(dt.e) > 0 and dw * dh < w * h
        reproject(after, out, src_transform=scene.transform, src_crs=scene.crs, dst_transform=dt, dst_crs=after_crs,
                  resampling=Resampling.average if coarser else Resampling.cubic)
        after, a_profile = out, {**profile, "crs": after_crs, "transform": dt, "width": dw, "height": dh}
    with rasterio.open(paths[1], "w", **a_profile) as ds:
        ds.write(after)
    scene.footprints.to_file(paths[2], driver="GeoJSON")
    return paths
