"""Regions: cut into chunks, assess each (local processes or a Dask cluster), resume, merge.

A region is the before and after tiles of an area and its footprints. The runner

1. reads the footprints a batch at a time, filtered by an attribute expression and an area of
   interest, into the run folder's parts (:mod:`damage.run.parts`), and prepares the region
   from them as :func:`damage.assess` prepares a scene (:func:`damage.run.plan.make_plan`: the
   tiles' headers, one grid, each footprint's window of ``chunk_size`` pixels, here called a
   chunk), holding a few bytes per footprint, never the footprints;
2. fits the scene once (the method's fit: :func:`damage.run.scenefit.fit_scene` for a pair,
   the screening of every image for radar stacks) and stores the fit as JSON;
3. measures and grades the chunks with that fit (the method's ``measure``, the same function
   ``assess`` runs: :mod:`damage.run.methods`), each reading its footprints from the parts and
   writing ``chunks/<id>.parquet`` atomically; a chunk that fails with a
   :class:`~damage.errors.DamageError` is logged and reported, any other error stops the run;
4. assembles the chunks a part at a time as ``assess`` does (every footprint exactly once, in
   input order) into the dataset ``damage/part-<k>.parquet`` and, unless told not to, the
   merged ``damage.parquet`` and ``damage.geojson`` (:mod:`damage.run.merge`).

The client's memory does not grow with the number of footprints (``benchmarks/scale.py client``).

Killed at any moment and run again with the same arguments, it reuses the fit (stored
as validated JSON, never a pickle) and the chunks already written, and the merged result is the same as that of an uninterrupted
run. The result is the same, building for building, as that of :func:`damage.assess`,
whatever the chunk size and the number of workers.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from affine import Affine
from rasterio.crs import CRS
from tqdm.auto import tqdm

from damage._version import __version__
from damage.config import Config
from damage.errors import ConfigError, CorruptRunError, DamageError, InputTooLargeError, OutputError
from damage.geo.raster import Grid
from damage.io.sources import PathSpec
from damage.io.stream import FootprintStream
from damage.io.writers import _atomic, write_json
from damage.run import parts as region_parts
from damage.run.merge import merge_region, read_region
from damage.run.methods import method
from damage.run.parts import (
    INDEX,
    chunk_footprints,
    chunk_parts,
    footprints_of,
    label_parts,
    read_selected,
    write_parts,
)
from damage.run.pipeline import remote_area
from damage.run.provenance import Clock, sha256_of
from damage.run.runfolder import check_chunks, check_written, lock, plan_digest, read_manifest, signature

log = logging.getLogger(__name__)

__all__ = ["batch", "BatchResult"]


@dataclasses.dataclass(frozen=True)
class BatchResult:
    """What a region run produced.

    Attributes
    ----------
    chunks : int
        Chunks in the plan.
    done : int
        Chunks assessed in this run (the others were already on disk or failed).
    failed : dict
        ``chunk id -> error message`` of chunks that failed with a library error.
    folder : pathlib.Path
    parts : list of str
        The files of the result dataset (``folder / "damage"``), in input order.
    merged : bool
        Whether ``damage.parquet`` and ``damage.geojson`` were written.
    """

    chunks: int
    done: int
    failed: dict[str, str]
    folder: Path
    parts: list[str]
    merged: bool = True

    def read(self, columns: list[str]) -> pd.DataFrame:
        """Some columns of the result (those it has), every footprint in input order, with the run record in
        ``attrs["damage"]``: what a summary of a region's million footprints needs, without their outlines."""
        return read_region(self.folder, self.parts, columns)

    def footprints(self) -> gpd.GeoDataFrame:
        """The footprints the run assessed (after ``where`` and ``aoi``), in input order."""
        return read_selected(self.folder / "footprints", self.parts)

    @functools.cached_property
    def result(self) -> gpd.GeoDataFrame:
        """The merged assessment, read from the run folder when first asked for (a region's million
        footprints are never held unless asked for)."""
        return read_region(self.folder, self.parts, merged=self.merged)


# -- one chunk -------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Task:
    chunk: str
    before: Any
    after: Any
    folder: str
    config: dict
    fit_path: str
    grid: dict  # crs, transform, shape of the region's grid
    parts: tuple[str, ...] = ()  # the footprint parts holding the chunk's footprints


_ALLOCATOR_TUNED = False


