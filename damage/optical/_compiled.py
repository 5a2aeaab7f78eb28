"""Compiled loops (numba), imported only where they are used; compiled once and cached on disk.

numba is a dependency because the loops here fuse what would otherwise be dozens of
whole-window numpy passes per displacement, each reading and writing the whole window,
into one pass over the pixels the buildings' boxes need (see :mod:`damage.optical.alignment`).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["zone_sums", "group_pixels", "ssim_min", "gauss2d", "unit_lab"]

# No value here is NaN or infinite; division by zero follows numpy (no Python check), which lets the
# loops vectorise. Only operations that round exactly as written: a pixel's value must not depend on
# whether it falls in a vector loop's body or its remainder, that is on where its row starts (the window,
# the other buildings whose boxes share its strip).
_EXACT = {"nsz", "nnan", "ninf"}
#: Columns are made in whole multiples of this (the widest float32 vector, AVX-512), the extra ones
#: computed and ignored: short rows (a house is 20 to 40 px wide) then have no scalar remainder.
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


@numba.njit(cache=True, nogil=True, fastmath=_EXACT, error_model="numpy")
def _region(x, ypad, mx, mypad, vypad, lumx, conx, k1, k2, before, apad, inv, t, wf,
            r0, nr, c0, nc, dy, dx, h, v, p, loss, diff, ro, co):  # pragma: no cover - compiled
    """SSIM loss of the luminance, clipped to [0, 1], and colour difference (summed over bands) for move
    ``(dy, dx)`` over rows ``r0:r0 + nr`` and columns ``c0:c0 + nc``, into ``loss[ro:ro + nr, co:co + nc]``
    and ``diff[ro:ro + nr, co:co + nc]`` (whole buffers and offsets: views of them would not be contiguous
    to numba, and its loops over them would not vectorise).

    The Gaussian of ``before x moved after`` is a horizontal pass over the region's rows
    (and ``rad`` more each side), then a vertical one; ``h``, ``v``, ``p`` are scratch.
    """
    rad = wf.shape[0] // 2
    height, width = x.shape
    nbands = before.shape[0]
    one, zero = np.float32(1.0), np.float32(0.0)
    nh = nr + 2 * rad
    npx = nc + 2 * rad
    # the columns c0 - rad + k for k in [lo, hi) are inside the window (read as they are); the rest reflected
    lo, hi = max(0, rad - c0), min(npx, width - c0 + rad)
    for rr in range(nh):
        ri = _reflect(r0 - rad + rr, height)
        yr = ri + t - dy
        base = c0 - rad
        xrow, yrow = x[ri, base + lo:base + hi], ypad[yr, base + lo + t - dx:base + hi + t - dx]
        for k in range(hi - lo):
            p[lo + k] = xrow[k] * yrow[k]
        for k in range(lo):
            ci = _reflect(base + k, width)
            p[k] = x[ri, ci] * ypad[yr, ci + t - dx]
        for k in range(hi, npx):
            ci = _reflect(base + k, width)
            p[k] = x[ri, ci] * ypad[yr, ci + t - dx]
        _hpass(p, wf, h[rr], nc)
    for r in range(nr):
        _vpass(h, r, wf, v, nc)
        rb, ay, ax = r0 + r, r0 + r + t - dy, c0 + t - dx
        my, vy = mypad[ay, ax:ax + nc], vypad[ay, ax:ax + nc]
        mxr, lx, cx = mx[rb, c0:c0 + nc], lumx[rb, c0:c0 + nc], conx[rb, c0:c0 + nc]
        lrow, drow = loss[ro + r, co:co + nc], diff[ro + r, co:co + nc]
        _ssim_row(v, mxr, my, lx, cx, vy, k1, k2, lrow, nc)
        for c in range(nc):
            q = lrow[c]
            lrow[c] = zero if q < zero else (one if q > one else q)
        if nbands == 3:  # the usual RGB in one pass, added in the order of the general loop below
            a0, b0, i0 = apad[0, ay, ax:ax + nc], before[0, rb, c0:c0 + nc], inv[0]
            a1, b1, i1 = apad[1, ay, ax:ax + nc], before[1, rb, c0:c0 + nc], inv[1]
            a2, b2, i2 = apad[2, ay, ax:ax + nc], before[2, rb, c0:c0 + nc], inv[2]
            for c in range(nc):
                drow[c] = (abs(a0[c] - b0[c]) * i0 + abs(a1[c] - b1[c]) * i1) + abs(a2[c] - b2[c]) * i2
        else:
            for c in range(nc):
                drow[c] = zero
            for band in range(nbands):
                a_row, b_row, ib = apad[band, ay, ax:ax + nc], before[band, rb, c0:c0 + nc], inv[band]
                for c in range(nc):
                    drow[c] += abs(a_row[c] - b_row[c]) * ib


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


#: Pixels converted to CIELAB at a time (the cube roots are taken over a block, a vectorised loop).
_LAB_BLOCK = 1024


@numba.njit(cache=True, nogil=True, fastmath=_EXACT, error_model="numpy")
def _cube_roots(v, y, n):  # pragma: no cover - compiled
    """``y[:n]``: the cube roots of ``v[:n]`` (non-negative float32), correctly rounded: Kahan's guess from the
    bits, one Halley step in float32 and one in float64. A loop without calls, so it vectorises; libm's
    ``cbrtf`` (within 1.6e-7 of the root, where this is within 6e-8) took 11 ns a value. Near zero (where
    CIELAB takes its linear toe instead) the steps may divide by zero: numpy's rule, no Python check."""
    vi, yi = v.view(np.int32), y.view(np.int32)
    for j in range(n):
        yi[j] = vi[j] // 3 + 709921077
    two = np.float32(2.0)
    for j in range(n):
        x, r = v[j], y[j]
        r3 = r * r * r
        r = r * (r3 + two * x) / (two * r3 + x)
        rd, xd = np.float64(r), np.float64(x)
        r3d = rd * rd * rd
        y[j] = np.float32(rd * (r3d + 2.0 * xd) / (2.0 * r3d + xd))


