"""Compiled loops (numba), imported only where they are used; compiled once and cached on disk.

numba is a dependency because the loops here fuse what would otherwise be dozens of
whole-window numpy passes per displacement, each reading and writing the whole window,
into one pass over each building's box (see :mod:`damage.optical.alignment`).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["box_sums", "ssim_min", "gauss2d"]

# No value here is NaN or infinite; division by zero follows numpy (no Python check), which lets the
# loops vectorise. Contraction (FMA), reassociation and reciprocals are allowed where every loop starts
# at a building's own box (a value then never depends on the window); over whole windows (ssim_min)
# only operations that round exactly as written, or a pixel's value would depend on whether it falls
# in a vector loop's body or its remainder, that is on the window.
_FAST = {"contract", "reassoc", "nsz", "arcp", "nnan", "ninf"}
_EXACT = {"nsz", "nnan", "ninf"}
#: Columns of a box are made in whole multiples of this (the widest float32 vector, AVX-512), the extra
#: ones computed and ignored: short rows (a house is 20 to 40 px wide) then have no scalar remainder.
_LANES = 16


@numba.njit(cache=True, nogil=True)
def _reflect(i: int, n: int) -> int:
    """scipy.ndimage's ``reflect`` boundary: d c b a | a b c d | d c b a."""
    while i < 0 or i >= n:
        i = -i - 1 if i < 0 else 2 * n - i - 1
    return i


@numba.njit(cache=True, nogil=True, inline="always")
def _hpass(p, wf, hrow, n):  # pragma: no cover - compiled
    """``hrow[c] = sum_k wf[k] p[c + k]`` for ``c < n``: a row of a separable filter (taps outer, so it vectorises)."""
    for c in range(n):
        hrow[c] = wf[0] * p[c]
    for k in range(1, wf.shape[0]):
        wk = wf[k]
        for c in range(n):
            hrow[c] += wk * p[c + k]


@numba.njit(cache=True, nogil=True, inline="always")
def _vpass(h, r, wf, v, n):  # pragma: no cover - compiled
    """``v[c] = sum_k wf[k] h[r + k, c]`` for ``c < n``: the other direction of the filter, for output row ``r``."""
    for c in range(n):
        v[c] = wf[0] * h[r, c]
    for k in range(1, wf.shape[0]):
        wk = wf[k]
        for c in range(n):
            v[c] += wk * h[r + k, c]


@numba.njit(cache=True, nogil=True, inline="always")
def _ssim_row(v, mx, my, lumx, conx, vy, k1, k2, out, n):  # pragma: no cover - compiled
    """One minus SSIM (not clipped) along a row: ``v`` the Gaussian of before x after, ``mx``/``my``
    the local means, ``lumx`` = mx^2 + k1, ``conx`` the before's variance + k2, ``vy`` the after's variance."""
    two, one = np.float32(2.0), np.float32(1.0)
    for c in range(n):
        cov = v[c] - mx[c] * my[c]
        num = (two * mx[c] * my[c] + k1) * (two * cov + k2)
        den = (lumx[c] + my[c] * my[c]) * (conx[c] + vy[c])
        out[c] = one - num / den


