"""What every rule set shares: the target, the lockstep pair, the bundles, the end-of-sequence check, and checked rule IDs.

A rule set is a ``RuleSet`` subclass holding the ``@rule`` methods of one
subsystem (``machines/pages.py``, ``kmalloc.py``, ...); the suite for an
implementation is the composition of the rule sets its capabilities select
(``properties/_subsystems.py``). The state lives here, once: ``self.iut``, a
``Lockstep`` around a fresh implementation per example (so shrinking and
replay are exact), and ``self.target``, what the run checks.

Rule IDs named in rule sets (claims in preconditions and rule bodies) go
through ``rule_id``/``claims``, which check them against the catalog when the
module is imported: a typo fails at import, not as a rule that is never drawn.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine

from ...harness.lockstep import Lockstep
from ...harness.protocol import Factory
from ...refmodel.context import in_atomic
from ...refmodel.errors import InvalidDefinition
from ...refmodel.gfp import GFP_ATOMIC
from ...refmodel.kmalloc import ZERO_SIZE_PTR
from ...refmodel.machine import Machine
from ...refmodel.rules import CLAIMABLE, RULES_BY_ID
from ..strategies.gfp import gfp_masks


@dataclass(frozen=True)
class Block:
    """A live block as the state machine holds it: first PFN (or logical address) and order."""

    start: int
    order: int


@dataclass
class Target:
    """What a run checks: the implementation's factory and label, the machine, what it declared."""

    factory: Factory
    label: str
    machine: Machine
    capabilities: frozenset[str]
    claims: frozenset[str]
    on_example: Callable[[Lockstep], None] = lambda iut: None
    on_teardown: Callable[[Lockstep], None] = lambda iut: None


def rule_id(rule_id: str) -> str:
    """``rule_id`` itself, once it is known to be a catalog rule; InvalidDefinition (at import) if it is not."""
    if rule_id not in RULES_BY_ID:
        near = difflib.get_close_matches(rule_id, RULES_BY_ID, n=1)
        hint = f"did you mean {near[0]!r}? " if near else ""
        raise InvalidDefinition(f"rule ID {rule_id!r} used by the state machine is not in the catalog; {hint}"
                                "`kmemspec rules` lists the IDs")
    return rule_id


def claims(*rule_ids: str) -> Callable[[Any], bool]:
    """A precondition: the implementation claims one of ``rule_ids`` (each a claimable catalog rule, checked now)."""
    for r in rule_ids:
        if rule_id(r) not in CLAIMABLE:
            raise InvalidDefinition(f"rule {r!r} is not claimable, so a rule guarded by its claim would never be drawn; "
                                    "guard on a claimable rule (refmodel.rules.CLAIMABLE: the detection and policy rules, and a few more)")
    wanted = frozenset(rule_ids)
    return lambda self: not wanted.isdisjoint(self.target.claims)


def not_in_atomic(self: Any) -> bool:
    """A precondition: the current context may sleep (process context)."""
    return not in_atomic(self.iut.env.context)


_MIGHT_SLEEP = rule_id("CTX-MIGHT-SLEEP")


class RuleSet(RuleBasedStateMachine):
    """The base of every rule set: a fresh implementation in lockstep with the oracle, per example.

    Compose with ``kmemspec.properties.state_machine_for(target)``; ``for_target``
    binds one class (rule set or composition) to a target as it is.
    """

    target: ClassVar[Target]
    blocks = Bundle("blocks")
    addrs = Bundle("addrs")

    def __init__(self) -> None:
        super().__init__()
        self.iut = Lockstep(self.target.factory, self.target.machine, label=self.target.label)
        self.max_order = self.target.machine.max_page_order
        self.target.on_example(self.iut)

    @classmethod
    def for_target(cls, target: Target) -> type[RuleSet]:
        return type(f"{cls.__name__}_{target.label}", (cls,), {"target": target})

    # -- drawing from the model's state, for every subsystem ---------------------------------

    def _can_block(self) -> bool:
        """Blocking GFP masks may be drawn: in process context, or anywhere when might_sleep's splat is claimed."""
        return _MIGHT_SLEEP in self.target.claims or not in_atomic(self.iut.env.context)

    def _gfp(self, data: st.DataObject) -> int:
        blocking = self._can_block() and data.draw(st.booleans(), label="blocking")
        return data.draw(gfp_masks(blocking=blocking), label="gfp")

    def _object(self, data: st.DataObject, *, kmalloc_only: bool = False, cache: int | None = None) -> int:
        """A live slab object (kmalloc or kmem_cache_alloc), drawn from the model's objects; when there is none, one
        made in the same step with GFP_ATOMIC (valid in any context), so the rule is not lost to a failed assume."""
        objs = self.iut.slab.objects
        live = sorted(a for a, o in objs.items() if (not kmalloc_only or o.cache is None) and (cache is None or o.cache == cache))
        if not live and "kmalloc" in self.target.capabilities:
            made = (self.iut.kmem_cache_alloc(cache, int(GFP_ATOMIC)) if cache is not None
                    else self.iut.kmalloc(data.draw(st.integers(1, 512), label="size"), int(GFP_ATOMIC)))
            live = [made] if made is not None and made > ZERO_SIZE_PTR else []
        assume(live)
        return data.draw(st.sampled_from(live), label="object")

    # -- the end of a sequence --------------------------------------------------------------

    def teardown(self) -> None:
        try:
            if not self.iut.failed:  # after a failure the two are out of step: report the first one
                self.iut.check_at_end()
        finally:
            self.iut.close()
            self.target.on_teardown(self.iut)
