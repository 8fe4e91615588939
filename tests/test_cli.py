"""The command line as a user meets it: exit codes, one-line errors, reports, replay, pasteable tests."""

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import IMPLS

from kmemspec.refmodel.rules import RULES, render_markdown

ROOT = Path(__file__).resolve().parents[1]


def kmemspec(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "kmemspec.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_check_reference_conforms_and_writes_three_reports(tmp_path):
    p = kmemspec("check", "reference", "--seed", "7", "--report-dir", str(tmp_path), "-q")
    assert p.returncode == 0, p.stdout + p.stderr
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["schema"] == "kmemspec-report/1" and doc["conforming"] and doc["seed"] == 7
    assert {r["id"] for r in doc["rules"]} >= {"BUDDY-NO-CROSS-ZONE", "BUDDY-NO-SPURIOUS-FAIL", "BUDDY-DOUBLE-FREE"}
    assert "| `BUDDY-ALIGN` | safety | pass |" in (tmp_path / "report.md").read_text()
    suite = ET.parse(tmp_path / "junit.xml").getroot().find("testsuite")
    assert int(suite.get("tests")) == len(doc["rules"]) and suite.get("failures") == "0"


def test_nonconforming_run_exits_1_with_replay_and_pasteable_test(tmp_path):
    spec = f"{IMPLS / 'broken.py'}:make_crash"
    p = kmemspec("check", spec, "--seed", "1", "--report-dir", str(tmp_path), "-q")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "FAIL IUT-NO-CRASH" in p.stdout and "replay: kmemspec replay" in p.stdout
    doc = json.loads((tmp_path / "report.json").read_text())
    failure = next(f for f in doc["failures"] if f["rule_id"] == "IUT-NO-CRASH")
    assert any("order=1" in s for s in failure["steps"])
    assert len(failure["steps"]) <= 3, failure["steps"]  # shrunk
    junit = ET.parse(tmp_path / "junit.xml").getroot()
    assert junit.find(".//testcase[@name='IUT-NO-CRASH']/failure") is not None

    replay = kmemspec("replay", failure["trace_file"])
    assert replay.returncode == 1 and "IUT-NO-CRASH" in replay.stdout, replay.stdout + replay.stderr
    assert kmemspec("replay", failure["trace_file"], "--impl", "reference").returncode == 0

    test_file = Path(failure["test_file"])
    source = test_file.read_text()
    assert "iut = Lockstep(make, machine='tiny')" in source and "from kmemspec.harness import Lockstep" in source
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test_file)], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 1 and "IUT-NO-CRASH" in run.stdout, run.stdout + run.stderr


def test_slab_failure_replays_and_its_test_pastes(tmp_path):
    # a clobber + validate failure: the trace holds kmem_cache_create, kmem_cache_alloc, clobber, kmem_cache_validate
    p = kmemspec("check", "mutant:no-left-red-zone", "--seed", "1", "--report-dir", str(tmp_path), "-q")
    assert p.returncode == 1, p.stdout + p.stderr
    failure = next(f for f in json.loads((tmp_path / "report.json").read_text())["failures"] if f["rule_id"] == "SLAB-REDZONE-CHECK")
    assert any("iut.clobber(addr=obj_" in s for s in failure["steps"]), failure["steps"]
    replay = kmemspec("replay", failure["trace_file"])
    assert replay.returncode == 1 and "SLAB-REDZONE-CHECK" in replay.stdout, replay.stdout + replay.stderr
    assert kmemspec("replay", failure["trace_file"], "--impl", "fast").returncode == 0
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", failure["test_file"]], capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 1 and "SLAB-REDZONE-CHECK" in run.stdout, run.stdout + run.stderr


@pytest.mark.parametrize("args,text", [
    (["check", "no_such_module.nowhere:make"], "no module named 'no_such_module'"),
    (["check", "./nowhere/alloc.py:make"], "does not exist"),
    (["check", "json:make"], "json has no attribute 'make'"),
    (["check", f"{IMPLS / 'broken.py'}:make_raises"], "the factory raised RuntimeError"),
    (["check", f"{IMPLS / 'broken.py'}:make_no_free"], "has no method free_pages()"),
    (["check", "reference", "--profile", "nightly"], "profile 'nightly' does not exist"),
    (["check", "reference", "--machine", "vax"], "no such preset"),
    (["machine", "x86_64:lots"], "write it like 512M"),
    (["replay", "/nonexistent/trace.json"], "trace /nonexistent/trace.json"),
])
def test_usage_errors_are_one_line_exit_2(args, text):
    p = kmemspec(*args)
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stderr.count("\n") == 1 and text in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


def test_machine_and_rules_commands():
    p = kmemspec("machine", "x86_64")
    assert p.returncode == 0 and "zone DMA32" in p.stdout and "46 physical address bits" in p.stdout
    p = kmemspec("rules")
    assert p.returncode == 0 and all(r.id in p.stdout for r in RULES)


def test_docs_rules_md_is_generated_from_the_catalog():
    assert (ROOT / "docs" / "rules.md").read_text() == render_markdown(RULES), "run: kmemspec rules --markdown > docs/rules.md"
