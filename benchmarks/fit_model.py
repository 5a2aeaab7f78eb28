"""Fit the default evidence model on the xBD development tiles, with leave-one-event-out figures.

Run by hand (not a test), on the evidence of a cached run of the real tiles:

    python benchmarks/accuracy.py xbd --cache rows.parquet --no-baseline
    python benchmarks/fit_model.py rows.parquet

It fits ``p_damaged`` (major damage or worse) as a logistic model of standardised
evidence features, each event weighing the same whatever its number of buildings,
with an L2 penalty (few, stable weights), then chooses the probability cuts where
minor damage, major damage and destroyed begin. It prints the model as the Python
literal that ``damage/grading/model.py`` holds as ``MODEL``, and a table of in-sample and
leave-one-event-out (fit on the other events, measured on the held-out one) figures,
per event and pooled. Needs scikit-learn (``pip install scikit-learn``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from xbd import DOMINANT, LEVELS, _fmt, best_f1  # noqa: E402

from damage.analysis.evaluate import binary_scores, class_scores, roc_auc  # noqa: E402
from damage.analysis.learn import damaged_count  # noqa: E402
from damage.grading import EvidenceModel, SceneOffset  # noqa: E402
from damage.optical.evidence import FEATURES  # noqa: E402


def _weights(events: np.ndarray) -> np.ndarray:
    names, inverse, counts = np.unique(events, return_inverse=True, return_counts=True)
    w = 1.0 / counts[inverse]
    return w * len(w) / w.sum()


#: With PRIOR["weights"] set, the standardised features weigh as given (up to one common
#: slope): only the intercept and the slope are fitted, on the features' weighted average.
PRIOR: dict = {"weights": None}


def fit(frame: pd.DataFrame, features: tuple[str, ...], c: float) -> EvidenceModel:
    """The logistic model and its cuts, fitted on ``frame`` (analysed buildings of several events)."""
    from sklearn.linear_model import LogisticRegression

    x = frame[list(features)].to_numpy(dtype=float)
    centre = np.nanmedian(x, axis=0)
    q1, q3 = np.nanpercentile(x, [25, 75], axis=0)
    spread = np.maximum((q3 - q1) / 1.349, 1e-6)
    z = np.nan_to_num((x - centre) / spread)
    y = frame["ref_grade"].to_numpy() >= 2
    w = _weights(frame["event"].to_numpy()) if PRIOR.get("events_equal", True) else np.ones(len(frame))
    if PRIOR["weights"] is not None:
        prior = np.asarray(PRIOR["weights"], dtype=float) / np.abs(PRIOR["weights"]).sum()
        lr = LogisticRegression(C=c, max_iter=2000).fit((z * prior).sum(axis=1, keepdims=True), y, sample_weight=w)
        coef = prior * lr.coef_[0][0]
    else:
        lr = LogisticRegression(C=c, max_iter=2000).fit(z, y, sample_weight=w)
        coef = lr.coef_[0]
    model = EvidenceModel(tuple(features), tuple(float(v) for v in np.round(centre, 5)),
                          tuple(float(v) for v in np.round(spread, 5)), tuple(float(v) for v in np.round(coef, 4)),
                          round(float(lr.intercept_[0]), 4), (0.1, 0.5, 0.9), fitted_on="")
    p = model.probability({f: frame[f].to_numpy(dtype=float) for f in model.features})
    return _with_cuts(model, p, frame["ref_grade"].to_numpy(), w)


#: Largest share of no-damage buildings the major-damage cut may call major-damage or worse.
MAX_FALSE_ALARMS = 0.03


def _with_cuts(model: EvidenceModel, p: np.ndarray, grade: np.ndarray, w: np.ndarray) -> EvidenceModel:
    """Cuts: major where binary F1 is best while at most MAX_FALSE_ALARMS of intact buildings are called
    major+ (each event's intact buildings weighing as the event does, so one large event cannot hide the
    false alarms of the others); minor and destroyed where the four classes' harmonic-mean F1 is best (over buildings, pooled)."""
    grid = np.unique(np.round(np.quantile(p, np.linspace(0.02, 0.998, 400)), 4))
    grid = grid[(grid > 0.005) & (grid < 0.995)]
    y = grade >= 2

    def f1(pred: np.ndarray, truth: np.ndarray) -> float:
        return 2 * (pred & truth).sum() / max(pred.sum() + truth.sum(), 1)

    intact = grade == 0
    wi = w[intact] / w[intact].sum()  # each event's intact buildings weigh as the event does
    allowed = [t for t in grid if wi[p[intact] >= t].sum() <= MAX_FALSE_ALARMS] or [grid[-1]]
    major = max(allowed, key=lambda t: f1(p >= t, y))
    # minor and destroyed: the pair that makes the four classes' harmonic-mean F1 best
    lows = np.unique(np.quantile(p[p < major], np.linspace(0.0, 1.0, 60))) if (p < major).any() else np.array([major / 2])
    highs = np.unique(np.quantile(p[p >= major], np.linspace(0.0, 1.0, 60))) if (p >= major).any() else np.array([major])

    def harmonic(minor: float, dest: float) -> float:
        level = np.searchsorted(np.array([minor, major, dest]), p, side="right")
        conf = np.zeros((4, 4))
        np.add.at(conf, (grade, level), 1)
        return class_scores(conf, LEVELS)[1]

    minor, dest = max(((lo, hi) for lo in lows for hi in highs if lo < major <= hi), key=lambda c: harmonic(*c),
                      default=(major / 2, (1 + major) / 2))
    minor = min(minor, major - 1e-4)
    dest = max(dest, major + 1e-4)
    return EvidenceModel(model.features, model.centre, model.spread, model.weights, model.intercept,
                         (round(float(minor), 4), round(float(major), 4), round(float(dest), 4)), model.fitted_on)


