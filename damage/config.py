"""The configuration of an assessment: one frozen object.

It can be built from keyword arguments, loaded from TOML, and is written into every
output (``to_dict``) so that a result can be reproduced.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from damage.errors import ConfigError, InputNotFoundError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["Config", "UNSET", "given"]


#: Declared type -> kind of value checked by :meth:`Config._check_types`.
_SCALAR_KINDS = {"bool": "bool", "int": "int", "float": "float", "str": "str", "float | None": "float",
                 "int | None": "int", "str | None": "str"}


def _is_number(value: Any) -> bool:
    """A real, finite number (not a bool, not a string)."""
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
            and math.isfinite(float(value)))


class _Unset:
    """The type of :data:`UNSET`."""

    _instance: _Unset | None = None

    def __new__(cls) -> _Unset:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNSET"

    def __reduce__(self) -> str:
        return "UNSET"


#: "Not given": :meth:`Config.replace` leaves a key with this value as it is (``None`` is a value).
UNSET: Any = _Unset()


def given(**values: Any) -> dict[str, Any]:
    """The values as :meth:`Config.replace` takes them, ``None`` meaning "not given" (command-line options)."""
    return {k: (UNSET if v is None else v) for k, v in values.items()}


@dataclasses.dataclass(frozen=True)
class Config:
    """Parameters of :func:`damage.assess`.

    Parameters
    ----------
    resolution : float or None
        Pixel size of the common grid, in units of the grid CRS. ``None`` takes the
        coarser of the two epochs' native pixel sizes (no detail is invented).
    crs : str or None
        CRS of the common grid (anything pyproj reads). ``None`` takes the before
        epoch's CRS if it is projected, else the after's, else the UTM zone of the
        footprints' centre.
    black_fill : bool
        Treat pixels that are 0 in every band as no data when a file declares no
        nodata value and has no mask band (the usual fill outside a scene).
    register : bool
        Estimate and remove the residual shift of after against before.
    max_shift : float
        Largest shift, in grid pixels, that registration may report; a larger
        estimate is treated as a failure and no shift is applied.
    normalize : str
        Radiometric normalisation of after to before: ``"regression"`` (per band,
        fitted on pseudo-invariant pixels), ``"histogram"`` (histogram matching) or
        ``"none"``.
    metrics : tuple of (str, float)
        Change metrics from :data:`damage.optical.metrics.METRICS` and their weights in the
        combined per-pixel change.
    ssim_sigma : float
        Standard deviation, in pixels, of the Gaussian window of the SSIM metric.
    shift_tolerance : int
        Whole pixels of displacement, in each direction, that change metrics forgive:
        the change at a pixel is the smallest over these displacements of the after
        image (residual misregistration, parallax). 0 turns it off.
    change_threshold : float
        A pixel counts as changed (for ``changed_fraction`` and damage polygons) when
        its change (log-similarity lost beyond the scene's steadiest blocks, see
        :mod:`damage.grading`) reaches this value.
    cloud_mask : bool
        Mask opaque clouds and their shadows in either epoch (see
        :func:`damage.optical.masks.clouds`); buildings under them are ``not-analysed``.
    scene_offset : bool
        Shift every scene's evidence model by the offset its imagery predicts
        (:data:`damage.grading.OFFSET`: from the before image's noise and contrast, the
        pixel size and the sensors' gain, fitted on real pairs graded by people), with
        the cuts chosen for it. Off by default: on events it was not fitted on it ranks
        scenes better (pooled AUC 0.851 -> 0.902) but grades them no better (F1 0.704 ->
        0.663); see docs/accuracy.md.
    building_check : bool
        A footprint whose before image shows no building (no colour contrast with
        its ring and no edges on its outline: an empty lot under a footprint newer
        than the imagery) is ``not-analysed`` with reason "no building before"
        (see :func:`damage.optical.evidence.no_building_before`). Off by default: on the
        Joplin sample it hid four destroyed houses (footprints offset from the
        2011 roofs, among trees) and found one of six empty lots.
    min_cloud_area : float
        Smallest cloud or cloud shadow, in square metres of ground (500: on generated towns
        under 20 % cloud, 1,000 left 10 of 189 clouded buildings graded, 500 one; the xBD
        dev tiles' masks are the same at both).
    min_valid_fraction : float
        Footprints with a smaller share of valid pixels in both epochs are graded
        ``not-analysed``.
    scale : str
        Damage scale from :data:`damage.grading.SCALES`.
    min_polygon_pixels : int
        Smallest changed area, in pixels, kept as a damage polygon.
    max_pixels : int or None
        Optical: the scene is measured in windows of at most this many pixels (its
        square root a side), after the scene is fitted once, so memory stays bounded;
        the result does not depend on it. None: one window.
    workers : int
        Optical: processes that measure the windows of a scene too large to fit whole
        (more than 2048 px a side), each window in one process; 0: one per core. The
        result does not depend on it.
    method : str
        ``"optical"``: one before and one after image (each may be many tiles),
        structural change. ``"pwtt"``: stacks of images before and after (radar or
        optical), the pixel-wise t-test (see :mod:`damage.sar.statistics`).
    units : str
        PWTT: what the pixels are: ``"auto"`` (from each file's tags, else power),
        ``"power"``, ``"amplitude"``, ``"db"`` or ``"optical"``.
    lee_size : int
        PWTT: window of the Lee speckle filter, in pixels (odd; 1 turns it off; not
        applied to optical stacks).
    looks : float
        PWTT: equivalent number of looks of the input (Sentinel-1 GRD IW: about 5).
    t_threshold : float
        PWTT: footprint mean |t| from which a building counts as damaged
        (major-damage; the published threshold is 3.3). Minor damage begins at half
        of it, destroyed at one and a half times it; ``damage_score`` is
        ``t / (2 * t_threshold)`` clipped to [0, 1].
    by_orbit : bool
        PWTT: a t statistic per orbit (images grouped by their orbit tag) and the
        largest over orbits, as published; otherwise one statistic over all images.
    smoothing_radii : tuple of float
        PWTT: radii, in metres, of the focal means averaged with the raw t map; the
        published method uses (50, 100, 150). Empty (the default) for none: on the
        benchmark of building-level damage (benchmarks/pwtt.py) the published
        smoothing dilutes damaged buildings with their intact surroundings.
    window : int
        PWTT: side, in pixels, of the windows the grid is processed in; memory
        depends on it, not on the size of the grid or the number of images.
    context : float
        Metres of imagery around the footprints that co-registration, radiometric
        normalisation and scene statistics are fitted on (and the grid covers), so a
        handful of targets (five hospitals) is judged with the same context as a
        whole town.
    ring_width : float
        Metres around each footprint whose change (debris, scorch, water) is
        evidence for it (see :mod:`damage.optical.evidence`).
    building_shift : int
        Largest displacement, in pixels, over which each building is aligned on its
        own (local misregistration, parallax) before its evidence is measured.
    building_search : {"full", "coarse"}
        How those displacements are searched: every one (``full``), or every other one and
        then the neighbours of each building's best (``coarse``, the default: half the work at
        4 px, and on the xBD dev tiles 8 grades of 3,063 differ; see
        :mod:`damage.optical.alignment`).
    id_column : str, optional
        The footprints' column that identifies buildings (its values unique and present), copied to
        the output's ``building_id`` as text (an input ``building_id`` column is kept as it is). Unset: the first of ``building_id``, ``id``, ``osm_id``,
        ``@id``, ``uid``, ``fid``, ``ID``, ``OBJECTID`` that qualifies, else an id derived from the
        footprint's outline (:mod:`damage.geo.ids`), the same in every run.
    asset : str, optional
        Which asset of STAC items to read, by key or role (default ``visual``, else the first GeoTIFF
        asset with role ``data``; ``vv`` for Sentinel-1, say).
    sign : str, optional
        Sign STAC assets' URLs before reading them: ``"planetary-computer"`` (a SAS token for the
        item's collection, from Planetary Computer's token endpoint, kept until it expires).
    model : str, optional
        An ONNX damage model brought by the user (the contract: ``docs/model.md``): its mean over each
        footprint (``model_mean``) becomes ``p_damaged``, cut into grades by its side-car's ``cuts``.
        Needs ``pip install 'damage-assess[model]'``.
    model_tile : int
        Tile side, in pixels, given to a model whose input size is dynamic (a static one uses its own).
    model_overlap : int
        Pixels neighbouring tiles share; a pixel's value is the weighted mean of the tiles holding it.
    """

    resolution: float | None = None
    crs: str | None = None
    black_fill: bool = True
    register: bool = True
    max_shift: float = 16.0
    normalize: str = "regression"
    metrics: tuple[tuple[str, float], ...] = (("ssim", 1.0),)
    ssim_sigma: float = 1.5
    shift_tolerance: int = 1
    change_threshold: float = 0.6
    cloud_mask: bool = True
    scene_offset: bool = False
    building_check: bool = False
    min_cloud_area: float = 500.0
    min_valid_fraction: float = 0.5
    scale: str = "xbd"
    min_polygon_pixels: int = 8
    max_pixels: int | None = 1024 * 1024
    workers: int = 0
    method: str = "optical"
    units: str = "auto"
    lee_size: int = 3
    looks: float = 5.0
    t_threshold: float = 3.3
    by_orbit: bool = False
    smoothing_radii: tuple[float, ...] = ()
    window: int = 1024
    context: float = 250.0
    ring_width: float = 6.0
    building_shift: int = 4
    building_search: str = "coarse"
    id_column: str | None = None
    asset: str | None = None
    sign: str | None = None
    model: str | None = None
    model_tile: int = 512
    model_overlap: int = 64

    def __post_init__(self) -> None:
        if isinstance(self.model, os.PathLike):
            object.__setattr__(self, "model", os.fspath(self.model))
        self._check_types()
        # Accept a mapping for metrics ({"ssim": 1.0}) and store it as pairs.
        items = self.metrics.items() if isinstance(self.metrics, Mapping) else self.metrics
        try:
            pairs = tuple((k, v) for k, v in items)
        except (TypeError, ValueError):
            raise ConfigError(f"metrics must map metric names to weights, e.g. {{ssim = 1.0}}; got {self.metrics!r}") from None
        for k, v in pairs:
            if not isinstance(k, str) or not _is_number(v):
                raise ConfigError(f"metrics: {k!r} = {v!r}; each metric name needs a finite number as weight")
        object.__setattr__(self, "metrics", tuple((k, float(v)) for k, v in pairs))
        if not isinstance(self.smoothing_radii, (list, tuple)) or not all(_is_number(r) for r in self.smoothing_radii):
            raise ConfigError(f"smoothing_radii must be a list of finite numbers (metres), got {self.smoothing_radii!r}")
        object.__setattr__(self, "smoothing_radii", tuple(float(r) for r in self.smoothing_radii))
        self._validate()

    def _check_types(self) -> None:
        """Every scalar field has the kind of value it declares: no "false" that counts as true, no NaN."""
        for f in dataclasses.fields(self):
            kind = _SCALAR_KINDS.get(str(f.type))
            if kind is None:
                continue
            value = getattr(self, f.name)
            optional = str(f.type).endswith("| None")
            if value is None and optional:
                continue
            ok = {
                "bool": isinstance(value, (bool, np.bool_)),
                "int": isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)),
                "float": _is_number(value),
                "str": isinstance(value, str),
            }[kind]
            if not ok:
                what = {"bool": "true or false", "int": "a whole number", "float": "a finite number", "str": "a string"}[kind]
                raise ConfigError(f"{f.name} = {value!r}: must be {what}" + (" (or unset)" if optional else ""))
            if kind == "bool":
                object.__setattr__(self, f.name, bool(value))

    def _validate(self) -> None:
        from damage.grading import SCALES
        from damage.optical.metrics import METRICS
        from damage.optical.normalize import NORMALIZERS

        if self.resolution is not None and not self.resolution > 0:
            raise ConfigError(f"resolution must be positive, got {self.resolution!r}")
        if self.normalize not in NORMALIZERS:
            raise ConfigError(f"normalize={self.normalize!r} is unknown; choose one of {sorted(NORMALIZERS)}")
        if not self.metrics:
            raise ConfigError("metrics must name at least one metric")
        for name, weight in self.metrics:
            if name not in METRICS:
                raise ConfigError(f"metric {name!r} is unknown; choose from {sorted(METRICS)}")
            if weight < 0:
                raise ConfigError(f"metric weight for {name!r} must be >= 0, got {weight}")
        if sum(w for _, w in self.metrics) <= 0:
            raise ConfigError("metric weights must not all be zero")
        if self.scale not in SCALES:
            raise ConfigError(f"scale={self.scale!r} is unknown; choose one of {sorted(SCALES)}")
        if not 0.0 <= self.min_valid_fraction <= 1.0:
            raise ConfigError(f"min_valid_fraction must be in [0, 1], got {self.min_valid_fraction}")
        if self.max_shift <= 0:
            raise ConfigError(f"max_shift must be positive, got {self.max_shift}")
        if not 0 <= self.shift_tolerance <= 4:
            raise ConfigError(f"shift_tolerance must be 0 to 4 pixels, got {self.shift_tolerance}")
        if self.change_threshold <= 0:
            raise ConfigError(f"change_threshold must be positive, got {self.change_threshold}")
        if self.crs is not None:
            from rasterio.crs import CRS
            from rasterio.errors import CRSError

            try:
                CRS.from_user_input(self.crs)
            except CRSError as exc:
                raise ConfigError(f"crs={self.crs!r} is not a CRS ({exc})") from None
        if self.ssim_sigma <= 0:
            raise ConfigError(f"ssim_sigma must be positive, got {self.ssim_sigma}")
        if self.min_cloud_area <= 0:
            raise ConfigError(f"min_cloud_area must be positive, got {self.min_cloud_area}")
        if self.workers < 0:
            raise ConfigError(f"workers must be 0 (one per core) or more, got {self.workers}")
        if self.max_pixels is not None and self.max_pixels < 65_536:
            raise ConfigError(f"max_pixels must be at least 65536 (256 x 256), got {self.max_pixels}")
        if self.method not in ("optical", "pwtt"):
            raise ConfigError(f"method={self.method!r} is unknown; choose 'optical' or 'pwtt'")
        if self.units not in ("auto", "power", "amplitude", "db", "optical"):
            raise ConfigError(f"units={self.units!r} is unknown; choose auto, power, amplitude, db or optical")
        if self.lee_size < 1 or (self.lee_size > 1 and self.lee_size % 2 == 0):
            raise ConfigError(f"lee_size must be 1 or an odd number of pixels, got {self.lee_size}")
        if self.looks <= 0 or self.t_threshold <= 0:
            raise ConfigError(f"looks and t_threshold must be positive, got {self.looks} and {self.t_threshold}")
        if any(r <= 0 for r in self.smoothing_radii):
            raise ConfigError(f"smoothing_radii must be positive metres, got {self.smoothing_radii}")
        if self.window < 64:
            raise ConfigError(f"window must be at least 64 pixels, got {self.window}")
        if self.context < 0 or self.ring_width <= 0:
            raise ConfigError(f"context must be >= 0 and ring_width > 0 metres, got {self.context} and {self.ring_width}")
        if not 0 <= self.building_shift <= 6:
            raise ConfigError(f"building_shift must be 0 to 6 pixels, got {self.building_shift}")
        if self.building_search not in ("full", "coarse"):
            raise ConfigError(f"building_search must be 'full' or 'coarse', got {self.building_search!r}")
        if self.min_polygon_pixels < 1:
            raise ConfigError(f"min_polygon_pixels must be >= 1, got {self.min_polygon_pixels}")
        if self.model_tile < 32 or not 0 <= self.model_overlap <= self.model_tile // 4:
            raise ConfigError(f"model_tile must be >= 32 pixels and model_overlap 0 to a quarter of it, got "
                              f"{self.model_tile} and {self.model_overlap}")
        if self.sign not in (None, "planetary-computer"):
            raise ConfigError(f"sign={self.sign!r} is unknown; the one signer is 'planetary-computer'")
        if self.model is not None and self.method != "optical":
            raise ConfigError(f"model= takes the optical method's registered, normalised epochs; method={self.method!r} "
                              "cannot use it")

    # -- construction -------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Config:
        """Build a configuration from a mapping, rejecting unknown keys."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown configuration key(s) {unknown}; known keys are {sorted(known)}")
        return cls(**dict(values))

    @classmethod
    def from_toml(cls, path: str | Path) -> Config:
        """Load a configuration from a TOML file (keys at top level or under ``[damage]``)."""
        path = Path(path)
        if not path.is_file():
            raise InputNotFoundError(f"{path}: configuration file does not exist")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not valid TOML ({exc})") from None
        data = data.get("damage", data)
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> Config:
        """Return a copy with some values changed.

        ``None`` is a value like any other (``max_pixels=None``: one window; a key that
        cannot be None is refused); :data:`UNSET` leaves a key as it is (what the command
        line passes for an option not given).
        """
        changes = {k: v for k, v in changes.items() if v is not UNSET}
        return self.from_dict({**self.to_dict(), **changes}) if changes else self

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable mapping of every value."""
        out = dataclasses.asdict(self)
        out["metrics"] = {name: weight for name, weight in self.metrics}
        return out
