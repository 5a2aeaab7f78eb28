"""Assess a region chunk by chunk, resumably; optionally on a Dask cluster.

    python examples/assess_region.py ../shared/data/joplin/pre ../shared/data/joplin/post \
        ../shared/data/joplin/footprints.geojson run_joplin/ [--workers 2] [--scheduler tcp://host:8786]

Kill it at any time and run the same command again: it resumes from the chunks that
are not done yet. The merged result is run_joplin/damage.parquet and damage.geojson.
"""

import argparse

import damage

ap = argparse.ArgumentParser()
ap.add_argument("before")
ap.add_argument("after")
ap.add_argument("footprints")
ap.add_argument("folder")
ap.add_argument("--chunk-size", type=int, default=1024)
ap.add_argument("--workers", type=int, default=1)
ap.add_argument("--scheduler", help="address of a Dask scheduler")
ap.add_argument("--where", help='keep footprints where this holds, e.g. "amenity == \'hospital\'"')
args = ap.parse_args()

out = damage.batch(args.before, args.after, args.footprints, args.folder, chunk_size=args.chunk_size,
                   workers=args.workers, scheduler=args.scheduler, where=args.where, progress=True)

print(f"{out.chunks} chunks ({out.done} assessed in this run); failed: {out.failed or 'none'}")
print(out.result["damage_grade"].value_counts().to_string())
fit = out.result.attrs["damage"]
print("registration:", fit["registration"])
print("scene reference (steadiest blocks):", fit["calibration"])
