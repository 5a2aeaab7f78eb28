import numpy as np
import pytest
import shapely

import damage
from damage.grading import MODEL
from damage.run.pipeline import EVIDENCE_COLUMNS


def test_identical_pair_yields_no_damage(pair_factory):
    b, _, f, _ = pair_factory(damaged=(), seed=4)
    result = damage.assess(b, b, f)
    assert (result["damage_grade"] == "no-damage").all()
    # the score is p_damaged: an unchanged building gets the model's probability at no excess change,
    # below the minor-damage cut, the same for all
    assert np.nanmax(result["p_damaged"]) < MODEL.cuts[0] and np.ptp(result["damage_score"]) < 1e-3


def test_rubble_over_one_footprint_grades_that_one_and_not_its_neighbours(pair_factory):
    b, a, f, scene = pair_factory(damaged=(5,), seed=2)
    result = damage.assess(b, a, f)
    assert result.loc[5, "damage_grade"] == "destroyed"
    others = result.drop(index=5)
    assert (others["damage_grade"] == "no-damage").all(), others[["damage_grade", "damage_score"]]


def test_shifted_rescaled_reprojected_after_is_registered_and_normalised(pair_factory):
    b, a, f, _ = pair_factory(damaged=(5,), shift=(1.5, -2.2), gain=1.2, offset=-10, after_crs="EPSG:4326")
    result = damage.assess(b, a, f)
    reg = result.attrs["damage"]["registration"]
    assert reg["applied"] and reg["dy_px"] == pytest.approx(1.5, abs=0.15) and reg["dx_px"] == pytest.approx(-2.2, abs=0.15)
    assert result.loc[5, "damage_grade"] in ("major-damage", "destroyed")
    assert (result.drop(index=5)["damage_grade"] == "no-damage").all()


def test_output_keeps_rows_order_attributes_and_geometry(pair_factory):
    import geopandas as gpd

    b, a, f, _ = pair_factory(damaged=(1,))
    fp = gpd.read_file(f).iloc[::-1].reset_index(drop=True)  # reversed order, in lon/lat
    fp = fp.to_crs(4326)
    fp["name"] = [f"building {i}" for i in fp["building_id"]]
    result = damage.assess(b, a, fp)
    assert list(result.columns[: len(fp.columns)]) == list(fp.columns)
    assert result["name"].tolist() == fp["name"].tolist()
    assert result.crs == fp.crs
    assert shapely.equals(result.geometry.values, fp.geometry.values).all()
    for col in EVIDENCE_COLUMNS + ("ssim_mean",):
        assert col in result.columns
    destroyed = result.loc[result["building_id"] == 1, "damage_grade"].item()
    assert destroyed == "destroyed"


def test_footprints_partly_outside_are_not_analysed(pair_factory):
    import geopandas as gpd

    b, a, f, scene = pair_factory()
    fp = gpd.read_file(f)
    far = shapely.box(0, 0, 10, 10)  # nowhere near the imagery, same CRS
    edge = shapely.box(499_980.0, 4_099_950.0, 500_010.0, 4_099_990.0)  # two thirds outside
    fp = gpd.GeoDataFrame({"building_id": [100, 101]}, geometry=[far, edge], crs=fp.crs).pipe(
        lambda extra: gpd.GeoDataFrame(gpd.pd.concat([fp, extra], ignore_index=True), crs=fp.crs)
    )
    result = damage.assess(b, a, fp)
    assert result.loc[16, "damage_grade"] == "not-analysed" and result.loc[16, "valid_fraction"] == 0
    assert result.loc[17, "damage_grade"] == "not-analysed" and 0 < result.loc[17, "valid_fraction"] < 0.5
    assert np.isnan(result.loc[16, "damage_score"])


def test_polygons_lie_inside_their_damaged_footprint(pair_factory):
    b, a, f, _ = pair_factory(damaged=(6,), seed=7)
    result = damage.assess(b, a, f, polygons=True)
    polys = result.attrs["damage_polygons"]
    assert len(polys) >= 1
    assert set(polys["footprint"]) == {6}
    fp_geom = result.geometry.iloc[6]
    assert polys.geometry.union_all().difference(fp_geom.buffer(1e-6)).area < 1e-9
    assert polys["area_m2"].sum() > 0.5 * fp_geom.area


def test_options_override_config(pair_factory):
    b, a, f, _ = pair_factory()
    result = damage.assess(b, a, f, damage.Config(min_valid_fraction=0.9), register=False, normalize="histogram")
    cfg = result.attrs["damage"]["config"]
    assert cfg["min_valid_fraction"] == 0.9 and cfg["register"] is False and cfg["normalize"] == "histogram"
    assert result.attrs["damage"]["registration"] == {"applied": False}


def test_multi_tile_epochs_give_the_same_result_as_one_file(pair_factory, tmp_path):
    import rasterio
    from rasterio.windows import Window

    b, a, f, _ = pair_factory(damaged=(3,))
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    with rasterio.open(a) as ds:
        for i, win in enumerate([Window(0, 0, 256, 100), Window(0, 100, 256, 156)]):
            profile = ds.profile | {"height": win.height, "width": win.width, "transform": ds.window_transform(win)}
            with rasterio.open(tiles / f"t{i}.tif", "w", **profile) as out:
                out.write(ds.read(window=win))
    one = damage.assess(b, a, f)
    many = damage.assess(b, tiles, f)
    assert (one["damage_grade"] == many["damage_grade"]).all()
    assert np.allclose(one["damage_score"], many["damage_score"], atol=1e-6)


def test_change_columns_say_what_they_promise(pair_factory):
    # rubble over footprint 5 only: its change statistics, against the scene's typical change, stand out
    b, a, f, _ = pair_factory(damaged=(5,), seed=2)
    result = damage.assess(b, a, f)
    calib = result.attrs["damage"]["calibration"]
    hit, rest = result.loc[5], result.drop(index=5)
    # change_delta is the footprint's mean change as a log loss of similarity, beyond the scene reference
    np.testing.assert_allclose(result["change_delta"], -np.log1p(-result["change_mean"]) - calib["reference"], atol=1e-3)
    assert (result["change_median"] <= result["change_p90"] + 1e-12).all()
    assert hit["change_p90"] > hit["change_median"] + 0.01  # a 90th percentile, not the median
    assert hit["change_median"] > rest["change_p90"].max() and hit["change_delta"] > rest["change_delta"].max() + 1.0
    # changed_fraction: the share of the footprint's pixels past change_threshold
    assert hit["changed_fraction"] > 0.8 and rest["changed_fraction"].max() < 0.1
    assert result["changed_fraction"].between(0, 1).all()
