"""Synthetic Sentinel-1-like stacks with known damage, for tests, benchmarks and users.

A town of building blocks (bright double-bounce returns) between streets and open
ground, imaged every ``revisit`` days before and after an event, in VV and VH linear
power with gamma-distributed speckle of ``looks`` looks. After the event, damaged
buildings lose part of their double bounce and their returns scatter (a fixed rubble
texture): minor damage -1.5 dB, major -4 dB, destroyed -7 dB on average. Nuisances of
real stacks, each switchable: images from two orbits with different incidence angles
(each orbit its own brightness), a date with wet soil, and one corrupted acquisition
(a calibration failure: every value 30 dB too high). Array code: :func:`write_stack`
is the one function that writes files.
"""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from affine import Affine

__all__ = ["SarImage", "SarStack", "make_sar_stack", "write_stack", "DROP_DB"]

#: Mean loss of building backscatter, in dB, per xBD grade after the event.
DROP_DB = {"no-damage": 0.0, "minor-damage": 1.5, "major-damage": 4.0, "destroyed": 7.0}
_GRADES = tuple(DROP_DB)


@dataclasses.dataclass(frozen=True)
class SarImage:
    """One acquisition: date, orbit and ``(2, rows, cols)`` VV/VH linear power."""

    date: datetime.date
    orbit: str
    power: np.ndarray


@dataclasses.dataclass(frozen=True)
class SarStack:
    """Before and after images on one grid, and the footprints with their truth."""

    before: list[SarImage]
    after: list[SarImage]
    transform: Affine
    crs: str
    footprints: gpd.GeoDataFrame
    event: datetime.date


def _db(x: np.ndarray | float) -> np.ndarray:
    return 10.0 ** (np.asarray(x) / 10.0)


