"""Epochs from STAC: an Item, an ItemCollection or several, by path or URL, read with pystac.

Each item gives one raster: its asset chosen by key or role (default ``visual``, else the first
GeoTIFF asset with role ``data``), its href resolved against the item's own location (relative
hrefs as Maxar Open Data publishes them), its date from the item's ``datetime`` (or
``start_datetime``), its orbit from ``sat:relative_orbit``. The CRS and transform are always
read from the image's own header; an item whose ``proj:code`` / ``proj:epsg`` disagrees with it
is warned about. Every failure is one line naming the item or URL.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import urllib.request
import warnings
from os import PathLike
from pathlib import Path
from typing import Any

from damage.errors import DamageWarning, InputNotFoundError, StacError

__all__ = ["StacAsset", "is_stac", "read_stac", "sign_href", "DEFAULT_ASSET", "PC_TOKEN_URL"]

#: The asset an item gives when none is asked for (Maxar Open Data's true-colour image).
DEFAULT_ASSET = "visual"
_GEOTIFF = ("image/tiff", "image/vnd.stac.geotiff")


@dataclasses.dataclass(frozen=True)
class StacAsset:
    """One item's raster: what GDAL opens, and what the item says of it.

    Attributes
    ----------
    href : str
        A local path or a URL (absolute).
    key : str
        The asset's key in the item.
    item, collection : str
        The item's id and collection (None when it has none).
    source : str
        Where the item was read (its file or URL).
    date : datetime.date or None
        From ``datetime`` or ``start_datetime``.
    orbit : str or None
        ``sat:relative_orbit``, for radar stacks.
    epsg : int or None
        ``proj:epsg`` (or the EPSG code of ``proj:code``), checked against the image's header.
    """

    href: str
    key: str
    item: str
    collection: str | None
    source: str
    date: datetime.date | None
    orbit: str | None
    epsg: int | None

    def record(self) -> dict[str, Any]:
        """The run record's line for this item."""
        return {"id": self.item, "collection": self.collection, "asset": self.key, "self": self.source}


def is_stac(item: object) -> bool:
    """Whether an epoch's element names a STAC document (a ``.json`` file or URL)."""
    if not isinstance(item, (str, PathLike)):
        return False
    text = str(item).split("?", 1)[0].lower()
    return text.endswith(".json")


def _load(location: str) -> Any:
    try:
        import pystac
    except ImportError:  # pragma: no cover - a dependency of the package
        raise StacError("STAC input needs pystac: pip install pystac") from None
    remote = "://" in location
    if not remote and not Path(location).is_file():
        raise InputNotFoundError(f"{location}: no such STAC item or item collection")
    try:
        doc = pystac.StacIO.default().read_json(location)
    except Exception as exc:  # urllib's and json's own errors: one line naming the URL
        raise StacError(f"{location}: cannot read it as JSON ({str(exc).splitlines()[0][:160]})") from None
    if not isinstance(doc, dict):
        raise StacError(f"{location}: not a STAC item or item collection (a JSON {type(doc).__name__})")
    features = doc.get("features") if doc.get("type") == "FeatureCollection" else [doc]
    for f in features if isinstance(features, list) else []:
        props = f.get("properties") if isinstance(f, dict) else None
        if isinstance(props, dict) and props.get("datetime") is None and props.get("start_datetime") is None:
            raise StacError(f"{location}: item {f.get('id')!r} has no datetime (nor start_datetime): its epoch cannot be dated")
    try:
        if doc.get("type") == "FeatureCollection":
            return list(pystac.ItemCollection.from_dict(doc, preserve_dict=False))
        if doc.get("type") == "Feature" and "stac_version" in doc:
            return [pystac.Item.from_dict(doc, preserve_dict=False)]
    except Exception as exc:
        raise StacError(f"{location}: not a valid STAC document ({str(exc).splitlines()[0][:160]})") from None
    raise StacError(f"{location}: not a STAC item or item collection (no 'stac_version', type {doc.get('type')!r})")


def _absolute(href: str, base: str) -> str:
    """``href`` resolved against the document it was read from (a URL or a file)."""
    if "://" in href or href.startswith("/vsi"):
        return href
    if "://" in base:
        from urllib.parse import urljoin

        return urljoin(base, href)
    return href if href.startswith("/") else str((Path(base).parent / href).resolve())


