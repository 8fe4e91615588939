"""Implementations in another process: the JSON lines protocol, --isolate, and what a misbehaving process becomes.

A process that segfaults, hangs, prints garbage or exits mid-run yields a
failure of its own rule with the operations so far and its stderr; no child
(or grandchild) is left running; the report files are complete JSON.
"""

import json
import os
import sys
import xml.etree.ElementTree as ET
import time
from pathlib import Path

import pytest

from conftest import IMPLS

from kmemspec.harness import load_impl
from kmemspec.harness.protocol import Env
from kmemspec.harness.report import write_reports
from kmemspec.properties import Profile, run_check
from kmemspec.refmodel import load_machine
from kmemspec.refmodel.errors import InvalidDefinition

BADPROC = IMPLS / "badproc.py"
QUICK = Profile("quick", 40, 20, "for these tests")


def _exec(mode: str, *extra: str) -> str:
    return f"exec:{sys.executable} {BADPROC} {mode} {' '.join(extra)}".rstrip()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"  # a zombie is dead, only not yet reaped
    except FileNotFoundError:
        return False


def _alive(pid: int) -> bool:
    """Still running 2 s after the run: SIGKILL is delivered asynchronously, so give it a moment."""
    deadline = time.monotonic() + 2.0
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return _running(pid)


def _run(spec: str, shrink: bool = True, **limits):
    impl = load_impl(spec, **limits)
    result = run_check(impl, load_machine("tiny"), machine_spec="tiny", profile=QUICK, seed_value=5, progress=None, shrink=shrink)
    return impl, result


MISBEHAVIOURS = [
    ("segv", "IUT-PROCESS-ALIVE", "killed by SIGSEGV"),
    ("exit", "IUT-PROCESS-ALIVE", "exited with status 3"),
    ("hang", "IUT-TIMEOUT", "did not answer alloc_pages within 0.5s"),
    ("garbage", "IUT-WIRE-FORMAT", "not JSON"),
    ("flood", "IUT-WIRE-FORMAT", "more than 16 MiB without a newline"),
    ("badname", "IUT-WIRE-FORMAT", "unknown violation 'TotallyBogus'"),
    ("twolines", "IUT-WIRE-FORMAT", "more than one line"),
]


def _misbehaviours() -> list:
    """Each misbehaviour unshrunk (the kill), and shrunk: each failing attempt of the shrink restarts the child,
    and every child of every restart must be gone too. That costs a child per attempt, so the default tier
    shrinks one real crash and the conformance tier the rest."""
    return [p for mode, rule, text in MISBEHAVIOURS for p in (
        pytest.param(mode, rule, text, False, id=f"{mode}-unshrunk"),
        pytest.param(mode, rule, text, True, id=f"{mode}-shrunk", marks=() if mode == "segv" else pytest.mark.conformance))]


@pytest.mark.parametrize("mode,rule,text,shrink", _misbehaviours())
def test_misbehaving_process_is_a_failure_of_its_rule(mode, rule, text, shrink, tmp_path):
    pidfile = tmp_path / "grandchildren"
    # Only the hang is about the timeout: the others get one a shared machine cannot miss (17 MiB through a pipe).
    impl, result = _run(_exec(mode, str(pidfile)), shrink=shrink, timeout=0.5 if mode == "hang" else 10, hang_budget=20)
    failures = {f.rule_id: f for f in result.failures}
    assert set(failures) == {rule}, [f"{f.rule_id}: {f.message}" for f in result.failures]
    f = failures[rule]
    assert text in f.message
    assert f.steps and "order=1" in f.steps[-1].render()  # the operations up to the misbehaviour
    if mode == "exit":
        assert "badproc: giving up on order 1" in f.message  # its stderr
    # Nothing left running: every child started, and the grandchildren they started.
    grandchildren = [int(p) for p in pidfile.read_text().split()]
    assert impl.factory.pids and grandchildren
    assert not [p for p in impl.factory.pids + grandchildren if _alive(p)]
    doc = write_reports(result, tmp_path / "reports")
    ET.parse(tmp_path / "reports" / "junit.xml")  # stderr's control characters did not break the XML
    on_disk = json.loads((tmp_path / "reports" / "report.json").read_text())
    assert on_disk == json.loads(json.dumps(doc)) and not on_disk["conforming"]
    assert next(r for r in on_disk["rules"] if r["id"] == rule)["status"] == "fail"
    assert json.loads((tmp_path / "reports" / "failures" / f"{rule}.json").read_text())["rule_id"] == rule


