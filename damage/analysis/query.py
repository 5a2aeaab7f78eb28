"""Safe attribute filters: ``--where`` expressions over the columns of the footprints.

An expression is parsed with :mod:`ast` and only a small, data-only subset of Python
is evaluated against the columns: nothing in it is ever executed as code. Allowed:

- column names, bare (``amenity``) or in backticks (```building type```);
- literals: strings, numbers, ``True``, ``False``, ``None``, and lists or tuples of these;
- comparisons ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=`` (also chained, ``1 < levels <= 3``);
- ``in`` and ``not in`` with a list or tuple of literals (``==`` / ``!=`` with a list do the same);
- ``and``, ``or``, ``not``, and ``&``, ``|``, ``~`` as pandas users write them (``&`` and ``|``
  bind like ``and`` and ``or``, as in :meth:`pandas.DataFrame.eval`);
- unary minus on numbers; a boolean column on its own.

Attribute access, calls, subscripts, ``@`` local variables, arithmetic, lambdas and
comprehensions are refused with a :class:`~damage.errors.ConfigError`.

Missing values behave as in pandas: a comparison with a missing value is False, except
``!=`` and ``not in``, which are its negations and so are True. ``x == None`` and
``x != None`` test for missing values.
"""

from __future__ import annotations

import ast
import difflib
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from damage.errors import ConfigError

__all__ = ["select"]

MAX_LENGTH = 10_000
"""Longest expression accepted, in characters."""

_HINT = "use column comparisons, in, and/or/not and literals"

_COMPARE: dict[type, Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}
_SYMBOL = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
           ast.In: "in", ast.NotIn: "not in"}

# node types that may appear at all; where each may appear is checked while evaluating
_ALLOWED = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.Invert, ast.USub,
    ast.Compare, *_SYMBOL, ast.Name, ast.Load, ast.Constant, ast.List, ast.Tuple,
)
_REFUSED = {
    ast.Attribute: "attribute access is not allowed",
    ast.Call: "function calls are not allowed",
    ast.Subscript: "subscripts are not allowed",
    ast.Slice: "subscripts are not allowed",
    ast.Lambda: "lambdas are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.NamedExpr: "assignments are not allowed",
    ast.IfExp: "conditional expressions are not allowed",
    ast.JoinedStr: "f-strings are not allowed",
    ast.Dict: "dictionaries are not allowed",
    ast.Set: "sets are not allowed (use a list)",
    ast.Starred: "starred expressions are not allowed",
    ast.Await: "await is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
    ast.BinOp: "arithmetic is not allowed",
    ast.UAdd: "unary plus is not allowed",
}


@dataclass(frozen=True)
class _Column:
    name: str
    values: pd.Series


@dataclass(frozen=True)
class _Literal:
    value: Any


class _Refused(Exception):
    """A problem with the expression; becomes a ConfigError naming it."""


def select(frame: pd.DataFrame, expression: str) -> np.ndarray:
    """Evaluate a filter expression over the columns of a frame, without executing code.

    Parameters
    ----------
    frame : pandas.DataFrame or geopandas.GeoDataFrame
        The rows to filter; the expression refers to its columns (not the geometry).
    expression : str
        A condition such as ``"amenity in ['hospital', 'clinic'] and levels >= 2"``:
        column names (in backticks when they hold spaces), literals, comparisons
        (chained too), ``in`` / ``not in`` a list, ``and`` / ``or`` / ``not`` (or ``&``,
        ``|``, ``~``) and unary minus on numbers. A comparison with a missing value is
        False, except ``!=`` and ``not in`` (True), as in pandas.

    Returns
    -------
    numpy.ndarray
        Boolean, one entry per row of `frame`: True where the condition holds.

    Raises
    ------
    damage.errors.ConfigError
        If the expression is not valid, uses anything outside the subset above
        (attribute access, calls, subscripts, ``@`` variables, arithmetic, ...), names an
        unknown column, or compares values of incompatible types. The message is one
        line naming the expression and the problem.
    """
    if not isinstance(expression, str):
        raise ConfigError(f"--where must be a string expression, got {type(expression).__name__}")
    try:
        return _Evaluator(frame).mask(_parse(expression))
    except _Refused as exc:
        raise ConfigError(f"--where {_shorten(expression)}: {exc}") from None


