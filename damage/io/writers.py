"""Outputs: GeoJSON (RFC 7946), GeoPackage and GeoParquet, written atomically.

With :mod:`damage.io.sources`, the only module that touches disk. Every output carries
the run record (``result.attrs["damage"]``: configuration, library version, grid,
registration, calibration) so a result can be reproduced:

- GeoJSON: a top-level ``"damage"`` member of the FeatureCollection;
- GeoPackage: the layer metadata item ``damage`` (JSON);
- GeoParquet: ``attrs["damage"]``, which ``geopandas.read_parquet`` restores.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from glob import escape as glob_escape
from os import PathLike
from pathlib import Path
from typing import Any, Iterator

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from damage.errors import OutputError

__all__ = ["write", "write_json", "WRITERS", "to_geojson_text"]

#: Decimal places of GeoJSON coordinates: 1e-7 degree is about 1 cm.
GEOJSON_PRECISION = 7


def _remove_orphans(path: Path) -> None:
    """Remove temporary files of ``path`` left by writers that were killed (their process is gone)."""
    for tmp in path.parent.glob(f".{glob_escape(path.stem)}.*.tmp{glob_escape(path.suffix)}"):
        parts = tmp.name[len(path.stem) + 2 :].split(".")
        if not parts or not parts[0].isdigit():
            continue
        pid = int(parts[0])
        try:
            os.kill(pid, 0)
            continue  # its writer is alive (another run writing the same file)
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        tmp.unlink(missing_ok=True)


@contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it over ``path`` on success only."""
    if not path.parent.is_dir():
        raise OutputError(f"{path}: folder {path.parent} does not exist")
    _remove_orphans(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.{os.getpid()}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)  # writers such as GDAL want to create the file themselves
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        try:
            os.replace(tmp_path, path)
        except OSError as exc:  # the target is a folder, on another device, ...
            raise OutputError(f"{path}: could not write ({exc.strerror or exc})") from None
    except BaseException:
        if tmp_path.exists():
            tmp_path.unlink()
        raise


def _record(gdf: gpd.GeoDataFrame) -> dict[str, Any]:
    return dict(gdf.attrs.get("damage", {}))


#: Features serialised at a time when GeoJSON is written: the text of a million buildings is never held at once.
GEOJSON_BATCH = 20_000


def geojson_pieces(gdf: gpd.GeoDataFrame, precision: int = GEOJSON_PRECISION,
                   batch: int | None = None) -> Iterator[str]:
    """RFC 7946 GeoJSON text of ``gdf`` in pieces, ``batch`` features at a time (:data:`GEOJSON_BATCH` by
    default; see :func:`to_geojson_text`)."""
    if gdf.crs is None:
        raise OutputError("cannot write GeoJSON: the result has no CRS")
    return geojson_stream([gdf], _record(gdf), precision, batch)


def geojson_stream(frames: Iterable[gpd.GeoDataFrame], record: dict[str, Any], precision: int = GEOJSON_PRECISION,
                   batch: int | None = None) -> Iterator[str]:
    """RFC 7946 GeoJSON text of one FeatureCollection of the frames' features, in order (a region's result
    written a part at a time), with ``record`` as its ``"damage"`` member."""
    batch = batch or GEOJSON_BATCH
    yield json.dumps({"type": "FeatureCollection", "damage": record}, default=_json_default)[:-1]
    yield ',"features":[\n'
    first = True
    for gdf in frames:
        if gdf.crs is None:
            raise OutputError("cannot write GeoJSON: the result has no CRS")
        for start in range(0, len(gdf), batch):
            part = gdf.iloc[start : start + batch]
            wgs = part.to_crs(4326) if not part.crs.equals("EPSG:4326") else part
            geoms = np.asarray(wgs.geometry.values, dtype=object)
            geoms = shapely.transform(geoms, lambda c: np.round(c, precision))
            geoms = shapely.orient_polygons(geoms, exterior_cw=False)
            geom_text = [_short_numbers(t) if t is not None else None for t in shapely.to_geojson(geoms)]
            props = wgs.drop(columns=wgs.geometry.name)
            prop_lines = props.to_json(orient="records", lines=True, date_format="iso", double_precision=6).splitlines() \
                if len(props) else []
            if len(prop_lines) != len(wgs):  # no attribute columns at all
                prop_lines = ["{}"] * len(wgs)
            yield ("" if first else ",\n") + ",\n".join(
                f'{{"type":"Feature","properties":{p},"geometry":{g if g is not None else "null"}}}'
                for p, g in zip(prop_lines, geom_text))
            first = False
    yield "\n]}\n"


