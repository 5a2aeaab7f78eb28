"""Inputs from disk: epochs of raster tiles and building footprints.

With :mod:`damage.io.writers`, the only module that opens files. An epoch is one GeoTIFF,
a directory of tiles, a VRT, or a list of any of these; its tiles may differ in CRS and
pixel size. Footprints are any vector file OGR reads, GeoParquet, or a GeoDataFrame.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import re
import warnings
from collections.abc import Iterable, Iterator, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import MaskFlags
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from damage.errors import (
    BandMismatchError,
    DamageError,
    DamageWarning,
    EmptyFootprintsError,
    InputNotFoundError,
    InvalidFootprintsError,
    InvalidRasterError,
    MissingCRSError,
)
from damage.geo.raster import analysable
from damage.io.stac import StacAsset, check_header, is_stac, read_stac

log = logging.getLogger(__name__)

__all__ = ["Tile", "Epoch", "Acquisition", "open_epoch", "open_stack", "read_decimated", "read_tile", "read_footprints",
           "tidy_footprints", "Tally", "read_result", "check_order", "is_remote", "locate", "shown", "tiles_of", "PathSpec", "Location"]

PathSpec = str | PathLike | Sequence[str | PathLike]
#: A file on disk, or a URL / GDAL virtual path that GDAL reads (kept as the string given).
Location = Path | str
RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".img", ".jp2")
_REMOTE = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|/vsi[a-z0-9_]+/)", re.IGNORECASE)


def is_remote(item: object) -> bool:
    """Whether ``item`` is a URL (``https://``, ``s3://``, ``gs://``, ...) or a GDAL virtual
    path (``/vsicurl/...``, ``/vsizip/...``): read through GDAL, never looked up on disk."""
    return isinstance(item, str) and bool(_REMOTE.match(item))


def shown(item: str | PathLike) -> str:
    """A location as records and messages show it: a URL without its query string, where tokens live
    (SAS tokens, presigned URLs); a path as it is."""
    return str(item).split("?", 1)[0] if is_remote(item) else str(item)


def locate(item: str | PathLike) -> Location:
    """A :class:`~pathlib.Path` for a local file, the string itself for a remote one."""
    return item if is_remote(item) else Path(item)  # type: ignore[return-value]


def _name(loc: Location) -> str:
    return loc.name if isinstance(loc, Path) else loc.rstrip("/").rsplit("/", 1)[-1].split("?", 1)[0]


def _stem(loc: Location) -> str:
    name = _name(loc)
    return name.rsplit(".", 1)[0] if "." in name else name


@dataclasses.dataclass(frozen=True)
class Tile:
    """Header of one raster file of an epoch (no pixels)."""

    path: Location
    crs: CRS
    transform: Affine
    width: int
    height: int
    count: int
    nodata: float | None
    per_dataset_mask: bool  # an alpha band or an internal/external mask
    date: datetime.date | None = None  # acquisition date from the STAC item, the tags or the name
    item: StacAsset | None = None  # the STAC item it came from
    gcps: bool = False  # georeferenced by ground control points: read through a warped VRT (:func:`_dataset`)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        t = self.transform
        xs = [t.c, t.c + t.a * self.width]
        ys = [t.f, t.f + t.e * self.height]
        return (min(xs), min(ys), max(xs), max(ys))

    @property
    def res(self) -> float:
        return float(abs(self.transform.a))


@dataclasses.dataclass(frozen=True)
class Epoch:
    """The tiles of one acquisition date, with a name for messages (``before``/``after``)."""

    name: str
    tiles: tuple[Tile, ...]

    @property
    def count(self) -> int:
        return self.tiles[0].count

    def describe(self) -> str:
        if len(self.tiles) == 1:
            return shown(self.tiles[0].path)
        return f"{self.name} epoch ({len(self.tiles)} tiles under {_common_parent(self.tiles)})"


def _common_parent(tiles: Iterable[Tile]) -> str:
    parents = {str(t.path.parent) if isinstance(t.path, Path) else t.path.rsplit("/", 1)[0] for t in tiles}
    return parents.pop() if len(parents) == 1 else "several folders"


def _expand(spec: PathSpec, asset: str | None = None, sign: str | None = None) -> list[tuple[Location, StacAsset | None]]:
    """Every raster of an epoch: files, the rasters of directories, URLs, and the assets of STAC items
    (:mod:`damage.io.stac`; ``asset`` chooses which), each with its item (None for a plain file)."""
    items = [spec] if isinstance(spec, (str, PathLike)) else list(spec)
    if not items:
        raise InputNotFoundError("an epoch was given as an empty list of paths")
    paths: list[tuple[Location, StacAsset | None]] = []
    for item in items:
        if is_stac(item):
            paths.extend((locate(a.href), a) for a in read_stac(item, asset, sign))
            continue
        if is_remote(item):
            paths.append((item, None))  # type: ignore[arg-type]
            continue
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in RASTER_SUFFIXES and p.is_file())
            if not found:
                raise InputNotFoundError(f"{path}: directory holds no raster tiles ({', '.join(RASTER_SUFFIXES)})")
            paths.extend((p, None) for p in found)
        elif path.is_file():
            paths.append((path, None))
        else:
            raise InputNotFoundError(f"{path}: no such file or directory")
    return paths


@contextlib.contextmanager
def _dataset(path: Location, gcps: bool = False) -> Iterator[Any]:
    """The raster to read: the file itself, or, for a file georeferenced by ground control points only
    (Sentinel-1 GRD, a scanned map), a north-up warped VRT of it in the GCPs' CRS (GDAL's GCP transformer,
    nearest neighbour, an alpha band where the image has no pixel). Its grid is GDAL's choice, the same
    for every read of the file."""
    with rasterio.open(path) as ds:
        if not gcps:
            yield ds
            return
        from rasterio.vrt import WarpedVRT

        with WarpedVRT(ds, src_crs=ds.gcps[1], crs=ds.gcps[1], add_alpha=True) as vrt:
            yield vrt


def _open_tile(path: Location, item: StacAsset | None = None) -> Tile:
    try:
        with rasterio.open(path) as raw:
            gcps = (raw.crs is None or raw.transform.is_identity) and bool(raw.gcps[0]) and raw.gcps[1] is not None
        with _dataset(path, gcps) as ds:
            crs, transform = ds.crs, ds.transform
            if crs is None or transform.is_identity:
                raise MissingCRSError(f"{path}: raster has no CRS or no georeferencing")
            if not transform.is_rectilinear or transform.b or transform.d:
                raise InvalidRasterError(f"{path}: rotated rasters are not supported; warp it north-up first")
            if any(np.dtype(d).kind == "c" for d in ds.dtypes):
                raise InvalidRasterError(f"{path}: complex-valued pixels ({ds.dtypes[0]}); give the amplitude or "
                                         "intensity (e.g. gdal_calc.py --calc='abs(A)')")
            flags = ds.mask_flag_enums
            per_dataset = any(MaskFlags.per_dataset in f or MaskFlags.alpha in f for f in flags)
            has_alpha = ds.count > 1 and ds.colorinterp[-1].name == "alpha"
            count = ds.count - 1 if has_alpha else ds.count
            if item is not None:
                check_header(item, crs.to_epsg())
            date = item.date if item is not None else _date_of(path, {**ds.tags(), **ds.tags(1)})
            return Tile(path, crs, transform, ds.width, ds.height, count, ds.nodata, per_dataset, date, item, gcps)
    except RasterioIOError as exc:
        of_item = f" (asset {item.key!r} of STAC item {item.item!r} in {item.source})" if item is not None else ""
        raise InvalidRasterError(f"{path}{of_item}: not a readable raster ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def open_epoch(spec: PathSpec, name: str = "epoch", asset: str | None = None, sign: str | None = None) -> Epoch:
    """Read the headers of an epoch's tiles and check they form one epoch.

    Parameters
    ----------
    spec : path or sequence of paths
        A raster file, a directory of raster tiles, a STAC Item or ItemCollection (``.json``, by
        path or URL), or a list of any of them.
    name : str
        ``"before"`` or ``"after"``, used in messages.
    asset : str, optional
        The STAC items' asset, by key or role (default ``visual``, else the first GeoTIFF with role
        ``data``).
    sign : str, optional
        Sign the STAC assets' URLs for their host (``"planetary-computer"``: :func:`damage.io.stac.sign_href`).

    Returns
    -------
    Epoch

    Raises
    ------
    InputNotFoundError, InvalidRasterError, MissingCRSError, BandMismatchError
    """
    if isinstance(spec, Epoch):  # opened already: its headers are not read again
        return spec
    tiles = tuple(_open_tile(p, item) for p, item in _expand(spec, asset, sign))
    counts = {t.count for t in tiles}
    if len(counts) > 1:
        detail = ", ".join(f"{_name(t.path)}: {t.count}" for t in tiles[:4])
        raise BandMismatchError(f"{name} epoch: tiles have different band counts ({detail})")
    return Epoch(name, tiles)


def tiles_of(opened: Epoch | list[Acquisition]) -> list[Tile]:
    """The tiles of an opened epoch or of every image of a stack."""
    return list(opened.tiles) if isinstance(opened, Epoch) else [t for acq in opened for t in acq.epoch.tiles]


def check_order(before: Epoch, after: Epoch) -> None:
    """Warn (:class:`DamageWarning`) when the tiles' dates say an after tile is older than a
    before tile: swapped arguments grade new buildings as destroyed ones."""
    b = [t.date for t in before.tiles if t.date is not None]
    a = [t.date for t in after.tiles if t.date is not None]
    if b and a and max(b) > min(a):
        warnings.warn(f"{after.describe()} is dated {min(a)}, earlier than {before.describe()} ({max(b)}): "
                      "are before and after swapped?", DamageWarning, stacklevel=3)


@dataclasses.dataclass(frozen=True)
class Acquisition:
    """One image of a stack: its tiles (an :class:`Epoch`), date, orbit group and units."""

    epoch: Epoch
    date: datetime.date | None
    orbit: str | None
    units: str | None

    def describe(self) -> str:
        return f"{self.epoch.describe()} ({self.date or 'no date'})"


_DATE_TAGS = ("ACQUISITION_DATE", "ACQUISITION_START", "DATE", "TIFFTAG_DATETIME", "startTime", "acquisition_date")
_ORBIT_TAGS = ("RELATIVE_ORBIT", "ORBIT", "relativeOrbitNumber_start", "orbit")
_UNIT_TAGS = ("SAR_UNITS", "UNITS", "units")
_DATE_IN_NAME = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")
_ORBIT_IN_NAME = re.compile(r"(?:orbit|_R|_ORB)[-_]?(\d{1,3})(?!\d)", re.IGNORECASE)


def _parse_date(text: str) -> datetime.date | None:
    m = _DATE_IN_NAME.search(text.replace(":", "-"))
    if not m:
        return None
    try:
        return datetime.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def _date_of(path: Location, tags: dict) -> datetime.date | None:
    date = next((d for d in (_parse_date(str(tags[k])) for k in _DATE_TAGS if k in tags) if d), None)
    return date or _parse_date(_stem(path))


def _stack_tags(path: Location) -> tuple[datetime.date | None, str | None, str | None]:
    """Date, orbit and units of a file, from its metadata tags or else its name."""
    try:
        with rasterio.open(path) as ds:
            tags = {**ds.tags(), **ds.tags(1)}
            band_units = ds.units[0] if ds.units and ds.units[0] else None
    except RasterioIOError as exc:
        raise InvalidRasterError(f"{path}: not a readable raster ({_first_line(exc)})") from None
    date = _date_of(path, tags)
    orbit = next((str(tags[k]) for k in _ORBIT_TAGS if k in tags), None)
    if orbit is None and (m := _ORBIT_IN_NAME.search(_stem(path))):
        orbit = str(int(m.group(1)))
    units = next((str(tags[k]) for k in _UNIT_TAGS if k in tags), band_units)
    return date, orbit, units.lower() if units else None


def open_stack(spec: PathSpec, name: str = "stack", asset: str | None = None,
               sign: str | None = None) -> list[Acquisition]:
    """Read the headers of a stack of images and group its files into acquisitions.

    Files with the same date and orbit are tiles of one acquisition; files without a
    date are one acquisition each. Dates come from metadata tags
    (``ACQUISITION_DATE``, ``TIFFTAG_DATETIME``, ...) or a ``YYYYMMDD`` /
    ``YYYY-MM-DD`` in the file name; the orbit group from ``RELATIVE_ORBIT`` /
    ``ORBIT`` tags or ``orbitNNN`` / ``_RNNN`` in the name; units from a
    ``SAR_UNITS``/``UNITS`` tag or the band's unit.

    Parameters
    ----------
    spec : path or sequence of paths
        Files, directories of files, STAC Items or ItemCollections (dated by the items), or a
        list of any of them.
    name : str
        ``"before"`` or ``"after"``, used in messages.
    asset : str, optional
        The STAC items' asset, by key or role (``vv``, say).
    sign : str, optional
        As for :func:`open_epoch`.

    Returns
    -------
    list of Acquisition
        In date order (undated last, in path order).
    """
    if isinstance(spec, list) and spec and all(isinstance(a, Acquisition) for a in spec):  # opened already
        return spec
    groups: dict[tuple, list[tuple[Tile, str | None]]] = {}
    for i, (path, item) in enumerate(_expand(spec, asset, sign)):
        tile = _open_tile(path, item)
        date, orbit, units = _stack_tags(path)
        if item is not None:  # the item's date and orbit (Sentinel-1 items: sat:relative_orbit)
            date, orbit = item.date, item.orbit or orbit
        key = (date, orbit) if date is not None else (None, f"#{i}")
        groups.setdefault(key, []).append((tile, units))
    out = []
    for (date, orbit), members in groups.items():
        tiles = tuple(t for t, _ in members)
        counts = {t.count for t in tiles}
        if len(counts) > 1:
            raise BandMismatchError(f"{name} stack: tiles of {date} have different band counts")
        declared = {u for _, u in members if u is not None}
        if len(declared) > 1:
            raise InvalidRasterError(f"{name} stack: tiles of {date} declare different units {sorted(declared)}")
        real_orbit = None if orbit is not None and orbit.startswith("#") else orbit
        out.append(Acquisition(Epoch(name, tiles), date, real_orbit, declared.pop() if declared else None))
    out.sort(key=lambda a: (a.date is None, a.date or datetime.date.min))
    return out


def read_tile(tile: Tile, window: Window, factor: int = 1) -> tuple[np.ndarray, np.ndarray | None, Affine]:
    """Read a window of a tile, every ``factor`` x ``factor`` pixels averaged into one (GDAL takes them
    from an overview where the file has one).

    Returns
    -------
    data : numpy.ndarray
        ``(bands, rows, cols)`` in the file's dtype (alpha band excluded).
    mask : numpy.ndarray or None
        ``(rows, cols)`` bool validity from a nodata value, alpha or mask band; None
        when the file declares none of these.
    transform : Affine
        Transform of the window.
    """
    try:
        with _dataset(tile.path, tile.gcps) as ds:
            indexes = list(range(1, tile.count + 1))
            if factor > 1:
                shape = (tile.count, -(-int(window.height) // factor), -(-int(window.width) // factor))
                data = ds.read(indexes, window=window, out_shape=shape, resampling=rasterio.enums.Resampling.average)
                mask = None
                if tile.nodata is not None or tile.per_dataset_mask:
                    mask = ds.read_masks(indexes, window=window, out_shape=shape).min(axis=0) > 0
                t = ds.window_transform(window)
                return data, mask, t @ Affine.scale(window.width / shape[2], window.height / shape[1])
            data = ds.read(indexes, window=window)
            mask = None
            if tile.nodata is not None or tile.per_dataset_mask:
                mask = ds.read_masks(indexes, window=window).min(axis=0) > 0
            return data, mask, ds.window_transform(window)
    except RasterioIOError as exc:
        raise InvalidRasterError(f"{tile.path}: could not read pixels ({_first_line(exc)})") from None


def has_overviews(tile: Tile) -> bool:
    """Whether the file holds reduced-resolution copies (GDAL overviews, internal or ``.ovr``)."""
    if tile.gcps:  # a warped VRT has none of its own
        return False
    try:
        with rasterio.open(tile.path) as ds:
            return bool(ds.overviews(1))
    except RasterioIOError as exc:
        raise InvalidRasterError(f"{tile.path}: could not read pixels ({_first_line(exc)})") from None


def read_decimated(tile: Tile, max_side: int = 256) -> tuple[np.ndarray, np.ndarray | None]:
    """The whole tile read at most ``max_side`` pixels a side (GDAL overviews or averaging).

    Returns the ``(bands, rows, cols)`` pixels and the declared validity (or None),
    as :func:`read_tile` does; memory is that of the small read only.
    """
    factor = max(1, -(-max(tile.height, tile.width) // max_side))
    shape = (max(1, tile.height // factor), max(1, tile.width // factor))
    try:
        with _dataset(tile.path, tile.gcps) as ds:
            indexes = list(range(1, tile.count + 1))
            data = ds.read(indexes, out_shape=(tile.count, *shape), resampling=rasterio.enums.Resampling.average)
            mask = None
            if tile.nodata is not None or tile.per_dataset_mask:
                mask = ds.read_masks(indexes, out_shape=(tile.count, *shape)).min(axis=0) > 0
            return data, mask
    except RasterioIOError as exc:
        raise InvalidRasterError(f"{tile.path}: could not read pixels ({_first_line(exc)})") from None


def read_footprints(source: str | PathLike | gpd.GeoDataFrame,
                    bbox: tuple[float, float, float, float] | None = None) -> gpd.GeoDataFrame:
    """Read building footprints and make them usable.

    Invalid polygons are repaired (``shapely.make_valid``, keeping the polygonal
    part); empty, null and non-polygonal geometries are kept as rows but cannot be
    analysed. Each repair or skip is counted in one :class:`DamageWarning`.

    Parameters
    ----------
    source : path or GeoDataFrame
        Any vector file OGR reads (GeoJSON, GeoPackage, Shapefile, ...), a GeoParquet
        file (``.parquet``/``.geoparquet``), or a GeoDataFrame; a path or a URL.
    bbox : tuple of float, optional
        Read only the footprints that meet this lon/lat box (west, south, east, north), reading
        as little of the file as its format allows (:func:`damage.io.byarea.read_by_area`).

    Returns
    -------
    geopandas.GeoDataFrame
        The footprints in input order, with a fresh RangeIndex.
    """
    gdf, label = _read_whole(source, bbox)
    tally = Tally()
    gdf = tidy_footprints(gdf, label, tally)
    tally.judge(label, stacklevel=3)
    return gdf


def _read_whole(source: str | PathLike | gpd.GeoDataFrame,
                bbox: tuple[float, float, float, float] | None) -> tuple[gpd.GeoDataFrame, str]:
    """The footprints as the source holds them, and the name messages give them."""
    if isinstance(source, gpd.GeoDataFrame):
        return source.copy(), "footprints"
    if bbox is not None:
        from damage.io.byarea import read_by_area

        if not is_remote(str(source)) and not Path(source).exists():
            raise InputNotFoundError(f"{source}: no such file or directory")
        gdf = read_by_area(str(source), bbox)
        if len(gdf) == 0:
            raise EmptyFootprintsError(f"{source}: holds no footprints where the imagery is ({bbox[0]:.5f}, {bbox[1]:.5f}, "
                                       f"{bbox[2]:.5f}, {bbox[3]:.5f} lon/lat)")
        return gdf, str(source)
    return read_vector(locate(source)), str(source)


@dataclasses.dataclass
class Tally:
    """What tidying footprints found, summed over the batches of a file read a part at a time."""

    rows: int = 0
    unusable: int = 0  # empty, null or not polygons (absurd ones not counted)
    absurd: int = 0  # coordinates no place on Earth has
    invalid: int = 0  # invalid polygons, repaired or not
    unrepaired: int = 0  # invalid ones make_valid left empty
    lost: int = 0  # footprints with no usable shape at all (unusable, absurd or unrepaired)

    def judge(self, label: str, stacklevel: int = 2) -> None:
        """Refuse footprints of which none can be used, in one line; warn of the repairs and skips.

        Raises
        ------
        damage.errors.EmptyFootprintsError, damage.errors.InvalidFootprintsError
        """
        if self.rows == 0:
            raise EmptyFootprintsError(f"{label}: holds no footprints")
        if self.absurd:
            if self.absurd + self.unusable == self.rows:
                raise InvalidFootprintsError(f"{label}: every footprint has coordinates no place on Earth has "
                                             "(infinite, NaN or far out of range); is the CRS right?")
            warnings.warn(f"{label}: {self.absurd} footprint(s) have coordinates no place on Earth has "
                          "(infinite, NaN or far out of range) and are not analysed", DamageWarning, stacklevel=stacklevel)
        if self.absurd + self.unusable == self.rows:
            raise EmptyFootprintsError(f"{label}: holds no polygon footprints (all {self.rows} are empty, null or not "
                                       "polygons)")
        if self.invalid:
            if self.lost == self.rows:
                raise EmptyFootprintsError(f"{label}: holds no usable footprint (the {self.invalid} invalid ones "
                                           "cannot be repaired; the rest are empty, null or not polygons)")
            warnings.warn(f"{label}: repaired {self.invalid - self.unrepaired} invalid footprint(s)"
                          + (f"; {self.unrepaired} could not be repaired and are not analysed" if self.unrepaired else ""),
                          DamageWarning, stacklevel=stacklevel)
        if self.unusable:
            warnings.warn(f"{label}: {self.unusable} footprint(s) are empty, null or not polygons and are not analysed",
                          DamageWarning, stacklevel=stacklevel)


def tidy_footprints(gdf: gpd.GeoDataFrame, label: str, tally: Tally) -> gpd.GeoDataFrame:
    """Footprints made usable (see :func:`read_footprints`), what was done counted in ``tally``: the whole file
    or one batch of it (:func:`damage.io.stream.footprint_batches`), with the same rows either way.

    Raises
    ------
    damage.errors.InvalidFootprintsError, damage.errors.MissingCRSError
        No geometry column, no CRS, or a CRS with no way to longitude/latitude.
    """
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry is None:
        raise InvalidFootprintsError(f"{label}: holds no geometry column")
    if gdf.crs is None:
        if len(gdf) == 0:
            return gdf
        raise MissingCRSError(f"{label}: footprints have no CRS")
    try:  # a local or engineering CRS has no way to the imagery's
        from pyproj import Transformer

        Transformer.from_crs(gdf.crs, "EPSG:4326", always_xy=True)
    except Exception:  # pyproj raises ProjError, CRSError, ... for a CRS it cannot place on Earth
        raise MissingCRSError(f"{label}: footprints are in {gdf.crs.name!r}, a CRS that cannot be transformed to "
                              "longitude/latitude (local or engineering); give them in a georeferenced CRS") from None
    gdf = gdf.reset_index(drop=True)
    tally.rows += len(gdf)
    if len(gdf) == 0:
        return gdf
    geoms = gdf.geometry.values
    polygonal = shapely.get_type_id(geoms) == 3
    polygonal |= shapely.get_type_id(geoms) == 6
    unusable = shapely.is_missing(geoms) | shapely.is_empty(geoms) | ~polygonal
    absurd = ~unusable & ~_plausible(np.asarray(geoms, dtype=object), gdf.crs)
    tally.unusable += int(unusable.sum())
    if absurd.any():
        tally.absurd += int(absurd.sum())
        new = np.asarray(geoms, dtype=object).copy()
        new[absurd] = None
        gdf = gdf.set_geometry(gpd.GeoSeries(new, crs=gdf.crs, index=gdf.index))
        geoms = gdf.geometry.values
        unusable = unusable | absurd
    lost = unusable.copy()
    invalid = ~unusable & ~shapely.is_valid(geoms)
    if invalid.any():
        fixed = _polygonal_part(shapely.make_valid(np.asarray(geoms)[invalid]))
        new = np.asarray(geoms).copy()
        new[invalid] = fixed
        gdf = gdf.set_geometry(gpd.GeoSeries(new, crs=gdf.crs, index=gdf.index))
        still = shapely.is_empty(fixed) | shapely.is_missing(fixed)
        lost[np.flatnonzero(invalid)[still]] = True
        tally.invalid += int(invalid.sum())
        tally.unrepaired += int(still.sum())
    tally.lost += int(lost.sum())
    return gdf


def _plausible(geoms: np.ndarray, crs) -> np.ndarray:
    """Footprints whose coordinates are finite and of a size a place on Earth can have in ``crs``."""
    out = np.ones(len(geoms), bool)
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if not ok.any():
        return out
    bounds = shapely.bounds(geoms[ok])
    finite = analysable(geoms[ok])  # every coordinate finite (non-polygons are set aside before this matters)
    limit = np.array([-540.0, -91.0, 540.0, 91.0]) if crs.is_geographic else np.array([-1e8, -1e8, 1e8, 1e8])
    inside = (bounds[:, 0] >= limit[0]) & (bounds[:, 1] >= limit[1]) & (bounds[:, 2] <= limit[2]) & (bounds[:, 3] <= limit[3])
    out[np.flatnonzero(ok)] = finite & inside
    return out


def read_vector(path: Location, error: type[DamageError] = InvalidFootprintsError) -> gpd.GeoDataFrame:
    """Any vector file OGR reads (local or remote), or GeoParquet; ``error`` (naming the file)
    if unreadable.

    An attribute named ``geometry`` (which OGR readers drop, as the shape has that name) is
    kept as ``geometry_``, with a :class:`DamageWarning`.
    """
    if isinstance(path, Path) and not path.exists():
        raise InputNotFoundError(f"{path}: no such file or directory")
    try:
        if _name(path).lower().endswith((".parquet", ".geoparquet")):
            return gpd.read_parquet(path)
        if _name(path).lower().endswith((".osm.pbf", ".osm")):  # OpenStreetMap: buildings and campuses are areas
            return gpd.read_file(path, layer="multipolygons")
        gdf = gpd.read_file(path)
        return _keep_geometry_attribute(path, gdf)
    except DamageError:
        raise
    except Exception as exc:  # pyogrio/pyarrow raise many types for a bad file
        raise error(f"{path}: not a readable vector file ({_first_line(exc)})") from None


def _keep_geometry_attribute(path: Location, gdf: gpd.GeoDataFrame, **window: int) -> gpd.GeoDataFrame:
    """``gdf`` (read by OGR; ``window``: its ``skip_features`` and ``max_features``) with the attribute
    named ``geometry`` put back."""
    import pyogrio

    if "geometry" not in list(pyogrio.read_info(path)["fields"]):
        return gdf
    name = "geometry_"
    while name in gdf.columns:
        name += "_"
    values = pyogrio.read_dataframe(path, read_geometry=False, columns=["geometry"], **window)["geometry"]
    gdf.insert(len(gdf.columns) - 1 if gdf.columns[-1] == gdf.geometry.name else len(gdf.columns), name, values.to_numpy())
    warnings.warn(f"{path}: its attribute 'geometry' is kept as {name!r} (the shape has that name)", DamageWarning,
                  stacklevel=3)
    return gdf


def read_result(path: str | PathLike) -> gpd.GeoDataFrame:
    """Read an assessment written by :func:`damage.write` (GeoJSON, GeoPackage, GeoParquet),
    with its run record in ``attrs["damage"]`` when the file holds one."""
    gdf = read_vector(locate(path))
    if gdf.crs is None:
        raise MissingCRSError(f"{path}: has no CRS")
    record = None if is_remote(path) else read_record(Path(path))
    if record is not None:
        gdf.attrs["damage"] = record
    return gdf


def read_record(path: Path) -> dict | None:
    """The run record an output of :func:`damage.write` carries, or None (read as data, never run)."""
    import json

    suffix = path.suffix.lower()
    try:
        if suffix in (".geojson", ".json"):
            with open(path, encoding="utf-8") as fh:
                head = fh.read(1 << 20)  # the record is written before the features
            at = head.find('"damage":')
            if at < 0:
                return None
            start = at + len('"damage":')
            start += len(head[start:]) - len(head[start:].lstrip())
            value, _ = json.JSONDecoder().raw_decode(head, start)
        elif suffix == ".gpkg":
            import pyogrio

            meta = pyogrio.read_info(path, layer="damage").get("layer_metadata") or {}
            value = json.loads(meta["damage"]) if "damage" in meta else None
        elif suffix in (".parquet", ".geoparquet"):
            value = gpd.read_parquet(path).attrs.get("damage")  # read_vector already restored it; cheap enough
        else:
            return None
    except (OSError, ValueError, KeyError):  # not a record we wrote: the result is still usable
        return None
    return value if isinstance(value, dict) else None


def _polygonal_part(geoms: np.ndarray) -> np.ndarray:
    """Keep only the polygons of each geometry (make_valid may return collections)."""
    out = np.empty(len(geoms), dtype=object)
    for i, g in enumerate(geoms):  # only the few repaired geometries pass here
        if g is None or g.is_empty:
            out[i] = shapely.Polygon()
        elif g.geom_type in ("Polygon", "MultiPolygon"):
            out[i] = g
        else:
            polys = [p for p in shapely.get_parts(g) if p.geom_type in ("Polygon", "MultiPolygon")]
            out[i] = shapely.union_all(polys) if polys else shapely.Polygon()
    return out
