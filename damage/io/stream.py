"""Footprints read a batch at a time: a region's millions are never held at once.

:class:`FootprintStream` reads a footprint source in batches of :data:`BATCH_ROWS` rows, each
tidied as :func:`damage.io.sources.read_footprints` tidies the whole file (the same rows, the
same repairs), and can be read again for another pass:

- GeoParquet: its row groups, a batch at a time (``pyarrow.parquet.ParquetFile.iter_batches``);
- any other format OGR reads: its features in one pass, a batch at a time (OGR's Arrow stream;
  OpenStreetMap extracts, read through their ``multipolygons`` layer, are read whole);
- a GeoDataFrame (already in memory) and the footprints of an area read from a URL
  (:func:`damage.io.byarea.read_by_area`, already cut to the area): slices.

What tidying found (repairs, unusable footprints) is judged once, at the end of the first
pass, as for the whole file: one warning of each kind, or one line refusing footprints of
which none can be used.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import geopandas as gpd
import numpy as np

from damage.errors import DamageError, DamageWarning, InputNotFoundError, InvalidFootprintsError
from damage.io.sources import (
    Tally,
    _first_line,
    _keep_geometry_attribute,
    _name,
    _read_whole,
    locate,
    tidy_footprints,
)

__all__ = ["FootprintStream", "BATCH_ROWS"]

#: Footprints read, tidied and placed at a time (about 30 MB of houses with a few attributes).
BATCH_ROWS = 65_536


class FootprintStream:
    """A footprint source read in batches, in input order; iterate it again for another pass.

    Parameters
    ----------
    source : path or GeoDataFrame
        As :func:`damage.io.sources.read_footprints` takes it.
    bbox : tuple of float, optional
        Only the footprints that meet this lon/lat box (a file given by URL).
    rows : int
        Footprints per batch.
    """

    def __init__(self, source: str | os.PathLike | gpd.GeoDataFrame,
                 bbox: tuple[float, float, float, float] | None = None, rows: int = BATCH_ROWS) -> None:
        self.source, self.bbox, self.rows = source, bbox, rows
        self.label = "footprints" if isinstance(source, gpd.GeoDataFrame) else str(source)
        self._whole: gpd.GeoDataFrame | None = None
        self._judged = False
        loc = None if isinstance(source, gpd.GeoDataFrame) or bbox is not None else locate(source)
        if isinstance(loc, Path) and not loc.exists():
            raise InputNotFoundError(f"{loc}: no such file or directory")
        self._loc = loc if isinstance(loc, Path) and not _name(loc).lower().endswith((".osm.pbf", ".osm")) else None

    def __iter__(self) -> Iterator[gpd.GeoDataFrame]:
        tally = Tally()
        for raw in self._raw():
            yield tidy_footprints(raw, self.label, tally)
        if not self._judged:  # the first pass to its end: judged as the whole file is
            self._judged = True
            tally.judge(self.label, stacklevel=3)

    def _raw(self) -> Iterator[gpd.GeoDataFrame]:
        """The source's batches as it holds them."""
        if self._loc is None:  # in memory already, an area read from a URL, or a format read through
            if self._whole is None:
                self._whole, _ = _read_whole(self.source, self.bbox)
            for start in range(0, max(len(self._whole), 1), self.rows):
                yield self._whole.iloc[start : start + self.rows]
            return
        try:
            if _name(self._loc).lower().endswith((".parquet", ".geoparquet")):
                yield from self._parquet(self._loc)
            else:
                yield from self._ogr(self._loc)
        except DamageError:
            raise
        except Exception as exc:  # pyogrio/pyarrow raise many types for a bad file
            raise InvalidFootprintsError(f"{self._loc}: not a readable vector file ({_first_line(exc)})") from None

    def _parquet(self, path: Path) -> Iterator[gpd.GeoDataFrame]:
        import pyarrow as pa
        import pyarrow.parquet as pq
        from geopandas.io.arrow import _arrow_to_geopandas

        with pq.ParquetFile(path) as pf:
            if pf.metadata.num_rows == 0:
                yield gpd.read_parquet(path)
                return
            schema = pf.schema_arrow
            for part in pf.iter_batches(batch_size=self.rows):
                yield _arrow_to_geopandas(pa.Table.from_batches([part], schema=schema))

    def _ogr(self, path: Path) -> Iterator[gpd.GeoDataFrame]:
        """The features in one pass (OGR's Arrow stream), each batch read once whatever the format; a file
        with an attribute named ``geometry`` is read as :func:`damage.io.sources.read_vector` reads it, a
        window of features at a time."""
        import pyarrow as pa
        import pyogrio
        import shapely

        if "geometry" in list(pyogrio.read_info(path)["fields"]):
            yield from self._ogr_windows(path)
            return
        with pyogrio.open_arrow(path, batch_size=self.rows, use_pyarrow=True) as (meta, reader):
            geometry = meta["geometry_name"] or "wkb_geometry"
            for batch in reader:
                table = pa.Table.from_batches([batch])
                wkb = table[geometry].to_numpy(zero_copy_only=False) if geometry in table.column_names else None
                frame = table.drop_columns([c for c in (geometry,) if c in table.column_names]).to_pandas()
                shapes = shapely.from_wkb(wkb) if wkb is not None else np.full(len(frame), None, dtype=object)
                yield gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(shapes, crs=meta["crs"], index=frame.index))

    def _ogr_windows(self, path: Path) -> Iterator[gpd.GeoDataFrame]:
        import pyogrio

        count = int(pyogrio.read_info(path).get("features", -1))
        with warnings.catch_warnings():
            if self._judged:  # said on the first pass
                warnings.simplefilter("ignore", DamageWarning)
            if count < 0 or count <= self.rows:
                yield _keep_geometry_attribute(path, gpd.read_file(path))
                return
            for start in range(0, count, self.rows):
                part = gpd.read_file(path, skip_features=start, max_features=self.rows)
                if start:
                    warnings.simplefilter("ignore", DamageWarning)  # said for the first window
                yield _keep_geometry_attribute(path, part, skip_features=start, max_features=self.rows)
