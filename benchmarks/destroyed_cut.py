"""Where "destroyed" begins on p_damaged (issue 24): chosen on the xBD dev tiles, leave-one-event-out.

Run by hand (not a test), on a cache of the xBD dev run:

    python benchmarks/accuracy.py xbd --cache rows.parquet
    python benchmarks/destroyed_cut.py rows.parquet

The criterion: the mean F1 of the two damaged classes (major-damage, destroyed), each event's
buildings weighted equally (events with damaged buildings), over cuts from 0.50 (a destroyed call
must at least be more likely damaged than not) to 0.85. The minor and major cuts stay. Printed:
the cut chosen on all tiles and with each event left out, and the four classes' F1 and xView2's
harmonic mean before and after, in-sample and leave-one-event-out, per event for destroyed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from damage.grading import MODEL

CANDIDATES = np.round(np.arange(0.50, 0.851, 0.01), 3)


def grades(p: np.ndarray, destroyed: float) -> np.ndarray:
    """0..3 on the xBD scale from p_damaged, with the model's minor and major cuts and ``destroyed``."""
    return np.searchsorted(np.array([MODEL.cuts[0], MODEL.cuts[1], destroyed]), p, side="right")


def f1(truth: np.ndarray, pred: np.ndarray, cls: int) -> float:
    tp = int(((truth == cls) & (pred == cls)).sum())
    wrong = int(((truth != cls) & (pred == cls)).sum()) + int(((truth == cls) & (pred != cls)).sum())
    return 2 * tp / (2 * tp + wrong) if tp + wrong else float("nan")


def criterion(frame: pd.DataFrame, cut: float) -> float:
    per_event = []
    for _, g in frame.groupby("event"):
        t = g["ref_grade"].to_numpy()
        if (t >= 2).any():
            pred = grades(g["p_damaged"].to_numpy(), cut)
            per_event.append(np.nanmean([f1(t, pred, 2), f1(t, pred, 3)]))
    return float(np.nanmean(per_event))


def choose(frame: pd.DataFrame) -> float:
    return float(max(CANDIDATES, key=lambda c: criterion(frame, c)))


def scores(truth: np.ndarray, pred: np.ndarray) -> str:
    f = [f1(truth, pred, k) for k in range(4)]
    hm = 4 / sum(1 / x for x in f) if all(x > 0 for x in f) else 0.0
    return " | ".join(f"{x:.3f}" for x in f) + f" | {hm:.3f}"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cache", type=Path)
    args = ap.parse_args(argv)
    rows = pd.read_parquet(args.cache)
    f = rows[(rows["method"] == "default") & (rows["damage_grade"] != "not-analysed")]
    best = choose(f)
    held = []
    for event in sorted(f["event"].unique()):
        cut = choose(f[f["event"] != event])
        test = f[f["event"] == event]
        held.append(test.assign(loeo=grades(test["p_damaged"].to_numpy(), cut), cut=cut))
    o = pd.concat(held)
    t, p = o["ref_grade"].to_numpy(), o["p_damaged"].to_numpy()
    print(f"destroyed cut: now {MODEL.cuts[2]}; chosen on all tiles {best}")
    print("left out -> cut chosen on the others: " + ", ".join(f"{e} {c}" for e, c in o.groupby("event")["cut"].first().items()))
    print("\n| cut | F1 no-damage | minor | major | destroyed | harmonic mean (xView2) |\n| --- | ---: | ---: | ---: | ---: | ---: |")
    print(f"| before ({MODEL.cuts[2]}) | {scores(t, grades(p, MODEL.cuts[2]))} |")
    print(f"| chosen on all tiles ({best}), in-sample | {scores(t, grades(p, best))} |")
    print(f"| leave-one-event-out | {scores(t, o['loeo'].to_numpy())} |")
    print("\n| event | destroyed (major) | destroyed F1 before | in-sample | LOEO | major F1 before | in-sample | LOEO |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for event, g in o.groupby("event"):
        tt, pp = g["ref_grade"].to_numpy(), g["p_damaged"].to_numpy()
        if not (tt >= 2).any():
            continue
        before, inside, loeo = grades(pp, MODEL.cuts[2]), grades(pp, best), g["loeo"].to_numpy()
        print(f"| {event} | {(tt == 3).sum()} ({(tt == 2).sum()}) | " + " | ".join(
            f"{f1(tt, x, k):.3f}" for k in (3, 2) for x in (before, inside, loeo)) + " |")


if __name__ == "__main__":
    main()
