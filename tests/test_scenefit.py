"""Fitting a scene once: whole or on sample blocks, its registration, clouds and radiometry, and what it says it does."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from damage.config import Config
from damage.errors import NoOverlapError
from damage.geo.raster import Grid, Window
from damage.geo.zonal import zones
from damage.io.warp import warp_epoch
from damage.optical.scene import ScenePixels
from damage.run import scenefit
from damage.run.plan import make_plan
from damage.run.scenefit import cloud_min_pixels, fit_scene
from damage.scenes.synthetic import make_scene, write_pair
from damage.scenes.town import Nuisances, make_town

SHIFT = (1.3, -0.8)  # (dy, dx) px: the after image's content sits 1.3 px down and 0.8 px left of the before one


def _plan(scene, folder, **config):
    b, a, _ = write_pair(scene, folder)
    return make_plan(b, a, scene.footprints, Config(**config), 1 << 30)


def _fit(plan, step=None):
    return fit_scene(plan.before, plan.after, plan.grid, plan.geoms[plan.usable], plan.config, step=step)


def _with(plan, **config):
    """The plan with other configuration."""
    return dataclasses.replace(plan, config=plan.config.replace(**config))


def _sampled(monkeypatch, side: int = 96, block: int = 64) -> None:
    """Scenes larger than ``side`` px are fitted on blocks of ``block`` px (2048 and 512 px by default)."""
    monkeypatch.setattr(scenefit, "FIT_SIDE", side)
    monkeypatch.setattr(scenefit, "FIT_BLOCK", block)


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    """A 192 px scene of 16 buildings, the after image shifted by SHIFT, brighter (gain 1.2, offset -10)."""
    return _plan(make_scene(size=192, buildings=16, seed=2, shift=SHIFT, gain=1.2, offset=-10.0),
                 tmp_path_factory.mktemp("shifted"))


@pytest.fixture(scope="module")
def whole(shifted):
    """The shifted scene fitted whole: (fit, pixels)."""
    return _fit(shifted)


@pytest.fixture(scope="module")
def towns(tmp_path_factory):
    """The same 256 px town under a clear sky and with clouds (15 %), its after sensor brighter (gain 1.15, offset -8):
    scene, plan and whole-scene fit of each."""
    out = {}
    for name, share in (("clear", 0.0), ("cloudy", 0.15)):
        s = make_town(size=256, seed=5, nuisances=Nuisances(clouds=share, gain=1.15, offset=-8.0))
        plan = _plan(s, tmp_path_factory.mktemp(name), min_cloud_area=50.0)
        out[name] = s, plan, _fit(plan)[0]
    return out


# -- whole scene ---------------------------------------------------------------------------------------------
def test_a_scene_at_most_fit_side_a_side_is_fitted_whole_and_returns_its_pixels(shifted, whole, monkeypatch):
    plan = shifted
    fit, pixels = whole
    assert fit.fitted_on == "whole scene" and isinstance(pixels, ScenePixels)
    assert pixels.before.grid == pixels.after.grid == plan.grid
    np.testing.assert_array_equal(pixels.covered, pixels.before.valid & pixels.after.valid)
    assert pixels.before.valid.all() and not pixels.covered.all()  # the registered after epoch misses an edge
    # the before epoch as the file holds it, the after one registered with the fit's shift
    with rasterio.open(plan.before.tiles[0].path) as ds:
        np.testing.assert_array_equal(pixels.before.array, ds.read().astype(np.float32))
    moved = warp_epoch(plan.after, plan.grid, check_valid=False, move=fit.move)
    np.testing.assert_array_equal(pixels.after.array, moved.array)
    np.testing.assert_array_equal(pixels.after.valid, moved.valid)
    # clouds on the grid itself
    assert fit.clouds.factor == 1 and fit.clouds.mask.shape == plan.grid.shape
    # exactly FIT_SIDE a side is still whole
    monkeypatch.setattr(scenefit, "FIT_SIDE", 192)
    assert _fit(plan)[0].fitted_on == "whole scene"


def test_the_whole_scene_fit_recovers_a_known_shift(whole):
    fit, _ = whole
    assert fit.shift.applied and fit.move is not None
    assert fit.shift.dy == pytest.approx(SHIFT[0], abs=0.2) and fit.shift.dx == pytest.approx(SHIFT[1], abs=0.2)


def test_the_radiometric_fit_undoes_the_after_sensors_gain(shifted, whole, monkeypatch):
    # after = 1.2 before - 10: the normalisation maps after back with gain 1 / 1.2 and offset 10 / 1.2
    _sampled(monkeypatch)
    sampled, _ = _fit(shifted)
    for fit in (whole[0], sampled):
        assert fit.normalization["method"] == "regression" and fit.normalization["applied"]
        np.testing.assert_allclose(fit.normalization["gain"], 1 / 1.2, rtol=0.05)
        np.testing.assert_allclose(fit.normalization["offset"], 10 / 1.2, atol=4.0)


@pytest.mark.parametrize("side", [2048, 96])
def test_a_shift_beyond_max_shift_is_not_applied(shifted, monkeypatch, side):
    # the after image moved 1.5 px: with max_shift 1 px every block's estimate is discarded, whole or sampled
    _sampled(monkeypatch, side=side)
    fit, _ = _fit(_with(shifted, max_shift=1.0))
    assert not fit.shift.applied and fit.move is None
    assert fit.fitted_on == ("whole scene" if side == 2048 else "sample blocks")


def test_a_scene_without_a_shift_is_not_moved(tmp_path):
    steps = []
    fit, pixels = _fit(_plan(make_scene(size=192, buildings=16, seed=2), tmp_path), steps.append)
    assert abs(fit.shift.dy) < 0.05 and abs(fit.shift.dx) < 0.05 and fit.move is None
    assert "reading the after epoch again, registered" not in steps and pixels.covered.all()


# -- sample blocks ---------------------------------------------------------------------------------------------
def test_a_larger_scene_is_fitted_on_sample_blocks_and_returns_no_pixels(shifted, monkeypatch):
    _sampled(monkeypatch, side=191)
    fit, pixels = _fit(shifted)
    assert fit.fitted_on == "sample blocks" and pixels is None
    # its clouds on an overview of at most FIT_SIDE a side: a factor of ceil(192 / side)
    for side, factor in ((191, 2), (80, 3), (63, 4)):
        _sampled(monkeypatch, side=side)
        fit, _ = _fit(shifted)
        assert fit.clouds.factor == factor, side
        assert fit.clouds.mask.shape == (-(-192 // factor),) * 2, side
        assert fit.to_dict()["clouds"]["overview_factor"] == factor


def test_the_sample_block_fit_recovers_a_known_shift(shifted, monkeypatch):
    _sampled(monkeypatch)
    fit, _ = _fit(shifted)
    assert fit.shift.applied and fit.shift.blocks >= 3
    assert fit.shift.dy == pytest.approx(SHIFT[0], abs=0.2) and fit.shift.dx == pytest.approx(SHIFT[1], abs=0.2)


def test_the_sample_blocks_are_calibrated_registered_as_the_whole_scene_is(shifted, whole, monkeypatch):
    # the scene's typical change without damage: that of the whole scene, registered (misregistered, it is 50 % more)
    reference = whole[0].calibration
    for block in (64, 80):  # blocks of 80 px: those at the grid's edge are 32 px, padded
        _sampled(monkeypatch, side=96, block=block)
        calib = _fit(shifted)[0].calibration
        assert calib.population == "steadiest blocks" and calib.size >= 6
        assert calib.typical["colour_median"] == pytest.approx(reference.typical["colour_median"], rel=0.1)
        assert calib.reference == pytest.approx(reference.reference, rel=0.2)


def test_the_sample_block_fit_recovers_a_rotation_from_where_its_blocks_lie(tmp_path, monkeypatch):
    s = make_town(size=320, seed=5, nuisances=Nuisances(rotation=0.6, shift=(1.0, 0.5)))
    plan = _plan(s, tmp_path)
    _sampled(monkeypatch, side=160, block=64)
    fit, _ = _fit(plan)
    assert fit.fitted_on == "sample blocks" and fit.shift.is_affine
    assert fit.shift.rotation_deg == pytest.approx(0.6, abs=0.1)
    assert fit.shift.centre == pytest.approx((159.5, 159.5))


# -- clouds ----------------------------------------------------------------------------------------------------
def _under(mask_fit, plan) -> np.ndarray:
    """Share of each footprint under a fit's cloud mask."""
    zs = zones(plan.geoms, plan.grid)
    return zs.count(mask_fit.clouds.window(Window(0, 0, *plan.grid.shape))) / zs.area_pixels


