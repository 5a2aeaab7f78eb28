"""Realistic synthetic towns with exact per-building truth, and the nuisances of real pairs.

:func:`make_town` draws a town of streets, lawns, trees and houses of varied shapes
(rectangles and L-shapes, some rotated, hip roofs lit from one side, cast shadows),
grades some houses on the xBD scale, and renders a before and an after image:

- ``minor-damage``: a few holes and missing shingles (about a tenth of the roof);
- ``major-damage``: part of the roof collapsed into rubble;
- ``destroyed``: the whole house is rubble, debris spills out, the shadow is gone.

Each nuisance of :class:`Nuisances` is switchable and graded in strength. The truth
(``true_grade``, ``damaged``, and ``cloud_fraction``: the share of the footprint
under cloud or cloud shadow in the after image) is in the footprints. Array code:
:func:`damage.scenes.synthetic.write_pair` writes a town to files, optionally with the after
image in another CRS and pixel size (two more nuisances).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from affine import Affine
from rasterio.features import rasterize
from scipy import ndimage

from .synthetic import Scene

__all__ = ["Nuisances", "make_town", "GRADES"]

GRADES = ("no-damage", "minor-damage", "major-damage", "destroyed")
_ROOF_COLOURS = np.array([[120, 115, 112], [150, 90, 70], [90, 85, 85], [175, 165, 150], [110, 95, 80], [140, 140, 150]])
_GRASS = np.array([92.0, 118.0, 68.0])
_GRASS_DRY = np.array([150.0, 138.0, 95.0])
_CANOPY = np.array([45.0, 72.0, 38.0])
_CANOPY_BARE = np.array([100.0, 88.0, 72.0])
_ROAD = np.array([118.0, 116.0, 113.0])
_HAZE = np.array([205.0, 210.0, 220.0])


@dataclasses.dataclass(frozen=True)
class Nuisances:
    """What makes a real after image differ from the before one besides damage.

    Every field's default is "off".

    Parameters
    ----------
    shift : (float, float)
        ``(dy, dx)`` misregistration of the after image, in pixels.
    rotation : float
        Rotation of the after image about the scene centre, in degrees.
    parallax : float
        Lean of the roofs of the tallest houses in the after image, in pixels (off-nadir
        view); lower houses lean proportionally less.
    gain, offset, gamma : float
        After sensor response: ``255 * gain * (x / 255) ** gamma + offset``.
    cast : (float, float, float)
        Per-band gain (a colour cast).
    haze : float
        0-1: share of a bright haze veil blended into the after image (varies in space).
    clouds : float
        0-1: share of the scene under opaque cloud in the after image; each cloud casts
        a shadow.
    season : float
        0-1: lawns dry out and trees lose their leaves in the after image.
    sun : float
        Change of the sun azimuth between the epochs, in degrees (shadows move).
    noise : float
        Standard deviation of sensor noise, in digital numbers, in both epochs.
    new_buildings : int
        Houses built after the before image on empty lots next to footprints (not in
        the footprints).
    """

    shift: tuple[float, float] = (0.0, 0.0)
    rotation: float = 0.0
    parallax: float = 0.0
    gain: float = 1.0
    offset: float = 0.0
    gamma: float = 1.0
    cast: tuple[float, float, float] = (1.0, 1.0, 1.0)
    haze: float = 0.0
    clouds: float = 0.0
    season: float = 0.0
    sun: float = 0.0
    noise: float = 2.0
    new_buildings: int = 0

    def replace(self, **changes: Any) -> Nuisances:
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass
class _House:
    poly: shapely.Polygon  # pixel coordinates (x = col, y = row)
    angle: float  # radians, of the long axis
    height: float  # pixels of shadow per unit sun length
    colour: np.ndarray


def _smooth(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Smooth noise of unit standard deviation."""
    f = ndimage.gaussian_filter(rng.normal(0, 1, shape), sigma, mode="wrap")
    return f / max(f.std(), 1e-9)


