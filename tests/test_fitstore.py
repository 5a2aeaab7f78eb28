"""A scene's fit stored as JSON: read back identical bit for bit, and anything else refused naming the file."""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import struct
import zlib

import numpy as np
import pandas as pd
import pytest

from damage.config import Config
from damage.errors import CorruptRunError
from damage.optical.register import Shift
from damage.optical.scene import CloudMask, SceneFit
from damage.run.fitstore import fit_from_json, fit_to_json, read_fit, write_fit
from damage.run.optical import assess_window
from damage.run.plan import make_plan
from damage.run.scenefit import fit_scene
from damage.scenes.synthetic import make_scene, write_pair


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """The plan and fit of a 200 px scene whose after image is moved by (1.3, -0.7) px and brighter."""
    s = make_scene(size=200, buildings=16, damaged=(5,), seed=3, shift=(1.3, -0.7), gain=1.1, offset=4.0)
    b, a, _ = write_pair(s, tmp_path_factory.mktemp("fitstore"))
    plan = make_plan(b, a, s.footprints, Config(), 1 << 30)
    fit, _ = fit_scene(plan.before, plan.after, plan.grid, plan.geoms[plan.usable], plan.config)
    assert fit.shift is not None and fit.shift.applied and fit.clouds is not None  # what the round trips must carry
    return plan, fit


def _cloudy(fit: SceneFit) -> SceneFit:
    """The fit with a cloud mask of odd shape (37 x 53: bits that do not fill whole bytes) and random bits."""
    mask = np.random.default_rng(7).random((37, 53)) < 0.3
    return dataclasses.replace(fit, clouds=CloudMask(4, mask, {"cloud_share": 0.1 / 3, "shadow_share": 2 / 7}))


def _same(a, b, where: str = "fit") -> None:
    """``a`` and ``b`` hold the same values, field by field, floats bit for bit."""
    if dataclasses.is_dataclass(a):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            _same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, where
        assert a.tobytes() == b.tobytes(), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), where
        for k in a:
            _same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, (bool, np.bool_)) or a is None:
        assert a is b, where
    elif isinstance(a, (float, np.floating)):
        assert isinstance(b, float) and struct.pack("<d", a) == struct.pack("<d", b), f"{where}: {a!r} != {b!r}"
    else:
        assert type(a) is type(b) and a == b, where


def _round_trip(fit: SceneFit, path) -> SceneFit:
    write_fit(fit, path)
    return read_fit(path)


def test_a_fit_read_back_is_identical_field_by_field(fitted, tmp_path):
    _, fit = fitted
    back = _round_trip(fit, tmp_path / "fit.json")
    _same(fit, back)
    assert back.shift.dy == fit.shift.dy and back.shift.dy not in (1.3, round(fit.shift.dy, 6))  # not a round number
    assert json.loads((tmp_path / "fit.json").read_text())["format"] == 2
    cloudy = _cloudy(fit)
    _same(cloudy, _round_trip(cloudy, tmp_path / "cloudy.json"))
    assert cloudy.clouds.mask.sum() > 100


def test_every_form_of_a_fit_reads_back(fitted, tmp_path):
    _, fit = fitted
    shift = Shift(0.1 + 0.2, -1 / 3, 7, 1e-17, True, ((1e-5, -2.5e-6), (3e-7, 0.0)), (99.5, 123.25))
    qa, qb = np.linspace(0.0, 255.0, 17), np.sqrt(np.linspace(0.0, 255.0, 17)) * np.pi
    histogram = {"method": "histogram", "applied": True, "tables": [(qa, qb), (qb[:5], qa[:5]), (qa[:2], qb[:2])]}
    forms = [
        dataclasses.replace(fit, shift=None, clouds=None, fitted_on="sample blocks"),
        dataclasses.replace(fit, shift=shift, normalization=histogram),
        dataclasses.replace(fit, normalization={"method": "none", "applied": False},
                            stats=dataclasses.replace(fit.stats, lows=None)),
    ]
    for k, form in enumerate(forms):
        _same(form, _round_trip(form, tmp_path / f"form{k}.json"), f"form{k}")


def test_a_fit_read_back_measures_the_same_bit_for_bit(fitted, tmp_path):
    plan, fit = fitted
    back = _round_trip(fit, tmp_path / "fit.json")
    idx = np.arange(len(plan.footprints))
    geoms = plan.geoms[idx]
    one = assess_window(plan.before, plan.after, plan.grid, fit, geoms, idx, plan.config).table
    two = assess_window(plan.before, plan.after, plan.grid, back, geoms, idx, plan.config).table
    pd.testing.assert_frame_equal(one, two, check_exact=True)
    assert one["damage_grade"].nunique() > 1


def _edit(doc: dict, path: str, value) -> None:
    """Set (with ``...`` delete, with a function change) the item at ``path`` ("stats.ranges") of ``doc``."""
    *up, last = path.split(".")
    for key in up:
        doc = doc[key]
    if value is ...:
        del doc[last]
    else:
        doc[last] = value(doc[last]) if callable(value) else value