def to_geojson_text(gdf: gpd.GeoDataFrame, precision: int = GEOJSON_PRECISION) -> str:
    """Serialise to RFC 7946 GeoJSON text.

    Coordinates in WGS 84 longitude/latitude, polygon exterior rings counter-clockwise
    and holes clockwise, ``precision`` decimals, no ``crs`` member; the run record as
    the top-level member ``"damage"``.
    """
    return "".join(geojson_pieces(gdf, precision))


_LONG_NUMBER = re.compile(r"-?\d+\.\d{8,}(?:[eE][-+]?\d+)?")


def _short_numbers(text: str, precision: int = GEOJSON_PRECISION) -> str:
    """Coordinates printed with at most ``precision`` decimals (binary rounding leaves
    -94.48673170000001 where -94.4867317 was meant)."""
    return _LONG_NUMBER.sub(lambda m: _fixed(float(m.group()), precision), text)


def _fixed(value: float, precision: int) -> str:
    text = f"{value:.{precision}f}".rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _write_geojson(gdf: gpd.GeoDataFrame, path: Path) -> None:
    with open(path, "w", encoding="utf-8") as out:  # piece by piece: memory for one batch of features
        out.writelines(geojson_pieces(gdf))


def _write_gpkg(gdf: gpd.GeoDataFrame, path: Path) -> None:
    gdf.to_file(
        path,
        driver="GPKG",
        layer="damage",
        engine="pyogrio",
        layer_metadata={"damage": json.dumps(_record(gdf), default=_json_default)},
    )


def _write_parquet(gdf: gpd.GeoDataFrame, path: Path) -> None:
    # geopandas stores DataFrame.attrs in the file (read back by read_parquet).
    out = gdf.copy(deep=False)
    out.attrs = {"damage": json.loads(json.dumps(_record(gdf), default=_json_default))}
    out.to_parquet(path, index=False)


