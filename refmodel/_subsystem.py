"""A subsystem is one row in a registry: its rules, its operations, its oracle.

Each refmodel subsystem module (``page_alloc``, ``context``, ``kmalloc``,
``slab``, ``slab_debug``, ...) ends with ``SUBSYSTEM = register(Subsystem(...))``.
Operations are declared here once, with typed integer arguments, and the
harness derives from them everything that spells an operation: the
capability map, the wire format and its schema, the C adapter, the process
adapter, the server's dispatch, replay, and how a printed counterexample
shows each argument. A new subsystem registers from its own module and
touches no core file.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Final

from .errors import InvalidDefinition

if TYPE_CHECKING:
    from ._rule import Rule


class Kind(enum.Enum):
    """What an argument is: how it crosses each boundary and how a printed test shows it."""

    GFP = "gfp"  # a GFP mask: kmemspec_gfp_t, printed as GFP_KERNEL | __GFP_DMA
    ORDER = "order"  # 2^order pages: uint32_t
    PFN = "pfn"  # a page frame number: uint64_t, printed as pfn_N (+ offset) or hex
    ADDR = "addr"  # a logical address of a page block: printed as addr_N (+ offset) or hex
    OBJECT = "object"  # a pointer to a slab object (or a page block): printed as obj_N (+ offset) or hex
    PHYS = "phys_addr"  # a physical address: uint64_t
    SIZE = "size"  # a size_t byte count, an element count, an alignment
    CACHE = "cache"  # a kmem_cache id: uint64_t, printed as cache_N
    SLAB_FLAGS = "slab_flags"  # kmem_cache_create flags: printed as SlabFlag names
    NAME = "name"  # a string: const char *
    BYTES = "bytes"  # memory contents: hex on the wire, (buf, len) in C
    CONTEXT = "context"  # a preempt_count: printed as Context.NAME

    @property
    def is_string(self) -> bool:
        return self is Kind.NAME

    @property
    def c_type(self) -> str:
        """The C parameter type (harness/c/kmemspec_iut.h)."""
        return _C_TYPES[self]


_C_TYPES: Final = {
    Kind.GFP: "kmemspec_gfp_t", Kind.ORDER: "uint32_t", Kind.PFN: "uint64_t", Kind.ADDR: "uint64_t", Kind.OBJECT: "uint64_t",
    Kind.PHYS: "uint64_t", Kind.SIZE: "uint64_t", Kind.CACHE: "uint64_t", Kind.SLAB_FLAGS: "uint64_t", Kind.NAME: "const char *",
    Kind.BYTES: "const void *", Kind.CONTEXT: "uint32_t",
}


class Returns(enum.Enum):
    """What an operation answers, and how its C function reports it.

    ``NOTHING``: ``int`` status only. The nullable kinds (``PFN``, ``ADDR``,
    ``OBJECT``, ``CACHE``): status, the value through a ``uint64_t *`` out
    parameter, ``KMEMSPEC_NOMEM`` for NULL. ``SIZE``: like them, but never NULL.
    ``BYTES``: the bytes read into the caller's buffer of the ``SIZE`` argument's
    length. ``FREE_AREA`` and ``SLAB_ROWS``: an ``int64_t`` count of rows
    written into caller-provided arrays.
    """

    NOTHING = "nothing"
    PFN = "pfn"
    ADDR = "addr"
    OBJECT = "object"
    CACHE = "cache"
    SIZE = "size"
    BYTES = "bytes"
    FREE_AREA = "free_area"
    SLAB_ROWS = "slab_rows"

    @property
    def nullable(self) -> bool:
        return self in (Returns.PFN, Returns.ADDR, Returns.OBJECT, Returns.CACHE)

    @property
    def name_prefix(self) -> str | None:
        """The prefix of the names results get in a printed test (``pfn_0``, ``obj_3``, ...)."""
        return _PREFIX.get(self)


_PREFIX: Final = {Returns.PFN: "pfn", Returns.ADDR: "addr", Returns.OBJECT: "obj", Returns.CACHE: "cache"}


@dataclass(frozen=True)
class Arg:
    """One argument of an operation: its name on the wire and in Python, and its kind."""

    name: str
    kind: Kind


@dataclass(frozen=True)
class Op:
    """An operation: the kernel's name, the capability that provides it, its arguments and its answer.

    ``wire``: the implementation provides it (a method, a C function, a
    request); a suite-only step (``set_context``, ``clobber``, the
    introspection checks) has ``wire=False``. ``step``: the lockstep checker
    records it as a step of a trace, so it prints and replays; the
    introspection calls the checker makes by itself (``free_area``,
    ``slabs``, ``read_phys``) are not steps.
    """

    name: str
    capability: str
    args: tuple[Arg, ...] = ()
    returns: Returns = Returns.NOTHING
    wire: bool = True
    step: bool = True
    doc: str = ""

    @property
    def c_symbol(self) -> str:
        return f"kmemspec_{self.name}"

    @property
    def arg_names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.args)

    def kind_of(self, arg: str) -> Kind | None:
        for a in self.args:
            if a.name == arg:
                return a.kind
        return None


def op(name: str, capability: str, *args: tuple[str, Kind], returns: Returns = Returns.NOTHING, wire: bool = True,
       step: bool = True, doc: str = "") -> Op:
    """``op("alloc_pages", "pages", ("gfp", Kind.GFP), ("order", Kind.ORDER), returns=Returns.PFN)``."""
    return Op(name, capability, tuple(Arg(n, k) for n, k in args), returns, wire, step, doc)


@dataclass(frozen=True)
class Configuration:
    """What an oracle is configured by: the implementation's declared capabilities and claims."""

    capabilities: frozenset[str] = frozenset()
    claims: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Subsystem:
    """One subsystem: its name, the capabilities it defines, its rules and operations, its oracle.

    ``applies_to``: the capabilities of which an implementation needs at
    least one for the subsystem's rules to apply (empty: every implementation).
    ``model``: ``model(machine, models, config)`` builds the subsystem's oracle
    for one example, given the oracles built before it (by subsystem name) and
    the implementation's ``Configuration``; None for a subsystem whose rules
    another's oracle judges.
    """

    name: str
    doc: str
    capabilities: tuple[str, ...] = ()
    rules: tuple[Rule, ...] = ()
    ops: tuple[Op, ...] = ()
    applies_to: frozenset[str] = frozenset()
    model: Callable[[Any, dict[str, Any], Configuration], Any] | None = None
    depends: tuple[str, ...] = field(default=())


