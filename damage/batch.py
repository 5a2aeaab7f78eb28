"""Regions: cut into chunks, assess each (local processes or a Dask cluster), resume, merge.

A region is the before and after tiles of an area and its footprints. The runner

1. reads the footprints (optionally filtered by an attribute expression and an area of
   interest) and the tiles' headers, lays one pixel grid over the region, and assigns
   each footprint to the chunk (a square of ``chunk_size`` grid pixels) that holds its
   representative point;
2. fits the scene once on a fixed sample of blocks (:func:`fit_region`): registration,
   radiometric normalisation, metric scaling and the scene's typical change without
   damage (its steadiest blocks), so every chunk is measured and graded alike (the
   grades themselves come from one fixed evidence model, :data:`damage.grading.MODEL`);
3. assesses the chunks, each writing ``chunks/<id>.parquet`` atomically; a chunk that
   fails with a :class:`~damage.errors.DamageError` is logged and reported, any other
   error stops the run;
4. merges the chunks into ``damage.parquet`` and ``damage.geojson``: every footprint
   exactly once, in input order.

Killed at any moment and run again with the same arguments, it reuses the fit (stored
as validated JSON, never a pickle) and the chunks already written, and the merged result is the same as that of an uninterrupted
run. The result does not depend on the chunk size or the number of workers (cloud
masks are found per chunk and may differ along chunk seams).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from affine import Affine
from tqdm.auto import tqdm

from . import __version__
from .config import Config
from .errors import (
    ConfigError,
    CorruptRunError,
    DamageError,
    EmptyFootprintsError,
    FootprintsOutsideImageryError,
    NoOverlapError,
    NoValidDataError,
    OutputError,
)
from .fitstore import read_fit, write_fit
from .grading import MODEL, NOT_ANALYSED, SCALES
from .grid import footprint_grid, warp_epoch
from .masks import clouds, erode
from .metrics import METRIC_RADIUS, combined, scene_stats
from .normalize import normalize
from .pipeline import REASONS, SceneFit, _assess, _Steps, cloud_min_pixels, scene_calibration
from .query import select
from .runfolder import check_chunks, lock, read_manifest, signature
from .raster import Grid, present
from .register import block_shifts, consensus, luminance
from .sources import PathSpec, open_epoch, read_footprints
from .writers import _atomic, write, write_json

log = logging.getLogger(__name__)

__all__ = ["batch", "BatchResult", "fit_region", "plan_chunks", "assess_chunked"]

#: Side, in grid pixels, of the blocks the region is fitted on, and how many at most.
FIT_BLOCK, FIT_BLOCKS = 512, 16
#: The runner's own columns in footprints.parquet and chunk files (names no footprint file uses).
_INDEX, _CHUNK = "damage:region_index", "damage:chunk"


@dataclasses.dataclass(frozen=True)
class BatchResult:
    """What a region run produced.

    Attributes
    ----------
    result : geopandas.GeoDataFrame
        The merged assessment (also written as ``damage.parquet`` and ``damage.geojson``).
    chunks : int
        Chunks in the plan.
    done : int
        Chunks assessed in this run (the others were already on disk or failed).
    failed : dict
        ``chunk id -> error message`` of chunks that failed with a library error.
    folder : pathlib.Path
    """

    result: gpd.GeoDataFrame
    chunks: int
    done: int
    failed: dict[str, str]
    folder: Path


# -- planning ------------------------------------------------------------------------------
def plan_chunks(geoms: np.ndarray, grid: Grid, chunk_px: int) -> np.ndarray:
    """Chunk id (``"r<row>_c<col>"``) of each footprint: the cell holding its representative point."""
    pts = shapely.point_on_surface(geoms)
    inv = ~grid.transform
    cols, rows = inv * (shapely.get_x(pts), shapely.get_y(pts))
    r = np.floor(np.asarray(rows) / chunk_px).astype(np.int64)
    c = np.floor(np.asarray(cols) / chunk_px).astype(np.int64)
    return np.char.add(np.char.add("r", r.astype(str)), np.char.add("_c", c.astype(str)))


def _on_grid(geoms: np.ndarray, grid: Grid) -> np.ndarray:
    """Which footprints meet the grid (the overlap of the epochs around the footprints)."""
    out = np.zeros(len(geoms), bool)
    ok = present(geoms)
    out[ok] = shapely.intersects(geoms[ok], shapely.box(*grid.bounds))
    return out


def _select(fp: gpd.GeoDataFrame, where: str | None, aoi: Any) -> gpd.GeoDataFrame:
    if where:
        fp = fp[select(fp, where)]  # parsed, never executed: DataFrame.eval ran code
    if aoi is not None:
        area = aoi if isinstance(aoi, gpd.GeoDataFrame) else read_footprints(aoi)
        zone = shapely.union_all(area.to_crs(fp.crs).geometry.values)
        fp = fp[shapely.intersects(fp.geometry.values, zone)]
    if len(fp) == 0:
        raise EmptyFootprintsError("no footprint is left after the --where filter and the area of interest")
    return fp


# -- fitting the region once --------------------------------------------------------------------
def fit_region(before, after, geoms: np.ndarray, grid: Grid, cfg: Config) -> SceneFit:
    """Fit registration, normalisation, metric scaling and calibration on sample blocks.

    The samples are the blocks of :data:`FIT_BLOCK` grid pixels that hold the most
    footprints (at most :data:`FIT_BLOCKS`, and at most a quarter of the region), so
    the fit depends on the region, not on how it is cut into chunks.
    """
    be, ae = open_epoch(before, "before"), open_epoch(after, "after")
    keys = plan_chunks(geoms, grid, FIT_BLOCK)
    names, counts = np.unique(keys, return_counts=True)
    # at most a quarter of the region (and at least 4 blocks): the fit stays a small overhead
    most = int(np.clip(grid.shape[0] * grid.shape[1] / 4 / FIT_BLOCK**2, 4, FIT_BLOCKS))
    order = sorted(range(len(names)), key=lambda i: (-counts[i], names[i]))[:most]
    blocks = []
    for i in order:
        r, c = (int(v) for v in names[i][1:].split("_c"))
        r0, c0 = r * FIT_BLOCK, c * FIT_BLOCK
        h, w = min(FIT_BLOCK, grid.shape[0] - r0), min(FIT_BLOCK, grid.shape[1] - c0)
        if h > 0 and w > 0:
            blocks.append((r0, c0, h, w))
    rasters, estimates = [], []
    for r0, c0, h, w in blocks:
        sub = Grid(grid.crs, grid.transform @ Affine.translation(c0, r0), (h, w))
        rb = warp_epoch(be, sub, black_fill=cfg.black_fill, check_valid=False)
        ra = warp_epoch(ae, sub, black_fill=cfg.black_fill, check_valid=False)
        rasters.append((sub, rb, ra))
        if cfg.register:
            est = block_shifts(luminance(rb.array), luminance(ra.array), rb.valid & ra.valid, max_shift=cfg.max_shift)
            estimates.append(est + np.array([0.0, 0.0, r0, c0]))
    shift = consensus(np.concatenate(estimates), grid.shape) if estimates else None
    # Radiometry and metric scaling on the sample blocks side by side, after registration.
    b_parts, a_parts, v_parts = [], [], []
    for (sub, rb, ra), (r0, c0, h, w) in zip(rasters, blocks):
        if shift is not None and shift.applied:
            moved = Grid(grid.crs, grid.transform @ shift.pixel_affine() @ Affine.translation(c0, r0), (h, w))
            ra = warp_epoch(ae, moved, black_fill=cfg.black_fill, check_valid=False)
        valid = rb.valid & ra.valid
        if cfg.cloud_mask:
            cloudy, _ = clouds(rb.array, ra.array, valid, min_pixels=cloud_min_pixels(cfg, grid))
            valid &= ~cloudy
        pad = ((0, 0), (0, FIT_BLOCK - h), (0, FIT_BLOCK - w))
        b_parts.append(np.pad(rb.array, pad))
        a_parts.append(np.pad(ra.array, pad))
        v_parts.append(np.pad(valid, pad[1:]))
    b_all, a_all, v_all = (np.concatenate(p, axis=-1) for p in (b_parts, a_parts, v_parts))
    after_norm, norm_params = normalize(b_all, a_all, v_all, cfg.normalize)
    stats = scene_stats(b_all, after_norm, v_all)
    # the scene's typical structural change, on the sample blocks side by side, as one scene would
    after_norm = np.where(v_all[None], after_norm, 0.0)
    _, maps = combined(b_all, after_norm, v_all, cfg.metrics, sigma=cfg.ssim_sigma, tolerance=cfg.shift_tolerance, stats=stats)
    radius = max(METRIC_RADIUS[name] for name, _ in cfg.metrics) + cfg.shift_tolerance
    calib = scene_calibration(maps, b_all, after_norm, v_all, erode(v_all, radius), cfg, stats)
    return SceneFit(shift, norm_params, stats, calib, grid.transform)


@dataclasses.dataclass
class _Plan:
    footprints: gpd.GeoDataFrame  # with the _INDEX column (input order)
    geoms: np.ndarray  # in the grid CRS
    usable: np.ndarray  # on the grid, not empty
    chunk_of: np.ndarray  # chunk id per footprint ("" when not usable)
    grid: Grid
    cfg: Config  # with the grid's CRS and resolution fixed, so every chunk is on its lattice
    inputs: dict


def _plan(before, after, fp: gpd.GeoDataFrame, cfg: Config, chunk_size: int) -> _Plan:
    """The region's grid, and each footprint's chunk; footprints off the imagery get none."""
    reserved = [c for c in (_INDEX, _CHUNK) if c in fp.columns]
    if reserved:
        raise ConfigError(f"footprints: column(s) {reserved} are the batch runner's own; rename them")
    be, ae = open_epoch(before, "before"), open_epoch(after, "after")
    usable = present(fp.geometry.values)
    grid = footprint_grid(be, ae, fp.geometry, crs=cfg.crs, resolution=cfg.resolution)
    geoms = np.asarray(fp.geometry.to_crs(grid.crs).values, dtype=object)
    usable &= _on_grid(geoms, grid)
    chunk_of = np.where(usable, plan_chunks(np.where(usable, geoms, shapely.Point(0, 0)), grid, chunk_size), "")
    return _Plan(fp.assign(**{_INDEX: np.arange(len(fp))}), geoms, usable, chunk_of, grid,
                 cfg.replace(crs=grid.crs.to_string(), resolution=grid.res),
                 {"before": be.describe(), "after": ae.describe()})


def _assemble(parts: list[gpd.GeoDataFrame], tagged: gpd.GeoDataFrame, cfg: Config, fit: SceneFit,
              record: dict) -> gpd.GeoDataFrame:
    """Every footprint once, in input order (those of no chunk as not analysed), graded region-wide."""
    got = pd.concat(parts, ignore_index=True) if parts else tagged.iloc[:0]
    missing = tagged[~tagged[_INDEX].isin(got[_INDEX])]
    if len(missing):
        off = missing[_CHUNK].eq("none").to_numpy() if _CHUNK in missing else np.ones(len(missing), bool)
        reason = np.where(off, "outside imagery", "chunk failed")
        got = pd.concat([got, missing.assign(damage_grade=NOT_ANALYSED, damage_score=np.nan, valid_fraction=0.0,
                                             not_analysed_reason=reason)],
                        ignore_index=True)
    result = gpd.GeoDataFrame(got, geometry=tagged.geometry.name, crs=tagged.crs).sort_values(_INDEX, kind="stable")
    result = result.drop(columns=[c for c in (_INDEX, _CHUNK) if c in result]).reset_index(drop=True)
    grades = result["damage_grade"].to_numpy()
    result.attrs["damage"] = {
        "version": __version__,
        "config": cfg.to_dict(),
        **record,
        **fit.to_dict(),
        "fitted_on": "region sample",
        "model": MODEL.to_dict(),
        "not_analysed": {r: int((result["not_analysed_reason"] == r).sum()) for r in REASONS} if "not_analysed_reason" in result else {},
        "counts": {level: int((grades == level).sum()) for level in SCALES[cfg.scale].levels + (NOT_ANALYSED,)},
    }
    return result


# -- large scenes in memory ------------------------------------------------------------------------
def assess_chunked(before, after, footprints, cfg: Config, chunk_size: int, want_polygons: bool = False,
                   progress: bool = False) -> gpd.GeoDataFrame:
    """:func:`damage.assess` for a scene larger than one chunk: fit once, then chunk by chunk.

    Peak memory is that of one chunk (plus the footprints); the result is the same
    as :func:`batch` gives, with nothing written to disk.
    """
    plan = _plan(before, after, read_footprints(footprints), cfg, chunk_size)
    cfg = plan.cfg
    fit = fit_region(before, after, plan.geoms[plan.usable], plan.grid, cfg)
    parts, polys = [], []
    chunks = sorted(set(plan.chunk_of[plan.usable]))
    for chunk in tqdm(chunks, disable=not progress, unit="chunk", desc="chunks", leave=False):
        sub = plan.footprints[plan.chunk_of == chunk]
        try:
            res = _assess(before, after, sub, cfg, want_polygons, _Steps(False, 8), fit=fit)
        except (FootprintsOutsideImageryError, NoOverlapError, NoValidDataError) as exc:
            log.warning("chunk %s: %s; its %d footprints are not analysed", chunk, exc, len(sub))
            continue
        parts.append(res)
        if want_polygons:
            p = res.attrs["damage_polygons"]
            polys.append(p.assign(footprint=res[_INDEX].to_numpy()[p["footprint"].to_numpy()]))
    grid = plan.grid
    record = {
        "inputs": {**plan.inputs, "footprints": "GeoDataFrame" if isinstance(footprints, gpd.GeoDataFrame) else str(footprints)},
        "grid": {"crs": grid.crs.to_string(), "resolution": grid.res, "shape": list(grid.shape), "chunks": len(chunks),
                 "chunk_size": chunk_size},
    }
    result = _assemble(parts, plan.footprints, cfg, fit, record)
    if want_polygons:
        crs = plan.footprints.crs
        result.attrs["damage_polygons"] = gpd.GeoDataFrame(pd.concat(polys, ignore_index=True), crs=crs) if polys else \
            gpd.GeoDataFrame({"footprint": [], "damage_grade": [], "area_m2": []}, geometry=[], crs=crs)
    return result


# -- one chunk -------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Task:
    chunk: str
    before: Any
    after: Any
    folder: str
    config: dict
    fit_path: str


def run_chunk(task: _Task) -> tuple[str, int, str | None]:
    """Assess one chunk and write it atomically; returns ``(chunk, buildings, library error or None)``.

    Runs unchanged in a local process or on a Dask worker (it only needs the files).
    """
    folder = Path(task.folder)
    try:
        fp = gpd.read_parquet(folder / "footprints.parquet", filters=[(_CHUNK, "==", task.chunk)])
        fit = read_fit(Path(task.fit_path))
        cfg = Config.from_dict(task.config)
        try:
            result = _assess(task.before, task.after, fp, cfg, False, _Steps(False, 8), fit=fit)
        except (FootprintsOutsideImageryError, NoOverlapError, NoValidDataError) as exc:
            # the imagery has nothing here (fill, edge of a scene): done, nothing to analyse
            log.info("chunk %s: %s; its %d footprints are not analysed", task.chunk, exc, len(fp))
            result = fp.assign(damage_grade=NOT_ANALYSED, damage_score=np.nan, valid_fraction=0.0,
                               not_analysed_reason="outside imagery")
        result.attrs = {}
        write(result, folder / "chunks" / f"{task.chunk}.parquet")
        return task.chunk, len(fp), None
    except DamageError as exc:
        return task.chunk, 0, f"{type(exc).__name__}: {exc}"


# -- the region ----------------------------------------------------------------------------------
def batch(
    before: PathSpec,
    after: PathSpec,
    footprints: str | os.PathLike | gpd.GeoDataFrame,
    folder: str | os.PathLike,
    config: Config | None = None,
    *,
    chunk_size: int = 2048,
    workers: int = 1,
    client: Any = None,
    scheduler: str | None = None,
    where: str | None = None,
    aoi: Any = None,
    progress: bool = False,
    **options: Any,
) -> BatchResult:
    """Assess a whole region in chunks, resumably, on local processes or a Dask cluster.

    Parameters
    ----------
    before, after : path or sequence of paths
        The tiles of each epoch (files, folders, VRTs); the epochs may differ in tiling
        and CRS.
    footprints : path or GeoDataFrame
        The region's footprints (GeoParquet, GeoPackage, GeoJSON, ...).
    folder : path
        Output folder: ``manifest.json``, ``fit.json``, ``footprints.parquet``,
        ``chunks/``, and the merged ``damage.parquet`` and ``damage.geojson``. Running
        again with the same arguments resumes; other arguments are refused.
    config : Config, optional
    chunk_size : int
        Side of a chunk in grid pixels; memory per worker grows with its square.
    workers : int
        Local processes (1: in this process).
    client : dask.distributed.Client, optional
        Run the chunks on this Dask cluster.
    scheduler : str, optional
        Address of a Dask scheduler to connect to (instead of ``client``).
    where : str, optional
        Keep only footprints for which this expression over their columns is true,
        e.g. ``"amenity in ['hospital', 'clinic']"``: column comparisons, ``in`` /
        ``not in`` a list, ``and`` / ``or`` / ``not`` and literals (parsed by
        :func:`damage.query.select`, never executed).
    aoi : path or GeoDataFrame, optional
        Keep only footprints that intersect this area.
    progress : bool
        Progress bar over chunks (with buildings done).
    **options
        Overrides of single :class:`Config` fields.

    Returns
    -------
    BatchResult
    """
    cfg = (config or Config()).replace(**options)
    if cfg.method != "optical":
        raise ConfigError("region batches run the optical method; run PWTT stacks with damage.assess (it is windowed)")
    if chunk_size < 64 or workers < 1:
        raise ConfigError(f"chunk_size must be >= 64 pixels and workers >= 1, got {chunk_size} and {workers}")
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "chunks").mkdir(exist_ok=True)
    except FileExistsError:
        raise CorruptRunError(f"{folder}: 'chunks' (or the folder itself) is a file, not a folder") from None
    except OSError as exc:
        raise OutputError(f"{folder}: cannot create the run folder ({exc.strerror or exc})") from None
    with lock(folder):
        return _run(before, after, footprints, folder, cfg, chunk_size, workers, client, scheduler, where, aoi, progress)


def _run(before, after, footprints, folder: Path, cfg: Config, chunk_size: int, workers: int, client: Any,
         scheduler: str | None, where: str | None, aoi: Any, progress: bool) -> BatchResult:
    """The body of :func:`batch`, run while holding the folder's lock."""
    manifest_path = folder / "manifest.json"
    sig = signature(before, after, footprints, cfg.to_dict(), where, aoi, chunk_size)
    manifest = read_manifest(manifest_path)
    if manifest is not None and manifest["signature"] != sig:
        raise OutputError(f"{folder}: holds a run with other inputs or settings (or another library version); "
                          "use another folder or empty it")

    # -- validate, plan and fit (once; reused on resume)
    fit_path = folder / "fit.json"  # data only: a run folder is never code (no pickle)
    if manifest is None or not fit_path.exists() or not (folder / "footprints.parquet").exists():
        plan = _plan(before, after, _select(read_footprints(footprints), where, aoi), cfg, chunk_size)
        cfg, grid, usable = plan.cfg, plan.grid, plan.usable
        fp = plan.footprints.assign(**{_CHUNK: np.where(usable, plan.chunk_of, "none")})
        fp = fp.sort_values([_CHUNK, _INDEX], kind="stable")
        fit = fit_region(before, after, plan.geoms[usable], grid, cfg)
        with _atomic(fit_path) as tmp:
            write_fit(fit, tmp)
        with _atomic(folder / "footprints.parquet") as tmp:
            fp.to_parquet(tmp, index=False, row_group_size=4096)
        chunks = pd.Series(plan.chunk_of[usable]).value_counts().sort_index()
        manifest = {
            "signature": sig,
            "version": __version__,
            "config": cfg.to_dict(),
            "grid": {"crs": grid.crs.to_string(), "resolution": grid.res, "shape": list(grid.shape)},
            "chunk_size": chunk_size,
            "chunks": {str(k): int(v) for k, v in chunks.items()},
            "footprints": len(fp),
            "fit": fit.to_dict(),
            "failed": {},
        }
        write_json(manifest, manifest_path)
    else:
        read_fit(fit_path)  # a hand-edited or foreign fit is refused here, before any chunk uses it
    cfg = Config.from_dict(manifest["config"])
    for stale in (folder / "chunks").glob(".*.tmp.*"):  # left by a run killed while writing
        stale.unlink()
    for bad in check_chunks(folder, manifest["chunks"]):
        log.warning("chunk %s: its file is damaged or from another run; redoing it", bad)
    todo = [c for c in manifest["chunks"] if not (folder / "chunks" / f"{c}.parquet").exists()]
    tasks = [_Task(c, before, after, str(folder), manifest["config"], str(fit_path)) for c in todo]
    log.info("region: %d chunks, %d to do", len(manifest["chunks"]), len(tasks))
    failed: dict[str, str] = {}
    done = 0
    bar = tqdm(total=len(manifest["chunks"]), initial=len(manifest["chunks"]) - len(tasks), disable=not progress,
               unit="chunk", desc="chunks")
    buildings = 0
    try:
        for chunk, n, error in _execute(tasks, workers, client, scheduler):
            if error is None:
                done += 1
                buildings += n
            else:
                failed[chunk] = error
                log.error("chunk %s failed: %s", chunk, error)
            manifest["failed"] = {**{k: v for k, v in manifest["failed"].items() if k != chunk}, **failed}
            write_json(manifest, manifest_path)
            bar.update(1)
            bar.set_postfix(buildings=buildings)
    finally:
        bar.close()
    result = _merge(folder, manifest, cfg)
    return BatchResult(result, len(manifest["chunks"]), done, {k: v for k, v in manifest["failed"].items()}, folder)


