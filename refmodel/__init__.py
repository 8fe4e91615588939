"""kmemspec.refmodel: the oracle. Pure Python, standard library only.

One module per mechanism: ``machine`` (zones, RAM, watermarks), ``gfp`` (flags
and zone selection), ``context`` (execution contexts, might_sleep),
``page_alloc`` (the buddy oracle), ``slab`` (the slab layer and kmalloc),
``errors`` (violations and failures), ``rules`` (the catalog). Import what you
need from here.

Each subsystem module declares its rules and operations in one
``Subsystem`` row; the built-in ones are registered here, in dependency
order, and a new one calls ``register`` from its own module. The catalog
(``RULES``) and every operation table the harness derives read the registry.
"""

from . import context as _context
from . import iut as _iut
from . import kmalloc as _kmalloc
from . import objects as _objects
from . import page_alloc as _page_alloc
from ._subsystem import Kind, Op, Returns, Subsystem, op, register, subsystems

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
from .page_alloc import Expectation, Outcome, PageAllocModel
from .rules import RULES, Level, Rule

for _sub in (_page_alloc.SUBSYSTEM, _context.SUBSYSTEM, _kmalloc.SUBSYSTEM, _objects.SUBSYSTEM, _iut.SUBSYSTEM):
    register(_sub)
del _sub

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
    "Kind",
    "KmemspecError",
    "Level",
    "Machine",
    "Op",
    "Outcome",
    "PageAllocModel",
    "PfnRange",
    "Returns",
    "Rule",
    "SleepInAtomic",
    "Subsystem",
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
    "op",
    "parse_gfp",
    "register",
    "subsystems",
]