@numba.njit(cache=True, nogil=True, fastmath=_EXACT)
def unit_lab(rgb, lo, hi, out):  # pragma: no cover - compiled
    """CIELAB ``(3, n)`` of ``rgb`` ``(3, n)`` mapped to [0, 1] sRGB by ``lo`` and ``hi`` (clipped): the
    steps of ``skimage.color.rgb2lab`` (sRGB gamma, XYZ, D65 white, the cube root and its linear
    toe) in float32, a block of pixels at a time."""
    scale = np.float32(1.0 / max(hi - lo, 1e-6))
    low = np.float32(lo)
    m = _XYZ_FROM_RGB
    white = _WHITE
    xyz = np.empty((3, _LAB_BLOCK), np.float32)
    root = np.empty((3, _LAB_BLOCK), np.float32)
    knee, slope, offset = np.float32(0.008856), np.float32(7.787), np.float32(16.0 / 116.0)
    for j0 in range(0, rgb.shape[1], _LAB_BLOCK):
        nb = min(_LAB_BLOCK, rgb.shape[1] - j0)
        for k in range(nb):
            j = j0 + k
            r = _linear((rgb[0, j] - low) * scale)
            g = _linear((rgb[1, j] - low) * scale)
            b = _linear((rgb[2, j] - low) * scale)
            xyz[0, k] = (m[0, 0] * r + m[0, 1] * g + m[0, 2] * b) / white[0]
            xyz[1, k] = (m[1, 0] * r + m[1, 1] * g + m[1, 2] * b) / white[1]
            xyz[2, k] = (m[2, 0] * r + m[2, 1] * g + m[2, 2] * b) / white[2]
        for c in range(3):
            _cube_roots(xyz[c], root[c], nb)
            for k in range(nb):  # CIELAB's cube root, linear near black
                v = xyz[c, k]
                root[c, k] = root[c, k] if v > knee else slope * v + offset
        for k in range(nb):
            fx, fy, fz = root[0, k], root[1, k], root[2, k]
            out[0, j0 + k] = np.float32(116.0) * fy - np.float32(16.0)
            out[1, j0 + k] = np.float32(500.0) * (fx - fy)
            out[2, j0 + k] = np.float32(200.0) * (fy - fz)