def make_sar_stack(
    size: int = 200,
    n_before: int = 6,
    n_after: int = 3,
    looks: float = 4.4,
    damage_share: float = 0.35,
    seed: int = 0,
    incidence: bool = False,
    wet_date: int | None = None,
    corrupted: int | None = None,
    res: float = 10.0,
    origin: tuple[float, float] = (600_000.0, 3_500_000.0),
    crs: str = "EPSG:32636",
    event: datetime.date = datetime.date(2023, 10, 7),
    revisit: int = 12,
) -> SarStack:
    """Make a stack with known damage.

    Parameters
    ----------
    size : int
        Side of the scene in pixels.
    n_before, n_after : int
        Images before and after the event (at least 1 each).
    looks : float
        Equivalent number of looks of the speckle (Sentinel-1 GRD IW: about 4.4).
    damage_share : float
        Share of buildings damaged (a third each minor, major, destroyed), clustered
        around one strike point per 150 buildings.
    seed : int
        Seed of every random choice.
    incidence : bool
        Alternate two orbits ("87" and "160") whose incidence differs: buildings 2.5 dB
        brighter and ground 1.5 dB darker in the second.
    wet_date : int, optional
        Index of a before image with wet soil (open ground +3 dB).
    corrupted : int, optional
        Index of an after image whose calibration failed (every value +30 dB).
    res, origin, crs
        Pixel size, upper-left corner and CRS.
    event, revisit
        Date of the event and days between acquisitions.
    """
    if n_before < 1 or n_after < 1:
        raise ValueError("a stack needs at least one image before and one after")
    rng = np.random.default_rng(seed)
    h = w = size
    # -- blocks of buildings between streets
    ground_db = np.stack([-12.0 + rng.normal(0, 1.0, (h, w)), -19.0 + rng.normal(0, 1.0, (h, w))])
    labels = np.zeros((h, w), dtype=np.int32)
    polys: list[shapely.Polygon] = []
    building_db: list[tuple[float, float]] = []
    y = 2
    while y < h - 6:
        bh = int(rng.integers(2, 5))
        x = 2
        while x < w - 6:
            bw = int(rng.integers(2, 5))
            if rng.random() < 0.85:
                labels[y : y + bh, x : x + bw] = len(polys) + 1
                x0, y0 = origin[0] + x * res, origin[1] - y * res
                polys.append(shapely.box(x0, y0 - bh * res, x0 + bw * res, y0))
                building_db.append((rng.normal(-4.0, 1.5), rng.normal(-11.0, 1.5)))
            x += bw + int(rng.integers(2, 4))
        y += bh + int(rng.integers(2, 4))
    n = len(polys)
    bdb = np.array(building_db)  # (n, 2) building VV, VH in dB
    grades = np.array(["no-damage"] * n, dtype=object)
    # Damage clusters around a few strike points, as bombing or a tornado leaves it.
    centres = np.array([[p.centroid.x, p.centroid.y] for p in polys])
    strikes = centres[rng.choice(n, max(1, n // 150), replace=False)]
    dist = np.min(np.hypot(centres[:, None, 0] - strikes[None, :, 0], centres[:, None, 1] - strikes[None, :, 1]), axis=1)
    hit = np.argsort(dist + rng.normal(0, 3 * res, n))[: int(round(damage_share * n))]
    grades[hit] = np.array(_GRADES[1:], dtype=object)[rng.permutation(np.arange(hit.size) % 3)]
    drop = np.array([DROP_DB[g] for g in grades])
    building = labels > 0
    idx = labels[building] - 1
    rubble = rng.normal(0, 2.5, (2, h, w))  # the static texture of debris, dB

    def scene_db(after: bool, orbit_b: bool, wet: bool) -> np.ndarray:
        img = ground_db.copy()
        if wet:
            img[:, ~building] += 3.0
        for b in range(2):
            val = bdb[idx, b] - (drop[idx] if after else 0.0)
            if after:
                val = val + np.where(drop[idx] > 0, rubble[b][building] * (drop[idx] / 7.0), 0.0)
            img[b][building] = val
        if orbit_b:
            img[:, building] += 2.5
            img[:, ~building] -= 1.5
        return img

    def image(k: int, after: bool) -> SarImage:
        number = k if not after else n_before + k
        date = event + datetime.timedelta(days=revisit * (k + 1 if after else k - n_before))
        orbit_b = incidence and number % 2 == 1
        db = scene_db(after, orbit_b, wet=(not after and wet_date == k))
        db = db + rng.normal(0, 0.3)  # the whole scene varies a little from date to date
        mean = _db(db)
        power = rng.gamma(looks, 1.0 / looks, mean.shape) * mean
        if after and corrupted == k:
            power = power * 1000.0
        return SarImage(date, "160" if orbit_b else "87", power.astype(np.float32))

    before = [image(k, False) for k in range(n_before)]
    after = [image(k, True) for k in range(n_after)]
    fp = gpd.GeoDataFrame(
        {"building_id": np.arange(n), "true_grade": grades, "damaged": np.isin(grades, ["major-damage", "destroyed"])},
        geometry=polys,
        crs=crs,
    )
    return SarStack(before, after, Affine(res, 0, origin[0], 0, -res, origin[1]), crs, fp, event)


def write_stack(stack: SarStack, folder: str | Path, units: str = "power") -> tuple[list[Path], list[Path], Path]:
    """Write every image as ``S1_<orbit>_<YYYYMMDD>.tif`` under ``before/`` and ``after/``.

    Each file carries its date (``ACQUISITION_DATE``), orbit (``RELATIVE_ORBIT``) and
    units (``SAR_UNITS``) as tags; ``units`` may be ``power``, ``amplitude`` or ``db``.
    Returns the before paths, the after paths and the footprints path.
    """
    import rasterio

    folder = Path(folder)
    out: list[list[Path]] = [[], []]
    for side, images in enumerate((stack.before, stack.after)):
        sub = folder / ("before", "after")[side]
        sub.mkdir(parents=True, exist_ok=True)
        for im in images:
            data = {"power": im.power, "amplitude": np.sqrt(im.power), "db": 10 * np.log10(np.maximum(im.power, 1e-10))}[units]
            path = sub / f"S1_{im.orbit}_{im.date:%Y%m%d}.tif"
            profile = {"driver": "GTiff", "count": 2, "dtype": "float32", "height": data.shape[1], "width": data.shape[2],
                       "crs": stack.crs, "transform": stack.transform, "compress": "deflate"}
            with rasterio.open(path, "w", **profile) as ds:
                ds.write(data.astype(np.float32))
                ds.update_tags(ACQUISITION_DATE=im.date.isoformat(), RELATIVE_ORBIT=im.orbit, SAR_UNITS=units)
                ds.descriptions = ("VV", "VH")
            out[side].append(path)
    fpath = folder / "footprints.geojson"
    stack.footprints.to_file(fpath, driver="GeoJSON")
    return out[0], out[1], fpath
