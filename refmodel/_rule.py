"""A rule of the catalog: its ID, subsystem, level, statement and kernel source (``rules`` collects them)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Level(enum.Enum):
    """What kind of promise a rule is (DESIGN.md "Capabilities and levels")."""

    SAFETY = "safety"  # never overlap, never cross a zone, ...
    LIVENESS = "liveness"  # no spurious failure
    DETECTION = "detection"  # misuse reported, when claimed
    POLICY = "policy"  # kernel behaviour an allocator may choose differently, when claimed
    PROTOCOL = "protocol"  # the implementation speaks the protocol (returns ints, does not crash)

    @property
    def needs_claim(self) -> bool:
        return self in (Level.DETECTION, Level.POLICY)


@dataclass(frozen=True)
class Rule:
    """One rule: a stable ID, the subsystem, its level, a one-line statement, the kernel source.

    ``capability``: the capability an implementation needs for the rule to be
    checkable at all (``memory`` for contents rules, ``slab_info`` for the
    rules that read slabs()); None when the subsystem's capabilities suffice.
    """

    id: str
    subsystem: str
    level: Level
    statement: str
    source: str
    claimable: bool = False
    capability: str | None = None

    @property
    def needs_claim(self) -> bool:
        """Checked only for implementations that list the rule in ``claims``."""
        return self.claimable or self.level.needs_claim
