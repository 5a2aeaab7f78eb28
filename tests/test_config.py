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
