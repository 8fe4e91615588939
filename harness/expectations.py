"""Expectations files: which rules an implementation is known not to pass, for gating CI on changes.

An expectations file (TOML, schema ``kmemspec-expectations/1``, docs/expectations.md)
lists the rules whose status is not "pass"; a rule left out is expected to pass.
``compare`` sets a run's report.json document against it: a new failure or a
lost claim gates (the CLI exits 1), an unexpected pass says the file can be
tightened, anything else is reported and does not gate. Files are checked when
loaded: every mistake is one ``InvalidExpectations`` line naming the file, the
key and the fix.
"""

from __future__ import annotations

import difflib
import enum
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Mapping

from ..refmodel.errors import KmemspecError
from ..refmodel.rules import CLAIMABLE, RULES, RULES_BY_ID

__all__ = [
    "EXPECTATIONS_SCHEMA",
    "EXPECTED_STATUSES",
    "Comparison",
    "Expectations",
    "InvalidExpectations",
    "RuleVerdict",
    "Verdict",
    "compare",
    "expectations_from_report",
    "load_expectations",
    "render_expectations",
]

EXPECTATIONS_SCHEMA: Final = "kmemspec-expectations/1"
#: The statuses a file may expect (report.json's rule statuses).
EXPECTED_STATUSES: Final[tuple[str, ...]] = ("fail", "not claimed", "not applicable", "not exercised", "pass")
_STATUS_LIST: Final = ", ".join(f'"{s}"' for s in EXPECTED_STATUSES)
_TOP_KEYS: Final = ("schema", "impl", "machine", "rules")
_RULE_KEYS: Final = ("status", "reason")
_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")


class InvalidExpectations(KmemspecError, ValueError):
    """An expectations file that cannot be read or breaks the format (the message names the file and key)."""


@dataclass(frozen=True)
class Expectations:
    """What a run of ``impl`` is expected to give: rule ID -> status for the rules listed; the rest pass.

    ``reasons`` holds the optional ``reason`` of a rule; ``machine`` the machine the file
    was made on; ``origin`` how it was made and ``source`` the file it was read from
    (both for messages only).
    """

    impl: str = ""
    rules: Mapping[str, str] = field(default_factory=dict)
    reasons: Mapping[str, str] = field(default_factory=dict)
    machine: str = ""
    origin: str = field(default="", compare=False)
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rules", MappingProxyType(dict(self.rules)))
        object.__setattr__(self, "reasons", MappingProxyType(dict(self.reasons)))

    def expected(self, rule_id: str) -> str:
        """The expected status of ``rule_id``: as listed, else "pass"."""
        return self.rules.get(rule_id, "pass")


class Verdict(enum.Enum):
    """How one rule's status compares with its expectation."""

    EXPECTED = "expected"
    NEW_FAILURE = "unexpected fail"  # got "fail", the file does not expect it
    LOST_CLAIM = "lost claim"  # got "not claimed" where the rule was claimed before
    UNEXPECTED_PASS = "unexpected pass"  # got "pass": the file can be tightened
    MISMATCH = "mismatch"  # anything else that differs; informational

    @property
    def gating(self) -> bool:
        """A verdict that fails the CI job (exit 1)."""
        return self in (Verdict.NEW_FAILURE, Verdict.LOST_CLAIM)


@dataclass(frozen=True)
class RuleVerdict:
    """One rule: the expected status, the status got ("absent" if the report has no such rule), the verdict."""

    rule_id: str
    expected: str
    got: str
    verdict: Verdict
    listed: bool
    reason: str = ""