# -- parsing ------------------------------------------------------------------------------------
def _parse(expression: str) -> ast.Expression:
    if not expression.strip():
        raise _Refused("the expression is empty")
    if len(expression) > MAX_LENGTH:
        raise _Refused(f"longer than {MAX_LENGTH} characters")
    source, names = _rewrite(expression)
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except (SyntaxError, ValueError) as exc:
        msg = (getattr(exc, "msg", None) or str(exc) or "invalid syntax").splitlines()[0]
        for placeholder in sorted(names, key=len, reverse=True):
            msg = msg.replace(placeholder, f"`{names[placeholder]}`")
        raise _Refused(f"not a valid expression over the footprint columns ({msg})") from None
    except (RecursionError, MemoryError):
        raise _Refused("nested too deeply") from None
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise _Refused(f"{_REFUSED.get(type(node), f'{type(node).__name__} is not allowed')}; {_HINT}")
    if names:
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id in names:
                node.id = names[node.id]
    return tree


def _rewrite(expression: str) -> tuple[str, dict[str, str]]:
    """Outside string literals: backticked names to placeholders, ``&``/``|`` to and/or; refuse ``@``."""
    stem = "_bt"
    while stem in expression:
        stem += "_"
    out: list[str] = []
    names: dict[str, str] = {}
    i, n = 0, len(expression)
    while i < n:
        c = expression[i]
        if c in "'\"":
            quote = c * 3 if expression.startswith(c * 3, i) else c
            j = i + len(quote)
            while j < n and not expression.startswith(quote, j):
                j += 2 if expression[j] == "\\" else 1
            j = min(j + len(quote), n)
            out.append(expression[i:j])
            i = j
        elif c == "`":
            j = expression.find("`", i + 1)
            if j < 0:
                raise _Refused("a backtick-quoted column name is not closed")
            if j == i + 1:
                raise _Refused("an empty column name in backticks")
            placeholder = f"{stem}{len(names)}"
            names[placeholder] = expression[i + 1:j]
            out.append(f" {placeholder} ")
            i = j + 1
        elif c == "@":
            raise _Refused(f"'@' local variables are not allowed; {_HINT}")
        elif c in "&|":
            out.append(" and " if c == "&" else " or ")
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out), names


