"""Learning from the analyst: counts with intervals, refits from a few labels, what to label next."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pytest
from click.testing import CliRunner

import damage
from damage.analysis.analyst import apply_labels, suggest_labels
from damage.analysis.learn import damaged_count, refit, suggest
from damage.cli import main
from damage.errors import DamageWarning
from damage.grading import MODEL
from damage.scenes.synthetic import write_pair
from damage.scenes.town import Nuisances, make_town


# -- counts ------------------------------------------------------------------------------------
def test_damaged_count_of_certain_buildings_is_exact():
    c = damaged_count(np.r_[np.ones(7), np.zeros(30), np.nan])
    assert c == {"expected": 7.0, "low": 7, "high": 7, "buildings": 37, "offset_sd": 0.0, "level": 0.95}
    # labels are certain whatever the scene's offset
    assert damaged_count(np.r_[np.ones(7), np.zeros(30)], offset_sd=3.5)["high"] == 7


def test_damaged_count_interval_covers_draws_at_its_level():
    rng = np.random.default_rng(0)
    p = rng.beta(0.5, 3.0, size=400)
    c = damaged_count(p)
    draws = (rng.random((4000, p.size)) < p).sum(axis=1)
    inside = ((draws >= c["low"]) & (draws <= c["high"])).mean()
    assert 0.94 <= inside <= 0.975 and c["low"] < c["expected"] < c["high"]
    # many buildings: the normal approximation agrees with the exact convolution
    big = np.tile(p, 11)
    exact_like = damaged_count(big[:4000])
    approx = damaged_count(big)
    assert approx["buildings"] == big.size and approx["high"] - approx["low"] > exact_like["high"] - exact_like["low"]


# -- refit -------------------------------------------------------------------------------------
def _labelled(n: int, offset: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0.4, 0.5, size=(n, len(MODEL.features)))
    ev = {f: x[:, i] for i, f in enumerate(MODEL.features)}
    s = MODEL.logit(ev)
    y = rng.random(n) < 1 / (1 + np.exp(-(s + offset)))
    return ev, y


def test_refit_finds_a_scene_offset_and_a_few_labels_move_it_less():
    ev, y = _labelled(600, offset=2.0)
    many = refit(MODEL, ev, y)
    assert many.offset == pytest.approx(2.0, abs=0.45) and many.slope == pytest.approx(1.0, abs=0.3)
    five = {f: v[:5] for f, v in ev.items()}
    few = refit(MODEL, five, y[:5])
    loose = refit(MODEL, five, y[:5], prior_sd={"offset": 100.0, "slope": 100.0})
    assert abs(few.offset) < abs(loose.offset) and abs(few.slope - 1) < abs(loose.slope - 1)  # the prior holds it
    assert few.offset_sd > 3 * many.offset_sd  # and it knows five labels tell less than six hundred
    # the refitted model predicts what the labels say better than the default
    p_new, p_old = many.model.probability(ev), MODEL.probability(ev)
    assert np.mean((p_new - y) ** 2) < np.mean((p_old - y) ** 2)
    assert many.cv["auc"] is not None and many.cv["accuracy"] > 0.6 and many.labels == 600


def test_refit_on_intact_labels_only_lowers_probabilities_but_stays_finite():
    ev, _ = _labelled(10, offset=0.0)
    r = refit(MODEL, ev, np.zeros(10, bool))
    assert r.offset < 0 and np.isfinite(r.offset) and r.cv["auc"] is None
    assert (r.model.probability(ev) < MODEL.probability(ev)).all()


# -- suggest -----------------------------------------------------------------------------------
def test_suggest_picks_uncertain_buildings_spread_over_the_area():
    # a 30 x 30 lattice of buildings; the uncertain ones all sit in one corner
    xs, ys = np.meshgrid(np.arange(30.0), np.arange(30.0))
    x, y = xs.ravel() * 20, ys.ravel() * 20
    p = np.where((xs.ravel() < 6) & (ys.ravel() < 6), 0.5, 0.05)
    p[3] = np.nan  # not analysed: never picked
    ev = np.column_stack([p, np.zeros_like(p)])
    done = np.zeros(p.size, bool)
    done[7] = True
    picks = suggest(p, x, y, ev, 20, exclude=done)
    assert len(set(picks.tolist())) == 20 and 3 not in picks and 7 not in picks
    corner = (x[picks] < 120) & (y[picks] < 120)
    assert corner[0] and 0.2 <= corner.mean() <= 0.8  # the most uncertain first, yet not twenty neighbours
    assert np.ptp(x[picks]) > 400 and np.ptp(y[picks]) > 400


# -- on an assessment --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def town_result(tmp_path_factory):
    s = make_town(size=448, seed=3, nuisances=Nuisances(noise=3.0))
    folder = tmp_path_factory.mktemp("town")
    b, a, f = write_pair(s, folder)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamageWarning)  # the run's own notes; any other warning fails
        result = damage.assess(b, a, f)
    return s, (b, a, f), result


def _truth_labels(result: gpd.GeoDataFrame, rows: np.ndarray) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"grade": result["true_grade"].to_numpy()[rows]}, geometry=result.geometry.values[rows],
                            crs=result.crs)


def test_the_run_record_counts_damaged_buildings_with_an_interval(town_result):
    _, _, result = town_result
    c = result.attrs["damage"]["damaged_count"]
    truth = int(result["true_grade"].isin(["major-damage", "destroyed"])[result["damage_grade"] != "not-analysed"].sum())
    assert c["low"] <= c["expected"] <= c["high"] and c["buildings"] == int(result["p_damaged"].notna().sum())
    assert c["low"] <= truth <= c["high"], (c, truth)


def test_labels_refit_a_biased_scene_and_keep_the_analysts_grades(town_result):
    _, _, result = town_result
    # a scene whose evidence reads high everywhere (another sensor, say): the default model overcalls
    biased = result.copy()
    biased["ssim_excess"] = biased["ssim_excess"] + 1.5
    biased["p_damaged"] = MODEL.probability({f: biased[f].to_numpy(float) for f in MODEL.features})
    biased.loc[biased["damage_grade"] == "not-analysed", "p_damaged"] = np.nan
    intact = (biased["true_grade"] == "no-damage").to_numpy() & biased["p_damaged"].notna().to_numpy()
    before = (biased["p_damaged"].to_numpy()[intact] >= MODEL.cuts[1]).mean()
    rows = np.random.default_rng(1).choice(np.flatnonzero(biased["p_damaged"].notna()), 15, replace=False)
    out = apply_labels(biased, _truth_labels(biased, rows))
    assert (out["grade_source"].to_numpy()[rows] == "analyst").all() and (out["grade_source"] == "analyst").sum() == 15
    assert (out["damage_grade"].to_numpy()[rows] == biased["true_grade"].to_numpy()[rows]).all()
    rec = out.attrs["damage"]["labels"]
    assert rec["labels"] == 15 and rec["offset"] < 0 and rec["cross_validated"]["accuracy"] is not None
    after = (out["p_damaged"].to_numpy()[intact] >= out.attrs["damage"]["model"]["cuts"][1]).mean()
    assert before > 0.5 and after < 0.2  # far fewer intact buildings called major+
    assert result.attrs["damage"].get("labels") is None  # the input result is untouched


def test_labels_matching_nothing_are_refused(town_result):
    _, _, result = town_result
    near = _truth_labels(result, np.arange(3))
    far = near.set_geometry(near.geometry.translate(xoff=5000))
    with pytest.raises(damage.errors.InvalidLabelsError, match="none of the 3 labels"):
        apply_labels(result, far)


def test_suggest_then_label_then_assess_from_the_command_line(town_result, tmp_path):
    s, (b, a, f), result = town_result
    out = tmp_path / "damage.geojson"
    runner = CliRunner()
    res = runner.invoke(main, ["assess", str(b), str(a), str(f), "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    picks_path = tmp_path / "to_label.geojson"
    res = runner.invoke(main, ["suggest", str(out), "-n", "12", "-o", str(picks_path)])
    assert res.exit_code == 0, res.output
    picks = gpd.read_file(picks_path)
    assert len(picks) == 12 and picks["grade"].isna().all() and "damage_grade" not in picks
    assert picks["suggest_rank"].tolist() == list(range(1, 13))
    picks["grade"] = picks["true_grade"]  # the analyst fills in the grades
    picks.to_file(picks_path)
    labelled = tmp_path / "relabelled.geojson"
    res = runner.invoke(main, ["assess", str(b), str(a), str(f), "-o", str(labelled), "--labels", str(picks_path)])
    assert res.exit_code == 0, res.output
    assert "refitted on 12 of your labels" in res.output and "95 % interval" in res.output
    got = gpd.read_file(labelled)
    assert (got["grade_source"] == "analyst").sum() == 12


def test_suggest_labels_skips_what_the_analyst_graded(town_result):
    _, _, result = town_result
    rows = np.flatnonzero(result["p_damaged"].notna())[:5]
    out = apply_labels(result, _truth_labels(result, rows))
    picks = suggest_labels(out, 10)
    assert not set(picks.index) & set(result.index[rows])


# -- validation --------------------------------------------------------------------------------
def test_stratified_estimate_covers_the_true_count_and_finds_precision_and_recall():
    from damage.analysis.learn import stratified_estimate, validation_sample

    rng = np.random.default_rng(4)
    strata = np.array(["no-damage"] * 3000 + ["minor-damage"] * 400 + ["major-damage"] * 150 + ["destroyed"] * 80,
                      dtype=object)
    share = {"no-damage": 0.02, "minor-damage": 0.15, "major-damage": 0.6, "destroyed": 0.9}
    truth = rng.random(strata.size) < np.array([share[s] for s in strata])
    called = {"major-damage", "destroyed"}
    true_precision = truth[np.isin(strata, list(called))].mean()
    true_recall = truth[np.isin(strata, list(called))].sum() / truth.sum()
    covered, precision = [], []
    for seed in range(200):
        picks = validation_sample(strata, 120, seed)
        checked = np.zeros(strata.size, bool)
        checked[picks] = True
        est = stratified_estimate(strata, checked, truth, called)
        covered.append(est["damaged"]["low"] <= truth.sum() <= est["damaged"]["high"])
        precision.append(est["precision"])
    assert np.mean(covered) >= 0.9
    assert np.mean(precision) == pytest.approx(true_precision, abs=0.03)
    assert est["recall"] == pytest.approx(true_recall, abs=0.25)
    counts = {s: int((strata[picks] == s).sum()) for s in share}
    assert counts["destroyed"] >= 3 * 120 * 80 / strata.size  # rare grades get (well) more than their share


def test_validate_from_the_command_line(town_result, tmp_path):
    s, (b, a, f), result = town_result
    out = tmp_path / "damage.geojson"
    damage.write(result, out)
    sample = tmp_path / "sample.geojson"
    runner = CliRunner()
    res = runner.invoke(main, ["validate", str(out), "--sample", "40", "-o", str(sample)])
    assert res.exit_code == 0, res.output
    picked = gpd.read_file(sample)
    assert 30 <= len(picked) <= 45 and picked["grade"].isna().all()
    # blind: nothing of the model's grades or evidence in the checker's file; the building's id names it
    assert not {"model_grade", "damage_grade", "p_damaged", "damage_score", "validation_stratum"} & set(picked.columns)
    assert set(picked.columns) == {"building_id", "check_order", "grade", "geometry"}
    truth = dict(zip(gpd.read_file(out)["building_id"], result["true_grade"]))
    picked["grade"] = [truth[b] for b in picked["building_id"]]
    picked["geometry"] = picked.geometry.translate(5000, 5000)  # matched by id, not by where it was drawn
    picked.to_file(sample)
    res = runner.invoke(main, ["validate", str(out), "--labels", str(sample), "--json", str(tmp_path / "v.json")])
    assert res.exit_code == 0, res.output
    import json

    report = json.loads((tmp_path / "v.json").read_text())
    graded = result["damage_grade"] != "not-analysed"
    truth = int(result.loc[graded, "true_grade"].isin(["major-damage", "destroyed"]).sum())
    assert report["damaged"]["low"] <= truth <= report["damaged"]["high"], (report["damaged"], truth)
    assert "precision" in res.output and "95% interval" in res.output and "scope:" in res.output
    res = runner.invoke(main, ["validate", str(out)])
    assert res.exit_code == 1 and "either --sample" in res.output


def test_the_labelling_page_shows_each_pick_and_saves_what_assess_reads(town_result, tmp_path):
    import json
    import re

    s, (b, a, f), result = town_result
    out = tmp_path / "damage.geojson"
    assert CliRunner().invoke(main, ["assess", str(b), str(a), str(f), "-o", str(out), "-q"]).exit_code == 0
    page = tmp_path / "to_label.html"
    res = CliRunner().invoke(main, ["suggest", str(out), "-n", "6", "-o", str(tmp_path / "to_label.geojson"),
                                    "--page", str(page)])
    assert res.exit_code == 0, res.output
    html = page.read_text()
    assert html.count('type="radio"') == 6 * 5 and html.count('<figure class="plain">') == 6
    # the after roof is shown as it is; the changed pixels and the model's grade wait behind CSS checkboxes
    assert 12 <= html.count("data:image/png;base64,") <= 18 and ".changed, .model { display: none; }" in html
    assert 'id="show-changed"' in html and 'id="show-model"' in html and html.count("<script>") == 1
    assert "to_label.labels.geojson" in html  # the file the button saves, named on the page
    assert not re.search(r'(src|href)\s*=\s*"(?!data:|#)', html) and "https://" not in html
    doc = json.loads(re.search(r'<script type="application/json" id="picks">(.*?)</script>', html, re.S).group(1))
    assert doc["type"] == "FeatureCollection" and [f["properties"]["suggest_rank"] for f in doc["features"]] == list(
        range(1, 7))
    # what the page's button saves: the picks with the chosen grades; assess --labels reads it
    truth = result["true_grade"].to_numpy()
    position = {b: i for i, b in enumerate(gpd.read_file(out)["building_id"])}
    for feat in doc["features"]:
        feat["properties"]["grade"] = truth[position[feat["properties"]["building_id"]]]
        # the saved file names each building by its id: matched by it, wherever its outline was drawn
        feat["geometry"] = {"type": "Point", "coordinates": [0.0, 0.0]}
    saved = tmp_path / "to_label.labels.geojson"
    saved.write_text(json.dumps(doc))
    res = CliRunner().invoke(main, ["assess", str(b), str(a), str(f), "-o", str(tmp_path / "again.geojson"),
                                    "--labels", str(saved)])
    assert res.exit_code == 0 and "refitted on 6 of your labels" in res.output, res.output


def test_eye_labels_on_the_sample_tiles_refit_and_keep_the_plain_cases(tmp_path):
    """The library and CLI paths on the bundled real pair: its 18 buildings judged by eye as labels."""
    from conftest import SAMPLE

    labels = SAMPLE / "eye_labels.geojson"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamageWarning)  # the run's own notes; any other warning fails
        result = damage.assess(SAMPLE / "before", SAMPLE / "after", SAMPLE / "footprints.geojson", labels=labels)
    eye = gpd.read_file(labels)
    rows = eye["footprint_row"].to_numpy()
    assert (result["grade_source"].to_numpy()[rows] == "analyst").all() and (result["grade_source"] == "analyst").sum() == 18
    assert (result["damage_grade"].to_numpy()[rows] == eye["grade"].to_numpy()).all()
    rec = result.attrs["damage"]["labels"]
    assert rec["labels"] == 18 and rec["damaged"] == 10 and rec["cross_validated"]["auc"] == 1.0
    # the eighteen are plain cases: a refit on them narrows the count's interval a lot
    count = result.attrs["damage"]["damaged_count"]
    assert count["high"] - count["low"] < 0.5 * count["buildings"]
    picks = suggest_labels(result, 5)
    assert len(picks) == 5 and not set(picks.index) & set(rows)


def test_validate_counts_the_analysts_own_labels_as_known(town_result):
    from damage.analysis.analyst import validate, validation_sample_of

    s, _, result = town_result
    res = result.copy()
    analysed = np.flatnonzero((res["damage_grade"] != "not-analysed").to_numpy())
    mine = analysed[:6]
    res["grade_source"] = "model"
    res.loc[res.index[mine], "grade_source"] = "analyst"
    res.loc[res.index[mine[:4]], "damage_grade"] = "destroyed"
    res.loc[res.index[mine[4:]], "damage_grade"] = "no-damage"
    sample = validation_sample_of(res, 40, seed=2)
    assert not set(sample["building_id"]) & set(res["building_id"].iloc[mine])  # known ones are not sampled
    truth = dict(zip(res["building_id"], res["true_grade"]))
    sample["grade"] = [truth[b] for b in sample["building_id"]]
    report = validate(res, sample)
    d = report["damaged"]
    assert d["labelled_damaged"] == 4
    assert d["estimate"] == pytest.approx(d["estimated"]["estimate"] + 4)
    assert d["low"] == pytest.approx(d["estimated"]["low"] + 4) and d["high"] == pytest.approx(d["estimated"]["high"] + 4)
    assert "6 an analyst graded (counted as labelled, 4 damaged)" in report["scope"]
