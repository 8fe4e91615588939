"""The implementation protocol's own rules: an implementation speaks the protocol.

Not kernel rules: what any implementation under test owes the suite, in
process (it raises only the Violation types of ``errors``, returns what the
protocol says, reports only misuse) and in a child process (it stays alive,
answers in time, writes well-formed lines). docs/protocol.md describes the
protocol; ``kmemspec.harness`` checks these rules.
"""

from __future__ import annotations

from ._subsystem import Subsystem
from .rules import Level, Rule

RULES: tuple[Rule, ...] = (
    Rule("IUT-NO-CRASH", "protocol", Level.PROTOCOL, "an implementation raises nothing but the Violation types of refmodel.errors",
       "DESIGN.md \"The implementation protocol\""),
    Rule("IUT-RETURN-TYPE", "protocol", Level.PROTOCOL, "an implementation returns what the protocol says: an int or None from allocations, None from frees",
       "DESIGN.md \"The implementation protocol\""),
    Rule("IUT-NO-FALSE-REPORT", "protocol", Level.PROTOCOL, "an implementation reports a violation only for a misuse, and then exactly the kind the kernel reports",
       "DESIGN.md \"Misuse is part of the suite\""),
    Rule("IUT-PROCESS-ALIVE", "protocol", Level.PROTOCOL, "an implementation process neither exits nor is killed by a signal (SIGSEGV, SIGABRT, ...) while the suite runs",
       "docs/protocol.md \"What the suite does with a misbehaving process\""),
    Rule("IUT-TIMEOUT", "protocol", Level.PROTOCOL, "an implementation process answers every request within the per-operation timeout (--timeout)",
       "docs/protocol.md \"What the suite does with a misbehaving process\""),
    Rule("IUT-WIRE-FORMAT", "protocol", Level.PROTOCOL, "an implementation process answers each request with exactly one line of JSON of the protocol's shape (at most 16 MiB), naming only known violations",
       "docs/protocol.md \"Any language, out of process\"; docs/protocol.schema.json"),
)

SUBSYSTEM = Subsystem("protocol", "the implementation protocol (DESIGN.md, docs/protocol.md)", rules=RULES)
