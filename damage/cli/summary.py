"""The one-screen summary printed after an assessment."""

from __future__ import annotations

import geopandas as gpd

from damage.analysis.analyst import headline
from damage.analysis.facilities import name_column
from damage.grading import NOT_ANALYSED, SCALES


def summary(result: gpd.GeoDataFrame, name_col: str | None = None, max_named: int = 15) -> str:
    """Buildings per grade, how many were not analysed, and named damaged buildings."""
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
            lines.append(f"  {row['damage_grade']:<14} score {row['damage_score']:.2f}  {row[col]}")
        if len(named) > max_named:
            lines.append(f"  ... and {len(named) - max_named} more")
    return "\n".join(lines)