def _layout(rng: np.random.Generator, size: int, block: int, road: int) -> tuple[list[_House], np.ndarray]:
    """Streets every ``block`` pixels and houses in two rows per block."""
    roads = np.zeros((size, size), bool)
    strips = []
    for k in range(block // 2, size, block):
        lo, hi = max(k - road // 2, 0), k + road // 2
        roads[lo:hi, :] = True
        roads[:, lo:hi] = True
        strips += [shapely.box(0, lo - 1, size, hi + 1), shapely.box(lo - 1, 0, hi + 1, size)]
    road_geom = shapely.union_all(strips)
    inside = shapely.box(2, 2, size - 2, size - 2)
    houses: list[_House] = []
    lot = 30
    starts = list(range(block // 2 + road // 2 + 2, size - lot, block))
    for by in [0] + starts:
        for bx in [0] + starts:
            for row in range(2):
                for col in range(max(1, (block - road) // lot)):
                    cy = by + (row + 0.5) * (block - road) / 2
                    cx = bx + (col + 0.5) * lot
                    if cy > size - 12 or cx > size - 12 or rng.random() < 0.15:
                        continue
                    w, h = rng.uniform(12, 22), rng.uniform(10, 16)
                    poly = shapely.box(-w / 2, -h / 2, w / 2, h / 2)
                    if rng.random() < 0.35:  # an L-shaped wing
                        ww, hh = rng.uniform(5, w / 2), rng.uniform(4, 7)
                        poly = shapely.union(poly, shapely.box(w / 2 - ww, h / 2 - 0.5, w / 2, h / 2 + hh))
                    angle = math.radians(rng.uniform(-12, 12)) if rng.random() < 0.5 else 0.0
                    poly = shapely.affinity.rotate(poly, angle, origin=(0, 0), use_radians=True)
                    poly = shapely.affinity.translate(poly, cx + rng.uniform(-2, 2), cy + rng.uniform(-2, 2))
                    if not inside.contains(poly) or poly.intersects(road_geom):
                        continue
                    houses.append(_House(poly, angle, rng.uniform(3, 8), _ROOF_COLOURS[rng.integers(len(_ROOF_COLOURS))]))
    return houses, roads


def _mask(polys: list, shape: tuple[int, int]) -> np.ndarray:
    if not polys:
        return np.zeros(shape, bool)
    return rasterize(((p, 1) for p in polys), out_shape=shape, transform=Affine.identity(), dtype="uint8") > 0


def _shadow(mask: np.ndarray, height: float, azimuth: float) -> np.ndarray:
    """Cells a body of ``mask`` with ``height`` shades when the sun shines from ``azimuth``."""
    dy, dx = math.cos(math.radians(azimuth)), -math.sin(math.radians(azimuth))  # shade away from the sun
    out = np.zeros_like(mask)
    for t in np.arange(1.0, height + 0.5, 1.0):
        out |= ndimage.shift(mask, (dy * t, dx * t), order=0, mode="constant", cval=False)
    return out & ~mask


def _ground(rng: np.random.Generator, size: int, roads: np.ndarray, trees: np.ndarray, season: float) -> np.ndarray:
    lawn = _GRASS + season * (_GRASS_DRY - _GRASS)
    canopy = _CANOPY + season * (_CANOPY_BARE - _CANOPY)
    img = lawn[:, None, None] + 10 * _smooth(rng, (size, size), 3)[None] + 4 * rng.normal(0, 1, (3, size, size))
    img[:, trees] = canopy[:, None] + (12 + 10 * season) * rng.normal(0, 1, (3, int(trees.sum())))
    img[:, roads] = _ROAD[:, None] + 3 * rng.normal(0, 1, (3, int(roads.sum())))
    return img


def _roof(house: _House, mask: np.ndarray, rng: np.random.Generator, sun_az: float) -> np.ndarray:
    """Hip roof: the plane facing the sun is brighter, the ridge brightest."""
    rr, cc = np.nonzero(mask)
    c = house.poly.centroid
    nx, ny = -math.sin(house.angle), math.cos(house.angle)  # normal to the long axis
    d = (cc - c.x) * nx + (rr - c.y) * ny
    facing = math.cos(math.radians(sun_az)) * (-ny) + (-math.sin(math.radians(sun_az))) * (-nx)
    light = np.where(d < 0, 1.0 + 0.12 * np.sign(facing), 1.0 - 0.12 * np.sign(facing))
    light = np.where(np.abs(d) < 0.8, 1.15, light)
    vals = house.colour[:, None] * light[None] + 3 * rng.normal(0, 1, (3, rr.size))
    return vals


def _rubble(rng: np.random.Generator, n: int, roof: np.ndarray) -> np.ndarray:
    """Debris at 1-2 px: mostly broken pieces of the roof itself (its colour, lit at
    random angles), the rest wood, plaster and shadowed gaps. Its mean colour stays
    near the roof's, so colour difference alone does not give it away."""
    palette = np.array([[150, 120, 90], [200, 195, 185], [90, 80, 70], [170, 150, 130], [60, 55, 50], [130, 110, 100]], float)
    own = roof[None, :] * rng.uniform(0.55, 1.3, (n, 1))
    other = palette[rng.integers(len(palette), size=n)]
    pick = rng.random(n) < 0.6
    return (np.where(pick[:, None], own, other) + rng.normal(0, 12, (n, 3))).T


def make_town(
    size: int = 512,
    seed: int = 0,
    damage_share: float = 0.45,
    nuisances: Nuisances | None = None,
    res: float = 0.5,
    origin: tuple[float, float] = (500_000.0, 4_100_000.0),
    crs: str = "EPSG:32615",
) -> Scene:
    """Draw a town and render it before and after an event.

    Parameters
    ----------
    size : int
        Side of the square scene in pixels.
    seed : int
        Seed of every random choice: the same arguments give the same town.
    damage_share : float
        Share of houses damaged; they split evenly between minor, major and destroyed
        and cluster in a swath across the town, as a tornado or a strike would leave them.
    nuisances : Nuisances, optional
        What else differs between the epochs (default: only sensor noise).
    res, origin, crs
        Pixel size and upper-left corner, in units of ``crs``.

    Returns
    -------
    damage.scenes.synthetic.Scene
        Footprints carry ``building_id``, ``true_grade``, ``damaged`` (major-damage
        or destroyed) and ``cloud_fraction``.
    """
    nz = nuisances or Nuisances()
    rng = np.random.default_rng(seed)
    shape = (size, size)
    houses, roads = _layout(rng, size, block=128, road=8)
    # -- truth: damage in a diagonal swath
    n = len(houses)
    cent = np.array([[h.poly.centroid.x, h.poly.centroid.y] for h in houses])
    swath = np.abs((cent[:, 0] - cent[:, 1]) / math.sqrt(2) + rng.uniform(-0.1, 0.1) * size)
    order = np.argsort(swath + rng.normal(0, size * 0.08, n))
    grade_idx = np.zeros(n, dtype=int)
    hit = order[: int(round(damage_share * n))]
    grade_idx[hit] = 1 + np.arange(hit.size) % 3
    grade_idx[hit] = rng.permutation(grade_idx[hit])
    # -- trees on the lawns, not on houses or roads
    house_mask = _mask([h.poly for h in houses], shape)
    trees = (_smooth(rng, shape, 4) > 1.3) & ~roads & ~ndimage.binary_dilation(house_mask, iterations=2)
    sun_b = 135.0  # sun from the south-east: shadows fall to the north-west
    before = _render(rng, houses, roads, trees, np.zeros(n, int), sun_b, 0.0, 0.0, [])
    new = _new_buildings(rng, houses, roads | trees, shape, nz.new_buildings)
    after = _render(rng, houses, roads, trees, grade_idx, sun_b + nz.sun, nz.season, nz.parallax, new)
    after, cloud = _atmosphere(rng, after, nz, res)
    after = _warp(after, nz.shift, nz.rotation)
    before = before + rng.normal(0, nz.noise, before.shape)
    after = after + rng.normal(0, nz.noise, after.shape)
    # -- footprints in the CRS, with the truth
    transform = Affine(res, 0, origin[0], 0, -res, origin[1])
    geoms = [shapely.affinity.affine_transform(h.poly, [res, 0, 0, -res, origin[0], origin[1]]) for h in houses]
    labels = rasterize(((h.poly, i + 1) for i, h in enumerate(houses)), out_shape=shape, transform=Affine.identity(), dtype="int32")
    lab = labels.ravel()
    counts = np.bincount(lab, minlength=n + 1)[1:]
    clouded = np.bincount(lab, weights=cloud.ravel(), minlength=n + 1)[1:]
    grades = np.array(GRADES, dtype=object)[grade_idx]
    fp = gpd.GeoDataFrame(
        {
            "building_id": np.arange(n),
            "true_grade": grades,
            "damaged": grade_idx >= 2,
            "cloud_fraction": np.round(clouded / np.maximum(counts, 1), 3),
        },
        geometry=geoms,
        crs=crs,
    )
    to8 = lambda a: np.clip(np.rint(a), 1, 255).astype(np.uint8)  # noqa: E731
    return Scene(to8(before), to8(after), transform, crs, fp)


def _new_buildings(rng: np.random.Generator, houses: list[_House], blocked: np.ndarray, shape: tuple[int, int], count: int) -> list[_House]:
    """Small houses on free ground just beside existing footprints."""
    out: list[_House] = []
    taken = shapely.union_all([h.poly.buffer(2) for h in houses]) if houses else shapely.Polygon()
    tries = 0
    while len(out) < count and tries < 200 * max(count, 1):
        tries += 1
        h = houses[rng.integers(len(houses))]
        b = h.poly.bounds
        side = rng.integers(4)
        w, hh = rng.uniform(8, 12), rng.uniform(7, 10)
        gap = rng.uniform(3, 6)
        cx = [b[0] - gap - w / 2, b[2] + gap + w / 2, (b[0] + b[2]) / 2, (b[0] + b[2]) / 2][side]
        cy = [(b[1] + b[3]) / 2, (b[1] + b[3]) / 2, b[1] - gap - hh / 2, b[3] + gap + hh / 2][side]
        poly = shapely.box(cx - w / 2, cy - hh / 2, cx + w / 2, cy + hh / 2)
        if not shapely.box(2, 2, shape[1] - 2, shape[0] - 2).contains(poly) or poly.intersects(taken):
            continue
        m = _mask([poly], shape)
        if (m & blocked).any():
            continue
        out.append(_House(poly, 0.0, rng.uniform(3, 5), _ROOF_COLOURS[rng.integers(len(_ROOF_COLOURS))]))
        taken = taken.union(poly.buffer(2))
    return out


def _render(rng, houses, roads, trees, grade_idx, sun_az, season, parallax, new) -> np.ndarray:
    shape = roads.shape
    img = _ground(rng, shape[0], roads, trees, season)
    tree_shadow = _shadow(trees, 5.0, sun_az) & ~trees & ~roads
    img[:, tree_shadow] *= 0.55
    max_h = max((h.height for h in houses), default=1.0)
    everything = list(zip(houses, grade_idx)) + [(h, 0) for h in new]
    # shadows first, then roofs, so roofs are never darkened
    masks = []
    for house, g in everything:
        lean = parallax * house.height / max_h
        poly = shapely.affinity.translate(house.poly, -lean * 0.6, -lean * 0.8) if lean else house.poly
        m = _mask([poly], shape)
        masks.append((house, g, m))
        if g < 3:
            height = house.height * (0.5 if g == 2 else 1.0)
            sh = _shadow(m, height, sun_az)
            img[:, sh] *= 0.5
    standing = np.zeros(shape, bool)  # roofs still standing: debris falls beside them, not on them
    for _, g, m in masks:
        if g < 3:
            standing |= m
    for house, g, m in masks:
        img[:, m] = _roof(house, m, rng, sun_az)
        rr, cc = np.nonzero(m)
        if g == 1:  # holes and missing shingles: about a tenth of the roof
            holes = np.zeros(shape, bool)
            for _ in range(max(1, rr.size // 60)):
                k = rng.integers(rr.size)
                r, c = rr[k], cc[k]
                holes[r : r + rng.integers(2, 4), c : c + rng.integers(2, 4)] = True
            holes &= m
            img[:, holes] = _rubble(rng, int(holes.sum()), house.colour) * 0.6
        elif g == 2:  # part of the roof collapsed
            ang = rng.uniform(0, 2 * math.pi)
            proj = (cc - cc.mean()) * math.cos(ang) + (rr - rr.mean()) * math.sin(ang)
            cut = np.quantile(proj, rng.uniform(0.35, 0.55))
            part = np.zeros(shape, bool)
            part[rr[proj > cut], cc[proj > cut]] = True
            img[:, part] = _rubble(rng, int(part.sum()), house.colour)
        elif g == 3:  # all of it, and debris spilling out
            spill = ndimage.binary_dilation(m, iterations=int(rng.integers(2, 5))) & ~roads & ~standing
            spill &= m | (rng.random(shape) < 0.7)  # scattered beyond the walls
            img[:, spill] = _rubble(rng, int(spill.sum()), house.colour)
    return img


def _atmosphere(rng: np.random.Generator, img: np.ndarray, nz: Nuisances, res: float) -> tuple[np.ndarray, np.ndarray]:
    """Haze, clouds with shadows, and the after sensor's response; returns the cloud/shadow mask.

    Clouds are blobs some tens of metres across (a smooth field of 30 m correlation
    length); their shadows fall 30 m south and 25 m west.
    """
    shape = img.shape[1:]
    cloud_any = np.zeros(shape, bool)
    if nz.clouds > 0:
        field = _smooth(rng, shape, 30.0 / res)
        thr = np.quantile(field, 1 - nz.clouds)
        alpha = np.clip((field - thr) / 0.25, 0, 1)
        shadow = ndimage.shift(alpha, (30.0 / res, -25.0 / res), order=1, mode="constant")
        shadow = shadow * (1 - alpha)
        img = img * (1 - 0.55 * shadow)[None]
        white = np.array([238.0, 240.0, 245.0])[:, None, None] + 6 * _smooth(rng, shape, 3)[None]
        img = img * (1 - alpha)[None] + white * alpha[None]
        cloud_any = (alpha > 0.5) | (shadow > 0.5)
    if nz.haze > 0:
        veil = nz.haze * np.clip(0.7 + 0.3 * _smooth(rng, shape, max(shape) / 8), 0, 1)
        img = img * (1 - veil)[None] + _HAZE[:, None, None] * veil[None]
    cast = np.asarray(nz.cast, float)[:, None, None]
    img = 255.0 * nz.gain * cast * (np.clip(img, 0, 255) / 255.0) ** nz.gamma + nz.offset
    return img, cloud_any


def _warp(img: np.ndarray, shift: tuple[float, float], rotation: float) -> np.ndarray:
    """Move the after image content by ``shift`` pixels and rotate it by ``rotation`` degrees."""
    if shift == (0.0, 0.0) and rotation == 0.0:
        return img
    h, w = img.shape[1:]
    t = math.radians(rotation)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    centre = np.array([h / 2, w / 2])
    # output (r, c) samples input rot @ ((r, c) - centre - shift) + centre
    offset = centre - rot @ (centre + np.asarray(shift))
    return np.stack([ndimage.affine_transform(b, rot, offset=offset, order=3, mode="nearest") for b in img])
