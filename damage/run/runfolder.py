"""A batch run's folder: what identifies a run, one writer at a time, and checks of what is in it.

Everything in a run folder is data; nothing in it is ever executed. A rerun resumes only
when the inputs' contents, the settings and the library version are those of the run that
wrote the folder; a folder being written by another live run is refused; a manifest or
chunk file that is not what a run wrote is named in a one-line error, or (a chunk cut
short by a kill) redone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd

from damage._version import __version__
from damage.errors import CorruptRunError, OutputError
from damage.run.provenance import sha256_of

__all__ = ["signature", "lock", "read_manifest", "check_chunks", "check_written", "plan_digest"]


def _file_id(path: Path, content: bool) -> list:
    """A file's identity: by content (its SHA-256) when ``content``, else by size and modification time."""
    st = path.stat()
    if content:  # a file touched or copied back with the same bytes is the same input
        return [str(path.resolve()), st.st_size, sha256_of(path)]
    return [str(path.resolve()), st.st_size, st.st_mtime_ns]


def _spec_id(spec: Any, content: bool) -> list:
    """Identity of every file under a path spec: path, size, modification time (and content hash)."""
    if spec is None:
        return [None]
    if isinstance(spec, gpd.GeoDataFrame):
        return [_frame_id(spec)]
    items = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    out: list[Any] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out.extend(_file_id(f, content) for f in sorted(p.rglob("*")) if f.is_file())
        elif p.exists():
            out.append(_file_id(p, content))
        else:
            out.append([str(item)])  # a URL or a GDAL path: its name
    return out


def _frame_id(frame: gpd.GeoDataFrame) -> str:
    """Hash of a GeoDataFrame's geometries (WKB), attributes and CRS."""
    h = hashlib.sha256()
    h.update(str(frame.crs).encode())
    h.update(b"".join(g or b"" for g in frame.geometry.to_wkb().values))
    attrs = frame.drop(columns=frame.geometry.name)
    h.update(",".join(map(str, attrs.columns)).encode())
    if len(attrs.columns):
        h.update(pd.util.hash_pandas_object(attrs.astype(str), index=False).values.tobytes())
    return h.hexdigest()


def signature(before: Any, after: Any, footprints: Any, config: dict, where: str | None, aoi: Any, chunk_px: int) -> str:
    """What identifies a run: a rerun with the same signature resumes it.

    Footprints, the area of interest and a learned model (``config["model"]``) count by
    content (hashed); imagery by path, size and modification time of every tile (hashing
    terabytes of imagery on every rerun would cost more than the run); the configuration
    and the library version in full.
    """
    doc = json.dumps([_spec_id(before, False), _spec_id(after, False), _spec_id(footprints, True), config, where,
                      _spec_id(aoi, True), chunk_px, __version__, _spec_id(config.get("model"), True)], default=str)
    return hashlib.sha256(doc.encode()).hexdigest()[:24]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def lock(folder: Path) -> Iterator[None]:
    """Hold the folder's lock while a run writes into it; a second live run is refused.

    A lock left by a run that was killed (its process is gone) is taken over.
    """
    path = folder / ".lock"
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                holder = json.loads(path.read_text())
                pid, host = int(holder["pid"]), str(holder["host"])
            except (OSError, ValueError, KeyError, TypeError):
                pid, host = -1, str(me["host"])  # unreadable: left half-written by a killed run
            if host == me["host"] and (pid <= 0 or not _alive(pid)):  # pid 0 would signal our own group
                path.unlink(missing_ok=True)  # stale
                continue
            raise OutputError(f"{folder}: another run (process {pid} on {host}) is writing into this folder; "
                              "wait for it or use another folder") from None
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        break
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


_MANIFEST_KEYS = {"signature": str, "version": str, "config": dict, "grid": dict, "chunk_size": int, "chunks": dict,
                  "chunk_parts": dict, "footprints": int, "parts": list, "part_rows": int, "failed": dict, "sha256": dict,
                  "plan_sha256": str}
#: The manifest's keys a run writes once (its plan); the rest (``failed``, ``sha256``) change as chunks finish.
_PLAN_KEYS = ("signature", "version", "config", "record", "grid", "chunk_size", "chunks", "chunk_parts", "footprints",
              "parts", "part_rows", "fit")


