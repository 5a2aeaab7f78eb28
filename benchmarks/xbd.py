"""Accuracy on real imagery graded by people: the xBD development tiles.

Run by hand (not a test); reads ``../shared/data/xbd-dev`` (never copied into the repo):

    python benchmarks/accuracy.py xbd                    # default method and naive baseline
    python benchmarks/accuracy.py xbd --cache rows.parquet   # also keep every building's evidence

Every tile is assessed with its own footprints (so row ``i`` of the result is label ``i``)
by each method; the table gives, per event and pooled over all tiles (and pooled without
the fire event that holds most of the damaged buildings): buildings, ROC AUC of
``damage_score`` for "damaged" (major-damage or destroyed), binary F1 of the grades,
xView2's harmonic mean of the four classes' F1, the share of no-damage buildings graded
major-damage or worse, and the share not analysed. The naive baseline (histogram matching,
mean absolute colour difference) is ranked by its colour difference (``absdiff_mean``)
and has no grades of its own; "best F1" is the F1 at the best threshold on the score
(an oracle: the ceiling of any cut, judged on the same buildings).
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

import damage
from damage.analysis.evaluate import binary_scores, class_scores, roc_auc

LEVELS = ("no-damage", "minor-damage", "major-damage", "destroyed")
DOMINANT = "santa-rosa-wildfire"
DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "xbd-dev"
#: naive: histogram matching and mean absolute colour difference, nothing else
BASELINE = dict(normalize="histogram", metrics={"absdiff": 1.0}, shift_tolerance=0, cloud_mask=False)


def tiles(data: Path = DATA) -> list[dict]:
    """The tile records of ``tiles.json`` whose folder is present."""
    records = json.loads((data / "tiles.json").read_text())
    return [r for r in records if (data / r["tile"] / "before.tif").exists()]


def assess_tiles(methods: dict[str, damage.Config], data: Path = DATA, only: str | None = None) -> pd.DataFrame:
    """One row per (method, building): event, tile, reference grade and every output column."""
    rows = []
    for rec in tiles(data):
        if only and not any(o in rec["tile"] for o in only.split(",")):
            continue
        folder = data / rec["tile"]
        fp = gpd.read_file(folder / "footprints.geojson")
        for name, cfg in methods.items():
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = damage.assess(folder / "before.tif", folder / "after.tif", fp, cfg)
            frame = pd.DataFrame(res.drop(columns=res.geometry.name))
            frame["method"], frame["event"], frame["tile"] = name, rec["disaster"], rec["tile"]
            frame["seconds"] = time.perf_counter() - t0
            frame["cloud_share"] = res.attrs["damage"].get("clouds", {}).get("cloud_share", 0.0)
            for key, value in scene_record(res.attrs["damage"]).items():
                frame[key] = value
            for key, value in res.attrs["damage"].get("scene_offset", {}).get("descriptors", {}).items():
                frame[f"scene_{key}"] = np.nan if value is None else value
            frame["scene_offset_predicted"] = res.attrs["damage"].get("scene_offset", {}).get("predicted", np.nan)
            count = res.attrs["damage"].get("damaged_count", {})
            frame["count_expected"], frame["count_low"], frame["count_high"] = (
                count.get("expected", np.nan), count.get("low", np.nan), count.get("high", np.nan))
            rows.append(frame)
        print(f"  {rec['tile']}: {len(fp)} buildings", flush=True)
    return pd.concat(rows, ignore_index=True)


def scene_record(record: dict) -> dict[str, float]:
    """What a run record says of the scene (not of its buildings), flattened to ``scene_*`` numbers."""
    out: dict[str, float] = {}

    def walk(prefix: str, value) -> None:
        if isinstance(value, bool):
            return
        if isinstance(value, (int, float)):
            out[prefix] = float(value)
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}_{k}", v)
        elif isinstance(value, list) and value and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            out[prefix] = float(np.mean(value))

    for key in ("calibration", "normalization", "registration", "scene_stats", "clouds"):
        walk(f"scene_{key}", record.get(key, {}))
    out["scene_resolution"] = float(record.get("grid", {}).get("resolution", float("nan")))
    return out


#: Score column per method: the naive baseline is ranked by its own colour difference, and has no grades.
SCORE_COLUMN = {"baseline": "absdiff_mean"}


def best_f1(truth: np.ndarray, score: np.ndarray) -> float:
    """F1 of "damaged" at the best threshold on ``score`` (an oracle: the ceiling of any cut)."""
    keep = np.isfinite(score)
    truth, score = truth[keep], score[keep]
    if truth.sum() == 0:
        return float("nan")
    order = np.argsort(-score, kind="stable")
    tp, fp = np.cumsum(truth[order]), np.cumsum(~truth[order])
    last = np.r_[score[order][1:] != score[order][:-1], True]
    return float((2 * tp / (tp + fp + truth.sum()))[last].max())


def scores(frame: pd.DataFrame, score: str = "damage_score", grade: str = "damage_grade") -> dict[str, float]:
    """The table's measures for one set of rows (one method)."""
    truth = frame["ref_grade"].to_numpy().astype(int)
    if score not in frame or frame[score].isna().all():
        score = "damage_score"
    analysed = (frame[grade] != "not-analysed").to_numpy() & np.isfinite(frame[score].to_numpy(dtype=float))
    t, g = truth[analysed], frame[grade].to_numpy()[analysed]
    pred = np.array([LEVELS.index(v) for v in g], dtype=int)
    conf = np.zeros((4, 4), dtype=np.int64)
    np.add.at(conf, (t, pred), 1)
    _, harmonic = class_scores(conf, LEVELS)
    damaged = t >= 2
    bi = binary_scores(damaged, pred >= 2)
    intact = t == 0
    return {
        "buildings": len(frame),
        "damaged": int((truth >= 2).sum()),
        "auc": roc_auc(damaged, frame[score].to_numpy()[analysed]),
        "best_f1": best_f1(damaged, frame[score].to_numpy(dtype=float)[analysed]),
        "f1": bi["f1"] if damaged.any() else float("nan"),
        "hm_f1": harmonic,
        "intact_major": float((pred[intact] >= 2).mean()) if intact.any() else float("nan"),
        "not_analysed": float(1 - analysed.mean()),
    }


