"""A building's score does not depend on what else is assessed with it, nor on how much of the scene is damaged."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

import damage
from damage.errors import DamageWarning
from damage.scenes.synthetic import write_pair
from damage.scenes.town import Nuisances, make_town

TOLERANCE = 0.02  # damage_score, on a 0-1 scale


def _assess(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamageWarning)  # the run's own notes; any other warning fails
        return damage.assess(*args, **kw)


@pytest.fixture(scope="module")
def town(tmp_path_factory):
    s = make_town(size=448, seed=3, nuisances=Nuisances(shift=(1.2, -0.7), noise=3.0))
    b, a, f = write_pair(s, tmp_path_factory.mktemp("town"), after_crs="EPSG:4326")
    full = _assess(b, a, f)
    return b, a, gpd.read_file(f), full


def _picked(full: gpd.GeoDataFrame) -> np.ndarray:
    """Two damaged and three intact analysed buildings (five hospitals)."""
    ok = full["damage_grade"] != "not-analysed"
    damaged = np.flatnonzero(ok & full["true_grade"].isin(["major-damage", "destroyed"]))[:2]
    intact = np.flatnonzero(ok & (full["true_grade"] == "no-damage"))[:3]
    return np.concatenate([damaged, intact])


def test_five_buildings_alone_score_as_in_the_whole_scene(town):
    b, a, fp, full = town
    pick = _picked(full)
    alone = _assess(b, a, fp.iloc[pick])
    # the five are fitted on the imagery around them (Config.context: here the whole town), not on their bounding box
    np.testing.assert_allclose(alone.attrs["damage"]["grid"]["bounds"], full.attrs["damage"]["grid"]["bounds"], atol=1.0)
    squeezed = _assess(b, a, fp.iloc[pick], context=0.0)
    box = np.array(squeezed.attrs["damage"]["grid"]["bounds"])
    assert np.prod(box[2:] - box[:2]) < 0.8 * np.prod(np.subtract(full.attrs["damage"]["grid"]["bounds"][2:],
                                                                   full.attrs["damage"]["grid"]["bounds"][:2]))
    np.testing.assert_allclose(alone["damage_score"], full["damage_score"].iloc[pick], atol=TOLERANCE)
    assert (alone["damage_grade"].to_numpy() == full["damage_grade"].iloc[pick].to_numpy()).all()
    # the damaged ones are found and the intact ones are not, alone too
    assert (alone["p_damaged"].iloc[:2] > alone["p_damaged"].iloc[2:].max()).all()


def test_one_building_alone_scores_as_in_the_whole_scene(town):
    b, a, fp, full = town
    for i in _picked(full)[[0, 2]]:
        one = _assess(b, a, fp.iloc[[i]])
        assert one["damage_score"].iloc[0] == pytest.approx(full["damage_score"].iloc[i], abs=TOLERANCE)


def _identical(ref: gpd.GeoDataFrame, other: gpd.GeoDataFrame, name: str) -> None:
    """The same grade, score and every evidence value for every building (NaN where NaN)."""
    cols = [c for c in damage.EVIDENCE_COLUMNS if c in ref]
    assert (ref["damage_grade"].to_numpy() == other["damage_grade"].to_numpy()).all(), name
    for c in cols:
        x, y = ref[c].to_numpy(), other[c].to_numpy()
        if x.dtype.kind == "f" or y.dtype.kind == "f":
            np.testing.assert_array_equal(x.astype(float), y.astype(float), err_msg=f"{name}: {c}")
        else:
            assert (x == y).all(), f"{name}: {c}"


def _region_runs(b, a, fp, tmp_path) -> dict[str, gpd.GeoDataFrame]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamageWarning)  # the run's own notes; any other warning fails
        runs = {f"batch chunk {chunk}, {w} worker(s)": damage.batch(b, a, fp, tmp_path / f"run{chunk}_{w}", chunk_size=chunk,
                                                                   workers=w).result
                for chunk, w in ((128, 1), (256, 2))}
        runs["assess in windows of 256"] = damage.assess(b, a, fp, max_pixels=256 * 256)
    return runs


def test_batch_at_any_chunk_size_and_worker_count_is_assess_exactly(town, tmp_path):
    b, a, fp, full = town
    for name, out in _region_runs(b, a, fp, tmp_path).items():
        _identical(full, out, name)


def test_a_region_read_written_and_merged_in_parts_is_assess_exactly(town, tmp_path, monkeypatch):
    # a region's footprints pass through parts of 13 (read, planned, measured and merged a part at a time):
    # outlines repeated across the seams (the input's building_id is then no id: ids are derived and numbered
    # over every part), a footprint with no shape and one off the imagery
    from damage.run import parts

    monkeypatch.setattr(parts, "PART_ROWS", 13)
    b, a, fp, _ = town
    odd = fp.iloc[[3, 40, 3, 0]].copy()
    odd.geometry = [odd.geometry.iloc[0], odd.geometry.iloc[1], None, shapely.affinity.translate(odd.geometry.iloc[3], 1e4)]
    region_fp = pd.concat([fp.iloc[:30], odd, fp.iloc[30:]], ignore_index=True)
    whole = _assess(b, a, region_fp)
    assert whole.attrs["damage"]["ids"]["source"] == "derived" and whole["building_id"].str.endswith("-2").sum() == 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamageWarning)  # the run's own notes; any other warning fails
        merged = damage.batch(b, a, region_fp, tmp_path / "merged", chunk_size=128, workers=2)
        dataset = damage.batch(b, a, region_fp, tmp_path / "dataset", chunk_size=256, merge=False)
    assert len(merged.parts) == -(-len(region_fp) // 13) > 5 and not (tmp_path / "dataset" / "damage.parquet").exists()
    # the merged GeoJSON, written a part at a time, holds the features assess's result writes, to the byte
    damage.write(whole, tmp_path / "whole.geojson")
    features = [(p / n).read_text().split('"features":[', 1)[1] for p, n in ((tmp_path, "whole.geojson"),
                                                                            (tmp_path / "merged", "damage.geojson"))]
    assert features[0] == features[1]
    for name, out in (("merged", merged.result), ("dataset", dataset.result)):
        _identical(whole, out, name)
        assert out["building_id"].tolist() == whole["building_id"].tolist(), name
        assert out["not_analysed_reason"].tolist() == whole["not_analysed_reason"].tolist(), name
        for key in ("counts", "not_analysed", "damaged_count", "ids"):
            assert out.attrs["damage"][key] == whole.attrs["damage"][key], (name, key)


@pytest.fixture(scope="module")
def rotated_cloudy(tmp_path_factory):
    # an affine misregistration (rotation) and clouds with their shadows: fitted once, cut anywhere
    s = make_town(size=448, seed=5, nuisances=Nuisances(shift=(0.8, 1.1), rotation=0.4, clouds=0.15, noise=2.0))
    return write_pair(s, tmp_path_factory.mktemp("rot"), after_crs="EPSG:4326")


def test_affine_registration_and_clouds_give_one_answer_everywhere(rotated_cloudy, tmp_path):
    b, a, f = rotated_cloudy
    fp = gpd.read_file(f)
    full = _assess(b, a, fp)
    assert full.attrs["damage"]["registration"].get("rotation_deg") is not None  # the affine path is exercised
    assert (full["not_analysed_reason"] == "cloud or shadow").any()  # so is the cloud mask
    for name, out in _region_runs(b, a, fp, tmp_path).items():
        _identical(full, out, name)


def test_a_scene_fitted_on_sample_blocks_gives_one_answer_everywhere(rotated_cloudy, tmp_path, monkeypatch):
    # a scene larger than FIT_SIDE is fitted on sample blocks and an overview for its clouds (scaled down here)
    from damage.run import scenefit  # FIT_SIDE, FIT_BLOCK

    monkeypatch.setattr(scenefit, "FIT_SIDE", 200)
    monkeypatch.setattr(scenefit, "FIT_BLOCK", 128)
    b, a, f = rotated_cloudy
    fp = gpd.read_file(f)
    full = _assess(b, a, fp)
    assert full.attrs["damage"]["fitted_on"] == "sample blocks" and full.attrs["damage"]["clouds"]["overview_factor"] == 3
    assert (full["not_analysed_reason"] == "cloud or shadow").any()
    runs = _region_runs(b, a, fp, tmp_path)  # (the fit is made in this process)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamageWarning)  # the run's own notes; any other warning fails
        runs["assess, windows of 256 in 2 processes"] = damage.assess(b, a, fp, max_pixels=256 * 256, workers=2)
        runs["assess, one process"] = damage.assess(b, a, fp, max_pixels=256 * 256, workers=1)
    assert runs["assess, windows of 256 in 2 processes"].attrs["damage"]["grid"]["windows"] > 2
    for name, out in runs.items():
        _identical(full, out, name)


def _windows(scene, pad: int = 6) -> list[tuple[slice, slice]]:
    """Pixel window of each footprint, with ``pad`` pixels around."""
    inv = ~scene.transform
    out = []
    for geom in scene.footprints.geometry:
        x0, y0, x1, y1 = geom.bounds
        c0, r0 = (int(v) for v in inv * (x0, y1))
        c1, r1 = (int(np.ceil(v)) for v in inv * (x1, y0))
        out.append((slice(max(r0 - pad, 0), r1 + pad), slice(max(c0 - pad, 0), c1 + pad)))
    return out


def test_an_intact_building_grades_the_same_at_any_share_of_damage(tmp_path):
    """The same town with 0, 30, 60 and 90 % of its houses damaged; every other pixel identical."""
    calm = make_town(size=512, seed=5, damage_share=0.0)
    hit = make_town(size=512, seed=5, damage_share=0.9)  # the houses hit first in the swath come first
    truth = hit.footprints["true_grade"].to_numpy()
    windows = _windows(calm)
    damaged_order = [i for i in np.argsort(-hit.footprints["true_grade"].map(
        {"no-damage": 0, "minor-damage": 1, "major-damage": 2, "destroyed": 3}).to_numpy(), kind="stable") if truth[i] != "no-damage"]
    results, damaged_sets = [], []
    for share in (0.0, 0.3, 0.6, 0.9):
        chosen = damaged_order[: int(round(share / 0.9 * len(damaged_order)))]
        after = calm.after.copy()
        for i in chosen:
            after[(slice(None), *windows[i])] = hit.after[(slice(None), *windows[i])]
        scene = type(calm)(calm.before, after, calm.transform, calm.crs, calm.footprints)
        b, a, f = write_pair(scene, tmp_path / f"share{share}")
        results.append(_assess(b, a, f))
        damaged_sets.append(set(chosen))
    # intact in every scene, and no damaged window within a ring's reach
    far = np.ones(len(truth), bool)
    boxes = [shapely.box(w[1].start, w[0].start, w[1].stop, w[0].stop) for w in windows]
    for i in damaged_sets[-1]:
        far &= ~np.array([boxes[i].distance(bx) < 14 for bx in boxes])
    intact = far & np.logical_and.reduce([(r["damage_grade"] != "not-analysed").to_numpy() for r in results])
    intact[list(damaged_sets[-1])] = False
    assert intact.sum() >= 3
    grades = np.array([r["damage_grade"].to_numpy()[intact] for r in results])
    assert (grades == grades[0]).all(), "an intact building changed grade with the share of damage around it"
    scores = np.array([r["damage_score"].to_numpy()[intact] for r in results])
    assert np.abs(scores - scores[0]).max() <= TOLERANCE
    # a damaged house is graded the same whether 30 % or 90 % of the town is damaged
    first = sorted(damaged_sets[1])
    g30 = results[1]["damage_grade"].iloc[first].to_numpy()
    g90 = results[-1]["damage_grade"].iloc[first].to_numpy()
    assert (g30 == g90).mean() >= 0.9
    major = [i for i in first if truth[i] in ("major-damage", "destroyed") and g30[first.index(i)] != "not-analysed"]
    assert np.isin(g30[[first.index(i) for i in major]], ["major-damage", "destroyed"]).mean() >= 0.8
