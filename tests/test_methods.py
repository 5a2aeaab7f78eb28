"""The registry of methods: the steps Config.method names, the features each gives, each method's stored fit."""

from __future__ import annotations

import dataclasses
import json
import re

import geopandas as gpd
import numpy as np
import pytest

from damage.config import Config
from damage.errors import ConfigError, CorruptRunError, DamageWarning
from damage.run.fitstore import fit_to_json
from damage.run.methods import FEATURES, METHODS, method
from damage.run.optical import Optical
from damage.run.pwtt import Pwtt, StackFit
from damage.scenes.sarsim import make_sar_stack, write_stack
from damage.scenes.synthetic import make_scene, write_pair

#: Every step of :class:`damage.run.methods.Method`.
STEPS = ("window_size", "open", "plan", "fit", "write_fit", "read_fit", "measure", "check", "assemble", "record",
         "provenance")


@pytest.fixture(scope="module")
def optical_fit(tmp_path_factory):
    s = make_scene(size=96, buildings=9, damaged=(4,), seed=1)
    b, a, f = write_pair(s, tmp_path_factory.mktemp("optical"))
    steps = method(Config())
    plan = steps.plan(b, a, gpd.read_file(f), Config(), steps.window_size(Config()), str(f))
    fit, _ = steps.fit(plan)
    return fit


@pytest.fixture(scope="module")
def stack_fit(tmp_path_factory):
    """The PWTT fit of a stack whose second after image failed its calibration (the screening drops it)."""
    s = make_sar_stack(size=60, seed=6, n_before=3, n_after=3, corrupted=1)
    b, a, f = write_stack(s, tmp_path_factory.mktemp("pwtt"))
    cfg = Config(method="pwtt")
    steps = method(cfg)
    plan = steps.plan(b, a, gpd.read_file(f), cfg, steps.window_size(cfg), str(f))
    with pytest.warns(DamageWarning, match=r"S1_\w+\.tif .*level far from the other images of its orbit"):
        fit, pixels = steps.fit(plan)
    assert pixels is None
    return fit


def test_method_gives_the_steps_config_method_names():
    optical = method(Config())
    assert isinstance(optical, Optical) and optical.name == "optical"
    assert optical.supports == frozenset({"polygons", "chips", "labels"})
    pwtt = method(Config(method="pwtt"))
    assert isinstance(pwtt, Pwtt) and pwtt.name == "pwtt" and pwtt.supports == frozenset()
    assert sorted(METHODS) == ["optical", "pwtt"]


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_registered_method_has_every_step(name):
    steps = method(Config(method=name))
    assert steps.name == name and steps.supports <= set(FEATURES)
    for step in STEPS:
        assert callable(getattr(steps, step)), f"{name}.{step}"


def test_method_imports_what_the_registry_names(monkeypatch):
    monkeypatch.setitem(METHODS, "pwtt", "damage.run.optical:Optical")
    assert isinstance(method(Config(method="pwtt")), Optical)
    monkeypatch.delitem(METHODS, "pwtt")
    with pytest.raises(ConfigError, match=r"^method='pwtt' is unknown; choose one of \['optical'\]$"):
        method(Config(method="pwtt"))


def test_a_feature_the_method_does_not_give_is_refused_naming_it():
    pwtt = Config(method="pwtt")
    with pytest.raises(ConfigError, match=r"^polygons are not available with method='pwtt'$") as err:
        method(pwtt, polygons=True)
    assert isinstance(err.value, ValueError)
    with pytest.raises(ConfigError, match=r"^chips and labels are not available with method='pwtt'$"):
        method(pwtt, chips=True, labels=True, polygons=False)
    with pytest.raises(ConfigError, match=r"^polygons and chips and labels are not available"):
        method(pwtt, labels=True, chips=True, polygons=True)
    assert isinstance(method(pwtt, polygons=False, chips=False, labels=False), Pwtt)  # not asked: not refused
    assert isinstance(method(Config(), polygons=True, chips=True, labels=True), Optical)


def test_window_sizes_of_the_methods():
    optical = method(Config())
    assert optical.window_size(Config()) == 1024  # max_pixels 1024 * 1024
    assert optical.window_size(Config(max_pixels=2_000_000)) == 1414
    assert optical.window_size(Config(max_pixels=70_000)) == 264  # the smallest max_pixels is 256 x 256
    assert optical.window_size(Config(max_pixels=None)) == 1 << 30  # the scene in one window
    assert method(Config(method="pwtt")).window_size(Config(method="pwtt", window=256)) == 1 << 30


# -- the stored fit --------------------------------------------------------------------------------------------
def test_the_optical_fit_written_and_read_is_the_same(optical_fit, tmp_path):
    steps = method(Config())
    path = tmp_path / "fit.json"
    steps.write_fit(optical_fit, path)
    back = steps.read_fit(path)
    assert fit_to_json(back) == fit_to_json(optical_fit)
    assert back.shift == optical_fit.shift and back.calibration == optical_fit.calibration
    assert np.array_equal(back.stats.ranges, optical_fit.stats.ranges)
    assert np.array_equal(back.clouds.mask, optical_fit.clouds.mask) and back.fitted_on == optical_fit.fitted_on
    # a PWTT region's fit is not an optical fit, nor the other way round
    with pytest.raises(CorruptRunError, match=rf"^{re.escape(str(path))}: not the fit of a PWTT region"):
        method(Config(method="pwtt")).read_fit(path)
    method(Config(method="pwtt")).write_fit(StackFit([]), path)
    with pytest.raises(CorruptRunError, match=rf"^{re.escape(str(path))}: not a fit this library wrote"):
        steps.read_fit(path)


def test_the_pwtt_fit_written_and_read_is_the_same(stack_fit, tmp_path):
    steps = method(Config(method="pwtt"))
    assert len(stack_fit.dropped) == 1 and stack_fit.dropped[0].startswith(str(tmp_path.parent))
    for k, fit in enumerate([stack_fit, StackFit([]), StackFit(["a.tif (2023-10-19)", "b.tif (2023-10-31)"])]):
        path = tmp_path / f"fit{k}.json"
        steps.write_fit(fit, path)
        assert json.loads(path.read_text()) == {"method": "pwtt", "dropped": list(fit.dropped)}
        back = steps.read_fit(path)
        assert isinstance(back, StackFit) and back == fit and dataclasses.asdict(back) == dataclasses.asdict(fit)


@pytest.mark.parametrize("content", [
    b"{not json", b"", b"\xff\xfe\x00", b"[]", b"null",
    b'{"method": "optical", "dropped": []}',
    b'{"dropped": []}',
    b'{"method": "pwtt"}',
    b'{"method": "pwtt", "dropped": "a.tif"}',
    b'{"method": "pwtt", "dropped": ["a.tif", 3]}',
    b'{"method": "pwtt", "dropped": {"a.tif": 1}}',
])
def test_a_file_that_is_no_pwtt_fit_is_refused_naming_it(tmp_path, content):
    path = tmp_path / "fit.json"
    path.write_bytes(content)
    with pytest.raises(CorruptRunError, match=rf"^{re.escape(str(path))}: not ") as err:
        method(Config(method="pwtt")).read_fit(path)
    assert "\n" not in str(err.value)
    with pytest.raises(CorruptRunError, match=rf"^{re.escape(str(tmp_path / 'none.json'))}: not a readable fit"):
        method(Config(method="pwtt")).read_fit(tmp_path / "none.json")