def test_clouds_are_found_on_the_grid_or_on_an_overview(towns, monkeypatch):
    s, plan, whole = towns["cloudy"]
    _sampled(monkeypatch, side=128)
    sampled, _ = _fit(plan)
    assert sampled.clouds.factor == 2 and sampled.clouds.mask.shape == (128, 128)
    overcast = s.footprints["cloud_fraction"].to_numpy() > 0.9
    assert overcast.sum() >= 3
    for fit in (whole, sampled):
        assert fit.clouds.info["cloud_share"] > 0.03
        assert (_under(fit, plan)[overcast] > 0.9).all()
    # the overview finds most of what the grid shows, and grows it by as many grid pixels (not overview pixels)
    up = sampled.clouds.window(Window(0, 0, 256, 256))
    assert (whole.clouds.mask & up).sum() > 0.7 * whole.clouds.mask.sum()
    assert up.sum() < 1.15 * whole.clouds.mask.sum()
    # and a clear sky has none
    assert not towns["clear"][2].clouds.mask.any()


def test_clouds_are_kept_out_of_the_radiometric_fit(towns, monkeypatch):
    # the cloudy town's normalisation is the clear one's, near enough; without the cloud mask it is far off
    _, clear, clear_fit = towns["clear"]
    _, cloudy, cloudy_fit = towns["cloudy"]
    for sampled in (False, True):
        if sampled:
            _sampled(monkeypatch, side=128)
        reference = np.asarray((_fit(clear)[0] if sampled else clear_fit).normalization["gain"])
        masked = np.asarray((_fit(cloudy)[0] if sampled else cloudy_fit).normalization["gain"])
        fit, _ = _fit(_with(cloudy, cloud_mask=False))
        assert fit.clouds is None
        unmasked = np.asarray(fit.normalization["gain"])
        assert (np.abs(masked - reference) < 0.5 * np.abs(unmasked - reference)).all(), sampled
        if not sampled:
            np.testing.assert_allclose(masked, reference, atol=0.03)


