"""Conformance reports: report.json (versioned), report.md (the rule matrix), report.html, junit.xml, replay files.

A report is built from a finished run (any object with the fields of
``kmemspec.properties.CheckResult``) and written atomically, so a report
directory never holds a torn file. The JSON schema is in docs/reports.md.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Final
from xml.sax.saxutils import escape, quoteattr

from ..refmodel import subsystems
from ..refmodel.kmalloc import kmalloc_bucket_names
from ..refmodel.rules import PROCESS_RULES, RULES, Rule
from .html_report import render_html
from .loader import spec_import_lines
from .trace import dump_trace, render_steps, render_test

REPORT_SCHEMA: Final = "kmemspec-report/1"
def _applies_to() -> dict[str, frozenset[str]]:
    """Each subsystem and the capabilities of which an implementation needs one for its rules to apply."""
    return {s.name: s.applies_to for s in subsystems()}


def rule_status(rule: Rule, result: Any, failed: set[str]) -> str:
    """pass / fail / not claimed / not applicable (capability missing) / not exercised."""
    if rule.id in failed:
        return "fail"
    if rule.needs_claim and rule.id not in result.claims:
        return "not claimed"
    if rule.capability is not None and rule.capability not in result.capabilities:
        return "not applicable"
    needs = _applies_to().get(rule.subsystem)
    if needs and not needs & result.capabilities:
        return "not applicable"
    if rule.id in PROCESS_RULES and getattr(result, "transport", "python") != "process":
        return "not applicable"
    return "pass" if result.coverage.get(rule.id, 0) else "not exercised"


def _requests(result: Any) -> list[dict[str, Any]]:
    """Allocation requests answered per page order and kmalloc size class: served, NULL; every bucket listed, so an
    implementation that never serves one shows it."""
    m = result.machine
    order = [f"order-{k}" for k in range(m.max_page_order + 1)]
    if "kmalloc" in result.capabilities:
        order += kmalloc_bucket_names(m)
    counts = getattr(result, "requests", {})
    beyond = sorted({b for b, _ in counts} - set(order))  # above MAX_PAGE_ORDER or KMALLOC_MAX_SIZE: must fail
    return [{"bucket": b, "served": counts.get((b, True), 0), "null": counts.get((b, False), 0), "beyond_limit": b in beyond}
            for b in order + beyond]


def build_report(result: Any, out_dir: Path) -> dict[str, Any]:
    """The report.json document for a finished run."""
    failed = {f.rule_id for f in result.failures}
    rules = [
        {
            "id": r.id, "level": r.level.value, "subsystem": r.subsystem, "statement": r.statement,
            "source": r.source, "status": rule_status(r, result, failed), "checks": result.coverage.get(r.id, 0),
        }
        for r in RULES
    ]
    failures = []
    for f in result.failures:
        trace_file = out_dir / "failures" / f"{f.rule_id}.json"
        failures.append({
            "rule_id": f.rule_id,
            "message": f.message,
            "skipped": getattr(f, "skipped", False),
            "steps": render_steps(f.steps),
            "trace_file": str(trace_file),
            "test_file": str(out_dir / "failures" / f"repro_{f.rule_id.lower().replace('-', '_')}.py"),
            "replay": f"kmemspec replay {trace_file}",
        })
    return {
        "schema": REPORT_SCHEMA,
        "impl": {"spec": result.impl, "label": result.label, "transport": getattr(result, "transport", "python"),
                 "isolated": getattr(result, "isolated", False), "capabilities": sorted(result.capabilities), "claims": sorted(result.claims)},
        "machine": {"spec": result.machine_spec, "name": result.machine.name, "description": result.machine.to_dict()},
        "profile": {"name": result.profile.name, "max_examples": result.profile.max_examples, "step_count": result.profile.step_count},
        "seed": result.seed,
        "examples": result.examples,
        "steps": result.steps,
        "seconds": round(result.seconds, 3),
        "conforming": not result.failures,
        "notes": list(getattr(result, "notes", [])),
        "expectations": {k: result.outcomes.get(k, 0) for k in ("MUST_SUCCEED", "MAY_FAIL", "MUST_FAIL")},
        "summary": {s: sum(1 for r in rules if r["status"] == s) for s in ("pass", "fail", "not claimed", "not applicable", "not exercised")},
        "rules": rules,
        "requests": _requests(result),
        "failures": failures,
    }


def render_markdown(doc: dict[str, Any]) -> str:
    """report.md: verdict, the rule matrix, then each failure with its steps and replay command."""
    verdict = "CONFORMING" if doc["conforming"] else "NOT CONFORMING"
    s = doc["summary"]
    out = [
        f"# kmemspec conformance: `{doc['impl']['spec']}` on `{doc['machine']['spec']}`: {verdict}",
        "",
        f"Profile `{doc['profile']['name']}`, seed {doc['seed']}, {doc['examples']} examples, {doc['steps']} steps, {doc['seconds']} s. "
        f"{s['pass']} pass, {s['fail']} fail, {s['not claimed']} not claimed, {s['not applicable']} not applicable, {s['not exercised']} not exercised. "
        f"Allocations judged: " + ", ".join(f"{n} {k}" for k, n in doc["expectations"].items()) + ".",
        "",
        f"Reproduce: `kmemspec check {doc['impl']['spec']} --machine {doc['machine']['spec']} --profile {doc['profile']['name']} --seed {doc['seed']}`",
        "",
        "| rule | level | status | checks | statement |",
        "|---|---|---|---:|---|",
    ]
    for r in doc["rules"]:
        out.append(f"| `{r['id']}` | {r['level']} | {r['status']} | {r['checks']} | {r['statement']} |")
    out += _render_requests(doc.get("requests", []))
    for f in doc["failures"]:
        skipped = " (skipped: the search went on past it; the shortest sequence seen, not shrunk)" if f.get("skipped") else ""
        out += ["", f"## {f['rule_id']}{skipped}", "", _md_escape(f["message"]), "", "```python", *f["steps"], "```", "",
                f"Replay: `{f['replay']}`; pasteable test: `{f['test_file']}`"]
    return "\n".join(out) + "\n"


def _render_requests(requests: list[dict[str, Any]]) -> list[str]:
    """The requests table, with the buckets asked for and never served named first."""
    if not requests:
        return []
    unserved = [r["bucket"] for r in requests if r["null"] and not r["served"] and not r["beyond_limit"]]
    unasked = [r["bucket"] for r in requests if not r["null"] and not r["served"]]
    out = ["", "## Requests by page order and kmalloc size class", ""]
    if unserved:
        out += [f"Asked for and never served: {', '.join(unserved)}.", ""]
    if unasked:
        out += [f"Never asked for on this run: {', '.join(unasked)}.", ""]
    out += ["| bucket | served | NULL |", "|---|---:|---:|"]
    out += [f"| {r['bucket']}{' (beyond the limit: must fail)' if r['beyond_limit'] else ''} | {r['served']} | {r['null']} |"
            for r in requests if r["served"] or r["null"]]
    return out


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(text: str) -> str:
    """Characters XML 1.0 cannot carry at all (implementations' output is untrusted) become \\xNN."""
    return _XML_INVALID.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def render_junit(doc: dict[str, Any]) -> str:
    """junit.xml: one test case per rule; failures carry the message and steps, unclaimed rules are skipped."""
    failures = {f["rule_id"]: f for f in doc["failures"]}
    n_fail = sum(1 for r in doc["rules"] if r["status"] == "fail")
    n_skip = sum(1 for r in doc["rules"] if r["status"] not in ("pass", "fail"))
    suite = f"kmemspec.{doc['impl']['label']}"
    lines = ['<?xml version="1.0" encoding="utf-8"?>',
             f'<testsuites><testsuite name={quoteattr(suite)} tests="{len(doc["rules"])}" failures="{n_fail}" '
             f'errors="0" skipped="{n_skip}" time="{doc["seconds"]}">']
    for r in doc["rules"]:
        classname = quoteattr(f"kmemspec.{r['subsystem']}.{r['level']}")
        head = f"<testcase classname={classname} name={quoteattr(r['id'])}"
        if r["status"] == "pass":
            lines.append(head + "/>")
        elif r["status"] == "fail":
            f = failures[r["id"]]
            body = escape(_xml_text(f["message"] + "\n\n" + "\n".join(f["steps"]) + "\n\n" + f["replay"]))
            lines.append(head + f"><failure message={quoteattr(_xml_text(f['message']))}>{body}</failure></testcase>")
        else:
            lines.append(head + f"><skipped message={quoteattr(r['status'])}/></testcase>")
    lines.append("</testsuite></testsuites>")
    return "\n".join(lines) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a report is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_reports(result: Any, out_dir: Path, *, expectation_results: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write report.json, report.md, report.html, junit.xml and one replay file + pasteable test per failure.

    ``expectation_results`` (a ``Comparison.to_json()``) goes into report.json
    and report.html when the run was compared with an expectations file.
    """
    doc = build_report(result, out_dir)
    if expectation_results is not None:
        doc["expectation_results"] = expectation_results
    lines = spec_import_lines(result.impl)
    for f, entry in zip(result.failures, doc["failures"]):
        _atomic_write(Path(entry["trace_file"]), dump_trace(f.steps, impl=result.impl, machine=result.machine_spec,
                                                           rule_id=f.rule_id, message=f.message,
                                                           machine_description=result.machine.to_dict()))
        _atomic_write(Path(entry["test_file"]), render_test(f.steps, lines, result.machine_spec, f.rule_id, f.message))
    _atomic_write(out_dir / "report.md", render_markdown(doc))
    _atomic_write(out_dir / "report.html", render_html(doc))
    _atomic_write(out_dir / "junit.xml", render_junit(doc))
    _atomic_write(out_dir / "report.json", json.dumps(doc, indent=1) + "\n")
    return doc
