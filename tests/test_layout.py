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
