"""A region's fit (:class:`damage.optical.scene.SceneFit`) as plain JSON, and back, validated.

A run folder may come from someone else: it is data, never code. The fit is stored as
JSON (floats written with ``repr`` precision, so a fit read back gives the same
results bit for bit) and every field is checked when read; anything else is a
:class:`~damage.errors.CorruptRunError` naming the file.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from damage.errors import CorruptRunError
from damage.grading import Calibration
from damage.optical.metrics import SceneStats
from damage.optical.register import Shift
from damage.optical.scene import CloudMask, SceneFit

__all__ = ["fit_to_json", "fit_from_json", "write_fit", "read_fit"]

#: Version of the stored form; a file of another version is refused.
FORMAT = 2
#: Largest cloud mask side a fit may declare (an overview is at most FIT_SIDE a side).
_MAX_MASK_SIDE = 1 << 15


def fit_to_json(fit: SceneFit) -> dict[str, Any]:
    """The fit as JSON-ready data."""
    s, st, c = fit.shift, fit.stats, fit.calibration
    return {
        "format": FORMAT,
        "shift": None if s is None else {
            "dy": s.dy, "dx": s.dx, "blocks": s.blocks, "spread": s.spread, "applied": s.applied,
            "gradient": [list(r) for r in s.gradient], "centre": list(s.centre),
        },
        "normalization": _plain(fit.normalization),
        "stats": {
            "ranges": [float(v) for v in st.ranges], "luminance_range": float(st.luminance_range),
            "noise_before": [float(v) for v in st.noise_before], "noise_after": [float(v) for v in st.noise_after],
            "lows": None if st.lows is None else [float(v) for v in st.lows],
        },
        "calibration": {
            "reference": c.reference, "population": c.population, "size": c.size,
            "typical": dict(c.typical),
        },
        "clouds": None if fit.clouds is None else {
            "factor": fit.clouds.factor, "shape": list(fit.clouds.mask.shape), "info": dict(fit.clouds.info),
            "bits": base64.b64encode(zlib.compress(np.packbits(fit.clouds.mask).tobytes(), 6)).decode("ascii"),
        },
        "fitted_on": fit.fitted_on,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        return value.item()
    return value


def fit_from_json(doc: Any, source: str = "fit") -> SceneFit:
    """A :class:`SceneFit` from :func:`fit_to_json` data; anything malformed is a CorruptRunError."""
    def bad(what: str) -> CorruptRunError:
        return CorruptRunError(f"{source}: not a fit this library wrote ({what}); delete the run folder and run again")

    def num(v: Any, what: str) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise bad(f"{what} is not a finite number")
        return float(v)

    def nums(v: Any, what: str, n: int | None = None) -> list[float]:
        if not isinstance(v, list) or (n is not None and len(v) != n):
            raise bad(f"{what} is not a list of {n or 'some'} numbers")
        return [num(x, what) for x in v]

    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise bad("missing or unknown format")

    def bands_of(d: dict) -> int:
        ranges = d.get("stats", {}).get("ranges") if isinstance(d.get("stats"), dict) else None
        return len(nums(ranges, "ranges"))
    try:
        s = doc["shift"]
        shift = None
        if s is not None:
            if not isinstance(s, dict) or not isinstance(s.get("applied"), bool):
                raise bad("shift")
            grad = s["gradient"]
            if not isinstance(grad, list) or len(grad) != 2:
                raise bad("shift gradient")
            shift = Shift(num(s["dy"], "dy"), num(s["dx"], "dx"), int(num(s["blocks"], "blocks")), num(s["spread"], "spread"),
                          s["applied"], tuple(tuple(nums(r, "gradient", 2)) for r in grad),  # type: ignore[arg-type]
                          tuple(nums(s["centre"], "centre", 2)))  # type: ignore[arg-type]
        norm = doc["normalization"]
        if not isinstance(norm, dict) or norm.get("method") not in ("regression", "histogram", "none"):
            raise bad("normalization")
        if norm.get("applied"):
            if norm["method"] == "regression":
                nums(norm.get("gain"), "gain", bands_of(doc))
                nums(norm.get("offset"), "offset", bands_of(doc))
            else:
                tables = norm.get("tables")
                if not isinstance(tables, list):
                    raise bad("histogram tables")
                norm = {**norm, "tables": [tuple(np.asarray(nums(t, "table"), dtype=np.float64) for t in pair) for pair in tables]}
        st = doc["stats"]
        bands = len(nums(st["ranges"], "ranges"))
        stats = SceneStats(np.asarray(nums(st["ranges"], "ranges", bands)), num(st["luminance_range"], "luminance_range"),
                           np.asarray(nums(st["noise_before"], "noise_before", bands)),
                           np.asarray(nums(st["noise_after"], "noise_after", bands)),
                           None if st.get("lows") is None else np.asarray(nums(st["lows"], "lows", bands)))
        c = doc["calibration"]
        typical = c.get("typical", {}) if isinstance(c, dict) else None
        if not isinstance(typical, dict) or not isinstance(c.get("population"), str):
            raise bad("calibration")
        calib = Calibration(num(c["reference"], "reference"), c["population"],
                            int(num(c["size"], "size")), {str(k): num(v, k) for k, v in typical.items()})
        cloud = _clouds(doc["clouds"], bad, num)
        fitted_on = doc["fitted_on"]
        if fitted_on not in ("whole scene", "sample blocks"):
            raise bad("fitted_on")
    except (KeyError, TypeError, ValueError, zlib.error, binascii.Error) as exc:
        if isinstance(exc, CorruptRunError):
            raise
        raise bad(f"{type(exc).__name__}: {exc}") from None
    return SceneFit(shift, norm, stats, calib, cloud, fitted_on)


def _clouds(c: Any, bad: Any, num: Any) -> CloudMask | None:
    """The stored cloud mask, its declared shape checked against its bits."""
    if c is None:
        return None
    if not isinstance(c, dict) or not isinstance(c.get("bits"), str) or not isinstance(c.get("info"), dict):
        raise bad("clouds")
    factor = int(num(c["factor"], "clouds factor"))
    shape = c["shape"]
    if not (isinstance(shape, list) and len(shape) == 2 and all(isinstance(v, int) and 0 < v <= _MAX_MASK_SIDE for v in shape)) \
            or factor < 1:
        raise bad("clouds shape")
    raw = zlib.decompressobj()
    packed = raw.decompress(base64.b64decode(c["bits"], validate=True), (shape[0] * shape[1] + 7) // 8 + 1)
    if len(packed) != (shape[0] * shape[1] + 7) // 8 or raw.unconsumed_tail:
        raise bad("clouds mask does not match its shape")
    mask = np.unpackbits(np.frombuffer(packed, np.uint8), count=shape[0] * shape[1]).astype(bool).reshape(shape)
    return CloudMask(factor, mask, {str(k): num(v, k) for k, v in c["info"].items()})


def write_fit(fit: SceneFit, path: Path) -> None:
    """Write the fit as JSON to ``path`` (the caller makes the write atomic)."""
    Path(path).write_text(json.dumps(fit_to_json(fit), allow_nan=False), encoding="utf-8")


def read_fit(path: Path) -> SceneFit:
    """Read a fit written by :func:`write_fit`; a file that is not one is a CorruptRunError."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptRunError(f"{path}: not a readable fit ({exc}); delete the run folder and run again") from None
    return fit_from_json(doc, str(path))