@pytest.mark.parametrize(("area", "res", "pixels"), [
    (500.0, 0.5, 2000),  # the default: 500 m2 of 0.25 m2 pixels
    (500.0, 2.0, 125),
    (10.4, 0.5, 41),  # whole pixels, rounded down (41.6)
    (4.3, 0.5, 17),
    (4.0, 0.5, 16),
    (3.0, 0.5, 16),  # never fewer than 16
    (1.0, 2.0, 16),
])
def test_cloud_min_pixels_is_the_configured_area_in_pixels_at_least_16(area, res, pixels):
    grid = Grid(CRS.from_epsg(32615), Affine(res, 0, 500_000.0, 0, -res, 4_100_000.0), (100, 100))
    assert cloud_min_pixels(Config(min_cloud_area=area), grid) == pixels


def test_cloud_min_pixels_on_a_geographic_grid_counts_square_metres_on_the_ground():
    # 1e-5 degree pixels at the equator: 1.11 m a side, about 1.24 m2
    grid = Grid(CRS.from_epsg(4326), Affine(1e-5, 0, 10.0, 0, -1e-5, 0.0005), (100, 100))
    assert 400 <= cloud_min_pixels(Config(min_cloud_area=500.0), grid) <= 406


# -- no overlap ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def apart(tmp_path_factory):
    """A pair whose before image holds data only left of column 96 and the after image only right of it."""
    s = make_scene(size=192, buildings=16, seed=2)
    b, a, _ = write_pair(s, tmp_path_factory.mktemp("apart"))
    for path, cols in ((b, slice(96, None)), (a, slice(None, 96))):
        with rasterio.open(path, "r+") as ds:
            data = ds.read()
            data[:, :, cols] = 0  # black fill: no data
            ds.write(data)
    return b, a, s.footprints


@pytest.mark.parametrize("side", [2048, 96])
def test_epochs_with_no_valid_pixel_in_common_are_refused(apart, monkeypatch, side):
    b, a, fp = apart
    _sampled(monkeypatch, side=side)
    plan = make_plan(b, a, fp, Config(), 1 << 30)
    with pytest.raises(NoOverlapError, match="hold no valid pixel in common") as info:
        _fit(plan)
    assert str(b) in str(info.value) and str(a) in str(info.value) and "\n" not in str(info.value)
    # black is data when black_fill is off: then they overlap everywhere
    fit, pixels = _fit(_with(plan, black_fill=False))
    assert pixels is None or pixels.covered.all()


# -- what the fit says it does -----------------------------------------------------------------------------
def test_the_step_callback_is_told_what_the_whole_fit_does(shifted, tmp_path):
    steps = []
    _fit(shifted, steps.append)
    assert steps == ["reading both epochs (192 x 192 px)", "co-registering", "reading the after epoch again, registered",
                     "masking clouds", "normalising and calibrating"]
    # nothing registered nor masked when the configuration says so; rows x columns of a grid that is not square
    s = make_scene(size=192, buildings=16, seed=2)
    b, a, _ = write_pair(s, tmp_path)
    top_row = make_plan(b, a, s.footprints.iloc[:4], Config(register=False, cloud_mask=False, context=0.0), 1 << 30)
    rows, cols = top_row.grid.shape
    assert rows < cols
    steps = []
    fit, _ = _fit(top_row, steps.append)
    assert steps == [f"reading both epochs ({rows} x {cols} px)", "normalising and calibrating"]
    assert fit.shift is None and fit.clouds is None and fit.move is None


def test_the_step_callback_is_told_what_the_sample_block_fit_does(shifted, monkeypatch):
    _sampled(monkeypatch)
    steps = []
    _fit(shifted, steps.append)
    assert steps == ["masking clouds on an overview and reading 4 sample blocks and co-registering them",
                     "reading the after epoch's sample blocks again, registered", "normalising and calibrating"]
    steps = []
    fit, _ = _fit(_with(shifted, register=False, cloud_mask=False), steps.append)
    assert steps == ["reading 4 sample blocks", "normalising and calibrating"]
    assert fit.shift is None and fit.clouds is None and fit.fitted_on == "sample blocks"
