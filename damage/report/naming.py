"""What a reader calls a building: its name (if it has one), its id and where it is."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["building_id", "building_title", "lonlat"]


def building_id(result: pd.DataFrame, i: int) -> str:
    """The id of row ``i`` (``building_id``; ``row <i+1>`` for a result written before ids existed)."""
    if "building_id" in result:
        value = result["building_id"].iloc[i]
        if value is not None and value == value:
            return str(value)
    return f"row {i + 1}"


def building_title(result: pd.DataFrame, i: int, name_col: str | None = None) -> str:
    """``"<name> (<id>)"`` for a named building, else ``"building <id>"``."""
    ident = building_id(result, i)
    if name_col and name_col in result:
        name = result[name_col].iloc[i]
        if isinstance(name, str) and name.strip():
            return f"{name.strip()} ({ident})"
    return f"building {ident}"


def lonlat(result, rows) -> dict[int, str]:
    """``"36.12345 N, 94.51234 W"`` of each row's representative point (5 decimals: about a metre)."""
    rows = [int(r) for r in rows if 0 <= int(r) < len(result)]  # chips of facilities assessed as one polygon: no row
    if not rows or result.crs is None:
        return {}
    pts = result.geometry.iloc[rows].representative_point().to_crs("EPSG:4326")
    out = {}
    for r, x, y in zip(rows, pts.x.to_numpy(), pts.y.to_numpy()):
        if np.isfinite(x) and np.isfinite(y):
            out[r] = f"{abs(y):.5f} {'N' if y >= 0 else 'S'}, {abs(x):.5f} {'E' if x >= 0 else 'W'}"
    return out
