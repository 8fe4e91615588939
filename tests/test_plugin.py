"""The pytest plugin, as a user meets it: their own pytest session, xdist, -m by level, junitxml, usage errors, and its weight."""

import ast
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

from kmemspec.refmodel.rules import RULES


def pytest_run(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600)


#: A user's conftest that records, in the controller, what each kmemspec report carried and which worker ran it.
RECORDING_CONFTEST = """\
import ast
import json

seen = []


def pytest_runtest_logreport(report):
    if report.when == "call" and hasattr(report, "kmemspec"):
        seen.append({**report.kmemspec, "worker": getattr(report, "worker_id", None)})


def pytest_sessionfinish(session):
    if not hasattr(session.config, "workerinput"):
        with open("kmemspec_reports.json", "w") as fh:
            json.dump(seen, fh)
"""


def test_suite_runs_inside_a_users_session_with_xdist_and_junitxml(tmp_path):
    (tmp_path / "test_mine.py").write_text("def test_users_own():\n    assert True\n")
    (tmp_path / "conftest.py").write_text(RECORDING_CONFTEST)
    p = pytest_run(tmp_path, "--kmemspec-impl", "fast", "--kmemspec-machine", "tiny", "--kmemspec-machine", "tiny-wmark",
                   "--kmemspec-seed", "1", "--kmemspec-profile", "smoke", "-n", "2", "--junitxml", "junit.xml")
    assert p.returncode == 0, p.stdout + p.stderr
    cases = ET.parse(tmp_path / "junit.xml").getroot().iter("testcase")
    names = [c.get("name") for c in cases]
    assert "test_users_own" in names
    assert names.count("BUDDY-NO-CROSS-ZONE") == 2 and len(names) == 1 + 2 * len(RULES)
    # Each rule's data came back from its worker with the report; a pair ran on one worker only, so its suite ran once.
    reports = json.loads((tmp_path / "kmemspec_reports.json").read_text())
    assert len(reports) == 2 * len(RULES) and {r["machine"] for r in reports} == {"tiny", "tiny-wmark"}
    by_rule = {(r["machine"], r["rule"]): r for r in reports}
    assert by_rule["tiny", "BUDDY-NO-CROSS-ZONE"]["status"] == "pass" and by_rule["tiny", "BUDDY-NO-CROSS-ZONE"]["seed"] == 1
    for machine in ("tiny", "tiny-wmark"):
        workers = {r["worker"] for r in reports if r["machine"] == machine}
        assert len(workers) == 1 and None not in workers, (machine, workers)


def test_markers_select_by_level(tmp_path):
    p = pytest_run(tmp_path, "--kmemspec-impl", "reference", "--kmemspec-seed", "1", "--kmemspec-profile", "smoke", "-m", "safety", "-vv")
    assert p.returncode == 0, p.stdout + p.stderr
    safety = [r.id for r in RULES if r.level.value == "safety"]
    assert all(f"::{rule_id} " in p.stdout for rule_id in safety)
    assert "::BUDDY-DOUBLE-FREE " not in p.stdout and f"{len(safety)} selected" in p.stdout


def test_a_broken_rule_fails_its_item_with_the_shrunk_steps(tmp_path):
    p = pytest_run(tmp_path, "--kmemspec-impl", "mutant:zonelist-unfiltered", "--kmemspec-seed", "20261125", "-m", "safety")
    assert p.returncode == 1, p.stdout + p.stderr
    assert "GFP-ZONE-ELIGIBLE:" in p.stdout and re.search(r"iut\.(alloc_pages|get_free_pages)\(gfp=", p.stdout)
    assert "reproduce: kmemspec check mutant:zonelist-unfiltered --machine tiny --profile ci --seed 20261125" in p.stdout


def test_a_wrong_implementation_is_a_usage_error(tmp_path):
    p = pytest_run(tmp_path, "--kmemspec-impl", "no_such_module.nowhere:make")
    assert p.returncode == 4 and "no module named 'no_such_module'" in p.stderr, p.stdout + p.stderr


def test_inert_without_the_option_and_without_xdist(tmp_path):
    (tmp_path / "test_mine.py").write_text("def test_users_own():\n    assert True\n")
    for extra in ([], ["-p", "no:xdist"]):
        p = pytest_run(tmp_path, *extra)
        assert p.returncode == 0 and "1 passed" in p.stdout, p.stdout + p.stderr
    p = pytest_run(tmp_path, "-p", "no:xdist", "--kmemspec-impl", "reference", "--kmemspec-seed", "1", "--kmemspec-profile", "smoke", "-m", "liveness")
    assert p.returncode == 0 and "warning" not in p.stdout, p.stdout + p.stderr


def test_pytest_help_imports_no_hypothesis_and_nothing_heavy_of_kmemspec(tmp_path):
    """A project that has kmemspec installed but does not use it pays for the plugin module and refmodel's catalog, no more."""
    probe = ("import sys, pytest\n"
             "pytest.main(['-p', 'no:cacheprovider', '--help'])\n"
             "print('MODULES', sorted(m for m in sys.modules if m == 'hypothesis' or m.startswith('kmemspec')))\n")
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert p.returncode == 0 and "--kmemspec-impl=IMPL" in p.stdout, p.stdout + p.stderr
    modules = ast.literal_eval(p.stdout.rpartition("MODULES ")[2].strip())
    assert "kmemspec.cli.pytestplugin" in modules  # the plugin was loaded ...
    heavy = [m for m in modules if not (m in ("kmemspec", "kmemspec.cli", "kmemspec.cli.pytestplugin") or m.startswith("kmemspec.refmodel"))]
    assert not heavy, f"pytest --help imported {heavy}"  # ... and stayed thin: no Hypothesis, no harness, no properties

