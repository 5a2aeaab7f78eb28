"""Per-building evidence (array code) and the evidence model."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pytest
import shapely
from affine import Affine
from rasterio.crs import CRS

import damage
from damage.errors import DamageWarning
from damage.geo.raster import Grid
from damage.geo.zonal import zones
from damage.grading import MODEL, Calibration, EvidenceModel
from damage.optical.evidence import FEATURES, building_evidence
from damage.optical.metrics import scene_stats

RES = 0.5


def _scene(seed: int = 0, size: int = 160) -> np.ndarray:
    """A textured ground with a few roofs (bright, with ridges), 3 bands."""
    rng = np.random.default_rng(seed)
    from scipy import ndimage

    ground = ndimage.gaussian_filter(rng.normal(90, 25, (size, size)), 1.5)
    img = np.stack([ground, ground * 1.05, ground * 0.9]).astype(np.float32)
    for r0, c0 in ((30, 30), (30, 100), (100, 30), (100, 100)):
        roof = 170 + 25 * np.sign(np.sin(np.arange(30) / 3.0))[None, :] * np.ones((30, 1))
        img[:, r0 : r0 + 30, c0 : c0 + 30] = roof[None] * np.array([1.0, 0.95, 0.9])[:, None, None]
    return img


def _zones(boxes, size=160):
    grid = Grid(CRS.from_epsg(32615), Affine(RES, 0, 0, 0, -RES, size * RES), (size, size))
    geoms = np.array([shapely.box(c0 * RES, (size - r0 - 30) * RES, (c0 + 30) * RES, (size - r0) * RES) for r0, c0 in boxes],
                     dtype=object)
    rings = shapely.difference(shapely.buffer(geoms, 6.0), geoms)
    outlines = shapely.buffer(shapely.boundary(geoms), 1.5)
    return zones(geoms, grid), zones(rings, grid), zones(outlines, grid)


BOXES = ((30, 30), (30, 100), (100, 30), (100, 100))


def _evidence(before, after, boxes=BOXES):
    valid = np.ones(before.shape[1:], bool)
    valid[:8], valid[-8:], valid[:, :8], valid[:, -8:] = False, False, False, False
    fz, rz, oz = _zones(boxes)
    return building_evidence(before, after, valid, fz, rz, oz, scene_stats(before, after, valid), Calibration(0.05, "blocks", 1, {"colour": 0.02, "edge": 0.0, "lightness": 0.0}),
                             max_shift=2)


def test_unchanged_buildings_show_no_change_even_when_moved_by_two_pixels():
    before = _scene()
    moved = np.roll(before, (2, -1), axis=(1, 2))
    ev = _evidence(before, moved)
    assert set(ev) == set(FEATURES)
    assert np.all(ev["ssim_loss"] < 0.05) and np.all(ev["colour_change"] < 0.02)


def test_rubble_is_structural_and_colour_change():
    before = _scene()
    after = before.copy()
    rng = np.random.default_rng(1)
    after[:, 100:130, 100:130] = rng.uniform(40, 200, (1, 30, 30)) * np.array([1.0, 0.9, 0.8])[:, None, None]
    ev = _evidence(before, after)
    assert ev["ssim_loss"][3] > 0.5 > 0.05 > ev["ssim_loss"][:3].max()
    assert ev["colour_change"][3] > 5 * ev["colour_change"][:3].max()
    assert ev["ssim_contrast"][3] > ev["ssim_contrast"][:3].max()
    p = MODEL.probability(ev)
    assert p[3] > 0.5 > p[:3].max()


def test_a_buildings_evidence_does_not_depend_on_the_others():
    before = _scene()
    after = before.copy()
    after[:, 100:130, 100:130] = 60.0
    every = _evidence(before, after)
    alone = _evidence(before, after, boxes=BOXES[3:])
    for name in FEATURES:
        assert alone[name][0] == pytest.approx(every[name][3], rel=1e-9, abs=1e-12), name


def test_the_model_scores_through_its_cuts_and_round_trips():
    m = EvidenceModel(("a",), (0.0,), (1.0,), (2.0,), 0.0, (0.2, 0.5, 0.8))
    p = m.probability({"a": np.array([-10.0, 0.0, 10.0, np.nan])})
    assert p[0] < 0.01 and p[1] == pytest.approx(0.5) and p[2] > 0.99 and p[3] == pytest.approx(0.5)
    from damage.grading import grade

    g = grade(np.array([0.1, 0.2, 0.6, 0.8, np.nan]), np.array([True] * 4 + [False]), "xbd", thresholds=m.cuts)
    assert g.tolist() == ["no-damage", "minor-damage", "major-damage", "destroyed", "not-analysed"]
    assert EvidenceModel.from_dict(m.to_dict()) == m
    with pytest.raises(ValueError):
        EvidenceModel(("a",), (0.0,), (1.0,), (2.0,), 0.0, (0.5, 0.2, 0.8))


def test_not_analysed_buildings_say_why(pair_factory):
    b, a, f, scene = pair_factory()
    fp = gpd.read_file(f)
    far = shapely.affinity.translate(fp.geometry.iloc[0], 5_000, 0)  # off the imagery
    fp = gpd.GeoDataFrame(geometry=[*fp.geometry, far], crs=fp.crs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamageWarning)  # the run's own notes; any other warning fails
        r = damage.assess(b, a, fp)
    assert r["not_analysed_reason"].iloc[-1] == "outside imagery"
    assert r["damage_grade"].iloc[-1] == "not-analysed"
    ok = r["damage_grade"] != "not-analysed"
    assert r.loc[ok, "not_analysed_reason"].isna().all()
    assert r.loc[ok, "p_damaged"].between(0, 1).all()
    assert r.attrs["damage"]["not_analysed"]["outside imagery"] == 1
    assert r.attrs["damage"]["model"]["features"] == list(MODEL.features)


def test_footprints_on_empty_lots_are_not_graded_but_no_house_is_called_empty(tmp_path):
    """Footprints newer than the before image (boxes on the town's open ground) show no building:
    the plain ones are "no building before"; no footprint of a house ever is."""
    import warnings

    import geopandas as gpd
    import shapely

    import damage
    from damage.scenes.synthetic import write_pair
    from damage.scenes.town import make_town

    b, a, f = write_pair(make_town(size=448, seed=2, damage_share=0.3), tmp_path)
    houses = gpd.read_file(f)
    taken = shapely.union_all(houses.geometry.buffer(3).values)
    rng = np.random.default_rng(0)
    x0, y0, x1, y1 = houses.total_bounds
    lots: list = []
    while len(lots) < 30:
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        lot = shapely.box(cx - 5, cy - 4, cx + 5, cy + 4)
        if not lot.intersects(taken):
            lots.append(lot)
            taken = taken.union(lot.buffer(3))
    fp = gpd.GeoDataFrame({"lot": [False] * len(houses) + [True] * len(lots)},
                          geometry=[*houses.geometry, *lots], crs=houses.crs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamageWarning)  # the run's own notes; any other warning fails
        result = damage.assess(b, a, fp, building_check=True)
        unchecked = damage.assess(b, a, fp)  # off by default
    empty = result["not_analysed_reason"] == "no building before"
    assert empty[fp["lot"]].sum() >= 4 and not empty[~fp["lot"]].any()
    assert result.loc[fp["lot"], "before_outline"].median() < result.loc[~fp["lot"], "before_outline"].median() - 0.2
    assert not (unchecked["not_analysed_reason"] == "no building before").any()
    assert (unchecked.loc[empty, "damage_grade"] != "not-analysed").all()


def test_edges_on_the_outline_tell_a_building_from_an_empty_lot():
    """A flat roof on textured ground has its edges on its outline; the same box on open ground has none."""
    from damage.optical.evidence import outline_evidence

    rng = np.random.default_rng(3)
    image = np.repeat((100 + rng.normal(0, 6, (1, 120, 120))).astype(np.float32), 3, axis=0)
    image[:, 20:40, 20:44] = 180.0  # a flat roof: no edges inside, a step all round
    grid = Grid(CRS.from_epsg(32615), Affine(0.5, 0, 0, 0, -0.5, 60), (120, 120))
    house, lot = shapely.box(10, 40, 22, 50), shapely.box(35, 10, 47, 20)  # the roof's pixels, and open ground
    geoms = np.array([house, lot], dtype=object)
    outlines = zones(shapely.buffer(shapely.boundary(geoms), 1.5), grid)
    rings = zones(shapely.difference(shapely.buffer(geoms, 6.0), geoms), grid)
    value = outline_evidence(image, np.ones((120, 120), bool), outlines, rings, 255.0)
    assert value[0] > 0.4 and abs(value[1]) < 0.1


def test_colour_and_shadow_evidence_have_the_signs_they_claim():
    before = _scene(seed=3)
    roofs = np.zeros(before.shape[1:], bool)
    for r0, c0 in BOXES:
        roofs[r0 : r0 + 30, c0 : c0 + 30] = True
    before[:, ~roofs] += 40.0  # ground well above half a roof's lightness: not shadow
    # the building of box 0 casts a shadow on the ground below it (rows 60-66): dark before
    before[:, 60:66, 30:60] = 20.0
    after = before.copy()
    after[:, 60:66, 30:60] = 130.0  # box 0 fell: its shadow is gone (ground of the same tone as around it)
    after[:, 30:60, 100:130] = np.array([90.0, 85.0, 60.0])[:, None, None]  # box 1 under brown mud: colour changes
    after[:, 100:130, 30:60] = after[:, 100:130, 30:60].mean(axis=0, keepdims=True)  # box 2 under grey ash
    # box 3: its ring darkens (charred ground, water)
    ring3 = np.zeros(before.shape[1:], bool)
    ring3[88:142, 88:142] = True
    ring3[100:130, 100:130] = False
    after[:, ring3] *= 0.35
    ev = _evidence(before, after)
    # the fallen building's shadow is gone: 6 x 30 of its ring's ~1,900 pixels
    assert 0.07 < ev["shadow_loss"][0] < 0.12 and abs(ev["shadow_loss"][1]) < 0.02
    assert ev["shadow_loss"][3] < -0.1  # a ring that darkened against its roof: negative
    assert ev["roof_delta_e"][1] > 15 > ev["roof_delta_e"][3]  # the mud-covered roof changed colour as a whole
    assert ev["delta_e_excess"][1] == pytest.approx(ev["roof_delta_e"][1])  # no typical delta_e in this calibration
    assert ev["chroma_change"][2] < -1.0 and abs(ev["chroma_change"][3]) < 1.0  # ash greys the roof
    assert ev["ring_lightness_change"][3] < -10 and abs(ev["ring_lightness_change"][1]) < 5
    assert ev["ring_delta_e"][3] > ev["ring_delta_e"][1]
    assert ev["ring_colour_excess"][3] > ev["ring_colour_excess"][1]
    assert all(np.isfinite(ev[f]).all() for f in FEATURES)


def _evidence_with(before, after, reference, stats=None):
    valid = np.ones(before.shape[1:], bool)
    valid[:8], valid[-8:], valid[:, :8], valid[:, -8:] = False, False, False, False
    fz, rz, oz = _zones(BOXES)
    return building_evidence(before, after, valid, fz, rz, oz, stats or scene_stats(before, after, valid), reference,
                             max_shift=2)


def test_the_excess_features_are_the_raw_ones_less_the_scenes_typical_change():
    """Known answers with a scene reference that is not zero (each feature against its own typical value)."""
    before = _scene(0)
    after = before.copy()
    after[:, 100:130, 100:130] = np.random.default_rng(3).uniform(60, 200, (3, 30, 30))  # one roof to rubble
    after[:, 30:60, 100:130] *= 0.8  # one roof darker
    typical = {"colour": 0.07, "edge": 0.3, "lightness": -2.5, "delta_e": 4.0}
    ev = _evidence_with(before, after, Calibration(0.21, "blocks", 9, typical))
    zero = _evidence_with(before, after, Calibration(0.0, "blocks", 9, {}))
    floor = 0.01  # evidence._COLOUR_FLOOR
    np.testing.assert_allclose(ev["ssim_excess"], -np.log1p(-np.clip(ev["ssim_loss"], 0, 0.999)) - 0.21, rtol=1e-12)
    np.testing.assert_allclose(ev["ssim_excess"], zero["ssim_excess"] - 0.21, rtol=1e-12)
    np.testing.assert_allclose(ev["edge_excess"], ev["edge_change"] - 0.3, rtol=1e-12)
    np.testing.assert_allclose(ev["lightness_excess"], ev["lightness_change"] + 2.5, rtol=1e-12)
    np.testing.assert_allclose(ev["delta_e_excess"], ev["roof_delta_e"] - 4.0, rtol=1e-12)
    np.testing.assert_allclose(ev["colour_excess"], np.log((ev["colour_change"] + floor) / (0.07 + floor)), rtol=1e-12)
    np.testing.assert_allclose(ev["ring_colour_excess"], np.log((ev["ring_colour_change"] + floor) / (0.07 + floor)),
                               rtol=1e-12)
    # contrasts are the footprint against its own ring, with no scene term
    np.testing.assert_allclose(ev["ssim_contrast"], ev["ssim_loss"] - ev["ring_ssim_loss"], rtol=1e-12)
    np.testing.assert_allclose(ev["colour_contrast"], ev["colour_change"] - ev["ring_colour_change"], rtol=1e-12)
    for raw in ("ssim_loss", "colour_change", "edge_change", "lightness_change", "roof_delta_e", "ssim_contrast"):
        np.testing.assert_array_equal(ev[raw], zero[raw])
    # and the rubble roof stands out on the evidence that drives the model
    assert ev["ssim_excess"][3] > ev["ssim_excess"][[0, 2]].max() + 0.5


def test_each_epochs_noise_is_its_own():
    """The after epoch's noise is measured on the after image and discounted from the after image's variance."""
    from damage.optical.metrics import SceneStats

    before = _scene(0)
    rng = np.random.default_rng(5)
    after = before + rng.normal(0, 12.0, before.shape).astype(np.float32)  # the same scene, a noisier sensor
    valid = np.ones(before.shape[1:], bool)
    stats = scene_stats(before, after, valid)
    assert np.all(stats.noise_after > 8.0) and np.all(stats.noise_before < 3.0)
    # noise known to be the after image's: discounted, the roofs look less changed than with it on the before
    right = SceneStats(stats.ranges, stats.luminance_range, np.zeros(3), np.full(3, 12.0), stats.lows)
    swapped = SceneStats(stats.ranges, stats.luminance_range, np.full(3, 12.0), np.zeros(3), stats.lows)
    none = SceneStats(stats.ranges, stats.luminance_range, np.zeros(3), np.zeros(3), stats.lows)
    reference = Calibration(0.0, "blocks", 1, {})
    loss = {k: _evidence_with(before, after, reference, s)["ssim_loss"] for k, s in
            (("right", right), ("swapped", swapped), ("none", none))}
    assert np.all(loss["right"] < 0.8 * loss["none"])
    assert np.all(loss["right"] < 0.8 * loss["swapped"])
    from damage.optical.metrics import ssim

    per_pixel = {k: ssim(before, after, valid, stats=s)[20:140, 20:140].mean() for k, s in
                 (("right", right), ("swapped", swapped), ("none", none))}
    assert per_pixel["right"] < 0.8 * per_pixel["none"] and per_pixel["right"] < 0.8 * per_pixel["swapped"]


def test_lab_is_scikit_images_rgb2lab():
    from skimage.color import rgb2lab

    from damage.optical.evidence import lab

    rng = np.random.default_rng(3)
    image = rng.uniform(-20, 280, (4, 30, 41)).astype(np.float32)  # a fourth band (NIR) is not colour
    want = np.moveaxis(rgb2lab(np.clip((np.moveaxis(image[:3], 0, -1) - 5.0) / 245.0, 0, 1)), -1, 0)
    np.testing.assert_allclose(lab(image, 5.0, 250.0), want, atol=3e-4)
    grey = lab(image[:1], 5.0, 250.0)
    assert np.abs(grey[1:]).max() < 0.01 and grey.shape == (3, 30, 41)  # grey has no hue (to the constants' rounding)


def test_zone_means_are_bincounts_to_the_bit_and_cielab_is_right_where_the_zones_are():
    """The evidence's zone means (one compiled pass for every map) against one numpy.bincount per map."""
    from damage.optical.evidence import _lab_where, _Means, lab

    fz, rz, _ = _zones(((20, 20), (35, 40), (100, 90)))  # the first two overlap: their rings share pixels
    rng = np.random.default_rng(7)
    valid = rng.random((160, 160)) > 0.1
    both = _Means(valid, fz, rz)
    want_labels, want_idx = [], []
    for offset, zs in ((0, fz), (fz.n, rz)):  # the zones' valid pixels, in Zones.pixels() order
        own, ix = zs.pixels()
        want_labels.append(own[valid.ravel()[ix]] + offset)
        want_idx.append(ix[valid.ravel()[ix]])
    np.testing.assert_array_equal(both.labels, np.concatenate(want_labels))
    np.testing.assert_array_equal(both.idx, np.concatenate(want_idx))
    maps = [rng.normal(0, 50, (160, 160)).astype(np.float32) for _ in range(3)]
    got = both.means(*maps)
    for values, sets in zip(maps, got):
        at = values.ravel()[both.idx].astype(np.float64)
        want = np.bincount(both.labels, weights=at, minlength=both.n) / np.bincount(both.labels, minlength=both.n)
        np.testing.assert_array_equal(np.concatenate(sets), want)
    mixed = both.means(maps[0], maps[1].astype(np.float64))  # maps of two types: each on its own pass
    np.testing.assert_array_equal(np.concatenate(mixed[1]), np.concatenate(got[1]))
    # the share of each ring's pixels darker than a threshold of its own
    below = np.array([-20.0, 0.0, np.nan])
    maps[2][10:15, 10:60] = -20.0  # on the first ring, right at its threshold: not darker
    owner = both.labels - fz.n
    on_ring = owner >= 0
    dark = on_ring & (maps[2].ravel()[both.idx] < below[np.where(on_ring, owner, 0)])
    want = np.bincount(both.labels, weights=dark.astype(float), minlength=both.n)[fz.n:] / np.bincount(both.labels)[fz.n:]
    np.testing.assert_array_equal(both.darker(maps[2], below), want)
    assert want[2] == 0.0 and 0 < want[0] < want[1] < 1
    # CIELAB: the whole window where the zones' pixels are many, only those pixels where they are few
    image = rng.uniform(0, 255, (3, 160, 160)).astype(np.float32)
    whole = lab(image, 0.0, 255.0)
    few = both.idx[both.labels == 2]
    for idx in (np.concatenate([both.idx, both.idx]), few):
        np.testing.assert_array_equal(_lab_where(image, idx, 0.0, 255.0).reshape(3, -1)[:, idx], whole.reshape(3, -1)[:, idx])
