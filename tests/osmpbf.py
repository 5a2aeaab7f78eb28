"""A minimal OpenStreetMap PBF writer for the tests (no writer is at hand: GDAL reads the format, osmium is
not installed): nodes and closed ways with tags, in uncompressed blobs, as the format's specification
(https://wiki.openstreetmap.org/wiki/PBF_Format) describes them.
"""

from __future__ import annotations

import struct
from pathlib import Path


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 63)


def _key(field: int, wire: int) -> bytes:
    return _varint((field << 3) | wire)


def _bytes(field: int, data: bytes) -> bytes:
    return _key(field, 2) + _varint(len(data)) + data


def _int(field: int, n: int) -> bytes:
    return _key(field, 0) + _varint(n)


def _sint(field: int, n: int) -> bytes:
    return _key(field, 0) + _varint(_zigzag(n))


def _packed(field: int, values: list[int], signed: bool = False) -> bytes:
    return _bytes(field, b"".join(_varint(_zigzag(v) if signed else v) for v in values))


def _blob(kind: str, block: bytes) -> bytes:
    blob = _bytes(1, block)  # raw, uncompressed
    header = _bytes(1, kind.encode()) + _int(3, len(blob))
    return struct.pack(">I", len(header)) + header + blob


def write_pbf(path: Path, nodes: list[tuple[int, float, float]], ways: list[tuple[int, list[int], dict[str, str]]]) -> Path:
    """``nodes``: (id, lon, lat); ``ways``: (id, node ids, tags). Coordinates at 1e-7 degrees (granularity 100)."""
    strings = [""]

    def index(text: str) -> int:
        if text not in strings:
            strings.append(text)
        return strings.index(text)

    node_group = b"".join(_bytes(1, _sint(1, node_id) + _sint(8, round(lat * 1e7)) + _sint(9, round(lon * 1e7)))
                          for node_id, lon, lat in nodes)
    way_group = b""
    for way_id, refs, tags in ways:
        keys = [index(k) for k in tags]
        vals = [index(v) for v in tags.values()]
        deltas = [refs[0]] + [b - a for a, b in zip(refs, refs[1:])]
        way_group += _bytes(3, _int(1, way_id) + _packed(2, keys) + _packed(3, vals) + _packed(8, deltas, signed=True))
    table = _bytes(1, b"".join(_bytes(1, s.encode()) for s in strings))
    block = table + _bytes(2, node_group) + _bytes(2, way_group) + _int(17, 100)  # one kind per group
    header = _bytes(4, b"OsmSchema-V0.6")
    path.write_bytes(_blob("OSMHeader", header) + _blob("OSMData", block))
    return path
