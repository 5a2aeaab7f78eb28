"""The PWTT method: before/after stacks and the pixel-wise t-test, its steps for :mod:`damage.run.methods`.

open the stacks -> plan (the stacks' grid with the context margin, footprints on it) -> fit:
screen every image once (a failed acquisition is dropped) -> per chunk of footprints, the grid's
windows that hold them: warp each image, mask, speckle filter, log, running moments -> t statistic
-> damage map -> zonal sums -> grades -> assemble.

The same plan, reading, grid, masking, per-footprint code, assembly and run folder as the optical
pair; only the change measure differs (:mod:`damage.sar.statistics`).
Memory is bounded by the window: the images are streamed through running moments,
and per-footprint sums are added window by window (each pixel belongs to one
window's core), so the result does not depend on the window size.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import warnings
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from affine import Affine
from tqdm.auto import tqdm

from damage._version import __version__
from damage.config import Config
from damage.errors import (
    BandMismatchError,
    CorruptRunError,
    DamageWarning,
    InvalidRasterError,
    NoValidDataError,
)
from damage.geo.ids import ID_COLUMN, join_footprints
from damage.geo.raster import Grid, Window, analysable
from damage.geo.zonal import zonal_stats, zones
from damage.grading import NOT_ANALYSED, SCALES, grade
from damage.io.nodata import source_valid
from damage.io.sources import Acquisition, Epoch, open_stack, read_decimated
from damage.io.warp import footprint_grid, warp_epoch
from damage.run.methods import WindowResult
from damage.run.plan import Footprints, Plan, batches, place
from damage.run.provenance import Clock, provenance
from damage.sar.statistics import Moments, lee_filter, log_ratio_sigma, pwtt, t_statistic, to_log, to_power

log = logging.getLogger(__name__)

__all__ = ["Pwtt", "StackFit", "measure_stack", "assemble_stack", "PWTT_COLUMNS"]

#: Columns added to the footprints by the PWTT method, in order.
PWTT_COLUMNS = ("damage_grade", "damage_score", "valid_fraction", "t_mean", "t_max", "looks_before", "looks_after",
                "not_analysed_reason")
#: Footprints covering fewer pixel centres than this take every pixel they touch.
MIN_PIXELS = 4


def _units(acq: Acquisition, cfg: Config) -> str:
    units = cfg.units if cfg.units != "auto" else (acq.units or "power")
    aliases = {"linear": "power", "intensity": "power", "sigma0": "power", "gamma0": "power", "dn": "optical", "reflectance": "optical"}
    units = aliases.get(units, units)
    if units not in ("power", "amplitude", "db", "optical"):
        raise InvalidRasterError(f"{acq.describe()}: units {acq.units!r} unknown; say which with units=")
    return units


#: An image whose median level differs from its orbit group's median by more than
#: this many dB is a failed acquisition (calibration, a blank swath) and is dropped.
OUTLIER_DB = 6.0
#: Side, in pixels, of the decimated read the screening takes of each image.
SCREEN_SIZE = 256


def _screen(pre: list[Acquisition], post: list[Acquisition], units: dict,
            dropped: list[str] | None = None) -> tuple[list, list, list]:
    """Drop images whose overall level is far from the rest of their orbit group.

    Each image is read once, decimated to at most SCREEN_SIZE pixels a side; its level
    is the median log power of its valid pixels. Damage changes a small part of a scene, wet soil a
    few dB; a calibration failure or an image of another place many more. ``dropped``: the images
    (by :meth:`Acquisition.describe`) a region's plan already dropped (its chunks read none again).
    """
    if dropped is not None:
        return ([a for a in pre if a.describe() not in dropped], [a for a in post if a.describe() not in dropped],
                list(dropped))
    levels = {}
    for acq in pre + post:
        logs = []
        for tile in acq.epoch.tiles:
            data, declared = read_decimated(tile, SCREEN_SIZE)
            power = to_power(data, units[id(acq)])
            ok = source_valid(data, declared, black_fill=False) & np.isfinite(power).all(axis=0) & (power > 0).all(axis=0)
            logs.append(to_log(power)[:, ok].ravel())
        values = np.concatenate(logs)
        levels[id(acq)] = float(np.median(values)) if values.size else np.nan
    limit = OUTLIER_DB * math.log(10) / 10
    bad = set()
    for orbit in {a.orbit for a in pre + post}:
        group = [a for a in pre + post if a.orbit == orbit and np.isfinite(levels[id(a)])]
        if len(group) < 3:
            continue
        centre = float(np.median([levels[id(a)] for a in group]))
        bad |= {id(a) for a in group if abs(levels[id(a)] - centre) > limit}
    bad |= {id(a) for a in pre + post if not np.isfinite(levels[id(a)])}
    dropped = [a.describe() for a in pre + post if id(a) in bad]
    for name in dropped:
        warnings.warn(f"{name}: level far from the other images of its orbit (or no valid pixel); dropped", DamageWarning, stacklevel=3)
    keep_pre = [a for a in pre if id(a) not in bad]
    keep_post = [a for a in post if id(a) not in bad]
    if not keep_pre or not keep_post:
        raise NoValidDataError(f"no usable image left {'before' if not keep_pre else 'after'} the event once failed ones were dropped ({dropped})")
    return keep_pre, keep_post, dropped


def _stack_grid(pre: list[Acquisition], post: list[Acquisition], fp: Footprints, cfg: Config) -> Grid:
    """The stacks' grid around the footprints (with ``context`` metres, as the optical grid)."""
    parts = batches(fp)
    return footprint_grid([a.epoch for a in pre], [a.epoch for a in post], lambda: (p.geometry for p in parts()),
                          crs=cfg.crs, resolution=cfg.resolution, margin=cfg.context)


