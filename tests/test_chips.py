"""Chips of a building and the overview mosaic: where they are cut, how they are drawn, what they encode."""

from __future__ import annotations

import io

import numpy as np
import pytest
import shapely
from affine import Affine
from PIL import Image

from damage.geo.raster import Window
from damage.grading import SCALES
from damage.report.chips import GRADE_RAMP, NOT_ANALYSED_COLOUR, Overview, cut_chip, grade_colour, png, stretch

T = Affine(0.5, 0, 1000.0, 0, -0.5, 2000.0)  # 0.5 m pixels
MAGENTA = (255, 0, 255)  # no grey pixel has it


def pixels(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "PNG" and img.mode == "RGB"
        return np.asarray(img)


@pytest.fixture
def grey():
    """A 100 x 100 px grey texture, three equal bands (``before``, ``after``), all valid."""
    rng = np.random.default_rng(1)
    band = rng.uniform(50, 200, (100, 100)).astype(np.float32)
    return np.stack([band] * 3), np.stack([band[::-1]] * 3), np.ones((100, 100), bool)


def footprint(c0, r0, c1, r1):
    """A box over pixel columns c0..c1 and rows r0..r1 of ``T``."""
    (x0, y0), (x1, y1) = T * (c0, r1), T * (c1, r0)
    return shapely.box(x0, y0, x1, y1)


def test_a_chip_is_the_footprint_and_its_padding_square_enlarged_to_the_minimum_side(grey):
    before, after, valid = grey
    chip = cut_chip(before, after, valid, T, footprint(40, 45, 60, 55), MAGENTA, 1.0)
    # 20 x 10 px and 15 m = 30 px each side: a square of 80 px about the centre (50, 50), enlarged 3 times to >= 200
    assert chip.size_px == (80, 80) and chip.metres_per_pixel == round(0.5 / 3, 3)
    b, a = pixels(chip.before), pixels(chip.after)
    assert b.shape == a.shape == (240, 240, 3) and chip.after_changed is None
    # the before chip holds the image's pixels 10..90 (grey, one stretch for both epochs)
    assert (b[..., 0] == b[..., 1]).sum() > 0.95 * 240 * 240
    # metres per unit scale the padding: in feet, 15 m is 98.4 ft = 197 px; the image is 100 px
    assert cut_chip(before, after, valid, T, footprint(40, 45, 60, 55), MAGENTA, 0.3048).size_px == (100, 100)


def test_the_outline_is_drawn_in_the_grades_colour_where_the_footprint_is(grey):
    before, after, valid = grey
    # off the image's centre, so the chip starts at column 15, row 5 (the footprint is at its centre all the same)
    chip = cut_chip(before, after, valid, T, footprint(45, 40, 65, 50), MAGENTA, 1.0)
    assert chip.size_px == (80, 80)
    for data in (chip.before, chip.after):
        drawn = (pixels(data) == MAGENTA).all(axis=2)
        rows, cols = np.nonzero(drawn)
        # the footprint is at columns 30..50, rows 35..45 of the chip, times 3: a line of width 2 on it
        assert 88 <= cols.min() <= 91 and 149 <= cols.max() <= 152
        assert 103 <= rows.min() <= 106 and 134 <= rows.max() <= 137
        assert drawn[120, 88:92].any() and drawn[120, 148:152].any() and drawn[103:107, 120].any()
        assert not drawn[110:130, 95:145].any()  # the roof is not painted over
    other = cut_chip(before, after, valid, T, footprint(40, 45, 60, 55), (0, 255, 0), 1.0)
    assert not (pixels(other.before) == MAGENTA).all(axis=2).any()


def test_a_footprint_off_the_image_has_no_chip_and_one_at_its_edge_a_clipped_one(grey):
    before, after, valid = grey
    assert cut_chip(before, after, valid, T, footprint(600, 600, 620, 620), MAGENTA, 1.0) is None
    assert cut_chip(before, after, valid, T, footprint(40, 300, 60, 320), MAGENTA, 1.0) is None  # south of it
    assert cut_chip(before, after, valid, T, footprint(300, 40, 320, 50), MAGENTA, 1.0) is None  # east of it
    edge = cut_chip(before, after, valid, T, footprint(0, 0, 10, 10), MAGENTA, 1.0)
    assert edge.size_px == (70, 70)  # a side of 70 px about (5, 5), moved in to start at the image's corner
    corner = cut_chip(before, after, valid, T, footprint(90, 95, 100, 100), MAGENTA, 1.0)
    assert corner.size_px == (100 - 62, 100 - 60)  # side 70 about row 97, column 95, cut at the far edges


def test_a_footprint_west_or_north_of_the_image_has_no_chip(grey):
    before, after, valid = grey
    assert cut_chip(before, after, valid, T, footprint(-300, 40, -280, 50), MAGENTA, 1.0) is None
    assert cut_chip(before, after, valid, T, footprint(40, -300, 60, -280), MAGENTA, 1.0) is None


def test_changed_pixels_are_tinted_inside_the_footprint_only(grey):
    before, after, valid = grey
    fp = footprint(40, 45, 60, 55)
    outside = np.zeros((100, 100), bool)
    outside[:40] = True  # ground change north of the building
    plain = cut_chip(before, after, valid, T, fp, MAGENTA, 1.0)
    ground = cut_chip(before, after, valid, T, fp, MAGENTA, 1.0, changed=outside)
    assert ground.after_changed is not None and pixels(ground.after_changed).tolist() == pixels(plain.after).tolist()
    inside = np.zeros((100, 100), bool)
    inside[48:52, 45:55] = True
    tinted = pixels(cut_chip(before, after, valid, T, fp, MAGENTA, 1.0, changed=inside).after_changed)
    red = tinted[..., 0].astype(int) - tinted[..., 1]
    assert (red[(48 - 10) * 3 : (52 - 10) * 3, (45 - 10) * 3 : (55 - 10) * 3] > 40).all()
    assert (np.abs(red[:90]) == 0).all()  # rows above the building: grey as before


def test_png_encodes_the_image_enlarged_with_its_outlines_and_labels():
    image = np.zeros((10, 20, 3), np.uint8)
    image[2, 3] = (10, 20, 30)
    plain = pixels(png(image))
    assert plain.shape == (10, 20, 3) and plain[2, 3].tolist() == [10, 20, 30]
    big = pixels(png(image, scale=4))
    assert big.shape == (40, 80, 3) and (big[8:12, 12:16] == (10, 20, 30)).all()
    square = [[(5.0, 5.0), (15.0, 5.0), (15.0, 8.0), (5.0, 8.0)]]
    drawn = pixels(png(image, [(square, (0, 255, 0), 1)]))
    assert drawn[5, 10].tolist() == [0, 255, 0] and drawn[6, 10].tolist() == [0, 0, 0]
    labelled = pixels(png(image, scale=4, texts=[(1.0, 1.0, "b1")]))
    assert (labelled == 255).all(axis=2).any()  # the label's white box


def test_stretch_spreads_each_band_over_the_valid_pixels_and_greys_the_invalid():
    rgb = np.stack([np.linspace(10, 20, 100).reshape(10, 10)] * 3).astype(np.float32)
    valid = np.ones((10, 10), bool)
    valid[0, 0] = False
    out = stretch(rgb, valid, 0.0, 100.0)
    assert out.dtype == np.uint8 and out.shape == (10, 10, 3)
    assert out[0, 1].tolist() == [0, 0, 0] and out[9, 9].tolist() == [255, 255, 255]
    assert out[0, 0].tolist() == [40, 40, 40]
    assert (stretch(rgb, np.zeros((10, 10), bool)) == 0).all()


def test_grade_colours_run_from_green_to_red_on_every_scale():
    xbd = SCALES["xbd"].levels
    assert [grade_colour(g, xbd) for g in xbd] == list(GRADE_RAMP[:4])
    unosat = SCALES["unosat"].levels
    assert [grade_colour(g, unosat) for g in unosat] == list(GRADE_RAMP)
    binary = SCALES["binary"].levels
    assert [grade_colour(g, binary) for g in binary] == [GRADE_RAMP[0], GRADE_RAMP[3]]
    assert grade_colour("not-analysed", xbd) == grade_colour(None, xbd) == NOT_ANALYSED_COLOUR


def test_the_overview_takes_every_factor_th_grid_pixel_at_its_place():
    ov = Overview.empty((3000, 1000), max_side=1400)
    assert ov.factor == 3 and ov.before.shape == (3, 1000, 334) and ov.valid.shape == (1000, 334)
    assert Overview.empty((500, 300)).factor == 1
    # a window of the grid whose pixels say where they are: value = 10000 * row + col
    r0, c0, h, w = 10, 5, 20, 22
    rows, cols = np.mgrid[r0 : r0 + h, c0 : c0 + w]
    where = (10000.0 * rows + cols).astype(np.float32)
    valid = np.ones((h, w), bool)
    valid[15 - r0] = False  # grid row 15 is not valid
    ov.add(Window(r0, c0, h, w), np.stack([where] * 3), np.stack([-where] * 3), valid)
    # grid rows 12, 18, 21, 24, 27 (15 is invalid) and columns 6, 9, ..., 24 fall on the overview
    filled = np.argwhere(ov.valid)
    assert sorted({int(r) for r in filled[:, 0]}) == [4, 6, 7, 8, 9]
    assert sorted({int(c) for c in filled[:, 1]}) == list(range(2, 9))
    for orow, ocol in filled:
        assert ov.before[0][orow, ocol] == 10000 * 3 * orow + 3 * ocol
        assert ov.after[2][orow, ocol] == -(10000 * 3 * orow + 3 * ocol)
    assert ov.before[:, 3].sum() == 0 and ov.before[:, :, 9].sum() == 0
    # a later window does not erase what an earlier one filled where it is not valid
    ov.add(Window(12, 6, 3, 3), np.zeros((3, 3, 3), np.float32), np.zeros((3, 3, 3), np.float32),
           np.zeros((3, 3), bool))
    assert ov.before[0][4, 2] == 10000 * 12 + 6 and ov.valid[4, 2]
