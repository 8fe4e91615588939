"""The operation table, as the harness uses it: everything that spells an operation is derived here.

refmodel's subsystems declare each operation once (``refmodel.Op``: its name,
capability, typed integer arguments and answer). From the registry this
module derives the capability -> methods map (``CAPABILITY_METHODS``), the
wire operations (``wire_ops``), the replayable steps (``step_ops``) and the
argument conversions the adapters share. A subsystem registered later (a
third party's, a test's) shows up in every one of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from ..refmodel._subsystem import Kind, Op, Returns, all_ops, generation, subsystems

__all__ = ["CAPABILITY_METHODS", "Kind", "Op", "Returns", "capabilities", "check_args", "op", "step_ops", "wire_ops"]

_cache: dict[str, Any] = {"gen": -1}


def _derived() -> dict[str, Any]:
    if _cache["gen"] != generation():
        ops = all_ops()
        caps: dict[str, list[str]] = {c: [] for s in subsystems() for c in s.capabilities}
        for o in ops.values():
            if o.wire:
                caps.setdefault(o.capability, []).append(o.name)
        _cache.update(gen=generation(), ops=ops, caps={c: tuple(m) for c, m in caps.items()},
                      wire={n: o for n, o in ops.items() if o.wire}, steps={n: o for n, o in ops.items() if o.step})
    return _cache


def op(name: str) -> Op | None:
    """The operation or suite step called ``name``, or None."""
    return _derived()["ops"].get(name)


def wire_ops() -> dict[str, Op]:
    """The operations an implementation provides (methods, C functions, JSON lines requests), by name."""
    return _derived()["wire"]


def step_ops() -> dict[str, Op]:
    """The steps a trace records, prints and replays, by name."""
    return _derived()["steps"]


def capabilities() -> tuple[str, ...]:
    """Every capability an implementation may declare."""
    return tuple(_derived()["caps"])


class _CapabilityMethods(Mapping[str, tuple[str, ...]]):
    """capability -> the methods it requires; a live view of the registry."""

    def __getitem__(self, capability: str) -> tuple[str, ...]:
        return _derived()["caps"][capability]

    def __iter__(self) -> Iterator[str]:
        return iter(_derived()["caps"])

    def __len__(self) -> int:
        return len(_derived()["caps"])

    def __repr__(self) -> str:
        return repr(dict(self))


#: capability -> the methods it requires. "pages" is mandatory for now.
CAPABILITY_METHODS: Final[Mapping[str, tuple[str, ...]]] = _CapabilityMethods()


def check_args(o: Op, args: Mapping[str, Any]) -> str | None:
    """What is wrong with ``args`` for ``o`` (names and types by kind), or None."""
    missing = [a.name for a in o.args if a.name not in args]
    extra = sorted(set(args) - set(o.arg_names))
    if missing or extra:
        want = ", ".join(f"{a.name}: {a.kind.value}" for a in o.args) or "no arguments"
        return f"{o.name} takes ({want}); " + (f"missing {', '.join(missing)}" if missing else f"unexpected {', '.join(extra)}")
    for a in o.args:
        v = args[a.name]
        if a.kind is Kind.NAME:
            if not isinstance(v, str):
                return f"{o.name}: argument {a.name} is {v!r}; it is a string"
        elif a.kind is Kind.BYTES:
            if not isinstance(v, (bytes, bytearray, str)):
                return f"{o.name}: argument {a.name} is {v!r}; it is bytes"
        elif isinstance(v, bool) or not isinstance(v, int):
            return f"{o.name}: argument {a.name} is {v!r}; only name is a string, every other argument an int"
    return None
