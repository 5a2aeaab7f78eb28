"""Render the grades of an assessment over its before and after imagery (a PNG to look at).

    python tools/render_grades.py BEFORE AFTER RESULT.geojson -o grades.png [--scale 1.0]

Before and after side by side on the assessment's grid, every footprint outlined in the
colour of its grade (green no damage, yellow minor, orange major, red destroyed, grey not
analysed). Uses Pillow, which scikit-image already brings.
"""

from __future__ import annotations

import argparse

import geopandas as gpd
import numpy as np
from PIL import Image, ImageDraw

from damage.io.sources import open_epoch
from damage.io.warp import footprint_grid, warp_epoch

COLOURS = {"no-damage": (40, 200, 60), "minor-damage": (250, 230, 40), "major-damage": (255, 140, 0),
           "destroyed": (230, 20, 20), "not-analysed": (160, 160, 160)}


def _image(array: np.ndarray, valid: np.ndarray) -> Image.Image:
    rgb = array[:3] if array.shape[0] >= 3 else np.repeat(array[:1], 3, axis=0)
    lo, hi = np.percentile(rgb[:, valid], [1, 99]) if valid.any() else (0, 255)
    out = np.clip((rgb - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)
    return Image.fromarray(np.moveaxis(out, 0, -1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("result")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--scale", type=float, default=1.0, help="zoom factor of the picture")
    args = ap.parse_args()
    result = gpd.read_file(args.result)
    be, ae = open_epoch(args.before, "before"), open_epoch(args.after, "after")
    grid = footprint_grid(be, ae, result.geometry)
    panels = []
    for epoch in (be, ae):
        r = warp_epoch(epoch, grid)
        img = _image(r.array.astype(np.float32), r.valid)
        if args.scale != 1.0:
            img = img.resize((int(img.width * args.scale), int(img.height * args.scale)), Image.LANCZOS)
        draw = ImageDraw.Draw(img)
        inv = ~grid.transform
        for geom, g in zip(result.geometry.to_crs(grid.crs), result["damage_grade"]):
            for part in getattr(geom, "geoms", [geom]):
                pts = [tuple(np.multiply(inv * xy, args.scale)) for xy in part.exterior.coords]
                draw.line(pts, fill=COLOURS.get(g, (255, 255, 255)), width=max(1, int(2 * args.scale)))
        panels.append(img)
    canvas = Image.new("RGB", (sum(p.width for p in panels) + 10, max(p.height for p in panels)), (255, 255, 255))
    x = 0
    for p in panels:
        canvas.paste(p, (x, 0))
        x += p.width + 10
    canvas.save(args.output)
    print(f"wrote {args.output} ({canvas.width} x {canvas.height})")


if __name__ == "__main__":
    main()
