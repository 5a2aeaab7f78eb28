"""A learned model brought by the user (issue 28): the ONNX contract, tiles on the grid's lattice, its columns,
grades, record, the CLI and region runs."""

from __future__ import annotations

import hashlib
import json
import sys
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

import damage
from damage.cli import main
from damage.errors import DamageWarning, MissingDependencyError, ModelError
from damage.geo.raster import Window
from damage.io import model as model_io
from damage.optical.learned import damage_map, tile_extent

pytest.importorskip("onnxruntime")
onnx_models = pytest.importorskip("damage.scenes.onnx_models")

from conftest import SAMPLE  # noqa: E402


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamageWarning)  # the run's own notes; any other warning fails
        return fn(*args, **kwargs)


def _sample(**kw):
    return _quiet(damage.assess, str(SAMPLE / "before"), str(SAMPLE / "after"), str(SAMPLE / "footprints.geojson"), **kw)


def test_a_constant_model_gives_every_analysed_building_its_constant(tmp_path):
    path = onnx_models.constant_model(tmp_path / "const.onnx", value=0.25)
    result = _sample(model=str(path))
    analysed = (result["damage_grade"] != "not-analysed").to_numpy()
    assert analysed.sum() > 50
    assert (result.loc[analysed, "model_mean"] == 0.25).all() and (result.loc[analysed, "model_p90"] == 0.25).all()
    assert result.loc[~analysed, "model_mean"].isna().all()
    np.testing.assert_allclose(result.loc[analysed, "p_damaged"], 0.25)  # the model's mean is p_damaged
    assert (result.loc[analysed, "damage_grade"] == "no-damage").all()  # below the default minor cut, 0.3
    record = result.attrs["damage"]["learned_model"]
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record["inputs"] == ["before", "after"] and record["tile"] == [512, 512] and record["output_channels"] == 1
    assert result.attrs["damage"]["model"]["features"] == ["model_logit"]
    assert result.attrs["damage"]["damaged_count"]["method"] == "modelled"  # no interval measured for a user's model


def test_the_side_car_cuts_grade(tmp_path):
    path = onnx_models.constant_model(tmp_path / "m.onnx", value=0.25)
    (tmp_path / "m.json").write_text(json.dumps({"cuts": [0.1, 0.2, 0.9], "scale": "xbd"}))
    result = _sample(model=str(path))
    graded = result["damage_grade"] != "not-analysed"
    assert (result.loc[graded, "damage_grade"] == "major-damage").all()
    assert result.attrs["damage"]["learned_model"]["cuts"] == [0.1, 0.2, 0.9]


