"""The plan of an assessment: the grid, the usable footprints and their windows, the window read, memory."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from affine import Affine
from rasterio.crs import CRS

import damage.run.plan as plan_module
from damage.config import Config
from damage.errors import ConfigError, DamageWarning, FootprintsOutsideImageryError
from damage.geo.raster import Grid, Window
from damage.run.plan import CONTEXT_PIXELS, WINDOW_BYTES_PER_PIXEL, check_memory, make_plan, on_grid, window_extent
from damage.scenes.synthetic import make_scene, write_pair

#: A 0.5 m UTM grid of 400 x 300 px (rows x cols) with its top left corner at (500000, 4100000).
GRID = Grid(CRS.from_epsg(32615), Affine(0.5, 0, 500_000.0, 0, -0.5, 4_100_000.0), (400, 300))


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """A 128 px scene of 16 buildings, four by four in cells of 32 px."""
    scene = make_scene(size=128, buildings=16, seed=4)
    b, a, _ = write_pair(scene, tmp_path_factory.mktemp("plan"))
    return b, a, scene.footprints


def _box(r0: float, c0: float, r1: float, c1: float, grid: Grid = GRID) -> shapely.Polygon:
    """The rectangle of rows r0..r1 and columns c0..c1 of ``grid``, in its CRS."""
    x0, y0 = grid.transform * (c0, r0)
    x1, y1 = grid.transform * (c1, r1)
    return shapely.box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def _geoms(*items) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = list(items)
    return out


# -- make_plan ---------------------------------------------------------------------------------------------
def test_the_grid_is_the_footprints_and_their_context_on_the_before_lattice(pair):
    b, a, fp = pair
    whole = make_plan(b, a, fp, Config(), 1 << 30)
    # 250 m of context reach past the 64 m scene: the grid is the whole imagery, on its own pixels
    assert whole.grid.shape == (128, 128) and whole.grid.transform == Affine(0.5, 0, 500_000.0, 0, -0.5, 4_100_000.0)
    assert whole.config.crs == "EPSG:32615" and whole.config.resolution == 0.5
    # the four middle buildings: their bounds, 16 px (8 m) of margin and the context around them
    middle = fp.iloc[[5, 6, 9, 10]]
    x0, y0, x1, y1 = middle.total_bounds  # on pixel edges
    for context in (0.0, 6.0):
        tight = make_plan(b, a, middle, Config(context=context), 1 << 30)
        pad = 8.0 + context
        assert tight.grid.bounds == pytest.approx((x0 - pad, y0 - pad, x1 + pad, y1 + pad), abs=1e-9)
        assert tight.grid.shape == (round((y1 - y0 + 2 * pad) / 0.5), round((x1 - x0 + 2 * pad) / 0.5))
    assert whole.input_files == [str(b), str(a)] and whole.source == "GeoDataFrame"


def test_each_footprint_gets_the_window_holding_its_centre(pair):
    b, a, fp = pair
    plan = make_plan(b, a, fp, Config(), 64)
    # building i is in row i // 4 and column i % 4 of cells of 32 px: windows of 64 px hold two by two
    expected = [f"row{i // 8:02d}_col{i % 4 // 2:02d}" for i in range(16)]
    assert plan.window_of.tolist() == expected
    assert plan.windows == ["row00_col00", "row00_col01", "row01_col00", "row01_col01"]
    assert plan.members("row00_col01").tolist() == [2, 3, 6, 7]
    assert plan.members("row01_col00").tolist() == [8, 9, 12, 13]
    one = make_plan(b, a, fp, Config(), 1 << 30)
    assert set(one.window_of.tolist()) == {"row00_col00"} and one.windows == ["row00_col00"]
    assert plan.usable.all() and plan.window_size == 64


def test_unusable_and_outside_footprints_are_kept_but_not_planned(pair):
    b, a, fp = pair
    extra = [None, shapely.Polygon(), shapely.Point(500_010.0, 4_099_990.0),
             shapely.box(501_000.0, 4_099_980.0, 501_010.0, 4_099_990.0),  # 1 km east of the imagery
             shapely.LineString([(500_010.0, 4_099_990.0), (500_020.0, 4_099_980.0)])]
    more = gpd.GeoDataFrame({"building_id": np.arange(16, 21)}, geometry=extra, crs=fp.crs)
    both = pd.concat([fp, more], ignore_index=True)
    plan = make_plan(b, a, both, Config(), 64, source="fp.geojson")
    assert plan.usable.tolist() == [True] * 16 + [False] * 5
    assert plan.window_of[16:].tolist() == [""] * 5
    assert all(plan.geoms[i] is None for i in (16, 17, 18, 20))  # the unusable ones are dropped
    assert not shapely.intersects(plan.geoms[19], shapely.box(*plan.grid.bounds))  # the one outside is kept
    assert len(plan.footprints) == 21 and plan.footprints is both  # as given, in input order
    assert sum(len(plan.members(w)) for w in plan.windows) == 16
    assert plan.source == "fp.geojson"


def test_footprints_mostly_off_the_imagery_are_warned_about_and_none_on_it_refused(pair):
    b, a, fp = pair
    away = fp.assign(geometry=fp.geometry.translate(1_000.0, 0.0))  # 1 km east: off the 64 m scene
    most = pd.concat([fp.iloc[:3], away], ignore_index=True)
    with pytest.warns(DamageWarning, match=r"fp\.geojson: 16 of the 19 footprints \(84 %\) lie outside"):
        plan = make_plan(b, a, most, Config(), 64, source="fp.geojson")
    assert plan.usable.tolist() == [True] * 3 + [False] * 16
    with pytest.raises(FootprintsOutsideImageryError, match=r"^fp\.geojson: "):
        make_plan(b, a, away, Config(), 64, source="fp.geojson")


def test_a_window_beyond_memory_is_refused_by_the_plan(pair, monkeypatch):
    b, a, fp = pair
    monkeypatch.setattr(plan_module, "physical_memory", lambda: 1_000_000)  # a 1 MB machine
    with pytest.raises(ConfigError, match=r"one window of 128 x 128 px"):
        make_plan(b, a, fp, Config(), 1 << 30)
    make_plan(b, a, fp, Config(), 16)  # 16 x 16 px windows fit


# -- on_grid -----------------------------------------------------------------------------------------------
def test_on_grid_refuses_when_no_footprint_lies_on_it():
    off = _geoms(_box(-50, -50, -10, -10), _box(500, 10, 520, 30), None)
    usable = np.array([True, True, False])
    with pytest.raises(FootprintsOutsideImageryError, match=r"^town\.gpkg: no footprint lies where the before and "
                                                            r"after imagery overlap \(lon -9\d\.\d+ to"):
        on_grid(off, usable, GRID, "town.gpkg")
    with pytest.raises(FootprintsOutsideImageryError, match="after stacks overlap"):
        on_grid(off, usable, GRID, "town.gpkg", "stacks")
    # a footprint on the grid that is not usable does not count
    with pytest.raises(FootprintsOutsideImageryError):
        on_grid(_geoms(_box(10, 10, 20, 20)), np.array([False]), GRID, "town.gpkg")


def test_on_grid_warns_when_most_lie_outside():
    geoms = _geoms(_box(10, 10, 20, 20), _box(-50, -50, -10, -10), _box(500, 10, 520, 30), _box(10, 400, 20, 420))
    usable = np.ones(4, bool)
    with pytest.warns(DamageWarning, match=r"town\.gpkg: 3 of the 4 footprints \(75 %\) lie outside the imagery both "
                                           r"epochs cover .*'outside imagery'"):
        inside = on_grid(geoms, usable, GRID, "town.gpkg")
    assert inside.tolist() == [True, False, False, False]
    assert usable.tolist() == [True] * 4  # not changed in place


def test_on_grid_is_silent_when_half_or_fewer_lie_outside():
    # one straddling the grid's edge is on it; unusable ones count neither way
    geoms = _geoms(_box(10, 10, 20, 20), _box(-5, -5, 5, 5), _box(-50, -50, -10, -10), _box(500, 10, 520, 30),
                   None, _box(600, 600, 610, 610))
    usable = np.array([True, True, True, True, False, False])
    with warnings.catch_warnings():
        warnings.simplefilter("error", DamageWarning)
        inside = on_grid(geoms, usable, GRID, "town.gpkg")  # 2 of 4 outside: exactly half
    assert inside.tolist() == [True, True, False, False, False, False]


# -- window_extent -----------------------------------------------------------------------------------------
def test_window_extent_is_the_bounds_the_ring_and_the_context():
    cfg = Config()  # ring_width 6 m: 12 px of 0.5 m, and CONTEXT_PIXELS more
    pad = 12 + CONTEXT_PIXELS
    assert pad == 36
    one = window_extent(_geoms(_box(150, 100, 160, 120)), GRID, cfg)
    assert isinstance(one, Window) and one == Window(150 - pad, 100 - pad, 10 + 2 * pad, 20 + 2 * pad)
    two = window_extent(_geoms(_box(150, 100, 160, 120), _box(200, 90, 230, 110)), GRID, cfg)
    assert two == Window(150 - pad, 90 - pad, 80 + 2 * pad, 30 + 2 * pad)
    wide = window_extent(_geoms(_box(150, 100, 160, 120)), GRID, Config(ring_width=10.0))
    assert wide == Window(150 - 44, 100 - 44, 10 + 88, 20 + 88)
    # a footprint off the pixel edges: whole pixels around it
    part = window_extent(_geoms(_box(150.75, 100.6, 159.3, 119.4)), GRID, cfg)
    assert part == one


def test_window_extent_is_clipped_to_the_grid():
    cfg = Config()
    assert window_extent(_geoms(_box(10, 20, 30, 40)), GRID, cfg) == Window(0, 0, 30 + 36, 40 + 36)
    corner = window_extent(_geoms(_box(380, 280, 395, 298)), GRID, cfg)
    assert corner == Window(380 - 36, 280 - 36, 400 - 344, 300 - 244)
    assert window_extent(_geoms(_box(-20, -20, 420, 320)), GRID, cfg) == Window(0, 0, 400, 300)


def test_window_extent_measures_the_ring_in_metres_on_a_grid_in_feet():
    feet = Grid(CRS.from_epsg(2227), Affine(1.0, 0, 6_000_000.0, 0, -1.0, 2_000_000.0), (500, 500))
    # 6 m is 19.7 ft: 19.7 + 24 px of one foot around the footprint, whole pixels outwards
    ext = window_extent(_geoms(_box(200, 200, 220, 230, feet)), feet, Config())
    assert ext == Window(200 - 44, 200 - 44, 20 + 88, 30 + 88)


# -- memory ------------------------------------------------------------------------------------------------
def test_check_memory_refuses_a_window_that_cannot_fit(monkeypatch):
    monkeypatch.setattr(plan_module, "physical_memory", lambda: 1_000_000_000)  # 1 GB; 800 MB may be used
    assert WINDOW_BYTES_PER_PIXEL == 160
    check_memory((2000, 2500), 3, 4096)  # 5e6 px x 160 B = 800 MB: just fits
    with pytest.raises(ConfigError, match=r"1 band\(s\)\) needs about 800 MB"):
        check_memory((2000, 2501), 1, 4096)  # fewer bands than three cost as three
    with pytest.raises(ConfigError, match=r"^max_pixels: one window of 2,000 x 2,501 px \(the grid is 2,000 x 2,501 "
                                          r"px, 3 band\(s\)\) needs about 800 MB, more than this machine's 1\.0 GB"):
        check_memory((2000, 2501), 3, 4096)
    with pytest.raises(ConfigError, match=r"6 band\(s\)\) needs about 1\.3 GB"):
        check_memory((2000, 2000), 6, 4096)  # six bands cost twice three
    # only one window of the grid is held at a time
    check_memory((100_000, 100_000), 3, 2048)
    with pytest.raises(ConfigError, match=r"one window of 3,000 x 3,000 px \(the grid is 100,000 x 100,000 px"):
        check_memory((100_000, 100_000), 3, 3000)


def test_check_memory_lets_anything_through_where_the_os_does_not_say(monkeypatch):
    monkeypatch.setattr(plan_module, "physical_memory", lambda: None)
    check_memory((100_000, 100_000), 12, 1 << 30)
    monkeypatch.undo()
    have = plan_module.physical_memory()
    assert have is None or have > 100_000_000


def test_a_crowded_window_is_cut_into_parts_that_give_the_whole_windows_answer(pair_factory, tmp_path, monkeypatch):
    """Issue 26: no chunk holds more than MAX_FOOTPRINTS_PER_WINDOW footprints (a worker's memory is bounded);
    the parts read their own footprints' extent and every building keeps its numbers."""
    import warnings

    import damage
    from damage.errors import DamageWarning
    from damage.geo.raster import split_crowded
    from damage.run import plan as plan_module
    from damage.testing import assert_result_equal

    ids = np.array(["a", "b", "a", "a", "a", "b"])
    assert split_crowded(ids, 2).tolist() == ["a_part0", "b", "a_part0", "a_part1", "a_part1", "b"]
    assert split_crowded(ids, 4).tolist() == ids.tolist()
    # parts are numbered with as many digits as the last needs: ten parts, one digit; eleven, two
    assert split_crowded(np.array(["a"] * 10), 1).tolist() == [f"a_part{p}" for p in range(10)]
    assert split_crowded(np.array(["a"] * 11), 1).tolist()[:2] == ["a_part00", "a_part01"]
    b, a, f, _ = pair_factory(size=200, buildings=16, damaged=(3, 9))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamageWarning)
        whole = damage.assess(b, a, f)
        monkeypatch.setattr(plan_module, "MAX_FOOTPRINTS_PER_WINDOW", 5)
        parts = damage.assess(b, a, f, workers=1)
        region = damage.batch(b, a, f, tmp_path / "run", workers=1)
    assert parts.attrs["damage"]["grid"]["windows"] == 4 and region.chunks == 4
    for out in (parts, region.result):
        assert_result_equal(whole, out, columns=["building_id", "damage_grade", "p_damaged", "ssim_excess"], rtol=0)