def _execute(tasks: list[_Task], workers: int, client: Any, scheduler: str | None) -> Iterable[tuple[str, int, str | None]]:
    """Run the tasks and yield their outcomes as they finish."""
    if not tasks:
        return
    if client is not None or scheduler is not None:
        try:
            from dask.distributed import Client, as_completed
        except ImportError:
            raise ConfigError("a Dask cluster needs dask.distributed: pip install 'damage[dask]'") from None
        own = client is None
        if client is None:
            try:
                client = Client(scheduler, timeout=_SCHEDULER_TIMEOUT)
            except (OSError, ValueError, TypeError) as exc:  # unreachable, malformed, timed out
                raise ConfigError(f"--scheduler {scheduler!r}: cannot connect to a Dask scheduler there ({exc})") from None
        try:
            futures = client.map(run_chunk, tasks, pure=False)
            for future in as_completed(futures):
                yield future.result()
        finally:
            if own:
                client.close()
        return
    if workers == 1:
        for task in tasks:
            yield run_chunk(task)
        return
    from concurrent.futures import ProcessPoolExecutor, as_completed as done

    with ProcessPoolExecutor(max_workers=workers, initializer=_watch_parent, initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(run_chunk, t) for t in tasks]
        try:
            for future in done(futures):
                yield future.result()
        except BaseException:
            for f in futures:
                f.cancel()
            raise


