"""One `__all__` per package, equal to what docs/api.md documents, and every name importable."""

import re
from pathlib import Path

import pytest

import kmemspec.harness
import kmemspec.properties
import kmemspec.refmodel

DOC = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text()


@pytest.mark.parametrize("package", [kmemspec.refmodel, kmemspec.harness, kmemspec.properties])
def test_all_matches_docs(package):
    section = DOC.split(f"## `{package.__name__}`")[1].split("\n## ")[0]
    documented = re.findall(r"^- `([^`]+)`", section, re.M)
    assert documented == list(package.__all__)
    for name in package.__all__:
        assert getattr(package, name) is not None


def test_refmodel_imports_nothing_from_harness_or_properties_or_hypothesis():
    root = Path(kmemspec.refmodel.__file__).parent
    for f in root.glob("*.py"):
        text = f.read_text()
        assert not re.search(r"^\s*(from|import)\s+(hypothesis|pytest|\.\.harness|\.\.properties|kmemspec\.(harness|properties))", text, re.M), f


def test_harness_does_not_import_properties_at_module_level():
    root = Path(kmemspec.harness.__file__).parent
    for f in root.rglob("*.py"):
        assert not re.search(r"^(from|import)\s+(\.\.properties|kmemspec\.properties)", f.read_text(), re.M), f
