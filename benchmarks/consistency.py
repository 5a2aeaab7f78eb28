"""The same building, the same answer: ``assess`` against ``batch`` at several chunk sizes.

Run by hand (not a test):

    python benchmarks/consistency.py [--data ../shared/data/joplin] [--chunks 512,2048] [--workers 1]

Assesses the pair once with :func:`damage.assess` and once with :func:`damage.batch` per
chunk size, and reports, against ``assess``, how many buildings get another grade,
another analysed / not-analysed status, and the largest difference of ``damage_score``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import damage


def compare(ref, other) -> dict:
    g0, g1 = ref["damage_grade"].to_numpy(), other["damage_grade"].to_numpy()
    s0, s1 = ref["damage_score"].to_numpy(float), other["damage_score"].to_numpy(float)
    both = np.isfinite(s0) & np.isfinite(s1)
    return {
        "analysed": int(np.isfinite(s1).sum()),
        "grade differs": int((g0 != g1).sum()),
        "status differs": int((np.isfinite(s0) != np.isfinite(s1)).sum()),
        "score differs": int((both & (s0 != s1)).sum()),
        "max |score diff|": float(np.abs(s0[both] - s1[both]).max()) if both.any() else 0.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/joplin")
    ap.add_argument("--chunks", default="512,2048")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    data = Path(args.data)
    before, after, fp = data / "pre", data / "post", data / "footprints.geojson"
    t = time.perf_counter()
    ref = damage.assess(before, after, fp)
    rows = [("assess", time.perf_counter() - t, compare(ref, ref))]
    for chunk in (int(c) for c in args.chunks.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            res = damage.batch(before, after, fp, tmp, chunk_size=chunk, workers=args.workers).result
            rows.append((f"batch chunk {chunk}, {args.workers} worker(s)", time.perf_counter() - t, compare(ref, res)))
    keys = list(rows[0][2])
    print(f"{len(ref)} footprints in {data}")
    print("| run | seconds | " + " | ".join(keys) + " |")
    print("|---|---:|" + "---:|" * len(keys))
    for name, sec, d in rows:
        print(f"| {name} | {sec:.1f} | " + " | ".join(f"{d[k]:.4g}" if isinstance(d[k], float) else str(d[k]) for k in keys) + " |")


if __name__ == "__main__":
    main()