def _choose(item: Any, asset: str | None, where: str) -> tuple[str, Any]:
    assets = item.assets
    if asset is not None:
        if asset in assets:
            return asset, assets[asset]
        with_role = [(k, a) for k, a in assets.items() if asset in (a.roles or [])]
        if with_role:
            return with_role[0]
        raise StacError(f"{where}: item {item.id!r} has no asset {asset!r} (it has {sorted(assets)})")
    if DEFAULT_ASSET in assets:
        return DEFAULT_ASSET, assets[DEFAULT_ASSET]
    for key, a in assets.items():
        if "data" in (a.roles or []) and (a.media_type or "").startswith(_GEOTIFF):
            return key, a
    raise StacError(f"{where}: item {item.id!r} has no '{DEFAULT_ASSET}' asset nor a GeoTIFF asset with role 'data' "
                    f"(it has {sorted(assets)}); choose one with --asset")


def _date(item: Any, where: str) -> datetime.date:
    when = item.datetime or item.common_metadata.start_datetime
    if when is None:
        raise StacError(f"{where}: item {item.id!r} has no datetime (nor start_datetime): its epoch cannot be dated")
    return when.date()


def _epsg(props: dict[str, Any]) -> int | None:
    code = props.get("proj:epsg")
    if isinstance(code, int):
        return code
    text = props.get("proj:code")
    if isinstance(text, str) and text.upper().startswith("EPSG:") and text[5:].isdigit():
        return int(text[5:])
    return None


def read_stac(location: str | PathLike, asset: str | None = None, sign: str | None = None) -> list[StacAsset]:
    """The rasters of a STAC Item or ItemCollection, one per item, in the document's order; with ``sign``,
    their URLs signed for their host (:func:`sign_href`).

    Raises
    ------
    InputNotFoundError, StacError
        No such file; not JSON, not STAC, an item without the asset or without a date.
    """
    where = str(location)
    items = _load(where)
    if not items:
        raise StacError(f"{where}: an item collection with no items")
    out = []
    for item in items:
        key, chosen = _choose(item, asset, where)
        self_link = item.get_self_href() or where
        orbit = item.properties.get("sat:relative_orbit")
        # a relative href is relative to where the document was read (a downloaded item's neighbours)
        href = _absolute(chosen.href, where)
        if sign is not None:
            href = sign_href(href, item.collection_id, sign)
        out.append(StacAsset(href, key, item.id, item.collection_id, self_link,
                             _date(item, where), None if orbit is None else str(orbit), _epsg(item.properties)))
    return out


#: Planetary Computer's token endpoint: a SAS token per collection (``{"token": ..., "msft:expiry": ...}``).
PC_TOKEN_URL = "https://planetarycomputer.microsoft.com/api/sas/v1/token/{collection}"
_TOKENS: dict[str, tuple[str, datetime.datetime]] = {}


def sign_href(href: str, collection: str | None, signer: str) -> str:
    """``href`` with the signer's token appended (``planetary-computer``: its collection's SAS token, fetched once
    and kept until five minutes before it expires). Local paths are returned as they are.

    Raises
    ------
    StacError
        The item names no collection, or the token cannot be had (one line naming the endpoint).
    """
    if "://" not in href:
        return href
    if signer != "planetary-computer":
        raise StacError(f"unknown signer {signer!r}; the one signer is 'planetary-computer'")
    if not collection:
        raise StacError(f"{href}: its item names no collection, which a Planetary Computer token is for")
    now = datetime.datetime.now(datetime.timezone.utc)
    token, expiry = _TOKENS.get(collection, ("", now))
    if not token or expiry - now < datetime.timedelta(minutes=5):
        url = PC_TOKEN_URL.format(collection=collection)
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                doc = json.loads(response.read())
            token = str(doc["token"])
            expiry = datetime.datetime.fromisoformat(str(doc.get("msft:expiry", "")).replace("Z", "+00:00") or
                                                     (now + datetime.timedelta(minutes=30)).isoformat())
        except Exception as exc:  # urllib's, json's and a missing key: one line naming the endpoint
            raise StacError(f"{url}: no token for collection {collection!r} ({str(exc).splitlines()[0][:160]})") from None
        if expiry.tzinfo is None:
            expiry = expiry.replace(tzinfo=datetime.timezone.utc)
        _TOKENS[collection] = (token, expiry)
    return f"{href}{'&' if '?' in href else '?'}{token}"


def check_header(asset: StacAsset, epsg: int | None) -> None:
    """Warn when the item's ``proj:epsg``/``proj:code`` disagrees with the image's header (the header is used)."""
    if asset.epsg is not None and epsg is not None and asset.epsg != epsg:
        warnings.warn(f"{asset.source}: item {asset.item!r} says EPSG:{asset.epsg} but {asset.href} is in EPSG:{epsg}; "
                      "the image's own header is used", DamageWarning, stacklevel=4)
