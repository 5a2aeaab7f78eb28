"""Stacks and the pixel-wise t-test: the statistic, its fallbacks, the filter, end to end."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import damage
from damage.cli import main
from damage.errors import DamageWarning
from damage.sar.statistics import Moments, lee_filter, log_ratio_sigma, pwtt, t_statistic
from damage.scenes.sarsim import make_sar_stack, write_stack


def _moments(stack: np.ndarray, valid: np.ndarray | None = None) -> Moments:
    m = Moments.empty(stack.shape[1], stack.shape[2:])
    for k in range(stack.shape[0]):
        m.add(stack[k], np.ones(stack.shape[2:], bool) if valid is None else valid[k])
    return m


@settings(max_examples=20, deadline=None)
@given(n1=st.integers(2, 12), n2=st.integers(2, 8), seed=st.integers(0, 10_000))
def test_t_matches_scipy_ttest_ind(n1, n2, seed):
    rng = np.random.default_rng(seed)
    pre = rng.normal(0, 1, (n1, 2, 5, 6))
    post = rng.normal(rng.uniform(-2, 2), rng.uniform(0.5, 2), (n2, 2, 5, 6))
    t = t_statistic(_moments(pre), _moments(post))
    expected = np.abs(stats.ttest_ind(post, pre, axis=0, equal_var=True).statistic)
    np.testing.assert_allclose(t, expected, rtol=1e-4, atol=1e-4)


def test_per_pixel_counts_follow_validity():
    rng = np.random.default_rng(1)
    pre, post = rng.normal(0, 1, (5, 1, 3, 3)), rng.normal(1, 1, (4, 1, 3, 3))
    valid = np.ones((5, 3, 3), bool)
    valid[:2, 0, 0] = False  # pixel (0, 0) has only 3 before images
    t = t_statistic(_moments(pre, valid), _moments(post))
    expected = abs(stats.ttest_ind(post[:, 0, 0, 0], pre[2:, 0, 0, 0]).statistic)
    assert t[0, 0, 0] == pytest.approx(expected, rel=1e-4)


def test_single_image_fallbacks():
    rng = np.random.default_rng(2)
    pre = rng.normal(0, 1, (6, 1, 4, 4))
    post1 = rng.normal(3, 1, (1, 1, 4, 4))
    z = t_statistic(_moments(pre), _moments(post1))
    np.testing.assert_allclose(z, np.abs(post1[0] - pre.mean(0)) / pre.std(0, ddof=1), rtol=1e-5)
    z_rev = t_statistic(_moments(post1), _moments(pre))  # one before image, six after
    np.testing.assert_allclose(z_rev, z, rtol=1e-5)
    pair = t_statistic(_moments(pre[:1]), _moments(post1), pair_sigma=0.5)
    np.testing.assert_allclose(pair, np.abs(post1[0] - pre[0]) / 0.5, rtol=1e-5)
    nothing = t_statistic(_moments(pre), _moments(post1, np.zeros((1, 4, 4), bool)))
    assert np.isnan(nothing).all()


def test_log_ratio_sigma_matches_simulated_speckle():
    rng = np.random.default_rng(3)
    looks = 4.4
    a, b = rng.gamma(looks, 1 / looks, (2, 200_000))
    assert np.std(np.log(a) - np.log(b)) == pytest.approx(log_ratio_sigma(looks), rel=0.02)


def test_lee_filter_keeps_the_mean_and_removes_speckle_in_flat_areas():
    rng = np.random.default_rng(4)
    power = rng.gamma(4.4, 0.1 / 4.4, (1, 128, 128)).astype(np.float32)
    out = lee_filter(power, np.ones((128, 128), bool), size=5, looks=4.4)
    assert out.mean() == pytest.approx(power.mean(), rel=0.02)
    assert out.std() < 0.5 * power.std()
    edge = np.zeros((1, 64, 64), np.float32) + 0.01
    edge[:, :, 32:] = 1.0  # a step is kept
    kept = lee_filter(edge, np.ones((64, 64), bool), size=5, looks=4.4)
    assert kept[0, 10, 20] == pytest.approx(0.01, rel=0.05) and kept[0, 10, 44] == pytest.approx(1.0, rel=0.05)


def test_pwtt_takes_the_largest_over_bands_and_groups_and_smooths():
    a = np.zeros((2, 20, 20), np.float32)
    b = np.zeros((2, 20, 20), np.float32)
    a[0, 5, 5] = 4.0
    b[1, 5, 5] = 6.0
    raw, valid = pwtt([a, b])
    assert raw[5, 5] == 6.0 and valid.all()
    smooth, _ = pwtt([a, b], radii_px=(2.0,))
    # the raw 6 averaged with its focal mean over the 13-pixel disc of radius 2
    assert smooth[5, 5] == pytest.approx((6.0 + 6.0 / 13) / 2, rel=1e-5)
    assert abs(smooth[0, 19]) < 1e-6


@pytest.fixture(scope="module")
def stacks(tmp_path_factory):
    made = {}

    def get(name, **kw):
        if name not in made:
            s = make_sar_stack(size=120, seed=11, **kw)
            made[name] = (s, *write_stack(s, tmp_path_factory.mktemp(name)))
        return made[name]

    return get


def _truth(stack):
    return stack.footprints.rename(columns={"true_grade": "grade"})[["grade", "geometry"]]


def test_undamaged_stacks_give_no_damage(stacks):
    s, b, a, f = stacks("undamaged", damage_share=0.0)
    result = damage.assess(b, a, f, method="pwtt")
    assert not result["damage_grade"].isin(["major-damage", "destroyed"]).any()
    assert result.attrs["damage"]["method"] == "pwtt" and (result["valid_fraction"] > 0.9).all()


def test_damaged_buildings_are_found(stacks):
    s, b, a, f = stacks("damaged")
    result = damage.assess(b, a, f, method="pwtt")
    ev = damage.evaluate(result, _truth(s))
    assert ev.auc > 0.95 and ev.binary["f1"] > 0.8, ev.format()
    destroyed = s.footprints["true_grade"] == "destroyed"
    assert result.loc[destroyed, "damage_grade"].isin(["major-damage", "destroyed"]).mean() > 0.9
    assert (result["looks_before"].dropna() == 6).all() and (result["looks_after"].dropna() == 3).all()


@pytest.mark.parametrize("n_before,n_after", [(6, 1), (1, 1)])
def test_short_stacks_fall_back_and_still_rank(stacks, n_before, n_after):
    s, b, a, f = stacks(f"short{n_before}{n_after}", n_before=n_before, n_after=n_after)
    result = damage.assess(b, a, f, method="pwtt")
    assert damage.evaluate(result, _truth(s)).auc > 0.9


def test_result_does_not_depend_on_the_window(stacks):
    s, b, a, f = stacks("damaged")
    whole = damage.assess(b, a, f, method="pwtt", smoothing_radii=(50, 100, 150))
    cut = damage.assess(b, a, f, method="pwtt", smoothing_radii=(50, 100, 150), window=64)
    assert cut.attrs["damage"]["statistic"]["windows"] > 1
    np.testing.assert_allclose(cut["t_mean"], whole["t_mean"], rtol=1e-5, equal_nan=True)
    assert (cut["damage_grade"] == whole["damage_grade"]).all()


def test_units_are_converted(tmp_path):
    s = make_sar_stack(size=80, seed=5, n_before=3, n_after=2)
    power = damage.assess(*write_stack(s, tmp_path / "p"), method="pwtt")
    db = damage.assess(*write_stack(s, tmp_path / "d", units="db"), method="pwtt")
    amp = damage.assess(*write_stack(s, tmp_path / "a", units="amplitude"), method="pwtt")
    np.testing.assert_allclose(db["t_mean"], power["t_mean"], rtol=1e-3, equal_nan=True)
    np.testing.assert_allclose(amp["t_mean"], power["t_mean"], rtol=1e-3, equal_nan=True)


def test_a_corrupted_acquisition_is_dropped(tmp_path):
    s = make_sar_stack(size=80, seed=6, corrupted=1)
    b, a, f = write_stack(s, tmp_path)
    with pytest.warns(DamageWarning, match="dropped"):
        result = damage.assess(b, a, f, method="pwtt")
    assert len(result.attrs["damage"]["statistic"]["dropped"]) == 1
    assert damage.evaluate(result, _truth(s)).auc > 0.9


def test_cli_pwtt(stacks, tmp_path):
    s, b, a, f = stacks("damaged")
    out = tmp_path / "d.geojson"
    args = ["assess", str(b[0].parent), str(a[0].parent), str(f), "-o", str(out), "--method", "pwtt", "-q"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "destroyed" in res.output and out.exists()
    smooth = CliRunner().invoke(main, args + ["--smoothing", "50,100,150", "--overwrite"])
    assert smooth.exit_code == 0, smooth.output
    import json

    assert json.loads(out.read_text())["damage"]["config"]["smoothing_radii"] == [50.0, 100.0, 150.0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamageWarning)  # the run's own notes; any other warning fails
        bad = CliRunner().invoke(main, args + ["--lee-size", "4", "--overwrite"])
    assert bad.exit_code == 1 and "lee_size" in bad.output


def test_t_max_bounds_t_mean_and_marks_the_damaged(stacks):
    s, b, a, f = stacks("damaged")
    result = damage.assess(b, a, f, method="pwtt")
    ok = result["t_max"].notna()
    assert ok.mean() > 0.9 and (result.loc[ok, "t_max"] >= result.loc[ok, "t_mean"] - 1e-9).all()
    assert (result.loc[ok, "t_max"] > result.loc[ok, "t_mean"]).mean() > 0.9  # the largest pixel, not the mean
    destroyed = (s.footprints["true_grade"] == "destroyed").to_numpy()
    intact = (s.footprints["true_grade"] == "no-damage").to_numpy()
    assert result.loc[destroyed & ok, "t_max"].median() > result.loc[intact & ok, "t_max"].quantile(0.9)


def test_a_radar_result_is_a_result_like_any_other(stacks, tmp_path):
    """Ids, reasons, provenance and overwrite protection: the same as the optical path's (issue 23, item 2)."""
    import geopandas as gpd
    import pandas as pd
    import shapely

    from damage.errors import OutputError

    s, b, a, f = stacks("damaged")
    fp = gpd.read_file(f)
    far = fp.iloc[[0]].assign(geometry=[shapely.affinity.translate(fp.geometry.iloc[0], 5000, 0)])
    empty = fp.iloc[[0]].assign(geometry=[shapely.Polygon()])
    path = tmp_path / "fp.geojson"
    gpd.GeoDataFrame(pd.concat([fp, far, empty], ignore_index=True), crs=fp.crs).to_file(path)
    with pytest.warns(DamageWarning, match="1 footprint"):  # the empty one, set aside when read
        result = damage.assess(b, a, path, method="pwtt")
    assert result["building_id"].is_unique
    assert result["not_analysed_reason"].iloc[-2] == "outside imagery"
    assert result["not_analysed_reason"].iloc[-1] == "unusable footprint"
    graded = result["damage_grade"] != "not-analysed"
    assert result.loc[graded, "not_analysed_reason"].isna().all() and graded.sum() == len(fp)
    prov = result.attrs["damage"]["provenance"]
    assert len(prov["inputs"]["before"]) >= 2 and all(f["sha256"] for f in prov["inputs"]["before"])
    assert prov["inputs"]["other"][0]["role"] == "footprints"
    before = path.read_bytes()
    with pytest.raises(OutputError, match="is an input"):
        damage.write(result, path)
    assert path.read_bytes() == before


