"""What cannot be seen is not graded, and another sensor is not damage: generated towns over several seeds.

Run by hand (not a test):

    python benchmarks/nuisances.py                 # 6 seeds, 512 px towns, ~3 min on 2 cores
    python benchmarks/nuisances.py --seeds 3 --size 384

Three kinds of town from :func:`damage.scenes.town.make_town`, each over ``--seeds`` seeds:

- **clouds**: 20 % of the after image under opaque cloud, each cloud casting its shadow; a
  building counts as *under cloud* when at least 60 % of it is under cloud or shadow (the
  generator's truth, ``cloud_fraction``). Reported: the share of those still graded (the
  target is at most 5 %), and of the clear buildings (< 10 % covered) not analysed. Also on
  a lon/lat grid (``crs="EPSG:4326"``), where a unit bug once switched the mask off.
- **haze**: a thin bright veil (0.25) over the whole after image: the buildings must stay
  graded (share not analysed), with their grades (binary F1).
- **other sensor**: an undamaged town imaged again by another sensor: gain 1.12, offset
  -10 DN, gamma 0.85, colour cast (1.08, 1.0, 0.9), season (lawns dry, trees bare), sun
  azimuth +35 degrees, haze 0.2, roofs leaning up to 2 px (view angle), a shift of
  (2.5, -1.5) px and a rotation of 0.4 degrees, noise 5 DN, and the after image in
  EPSG:4326 at 6.5e-6 degrees (~0.6 m against 0.5 m). Reported: the share of buildings
  graded major-damage or worse (the target is at most 3 %), and any damage.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import damage
from damage.scenes.synthetic import write_pair
from damage.scenes.town import Nuisances, make_town

SENSOR = dict(gain=1.12, offset=-10.0, gamma=0.85, cast=(1.08, 1.0, 0.9), season=1.0, sun=35.0, haze=0.2,
              parallax=2.0, shift=(2.5, -1.5), rotation=0.4, noise=5.0)
MAJOR = ("major-damage", "destroyed")


def _assess(scene, folder: Path, write_kw: dict | None = None, **kw):
    b, a, f = write_pair(scene, folder, **(write_kw or {}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return damage.assess(b, a, f, **kw)


def run(seeds: int, size: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, seeds + 1):
            folder = Path(tmp) / str(seed)
            cloudy = make_town(size=size, seed=seed, nuisances=Nuisances(clouds=0.2, noise=2.0))
            cover = cloudy.footprints["cloud_fraction"].to_numpy()
            for grid, kw in (("utm", {}), ("lon/lat", {"crs": "EPSG:4326"})):
                res = _assess(cloudy, folder / f"clouds-{grid}", **kw)
                graded = res["damage_grade"].to_numpy() != "not-analysed"
                rows.append({"kind": f"clouds ({grid} grid)", "seed": seed, "buildings": len(res),
                             "under_cloud": int((cover >= 0.6).sum()), "under_cloud_graded": int((graded & (cover >= 0.6)).sum()),
                             "clear": int((cover < 0.1).sum()), "clear_not_analysed": int((~graded & (cover < 0.1)).sum())})
            hazy = make_town(size=size, seed=seed, nuisances=Nuisances(haze=0.25, noise=2.0))
            res = _assess(hazy, folder / "haze")
            truth = hazy.footprints["damaged"].to_numpy()
            called = res["damage_grade"].isin(MAJOR).to_numpy()
            rows.append({"kind": "haze 0.25", "seed": seed, "buildings": len(res),
                         "not_analysed": int((res["damage_grade"] == "not-analysed").sum()),
                         "tp": int((called & truth).sum()), "fp": int((called & ~truth).sum()), "fn": int((~called & truth).sum())})
            other = make_town(size=size, seed=seed, damage_share=0.0, nuisances=Nuisances(**SENSOR))
            res = _assess(other, folder / "sensor", {"after_crs": "EPSG:4326", "after_res": 6.5e-6})
            graded = res["damage_grade"] != "not-analysed"
            rows.append({"kind": "other sensor, no damage", "seed": seed, "buildings": int(graded.sum()),
                         "major": int(res["damage_grade"].isin(MAJOR).sum()),
                         "any": int(res["damage_grade"].isin(("minor-damage",) + MAJOR).sum())})
            print(f"  seed {seed} done", flush=True)
    return rows


def table(rows: list[dict]) -> str:
    out = ["| towns | buildings | under cloud (>= 60 %) graded | clear (< 10 %) not analysed | not analysed | binary F1 | major+ | any damage |",
           "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    kinds = dict.fromkeys(r["kind"] for r in rows)
    for kind in kinds:
        rs = [r for r in rows if r["kind"] == kind]
        def tot(k: str, rs: list[dict] = rs) -> int:
            return sum(r.get(k, 0) for r in rs)

        n = tot("buildings")
        cells = [f"{kind} x {len(rs)}", str(n)]
        if kind.startswith("clouds"):
            cells += [f"{tot('under_cloud_graded')}/{tot('under_cloud')} ({tot('under_cloud_graded') / max(tot('under_cloud'), 1):.1%})",
                      f"{tot('clear_not_analysed')}/{tot('clear')} ({tot('clear_not_analysed') / max(tot('clear'), 1):.1%})", "", "", "", ""]
        elif kind.startswith("haze"):
            f1 = 2 * tot("tp") / max(2 * tot("tp") + tot("fp") + tot("fn"), 1)
            cells += ["", "", f"{tot('not_analysed') / max(n, 1):.1%}", f"{f1:.3f}", "", ""]
        else:
            cells += ["", "", "", "", f"{tot('major')}/{n} ({tot('major') / max(n, 1):.1%})", f"{tot('any') / max(n, 1):.1%}"]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args()
    print(f"damage {damage.__version__}; {args.seeds} seeds, {args.size} px towns\n")
    print(table(run(args.seeds, args.size)))


if __name__ == "__main__":
    main()
