"""Provenance of a run: every input file (size, SHA-256, acquisition date), the versions
of the library and its main dependencies, when it started and how long it took.

Stored in the run record (``result.attrs["damage"]["provenance"]``), so every output
carries it; ``damage evaluate`` and the report show it.
"""

from __future__ import annotations

import datetime
import hashlib
import platform
import time
from importlib import metadata
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from damage.io.sources import Epoch

__all__ = ["file_record", "sha256_of", "versions", "Clock", "provenance", "provenance_lines"]

#: Distributions whose versions a run records (the library's main dependencies).
DEPENDENCIES = ("numpy", "scipy", "rasterio", "geopandas", "shapely", "pyproj", "pyogrio", "scikit-image")


def file_record(path: str | PathLike, acquired: str | None = None) -> dict[str, Any]:
    """``path`` (absolute), its size in bytes, its SHA-256 and its acquisition date (None when unknown).

    A remote input (a URL or GDAL virtual path) is recorded by its address, with size and
    SHA-256 None: hashing it would mean downloading all of it.
    """
    from damage.io.sources import is_remote, shown

    if is_remote(path):  # its address without the query string, where tokens live (SAS, presigned URLs)
        return {"path": shown(path), "bytes": None, "sha256": None, "acquired": acquired}
    p = Path(path)
    return {"path": str(p.resolve()), "bytes": p.stat().st_size, "sha256": sha256_of(p), "acquired": acquired}


def sha256_of(path: str | PathLike) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def versions() -> dict[str, str]:
    """Versions of Python, the library, its main dependencies and GDAL."""
    from damage._version import __version__

    out = {"python": platform.python_version(), "damage": __version__}
    for name in DEPENDENCIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:
        import rasterio

        out["gdal"] = rasterio.__gdal_version__
    except ImportError:
        pass
    return out


class Clock:
    """When a run started (UTC, ISO 8601) and how long it has taken."""

    def __init__(self) -> None:
        self.started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        self._t0 = time.perf_counter()

    @property
    def seconds(self) -> float:
        return round(time.perf_counter() - self._t0, 2)


def provenance(before: Epoch, after: Epoch, others: dict[str, Any], clock: Clock) -> dict[str, Any]:
    """The provenance block: the tiles of each epoch (with the dates their headers gave) and the
    other inputs (``role -> path``, those given in memory left out), versions, time."""

    def tiles(epoch: Epoch) -> list[dict[str, Any]]:
        return [file_record(str(t.path), t.date.isoformat() if t.date else None)
                | ({"stac_item": t.item.record()} if t.item is not None else {}) for t in epoch.tiles]

    return {
        "inputs": {
            "before": tiles(before),
            "after": tiles(after),
            "other": [{"role": role, **file_record(p)} for role, p in others.items() if isinstance(p, (str, PathLike))],
        },
        "versions": versions(),
        "started": clock.started,
        "seconds": clock.seconds,
    }


def provenance_lines(prov: dict[str, Any]) -> str:
    """A few lines of text saying where a result comes from."""
    lines = [f"assessed {prov.get('started', '?')} in {prov.get('seconds', '?')} s with damage "
             f"{prov.get('versions', {}).get('damage', '?')} (GDAL {prov.get('versions', {}).get('gdal', '?')})"]
    for epoch in ("before", "after", "other"):
        files = prov.get("inputs", {}).get(epoch, [])
        if files:
            dates = sorted({f["acquired"] for f in files if f.get("acquired")})
            size = sum(int(f.get("bytes") or 0) for f in files) / 1e6
            remote = sum(f.get("sha256") is None for f in files)
            lines.append(f"  {epoch}: {len(files)} file(s), {size:.1f} MB"
                         + (f", acquired {', '.join(dates)}" if dates else
                            ", no acquisition date in the files" if epoch != "other" else "")
                         + (f"; sha256 {files[0]['sha256'][:12]}..." + (" (first)" if len(files) > 1 else "")
                            if files[0].get("sha256") else "")
                         + (f"; {remote} remote, not hashed" if remote else ""))
    return "\n".join(lines)