def test_hang_budget_stops_the_run_with_the_shortest_failure_so_far(tmp_path):
    impl, result = _run(_exec("hang"), timeout=0.3, hang_budget=1.0)
    assert [f.rule_id for f in result.failures] == ["IUT-TIMEOUT"]
    assert result.notes and "hang budget" in result.notes[0]
    assert not [p for p in impl.factory.pids if _alive(p)]


def test_a_conforming_process_passes_and_its_process_rules_are_checked(tmp_path):
    starts = tmp_path / "starts"
    impl, result = _run(_exec("ok", str(starts)))
    write_reports(result, tmp_path / "reports")  # writing reports starts nothing
    assert len(starts.read_text().split()) == 1
    assert result.conforming, [f"{f.rule_id}: {f.message}" for f in result.failures]
    assert result.transport == "process" and result.coverage["IUT-TIMEOUT"] > 0
    assert len(impl.factory.pids) == 1, "one process serves every example (init resets it)"
    assert not _alive(impl.factory.pids[0])


@pytest.mark.parametrize("spec", ["fast", pytest.param("reference", marks=pytest.mark.conformance),
                                  pytest.param(f"{IMPLS / 'alt_random.py'}:make", marks=pytest.mark.conformance)],
                         ids=["fast", "reference", "alt_random"])
def test_isolate_gives_the_same_verdict_as_in_process(checked, spec):
    result = checked(spec, "tiny-wmark", seed=3, profile=QUICK, isolate=True)
    assert result.conforming and result.isolated, [f"{f.rule_id}: {f.message}" for f in result.failures]


def test_isolated_mutant_is_killed_by_its_rule_and_a_python_crash_is_iut_no_crash():
    # Kills only: unshrunk (the shrunk forms are test_misbehaving_process_is_a_failure_of_its_rule's and test_cli's).
    result = run_check(load_impl("mutant:double-free-unchecked", isolate=True), load_machine("tiny"), machine_spec="tiny",
                       profile=QUICK, seed_value=20261125, progress=None, shrink=False)
    assert "BUDDY-DOUBLE-FREE" in {f.rule_id for f in result.failures}
    crash = run_check(load_impl(f"{IMPLS / 'broken.py'}:make_crash", isolate=True), load_machine("tiny"), machine_spec="tiny",
                      profile=QUICK, seed_value=1, progress=None, shrink=False)
    [f] = crash.failures
    assert f.rule_id == "IUT-NO-CRASH" and "ZeroDivisionError: division by zero in my_buddy.c:42" in f.message


@pytest.mark.parametrize("spec,text", [
    ("exec:/nonexistent/allocator", "cannot start /nonexistent/allocator"),
    (f"exec:{sys.executable} -c 'print(42)'", "answered hello with 42"),
    (f"exec:{sys.executable} -c 'import sys; sys.exit(7)'", "exited with status 7 during hello"),
    ("exec:", "exec: needs a command"),
    (f"exec:{sys.executable} -c \"print('{{\\\"protocol\\\": 1, \\\"capabilities\\\": [1]}}')\"", "capabilities"),
    (f"exec:{sys.executable} -c \"print('{{\\\"protocol\\\": true, \\\"capabilities\\\": [\\\"pages\\\"]}}')\"", "answered hello"),
    (f"exec:{sys.executable} -c \"print('{{\\\"protocol\\\": 1, \\\"capabilities\\\": [\\\"pages\\\"], \\\"claims\\\": [\\\"NOPE\\\"]}}')\"",
     "claims ['NOPE'] are not claimable"),
])
def test_a_process_that_cannot_shake_hands_is_a_usage_error(spec, text):
    with pytest.raises(InvalidDefinition) as e:
        load_impl(spec, timeout=2)
    assert text in str(e.value) and "\n" not in str(e.value).split("; its stderr")[0]


def test_init_resets_state_between_examples():
    impl = load_impl("fast", isolate=True)
    try:
        machine = load_machine("tiny")
        first = impl.factory(machine, Env())
        pfns = {first.alloc_pages(0, 0) for _ in range(5)}
        second = impl.factory(machine, Env())
        assert {second.alloc_pages(0, 0) for _ in range(5)} == pfns  # fresh boot state, same deterministic choices
    finally:
        impl.close()
    assert not [p for p in impl.factory.pids if _alive(p)]


def test_pasteable_spec_lines_for_adapters():
    impl = load_impl(_exec("ok"))
    try:
        assert impl.import_lines()[-1].startswith("make = load_impl('exec:")
    finally:
        impl.close()