def test_a_region_batch_of_stacks_gives_every_building_the_single_runs_answer(stacks, tmp_path):
    """batch --method pwtt (issue 23, item 2): chunks on the region's grid, the same numbers as one run, resumable."""
    from click.testing import CliRunner

    from damage.cli import main
    from damage.testing import assert_result_equal

    s, b, a, f = stacks("damaged")
    one = damage.assess(b, a, f, method="pwtt", window=64)
    region = damage.batch(b, a, f, tmp_path / "run", method="pwtt", window=64, chunk_size=64, workers=2)
    assert region.chunks > 1 and region.done == region.chunks and not region.failed
    assert_result_equal(one, region.result, columns=["building_id", "damage_grade", "not_analysed_reason"])
    assert_result_equal(one, region.result, columns=["damage_score", "t_mean", "t_max", "looks_before", "valid_fraction"],
                        rtol=1e-9)
    assert region.result.attrs["damage"]["method"] == "pwtt"
    assert region.result.attrs["damage"]["provenance"]["inputs"]["before"]
    again = damage.batch(b, a, f, tmp_path / "run", method="pwtt", window=64, chunk_size=64)
    assert again.done == 0  # resumed: nothing left to do
    assert_result_equal(region.result, again.result, columns=["damage_grade", "t_mean"])
    folders = [str(b[0].parent), str(a[0].parent)] if isinstance(b, (list, tuple)) else [str(b), str(a)]
    res = CliRunner().invoke(main, ["batch", *folders, str(f), "-o", str(tmp_path / "cli"), "--chunk-size", "64",
                                    "--method", "pwtt", "--config", str(_toml(tmp_path)), "-q"])
    assert res.exit_code == 0, res.output
    import geopandas as gpd

    assert_result_equal(one, gpd.read_parquet(tmp_path / "cli" / "damage.parquet"), columns=["building_id", "damage_grade"])


