"""Checkers: one per subsystem, each given the step driver; and the registry that finds them.

A checker implements the steps of its subsystem (the operations refmodel
declares with ``step=True``) as methods of the same name. The driver
(``Lockstep``) builds every registered checker whose subsystem applies to
the implementation and exposes their steps as its own methods, so a printed
test reads ``iut.kmalloc(size=8, gfp=GFP_KERNEL)`` whoever checks it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, ClassVar

from ...refmodel.errors import InvalidDefinition
from ...refmodel.gfp import format_gfp
from ..ops import Kind, step_ops
from ..ops import op as op_named

if TYPE_CHECKING:
    from . import Lockstep

_CHECKERS: list[type[Checker]] = []


class Checker:
    """The lockstep calls of one subsystem. Subclass with ``steps = (...)``, then ``register_checker``."""

    subsystem: ClassVar[str]
    steps: ClassVar[tuple[str, ...]] = ()
    #: The page owners (``LiveBlock.owner``) whose blocks this checker judges when they are given to free_pages.
    owns_pages: ClassVar[tuple[str, ...]] = ()

    def __init__(self, driver: Lockstep) -> None:
        self.d = driver

    def applies(self) -> bool:
        """Whether this checker is built for the driver's implementation (by default: always)."""
        return True

    def free_owned_block(self, op: str, values: dict[str, Any], pfn: int, order: int, call: Callable[[], Any]) -> bool:
        """free_pages (``op``, with ``values``) of a block one of ``owns_pages`` holds; False to leave it to the page oracle."""
        return False

    def at_end(self) -> None:
        """The subsystem's checks when an example ends without a failure (its own steps, recorded); by default none."""


def register_checker(cls: type[Checker]) -> type[Checker]:
    """Add a checker; InvalidDefinition when a step it names is no operation, or has no method."""
    ops = step_ops()
    for name in cls.steps:
        if name not in ops:
            raise InvalidDefinition(f"checker {cls.__qualname__}: step {name!r} is not a step operation of any subsystem; declare it with op(...) in its refmodel module")
        if not callable(getattr(cls, name, None)):
            raise InvalidDefinition(f"checker {cls.__qualname__} lists step {name!r} but has no method {name}()")
    taken = {s: c for c in _CHECKERS if c is not cls for s in c.steps}
    for name in cls.steps:
        if name in taken:
            raise InvalidDefinition(f"checker {cls.__qualname__}: step {name!r} is already checked by {taken[name].__qualname__}")
    if cls not in _CHECKERS:
        _CHECKERS.append(cls)
    return cls


def checkers() -> tuple[type[Checker], ...]:
    """Every registered checker class, in registration order."""
    return tuple(_CHECKERS)


def checker_for_step(name: str) -> type[Checker] | None:
    for c in _CHECKERS:
        if name in c.steps:
            return c
    return None


def bind_steps(driver: Any, instances: list[Checker]) -> None:
    for inst in instances:
        for name in inst.steps:
            setattr(driver, name, getattr(inst, name))


def call_text(op: str, args: dict[str, Any]) -> str:
    """``op(arg=value, ...)`` for a message: GFP masks by name, PFNs and addresses in hex."""
    o = op_named(op)
    shown = []
    for k, v in args.items():
        kind = o.kind_of(k) if o is not None else None
        if isinstance(v, str):
            shown.append(f"{k}={v!r}")
        elif kind is Kind.GFP:
            shown.append(f"{k}={format_gfp(v)}")
        elif kind in (Kind.PFN, Kind.ADDR, Kind.OBJECT, Kind.PHYS) and isinstance(v, int):
            shown.append(f"{k}={v:#x}")
        else:
            shown.append(f"{k}={v}")
    return f"{op}({', '.join(shown)})"


class Lazy:
    """A message fragment built only if a message is: ``f"{what} returned ..."`` formats it; the hot path never does."""

    __slots__ = ("_make",)

    def __init__(self, make: Callable[[], str]) -> None:
        self._make = make

    def __str__(self) -> str:
        return self._make()

    def __format__(self, spec: str) -> str:
        return format(self._make(), spec)
