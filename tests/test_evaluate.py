"""Evaluation against reference labels: matching, hand-computed scores, readers, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from click.testing import CliRunner

import damage
from damage.analysis.evaluate import binary_scores, class_scores, confusion_matrix, match, roc_auc
from damage.cli import main
from damage.errors import InvalidLabelsError
from damage.io.labels import read_labels

XBD = Path(__file__).resolve().parent / "data" / "xbd"
XBD_POST = XBD / "joplin-tornado_00000050_post_disaster.json"
LEVELS = ("no-damage", "minor-damage", "major-damage", "destroyed")


def test_confusion_matrix_by_hand():
    truth = ["no-damage", "no-damage", "destroyed", "major-damage", "destroyed", "minor-damage"]
    pred = ["no-damage", "destroyed", "destroyed", "destroyed", "major-damage", "no-damage"]
    conf = confusion_matrix(np.array(truth, object), np.array(pred, object), LEVELS)
    expected = np.array([[1, 0, 0, 1], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 1]])
    np.testing.assert_array_equal(conf, expected)
    per_class, harmonic = class_scores(conf, LEVELS)
    # no-damage: tp 1, fp 1 (the minor), fn 1 (called destroyed) -> p = r = f1 = 0.5
    assert per_class["no-damage"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    # destroyed: tp 1, fp 2, fn 1 -> p 1/3, r 1/2, f1 0.4
    assert per_class["destroyed"]["precision"] == pytest.approx(1 / 3, abs=1e-4)
    assert per_class["destroyed"]["f1"] == pytest.approx(0.4)
    assert per_class["minor-damage"]["f1"] == 0.0
    assert harmonic == 0.0  # a class with F1 0 sinks the harmonic mean


def test_harmonic_mean_skips_absent_classes():
    conf = np.array([[3, 1, 0, 0], [1, 3, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    per_class, harmonic = class_scores(conf, LEVELS)
    assert per_class["no-damage"]["f1"] == pytest.approx(0.75)
    assert harmonic == pytest.approx(0.75)


def test_binary_scores_and_auc_by_hand():
    truth = np.array([1, 1, 1, 0, 0, 0, 0], bool)
    pred = np.array([1, 1, 0, 1, 0, 0, 0], bool)
    b = binary_scores(truth, pred)
    assert (b["tp"], b["fp"], b["fn"], b["tn"]) == (2, 1, 1, 3)
    assert b["precision"] == pytest.approx(2 / 3) and b["recall"] == pytest.approx(2 / 3)
    # scores: positives 0.9, 0.8, 0.3; negatives 0.7, 0.3, 0.1, 0.0
    # pairs won: 0.9 > 4, 0.8 > 4, 0.3 > 2 and ties 1 (counts 1/2) -> 10.5 / 12
    score = np.array([0.9, 0.8, 0.3, 0.7, 0.3, 0.1, 0.0])
    assert roc_auc(truth, score) == pytest.approx(10.5 / 12)
    assert np.isnan(roc_auc(np.ones(3, bool), np.arange(3.0)))


def test_match_is_one_to_one_by_overlap():
    fps = np.array([shapely.box(0, 0, 10, 10), shapely.box(20, 0, 30, 10), shapely.box(40, 0, 50, 10)])
    labels = np.array([
        shapely.box(1, 0, 11, 10),  # mostly footprint 0
        shapely.box(0, 0, 10, 10),  # exactly footprint 0: keeps it
        shapely.box(29, 0, 39, 10),  # IoU 1/19 with footprint 1: too small
        shapely.Point(45, 5),  # inside footprint 2
        shapely.Point(100, 100),  # nowhere
    ], dtype=object)
    index, duplicate = match(fps, labels, min_iou=0.25)
    np.testing.assert_array_equal(index, [-1, 0, -1, 2, -1])
    np.testing.assert_array_equal(duplicate, [True, False, False, False, False])


def test_points_in_one_footprint_keep_the_most_severe():
    fps = np.array([shapely.box(0, 0, 10, 10)])
    pts = np.array([shapely.Point(2, 2), shapely.Point(5, 5)], dtype=object)
    index, duplicate = match(fps, pts, severity=np.array([1, 3]))
    np.testing.assert_array_equal(index, [-1, 0])
    assert duplicate.tolist() == [True, False]


def _result_from(labels: gpd.GeoDataFrame, grades, scores) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"damage_grade": grades, "damage_score": scores}, geometry=labels.geometry.values, crs=labels.crs)


def test_xbd_reader_on_real_labels():
    labels = read_labels(XBD_POST)
    assert len(labels) == 15 and labels.crs.to_epsg() == 4326
    assert labels["grade"].value_counts().to_dict() == {"destroyed": 11, "major-damage": 3}
    assert labels["grade"].isna().sum() == 1  # un-classified: kept, not scored
    assert labels["label_id"].str.len().gt(30).all()  # xBD uids
    pre = read_labels(XBD / "joplin-tornado_00000050_pre_disaster.json")
    assert pre["grade"].isna().all() or set(pre["grade"].dropna()) <= set(LEVELS)


def test_evaluate_on_xbd_labels_exact_copy():
    labels = read_labels(XBD_POST)
    grades = labels["grade"].fillna("no-damage").tolist()
    scores = [0.9 if g in ("major-damage", "destroyed") else 0.1 for g in grades]
    ev = damage.evaluate(_result_from(labels, grades, scores), labels)
    assert ev.counts["evaluated"] == 14 and ev.counts["unscored"] == 1 and ev.counts["unmatched"] == 0
    assert ev.confusion[3, 3] == 11 and ev.confusion[2, 2] == 3 and ev.confusion.sum() == 14
    assert ev.binary["f1"] == 1.0 and np.isnan(ev.auc)  # no intact building: AUC undefined


def test_evaluate_counts_not_analysed_and_grades_shifted():
    labels = read_labels(XBD_POST)
    n = len(labels)
    grades = ["not-analysed"] * 2 + ["no-damage"] * 3 + ["destroyed"] * (n - 5)
    scores = [np.nan] * 2 + [0.1] * 3 + [0.9] * (n - 5)
    ev = damage.evaluate(_result_from(labels, grades, scores), labels)
    truth = [None if pd.isna(t) else t for t in labels["grade"]]
    used = [(t, g) for t, g in zip(truth, grades) if t is not None and g != "not-analysed"]
    assert ev.counts["not_analysed"] == sum(1 for t, g in zip(truth, grades) if t is not None and g == "not-analysed")
    assert ev.counts["evaluated"] == len(used)
    fn = sum(1 for t, g in used if g == "no-damage")
    assert ev.binary["fn"] == fn and ev.binary["tp"] == len(used) - fn


def test_unosat_points_and_vector_labels(tmp_path):
    fps = gpd.GeoDataFrame(
        {"damage_grade": ["destroyed", "no-damage", "major-damage"], "damage_score": [0.9, 0.05, 0.6]},
        geometry=[shapely.box(0, 0, 10, 10), shapely.box(20, 0, 30, 10), shapely.box(40, 0, 50, 10)],
        crs="EPSG:32615",
    )
    pts = gpd.GeoDataFrame({"Main_Damage_Site_Class": [1, 6, 4]},
                           geometry=[shapely.Point(5, 5), shapely.Point(25, 5), shapely.Point(45, 5)], crs="EPSG:32615")
    pts.to_file(tmp_path / "unosat.gpkg")
    labels = read_labels(tmp_path / "unosat.gpkg")
    assert labels["grade"].tolist() == ["destroyed", "no-damage", "minor-damage"]  # 4 "possible" -> minor
    ev = damage.evaluate(fps, labels)
    assert (ev.binary["tp"], ev.binary["fp"], ev.binary["tn"]) == (1, 1, 1)
    assert ev.auc == 1.0  # 0.9 > 0.6 and 0.05
    vec = fps.assign(grade=["destroyed", "no-damage", "destroyed"])[["grade", "geometry"]]
    vec.to_file(tmp_path / "truth.geojson")
    ev2 = damage.evaluate(fps, tmp_path / "truth.geojson")
    assert ev2.binary["f1"] == 1.0 and ev2.confusion[3, 2] == 1


def test_bad_labels(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidLabelsError, match="bad.json: not valid JSON"):
        read_labels(bad)
    off = gpd.GeoDataFrame({"grade": ["flattened"]}, geometry=[shapely.box(0, 0, 1, 1)], crs="EPSG:4326")
    off.to_file(tmp_path / "off.geojson")
    with pytest.raises(InvalidLabelsError, match="'flattened' is not on the xbd scale"):
        read_labels(tmp_path / "off.geojson")


def test_cli_evaluate(tmp_path):
    labels = read_labels(XBD_POST)
    grades = ["destroyed"] * len(labels)
    damage.write(_result_from(labels, grades, [0.9] * len(labels)), tmp_path / "r.geojson")
    out = CliRunner().invoke(main, ["evaluate", str(tmp_path / "r.geojson"), str(XBD_POST), "--json", str(tmp_path / "e.json")])
    assert out.exit_code == 0, out.output
    assert "confusion" in out.output and "ROC AUC" in out.output
    doc = json.loads((tmp_path / "e.json").read_text())
    assert doc["counts"]["evaluated"] == 14 and doc["confusion"][3][3] == 11 and doc["confusion"][2][3] == 3
    missing = CliRunner().invoke(main, ["evaluate", str(tmp_path / "r.geojson"), str(tmp_path / "nope.json")])
    assert missing.exit_code == 1 and missing.output.strip().startswith("Error:") and "nope.json" in missing.output


def test_bad_calls_are_one_line_damage_errors(tmp_path):
    import geopandas as gpd
    import pandas as pd
    import pytest
    import shapely

    import damage
    from damage.errors import DamageError, OutputError

    frame = gpd.GeoDataFrame({"damage_grade": ["destroyed"], "damage_score": [0.9]},
                             geometry=[shapely.box(0, 0, 10, 10)], crs="EPSG:32615")
    far = gpd.GeoDataFrame({"grade": ["destroyed"]}, geometry=[shapely.box(500, 500, 510, 510)], crs="EPSG:32615")
    near = gpd.GeoDataFrame({"grade": ["destroyed"]}, geometry=[shapely.box(0, 0, 10, 10)], crs="EPSG:32615")
    cases = [
        lambda: damage.evaluate(frame, far),  # nothing matched: not a table of zeros
        lambda: damage.evaluate(frame, near, scale="nope"),
        lambda: damage.evaluate(frame, near, min_iou=-5),
        lambda: damage.evaluate(frame, near, min_iou=0),
        lambda: damage.evaluate(frame, near, min_iou=1.5),
        lambda: damage.evaluate(frame.assign(damage_score="high"), near),
    ]
    for case in cases:
        with pytest.raises(DamageError) as err:
            case()
        assert len(str(err.value).splitlines()) == 1
    with pytest.raises(OutputError, match="x.geojson"):
        damage.write(pd.DataFrame({"a": [1]}), tmp_path / "x.geojson")
    assert damage.evaluate(frame, near).binary["tp"] == 1


@pytest.mark.parametrize("mutate", ["lng_lat string", "properties null", "feature not object", "wkt number", "bad wkt"])
def test_a_malformed_xbd_file_is_one_line(tmp_path, mutate):
    import json

    from damage.errors import InvalidLabelsError
    from damage.io.labels import read_labels

    src = Path(__file__).parent / "data" / "xbd" / "joplin-tornado_00000050_post_disaster.json"
    doc = json.loads(src.read_text())
    feats = doc["features"]["lng_lat"]
    if mutate == "lng_lat string":
        doc["features"]["lng_lat"] = "POLYGON"
    elif mutate == "properties null":
        feats[0]["properties"] = None  # allowed: an unclassified building without properties
    elif mutate == "feature not object":
        feats[1] = 42
    elif mutate == "wkt number":
        feats[2]["wkt"] = 7
    else:
        feats[2]["wkt"] = "POLYGON ((0 0, 1"
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(doc))
    if mutate == "properties null":
        assert len(read_labels(path)) == len(feats)
        return
    with pytest.raises(InvalidLabelsError) as err:
        read_labels(path)
    assert len(str(err.value).splitlines()) == 1 and "labels.json" in str(err.value)