@dataclass(frozen=True)
class Comparison:
    """A report compared with expectations: one ``RuleVerdict`` per rule, in report order."""

    verdicts: tuple[RuleVerdict, ...]
    file: str = ""
    impl: str = ""
    expected_impl: str = ""
    machine: str = ""
    expected_machine: str = ""

    def _ids(self, verdict: Verdict) -> tuple[str, ...]:
        return tuple(v.rule_id for v in self.verdicts if v.verdict is verdict)

    @property
    def new_failures(self) -> tuple[str, ...]:
        """Rules that fail where the file does not expect "fail" (gating)."""
        return self._ids(Verdict.NEW_FAILURE)

    @property
    def lost_claims(self) -> tuple[str, ...]:
        """Rules now "not claimed" that the implementation claimed before (gating)."""
        return self._ids(Verdict.LOST_CLAIM)

    @property
    def expected_failures(self) -> tuple[str, ...]:
        """Rules that fail, as the file expects."""
        return tuple(v.rule_id for v in self.verdicts if v.verdict is Verdict.EXPECTED and v.got == "fail")

    @property
    def unexpected_passes(self) -> tuple[str, ...]:
        """Rules that pass although the file lists them: remove them to tighten the file."""
        return self._ids(Verdict.UNEXPECTED_PASS)

    @property
    def mismatches(self) -> tuple[str, ...]:
        """Other differences (e.g. expected "fail", got "not exercised"); informational."""
        return self._ids(Verdict.MISMATCH)

    @property
    def gating_ok(self) -> bool:
        """True iff there is no new failure and no lost claim."""
        return not any(v.verdict.gating for v in self.verdicts)

    def to_json(self) -> dict[str, Any]:
        """The ``expectation_results`` section of report.json."""
        return {
            "schema": EXPECTATIONS_SCHEMA,
            "file": self.file,
            "gating_ok": self.gating_ok,
            "impl": {"expected": self.expected_impl, "got": self.impl},
            "machine": {"expected": self.expected_machine, "got": self.machine},
            "counts": {v.value: sum(1 for r in self.verdicts if r.verdict is v) for v in Verdict},
            "new_failures": list(self.new_failures),
            "lost_claims": list(self.lost_claims),
            "expected_failures": list(self.expected_failures),
            "unexpected_passes": list(self.unexpected_passes),
            "mismatches": list(self.mismatches),
            "rules": [
                {"id": v.rule_id, "expected": v.expected, "got": v.got, "outcome": v.verdict.value,
                 "gating": v.verdict.gating, "listed": v.listed, "reason": v.reason}
                for v in self.verdicts
            ],
        }

    def render_text(self) -> str:
        """Lines for the terminal: a summary line, then one line per rule that did not go as expected."""
        f = self.file or "the expectations file"
        n_other = len(self.mismatches)
        head = (f"expectations {self.file}: " if self.file else "expectations: ") + ("met" if self.gating_ok else "NOT met") + ": " + ", ".join([
            _count(len(self.expected_failures), "expected failure"), _count(len(self.new_failures), "new failure"),
            _count(len(self.lost_claims), "lost claim"), _count(len(self.unexpected_passes), "unexpected pass", "unexpected passes"),
        ] + ([_count(n_other, "other mismatch", "other mismatches")] if n_other else []))
        lines = [head]
        for v in sorted(self.verdicts, key=lambda v: (not v.verdict.gating, v.verdict is Verdict.MISMATCH)):
            exp = f"expected {v.expected}" + ("" if v.listed else " (not listed)")
            if v.verdict is Verdict.NEW_FAILURE:
                lines.append(f"  new failure {v.rule_id}: {exp}, got fail; fix it, or accept it with {v.rule_id} = \"fail\" in {f}")
            elif v.verdict is Verdict.LOST_CLAIM:
                lines.append(f"  lost claim {v.rule_id}: {exp}, got not claimed: the implementation no longer claims it; "
                             f"claim it again, or list {v.rule_id} = \"not claimed\" in {f} if dropping it is intended")
            elif v.verdict is Verdict.UNEXPECTED_PASS:
                lines.append(f"  unexpected pass {v.rule_id}: {exp}, got pass; remove it from {f} to tighten")
            elif v.verdict is Verdict.MISMATCH:
                why = {"not exercised": "this run did not reach it", "absent": "the report has no such rule"}.get(v.got, f"update {f} if this lasts")
                lines.append(f"  mismatch {v.rule_id}: {exp}, got {v.got} (not gating: {why})")
        for what, want, got in (("implementation", self.expected_impl, self.impl), ("machine", self.expected_machine, self.machine)):
            if want and got and want != got:
                lines.append(f"  note: {f} was written for {what} {want!r}; this run checked {got!r}")
        return "\n".join(lines)


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


# -- loading ------------------------------------------------------------------


