"""Cut sample_tiles/ from the Joplin data in ../shared/data/joplin (run from the repo root).

Each original tile that meets the crop area is cut in its own CRS and pixel grid,
so the sample keeps the two epochs' different CRSs, pixel sizes and tilings.
"""

from __future__ import annotations

import sys
from pathlib import Path

import geopandas as gpd
import rasterio
from rasterio.warp import transform_bounds
from rasterio.windows import from_bounds
from shapely.geometry import box

SRC = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/joplin")
DST = Path("sample_tiles")
# Crop area in EPSG:26915 (UTM 15N): the tornado swath and the less damaged blocks north of it.
AREA = (366850.0, 4103480.0, 367230.0, 4104160.0)
CRS = "EPSG:26915"


def cut(epoch: str) -> None:
    out_dir = DST / epoch
    out_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted((SRC / ("pre" if epoch == "before" else "post")).glob("*.tif")):
        with rasterio.open(path) as ds:
            bounds = transform_bounds(CRS, ds.crs, *AREA, densify_pts=21)
            tb = ds.bounds
            inter = (max(bounds[0], tb.left), max(bounds[1], tb.bottom), min(bounds[2], tb.right), min(bounds[3], tb.top))
            if inter[0] >= inter[2] or inter[1] >= inter[3]:
                continue
            win = from_bounds(*inter, transform=ds.transform).round_offsets().round_lengths()
            data = ds.read(window=win)
            profile = ds.profile | {
                "width": data.shape[2], "height": data.shape[1], "transform": ds.window_transform(win),
                "compress": "deflate", "predictor": 2, "tiled": True, "blockxsize": 256, "blockysize": 256, "zlevel": 9,
            }
            with rasterio.open(out_dir / path.name, "w", **profile) as out:
                out.write(data)
            print(out_dir / path.name, data.shape)


cut("before")
cut("after")
fp = gpd.read_file(SRC / "footprints.geojson")
area = gpd.GeoSeries([box(*AREA)], crs=CRS).to_crs(fp.crs).iloc[0]
sub = fp[fp.intersects(area)].reset_index(drop=True)
sub.to_file(DST / "footprints.geojson", driver="GeoJSON")
print(len(sub), "footprints")
