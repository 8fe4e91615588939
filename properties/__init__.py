"""kmemspec.properties: the Hypothesis state machines that drive implementation and oracle in lockstep.

``run_check`` runs the suite for one implementation and machine under a
``Profile`` (``PROFILES``: ci, dev, campaign) and returns a ``CheckResult``.
``PageStateMachine`` is the page-allocator machine; ``strategies`` holds the
GFP, order and context strategies.
"""

from .page_machine import Block, PageStateMachine, Target
from .runner import PROFILES, CheckResult, Failure, Profile, run_check

__all__ = [
    "PROFILES",
    "Block",
    "CheckResult",
    "Failure",
    "PageStateMachine",
    "Profile",
    "Target",
    "run_check",
]