@numba.njit(cache=True, nogil=True, inline="always")
def _run_sums(loss, diff, runs, a, b, s0, s1, sl, sd):  # pragma: no cover - compiled
    """``sl`` and ``sd`` plus the sums of ``loss`` and ``diff`` (rows from ``s0``) over the runs ``a:b`` of rows
    below ``s1``. A run's pixels are added in four interleaved sums, then the run to the total: the order
    depends on the run alone (a row of one zone), never on the strip or the window it falls in."""
    j = a
    while j < b and runs[0, j] < s1:
        lrow, drow = loss[runs[0, j] - s0], diff[runs[0, j] - s0]
        c, end = runs[1, j], runs[2, j]
        l0 = l1 = l2 = l3 = 0.0
        d0 = d1 = d2 = d3 = 0.0
        while c + 4 <= end:
            l0 += lrow[c]
            l1 += lrow[c + 1]
            l2 += lrow[c + 2]
            l3 += lrow[c + 3]
            d0 += drow[c]
            d1 += drow[c + 1]
            d2 += drow[c + 2]
            d3 += drow[c + 3]
            c += 4
        while c < end:
            l0 += lrow[c]
            d0 += drow[c]
            c += 1
        sl += (l0 + l1) + (l2 + l3)
        sd += (d0 + d1) + (d2 + d3)
        j += 1
    return sl, sd


