"""PWTT benchmarks: accuracy against stack length and speckle, and speed/memory of the stream.

Run by hand (not a test):

    python benchmarks/pwtt.py accuracy                 # ~1 min
    python benchmarks/pwtt.py speed --size 10000 --images 24   # writes 24 x 800 MB to a temp dir

``accuracy`` assesses generated Sentinel-1-like stacks (:mod:`damage.scenes.sarsim`) with
known damage and prints AUC of damage_score and binary F1 at the published threshold
(mean |t| > 3.3), with and without the published focal smoothing.

``speed`` writes a stack of ``--images`` float32 VV/VH images of ``--size`` pixels
square, then, each in a fresh process, (1) merely reads every image window by window
(the reference) and (2) runs ``damage.assess(method="pwtt")``; it prints wall time,
the ratio of the two, and each process's peak resident memory (VmHWM), both with
GDAL's block cache capped at 64 MB.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import damage
from damage.scenes.sarsim import make_sar_stack, write_stack


def _truth(stack):
    return stack.footprints.rename(columns={"true_grade": "grade"})[["grade", "geometry"]]


def accuracy(size: int, seeds: int) -> None:
    rows = []
    cases = [(f"{nb} before / {na} after, {looks} looks", dict(n_before=nb, n_after=na, looks=looks), {})
             for looks in (4.4,) for nb in (1, 3, 6, 12) for na in (1, 3)]
    cases += [(f"6 / 3, {looks} looks", dict(looks=looks), {}) for looks in (1.0, 2.0, 10.0)]
    cases += [
        ("6 / 3, two orbits (incidence)", dict(incidence=True), {}),
        ("6 / 3, two orbits, by_orbit", dict(incidence=True), {"by_orbit": True}),
        ("12 / 4, two orbits, by_orbit", dict(incidence=True, n_before=12, n_after=4), {"by_orbit": True}),
        ("6 / 3, a wet-soil date", dict(wet_date=2), {}),
        ("6 / 3, one corrupted acquisition", dict(corrupted=1), {}),
    ]
    print(f"damage {damage.__version__}; scenes {size} px at 10 m, {seeds} seed(s) each, mean over seeds\n")
    print("| stack | smoothing | AUC | F1 at t>3.3 | precision | recall | seconds |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for name, kw, opts in cases:
            for smooth in (True, False):
                aucs, f1s, ps, rs, secs = [], [], [], [], []
                for seed in range(seeds):
                    s = make_sar_stack(size=size, seed=100 + seed, **kw)
                    b, a, f = write_stack(s, Path(tmp) / f"{len(list(Path(tmp).iterdir()))}")
                    t0 = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        r = damage.assess(b, a, f, method="pwtt", **opts, smoothing_radii=(50.0, 100.0, 150.0) if smooth else ())
                    secs.append(time.perf_counter() - t0)
                    ev = damage.evaluate(r, _truth(s))
                    aucs.append(ev.auc)
                    f1s.append(ev.binary["f1"])
                    ps.append(ev.binary["precision"])
                    rs.append(ev.binary["recall"])
                label = "50/100/150 m" if smooth else "none"
                print(f"| {name} | {label} | {np.mean(aucs):.3f} | {np.mean(f1s):.3f} | {np.mean(ps):.3f} | "
                      f"{np.mean(rs):.3f} | {np.mean(secs):.2f} |", flush=True)
                rows.append((name, label, np.mean(aucs), np.mean(f1s)))


# -- speed -------------------------------------------------------------------------------
def _write_big(folder: Path, size: int, images: int, block: int = 1024) -> tuple[Path, Path, Path]:
    import geopandas as gpd
    import rasterio
    import shapely
    from affine import Affine

    rng = np.random.default_rng(0)
    transform = Affine(10.0, 0, 600_000.0, 0, -10.0, 3_600_000.0)
    profile = {"driver": "GTiff", "count": 2, "dtype": "float32", "height": size, "width": size, "crs": "EPSG:32636",
               "transform": transform, "tiled": True, "blockxsize": 512, "blockysize": 512}
    event = datetime.date(2023, 10, 7)
    for k in range(images):
        side = "before" if k < images * 2 // 3 else "after"
        (folder / side).mkdir(parents=True, exist_ok=True)
        date = event + datetime.timedelta(days=12 * (k - images * 2 // 3 + (1 if side == "after" else 0)))
        with rasterio.open(folder / side / f"S1_87_{date:%Y%m%d}.tif", "w", **profile) as ds:
            ds.update_tags(ACQUISITION_DATE=date.isoformat(), SAR_UNITS="power")
            for r in range(0, size, block):
                for c in range(0, size, block):
                    h, w = min(block, size - r), min(block, size - c)
                    mean = np.array([0.06, 0.012])[:, None, None]
                    ds.write(rng.gamma(4.4, 1 / 4.4, (2, h, w)).astype(np.float32) * mean,
                             window=rasterio.windows.Window(c, r, w, h))
    # 10,000 footprints of 20 x 20 m spread over the scene
    n_side = 100
    step = size * 10.0 / n_side
    xs, ys = np.meshgrid(np.arange(n_side) * step + 600_000 + step / 2, 3_600_000 - np.arange(n_side) * step - step / 2)
    boxes = shapely.box(xs.ravel() - 10, ys.ravel() - 10, xs.ravel() + 10, ys.ravel() + 10)
    gpd.GeoDataFrame(geometry=boxes, crs="EPSG:32636").to_file(folder / "fp.gpkg")
    return folder / "before", folder / "after", folder / "fp.gpkg"


def _child(mode: str, folder: Path, window: int) -> None:
    import rasterio

    t0 = time.perf_counter()
    if mode == "read":
        for path in sorted(folder.glob("*/*.tif")):
            with rasterio.open(path) as ds:
                for r in range(0, ds.height, window):
                    for c in range(0, ds.width, window):
                        ds.read(window=rasterio.windows.Window(c, r, min(window, ds.width - c), min(window, ds.height - r)))
    else:
        damage.assess(folder / "before", folder / "after", folder / "fp.gpkg", method="pwtt", window=window)
    seconds = time.perf_counter() - t0
    hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
    print(json.dumps({"seconds": seconds, "peak_mb": hwm / 1024}))


def speed(size: int, images: int, window: int, keep: str | None) -> None:
    with tempfile.TemporaryDirectory(dir=keep) as tmp:
        folder = Path(tmp)
        t0 = time.perf_counter()
        _write_big(folder, size, images)
        print(f"wrote {images} images of {size} x {size} x 2 float32 in {time.perf_counter() - t0:.0f} s")
        out = {}
        for mode in ("read", "assess"):
            # GDAL's block cache (5 % of RAM by default) would grow with what is read
            # and hide the memory of the code itself; both children get the same 64 MB.
            env = {**os.environ, "GDAL_CACHEMAX": "64"}
            res = subprocess.run([sys.executable, __file__, "child", mode, str(folder), str(window)],
                                 capture_output=True, text=True, check=True, env=env)
            out[mode] = json.loads(res.stdout.strip().splitlines()[-1])
        print("\n| step | seconds | x read | peak RSS MB |\n| --- | ---: | ---: | ---: |")
        for mode in ("read", "assess"):
            print(f"| {mode} | {out[mode]['seconds']:.1f} | {out[mode]['seconds'] / out['read']['seconds']:.2f} | "
                  f"{out[mode]['peak_mb']:.0f} |")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        _child(sys.argv[2], Path(sys.argv[3]), int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    a = sub.add_parser("accuracy")
    a.add_argument("--size", type=int, default=160)
    a.add_argument("--seeds", type=int, default=3)
    s = sub.add_parser("speed")
    s.add_argument("--size", type=int, default=10_000)
    s.add_argument("--images", type=int, default=24)
    s.add_argument("--window", type=int, default=1024)
    s.add_argument("--tmp", help="folder for the temporary stack (default: the system's)")
    args = ap.parse_args()
    if args.what == "accuracy":
        accuracy(args.size, args.seeds)
    else:
        speed(args.size, args.images, args.window, args.tmp)


if __name__ == "__main__":
    main()
