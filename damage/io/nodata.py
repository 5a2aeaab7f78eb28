"""Which source pixels hold data: declared nodata / alpha / mask bands, non-finite values, black fill.

Array code used by the readers (:mod:`damage.io.warp`, the radar reader) on each block of pixels
as it is read, before any warp.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["source_valid", "MIN_FILL_PIXELS"]

#: Black areas smaller than this many pixels are dark image content, not fill.
MIN_FILL_PIXELS = 64


def source_valid(data: np.ndarray, declared: np.ndarray | None, black_fill: bool = True) -> np.ndarray:
    """Validity of a block of source pixels.

    Parameters
    ----------
    data : numpy.ndarray
        ``(bands, rows, cols)`` pixels as read.
    declared : numpy.ndarray or None
        ``(rows, cols)`` bool validity the file declares (nodata, alpha, mask band),
        or None when it declares none.
    black_fill : bool
        Without a declared mask, treat connected areas where every band is 0 (and that
        are larger than :data:`MIN_FILL_PIXELS` or touch the block's edge) as no data.

    Returns
    -------
    numpy.ndarray
        ``(rows, cols)`` bool, True where the pixel holds data in every band.
    """
    valid = np.ones(data.shape[1:], dtype=bool) if declared is None else declared.copy()
    if np.issubdtype(data.dtype, np.floating):
        valid &= np.isfinite(data).all(axis=0)
    if declared is None and black_fill:
        black = (data == 0).all(axis=0)
        if black.any():
            labels, n = ndimage.label(black)
            sizes = np.bincount(labels.ravel(), minlength=n + 1)
            edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
            fill = sizes >= MIN_FILL_PIXELS
            fill[edge] = True
            fill[0] = False
            valid &= ~fill[labels]
    return valid
