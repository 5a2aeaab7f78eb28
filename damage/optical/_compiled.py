"""Compiled loops (numba), imported only where they are used; compiled once and cached on disk.

numba is a dependency because the loops here fuse what would otherwise be dozens of
whole-window numpy passes per displacement, each reading and writing the whole window,
into one pass over each building's box (see :mod:`damage.optical.alignment`).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["move_sums"]

# Contraction (FMA), reassociation and reciprocals let the loops vectorise; no value here is NaN or
# infinite. They are used where every loop starts at the building's own box, so a value never depends
# on the window it is computed in; over whole windows (ssim_min) only the exact operations are, or a
# pixel's value would depend on whether it falls in a vector loop's body or its remainder.
_FAST = {"contract", "reassoc", "nsz", "arcp", "nnan", "ninf"}
_EXACT = {"nsz", "nnan", "ninf"}


@numba.njit(cache=True, nogil=True)
def _reflect(i: int, n: int) -> int:
    """scipy.ndimage's ``reflect`` boundary: d c b a | a b c d | d c b a."""
    while i < 0 or i >= n:
        i = -i - 1 if i < 0 else 2 * n - i - 1
    return i


@numba.njit(cache=True, nogil=True, fastmath=_FAST, error_model="numpy")
def move_sums(x, ypad, mx, mypad, vypad, lumx, conx, c1, c2, before, apad, inv_ranges, t, w,
              seg, prow, pcol, dys, dxs, todo, out):  # pragma: no cover - compiled
    """Sums over each building's footprint and ring pixels of SSIM loss and colour difference, per move.

    Building ``i``'s footprint has pixels ``seg[2i]:seg[2i + 1]`` and its ring
    ``seg[2i + 1]:seg[2i + 2]`` (rows ``prow``, columns ``pcol``); for each move ``m`` with ``todo[i, m]``, ``out[:, i, m]`` gets
    the footprint's and the ring's sums of loss and of colour difference.
    """
    rad = w.shape[0] // 2
    taps = w.shape[0]
    height, width = x.shape
    nbands = before.shape[0]
    wf = w.astype(np.float32)
    inv = inv_ranges.astype(np.float32)
    k1, k2 = np.float32(c1), np.float32(c2)
    one, zero, two = np.float32(1.0), np.float32(0.0), np.float32(2.0)
    for i in range(seg.shape[0] // 2):
        a, f, b = seg[2 * i], seg[2 * i + 1], seg[2 * i + 2]
        if a == b:
            continue
        r0, r1, c0, c1_ = prow[a], prow[a], pcol[a], pcol[a]
        for j in range(a, b):
            r0 = min(r0, prow[j])
            r1 = max(r1, prow[j])
            c0 = min(c0, pcol[j])
            c1_ = max(c1_, pcol[j])
        nr = r1 - r0 + 1
        nh = nr + 2 * rad
        nc = c1_ - c0 + 1
        npx = nc + 2 * rad
        h = np.empty((nh, nc), np.float32)
        v = np.empty(nc, np.float32)
        loss = np.empty((nr, nc), np.float32)
        diff = np.empty((nr, nc), np.float32)
        p = np.empty(npx, np.float32)
        cols = np.empty(npx, np.int64)
        for k in range(npx):
            cols[k] = _reflect(c0 - rad + k, width)
        inner = c0 - rad >= 0 and c1_ + rad < width  # no column reflected: contiguous reads
        for m in range(dys.shape[0]):
            if not todo[i, m]:
                continue
            dy, dx = dys[m], dxs[m]
            # horizontal pass of before x moved after over the box's rows (and rad rows each side)
            for rr in range(nh):
                ri = _reflect(r0 - rad + rr, height)
                yr = ri + t - dy
                if inner:
                    base = c0 - rad
                    for k in range(npx):
                        p[k] = x[ri, base + k] * ypad[yr, base + k + t - dx]
                else:
                    for k in range(npx):
                        ci = cols[k]
                        p[k] = x[ri, ci] * ypad[yr, ci + t - dx]
                for c in range(nc):
                    h[rr, c] = wf[0] * p[c]
                for k in range(1, taps):
                    wk = wf[k]
                    for c in range(nc):
                        h[rr, c] += wk * p[c + k]
            # vertical pass, SSIM loss and colour difference over the box (contiguous rows: vectorised)
            for r in range(nr):
                for c in range(nc):
                    v[c] = wf[0] * h[r, c]
                for k in range(1, taps):
                    wk = wf[k]
                    for c in range(nc):
                        v[c] += wk * h[r + k, c]
                rb, ay, ax = r0 + r, r0 + r + t - dy, c0 + t - dx
                # rows as 1-d views: the loops below vectorise
                mys_row, vys_row = mypad[ay, ax:ax + nc], vypad[ay, ax:ax + nc]
                mx_row, lx_row, cx_row = mx[rb, c0:c0 + nc], lumx[rb, c0:c0 + nc], conx[rb, c0:c0 + nc]
                lrow, drow = loss[r], diff[r]
                for c in range(nc):
                    mys = mys_row[c]
                    mxx = mx_row[c]
                    cov = v[c] - mxx * mys
                    num = (two * mxx * mys + k1) * (two * cov + k2)
                    den = (lx_row[c] + mys * mys) * (cx_row[c] + vys_row[c])
                    q = one - num / den
                    lrow[c] = zero if q < zero else (one if q > one else q)
                for c in range(nc):
                    drow[c] = zero
                for band in range(nbands):
                    a_row, b_row, ib = apad[band, ay, ax:ax + nc], before[band, rb, c0:c0 + nc], inv[band]
                    for c in range(nc):
                        drow[c] += abs(a_row[c] - b_row[c]) * ib
            # sums over the footprint's pixels, then the ring's
            s0 = 0.0
            s1 = 0.0
            for j in range(a, f):
                s0 += loss[prow[j] - r0, pcol[j] - c0]
                s1 += diff[prow[j] - r0, pcol[j] - c0]
            s2 = 0.0
            s3 = 0.0
            for j in range(f, b):
                s2 += loss[prow[j] - r0, pcol[j] - c0]
                s3 += diff[prow[j] - r0, pcol[j] - c0]
            s1 /= nbands
            s3 /= nbands
            out[0, i, m] = s0
            out[1, i, m] = s1
            out[2, i, m] = s2
            out[3, i, m] = s3



@numba.njit(cache=True, nogil=True, fastmath=_EXACT, error_model="numpy")
def ssim_min(x, ypad, mx, mypad, vypad, lumx, conx, k1s, k2s, t, w, dys, dxs, out, strip):  # pragma: no cover - compiled
    """Per pixel, the smallest over moves of one minus SSIM averaged over bands, clipped to [0, 1].

    ``x``, ``mx``, ``lumx`` (``mx**2 + c1``) and ``conx`` (noise-free variance ``+ c2``) are the
    before epoch's ``(bands, rows, cols)``; ``ypad``, ``mypad`` and ``vypad`` the after epoch's
    padded by ``t``. Rows are done in strips of ``strip`` so the filter's buffers stay in cache.
    """
    rad = w.shape[0] // 2
    taps = w.shape[0]
    nbands, height, width = x.shape
    wf = w.astype(np.float32)
    one, zero, two = np.float32(1.0), np.float32(0.0), np.float32(2.0)
    scale = np.float32(1.0 / nbands)
    npx = width + 2 * rad
    cols = np.empty(npx, np.int64)
    for k in range(npx):
        cols[k] = _reflect(k - rad, width)
    p = np.empty(npx, np.float32)
    h = np.empty((strip + 2 * rad, width), np.float32)
    v = np.empty(width, np.float32)
    acc = np.empty((strip, width), np.float32)
    for r0 in range(0, height, strip):
        nr = min(strip, height - r0)
        nh = nr + 2 * rad
        for m in range(dys.shape[0]):
            dy, dx = dys[m], dxs[m]
            for r in range(nr):
                for c in range(width):
                    acc[r, c] = zero
            for b in range(nbands):
                k1, k2 = k1s[b], k2s[b]
                for rr in range(nh):
                    ri = _reflect(r0 - rad + rr, height)
                    yr = ri + t - dy
                    xrow, yrow = x[b, ri], ypad[b, yr, t - dx : t - dx + width]
                    for c in range(width):
                        p[rad + c] = xrow[c] * yrow[c]
                    for k in range(rad):
                        ci = cols[k]
                        p[k] = xrow[ci] * ypad[b, yr, ci + t - dx]
                        ci = cols[rad + width + k]
                        p[rad + width + k] = xrow[ci] * ypad[b, yr, ci + t - dx]
                    hrow = h[rr]
                    for c in range(width):
                        hrow[c] = wf[0] * p[c]
                    for k in range(1, taps):
                        wk = wf[k]
                        for c in range(width):
                            hrow[c] += wk * p[c + k]
                for r in range(nr):
                    for c in range(width):
                        v[c] = wf[0] * h[r, c]
                    for k in range(1, taps):
                        wk = wf[k]
                        for c in range(width):
                            v[c] += wk * h[r + k, c]
                    rb, ay = r0 + r, r0 + r + t - dy
                    mys_row, vys_row = mypad[b, ay, t - dx : t - dx + width], vypad[b, ay, t - dx : t - dx + width]
                    mx_row, lx_row, cx_row, arow = mx[b, rb], lumx[b, rb], conx[b, rb], acc[r]
                    for c in range(width):
                        mys = mys_row[c]
                        mxx = mx_row[c]
                        cov = v[c] - mxx * mys
                        num = (two * mxx * mys + k1) * (two * cov + k2)
                        den = (lx_row[c] + mys * mys) * (cx_row[c] + vys_row[c])
                        arow[c] += one - num / den
            for r in range(nr):
                orow, arow = out[r0 + r], acc[r]
                for c in range(width):
                    q = arow[c] * scale
                    q = zero if q < zero else (one if q > one else q)
                    if m == 0 or q < orow[c]:
                        orow[c] = q
