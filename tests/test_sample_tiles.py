"""End to end on the real Joplin crop in sample_tiles/.

Buildings chosen by eye on the before and after images (sample_tiles/README.md):
houses standing before and plainly rubble after, and houses plainly intact in the
north blocks. Indices are rows of sample_tiles/footprints.geojson.
"""

import json
from pathlib import Path

import pytest

import damage

SAMPLE = Path(__file__).resolve().parent.parent / "sample_tiles"

PLAINLY_DESTROYED = [54, 60, 78, 74, 33, 32, 57, 77, 94, 88]
PLAINLY_INTACT = [59, 19, 37, 21, 9, 11, 10, 98]


@pytest.fixture(scope="module")
def result():
    return damage.assess(SAMPLE / "before", SAMPLE / "after", SAMPLE / "footprints.geojson", polygons=True)


def test_sample_epochs_really_differ_in_crs():
    from damage.io.sources import open_epoch

    assert open_epoch(SAMPLE / "before").tiles[0].crs != open_epoch(SAMPLE / "after").tiles[0].crs


def test_destroyed_houses_grade_major_or_destroyed(result):
    grades = result.loc[PLAINLY_DESTROYED, "damage_grade"]
    hits = grades.isin(["major-damage", "destroyed"]).sum()
    # Three misses allowed: houses 77 and 88, whose rubble keeps some roof-like
    # structure, score 0.35 and 0.23; house 33 sits at 0.496, on the major-damage cut.
    assert hits >= 7, grades.to_dict()


def test_destroyed_houses_outscore_every_intact_one(result):
    top_intact = result.loc[PLAINLY_INTACT, "damage_score"].max()
    above = (result.loc[PLAINLY_DESTROYED, "damage_score"] > top_intact).sum()
    assert above >= 8, result.loc[PLAINLY_DESTROYED + PLAINLY_INTACT, "damage_score"].round(2).to_dict()


def test_intact_houses_grade_no_or_minor_damage(result):
    grades = result.loc[PLAINLY_INTACT, "damage_grade"]
    hits = grades.isin(["no-damage", "minor-damage"]).sum()
    assert hits >= 7, grades.to_dict()


def test_destroyed_score_well_above_intact(result):
    assert result.loc[PLAINLY_DESTROYED, "damage_score"].median() > result.loc[PLAINLY_INTACT, "damage_score"].median() + 0.5
    # and two grades apart: the median destroyed house past the major-damage cut, the median intact one
    # short of the minor-damage cut (damage_score is p_damaged; the cuts are the evidence model's)
    from damage.grading import MODEL

    assert result.loc[PLAINLY_DESTROYED, "damage_score"].median() > MODEL.cuts[1]
    assert result.loc[PLAINLY_INTACT, "damage_score"].median() < MODEL.cuts[0]


def test_sample_writes_valid_rfc7946(result, tmp_path):
    doc = json.loads(damage.write(result, tmp_path / "d.geojson").read_text())
    assert len(doc["features"]) == len(result) and "crs" not in doc
    assert doc["damage"]["grid"]["crs"] == "EPSG:26915"


def _clouded_copy(folder: Path) -> tuple[Path, object]:
    """The sample's after tiles with an opaque cloud (soft rim) and its shadow painted on the big tile."""
    import shutil

    import numpy as np
    import rasterio
    from scipy import ndimage

    after = folder / "after"
    shutil.copytree(SAMPLE / "after", after)
    path = after / "tile_31500-5137.tif"
    with rasterio.open(path) as ds:
        img, profile = ds.read().astype(np.float64), ds.profile
    rows, cols = np.mgrid[: img.shape[1], : img.shape[2]]
    rng = np.random.default_rng(4)
    lumpy = ndimage.gaussian_filter(rng.normal(0, 1, img.shape[1:]), 12) * 40
    dist = np.hypot((rows - 300) / 1.1, cols - 420) + lumpy  # a lumpy disc of ~100 px (55 m) radius
    alpha = np.clip((110 - dist) / 25, 0, 1)  # opaque inside, a 25 px soft rim
    shadow = ndimage.shift(alpha, (90, -70), order=1)  # the sun low in the south-east
    shadow *= 1 - alpha
    img = img * (1 - 0.6 * shadow)
    img = img * (1 - alpha) + np.array([236.0, 238.0, 244.0])[:, None, None] * alpha
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(np.clip(np.rint(img), 1, 255).astype(np.uint8))
    return after, (alpha > 0.5) | (shadow > 0.5)


@pytest.mark.parametrize("crs", [None, "EPSG:4326"])
def test_a_cloud_painted_on_the_real_after_image_hides_what_it_covers(tmp_path, result, crs):
    import numpy as np
    import rasterio
    from rasterio.features import rasterize

    after, hidden = _clouded_copy(tmp_path)
    fp = damage.io.sources.read_footprints(SAMPLE / "footprints.geojson")
    with rasterio.open(after / "tile_31500-5137.tif") as ds:
        geoms = fp.to_crs(ds.crs).geometry
        cover = np.array([hidden[rasterize([(g, 1)], out_shape=ds.shape, transform=ds.transform).astype(bool)].mean()
                          if g.intersects(shapely_box(*ds.bounds)) else 0.0 for g in geoms])
    clouded = damage.assess(SAMPLE / "before", after, SAMPLE / "footprints.geojson", crs=crs)
    clear_sky = result if crs is None else damage.assess(SAMPLE / "before", SAMPLE / "after", SAMPLE / "footprints.geojson",
                                                         crs=crs)
    under = cover >= 0.6
    clear = cover == 0
    assert under.sum() >= 5
    reasons = clouded["not_analysed_reason"].to_numpy()
    assert (reasons[under] == "cloud or shadow").mean() >= 0.95, (reasons[under], cover[under])
    # buildings away from it keep their score, near enough (a cloud over 8 % of the scene moves the scene-wide
    # fits a little: registration blocks, steadiest blocks, the predicted offset: p_damaged by 0.03 typically)
    moved = np.abs(clouded["p_damaged"].to_numpy() - clear_sky["p_damaged"].to_numpy())[clear]
    assert np.nanmedian(moved) < 0.05 and np.nanpercentile(moved, 90) < 0.1
    same = clouded["damage_grade"].to_numpy()[clear] == clear_sky["damage_grade"].to_numpy()[clear]
    assert same.mean() >= 0.8


def shapely_box(*bounds):
    import shapely

    return shapely.box(*bounds)
