"""kmemspec.refmodel: the oracle. Pure Python, standard library only.

One module per mechanism, as Documentation/mm has one page per mechanism:
``machine`` (RAM, zones, address conversions; its file format in
``_machine_format``, named machines in ``presets``), ``watermarks`` (how
boot sets them, what a request may take), ``gfp`` (flags and zone
selection), ``context`` (execution contexts, might_sleep), ``page_alloc``
(the buddy oracle), ``slab`` (caches, objects, slabs), ``kmalloc`` (size
classes and the kmalloc calls), ``slab_debug`` (poison and red zones),
``objects`` (the three slab parts as one model), ``expectation`` (what a
call may do), ``errors`` (violations and failures), ``rules`` (the
catalog). What several modules share privately is in ``_internal``. Import
what you need from here.

Two namespaces of upper-case IDs appear in this package. Rule IDs
(``BUDDY-NO-OVERLAP``, ``SLAB-POISON``) are the catalog's, ``rules.RULES``:
what an implementation is judged by, named in failures, claims, coverage
and reports; a docstring that starts with one is that rule's check. Fact
IDs, always written "fact X" (``fact KMALLOC-INDEX``, ``fact WMARK-OK``),
name entries of KERNEL_FACTS.md, the project's sheet of kernel behaviour
with its sources, which the model encodes but which are not judged by
themselves. A few names (BUDDY-ALIGN, BUDDY-ORDER-LIMIT, BUDDY-DOUBLE-FREE,
GFP-ZONE-BAD, API-ZERO) are in both: the rule is the catalog's version of
the fact.

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
from .machine import Machine, PfnRange, Zone
from .presets import load_machine
from .expectation import Expectation, Outcome
from .page_alloc import PageAllocModel
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