@numba.njit(cache=True, nogil=True, fastmath=_FAST, error_model="numpy")
def _region(x, ypad, mx, mypad, vypad, lumx, conx, k1, k2, before, apad, inv, t, wf,
            r0, nr, c0, nc, dy, dx, h, v, p, loss, diff):  # pragma: no cover - compiled
    """SSIM loss of the luminance and colour difference (summed over bands) for move ``(dy, dx)``
    over rows ``r0:r0 + nr`` and columns ``c0:c0 + nc``, into ``loss[:nr, :nc]`` and ``diff[:nr, :nc]``.

    The Gaussian of ``before x moved after`` is a horizontal pass over the region's rows
    (and ``rad`` more each side), then a vertical one; ``h``, ``v``, ``p`` are scratch.
    """
    rad = wf.shape[0] // 2
    height, width = x.shape
    nbands = before.shape[0]
    one, zero = np.float32(1.0), np.float32(0.0)
    nh = nr + 2 * rad
    npx = nc + 2 * rad
    inner = c0 - rad >= 0 and c0 + nc + rad <= width  # no column reflected: contiguous reads
    for rr in range(nh):
        ri = _reflect(r0 - rad + rr, height)
        yr = ri + t - dy
        if inner:
            base = c0 - rad
            for k in range(npx):
                p[k] = x[ri, base + k] * ypad[yr, base + k + t - dx]
        else:
            for k in range(npx):
                ci = _reflect(c0 - rad + k, width)
                p[k] = x[ri, ci] * ypad[yr, ci + t - dx]
        _hpass(p, wf, h[rr], nc)
    for r in range(nr):
        _vpass(h, r, wf, v, nc)
        rb, ay, ax = r0 + r, r0 + r + t - dy, c0 + t - dx
        mys_row, vys_row = mypad[ay, ax:ax + nc], vypad[ay, ax:ax + nc]
        mx_row, lx_row, cx_row = mx[rb, c0:c0 + nc], lumx[rb, c0:c0 + nc], conx[rb, c0:c0 + nc]
        lrow, drow = loss[r], diff[r]
        _ssim_row(v, mx_row, mys_row, lx_row, cx_row, vys_row, k1, k2, lrow, nc)
        for c in range(nc):
            q = lrow[c]
            lrow[c] = zero if q < zero else (one if q > one else q)
        for c in range(nc):
            drow[c] = zero
        for band in range(nbands):
            a_row, b_row, ib = apad[band, ay, ax:ax + nc], before[band, rb, c0:c0 + nc], inv[band]
            for c in range(nc):
                drow[c] += abs(a_row[c] - b_row[c]) * ib


@numba.njit(cache=True, nogil=True, inline="always")
def _zone_sums(loss, diff, prow, pcol, a, b, r0, c0):  # pragma: no cover - compiled
    """Sums of ``loss`` and ``diff`` (a box whose corner is ``r0, c0``) at the pixels ``a:b`` of ``prow, pcol``."""
    s_loss = 0.0
    s_diff = 0.0
    for j in range(a, b):
        s_loss += loss[prow[j] - r0, pcol[j] - c0]
        s_diff += diff[prow[j] - r0, pcol[j] - c0]
    return s_loss, s_diff


