"""Learn from the analyst, simulated on the xBD development tiles (people's labels).

Run by hand (not a test), on the evidence of a cached run of the real tiles:

    python benchmarks/accuracy.py xbd --cache rows.parquet --no-baseline
    python benchmarks/labels.py rows.parquet [--unit event|tile] [--budgets 5,10,20,50] [--repeats 5]

Per event (or per tile: one run of an analyst), ``k`` buildings are labelled, picked by
:func:`damage.analysis.learn.suggest` or at random (``--repeats`` draws, averaged); the model's
offset and slope are refitted on them (:func:`damage.analysis.learn.refit`) and the measures are
taken on the other buildings only: pooled and per-event AUC, F1 of "damaged" (major+)
at the model's cut, four-class harmonic-mean F1, the share of intact buildings called
major+ (false alarms), and how often the 95 % interval of the damaged count
(:func:`damage.analysis.learn.damaged_count`, labels counted as certain, the scene offset as
uncertain as the refit says, or :data:`damage.analysis.learn.SCENE_OFFSET_SD` without labels)
covers the true count of the tile, and how wide it is. Then a reliability table of ``p_damaged`` and its Brier score, without
labels and after a 10-label refit.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from xbd import DATA, LEVELS, _fmt  # noqa: E402

from damage.analysis.evaluate import binary_scores, class_scores, roc_auc  # noqa: E402
from damage.grading import MODEL, EvidenceModel, grade  # noqa: E402

#: MODEL with the scene's predicted offset as its last term (weight 1): p_damaged as the runs gave it.
SCENE_MODEL = EvidenceModel(MODEL.features + ("scene_offset_predicted",), MODEL.centre + (0.0,), MODEL.spread + (1.0,),
                            MODEL.weights + (1.0,), MODEL.intercept, MODEL.cuts, MODEL.fitted_on)
from damage.analysis.learn import SCENE_OFFSET_SD, damaged_count, refit, suggest  # noqa: E402


def load(cache: Path) -> pd.DataFrame:
    """Analysed buildings of the default method, with their centroids (metres, the tile's CRS)."""
    rows = pd.read_parquet(cache)
    rows = rows[(rows["method"] == "default") & np.isfinite(rows["p_damaged"].to_numpy(float))].copy()
    xy = []
    for tile in rows["tile"].unique():
        fp = gpd.read_file(DATA / tile / "footprints.geojson")
        fp = fp.to_crs(fp.estimate_utm_crs())
        c = fp.geometry.centroid
        xy.append(pd.DataFrame({"building_id": fp["building_id"].astype(str), "x": c.x, "y": c.y}))
    pos = pd.concat(xy, ignore_index=True)
    rows["building_id"] = rows["building_id"].astype(str)
    return rows.merge(pos, on="building_id", how="left").reset_index(drop=True)


def _evidence(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {f: frame[f].to_numpy(float) for f in MODEL.features}


def simulate(rows: pd.DataFrame, unit: str, k: int, how: str, seed: int) -> pd.DataFrame:
    """Refit per unit on ``k`` labels picked by ``how``; the rows with the refitted p and grade, and a labelled flag."""
    rng = np.random.default_rng(seed)
    out = []
    for _, part in rows.groupby(unit, sort=True):
        part = part.copy()
        ev = _evidence(part)
        p0 = part["p_damaged"].to_numpy(float)
        n = len(part)
        if k == 0:
            chosen = np.empty(0, np.int64)
        elif how == "suggest":
            chosen = suggest(p0, part["x"].to_numpy(float), part["y"].to_numpy(float),
                             np.column_stack([ev[f] for f in MODEL.features]), min(k, n))
        else:
            chosen = rng.choice(n, size=min(k, n), replace=False)
        y = part["ref_grade"].to_numpy() >= 2
        # each building's scene offset (as its run graded it) enters as one more term of weight 1
        base = SCENE_MODEL if "scene_offset_predicted" in part else MODEL
        if "scene_offset_predicted" in part:
            ev["scene_offset_predicted"] = part["scene_offset_predicted"].to_numpy(float)
        model, offset_sd = base, SCENE_OFFSET_SD
        if chosen.size:
            r = refit(base, {f: v[chosen] for f, v in ev.items()}, y[chosen])
            model, offset_sd = r.model, r.offset_sd
        p = model.probability(ev)
        labelled = np.zeros(n, bool)
        labelled[chosen] = True
        part["p_new"] = p
        part["grade_new"] = grade(p, np.ones(n, bool), "xbd", thresholds=model.cuts)
        part["labelled"] = labelled
        part["offset_sd"] = offset_sd
        out.append(part)
    return pd.concat(out, ignore_index=True)


def measures(sim: pd.DataFrame) -> dict[str, float]:
    """The measures on the unlabelled buildings, and count-interval coverage per tile."""
    rest = sim[~sim["labelled"]]
    t = rest["ref_grade"].to_numpy(int)
    pred = np.array([LEVELS.index(g) for g in rest["grade_new"]], int)
    conf = np.zeros((4, 4), np.int64)
    np.add.at(conf, (t, pred), 1)
    _, hm = class_scores(conf, LEVELS)
    damaged = t >= 2
    cover, width = [], []
    for _, tile in sim.groupby("tile"):
        p = np.where(tile["labelled"], (tile["ref_grade"] >= 2).astype(float), tile["p_new"])
        c = damaged_count(p, offset_sd=float(tile["offset_sd"].iloc[0]))
        true = int((tile["ref_grade"] >= 2).sum())
        cover.append(c["low"] <= true <= c["high"])
        width.append((c["high"] - c["low"]) / max(len(tile), 1))
    return {
        "auc": roc_auc(damaged, rest["p_new"].to_numpy()) if 0 < damaged.sum() < len(damaged) else float("nan"),
        "f1": binary_scores(damaged, pred >= 2)["f1"] if damaged.any() else float("nan"),
        "hm_f1": hm,
        "intact_major": float((pred[t == 0] >= 2).mean()) if (t == 0).any() else float("nan"),
        "coverage": float(np.mean(cover)),
        "width": float(np.mean(width)),
    }


def reliability(p: np.ndarray, y: np.ndarray) -> str:
    edges = np.array([0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0001])
    lines = ["| p_damaged | buildings | mean p | share damaged |", "| --- | ---: | ---: | ---: |"]
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (p >= lo) & (p < hi)
        if m.any():
            lines.append(f"| {lo:.1f}–{min(hi, 1):.1f} | {m.sum()} | {p[m].mean():.3f} | {y[m].mean():.3f} |")
    lines.append(f"\nBrier score {np.mean((p - y) ** 2):.4f} over {len(p)} buildings")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cache", type=Path)
    ap.add_argument("--unit", choices=("event", "tile"), default="event")
    ap.add_argument("--budgets", default="5,10,20,50")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    rows = load(args.cache)
    budgets = [int(b) for b in args.budgets.split(",")]
    print(f"{len(rows)} analysed buildings, {rows['event'].nunique()} events, {rows['tile'].nunique()} tiles; "
          f"labels per {args.unit}\n")
    print("| labels per " + args.unit + " | picked by | AUC | F1 damaged | 4-class hm F1 | intact called major+ | "
          "count interval covers (tiles) | interval width (share of the tile's buildings) |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    record = []
    base = measures(simulate(rows, args.unit, 0, "none", 0))
    print(f"| 0 | (default model) | {_fmt(base['auc'])} | {_fmt(base['f1'])} | {_fmt(base['hm_f1'])} | "
          f"{_fmt(base['intact_major'], '.1%')} | {_fmt(base['coverage'], '.0%')} | {_fmt(base['width'], '.0%')} |")
    record.append({"k": 0, "how": "none", **base})
    per_event = {}
    for k in budgets:
        for how in ("suggest", "random"):
            draws = [simulate(rows, args.unit, k, how, seed) for seed in range(1 if how == "suggest" else args.repeats)]
            ms = [measures(d) for d in draws]
            m = {key: float(np.nanmean([x[key] for x in ms])) for key in ms[0]}
            record.append({"k": k, "how": how, **m})
            print(f"| {k} | {how}{'' if how == 'suggest' else f' (mean of {args.repeats})'} | {_fmt(m['auc'])} | "
                  f"{_fmt(m['f1'])} | {_fmt(m['hm_f1'])} | {_fmt(m['intact_major'], '.1%')} | {_fmt(m['coverage'], '.0%')} | "
                  f"{_fmt(m['width'], '.0%')} |")
            if k == 10:
                per_event[how] = draws[0]
    print("\nPer event, 10 labels per " + args.unit + " (AUC on the unlabelled buildings; random: first draw):\n")
    print("| event | buildings (damaged) | default | suggest | random |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for event, part in rows.groupby("event"):
        cells = []
        for sim in (simulate(part, args.unit, 0, "none", 0), per_event.get("suggest"), per_event.get("random")):
            s = sim[(sim["event"] == event) & ~sim["labelled"]]
            d = s["ref_grade"].to_numpy() >= 2
            cells.append(_fmt(roc_auc(d, s["p_new"].to_numpy())) if 0 < d.sum() < len(d) else "n/a")
        print(f"| {event} | {len(part)} ({int((part['ref_grade'] >= 2).sum())}) | " + " | ".join(cells) + " |")
    y = (rows["ref_grade"] >= 2).to_numpy(float)
    print("\nReliability of p_damaged, default model (all analysed buildings):\n")
    print(reliability(rows["p_damaged"].to_numpy(float), y))
    if "suggest" in per_event:
        sim = per_event["suggest"]
        rest = sim[~sim["labelled"]]
        print(f"\nReliability after refitting on 10 suggested labels per {args.unit} (unlabelled buildings):\n")
        print(reliability(rest["p_new"].to_numpy(float), (rest["ref_grade"] >= 2).to_numpy(float)))
    if args.json:
        args.json.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
