"""Assess a before/after pair, print the damaged buildings, write GeoJSON.

    python examples/assess_pair.py sample_tiles/before sample_tiles/after \
        sample_tiles/footprints.geojson damage.geojson
"""

import sys

import damage

before, after, footprints, output = sys.argv[1:5]

result = damage.assess(before, after, footprints, polygons=True, progress=True)

print(result["damage_grade"].value_counts().to_string())
record = result.attrs["damage"]
print("registration:", record["registration"])
print("scene reference (steadiest blocks):", record["calibration"])

damaged = result[result["damage_grade"].isin(["major-damage", "destroyed"])]
columns = ["damage_grade", "p_damaged", "ssim_excess", "edge_excess", "ssim_contrast", "valid_fraction"]
print(damaged.sort_values("damage_score", ascending=False)[columns].head(20).to_string())

damage.write(result, output)
damage.write(result.attrs["damage_polygons"], output.replace(".geojson", "_polygons.geojson"))
print("wrote", output)