#: Seconds to wait for a Dask scheduler before giving up.
_SCHEDULER_TIMEOUT = 10


#: Seconds between a worker's checks that the run that started it is still alive.
_WATCH_SECONDS = 1.0


def _watch_parent(parent: int) -> None:
    """In a worker process: exit as soon as the process that started it is gone (killed with SIGKILL,
    say), instead of running its chunks on for nobody. A chunk cut short leaves only a temporary file,
    which the next run removes."""
    import threading
    import time

    def watch() -> None:
        while True:
            time.sleep(_WATCH_SECONDS)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="damage-watch-parent").start()


def _merge(folder: Path, manifest: dict, cfg: Config) -> gpd.GeoDataFrame:
    """Every footprint once, in input order; those of failed chunks as not analysed."""
    fp = gpd.read_parquet(folder / "footprints.parquet")
    # only the plan's chunks: a temporary file left by a killed run is never read
    files = [folder / "chunks" / f"{c}.parquet" for c in sorted(manifest["chunks"])]
    parts = [gpd.read_parquet(p) for p in files if p.exists()]
    fit = read_fit(folder / "fit.json")
    region = {"grid": manifest["grid"], "chunk_size": manifest["chunk_size"], "chunks": len(manifest["chunks"]),
              "failed": manifest["failed"]}
    merged = _assemble(parts, fp, cfg, fit, {"region": region})
    write(merged, folder / "damage.parquet")
    write(merged, folder / "damage.geojson")
    return merged
