"""An offline HTML report an analyst can publish: the map, the counts, the evidence per
facility or building, and where it all comes from.

One self-contained file: images are embedded (PNG, base64), styles inline, no script,
no font, nothing fetched from a network, so it opens on a laptop in the field and prints.
Rendered with Jinja2 (a well-kept template engine that escapes every value it is given:
names from OpenStreetMap are text, never markup).
"""

from __future__ import annotations

import base64
import datetime
import math
from os import PathLike
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np

from damage.analysis.analyst import headline
from damage.analysis.facilities import damaged_count, how_sure, name_column
from damage.geo.raster import Grid
from damage.grading import NOT_ANALYSED, SCALES
from damage.io.writers import _atomic
from damage.report.chips import Chip, Overview, draw_footprints, grade_colour, stretch
from damage.report.naming import building_title, lonlat

__all__ = ["render_report", "write_report", "EVIDENCE_SHOWN"]

#: Evidence values shown for each building, with what they mean.
EVIDENCE_SHOWN = {
    "p_damaged": "probability of major damage or worse",
    "ssim_excess": "structure lost beyond the scene's typical change",
    "edge_excess": "edges gained or lost beyond the scene's typical change",
    "ssim_contrast": "structure lost against the building's own ring",
    "shadow_loss": "share of its ring in shadow before minus after (negative: the ring darkened)",
    "changed_fraction": "share of its pixels that changed",
    "valid_fraction": "share of its pixels seen clearly in both epochs",
}

_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1100px;
       padding: 1.2em; color: #1d1d1f; }
