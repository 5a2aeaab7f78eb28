"""Measuring one window of a fitted scene: the pixels it reads or cuts, the change per footprint, why some are not analysed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import shapely

from damage.config import Config
from damage.geo.raster import Grid, Window
from damage.optical.evidence import FEATURES
from damage.optical.metrics import METRIC_RADIUS
from damage.optical.normalize import apply as apply_normalization
from damage.optical.scene import CloudMask
from damage.run.measure import MEASURE_COLUMNS, REASONS, cut_window, measure, read_window
from damage.run.plan import make_plan, window_extent
from damage.run.scenefit import fit_scene
from damage.scenes.synthetic import make_scene, write_pair

DESTROYED = 5  # the one building whose roof is rubble in the after image
#: Pixels eroded from the valid mask before a footprint's change is measured (the SSIM window and the tolerated shift).
RADIUS = METRIC_RADIUS["ssim"] + Config().shift_tolerance


def _fitted(folder, **config):
    """A 192 px scene of 16 buildings (cells of 48 px), its after image 1.3 px down and 0.8 px left, fitted whole."""
    s = make_scene(size=192, buildings=16, damaged=(DESTROYED,), seed=2, shift=(1.3, -0.8))
    b, a, _ = write_pair(s, folder)
    plan = make_plan(b, a, s.footprints, Config(**config), 1 << 30)
    fit, pixels = fit_scene(plan.before, plan.after, plan.grid, plan.geoms[plan.usable], plan.config)
    return s, plan, fit, pixels


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    return _fitted(tmp_path_factory.mktemp("measure"))


@pytest.fixture(scope="module")
def whole(fitted):
    """Every footprint measured in one window cut from the fit's pixels, with polygons."""
    _, plan, fit, pixels = fitted
    px = cut_window(pixels, fit, window_extent(plan.geoms, plan.grid, plan.config))
    return px, measure(px, plan.geoms, fit, plan.config, want_polygons=True)


def _rows_cols(geom, grid: Grid) -> tuple[slice, slice]:
    """The rows and columns of ``grid`` a rectangle on pixel edges covers."""
    x0, y0, x1, y1 = geom.bounds
    c0, r0 = ~grid.transform * (x0, y1)
    c1, r1 = ~grid.transform * (x1, y0)
    return slice(round(r0), round(r1)), slice(round(c0), round(c1))


def _cloudy(fit, mask: np.ndarray):
    return dataclasses.replace(fit, clouds=CloudMask(1, mask, {"cloud_share": float(mask.mean()), "shadow_share": 0.0}))


# -- read_window, cut_window -------------------------------------------------------------------------------
@pytest.mark.parametrize("window", [Window(9, 23, 70, 81), Window(164, 0, 28, 30), Window(0, 0, 192, 192)])
def test_cut_window_gives_exactly_the_pixels_read_window_reads(fitted, window):
    _, plan, fit, pixels = fitted
    assert fit.move is not None  # the after epoch is read registered: the cut must be too
    mask = np.zeros(plan.grid.shape, bool)
    mask[60:90, 30:110] = True
    for f in (fit, _cloudy(fit, mask)):
        cut = cut_window(pixels, f, window)
        read = read_window(plan.before, plan.after, plan.grid, f, window, plan.config)
        for name in ("before", "after"):
            x, y = getattr(cut, name), getattr(read, name)
            np.testing.assert_array_equal(x.array, y.array, err_msg=name)
            np.testing.assert_array_equal(x.valid, y.valid, err_msg=name)
            assert x.grid == y.grid == window.of(plan.grid)
        np.testing.assert_array_equal(cut.covered, read.covered)
        np.testing.assert_array_equal(cut.cloudy, read.cloudy)
        np.testing.assert_array_equal(cut.cloudy, mask[window.slices] if f is not fit else np.zeros(window[2:], bool))
        assert cut.window == read.window == window


def test_at_the_imagery_edge_only_what_both_epochs_cover_is_covered(fitted):
    # the after image moved 1.3 px down and 0.8 px left: registered, its first column and last row have no data
    _, plan, fit, pixels = fitted
    px = cut_window(pixels, fit, Window(164, 0, 28, 30))
    assert px.before.valid.all() and not px.after.valid.all()
    np.testing.assert_array_equal(px.covered, px.before.valid & px.after.valid)
    assert not px.covered[-1].any() and not px.covered[:, 0].any() and px.covered[:-2, 2:].all()


