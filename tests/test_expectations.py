"""Expectations files: round trip, the comparison table (kept equal to docs/expectations.md), errors that teach."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from kmemspec.harness import load_impl
from kmemspec.harness.expectations import (
    EXPECTATIONS_SCHEMA,
    EXPECTED_STATUSES,
    Expectations,
    InvalidExpectations,
    Verdict,
    compare,
    expectations_from_report,
    load_expectations,
    render_expectations,
)
from kmemspec.harness.impls.mutants import MUTANTS
from kmemspec.harness.report import build_report
from kmemspec.properties import Profile, run_check
from kmemspec.refmodel import load_machine
from kmemspec.refmodel.errors import KmemspecError
from kmemspec.refmodel.rules import RULES

DOCS = Path(__file__).resolve().parents[1] / "docs" / "expectations.md"
MUTANT = "zonelist-unfiltered"
# Smaller than ci: this mutant breaks GFP-ZONE-ELIGIBLE within a few steps on any seed.
SMALL = Profile("unit", 20, 20, "a short run for the expectations tests")


@pytest.fixture(scope="module")
def mutant_doc(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """report.json of a real, failing run: `kmemspec check mutant:zonelist-unfiltered --seed 20261125` (smaller profile)."""
    machine = MUTANTS[MUTANT].machine
    result = run_check(load_impl(f"mutant:{MUTANT}"), load_machine(machine), machine_spec=machine,
                       profile=SMALL, seed_value=20261125, progress=None)
    return json.loads(json.dumps(build_report(result, tmp_path_factory.mktemp("reports"))))


def make_doc(statuses: dict[str, str] | None = None, impl: str = "fast", machine: str = "tiny") -> dict:
    """A minimal report.json document: every rule passes except those in ``statuses``."""
    statuses = statuses or {}
    return {
        "schema": "kmemspec-report/1",
        "impl": {"spec": impl, "label": impl, "capabilities": [], "claims": []},
        "machine": {"spec": machine, "name": machine, "description": {}},
        "profile": {"name": "ci", "max_examples": 1, "step_count": 1},
        "seed": 7,
        "rules": [{"id": r.id, "status": statuses.get(r.id, "pass")} for r in RULES],
        "failures": [],
    }


def write(tmp_path: Path, text: str, name: str = "exp.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


HEAD = f'schema = "{EXPECTATIONS_SCHEMA}"\nimpl = "fast"\n'


# -- round trip ---------------------------------------------------------------


def test_round_trip_of_a_real_failing_run(mutant_doc, tmp_path):
    assert not mutant_doc["conforming"]
    e = expectations_from_report(mutant_doc)
    path = write(tmp_path, render_expectations(e))
    loaded = load_expectations(path)
    assert loaded == e
    assert loaded.source == str(path)
    c = compare(mutant_doc, loaded)
    assert c.gating_ok
    assert not c.new_failures and not c.lost_claims and not c.unexpected_passes and not c.mismatches
    failing = {r["id"] for r in mutant_doc["rules"] if r["status"] == "fail"}
    assert MUTANTS[MUTANT].rule_id in failing
    assert set(c.expected_failures) == failing
    assert all(v.verdict is Verdict.EXPECTED for v in c.verdicts)


def test_a_real_failing_run_against_no_expectations_gates(mutant_doc):
    c = compare(mutant_doc, Expectations(impl=f"mutant:{MUTANT}"))
    assert not c.gating_ok
    assert MUTANTS[MUTANT].rule_id in c.new_failures
    assert set(c.new_failures) == {r["id"] for r in mutant_doc["rules"] if r["status"] == "fail"}
    json.dumps(c.to_json())  # JSON-able, for report.json


def test_from_report_lists_every_status_but_pass_and_not_exercised():
    doc = make_doc({"BUDDY-ALIGN": "fail", "CTX-MIGHT-SLEEP": "not claimed", "API-ZERO": "not applicable",
                    "NOFAIL-NEVER-NULL": "not exercised"})
    e = expectations_from_report(doc)
    assert dict(e.rules) == {"BUDDY-ALIGN": "fail", "CTX-MIGHT-SLEEP": "not claimed", "API-ZERO": "not applicable"}
    assert e.impl == "fast" and e.machine == "tiny"
    assert "kmemspec check fast --machine tiny --profile ci --seed 7" in render_expectations(e)


def test_render_is_in_catalog_order_and_keeps_reasons(tmp_path):
    e = Expectations(impl="x", rules={"IUT-NO-CRASH": "fail", "BUDDY-ALIGN": "fail", "CTX-MIGHT-SLEEP": "not claimed"},
                     reasons={"IUT-NO-CRASH": 'raises "ENOMEM" \\ sometimes\n'})
    text = render_expectations(e)
    assert text.startswith("# kmemspec expectations")
    keys = re.findall(r"^([A-Z-]+) = ", text, re.M)
    order = [r.id for r in RULES]
    assert keys == sorted(keys, key=order.index) == ["BUDDY-ALIGN", "CTX-MIGHT-SLEEP", "IUT-NO-CRASH"]
    assert render_expectations(Expectations(impl="x", rules=dict(reversed(list(e.rules.items()))), reasons=e.reasons)) == text
    assert load_expectations(write(tmp_path, text)) == e


def test_an_empty_file_expects_everything_to_pass(tmp_path):
    e = load_expectations(write(tmp_path, render_expectations(Expectations(impl="fast"))))
    assert dict(e.rules) == {}
    assert compare(make_doc(), e).gating_ok


# -- the comparison -----------------------------------------------------------


def test_new_failure_gates():
    doc = make_doc({"BUDDY-ALIGN": "fail", "BUDDY-NO-SPURIOUS-FAIL": "fail"})
    c = compare(doc, Expectations(impl="fast", rules={"BUDDY-NO-SPURIOUS-FAIL": "fail"}, source="ci/fast.toml"))
    assert not c.gating_ok
    assert c.new_failures == ("BUDDY-ALIGN",)
    assert c.expected_failures == ("BUDDY-NO-SPURIOUS-FAIL",)
    text = c.render_text()
    assert text.splitlines()[0] == ("expectations ci/fast.toml: NOT met: 1 expected failure, 1 new failure, "
                                    "0 lost claims, 0 unexpected passes")
    assert 'new failure BUDDY-ALIGN: expected pass (not listed), got fail; fix it, or accept it with BUDDY-ALIGN = "fail" in ci/fast.toml' in text


def test_a_failure_of_an_unclaimed_rule_that_is_now_claimed_gates():
    c = compare(make_doc({"CTX-MIGHT-SLEEP": "fail"}), Expectations(rules={"CTX-MIGHT-SLEEP": "not claimed"}))
    assert c.new_failures == ("CTX-MIGHT-SLEEP",) and not c.gating_ok


def test_lost_claim_gates():
    c = compare(make_doc({"CTX-MIGHT-SLEEP": "not claimed"}), Expectations(impl="fast", source="f.toml"))
    assert not c.gating_ok
    assert c.lost_claims == ("CTX-MIGHT-SLEEP",)
    assert "lost claim CTX-MIGHT-SLEEP" in c.render_text()
    assert 'list CTX-MIGHT-SLEEP = "not claimed" in f.toml' in c.render_text()


def test_a_failing_rule_whose_claim_is_dropped_is_informational():
    c = compare(make_doc({"CTX-MIGHT-SLEEP": "not claimed"}), Expectations(rules={"CTX-MIGHT-SLEEP": "fail"}))
    assert c.gating_ok and c.mismatches == ("CTX-MIGHT-SLEEP",)


def test_unexpected_pass_is_reported_but_does_not_gate():
    c = compare(make_doc(), Expectations(impl="fast", rules={"BUDDY-FREE-INTERIOR": "fail"}, source="ci/fast.toml"))
    assert c.gating_ok
    assert c.unexpected_passes == ("BUDDY-FREE-INTERIOR",)
    assert ("unexpected pass BUDDY-FREE-INTERIOR: expected fail, got pass; remove it from ci/fast.toml to tighten"
            in c.render_text())
    assert c.render_text().splitlines()[0].endswith("1 unexpected pass")


def test_unlisted_rules_may_be_not_applicable_or_not_exercised():
    c = compare(make_doc({"API-ZERO": "not applicable", "NOFAIL-NEVER-NULL": "not exercised"}), Expectations())
    assert c.gating_ok and not c.mismatches and not c.unexpected_passes


def test_expected_failure_not_reached_is_a_mismatch():
    c = compare(make_doc({"BUDDY-ALIGN": "not exercised"}), Expectations(rules={"BUDDY-ALIGN": "fail"}))
    assert c.gating_ok and c.mismatches == ("BUDDY-ALIGN",)
    assert "this run did not reach it" in c.render_text()


def test_other_impl_or_machine_is_a_note():
    c = compare(make_doc(impl="mine.py:make", machine="x86_64"), Expectations(impl="fast", machine="tiny", source="f.toml"))
    assert c.gating_ok
    assert "note: f.toml was written for implementation 'fast'; this run checked 'mine.py:make'" in c.render_text()
    assert "machine 'tiny'" in c.render_text()


def test_to_json():
    c = compare(make_doc({"BUDDY-ALIGN": "fail"}), Expectations(rules={"API-ZERO": "fail"}, reasons={"API-ZERO": "why"}, source="f"))
    j = json.loads(json.dumps(c.to_json()))
    assert j["schema"] == EXPECTATIONS_SCHEMA and j["file"] == "f" and j["gating_ok"] is False
    assert j["new_failures"] == ["BUDDY-ALIGN"] and j["unexpected_passes"] == ["API-ZERO"]
    assert j["counts"]["unexpected fail"] == 1 and j["counts"]["expected"] == len(RULES) - 2
    row = next(r for r in j["rules"] if r["id"] == "API-ZERO")
    assert row == {"id": "API-ZERO", "expected": "fail", "got": "pass", "outcome": "unexpected pass",
                   "gating": False, "listed": True, "reason": "why"}


def _docs_table() -> dict[tuple[str, str], str]:
    section = DOCS.read_text().split("## Semantics")[1].split("\n## ")[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    header = [c.strip() for c in section.split("| expected \\ got |")[1].splitlines()[0].strip(" |").split("|")]
    table = {}
    for line in rows:
        cells = [c.strip() for c in line.strip(" |").split("|")]
        expected = re.match(r"`([^`]+)`", cells[0]).group(1)
        for got, cell in zip(header, cells[1:]):
            table[expected, got] = cell
    return table


# A claimable rule, so that every status is possible.
ANY_STATUS_RULE = "API-FREE-BAD-ADDRESS"


def test_docs_table_is_what_compare_does():
    table = _docs_table()
    assert len(table) == len(EXPECTED_STATUSES) ** 2
    for (expected, got), cell in table.items():
        c = compare(make_doc({ANY_STATUS_RULE: got}), Expectations(rules={ANY_STATUS_RULE: expected}))
        (v,) = [v for v in c.verdicts if v.rule_id == ANY_STATUS_RULE]
        assert v.verdict.value == cell.strip("*"), (expected, got)
        assert v.verdict.gating == cell.startswith("**"), (expected, got)
        if expected == "pass":  # unlisted behaves as listed "pass"
            assert compare(make_doc({ANY_STATUS_RULE: got}), Expectations()).verdicts == tuple(
                v.__class__(x.rule_id, x.expected, x.got, x.verdict, False, x.reason) for x in c.verdicts)


# -- malformed files ----------------------------------------------------------

BAD_FILES = [
    # (file text, what the one-line message must say)
    ("schema = \n", "not valid TOML: Invalid value (at line 1, column 10): `schema =`"),
    (HEAD + "[rules]\nBUDDY-ALIGN = fail\n", 'line 4, column 15): `BUDDY-ALIGN = fail`; statuses are quoted strings, e.g. BUDDY-ALIGN = "fail"'),
    (HEAD + "[rules]\nBUDDY-ALIGN = \"fail\"\nBUDDY-ALIGN = \"pass\"\n", "not valid TOML: Cannot overwrite a value (at line 5"),
    ('impl = "fast"\n', f'no schema key; add schema = "{EXPECTATIONS_SCHEMA}" at the top'),
    ('schema = "kmemspec-expectations/2"\n', f'schema = "kmemspec-expectations/2" is not one this kmemspec reads; use schema = "{EXPECTATIONS_SCHEMA}"'),
    (HEAD + "[rule]\nBUDDY-ALIGN = \"fail\"\n", "unknown key 'rule' (did you mean rules?); the keys are schema, impl, machine, rules"),
    (HEAD + 'rules = "BUDDY-ALIGN"\n', 'rules = "BUDDY-ALIGN" must be a [rules] table'),
    (f'schema = "{EXPECTATIONS_SCHEMA}"\nimpl = 3\n', 'impl = 3 must be a string, e.g. impl = "fast"'),
    (HEAD + '[rules]\nBUDDY-NO-CROSS-ZON = "fail"\n', "[rules] BUDDY-NO-CROSS-ZON is not a rule ID (did you mean BUDDY-NO-CROSS-ZONE?); `kmemspec rules` lists them"),
    (HEAD + '[rules]\nNOT-A-RULE = "fail"\n', "[rules] NOT-A-RULE is not a rule ID; `kmemspec rules` lists them"),
    (HEAD + '[rules]\nBUDDY-ALIGN = "failed"\n', '[rules] BUDDY-ALIGN = "failed" is not an expected status (did you mean "fail"?); use one of "fail", "not claimed"'),
    (HEAD + '[rules]\nCTX-MIGHT-SLEEP = "not-claimed"\n', '(did you mean "not claimed"?)'),
    (HEAD + '[rules]\nBUDDY-ALIGN = "flaky"\n', '[rules] BUDDY-ALIGN = "flaky" is not an expected status; use one of'),
    (HEAD + '[rules]\nBUDDY-ALIGN = 1\n', '[rules] BUDDY-ALIGN = 1: expected a status string such as "fail", or a table { status = "fail", reason = "..." }'),
    (HEAD + '[rules]\nBUDDY-ALIGN = { reason = "x" }\n', "[rules] BUDDY-ALIGN: the table has no status"),
    (HEAD + '[rules]\nBUDDY-ALIGN = { status = "fail", reson = "x" }\n', "[rules] BUDDY-ALIGN: unknown key 'reson' (did you mean reason?) in its table"),
    (HEAD + '[rules]\nBUDDY-ALIGN = { status = "fail", reason = 2 }\n', "[rules] BUDDY-ALIGN: reason = 2 must be a string"),
    (HEAD + '[rules]\nBUDDY-ALIGN = { status = ["fail"] }\n', "[rules] BUDDY-ALIGN: status = ['fail'] must be a string"),
    (HEAD + '[rules]\nBUDDY-ALIGN = "not claimed"\n', 'BUDDY-ALIGN is a safety rule that binds every implementation, so it is never "not claimed"'),
]


@pytest.mark.parametrize("text, needle", BAD_FILES, ids=[n[:40] for _, n in BAD_FILES])
def test_malformed_file_is_one_teaching_line(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(KmemspecError) as info:
        load_expectations(path)
    msg = str(info.value)
    assert isinstance(info.value, InvalidExpectations)
    assert "\n" not in msg
    assert msg.startswith(f"expectations file {path}: ")
    assert needle in msg


def test_missing_file_says_how_to_make_one(tmp_path):
    path = tmp_path / "nope.toml"
    with pytest.raises(InvalidExpectations, match=re.escape(f"expectations file {path}: no such file; write one from a run with "
                                                            f"`kmemspec check IMPL --write-expectations {path}`")):
        load_expectations(path)


def test_directory_and_binary_files(tmp_path):
    with pytest.raises(InvalidExpectations, match="is a directory; pass the .toml file itself"):
        load_expectations(tmp_path)
    path = tmp_path / "bin.toml"
    path.write_bytes(b'schema = "\xff"\n')
    with pytest.raises(InvalidExpectations, match=r"not UTF-8 text \(byte 0xff at offset 10\); save it as UTF-8"):
        load_expectations(path)


def test_statuses_a_rule_can_have_are_accepted(tmp_path):
    lines = [f'{ANY_STATUS_RULE} = "not claimed"', 'API-ZERO = "not applicable"', 'NOFAIL-NEVER-NULL = "not exercised"',
             'BUDDY-ALIGN = "pass"', 'IUT-NO-CRASH = { status = "fail" }']
    e = load_expectations(write(tmp_path, HEAD + "[rules]\n" + "\n".join(lines) + "\n"))
    assert e.rules["IUT-NO-CRASH"] == "fail" and e.expected("GFP-ZONE-BAD") == "pass" and e.reasons == {}


# -- exploring past a known departure --------------------------------------------

DEPARTS = str(Path(__file__).parent / "impls" / "departs.py") + ":make"


def _departs(skip: frozenset[str]):
    from kmemspec.harness.loader import load_impl as load
    from kmemspec.properties import PROFILES
    return run_check(load(DEPARTS), load_machine("tiny"), machine_spec="tiny", profile=PROFILES["ci"], seed_value=1,
                     progress=None, skip=skip)


def test_a_skipped_departure_is_reported_and_the_search_goes_on():
    past = _departs(frozenset({"BUDDY-DOUBLE-FREE"}))
    failed = {f.rule_id: f for f in past.failures}
    assert set(failed) == {"BUDDY-DOUBLE-FREE", "KMALLOC-ZERO-SIZE"}
    assert failed["BUDDY-DOUBLE-FREE"].skipped and not failed["KMALLOC-ZERO-SIZE"].skipped
    assert len(failed["KMALLOC-ZERO-SIZE"].steps) <= 2  # the other bug is shrunk as usual
    assert any(n.startswith("BUDDY-DOUBLE-FREE (skipped) failed in ") for n in past.notes), past.notes


def test_expectations_skip_what_they_expect_to_fail_and_gate_on_the_rest(tmp_path):
    import subprocess
    import sys
    exp = write(tmp_path, HEAD + '[rules]\nBUDDY-DOUBLE-FREE = "fail"\n')
    p = subprocess.run([sys.executable, "-m", "kmemspec.cli", "check", DEPARTS, "--seed", "1", "--expectations", str(exp),
                        "--report-dir", str(tmp_path / "r"), "-q"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "FAIL KMALLOC-ZERO-SIZE" in p.stdout and "BUDDY-DOUBLE-FREE (skipped)" in p.stdout
    doc = json.loads((tmp_path / "r" / "report.json").read_text())
    assert {f["rule_id"]: f["skipped"] for f in doc["failures"]} == {"BUDDY-DOUBLE-FREE": True, "KMALLOC-ZERO-SIZE": False}
    results = doc["expectation_results"]
    assert results["new_failures"] == ["KMALLOC-ZERO-SIZE"] and results["expected_failures"] == ["BUDDY-DOUBLE-FREE"]


def test_skip_names_a_catalog_rule(tmp_path):
    import subprocess
    import sys
    p = subprocess.run([sys.executable, "-m", "kmemspec.cli", "check", "fast", "--skip", "BUDDY-ALIG"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "did you mean BUDDY-ALIGN?" in p.stderr, p.stderr
