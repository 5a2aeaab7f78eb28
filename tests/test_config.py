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


def test_replace_ignores_none():
    cfg = Config().replace(resolution=None, min_valid_fraction=0.2)
    assert cfg.resolution is None and cfg.min_valid_fraction == 0.2


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
