"""The JSON lines protocol (version 1): messages, the operation table, and reply decoding.

One request per line from the suite, one reply per line from the
implementation (docs/protocol.md, docs/protocol.schema.json). This module is
shared by the client (``adapters.process``, which drives a child process) and
the server (``serve``, which puts any loadable implementation behind a pipe).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from ..refmodel.errors import VIOLATION_BY_NAME, Violation
from ..refmodel.machine import Machine

PROTOCOL_VERSION: Final = 1
MAX_LINE: Final = 16 << 20  # a reply longer than this is a flood (IUT-WIRE-FORMAT)
MAX_COUNT: Final = 1000  # might_sleep / slept counts in one reply: more is garbage, not diligence


@dataclass(frozen=True)
class WireOp:
    """An operation of the protocol: its capability and its argument fields, in order."""

    name: str
    capability: str
    args: tuple[str, ...]


WIRE_OPS: Final[dict[str, WireOp]] = {
    op.name: op
    for op in (
        WireOp("alloc_pages", "pages", ("gfp", "order")),
        WireOp("free_pages", "pages", ("pfn", "order")),
        WireOp("get_free_pages", "get_free_pages", ("gfp", "order")),
        WireOp("free_pages_addr", "get_free_pages", ("addr", "order")),
        WireOp("read_phys", "memory", ("phys_addr", "length")),
        WireOp("write_phys", "memory", ("phys_addr", "data")),
        WireOp("free_area", "free_area", ()),
        WireOp("kmalloc", "kmalloc", ("size", "gfp")),
        WireOp("kzalloc", "kmalloc", ("size", "gfp")),
        WireOp("kmalloc_array", "kmalloc", ("n", "size", "gfp")),
        WireOp("krealloc", "kmalloc", ("addr", "size", "gfp")),
        WireOp("ksize", "kmalloc", ("addr",)),
        WireOp("kfree", "kmalloc", ("addr",)),
        WireOp("kmem_cache_create", "slab", ("name", "size", "align", "flags")),
        WireOp("kmem_cache_alloc", "slab", ("cache", "gfp")),
        WireOp("kmem_cache_free", "slab", ("cache", "addr")),
        WireOp("kmem_cache_destroy", "slab", ("cache",)),
        WireOp("kmem_cache_shrink", "slab", ("cache",)),
        WireOp("slabs", "slab_info", ()),
        WireOp("kmem_cache_validate", "slab_debug", ("cache",)),
    )
}


class WireError(ValueError):
    """A reply that is not of the protocol's shape; the message says what is wrong."""


def machine_message(machine: Machine) -> dict[str, Any]:
    """The machine file format plus ``free_ranges``: the RAM the buddy allocator owns at boot."""
    doc = machine.to_dict()
    doc["free_ranges"] = [[r.start, r.end] for z in machine.populated_zones for r in machine.zone_free_ranges(z)]
    return doc


def encode_bytes(data: bytes) -> str:
    return bytes(data).hex()


def decode_bytes(text: Any) -> bytes:
    if not isinstance(text, str):
        raise WireError(f"expected bytes as a hex string, got {type(text).__name__}")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise WireError(f"expected bytes as a hex string, got {text[:40]!r}") from None


@dataclass
class Reply:
    """A decoded reply: the result, or the violation reported, and what the call did to its env."""

    result: Any = None
    violation: Violation | None = None
    crash: str | None = None
    might_sleep: int = 0
    slept: int = 0
    reports: tuple[Violation, ...] = ()


def decode_reply(obj: Any) -> Reply:
    """Check a parsed reply line against the protocol; raise WireError naming the first problem."""
    if not isinstance(obj, dict):
        raise WireError(f"a reply must be a JSON object, got {type(obj).__name__}")
    reply = Reply(result=obj.get("result"))
    if "crash" in obj:
        reply.crash = str(obj["crash"])
    if "error" in obj:
        reply.violation = _violation(obj["error"], obj.get("message", ""))
    elif "result" not in obj and reply.crash is None:
        raise WireError("a reply has \"result\", \"error\" or \"crash\"; this one has none of them")
    reply.might_sleep = _count(obj, "might_sleep")
    reply.slept = _count(obj, "slept")
    reports = obj.get("reports", [])
    if not isinstance(reports, list) or len(reports) > MAX_COUNT:
        raise WireError(f"\"reports\" must be a list of at most {MAX_COUNT} violation names, got {type(reports).__name__}")
    reply.reports = tuple(_violation(name, "reported by the implementation") for name in reports)
    return reply


def _count(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key, 0)
    if isinstance(value, bool):
        return int(value)
    if not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise WireError(f"{key!r} must be a count (an int from 0 to {MAX_COUNT}), got {value!r}")
    return value


def _violation(name: Any, message: Any) -> Violation:
    cls = VIOLATION_BY_NAME.get(name) if isinstance(name, str) else None
    if cls is None:
        raise WireError(f"unknown violation {name!r}; the protocol's are {', '.join(sorted(VIOLATION_BY_NAME))}")
    return cls(str(message))