def test_the_cli_takes_a_model_and_writes_its_record(tmp_path):
    path = onnx_models.constant_model(tmp_path / "const.onnx", value=0.25)
    out = tmp_path / "d.geojson"
    res = CliRunner().invoke(main, ["assess", str(SAMPLE / "before"), str(SAMPLE / "after"),
                                    str(SAMPLE / "footprints.geojson"), "-o", str(out), "--model", str(path), "-q"])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    values = [f["properties"]["model_mean"] for f in doc["features"] if f["properties"]["damage_grade"] != "not-analysed"]
    assert values and all(v == 0.25 for v in values)
    assert doc["damage"]["learned_model"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_building_painted_over_gets_more_than_its_untouched_neighbours(pair_factory, tmp_path):
    b, a, f, scene = pair_factory(size=160, buildings=9, damaged=(4,), seed=3)
    path = onnx_models.difference_model(tmp_path / "diff.onnx", gain=4.0)
    result = _quiet(damage.assess, b, a, f, model=str(path))
    damaged = result["model_mean"].iloc[4]
    others = result["model_mean"].drop(index=4)
    assert damaged > 2 * others.max(), result["model_mean"].round(3).tolist()
    mean, p90 = result["model_mean"], result["model_p90"]
    assert (p90 >= mean - 1e-9).all() and (p90 > mean + 1e-3).mean() > 0.5  # the 90th percentile, not the mean


def test_several_classes_add_up_to_the_damage_of_a_pixel(tmp_path):
    path = onnx_models.broken_model(tmp_path / "two.onnx", "channels")  # |after - before| of bands 0 and 1
    (tmp_path / "two.json").write_text(json.dumps({"classes": ["no-damage", "destroyed"]}))
    model = model_io.load_model(path)
    rng = np.random.default_rng(2)
    b, a = rng.random((2, 3, 8, 8), dtype=np.float32), rng.random((2, 3, 8, 8), dtype=np.float32)
    np.testing.assert_allclose(model.damage(b, a), np.abs(a - b)[:, 1], atol=1e-7)
    (tmp_path / "two.json").write_text(json.dumps({"classes": ["destroyed", "major-damage"]}))
    model_io._LOADED.clear()
    np.testing.assert_allclose(model_io.load_model(path).damage(b, a), np.clip(np.abs(a - b)[:, :2].sum(axis=1), 0, 1),
                               atol=1e-6)


@pytest.mark.parametrize("how,words", [("names", "named 'before' and 'after'"), ("rank", "rank 3"),
                                       ("channels", "name them in a side-car")])
def test_a_model_that_breaks_the_contract_is_refused_in_one_line_before_any_pixel_is_read(tmp_path, how, words):
    path = onnx_models.broken_model(tmp_path / f"{how}.onnx", how)
    with pytest.raises(ModelError, match=words) as err:
        _sample(model=str(path))
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_outputs_outside_zero_one_are_refused(tmp_path):
    path = onnx_models.broken_model(tmp_path / "range.onnx", "range")
    with pytest.raises(ModelError, match=r"outside \[0, 1\].*sigmoid"):
        _sample(model=str(path))


def test_a_file_that_is_not_a_model_or_a_bad_side_car_is_refused(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not an ONNX model"):
        model_io.load_model(junk)
    path = onnx_models.constant_model(tmp_path / "c.onnx")
    (tmp_path / "c.json").write_text(json.dumps({"cuts": [0.5, 0.2, 0.9]}))
    with pytest.raises(ModelError, match="three increasing probabilities"):
        model_io.load_model(path)
    (tmp_path / "c.json").write_text(json.dumps({"cuts": [0.1, 0.2, 0.9], "scale": "unosat"}))
    with pytest.raises(ModelError, match="xBD scale"):
        model_io.load_model(path)


def test_a_model_of_other_bands_is_refused(tmp_path):
    path = onnx_models.constant_model(tmp_path / "four.onnx", bands=4)
    with pytest.raises(ModelError, match="takes 4 band"):
        _sample(model=str(path))


def test_without_onnxruntime_the_error_says_what_to_install(tmp_path, monkeypatch):
    path = onnx_models.constant_model(tmp_path / "c.onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    monkeypatch.setattr(model_io, "_LOADED", {})
    with pytest.raises(MissingDependencyError, match=r"pip install 'damage-assess\[model\]'"):
        model_io.load_model(path)


def test_tiles_lie_on_the_grids_lattice_so_a_pixel_never_depends_on_the_window():
    """The tile-mean model is as non-local as a model gets: any tile placed by the window would show."""
    rng = np.random.default_rng(0)
    shape, tile, overlap = (150, 170), (32, 32), 8
    before = rng.random((2, *shape)).astype(np.float32)
    after = rng.random((2, *shape)).astype(np.float32)
    valid = np.ones(shape, bool)

    def tile_mean(b, a):
        return np.broadcast_to(np.abs(a - b).mean(axis=(1, 2, 3))[:, None, None], (b.shape[0], *b.shape[2:])).copy()

    whole = Window(0, 0, *shape)
    full = damage_map(tile_mean, before, after, valid, whole, whole, shape, tile, overlap)
    assert np.isfinite(full).all()
    for core in (Window(37, 51, 40, 29), Window(0, 130, 20, 40), Window(120, 0, 30, 170)):
        win = tile_extent(core, tile, overlap, shape)
        cut = (slice(None), *win.slices)
        part = damage_map(tile_mean, before[cut], after[cut], valid[win.slices], win, core, shape, tile, overlap)
        inner = part[core.row - win.row:core.row - win.row + core.height, core.col - win.col:core.col - win.col + core.width]
        np.testing.assert_array_equal(inner, full[core.slices])
        assert np.isnan(part).sum() == part.size - core.height * core.width


def test_a_pixelwise_model_is_blended_back_to_itself():
    rng = np.random.default_rng(1)
    shape = (90, 77)
    before, after = rng.random((3, *shape)), rng.random((3, *shape))
    whole = Window(0, 0, *shape)

    def diff(b, a):
        return np.abs(a - b).mean(axis=1)

    out = damage_map(diff, before, after, np.ones(shape, bool), whole, whole, shape, (24, 24), 6)
    np.testing.assert_allclose(out, np.abs(after - before).mean(axis=0), atol=1e-6)  # float32 tiles


def test_windows_and_regions_give_every_building_the_single_runs_model_values(tmp_path):
    """The invariance tests, extended to a model: small tiles, several windows, a region in chunks."""
    from damage.testing import assert_result_equal

    path = onnx_models.tile_mean_model(tmp_path / "tm.onnx")
    kw = dict(model=str(path), model_tile=64, model_overlap=16)
    one = _sample(max_pixels=None, **kw)
    windows = _sample(max_pixels=256 * 256, workers=1, **kw)
    assert windows.attrs["damage"]["grid"]["windows"] > 1
    assert_result_equal(one, windows, columns=["model_mean", "model_p90", "damage_grade"])
    region = _quiet(damage.batch, str(SAMPLE / "before"), str(SAMPLE / "after"), str(SAMPLE / "footprints.geojson"),
                    tmp_path / "run", chunk_size=128, **kw)
    assert region.chunks > 1
    assert_result_equal(one, region.result, columns=["model_mean", "model_p90", "damage_grade"])
    assert region.result.attrs["damage"]["learned_model"]["sha256"] == one.attrs["damage"]["learned_model"]["sha256"]


def test_labels_recalibrate_the_models_grades(tmp_path):
    path = onnx_models.difference_model(tmp_path / "diff.onnx", gain=3.0)
    result = _sample(model=str(path), labels=str(SAMPLE / "eye_labels.geojson"))
    assert result.attrs["damage"]["model"]["features"] == ["model_logit"]
    assert "refitted on" in result.attrs["damage"]["model"]["fitted_on"]
    assert (result["grade_source"] == "analyst").sum() > 0


def test_a_small_static_tile_keeps_a_core_of_its_own(tmp_path):
    """A model of static 32 x 32 input: the default 64 px overlap is cut to a quarter of the tile, and the run
    gives the constant everywhere."""
    path = onnx_models.conv_model(tmp_path / "small.onnx", tile=32)
    model = model_io.load_model(path)
    assert model.tile == (32, 32) and model.layout(512, 64) == ((32, 32), 8)
    const = onnx_models.constant_model(tmp_path / "c.onnx", value=0.25)
    assert model_io.load_model(const).layout(512, 64) == ((512, 512), 64)
    result = _sample(model=str(path))
    assert result.attrs["damage"]["learned_model"]["tile"] == [32, 32]
    assert result.attrs["damage"]["learned_model"]["overlap"] == 8
    analysed = result["damage_grade"] != "not-analysed"
    assert result.loc[analysed, "model_mean"].between(0, 1).all()
