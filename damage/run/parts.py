"""A region's footprints in its run folder, in parts: read a part at a time, never all at once.

A region's footprints (a country's millions) are read from their source once, a batch at a
time (:class:`damage.io.stream.FootprintStream`), filtered (``--where``, ``--aoi``) and
written to the run folder as ``footprints/part-<k>.parquet``, each :data:`PART_ROWS` selected
footprints in input order (part ``k`` holds input positions ``k * PART_ROWS`` onwards), with
their position, their outline's id (:func:`damage.geo.ids.outline_ids`) and, once the region
is planned, their chunk. The plan
reads the parts again for each of its passes; each part is then sorted by chunk, in row groups
of :data:`ROW_GROUP`, so that a worker reads only its chunk's rows; the merge reads a part at a
time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from damage.analysis.query import select
from damage.errors import ConfigError, EmptyFootprintsError
from damage.geo.ids import outline_ids
from damage.io.sources import read_footprints
from damage.io.stream import FootprintStream
from damage.io.writers import _atomic
from damage.run.plan import Placement
from damage.run.provenance import sha256_of

__all__ = ["INDEX", "CHUNK", "OUTLINE", "PART_ROWS", "ROW_GROUP", "write_parts", "label_parts", "read_parts",
           "chunk_footprints", "chunk_parts", "footprints_of", "part_name",
           "read_selected", "geometry_name"]

#: The runner's own columns in the parts (names no footprint file uses).
INDEX, CHUNK, OUTLINE = "damage:region_index", "damage:chunk", "damage:outline"
#: Selected footprints per part.
PART_ROWS = 65_536
#: Rows per row group of a part: a worker reads the groups that hold its chunk.
ROW_GROUP = 4_096


def part_name(k: int) -> str:
    """File name of part ``k``."""
    return f"part-{k:05d}.parquet"


def _selected(stream: FootprintStream, where: str | None, aoi: Any) -> Iterator[gpd.GeoDataFrame]:
    """The stream's footprints that pass ``where`` and meet ``aoi``, in input order."""
    zone = None
    for batch in stream:
        if where:
            batch = batch[select(batch, where)]  # parsed, never executed: DataFrame.eval ran code
        if aoi is not None:
            if zone is None:
                area = aoi if isinstance(aoi, gpd.GeoDataFrame) else read_footprints(aoi)
                zone = shapely.union_all(area.to_crs(batch.crs).geometry.values)
            batch = batch[shapely.intersects(batch.geometry.values, zone)]
        if len(batch):
            yield batch


def _rebatched(frames: Iterable[gpd.GeoDataFrame], rows: int) -> Iterator[gpd.GeoDataFrame]:
    """The frames' rows in frames of exactly ``rows`` (the last one fewer)."""
    held: list[gpd.GeoDataFrame] = []
    count = 0
    for frame in frames:
        held.append(frame)
        count += len(frame)
        while count >= rows:
            whole = pd.concat(held) if len(held) > 1 else held[0]
            yield whole.iloc[:rows]
            held, count = [whole.iloc[rows:]], count - rows
    if count:
        yield pd.concat(held) if len(held) > 1 else held[0]


def write_parts(stream: FootprintStream, where: str | None, aoi: Any, folder: Path,
                rows: int = PART_ROWS) -> tuple[int, list[str]]:
    """Read, filter and write a region's footprints as parts of ``rows`` (see the module's docstring); returns
    how many were selected and the parts' names.

    Raises
    ------
    damage.errors.ConfigError
        The footprints have a column named like one of the runner's own.
    damage.errors.EmptyFootprintsError
        No footprint is left after ``where`` and ``aoi``.
    """
    folder.mkdir(exist_ok=True)
    for old in folder.glob("*.parquet"):  # of a run planned before and killed: planned again
        old.unlink()
    names, total = [], 0
    for k, part in enumerate(_rebatched(_selected(stream, where, aoi), rows)):
        reserved = [c for c in (INDEX, CHUNK, OUTLINE) if c in part.columns]
        if reserved:
            raise ConfigError(f"footprints: column(s) {reserved} are the batch runner's own; rename them")
        positions = np.arange(total, total + len(part))
        lonlat = part.geometry if part.crs.equals("EPSG:4326") else part.geometry.to_crs("EPSG:4326")
        part = part.reset_index(drop=True).assign(**{INDEX: positions,
                                                     OUTLINE: outline_ids(np.asarray(lonlat.values, dtype=object), total)})
        with _atomic(folder / part_name(k)) as tmp:
            part.to_parquet(tmp, index=False, row_group_size=ROW_GROUP)
        names.append(part_name(k))
        total += len(part)
    if total == 0:
        raise EmptyFootprintsError("no footprint is left after the --where filter and the area of interest")
    return total, names


