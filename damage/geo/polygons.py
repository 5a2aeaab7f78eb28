"""Changed areas inside footprints, as polygons tagged with their footprint."""

from __future__ import annotations

import numpy as np
import shapely
from rasterio.features import shapes, sieve

from damage.geo.raster import Grid
from damage.geo.zonal import Zones

__all__ = ["changed_polygons"]


def changed_polygons(changed: np.ndarray, zs: Zones, grid: Grid, min_pixels: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Vectorise a per-pixel change mask within footprints.

    Parameters
    ----------
    changed : numpy.ndarray
        ``(rows, cols)`` bool, True where a pixel changed.
    zs : Zones
        The footprints' label images on ``grid``.
    grid : Grid
    min_pixels : int
        Changed specks smaller than this (8-connected) are dropped first.

    Returns
    -------
    geoms : numpy.ndarray
        Polygons in the grid CRS.
    footprint : numpy.ndarray
        Index (0-based, input order) of each polygon's footprint.
    """
    mask = changed.astype(np.uint8)
    if min_pixels > 1:
        mask = sieve(mask, size=min_pixels, connectivity=8)
    geoms: list[dict] = []
    owners: list[int] = []
    for labels in zs.layers:
        image = np.where(mask > 0, labels, 0).astype(np.int32)
        if not image.any():
            continue
        for geom, value in shapes(image, mask=image > 0, connectivity=4, transform=grid.transform):
            geoms.append(geom)
            owners.append(int(value) - 1)
    if not geoms:
        return np.empty(0, dtype=object), np.empty(0, dtype=np.int64)
    polys = shapely.from_geojson([_as_json(g) for g in geoms])
    owners_arr = np.asarray(owners, dtype=np.int64)
    keep = shapely.area(polys) >= min_pixels * grid.res**2 * 0.999
    return polys[keep], owners_arr[keep]


def _as_json(geom: dict) -> str:
    import json

    return json.dumps(geom)
