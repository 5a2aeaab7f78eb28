"""A region's chunks assembled into its result a part at a time: memory that does not grow with the footprints.

The result is written as a GeoParquet dataset, ``damage/part-<k>.parquet``, part ``k`` holding the
footprints of the region's part ``k`` (:mod:`damage.run.parts`) in input order, so that the dataset
read in file order is the result :func:`damage.assess` gives; and, when asked, merged into one
``damage.parquet`` and one ``damage.geojson`` (streamed, a part at a time). Every file carries the
whole region's run record (its counts are those of every footprint).

1. the ids are decided over every footprint (:func:`damage.geo.ids.region_ids`, column-projected reads);
2. each part is assembled (the method's ``assemble``, as ``assess`` assembles a scene) from its
   footprints and the rows of the chunk files that fall in it, and set aside;
3. the run record's counts are made over every footprint's grade (the method's ``summarise``);
4. the parts are written with one schema (a column holding integers in one part and missing values in
   another is a float column in every part, as in one frame) and the whole record.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from damage.geo.ids import ID_CANDIDATES, region_ids
from damage.io.writers import _atomic, _json_default, geojson_stream
from damage.run.parts import CHUNK, INDEX, OUTLINE, geometry_name

__all__ = ["merge_region", "read_region", "RESULT_FOLDER"]

#: The run folder's result dataset.
RESULT_FOLDER = "damage"
_RUNNER = (INDEX, CHUNK, OUTLINE)
#: Columns of the grades the run record counts.
_COUNTED = ("damage_grade", "p_damaged", "not_analysed_reason")


def merge_region(folder: Path, manifest: dict, steps: Any, cfg: Any, fit: Any, record: dict[str, Any],
                 extra: dict[str, Any], merged: bool) -> dict[str, Any]:
    """Assemble a region's chunks (see the module's docstring); returns the run record.

    ``record`` is the method's record of the plan (inputs, grid, region); ``extra`` more of the run
    record (provenance); ``merged``: also write ``damage.parquet`` and ``damage.geojson``.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    parts_dir, out_dir = folder / "footprints", folder / RESULT_FOLDER
    names: list[str] = manifest["parts"]
    rows = int(manifest["part_rows"])
    chunk_files = [folder / "chunks" / f"{c}.parquet" for c in sorted(manifest["chunks"])]
    chunk_files = [p for p in chunk_files if p.exists()]
    chunks = columns = None
    if chunk_files:  # one schema for every chunk file (a chunk whose reasons are all missing holds a column of nulls)
        evidence = pa.unify_schemas([pq.read_schema(p).remove_metadata() for p in chunk_files],
                                    promote_options="permissive")
        chunks = ds.dataset([str(p) for p in chunk_files], schema=evidence, format="parquet")
        columns = [c for c in evidence.names if c != INDEX]
    failed = set(manifest["failed"])

    attributes = [c for c in pq.read_schema(parts_dir / names[0]).names if c not in _RUNNER]
    wanted = cfg.id_column
    id_columns = [wanted] if wanted and wanted in attributes else [c for c in ID_CANDIDATES if c in attributes]

    def id_parts() -> Iterator[pd.DataFrame]:
        for name in names:
            part = pd.read_parquet(parts_dir / name, columns=[*id_columns, OUTLINE, INDEX])
            yield part.sort_values(INDEX, kind="stable").rename(columns={OUTLINE: "outline"})

    ids = region_ids(id_parts, attributes, wanted, geometry_name(parts_dir / names[0]), "outline")

    out_dir.mkdir(exist_ok=True)
    spills: list[Path] = []
    counted: list[dict[str, np.ndarray]] = []
    codes: dict[str, dict[str, int]] = {}  # each text column's values, numbered: two bytes a footprint

    def coded(column: str, values: np.ndarray) -> np.ndarray:
        known = codes.setdefault(column, {})
        return np.fromiter((-1 if v is None else known.setdefault(v, len(known)) for v in values), np.int16, len(values))

    doc: dict[str, Any] = {}
    for k, name in enumerate(names):
        part = gpd.read_parquet(parts_dir / name).sort_values(INDEX, kind="stable").reset_index(drop=True)
        first = k * rows
        found = _rows(chunks, first, first + len(part))
        positions = part[INDEX].to_numpy()
        footprint_ids = ids.of(part, part[OUTLINE].to_numpy(), positions)
        chunk_failed = part[CHUNK].isin(list(failed)).to_numpy()
        footprints = part.drop(columns=list(_RUNNER))
        result = steps.assemble(footprints, [found] if len(found) else [], chunk_failed, cfg, fit, record,
                                first=first, ids=(footprint_ids, ids.source), columns=columns)
        counted.append({c: coded(c, result[c].to_numpy(dtype=object)) if c != "p_damaged" else  # a copy: a view
                        result[c].to_numpy(dtype=float, copy=True) for c in _COUNTED if c in result})  # holds the part
        spill = out_dir / f".{name}.unmerged"
        doc = doc or dict(result.attrs["damage"])  # the record of the plan and the fit, the same in every part
        result.attrs = {}
        result.to_parquet(spill, index=False)
        spills.append(spill)
        del part, result, found, footprints
    totals = pd.DataFrame({c: np.concatenate([t[c] for t in counted]) if c == "p_damaged" else
                           np.asarray(list(codes[c]) + [None], dtype=object)[np.concatenate([t[c] for t in counted])]
                           for c in counted[0]})
    del counted
    doc.update(steps.summarise(totals, cfg, fit, record))
    doc.update(extra)
    del totals
    _write_parts(spills, out_dir, names, doc, folder if merged else None)
    return doc


