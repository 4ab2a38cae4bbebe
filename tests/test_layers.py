"""No module imports from a layer above its own (vfbench/layers.py), function-level imports included."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import vfbench
from vfbench.layers import DECLARED_LOADS, LAYERS, layer_of

ROOT = Path(vfbench.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(source: str, module: str, is_package: bool = False) -> list[tuple[str, int]]:
    """(imported vfbench module, line) for every import in `source` (module `module`), at any depth, plus
    importlib.import_module("vfbench...") calls with a literal name."""
    package = module if is_package else module.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(source, module)):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            # `from vfbench.x import y` may name a submodule y: judge the deepest name that is a module
            out += [(_submodule(target, a.name), node.lineno) for a in node.names]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            out.append((node.args[0].value, node.lineno))
    return [(name, line) for name, line in out if name == "vfbench" or name.startswith("vfbench.")]


def _submodule(package: str, name: str) -> str:
    candidate = f"{package}.{name}"
    rel = Path(*candidate.split("."))
    if (ROOT.parent / rel).with_suffix(".py").is_file() or (ROOT.parent / rel / "__init__.py").is_file():
        return candidate
    return package


MODULES = sorted(ROOT.rglob("*.py"))


def test_every_module_has_a_layer():
    missing = [_module_name(p) for p in MODULES if layer_of(_module_name(p)) is None]
    assert not missing, f"modules with no layer in vfbench/layers.py: {missing}"


def test_no_import_runs_upward():
    upward = []
    for path in MODULES:
        importer = _module_name(path)
        own = layer_of(importer)
        for imported, line in _imports(path.read_text(encoding="utf-8"), importer, path.name == "__init__.py"):
            theirs = layer_of(imported)
            if theirs is not None and own is not None and theirs > own and (importer, imported) not in DECLARED_LOADS:
                upward.append(f"{path.relative_to(ROOT.parent)}:{line}: {importer} ({LAYERS[own][0]}) "
                              f"imports {imported} ({LAYERS[theirs][0]})")
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


@pytest.mark.parametrize("source, edge", [
    ("def f():\n    from vfbench.runner.cells import run_cell\n", "vfbench.runner.cells"),
    ("from ..report import load\n", "vfbench.report.load"),
    ("import importlib\nimportlib.import_module('vfbench.commands.run_cmd')\n", "vfbench.commands.run_cmd"),
])
def test_the_checker_sees_lazy_relative_and_named_imports(source, edge):
    """The parser finds an import inside a function, a relative one and an import_module by name, each
    an upward edge from a module of measure/ (so the check above can fail)."""
    probe = "vfbench.measure.probe"
    assert edge in [name for name, _ in _imports(source, probe)]
    assert layer_of(edge) > layer_of(probe)