def test_window_pixels_lie_where_their_window_says(fitted):
    s, plan, fit, pixels = fitted
    window = (9, 23, 70, 81)  # a plain tuple is a window too
    for px in (cut_window(pixels, fit, window), read_window(plan.before, plan.after, plan.grid, fit, window, plan.config)):
        assert px.window == Window(9, 23, 70, 81) and isinstance(px.window, Window)
        assert px.before.grid.shape == px.after.grid.shape == (70, 81) == px.covered.shape == px.cloudy.shape
        assert px.before.grid.transform * (0, 0) == plan.grid.transform * (23, 9)  # column 23, row 9 of the grid
        # the grid is the before image's own lattice: its pixels are the file's, unchanged
        np.testing.assert_array_equal(px.before.array, s.before[:, 9:79, 23:104].astype(np.float32))


# -- measure ------------------------------------------------------------------------------------------------
def test_every_measure_column_is_there_once_per_footprint(fitted, whole):
    _, plan, _, _ = fitted
    _, m = whole
    assert set(MEASURE_COLUMNS) | {"ssim_mean"} == set(m.columns)  # no model columns without a model
    assert all(len(v) == len(plan.geoms) == 16 for v in m.columns.values())
    assert m.analysed.all() and m.analysed.dtype == bool
    assert (m.columns["not_analysed_reason"] == None).all()  # noqa: E711 (None, not NaN, when analysed)
    np.testing.assert_array_equal(m.columns["valid_fraction"], np.ones(16))


def test_a_destroyed_roof_changes_more_than_every_intact_one(whole):
    _, m = whole
    intact = np.arange(16) != DESTROYED
    for column in ("change_mean", "change_median", "change_p90", "change_delta", "ssim_excess", "ssim_mean",
                   "changed_fraction"):
        values = m.columns[column]
        assert np.isfinite(values).all(), column
        assert values[DESTROYED] > values[intact].max() + 0.3, column
    assert m.columns["changed_fraction"][DESTROYED] > 0.8 and m.columns["changed_fraction"][intact].max() < 0.05


def test_the_change_columns_agree_with_each_other_and_with_the_changed_pixels(fitted, whole):
    _, plan, fit, _ = fitted
    px, m = whole
    c = m.columns
    np.testing.assert_allclose(c["change_delta"], fit.calibration.delta(c["change_mean"]), rtol=1e-12)
    assert (c["change_p90"] >= c["change_median"]).all()
    # with a single metric of weight 1, the change is that metric's loss
    np.testing.assert_allclose(c["ssim_mean"], c["change_mean"], rtol=1e-6)
    # every footprint lies well inside the imagery: its changed share is that of its pixels
    for i, geom in enumerate(plan.geoms):
        assert c["changed_fraction"][i] == pytest.approx(m.changed[_rows_cols(geom, plan.grid)].mean(), abs=1e-12)
    # the after epoch as measured: normalised with the scene's fit
    np.testing.assert_array_equal(m.after, apply_normalization(px.after.array, fit.normalization))


def test_a_building_measured_alone_gets_the_numbers_it_gets_with_the_others(fitted, whole):
    _, plan, fit, pixels = fitted
    _, m = whole
    for i in (DESTROYED, 10):
        one = plan.geoms[[i]]
        extent = window_extent(one, plan.grid, plan.config)
        assert extent[2] < 100 and extent[3] < 100  # a smaller window than the scene's
        for px in (cut_window(pixels, fit, extent), read_window(plan.before, plan.after, plan.grid, fit, extent, plan.config)):
            alone = measure(px, one, fit, plan.config)
            for column in ("change_mean", "change_p90", "ssim_excess", "changed_fraction", "valid_fraction"):
                assert alone.columns[column][0] == pytest.approx(m.columns[column][i], abs=1e-9), (i, column)


