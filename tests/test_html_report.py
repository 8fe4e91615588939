"""report.html: one self-contained page, every string from the document escaped, tags balanced."""

from __future__ import annotations

import copy
import json
from html.parser import HTMLParser
from typing import Any

import pytest

from conftest import IMPLS
from kmemspec.harness import load_impl
from kmemspec.harness.expectations import Expectations, compare, expectations_from_report
from kmemspec.harness.html_report import render_html
from kmemspec.harness.report import build_report
from kmemspec.properties import Profile, run_check
from kmemspec.refmodel import load_machine

SMALL = Profile("unit", 20, 20, "a short run for the HTML report tests")
PAYLOAD = '<script>alert(1)</script> "q" \'s\' & <img src=x onerror=alert(2)>'
VOID = {"meta", "br", "hr", "img", "input", "link", "col", "wbr", "area", "base", "source", "track", "embed", "param"}


@pytest.fixture(scope="module")
def crash_doc(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """report.json of a real run of an implementation that crashes (IUT-NO-CRASH fails)."""
    impl = load_impl(f"{IMPLS / 'broken.py'}:make_crash")
    result = run_check(impl, load_machine("tiny"), machine_spec="tiny", profile=SMALL, seed_value=1, progress=None)
    return json.loads(json.dumps(build_report(result, tmp_path_factory.mktemp("reports"))))


class _Checker(HTMLParser):
    """Records problems: an end tag that closes something other than the innermost open element, or one left open."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.tags: set[str] = set()
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> _Checker:
    p = _Checker()
    p.feed(page)
    p.close()
    assert not p.problems, p.problems[:5]
    assert not p.stack, f"left open: {p.stack}"
    return p


def test_a_failing_run_renders(crash_doc):
    assert not crash_doc["conforming"]
    page = render_html(crash_doc)
    p = parse(page)
    text = "".join(p.text)
    assert page.startswith("<!DOCTYPE html>")
    assert "NOT CONFORMING" in text
    assert f"kmemspec check {crash_doc['impl']['spec']} --machine tiny --profile unit --seed 1" in text
    for r in crash_doc["rules"]:
        assert r["id"] in text and r["statement"] in text and r["source"] in text
    (f,) = [f for f in crash_doc["failures"] if f["rule_id"] == "IUT-NO-CRASH"]
    assert f["message"] in text and f["replay"] in text and f["test_file"] in text
    assert all(step in text for step in f["steps"])
    assert 'id="fail-IUT-NO-CRASH"' in page and 'href="#fail-IUT-NO-CRASH"' in page
    assert '<span class="badge fail">fail</span>' in page
    assert "expectations" not in text.lower()


def test_a_conforming_doc_says_so(crash_doc):
    doc = copy.deepcopy(crash_doc)
    doc["conforming"], doc["failures"] = True, []
    text = "".join(parse(render_html(doc)).text)
    assert "CONFORMING" in text and "NOT CONFORMING" not in text and "No rule failed." in text


def test_the_page_is_self_contained(crash_doc):
    page = render_html(crash_doc)
    lowered = page.lower()
    for ref in ("http://", "https://", "src=", "<link", "@import", "url(", "<script", "<iframe", "<object"):
        assert ref not in lowered, ref
    assert "<style>" in page


def test_untrusted_text_is_escaped(crash_doc):
    doc = copy.deepcopy(crash_doc)
    f = doc["failures"][0]
    f["message"] = PAYLOAD
    f["steps"] = [*f["steps"], f"iut.alloc_pages(gfp={PAYLOAD})"]
    page = render_html(doc)
    p = parse(page)
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &quot;q&quot; &#x27;s&#x27; &amp; &lt;img src=x" in page
    assert p.tags.isdisjoint({"script", "img"})
    assert PAYLOAD in "".join(p.text)  # shown to the reader as written


def _poison(value: Any) -> Any:
    """Every string in a document with the payload appended (keys too, except the ones render_html looks up)."""
    if isinstance(value, str):
        return value + PAYLOAD
    if isinstance(value, list):
        return [_poison(v) for v in value]
    if isinstance(value, dict):
        return {k: _poison(v) for k, v in value.items()}
    return value


def test_every_string_of_the_document_is_escaped(crash_doc):
    doc = copy.deepcopy(crash_doc)
    doc["expectation_results"] = compare(doc, Expectations(rules={"BUDDY-ALIGN": "fail"}, reasons={"BUDDY-ALIGN": "x"}, source="f.toml")).to_json()
    doc = _poison(doc)
    doc["summary"] = {k + PAYLOAD: v for k, v in doc["summary"].items()}
    doc["expectations"] = {k + PAYLOAD: v for k, v in doc["expectations"].items()}
    doc["expectation_results"]["counts"] = {k + PAYLOAD: v for k, v in doc["expectation_results"]["counts"].items()}
    page = render_html(doc)
    p = parse(page)
    assert "<script>" not in page and "<img" not in page and p.tags.isdisjoint({"script", "img"})
    assert '"q"' not in page  # quotes escaped, so no attribute can be closed early


def test_expectation_results_are_shown(crash_doc):
    e = Expectations(impl=crash_doc["impl"]["spec"], rules={"BUDDY-ALIGN": "fail", "CTX-MIGHT-SLEEP": "not claimed"},
                     reasons={"BUDDY-ALIGN": "known <bug> & co"}, source="ci/broken.toml")
    doc = dict(crash_doc, expectation_results=compare(crash_doc, e).to_json())
    page = render_html(doc)
    p = parse(page)
    text = "".join(p.text)
    assert "expectations NOT met" in text and "ci/broken.toml" in text
    assert "known <bug> & co" in text and "known &lt;bug&gt; &amp; co" in page
    row = page.split('<tr id="rule-IUT-NO-CRASH">')[1].split("</tr>")[0]
    assert "<th>expected</th><th>outcome</th>" in page
    assert "<td>pass</td>" in row and '<span class="badge fail">unexpected fail</span>' in row
    row = page.split('<tr id="rule-BUDDY-ALIGN">')[1].split("</tr>")[0]
    got = next(r["status"] for r in crash_doc["rules"] if r["id"] == "BUDDY-ALIGN")  # how far a crashing run gets varies
    assert "<td>fail</td>" in row and ("unexpected pass" in row if got == "pass" else got in row)
    row = page.split('<tr id="rule-CTX-MIGHT-SLEEP">')[1].split("</tr>")[0]
    got = next(r["status"] for r in crash_doc["rules"] if r["id"] == "CTX-MIGHT-SLEEP")
    assert "<td>not claimed</td>" in row and ("unexpected pass" in row if got == "pass" else got in row)


def test_met_expectations(crash_doc):
    doc = dict(crash_doc, expectation_results=compare(crash_doc, expectations_from_report(crash_doc)).to_json())
    text = "".join(parse(render_html(doc)).text)
    assert "expectations met" in text and "Every rule went as expected." in text


class _NeverOrder3:
    """reference without the liveness claim, refusing order-3 blocks (but a __GFP_NOFAIL one, which binds everyone)."""

    def __new__(cls, machine: Any, env: Any) -> Any:
        from kmemspec.harness.impls.reference import ReferenceAllocator
        from kmemspec.refmodel.gfp import GFP

        class NoOrder3(ReferenceAllocator):
            claims = ReferenceAllocator.claims - {"BUDDY-NO-SPURIOUS-FAIL", "SLAB-NO-SPURIOUS-FAIL"}

            def alloc_pages(self, gfp: int, order: int) -> int | None:
                return None if order == 3 and not gfp & GFP.NOFAIL else super().alloc_pages(gfp, order)

            def get_free_pages(self, gfp: int, order: int) -> int:
                return 0 if order == 3 and not gfp & GFP.NOFAIL else super().get_free_pages(gfp, order)

        return NoOrder3(machine, env)


def test_the_report_counts_requests_per_bucket_and_names_one_never_served(tmp_path):
    from kmemspec.harness.loader import ImplSpec
    from kmemspec.harness.report import render_markdown
    result = run_check(ImplSpec("never-order-3", "never-order-3", _NeverOrder3), load_machine("tiny"), machine_spec="tiny",
                       profile=SMALL, seed_value=1, progress=None)
    assert result.conforming, result.failures
    doc = build_report(result, tmp_path)
    rows = {r["bucket"]: r for r in doc["requests"]}
    assert rows["order-3"]["null"] > rows["order-3"]["served"] and rows["order-0"]["served"] > 0
    assert "kmalloc-8k" in rows and "kmalloc large order-2" in rows
    doc["requests"] = [{**r, "served": 0} if r["bucket"] == "order-3" else r for r in doc["requests"]]
    line = next(x for x in render_markdown(doc).splitlines() if x.startswith("Asked for and never served: "))
    assert "order-3" in line.removeprefix("Asked for and never served: ").rstrip(".").split(", ")
