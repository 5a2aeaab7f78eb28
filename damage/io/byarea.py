"""Footprints of an area from a large vector file or URL, reading as little of it as the format allows.

- GeoParquet (``.parquet``): the footer, then only the row groups whose bounding-box covering column
  (GeoParquet 1.1 ``covering.bbox``, as Overture publishes it) meets the area; a file without one is
  read whole. Over HTTP(S) each read is a range request, so a country's file costs its footer and the
  area's row groups.
- FlatGeobuf (``.fgb``) and every other format OGR reads: through OGR with the area as its filter,
  which FlatGeobuf answers from its spatial index (by range requests over ``/vsicurl/``).
- ``.osm.pbf`` and ``.osm``: OGR's ``multipolygons`` layer (buildings and campuses), filtered by the area
  (an OpenStreetMap extract has no spatial index: it is read through).

Rows whose geometry does not meet the area are dropped in every case, so the answer does not
depend on the format. The area is a lon/lat box; it is taken into the file's CRS here.
"""

from __future__ import annotations

import io
import json
import urllib.request
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS
from pyproj.transformer import Transformer

from damage.errors import InputNotFoundError, InvalidFootprintsError

__all__ = ["read_by_area", "HttpFile"]


class HttpFile(io.RawIOBase):
    """A read-only, seekable file over HTTP(S): every read is one range request (what pyarrow needs)."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url, self.pos, self.fetched = url, 0, 0
        request = urllib.request.Request(url, headers={"Range": "bytes=0-0"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                total = response.headers.get("Content-Range", "").rpartition("/")[2]
                if response.status != 206 or not total.isdigit():
                    raise InvalidFootprintsError(f"{url}: the server does not answer range requests; download the file")
                self.size = int(total)
        except OSError as exc:
            raise InputNotFoundError(f"{url}: cannot be read ({exc})") from None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        self.pos = {0: offset, 1: self.pos + offset, 2: self.size + offset}[whence]
        return self.pos

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.size - self.pos)
        if n <= 0:
            return 0
        request = urllib.request.Request(self.url, headers={"Range": f"bytes={self.pos}-{self.pos + n - 1}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            data = response.read()
        buffer[: len(data)] = data
        self.pos += len(data)
        self.fetched += len(data)
        return len(data)


def _box_in(crs: CRS, bbox: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    if crs.is_geographic and crs.equals(CRS.from_user_input("OGC:CRS84"), ignore_axis_order=True):
        return bbox
    return Transformer.from_crs("OGC:CRS84", crs, always_xy=True).transform_bounds(*bbox, densify_pts=21)


def _parquet(location: str, bbox: tuple[float, float, float, float]) -> gpd.GeoDataFrame:
    import pyarrow.parquet as pq

    remote = location.startswith(("http://", "https://"))
    source: Any = HttpFile(location) if remote else location
    pf = pq.ParquetFile(io.BufferedReader(source, buffer_size=1 << 13) if remote else source)
    meta = json.loads((pf.schema_arrow.metadata or {}).get(b"geo", b"{}"))
    column = meta.get("primary_column")
    if not column:
        raise InvalidFootprintsError(f"{location}: a Parquet file without GeoParquet metadata ('geo')")
    info = meta["columns"][column]
    crs = CRS.from_user_input(info["crs"]) if info.get("crs") else CRS.from_user_input("OGC:CRS84")
    if info.get("encoding", "WKB").upper() != "WKB":
        raise InvalidFootprintsError(f"{location}: geometry encoded as {info['encoding']}; only WKB is read by area")
    x0, y0, x1, y1 = _box_in(crs, bbox)
    covering = (info.get("covering") or {}).get("bbox")
    groups = list(range(pf.num_row_groups))
    if covering:  # prune row groups by the covering column's statistics
        names = {k: ".".join(v) for k, v in covering.items()}
        paths = [pf.schema.column(i).path for i in range(len(pf.schema))]
        where = {k: paths.index(p) for k, p in names.items() if p in paths}
        if len(where) == 4:
            keep = []
            for g in groups:
                rg = pf.metadata.row_group(g)
                stats = {k: rg.column(i).statistics for k, i in where.items()}
                if any(s is None or not s.has_min_max for s in stats.values()):
                    keep.append(g)
                elif stats["xmin"].min <= x1 and stats["xmax"].max >= x0 and stats["ymin"].min <= y1 and stats["ymax"].max >= y0:
                    keep.append(g)
            groups = keep
    table = pf.read_row_groups(groups) if groups else pf.schema_arrow.empty_table()
    frame = table.to_pandas()
    geoms = shapely.from_wkb(frame.pop(column).to_numpy())
    if covering and covering["xmin"][0] in frame.columns:  # the covering column is the reader's, not an attribute
        frame = frame.drop(columns=[covering["xmin"][0]])
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs=crs))


def read_by_area(location: str, bbox: tuple[float, float, float, float]) -> gpd.GeoDataFrame:
    """The features of a vector file or URL that meet ``bbox`` (west, south, east, north in lon/lat).

    Raises
    ------
    InputNotFoundError, InvalidFootprintsError
        Unreachable or unreadable, named in one line.
    """
    name = location.split("?", 1)[0].lower()
    try:
        if name.endswith((".parquet", ".geoparquet")):
            gdf = _parquet(location, bbox)
        else:
            import pyogrio

            path = f"/vsicurl/{location}" if location.startswith(("http://", "https://")) else location
            layer = "multipolygons" if name.endswith((".osm.pbf", ".osm")) else None
            crs = CRS.from_user_input(pyogrio.read_info(path, layer=layer)["crs"] or "OGC:CRS84")
            gdf = gpd.read_file(path, layer=layer, bbox=_box_in(crs, bbox))
            if gdf.crs is None:
                gdf = gdf.set_crs(crs)
    except (InputNotFoundError, InvalidFootprintsError):
        raise
    except Exception as exc:  # pyogrio/pyarrow raise many types for a bad file
        raise InvalidFootprintsError(f"{location}: not a readable vector file ({str(exc).splitlines()[0][:160]})") from None
    if len(gdf):
        box = shapely.box(*_box_in(CRS.from_user_input(gdf.crs), bbox))
        gdf = gdf[np.asarray(shapely.intersects(gdf.geometry.values, box), bool)]
    return gdf.reset_index(drop=True)
