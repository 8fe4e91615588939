"""The subsystem registry: every subsystem is complete, and a new one is a local addition.

A subsystem brings an oracle, rules, operations (each with a C prototype in
harness/c/kmemspec_iut.h and a schema entry), a checker for each of its
steps, a rule set and strategies, and a mutant for every allocator rule.
tests/impls/nr_free.py defines one outside the packages; it is picked up by
every registry and runs in process, behind --isolate (JSON lines, no C ABI)
and in replay, with no core file edited.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kmemspec.harness.adapters.clib import c_prototype_types
from kmemspec.harness.impls.mutants import MUTANTS
from kmemspec.harness.lockstep import checker_for_step
from kmemspec.harness.ops import step_ops, wire_ops
from kmemspec.harness.wire import protocol_schema
from kmemspec.properties._subsystems import RULE_SETS
from kmemspec.refmodel import Level, subsystems
from kmemspec.refmodel.errors import InvalidDefinition
from kmemspec.refmodel.rules import rule_ids

ROOT = Path(__file__).resolve().parents[1]
HEADER = re.sub(r"/\*.*?\*/", "", (ROOT / "harness" / "c" / "kmemspec_iut.h").read_text(), flags=re.S)
NR_FREE = ROOT / "tests" / "impls" / "nr_free.py"
BUILT_IN = ("pages", "context", "kmalloc", "slab", "protocol")


def _header_prototype(symbol: str) -> tuple[str, list[str]]:
    """The return type and parameter types (names dropped) the header declares for ``symbol``."""
    m = re.search(r"(\w[\w ]*?)\s*\b" + symbol + r"\s*\(([^)]*)\)\s*;", HEADER)
    assert m is not None, f"harness/c/kmemspec_iut.h declares no {symbol}()"
    params = []
    for p in m.group(2).split(","):
        typ = re.sub(r"\s*\b\w+$", "", p.strip()).replace(" *", "*").replace("*", " *")
        params.append(re.sub(r"\s+", " ", typ).strip())
    return m.group(1).strip(), params


def test_the_built_in_subsystems_are_registered_in_dependency_order():
    names = [s.name for s in subsystems()]
    assert names[:len(BUILT_IN)] == list(BUILT_IN)
    for i, s in enumerate(subsystems()):
        assert all(d in names[:i] for d in s.depends), s.name


@pytest.mark.parametrize("sub", [s for s in subsystems() if s.name in BUILT_IN], ids=lambda s: s.name)
def test_every_subsystem_is_complete(sub):
    # an oracle: its own model, or (context, protocol) rules the driver and the page oracle judge
    assert sub.model is not None or sub.name in ("context", "protocol", "kmalloc"), f"{sub.name} has no oracle"
    assert sub.rules, f"{sub.name} declares no rule"
    for o in sub.ops:
        assert o.capability in {c for s in subsystems() for c in s.capabilities}, (sub.name, o.name)
        if o.step:
            assert checker_for_step(o.name) is not None, f"step {o.name} of {sub.name} has no checker"
        if o.wire:
            assert _header_prototype(o.c_symbol) == c_prototype_types(o), f"kmemspec_iut.h's {o.c_symbol} differs from the operation table"
    # a rule set for each capability it defines that adds an operation, and strategies beside them
    for cap in sub.capabilities:
        if any(o.capability == cap and o.step for o in sub.ops):
            assert any(cap in needs for needs in RULE_SETS.values()), f"no rule set draws capability {cap!r}"
    if sub.name in ("pages", "kmalloc", "slab"):
        assert (ROOT / "properties" / "strategies" / f"{sub.name}.py").is_file(), f"no strategies for {sub.name}"


def test_every_wire_operation_has_a_schema_entry():
    requests = {alt["properties"]["op"]["const"]: alt for alt in protocol_schema()["$defs"]["request"]["oneOf"]}
    for name, o in wire_ops().items():
        assert set(requests[name]["properties"]["args"]["required"]) == set(o.arg_names), name


def test_every_allocator_rule_of_every_subsystem_has_a_mutant():
    targeted = {r for m in MUTANTS.values() for r in (m.rule_id, *m.also)}
    for s in subsystems():
        if s.name in ("pages", "kmalloc", "slab", "context"):
            missing = [r.id for r in s.rules if r.level is not Level.PROTOCOL and r.id not in targeted]
            assert not missing, f"{s.name}: rules no mutant breaks: {missing}"


def test_a_misspelt_rule_id_fails_at_import():
    assert rule_ids("BUDDY-ALIGN", where="here") == ("BUDDY-ALIGN",)
    with pytest.raises(InvalidDefinition, match=r"here: 'BUDDY-ALIGNED' is not a rule ID of the catalog; did you mean BUDDY-ALIGN"):
        rule_ids("BUDDY-ALIGNED", where="here")


# -- a subsystem from outside the packages ---------------------------------------------------------

_SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
from kmemspec.harness.loader import load_impl
from kmemspec.harness.report import write_reports
from kmemspec.properties import run_check
from kmemspec.properties.runner import Profile
from kmemspec.refmodel import load_machine
spec, isolate, out = sys.argv[1], sys.argv[2] == "1", sys.argv[3]
load_impl(spec)  # registers the subsystem in this process (an isolated child loads it again)
impl = load_impl(spec, isolate=isolate)
result = run_check(impl, load_machine("tiny"), machine_spec="tiny", profile=Profile("t", 25, 15, ""), seed_value=3, progress=None)
write_reports(result, __import__("pathlib").Path(out))
print(json.dumps({{"failures": [f.rule_id for f in result.failures], "checks": result.coverage["TEST-NR-FREE-PAGES"],
                   "transport": impl.transport}}))
"""


