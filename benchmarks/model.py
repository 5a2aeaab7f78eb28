"""Speed of a learned model (issue 28): the sample tiles with a small generated network, against the same run
without a model, measured in the same run, alternating, each in a fresh process.

Run by hand (not a test):

    python benchmarks/model.py [--repeat 3] [--width 16] [--layers 3] [--tile 512]

The network (:func:`damage.scenes.onnx_models.conv_model`: both epochs and their difference, ``--layers``
3 x 3 convolutions of ``--width`` channels, random weights) stands in for a real one's cost per pixel; a
real xView2 network costs far more per pixel (ratio it by its FLOPs). Prints each run's wall time and the
ratio with / without, pair by pair, and the median ratio.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_tiles"

RUN = """
import sys, warnings
warnings.simplefilter("ignore")
import damage
kw = {} if sys.argv[1] == "-" else {"model": sys.argv[1], "model_tile": int(sys.argv[2])}
damage.assess(r"%s", r"%s", r"%s", **kw)
""" % (SAMPLE / "before", SAMPLE / "after", SAMPLE / "footprints.geojson")


def _time(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", RUN, *args], check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--tile", type=int, default=512)
    args = ap.parse_args()
    from damage.scenes.onnx_models import conv_model

    with tempfile.TemporaryDirectory() as tmp:
        path = conv_model(Path(tmp) / "conv.onnx", width=args.width, layers=args.layers)
        ratios = []
        print("| pair | without model (s) | with model (s) | ratio |")
        print("| --- | --- | --- | --- |")
        for k in range(args.repeat):
            without = _time(["-", "0"])
            with_model = _time([str(path), str(args.tile)])
            ratios.append(with_model / without)
            print(f"| {k + 1} | {without:.2f} | {with_model:.2f} | {ratios[-1]:.2f} |")
        print(f"\nmedian ratio {statistics.median(ratios):.2f} (network: {args.layers} layers of {args.width} channels, "
              f"tile {args.tile})")


if __name__ == "__main__":
    main()