def _toml(tmp_path):
    path = tmp_path / "pwtt.toml"
    path.write_text('window = 64\n')
    return path


def test_a_radar_run_takes_facilities_and_refuses_what_it_cannot_give(stacks):
    """One path for every method (issue 23): facilities work on stacks as on a pair; chips, labels and
    polygons, which need the optical evidence, are refused in one line before anything is read."""
    import geopandas as gpd
    import shapely

    from damage.errors import ConfigError

    s, b, a, f = stacks("damaged")
    fp = gpd.read_file(f)
    campus = shapely.box(*fp.total_bounds).buffer(-300)
    fac = gpd.GeoDataFrame({"name": ["A hospital"]}, geometry=[campus], crs=fp.crs)
    result = damage.assess(b, a, f, method="pwtt", facilities=fac)
    summary = result.attrs["damage_facilities"]
    inside = result["facility"] == 0
    assert inside.sum() >= shapely.within(fp.geometry.values, campus).sum() > 0
    graded = result.loc[inside, "damage_grade"]
    assert summary["n_destroyed"].item() == (graded == "destroyed").sum()
    for asked in ({"chips": 3}, {"labels": f}, {"polygons": True}):
        with pytest.raises(ConfigError, match="not available with method='pwtt'"):
            damage.assess(b, a, "no-such-file.geojson", method="pwtt", **asked)


