"""Assessing a result again from the inputs its run record names: its chips, the same grades, one-line refusals."""

from __future__ import annotations

import copy
import shutil
import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

import damage
from damage.errors import DamageWarning, InvalidLabelsError, OutputError
from damage.report.chips import Chip, Overview
from damage.run.rerun import reassess
from damage.scenes.synthetic import make_scene, write_pair

DAMAGED = (1, 5, 10)
PNG = b"\x89PNG\r\n\x1a\n"


def _scene():
    """A 128 px scene of 16 buildings (cells of 32 px), three of them destroyed."""
    return make_scene(size=128, buildings=16, damaged=DAMAGED, seed=2)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A pair and its footprints on disk, assessed on the EMS scale and written with its run record."""
    folder = tmp_path_factory.mktemp("rerun")
    b, a, f = write_pair(_scene(), folder)
    result = damage.assess(b, a, f, scale="ems")
    path = damage.write(result, folder / "result.geojson")
    return b, a, f, result, path


def _edited(result: gpd.GeoDataFrame, edit) -> gpd.GeoDataFrame:
    """A copy of ``result`` whose run record ``edit`` changed (in place)."""
    out = result.copy()
    out.attrs = copy.deepcopy(result.attrs)
    edit(out.attrs["damage"])
    return out


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# -- what it gives -------------------------------------------------------------------------------------------
def test_a_written_result_assessed_again_gives_chips_of_its_most_damaged_buildings_and_its_grades(run):
    *_, result, path = run
    again = reassess(path, chips=3)
    # the grades of the run, on the run's own scale (its configuration, not the default's)
    assert again["damage_grade"].tolist() == result["damage_grade"].tolist()
    assert set(again["damage_grade"]) == {"No visible damage", "Destroyed"}
    assert np.flatnonzero(again["damage_grade"] == "Destroyed").tolist() == list(DAMAGED)
    np.testing.assert_allclose(again["p_damaged"], result["p_damaged"], rtol=1e-9)
    assert again["building_id"].tolist() == result["building_id"].tolist()
    # chips of the three most damaged, by input position, cut from the pixels their grades came from
    chips = again.attrs["damage_chips"]
    assert sorted(chips) == list(DAMAGED)
    for chip in chips.values():
        assert isinstance(chip, Chip) and chip.before.startswith(PNG) and chip.after.startswith(PNG)
        assert chip.metres_per_pixel > 0
    assert isinstance(again.attrs["damage_overview"], Overview)
    assert "damage_chips" not in result.attrs  # the result read is not touched


def test_chips_for_more_buildings_and_a_result_given_in_memory(run):
    *_, result, path = run
    top = int(np.argmax(result["p_damaged"]))
    for source in (path, result):
        again = reassess(source, chips=1, chips_for=[0, 2])
        assert sorted(again.attrs["damage_chips"]) == sorted({top, 0, 2})
        assert again["damage_grade"].tolist() == result["damage_grade"].tolist()
    assert sorted(reassess(result, chips=0, chips_for=[3]).attrs["damage_chips"]) == [3]


def test_an_input_without_a_sha256_is_not_checked_but_read_again(run):
    # a remote input is recorded without its SHA-256: it is not hashed, only graded again
    *_, result, _ = run

    def unhash(record):
        record["provenance"]["inputs"]["before"][0]["sha256"] = None
        record["provenance"]["inputs"]["other"][0]["sha256"] = None

    again = reassess(_edited(result, unhash), chips=1)
    assert again["damage_grade"].tolist() == result["damage_grade"].tolist()


def test_footprints_given_in_memory_are_passed_again(run):
    b, a, f, _, _ = run
    fp = gpd.read_file(f)
    result = damage.assess(b, a, fp.iloc[:8])  # a selection, as a region run with `where` makes
    with pytest.raises(InvalidLabelsError, match="the result: its footprints were given in memory") as exc:
        reassess(result)
    _one_line(exc)
    again = reassess(result, chips=2, footprints=fp.iloc[:8])
    assert len(again) == 8 and again["damage_grade"].tolist() == result["damage_grade"].tolist()
    assert sorted(again.attrs["damage_chips"]) == [1, 5]


def test_labels_and_facilities_from_files_are_applied_again_and_the_runs_warnings_not_repeated(tmp_path):
    s = _scene()
    b, a, f = write_pair(s, tmp_path)
    # most footprints far from the imagery: the run warns, its reassessment keeps that to itself
    fp = s.footprints
    far = [fp.assign(geometry=fp.geometry.translate(5_000.0 * k, 0.0), building_id=fp["building_id"] + 100 * k)
           for k in (1, 2)]
    gpd.GeoDataFrame(pd.concat([fp, *far], ignore_index=True), crs=fp.crs).to_file(f)
    labels = gpd.GeoDataFrame({"damage_grade": ["destroyed"]}, geometry=[fp.geometry.iloc[0]], crs=fp.crs)
    labels.to_file(tmp_path / "labels.geojson")
    clinic = shapely.box(*fp.geometry.iloc[[2, 3]].total_bounds).buffer(1.0)
    gpd.GeoDataFrame({"name": ["Clinic"]}, geometry=[clinic], crs=fp.crs).to_file(tmp_path / "facilities.geojson")
    with pytest.warns(DamageWarning, match="lie outside the imagery"):
        result = damage.assess(b, a, f, labels=tmp_path / "labels.geojson", facilities=tmp_path / "facilities.geojson")
    assert result["damage_grade"].iloc[0] == "destroyed" and result["grade_source"].iloc[0] == "analyst"
    assert result["facility"].tolist()[:4] == [-1, -1, 0, 0]
    damage.write(result, tmp_path / "result.gpkg")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DamageWarning)  # the run's warning again would fail
        again = reassess(tmp_path / "result.gpkg", chips=1)
    assert again["damage_grade"].tolist() == result["damage_grade"].tolist()
    assert again["grade_source"].tolist() == result["grade_source"].tolist()
    assert again["facility"].tolist() == result["facility"].tolist()
    assert {2, 3} <= set(again.attrs["damage_chips"])  # a facility's buildings always get their chips


# -- refusals -----------------------------------------------------------------------------------------------
def test_a_result_without_its_run_record_is_refused_in_one_line(run, tmp_path):
    *_, result, path = run
    plain = tmp_path / "plain.geojson"
    gpd.GeoDataFrame(result[["building_id", "damage_grade"]], geometry=result.geometry).to_file(plain)
    with pytest.raises(InvalidLabelsError, match="has no run record naming its inputs; assess again with --report") as exc:
        reassess(plain)
    assert _one_line(exc).startswith(f"{plain}: ")
    bare = result.copy()
    bare.attrs = {}
    with pytest.raises(InvalidLabelsError, match="^the result: has no run record") as exc:
        reassess(bare)
    _one_line(exc)
    for edit in (lambda r: r.pop("config"), lambda r: r.pop("provenance"),
                 lambda r: r["provenance"].pop("inputs"), lambda r: r["provenance"].update(inputs={})):
        with pytest.raises(InvalidLabelsError, match="has no run record naming its inputs"):
            reassess(_edited(result, edit))


def test_labels_or_facilities_given_in_memory_are_refused(run):
    *_, result, _ = run
    for key in ("labels", "facilities"):
        edited = _edited(result, lambda r, key=key: r.update({key: {"source": "GeoDataFrame"}}))
        with pytest.raises(InvalidLabelsError, match="its labels or facilities were given in memory") as exc:
            reassess(edited)
        _one_line(exc)


def test_an_input_gone_or_changed_since_is_refused_in_one_line(run, tmp_path):
    *_, result, _ = run
    gone = tmp_path / "gone.tif"
    for epoch in ("before", "after", "other"):
        edited = _edited(result, lambda r, e=epoch: r["provenance"]["inputs"][e][0].update(path=str(gone)))
        with pytest.raises(OutputError, match="an input of the result is gone; cannot cut its evidence") as exc:
            reassess(edited)
        assert _one_line(exc).startswith(f"{gone}: ")
        edited = _edited(result, lambda r, e=epoch: r["provenance"]["inputs"][e][0].update(sha256="0" * 64))
        with pytest.raises(OutputError, match=r"changed since the result was assessed \(SHA-256 differs\)") as exc:
            reassess(edited)
        _one_line(exc)


def test_a_footprints_file_edited_after_the_run_is_refused(run, tmp_path):
    b, a, f, _, _ = run
    for p in (b, a, f):
        shutil.copy(p, tmp_path / p.name)
    b, a, f = (tmp_path / p.name for p in (b, a, f))
    path = damage.write(damage.assess(b, a, f), tmp_path / "result.parquet")
    fp = gpd.read_file(f)
    fp.iloc[:3].to_file(f)
    with pytest.raises(OutputError, match=r"footprints.geojson: changed since .*result.parquet was assessed") as exc:
        reassess(path)
    _one_line(exc)
    f.unlink()
    with pytest.raises(OutputError, match="footprints.geojson: an input of .*result.parquet is gone"):
        reassess(path)


def test_a_result_whose_grades_were_edited_is_refused(run):
    *_, result, _ = run
    edited = result.copy()
    edited.attrs = copy.deepcopy(result.attrs)
    edited.loc[edited.index[0], "damage_grade"] = "Destroyed"
    with pytest.raises(OutputError, match="the result: assessing its inputs again gives other grades; was it edited") as exc:
        reassess(edited)
    _one_line(exc)
    fewer = result.iloc[1:].copy()
    fewer.attrs = copy.deepcopy(result.attrs)
    with pytest.raises(OutputError, match="gives other grades"):
        reassess(fewer)
