"""The one-screen summary printed after an assessment."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd

from damage.analysis.analyst import headline
from damage.analysis.facilities import damaged_count, how_sure, name_column
from damage.grading import NOT_ANALYSED, SCALES


def facility_lines(facilities: gpd.GeoDataFrame, scale: str = "xbd", max_shown: int = 20) -> list[str]:
    """One line per facility, the most damaged first: name, grade, how sure, its buildings, damage around it."""
    sc = SCALES[scale]
    rank = {lv: i for i, lv in enumerate(sc.levels)}
    col = name_column(facilities)
    order = sorted(range(len(facilities)), key=lambda k: (-rank.get(facilities["damage_grade"].iloc[k], -1),
                                                          -float(np.nan_to_num(facilities.get("worst_p_damaged", pd.Series(
                                                              np.zeros(len(facilities)))).iloc[k], nan=-1.0))))
    rings = sorted(int(c[len("damaged_within_"):-1]) for c in facilities.columns if c.startswith("damaged_within_"))
    lines = [f"Facilities ({len(facilities)}):"]
    width = min(max((len(str(facilities[col].iloc[k])) for k in order), default=8), 32) if col else 12
    for k in order[:max_shown]:
        f = facilities.iloc[k]
        name = str(f[col]) if col and isinstance(f[col], str) and f[col].strip() else f"facility {k + 1}"
        grade = f["damage_grade"]
        around = f"; damaged within {'/'.join(map(str, rings))} m: " + "/".join(str(int(f[f"damaged_within_{d}m"])) for d in rings) \
            if rings else ""
        if int(f["analysed"]) == 0:
            lines.append(f"  {name[:32]:<{width}}  {grade:<14} ({how_sure(f)}: see not_analysed_reason){around}")
            continue
        lines.append(f"  {name[:32]:<{width}}  {grade:<14} ({how_sure(f)}); {damaged_count(f, sc.name)} of "
                     f"{int(f['analysed'])} buildings damaged{around}")
    if len(order) > max_shown:
        lines.append(f"  ... and {len(order) - max_shown} more")
    return lines


def summary(result: gpd.GeoDataFrame, name_col: str | None = None, max_named: int = 15) -> str:
    """The headline count, the facilities, buildings per grade, what was not analysed, named damaged buildings."""
    record = result.attrs.get("damage", {})
    scale = SCALES[record.get("config", {}).get("scale", "xbd")]
    counts = result["damage_grade"].value_counts()
    total = len(result)
    lines = [f"{total} buildings assessed"]
    analysed = total - int(counts.get(NOT_ANALYSED, 0))
    for level in scale.levels:
        n = int(counts.get(level, 0))
        share = f"{100 * n / analysed:5.1f}% of analysed" if analysed else ""
        lines.append(f"  {level:<14}{n:>8}  {share}")
    reasons = result["not_analysed_reason"].value_counts() if "not_analysed_reason" in result else None
    why = ", ".join(f"{r}: {int(n)}" for r, n in reasons.items()) if reasons is not None and len(reasons) else \
        "too little valid imagery in both epochs"
    lines.append(f"  {NOT_ANALYSED:<14}{int(counts.get(NOT_ANALYSED, 0)):>8}  ({why})")
    facilities = result.attrs.get("damage_facilities")
    if facilities is not None and len(facilities):
        lines[0:0] = facility_lines(facilities, scale.name)
    line = headline(record)
    if line:
        lines.insert(0, line)
    refit = record.get("labels")
    if refit:
        cv = refit.get("cross_validated", {})
        auc = f", AUC {cv['auc']:.2f}" if cv.get("auc") is not None else ""
        lines.append(f"refitted on {refit['labels']} of your labels ({refit['damaged']} damaged); on labels left out "
                     f"in turn: accuracy {cv.get('accuracy', 0):.2f}{auc}")
    reg = record.get("registration", {})
    if reg.get("applied"):
        lines.append(f"co-registration shift: dy={reg['dy_px']:+.2f} px, dx={reg['dx_px']:+.2f} px (spread {reg['spread_px']:.2f} px)")
    col = name_column(result, name_col)
    damaged = result[result["damage_grade"].isin(scale.damaged)]
    if col is not None:
        named = damaged[damaged[col].notna() & (damaged[col].astype(str).str.strip() != "")]
        named = named.sort_values("damage_score", ascending=False)
        lines.append(f"named buildings with {' or '.join(scale.damaged)}: {len(named)}")
        for _, row in named.head(max_named).iterrows():
            ident = f" ({row['building_id']})" if "building_id" in row else ""
            lines.append(f"  {row['damage_grade']:<14} score {row['damage_score']:.2f}  {row[col]}{ident}")
        if len(named) > max_named:
            lines.append(f"  ... and {len(named) - max_named} more")
    return "\n".join(lines)