def _lee(units: dict[int, str], stack: list[Acquisition], cfg: Config) -> int:
    """The speckle filter's side: none on optical images."""
    return 1 if all(units[id(a)] == "optical" for a in stack) else cfg.lee_size


def measure_stack(pre: list[Acquisition], post: list[Acquisition], grid: Grid, dropped: list[str], geoms: np.ndarray,
                  positions: np.ndarray, cfg: Config, progress: bool = False) -> pd.DataFrame:
    """The t statistics of the footprints ``geoms`` (grid CRS, all present): the grid's windows of
    ``cfg.window`` pixels that hold them, each computed exactly as the whole grid's run computes it.

    ``dropped``: the images the scene's screening set aside (:meth:`Pwtt.fit`). Returns the
    :data:`PWTT_COLUMNS` indexed by the footprints' input ``positions``.
    """
    pre = [a for a in pre if a.describe() not in dropped]
    post = [a for a in post if a.describe() not in dropped]
    units = {id(a): _units(a, cfg) for a in pre + post}
    bands = pre[0].epoch.count
    radii_px = tuple(r / (grid.res * grid.metres) for r in cfg.smoothing_radii)
    lee = _lee(units, pre + post, cfg)
    margin = int(math.ceil(max(radii_px, default=0.0))) + lee // 2 + 1
    pair_sigma = log_ratio_sigma(cfg.looks * lee * lee)
    n = len(geoms)
    area_px = shapely.area(geoms) / grid.res**2
    small = area_px < MIN_PIXELS
    tree = shapely.STRtree(geoms)
    sums = {k: np.zeros(n) for k in ("t", "count", "burned", "n_pre", "n_post")}
    t_max = np.full(n, -np.inf)
    windows = grid.windows(cfg.window)
    held = geoms[shapely.intersects(geoms, shapely.box(*grid.bounds))]
    boxes = np.array([shapely.box(*w.of(grid).bounds) for w in windows], dtype=object)
    keep = shapely.STRtree(boxes).query(held, predicate="intersects")[1] if held.size else np.empty(0, int)
    windows = [windows[i] for i in sorted(set(keep.tolist()))]
    bar = tqdm(total=len(windows) * (len(pre) + len(post)), disable=not progress, unit="image", leave=False,
               desc="pwtt windows")
    try:
        for r0, c0, h, w in windows:
            pr0, pc0 = max(r0 - margin, 0), max(c0 - margin, 0)
            pr1, pc1 = min(r0 + h + margin, grid.shape[0]), min(c0 + w + margin, grid.shape[1])
            padded = Grid(grid.crs, grid.transform @ Affine.translation(pc0, pr0), (pr1 - pr0, pc1 - pc0))
            core = (slice(r0 - pr0, r0 - pr0 + h), slice(c0 - pc0, c0 - pc0 + w))
            groups: dict[str | None, tuple[Moments, Moments]] = {}
            for side, stack in ((0, pre), (1, post)):
                for acq in stack:
                    r = warp_epoch(acq.epoch, padded, black_fill=False, check_valid=False)
                    power = to_power(r.array, units[id(acq)])
                    ok = r.valid & np.isfinite(power).all(axis=0) & (power > 0).all(axis=0)
                    values = to_log(lee_filter(power, ok, lee, cfg.looks) if lee > 1 else power)
                    key = acq.orbit if cfg.by_orbit else None
                    if key not in groups:
                        groups[key] = (Moments.empty(bands, padded.shape), Moments.empty(bands, padded.shape))
                    pair = groups[key]
                    pair[side].add(values, ok)
                    bar.update(1)
            t_groups = [t_statistic(a, b, pair_sigma) for a, b in groups.values() if a.n.any() and b.n.any()]
            if not t_groups:
                continue
            damage, dvalid = pwtt(t_groups, radii_px)
            damage, dvalid = damage[core], dvalid[core]
            core_grid = Window(r0, c0, h, w).of(grid)
            idx = np.unique(tree.query(shapely.box(*core_grid.bounds), predicate="intersects"))
            if idx.size == 0:
                continue
            zs = zones(geoms[idx], core_grid, MIN_PIXELS, small=small[idx])
            n_pre = np.sum([g[0].n for g in groups.values()], axis=0)[core].astype(float)
            n_post = np.sum([g[1].n for g in groups.values()], axis=0)[core].astype(float)
            st = zonal_stats(zs, np.nan_to_num(damage), dvalid, ("sum", "count", "max"))
            everything = np.ones(dvalid.shape, bool)
            sums["t"][idx] += st["sum"]
            sums["count"][idx] += st["count"]
            sums["burned"][idx] += zs.count(everything)
            sums["n_pre"][idx] += zonal_stats(zs, n_pre, dvalid, ("sum",))["sum"]
            sums["n_post"][idx] += zonal_stats(zs, n_post, dvalid, ("sum",))["sum"]
            t_max[idx] = np.fmax(t_max[idx], np.nan_to_num(st["max"], nan=-np.inf))
    finally:
        bar.close()
    # -- grade
    count = sums["count"]
    valid_fraction = np.clip(count / np.maximum(np.maximum(area_px, sums["burned"]), 1e-9), 0.0, 1.0)
    analysed = (valid_fraction >= cfg.min_valid_fraction) & (count > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        t_mean = np.where(analysed, sums["t"] / np.maximum(count, 1), np.nan)
        looks_pre = np.where(analysed, sums["n_pre"] / np.maximum(count, 1), np.nan)
        looks_post = np.where(analysed, sums["n_post"] / np.maximum(count, 1), np.nan)
    scores = np.where(analysed, np.clip(t_mean / (2.0 * cfg.t_threshold), 0.0, 1.0), np.nan)
    # why a building is not analysed, in the optical path's words
    reasons = np.where(sums["burned"] > 0, "partial coverage", "outside imagery")
    evidence = {
        "damage_grade": grade(scores, analysed, cfg.scale),
        "damage_score": scores,
        "valid_fraction": np.round(valid_fraction, 4),
        "t_mean": t_mean,
        "t_max": np.where(analysed & np.isfinite(t_max), t_max, np.nan),
        "looks_before": np.round(looks_pre, 2),
        "looks_after": np.round(looks_post, 2),
        "not_analysed_reason": np.array([None if a else r for a, r in zip(analysed, reasons)], dtype=object),
    }
    return pd.DataFrame(evidence, index=pd.Index(np.asarray(positions, np.int64), name="position"))


@dataclasses.dataclass(frozen=True)
class StackFit:
    """What the PWTT fits once per scene: the images its screening set aside (:func:`_screen`)."""

    dropped: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"method": "pwtt", "dropped": list(self.dropped)}


