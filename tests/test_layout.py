"""The layout: every import inside ``damage`` points down the layers, none up or sideways.

A module may import its own package's modules and any package on a lower layer; packages on
one layer (``analysis``, ``optical``, ``sar``) stay independent. Imports inside functions count
too: a lazy import that climbs back up is still a tangle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "damage"

#: top to bottom; a tuple holds packages that must not import each other
LAYERS: list[tuple[str, ...]] = [
    ("damage.__main__",),
    ("damage.cli",),
    ("damage", "damage.testing"),
    ("damage.run",),
    ("damage.config",),
    ("damage.report",),
    ("damage.analysis", "damage.optical", "damage.sar"),
    ("damage.io",),
    ("damage.grading",),
    ("damage.geo",),
    ("damage.errors", "damage._version", "damage.scenes"),
]


def _unit(module: str) -> str:
    """The layered unit a module belongs to (its subpackage, or itself at the top)."""
    units = [u for layer in LAYERS for u in layer]
    best = max((u for u in units if module == u or module.startswith(u + ".")), key=len, default=None)
    if best is None:
        raise AssertionError(f"{module} is on no layer: add it to LAYERS in {__file__}")
    return best


def _rank(unit: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if unit in layer)


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(module: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "damage"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "damage":
                continue
            if target == "damage":  # from damage import errors: a module, or a name of the front door
                found |= {f"damage.{a.name}" if (PACKAGE / a.name).exists() or (PACKAGE / f"{a.name}.py").exists()
                          else "damage" for a in node.names}
            else:
                found.add(target)
    return found


def _violations() -> list[str]:
    bad = []
    for module, path in _modules().items():
        here = _unit(module)
        for target in sorted(_imports(module, path)):
            there = _unit(target)
            if there == here:
                continue
            if _rank(there) <= _rank(here):
                way = "sideways" if _rank(there) == _rank(here) else "up"
                bad.append(f"{module} imports {target} ({way}: {here} is on layer {_rank(here)}, {there} on {_rank(there)})")
    return bad


def test_imports_point_down_the_layers():
    assert _violations() == []


def test_every_module_is_on_a_layer():
    for module in _modules():
        _unit(module)


@pytest.mark.parametrize("layer", range(len(LAYERS)))
def test_no_layer_is_empty(layer):
    """A layer names packages that exist (a rename does not leave the check guarding nothing)."""
    names = _modules()
    for unit in LAYERS[layer]:
        assert any(m == unit or m.startswith(unit + ".") for m in names), unit


def _loaded_after(code: str, modules: tuple[str, ...]) -> list[str]:
    import subprocess
    import sys

    probe = f"import sys\n{code}\nprint(' '.join(m for m in {modules!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return out.stdout.split()


OPTIONAL = ("scipy.stats", "jinja2", "dask", "distributed", "onnxruntime", "onnx", "numba", "damage.scenes", "damage.run.pwtt",
            "damage.sar.statistics", "damage.report.html", "damage.analysis.analyst", "damage.run.pipeline")


def test_the_front_door_imports_what_is_used_only():
    """import damage loads none of the library; damage.assess loads the optical path, not the radar one,
    the report, Dask, scipy.stats, onnxruntime, numba or the scene generators; `damage --version` loads no command."""
    assert _loaded_after("import damage", OPTIONAL + ("damage.config", "geopandas")) == []
    assert _loaded_after("import damage; damage.assess", OPTIONAL[:-1]) == []
    assert _loaded_after("import damage; damage.evaluate", OPTIONAL) == []
    assert _loaded_after("import damage.cli", OPTIONAL + ("damage.cli.assess",)) == []


def test_every_public_name_of_the_front_door_loads():
    import damage

    for name in damage.__all__:
        assert getattr(damage, name) is not None, name
    assert set(damage.__all__) <= set(dir(damage))
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        damage.nope  # noqa: B018


def test_the_runners_never_ask_which_method_they_run():
    """The method registry (damage.run.methods) is the one place that knows the methods: the single
    run and the region runner call its steps, never a branch on Config.method (issue 23)."""
    import re

    for module in ("pipeline", "batch", "plan", "assemble", "provenance", "runfolder"):
        text = (PACKAGE / "run" / f"{module}.py").read_text()
        assert not re.search(r"\.method\s*[!=]=|method\s*==\s*[\"']", text), module
        imported = {getattr(node, "module", None) for node in ast.walk(ast.parse(text))
                    if isinstance(node, ast.ImportFrom)}
        assert not imported & {"damage.run.pwtt", "damage.run.optical"}, module
