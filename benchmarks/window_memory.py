"""Peak memory of one window per pixel: what ``damage.run.plan.WINDOW_BYTES_PER_PIXEL`` rests on.

Run by hand (not a test):

    python benchmarks/window_memory.py --sizes 800,1600
    python benchmarks/window_memory.py --finer 4 --sizes 2400   # memory vs the after image's pixel size

For each size, a generated town of that many pixels a side is written to a temporary folder,
then assessed in one window (``max_pixels=None``, one process) in a fresh process. Reported:
peak resident memory above the process's start, per grid pixel, and as a ratio to the
reference measured in the same run: the bytes of the two epochs' pixels as float32 (what
any method holds to compare them). The slope between two sizes removes the fixed costs.

With ``--finer K`` the same town is assessed with default settings (windows) twice: with
the after image as generated and with it written at K times finer pixels (each pixel
repeated K x K times: the same picture, K² times the pixels). The ratio of the two peaks
says whether memory follows the source resolution or the grid.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys, warnings
warnings.simplefilter("ignore")
import damage
b, a, f = sys.argv[1:4]
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
damage.assess(b, a, f, max_pixels=None, workers=1)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"base": base, "peak": peak}))
"""

FINER = """
import json, resource, sys, warnings
warnings.simplefilter("ignore")
import damage
b, a, f = sys.argv[1:4]
damage.assess(b, a, f, workers=1)
print(json.dumps({"peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))
"""

UPSAMPLE = """
import sys, numpy as np, rasterio
src, dst, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
with rasterio.open(src) as ds:
    profile, pixels = ds.profile, ds.read()
t = profile["transform"]
profile.update(width=pixels.shape[2] * k, height=pixels.shape[1] * k, tiled=True, blockxsize=256, blockysize=256,
               transform=rasterio.Affine(t.a / k, t.b, t.c, t.d, t.e / k, t.f))
with rasterio.open(dst, "w", **profile) as ds:
    for r in range(0, pixels.shape[1], 256):
        block = np.repeat(np.repeat(pixels[:, r:r + 256], k, axis=1), k, axis=2)
        ds.write(block, window=rasterio.windows.Window(0, r * k, block.shape[2], block.shape[1]))
"""


def finer(size: int, k: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "town"
        subprocess.run([sys.executable, "-c", "import sys; from damage.scenes.town import make_town; "
                        "from damage.scenes.synthetic import write_pair; "
                        f"write_pair(make_town(size={size}, seed=1), sys.argv[1])", str(folder)], check=True)
        subprocess.run([sys.executable, "-c", UPSAMPLE, str(folder / "after.tif"), str(folder / "after_fine.tif"), str(k)],
                       check=True)
        peaks = {}
        for name in ("after.tif", "after_fine.tif"):
            out = subprocess.run([sys.executable, "-c", FINER, str(folder / "before.tif"), str(folder / name),
                                  str(folder / "footprints.geojson")], check=True, capture_output=True, text=True)
            peaks[name] = json.loads(out.stdout.strip().splitlines()[-1])["peak"]
    print("| town px | after pixels | peak MB | / same-resolution after |")
    print("| ---: | --- | ---: | ---: |")
    print(f"| {size:,} | as the grid | {peaks['after.tif'] / 2**20:,.0f} | 1.00 |")
    print(f"| {size:,} | {k}x finer ({k * k}x the pixels) | {peaks['after_fine.tif'] / 2**20:,.0f} | "
          f"{peaks['after_fine.tif'] / peaks['after.tif']:.2f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="800,1600", help="comma-separated sides in pixels")
    ap.add_argument("--finer", type=int, help="compare an after image of K times finer pixels (first size)")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if args.finer:
        return finer(sizes[0], args.finer)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            folder = Path(tmp) / f"town{n}"
            subprocess.run([sys.executable, "-c", "import sys; from damage.scenes.town import make_town; "
                            "from damage.scenes.synthetic import write_pair; "
                            f"write_pair(make_town(size={n}, seed=1), sys.argv[1])", str(folder)], check=True)
            out = subprocess.run([sys.executable, "-c", CHILD, *(str(folder / x) for x in
                                  ("before.tif", "after.tif", "footprints.geojson"))],
                                 check=True, capture_output=True, text=True)
            m = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append((n, m["peak"] - m["base"]))
    reference = 2 * 3 * 4  # two epochs, three bands, float32
    print("| side px | peak above start MB | bytes per pixel | / two float32 epochs |")
    print("| ---: | ---: | ---: | ---: |")
    for n, extra in rows:
        print(f"| {n:,} | {extra / 2**20:,.0f} | {extra / n / n:,.0f} | {extra / n / n / reference:.1f} |")
    if len(rows) > 1:
        (n0, e0), (n1, e1) = rows[0], rows[-1]
        slope = (e1 - e0) / (n1 * n1 - n0 * n0)
        print(f"\nslope {n0:,} -> {n1:,} px: {slope:,.0f} bytes per pixel ({slope / reference:.1f} x two float32 epochs)")


if __name__ == "__main__":
    main()
