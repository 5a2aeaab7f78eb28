"""Evidence an analyst can publish: facilities, chips, the offline HTML report."""

from __future__ import annotations

import re
import shutil
import subprocess
import warnings

import geopandas as gpd
import numpy as np
import pytest
import shapely
from click.testing import CliRunner
from conftest import SAMPLE

import damage
from damage.analysis.facilities import assign, summarise
from damage.cli import main
from damage.errors import DamageWarning
from damage.report.html import render_report


def _facilities(fp: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """A campus around footprints 10-13 (and whatever else it holds), and an empty lot with no footprint."""
    utm = fp.to_crs(fp.estimate_utm_crs())
    campus = utm.geometry.iloc[10:14].union_all().convex_hull.buffer(5)
    x0, y0, x1, y1 = utm.total_bounds
    grid = [(x, y) for x in np.linspace(x0, x1, 40) for y in np.linspace(y0, y1, 40)]
    centre = utm.geometry.iloc[10].centroid  # near buildings the imagery covers
    grid.sort(key=lambda p: centre.distance(shapely.Point(p)))
    empty = next(c for c in (shapely.Point(p).buffer(6) for p in grid)
                 if not utm.intersects(c.buffer(2)).any() and not campus.intersects(c))
    return gpd.GeoDataFrame({"name": ["St. Mary's <campus>", "Empty lot"], "beds": [120, 0]},
                            geometry=[campus, empty], crs=utm.crs).to_crs(fp.crs)


@pytest.fixture(scope="module")
def sample_run():
    fp = gpd.read_file(SAMPLE / "footprints.geojson")
    fac = _facilities(fp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamageWarning)  # the run's own notes; any other warning fails
        result = damage.assess(SAMPLE / "before", SAMPLE / "after", SAMPLE / "footprints.geojson", facilities=fac, chips=5)
    return fp, fac, result


@pytest.mark.parametrize("crs", ["EPSG:32610", "EPSG:2227", "EPSG:4326"])
def test_facility_areas_and_rings_are_in_metres_whatever_the_crs_unit(crs):
    """The same 10 x 10 m roofs and a house 38 m away, given in metres, US survey feet or degrees."""
    utm = gpd.GeoDataFrame({"damage_grade": ["destroyed", "major-damage", "major-damage"],
                            "changed_fraction": [1.0, 0.5, 0.5]},
                           geometry=[shapely.box(500000, 4180000, 500010, 4180010),
                                     shapely.box(500048, 4180000, 500058, 4180010),
                                     shapely.box(500140, 4180000, 500150, 4180010)], crs="EPSG:32610")
    fac = gpd.GeoDataFrame({"name": ["A"]}, geometry=[shapely.box(499998, 4179998, 500012, 4180012)], crs="EPSG:32610")
    fp, fa = utm.to_crs(crs), fac.to_crs(crs)
    s = summarise(fp, fa, assign(fp, fa)).iloc[0]
    assert s["damaged_roof_m2"] == pytest.approx(100.0, rel=0.01)
    # 36 m to the second house (within 50 m), 128 m to the third (within 250 m, not 100 m)
    assert (s["damaged_within_50m"], s["damaged_within_100m"], s["damaged_within_250m"]) == (1, 1, 2)
    assert s["changed_m2_within_50m"] == pytest.approx(50.0, rel=0.01)


def test_buildings_belong_to_the_facility_holding_them():
    fp = gpd.GeoDataFrame(geometry=[shapely.box(0, 0, 10, 10), shapely.box(50, 0, 60, 10), shapely.box(200, 0, 210, 10)],
                          crs="EPSG:32615")
    fac = gpd.GeoDataFrame(geometry=[shapely.box(-5, -5, 70, 20), shapely.box(40, -2, 65, 15)], crs="EPSG:32615")
    # the smallest holding facility wins where facilities nest; outside any is -1
    assert assign(fp, fac).tolist() == [0, 1, -1]


def test_a_facility_is_graded_by_its_worst_building_with_rings_around_it():
    fp = gpd.GeoDataFrame({"damage_grade": ["no-damage", "destroyed", "major-damage", "no-damage"],
                           "changed_fraction": [0.0, 0.9, 0.5, 0.0]},
                          geometry=[shapely.box(0, 0, 10, 10), shapely.box(20, 0, 30, 10), shapely.box(70, 0, 80, 10),
                                    shapely.box(400, 0, 410, 10)], crs="EPSG:32615")
    fac = gpd.GeoDataFrame({"name": ["A"]}, geometry=[shapely.box(-2, -2, 32, 12)], crs="EPSG:32615")
    s = summarise(fp, fac, assign(fp, fac)).iloc[0]
    assert s["damage_grade"] == "destroyed" and s["buildings"] == 2 and s["n_destroyed"] == 1
    assert s["damaged_share"] == 0.5 and s["damaged_roof_m2"] == pytest.approx(100.0)
    # the major-damage house 38 m east is within 50 m, the one 368 m east in no ring
    assert s["damaged_within_50m"] == 1 and s["changed_m2_within_50m"] == pytest.approx(50.0)
    assert s["damaged_within_250m"] == 1


def test_assess_grades_facilities_and_assesses_an_empty_one_as_a_polygon(sample_run):
    fp, fac, result = sample_run
    assert len(result) == len(fp) and (result["facility"] == 0).sum() >= 4 and (result["facility"] == 1).sum() == 0
    table = result.attrs["damage_facilities"]
    assert len(table) == 2 and table["name"].tolist() == fac["name"].tolist() and table["beds"].tolist() == [120, 0]
    assert table["buildings"].tolist()[1] == 1 and table["damage_grade"].iloc[1] != "not-analysed"
    assert result.attrs["damage"]["facilities"]["assessed_as_one_polygon"] == 1


def test_chips_are_kept_for_facility_buildings_and_the_most_damaged(sample_run):
    _, _, result = sample_run
    chips = result.attrs["damage_chips"]
    members = set(np.flatnonzero(result["facility"].to_numpy() >= 0).tolist())
    top = set(np.argsort(-result["p_damaged"].fillna(-1).to_numpy())[:5].tolist())
    assert members <= set(chips) and top <= set(chips)
    chip = chips[min(chips)]
    assert chip.before[:8] == b"\x89PNG\r\n\x1a\n" and chip.after[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_report_is_one_offline_file_with_every_section(sample_run):
    _, _, result = sample_run
    html = render_report(result, title="Sample <run>")
    # no request leaves the page: every image is embedded, nothing is linked from elsewhere
    assert not re.search(r'(src|href)\s*=\s*"(?!data:|#)', html)
    assert "http://" not in html and "https://" not in html and "<script" not in html
    for section in ('id="overview"', 'id="counts"', 'id="facilities"', 'id="evidence"', 'id="provenance"'):
        assert section in html
    assert "St. Mary&#39;s &lt;campus&gt;" in html and "Sample &lt;run&gt;" in html  # names are text, not markup
    assert html.count("data:image/png;base64,") >= 2 + 2 * 4  # two overviews, chips of the campus buildings
    sha = result.attrs["damage"]["provenance"]["inputs"]["after"][0]["sha256"]
    assert sha in html and "90 % interval" in html


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium (Debian package chromium) not installed")
def test_the_report_opens_in_headless_chromium_without_network(sample_run, tmp_path):
    _, _, result = sample_run
    from damage.report.html import write_report

    page = write_report(result, tmp_path / "report.html")
    dom = subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--proxy-server=127.0.0.1:9",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120).stdout
    for heading in ("Overview", "Buildings by grade", "Facilities", "Evidence per facility", "Provenance"):
        assert f">{heading}</h2>" in dom
    assert dom.count("<img") >= 10


def test_report_and_chips_from_a_result_file_read_the_inputs_again(tmp_path):
    out = tmp_path / "damage.geojson"
    runner = CliRunner()
    args = ["assess", str(SAMPLE / "before"), str(SAMPLE / "after"), str(SAMPLE / "footprints.geojson"), "-o", str(out),
            "--report", str(tmp_path / "first.html"), "--top", "3", "-q"]
    assert runner.invoke(main, args).exit_code == 0
    res = runner.invoke(main, ["report", str(out), "-o", str(tmp_path / "again.html"), "--top", "3"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "again.html").read_text().count("<img") == (tmp_path / "first.html").read_text().count("<img")
    res = runner.invoke(main, ["chips", str(out), "-o", str(tmp_path / "chips"), "--top", "3"])
    assert res.exit_code == 0, res.output
    assert len(list((tmp_path / "chips").glob("*_before.png"))) == 3
    res = runner.invoke(main, ["report", str(out), "-o", str(tmp_path / "again.html")])
    assert res.exit_code == 1 and "exists" in res.output


def test_a_changed_input_is_refused_when_cutting_evidence_again(tmp_path):
    import shutil as sh

    folder = tmp_path / "data"
    sh.copytree(SAMPLE, folder)
    out = tmp_path / "damage.geojson"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamageWarning)  # the run's own notes; any other warning fails
        damage.write(damage.assess(folder / "before", folder / "after", folder / "footprints.geojson"), out)
    tif = sorted((folder / "after").glob("*.tif"))[0]
    tif.write_bytes(tif.read_bytes() + b"\0")
    res = CliRunner().invoke(main, ["report", str(out), "-o", str(tmp_path / "r.html")])
    assert res.exit_code == 1 and "changed since" in res.output


def test_batch_writes_the_report_of_its_selection(tmp_path):
    fp = gpd.read_file(SAMPLE / "footprints.geojson")
    aoi = gpd.GeoDataFrame(geometry=[fp.to_crs(fp.estimate_utm_crs()).geometry.iloc[50].centroid.buffer(60)],
                           crs=fp.estimate_utm_crs())
    aoi.to_file(tmp_path / "aoi.geojson")
    res = CliRunner().invoke(main, ["batch", str(SAMPLE / "before"), str(SAMPLE / "after"), str(SAMPLE / "footprints.geojson"),
                                    "-o", str(tmp_path / "run"), "--chunk-size", "256", "--aoi", str(tmp_path / "aoi.geojson"),
                                    "--report", str(tmp_path / "r.html"), "--top", "2", "-q"])
    assert res.exit_code == 0, res.output
    html = (tmp_path / "r.html").read_text()
    n = len(gpd.read_file(tmp_path / "run" / "damage.geojson"))
    assert n < len(fp) and f"{n} buildings graded" in html and html.count("data:image/png;base64,") >= 2 + 4


def test_facilities_open_the_terminal_summary_with_how_sure_each_grade_is(sample_run):
    from damage.cli.summary import summary

    _, _, result = sample_run
    text = summary(result).splitlines()
    table = result.attrs["damage_facilities"]
    start = text.index("Facilities (2):")
    assert start <= 1 and text.index(next(t for t in text if t.endswith("buildings assessed"))) > start + 2
    campus = table.iloc[0]
    line = next(t for t in text if "St. Mary's <campus>" in t)
    assert campus["damage_grade"] in line and f"at {campus['worst_building']}: {campus['grade_confidence']}" in line
    assert campus["worst_building"] in set(result["building_id"])
    worst = result[result["building_id"] == campus["worst_building"]].iloc[0]
    assert worst["damage_grade"] == campus["damage_grade"] and worst["facility"] == 0
    assert f"p_damaged {worst['p_damaged']:.2f}" in line and "damaged within 50/100/250 m" in line
    assert "Empty lot" in text[start + 1] + text[start + 2]


@pytest.mark.parametrize("p, damaged, word", [(0.95, True, "sure"), (0.75, True, "likely"), (0.501, True, "uncertain"),
                                              (0.05, False, "sure"), (0.25, False, "likely"), (0.45, False, "uncertain"),
                                              (float("nan"), True, "unknown")])
def test_a_grade_says_how_sure_it_is(p, damaged, word):
    from damage.analysis.facilities import confidence

    assert confidence(p, damaged) == word
