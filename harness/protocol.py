"""The implementation protocol: what an allocator under test provides, and the env it is given.

An implementation is built by a factory ``make(machine, env)``. The object
declares ``capabilities`` (which method groups it has) and ``claims`` (the
rule IDs of the detections and policies it promises). Only ints cross the
boundary (PFNs, addresses, orders, GFP bits, context codes) and bytes for
memory contents, so C (ctypes) and out-of-process implementations fit behind
the same suite. ``validate_iut`` checks an object against its declaration.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, runtime_checkable

from ..refmodel.context import Context, in_atomic
from ..refmodel.errors import InvalidDefinition, SleepInAtomic, Violation
from ..refmodel.gfp import gfpflags_allow_blocking
from ..refmodel.machine import Machine
from ..refmodel.rules import CLAIMABLE
from .ops import CAPABILITY_METHODS

@runtime_checkable
class PageAllocator(Protocol):
    """The page capability. ``alloc_pages`` returns the first PFN or None; misuse raises a Violation."""

    capabilities: frozenset[str]
    claims: frozenset[str]

    def alloc_pages(self, gfp: int, order: int) -> int | None: ...
    def free_pages(self, pfn: int, order: int) -> None: ...


Factory = Callable[[Machine, "Env"], Any]


class TransportFailure(Exception):
    """An adapter's verdict on the channel to an implementation: its process died, hung, or spoke garbage.

    ``rule_id`` is the protocol rule broken (IUT-PROCESS-ALIVE, IUT-TIMEOUT,
    IUT-WIRE-FORMAT, ...); the lockstep checker turns it into that rule's
    failure with the steps so far.
    """

    def __init__(self, rule_id: str, message: str) -> None:
        super().__init__(f"{rule_id}: {message}")
        self.rule_id = rule_id
        self.message = message


@dataclass
class Env:
    """The kernel around the allocator: the current context, might_sleep(), sleep(), report().

    The suite sets ``context`` and the GFP mask of the call in progress; it
    reads back what the implementation did. An implementation calls
    ``might_sleep()`` where the kernel does (might_alloc: allocations whose
    flags allow blocking), ``sleep()`` where it would block (reclaim,
    waiting), and ``report(violation)`` for a misuse the kernel reports and
    then carries on from (might_sleep's splat).
    """

    context: Context = Context.PROCESS
    _call_gfp: int | None = None
    _in_call: bool = False
    reports: list[Violation] = field(default_factory=list)
    sleeps: list[str] = field(default_factory=list)

    def might_sleep(self) -> None:
        """kernel/sched/core.c __might_sleep: in atomic context this is a SleepInAtomic report."""
        if in_atomic(self.context):
            self.reports.append(SleepInAtomic(f"sleeping function called from invalid context (preempt_count {self.context.preempt_count:#x})"))

    def sleep(self) -> None:
        """The implementation blocks here. Allowed only inside a call whose GFP flags allow blocking."""
        if not self._in_call:
            return
        # A blocking request made in atomic context is the caller's bug (reported by
        # might_sleep); the kernel then goes on into reclaim and sleeps, so may the allocator.
        if self._call_gfp is None or not gfpflags_allow_blocking(self._call_gfp):
            self.sleeps.append("non-blocking call")

    def report(self, violation: Violation) -> None:
        """A non-fatal report of a caller's misuse (the kernel's WARN-and-continue)."""
        if not isinstance(violation, Violation):
            raise TypeError(f"env.report() takes a kmemspec Violation, got {type(violation).__name__}")
        self.reports.append(violation)

    # -- the suite's side ----------------------------------------------------

    def begin(self, gfp: int | None) -> None:
        self._call_gfp, self._in_call = gfp, True
        self.reports.clear()
        self.sleeps.clear()

    def end(self) -> None:
        self._in_call = False


def validate_iut(iut: Any, label: str) -> tuple[frozenset[str], frozenset[str]]:
    """Check an implementation object against its declaration; return (capabilities, claims).

    Raises InvalidDefinition naming what is missing and how to fix it.
    """
    caps = getattr(iut, "capabilities", None)
    if caps is None:
        raise InvalidDefinition(f"{label}: the object has no `capabilities`; declare e.g. capabilities = frozenset({{'pages'}})")
    try:
        caps = frozenset(caps)
    except TypeError:
        raise InvalidDefinition(f"{label}: `capabilities` must be a set of strings, got {caps!r}") from None
    unknown = caps - CAPABILITY_METHODS.keys()
    if unknown:
        raise InvalidDefinition(f"{label}: unknown capabilities {sorted(unknown)}; known: {sorted(CAPABILITY_METHODS)}")
    if "pages" not in caps:
        raise InvalidDefinition(f"{label}: capabilities {sorted(caps)} lack 'pages', which every implementation must have today")
    for cap in sorted(caps):
        for method in CAPABILITY_METHODS[cap]:
            if not callable(getattr(iut, method, None)):
                raise InvalidDefinition(f"{label}: declares capability {cap!r} but has no method {method}(); add it or drop {cap!r} from capabilities")
    claims = getattr(iut, "claims", frozenset())
    try:
        claims = frozenset(claims)
    except TypeError:
        raise InvalidDefinition(f"{label}: `claims` must be a set of rule IDs, got {claims!r}") from None
    bad = sorted(claims - CLAIMABLE)
    if bad:
        raise InvalidDefinition(f"{label}: claims {bad} are not claimable rule IDs; `kmemspec rules` lists the detection and policy rules")
    return caps, claims
