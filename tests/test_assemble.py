"""Assembling a scene's windows: every footprint once in input order, why others are not analysed, the run record."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from damage._version import __version__
from damage.config import Config
from damage.grading import NOT_ANALYSED, SCALES, EvidenceModel, scene_model
from damage.run.assemble import EVIDENCE_COLUMNS, assemble, graded_table
from damage.run.measure import REASONS, Measured
from damage.run.optical import assess_window, run_inputs
from damage.run.plan import make_plan
from damage.run.scenefit import fit_scene
from damage.scenes.synthetic import make_scene, write_pair

#: Keys of the run record assemble writes, beside those of the ``record`` it is given.
RECORD_KEYS = {"version", "config", "ids", "registration", "normalization", "scene_stats", "clouds", "calibration",
               "fitted_on", "model", "scene_offset", "not_analysed", "counts", "damaged_count"}


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A 128 px scene of 16 buildings in four windows of 64 px, fitted, each window measured and graded."""
    s = make_scene(size=128, buildings=16, damaged=(1, 5, 10), seed=2)
    b, a, _ = write_pair(s, tmp_path_factory.mktemp("assemble"))
    fp = s.footprints
    plan = make_plan(b, a, fp, Config(), 64)
    fit, px = fit_scene(plan.before, plan.after, plan.grid, plan.geoms[plan.usable], plan.config)
    parts = {}
    for win in plan.windows:
        idx = plan.members(win)
        parts[win] = assess_window(plan.before, plan.after, plan.grid, fit, plan.geoms[idx], idx, plan.config,
                                   pixels=px).table
    return fp, parts, plan.config, fit, run_inputs(plan)


def test_every_footprint_once_in_input_order_whatever_the_order_of_the_parts(scene):
    fp, parts, cfg, fit, record = scene
    tables = list(parts.values())
    out = assemble(fp, tables, np.zeros(len(fp), bool), cfg, fit, record)
    assert len(out) == len(fp) and out.index.tolist() == fp.index.tolist()
    assert out["building_id"].tolist() == fp["building_id"].tolist()
    assert out.geometry.geom_equals(fp.geometry).all() and out.crs == fp.crs
    for table in tables:  # each row where its input position says, with the window's values
        got = out.iloc[table.index.to_numpy()]
        for column in table.columns:
            np.testing.assert_array_equal(got[column].to_numpy(), table[column].to_numpy(), err_msg=column)
    # the input's columns, then the evidence columns in their order, then the metrics' means
    assert list(out.columns) == [*fp.columns, *EVIDENCE_COLUMNS, "ssim_mean"]
    turned = [t.iloc[::-1, ::-1] for t in tables[::-1]]  # parts, their rows and their columns in another order
    again = assemble(fp, turned, np.zeros(len(fp), bool), cfg, fit, record)
    pd.testing.assert_frame_equal(pd.DataFrame(again), pd.DataFrame(out))


def test_footprints_in_no_part_are_not_analysed_and_say_why(scene):
    fp, parts, cfg, fit, record = scene
    extra = gpd.GeoDataFrame({"building_id": [16, 17, 18, 19], "damaged": False},
                             geometry=[None, shapely.Polygon(), shapely.box(501_000, 4_099_900, 501_010, 4_099_910),
                                       shapely.Point(500_010, 4_099_990)], crs=fp.crs)
    both = pd.concat([fp, extra], ignore_index=True)
    lost = parts["row00_col01"].index.to_numpy()  # its window failed
    assert lost.tolist() == [2, 3, 6, 7]
    failed = np.zeros(len(both), bool)
    failed[lost] = True
    failed[17] = True  # a failed chunk is the reason even for an unusable footprint
    kept = [t for w, t in parts.items() if w != "row00_col01"]
    out = assemble(both, kept, failed, cfg, fit, record)
    reasons = out["not_analysed_reason"].to_numpy(dtype=object)
    assert reasons[lost].tolist() == ["chunk failed"] * 4
    assert reasons[16:].tolist() == ["unusable footprint", "chunk failed", "outside imagery", "unusable footprint"]
    missing = np.r_[lost, 16:20]
    assert (out["damage_grade"].to_numpy()[missing] == NOT_ANALYSED).all()
    assert out["damage_score"].iloc[missing].isna().all() and out["p_damaged"].iloc[missing].isna().all()
    assert out["change_mean"].iloc[missing].isna().all() and (out["valid_fraction"].iloc[missing] == 0.0).all()
    # the others keep their window's values, reason and all
    for table in kept:
        got = out.iloc[table.index.to_numpy()]
        assert got["damage_grade"].tolist() == table["damage_grade"].tolist()
        assert got["not_analysed_reason"].tolist() == table["not_analysed_reason"].tolist()
    own = pd.concat(kept)["not_analysed_reason"].value_counts().to_dict()
    expected = {r: own.get(r, 0) for r in REASONS}
    expected["chunk failed"] += 5
    expected["unusable footprint"] += 2
    expected["outside imagery"] += 1
    assert out.attrs["damage"]["not_analysed"] == expected
    assert out.attrs["damage"]["counts"][NOT_ANALYSED] == int((out["damage_grade"] == NOT_ANALYSED).sum())