_REGISTRY: dict[str, Subsystem] = {}
_generation = [0]  # bumped on each registration: caches derived from the registry compare it


def register(sub: Subsystem) -> Subsystem:
    """Add a subsystem; InvalidDefinition names a clash (a rule ID, an op or a capability defined twice)."""
    if sub.name in _REGISTRY and _REGISTRY[sub.name] is not sub:
        raise InvalidDefinition(f"subsystem {sub.name!r} is registered twice; give the new one another name")
    for d in sub.depends:
        if d not in _REGISTRY:
            raise InvalidDefinition(f"subsystem {sub.name!r} depends on {d!r}, which is not registered yet; import it first")
    rules = {r.id: s.name for s in _REGISTRY.values() if s is not sub for r in s.rules}
    ops = {o.name: s.name for s in _REGISTRY.values() if s is not sub for o in s.ops}
    caps = {c: s.name for s in _REGISTRY.values() if s is not sub for c in s.capabilities}
    for r in sub.rules:
        if r.id in rules:
            raise InvalidDefinition(f"subsystem {sub.name!r}: rule {r.id} is already defined by {rules[r.id]!r}")
        if r.subsystem != sub.name:
            raise InvalidDefinition(f"subsystem {sub.name!r}: rule {r.id} names subsystem {r.subsystem!r}; a rule lives in the subsystem that declares it")
    for o in sub.ops:
        if o.name in ops:
            raise InvalidDefinition(f"subsystem {sub.name!r}: operation {o.name} is already defined by {ops[o.name]!r}")
        if not o.name.isidentifier():
            raise InvalidDefinition(f"subsystem {sub.name!r}: operation {o.name!r} is not a Python identifier")
    for c in sub.capabilities:
        if c in caps:
            raise InvalidDefinition(f"subsystem {sub.name!r}: capability {c!r} is already defined by {caps[c]!r}")
    known = set(caps) | set(sub.capabilities)
    for r in sub.rules:
        if r.capability is not None and r.capability not in known:
            raise InvalidDefinition(f"subsystem {sub.name!r}: rule {r.id} needs capability {r.capability!r}, which no subsystem defines; "
                                    f"known: {sorted(known)}")
    for o in sub.ops:
        if o.capability not in known:
            raise InvalidDefinition(f"subsystem {sub.name!r}: operation {o.name} belongs to capability {o.capability!r}, which no subsystem defines")
    for c in sub.applies_to:
        if c not in known:
            raise InvalidDefinition(f"subsystem {sub.name!r}: applies_to names capability {c!r}, which no subsystem defines")
    _REGISTRY[sub.name] = sub
    _generation[0] += 1
    return sub


def subsystems() -> tuple[Subsystem, ...]:
    """Every registered subsystem, in registration order (dependencies first)."""
    return tuple(_REGISTRY.values())


def generation() -> int:
    """A number that changes whenever a subsystem registers."""
    return _generation[0]


def all_ops() -> dict[str, Op]:
    """Every operation and suite step of every subsystem, by name."""
    return {o.name: o for s in _REGISTRY.values() for o in s.ops}


def capability_owner() -> dict[str, Subsystem]:
    """Each capability and the subsystem that defines it."""
    return {c: s for s in _REGISTRY.values() for c in s.capabilities}