@numba.njit(cache=True, nogil=True, fastmath=_EXACT, error_model="numpy")
def zone_sums(x, ypad, mx, mypad, vypad, lumx, conx, c1, c2, before, apad, inv_ranges, t, w,
              seg, prow, pcol, dys, dxs, todo_fp, todo_ring, out, strip):  # pragma: no cover - compiled
    """Per building and move, sums of SSIM loss and colour difference over its footprint and its ring.

    Building ``i``'s footprint has pixels ``seg[2i]:seg[2i + 1]`` and its ring
    ``seg[2i + 1]:seg[2i + 2]`` (rows ``prow``, columns ``pcol``, in row order). For a move
    ``m`` with ``todo_ring[i, m]``, ``out[:, i, m]`` gets all four sums (footprint loss,
    footprint difference, ring loss, ring difference); with ``todo_fp[i, m]`` only, the
    footprint's two; the rest of ``out`` is left as it is.

    The window is done in strips of ``strip`` rows. In a strip, a move's maps are made once
    per pixel on the union of the boxes that need it (each building's box of footprint and
    ring, or of its footprint alone), so the boxes of a dense city, which overlap their
    neighbours' several times, cost their area once. Each zone's pixels are then added in row
    order, strip after strip (see :func:`_run_sums`): the same sum, to the bit, whatever the window.
    """
    rad = w.shape[0] // 2
    wf = w.astype(np.float32)
    inv = inv_ranges.astype(np.float32)
    k1, k2 = np.float32(c1), np.float32(c2)
    height, width = x.shape
    n = seg.shape[0] // 2
    nm = dys.shape[0]
    # each building's footprint box and box of footprint and ring: rows r0..r1, columns c0..c1 (inclusive)
    fbox = np.full((n, 4), -1, np.int64)
    rbox = np.full((n, 4), -1, np.int64)
    for i in range(n):
        a, f, b = seg[2 * i], seg[2 * i + 1], seg[2 * i + 2]
        if a == b:
            continue
        fr0, fr1, fc0, fc1 = 1 << 40, -1, 1 << 40, -1
        for j in range(a, f):
            fr0, fr1 = min(fr0, prow[j]), max(fr1, prow[j])
            fc0, fc1 = min(fc0, pcol[j]), max(fc1, pcol[j])
        r0, r1, c0, c1_ = fr0, fr1, fc0, fc1
        for j in range(f, b):
            r0, r1 = min(r0, prow[j]), max(r1, prow[j])
            c0, c1_ = min(c0, pcol[j]), max(c1_, pcol[j])
        if f > a:
            fbox[i, 0], fbox[i, 1], fbox[i, 2], fbox[i, 3] = fr0, fr1, fc0, fc1
        rbox[i, 0], rbox[i, 1], rbox[i, 2], rbox[i, 3] = r0, r1, c0, c1_
    # the buildings whose box meets each strip
    nstrips = (height + strip - 1) // strip
    start = np.zeros(nstrips + 1, np.int64)
    for i in range(n):
        if rbox[i, 1] >= 0:
            for s in range(rbox[i, 0] // strip, rbox[i, 1] // strip + 1):
                start[s + 1] += 1
    for s in range(nstrips):
        start[s + 1] += start[s]
    members = np.empty(start[nstrips], np.int64)
    fill = start[:-1].copy()
    for i in range(n):
        if rbox[i, 1] >= 0:
            for s in range(rbox[i, 0] // strip, rbox[i, 1] // strip + 1):
                members[fill[s]] = i
                fill[s] += 1
    # the sums asked for start from zero (they are added to strip by strip)
    for i in range(n):
        for m in range(nm):
            if todo_ring[i, m]:
                out[0, i, m] = out[1, i, m] = out[2, i, m] = out[3, i, m] = 0.0
            elif todo_fp[i, m]:
                out[0, i, m] = out[1, i, m] = 0.0
    # each zone's pixels as runs along a row (row, first column, end column), in row order; zone 2i is
    # building i's footprint, 2i + 1 its ring
    zrun = np.zeros(2 * n + 1, np.int64)
    runs = np.empty((3, prow.shape[0]), np.int64)
    k = 0
    for z in range(2 * n):
        zrun[z] = k
        for j in range(seg[z], seg[z + 1]):
            if j > seg[z] and prow[j] == prow[j - 1] and pcol[j] == pcol[j - 1] + 1:
                runs[2, k - 1] += 1
            else:
                runs[0, k], runs[1, k], runs[2, k] = prow[j], pcol[j], pcol[j] + 1
                k += 1
    zrun[2 * n] = k
    # each zone's first run not yet in a strip done
    at_fp = np.empty(n, np.int64)
    at_ring = np.empty(n, np.int64)
    for i in range(n):
        at_fp[i], at_ring[i] = zrun[2 * i], zrun[2 * i + 1]
    wide_all = width + _LANES
    h = np.empty((strip + 2 * rad, wide_all), np.float32)
    v = np.empty(wide_all, np.float32)
    p = np.empty(wide_all + 2 * rad, np.float32)
    loss = np.empty((strip, wide_all), np.float32)
    diff = np.empty((strip, wide_all), np.float32)
    most = 0
    for s in range(nstrips):
        most = max(most, start[s + 1] - start[s])
    iv = np.empty((4, most), np.int64)
    for s in range(nstrips):
        s0, s1 = s * strip, min((s + 1) * strip, height)
        mem = members[start[s]:start[s + 1]]
        if mem.shape[0] == 0:
            continue
        for m in range(nm):
            k = 0
            for i in mem:
                if todo_ring[i, m]:
                    br0, br1, bc0, bc1 = rbox[i, 0], rbox[i, 1], rbox[i, 2], rbox[i, 3]
                elif todo_fp[i, m] and fbox[i, 1] >= 0:
                    br0, br1, bc0, bc1 = fbox[i, 0], fbox[i, 1], fbox[i, 2], fbox[i, 3]
                else:
                    continue
                lo, hi = max(br0, s0), min(br1 + 1, s1)
                if lo >= hi:
                    continue
                iv[0, k], iv[1, k], iv[2, k], iv[3, k] = bc0, bc1 + 1, lo, hi
                k += 1
            if k == 0:
                continue
            order = np.argsort(iv[0, :k])
            q = 0
            while q < k:
                e = order[q]
                c0, c1_, lo, hi = iv[0, e], iv[1, e], iv[2, e], iv[3, e]
                q += 1
                while q < k and iv[0, order[q]] <= c1_:  # overlapping or touching: one segment
                    e = order[q]
                    c1_, lo, hi = max(c1_, iv[1, e]), min(lo, iv[2, e]), max(hi, iv[3, e])
                    q += 1
                nc = min(-(-(c1_ - c0) // _LANES) * _LANES, width - c0)
                _region(x, ypad, mx, mypad, vypad, lumx, conx, k1, k2, before, apad, inv, t, wf,
                        lo, hi - lo, c0, nc, dys[m], dxs[m], h, v, p, loss, diff, lo - s0, c0)
            for i in mem:
                whole = todo_ring[i, m]
                if not (whole or (todo_fp[i, m] and fbox[i, 1] >= 0)):
                    continue
                out[0, i, m], out[1, i, m] = _run_sums(loss, diff, runs, at_fp[i], zrun[2 * i + 1], s0, s1,
                                                       out[0, i, m], out[1, i, m])
                if whole:
                    out[2, i, m], out[3, i, m] = _run_sums(loss, diff, runs, at_ring[i], zrun[2 * i + 2], s0, s1,
                                                           out[2, i, m], out[3, i, m])
        for i in mem:
            f, b = zrun[2 * i + 1], zrun[2 * i + 2]
            while at_fp[i] < f and runs[0, at_fp[i]] < s1:
                at_fp[i] += 1
            while at_ring[i] < b and runs[0, at_ring[i]] < s1:
                at_ring[i] += 1


@numba.njit(cache=True, nogil=True)
def group_pixels(labels, idx, n, cols):  # pragma: no cover - compiled
    """The zones' pixels by building, for :func:`zone_sums`: label ``i`` (footprint ``i``) to group ``2i``,
    label ``n + i`` (its ring) to group ``2i + 1``; each group's pixels in the order they come (a stable
    counting sort), put in row order where they did not come so. Returns ``seg`` (group ``g`` is
    ``seg[g]:seg[g + 1]``) and each pixel's row and column."""
    seg = np.zeros(2 * n + 1, np.int64)
    for e in range(labels.shape[0]):
        z = labels[e]
        seg[2 * (z - n) + 2 if z >= n else 2 * z + 1] += 1
    for g in range(2 * n):
        seg[g + 1] += seg[g]
    fill = seg[:-1].copy()
    prow = np.empty(labels.shape[0], np.int64)
    pcol = np.empty(labels.shape[0], np.int64)
    inv = 1.0 / cols
    for e in range(labels.shape[0]):
        z = labels[e]
        g = 2 * (z - n) + 1 if z >= n else 2 * z
        k = fill[g]
        fill[g] = k + 1
        p = idx[e]
        r = np.int64(p * inv)  # a float product, corrected by one row where it rounded across (an integer
        r -= r * cols > p      # division, 64 bits, took most of this loop's time)
        r += (r + 1) * cols <= p
        prow[k], pcol[k] = r, p - r * cols
    # zone_sums reads a zone strip by strip, so its pixels must come in row order (Zones list them so);
    # a group that does not is put in row order (a stable sort of its flat indices)
    for g in range(2 * n):
        a, b = seg[g], seg[g + 1]
        ordered = True
        for k in range(a + 1, b):
            if prow[k] * cols + pcol[k] < prow[k - 1] * cols + pcol[k - 1]:
                ordered = False
                break
        if not ordered:
            order = np.argsort(prow[a:b] * cols + pcol[a:b], kind="mergesort")
            prow[a:b], pcol[a:b] = prow[a:b][order], pcol[a:b][order]
    return seg, prow, pcol
