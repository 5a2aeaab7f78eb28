"""Valid-data masks: declared nodata / alpha / mask bands and black fill.

Array code only: the reader hands over the pixels and the mask the file declared.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["source_valid", "erode"]

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


def erode(valid: np.ndarray, radius: int) -> np.ndarray:
    """Shrink a validity mask by ``radius`` pixels (a square structuring element).

    Pixels next to no-data are removed because windowed metrics there mix in
    fill values.
    """
    if radius <= 0:
        return valid
    return ndimage.binary_erosion(valid, structure=np.ones((3, 3), bool), iterations=radius, border_value=1)
