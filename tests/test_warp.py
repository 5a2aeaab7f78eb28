"""The common grid of a pair (CRS, pixel size, extent) and warping an epoch onto it, on gradient images."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import Transformer
from rasterio.crs import CRS

from damage.errors import FootprintsOutsideImageryError, NoOverlapError, NoValidDataError
from damage.geo.raster import Grid
from damage.io.sources import open_epoch
from damage.io.warp import WARP_BLOCK, choose_crs, footprint_grid, lonlat_extent, warp_epoch

UTM15 = CRS.from_epsg(32615)
WGS84 = CRS.from_epsg(4326)


def gradient(path, crs, transform: Affine, shape: tuple[int, int]):
    """A two-band float32 GeoTIFF whose pixel (row, col) holds 1000 + col and 1000 + row (never black fill)."""
    h, w = shape
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float32)
    with rasterio.open(path, "w", driver="GTiff", count=2, height=h, width=w, dtype="float32", crs=crs,
                       transform=transform) as ds:
        ds.write(np.stack([1000 + cols, 1000 + rows]))
    return open_epoch(path)


def boxes(crs, *bounds):
    return gpd.GeoSeries([shapely.box(*b) for b in bounds], crs=crs)


@pytest.fixture
def utm_pair(tmp_path):
    """Before: 200 x 200 px of 1 m from (500000, 4100200); after: the same shifted 50 m east and north."""
    before = gradient(tmp_path / "before.tif", UTM15, Affine(1, 0, 500_000, 0, -1, 4_100_200), (200, 200))
    after = gradient(tmp_path / "after.tif", UTM15, Affine(1, 0, 500_050, 0, -1, 4_100_250), (200, 200))
    return before, after  # overlap: x 500050..500200, y 4100050..4100200


def test_the_grid_covers_the_footprints_plus_the_margin_and_16_pixels_on_the_before_lattice(utm_pair):
    before, after = utm_pair
    grid = footprint_grid(before, after, boxes(UTM15, (500_100.3, 4_100_100.2, 500_120.7, 4_100_130.6)), margin=5.0)
    assert grid.crs == UTM15 and grid.res == 1.0
    # (500095.3, 4100095.2, 500125.7, 4100135.6) and 16 px of context, out to whole pixels of the before lattice
    assert grid.transform == Affine(1, 0, 500_079, 0, -1, 4_100_152)
    assert grid.shape == (4_100_152 - 4_100_079, 500_142 - 500_079)
    # a geometry that is not a footprint (a point far away) does not stretch the grid
    points = gpd.GeoSeries([*boxes(UTM15, (500_100.3, 4_100_100.2, 500_120.7, 4_100_130.6)),
                            shapely.Point(500_190, 4_100_060), shapely.Polygon()], crs=UTM15)
    assert footprint_grid(before, after, points, margin=5.0) == grid


def test_the_grid_is_clipped_to_where_both_epochs_overlap(utm_pair):
    before, after = utm_pair
    grid = footprint_grid(before, after, boxes(UTM15, (500_055, 4_100_185, 500_065, 4_100_195)), margin=20.0)
    left, bottom, right, top = grid.bounds
    assert (left, top) == (500_050, 4_100_200)  # the overlap's corner, not the footprint's margin
    assert (right, bottom) == (500_065 + 20 + 16, 4_100_185 - 20 - 16)
    # footprints in degrees are placed in the grid's CRS
    grid2 = footprint_grid(before, after, boxes(UTM15, (500_055, 4_100_185, 500_065, 4_100_195)).to_crs(WGS84),
                           margin=20.0)
    assert grid2.crs == UTM15 and grid2.bounds[0] == 500_050 and grid2.bounds[3] == 4_100_200
    assert grid2.bounds[2] == pytest.approx(right, abs=1) and grid2.bounds[1] == pytest.approx(bottom, abs=1)


def test_the_grid_takes_the_coarser_pixel_size_of_the_two_epochs(tmp_path):
    fine = gradient(tmp_path / "fine.tif", UTM15, Affine(0.5, 0, 500_000, 0, -0.5, 4_100_200), (400, 400))
    coarse = gradient(tmp_path / "coarse.tif", UTM15, Affine(2, 0, 500_001, 0, -2, 4_100_201), (100, 100))
    fp = boxes(UTM15, (500_090.2, 4_100_090.2, 500_110.6, 4_100_110.6))
    for before, after in ((fine, coarse), (coarse, fine)):
        grid = footprint_grid(before, after, fp)
        assert grid.res == 2.0 and grid.transform.e == -2.0
        # not the before's lattice when its pixels are not the grid's: edges on multiples of the pixel size
        if before is fine:
            assert grid.transform.c % 2 == 0 and grid.transform.f % 2 == 0
            assert grid.transform == Affine(2, 0, 500_090 - 32, 0, -2, 4_100_112 + 32)
        else:  # the before's own lattice, from its corner (500001, 4100201)
            assert grid.transform == Affine(2, 0, 500_057, 0, -2, 4_100_143)
    # a resolution asked for wins
    assert footprint_grid(fine, coarse, fp, resolution=1.0).res == 1.0


def test_the_grid_is_in_the_before_crs_when_projected_else_the_footprints_utm_zone(tmp_path):
    utm = gradient(tmp_path / "utm.tif", UTM15, Affine(1, 0, 500_000, 0, -1, 4_100_000), (300, 300))
    lon0, lat0 = Transformer.from_crs(UTM15, WGS84, always_xy=True).transform(499_990, 4_100_010)
    deg = gradient(tmp_path / "deg.tif", WGS84, Affine(1e-5, 0, lon0, 0, -1e-5, lat0), (400, 400))
    fp = boxes(UTM15, (500_100, 4_099_850, 500_110, 4_099_860))
    assert footprint_grid(utm, deg, fp).crs == UTM15
    assert footprint_grid(deg, utm, fp).crs == UTM15  # the after's, when the before's is geographic
    zone14 = gradient(tmp_path / "zone14.tif", CRS.from_epsg(32614), Affine(1, 0, 1_033_700, 0, -1, 4_116_950),
                      (500, 500))
    fp14 = fp
    assert footprint_grid(utm, zone14, fp14.to_crs(WGS84)).crs == UTM15 == footprint_grid(utm, zone14, fp14).crs
    assert footprint_grid(zone14, utm, fp14).crs == CRS.from_epsg(32614)
    grid = footprint_grid(deg, deg, fp.to_crs(WGS84))
    assert grid.crs == UTM15  # lon -93: zone 15 north, though no input is in it
    assert 0.89 < grid.res < 1.11  # 1e-5 degree of longitude and of latitude at 37 N, in metres
    assert footprint_grid(deg, deg, fp, crs="EPSG:32614").crs == CRS.from_epsg(32614)  # a CRS asked for wins
    # the zone of the footprints' centre, and the southern hemisphere's
    assert choose_crs(deg, deg, (-93.0 + 0.01, 37.0)) == UTM15
    assert choose_crs(deg, deg, (-90.0 - 0.01, 37.0)) == UTM15
    assert choose_crs(deg, deg, (-90.0 + 0.01, 37.0)) == CRS.from_epsg(32616)
    assert choose_crs(deg, deg, (-179.99, 10.0)) == CRS.from_epsg(32601)
    assert choose_crs(deg, deg, (179.99, 10.0)) == CRS.from_epsg(32660)
    assert choose_crs(deg, deg, (30.5, -10.0)) == CRS.from_epsg(32736)


def test_footprints_off_the_overlap_and_disjoint_epochs_are_refused(utm_pair, tmp_path):
    before, after = utm_pair
    with pytest.raises(FootprintsOutsideImageryError, match="footprints span lon .* overlap lon"):
        footprint_grid(before, after, boxes(UTM15, (500_000, 4_100_000, 500_010, 4_100_010)))  # in before only
    with pytest.raises(FootprintsOutsideImageryError):  # 30 m out of the overlap: 16 px of context do not reach it
        footprint_grid(before, after, boxes(UTM15, (500_230, 4_100_100, 500_240, 4_100_110)))
    # just off it, the 16 pixels of context (and the margin) reach in
    assert footprint_grid(before, after, boxes(UTM15, (500_210, 4_100_100, 500_220, 4_100_110))).bounds[2] == 500_200
    far = gradient(tmp_path / "far.tif", UTM15, Affine(1, 0, 501_000, 0, -1, 4_100_200), (100, 100))
    with pytest.raises(NoOverlapError, match="before.tif .*far.tif .*do not overlap"):
        footprint_grid(before, far, boxes(UTM15, (500_100, 4_100_100, 500_110, 4_100_110)))


def test_lonlat_extent_names_the_bounds_in_degrees_or_else_in_the_crs_units():
    assert lonlat_extent((-94.52, 37.05, -94.49, 37.08), WGS84) == "lon -94.52000 to -94.49000, lat 37.05000 to 37.08000"
    w, s, e, n = rasterio.warp.transform_bounds(UTM15, WGS84, 500_000, 4_099_000, 501_000, 4_100_000, densify_pts=21)
    text = lonlat_extent((500_000, 4_099_000, 501_000, 4_100_000), UTM15)
    assert text == f"lon {w:.5f} to {e:.5f}, lat {s:.5f} to {n:.5f}" and text.startswith("lon -93.00000 to ")
    local = CRS.from_wkt('LOCAL_CS["site grid",LOCAL_DATUM["x",32767],UNIT["metre",1],AXIS["X",EAST],AXIS["Y",NORTH]]')
    assert lonlat_extent((0, 5, 10, 20), local).startswith("0 to 10, 5 to 20 in ")


def test_a_tile_on_the_grid_lattice_is_copied_pixel_for_pixel(utm_pair):
    before, _ = utm_pair
    grid = Grid(UTM15, Affine(1, 0, 500_030, 0, -1, 4_100_180), (50, 60))
    r = warp_epoch(before, grid)
    rows, cols = np.mgrid[0:50, 0:60]
    assert np.array_equal(r.array[0], 1000 + 30 + cols) and np.array_equal(r.array[1], 1000 + 20 + rows)
    assert r.valid.all() and r.grid == grid
    # a grid that runs off the tile: the part outside is invalid and zero
    off = Grid(UTM15, Affine(1, 0, 500_190, 0, -1, 4_100_180), (10, 20))
    r = warp_epoch(before, off)
    assert r.valid[:, :10].all() and not r.valid[:, 10:].any()
    assert np.array_equal(r.array[0][:, :10], np.broadcast_to(1000 + 190 + np.arange(10), (10, 10)))
    assert (r.array[:, :, 10:] == 0).all()
    # half a pixel off the tile's lattice (along x, or y): resampled (bilinear), not copied
    half = warp_epoch(before, Grid(UTM15, Affine(1, 0, 500_030.5, 0, -1, 4_100_180), (50, 60)))
    np.testing.assert_allclose(half.array[0], 1000 + 30.5 + cols, atol=1e-3)
    np.testing.assert_allclose(half.array[1], 1000 + 20 + rows, atol=1e-3)
    half = warp_epoch(before, Grid(UTM15, Affine(1, 0, 500_030, 0, -1, 4_100_179.5), (50, 60)))
    np.testing.assert_allclose(half.array[1], 1000 + 20.5 + rows, atol=1e-3)
    with pytest.raises(NoValidDataError, match="before.tif"):
        warp_epoch(before, Grid(UTM15, Affine(1, 0, 600_000, 0, -1, 4_100_180), (10, 10)))


@pytest.fixture
def degrees_epoch(tmp_path):
    """A tile in degrees (1e-5 deg pixels) covering x 500000..500700, y 4099300..4100000 of zone 15."""
    to_deg = Transformer.from_crs(UTM15, WGS84, always_xy=True)
    lon0, lat0 = to_deg.transform(499_980, 4_100_020)
    transform = Affine(1e-5, 0, lon0, 0, -1e-5, lat0)
    return gradient(tmp_path / "degrees.tif", WGS84, transform, (680, 820)), transform


def test_a_warp_from_degrees_puts_every_pixel_where_its_coordinates_say(degrees_epoch):
    epoch, transform = degrees_epoch
    grid = Grid(UTM15, Affine(2, 0, 500_100, 0, -2, 4_099_900), (150, 140))
    r = warp_epoch(epoch, grid)
    assert r.valid.all()
    rows, cols = np.mgrid[0:150, 0:140]
    x, y = grid.transform * (cols + 0.5, rows + 0.5)
    lon, lat = Transformer.from_crs(UTM15, WGS84, always_xy=True).transform(x, y)
    tc, tr = ~transform * (lon, lat)  # continuous pixel coordinates in the tile; pixel centres at k + 0.5
    np.testing.assert_allclose(r.array[0], 1000 + tc - 0.5, atol=0.15)
    np.testing.assert_allclose(r.array[1], 1000 + tr - 0.5, atol=0.15)


# the grid's row 110 and column 174 begin blocks of the lattice (4099950 = 110 mod 256, 500050 + 174 = 0 mod 256):
# windows across those edges, ending on them, starting on them and just before them
@pytest.mark.parametrize("window", [(0, 0, 600, 600), (100, 150, 11, 25), (110, 174, 300, 300), (109, 173, 30, 30),
                                    (3, 7, 40, 50), (511, 500, 89, 100)])
def test_a_window_of_the_grid_gets_the_same_pixels_as_the_whole_grid_warped(degrees_epoch, window):
    epoch, _ = degrees_epoch
    # 600 x 600 px of 1 m: several blocks of the lattice; the grid starts off a block edge
    grid = Grid(UTM15, Affine(1, 0, 500_050, 0, -1, 4_099_950), (600, 600))
    assert 500_050 % WARP_BLOCK and (4_099_950 % WARP_BLOCK)
    whole = warp_epoch(epoch, grid)
    r0, c0, h, w = window
    part = warp_epoch(epoch, grid, window=window)
    assert part.grid.transform == grid.transform * Affine.translation(c0, r0) and part.grid.shape == (h, w)
    assert np.array_equal(part.array, whole.array[:, r0 : r0 + h, c0 : c0 + w])
    assert np.array_equal(part.valid, whole.valid[r0 : r0 + h, c0 : c0 + w])
    # a smaller grid on the same lattice agrees too (a region's chunk)
    sub = Grid(UTM15, grid.transform * Affine.translation(c0, r0), (h, w))
    assert np.array_equal(warp_epoch(epoch, sub).array, part.array)
