"""A page for labelling buildings: their before/after chips and a grade choice each; a button
saves the labels as a GeoJSON file that ``damage assess --labels`` reads.

One self-contained HTML file (chips embedded, no network, no server): the after chips show the
roof as it is; the changed pixels and the model's grade are behind two checkboxes (CSS, no script),
so they do not anchor the judgement. The only script turns the choices into a file to download.
"""

from __future__ import annotations

import base64
import json
from os import PathLike
from pathlib import Path

import geopandas as gpd

from damage.grading import SCALES
from damage.io.writers import _atomic, to_geojson_text
from damage.report.chips import Chip

__all__ = ["render_label_page", "write_label_page"]

_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font: 15px/1.4 system-ui, sans-serif; max-width: 1100px; margin: 0 auto; padding: 1em; }
.item { display: flex; gap: 10px; flex-wrap: wrap; border-bottom: 1px solid #ddd; padding: .8em 0; }
.item img { width: 220px; height: 220px; object-fit: contain; image-rendering: pixelated; border: 1px solid #bbb; }
fieldset { border: 1px solid #ccc; min-width: 220px; } label { display: block; padding: .1em 0; }
button { font-size: 1.05em; padding: .5em 1.2em; margin: 1em 0; } .muted { color: #666; }
.changed, .model { display: none; }
#show-changed:checked ~ form .changed { display: block; } #show-changed:checked ~ form .plain { display: none; }
#show-model:checked ~ form .model { display: block; }
.toggle { background: #f5f5f7; padding: .4em .8em; display: inline-block; margin-right: 1em; }
</style></head><body>
<h1>{{ title }}</h1>
<p>For each building, compare the before and after images and choose its grade ({{ scale }} scale), or leave it
unsure. Then <b>save the labels</b>: the button saves <code>{{ filename }}</code> (in your downloads folder); pass it as
it is to <code>damage assess ... --labels {{ filename }}</code>.</p>
<input type="checkbox" id="show-changed"><label class="toggle" for="show-changed">show the changed pixels in red</label>
<input type="checkbox" id="show-model"><label class="toggle" for="show-model">show the model's grade (judge first)</label>
<form id="labels">
{% for item in items %}
<div class="item">
<figure><img alt="before" src="data:image/png;base64,{{ item.before }}"><figcaption>Before</figcaption></figure>
<figure class="plain"><img alt="after" src="data:image/png;base64,{{ item.after }}"><figcaption>After</figcaption></figure>
{% if item.changed %}<figure class="changed"><img alt="after, changed pixels in red" src="data:image/png;base64,{{ item.changed }}"><figcaption>After, changed pixels in red</figcaption></figure>{% endif %}
<fieldset><legend>#{{ item.rank }} {{ item.label }}</legend>
<p class="muted model">model: {{ item.model_grade }}, p_damaged {{ item.p }}</p>
{% for lv in levels %}<label><input type="radio" name="b{{ item.rank }}" value="{{ lv }}"> {{ lv }}</label>{% endfor %}
<label><input type="radio" name="b{{ item.rank }}" value="" checked> unsure</label>
</fieldset></div>
{% endfor %}
<button type="button" id="save">Save labels</button> <span id="said" class="muted"></span>
</form>
<script type="application/json" id="picks">{{ picks_json }}</script>
<script>
document.getElementById("save").addEventListener("click", function () {
  var picks = JSON.parse(document.getElementById("picks").textContent);
  var done = 0;
  picks.features.forEach(function (f) {
    var chosen = document.querySelector('input[name="b' + f.properties.suggest_rank + '"]:checked');
    f.properties.grade = chosen && chosen.value ? chosen.value : null;
    if (f.properties.grade) { done += 1; }
  });
  var blob = new Blob([JSON.stringify(picks)], {type: "application/geo+json"});
  var a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = "{{ filename }}";
  document.body.appendChild(a); a.click(); a.remove();
  document.getElementById("said").textContent = done + " labels saved to " + a.download;
});
</script>
</body></html>
"""


def render_label_page(picks: gpd.GeoDataFrame, chips: dict[int, Chip], scale: str = "xbd",
                      filename: str = "labels.geojson", title: str = "Buildings to label") -> str:
    """HTML of the labelling page for ``picks`` (:func:`damage.analysis.analyst.suggest_labels`), whose
    index holds the input positions that key ``chips``."""
    from jinja2 import Environment, select_autoescape
    from markupsafe import Markup

    items = []
    for pos, row in picks.iterrows():
        chip = chips.get(int(pos))
        if chip is None:
            continue
        p = row.get("p_damaged")
        ident = str(row["building_id"]) if "building_id" in picks and row["building_id"] is not None else f"row {int(pos) + 1}"
        items.append({"rank": int(row["suggest_rank"]), "label": f"building {ident}", "model_grade": row.get("model_grade"),
                      "p": f"{p:.2f}" if p == p else "n/a", "before": base64.b64encode(chip.before).decode("ascii"),
                      "after": base64.b64encode(chip.after).decode("ascii"),
                      "changed": base64.b64encode(chip.after_changed).decode("ascii") if chip.after_changed else ""})
    keep = [c for c in ("building_id", "suggest_rank", "model_grade", "p_damaged", "grade") if c in picks]
    slim = picks[keep + [picks.geometry.name]].copy()
    doc = json.loads(to_geojson_text(slim))
    doc.pop("damage", None)
    # inside <script>: "</" must not close it
    picks_json = json.dumps(doc).replace("</", "<\\/")
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    return env.from_string(_TEMPLATE).render(title=title, scale=scale, levels=SCALES[scale].levels, items=items,
                                             picks_json=Markup(picks_json), filename=filename)


def write_label_page(picks: gpd.GeoDataFrame, chips: dict[int, Chip], path: str | PathLike, scale: str = "xbd",
                     filename: str = "labels.geojson") -> Path:
    """Write :func:`render_label_page` atomically."""
    path = Path(path)
    text = render_label_page(picks, chips, scale, filename)
    with _atomic(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
