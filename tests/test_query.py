"""``--where`` filters: a safe subset of expressions over the columns, nothing executed."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pytest
import shapely
from click.testing import CliRunner

import damage
from damage.analysis.query import select
from damage.cli import main
from damage.errors import ConfigError, DamageWarning
from damage.scenes.synthetic import make_scene, write_pair


@pytest.fixture
def frame():
    return gpd.GeoDataFrame(
        {
            "amenity": ["hospital", "clinic", None, "house", "school"],
            "levels": [1, 3, np.nan, 2, 5],
            "height": [3.5, 9.0, 6.0, np.nan, 15.0],
            "building type": ["a", "b", "a", None, "b"],
            "flag": [True, False, True, False, False],
            "release": ["2024", "2024", "2023", "2023", "2024"],
        },
        geometry=[shapely.box(i, 0, i + 1, 1) for i in range(5)],
        crs="EPSG:32615",
    )


def _rows(frame, expression) -> list[int]:
    mask = select(frame, expression)
    assert isinstance(mask, np.ndarray) and mask.dtype == bool and mask.shape == (len(frame),)
    return np.flatnonzero(mask).tolist()


def test_readme_example(frame):
    assert _rows(frame, "amenity in ['hospital', 'clinic']") == [0, 1]
    assert _rows(frame, 'amenity in ("hospital",)') == [0]
    assert _rows(frame, "amenity == ['house', 'school']") == [3, 4]  # pandas: == with a list is in


@pytest.mark.parametrize(
    ("expression", "rows"),
    [
        ("levels >= 2", [1, 3, 4]),
        ("levels > 2", [1, 4]),
        ("levels < 3", [0, 3]),
        ("levels <= 3", [0, 1, 3]),
        ("levels == 3", [1]),
        ("levels == 3.0", [1]),
        ("height > 5.5", [1, 2, 4]),
        ("2 <= levels < 5", [1, 3]),
        ("1 < levels <= 3 < height", [1]),
        ("levels > -1", [0, 1, 3, 4]),
        ("height > -1e3", [0, 1, 2, 4]),
        ("levels < height", [0, 1, 4]),
        ("release >= '2024'", [0, 1, 4]),
    ],
)
def test_numeric_and_ordered_comparisons(frame, expression, rows):
    assert _rows(frame, expression) == rows


@pytest.mark.parametrize(
    ("expression", "rows"),
    [
        ("levels > 1 and height > 10", [4]),
        ("levels == 1 or amenity == 'house'", [0, 3]),
        ("not levels > 1", [0, 2]),
        ("levels > 1 & height > 10", [4]),  # & and | bind like and / or, as in DataFrame.eval
        ("amenity == 'hospital' | levels == 3", [0, 1]),
        ("~(levels > 1)", [0, 2]),
        ("levels == 1 or levels == 5 and height > 10", [0, 4]),
        ("(levels == 1 or levels == 5) and height > 10", [4]),
        ("flag", [0, 2]),
        ("not flag and levels > 2", [1, 4]),
        ("~flag", [1, 3, 4]),
        ("flag == True", [0, 2]),
        ("amenity not in ['house', 'school'] and not flag", [1]),
    ],
)
def test_and_or_not(frame, expression, rows):
    assert _rows(frame, expression) == rows


def test_backticks_name_columns_with_spaces(frame):
    assert _rows(frame, "`building type` == 'a'") == [0, 2]
    assert _rows(frame, "`building type` in ['b'] and `levels` > 3") == [4]
    assert _rows(frame, "amenity == 'odd ` quote & pipe | at @'") == []  # only outside strings
    with pytest.raises(ConfigError, match="not closed"):
        select(frame, "`building type == 'a'")


def test_missing_values_behave_as_in_pandas(frame):
    # a comparison with a missing value is False; != and not in are their negations
    assert _rows(frame, "levels > 0") == [0, 1, 3, 4]
    assert _rows(frame, "levels != 3") == [0, 2, 3, 4]
    assert _rows(frame, "amenity == 'house'") == [3]
    assert _rows(frame, "amenity != 'house'") == [0, 1, 2, 4]
    assert _rows(frame, "amenity in ['clinic', 'house']") == [1, 3]
    assert _rows(frame, "amenity not in ['clinic', 'house']") == [0, 2, 4]
    assert _rows(frame, "levels < height") == [0, 1, 4]  # row 2 and 3 each miss one side
    assert _rows(frame, "amenity == None") == [2]
    assert _rows(frame, "amenity != None and height == None") == [3]
    for expression in ["levels > 0", "levels != 3", "amenity != 'house'", "amenity not in ['clinic', 'house']",
                       "levels < height", "levels > 1 and not height > 10"]:
        assert select(frame, expression).tolist() == frame.eval(expression).tolist(), expression


def test_an_empty_frame_gives_an_empty_mask(frame):
    assert select(frame.iloc[:0], "levels > 1").shape == (0,)


def test_an_unknown_column_is_named_with_the_columns(frame):
    with pytest.raises(ConfigError) as err:
        select(frame, "amenty == 'clinic'")
    msg = str(err.value)
    assert "'amenty'" in msg and "did you mean 'amenity'" in msg and "`building type`" in msg and "\n" not in msg
    with pytest.raises(ConfigError, match="no column 'building'"):
        select(frame, "building == 'a'")


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("x.y", "attribute access is not allowed"),
        ("amenity.str.len() > 3", "attribute access is not allowed|function calls are not allowed"),
        ("len(amenity) > 3", "function calls are not allowed"),
        ("amenity[0] == 'h'", "subscripts are not allowed"),
        ("@limit < levels", "'@' local variables are not allowed"),
        ("(lambda: 1)()", "function calls are not allowed"),
        ("lambda: 1", "lambdas are not allowed"),
        ("amenity in [a for a in 'xy']", "comprehensions are not allowed"),
        ("levels + 1 > 2", "arithmetic is not allowed"),
        ("levels ** 2 > 2", "arithmetic is not allowed"),
        ("(levels := 3)", "assignments are not allowed"),
        ("amenity == f'{levels}'", "f-strings are not allowed"),
        ("amenity == b'x'", "bytes literals are not allowed"),
        ("levels", "not boolean"),
        ("'amenity' == 'clinic'", "compares two literals"),
        ("True", "is a literal, not a condition"),
        ("amenity > 3", "cannot compare 'amenity'"),
        ("levels < None", "None can only be compared with == or !="),
        ("amenity in levels", "'in' needs a column on the left and a list"),
        ("amenity in [levels]", "a list may hold literals only"),
        ("geometry == 'x'", "holds geometries"),
        ("amenity ==", "not a valid expression"),
        ("", "empty"),
        ("not " * 3000 + "flag", "longer than"),
        ("~" * 5000 + "flag", "nested too deeply"),
    ],
)
def test_everything_else_is_a_one_line_config_error(frame, expression, problem):
    with pytest.raises(ConfigError, match=problem) as err:
        select(frame, expression)
    msg = str(err.value)
    assert msg.startswith("--where ") and "\n" not in msg and len(msg) < 400


# each of these ran code through DataFrame.eval (issue 10); {d} is an empty folder
ATTACKS = [
    "@os.system('touch {d}/os')",
    "@pd.io.common.os.system('touch {d}/pd')",
    r"""@pickle.loads(b"cos\nsystem\n(S'touch {d}/pickle'\ntR.")""",
    "release.to_csv('{d}/release.csv')",
    "__import__('os').system('touch {d}/import')",
    "[c for c in ()]",
    "fp.to_csv('{d}/fp.csv')",
]


def _raised(func, *args, **kw) -> BaseException | None:
    try:
        func(*args, **kw)
    except Exception as exc:  # checked after the folder: the attack may run and then fail
        return exc
    return None


@pytest.mark.parametrize("attack", ATTACKS)
def test_attacks_are_refused_and_run_nothing(frame, attack, tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.chdir(scratch)
    error = _raised(select, frame, attack.format(d=scratch))
    assert list(scratch.iterdir()) == []  # nothing ran
    assert isinstance(error, ConfigError) and "not allowed" in str(error) and "\n" not in str(error)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    b, a, f = write_pair(make_scene(size=128, buildings=4), tmp_path_factory.mktemp("pair"))
    fp = gpd.read_file(f)
    fp["release"] = "2024"
    fp.to_file(f)
    return b, a, f


@pytest.mark.parametrize("attack", ATTACKS)
def test_attacks_through_batch_run_nothing(pair, attack, tmp_path, monkeypatch):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.chdir(scratch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamageWarning)  # the run's own notes; any other warning fails
        error = _raised(damage.batch, *pair, tmp_path / "run", where=attack.format(d=scratch))
    assert list(scratch.iterdir()) == []  # nothing ran
    assert isinstance(error, ConfigError) and "not allowed" in str(error)


def test_cli_refuses_an_attack_with_one_line(pair, tmp_path):
    marker = tmp_path / "X"
    args = ["batch", *map(str, pair), "-o", str(tmp_path / "run"), "--where", f"@os.system('touch {marker}')"]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1, res.output
    assert isinstance(res.exception, SystemExit)  # handled: no traceback
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: --where ") and "not allowed" in lines[0], res.stderr
    assert "Traceback" not in res.output and res.stdout == ""
    assert not marker.exists()


def test_where_through_batch_keeps_the_matching_footprints(pair, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamageWarning)  # the run's own notes; any other warning fails
        out = damage.batch(*pair, tmp_path / "run", where="building_id in [0, 3] and release == '2024'")
    assert sorted(out.result["building_id"]) == [0, 3]
