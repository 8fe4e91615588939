"""Which rules an implementation is checked with: each rule set registered with the capabilities it needs, and the composition.

Every subsystem's module registers its rule sets once, at import::

    register_rule_set("kmalloc", KmallocRules)
    register_rule_set({"kmalloc", "slab_info"}, SlabPageFreeRules)   # needs both

``state_machine_for(target)`` composes the rule sets whose capabilities the
implementation declared, in registration order, into one state machine, so a
rule the implementation cannot use is never drawn (Hypothesis draws a rule
first and only then checks its preconditions). Rules guarded by a claim keep
that precondition: claims choose misuse, not methods. A new subsystem (the
bundled ones in ``machines/``, or a third party's module) adds its rule sets
here by calling ``register_rule_set``; this file does not change.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Final, Iterable

from ..harness.protocol import CAPABILITY_METHODS
from ..refmodel.errors import InvalidDefinition

if TYPE_CHECKING:  # machines import this module to register; the base class is needed only for types here
    from .machines._base import RuleSet, Target

#: rule set -> the capabilities it needs (all of them), in registration order.
RULE_SETS: Final[dict[type[RuleSet], frozenset[str]]] = {}

_RULE_MARKER: Final = "hypothesis_stateful_rule"  # what hypothesis.stateful.rule sets on a rule's function


def rule_names(cls: type) -> list[str]:
    """The names of the ``@rule`` methods ``cls`` has, its bases' included, as Hypothesis discovers them."""
    return [name for name, f in inspect.getmembers(cls) if hasattr(f, _RULE_MARKER)]


def register_rule_set(capabilities: str | Iterable[str], rule_set: type[RuleSet]) -> None:
    """Draw ``rule_set``'s rules for implementations that declare every one of ``capabilities``.

    Raises InvalidDefinition for an unknown capability, a class that is not a
    ``RuleSet`` with rules, a second registration, or a rule name another
    rule set has already (one of the two would silently hide the other).
    """
    from .machines._base import RuleSet  # loaded already: the registering module subclasses it

    needs = frozenset({capabilities} if isinstance(capabilities, str) else capabilities)
    name = getattr(rule_set, "__qualname__", repr(rule_set))
    if not needs:
        raise InvalidDefinition(f"rule set {name} is registered for no capability; name the capability its rules call")
    unknown = sorted(needs - CAPABILITY_METHODS.keys())
    if unknown:
        raise InvalidDefinition(f"rule set {name} needs unknown capabilities {unknown}; known: {sorted(CAPABILITY_METHODS)}")
    if not (isinstance(rule_set, type) and issubclass(rule_set, RuleSet)):
        raise InvalidDefinition(f"{name} is not a rule set; subclass kmemspec.properties.RuleSet and give it @rule methods")
    if rule_set in RULE_SETS:
        raise InvalidDefinition(f"rule set {name} is registered already (for {sorted(RULE_SETS[rule_set])})")
    mine = set(rule_names(rule_set))
    if not mine:
        raise InvalidDefinition(f"rule set {name} has no @rule methods; a rule set without rules draws nothing")
    for other in RULE_SETS:
        clash = sorted(mine & set(rule_names(other)))
        if clash:
            raise InvalidDefinition(f"rule set {name} defines rules {clash}, which rule set {other.__qualname__} has already; "
                                    "rename them (a composed machine would keep only one of each)")
    RULE_SETS[rule_set] = needs


def rule_sets_for(capabilities: frozenset[str]) -> tuple[type[RuleSet], ...]:
    """The registered rule sets an implementation with ``capabilities`` is checked with, in registration order."""
    return tuple(rs for rs, needs in RULE_SETS.items() if needs <= capabilities)


def state_machine_for(target: Target) -> type[RuleSet]:
    """The suite for ``target``: its capabilities' rule sets composed into one state machine, bound to ``target``."""
    chosen = rule_sets_for(target.capabilities)
    if not chosen:
        raise InvalidDefinition(f"{target.label}: no rule set is registered for capabilities {sorted(target.capabilities)}")
    return type(f"Suite_{target.label}", chosen, {"target": target})
