"""The damaged count's interval, measured on real tiles graded by people (issue 25).

Run by hand (not a test), on a cache of the xBD dev run:

    python benchmarks/accuracy.py xbd --cache rows.parquet        # every building of the 39 dev tiles
    python benchmarks/count.py rows.parquet                       # tables: per tile, LOEO and in-sample
    python benchmarks/count.py rows.parquet --write               # also write damage/analysis/count_calibration.json

Per tile (analysed buildings only, as the run counts them): the graded share ``s`` (major
damage or destroyed), the people's share ``t``, and the interval of
:func:`damage.analysis.count.count_interval`, calibrated on the other events' tiles
(leave-one-event-out: the figure that says how it does on an event it never saw) and on all
tiles (in-sample: the calibration shipped). "modelled" is the run record's interval before
this change (``count_low``/``count_high`` of the cache: a scene offset of 2.9 logits propagated
through every building).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from damage.analysis.count import CALIBRATION_FILE, CountCalibration, conformal_quantiles, count_interval

DAMAGED = ("major-damage", "destroyed")
TAU = 0.1
TAILS = (0.02, 0.08)
SOURCE = "xBD development tiles, Gupta et al. 2019"


def per_tile(rows: pd.DataFrame, method: str = "default") -> pd.DataFrame:
    """One row per tile: event, analysed, graded damaged, people's damaged, the modelled interval."""
    part = rows[(rows["method"] == method) & (rows["damage_grade"] != "not-analysed")]
    out = []
    for tile, f in part.groupby("tile", sort=True):
        out.append({"tile": tile, "event": f["event"].iloc[0], "n": len(f),
                    "graded": int(f["damage_grade"].isin(DAMAGED).sum()), "people": int((f["ref_grade"] >= 2).sum()),
                    "modelled_low": float(f["count_low"].iloc[0]) if "count_low" in f else np.nan,
                    "modelled_high": float(f["count_high"].iloc[0]) if "count_high" in f else np.nan,
                    "modelled_expected": float(f["count_expected"].iloc[0]) if "count_expected" in f else np.nan})
    return pd.DataFrame(out)


def fit(tiles: pd.DataFrame) -> CountCalibration:
    lo, hi = conformal_quantiles(tiles["graded"], tiles["people"], tiles["n"], TAU, TAILS)
    return CountCalibration(lo, hi, TAU, 1 - sum(TAILS), TAILS, len(tiles), tuple(sorted(tiles["event"].unique())), SOURCE)


def intervals(tiles: pd.DataFrame, loeo: bool) -> pd.DataFrame:
    """Each tile's estimate and interval, calibrated on the other events' tiles (``loeo``) or on all."""
    out = []
    everything = fit(tiles)
    for _, r in tiles.iterrows():
        cal = fit(tiles[tiles["event"] != r["event"]]) if loeo else everything
        c = count_interval(int(r["graded"]), int(r["n"]), cal)
        out.append({"estimate": c["estimate"], "low": c["low"], "high": c["high"]})
    return pd.concat([tiles.reset_index(drop=True), pd.DataFrame(out)], axis=1)


def summary(t: pd.DataFrame, low: str = "low", high: str = "high", estimate: str = "estimate") -> dict[str, float]:
    n = t["n"].to_numpy(float)
    covered = (t[low] <= t["people"]) & (t["people"] <= t[high])
    return {"tiles": len(t), "coverage": float(covered.mean()), "median_width": float(np.median((t[high] - t[low]) / n)),
            "mean_abs_error": float(np.mean(np.abs(t[estimate] - t["people"]) / n))}


def table(t: pd.DataFrame, low: str = "low", high: str = "high", estimate: str = "estimate") -> str:
    lines = ["| events | tiles | coverage | median width | mean abs. error |", "| --- | ---: | ---: | ---: | ---: |"]
    groups = [(e, g) for e, g in t.groupby("event", sort=True)] + [("**pooled**", t)]
    for name, g in groups:
        s = summary(g, low, high, estimate)
        lines.append(f"| {name} | {s['tiles']} | {s['coverage']:.0%} | {s['median_width']:.0%} | {s['mean_abs_error']:.1%} |")
    return "\n".join(lines)


def tile_table(loeo: pd.DataFrame, insample: pd.DataFrame) -> str:
    lines = ["| tile | analysed | graded share | people's share | estimate | LOEO interval | covered | in-sample interval "
             "| covered | modelled interval (before) |",
             "| --- | ---: | ---: | ---: | ---: | --- | --- | --- | --- | --- |"]
    for (_, a), (_, b) in zip(loeo.iterrows(), insample.iterrows()):
        ok = a["low"] <= a["people"] <= a["high"]
        ok2 = b["low"] <= b["people"] <= b["high"]
        lines.append(f"| {a['tile']} | {a['n']} | {a['graded'] / a['n']:.2f} | {a['people'] / a['n']:.2f} | {a['estimate']} | "
                     f"{a['low']}-{a['high']} | {'yes' if ok else 'NO'} | {b['low']}-{b['high']} | {'yes' if ok2 else 'NO'} | "
                     f"{a['modelled_low']:.0f}-{a['modelled_high']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cache", type=Path, help="parquet written by benchmarks/accuracy.py xbd --cache")
    ap.add_argument("--write", action="store_true", help=f"write damage/analysis/{CALIBRATION_FILE}")
    args = ap.parse_args(argv)
    tiles = per_tile(pd.read_parquet(args.cache))
    loeo, insample = intervals(tiles, True), intervals(tiles, False)
    print("## Per tile\n")
    print(tile_table(loeo, insample))
    print("\n## Leave one event out (calibrated on the other events' tiles)\n")
    print(table(loeo))
    print("\n## In-sample (calibrated on all tiles: the shipped calibration)\n")
    print(table(insample))
    if tiles["modelled_low"].notna().all():
        before = tiles.assign(estimate=tiles["modelled_expected"])
        print("\n## Before: the modelled interval (scene offset of 2.9 logits through every building), its expected value\n")
        print(table(before, "modelled_low", "modelled_high", "estimate"))
    cal = fit(tiles)
    print(f"\ncalibration on all tiles: q_low {cal.q_low:.3f}, q_high {cal.q_high:.3f} (tau {TAU}, tails {TAILS})")
    if args.write:
        doc = {
            "about": "damage.analysis.count: split-conformal calibration of the damaged count, written by "
                     "benchmarks/count.py from a cache of benchmarks/accuracy.py xbd (the default model, no labels)",
            "calibration": cal.to_dict(),
            "leave_one_event_out": summary(loeo),
            "in_sample": summary(insample),
            "tiles": [{"tile": r["tile"], "event": r["event"], "analysed": int(r["n"]), "graded": int(r["graded"]),
                       "people": int(r["people"])} for _, r in tiles.iterrows()],
        }
        path = Path(__file__).resolve().parent.parent / "damage" / "analysis" / CALIBRATION_FILE
        path.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