def groups(frame: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """Per event, then pooled, then pooled without the dominant fire event."""
    out = [(e, f) for e, f in frame.groupby("event", sort=True)]
    out.append(("**pooled**", frame))
    out.append((f"pooled without {DOMINANT}", frame[frame["event"] != DOMINANT]))
    return out


def _fmt(v: float, spec: str = ".3f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def table(frame: pd.DataFrame, methods: list[str], score: str = "damage_score", grade: str = "damage_grade") -> str:
    """Markdown table: one row per group and method."""
    lines = [
        "| events | buildings (damaged) | method | AUC | F1 damaged | best F1 (oracle) | 4-class hm F1 | intact called major+ | not analysed |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, f in groups(frame):
        for m in methods:
            part = f[f["method"] == m]
            if part.empty:
                continue
            r = scores(part, SCORE_COLUMN.get(m, score), grade)
            if m in SCORE_COLUMN:  # no grades of its own
                r["f1"] = r["hm_f1"] = r["intact_major"] = float("nan")
            lines.append(
                f"| {name} | {r['buildings']} ({r['damaged']}) | {m} | {_fmt(r['auc'])} | {_fmt(r['f1'])} | {_fmt(r['best_f1'])} | "
                f"{_fmt(r['hm_f1'])} | {_fmt(r['intact_major'], '.1%')} | {_fmt(r['not_analysed'], '.1%')} |"
            )
    return "\n".join(lines)


def counts(frame: pd.DataFrame, method: str = "default") -> str:
    """The damaged count of every tile without labels (the run record's ``damaged_count``) against the people's."""
    part = frame[frame["method"] == method]
    if "count_expected" not in part or part["count_expected"].isna().all():
        return ""
    rows = []
    for t, f in part.groupby("tile", sort=True):
        graded = f[f["damage_grade"] != "not-analysed"]
        true = int((graded["ref_grade"] >= 2).sum())
        n, lo, hi, ex = len(graded), int(f["count_low"].iloc[0]), int(f["count_high"].iloc[0]), float(f["count_expected"].iloc[0])
        rows.append((t, n, true, ex, lo, hi, lo <= true <= hi))
    lines = ["| tile | analysed | damaged (people) | expected | 95 % interval | covered |", "| --- | ---: | ---: | ---: | --- | --- |"]
    lines += [f"| {t} | {n} | {true} | {ex:.1f} | {lo}-{hi} | {'yes' if ok else 'NO'} |" for t, n, true, ex, lo, hi, ok in rows]
    cover = np.mean([r[6] for r in rows])
    width = np.median([(r[5] - r[4]) / max(r[1], 1) for r in rows])
    err = np.mean([abs(r[3] - r[2]) / max(r[1], 1) for r in rows])
    lines.append(f"\ncovered in {cover:.0%} of {len(rows)} tiles; median width {width:.0%} of the analysed buildings; "
                 f"mean |expected - true| {err:.1%} of them")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description="accuracy on the xBD development tiles")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--only", help="comma-separated substrings of tile names")
    ap.add_argument("--cache", type=Path, help="write every building's evidence (parquet) here")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a Config value of the default method (repeatable), e.g. building_shift=3")
    ap.add_argument("--from-cache", type=Path, help="print the table of a cached run instead of assessing")
    args = ap.parse_args(argv)
    if not (args.data / "tiles.json").exists():
        raise SystemExit(f"{args.data}: no xBD dev tiles here (see ../shared/data/README.md)")
    if args.from_cache:
        frame = pd.read_parquet(args.from_cache)
        print(table(frame, list(dict.fromkeys(frame["method"]))))
        print()
        print(counts(frame))
        return
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    methods = {"default": damage.Config(**overrides)}
    if not args.no_baseline:
        methods["baseline"] = damage.Config(**BASELINE)
    print(f"damage {damage.__version__}; xBD dev tiles in {args.data}\n")
    t0 = time.perf_counter()
    frame = assess_tiles(methods, args.data, args.only)
    if args.cache:
        frame.to_parquet(args.cache)
    print()
    print(table(frame, list(methods)))
    print()
    print(counts(frame))
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