def predict(model: EvidenceModel, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    p = model.probability({f: frame[f].to_numpy(dtype=float) for f in model.features})
    level = np.searchsorted(np.asarray(model.cuts), p, side="right")
    return p, level


def measures(truth: np.ndarray, p: np.ndarray, level: np.ndarray, n_all: int) -> dict[str, float]:
    conf = np.zeros((4, 4), dtype=np.int64)
    np.add.at(conf, (truth, level), 1)
    damaged = truth >= 2
    return {
        "buildings": n_all,
        "damaged": int(damaged.sum()),
        "auc": roc_auc(damaged, p),
        "f1": binary_scores(damaged, level >= 2)["f1"] if damaged.any() else float("nan"),
        "best_f1": best_f1(damaged, p),
        "hm_f1": class_scores(conf, LEVELS)[1],
        "intact_major": float((level[truth == 0] >= 2).mean()) if (truth == 0).any() else float("nan"),
        "brier": float(np.mean((p - damaged) ** 2)),
    }


def loeo(frame: pd.DataFrame, features: tuple[str, ...], c: float) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-event-out predictions of every row."""
    p = np.full(len(frame), np.nan)
    level = np.zeros(len(frame), dtype=int)
    events = frame["event"].to_numpy()
    for e in np.unique(events):
        held = events == e
        model = fit(frame[~held], features, c)
        p[held], level[held] = predict(model, frame[held])
    return p, level


#: Prior standard deviation of a tile's offset when it is refitted on all its labels (a tile without a damaged
#: building has no finite maximum-likelihood offset): the spread measured before the offset was predicted.
TILE_PRIOR_SD = 3.5
#: Ridge penalty of the offset model's standardised weights (chosen leave-one-event-out among 30, 100, 300).
OFFSET_PENALTY = 30.0
#: The offset model's descriptors: those of damage.grading.DESCRIPTORS that do not see the damage (the after image's
#: noise, the misregistration left and the scene's change do, and made grades move with the share of damage).
OFFSET_DESCRIPTORS = ("noise_before", "ranges", "resolution_m", "normalization_gain")


def descriptor_matrix(frame: pd.DataFrame, names: tuple[str, ...]) -> np.ndarray:
    """The scene descriptors of every row (``scene_<name>`` columns; NaN where missing)."""
    return np.column_stack([frame.get(f"scene_{n}", pd.Series(np.nan, index=frame.index)).to_numpy(dtype=float)
                            for n in names])


def tile_offset(s: np.ndarray, y: np.ndarray, sd: float = TILE_PRIOR_SD) -> float:
    """The MAP offset of ``logit = s + offset`` on one tile's labels (Gaussian prior at 0)."""
    o = 0.0
    for _ in range(100):
        q = 1.0 / (1.0 + np.exp(-np.clip(s + o, -30, 30)))
        step = ((q - y).sum() + o / sd**2) / ((q * (1 - q)).sum() + 1 / sd**2)
        o -= step
        if abs(step) < 1e-10:
            break
    return float(o)


def fit_offset(frame: pd.DataFrame, s: np.ndarray, names: tuple[str, ...], penalty: float = OFFSET_PENALTY) -> SceneOffset:
    """The scene offset model: ``logit = s + offset(descriptors)``, a ridge logistic fit on the buildings,
    each event weighing the same (the standardised descriptors' weights penalised, the intercept not)."""
    d = descriptor_matrix(frame, names)
    centre = np.nanmedian(d, axis=0)
    spread = np.maximum(np.nanstd(d, axis=0), 1e-9)
    z = np.nan_to_num((d - centre) / spread)
    x = np.column_stack([np.ones(len(frame)), z])
    y = (frame["ref_grade"].to_numpy() >= 2).astype(float)
    w = _weights(frame["event"].to_numpy())
    pen = np.diag([1e-6] + [penalty] * len(names))
    b = np.zeros(x.shape[1])
    for _ in range(100):
        q = 1.0 / (1.0 + np.exp(-np.clip(s + x @ b, -30, 30)))
        step = np.linalg.solve((x * (w * q * (1 - q))[:, None]).T @ x + pen, x.T @ (w * (q - y)) + pen @ b)
        b -= step
        if np.abs(step).max() < 1e-10:
            break
    return SceneOffset(tuple(names), tuple(float(v) for v in np.round(centre, 5)), tuple(float(v) for v in np.round(spread, 5)),
                       tuple(float(v) for v in np.round(b[1:], 4)), round(float(b[0]), 4), residual_sd=1.0,
                       low=tuple(float(v) for v in np.round(np.nanmin(d, axis=0), 5)),
                       high=tuple(float(v) for v in np.round(np.nanmax(d, axis=0), 5)))


def predict_offset(offset: SceneOffset, frame: pd.DataFrame) -> np.ndarray:
    d = descriptor_matrix(frame, offset.descriptors)
    return np.array([offset.predict(dict(zip(offset.descriptors, row))) for row in d])


def fit_with_offset(frame: pd.DataFrame, features: tuple[str, ...], c: float, names: tuple[str, ...],
                    penalty: float = OFFSET_PENALTY) -> tuple[EvidenceModel, SceneOffset]:
    """The evidence model, the scene offset model on its logits, and the cuts chosen with the offsets applied."""
    model = fit(frame, features, c)
    s = model.logit({f: frame[f].to_numpy(dtype=float) for f in features})
    offset = fit_offset(frame, s, names, penalty)
    p = 1.0 / (1.0 + np.exp(-np.clip(s + predict_offset(offset, frame), -30, 30)))
    w = _weights(frame["event"].to_numpy())
    return _with_cuts(model, p, frame["ref_grade"].to_numpy(), w), offset


def predict_scene(model: EvidenceModel, offset: SceneOffset, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``p_damaged`` and grade level of every row with its scene's predicted offset, and the logits without it."""
    s = model.logit({f: frame[f].to_numpy(dtype=float) for f in model.features})
    p = 1.0 / (1.0 + np.exp(-np.clip(s + predict_offset(offset, frame), -30, 30)))
    return p, np.searchsorted(np.asarray(model.cuts), p, side="right"), s


def loeo_with_offset(frame: pd.DataFrame, features: tuple[str, ...], c: float, names: tuple[str, ...],
                     penalty: float = OFFSET_PENALTY) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """Leave-one-event-out predictions with the scene offset, and per tile its true (refitted), predicted and
    residual offset, all from models fitted on the other events."""
    p = np.full(len(frame), np.nan)
    level = np.zeros(len(frame), dtype=int)
    events = frame["event"].to_numpy()
    tiles = []
    for e in np.unique(events):
        held = events == e
        model, offset = fit_with_offset(frame[~held], features, c, names, penalty)
        sub = frame[held]
        p[held], level[held], s = predict_scene(model, offset, sub)
        pred = predict_offset(offset, sub)
        y = sub["ref_grade"].to_numpy() >= 2
        for t in sorted(sub["tile"].unique()):
            on = (sub["tile"] == t).to_numpy()
            tiles.append({"tile": t, "event": e, "buildings": int(on.sum()), "damaged": int(y[on].sum()),
                          "true": tile_offset(s[on], y[on]), "predicted": float(pred[on][0])})
    table = pd.DataFrame(tiles)
    table["residual"] = table["true"] - table["predicted"]
    return p, level, table


def markdown(table: pd.DataFrame) -> str:
    """A table as markdown (numbers to two decimals)."""
    cells = [[f"{v:.2f}" if isinstance(v, float) else str(v) for v in row] for row in table.itertuples(index=False)]
    lines = ["| " + " | ".join(table.columns) + " |", "| " + " | ".join("---" for _ in table.columns) + " |"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in cells])


def count_table(frame: pd.DataFrame, p: np.ndarray, offset_sd: float) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per tile the damaged count without labels (expected, 95 % interval) against the people's count."""
    rows = []
    y = frame["ref_grade"].to_numpy() >= 2
    for t in sorted(frame["tile"].unique()):
        on = (frame["tile"] == t).to_numpy()
        c = damaged_count(p[on], offset_sd=offset_sd)
        rows.append({"tile": t, "buildings": c["buildings"], "true": int(y[on].sum()), "expected": c["expected"],
                     "low": c["low"], "high": c["high"]})
    table = pd.DataFrame(rows)
    table["covered"] = (table["low"] <= table["true"]) & (table["true"] <= table["high"])
    width = (table["high"] - table["low"]) / table["buildings"]
    err = (table["expected"] - table["true"]).abs() / table["buildings"]
    return table, {"covered": float(table["covered"].mean()), "median_width": float(width.median()),
                   "mean_abs_error": float(err.mean())}


def report(frame: pd.DataFrame, all_rows: pd.DataFrame, preds: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    lines = ["| events | buildings (damaged) | fit | AUC | F1 damaged | best F1 (oracle) | 4-class hm F1 | intact called major+ | Brier |",
             "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    events = frame["event"].to_numpy()
    groups = [(e, events == e) for e in sorted(set(events))]
    groups += [("**pooled**", np.ones(len(frame), bool)), (f"pooled without {DOMINANT}", events != DOMINANT)]
    truth = frame["ref_grade"].to_numpy().astype(int)
    for name, sel in groups:
        n_all = int((all_rows["event"] == name).sum()) if name in set(events) else (
            len(all_rows) if name == "**pooled**" else int((all_rows["event"] != DOMINANT).sum()))
        for how, (p, level) in preds.items():
            r = measures(truth[sel], p[sel], level[sel], n_all)
            lines.append(f"| {name} | {r['buildings']} ({r['damaged']}) | {how} | {_fmt(r['auc'])} | {_fmt(r['f1'])} | "
                         f"{_fmt(r['best_f1'])} | {_fmt(r['hm_f1'])} | {_fmt(r['intact_major'], '.1%')} | {_fmt(r['brier'])} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cache", type=Path)
    ap.add_argument("--features", default=",".join(FEATURES), help="comma-separated evidence columns")
    ap.add_argument("--c", type=float, default=0.1, help="inverse L2 penalty of the logistic fit")
    ap.add_argument("--prior", metavar="W1,W2,...",
                    help="fixed relative weights of the standardised features: only a slope and the intercept are fitted")
    ap.add_argument("--buildings-equal", action="store_true",
                    help="every building weighs the same in the fit (p_damaged calibrated on the pooled tiles); "
                         "by default every event weighs the same")
    ap.add_argument("--search", action="store_true", help="also compare feature sets and penalties (leave-one-event-out)")
    ap.add_argument("--offset", action="store_true",
                    help="also fit the scene offset model (damage.grading.OFFSET) on the scene descriptors, with per-tile "
                         "offsets and counts")
    ap.add_argument("--offset-penalty", type=float, default=OFFSET_PENALTY)
    ap.add_argument("--descriptors", default=",".join(OFFSET_DESCRIPTORS),
                    help="comma-separated scene descriptors of the offset model (damage.grading.DESCRIPTORS, resolution_m)")
    args = ap.parse_args()
    rows = pd.read_parquet(args.cache)
    rows = rows[rows["method"] == "default"].reset_index(drop=True)
    frame = rows[rows["damage_grade"] != "not-analysed"].reset_index(drop=True)
    features = tuple(args.features.split(","))
    PRIOR["weights"] = [float(v) for v in args.prior.split(",")] if args.prior else None
    PRIOR["events_equal"] = not args.buildings_equal
    if args.search:
        print("| features | C | LOEO AUC pooled | without fire | mean per-event AUC | LOEO F1 | LOEO intact major+ |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        sets = {"all": FEATURES, "chosen": features,
                "structure+colour": ("ssim_loss", "colour_change"),
                "no ring": tuple(f for f in FEATURES if not f.startswith("ring_") and "contrast" not in f)}
        for label, fs in sets.items():
            for c in (0.01, 0.1, 1.0):
                p, level = loeo(frame, fs, c)
                truth = frame["ref_grade"].to_numpy() >= 2
                nofire = frame["event"].to_numpy() != DOMINANT
                per = [roc_auc(truth[frame["event"] == e], p[frame["event"] == e]) for e in frame["event"].unique()]
                print(f"| {label} | {c} | {roc_auc(truth, p):.3f} | {roc_auc(truth[nofire], p[nofire]):.3f} | "
                      f"{np.nanmean(per):.3f} | {binary_scores(truth, level >= 2)['f1']:.3f} | "
                      f"{(level[~truth & (frame['ref_grade'].to_numpy() == 0)] >= 2).mean():.1%} |", flush=True)
        print()
    model = fit(frame, features, args.c)
    insample = predict(model, frame)
    held = loeo(frame, features, args.c)
    print(f"{len(frame)} analysed buildings of {len(rows)}, {frame['event'].nunique()} events\n")
    preds = {"in-sample": insample, "leave-one-event-out": held}
    how = f"prior weights {args.prior}" if args.prior else f"logistic, C={args.c}"
    how += "; buildings weighted equally" if args.buildings_equal else "; events weighted equally"
    offset = None
    if args.offset:
        names = tuple(args.descriptors.split(","))
        model, offset = fit_with_offset(frame, features, args.c, names, args.offset_penalty)
        p_in, level_in, _ = predict_scene(model, offset, frame)
        p_out, level_out, tiles = loeo_with_offset(frame, features, args.c, names, args.offset_penalty)
        sd = float(np.sqrt(np.mean(tiles["residual"] ** 2)))
        offset = SceneOffset(offset.descriptors, offset.centre, offset.spread, offset.weights, offset.intercept,
                             round(sd, 3), offset.limit, low=offset.low, high=offset.high, cuts=model.cuts, fitted_on=
                             f"xBD dev tiles: {len(frame)} buildings, {tiles['tile'].nunique()} tiles, "
                             f"{frame['event'].nunique()} events; ridge {args.offset_penalty:g}, events weighted equally; "
                             "residual_sd: leave-one-event-out")
        plain = fit(frame, features, args.c)
        print("evidence model without the offset (damage.grading.MODEL):", plain.to_dict(), "\n")
        preds = {"in-sample, no offset": insample, "leave-one-event-out, no offset": held,
                 "in-sample, scene offset": (p_in, level_in), "leave-one-event-out, scene offset": (p_out, level_out)}
    print(report(frame, rows, preds))
    if offset is not None:
        print(f"\nScene offsets per tile (leave-one-event-out: true = refitted on the tile's labels with a N(0, "
              f"{TILE_PRIOR_SD}) prior; predicted from the scene descriptors by a model fitted on the other events)\n")
        print(markdown(tiles))
        print(f"\nspread of the true offsets: sd {tiles['true'].std():.2f}; of the residuals: rms {sd:.2f}, "
              f"mean |residual| {tiles['residual'].abs().mean():.2f} against mean |true| {tiles['true'].abs().mean():.2f}")
        for label, p, osd in (("no offset, offset sd 3.5", held[0], 3.5),
                              (f"scene offset, residual sd {sd:.2f}", p_out, sd)):
            table, summary = count_table(frame, p, osd)
            print(f"\nDamaged count without labels, leave-one-event-out ({label}): covered {summary['covered']:.0%} of "
                  f"tiles, median width {summary['median_width']:.0%} of the analysed, mean |expected - true| "
                  f"{summary['mean_abs_error']:.1%}")
            if label.startswith("scene"):
                print(markdown(table))
    print("\nMODEL = EvidenceModel(")
    for k, v in model.to_dict().items():
        if k != "fitted_on":
            print(f"    {k}={tuple(v) if isinstance(v, list) else v!r},".replace("'", '"'))
    print(f'    fitted_on="xBD dev tiles: {len(frame)} buildings, {frame["event"].nunique()} events; {how}",\n)')
    if offset is not None:
        print("\nOFFSET = SceneOffset(")
        for k, v in offset.to_dict().items():
            print(f"    {k}={tuple(v) if isinstance(v, list) else v!r},".replace("'", '"'))
        print(")")


if __name__ == "__main__":
    main()