class Pwtt:
    """The PWTT method's steps (:class:`damage.run.methods.Method`)."""

    name = "pwtt"
    supports: frozenset[str] = frozenset()

    def window_size(self, cfg: Config) -> int:
        """One chunk of every footprint: the method cuts the grid into its own windows (``Config.window``)."""
        return 1 << 30

    def open(self, before: Any, after: Any, cfg: Config) -> tuple[list[Acquisition], list[Acquisition]]:
        pre, post = open_stack(before, "before", cfg.asset, cfg.sign), open_stack(after, "after", cfg.asset, cfg.sign)
        counts = {a.epoch.count for a in pre + post}
        if len(counts) > 1:
            raise BandMismatchError(f"stacks mix band counts {sorted(counts)}: {pre[0].describe()} has {pre[0].epoch.count}")
        return pre, post

    def plan(self, before: Any, after: Any, footprints: Footprints, cfg: Config, window_size: int,
             source: str) -> Plan:
        pre, post = self.open(before, after, cfg)
        for a in pre + post:
            _units(a, cfg)
        grid = _stack_grid(pre, post, footprints, cfg)
        placement, geoms = place(footprints, grid, window_size, source, "stacks", cap=None)
        files = [str(t.path) for a in pre + post for t in a.epoch.tiles]
        whole = None if callable(footprints) else footprints
        return Plan(pre, post, whole, geoms, placement, grid, cfg, window_size, source, files)

    def fit(self, plan: Plan, progress: bool = False) -> tuple[StackFit, None]:
        units = {id(a): _units(a, plan.config) for a in plan.before + plan.after}
        _, _, dropped = _screen(plan.before, plan.after, units)
        return StackFit(dropped), None

    def write_fit(self, fit: StackFit, path: Path) -> None:
        Path(path).write_text(json.dumps(fit.to_dict()), encoding="utf-8")

    def read_fit(self, path: Path) -> StackFit:
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptRunError(f"{path}: not a readable fit ({exc}); delete the run folder and run again") from None
        dropped = doc.get("dropped") if isinstance(doc, dict) and doc.get("method") == "pwtt" else None
        if not isinstance(dropped, list) or not all(isinstance(d, str) for d in dropped):
            raise CorruptRunError(f"{path}: not the fit of a PWTT region")
        return StackFit(dropped)

    def measure(self, before: list[Acquisition], after: list[Acquisition], grid: Grid, fit: StackFit,
                geoms: np.ndarray, positions: np.ndarray, cfg: Config, *, polygons: bool = False, pixels: Any = None,
                keep: bool = False, progress: bool = False) -> WindowResult:
        return WindowResult(measure_stack(before, after, grid, fit.dropped, geoms, positions, cfg, progress))

    def check(self, tables: list[pd.DataFrame], plan: Plan) -> None:
        if not any((t["valid_fraction"] > 0).any() for t in tables):
            raise NoValidDataError("the before and after stacks hold no pixel valid in both where the footprints are")

    def assemble(self, footprints: gpd.GeoDataFrame, parts: list[pd.DataFrame], failed: np.ndarray, cfg: Config,
                 fit: StackFit, record: dict[str, Any], **part: Any) -> gpd.GeoDataFrame:
        return assemble_stack(footprints, parts, failed, cfg, record, **part)

    def summarise(self, table: pd.DataFrame, cfg: Config, fit: StackFit, record: dict[str, Any]) -> dict[str, Any]:
        return summarise_stack(table, cfg)

    def record(self, plan: Plan, fit: StackFit) -> dict[str, Any]:
        cfg, grid = plan.config, plan.grid
        pre = [a for a in plan.before if a.describe() not in fit.dropped]
        post = [a for a in plan.after if a.describe() not in fit.dropped]
        units = {id(a): _units(a, cfg) for a in pre + post}
        lee = _lee(units, pre + post, cfg)
        radii_px = tuple(r / (grid.res * grid.metres) for r in cfg.smoothing_radii)

        def images(stack: list[Acquisition]) -> list[dict[str, Any]]:
            return [{"image": a.epoch.describe(), "date": str(a.date), "orbit": a.orbit, "units": units[id(a)]}
                    for a in stack]

        return {
            "inputs": {"before": images(pre), "after": images(post), "footprints": plan.source},
            "grid": {"crs": grid.crs.to_string(), "resolution": grid.res, "resolution_m": round(grid.res * grid.metres, 6),
                     "shape": list(grid.shape), "bounds": list(grid.bounds), "transform": list(grid.transform)[:6]},
            "statistic": {
                "orbit_groups": sorted({str(a.orbit) for a in pre + post}) if cfg.by_orbit else ["all"],
                "lee_size": lee,
                "smoothing_radii_px": [round(r, 3) for r in radii_px],
                "pair_log_ratio_sigma": round(log_ratio_sigma(cfg.looks * lee * lee), 4),
                "t_threshold": cfg.t_threshold,
                "windows": len(grid.windows(cfg.window)),
                "dropped": list(fit.dropped),
            },
        }

    def provenance(self, before: list[Acquisition], after: list[Acquisition], others: dict[str, Any],
                   clock: Clock) -> dict[str, Any]:
        """Every image's files, those the screening set aside included (they were read)."""
        return provenance(Epoch("before", tuple(t for a in before for t in a.epoch.tiles)),
                          Epoch("after", tuple(t for a in after for t in a.epoch.tiles)), others, clock)