def plan_digest(manifest: dict) -> str:
    """SHA-256 of the manifest's plan (:data:`_PLAN_KEYS`, canonical JSON), stored beside it so that
    a plan changed by hand or by a disk is refused rather than followed."""
    doc = json.dumps({k: manifest.get(k) for k in _PLAN_KEYS}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(doc.encode()).hexdigest()


def read_manifest(path: Path) -> dict | None:
    """The run's manifest, or None when there is none; anything malformed is a CorruptRunError."""
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptRunError(f"{path}: not a run manifest ({exc}); delete the run folder and run again") from None
    if not isinstance(doc, dict):
        raise CorruptRunError(f"{path}: not a run manifest (a {type(doc).__name__}, not an object)")
    for key, kind in _MANIFEST_KEYS.items():
        if not isinstance(doc.get(key), kind) or (kind is int and isinstance(doc.get(key), bool)):
            what = {"int": "a whole number", "str": "text", "dict": "an object", "list": "a list"}.get(kind.__name__,
                                                                                                     kind.__name__)
            raise CorruptRunError(f"{path}: not a run manifest ({key!r} missing or not {what})")
    if not all(isinstance(k, str) and isinstance(v, int) for k, v in doc["chunks"].items()):
        raise CorruptRunError(f"{path}: not a run manifest ('chunks' must map chunk names to counts)")
    if plan_digest(doc) != doc["plan_sha256"]:
        raise CorruptRunError(f"{path}: changed since the run wrote it (its plan's SHA-256 differs); "
                              "delete the run folder and run again")
    sums = doc["sha256"]
    for key in ("chunks", "footprints"):
        if not isinstance(sums.get(key), dict) or not all(isinstance(v, str) for v in sums[key].values()):
            raise CorruptRunError(f"{path}: not a run manifest ('sha256' must hold the {key}' SHA-256)")
    names = doc["parts"]
    if not names or not all(isinstance(n, str) and re.fullmatch(r"part-\d{5}\.parquet", n) for n in names) \
            or doc["part_rows"] < 1:
        raise CorruptRunError(f"{path}: not a run manifest ('parts' must name the footprints' parts)")
    if set(doc["chunk_parts"]) != set(doc["chunks"]) or not all(
            isinstance(v, list) and set(v) <= set(names) for v in doc["chunk_parts"].values()):
        raise CorruptRunError(f"{path}: not a run manifest ('chunk_parts' must name each chunk's parts)")
    return doc


def check_written(folder: Path, sums: dict[str, str], names: Iterable[str]) -> None:
    """Refuse a run folder whose files (``names`` in ``folder``) differ from what the run wrote (``sums``:
    their SHA-256 as the manifest holds them).

    Raises
    ------
    CorruptRunError
        Naming the file that is missing or whose SHA-256 differs from the manifest's.
    """
    for name in names:
        path = folder / name
        if not path.is_file():
            raise CorruptRunError(f"{path}: missing from the run folder; delete the run folder and run again")
        if sha256_of(path) != sums.get(name):
            raise CorruptRunError(f"{path}: changed since the run wrote it (SHA-256 differs); "
                                  "delete the run folder and run again")


def check_chunks(folder: Path, chunks: dict[str, int], sums: dict[str, str]) -> list[tuple[str, str]]:
    """Chunk files that are present but not as the run wrote them, removed to be redone, each with why:
    ``"unfinished"`` (written by a run stopped before it recorded the file's SHA-256: a normal
    resume) or ``"damaged"`` (truncated, changed or from another run since it was recorded)."""
    import pyarrow.parquet as pq

    redo = []
    for name in chunks:
        f = folder / "chunks" / f"{name}.parquet"
        if not f.exists():
            continue
        if not f.is_file() or sha256_of(f) != sums.get(name):
            rows = -1
        else:
            try:
                rows = pq.read_metadata(f).num_rows
            except Exception:  # pyarrow raises several kinds for a damaged file
                rows = -1
        if rows != chunks[name]:
            if f.is_dir():
                shutil.rmtree(f)
            else:
                f.unlink()
            redo.append((name, "unfinished" if name not in sums else "damaged"))
    return redo
