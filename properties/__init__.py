"""kmemspec.properties: the Hypothesis state machines that drive implementation and oracle in lockstep.

``run_check`` runs the suite for one implementation and machine under a
``Profile`` (``PROFILES``: smoke, ci, dev, campaign) and returns a ``CheckResult``.
The suite is composed per implementation by ``state_machine_for``: one
``RuleSet`` per subsystem (``machines/``), each registered with
``register_rule_set`` for the capabilities it needs, so rules an
implementation cannot use are never drawn. ``PageStateMachine`` is the
machine of a pages-only implementation; ``strategies`` holds the GFP, order,
context, size and cache strategies.
"""

from ._subsystems import register_rule_set, state_machine_for
from .machines import Block, PageStateMachine, RuleSet, Target
from .runner import PROFILES, CheckResult, Failure, Profile, run_check

__all__ = [
    "PROFILES",
    "Block",
    "CheckResult",
    "Failure",
    "PageStateMachine",
    "Profile",
    "RuleSet",
    "Target",
    "register_rule_set",
    "run_check",
    "state_machine_for",
]
