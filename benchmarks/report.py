"""The report's budgets on the whole Joplin data with 20 named facilities.

Run by hand (not a test):

    python benchmarks/report.py [--data ../shared/data/joplin] [--out /tmp/joplin-report]

Measures, in one run: ``assess`` with facilities and no report (the reference), the
same with the report's chips kept (``chips``), writing the report, its size, and the
time headless Chromium takes to load it (``--dump-dom``) against loading an empty page
(the browser's own start-up, the reference for that figure). Writes the report,
the facilities table and a full-page screenshot to ``--out``.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np

import damage
from damage.report.html import write_report


def facilities(fp: gpd.GeoDataFrame, n: int = 20, seed: int = 0) -> gpd.GeoDataFrame:
    """``n`` named facilities: footprints spread over the area, each with 15 m of grounds."""
    utm = fp.to_crs(fp.estimate_utm_crs())
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(utm), size=n, replace=False)
    geoms = utm.geometry.iloc[pick].buffer(15).values
    return gpd.GeoDataFrame({"name": [f"Facility {i + 1:02d}" for i in range(n)]}, geometry=geoms,
                            crs=utm.crs).to_crs(fp.crs)


def load_seconds(page: Path) -> float:
    t = time.perf_counter()
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--proxy-server=127.0.0.1:9",
                    "--dump-dom", page.resolve().as_uri()], capture_output=True, check=True, timeout=180)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/joplin"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/joplin-report"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    fp = gpd.read_file(args.data / "footprints.geojson")
    # facilities among the footprints the imagery covers (a first pass tells which)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        plain = damage.assess(args.data / "pre", args.data / "post", fp)
        t_plain = time.perf_counter() - t
        fac = facilities(fp[(plain["damage_grade"] != "not-analysed").to_numpy()])
        fac.to_file(args.out / "facilities.geojson")
        t = time.perf_counter()
        ref = damage.assess(args.data / "pre", args.data / "post", fp, facilities=fac)
        t_ref = time.perf_counter() - t
        t = time.perf_counter()
        res = damage.assess(args.data / "pre", args.data / "post", fp, facilities=fac, chips=12)
        t_chips = time.perf_counter() - t
    t = time.perf_counter()
    page = write_report(res, args.out / "report.html", title="Joplin tornado, 22 May 2011: 20 facilities")
    t_write = time.perf_counter() - t
    damage.write(res.attrs["damage_facilities"], args.out / "facilities_graded.geojson")
    empty = args.out / "empty.html"
    empty.write_text("<!DOCTYPE html><html><body></body></html>")
    t_empty = min(load_seconds(empty) for _ in range(3))
    t_load = min(load_seconds(page) for _ in range(3))
    mb = page.stat().st_size / 1e6
    same = bool((ref["damage_grade"] == res["damage_grade"]).all())
    print(f"{len(fp)} footprints, {int((res['damage_grade'] != 'not-analysed').sum())} analysed, 20 facilities; "
          f"chips kept for {len(res.attrs['damage_chips'])} buildings; grades with and without chips identical: {same}")
    print("| step | seconds | against the reference |")
    print("| --- | ---: | --- |")
    print(f"| assess, no facilities | {t_plain:.1f} | |")
    print(f"| assess with facilities (reference) | {t_ref:.1f} | 1.00 |")
    print(f"| assess with facilities and chips | {t_chips:.1f} | {t_chips / t_ref:.2f} |")
    print(f"| write the report | {t_write:.1f} | {(t_chips - t_ref + t_write):.1f} s beyond the assessment (budget 10 s) |")
    print(f"| Chromium: load an empty page (reference) | {t_empty:.2f} | 1.00 |")
    print(f"| Chromium: load the report | {t_load:.2f} | {t_load / t_empty:.2f}; {t_load - t_empty:.2f} s beyond start-up "
          f"(budget 3 s) |")
    print(f"\nreport: {mb:.1f} MB (budget 15 MB) at {page}")
    if shutil.which("chromium"):
        subprocess.run(["python", str(Path(__file__).resolve().parent.parent / "tools" / "screenshot.py"), str(page), "-o",
                        str(args.out / "report.png")], check=True)


if __name__ == "__main__":
    main()