h1 { font-size: 1.6em; margin-bottom: .1em; } h2 { border-bottom: 2px solid #ddd; padding-bottom: .2em; margin-top: 1.6em; }
.sub { color: #555; margin-top: 0; }
.lead { font-size: 1.2em; font-weight: 500; background: #f5f5f7; border-left: 4px solid #c0392b; padding: .5em .8em; }
table { border-collapse: collapse; margin: .6em 0; } td, th { padding: .25em .7em; border-bottom: 1px solid #e3e3e3;
  text-align: left; vertical-align: top; } th { background: #f5f5f7; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
.swatch { display: inline-block; width: .9em; height: .9em; border: 2px solid; vertical-align: -.1em; margin-right: .3em; }
figure.map { margin: .6em 0; } figcaption { color: #555; font-size: .9em; }
.scroll { overflow: auto; max-height: 80vh; border: 1px solid #ccc; } .scroll img { display: block; }
.item { border: 1px solid #ddd; border-radius: 6px; padding: .6em 1em 1em; margin: 1em 0; page-break-inside: avoid; }
.item h3 { margin: .2em 0 .4em; } .pair { display: flex; gap: 10px; flex-wrap: wrap; margin-bottom: .8em; }
.pair figure { margin: 0; } .pair table { flex: 1 1 280px; margin: 0; font-size: .92em; }
.pair img { width: 240px; height: 240px; object-fit: contain; image-rendering: pixelated; border: 1px solid #bbb; }
.grade { font-weight: 600; padding: .05em .45em; border-radius: 4px; color: #fff; }
td.g { white-space: nowrap; }
.muted { color: #666; } .prov td { font-size: .9em; } code { font-size: .88em; overflow-wrap: anywhere; }
@media print { body { max-width: none; } .item { border-color: #999; } }
</style></head>
<body>
<h1>{{ title }}</h1>
<p class="sub">{{ subtitle }}</p>
{% if headline %}<p class="lead">{{ headline }}</p>{% endif %}
{% if count_note %}<p class="muted">{{ count_note }}</p>{% endif %}

{% if facilities %}
<h2 id="facilities">Facilities</h2>
<table><tr><th>facility</th><th>grade</th><th>how sure</th><th>damaged buildings</th><th>damaged roof m²</th>
{% for d in rings %}<th>damaged within {{ d }} m</th>{% endfor %}</tr>
{% for f in facilities %}<tr><td><a href="#facility-{{ loop.index }}">{{ f.name }}</a></td>
<td class="g"><span class="swatch" style="border-color: {{ f.colour }}"></span>{{ f.grade }}</td>
<td>{{ f.sure }}</td><td class="n">{{ f.damaged }} of {{ f.analysed }}</td><td class="n">{{ f.roof }}</td>
{% for v in f.rings %}<td class="n">{{ v }}</td>{% endfor %}</tr>{% endfor %}
</table>
{% endif %}

{% if top_damaged %}
<h2 id="most-damaged">Most damaged buildings</h2>
<table><tr><th>building</th><th>grade</th><th>p_damaged</th><th>where</th></tr>
{% for b in top_damaged %}<tr><td>{% if b.anchor %}<a href="#{{ b.anchor }}">{{ b.title }}</a>{% else %}{{ b.title }}{% endif %}</td>
<td class="g"><span class="swatch" style="border-color: {{ b.colour }}"></span>{{ b.grade }}</td><td class="n">{{ b.p }}</td>
<td class="n">{{ b.place }}</td></tr>{% endfor %}
</table>
{% if more_damaged %}<p class="muted">{{ more_damaged }}</p>{% endif %}
{% endif %}

<h2 id="overview">Overview</h2>
{% if overview_after %}<figure class="map"><div class="scroll"><img alt="graded footprints over the after image" src="data:image/png;base64,{{ overview_after }}"></div>
<figcaption>After: every footprint outlined in the colour of its grade{% if facilities %}, facilities in cyan with their names{% endif %}{% if top_damaged %}, the buildings listed above with their ids{% endif %}. Scroll to see all of it.</figcaption></figure>{% endif %}
<p>{% for lv in legend %}<span class="swatch" style="border-color: {{ lv.colour }}"></span>{{ lv.name }} &nbsp; {% endfor %}</p>
{% if overview_before %}<figure class="map"><div class="scroll"><img alt="footprints over the before image" src="data:image/png;base64,{{ overview_before }}"></div>
<figcaption>Before, the same footprints.</figcaption></figure>{% endif %}

<h2 id="counts">Buildings by grade</h2>
<table><tr><th>grade</th><th>buildings</th><th>share of analysed</th></tr>
{% for row in counts %}<tr><td><span class="swatch" style="border-color: {{ row.colour }}"></span>{{ row.name }}</td>
<td class="n">{{ row.n }}</td><td class="n">{{ row.share }}</td></tr>{% endfor %}
</table>
{% if reasons %}<p>Not analysed: {% for r in reasons %}{{ r.reason }}: {{ r.n }}{% if not loop.last %}, {% endif %}{% endfor %}.</p>{% endif %}
{% if refit %}<p>{{ refit }}</p>{% endif %}

<h2 id="evidence">{{ evidence_title }}</h2>
{% for item in items %}
<div class="item" id="{{ item.anchor }}">
<h3>{{ item.title }} <span class="grade" style="background: {{ item.colour }}">{{ item.grade }}</span></h3>
{% if item.note %}<p class="muted">{{ item.note }}</p>{% endif %}
{% for b in item.buildings %}
<div class="pair">
<figure><img alt="before" src="data:image/png;base64,{{ b.before }}"><figcaption>Before{{ b.before_date }}</figcaption></figure>
<figure><img alt="after" src="data:image/png;base64,{{ b.after }}"><figcaption>After{{ b.after_date }}{% if b.tinted %}; changed pixels in red{% endif %}</figcaption></figure>
<table>
<tr><th colspan="2">{{ b.label }}: <span class="grade" style="background: {{ b.colour }}">{{ b.grade }}</span></th></tr>
{% for e in b.evidence %}<tr><td>{{ e.name }}<br><span class="muted">{{ e.meaning }}</span></td><td class="n">{{ e.value }}</td></tr>{% endfor %}
{% if b.place %}<tr><td>where</td><td class="n">{{ b.place }}</td></tr>{% endif %}
<tr><td>chip scale</td><td class="n">{{ b.scale }} m per pixel</td></tr>
</table>
</div>
{% endfor %}
{% if item.rings %}<p>Around it: {% for r in item.rings %}{{ r }}{% if not loop.last %}; {% endif %}{% endfor %}.</p>{% endif %}
</div>
{% else %}<p class="muted">No building to show.</p>
{% endfor %}

<h2 id="provenance">Provenance</h2>
<table class="prov">
{% for row in provenance %}<tr><th>{{ row.key }}</th><td>{{ row.value }}</td></tr>{% endfor %}
</table>
<p class="muted">Made with damage {{ version }}. The grades are a model's reading of two images: check a sample
(<code>damage validate</code>) before you publish counts.</p>
</body></html>
"""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#%02x%02x%02x" % rgb


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.{digits}f}" if isinstance(v, (float, np.floating)) else str(v)


def _scale_bar(image: np.ndarray, metres_per_px: float) -> np.ndarray:
    """Draw a scale bar (a round length about a fifth of the width) in the lower left corner."""
    from PIL import Image, ImageDraw

    h, w = image.shape[:2]
    target = w * metres_per_px / 5
    nice = 10 ** math.floor(math.log10(max(target, 1e-9)))
    length_m = max((m * nice for m in (1, 2, 5, 10) if m * nice <= target), default=nice)
    px = int(round(length_m / metres_per_px))
    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    x0, y0 = 12, h - 18
    draw.rectangle([x0 - 4, y0 - 16, x0 + px + 60, y0 + 8], fill=(255, 255, 255))
    draw.rectangle([x0, y0, x0 + px, y0 + 4], fill=(0, 0, 0))
    label = f"{length_m:g} m" if length_m < 1000 else f"{length_m / 1000:g} km"
    draw.text((x0, y0 - 14), label, fill=(0, 0, 0))
    return np.asarray(pil)


def _overview_pngs(result: gpd.GeoDataFrame, overview: Overview | None, grid: dict, levels,
                   labelled: list | None = None, facilities: list | None = None, facilities_crs=None) -> tuple[str, str]:
    if overview is None or not overview.valid.any():
        return "", ""
    from affine import Affine
    from pyproj import CRS
    from rasterio.crs import CRS as RasterioCRS

    t = Affine(*grid["transform"]) * Affine.scale(overview.factor)
    crs = CRS.from_user_input(grid["crs"])
    geoms = np.asarray(result.geometry.to_crs(crs).values, dtype=object)
    colours = [grade_colour(g, levels) for g in result["damage_grade"]]
    # metres per CRS unit from the one place that knows them: the run's grid
    m_per_px = abs(t.a) * Grid(RasterioCRS.from_wkt(crs.to_wkt()), Affine(*grid["transform"]), tuple(grid["shape"])).metres
    both = np.concatenate([overview.before, overview.after], axis=2)
    vv = np.concatenate([overview.valid, overview.valid], axis=1)
    img = stretch(both, vv)
    w = overview.valid.shape[1]
    scale = max(1, int(900 / max(w, overview.valid.shape[0])))
    after = _scale_bar(img[:, w:], m_per_px)
    before = _scale_bar(img[:, :w], m_per_px)
    width = 1 if max(img.shape[:2]) < 700 else 2
    # the listed buildings' ids and the facilities' outlines, in the grid's CRS
    ids = []
    if labelled:
        shapes = gpd.GeoSeries([g for g, _ in labelled], crs=result.crs).to_crs(crs)
        ids = list(zip(shapes.values, [s for _, s in labelled]))
    named = []
    if facilities:
        shapes = gpd.GeoSeries([g for g, _ in facilities], crs=facilities_crs or result.crs).to_crs(crs)
        named = list(zip(shapes.values, [s for _, s in facilities]))
    return (_b64(draw_footprints(after, geoms, colours, t, width=width, scale=scale, labelled=ids, facilities=named)),
            _b64(draw_footprints(before, geoms, [(255, 255, 255)] * len(geoms), t, width=1, scale=scale)))


def _dates(record: dict) -> tuple[str, str]:
    prov = record.get("provenance", {}).get("inputs", {})
    out = []
    for epoch in ("before", "after"):
        dates = sorted({f["acquired"] for f in prov.get(epoch, []) if f.get("acquired")})
        out.append(f" ({', '.join(dates)})" if dates else "")
    return out[0], out[1]


def _building(result: gpd.GeoDataFrame, i: int, chip: Chip, label: str, levels, dates, place: str = "") -> dict:
    row = result.iloc[i]
    ev = []
    for name, meaning in EVIDENCE_SHOWN.items():
        if name in result:
            ev.append({"name": name, "meaning": meaning, "value": _fmt(row[name], 3)})
    grade = row["damage_grade"]
    return {"before": _b64(chip.before), "after": _b64(chip.after_changed or chip.after), "label": label, "place": place,
            "grade": grade, "tinted": chip.after_changed is not None,
            "colour": _hex(grade_colour(grade, levels)), "evidence": ev, "scale": chip.metres_per_pixel,
            "before_date": dates[0], "after_date": dates[1]}


def render_report(result: gpd.GeoDataFrame, title: str | None = None, top: int = 12,
                  name_col: str | None = None) -> str:
    """The report of an assessment made with ``chips`` (see :func:`damage.assess`), as HTML text.

    Sections per facility when the run had facilities, else per named building, else for
    the ``top`` most damaged buildings.
    """
    from jinja2 import Environment, select_autoescape

    record = result.attrs.get("damage", {})
    scale = record.get("config", {}).get("scale", "xbd")
    sc = SCALES[scale]
    levels = sc.levels
    chips: dict[int, Chip] = result.attrs.get("damage_chips", {})
    grades = result["damage_grade"].to_numpy(dtype=object)
    analysed = int((grades != NOT_ANALYSED).sum())
    counts = [{"name": lv, "n": int((grades == lv).sum()), "colour": _hex(grade_colour(lv, levels)),
               "share": f"{100 * (grades == lv).sum() / analysed:.1f}%" if analysed else "n/a"} for lv in levels]
    counts.append({"name": NOT_ANALYSED, "n": int((grades == NOT_ANALYSED).sum()),
                   "colour": _hex(grade_colour(NOT_ANALYSED, levels)), "share": ""})
    dc = record.get("damaged_count") or {}
    graded_damaged = int(np.isin(grades, sc.damaged).sum())
    if dc.get("method") == "measured":
        count_note = (f"The count is the {graded_damaged} buildings graded {' or '.join(sc.damaged)}. Its interval is how far "
                      "such counts fell from people's counts on tiles of other events: it holds the true count on "
                      f"{100 * float(dc.get('level', 0.9)):.0f} % of such tiles, when this event's damage shows in the imagery "
                      "as theirs did (floods and tsunamis that leave roofs whole are under-counted).")
    elif dc:
        count_note = (f"{graded_damaged} buildings are graded {' or '.join(sc.damaged)}; the headline's number is what "
                      "the buildings' probabilities imply, with the interval of the model it rests on.")
    else:
        count_note = ""
    reasons = []
    if "not_analysed_reason" in result:
        for r, n in result["not_analysed_reason"].value_counts().items():
            reasons.append({"reason": r, "n": int(n)})
    refit = ""
    if record.get("labels"):
        lab = record["labels"]
        cv = lab.get("cross_validated", {})
        refit = (f"Grades refitted on {lab['labels']} labels by an analyst ({lab['damaged']} damaged); on each label left "
                 f"out in turn the refit was right {100 * (cv.get('accuracy') or 0):.0f} % of the time.")
    dates = _dates(record)
    col = name_column(result, name_col)
    p_all = result["p_damaged"].to_numpy(dtype=float) if "p_damaged" in result else np.full(len(result), np.nan)
    damaged_rows = np.flatnonzero(np.isin(grades, sc.damaged))
    top_rows = damaged_rows[np.argsort(-np.nan_to_num(p_all[damaged_rows], nan=-1.0), kind="stable")][:10]
    where = lonlat(result, set(chips) | {int(i) for i in top_rows})
    anchor_of: dict[int, str] = {}
    items = []
    fac = result.attrs.get("damage_facilities")
    rings = []
    if fac is not None and len(fac):
        rings = sorted({int(c.split("_")[2][:-1]) for c in fac.columns if c.startswith("damaged_within_")})
        fcol = name_column(fac)
        rank = {lv: i for i, lv in enumerate(levels)}
        order = sorted(range(len(fac)), key=lambda k: -rank.get(fac["damage_grade"].iloc[k], -1))
        facilities = []
        for n, k in enumerate(order, start=1):
            f = fac.iloc[k]
            name = str(f[fcol]) if fcol and f[fcol] is not None else f"facility {k}"
            facilities.append({"name": name, "grade": f["damage_grade"], "colour": _hex(grade_colour(f["damage_grade"], levels)),
                               "buildings": int(f["buildings"]), "analysed": int(f.get("analysed", 0)), "sure": how_sure(f),
                               "damaged": damaged_count(f, scale),
                               "roof": _fmt(float(f["damaged_roof_m2"]), 0),
                               "rings": [int(f[f"damaged_within_{d}m"]) for d in rings]})
            inside = np.flatnonzero(result["facility"].to_numpy() == k) if "facility" in result else np.empty(0, int)
            members = sorted((int(i) for i in inside), key=lambda i: -rank.get(grades[i], -1))
            shown = [i for i in members if i in chips][:6]
            buildings = [_building(result, i, chips[i], building_title(result, i, col), levels, dates, where.get(i, ""))
                         for i in shown]
            anchor_of.update({i: f"facility-{n}" for i in shown})
            note = "" if members else "No building footprint inside: assessed as one polygon (its own row is not in the result)."
            if len(members) > 6:
                note = f"The 6 most damaged of its {len(members)} buildings."
            items.append({"anchor": f"facility-{n}", "title": name, "grade": f["damage_grade"],
                          "colour": _hex(grade_colour(f["damage_grade"], levels)), "note": note, "buildings": buildings,
                          "rings": [f"{int(f[f'damaged_within_{d}m'])} damaged buildings and "
                                    f"{_fmt(float(f[f'changed_m2_within_{d}m']), 0)} m² of changed roof within {d} m"
                                    for d in rings]})
        evidence_title = "Evidence per facility"
    else:
        facilities = []
        named = []
        if col is not None:
            named = [i for i in chips if isinstance(result[col].iloc[i], str) and result[col].iloc[i].strip()]
        if named:
            evidence_title = "Evidence per named building"
            pick = named
        else:
            evidence_title = f"Evidence: the {top} most damaged buildings"
            p = result["p_damaged"].to_numpy(dtype=float) if "p_damaged" in result else np.zeros(len(result))
            pick = sorted(chips, key=lambda i: -np.nan_to_num(p[i], nan=-1))[:top]
        for n, i in enumerate(pick, start=1):
            label = building_title(result, i, col)
            b = _building(result, i, chips[i], label, levels, dates, where.get(i, ""))
            items.append({"anchor": f"building-{n}", "title": label, "grade": b["grade"], "colour": b["colour"],
                          "note": "", "buildings": [b], "rings": []})
            anchor_of[i] = f"building-{n}"
    top_damaged = [{"title": building_title(result, int(i), col), "grade": grades[i], "p": _fmt(p_all[i], 2),
                    "colour": _hex(grade_colour(grades[i], levels)), "place": where.get(int(i), ""),
                    "anchor": anchor_of.get(int(i), "")} for i in top_rows]
    more_damaged = (f"The 10 most probably damaged of the {damaged_rows.size} buildings graded {' or '.join(sc.damaged)}."
                    if damaged_rows.size > 10 else "")
    labelled = [(result.geometry.iloc[int(i)], str(result["building_id"].iloc[int(i)]) if "building_id" in result else str(i))
                for i in top_rows]
    fac_shapes = []
    if fac is not None and len(fac):
        fcol = name_column(fac)
        fac_shapes = [(geom, str(fac[fcol].iloc[k]) if fcol and fac[fcol].iloc[k] is not None else f"facility {k + 1}")
                      for k, geom in enumerate(fac.geometry.values)]
    overview_after, overview_before = _overview_pngs(result, result.attrs.get("damage_overview"), record.get("grid", {}),
                                                     levels, labelled, fac_shapes, fac.crs if fac is not None else None)
    inputs = record.get("inputs", {})
    prov = record.get("provenance", {})
    rows = [{"key": "before", "value": inputs.get("before", "")}, {"key": "after", "value": inputs.get("after", "")},
            {"key": "footprints", "value": inputs.get("footprints", "")}]
    for epoch in ("before", "after", "other"):
        for f in prov.get("inputs", {}).get(epoch, []):
            rows.append({"key": f"{f.get('role', epoch)} file", "value": f"{f['path']} ({f['bytes']:,} bytes; SHA-256 {f['sha256']}"
                                                         + (f"; acquired {f['acquired']}" if f.get("acquired") else "")
                                                         + ")"})
    if prov:
        rows.append({"key": "run", "value": f"started {prov.get('started')} and took {prov.get('seconds')} s"})
        rows.append({"key": "versions", "value": ", ".join(f"{k} {v}" for k, v in prov.get("versions", {}).items())})
    reg = record.get("registration", {})
    if reg:
        rows.append({"key": "co-registration", "value": ", ".join(f"{k} {v}" for k, v in reg.items())})
    cfg = record.get("config", {})
    rows.append({"key": "configuration", "value": ", ".join(f"{k}={v}" for k, v in cfg.items())})
    model = record.get("model", {})
    if model:
        rows.append({"key": "evidence model", "value": f"{model.get('features')}; {model.get('fitted_on', '')}"})
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    when = prov.get("started", datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    return env.from_string(_TEMPLATE).render(
        title=title or "Building damage assessment",
        subtitle=f"{len(result)} buildings graded on the {sc.source or scale} scale; assessed {when}.",
        overview_after=overview_after, overview_before=overview_before,
        legend=[{"name": lv, "colour": _hex(grade_colour(lv, levels))} for lv in (*levels, NOT_ANALYSED)],
        headline=headline(record), count_note=count_note, counts=counts, top_damaged=top_damaged,
        more_damaged=more_damaged, reasons=reasons, refit=refit, facilities=facilities, rings=rings,
        evidence_title=evidence_title, items=items, provenance=rows, version=record.get("version", ""),
    )


def write_report(result: gpd.GeoDataFrame, path: str | PathLike, title: str | None = None, top: int = 12,
                 name_col: str | None = None) -> Path:
    """Write :func:`render_report` atomically to ``path``."""
    path = Path(path)
    text = render_report(result, title, top, name_col)
    with _atomic(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path