def _run(tmp_path: Path, factory: str, isolate: bool) -> dict:
    out = tmp_path / "reports"
    proc = subprocess.run([sys.executable, "-c", _SCRIPT.format(root=str(ROOT)), f"{NR_FREE}:{factory}", "1" if isolate else "0", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {**json.loads(proc.stdout.splitlines()[-1]), "out": out}


@pytest.mark.parametrize("isolate", [False, True], ids=["python", "isolate"])
def test_a_subsystem_defined_in_the_tests_runs_through_the_suite(tmp_path, isolate):
    got = _run(tmp_path, "make", isolate)
    assert got["failures"] == [] and got["checks"] > 0
    assert got["transport"] == ("process" if isolate else "python")
    doc = json.loads((got["out"] / "report.json").read_text())
    assert {r["id"]: r["status"] for r in doc["rules"]}["TEST-NR-FREE-PAGES"] == "pass"


def test_its_rule_catches_a_broken_implementation_and_the_failure_replays(tmp_path):
    got = _run(tmp_path, "make_off_by_one", False)
    assert got["failures"] == ["TEST-NR-FREE-PAGES"]
    trace = got["out"] / "failures" / "TEST-NR-FREE-PAGES.json"
    steps = json.loads(trace.read_text())["steps"]
    assert steps and steps[-1]["op"] == "nr_free_pages"
    replay = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                             f"from kmemspec.harness.loader import load_impl; load_impl({f'{NR_FREE}:make_off_by_one'!r}); "
                             "from kmemspec.cli import main; sys.exit(main(['replay', sys.argv[1]]))", str(trace)],
                            capture_output=True, text=True, timeout=300)
    assert replay.returncode == 1, replay.stdout + replay.stderr
    assert "TEST-NR-FREE-PAGES" in replay.stdout and "iut.nr_free_pages()" in replay.stdout


def test_every_rule_id_spelt_in_the_code_is_a_catalog_id():
    """Coverage keys, claims, mutant targets and failures name rules by string: a typo would count or fail the wrong rule."""
    import ast

    from kmemspec.refmodel.rules import RULES_BY_ID

    looks_like_rule = re.compile(r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)+$")
    unknown = {}
    for package in ("refmodel", "harness", "properties", "cli"):
        for f in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and looks_like_rule.match(node.value):
                    if node.value not in RULES_BY_ID:
                        unknown.setdefault(node.value, f"{f.relative_to(ROOT)}:{node.lineno}")
    assert not unknown, f"strings that look like rule IDs but name no rule: {unknown}"


def test_a_subsystem_that_names_an_unknown_capability_is_refused():
    from kmemspec.refmodel import Kind, Subsystem, op, register

    with pytest.raises(InvalidDefinition, match="belongs to capability 'nowhere', which no subsystem defines"):
        register(Subsystem("broken", "", ops=(op("frobnicate", "nowhere", ("pfn", Kind.PFN)),)))
    assert "broken" not in {s.name for s in subsystems()}
