"""Assertions for comparing assessments, public like :mod:`geopandas.testing`.

>>> from damage.testing import assert_result_equal
>>> assert_result_equal(damage.assess(b, a, f), damage.batch(b, a, f, "run").result)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

__all__ = ["assert_result_equal"]


def _column_equal(name: str, left: pd.Series, right: pd.Series, rtol: float, atol: float) -> None:
    lv, rv = left.to_numpy(), right.to_numpy()
    if pd.api.types.is_numeric_dtype(left.dtype) and pd.api.types.is_numeric_dtype(right.dtype) \
            and not pd.api.types.is_bool_dtype(left.dtype):
        lf, rf = lv.astype(float), rv.astype(float)
        nan_l, nan_r = np.isnan(lf), np.isnan(rf)
        if (nan_l != nan_r).any():
            row = int(np.flatnonzero(nan_l != nan_r)[0])
            raise AssertionError(f"column {name!r}: row {row} is {lv[row]!r} on the left and {rv[row]!r} on the right")
        close = np.isclose(lf, rf, rtol=rtol, atol=atol) | nan_l
        if not close.all():
            bad = np.flatnonzero(~close)
            row = int(bad[0])
            raise AssertionError(f"column {name!r}: {bad.size} of {lf.size} rows differ, first row {row}: "
                                 f"{lv[row]!r} against {rv[row]!r} (rtol={rtol}, atol={atol})")
        return
    same = np.array([(a is b) or (a == b) or (_missing(a) and _missing(b)) for a, b in zip(lv, rv)], dtype=bool)
    if not same.all():
        row = int(np.flatnonzero(~same)[0])
        raise AssertionError(f"column {name!r}: {int((~same).sum())} of {same.size} rows differ, first row {row}: "
                             f"{lv[row]!r} against {rv[row]!r}")


def _missing(value: object) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def assert_result_equal(left: pd.DataFrame, right: pd.DataFrame, *, columns: Iterable[str] | None = None,
                        rtol: float = 0.0, atol: float = 0.0, check_geometry: bool = True) -> None:
    """Assert that two assessments (or two facility tables) agree row by row, column by column.

    Parameters
    ----------
    left, right : pandas.DataFrame or geopandas.GeoDataFrame
        Results of :func:`damage.assess`, :func:`damage.batch` (``.result``) or a file read back.
    columns : iterable of str, optional
        Compare only these (each must be in both); by default every column, and the two must
        have the same columns in the same order.
    rtol, atol : float
        Tolerances for numeric columns (NaN equals NaN); text, grades and other objects must be
        equal exactly. The default is exact equality.
    check_geometry : bool
        Also compare the active geometry column exactly (by WKB: the same coordinates, bit
        for bit, in the same order).

    Raises
    ------
    AssertionError
        Naming the first column that differs, how many rows differ and the first of them.

    Examples
    --------
    >>> assert_result_equal(result, again, columns=["damage_grade", "p_damaged"], rtol=1e-6)  # doctest: +SKIP
    """
    if len(left) != len(right):
        raise AssertionError(f"{len(left)} rows on the left, {len(right)} on the right")
    if columns is None:
        if list(left.columns) != list(right.columns):
            only_l = [c for c in left.columns if c not in right.columns]
            only_r = [c for c in right.columns if c not in left.columns]
            raise AssertionError(f"columns differ: only on the left {only_l}, only on the right {only_r}"
                                 + ("" if only_l or only_r else " (the same columns in another order)"))
        names = list(left.columns)
    else:
        names = list(columns)
        missing = [c for c in names if c not in left.columns or c not in right.columns]
        if missing:
            raise AssertionError(f"columns {missing} are not in both")
    geometry = getattr(left, "_geometry_column_name", None)
    for name in names:
        if name == geometry:
            continue
        _column_equal(name, left[name], right[name], rtol, atol)
    if check_geometry and geometry is not None and hasattr(right, "geometry"):
        lw = np.array([None if g is None else g.wkb for g in left.geometry.values], dtype=object)
        rw = np.array([None if g is None else g.wkb for g in right.geometry.values], dtype=object)
        differ = lw != rw
        if differ.any():
            raise AssertionError(f"geometry: {int(differ.sum())} of {differ.size} rows differ, "
                                 f"first row {int(np.flatnonzero(differ)[0])}")
