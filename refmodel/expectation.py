"""What a call may do: the oracle's answer, shared by every subsystem's ``expect_*``.

An ``Expectation`` says whether the call must succeed, may fail or must fail,
by which rule, and which misuse (if any) the call is, with the rule that
makes reporting it a claimable detection. The lockstep checker judges the
implementation's behaviour against it (DESIGN.md, "what is allowed").

Neighbours: the violations a misuse is reported as are ``errors``'; each
mechanism's module (``page_alloc``, ``slab``, ``kmalloc``, ``slab_debug``)
builds these.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable

from .errors import Violation


class Outcome(enum.Enum):
    """What a conforming implementation may do with a call (DESIGN.md, "what is allowed")."""

    MUST_SUCCEED = "must succeed"
    MAY_FAIL = "may fail"
    MUST_FAIL = "must fail"


@dataclass(frozen=True)
class Expectation:
    """The oracle's answer for one call.

    ``outcome`` is what the call itself may do. ``report`` is the misuse the
    call is, if any, with the rule that makes reporting it a (claimable)
    detection. ``fatal`` reports are BUG-like: the kernel does not go on, so
    an implementation reports and refuses. Non-fatal ones (might_sleep's
    splat) report and carry on with ``outcome``. ``hint``, where given, says
    what the model holds that the call should have had; it runs only when
    the call is judged a failure, so its cost is never paid on the way.
    """

    outcome: Outcome
    rule_id: str
    reason: str
    report: type[Violation] | None = None
    report_rule: str | None = None
    fatal: bool = False
    misuse: str = ""  # what the misuse is, in kernel terms; ``reason`` explains ``outcome``
    also_report: tuple[type[Violation], ...] = ()  # other kinds the kernel may report for this call, any one enough
    beside: tuple[tuple[type[Violation], str], ...] = ()  # (kind, rule) it reports as well as ``report``, required where the rule is claimed
    hint: Callable[[], str] | None = field(default=None, compare=False)  # a diagnosis, built only when the call fails the rule (a free block the model holds)
    noop: bool = False  # the call changes nothing (a free of NULL): a printed counterexample may drop it

    @property
    def is_misuse(self) -> bool:
        return self.report is not None

    @property
    def allowed_reports(self) -> tuple[type[Violation], ...]:
        """Every kind of report the call may make: ``report``, its alternatives, and those made beside it."""
        return (*((self.report,) if self.report is not None else ()), *self.also_report, *(kind for kind, _ in self.beside))
