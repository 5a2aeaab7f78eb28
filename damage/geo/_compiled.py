"""Compiled loops for per-footprint reductions (numba), imported where they are used."""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["group_quantiles"]


@numba.njit(cache=True, nogil=True)
def group_quantiles(values, start, count, qs, out):  # pragma: no cover - compiled
    """``out[k, g]``: the ``qs[k]`` quantile (linear interpolation) of ``values[start[g]:start[g] + count[g]]``.

    Each group is sorted on its own (a copy): groups are small, and a value's rank never
    depends on the other groups.
    """
    for g in range(start.shape[0]):
        m = count[g]
        if m == 0:
            continue
        part = np.sort(values[start[g] : start[g] + m])
        for k in range(qs.shape[0]):
            offset = qs[k] * (m - 1)
            whole = np.floor(offset)
            lo = int(whole)
            hi = min(lo + 1, m - 1)
            frac = offset - whole
            out[k, g] = part[lo] * (1 - frac) + part[hi] * frac