EDITS = [  # (item, value, what the message says)
    ("format", 1, "missing or unknown format"),
    ("format", 3, "missing or unknown format"),
    ("format", "2", "missing or unknown format"),
    ("format", ..., "missing or unknown format"),
    ("stats.luminance_range", float("nan"), "luminance_range is not a finite number"),
    ("shift.dy", float("inf"), "dy is not a finite number"),
    ("stats.ranges", "rm -rf /", "ranges is not a list"),
    ("stats.noise_after", [1.0, 2.0], "noise_after is not a list of 3 numbers"),
    ("stats.noise_before", [1.0, 2.0, 3.0, 4.0], "noise_before is not a list of 3 numbers"),
    ("stats.lows", [1.0, "2", 3.0], "lows is not a finite number"),
    ("calibration.size", True, "size is not a finite number"),
    ("calibration.reference", None, "reference is not a finite number"),
    ("calibration.population", 7, "calibration"),
    ("calibration.typical.colour", "0.1", "colour is not a finite number"),
    ("calibration", ..., "KeyError"),
    ("shift.applied", 1, "shift"),
    ("shift.gradient", [[0.0, 0.0]], "shift gradient"),
    ("shift.centre", [1.0], "centre is not a list of 2 numbers"),
    ("normalization.method", "magic", "normalization"),
    ("normalization.gain", [1.0, 1.0], "gain is not a list of 3 numbers"),
    ("normalization", {"method": "histogram", "applied": True, "tables": "x"}, "histogram tables"),
    ("normalization", {"method": "histogram", "applied": True, "tables": [[[0, 1], ["x", 2]]]}, "table is not a"),
    ("fitted_on", "half the scene", "fitted_on"),
    ("clouds.shape", [38, 53], "clouds mask does not match its shape"),
    ("clouds.shape", [36, 53], "clouds mask does not match its shape"),
    ("clouds.shape", [0, 53], "clouds shape"),
    ("clouds.shape", [1 << 16, 1], "clouds shape"),
    ("clouds.shape", [37.0, 53], "clouds shape"),
    ("clouds.factor", 0, "clouds shape"),
    ("clouds.info.cloud_share", float("nan"), "cloud_share is not a finite number"),
    ("clouds.bits", "!!! not base64 !!!", "Error"),
    ("clouds.bits", base64.b64encode(b"not zlib at all").decode(), "error"),
    ("clouds.bits", base64.b64encode(zlib.compress(bytes(250))).decode(), "clouds mask does not match"),
    ("clouds.bits", base64.b64encode(zlib.compress(bytes(247))).decode(), "clouds mask does not match"),  # a byte more
    ("clouds.bits", base64.b64encode(zlib.compress(bytes(245))).decode(), "clouds mask does not match"),  # one less
    ("clouds.bits", lambda bits: bits[:8] + "*" + bits[8:], "Error"),  # a character base64 has not
    ("clouds", [], "clouds"),
]


@pytest.mark.parametrize(("item", "value", "what"), EDITS,
                         ids=[f"{e[0]}={'edited' if callable(e[1]) else repr(e[1])}"[:64] for e in EDITS])
# the cloud mask edited is 37 x 53 = 1,961 bits: 246 bytes
def test_a_hand_edited_fit_is_refused_naming_the_file(fitted, tmp_path, item, value, what):
    _, fit = fitted
    path = tmp_path / "fit.json"
    doc = fit_to_json(_cloudy(fit))
    _edit(doc, item, value)
    path.write_text(json.dumps(doc), encoding="utf-8")  # NaN and Infinity as Python's json writes them
    expected = rf"^{re.escape(str(path))}: not a fit this library wrote \(.*{what}"
    with pytest.raises(CorruptRunError, match=expected) as err:
        read_fit(path)
    assert isinstance(err.value, ValueError) and "\n" not in str(err.value)


@pytest.mark.parametrize("content", [b"{not json", b"", b"\xff\xfe\x00garbage", b"[1, 2, 3]", b"null", b"42"])
def test_a_file_that_is_no_fit_is_refused_naming_the_file(tmp_path, content):
    path = tmp_path / "fit.json"
    path.write_bytes(content)
    with pytest.raises(CorruptRunError, match=rf"^{re.escape(str(path))}: not a "):
        read_fit(path)


def test_a_missing_fit_file_is_refused_naming_it(tmp_path):
    with pytest.raises(CorruptRunError, match=rf"^{re.escape(str(tmp_path / 'fit.json'))}: not a readable fit"):
        read_fit(tmp_path / "fit.json")


def test_fit_from_json_names_its_source(fitted):
    _, fit = fitted
    doc = fit_to_json(fit)
    _same(fit, fit_from_json(json.loads(json.dumps(doc))))
    doc["fitted_on"] = 3
    with pytest.raises(CorruptRunError, match=r"^run/fit\.json: not a fit this library wrote \(fitted_on\)"):
        fit_from_json(doc, "run/fit.json")