def test_why_footprints_are_not_analysed(fitted):
    _, plan, fit, pixels = fitted
    grid, geoms = plan.grid, plan.geoms.copy()
    extent = Window(0, 0, 192, 192)
    covered = pixels.covered.copy()
    rows, cols = _rows_cols(geoms[0], grid)
    covered[rows.start - 10:rows.stop + 10, cols.start - 10:cols.stop + 10] = False  # no imagery at all on 0
    rows, cols = _rows_cols(geoms[2], grid)
    cut = cols.start + 3  # 2: no imagery on its three left columns, the rest eroded within RADIUS of the gap
    covered[rows.start - 12:rows.stop + 12, cols.start - 12:cut] = False
    cloud = np.zeros(grid.shape, bool)
    rows, cols = _rows_cols(geoms[13], grid)
    cloud[rows.start - 3:rows.stop + 3, cols.start - 3:cols.stop + 3] = True  # 13: under a cloud
    rows, cols = _rows_cols(geoms[14], grid)
    cloud[rows.start - 3:rows.stop + 3, cols.start - 3:cols.start + 3 * (cols.stop - cols.start) // 4] = True  # 14: mostly
    cloudy_fit = _cloudy(fit, cloud)
    px = dataclasses.replace(cut_window(pixels, cloudy_fit, extent), covered=covered)
    # 16: far off the grid; 17 and 18: no polygon (never planned, but measured without harm)
    geoms = np.array([*geoms, shapely.box(400_000.0, 4_000_000.0, 400_010.0, 4_000_010.0), None, shapely.Polygon()],
                     dtype=object)
    m = measure(px, geoms, cloudy_fit, plan.config, want_polygons=True)
    reason = m.columns["not_analysed_reason"]
    expected = {0: "outside imagery", 2: "partial coverage", 13: "cloud or shadow", 14: "cloud or shadow",
                16: "outside imagery", 17: "outside imagery", 18: "outside imagery"}
    assert {i: reason[i] for i in np.flatnonzero(~m.analysed)} == expected
    assert set(expected.values()) <= set(REASONS)
    assert (reason[m.analysed] == None).all()  # noqa: E711
    lost = np.flatnonzero(~m.analysed)
    for column in ("change_mean", "change_delta", "changed_fraction", "ssim_excess", "ssim_mean", *FEATURES):
        assert np.isnan(m.columns[column][lost].astype(float)).all(), column
        assert np.isfinite(m.columns[column][m.analysed].astype(float)).all(), column
    vf = m.columns["valid_fraction"]
    assert vf[0] == vf[13] == vf[16] == vf[17] == vf[18] == 0.0
    # the valid share of 2 is its pixels more than RADIUS columns right of the gap (a square erosion)
    rows, cols = _rows_cols(geoms[2], grid)
    assert vf[2] == pytest.approx(round((cols.stop - cut - RADIUS) / (cols.stop - cols.start), 4), abs=1e-12)
    assert 0.0 < vf[2] < Config().min_valid_fraction
    # no changed pixel where there is no imagery or a cloud: nor a changed polygon of the destroyed building there
    assert not (m.changed & ~covered).any() and not (m.changed & cloud).any()
    assert set(m.owner.tolist()) == {DESTROYED}


def test_too_little_imagery_is_partial_coverage_down_to_the_configured_share(fitted):
    _, plan, fit, pixels = fitted
    px = cut_window(pixels, fit, Window(0, 0, 192, 192))
    covered = px.covered.copy()
    rows, cols = _rows_cols(plan.geoms[10], plan.grid)
    covered[:, : cols.start + (cols.stop - cols.start) // 2 - RADIUS] = False  # half of 10 left after the erosion
    px = dataclasses.replace(px, covered=covered)
    vf = measure(px, plan.geoms, fit, plan.config).columns["valid_fraction"][10]
    assert 0.4 < vf < 0.6
    for share, analysed in ((vf - 0.01, True), (vf + 0.01, False)):
        m = measure(px, plan.geoms, fit, plan.config.replace(min_valid_fraction=share))
        assert m.analysed[10] == analysed
        assert m.columns["not_analysed_reason"][10] == (None if analysed else "partial coverage")


def test_the_changed_share_is_of_the_valid_pixels_of_a_footprint(fitted):
    _, plan, fit, pixels = fitted
    px = cut_window(pixels, fit, Window(0, 0, 192, 192))
    covered = px.covered.copy()
    rows, cols = _rows_cols(plan.geoms[DESTROYED], plan.grid)
    cut = cols.start + 2  # the rubble's first columns have no imagery: the rest, eroded by RADIUS, is measured
    covered[rows.start - 12:rows.stop + 12, cols.start - 12:cut] = False
    m = measure(dataclasses.replace(px, covered=covered), plan.geoms, fit, plan.config)
    valid = (rows.stop - rows.start) * (cols.stop - cut - RADIUS)
    assert m.analysed[DESTROYED] and m.columns["valid_fraction"][DESTROYED] < 0.7
    assert m.columns["changed_fraction"][DESTROYED] == pytest.approx(m.changed[rows, cols].sum() / valid, abs=1e-12)
    assert m.columns["changed_fraction"][DESTROYED] > 0.8
    # the rubble within RADIUS of the gap is not measured: none of it changed, though all of it did
    assert not m.changed[rows, cut:cut + RADIUS].any() and m.changed[rows, cut + RADIUS:cols.stop].mean() > 0.8


def test_what_lies_under_a_gap_in_the_imagery_does_not_reach_any_number(fitted):
    # the after epoch's values where it has no data are fill: garbage there changes no column of any footprint,
    # even of a building whose own alignment (up to building_shift px) moves it towards the gap
    _, plan, fit, pixels = fitted
    px = cut_window(pixels, fit, Window(0, 0, 192, 192))
    rows, cols = _rows_cols(plan.geoms[10], plan.grid)
    covered = px.covered.copy()
    covered[rows.start - 12:rows.stop + 12, cols.start - 12:cols.start + 2] = False
    after = px.after.array.copy()
    around = (slice(None), slice(rows.start - 20, rows.stop + 20), slice(cols.start - 20, cols.stop + 20))
    after[around] = np.roll(after[around], -3, axis=2)  # building 10 sits 3 px left in the after epoch
    gap = dataclasses.replace(px, covered=covered, after=dataclasses.replace(px.after, array=after.copy()))
    after[:, ~covered] = np.random.default_rng(0).uniform(0, 255, (after.shape[0], int((~covered).sum())))
    garbage = dataclasses.replace(gap, after=dataclasses.replace(px.after, array=after))
    m, g = (measure(p, plan.geoms, fit, plan.config, want_polygons=True) for p in (gap, garbage))
    assert m.analysed[10] and m.columns["valid_fraction"][10] < 0.7
    for column in m.columns:
        np.testing.assert_array_equal(g.columns[column], m.columns[column], err_msg=column)
    np.testing.assert_array_equal(g.changed, m.changed)


def test_a_cloud_does_not_hide_what_the_before_image_shows_of_the_outline(fitted):
    # before_outline is a property of the before image: every pixel of the band both epochs cover counts
    _, plan, fit, pixels = fitted
    rows, cols = _rows_cols(plan.geoms[10], plan.grid)
    cloud = np.zeros(plan.grid.shape, bool)
    cloud[rows.start - 4:rows.stop + 4, cols.start - 4:cols.start + 2] = True  # across the left wall
    clear, cloudy = (measure(cut_window(pixels, f, Window(0, 0, 192, 192)), plan.geoms, f, plan.config)
                     for f in (fit, _cloudy(fit, cloud)))
    assert clear.analysed[10] and cloudy.analysed[10]
    assert cloudy.columns["valid_fraction"][10] < clear.columns["valid_fraction"][10] - 0.1  # the change is measured less
    assert cloudy.columns["before_outline"][10] == clear.columns["before_outline"][10]


def test_changed_polygons_lie_in_their_footprint_with_their_area_in_square_metres(fitted, whole):
    _, plan, fit, _ = fitted
    px, m = whole
    assert len(m.polygons) >= 1 and len(m.polygons) == len(m.owner) == len(m.area_m2)
    assert (m.owner == DESTROYED).all() and m.owner.dtype == np.int64
    footprint = plan.geoms[DESTROYED]
    assert shapely.within(m.polygons, footprint.buffer(1e-6)).all()
    # UTM metres: a polygon's area is its area, in whole pixels of 0.25 m2
    np.testing.assert_array_equal(m.area_m2, np.round(shapely.area(m.polygons), 2))
    np.testing.assert_allclose(m.area_m2 / 0.25, np.round(m.area_m2 / 0.25), atol=1e-9)
    # they cover the changed pixels of the footprint (less specks smaller than min_polygon_pixels)
    changed = m.changed[_rows_cols(footprint, plan.grid)].sum() * 0.25
    assert 0.9 * changed <= m.area_m2.sum() <= changed
    assert m.area_m2.sum() == pytest.approx(m.columns["changed_fraction"][DESTROYED] * footprint.area, rel=0.1)
    # specks smaller than min_polygon_pixels are dropped: none is left when it exceeds the whole change
    big = measure(px, plan.geoms, fit, plan.config.replace(min_polygon_pixels=int(m.changed.sum()) + 1), want_polygons=True)
    assert len(big.polygons) == len(big.owner) == len(big.area_m2) == 0


def test_no_polygons_unless_asked(fitted, whole):
    _, plan, fit, _ = fitted
    px, m = whole
    plain = measure(px, plan.geoms, fit, plan.config)
    assert len(plain.polygons) == len(plain.owner) == len(plain.area_m2) == 0
    for column in MEASURE_COLUMNS[1:]:
        np.testing.assert_array_equal(plain.columns[column], m.columns[column], err_msg=column)


def test_areas_and_rings_are_in_metres_on_a_geographic_grid_too(whole, tmp_path):
    # the same scene on a grid in degrees: the changed area of the destroyed building is the same in m2, and the
    # ring around it (Config.ring_width metres) shows the same spilled rubble
    _, utm = whole
    _, geo_plan, geo_fit, geo_pixels = _fitted(tmp_path, crs="EPSG:4326")
    assert geo_plan.grid.crs.is_geographic
    geoms = geo_plan.geoms
    m = measure(cut_window(geo_pixels, geo_fit, window_extent(geoms, geo_plan.grid, geo_plan.config)), geoms, geo_fit,
                geo_plan.config, want_polygons=True)
    assert set(m.owner.tolist()) == {DESTROYED}
    assert m.area_m2.sum() == pytest.approx(utm.area_m2.sum(), rel=0.1)
    assert m.columns["ring_delta_e"][DESTROYED] == pytest.approx(utm.columns["ring_delta_e"][DESTROYED], rel=0.1)
    np.testing.assert_allclose(m.columns["before_outline"], utm.columns["before_outline"], atol=0.1)
