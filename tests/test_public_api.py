"""One `__all__` per package, equal to what docs/api.md documents; the packages import in one direction, without cycles.

refmodel -> harness -> properties -> cli: each may import the ones before it,
never one after it. The import graph is read from the source with ``ast``:
``import`` and ``from`` statements anywhere (module level, functions,
``if TYPE_CHECKING``), relative imports resolved, and string arguments of
``importlib.import_module`` and ``__import__``, so no edge hides from it.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

import kmemspec.cli
import kmemspec.harness
import kmemspec.properties
import kmemspec.refmodel

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "api.md").read_text()

#: The layers, lowest first: a module may import its own layer and the ones before it.
LAYERS = ("refmodel", "harness", "properties", "cli")


@pytest.mark.parametrize("package", [kmemspec.refmodel, kmemspec.harness, kmemspec.properties, kmemspec.cli])
def test_all_matches_docs(package):
    section = DOC.split(f"## `{package.__name__}`")[1].split("\n## ")[0]
    documented = re.findall(r"^- `([^`]+)`", section, re.M)
    assert documented == list(package.__all__)
    for name in package.__all__:
        assert getattr(package, name) is not None


def _modules() -> dict[str, Path]:
    """Every module of the four packages by its installed name (kmemspec.harness.adapters.clib, ...)."""
    found = {}
    for layer in LAYERS:
        for f in sorted((ROOT / layer).rglob("*.py")):
            parts = ["kmemspec", *f.relative_to(ROOT).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = f
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The absolute names ``name`` imports; for ``from P import x`` also ``P.x`` when that is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in MODULES)
        elif isinstance(node, ast.Call) and _is_dynamic_import(node.func) and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.add(arg.value)
            else:  # a computed name: only the loader may do that, for the user's own modules
                found.add("<dynamic>")
    return found


def _is_dynamic_import(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return isinstance(func, ast.Attribute) and func.attr == "import_module"


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "kmemspec" and parts[1] in LAYERS else None


def test_the_parser_sees_every_kind_of_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import importlib\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..properties import run_check\n"
                      "def f():\n    from .. import cli\n    importlib.import_module('kmemspec.properties.runner')\n    __import__('hypothesis')\n")
    assert _imports("kmemspec.harness.sample", sample) >= {
        "kmemspec.properties", "kmemspec", "kmemspec.properties.runner", "hypothesis", "importlib", "typing"}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_one_way(module):
    """refmodel <- harness <- properties <- cli: nothing imports a layer above its own, nothing imports the tests."""
    own = LAYERS.index(_layer(module))
    for imported in sorted(GRAPH[module]):
        layer = _layer(imported)
        if layer is not None:
            assert LAYERS.index(layer) <= own, f"{module} imports {imported}: {_layer(module)} may not import {layer}"
        assert imported.partition(".")[0] not in ("tests", "conftest"), f"{module} imports the tests ({imported})"
        if imported == "<dynamic>":
            assert module == "kmemspec.harness.loader", f"{module} imports a computed module name: import it by name"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _layer(m) == "refmodel"))
def test_refmodel_imports_only_the_standard_library(module):
    for imported in GRAPH[module]:
        if _layer(imported) is None and imported != "kmemspec":
            assert imported.partition(".")[0] in sys.stdlib_module_names, f"{module} imports {imported}, not the standard library"


def test_the_plugin_and_the_cli_package_stay_light():
    """What pytest loads in every session: pytest, the standard library, refmodel (for the markers), nothing else."""
    for module in ("kmemspec.cli", "kmemspec.cli.pytestplugin"):
        for imported in GRAPH[module]:
            if imported.startswith("kmemspec.cli._") or imported in ("kmemspec.cli", "kmemspec"):
                continue  # the heavy part is imported inside a hook, only when an option asks for it
            top = imported.partition(".")[0]
            assert top in sys.stdlib_module_names or top == "pytest" or _layer(imported) == "refmodel", f"{module} imports {imported}"


def _cycles() -> list[frozenset[str]]:
    """Strongly connected components of more than one module, each within one package (Tarjan)."""
    edges = {m: {i for i in GRAPH[m] if i in MODULES and i != m and i.rpartition(".")[0] == m.rpartition(".")[0]} for m in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(frozenset(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_between_modules_of_a_package():
    cycles = [sorted(c) for c in _cycles()]
    assert not cycles, f"modules that import each other: {cycles}"