@numba.njit(cache=True, nogil=True, fastmath=_FAST, error_model="numpy")
def box_sums(x, ypad, mx, mypad, vypad, lumx, conx, c1, c2, before, apad, inv_ranges, t, w,
             seg, prow, pcol, dys, dxs, todo_fp, todo_ring, out):  # pragma: no cover - compiled
    """Per building and move, sums of SSIM loss and colour difference over its footprint and its ring,
    each building on its own box.

    Building ``i``'s footprint has pixels ``seg[2i]:seg[2i + 1]`` and its ring
    ``seg[2i + 1]:seg[2i + 2]`` (rows ``prow``, columns ``pcol``, in row order). For a move
    ``m`` with ``todo_ring[i, m]`` the maps are made over the box of both and ``out[:, i, m]``
    gets all four sums (footprint loss, footprint difference, ring loss, ring difference);
    with ``todo_fp[i, m]`` only, over the footprint's box, and the footprint's two sums.
    """
    rad = w.shape[0] // 2
    wf = w.astype(np.float32)
    inv = inv_ranges.astype(np.float32)
    k1, k2 = np.float32(c1), np.float32(c2)
    for i in range(seg.shape[0] // 2):
        a, f, b = seg[2 * i], seg[2 * i + 1], seg[2 * i + 2]
        if a == b:
            continue
        # the footprint's box, and the box of footprint and ring
        fr0, fr1, fc0, fc1 = 1 << 40, -1, 1 << 40, -1
        for j in range(a, f):
            fr0, fr1 = min(fr0, prow[j]), max(fr1, prow[j])
            fc0, fc1 = min(fc0, pcol[j]), max(fc1, pcol[j])
        r0, r1, c0, c1_ = fr0, fr1, fc0, fc1
        for j in range(f, b):
            r0, r1 = min(r0, prow[j]), max(r1, prow[j])
            c0, c1_ = min(c0, pcol[j]), max(c1_, pcol[j])
        nr, nc = r1 - r0 + 1, c1_ - c0 + 1
        wide = min(-(-nc // _LANES) * _LANES, x.shape[1] - c0)  # whole vectors: no scalar remainder in the row loops
        h = np.empty((nr + 2 * rad, wide), np.float32)
        v = np.empty(wide, np.float32)
        p = np.empty(wide + 2 * rad, np.float32)
        loss = np.empty((nr, wide), np.float32)
        diff = np.empty((nr, wide), np.float32)
        for m in range(dys.shape[0]):
            whole = todo_ring[i, m]
            if not (whole or (todo_fp[i, m] and f > a)):
                continue
            br0, bc0 = (r0, c0) if whole else (fr0, fc0)
            bnr, bnc = (nr, wide) if whole else (fr1 - fr0 + 1, min(-(-(fc1 - fc0 + 1) // _LANES) * _LANES, x.shape[1] - fc0))
            _region(x, ypad, mx, mypad, vypad, lumx, conx, k1, k2, before, apad, inv, t, wf,
                    br0, bnr, bc0, bnc, dys[m], dxs[m], h, v, p, loss, diff)
            out[0, i, m], out[1, i, m] = _zone_sums(loss, diff, prow, pcol, a, f, br0, bc0)
            if whole:
                out[2, i, m], out[3, i, m] = _zone_sums(loss, diff, prow, pcol, f, b, br0, bc0)


@numba.njit(cache=True, nogil=True, fastmath=_EXACT, error_model="numpy")
def ssim_min(x, ypad, mx, mypad, vypad, lumx, conx, k1s, k2s, t, w, dys, dxs, out, strip):  # pragma: no cover - compiled
    """Per pixel, the smallest over moves of one minus SSIM averaged over bands, clipped to [0, 1].

    ``x``, ``mx``, ``lumx`` (``mx**2 + c1``) and ``conx`` (noise-free variance ``+ c2``) are the
    before epoch's ``(bands, rows, cols)``; ``ypad``, ``mypad`` and ``vypad`` the after epoch's
    padded by ``t``. Rows are done in strips of ``strip`` so the filter's buffers stay in cache.
    """
    rad = w.shape[0] // 2
    nbands, height, width = x.shape
    wf = w.astype(np.float32)
    one, zero = np.float32(1.0), np.float32(0.0)
    scale = np.float32(1.0 / nbands)
    npx = width + 2 * rad
    cols = np.empty(npx, np.int64)
    for k in range(npx):
        cols[k] = _reflect(k - rad, width)
    p = np.empty(npx, np.float32)
    h = np.empty((strip + 2 * rad, width), np.float32)
    v = np.empty(width, np.float32)
    acc = np.empty((strip, width), np.float32)
    loss_row = np.empty(width, np.float32)
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
                    _hpass(p, wf, h[rr], width)
                for r in range(nr):
                    _vpass(h, r, wf, v, width)
                    rb, ay = r0 + r, r0 + r + t - dy
                    mys_row, vys_row = mypad[b, ay, t - dx : t - dx + width], vypad[b, ay, t - dx : t - dx + width]
                    mx_row, lx_row, cx_row, arow = mx[b, rb], lumx[b, rb], conx[b, rb], acc[r]
                    _ssim_row(v, mx_row, mys_row, lx_row, cx_row, vys_row, k1, k2, loss_row, width)
                    for c in range(width):
                        arow[c] += loss_row[c]
            for r in range(nr):
                orow, arow = out[r0 + r], acc[r]
                for c in range(width):
                    q = arow[c] * scale
                    q = zero if q < zero else (one if q > one else q)
                    if m == 0 or q < orow[c]:
                        orow[c] = q


@numba.njit(cache=True, nogil=True, fastmath=_EXACT)
def gauss2d(src, w, out):  # pragma: no cover - compiled
    """scipy.ndimage.gaussian_filter of a float32 image with the normalised kernel ``w`` and
    ``reflect`` edges: along rows (axis 0), rounded to float32, then along columns, each pass
    summing in float64 as scipy does (the symmetric kernel's pairs added first)."""
    rad = w.shape[0] // 2
    height, width = src.shape
    tmp = np.empty((height, width), np.float32)
    acc = np.empty(width, np.float64)
    for r in range(height):
        row = src[r]
        for c in range(width):
            acc[c] = row[c] * w[rad]
        for j in range(1, rad + 1):
            up, down, wj = src[_reflect(r - j, height)], src[_reflect(r + j, height)], w[rad + j]
            for c in range(width):
                acc[c] += (np.float64(up[c]) + np.float64(down[c])) * wj
        trow = tmp[r]
        for c in range(width):
            trow[c] = acc[c]
    line = np.empty(width + 2 * rad, np.float64)
    for r in range(height):
        trow = tmp[r]
        for c in range(width):
            line[rad + c] = trow[c]
        for k in range(rad):
            line[k] = trow[_reflect(k - rad, width)]
            line[rad + width + k] = trow[_reflect(width + k, width)]
        for c in range(width):
            acc[c] = line[rad + c] * w[rad]
        for j in range(1, rad + 1):
            wj = w[rad + j]
            for c in range(width):
                acc[c] += (line[rad + c - j] + line[rad + c + j]) * wj
        orow = out[r]
        for c in range(width):
            orow[c] = acc[c]


#: sRGB (linear) to CIE XYZ, and the D65 white (2 degree observer): scikit-image's constants.
_XYZ_FROM_RGB = np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                          [0.019334, 0.119193, 0.950227]], dtype=np.float32)
_WHITE = np.array([0.95047, 1.0, 1.08883], dtype=np.float32)


@numba.njit(cache=True, nogil=True, fastmath=_EXACT)
def _linear(u):  # pragma: no cover - compiled
    """sRGB gamma undone, of a value clipped to [0, 1]."""
    u = np.float32(0.0) if u < 0 else (np.float32(1.0) if u > 1 else u)
    return ((u + np.float32(0.055)) / np.float32(1.055)) ** np.float32(2.4) if u > np.float32(0.04045) else u / np.float32(12.92)


@numba.njit(cache=True, nogil=True, fastmath=_EXACT)
def _toe(v):  # pragma: no cover - compiled
    """CIELAB's cube root, linear near black."""
    return np.cbrt(v) if v > np.float32(0.008856) else np.float32(7.787) * v + np.float32(16.0 / 116.0)


@numba.njit(cache=True, nogil=True, fastmath=_EXACT)
def unit_lab(rgb, lo, hi, out):  # pragma: no cover - compiled
    """CIELAB ``(3, n)`` of ``rgb`` ``(3, n)`` mapped to [0, 1] sRGB by ``lo`` and ``hi`` (clipped): the
    steps of ``skimage.color.rgb2lab`` (sRGB gamma, XYZ, D65 white, the cube root and its linear
    toe) in float32, pixel by pixel."""
    scale = np.float32(1.0 / max(hi - lo, 1e-6))
    low = np.float32(lo)
    m = _XYZ_FROM_RGB
    white = _WHITE
    for j in range(rgb.shape[1]):
        r = _linear((rgb[0, j] - low) * scale)
        g = _linear((rgb[1, j] - low) * scale)
        b = _linear((rgb[2, j] - low) * scale)
        fx = _toe((m[0, 0] * r + m[0, 1] * g + m[0, 2] * b) / white[0])
        fy = _toe((m[1, 0] * r + m[1, 1] * g + m[1, 2] * b) / white[1])
        fz = _toe((m[2, 0] * r + m[2, 1] * g + m[2, 2] * b) / white[2])
        out[0, j] = np.float32(116.0) * fy - np.float32(16.0)
        out[1, j] = np.float32(500.0) * (fx - fy)
        out[2, j] = np.float32(200.0) * (fy - fz)
