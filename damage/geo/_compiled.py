"""Compiled loops for per-footprint reductions (numba), imported where they are used."""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["group_quantiles", "label_sums", "darker_counts", "span_pixels"]


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


@numba.njit(cache=True, nogil=True)
def label_sums(labels, idx, maps, n):  # pragma: no cover - compiled
    """``out[z, k]``: the sum of ``maps[k][idx[e]]`` over the entries ``e`` of label ``z`` (``n`` labels), in float64.

    Each label's values are added in the order its entries come, as ``numpy.bincount`` adds them: the
    same sums to the bit, for every map in one pass over the entries (one bincount per map would
    gather and scatter them once a map).
    """
    nmaps = len(maps)
    out = np.zeros((n, nmaps))
    for e in range(labels.shape[0]):
        z, p = labels[e], idx[e]
        for k in range(nmaps):
            out[z, k] += maps[k][p]
    return out


@numba.njit(cache=True, nogil=True)
def darker_counts(labels, idx, values, below, first, n):  # pragma: no cover - compiled
    """``out[z]``: how many entries of label ``z >= first`` have ``values[idx[e]] < below[z - first]`` (``n`` labels)."""
    out = np.zeros(n)
    for e in range(labels.shape[0]):
        z = labels[e]
        if z >= first and values[idx[e]] < below[z - first]:
            out[z] += 1.0
    return out


@numba.njit(cache=True, nogil=True)
def span_pixels(owner, row, start, end, width, keep, offset):  # pragma: no cover - compiled
    """``(labels, flat indices)`` of the pixels of spans (``owner``, ``row``, ``start``, ``end``) on a grid
    ``width`` wide where ``keep`` (flat, bool) holds, span after span; labels are owners plus ``offset``."""
    total = 0
    for s in range(owner.shape[0]):
        base = row[s] * width
        for c in range(start[s], end[s]):
            total += keep[base + c]
    labels = np.empty(total, np.int64)
    idx = np.empty(total, np.int64)
    k = 0
    for s in range(owner.shape[0]):
        base = row[s] * width
        lab = owner[s] + offset
        for c in range(start[s], end[s]):
            if keep[base + c]:
                labels[k] = lab
                idx[k] = base + c
                k += 1
    return labels, idx