def load_expectations(path: str | os.PathLike[str]) -> Expectations:
    """Read and check an expectations file. Raises InvalidExpectations (one line: file, key, fix)."""
    p = Path(path)
    where = f"expectations file {p}"
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise InvalidExpectations(f"{where}: no such file; write one from a run with "
                                  f"`kmemspec check IMPL --write-expectations {p}`") from None
    except IsADirectoryError:
        raise InvalidExpectations(f"{where}: is a directory; pass the .toml file itself") from None
    except OSError as e:
        raise InvalidExpectations(f"{where}: cannot read it: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidExpectations(f"{where}: not UTF-8 text (byte {raw[e.start]:#04x} at offset {e.start}); save it as UTF-8") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InvalidExpectations(f"{where}: not valid TOML: {_toml_error(e, text)}") from None
    return _parse(data, where, str(p))


def _toml_error(e: tomllib.TOMLDecodeError, text: str) -> str:
    msg = str(e)
    m = re.search(r"at line (\d+)", msg)
    if m:
        line = text.splitlines()[int(m.group(1)) - 1].strip() if int(m.group(1)) <= len(text.splitlines()) else ""
        if line:
            msg += f": `{line[:80]}`"
    if msg.startswith("Invalid value"):
        msg += '; statuses are quoted strings, e.g. BUDDY-ALIGN = "fail"'
    return msg


def _parse(data: dict[str, Any], where: str, source: str) -> Expectations:
    for key in data:
        if key not in _TOP_KEYS:
            raise InvalidExpectations(f"{where}: unknown key {key!r}{_did_you_mean(key, _TOP_KEYS)}; "
                                      f"the keys are {', '.join(_TOP_KEYS)} (rules as a [rules] table)")
    schema = data.get("schema")
    if schema is None:
        raise InvalidExpectations(f'{where}: no schema key; add schema = "{EXPECTATIONS_SCHEMA}" at the top')
    if schema != EXPECTATIONS_SCHEMA:
        raise InvalidExpectations(f'{where}: schema = {_show(schema)} is not one this kmemspec reads; '
                                  f'use schema = "{EXPECTATIONS_SCHEMA}", or regenerate the file with --write-expectations')
    for key in ("impl", "machine"):
        if not isinstance(data.get(key, ""), str):
            raise InvalidExpectations(f"{where}: {key} = {_show(data[key])} must be a string, e.g. {key} = \"{'fast' if key == 'impl' else 'tiny'}\"")
    table = data.get("rules", {})
    if not isinstance(table, dict):
        raise InvalidExpectations(f'{where}: rules = {_show(table)} must be a [rules] table of RULE-ID = "status" lines')
    rules: dict[str, str] = {}
    reasons: dict[str, str] = {}
    for rule_id, value in table.items():
        if rule_id not in RULES_BY_ID:
            raise InvalidExpectations(f"{where}: [rules] {rule_id} is not a rule ID{_did_you_mean(rule_id, RULES_BY_ID)}; "
                                      f"`kmemspec rules` lists them")
        status, reason = _rule_value(value, f"{where}: [rules] {rule_id}")
        _check_status(rule_id, status, f"{where}: [rules] {rule_id}")
        rules[rule_id] = status
        if reason:
            reasons[rule_id] = reason
    return Expectations(impl=data.get("impl", ""), rules=rules, reasons=reasons, machine=data.get("machine", ""), source=source)


def _rule_value(value: Any, where: str) -> tuple[str, str]:
    """A rule's value: "status" or { status = "...", reason = "..." }."""
    if isinstance(value, str):
        return value, ""
    if not isinstance(value, dict):
        raise InvalidExpectations(f'{where} = {_show(value)}: expected a status string such as "fail", '
                                  f'or a table {{ status = "fail", reason = "..." }}')
    for key in value:
        if key not in _RULE_KEYS:
            raise InvalidExpectations(f"{where}: unknown key {key!r}{_did_you_mean(key, _RULE_KEYS)} in its table; "
                                      f"the keys are status and reason")
    if "status" not in value:
        raise InvalidExpectations(f'{where}: the table has no status; write {{ status = "fail", reason = "..." }}')
    status, reason = value["status"], value.get("reason", "")
    if not isinstance(status, str):
        raise InvalidExpectations(f'{where}: status = {_show(status)} must be a string such as "fail"')
    if not isinstance(reason, str):
        raise InvalidExpectations(f'{where}: reason = {_show(reason)} must be a string')
    return status, reason


def _check_status(rule_id: str, status: str, where: str) -> None:
    if status not in EXPECTED_STATUSES:
        hint = _did_you_mean(status.replace("-", " ").replace("_", " ").lower(), EXPECTED_STATUSES, quote=True)
        raise InvalidExpectations(f"{where} = {_show(status)} is not an expected status{hint}; "
                                  f"use one of {_STATUS_LIST}")
    rule = RULES_BY_ID[rule_id]
    if status == "not claimed" and rule_id not in CLAIMABLE:
        raise InvalidExpectations(f'{where} = "not claimed", but {rule_id} is a {rule.level.value} rule that binds every '
                                  f'implementation, so it is never "not claimed"; use "fail" if it fails')


def _did_you_mean(word: str, choices: Any, *, quote: bool = False) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close:
        return ""
    return f' (did you mean "{close[0]}"?)' if quote else f" (did you mean {close[0]}?)"


def _show(value: Any) -> str:
    """A TOML-ish rendering of a value for a message, kept to one short line."""
    text = _toml_str(value) if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- writing ------------------------------------------------------------------


def expectations_from_report(doc: dict[str, Any]) -> Expectations:
    """Expectations that a run's report.json document meets: every rule whose status is not "pass".

    "not exercised" is left out: whether a generated sequence reaches a rule
    varies with the seed, and an unlisted rule may be "not exercised" anyway.
    """
    rules = {r["id"]: r["status"] for r in doc["rules"] if r["status"] not in ("pass", "not exercised")}
    origin = (f"kmemspec check {doc['impl']['spec']} --machine {doc['machine']['spec']} "
              f"--profile {doc['profile']['name']} --seed {doc['seed']}")
    return Expectations(impl=doc["impl"]["spec"], rules=rules, machine=doc["machine"]["spec"], origin=origin)


def render_expectations(e: Expectations) -> str:
    """The TOML text of ``e``: a header comment, schema, impl, machine, then [rules] in catalog order."""
    out = ['# kmemspec expectations: the rules whose status is not "pass" for this implementation.']
    if e.origin:
        out.append(f"# Made from: {_one_line(e.origin)}")
    out += [
        "# A rule not listed is expected to pass. `kmemspec check IMPL --expectations FILE` exits 1 on a",
        "# new failure or a lost claim; docs/expectations.md has the format and the rules.",
        f"schema = {_toml_str(EXPECTATIONS_SCHEMA)}",
    ]
    if e.impl:
        out.append(f"impl = {_toml_str(e.impl)}")
    if e.machine:
        out.append(f"machine = {_toml_str(e.machine)}")
    out += ["", "[rules]"]
    order = {r.id: i for i, r in enumerate(RULES)}
    ids = sorted(e.rules, key=lambda rid: (order.get(rid, len(order)), rid))
    if not ids:
        out.append("# none: every rule is expected to pass")
    entries = []
    for rid in ids:
        key = rid if _BARE_KEY.fullmatch(rid) else _toml_str(rid)
        status = _toml_str(e.rules[rid])
        value = f"{{ status = {status}, reason = {_toml_str(e.reasons[rid])} }}" if e.reasons.get(rid) else status
        rule = RULES_BY_ID.get(rid)
        entries.append((f"{key} = {value}", f"# {rule.level.value}" if rule else ""))
    width = max((len(line) for line, _ in entries), default=0)
    out += [f"{line:<{width}}  {comment}".rstrip() for line, comment in entries]
    return "\n".join(out) + "\n"


def _toml_str(text: str) -> str:
    """A TOML basic string."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\n\t\r":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _one_line(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text)


# -- comparing ----------------------------------------------------------------


def compare(doc: dict[str, Any], e: Expectations) -> Comparison:
    """Each rule of a report.json document against ``e`` (docs/expectations.md has the table)."""
    verdicts = []
    seen = set()
    for r in doc["rules"]:
        rid, got = r["id"], r["status"]
        seen.add(rid)
        expected = e.expected(rid)
        verdicts.append(RuleVerdict(rid, expected, got, _verdict(expected, got), rid in e.rules, e.reasons.get(rid, "")))
    for rid, expected in e.rules.items():
        if rid not in seen:
            verdicts.append(RuleVerdict(rid, expected, "absent", Verdict.MISMATCH, True, e.reasons.get(rid, "")))
    return Comparison(tuple(verdicts), file=e.source, impl=doc["impl"]["spec"], expected_impl=e.impl,
                      machine=doc["machine"]["spec"], expected_machine=e.machine)


def _verdict(expected: str, got: str) -> Verdict:
    if got == expected:
        return Verdict.EXPECTED
    if got == "fail":
        return Verdict.NEW_FAILURE
    if got == "pass":
        return Verdict.UNEXPECTED_PASS
    if got == "not claimed":
        # a failing rule whose claim is dropped has not got worse; anything else was claimed and now is not
        return Verdict.MISMATCH if expected == "fail" else Verdict.LOST_CLAIM
    if expected == "pass" and got in ("not applicable", "not exercised"):
        return Verdict.EXPECTED
    return Verdict.MISMATCH