def assemble_stack(footprints: gpd.GeoDataFrame, parts: list[pd.DataFrame], failed: np.ndarray, cfg: Config,
                   record: dict[str, Any], *, first: int = 0, ids: tuple[np.ndarray, str] | None = None,
                   columns: list[str] | None = None) -> gpd.GeoDataFrame:
    """A region's PWTT chunks as one result: every footprint once, in input order, with the run record.

    ``parts``: each chunk's :data:`PWTT_COLUMNS`, indexed by input position; footprints in none are
    "chunk failed" (``failed``), "unusable footprint" or "outside imagery". ``first``, ``ids`` and
    ``columns`` as :func:`damage.run.assemble.assemble` takes them (a region's part).
    """
    n = len(footprints)
    table = pd.concat(parts) if parts else pd.DataFrame(columns=columns or list(PWTT_COLUMNS),
                                                        index=pd.Index([], name="position"))
    table = table.reindex(np.arange(first, first + n))
    missing = table["damage_grade"].isna().to_numpy()
    usable = analysable(footprints.geometry.values)
    why = np.where(np.asarray(failed, bool), "chunk failed", np.where(~usable, "unusable footprint", "outside imagery"))
    grades = np.where(missing, NOT_ANALYSED, table["damage_grade"].to_numpy(dtype=object)).astype(object)
    reasons = np.array([w if m else r for m, w, r in zip(missing, why, table["not_analysed_reason"].to_numpy(dtype=object))],
                       dtype=object)
    table["damage_grade"], table["not_analysed_reason"] = grades, [None if r is None or r != r else r for r in reasons]
    table.loc[missing, "valid_fraction"] = 0.0
    for c in table.columns:  # the numbers of a part in no chunk are numbers too (NaN), not objects
        if c not in ("damage_grade", "not_analysed_reason") and table[c].dtype == object:
            table[c] = table[c].astype(float)
    result, id_source = join_footprints(footprints, table, cfg.id_column, ids)
    result.attrs["damage"] = {
        "version": __version__,
        "method": "pwtt",
        "config": cfg.to_dict(),
        **record,
        "ids": {"column": ID_COLUMN, "source": id_source},
        **summarise_stack(result, cfg),
    }
    return result


def summarise_stack(table: pd.DataFrame, cfg: Config) -> dict[str, Any]:
    """The run record's counts over a scene's footprints (``table``: their ``damage_grade`` and
    ``not_analysed_reason``): not analysed by reason, buildings per grade."""
    grades = table["damage_grade"].to_numpy(dtype=object)
    reasons = table["not_analysed_reason"].to_numpy(dtype=object)
    return {
        "not_analysed": {r: int((reasons == r).sum()) for r in
                         ("outside imagery", "partial coverage", "unusable footprint", "chunk failed")},
        "counts": {level: int((grades == level).sum()) for level in SCALES[cfg.scale].levels + (NOT_ANALYSED,)},
    }
