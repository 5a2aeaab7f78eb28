"""Accuracy of the default method and a naive baseline over a fixed suite of scenes.

Run by hand (not a test):

    python benchmarks/accuracy.py xbd            # real tiles graded by people: see benchmarks/xbd.py
    python benchmarks/accuracy.py                # the generated suite, ~3 min on 2 cores
    python benchmarks/accuracy.py --size 384 --only clean,all

The real tiles decide whether a change to the method is better; the generated suite
isolates one nuisance at a time.

Each synthetic scene is a town from :func:`damage.scenes.town.make_town` with one nuisance
switched on (and one with all of them); the real pair is the Joplin crop in
``sample_tiles/`` with the buildings judged by eye in ``sample_tiles/eye_labels.geojson``.
Columns: binary "damaged" (major-damage + destroyed) F1 of the grades, the best F1 any
threshold on damage_score could reach (an oracle, so the naive baseline, whose
scores the grading thresholds were not made for, is judged at its best), ROC AUC of
damage_score,
false-alarm rate (intact buildings called damaged), share not analysed, clouded
buildings (>50 % under cloud or its shadow) that were graded instead of
``not-analysed``, and runtime of ``assess``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import damage
from damage.scenes.synthetic import write_pair
from damage.scenes.town import Nuisances, make_town

ROOT = Path(__file__).resolve().parent.parent
SENSOR = dict(gain=1.12, offset=-10.0, gamma=0.85, cast=(1.08, 1.0, 0.9))
ALL = Nuisances(shift=(2.5, -1.5), rotation=0.4, parallax=2.0, haze=0.25, clouds=0.15, season=1.0, sun=35.0,
                noise=5.0, new_buildings=10, **SENSOR)
LONLAT = dict(after_crs="EPSG:4326", after_res=6.5e-6)  # ~0.6 m at this latitude, like Joplin

#: name -> (nuisance description, make_town keyword arguments, write_pair keyword arguments)
SUITE: dict[str, tuple[str, dict, dict]] = {
    "clean": ("noise 2 DN only", {}, {}),
    "identical": ("after = before, no damage", {"damage_share": 0.0, "nuisances": Nuisances(noise=0.0)}, {}),
    "undamaged-sensor": ("no damage; other sensor", {"damage_share": 0.0, "nuisances": Nuisances(**SENSOR)}, {}),
    "sensor": ("gain 1.12, offset -10, gamma 0.85, cast", {"nuisances": Nuisances(**SENSOR)}, {}),
    "shift-subpixel": ("shift (0.4, -0.6) px", {"nuisances": Nuisances(shift=(0.4, -0.6))}, {}),
    "shift-rotation": ("shift (3, -2) px, rotation 0.5 deg", {"nuisances": Nuisances(shift=(3.0, -2.0), rotation=0.5)}, {}),
    "parallax": ("tallest roofs lean 3 px", {"nuisances": Nuisances(parallax=3.0)}, {}),
    "haze": ("haze veil 0.35", {"nuisances": Nuisances(haze=0.35)}, {}),
    "clouds": ("20 % opaque cloud + shadows", {"nuisances": Nuisances(clouds=0.2)}, {}),
    "season": ("lawns dry, trees bare", {"nuisances": Nuisances(season=1.0)}, {}),
    "sun": ("sun azimuth +40 deg", {"nuisances": Nuisances(sun=40.0)}, {}),
    "noise": ("noise 8 DN", {"nuisances": Nuisances(noise=8.0)}, {}),
    "new-buildings": ("12 new houses beside footprints", {"nuisances": Nuisances(new_buildings=12)}, {}),
    "lonlat": ("after in EPSG:4326 at ~0.6 m", {}, LONLAT),
    "all": ("all of the above", {"nuisances": ALL}, LONLAT),
}

METHODS = {
    "default": damage.Config(),
    # naive: histogram matching and mean absolute colour difference, nothing else
    "baseline": damage.Config(normalize="histogram", metrics={"absdiff": 1.0}, shift_tolerance=0, cloud_mask=False),
}


def run_scene(name: str, size: int, seed: int, folder: Path) -> dict[str, dict[str, float]]:
    _, town_kw, write_kw = SUITE[name]
    scene = make_town(size=size, seed=seed, **town_kw)
    if name == "identical":
        scene = type(scene)(scene.before, scene.before.copy(), scene.transform, scene.crs, scene.footprints)
    b, a, f = write_pair(scene, folder / name, **write_kw)
    truth = scene.footprints.rename(columns={"true_grade": "grade"})[["grade", "geometry"]]
    clouded = scene.footprints["cloud_fraction"].to_numpy() > 0.5
    return {method: _measure(b, a, f, truth, clouded, cfg) for method, cfg in METHODS.items()}


def run_joplin() -> dict[str, dict[str, float]]:
    s = ROOT / "sample_tiles"
    truth = damage.read_labels(s / "eye_labels.geojson")
    clouded = np.zeros(len(truth), bool)
    return {m: _measure(s / "before", s / "after", s / "footprints.geojson", truth, clouded, cfg, matched_only=True)
            for m, cfg in METHODS.items()}


#: The naive baseline is ranked by its own colour difference and has no grades of its own.
NAIVE_SCORE = "absdiff_mean"


def _measure(b, a, f, truth, clouded, cfg, matched_only=False) -> dict[str, float]:
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = damage.assess(b, a, f, cfg)
    seconds = time.perf_counter() - t0
    naive = cfg.metrics == (("absdiff", 1.0),)
    if naive:
        result = result.assign(damage_score=result[NAIVE_SCORE])
    ev = damage.evaluate(result, truth)
    bi = ev.binary
    n = len(truth) if matched_only else len(result)
    graded_clouded = 0
    if clouded.any():
        graded_clouded = int(((result["damage_grade"] != "not-analysed").to_numpy() & clouded).sum())
    truth_bin, score = _matched_scores(result, truth)
    return {
        "f1": bi["f1"] if bi["tp"] + bi["fn"] and not naive else float("nan"),
        "best_f1": _best_f1(truth_bin, score),
        "auc": ev.auc,
        "fpr": bi["fp"] / max(bi["fp"] + bi["tn"], 1) if not naive else float("nan"),
        "not_analysed": ev.counts["not_analysed"] / max(n, 1),
        "clouded_graded": graded_clouded,
        "clouded": int(clouded.sum()),
        "seconds": seconds,
        "buildings": n,
    }


def _matched_scores(result, truth):
    """Binary truth and damage_score of the analysed buildings matched to a scored label."""
    from damage.analysis.evaluate import match

    crs = result.crs if result.crs.is_projected else result.estimate_utm_crs()
    index, _ = match(np.asarray(result.geometry.to_crs(crs).values), np.asarray(truth.geometry.to_crs(crs).values))
    ok = (index >= 0) & truth["grade"].notna().to_numpy()
    score = result["damage_score"].to_numpy()[index[ok]]
    damaged = truth["grade"].isin(["major-damage", "destroyed"]).to_numpy()[ok]
    keep = np.isfinite(score)
    return damaged[keep], score[keep]


def _best_f1(truth: np.ndarray, score: np.ndarray) -> float:
    """F1 of "damaged" at the best threshold on damage_score (an oracle: the ceiling of any grading)."""
    if truth.sum() == 0:
        return float("nan")
    order = np.argsort(-score, kind="stable")
    tp = np.cumsum(truth[order])
    fp = np.cumsum(~truth[order])
    last = np.r_[score[order][1:] != score[order][:-1], True]  # cut only between distinct scores
    f1 = 2 * tp / (tp + fp + truth.sum())
    return float(f1[last].max())


def _fmt(v: float, spec: str = ".3f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def main() -> None:
    import sys

    if sys.argv[1:2] == ["xbd"]:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from xbd import main as xbd_main

        return xbd_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=512, help="side of each synthetic scene in pixels")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", help="comma-separated scene names (and/or 'joplin')")
    args = ap.parse_args()
    names = list(SUITE) + ["joplin"]
    if args.only:
        names = [n for n in names if n in args.only.split(",")]
    print(f"damage {damage.__version__}; scenes {args.size} px, seed {args.seed}\n")
    print("| scene | nuisance | buildings | method | F1 damaged | best F1 | AUC | false alarms | not analysed | clouded graded | seconds |")
    print("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            rows = run_joplin() if name == "joplin" else run_scene(name, args.size, args.seed, Path(tmp))
            what = "real pair, 18 buildings judged by eye" if name == "joplin" else SUITE[name][0]
            for method, r in rows.items():
                cg = f"{r['clouded_graded']}/{r['clouded']}" if r["clouded"] else "-"
                print(f"| {name} | {what} | {r['buildings']} | {method} | {_fmt(r['f1'])} | {_fmt(r['best_f1'])} | {_fmt(r['auc'])} | "
                      f"{_fmt(r['fpr'])} | {_fmt(r['not_analysed'], '.1%')} | {cg} | {r['seconds']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
