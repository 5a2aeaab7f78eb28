"""Before/after chips and overview images: the evidence a person looks at.

Array code (no file is opened): the pixels come from the window the grades were
measured on (registered and normalised as measured), and leave as PNG bytes drawn with
Pillow (a well-kept imaging library: PNG encoding, antialiased outlines and text are not
ours to write).
"""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import numpy as np
import shapely
from affine import Affine

from damage.geo.raster import Window

__all__ = ["Chip", "cut_chip", "stretch", "png", "grade_colour", "Overview", "draw_footprints"]

#: Outline colours (RGB) of the grades of every scale, by position from least to most damage.
GRADE_RAMP = ((46, 204, 113), (241, 196, 15), (230, 126, 34), (192, 57, 43), (120, 20, 60))
NOT_ANALYSED_COLOUR = (160, 160, 160)


def grade_colour(grade: str | None, levels: tuple[str, ...]) -> tuple[int, int, int]:
    """The outline colour of ``grade`` on a scale of ``levels`` (green to red)."""
    if grade not in levels:
        return NOT_ANALYSED_COLOUR
    i = levels.index(grade)
    ramp = GRADE_RAMP if len(levels) > 4 else GRADE_RAMP[:4]
    pos = round(i * (len(ramp) - 1) / max(len(levels) - 1, 1))
    return ramp[pos]


@dataclasses.dataclass(frozen=True)
class Chip:
    """A building's before and after chips (PNG), at the same scale, and where they are.

    ``after`` shows the after image as it is (the footprint outlined); ``after_changed`` the same
    with the changed pixels inside the footprint tinted red (None when no change map was given).
    """

    before: bytes
    after: bytes
    metres_per_pixel: float
    size_px: tuple[int, int]
    after_changed: bytes | None = None


