"""Ground units of a grid: one place (``Grid.metres``) turns metres into CRS units, on any CRS."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

import damage
from damage.geo.raster import METRES_PER_DEGREE, Grid, metres_per_unit
from damage.run.plan import grid_units
from damage.run.scenefit import cloud_min_pixels
from damage.scenes.synthetic import write_pair
from damage.scenes.town import Nuisances, make_town


def test_metres_per_unit_of_projected_and_geographic_crs():
    assert metres_per_unit("EPSG:32615") == (1.0, 1.0)
    feet = metres_per_unit("EPSG:2227")  # California zone 3, US survey feet
    assert feet[0] == pytest.approx(0.3048006, rel=1e-6) and feet[0] == feet[1]
    mx, my = metres_per_unit("EPSG:4326", 60.0)
    assert my == METRES_PER_DEGREE and mx == pytest.approx(METRES_PER_DEGREE / 2, rel=1e-9)


def test_a_geographic_grid_knows_its_metres_and_pixel_area():
    # 6e-6 degrees at 37 N (Joplin's latitude): about 0.53 m by 0.67 m
    g = Grid(CRS.from_epsg(4326), Affine(6e-6, 0, -94.5, 0, -6e-6, 37.0 + 512 * 6e-6), (1024, 1024))
    lat = 37.0  # the grid's centre
    assert g.metres == pytest.approx(METRES_PER_DEGREE * np.cos(np.radians(lat)), rel=1e-6)
    assert g.pixel_area == pytest.approx(36e-12 * METRES_PER_DEGREE**2 * np.cos(np.radians(lat)), rel=1e-6)
    assert grid_units(g, 6.0) == pytest.approx(6.0 / g.metres)
    # 1000 m2 of cloud is some 2,800 pixels of it, not 1000 / 36e-12
    assert cloud_min_pixels(damage.Config(min_cloud_area=1000.0), g) == int(1000.0 / g.pixel_area) == 2806
    utm = Grid(CRS.from_epsg(32615), Affine(0.5, 0, 500_000.0, 0, -0.5, 4_100_000.0), (100, 100))
    assert utm.metres == 1.0 and utm.pixel_area == 0.25 and cloud_min_pixels(damage.Config(min_cloud_area=1000.0), utm) == 4000


def _assess(b, a, f, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", damage.errors.DamageWarning)
        return damage.assess(b, a, f, polygons=True, **kw)


def test_clouds_and_changed_areas_are_the_same_on_a_geographic_grid(tmp_path):
    # the same cloudy town graded on its own UTM grid and on a lon/lat grid: the cloud mask must
    # not switch off (a degree taken as a metre made the smallest cloud ~5e13 pixels) and the
    # changed areas must keep their square metres
    s = make_town(size=384, seed=7, nuisances=Nuisances(clouds=0.25))
    b, a, f = write_pair(s, tmp_path)
    utm = _assess(b, a, f)
    geo = _assess(b, a, f, crs="EPSG:4326")
    assert geo.attrs["damage"]["grid"]["crs"].endswith("4326")
    hidden_utm = (utm["not_analysed_reason"] == "cloud or shadow").sum()
    hidden_geo = (geo["not_analysed_reason"] == "cloud or shadow").sum()
    assert hidden_utm >= 5
    assert abs(hidden_geo - hidden_utm) <= max(2, 0.2 * hidden_utm), (hidden_utm, hidden_geo)
    area_utm = utm.attrs["damage_polygons"]["area_m2"].sum()
    area_geo = geo.attrs["damage_polygons"]["area_m2"].sum()
    assert area_utm > 500
    assert area_geo == pytest.approx(area_utm, rel=0.25)
