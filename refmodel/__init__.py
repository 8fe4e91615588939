"""kmemspec.refmodel: the oracle. Pure Python, standard library only.

One module per mechanism: ``machine`` (zones, RAM, watermarks), ``gfp`` (flags
and zone selection), ``context`` (execution contexts, might_sleep),
``page_alloc`` (the buddy oracle), ``errors`` (violations and failures),
``rules`` (the catalog). Import what you need from here.
"""

from .context import Context, in_atomic, in_interrupt, may_sleep
from .errors import (
    VIOLATIONS,
    BadAddress,
    BadFree,
    ConformanceFailure,
    DoubleFree,
    FreeInterior,
    FreeWrongOrder,
    InvalidGfp,
    KmemspecError,
    SleepInAtomic,
    Violation,
)
from .gfp import GFP, ZoneType, format_gfp, gfp_zone, gfpflags_allow_blocking, parse_gfp
from .machine import Machine, PfnRange, Zone, load_machine
from .expectation import Expectation, Outcome
from .page_alloc import PageAllocModel
from .rules import RULES, Level, Rule

__all__ = [
    "GFP",
    "RULES",
    "VIOLATIONS",
    "BadAddress",
    "BadFree",
    "ConformanceFailure",
    "Context",
    "DoubleFree",
    "Expectation",
    "FreeInterior",
    "FreeWrongOrder",
    "InvalidGfp",
    "KmemspecError",
    "Level",
    "Machine",
    "Outcome",
    "PageAllocModel",
    "PfnRange",
    "Rule",
    "SleepInAtomic",
    "Violation",
    "Zone",
    "ZoneType",
    "format_gfp",
    "gfp_zone",
    "gfpflags_allow_blocking",
    "in_atomic",
    "in_interrupt",
    "load_machine",
    "may_sleep",
    "parse_gfp",
]
