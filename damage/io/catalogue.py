"""Find the imagery of an event in a STAC API: enough items to cover an area, least cloudy, nearest the event.

:func:`search` asks the API for the items of each epoch's date range over the area; :func:`choose`
keeps, in order of cloud cover (``eo:cloud_cover``, else Maxar's ``tile:clouds_percent``; an item
that says nothing counts as cloudy) and then of nearness to the event (the end of the before range,
the start of the after range), each item that covers a part of the area not yet covered, until the
area is covered; with ``every=True`` (radar stacks) every item of the range is kept. The chosen items
are written as ItemCollections that :func:`damage.assess` takes as epochs, with absolute hrefs.
"""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path
from typing import Any

import shapely

from damage.errors import MissingDependencyError, StacError

__all__ = ["Choice", "search", "choose", "parse_range", "write_items", "event_of", "summary"]

#: Share of the area an item must add to be kept, and the share at which the area counts as covered.
MIN_GAIN, COVERED = 0.001, 0.999


@dataclasses.dataclass(frozen=True)
class Choice:
    """One item considered, and why it was kept or not."""

    item: Any
    cloud: float | None
    when: datetime.datetime | None
    gain: float
    kept: bool
    why: str
    #: Share of the area covered once this item was considered.
    share: float = 0.0

    def line(self) -> str:
        cloud = "no cloud cover given" if self.cloud is None else f"{self.cloud:g} % cloud"
        when = self.when.date().isoformat() if self.when else "undated"
        return f"  {'+' if self.kept else '-'} {self.item.id} ({when}, {cloud}): {self.why}"


def parse_range(text: str) -> tuple[datetime.datetime, datetime.datetime]:
    """``START/END`` (dates or datetimes, ISO 8601; a date's end is the end of that day) as UTC datetimes."""
    try:
        start_text, end_text = text.split("/")
        start = _parse(start_text, end=False)
        end = _parse(end_text, end=True)
    except ValueError:
        raise StacError(f"date range {text!r}: give START/END as ISO dates, e.g. 2023-02-01/2023-02-05") from None
    if end < start:
        raise StacError(f"date range {text!r}: ends before it starts")
    return start, end


def _parse(text: str, end: bool) -> datetime.datetime:
    if len(text) == 10:
        day = datetime.date.fromisoformat(text)
        t = datetime.datetime.combine(day, datetime.time.max if end else datetime.time.min)
    else:
        t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=datetime.timezone.utc)


def _cloud(item: Any) -> float | None:
    for key in ("eo:cloud_cover", "tile:clouds_percent"):
        value = item.properties.get(key)
        if isinstance(value, (int, float)):
            return float(value)
    return None


def _when(item: Any) -> datetime.datetime | None:
    return item.datetime or item.common_metadata.start_datetime


def choose(items: list[Any], area: Any, event: datetime.datetime, every: bool = False) -> list[Choice]:
    """The items to keep over ``area`` (a shapely geometry in lon/lat), in the order they were considered."""
    def key(item: Any) -> tuple:
        cloud = _cloud(item)
        when = _when(item)
        gap = abs((when - event).total_seconds()) if when else float("inf")
        return (cloud is None, cloud if cloud is not None else 0.0, gap, item.id)

    total = max(area.area, 1e-18)
    covered = shapely.Polygon()
    out = []
    for item in sorted(items, key=key):
        footprint = shapely.geometry.shape(item.geometry) if item.geometry else shapely.box(*item.bbox)
        new = shapely.difference(shapely.intersection(footprint, area), covered)
        gain = new.area / total
        share = min(shapely.intersection(covered, area).area / total, 1.0)
        if every:
            covered = shapely.union(covered, footprint)
            share = min(shapely.intersection(covered, area).area / total, 1.0)
            out.append(Choice(item, _cloud(item), _when(item), gain, True, "every image of the range (a stack)", share))
        elif share >= COVERED:
            out.append(Choice(item, _cloud(item), _when(item), 0.0, False, "the area is already covered", share))
        elif gain < MIN_GAIN:
            out.append(Choice(item, _cloud(item), _when(item), gain, False, "adds nothing to what is covered", share))
        else:
            covered = shapely.union(covered, footprint)
            share = min(shapely.intersection(covered, area).area / total, 1.0)
            out.append(Choice(item, _cloud(item), _when(item), gain, True,
                              f"adds {100 * gain:.0f} % of the area ({100 * share:.0f} % covered)", share))
    return out


def search(api: str, area: Any, dates: tuple[datetime.datetime, datetime.datetime],
           collections: list[str] | None = None, limit: int = 500) -> list[Any]:
    """The items of a STAC API over ``area`` (lon/lat) within ``dates``.

    Raises
    ------
    StacError
        The API cannot be reached, is not a STAC API, or fails the search (one line naming the URL).
    """
    try:
        from pystac_client import Client
    except ImportError:
        raise MissingDependencyError("damage search needs pystac-client: pip install 'damage-assess[stac]'") from None
    try:
        client = Client.open(api, timeout=60)
    except Exception as exc:
        raise StacError(f"{api}: not a STAC API that answers ({str(exc).splitlines()[0][:160]})") from None
    try:
        found = client.search(intersects=shapely.geometry.mapping(area), datetime=[dates[0], dates[1]],
                              collections=collections or None, max_items=limit)
        return list(found.items())
    except Exception as exc:
        raise StacError(f"{api}: the search failed ({str(exc).splitlines()[0][:160]})") from None


def write_items(choices: list[Choice], path: Path) -> Path:
    """The kept items as an ItemCollection with absolute hrefs (read by :func:`damage.assess` as an epoch)."""
    features = []
    for c in choices:
        if not c.kept:
            continue
        doc = c.item.to_dict(transform_hrefs=False)
        base = c.item.get_self_href()
        for asset in doc.get("assets", {}).values():
            href = asset.get("href", "")
            if base and "://" not in href and not href.startswith("/"):
                from urllib.parse import urljoin

                asset["href"] = urljoin(base, href)
        features.append(doc)
    from damage.io.writers import write_json

    return write_json({"type": "FeatureCollection", "features": features}, path)


def event_of(before: tuple[datetime.datetime, datetime.datetime], after: tuple[datetime.datetime, datetime.datetime]
             ) -> tuple[datetime.datetime, datetime.datetime]:
    """Where each epoch is nearest the event: the end of the before range, the start of the after range."""
    return before[1], after[0]


def summary(choices: list[Choice]) -> str:
    """What was chosen and why, a line per item considered."""
    kept = [c for c in choices if c.kept]
    return "\n".join([f"{len(kept)} of {len(choices)} items kept"] + [c.line() for c in choices])