def read_parts(folder: Path, names: list[str], columns: list[str] | None = None) -> Iterator[gpd.GeoDataFrame]:
    """The parts, one at a time, each in input order (without the runner's columns unless asked)."""
    for name in names:
        part = gpd.read_parquet(folder / name, columns=columns).sort_values(INDEX, kind="stable")
        yield part if columns is not None else part.drop(columns=[c for c in (INDEX, CHUNK, OUTLINE) if c in part])


def read_selected(folder: Path, names: list[str]) -> gpd.GeoDataFrame:
    """Every footprint of the parts, in input order, as the run selected them (without the runner's columns)."""
    parts = list(read_parts(folder, names))
    out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0].reset_index(drop=True)
    return gpd.GeoDataFrame(out, geometry=parts[0].geometry.name, crs=parts[0].crs)


def footprints_of(folder: Path, names: list[str]) -> Callable[[], Iterator[gpd.GeoDataFrame]]:
    """The parts' outlines as the plan reads them: a function giving them a part at a time, in input order."""
    geometry = geometry_name(folder / names[0])
    return lambda: (part.drop(columns=[INDEX]).reset_index(drop=True)
                    for part in read_parts(folder, names, columns=[geometry, INDEX]))


def label_parts(folder: Path, names: list[str], placement: Placement) -> dict[str, str]:
    """Give each part's footprints their chunk (``"none"`` where not placed), sort each part by chunk (then
    input position), and return each part's SHA-256."""
    chunk_names = np.asarray(placement.names + ["none"], dtype=object)
    sums = {}
    for name in names:
        part = gpd.read_parquet(folder / name)
        at = part[INDEX].to_numpy()
        part[CHUNK] = chunk_names[placement.chunk[at]].astype(str)
        part = part.sort_values([CHUNK, INDEX], kind="stable")
        with _atomic(folder / name) as tmp:
            part.to_parquet(tmp, index=False, row_group_size=ROW_GROUP)
            sums[name] = sha256_of(tmp)
    return sums


def chunk_parts(placement: Placement, rows: int) -> dict[str, list[str]]:
    """The parts (of ``rows`` footprints) holding each chunk's footprints."""
    placed = np.flatnonzero(placement.chunk >= 0)
    pairs = np.unique(np.stack([placement.chunk[placed], placed // rows]), axis=1)
    out: dict[str, list[str]] = {name: [] for name in placement.names}
    for c, k in pairs.T.tolist():
        out[placement.names[c]].append(part_name(k))
    return out


def chunk_footprints(folder: Path, parts: list[str], chunk: str) -> gpd.GeoDataFrame:
    """A chunk's footprints (geometry and input position), in input order, from the parts that hold them."""
    found = []
    for name in parts:
        path = folder / name
        geometry = geometry_name(path)
        found.append(gpd.read_parquet(path, columns=[geometry, INDEX], filters=[(CHUNK, "==", chunk)]))
    out = pd.concat(found) if len(found) > 1 else found[0]
    return out.sort_values(INDEX, kind="stable")


def geometry_name(path: Path) -> str:
    """The geometry column of a GeoParquet file (its ``geo`` metadata's primary column)."""
    import json

    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    return str(json.loads(meta[b"geo"])["primary_column"]) if b"geo" in meta else "geometry"

