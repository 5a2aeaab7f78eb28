"""Scale benchmarks: zonal statistics against exactextract and rasterstats; assess against
read + warp; peak memory against raster size; region batches against workers.

Run by hand (not a test); every figure is a ratio to a reference measured in the same run:

    python benchmarks/scale.py zonal --raster 10000 --counts 1000,10000,100000
    python benchmarks/scale.py assess --sizes 2500,5000,10000
    python benchmarks/scale.py assess --sizes 6000 --footprints 10000,40000,100000
    python benchmarks/scale.py region --size 4000
    python benchmarks/scale.py steps --size 6000 --footprints 40000
    python benchmarks/scale.py client --counts 100000,1000000 [--no-merge]

``zonal``: one float32 raster and N non-overlapping footprints (8-20 m houses at 0.5 m);
our zonal mean (read the raster, burn label images, grouped reductions) against
``exactextract.exact_extract(raster, polygons, ["mean"])`` and ``rasterstats.zonal_stats``
(skipped above 10k footprints: minutes). Equality is checked against rasterstats,
which counts the pixels whose centres fall inside, as we do.

``assess``: a synthetic town tiled to SIZE x SIZE pixels, before in UTM, after in
EPSG:4326; in fresh processes, (1) merely read and warp both epochs onto the grid,
window by window, (2) ``damage.assess``; wall time, ratio, peak RSS (VmHWM, with
GDAL's cache capped at 64 MB).

``region``: ``damage.batch`` over a tiled town with 1 and 2 local workers and on a
2-worker Dask LocalCluster: buildings per second.

``steps``: ``damage.assess`` in one process under cProfile, the seconds of each step.

``client``: ``damage.batch`` over a generated city of N footprints 10 m apart, those on a
2000 px pair with imagery: the client's peak memory (VmHWM) and footprints per second.

``workers``: the same planned chunks timed one by one on 2 Dask workers and in a
2-process pool (to see where Dask's time goes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from affine import Affine

RES, ORIGIN, CRS = 0.5, (500_000.0, 4_100_000.0), "EPSG:32615"


def _peak_mb() -> float:
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")) / 1024


# -- zonal -------------------------------------------------------------------------------------
def _footprints(n: int, size: int, seed: int = 0) -> gpd.GeoDataFrame:
    """``n`` non-overlapping rectangles (8-20 m) on a jittered lattice over the raster."""
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    cell = size * RES / side
    i = np.arange(n)
    cx = ORIGIN[0] + (i % side + 0.5) * cell
    cy = ORIGIN[1] - (i // side + 0.5) * cell
    w = np.minimum(rng.uniform(8, 20, n), cell * 0.8)
    h = np.minimum(rng.uniform(8, 20, n), cell * 0.8)
    jx = rng.uniform(-1, 1, n) * (cell - w) * 0.4
    jy = rng.uniform(-1, 1, n) * (cell - h) * 0.4
    return gpd.GeoDataFrame(geometry=shapely.box(cx + jx - w / 2, cy + jy - h / 2, cx + jx + w / 2, cy + jy + h / 2), crs=CRS)


def zonal(raster_size: int, counts: list[int]) -> None:
    from exactextract import exact_extract
    from rasterstats import zonal_stats as rs_zonal

    from damage.geo.raster import Grid
    from damage.geo.zonal import zonal_stats, zones

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "values.tif"
        rng = np.random.default_rng(1)
        transform = Affine(RES, 0, ORIGIN[0], 0, -RES, ORIGIN[1])
        with rasterio.open(path, "w", driver="GTiff", width=raster_size, height=raster_size, count=1, dtype="float32",
                           crs=CRS, transform=transform, tiled=True) as ds:
            for r in range(0, raster_size, 1024):
                h = min(1024, raster_size - r)
                ds.write(rng.random((1, h, raster_size), dtype=np.float32), window=rasterio.windows.Window(0, r, raster_size, h))
        print(f"raster {raster_size} x {raster_size} float32\n")
        print("| footprints | ours s | exactextract s | rasterstats s | exactextract / ours | rasterstats / ours | "
              "max abs diff vs rasterstats | mean abs diff vs exactextract |")
        print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for n in counts:
            fp = _footprints(n, raster_size)
            t0 = time.perf_counter()
            with rasterio.open(path) as ds:
                values = ds.read(1)
            grid = Grid(rasterio.crs.CRS.from_string(CRS), transform, values.shape)
            zs = zones(np.asarray(fp.geometry.values), grid)
            ours = zonal_stats(zs, values, np.ones(values.shape, bool), ("mean",))["mean"]
            t_ours = time.perf_counter() - t0
            del values, zs
            t0 = time.perf_counter()
            ee = exact_extract(str(path), fp, ["mean"], output="pandas")["mean"].to_numpy()
            t_ee = time.perf_counter() - t0
            t_rs, diff_rs = float("nan"), float("nan")
            if n <= 10_000:
                t0 = time.perf_counter()
                rs = np.array([z["mean"] for z in rs_zonal(fp, str(path), stats=["mean"])], dtype=float)
                t_rs = time.perf_counter() - t0
                diff_rs = float(np.nanmax(np.abs(rs - ours)))
            diff_ee = float(np.nanmean(np.abs(ee - ours)))
            print(f"| {n:,} | {t_ours:.2f} | {t_ee:.2f} | {t_rs:.2f} | {t_ee / t_ours:.1f} | {t_rs / t_ours:.1f} | "
                  f"{diff_rs:.2e} | {diff_ee:.2e} |", flush=True)


# -- assess ------------------------------------------------------------------------------------
def _town_pair(folder: Path, size: int) -> tuple[Path, Path, Path]:
    """A 1000-px town tiled to ``size`` px; the after image reprojected to EPSG:4326 by GDAL."""
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    from damage.scenes.town import Nuisances, make_town

    tile = make_town(size=1000, seed=5, nuisances=Nuisances(shift=(0.6, -0.4)))
    reps = int(np.ceil(size / 1000))
    transform = Affine(RES, 0, ORIGIN[0], 0, -RES, ORIGIN[1])
    profile = {"driver": "GTiff", "count": 3, "dtype": "uint8", "crs": CRS, "tiled": True, "compress": "deflate"}
    before = np.tile(tile.before, (1, reps, reps))[:, :size, :size]
    with rasterio.open(folder / "before.tif", "w", width=size, height=size, transform=transform, **profile) as ds:
        ds.write(before)
    del before
    after = np.tile(tile.after, (1, reps, reps))[:, :size, :size]
    bounds = (ORIGIN[0], ORIGIN[1] - size * RES, ORIGIN[0] + size * RES, ORIGIN[1])
    dt, dw, dh = calculate_default_transform(CRS, "EPSG:4326", size, size, *bounds)
    with rasterio.open(folder / "after.tif", "w", width=dw, height=dh, transform=dt, **{**profile, "crs": "EPSG:4326"}) as ds:
        for r in range(0, dh, 2048):
            h = min(2048, dh - r)
            out = np.zeros((3, h, dw), np.uint8)
            reproject(after, out, src_transform=transform, src_crs=CRS, dst_transform=dt @ Affine.translation(0, r),
                      dst_crs="EPSG:4326", resampling=Resampling.cubic)
            ds.write(out, window=rasterio.windows.Window(0, r, dw, h))
    del after
    base = np.asarray(tile.footprints.geometry.values)
    geoms = [shapely.transform(base, lambda xy, dx=j * 1000 * RES, dy=-i * 1000 * RES: xy + [dx, dy])
             for i in range(reps) for j in range(reps)]
    fp = gpd.GeoDataFrame(geometry=np.concatenate(geoms), crs=CRS)
    fp = fp[shapely.within(fp.geometry.values, shapely.box(*bounds))]
    fp.to_file(folder / "footprints.gpkg")
    return folder / "before.tif", folder / "after.tif", folder / "footprints.gpkg"


def _child(mode: str, folder: Path) -> None:
    import damage
    from damage.geo.raster import Grid
    from damage.io.sources import open_epoch, read_footprints
    from damage.io.warp import common_grid, warp_epoch

    b, a, f = folder / "before.tif", folder / "after.tif", folder / "footprints.gpkg"
    t0 = time.perf_counter()
    if mode == "reproject":  # the reference: read both epochs, one GDAL warp of the after onto the before
        from rasterio.warp import Resampling, reproject

        with rasterio.open(b) as src:
            before = src.read()
            dst_t, dst_crs, shape = src.transform, src.crs, (src.height, src.width)
        with rasterio.open(a) as src:
            after = src.read()
            out = np.zeros((after.shape[0], *shape), np.float32)
            reproject(after.astype(np.float32), out, src_transform=src.transform, src_crs=src.crs, dst_transform=dst_t,
                      dst_crs=dst_crs, resampling=Resampling.bilinear)
        n = len(read_footprints(f))
        del before
    elif mode == "profile":
        import cProfile
        import pstats

        prof = cProfile.Profile()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prof.enable()
            n = len(damage.assess(b, a, f, workers=1))  # one process: the profile sees every step
            prof.disable()
        stats = pstats.Stats(prof, stream=sys.stderr).sort_stats("cumulative")
        stats.print_stats(45)
    elif mode == "read":
        fp = read_footprints(f)
        be, ae = open_epoch(b), open_epoch(a)
        grid = common_grid(be, ae, lambda crs: tuple(fp.to_crs(crs).total_bounds))
        step = 2048
        for r in range(0, grid.shape[0], step):
            for c in range(0, grid.shape[1], step):
                sub = Grid(grid.crs, grid.transform @ Affine.translation(c, r),
                           (min(step, grid.shape[0] - r), min(step, grid.shape[1] - c)))
                warp_epoch(be, sub, check_valid=False)
                warp_epoch(ae, sub, check_valid=False)
        n = len(fp)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            n = len(damage.assess(b, a, f))
    import resource

    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest worker process, MB
    print(json.dumps({"seconds": time.perf_counter() - t0, "peak_mb": _peak_mb(), "child_peak_mb": child, "footprints": n}))


def _run_child(mode: str, folder: Path, echo_stderr: bool = False) -> dict:
    env = {**os.environ, "GDAL_CACHEMAX": "64"}
    res = subprocess.run([sys.executable, __file__, "child", mode, str(folder)], capture_output=True, text=True, env=env)
    if res.returncode:
        raise RuntimeError(res.stderr[-2000:])
    if echo_stderr:
        print(res.stderr)
    return json.loads(res.stdout.strip().splitlines()[-1])


def assess(sizes: list[int], profile: bool = False, counts: list[int] | None = None, repeat: int = 1) -> None:
    """``counts``: instead of the town's own footprints, that many generated ones (a denser city) on the same pair.
    ``repeat``: our read+warp and assess run in turn that many times; medians, and the median of the pairs' ratios."""
    print("| size px | footprints | read + one reproject s | our read+warp s | assess s | assess / reproject | "
          "assess / our read+warp | assess peak MB (main process) | largest worker peak MB | assess us per footprint |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            _town_pair(folder, size)
            g = _run_child("reproject", folder)
            for count in counts or [None]:
                if count is not None:
                    _footprints(count, size).to_file(folder / "footprints.gpkg")
                pairs = [(_run_child("read", folder), _run_child("assess", folder)) for _ in range(repeat)]
                r_s = float(np.median([r["seconds"] for r, _ in pairs]))
                a_s = float(np.median([a["seconds"] for _, a in pairs]))
                ratio = float(np.median([a["seconds"] / r["seconds"] for r, a in pairs]))
                a = pairs[0][1]
                peak = max(p[1]["peak_mb"] for p in pairs)
                child = max(p[1].get("child_peak_mb", 0) for p in pairs)
                print(f"| {size:,} | {a['footprints']:,} | {g['seconds']:.1f} | {r_s:.1f} | {a_s:.1f} | "
                      f"{a_s / g['seconds']:.2f} | {ratio:.2f} | {peak:.0f} | {child:.0f} | "
                      f"{1e6 * a_s / a['footprints']:.0f} |", flush=True)
                if profile:
                    _run_child("profile", folder, echo_stderr=True)


# -- region ------------------------------------------------------------------------------------
def region(size: int, chunk: int) -> None:
    import damage

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        b, a, f = _town_pair(folder, size)
        print(f"region {size} x {size} px, chunks of {chunk} px\n")
        print("| runner | chunks | buildings | seconds | buildings / s |\n| --- | ---: | ---: | ---: | ---: |")
        runs = [("1 process", {"workers": 1}), ("2 processes", {"workers": 2}), ("Dask LocalCluster, 2 workers", None)]
        for name, kw in runs:
            out = folder / name.replace(" ", "_").replace(",", "")
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if kw is None:
                    from dask.distributed import Client, LocalCluster

                    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as cl, \
                            Client(cl) as client:
                        t0 = time.perf_counter()
                        res = damage.batch(b, a, f, out, chunk_size=chunk, client=client)
                else:
                    res = damage.batch(b, a, f, out, chunk_size=chunk, **kw)
            secs = time.perf_counter() - t0
            print(f"| {name} | {res.chunks} | {len(res.result):,} | {secs:.1f} | {len(res.result) / secs:.0f} |", flush=True)


# -- where assess spends its time, step by step -------------------------------------------------------------
#: The library's steps and the function each one is (its file under damage/ and its name).
STEPS = (("fit the scene", "run/scenefit.py", "fit_scene"), ("read and warp the windows", "run/measure.py", "read_window"),
         ("change map (SSIM, tolerance 1)", "optical/metrics.py", "combined"),
         ("building evidence", "optical/evidence.py", "building_evidence"),
         ("  of which each building's alignment", "optical/alignment.py", "best_alignment"),
         ("  of which CIELAB", "optical/evidence.py", "lab"),
         ("per-footprint statistics (zonal_stats)", "geo/zonal.py", "zonal_stats"))


def _steps_child(folder: Path) -> None:
    import cProfile
    import pstats

    import damage

    prof = cProfile.Profile()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        prof.enable()
        damage.assess(folder / "before.tif", folder / "after.tif", folder / "footprints.gpkg", workers=1)
        prof.disable()
        total = time.perf_counter() - t0
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    found = {name: sum(ct for (file, _, func), (_, _, _, ct, _) in stats.items()
                       if file.replace(os.sep, "/").endswith("damage/" + where) and func == func_name)
             for name, where, func_name in STEPS}
    print(json.dumps({"total": total, **found}))


def steps(size: int, count: int) -> None:
    """``damage.assess`` in one process under cProfile: the cumulative seconds of each step (:data:`STEPS`)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _town_pair(folder, size)
        _footprints(count, size).to_file(folder / "footprints.gpkg")
        res = subprocess.run([sys.executable, __file__, "steps-child", str(folder)], capture_output=True, text=True,
                             env={**os.environ, "GDAL_CACHEMAX": "64"})
        if res.returncode:
            raise RuntimeError(res.stderr[-2000:])
        found = json.loads(res.stdout.strip().splitlines()[-1])
    print(f"| step ({size:,} px, {count:,} footprints, one process) | s |\n| --- | ---: |")
    for name, value in found.items():
        print(f"| {name} | {value:.1f} |")


# -- the batch client's memory against the number of footprints ----------------------------------------
def _city(n: int, size: int, spacing: float = 10.0) -> gpd.GeoDataFrame:
    """``n`` houses (7 m squares) ``spacing`` m apart on a square lattice whose top-left corner is the
    pair's: the first ones cover the imagery, the rest lie beyond it (a country's footprints around a city)."""
    side = int(np.ceil(np.sqrt(n)))
    i = np.arange(n)
    cx = ORIGIN[0] + (i % side + 0.5) * spacing
    cy = ORIGIN[1] - (i // side + 0.5) * spacing
    return gpd.GeoDataFrame({"height": np.round(np.random.default_rng(0).uniform(3, 12, n), 1)},
                            geometry=shapely.box(cx - 3.5, cy - 3.5, cx + 3.5, cy + 3.5), crs=CRS)


def _client_child(folder: Path, workers: int, merge: bool) -> None:
    import damage

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        res = damage.batch(folder / "before.tif", folder / "after.tif", folder / "footprints.parquet", folder / "run",
                           workers=workers, merge=merge)
        secs = time.perf_counter() - t0
    peak = _peak_mb()  # before the result is read back for the counts below
    grades = res.read(["p_damaged"])
    print(json.dumps({"seconds": secs, "peak_mb": peak, "footprints": len(grades),
                      "analysed": int(grades["p_damaged"].notna().sum())}))


def client(counts: list[int], size: int, workers: int, merge: bool = True) -> None:
    """``damage.batch`` over a generated city of N footprints (10 m apart) of which those on a ``size`` px
    pair have imagery: the client's (main process's) peak memory and footprints per second."""
    print("| footprints | with imagery | batch s | footprints / s | client peak MB |\n| ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _town_pair(folder, size)
        for n in counts:
            _city(n, size).to_parquet(folder / "footprints.parquet", row_group_size=65_536)
            import shutil

            shutil.rmtree(folder / "run", ignore_errors=True)
            env = {**os.environ, "GDAL_CACHEMAX": "64"}
            res = subprocess.run([sys.executable, __file__, "client-child", str(folder), str(workers),
                                  "merge" if merge else "no-merge"], capture_output=True,
                                 text=True, env=env)
            if res.returncode:
                raise RuntimeError(res.stderr[-2000:])
            r = json.loads(res.stdout.strip().splitlines()[-1])
            print(f"| {r['footprints']:,} | {r['analysed']:,} | {r['seconds']:.1f} | {r['footprints'] / r['seconds']:,.0f} | "
                  f"{r['peak_mb']:.0f} |", flush=True)


# -- per-chunk time on Dask workers and pool processes ----------------------------------------------------
def _timed_chunk(task):
    import importlib

    run_chunk = importlib.import_module("damage.run.batch").run_chunk  # damage.batch is also the function
    t0 = time.perf_counter()
    chunk = run_chunk(task)[0]
    return os.getpid(), time.perf_counter() - t0, chunk


def workers(size: int, chunk: int) -> None:
    """Time each chunk of one planned region on 2 Dask workers and in a 2-process pool."""
    import importlib
    from concurrent.futures import ProcessPoolExecutor

    from dask.distributed import Client, LocalCluster, as_completed

    import damage

    batch_module = importlib.import_module("damage.run.batch")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        b, a, f = _town_pair(folder, size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            damage.batch(b, a, f, folder / "run", chunk_size=chunk)  # the plan, the fit and the files
        manifest = json.loads((folder / "run" / "manifest.json").read_text())
        tasks = [batch_module._Task(c, b, a, str(folder / "run"), manifest["config"], str(folder / "run" / "fit.json"),
                                    manifest["grid"]) for c in manifest["chunks"]]
        with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as cluster, \
                Client(cluster) as client:
            client.run(lambda: __import__("damage"))
            t0 = time.perf_counter()
            dask_runs = [fut.result() for fut in as_completed(client.map(_timed_chunk, tasks, pure=False))]
            dask_wall = time.perf_counter() - t0
        with ProcessPoolExecutor(2) as pool:
            t0 = time.perf_counter()
            pool_runs = list(pool.map(_timed_chunk, tasks))
            pool_wall = time.perf_counter() - t0
        print(f"{len(tasks)} chunks of {chunk} px over {size} px\n")
        print("| runner | processes used | wall s | seconds per chunk (min-max) |\n| --- | ---: | ---: | --- |")
        for name, runs, wall in (("Dask LocalCluster, 2 workers", dask_runs, dask_wall), ("process pool, 2", pool_runs, pool_wall)):
            secs = [r[1] for r in runs]
            print(f"| {name} | {len({r[0] for r in runs})} | {wall:.1f} | {min(secs):.2f}-{max(secs):.2f} |")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        _child(sys.argv[2], Path(sys.argv[3]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "steps-child":
        _steps_child(Path(sys.argv[2]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "client-child":
        _client_child(Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "merge")
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    z = sub.add_parser("zonal")
    z.add_argument("--raster", type=int, default=10_000)
    z.add_argument("--counts", default="1000,10000,100000")
    s = sub.add_parser("assess")
    s.add_argument("--sizes", default="2500,5000,10000")
    s.add_argument("--profile", action="store_true", help="also print a cProfile of assess (cumulative)")
    s.add_argument("--repeat", type=int, default=1, help="read+warp and assess in turn this many times (medians)")
    s.add_argument("--footprints", help="comma-separated counts of generated footprints on each pair (a denser city), "
                                        "instead of the town's own")
    r = sub.add_parser("region")
    r.add_argument("--size", type=int, default=4000)
    r.add_argument("--chunk", type=int, default=1024)
    t = sub.add_parser("steps")
    t.add_argument("--size", type=int, default=6000)
    t.add_argument("--footprints", type=int, default=40_000)
    c = sub.add_parser("client")
    c.add_argument("--counts", default="100000,1000000")
    c.add_argument("--size", type=int, default=2000)
    c.add_argument("--workers", type=int, default=2)
    c.add_argument("--no-merge", action="store_true", help="leave out damage.parquet and damage.geojson")
    w = sub.add_parser("workers")
    w.add_argument("--size", type=int, default=3000)
    w.add_argument("--chunk", type=int, default=1024)
    args = ap.parse_args()
    if args.what == "zonal":
        zonal(args.raster, [int(v) for v in args.counts.split(",")])
    elif args.what == "assess":
        assess([int(v) for v in args.sizes.split(",")], args.profile,
               [int(v) for v in args.footprints.split(",")] if args.footprints else None, args.repeat)
    elif args.what == "region":
        region(args.size, args.chunk)
    elif args.what == "steps":
        steps(args.size, args.footprints)
    elif args.what == "client":
        client([int(v) for v in args.counts.split(",")], args.size, args.workers, not args.no_merge)
    else:
        workers(args.size, args.chunk)


if __name__ == "__main__":
    main()