def stretch(rgb: np.ndarray, valid: np.ndarray, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """``(3, h, w)`` float pixels to ``(h, w, 3)`` uint8, each band stretched between percentiles of its valid pixels."""
    bands = rgb[:3] if rgb.shape[0] >= 3 else np.repeat(rgb[:1], 3, axis=0)
    out = np.zeros((*bands.shape[1:], 3), np.uint8)
    if not valid.any():
        return out
    for i, band in enumerate(bands):
        lo, hi = np.percentile(band[valid], [low, high])
        out[..., i] = np.clip((band - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
    out[~valid] = (40, 40, 40)
    return out


def _outline_px(geom, transform: Affine) -> list[list[tuple[float, float]]]:
    """Rings of a (multi)polygon in pixel coordinates of ``transform``."""
    inv = ~transform
    rings = []
    for part in shapely.get_parts(geom):
        for ring in [part.exterior, *part.interiors] if part.geom_type == "Polygon" else []:
            xs, ys = np.asarray(ring.coords).T
            cols, rows = inv * (xs, ys)
            rings.append(list(zip(cols, rows)))
    return rings


def png(image: np.ndarray, outlines: list[tuple[list, tuple[int, int, int], int]] | None = None, scale: int = 1,
        changed: np.ndarray | None = None, texts: list[tuple[float, float, str]] | None = None) -> bytes:
    """PNG bytes of an ``(h, w, 3)`` uint8 image, enlarged ``scale`` times, with outlines drawn on it.

    ``outlines``: ``(rings in pixel coordinates, colour, width)``; ``changed``: a bool
    mask tinted red (the changed pixels inside footprints); ``texts``: ``(col, row, text)``
    labels in pixel coordinates, drawn black on white.
    """
    from PIL import Image, ImageDraw

    img = image.copy()
    if changed is not None and changed.any():
        tint = np.array([255, 40, 40], np.float32)
        img[changed] = (0.55 * img[changed] + 0.45 * tint).astype(np.uint8)
    pil = Image.fromarray(img)
    if scale > 1:
        pil = pil.resize((pil.width * scale, pil.height * scale), Image.Resampling.NEAREST)
    draw = ImageDraw.Draw(pil)
    for rings, colour, width in outlines or []:
        for ring in rings:
            pts = [(c * scale, r * scale) for c, r in ring]
            if len(pts) > 1:
                draw.line(pts + [pts[0]], fill=colour, width=width)
    for col, row, text in texts or []:
        x, y = col * scale, row * scale
        box = draw.textbbox((x, y), text)
        draw.rectangle([box[0] - 2, box[1] - 1, box[2] + 2, box[3] + 1], fill=(255, 255, 255))
        draw.text((x, y), text, fill=(0, 0, 0))
    buf = io.BytesIO()
    pil.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def cut_chip(before: np.ndarray, after: np.ndarray, valid: np.ndarray, transform: Affine, geom, colour,
             metres_per_unit: float, changed: np.ndarray | None = None, pad_m: float = 15.0,
             min_side_px: int = 200) -> Chip | None:
    """Before and after chips of one building: its bounds and ``pad_m`` metres around, from a window's pixels.

    Parameters
    ----------
    before, after : numpy.ndarray
        ``(bands, h, w)`` pixels of the window (after registered and normalised).
    valid : numpy.ndarray
        ``(h, w)`` valid in both epochs.
    transform : affine.Affine
        The window's transform.
    geom : shapely geometry
        The footprint, in the window's CRS.
    colour : tuple
        Outline colour (its grade).
    metres_per_unit : float
        Metres per CRS unit along x.
    changed : numpy.ndarray, optional
        ``(h, w)`` changed pixels to tint.
    """
    res = abs(transform.a) * metres_per_unit
    pad = int(np.ceil(pad_m / max(res, 1e-9)))
    inv = ~transform
    x0, y0, x1, y1 = shapely.bounds(geom)
    cols, rows = inv * (np.array([x0, x1, x0, x1]), np.array([y0, y0, y1, y1]))
    if cols.max() <= 0 or rows.max() <= 0 or cols.min() >= before.shape[2] or rows.min() >= before.shape[1]:
        return None  # the footprint lies off the image (on any side)
    c0, c1 = int(np.floor(cols.min())) - pad, int(np.ceil(cols.max())) + pad
    r0, r1 = int(np.floor(rows.min())) - pad, int(np.ceil(rows.max())) + pad
    side = max(c1 - c0, r1 - r0, 8)
    cc, rc = (c0 + c1) // 2, (r0 + r1) // 2
    c0, r0 = max(cc - side // 2, 0), max(rc - side // 2, 0)
    c1, r1 = min(c0 + side, before.shape[2]), min(r0 + side, before.shape[1])
    if c1 - c0 < 4 or r1 - r0 < 4:
        return None
    cut = (slice(r0, r1), slice(c0, c1))
    v = valid[cut]
    sub = transform * Affine.translation(c0, r0)
    rings = _outline_px(geom, sub)
    scale = max(1, int(np.ceil(min_side_px / max(r1 - r0, c1 - c0))))
    both = np.concatenate([before[(slice(None), *cut)], after[(slice(None), *cut)]], axis=2)
    vv = np.concatenate([v, v], axis=1)
    stretched = stretch(both, vv)  # one stretch for both epochs: the same colours mean the same light
    w = c1 - c0
    mask = None
    if changed is not None:  # the changed pixels inside the footprint only (ground change is not its evidence)
        from rasterio.features import rasterize

        inside = rasterize([geom], out_shape=(r1 - r0, c1 - c0), transform=sub, dtype="uint8").astype(bool)
        mask = changed[cut] & inside
    return Chip(png(stretched[:, :w], [(rings, colour, 2)], scale),
                png(stretched[:, w:], [(rings, colour, 2)], scale),
                round(res / scale, 3), (r1 - r0, c1 - c0),
                png(stretched[:, w:], [(rings, colour, 2)], scale, mask) if mask is not None else None)


@dataclasses.dataclass
class Overview:
    """A small mosaic of both epochs over the whole grid, filled window by window."""

    shape: tuple[int, int]  # grid pixels
    factor: int  # grid pixels per overview pixel
    before: np.ndarray
    after: np.ndarray
    valid: np.ndarray

    @classmethod
    def empty(cls, grid_shape: tuple[int, int], max_side: int = 1400, bands: int = 3) -> Overview:
        f = max(1, int(np.ceil(max(grid_shape) / max_side)))
        h, w = -(-grid_shape[0] // f), -(-grid_shape[1] // f)
        return cls(grid_shape, f, np.zeros((bands, h, w), np.float32), np.zeros((bands, h, w), np.float32),
                   np.zeros((h, w), bool))

    def add(self, window: Window, before: np.ndarray, after: np.ndarray, valid: np.ndarray) -> None:
        """Paste a window's pixels (decimated) into the overview."""
        r0, c0, h, w = window
        f = self.factor
        rr = np.arange(-(-r0 // f) * f, r0 + h, f)  # grid rows on the overview lattice inside the window
        cc = np.arange(-(-c0 // f) * f, c0 + w, f)
        if rr.size == 0 or cc.size == 0:
            return
        sub = np.ix_(rr - r0, cc - c0)
        orow, ocol = np.ix_(rr // f, cc // f)
        n = min(before.shape[0], self.before.shape[0])
        v = valid[sub]
        for i in range(n):
            self.before[i][orow, ocol] = np.where(v, before[i][sub], self.before[i][orow, ocol])
            self.after[i][orow, ocol] = np.where(v, after[i][sub], self.after[i][orow, ocol])
        self.valid[orow, ocol] |= v


#: Outline colour of facilities on the overview (cyan: apart from every grade's colour).
FACILITY_COLOUR = (0, 200, 255)


def draw_footprints(image: np.ndarray, geoms, colours, transform: Affine, width: int = 2, scale: int = 1,
                    labelled: list[tuple[Any, str]] | None = None, facilities: list[tuple[Any, str]] | None = None) -> bytes:
    """PNG of ``image`` with every footprint outlined in its colour (``transform``: the image's).

    ``labelled``: ``(geometry, text)`` of buildings whose id is written beside them;
    ``facilities``: ``(geometry, name)`` outlined thick in :data:`FACILITY_COLOUR`, named.
    """
    outlines = [(_outline_px(g, transform), c, width) for g, c in zip(geoms, colours) if g is not None]
    texts = []
    inv = ~transform
    for geom, name in facilities or []:
        if geom is None or geom.is_empty:
            continue
        outlines.append((_outline_px(geom, transform), FACILITY_COLOUR, width + 2))
        x0, y0, x1, y1 = geom.bounds
        col, row = inv * (x0, y1)
        texts.append((col, max(row - 12 / scale, 0.0), name))
    for geom, text in labelled or []:
        if geom is None or geom.is_empty:
            continue
        x0, y0, x1, y1 = geom.bounds
        col, row = inv * (x1, y1)
        texts.append((col + 2 / scale, row, text))
    return png(image, outlines, scale, texts=texts)