def _rows(chunks: Any, lo: int, hi: int) -> pd.DataFrame:
    """The chunk files' rows (a dataset of them, or None) of input positions ``lo`` to ``hi``, indexed by position."""
    if chunks is None:
        return pd.DataFrame()
    import pyarrow.dataset as ds

    table = chunks.to_table(filter=(ds.field(INDEX) >= lo) & (ds.field(INDEX) < hi))
    return table.to_pandas().set_index(INDEX).rename_axis("position")


def _write_parts(spills: list[Path], out_dir: Path, names: list[str], doc: dict[str, Any], merged: Path | None) -> None:
    """Write the assembled parts with one schema and the whole run record; and the merged files when asked."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from geopandas.io.arrow import _arrow_to_geopandas

    schemas = [pq.read_schema(s) for s in spills]
    unified = pa.unify_schemas([s.remove_metadata() for s in schemas], promote_options="permissive")
    geo = _geo_metadata([s.metadata for s in schemas])
    attrs = json.dumps({"damage": json.loads(json.dumps(doc, default=_json_default))})
    schema = unified.with_metadata({b"geo": json.dumps(geo).encode(), b"PANDAS_ATTRS": attrs.encode()})
    with contextlib.ExitStack() as stack:  # the merged files appear whole or not at all
        parquet = geojson = None
        if merged is not None:
            parquet_tmp = stack.enter_context(_atomic(merged / "damage.parquet"))
            geojson_tmp = stack.enter_context(_atomic(merged / "damage.geojson"))
            parquet = stack.enter_context(pq.ParquetWriter(parquet_tmp, schema))
            geojson = stack.enter_context(open(geojson_tmp, "w", encoding="utf-8"))

        def tables() -> Iterator[gpd.GeoDataFrame]:
            for spill, name in zip(spills, names):
                table = pq.read_table(spill).select(schema.names).cast(schema)
                with _atomic(out_dir / name) as tmp:
                    pq.write_table(table, tmp)
                if parquet is not None:
                    parquet.write_table(table)
                    yield _arrow_to_geopandas(table)
                spill.unlink()

        if geojson is not None:
            geojson.writelines(geojson_stream(tables(), doc))
        else:
            for _ in tables():
                pass


def _geo_metadata(metas: list[dict | None]) -> dict[str, Any]:
    """The parts' GeoParquet metadata as one: the bounding box of all, every geometry type any has."""
    docs = [json.loads(m[b"geo"]) for m in metas if m and b"geo" in m]
    geo = docs[0]
    for name, column in geo["columns"].items():
        boxes = [d["columns"][name].get("bbox") for d in docs if d["columns"][name].get("bbox")]
        if boxes:
            b = np.asarray(boxes, dtype=float)
            column["bbox"] = [float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())]
        column["geometry_types"] = sorted({t for d in docs for t in d["columns"][name].get("geometry_types", [])})
    return geo


def as_assessed(frame: pd.DataFrame) -> pd.DataFrame:
    """A result read back from a file with its text columns as an assessment gives them: the grades and the
    reasons text or None (a file gives missing text back as NaN)."""
    for c in ("damage_grade", "not_analysed_reason"):
        if c in frame:
            frame[c] = frame[c].astype(object).where(frame[c].notna(), None)
    return frame


def read_region(folder: Path, names: list[str], columns: list[str] | None = None,
                merged: bool = False) -> gpd.GeoDataFrame | pd.DataFrame:
    """A region's result read from its dataset (or its merged ``damage.parquet``), in input order, with its
    run record; only ``columns`` (those it has; no geometry unless among them) when given."""
    import pyarrow.parquet as pq

    if merged and columns is None:
        return as_assessed(gpd.read_parquet(folder / "damage.parquet"))
    paths = [folder / RESULT_FOLDER / name for name in names]
    if columns is not None:
        have = set(pq.read_schema(paths[0]).names)
        frames = [pd.read_parquet(p, columns=[c for c in columns if c in have]) for p in paths]
        out = pd.concat(frames, ignore_index=True)
        attrs = json.loads((pq.read_schema(paths[0]).metadata or {}).get(b"PANDAS_ATTRS", b"{}"))
        out.attrs = {"damage": attrs.get("damage", {})}
        return as_assessed(out)
    parts = [gpd.read_parquet(p) for p in paths]
    whole = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    result = gpd.GeoDataFrame(whole, geometry=parts[0].geometry.name, crs=parts[0].crs)
    result.attrs = dict(parts[0].attrs)
    return as_assessed(result)