# -- evaluating ---------------------------------------------------------------------------------
class _Evaluator:
    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.n = len(frame)

    def mask(self, tree: ast.Expression) -> np.ndarray:
        try:
            return self._condition(tree.body)
        except (RecursionError, MemoryError):
            raise _Refused("nested too deeply") from None

    # conditions -> boolean arrays
    def _condition(self, node: ast.AST) -> np.ndarray:
        if isinstance(node, ast.BoolOp):
            parts = [self._condition(v) for v in node.values]
            reduce = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            return reduce.reduce(parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.Invert)):
            return ~self._condition(node.operand)
        if isinstance(node, ast.Compare):
            return self._compare(node)
        value = self._value(node)
        if isinstance(value, _Column):
            return self._boolean_column(value)
        raise _Refused(f"{_show(node)} is a literal, not a condition on the columns; {_HINT}")

    def _boolean_column(self, col: _Column) -> np.ndarray:
        s = col.values
        present = s.notna().to_numpy()
        if pd.api.types.is_bool_dtype(s.dtype) or (
            s.dtype == object and all(isinstance(v, (bool, np.bool_)) for v in s[present])
        ):
            return np.where(present, s.to_numpy(dtype=object, na_value=False), False).astype(bool)
        raise _Refused(f"column {col.name!r} is not boolean; compare it, e.g. {_ref(col.name)} == ...")

    def _compare(self, node: ast.Compare) -> np.ndarray:
        out = np.ones(self.n, bool)
        left = self._value(node.left)
        for op, right_node in zip(node.ops, node.comparators):
            right = self._value(right_node)
            out &= self._pair(op, left, right)
            left = right
        return out

    def _pair(self, op: ast.cmpop, left: _Column | _Literal, right: _Column | _Literal) -> np.ndarray:
        sym = _SYMBOL[type(op)]
        if isinstance(right, _Literal) and isinstance(right.value, tuple) and isinstance(op, (ast.Eq, ast.NotEq)):
            op = ast.In() if isinstance(op, ast.Eq) else ast.NotIn()
        if isinstance(op, (ast.In, ast.NotIn)):
            if not isinstance(left, _Column) or not (isinstance(right, _Literal) and isinstance(right.value, tuple)):
                raise _Refused(f"'{sym}' needs a column on the left and a list of literals on the right; {_HINT}")
            hit = left.values.isin(list(right.value)).to_numpy(dtype=bool)
            return hit if isinstance(op, ast.In) else ~hit
        for side in (left, right):
            if isinstance(side, _Literal) and isinstance(side.value, tuple):
                raise _Refused(f"a list can only follow 'in', 'not in', '==' or '!=', not '{sym}'")
        if isinstance(left, _Literal) and isinstance(right, _Literal):
            raise _Refused(f"{left.value!r} {sym} {right.value!r} compares two literals; name columns bare or "
                           f"in backticks, not in quotes")
        if any(isinstance(side, _Literal) and side.value is None for side in (left, right)):
            if not isinstance(op, (ast.Eq, ast.NotEq)):
                raise _Refused(f"None can only be compared with == or !=, not '{sym}'")
            col = left if isinstance(left, _Column) else right
            if not isinstance(col, _Column):
                raise _Refused(f"None must be compared with a column; {_HINT}")
            missing = col.values.isna().to_numpy(dtype=bool)
            return missing if isinstance(op, ast.Eq) else ~missing
        missing = np.zeros(self.n, bool)
        for side in (left, right):
            if isinstance(side, _Column):
                missing |= side.values.isna().to_numpy(dtype=bool)
        keep = ~missing
        # pandas: a comparison with a missing value is False, and != (its negation) True
        out = np.full(self.n, isinstance(op, ast.NotEq))
        if keep.any():
            a = left.values[keep].reset_index(drop=True) if isinstance(left, _Column) else left.value
            b = right.values[keep].reset_index(drop=True) if isinstance(right, _Column) else right.value
            try:
                result = _COMPARE[type(op)](a, b)
                out[keep] = np.asarray(result, dtype=bool)
            except (TypeError, ValueError, OverflowError) as exc:
                names = " and ".join(repr(s.name) for s in (left, right) if isinstance(s, _Column))
                problem = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise _Refused(f"cannot compare {names} with '{sym}' ({problem})") from None
        return out

    # operands -> columns or literals
    def _value(self, node: ast.AST) -> _Column | _Literal:
        if isinstance(node, ast.Name):
            return self._column(node.id)
        if isinstance(node, ast.Constant):
            if node.value is None or isinstance(node.value, (str, bool, int, float)):
                return _Literal(node.value)
            raise _Refused(f"{type(node.value).__name__} literals are not allowed; {_HINT}")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = self._value(node.operand)
            if (isinstance(inner, _Literal) and isinstance(inner.value, (int, float))
                    and not isinstance(inner.value, bool)):
                return _Literal(-inner.value)
            raise _Refused(f"unary minus applies to number literals only; {_HINT}")
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [self._value(e) for e in node.elts]
            if not all(isinstance(i, _Literal) and not isinstance(i.value, tuple) for i in items):
                raise _Refused(f"a list may hold literals only (strings, numbers, True, False, None); {_HINT}")
            return _Literal(tuple(i.value for i in items if isinstance(i, _Literal)))
        raise _Refused(f"{_show(node)} is not a column or a literal; {_HINT}")

    def _column(self, name: str) -> _Column:
        frame = self.frame
        columns = [str(c) for c in frame.columns]
        if name not in columns:
            usable = [c for c in columns if not _is_geometry(frame, c)]
            close = difflib.get_close_matches(name, usable, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            listed = ", ".join(_ref(c) for c in usable[:8]) + (", ..." if len(usable) > 8 else "")
            raise _Refused(f"no column {name!r}; {hint}columns: {listed or 'none'}")
        if columns.count(name) > 1:
            raise _Refused(f"column {name!r} appears more than once in the footprints")
        if _is_geometry(frame, name):
            raise _Refused(f"column {name!r} holds geometries; filter by area with --aoi")
        values = frame[frame.columns[columns.index(name)]]
        return _Column(name, values)


def _is_geometry(frame: pd.DataFrame, name: str) -> bool:
    return any(str(c) == name and str(d) == "geometry" for c, d in zip(frame.columns, frame.dtypes))


def _ref(name: str) -> str:
    return name if name.isidentifier() else f"`{name}`"


def _shorten(expression: str) -> str:
    text = repr(expression)
    return text if len(text) <= 120 else text[:100] + "..." + text[-10:]


def _show(node: ast.AST) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 40 else text[:37] + "..."