def _tune_allocator() -> None:
    """Let this process reuse freed memory for the next window's arrays (glibc only; once).

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_`` set, which turns off
    glibc's dynamic mmap threshold: every array above 128 KB is then mapped and unmapped
    anew, and a chunk takes twice as long on a Dask worker as in a process pool
    (``benchmarks/scale.py workers``). Arrays up to 32 MB come from the heap again, and
    the heap is not trimmed between windows.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return
    _ALLOCATOR_TUNED = True
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)
        libc.mallopt(m_trim_threshold, 512 * 1024 * 1024)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def run_chunk(task: _Task) -> tuple[str, int, str | None, str | None]:
    """Measure and grade one chunk and write its table atomically; returns ``(chunk, buildings,
    library error or None, SHA-256 of the chunk's file or None)``.

    Runs unchanged in a local process or on a Dask worker (it only needs the files).
    """
    _tune_allocator()
    folder = Path(task.folder)
    try:
        fp = chunk_footprints(folder / "footprints", list(task.parts), task.chunk)
        cfg = Config.from_dict(task.config)
        grid = Grid(CRS.from_user_input(task.grid["crs"]), Affine(*task.grid["transform"]), tuple(task.grid["shape"]))
        steps = method(cfg)
        fit = steps.read_fit(Path(task.fit_path))
        geoms = np.asarray(fp.geometry.to_crs(grid.crs).values, dtype=object)
        be, ae = steps.open(task.before, task.after, cfg)
        table = steps.measure(be, ae, grid, fit, geoms, fp[INDEX].to_numpy(), cfg).table
        with _atomic(folder / "chunks" / f"{task.chunk}.parquet") as tmp:
            table.reset_index().rename(columns={"position": INDEX}).to_parquet(tmp, index=False)
            digest = sha256_of(tmp)
        return task.chunk, len(fp), None, digest
    except DamageError as exc:
        return task.chunk, 0, f"{type(exc).__name__}: {exc}", None


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
    merge: bool = True,
    **options: Any,
) -> BatchResult:
    """Assess a whole region in chunks, resumably, on local processes or a Dask cluster.

    Parameters
    ----------
    before, after : path or sequence of paths
        The tiles of each epoch (files, folders, VRTs); the epochs may differ in tiling
        and CRS.
    footprints : path or GeoDataFrame
        The region's footprints (GeoParquet, GeoPackage, GeoJSON, ...), read a batch at a time.
    folder : path
        Output folder: ``manifest.json``, ``fit.json``, ``footprints/`` (the selected
        footprints, in parts), ``chunks/``, the result dataset ``damage/part-<k>.parquet``
        (in input order) and, with ``merge``, ``damage.parquet`` and ``damage.geojson``.
        Running again with the same arguments resumes; other arguments are refused.
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
        :func:`damage.analysis.query.select`, never executed).
    aoi : path or GeoDataFrame, optional
        Keep only footprints that intersect this area.
    progress : bool
        Progress bar over chunks (with buildings done).
    merge : bool
        Also write the result as one ``damage.parquet`` and one ``damage.geojson`` (streamed:
        the memory is that of one part either way). A country's run may leave them out and
        read the dataset ``damage/``.
    **options
        Overrides of single :class:`Config` fields.

    Returns
    -------
    BatchResult
        Its ``result`` is read from the folder when first asked for.
    """
    cfg = (config or Config()).replace(**options)
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
    clock = Clock()
    with lock(folder):
        return _run(before, after, footprints, folder, cfg, chunk_size, workers, client, scheduler, where, aoi, progress,
                    merge, clock)


def _run(before, after, footprints, folder: Path, cfg: Config, chunk_size: int, workers: int, client: Any,
         scheduler: str | None, where: str | None, aoi: Any, progress: bool, merge: bool, clock: Clock) -> BatchResult:
    """The body of :func:`batch`, run while holding the folder's lock."""
    manifest_path = folder / "manifest.json"
    sig = signature(before, after, footprints, cfg.to_dict(), where, aoi, chunk_size)
    manifest = read_manifest(manifest_path)
    if manifest is not None and manifest["signature"] != sig:
        raise OutputError(f"{folder}: holds a run with other inputs or settings (or another library version); "
                          "use another folder or empty it")
    steps = method(cfg)
    parts_dir = folder / "footprints"

    # -- validate, plan and fit (once; reused on resume)
    fit_path = folder / "fit.json"  # data only: a run folder is never code (no pickle)
    if manifest is None or not fit_path.exists():
        source = "GeoDataFrame" if isinstance(footprints, gpd.GeoDataFrame) else str(footprints)
        area, opened_before, opened_after = remote_area(footprints, before, after, steps, cfg, aoi)
        rows = region_parts.PART_ROWS
        count, names = write_parts(FootprintStream(footprints, bbox=area), where, aoi, parts_dir, rows)
        plan = steps.plan(opened_before, opened_after, footprints_of(parts_dir, names), cfg, chunk_size, source)
        fit, _ = steps.fit(plan, progress)
        record = steps.record(plan, fit)
        with _atomic(fit_path) as tmp:
            steps.write_fit(fit, tmp)
            fit_sum = sha256_of(tmp)
        part_sums = label_parts(parts_dir, names, plan.placement)
        grid = plan.grid
        manifest = {
            "signature": sig,
            "version": __version__,
            "config": plan.config.to_dict(),
            "record": record,
            "grid": {"crs": grid.crs.to_string(), "transform": list(grid.transform)[:6], "shape": list(grid.shape)},
            "chunk_size": chunk_size,
            "chunks": plan.placement.counts(),
            "chunk_parts": chunk_parts(plan.placement, rows),
            "footprints": count,
            "parts": names,
            "part_rows": rows,
            "fit": fit.to_dict(),
            "failed": {},
            # what the run wrote, so that a file changed since (by hand, by a disk) is never used
            "sha256": {"fit.json": fit_sum, "footprints": part_sums, "chunks": {}},
        }
        manifest["plan_sha256"] = plan_digest(manifest)
        write_json(manifest, manifest_path)
        del plan
    else:
        check_written(folder, manifest["sha256"], ("fit.json",))
        check_written(parts_dir, manifest["sha256"]["footprints"], manifest["parts"])
        steps.read_fit(fit_path)  # a hand-edited or foreign fit is refused here, before any chunk uses it
    sums = manifest["sha256"]["chunks"]
    cfg = Config.from_dict(manifest["config"])
    for stale in (folder / "chunks").glob(".*.tmp.*"):  # left by a run killed while writing
        stale.unlink()
    for bad, why in check_chunks(folder, manifest["chunks"], sums):
        sums.pop(bad, None)
        if why == "unfinished":
            log.info("chunk %s was not finished by the previous run; redoing it", bad)
        else:
            log.warning("chunk %s: its file was changed or damaged since the run wrote it; redoing it", bad)
    todo = [c for c in manifest["chunks"] if not (folder / "chunks" / f"{c}.parquet").exists()]
    tasks = [_Task(c, before, after, str(folder), manifest["config"], str(fit_path), manifest["grid"],
                   tuple(manifest["chunk_parts"][c])) for c in todo]
    log.info("region: %d chunks, %d to do", len(manifest["chunks"]), len(tasks))
    failed: dict[str, str] = {}
    done = 0
    sizes = {str(k): int(v) for k, v in manifest["chunks"].items()}
    bar = tqdm(total=sum(sizes.values()), initial=sum(sizes.values()) - sum(sizes[c] for c in todo), disable=not progress,
               unit="building", desc="buildings")
    try:
        for chunk, _, error, digest in _execute(tasks, workers, client, scheduler):
            if error is None:
                done += 1
                sums[chunk] = digest
            else:
                failed[chunk] = error
                log.error("chunk %s failed: %s", chunk, error)
            manifest["failed"] = {**{k: v for k, v in manifest["failed"].items() if k != chunk}, **failed}
            write_json(manifest, manifest_path)
            bar.update(sizes.get(chunk, 0))
            bar.set_postfix(chunks=f"{done + len(failed)}/{len(tasks)}")
    finally:
        bar.close()
    # -- assemble a part at a time, with the region's record and the provenance of every input
    region = {"chunk_size": manifest["chunk_size"], "chunks": len(manifest["chunks"]), "failed": manifest["failed"]}
    record = {**manifest.get("record", {}), "region": region}
    provenance = steps.provenance(*steps.open(before, after, cfg), {"footprints": footprints, "aoi": aoi}, clock)
    merge_region(folder, manifest, steps, cfg, steps.read_fit(fit_path), record, {"provenance": provenance}, merge)
    return BatchResult(len(manifest["chunks"]), done, dict(manifest["failed"]), folder, list(manifest["parts"]), merge)


def _execute(tasks: list[_Task], workers: int, client: Any,
             scheduler: str | None) -> Iterable[tuple[str, int, str | None, str | None]]:
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
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures import as_completed as done
    from concurrent.futures.process import BrokenProcessPool

    with ProcessPoolExecutor(max_workers=workers, initializer=_watch_parent, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(run_chunk, t): t.chunk for t in tasks}
        try:
            for future in done(futures):
                try:
                    yield future.result()
                except BrokenProcessPool:
                    raise InputTooLargeError(
                        f"a worker process died while assessing chunk {futures[future]} (killed by the system, most often "
                        f"for lack of memory); the chunks already written are kept: run again with fewer --workers or a "
                        f"smaller --chunk-size") from None
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