def test_images_georeferenced_by_gcps_only_are_read_through_a_warp(tmp_path):
    """Sentinel-1 GRD as Planetary Computer and Earth Search publish it carries ground control points, no grid
    (issue 27): such a stack gives the t statistics of the same stack on its grid."""
    import rasterio
    from rasterio.control import GroundControlPoint

    s = make_sar_stack(size=80, seed=5, n_before=3, n_after=2)
    b, a, f = write_stack(s, tmp_path / "grid")
    moved = {}
    for epoch, files in (("before", b), ("after", a)):
        folder = tmp_path / "gcps" / epoch
        folder.mkdir(parents=True)
        moved[epoch] = []
        for path in files:
            with rasterio.open(path) as src:
                data, profile, tags, t = src.read(), src.profile, src.tags(), src.transform
                crs = src.crs
            gcps = [GroundControlPoint(row=r, col=c, x=(t * (c, r))[0], y=(t * (c, r))[1])
                    for r in (0, src.height // 2, src.height) for c in (0, src.width // 2, src.width)]
            profile = {k: v for k, v in profile.items() if k not in ("crs", "transform")}
            out = folder / path.name
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                with rasterio.open(out, "w", **profile) as dst:
                    dst.write(data)
                    dst.update_tags(**tags)
                    dst.gcps = (gcps, crs)
            moved[epoch].append(out)
    grid = damage.assess(b, a, f, method="pwtt")
    gcp = damage.assess(moved["before"], moved["after"], f, method="pwtt")
    assert (gcp["damage_grade"] == grid["damage_grade"]).all()
    np.testing.assert_allclose(gcp["t_mean"], grid["t_mean"], rtol=1e-6, equal_nan=True)