def test_with_no_part_every_footprint_gets_a_reason(scene):
    fp, _, cfg, fit, record = scene
    geoms = list(fp.geometry)
    geoms[3] = None
    some = fp.set_geometry(geoms)
    failed = np.zeros(len(fp), bool)
    failed[5] = True
    out = assemble(some, [], failed, cfg, fit, record)
    expected = ["outside imagery"] * len(fp)
    expected[3], expected[5] = "unusable footprint", "chunk failed"
    assert out["not_analysed_reason"].tolist() == expected
    assert (out["damage_grade"] == NOT_ANALYSED).all() and out["p_damaged"].isna().all()
    assert out.attrs["damage"]["counts"] == {**{level: 0 for level in SCALES["xbd"].levels}, NOT_ANALYSED: len(fp)}
    assert out.attrs["damage"]["damaged_count"]["buildings"] == 0


def test_the_run_record_holds_the_config_the_fit_the_model_and_the_counts(scene):
    fp, parts, cfg, fit, record = scene
    out = assemble(fp, list(parts.values()), np.zeros(len(fp), bool), cfg, fit, {**record, "region": {"chunks": 4}})
    rec = out.attrs["damage"]
    assert set(rec) == RECORD_KEYS | {"inputs", "grid", "region"}
    assert rec["version"] == __version__ and rec["config"] == cfg.to_dict()
    assert rec["ids"] == {"column": "building_id", "source": "building_id"}
    assert (rec["inputs"], rec["grid"], rec["region"]) == (record["inputs"], record["grid"], {"chunks": 4})
    assert {k: rec[k] for k in fit.to_dict()} == fit.to_dict()
    model, offset = scene_model(fit.to_dict(), 0.5, offset=None)
    assert rec["model"] == model.to_dict() and rec["scene_offset"] == offset
    grades = out["damage_grade"].to_numpy(dtype=object)
    assert rec["counts"] == {level: int((grades == level).sum()) for level in (*SCALES["xbd"].levels, NOT_ANALYSED)}
    assert sum(rec["counts"].values()) == len(fp)
    damaged = int(np.isin(grades, ["major-damage", "destroyed"]).sum())
    assert damaged > 0
    count = rec["damaged_count"]
    assert (count["method"], count["estimate"], count["buildings"]) == ("measured", damaged,
                                                                         int((grades != NOT_ANALYSED).sum()))
    assert rec["not_analysed"] == {r: int((out["not_analysed_reason"] == r).sum()) for r in REASONS}


def test_the_run_record_follows_the_scale_the_ids_and_the_scene_offset(scene):
    fp, parts, cfg, fit, record = scene
    tables = list(parts.values())
    plain = fp.drop(columns="building_id")
    out = assemble(plain, tables, np.zeros(len(fp), bool), cfg.replace(scale="binary", scene_offset=True), fit, record)
    rec = out.attrs["damage"]
    assert rec["ids"] == {"column": "building_id", "source": "derived"}
    assert out.columns[0] == "building_id" and out["building_id"].str.match(r"^b[0-9a-f]{8}$").all()
    assert list(rec["counts"]) == ["not damaged", "damaged", NOT_ANALYSED]
    model, offset = scene_model(fit.to_dict(), 0.5)
    assert rec["model"] == model.to_dict() and rec["scene_offset"] == offset and offset["offset_model"] is not None
    assert rec["damaged_count"]["method"] == "modelled"


def test_graded_table_grades_the_probability_of_analysed_footprints():
    model = EvidenceModel(("x",), (0.0,), (1.0,), (1.0,), 0.0, (0.2, 0.4, 0.7))  # p = 1 / (1 + exp(-x))
    x = np.array([-3.0, 0.0, 2.0, 5.0, np.nan])
    analysed = np.array([True, True, True, False, True])
    reason = np.array([None, None, None, "cloud or shadow", None], dtype=object)
    m = Measured({"not_analysed_reason": reason, "valid_fraction": np.array([1.0, 0.9, 0.8, 0.1, 1.0]), "x": x},
                 analysed, np.empty(0, dtype=object), np.empty(0, np.int64), np.empty(0))
    table = graded_table(m, np.array([7, 3, 11, 0, 5], dtype=np.int32), Config(), model)
    assert table.index.name == "position" and table.index.tolist() == [7, 3, 11, 0, 5]
    assert table.index.dtype == np.int64
    assert list(table.columns) == ["damage_grade", "damage_score", "p_damaged", "not_analysed_reason", "valid_fraction",
                                   "x"]
    # a missing feature counts as its centre: p = 0.5
    assert table["damage_grade"].tolist() == ["no-damage", "major-damage", "destroyed", NOT_ANALYSED, "major-damage"]
    np.testing.assert_array_equal(table["p_damaged"].to_numpy(), [0.0474, 0.5, 0.8808, np.nan, 0.5])
    np.testing.assert_array_equal(table["damage_score"].to_numpy(), table["p_damaged"].to_numpy())
    assert table["not_analysed_reason"].isna().tolist() == [True, True, True, False, True]
    assert table["not_analysed_reason"].iloc[3] == "cloud or shadow"
    binary = graded_table(m, np.arange(5), Config(scale="binary"), model)
    assert binary["damage_grade"].tolist() == ["not damaged", "damaged", "damaged", NOT_ANALYSED, "damaged"]
