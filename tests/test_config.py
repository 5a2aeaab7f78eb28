import pytest

from damage import Config
from damage.errors import ConfigError, InputNotFoundError


def test_defaults_roundtrip_through_dict():
    cfg = Config()
    assert Config.from_dict(cfg.to_dict()) == cfg


def test_from_toml_top_level_and_section(tmp_path):
    (tmp_path / "a.toml").write_text('min_valid_fraction = 0.3\nnormalize = "histogram"\n')
    (tmp_path / "b.toml").write_text('[damage]\nmetrics = { ssim = 2.0, absdiff = 1.0 }\n')
    assert Config.from_toml(tmp_path / "a.toml").min_valid_fraction == 0.3
    assert Config.from_toml(tmp_path / "b.toml").metrics == (("ssim", 2.0), ("absdiff", 1.0))


@pytest.mark.parametrize(
    "values, words",
    [
        ({"normalize": "magic"}, "normalize"),
        ({"metrics": {"nope": 1.0}}, "nope"),
        ({"scale": "richter"}, "richter"),
        ({"min_valid_fraction": 2.0}, "min_valid_fraction"),
        ({"colour": 1}, "unknown configuration key"),
    ],
)
def test_bad_values_name_the_key(values, words):
    with pytest.raises(ConfigError, match=words):
        Config.from_dict(values)


def test_bad_toml_and_missing_file(tmp_path):
    (tmp_path / "bad.toml").write_text("= broken")
    with pytest.raises(ConfigError, match="bad.toml"):
        Config.from_toml(tmp_path / "bad.toml")
    with pytest.raises(InputNotFoundError):
        Config.from_toml(tmp_path / "missing.toml")


def test_replace_takes_none_as_a_value_and_leaves_unset_keys_alone():
    from damage.config import UNSET, given

    base = Config(max_pixels=300_000, resolution=0.5)
    cfg = base.replace(resolution=None, min_valid_fraction=0.2, max_pixels=UNSET)
    assert cfg.resolution is None and cfg.min_valid_fraction == 0.2 and cfg.max_pixels == 300_000
    assert base.replace(max_pixels=None).max_pixels is None  # None is one window, not "unchanged" (issue 18, item 4)
    assert base.replace(**given(max_pixels=None, resolution=None)) == base  # the command line's "not given"
    with pytest.raises(ConfigError, match="cloud_mask"):
        base.replace(cloud_mask=None)  # a key that cannot be None is refused, not ignored
    import pickle

    assert pickle.loads(pickle.dumps(UNSET)) is UNSET and repr(UNSET) == "UNSET"


def test_max_pixels_none_is_one_window(tmp_path):
    import warnings

    import damage
    from damage.scenes.synthetic import write_pair
    from damage.scenes.town import make_town

    b, a, f = write_pair(make_town(size=384, seed=2), tmp_path)
    small = Config(max_pixels=256 * 256)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", damage.errors.DamageWarning)
        windows = damage.assess(b, a, f, small)
        one = damage.assess(b, a, f, small, max_pixels=None)
    assert windows.attrs["damage"]["grid"]["windows"] > 1
    assert one.attrs["damage"]["grid"]["windows"] == 1 and one.attrs["damage"]["config"]["max_pixels"] is None


@pytest.mark.parametrize("values, key", [
    ({"register": "false"}, "register"),
    ({"black_fill": "no"}, "black_fill"),
    ({"max_pixels": "big"}, "max_pixels"),
    ({"resolution": "1"}, "resolution"),
    ({"shift_tolerance": 1.5}, "shift_tolerance"),
    ({"ssim_sigma": float("inf")}, "ssim_sigma"),
    ({"ring_width": float("nan")}, "ring_width"),
    ({"metrics": [1, 2]}, "metrics"),
    ({"metrics": {"ssim": float("nan")}}, "metrics"),
    ({"metrics": "ssim"}, "metrics"),
    ({"scale": ["xbd"]}, "scale"),
    ({"crs": "EPSG:99999999"}, "crs"),
    ({"change_threshold": -1.0}, "change_threshold"),
    ({"building_shift": True}, "building_shift"),
    ({"building_search": "fine"}, "building_search"),
    ({"smoothing_radii": "50,100"}, "smoothing_radii"),
])
def test_every_bad_value_is_a_config_error_naming_its_key(values, key):
    with pytest.raises(ConfigError, match=key) as err:
        Config.from_dict(values)
    assert len(str(err.value).splitlines()) == 1


def test_a_bad_toml_value_is_one_line_from_the_cli(tmp_path):
    from click.testing import CliRunner

    from damage.cli import main

    cfg = tmp_path / "run.toml"
    cfg.write_text('register = "false"\n')
    res = CliRunner().invoke(main, ["assess", "a.tif", "b.tif", "f.geojson", "-o", str(tmp_path / "o.geojson"),
                                    "--config", str(cfg)])
    assert res.exit_code == 1 and "register" in res.output and "Traceback" not in res.output