def _wgs84(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    if gdf.crs is None:
        raise OutputError("cannot write: the result has no CRS")
    return gdf.to_crs(4326) if not gdf.crs.equals("EPSG:4326") else gdf


def _plain_columns(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Columns every vector driver takes: objects (lists, dicts) as JSON text."""
    out = gdf.copy()
    for c in out.columns:
        if c != out.geometry.name and out[c].dtype == object:
            out[c] = [v if v is None or isinstance(v, str) else json.dumps(v, default=_json_default) for v in out[c]]
    return out


def _write_kml(gdf: gpd.GeoDataFrame, path: Path) -> None:
    """KML (Google Earth, field teams): each building a placemark named by its name or
    grade, described by its grade and score, with every column as extended data."""
    wgs = _plain_columns(_wgs84(gdf))
    name_col = next((c for c in ("name", "Name", "NAME") if c in wgs), None)
    grade = wgs["damage_grade"].astype(str) if "damage_grade" in wgs else None
    names = wgs[name_col].astype(str) if name_col else (grade if grade is not None else wgs.index.astype(str))
    if grade is not None:
        score = wgs["damage_score"].to_numpy(dtype=float) if "damage_score" in wgs else np.full(len(wgs), np.nan)
        reason = wgs["not_analysed_reason"].astype(str).to_numpy() if "not_analysed_reason" in wgs else [""] * len(wgs)
        desc = pd.Series([f"{g}, score {s:.2f}" if np.isfinite(s) else f"{g}: {r}" for g, s, r in zip(grade, score, reason)],
                         index=wgs.index)
    else:
        desc = names
    out = wgs.drop(columns=[c for c in ("Name", "Description") if c in wgs]).assign(Name=names.values,
                                                                                   Description=desc.values)
    out.to_file(path, driver="KML", engine="pyogrio", layer="damage",
                dataset_options={"NameField": "Name", "DescriptionField": "Description"})


def _write_kmz(gdf: gpd.GeoDataFrame, path: Path) -> None:
    """KMZ: the KML zipped as doc.kml."""
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        kml = Path(tmp) / "doc.kml"
        _write_kml(gdf, kml)
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.write(kml, "doc.kml")


def _write_csv(gdf: gpd.GeoDataFrame, path: Path) -> None:
    """CSV: one row per building, its centroid as lon/lat (7 decimals), no geometry."""
    wgs = _wgs84(gdf)
    if gdf.crs.is_projected:
        centre = gpd.GeoSeries(gdf.geometry.centroid, crs=gdf.crs).to_crs(4326)
    else:
        local = gdf.to_crs(gdf.estimate_utm_crs()) if len(gdf) else gdf
        centre = gpd.GeoSeries(local.geometry.centroid, crs=local.crs).to_crs(4326)
    table = _plain_columns(wgs).drop(columns=wgs.geometry.name)
    table.insert(0, "lat", np.round(centre.y.to_numpy(), GEOJSON_PRECISION))
    table.insert(0, "lon", np.round(centre.x.to_numpy(), GEOJSON_PRECISION))
    table.to_csv(path, index=False, float_format="%.10g")


def _write_fgb(gdf: gpd.GeoDataFrame, path: Path) -> None:
    _plain_columns(gdf).to_file(path, driver="FlatGeobuf", engine="pyogrio")


#: Formats whose column names are matched whatever their case.
_CASELESS = (".gpkg", ".fgb", ".kml", ".kmz")

WRITERS: dict[str, Callable[[gpd.GeoDataFrame, Path], None]] = {
    ".kml": _write_kml,
    ".kmz": _write_kmz,
    ".csv": _write_csv,
    ".fgb": _write_fgb,
    ".geojson": _write_geojson,
    ".json": _write_geojson,
    ".gpkg": _write_gpkg,
    ".parquet": _write_parquet,
    ".geoparquet": _write_parquet,
}


def check_not_input(path: str | PathLike, inputs: Iterable[str | PathLike]) -> None:
    """Raise OutputError if ``path`` is the same file as one of ``inputs``."""
    path = Path(path)
    if not path.exists():
        return
    for item in inputs:
        try:
            same = Path(item).exists() and os.path.samefile(path, item)
        except OSError:  # unreadable or vanished: cannot be the same file
            same = False
        if same:
            raise OutputError(f"{path}: is an input of this assessment; refusing to write over it")


def write(result: gpd.GeoDataFrame, path: str | PathLike) -> Path:
    """Write an assessment (or its damage polygons) atomically.

    The format follows the extension: ``.geojson``/``.json`` (RFC 7946), ``.gpkg``,
    ``.parquet``/``.geoparquet``, ``.fgb`` (FlatGeobuf), ``.kml``/``.kmz`` (Google
    Earth), ``.csv`` (one row per building, its centroid's lon/lat). The run record
    travels in GeoJSON, GeoPackage and GeoParquet. The file appears complete or not at all.

    Parameters
    ----------
    result : geopandas.GeoDataFrame
        What :func:`damage.assess` returned, or ``result.attrs["damage_polygons"]``.
    path : path
        Where to write; an existing file is replaced, unless it is one of the
        assessment's inputs (``result.attrs["damage_input_files"]``): never over an input.

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    if not isinstance(result, gpd.GeoDataFrame):
        raise OutputError(f"{path}: write() takes the GeoDataFrame that damage.assess returns, not a {type(result).__name__}")
    writer = WRITERS.get(path.suffix.lower())
    if writer is None:
        raise OutputError(f"{path}: unknown output format {path.suffix!r}; use one of {sorted(WRITERS)}")
    check_not_input(path, result.attrs.get("damage_input_files", ()))
    if path.suffix.lower() in _CASELESS:
        seen: dict[str, str] = {}
        for col in map(str, result.columns):
            if col.lower() in seen:
                raise OutputError(f"{path}: columns {seen[col.lower()]!r} and {col!r} differ only in case, which "
                                  f"{path.suffix} cannot hold; rename one")
            seen[col.lower()] = col
    try:
        with _atomic(path) as tmp:
            writer(result, tmp)
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"{path}: could not write ({exc.strerror or exc})") from None
    return path


def write_json(document: Any, path: str | PathLike) -> Path:
    """Write any JSON-serialisable document (numpy values allowed) atomically."""
    path = Path(path)
    text = json.dumps(document, indent=2, default=_json_default, allow_nan=False)
    try:
        with _atomic(path) as tmp:
            tmp.write_text(text + "\n", encoding="utf-8")
    except OSError as exc:
        if isinstance(exc, OutputError):
            raise
        raise OutputError(f"{path}: could not write ({exc.strerror or exc})") from None
    return path
